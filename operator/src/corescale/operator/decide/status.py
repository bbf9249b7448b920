"""Pure functions from the observed children to a CoreCluster's status.

The status counts worker processes, not pods, because that is the unit of
``spec.replicas`` and of the scale subresource: an autoscaler comparing
``status.replicas`` with ``spec.replicas`` must compare like with like.

Conditions follow the usual Kubernetes meaning: ``Ready`` is True only when
everything asked for runs and is ready (so ``kubectl wait
--for=condition=Ready`` means "done"), ``Progressing`` is True while the
operator or the Deployment controller is still moving towards the spec, and
``Degraded`` is True when something needs a person: a spec the cluster
refuses, an image that cannot be pulled, a worker that crashes, pods that
cannot be scheduled, a rollout past its deadline.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from corescale.operator.api import names
from corescale.operator.api.spec import CoreClusterSpec
from corescale.operator.decide import render

Object = Mapping[str, Any]

POD_PROBLEMS = frozenset(
    {
        "ErrImagePull",
        "ErrImageNeverPull",
        "ImagePullBackOff",
        "InvalidImageName",
        "CrashLoopBackOff",
        "CreateContainerConfigError",
        "CreateContainerError",
        "RunContainerError",
    }
)


@dataclass(frozen=True)
class Observed:
    """The children of one CoreCluster as last seen by the operator's watches."""

    deployments: Mapping[str, Object] = field(default_factory=dict)
    """Deployment by the mode it runs."""
    service: Object | None = None
    disruption_budget: Object | None = None
    pods: Sequence[Object] = ()
    endpoint_slices: Sequence[Object] = ()
    """The Service's EndpointSlices, as :func:`slice_summary` keeps them."""


@dataclass(frozen=True)
class Problem:
    reason: str
    message: str


def slice_summary(body: Object) -> dict[str, Any]:
    """What Ready needs of an EndpointSlice: its Service, its owners and the pods it
    lists as ready (a missing ``ready`` means ready, as the API defines it)."""
    meta = body["metadata"]
    return {
        "metadata": {
            "name": meta["name"],
            "service": (meta.get("labels") or {}).get(names.SERVICE_NAME_LABEL, ""),
            "ownerReferences": meta.get("ownerReferences") or [],
        },
        "ready": sorted(
            endpoint["targetRef"]["name"]
            for endpoint in body.get("endpoints") or []
            if (endpoint.get("conditions") or {}).get("ready") is not False
            and (endpoint.get("targetRef") or {}).get("kind") == "Pod"
        ),
    }


def _pod_ready(pod: Object) -> bool:
    if (pod.get("metadata") or {}).get("deletionTimestamp"):
        return False
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def unlisted(observed: Observed) -> list[str]:
    """Ready pods that the Service's EndpointSlices do not list as ready yet.

    Only slices whose owner is the Service the operator observes count, so a
    slice left from an earlier Service of the same name proves nothing.
    """
    service_uid = ((observed.service or {}).get("metadata") or {}).get("uid")
    listed = {
        pod
        for found in observed.endpoint_slices
        if any(ref.get("uid") == service_uid for ref in found["metadata"]["ownerReferences"])
        for pod in found["ready"]
    }
    return sorted(
        pod["metadata"]["name"]
        for pod in observed.pods
        if _pod_ready(pod) and pod["metadata"]["name"] not in listed
    )


def workers_per_pod(deployment: Object) -> int:
    annotations = deployment.get("metadata", {}).get("annotations") or {}
    try:
        return max(1, int(annotations.get(names.WORKERS_PER_POD_ANNOTATION, "1")))
    except ValueError:
        return 1


def contains(observed: Any, desired: Any) -> bool:
    """Whether every field of ``desired`` is in ``observed`` with the same value.

    Extra fields in ``observed`` are defaults or other managers' business;
    lists must match item by item, as server-side apply would make them.
    """
    if isinstance(desired, Mapping):
        return isinstance(observed, Mapping) and all(
            key in observed and contains(observed[key], value) for key, value in desired.items()
        )
    if isinstance(desired, list):
        return (
            isinstance(observed, list)
            and len(observed) == len(desired)
            and all(contains(o, d) for o, d in zip(observed, desired, strict=True))
        )
    return bool(observed == desired)


def rolled_out(observed: Object | None, desired: Object) -> bool:
    """The Deployment matches ``desired`` and all its pods are updated and available."""
    if observed is None or not contains(observed, desired):
        return False
    meta, status = observed.get("metadata", {}), observed.get("status") or {}
    want = desired["spec"]["replicas"]
    return bool(
        status.get("observedGeneration", 0) >= meta.get("generation", 0)
        and status.get("replicas", 0) == want
        and status.get("updatedReplicas", 0) == want
        and status.get("availableReplicas", 0) >= want
    )


