"""What the operator decides to do, and how it words it, for a given observed state."""

import copy
from collections.abc import Mapping
from typing import Any

from corescale.operator.api import spec
from corescale.operator.decide import plan, render
from corescale.operator.decide.status import Observed, contains

OWNER = render.Owner("hello", "default", "uid-1")


def _as_stored(desired: dict[str, Any], ready: int | None = None) -> dict[str, Any]:
    """What the API server would hold for ``desired``: plus defaults, generation and status."""
    stored = copy.deepcopy(desired)
    stored["metadata"] |= {"generation": 2, "resourceVersion": "100", "uid": "child"}
    stored["metadata"]["annotations"] = stored["metadata"].get("annotations", {}) | {
        "deployment.kubernetes.io/revision": "1"
    }
    if desired["kind"] == "Deployment":
        replicas = desired["spec"]["replicas"]
        ready = replicas if ready is None else ready
        stored["spec"]["template"]["spec"]["dnsPolicy"] = "ClusterFirst"
        stored["status"] = {
            "observedGeneration": 2,
            "replicas": replicas,
            "updatedReplicas": replicas,
            "readyReplicas": ready,
            "availableReplicas": ready,
        }
    return stored


def _steady(parsed: spec.CoreClusterSpec) -> Observed:
    return Observed(
        deployments={parsed.mode: _as_stored(render.deployment(OWNER, parsed))},
        service=_as_stored(render.service(OWNER, parsed)),
        disruption_budget=_as_stored(render.disruption_budget(OWNER)),
    )


def test_first_reconcile_creates_everything() -> None:
    parsed = spec.parse({"replicas": 2}, "i")
    actions = plan.actions(OWNER, parsed, Observed(), spec_changed=True, first=True)
    assert [(a.verb, a.body["kind"], a.reason) for a in actions] == [
        ("create", "Deployment", "Created"),
        ("create", "Service", "Created"),
        ("create", "PodDisruptionBudget", "Created"),
    ]
    assert actions[0].message == "created Deployment hello-pods: 2 workers in 2 pods (pods mode)"


def test_a_quiet_cluster_needs_no_call() -> None:
    parsed = spec.parse({"replicas": 2}, "i")
    assert plan.actions(OWNER, parsed, _steady(parsed), spec_changed=False, first=False) == []


def test_a_new_generation_reapplies_silently_when_nothing_differs() -> None:
    parsed = spec.parse({"replicas": 2}, "i")
    actions = plan.actions(OWNER, parsed, _steady(parsed), spec_changed=True, first=False)
    assert [a.verb for a in actions] == ["apply"] * 3
    assert all(a.message == "" for a in actions)


def _stamped_steady(parsed: spec.CoreClusterSpec) -> Observed:
    """The children as the operator's own last apply left them (with the digest)."""
    return Observed(
        deployments={parsed.mode: _as_stored(plan.stamped(render.deployment(OWNER, parsed)))},
        service=_as_stored(plan.stamped(render.service(OWNER, parsed))),
        disruption_budget=_as_stored(plan.stamped(render.disruption_budget(OWNER))),
    )


def test_a_new_generation_writes_only_the_children_it_changes() -> None:
    before = spec.parse({"replicas": 2}, "i")
    after = spec.parse({"replicas": 2, "podAnnotations": {"team": "shop"}}, "i")
    actions = plan.actions(OWNER, after, _stamped_steady(before), spec_changed=True, first=False)
    assert [a.body["kind"] for a in actions] == ["Deployment"]
    assert (
        actions[0].body["metadata"]["annotations"]["corescale.io/applied"]
        == (
            plan.stamped(render.deployment(OWNER, after))["metadata"]["annotations"][
                "corescale.io/applied"
            ]
        )
    )
    same = plan.actions(OWNER, before, _stamped_steady(before), spec_changed=True, first=False)
    assert same == []


