"""Pure decisions: which objects to create, apply or delete, and how to say why.

Reconciling is always "apply what the spec renders to", which server-side
apply makes idempotent. This module adds three things on top: it never
touches an object this CoreCluster does not control (:func:`split_ownership`;
a missing child is *created*, which fails if anything else holds the name,
rather than applied, which would merge into it); it skips applies that would
change nothing (so a quiet cluster costs no API writes, and a spec change
writes only the children it changes: :func:`stamped`); and it names every
real action in words a person reads in the log and in the CoreCluster's
events, telling a user's change from drift it puts back.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from corescale.operator.api import names
from corescale.operator.api.spec import MODES, CoreClusterSpec
from corescale.operator.decide import render
from corescale.operator.decide.status import Observed, Problem, contains, rolled_out

Object = Mapping[str, Any]


@dataclass(frozen=True)
class Action:
    """One API call to make, and the event that reports it (empty: say nothing)."""

    verb: str
    """``create`` (the child is missing), ``apply`` (it exists and is ours) or ``delete``."""
    body: Object
    reason: str = ""
    message: str = ""
    recreates: bool = False
    """It puts back a child that vanished, which also happens when the owner vanished."""


NOT_OURS = "ErrResourceExists"
"""The reason of a conflict over a name, as Kubernetes' sample-controller words it."""


def controlled_by(obj: Object, uid: str) -> bool:
    """Whether ``obj`` has a controller ownerReference to the object with ``uid``.

    Labels prove nothing (anyone may copy them); the controller reference
    with the CoreCluster's uid is what the operator itself wrote.
    """
    refs = obj.get("metadata", {}).get("ownerReferences") or []
    return any(ref.get("controller") is True and ref.get("uid") == uid for ref in refs)


def not_ours(owner: render.Owner, kind: str, name: str) -> Problem:
    """The problem to report for an object with a child's name that this CoreCluster
    does not control."""
    return Problem(
        NOT_OURS,
        f"{kind} {name} already exists and is not controlled by CoreCluster {owner.name}; "
        "it is left untouched (rename the CoreCluster, or delete or rename the object)",
    )


def split_ownership(owner: render.Owner, observed: Observed) -> tuple[Observed, list[Problem]]:
    """The children this CoreCluster controls, and a problem for each labelled one it does not.

    Objects without the labels never reach the watches; creating the child
    then fails on the name, and the reconcile reports the same problem.
    """
    problems = []
    deployments = {}
    for mode, found in observed.deployments.items():
        if controlled_by(found, owner.uid):
            deployments[mode] = found
        else:
            problems.append(not_ours(owner, "Deployment", found["metadata"]["name"]))
    kept: dict[str, Object | None] = {}
    for kind, field in (("Service", "service"), ("PodDisruptionBudget", "disruption_budget")):
        found = getattr(observed, field)
        ours = found is None or controlled_by(found, owner.uid)
        kept[field] = found if ours else None
        if not ours:
            problems.append(not_ours(owner, kind, found["metadata"]["name"]))
    return (
        replace(
            observed,
            deployments=deployments,
            service=kept["service"],
            disruption_budget=kept["disruption_budget"],
        ),
        problems,
    )


def stamped(desired: Object) -> dict[str, Any]:
    """``desired`` with a digest of itself in the APPLIED_ANNOTATION.

    Comparing a child with what the spec renders to cannot tell whether an
    apply would remove something: a field the spec no longer sets is still
    on the child, and only an apply takes it away. So a spec change used to
    apply every child, three writes where one was needed (make bench-scale:
    6.6 writes per change). The child now carries a digest of the exact body
    last applied to it: if it still holds that body and the digest matches
    the new body's, the apply would set nothing and remove nothing.
    """
    text = json.dumps(desired, sort_keys=True, separators=(",", ":"))
    digest = hashlib.sha256(text.encode()).hexdigest()[:20]
    metadata = dict(desired["metadata"])
    metadata["annotations"] = dict(metadata.get("annotations") or {}) | {
        names.APPLIED_ANNOTATION: digest
    }
    return dict(desired) | {"metadata": metadata}


