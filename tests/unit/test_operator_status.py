"""Status and conditions computed from observed children."""

import copy
from dataclasses import replace
from typing import Any

from corescale.operator.api import spec
from corescale.operator.decide import render, status

OWNER = render.Owner("hello", "default", "uid-1")
NOW = "2026-11-25T11:00:00Z"


def _deployment(
    parsed: spec.CoreClusterSpec, ready: int, replicas: int | None = None, **extra_status: Any
) -> dict[str, Any]:
    stored = copy.deepcopy(render.deployment(OWNER, parsed))
    stored["metadata"]["generation"] = 1
    count = parsed.pods if replicas is None else replicas
    stored["status"] = {
        "observedGeneration": 1,
        "replicas": count,
        "updatedReplicas": count,
        "readyReplicas": ready,
        "availableReplicas": ready,
        **extra_status,
    }
    return stored


def _conditions(result: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c["reason"]) for c in result["conditions"]}


def _compute(
    parsed: spec.CoreClusterSpec,
    observed: status.Observed,
    previous: list[dict[str, Any]] | None = None,
    **kw: Any,
) -> dict[str, Any]:
    return status.compute(OWNER, parsed, 3, observed, previous=previous or [], now=NOW, **kw)


def test_all_ready_is_ready_and_counts_workers() -> None:
    parsed = spec.parse({"mode": "prefork", "replicas": 4, "workersPerPod": 2}, "i")
    observed = status.Observed(
        deployments={"prefork": _deployment(parsed, ready=2)},
        service={"metadata": {"name": "hello"}},
    )
    result = _compute(parsed, observed)
    assert _conditions(result) == {
        "Ready": ("True", "AllWorkersReady"),
        "Progressing": ("False", "Complete"),
        "Degraded": ("False", "AsExpected"),
    }
    assert (result["replicas"], result["readyReplicas"]) == (4, 4)
    assert (result["pods"], result["readyPods"]) == (2, 2)
    assert result["selector"] == "corescale.io/cluster=hello"
    assert result["observedGeneration"] == 3
    assert result["conditions"][0]["message"] == "4/4 workers ready in 2/2 pods (prefork mode)"


def test_partly_ready_is_progressing() -> None:
    parsed = spec.parse({"replicas": 3}, "i")
    observed = status.Observed(
        deployments={"pods": _deployment(parsed, ready=1)}, service={"metadata": {"name": "hello"}}
    )
    result = _compute(parsed, observed)
    assert _conditions(result)["Ready"][0] == "False"
    assert _conditions(result)["Progressing"][0] == "True"
    assert result["readyReplicas"] == 1


def test_nothing_yet_is_creating() -> None:
    result = _compute(spec.parse({}, "i"), status.Observed())
    assert _conditions(result)["Ready"] == ("False", "Creating")


def test_scaled_to_zero_is_ready() -> None:
    parsed = spec.parse({"replicas": 0}, "i")
    observed = status.Observed(
        deployments={"pods": _deployment(parsed, ready=0)}, service={"metadata": {"name": "hello"}}
    )
    assert _conditions(_compute(parsed, observed))["Ready"] == ("True", "ScaledToZero")


def test_image_pull_failure_is_degraded_with_the_pod_message() -> None:
    parsed = spec.parse({"image": "nope:1"}, "i")
    pod = {
        "metadata": {"name": "hello-pods-abc"},
        "status": {
            "containerStatuses": [
                {
                    "state": {
                        "waiting": {"reason": "ImagePullBackOff", "message": "Back-off pulling"}
                    }
                }
            ]
        },
    }
    observed = status.Observed(
        deployments={"pods": _deployment(parsed, ready=0)},
        service={"metadata": {"name": "hello"}},
        pods=[pod],
    )
    result = _compute(parsed, observed)
    degraded = next(c for c in result["conditions"] if c["type"] == "Degraded")
    assert (degraded["status"], degraded["reason"]) == ("True", "ImagePullBackOff")
    assert degraded["message"] == "pod hello-pods-abc: ImagePullBackOff: Back-off pulling"


def test_quota_and_deadline_are_degraded() -> None:
    parsed = spec.parse({"replicas": 2}, "i")
    failing = _deployment(
        parsed,
        ready=0,
        conditions=[
            {
                "type": "ReplicaFailure",
                "status": "True",
                "reason": "FailedCreate",
                "message": "exceeded quota",
            },
            {
                "type": "Progressing",
                "status": "False",
                "reason": "ProgressDeadlineExceeded",
                "message": "too slow",
            },
        ],
    )
    observed = status.Observed(deployments={"pods": failing}, service={"metadata": {}})
    result = _compute(parsed, observed)
    conditions = _conditions(result)
    assert conditions["Degraded"] == ("True", "ReplicaFailure")
    assert conditions["Progressing"] == ("False", "Stalled")
    assert "(and 1 more)" in result["conditions"][2]["message"]