def _last_words(container: Object) -> str:
    """The last line a crashed container wrote (its termination message).

    With terminationMessagePolicy FallbackToLogsOnError that is the end of
    its log: for a worker whose app cannot be imported, the import error.
    """
    terminated = (container.get("lastState") or {}).get("terminated") or {}
    lines = [line.strip() for line in str(terminated.get("message") or "").splitlines()]
    return next((line for line in reversed(lines) if line), "")


def _node_not_ready(pod: Object) -> bool:
    """Whether the node controller, not the kubelet, took the pod out of service.

    When a node stops being Ready (or stops renewing its Lease), the node
    lifecycle controller sets the Ready condition of each of its pods to
    False and leaves the rest as the kubelet last wrote it. Pods of a
    CoreCluster have no readiness gates, so Ready False beside ContainersReady
    True has no other cause: the workers may still run, but the Service no
    longer sends them requests.
    """
    if (pod.get("metadata") or {}).get("deletionTimestamp"):
        return False
    conditions = (pod.get("status") or {}).get("conditions") or []
    found = {c.get("type"): c.get("status") for c in conditions}
    return found.get("Ready") == "False" and found.get("ContainersReady") == "True"


def node_problems(pods: Iterable[Object]) -> list[Problem]:
    """One problem naming every node whose loss took workers' pods out of service.

    One rather than one per pod: a zone lost takes many pods at once, and the
    Degraded message should name all of its nodes, not the first pod's.
    """
    lost: dict[str, list[str]] = {}
    for pod in pods:
        if _node_not_ready(pod):
            node = (pod.get("spec") or {}).get("nodeName") or "?"
            lost.setdefault(node, []).append(pod.get("metadata", {}).get("name", "?"))
    if not lost:
        return []
    count = sum(len(names) for names in lost.values())
    where = ", ".join(f"{node} ({', '.join(sorted(lost[node]))})" for node in sorted(lost))
    return [
        Problem(
            "NodeNotReady",
            f"node{'s' if len(lost) != 1 else ''} not ready, "
            f"{count} pod{'s' if count != 1 else ''} out of service: {where}",
        )
    ]


def pod_problems(pods: Iterable[Object]) -> list[Problem]:
    """What keeps pods from running, as the kubelet, the scheduler and the node
    controller report it."""
    pods = list(pods)
    problems = node_problems(pods)
    for pod in pods:
        name = pod.get("metadata", {}).get("name", "?")
        status = pod.get("status") or {}
        for container in status.get("containerStatuses") or []:
            waiting = (container.get("state") or {}).get("waiting") or {}
            reason = waiting.get("reason")
            if reason in POD_PROBLEMS:
                said = _last_words(container) if reason == "CrashLoopBackOff" else ""
                detail = said or waiting.get("message") or ""
                problems.append(
                    Problem(reason, f"pod {name}: {reason}{': ' if detail else ''}{detail}")
                )
        for condition in status.get("conditions") or []:
            unschedulable = condition.get("reason") == "Unschedulable"
            if condition.get("type") == "PodScheduled" and unschedulable:
                message = condition.get("message", "unschedulable")
                problems.append(Problem("Unschedulable", f"pod {name}: {message}"))
    return problems


def deployment_problems(deployments: Iterable[Object]) -> list[Problem]:
    problems = []
    for deployment in deployments:
        name = deployment.get("metadata", {}).get("name", "?")
        for condition in (deployment.get("status") or {}).get("conditions") or []:
            stalled = (
                condition.get("type") == "Progressing"
                and condition.get("reason") == "ProgressDeadlineExceeded"
            )
            failed = condition.get("type") == "ReplicaFailure" and condition.get("status") == "True"
            if stalled or failed:
                problems.append(
                    Problem(
                        condition["reason"] if stalled else "ReplicaFailure",
                        f"Deployment {name}: {condition.get('message', '')}",
                    )
                )
    return problems


def _condition(kind: str, ok: bool, reason: str, message: str, generation: int) -> dict[str, Any]:
    return {
        "type": kind,
        "status": "True" if ok else "False",
        "reason": reason,
        "message": message,
        "observedGeneration": generation,
    }


def _stamp(conditions: list[dict[str, Any]], previous: Iterable[Object], now: str) -> None:
    """Keep ``lastTransitionTime`` where a condition's status did not change."""
    before = {c.get("type"): c for c in previous}
    for condition in conditions:
        old = before.get(condition["type"])
        unchanged = old is not None and old.get("status") == condition["status"]
        condition["lastTransitionTime"] = (
            old.get("lastTransitionTime", now) if unchanged and old is not None else now
        )