def _applied(obj: Object) -> str | None:
    return (obj.get("metadata", {}).get("annotations") or {}).get(names.APPLIED_ANNOTATION)


def _reapply(current: Object, desired: Object, spec_changed: bool) -> Action | None:
    """The action for a child that already holds ``desired``: none, unless the spec
    changed and the child does not carry this body's digest (a field the spec
    dropped may still be on it, or it predates the digest), then a silent apply.

    Only this case, and an apply, hash the body: a reconcile that finds
    nothing to do (most of them, one per child event) hashes nothing.
    """
    if not spec_changed:
        return None
    body = stamped(desired)
    return None if _applied(current) == _applied(body) else Action("apply", body)


def _workers(deployment: Object) -> int | None:
    annotations = deployment.get("metadata", {}).get("annotations") or {}
    try:
        return int(annotations[names.WORKERS_ANNOTATION])
    except (KeyError, ValueError):
        return None


def _container(deployment: Object) -> Object:
    containers = deployment.get("spec", {}).get("template", {}).get("spec", {}).get("containers")
    return containers[0] if containers else {}


def _template_change(observed: Object, desired: Object) -> str:
    """A short description of what differs in the pod template."""
    old, new = _container(observed), _container(desired)
    parts = []
    if old.get("image") != new.get("image"):
        parts.append(f"image {old.get('image')} -> {new.get('image')}")
    if not contains(old.get("args"), new.get("args")):
        parts.append(f"command {' '.join(new.get('args', []))}")
    if not contains(old.get("resources"), new.get("resources")):
        limits = new.get("resources", {}).get("limits", {})
        parts.append(f"resources cpu {limits.get('cpu')} memory {limits.get('memory')} per pod")
    if not contains(old.get("env"), new.get("env")):
        parts.append("environment")
    return ", ".join(parts) or "pod template"


SCALE_SUBRESOURCE = "kubectl scale or an autoscaler"


def replica_owners(managed_fields: Iterable[Object]) -> list[dict[str, Any]]:
    """The entries of a CoreCluster's managedFields that :func:`replicas_changed_by`
    reads, cut down to what it reads of them.

    The CoreCluster index keeps these instead of the whole managedFields (a
    few KB per CoreCluster, tens of MB at a thousand of them).
    """
    return [
        {k: entry[k] for k in ("manager", "time", "subresource") if k in entry}
        | {"fieldsV1": {"f:spec": {"f:replicas": {}}}}
        for entry in managed_fields
        if "f:replicas" in (((entry.get("fieldsV1") or {}).get("f:spec")) or {})
    ]


def replicas_changed_by(managed_fields: Iterable[Object]) -> str:
    """Who last set ``spec.replicas``, from the CoreCluster's managedFields.

    ``kubectl scale`` and autoscalers write through the scale subresource.
    For custom resources the API server (1.37) records no manager for such a
    write and drops the field from its previous owner, so a ``spec.replicas``
    that nobody owns was last set through the scale subresource; an entry
    marked ``subresource: scale`` is honoured too, should a version record it.
    """
    latest: Object | None = None
    for entry in managed_fields:
        fields = entry.get("fieldsV1") or {}
        if "f:replicas" in (fields.get("f:spec") or {}) and (
            latest is None or str(entry.get("time", "")) >= str(latest.get("time", ""))
        ):
            latest = entry
    if latest is None:
        return SCALE_SUBRESOURCE
    manager = str(latest.get("manager", "unknown"))
    if latest.get("subresource") == "scale":
        if manager.startswith("kubectl"):
            return "kubectl scale"
        if manager in ("kube-controller-manager", "horizontal-pod-autoscaler"):
            return "autoscaler"
        return f"{manager} via the scale subresource"
    if manager.startswith("kubectl"):
        return manager.replace("kubectl-client-side-apply", "kubectl apply").replace("-", " ")
    return manager