def test_apply_error_is_degraded() -> None:
    result = _compute(
        spec.parse({}, "i"),
        status.Observed(),
        errors=[status.Problem("ApplyFailed", "apply Deployment: forbidden")],
    )
    assert _conditions(result)["Degraded"] == ("True", "ApplyFailed")


def test_mode_switch_is_not_ready_until_the_old_deployment_is_gone() -> None:
    pods = spec.parse({"replicas": 2}, "i")
    prefork = spec.parse({"mode": "prefork", "replicas": 2, "workersPerPod": 2}, "i")
    observed = status.Observed(
        deployments={"pods": _deployment(pods, ready=2), "prefork": _deployment(prefork, ready=1)},
        service={"metadata": {}},
    )
    result = _compute(prefork, observed)
    assert _conditions(result)["Ready"] == ("False", "SwitchingMode")
    assert result["replicas"] == 4 and result["readyReplicas"] == 4


def test_transition_time_only_moves_when_the_status_changes() -> None:
    parsed = spec.parse({}, "i")
    previous = [
        {"type": "Ready", "status": "False", "lastTransitionTime": "earlier"},
        {"type": "Degraded", "status": "False", "lastTransitionTime": "earlier"},
    ]
    observed = status.Observed(
        deployments={"pods": _deployment(parsed, ready=1)}, service={"metadata": {}}
    )
    times = {
        c["type"]: c["lastTransitionTime"]
        for c in _compute(parsed, observed, previous)["conditions"]
    }
    assert times == {"Ready": NOW, "Degraded": "earlier", "Progressing": NOW}


def test_invalid_spec_status() -> None:
    result = status.invalid(4, "spec.app must be module:factory", [], NOW)
    assert {c["type"]: c["reason"] for c in result["conditions"]} == {
        "Ready": "InvalidSpec",
        "Progressing": "InvalidSpec",
        "Degraded": "InvalidSpec",
    }
    assert result["observedGeneration"] == 4


def test_contains_is_a_subset_check() -> None:
    assert status.contains({"a": 1, "b": [{"x": 1, "y": 2}]}, {"b": [{"x": 1}]})
    assert not status.contains({"b": [{"x": 1}, {"x": 2}]}, {"b": [{"x": 1}]})
    assert not status.contains({"a": 1}, {"a": 2})
    assert not status.contains({}, {"a": None})


def test_a_deployment_rendered_by_the_caller_decides_rolled_out() -> None:
    """The status compares the observed Deployment with the one the caller rendered."""
    parsed = spec.parse({"replicas": 2}, "i")
    running = _deployment(parsed, ready=2)
    observed = status.Observed(
        deployments={"pods": running}, service={"metadata": {"name": "hello"}}
    )
    assert _conditions(_compute(parsed, observed))["Progressing"][0] == "False"
    newer = render.deployment(OWNER, spec.parse({"replicas": 2, "port": 9000}, "i"))
    assert _conditions(_compute(parsed, observed, deployment=newer))["Progressing"][0] == "True"


def _ready_pod(name: str) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "status": {"conditions": [{"type": "Ready", "status": "True"}]},
    }


def _slice(service_uid: str, endpoints: list[dict[str, Any]]) -> dict[str, Any]:
    return status.slice_summary(
        {
            "metadata": {
                "name": "hello-abcde",
                "labels": {"kubernetes.io/service-name": "hello"},
                "ownerReferences": [{"kind": "Service", "name": "hello", "uid": service_uid}],
            },
            "endpoints": endpoints,
        }
    )


def _endpoint(pod: str, ready: bool | None) -> dict[str, Any]:
    conditions = {} if ready is None else {"ready": ready}
    return {
        "addresses": ["10.0.0.1"],
        "conditions": conditions,
        "targetRef": {"kind": "Pod", "name": pod},
    }


def test_ready_waits_until_the_services_endpoint_slices_list_every_ready_pod() -> None:
    parsed = spec.parse({"replicas": 2}, "i")
    base = status.Observed(
        deployments={"pods": _deployment(parsed, ready=2)},
        service={"metadata": {"name": "hello", "uid": "svc-1"}},
        pods=[_ready_pod("hello-pods-a"), _ready_pod("hello-pods-b")],
    )
    not_yet = _compute(
        parsed,
        replace(
            base,
            endpoint_slices=[
                _slice("svc-1", [_endpoint("hello-pods-a", True), _endpoint("hello-pods-b", False)])
            ],
        ),
    )
    assert _conditions(not_yet)["Ready"] == ("False", "WaitingForEndpoints")
    assert "do not list hello-pods-b yet" in not_yet["conditions"][0]["message"]
    # A slice of an earlier Service of the same name proves nothing.
    stale = _compute(
        parsed,
        replace(
            base,
            endpoint_slices=[
                _slice("svc-0", [_endpoint("hello-pods-a", True), _endpoint("hello-pods-b", True)])
            ],
        ),
    )
    assert _conditions(stale)["Ready"] == ("False", "WaitingForEndpoints")
    # ready unset means ready, as the EndpointSlice API defines it.
    serving = _compute(
        parsed,
        replace(
            base,
            endpoint_slices=[
                _slice("svc-1", [_endpoint("hello-pods-a", True), _endpoint("hello-pods-b", None)])
            ],
        ),
    )
    assert _conditions(serving)["Ready"] == ("True", "AllWorkersReady")


