"""Placement on many nodes: KWOK simulated nodes (hack/cluster.sh nodes)
beside the real one, three zones, one CPU each.

Each test makes a node pool of its own, named after its namespace, and
removes it afterwards; its CoreClusters select that pool and tolerate the
simulated nodes' taint, so nothing else lands there and no other test's
nodes count in its spread. Pods on simulated nodes are Ready without
running: these tests are about the scheduler, the Deployment and the
operator's status, not about traffic.
"""

from __future__ import annotations

import collections
import json
import subprocess
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.e2e.conftest import CLUSTER_SH
from tests.e2e.operator_helpers import (
    OperatorProcess,
    apply,
    condition,
    corecluster,
    get,
    items,
    wait_ready,
)
from tests.kube import kubectl, wait_for

pytestmark = pytest.mark.e2e

POOL_LABEL = "corescale.dev/pool"
ZONE_LABEL = "topology.kubernetes.io/zone"
SIMULATED = {"key": "corescale.dev/simulated", "operator": "Exists", "effect": "NoSchedule"}


def _nodes(count: int, pool: str) -> None:
    subprocess.run([str(CLUSTER_SH), "nodes", str(count), pool], check=True, timeout=600)


@pytest.fixture
def pool(kubeconfig: str, namespace: str) -> Iterator[Callable[[int], str]]:
    """A function making ``pool-0..N-1`` simulated nodes over zone-a, b, c in turn."""
    made: list[str] = []

    def make(count: int) -> str:
        _nodes(count, namespace)
        made.append(namespace)

        # Workers applied before every node is schedulable would double up on
        # the ones that are: wait until all are Ready and lost the taint the
        # node controller puts on a node that is not.
        def schedulable() -> bool:
            nodes = json.loads(
                kubectl("get", "nodes", "-l", f"{POOL_LABEL}={namespace}", "-o", "json")
            )["items"]
            return len(nodes) == count and all(
                any(
                    c["type"] == "Ready" and c["status"] == "True"
                    for c in n["status"]["conditions"]
                )
                and not any(
                    t["key"].startswith("node.kubernetes.io/") for t in n["spec"].get("taints", [])
                )
                for n in nodes
            )

        wait_for(f"{count} schedulable simulated nodes", schedulable, timeout=120)
        return namespace

    yield make
    if made:
        _nodes(0, namespace)


def _placed(namespace: str, name: str, pool: str) -> list[tuple[str, str]]:
    """(node, zone) of each of the CoreCluster's pods that is not being deleted."""
    zones = {
        node["metadata"]["name"]: node["metadata"]["labels"][ZONE_LABEL]
        for node in json.loads(kubectl("get", "nodes", "-l", f"{POOL_LABEL}={pool}", "-o", "json"))[
            "items"
        ]
    }
    return [
        (pod["spec"]["nodeName"], zones.get(pod["spec"]["nodeName"], "?"))
        for pod in items(namespace, "pods", f"corescale.io/cluster={name}")
        if pod["spec"].get("nodeName") and not pod["metadata"].get("deletionTimestamp")
    ]


def _simulated(name: str, pool: str, replicas: int, **spec: Any) -> dict[str, Any]:
    small = {"cpu": "100m", "cpuRequest": "10m", "memory": "16Mi"}
    return corecluster(
        name,
        replicas=replicas,
        nodeSelector={POOL_LABEL: pool},
        tolerations=[SIMULATED],
        **(small | spec),
    )


def test_the_default_spread_puts_one_worker_per_node_and_a_third_per_zone(
    operator: OperatorProcess, namespace: str, pool: Callable[[int], str]
) -> None:
    nodes = pool(36)
    apply(namespace, _simulated("spread", nodes, 30))
    wait_ready(namespace, "spread", 30)

    placed = _placed(namespace, "spread", nodes)
    assert len(placed) == 30
    assert collections.Counter(zone for _, zone in placed) == {
        "zone-a": 10,
        "zone-b": 10,
        "zone-c": 10,
    }
    assert max(collections.Counter(node for node, _ in placed).values()) == 1


def test_a_strict_spread_that_cannot_be_met_is_reported(
    operator: OperatorProcess, namespace: str, pool: Callable[[int], str]
) -> None:
    nodes = pool(7)
    # Zone a keeps three nodes, zones b and c one each; one worker fits a node.
    kubectl("delete", "node", f"{nodes}-4", f"{nodes}-5")
    strict = {"whenUnsatisfiable": "DoNotSchedule"}
    apply(
        namespace,
        _simulated("strict", nodes, 5, cpuRequest="600m", cpu="1", topologySpread=strict),
    )

    def degraded() -> dict[str, Any] | None:
        found = condition(get(namespace, "corecluster", "strict"), "Degraded")
        return found if found.get("reason") == "Unschedulable" else None

    reported = wait_for("Degraded Unschedulable", degraded, timeout=180)
    assert reported["status"] == "True"
    assert "topology spread constraints" in reported["message"], reported["message"]
    cc = get(namespace, "corecluster", "strict")
    assert condition(cc, "Ready")["status"] == "False"
    assert collections.Counter(zone for _, zone in _placed(namespace, "strict", nodes)) == {
        "zone-a": 2,
        "zone-b": 1,
        "zone-c": 1,
    }
