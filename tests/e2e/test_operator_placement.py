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
import datetime
import json
import subprocess
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.e2e.conftest import CLUSTER_SH
from tests.e2e.operator_helpers import (
    OperatorProcess,
    apply,
    condition,
    corecluster,
    get,
    items,
    wait_event,
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


def _cut_off(node: str) -> None:
    """The node becomes unreachable, as when its zone's network fails.

    KWOK plays only the nodes whose Lease it holds: the Lease handed to
    another holder, unexpired and no longer renewed, stops KWOK renewing it
    and acting for the node or its pods. The node controller then finds no
    renewal for --node-monitor-grace-period (50 s), marks the node Unknown
    and its pods not ready. (A node that reports NotReady itself, the
    corescale.dev/simulated-failure label, keeps its pods Ready: the
    controller marks them only when it is the one to give up on the node.)

    The hand-over renews the Lease once more, so that the node controller
    keeps this version of it: before it gives up on a node it reads the
    Lease again (Kubernetes 1.37's NodeControllerLeaseCircuitBreaker), takes
    a version other than the one it last saw renewed for its own cache
    lagging, and skips the node; without the renewal it skipped them for the
    whole 3 minutes of a test, whenever it had seen KWOK's last renewal first.
    """
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    outage = {"holderIdentity": "e2e-zone-outage", "leaseDurationSeconds": 3600, "renewTime": now}
    kubectl(
        "patch",
        "lease",
        node,
        "-n",
        "kube-node-lease",
        "--type=merge",
        "-p",
        json.dumps({"spec": outage}),
    )


def test_a_lost_zone_is_reported_and_its_workers_move_to_the_other_zones(
    operator: OperatorProcess, namespace: str, pool: Callable[[int], str], api_client: Any
) -> None:
    """Zone c becomes unreachable: the CoreCluster names the nodes that took
    its workers out of service, the budget keeps the Eviction API off the
    workers left, and once zone c is drained (cordoned, its pods evicted
    through that API) the workers run in zones a and b and the CoreCluster
    is Ready again.

    The node controller would evict the lost zone's pods by itself too, but
    only after their default 300 s toleration of the unreachable taint; the
    drain is what a person or a node autoscaler does sooner. kubectl drain
    itself would wait for ever: nothing confirms a pod's end on an
    unreachable node, and the Deployment replaces it without waiting."""
    nodes = pool(9)
    apply(namespace, _simulated("zones", nodes, 6))
    wait_ready(namespace, "zones", 6)
    placed = _placed(namespace, "zones", nodes)
    assert collections.Counter(zone for _, zone in placed) == {
        "zone-a": 2,
        "zone-b": 2,
        "zone-c": 2,
    }
    zone_c = [
        name.removeprefix("node/")
        for name in kubectl(
            "get", "nodes", "-l", f"{POOL_LABEL}={nodes},{ZONE_LABEL}=zone-c", "-o", "name"
        ).split()
    ]
    for node in zone_c:
        _cut_off(node)
    lost_nodes = {node for node, zone in placed if zone == "zone-c"}

    def reported() -> dict[str, Any] | None:
        """Both of zone c's workers reported, whichever node went first."""
        cc = get(namespace, "corecluster", "zones")
        degraded = condition(cc, "Degraded")
        if degraded.get("reason") == "NodeNotReady" and all(
            node in degraded["message"] for node in lost_nodes
        ):
            return cc
        return None

    cc = wait_for("the CoreCluster to report the lost zone", reported, timeout=180)
    assert condition(cc, "Degraded")["status"] == "True"
    message = condition(cc, "Degraded")["message"]
    assert not any(node in message for node, zone in placed if zone != "zone-c"), message
    assert condition(cc, "Ready")["status"] == "False"
    assert condition(cc, "Ready")["reason"] == "NodeNotReady"
    wait_event(namespace, "zones", "NodeNotReady", "2 pods out of service")

    # Two workers down already, one more than the budget's maxUnavailable:
    # the Eviction API refuses to take a healthy one in another zone.
    wait_for(
        "the PodDisruptionBudget to allow no disruption",
        lambda: (get(namespace, "pdb", "zones").get("status") or {}).get("disruptionsAllowed") == 0,
        timeout=120,
    )
    pods = {
        pod["spec"]["nodeName"]: pod["metadata"]["name"]
        for pod in items(namespace, "pods", "corescale.io/cluster=zones")
    }
    core = client.CoreV1Api(api_client)

    def evict(pod: str) -> None:
        body = client.V1Eviction(metadata=client.V1ObjectMeta(name=pod, namespace=namespace))
        core.create_namespaced_pod_eviction(pod, namespace, body)

    healthy = next(pods[node] for node, zone in placed if zone == "zone-a")
    with pytest.raises(ApiException) as refused:
        evict(healthy)
    assert refused.value.status == 429, refused.value
    assert "disruption budget" in str(refused.value.body), refused.value.body
    assert not get(namespace, "pod", healthy)["metadata"].get("deletionTimestamp")

    # Drained: cordoned, then its pods evicted, which the budget allows
    # because they are not healthy.
    kubectl("cordon", *zone_c)
    for node in sorted(lost_nodes):
        evict(pods[node])
    cc = wait_ready(namespace, "zones", 6)
    assert condition(cc, "Degraded")["status"] == "False"
    zones = collections.Counter(zone for _, zone in _placed(namespace, "zones", nodes))
    assert sum(zones.values()) == 6 and "zone-c" not in zones, zones
    assert max(zones.values()) <= 6 // 2 + 1, zones
    wait_event(namespace, "zones", "Recovered")