def _deployment_action(
    spec: CoreClusterSpec,
    *,
    desired: Object,
    current: Object | None,
    others: list[str],
    spec_changed: bool,
    first: bool,
    scaled_by: str | None,
) -> Action | None:
    name = desired["metadata"]["name"]
    shape = f"{spec.workers} workers in {spec.pods} pods ({spec.mode} mode)"
    if current is not None and contains(current, desired):
        return _reapply(current, desired, spec_changed)
    body = stamped(desired)
    if current is None:
        if others:
            return Action(
                "create",
                body,
                "SwitchingMode",
                f"switching {', '.join(others)} -> {spec.mode}: starting {shape}",
            )
        if first:
            return Action("create", body, "Created", f"created Deployment {name}: {shape}")
        return Action(
            "create",
            body,
            "Repaired",
            f"re-created Deployment {name} ({shape}): it had been deleted",
            recreates=True,
        )
    said = []
    old_workers = _workers(current)
    if old_workers is not None and old_workers != spec.workers:
        by = f" ({scaled_by})" if scaled_by else ""
        said.append(f"scaled {old_workers} -> {spec.workers} workers{by}")
    template_differs = not contains(
        current.get("spec", {}).get("template"), desired["spec"]["template"]
    )
    if template_differs and spec_changed:
        said.append(f"rolling out a new {_template_change(current, desired)}")
    if said:
        reason = "Scaled" if said[0].startswith("scaled") else "Updated"
        return Action("apply", body, reason, "; ".join(said))
    if spec_changed:
        return Action("apply", body, "Updated", f"updated Deployment {name}")
    old_pods = current.get("spec", {}).get("replicas")
    detail = (
        f"replicas {old_pods} -> {spec.pods}" if old_pods != spec.pods else "its spec or labels"
    )
    return Action(
        "apply",
        body,
        "Repaired",
        f"put back Deployment {name}: {detail} had been changed outside the operator",
    )


def _simple_action(
    kind: str, desired: Object, current: Object | None, spec_changed: bool, first: bool
) -> Action | None:
    name = desired["metadata"]["name"]
    if current is not None and contains(current, desired):
        return _reapply(current, desired, spec_changed)
    body = stamped(desired)
    if current is None:
        if first:
            return Action("create", body, "Created", f"created {kind} {name}")
        return Action(
            "create",
            body,
            "Repaired",
            f"re-created {kind} {name}: it had been deleted",
            recreates=True,
        )
    if spec_changed:
        return Action("apply", body, "Updated", f"updated {kind} {name}")
    return Action(
        "apply",
        body,
        "Repaired",
        f"put back {kind} {name}: it had been changed outside the operator",
    )


def actions(
    owner: render.Owner,
    spec: CoreClusterSpec,
    observed: Observed,
    *,
    spec_changed: bool,
    first: bool,
    scaled_by: str | None = None,
    deployment: render.Object | None = None,
) -> list[Action]:
    """Everything to do, creations and applies first and deletions last.

    ``observed`` must hold only children this CoreCluster controls
    (:func:`split_ownership`).

    ``spec_changed`` (the generation is newer than the status says) applies
    every child that does not hold exactly the body it renders to now
    (:func:`stamped`): a field removed from the spec leaves the observed
    object a superset of the desired one, and only an apply removes it.
    ``first`` (no status yet) words a missing child as created, not repaired.
    ``deployment`` is the rendered Deployment of ``spec``, when the caller has
    rendered it already.
    """
    desired = deployment if deployment is not None else render.deployment(owner, spec)
    current = observed.deployments.get(spec.mode)
    others = sorted(mode for mode in observed.deployments if mode != spec.mode and mode in MODES)
    todo = [
        _deployment_action(
            spec,
            desired=desired,
            current=current,
            others=others,
            spec_changed=spec_changed,
            first=first,
            scaled_by=scaled_by,
        ),
        _simple_action(
            "Service", render.service(owner, spec), observed.service, spec_changed, first
        ),
        _simple_action(
            "PodDisruptionBudget",
            render.disruption_budget(owner),
            observed.disruption_budget,
            spec_changed,
            first,
        ),
    ]
    found = [action for action in todo if action is not None]
    if others and rolled_out(current, desired):
        for mode in others:
            found.append(
                Action(
                    "delete",
                    observed.deployments[mode],
                    "SwitchedMode",
                    f"switched {mode} -> {spec.mode}: all {spec.workers} workers ready, "
                    f"removed Deployment {render.deployment_name(owner, mode)}",
                )
            )
    return found