def _counts(deployments: Iterable[Object]) -> dict[str, int]:
    counts = {"replicas": 0, "readyReplicas": 0, "pods": 0, "readyPods": 0}
    for deployment in deployments:
        status, per_pod = deployment.get("status") or {}, workers_per_pod(deployment)
        counts["pods"] += status.get("replicas", 0)
        counts["readyPods"] += status.get("readyReplicas", 0)
        counts["replicas"] += status.get("replicas", 0) * per_pod
        counts["readyReplicas"] += status.get("readyReplicas", 0) * per_pod
    return counts


def compute(
    owner: render.Owner,
    spec: CoreClusterSpec,
    generation: int,
    observed: Observed,
    *,
    previous: Iterable[Object],
    now: str,
    errors: Sequence[Problem] = (),
    deployment: Object | None = None,
) -> dict[str, Any]:
    """The full status to write: counts, selector and the three conditions.

    ``deployment`` is the rendered Deployment of ``spec`` when the caller has
    it already: a reconcile renders it once for the plan and the status.

    ``errors`` is what the operator itself could not do (an apply the API
    server refused, a child's name held by an object it does not control);
    they make the CoreCluster Degraded whatever the pods say.
    """
    desired = deployment if deployment is not None else render.deployment(owner, spec)
    current = observed.deployments.get(spec.mode)
    others = sorted(mode for mode in observed.deployments if mode != spec.mode)
    counts = _counts(observed.deployments.values())
    problems = list(errors) + deployment_problems(observed.deployments.values())
    problems += pod_problems(observed.pods)
    lost = [p for p in problems if p.reason == "NodeNotReady"]
    # An error of the operator's own (a child it may not write) means the
    # spec is not carried out, however well the pods run. A pod whose node
    # was lost is out of service the moment the node controller marks it,
    # while the Deployment may count it ready for a moment longer: Ready
    # follows the pods, so that it never says True beside a Degraded that
    # names workers out of service.
    finished = (
        rolled_out(current, desired)
        and not others
        and observed.service is not None
        and not errors
        and not lost
    )
    # Ready means serving: the Service's endpoints list every ready pod.
    waiting = unlisted(observed) if finished else []
    done = finished and not waiting
    ready_text = (
        f"{counts['readyReplicas']}/{spec.workers} workers ready in "
        f"{counts['readyPods']}/{spec.pods} pods ({spec.mode} mode)"
    )

    if done:
        ready = _condition(
            "Ready",
            True,
            "ScaledToZero" if spec.pods == 0 else "AllWorkersReady",
            ready_text,
            generation,
        )
        progressing = _condition(
            "Progressing", False, "Complete", "the cluster matches its spec", generation
        )
    else:
        if errors:
            reason, message = errors[0].reason, errors[0].message
        elif waiting:
            reason = "WaitingForEndpoints"
            message = (
                f"{ready_text}; the Service's EndpointSlices do not list {', '.join(waiting)} yet"
            )
        elif current is None:
            reason, message = "Creating", f"creating the {spec.mode} Deployment"
        elif others:
            reason = "SwitchingMode"
            message = f"switching {', '.join(others)} -> {spec.mode}; {ready_text}"
        elif (current.get("spec") or {}).get("replicas") != spec.pods or (
            (current.get("status") or {}).get("replicas", 0) != spec.pods
        ):
            reason, message = "Scaling", ready_text
        elif lost:
            # Not a rollout: the Deployment is as asked, its pods lost their nodes.
            reason, message = lost[0].reason, f"{ready_text}; {lost[0].message}"
        else:
            reason, message = "RollingOut", ready_text
        stalled = any(p.reason == "ProgressDeadlineExceeded" for p in problems) or bool(errors)
        ready = _condition("Ready", False, reason, message, generation)
        progressing = _condition(
            "Progressing", not stalled, "Stalled" if stalled else reason, message, generation
        )

    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        degraded = _condition(
            "Degraded", True, problems[0].reason, problems[0].message + more, generation
        )
    else:
        degraded = _condition("Degraded", False, "AsExpected", "no problem seen", generation)

    conditions = [ready, progressing, degraded]
    _stamp(conditions, previous, now)
    return {
        "observedGeneration": generation,
        **counts,
        "selector": render.selector(owner),
        "conditions": conditions,
    }


def invalid(
    generation: int,
    message: str,
    previous: Iterable[Object],
    now: str,
    reason: str = "InvalidSpec",
) -> dict[str, Any]:
    """The status of a CoreCluster whose spec can never work here: Degraded, and why."""
    conditions = [
        _condition("Ready", False, reason, message, generation),
        _condition("Progressing", False, reason, message, generation),
        _condition("Degraded", True, reason, message, generation),
    ]
    _stamp(conditions, previous, now)
    return {"observedGeneration": generation, "conditions": conditions}


def differs(current: Object | None, new: Object) -> bool:
    """Whether writing ``new`` would change anything a reader cares about."""
    return not contains(current or {}, new) or len((current or {}).get("conditions", [])) != len(
        new.get("conditions", [])
    )
