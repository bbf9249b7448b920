"""A CoreCluster never takes an object it does not control (issue 16, item 1).

An admin's Service, PodDisruptionBudget or Deployment that happens to have a
child's name is left exactly as it was: no selector, spec, label or
ownerReference of the CoreCluster's, so deleting the CoreCluster does not
garbage-collect it. The CoreCluster says so in its Degraded condition and a
Warning event, as Kubernetes' sample-controller does (ErrResourceExists).
"""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from tests.e2e.operator_helpers import (
    OperatorProcess,
    apply,
    condition,
    corecluster,
    get,
    wait_event,
)
from tests.kube import kubectl, wait_for

ADMIN_LABELS = {"app": "orders"}
FOREIGN: dict[str, dict[str, Any]] = {
    "service": {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "orders", "labels": ADMIN_LABELS},
        "spec": {
            "selector": ADMIN_LABELS,
            "ports": [{"name": "web", "port": 80, "targetPort": 8080}],
        },
    },
    "pdb": {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": "orders", "labels": ADMIN_LABELS},
        "spec": {"maxUnavailable": 0, "selector": {"matchLabels": ADMIN_LABELS}},
    },
    "deployment": {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "orders-pods", "labels": ADMIN_LABELS},
        "spec": {
            "replicas": 0,
            "selector": {"matchLabels": ADMIN_LABELS},
            "template": {
                "metadata": {"labels": ADMIN_LABELS},
                "spec": {"containers": [{"name": "orders", "image": "orders:admin"}]},
            },
        },
    },
}
"""An admin's objects with the names a CoreCluster `orders` gives its children."""
OURS = {"service": ("pdb", "orders"), "pdb": ("service", "orders"), "deployment": ("pdb", "orders")}
"""For each case, a child the CoreCluster does create, to see garbage collection happen."""


def _significant(obj: dict[str, Any]) -> dict[str, Any]:
    """What the admin cares about: spec, labels, annotations, owners."""
    meta = obj["metadata"]
    return {
        "uid": meta["uid"],
        "labels": meta.get("labels"),
        "annotations": meta.get("annotations"),
        "ownerReferences": meta.get("ownerReferences"),
        "spec": obj["spec"],
    }


@pytest.mark.e2e
@pytest.mark.parametrize("kind", ["service", "pdb", "deployment"])
def test_an_object_with_a_childs_name_is_left_untouched(
    operator: OperatorProcess, namespace: str, kind: str
) -> None:
    foreign = FOREIGN[kind]
    name = foreign["metadata"]["name"]
    kubectl("create", "-n", namespace, "-f", "-", stdin=yaml.safe_dump(foreign))
    before = _significant(get(namespace, kind, name))

    apply(namespace, corecluster("orders", replicas=0))

    def degraded() -> dict[str, Any] | None:
        found = condition(get(namespace, "corecluster", "orders"), "Degraded")
        return found if found.get("reason") == "ErrResourceExists" else None

    found = wait_for("the conflict to be reported", degraded, timeout=60)
    assert found["status"] == "True"
    assert f"{foreign['kind']} {name} already exists and is not controlled by" in found["message"]
    assert condition(get(namespace, "corecluster", "orders"), "Ready")["status"] == "False"
    event = wait_event(namespace, "orders", "ErrResourceExists", f"{foreign['kind']} {name}")
    assert event["type"] == "Warning"
    other_kind, other_name = OURS[kind]
    wait_for(
        f"the CoreCluster's own {other_kind}",
        lambda: get(namespace, other_kind, other_name),
        timeout=60,
    )
    assert _significant(get(namespace, kind, name)) == before

    kubectl("delete", "-n", namespace, "corecluster/orders", "--wait=true")

    def collected() -> bool:
        return (
            other_name
            not in kubectl("get", "-n", namespace, other_kind, "-o", "name", "--ignore-not-found")
            .replace(f"{other_kind}/", "")
            .split()
        )

    wait_for(f"the CoreCluster's {other_kind} to be garbage-collected", collected, timeout=60)
    assert _significant(get(namespace, kind, name)) == before
    log = operator.log()
    assert f"created {foreign['kind']} {name}" not in log
    said = [line for line in log.splitlines() if "already exists and is not controlled" in line]
    assert len(said) == 1, said  # one log line per new problem, however often it retries
    assert "Traceback" not in log