def test_a_field_the_spec_dropped_is_applied_away() -> None:
    before = spec.parse({"replicas": 2, "podAnnotations": {"team": "shop"}}, "i")
    after = spec.parse({"replicas": 2}, "i")
    observed = _stamped_steady(before)
    # What the API server holds still contains everything ``after`` renders to.
    assert contains(observed.deployments["pods"], render.deployment(OWNER, after))
    actions = plan.actions(OWNER, after, observed, spec_changed=True, first=False)
    assert [(a.verb, a.body["kind"]) for a in actions] == [("apply", "Deployment")]
    assert "team" not in actions[0].body["spec"]["template"]["metadata"]["annotations"]


def test_the_digest_changes_with_the_body_only() -> None:
    parsed = spec.parse({"replicas": 2}, "i")
    rendered = render.service(OWNER, parsed)
    digest = plan.stamped(rendered)["metadata"]["annotations"]["corescale.io/applied"]
    assert plan.stamped(render.service(OWNER, parsed)) == plan.stamped(rendered)
    assert "corescale.io/applied" not in rendered["metadata"].get("annotations", {})
    other = render.service(OWNER, spec.parse({"replicas": 2, "service": {"port": 81}}, "i"))
    assert plan.stamped(other)["metadata"]["annotations"]["corescale.io/applied"] != digest


def test_scaling_is_worded_with_who_did_it() -> None:
    before = spec.parse({"replicas": 2}, "i")
    after = spec.parse({"replicas": 4}, "i")
    actions = plan.actions(
        OWNER, after, _steady(before), spec_changed=True, first=False, scaled_by="kubectl scale"
    )
    assert actions[0].reason == "Scaled"
    assert actions[0].message == "scaled 2 -> 4 workers (kubectl scale)"
    assert actions[0].body["spec"]["replicas"] == 4


def test_image_change_is_a_rollout() -> None:
    before = spec.parse({"image": "corescale:1"}, "i")
    after = spec.parse({"image": "corescale:2"}, "i")
    actions = plan.actions(OWNER, after, _steady(before), spec_changed=True, first=False)
    assert actions[0].reason == "Updated"
    assert "image corescale:1 -> corescale:2" in actions[0].message


def test_drift_is_put_back_and_said_so() -> None:
    parsed = spec.parse({"replicas": 2}, "i")
    observed = _steady(parsed)
    observed.deployments["pods"]["spec"]["replicas"] = 5
    actions = plan.actions(OWNER, parsed, observed, spec_changed=False, first=False)
    assert len(actions) == 1
    assert actions[0].reason == "Repaired"
    assert "replicas 5 -> 2" in actions[0].message
    assert actions[0].body["spec"]["replicas"] == 2


def test_a_deleted_service_is_recreated() -> None:
    parsed = spec.parse({}, "i")
    observed = Observed(
        deployments=_steady(parsed).deployments, disruption_budget=_steady(parsed).disruption_budget
    )
    actions = plan.actions(OWNER, parsed, observed, spec_changed=False, first=False)
    assert [(a.body["kind"], a.reason) for a in actions] == [("Service", "Repaired")]
    assert actions[0].message == "re-created Service hello: it had been deleted"
    assert actions[0].recreates  # the reconciler checks that the owner still exists
    assert actions[0].verb == "create"  # refused if anything else holds the name meanwhile


def _owned_by(obj: Mapping[str, Any], uid: str | None) -> dict[str, Any]:
    """``obj`` with its controller reference pointing at ``uid`` (None: no ownerReferences)."""
    changed = copy.deepcopy(dict(obj))
    if uid is None:
        changed["metadata"].pop("ownerReferences")
    else:
        changed["metadata"]["ownerReferences"][0]["uid"] = uid
    return changed


def test_children_controlled_by_another_uid_are_not_ours_and_never_applied() -> None:
    """Same labels, same name, but created by someone else (or for a CoreCluster of
    the same name that was deleted and re-created): not this CoreCluster's."""
    parsed = spec.parse({"replicas": 2}, "i")
    steady = _steady(parsed)
    observed = Observed(
        deployments={"pods": _owned_by(steady.deployments["pods"], "someone-else")},
        service=_owned_by(steady.service or {}, None),
        disruption_budget=steady.disruption_budget,
    )
    ours, problems = plan.split_ownership(OWNER, observed)
    assert ours.deployments == {} and ours.service is None
    assert ours.disruption_budget is steady.disruption_budget
    assert [p.reason for p in problems] == ["ErrResourceExists"] * 2
    assert problems[0].message.startswith(
        "Deployment hello-pods already exists and is not controlled by CoreCluster hello"
    )
    assert "Service hello already exists" in problems[1].message
    todo = plan.actions(OWNER, parsed, ours, spec_changed=True, first=False)
    assert [(a.verb, a.body["kind"]) for a in todo] == [
        ("create", "Deployment"),
        ("create", "Service"),
        ("apply", "PodDisruptionBudget"),
    ]