def test_a_crashing_worker_is_reported_with_its_last_words() -> None:
    """A bad app: the import error the worker wrote, not the kubelet's back-off text."""
    container = {
        "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 10s restarting"}},
        "lastState": {
            "terminated": {
                "exitCode": 3,
                "message": "starting\ncorescale-worker: cannot import APP 'nope.web:app': "
                "module 'nope.web' failed to import: No module named 'nope'\n\n",
            }
        },
    }
    problems = status.pod_problems(
        [{"metadata": {"name": "p"}, "status": {"containerStatuses": [container]}}]
    )
    assert problems == [
        status.Problem(
            "CrashLoopBackOff",
            "pod p: CrashLoopBackOff: corescale-worker: cannot import APP 'nope.web:app': "
            "module 'nope.web' failed to import: No module named 'nope'",
        )
    ]
    del container["lastState"]
    assert (
        status.pod_problems(
            [{"metadata": {"name": "p"}, "status": {"containerStatuses": [container]}}]
        )[0].message
        == "pod p: CrashLoopBackOff: back-off 10s restarting"
    )


def _pod_on(name: str, node: str, ready: str, containers_ready: str) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "spec": {"nodeName": node},
        "status": {
            "conditions": [
                {"type": "ContainersReady", "status": containers_ready},
                {"type": "Ready", "status": ready},
            ]
        },
    }


NODE_NOT_READY = {
    "Ready": ("False", "NodeNotReady"),
    "Progressing": ("True", "NodeNotReady"),
    "Degraded": ("True", "NodeNotReady"),
}


def _with_pods(parsed: spec.CoreClusterSpec, ready: int, *pods: dict[str, Any]) -> status.Observed:
    """A pods-mode cluster whose Deployment counts ``ready`` pods ready."""
    return status.Observed(
        deployments={"pods": _deployment(parsed, ready=ready)},
        service={"metadata": {"name": "hello"}},
        pods=list(pods),
    )


def test_pods_taken_out_of_service_with_their_nodes_are_reported_naming_the_nodes() -> None:
    """The node controller marks the pods of a lost node not ready and leaves
    their containers ready: that, not a rollout, is why the workers are missing."""
    parsed = spec.parse({"replicas": 4}, "i")
    result = _compute(
        parsed,
        _with_pods(
            parsed,
            1,
            _pod_on("hello-pods-a", "pool-0", "True", "True"),
            _pod_on("hello-pods-b", "pool-2", "False", "True"),
            _pod_on("hello-pods-c", "pool-5", "False", "True"),
            _pod_on("hello-pods-d", "pool-5", "False", "True"),
        ),
    )
    assert _conditions(result) == NODE_NOT_READY
    lost = (
        "nodes not ready, 3 pods out of service: "
        "pool-2 (hello-pods-b), pool-5 (hello-pods-c, hello-pods-d)"
    )
    assert result["conditions"][2]["message"] == lost
    ready = result["conditions"][0]["message"]
    assert ready == f"1/4 workers ready in 1/4 pods (pods mode); {lost}"


def test_a_lost_pod_the_deployment_still_counts_ready_makes_the_cluster_not_ready() -> None:
    """The node controller marks the pods first and the Deployment's counts
    follow a moment later: in between, Ready already says what Degraded says."""
    parsed = spec.parse({"replicas": 2}, "i")
    observed = _with_pods(
        parsed,
        2,
        _pod_on("hello-pods-a", "pool-0", "True", "True"),
        _pod_on("hello-pods-b", "pool-2", "False", "True"),
    )
    assert _conditions(_compute(parsed, observed)) == NODE_NOT_READY


def test_starting_or_stopping_pods_are_no_lost_node() -> None:
    starting = _pod_on("hello-pods-a", "pool-0", "False", "False")
    stopping = _pod_on("hello-pods-b", "pool-1", "False", "True")
    stopping["metadata"]["deletionTimestamp"] = NOW
    assert status.pod_problems([starting, stopping]) == []
    assert status.pod_problems([_pod_on("p", "pool-1", "False", "True")]) == [
        status.Problem("NodeNotReady", "node not ready, 1 pod out of service: pool-1 (p)")
    ]
