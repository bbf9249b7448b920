"""The cluster side of ``make bench-compare``: the two setups as CoreClusters,
and what their pods' cgroups count.

Both setups get the same CPU budget: ``workers`` one-worker pods of
``cpu_per_worker`` each in pods mode, against one prefork pod of ``workers``
workers whose limit is their sum. The limits are the budget; the requests
stay small (100m a worker, equal in sum on both sides) so that the node's two
CPUs can still schedule the extra pod of the add-a-worker event. The counters come from the
host's view of each pod's cgroup (this node is the host), read before and
after every run, because they are what the kubelet and the kernel count, not
what the worker believes.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.e2e.operator_helpers import items
from tests.kube import kubectl

SETUPS = ("pods", "prefork")
CGROUP = Path("/sys/fs/cgroup")


@dataclass(frozen=True)
class Budget:
    """How many workers each setup runs, and the CPU limit of each worker."""

    workers: int
    cpu_per_worker: str

    def spec(self, setup: str) -> dict[str, Any]:
        """The CoreCluster spec of ``setup`` on this budget."""
        pod = {"cpu": self.cpu_per_worker, "cpuRequest": "100m", "memory": "128Mi"}
        if setup == "pods":
            return {**pod, "mode": "pods", "replicas": self.workers}
        return {**pod, "mode": "prefork", "workersPerPod": self.workers, "replicas": self.workers}


def deploy(namespace: str, budget: Budget) -> None:
    for setup in SETUPS:
        body = {
            "apiVersion": "corescale.io/v1alpha1",
            "kind": "CoreCluster",
            "metadata": {"name": setup},
            "spec": budget.spec(setup),
        }
        kubectl("apply", "-n", namespace, "-f", "-", stdin=yaml.safe_dump(body))


def pods(namespace: str, setup: str) -> list[dict[str, Any]]:
    """The setup's pods that are not on their way out."""
    found = items(namespace, "pod", f"corescale.io/cluster={setup}")
    return [p for p in found if not p["metadata"].get("deletionTimestamp")]


def ready_endpoints(namespace: str, setup: str) -> set[str]:
    """Addresses the Service's EndpointSlices list as ready: where kube-proxy sends traffic."""
    slices = items(namespace, "endpointslice", f"kubernetes.io/service-name={setup}")
    return {
        address
        for piece in slices
        for endpoint in piece.get("endpoints") or []
        if (endpoint.get("conditions") or {}).get("ready")
        for address in endpoint.get("addresses", [])
    }


def _pod_directory(root: Path, uid: str) -> Path | None:
    """The pod's cgroup under ``root``, for the cgroupfs and the systemd drivers."""
    names = {f"pod{uid}", f"pod{uid.replace('-', '_')}.slice"}
    for kubepods in (root / "kubepods", root / "kubepods.slice"):
        for directory, subdirectories, _ in os.walk(kubepods):
            for name in subdirectories:
                if name in names or any(name.endswith(f"-{n}") for n in names):
                    return Path(directory) / name
    return None


def _stat(path: Path) -> dict[str, int]:
    fields: dict[str, int] = {}
    with contextlib.suppress(OSError):
        for line in path.read_text().splitlines():
            key, _, value = line.partition(" ")
            fields[key] = int(value)
    return fields


def throttling(uids: list[str]) -> dict[str, float]:
    """CFS periods, throttled periods and throttled seconds, summed over pods.

    cgroup v1 counts ``throttled_time`` in ns, v2 ``throttled_usec``.
    """
    total = {"periods": 0.0, "throttled": 0.0, "throttled_s": 0.0}
    for uid in uids:
        directory = _pod_directory(CGROUP / "cpu", uid) or _pod_directory(CGROUP, uid)
        if directory is None:
            continue
        stat = _stat(directory / "cpu.stat")
        total["periods"] += stat.get("nr_periods", 0)
        total["throttled"] += stat.get("nr_throttled", 0)
        total["throttled_s"] += stat.get("throttled_time", 0) / 1e9
        total["throttled_s"] += stat.get("throttled_usec", 0) / 1e6
    return total


def memory_mib(uids: list[str]) -> float:
    """Anonymous memory (the processes' own, no page cache) of the pods, in MiB."""
    total = 0
    for uid in uids:
        directory = _pod_directory(CGROUP / "memory", uid) or _pod_directory(CGROUP, uid)
        if directory is not None:
            stat = _stat(directory / "memory.stat")
            total += stat.get("total_rss", stat.get("anon", 0))
    return total / 2**20


def processes(uid: str) -> list[tuple[int, int]]:
    """(host pid, pid in the container) of the pod's worker processes (not pause)."""
    directory = _pod_directory(CGROUP / "cpu", uid) or _pod_directory(CGROUP, uid)
    found: list[tuple[int, int]] = []
    if directory is None:
        return found
    for procs in directory.rglob("cgroup.procs"):
        for text in procs.read_text().split():
            with contextlib.suppress(OSError):
                pid = int(text)
                if Path(f"/proc/{pid}/comm").read_text().strip() == "pause":
                    continue
                status = Path(f"/proc/{pid}/status").read_text()
                nspid = next(ln for ln in status.splitlines() if ln.startswith("NSpid:"))
                found.append((pid, int(nspid.split()[-1])))
    return sorted(set(found), key=lambda p: p[1])


def kubernetes_version() -> str:
    with contextlib.suppress(RuntimeError, KeyError, json.JSONDecodeError):
        return str(json.loads(kubectl("version", "-o", "json"))["serverVersion"]["gitVersion"])
    return "unknown"