def test_a_controller_reference_needs_controller_true() -> None:
    service = _as_stored(render.service(OWNER, spec.parse({}, "i")))
    assert plan.controlled_by(service, OWNER.uid)
    service["metadata"]["ownerReferences"][0]["controller"] = False
    assert not plan.controlled_by(service, OWNER.uid)


def test_mode_switch_keeps_the_old_pods_until_the_new_ones_are_ready() -> None:
    pods = spec.parse({"replicas": 4}, "i")
    prefork = spec.parse({"mode": "prefork", "replicas": 4, "workersPerPod": 2}, "i")
    old = _steady(pods)

    starting = plan.actions(OWNER, prefork, old, spec_changed=True, first=False)
    assert starting[0].reason == "SwitchingMode"
    assert starting[0].body["metadata"]["name"] == "hello-prefork"
    assert "delete" not in [a.verb for a in starting]

    new_not_ready = _as_stored(render.deployment(OWNER, prefork), ready=1)
    half = Observed(
        deployments={"pods": old.deployments["pods"], "prefork": new_not_ready},
        service=old.service,
        disruption_budget=old.disruption_budget,
    )
    assert "delete" not in [
        a.verb for a in plan.actions(OWNER, prefork, half, spec_changed=False, first=False)
    ]

    new_ready = _as_stored(render.deployment(OWNER, prefork))
    done = Observed(
        deployments={"pods": old.deployments["pods"], "prefork": new_ready},
        service=old.service,
        disruption_budget=old.disruption_budget,
    )
    actions = plan.actions(OWNER, prefork, done, spec_changed=False, first=False)
    assert [(a.verb, a.body["metadata"]["name"]) for a in actions] == [("delete", "hello-pods")]
    assert actions[0].reason == "SwitchedMode"


def test_who_changed_replicas_from_managed_fields() -> None:
    replicas: dict[str, Any] = {"f:spec": {"f:replicas": {}}}
    assert plan.replicas_changed_by([]) == "kubectl scale or an autoscaler"
    assert (
        plan.replicas_changed_by(
            [
                {
                    "manager": "kubectl-client-side-apply",
                    "time": "2026-01-01T00:00:00Z",
                    "fieldsV1": replicas,
                },
                {
                    "manager": "kubectl",
                    "subresource": "scale",
                    "time": "2026-01-01T00:00:05Z",
                    "fieldsV1": replicas,
                },
            ]
        )
        == "kubectl scale"
    )
    assert (
        plan.replicas_changed_by(
            [
                {
                    "manager": "kube-controller-manager",
                    "subresource": "scale",
                    "time": "t",
                    "fieldsV1": replicas,
                },
            ]
        )
        == "autoscaler"
    )
    assert (
        plan.replicas_changed_by(
            [
                {"manager": "kubectl-client-side-apply", "time": "t", "fieldsV1": replicas},
                {"manager": "other", "time": "t", "fieldsV1": {"f:spec": {"f:image": {}}}},
            ]
        )
        == "kubectl apply"
    )


def test_a_deployment_rendered_by_the_caller_is_the_one_applied() -> None:
    """A reconcile renders the Deployment once and hands it to the plan."""
    parsed = spec.parse({"replicas": 3}, "i")
    rendered = render.deployment(OWNER, parsed)
    actions = plan.actions(
        OWNER, parsed, Observed(), spec_changed=True, first=True, deployment=rendered
    )
    applied = next(a.body for a in actions if a.body["kind"] == "Deployment")
    assert applied["spec"] is rendered["spec"]
    assert applied == plan.stamped(rendered)
