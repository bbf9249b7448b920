"""Operator timings on the cluster: ``make bench-operator``.

Measures, with the operator running on the host against the cluster of
KUBECONFIG (or the local one):

* apply -> Ready: ``kubectl apply`` of a one-worker CoreCluster until its
  Ready condition is True (pods scheduled, image started, probes passed);
* spec change -> Deployment updated: a patch of the CoreCluster until the
  Deployment carries the change (the operator's own reaction time), 20 times;
* ``kubectl scale`` -> new worker serving: until the added pod answers HTTP;
* the operator's RSS when idle and when it holds 200 CoreClusters (at zero
  replicas, so that 200 of them do not swamp a two-core node).

Results go to bench/results/operator.json and a table to
bench/results/operator.md. These are measurements, not tests: nothing here
fails on a slow figure.
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import os
import secrets
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import yaml
from kubernetes import client, config

ROOT = Path(__file__).resolve().parents[2]
# Run as a script, only bench/operator is on sys.path; the root is added for
# tests/kube.py, the one kubectl helper the tests and benchmarks share.
sys.path.insert(0, str(ROOT))
from tests.kube import kubectl  # noqa: E402 - needs the root on sys.path first

RESULTS = ROOT / "bench" / "results"
T = TypeVar("T")
PARTS = ("ready", "changes", "scale", "rss")
log = logging.getLogger("bench.operator")


def poll(
    what: str, probe: Callable[[], T | None], timeout: float = 300, interval: float = 0.02
) -> T:
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = probe()
        except (RuntimeError, OSError):
            result = None
        if result:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(interval)


def get(namespace: str, kind: str, name: str) -> dict[str, Any]:
    found: dict[str, Any] = json.loads(kubectl("get", "-n", namespace, kind, name, "-o", "json"))
    return found


def corecluster(name: str, **spec: Any) -> str:
    return yaml.safe_dump(
        {
            "apiVersion": "corescale.io/v1alpha1",
            "kind": "CoreCluster",
            "metadata": {"name": name},
            "spec": {"drainSeconds": 1, "shutdownTimeoutSeconds": 5, **spec},
        }
    )


def ready(namespace: str, name: str) -> bool:
    cc = get(namespace, "corecluster", name)
    for cond in (cc.get("status") or {}).get("conditions") or []:
        if cond["type"] == "Ready":
            return bool(
                cond["status"] == "True"
                and cond.get("observedGeneration") == cc["metadata"]["generation"]
            )
    return False


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


def summary(samples: list[float]) -> dict[str, float]:
    return {
        "n": len(samples),
        "median": round(statistics.median(samples), 3),
        "worst": round(max(samples), 3),
        "best": round(min(samples), 3),
    }


@contextmanager
def operator(namespace: str, log_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = os.environ | {
        "CORESCALE_NAMESPACES": namespace,
        "CORESCALE_LIVENESS": f"127.0.0.1:{port}",
        "CORESCALE_WORKER_IMAGE": os.environ.get("CORESCALE_WORKER_IMAGE", "corescale-worker:dev"),
    }
    with log_path.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "corescale.operator"],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=ROOT,
        )
    try:
        poll(
            "the operator's liveness endpoint",
            lambda: urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1),
            timeout=60,
            interval=0.2,
        )
        yield proc
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def apply_to_ready(namespace: str, rounds: int) -> list[float]:
    samples = []
    for i in range(rounds):
        name = f"ready-{i}"
        start = time.monotonic()
        kubectl("apply", "-n", namespace, "-f", "-", stdin=corecluster(name, replicas=1))
        poll(f"{name} Ready", functools.partial(ready, namespace, name), interval=0.1)
        samples.append(time.monotonic() - start)
        kubectl("delete", "-n", namespace, "corecluster", name, "--wait=false")
        log.info("apply -> Ready %d: %.2fs", i, samples[-1])
    return samples


def change_to_deployment(namespace: str, rounds: int) -> list[float]:
    """Changes at zero replicas: the operator's reaction, not pod start-up.

    The patch and the polling go through the Python client (not kubectl
    processes, which take ~0.1 s each to start) so the figure is the
    operator's, within the 10 ms polling interval.
    """
    name = "changes"
    kubectl("apply", "-n", namespace, "-f", "-", stdin=corecluster(name, replicas=0))
    poll("changes Ready", lambda: ready(namespace, name), interval=0.1)
    api = config.new_client_from_config(config_file=os.environ["KUBECONFIG"])
    custom, apps = client.CustomObjectsApi(api), client.AppsV1Api(api)
    samples = []
    for i in range(rounds):
        value = f"{i}-{secrets.token_hex(2)}"
        patch = {"spec": {"env": [{"name": "BENCH_ROUND", "value": value}]}}
        start = time.monotonic()
        custom.patch_namespaced_custom_object(
            "corescale.io", "v1alpha1", namespace, "coreclusters", name, patch
        )

        def updated(v: str = value) -> bool:
            deployment: Any = apps.read_namespaced_deployment(f"{name}-pods", namespace)
            env = deployment.spec.template.spec.containers[0].env or []
            return any(e.value == v for e in env)

        poll("the Deployment to carry the change", updated, interval=0.01)
        samples.append(time.monotonic() - start)
        log.info("change -> Deployment %d: %.3fs", i, samples[-1])
    kubectl("delete", "-n", namespace, "corecluster", name, "--wait=false")
    return samples


def scale_to_serving(namespace: str, rounds: int) -> list[float]:
    name = "scale"
    selector = f"corescale.io/cluster={name}"
    kubectl("apply", "-n", namespace, "-f", "-", stdin=corecluster(name, replicas=1))
    poll("scale Ready", lambda: ready(namespace, name), interval=0.1)
    samples = []
    for i in range(rounds):
        before = set(kubectl("get", "pods", "-n", namespace, "-l", selector, "-o", "name").split())
        start = time.monotonic()
        kubectl("scale", "-n", namespace, f"corecluster/{name}", "--replicas=2")

        def new_pod_serves(before: set[str] = before) -> bool:
            pods = json.loads(
                kubectl("get", "pods", "-n", namespace, "-l", selector, "-o", "json")
            )["items"]
            for pod in pods:
                if f"pod/{pod['metadata']['name']}" in before or not pod["status"].get("podIP"):
                    continue
                url = f"http://{pod['status']['podIP']}:8080/readyz"
                with urllib.request.urlopen(url, timeout=1) as response:
                    return bool(response.status == 200)
            return False

        poll("the new worker to serve", new_pod_serves, interval=0.05)
        samples.append(time.monotonic() - start)
        log.info("kubectl scale -> serving %d: %.2fs", i, samples[-1])
        kubectl("scale", "-n", namespace, f"corecluster/{name}", "--replicas=1")
        poll(
            "back to one pod",
            lambda: (
                len(kubectl("get", "pods", "-n", namespace, "-l", selector, "-o", "name").split())
                == 1
            ),
            interval=0.2,
        )
    kubectl("delete", "-n", namespace, "corecluster", name, "--wait=false")
    return samples


def many(namespace: str, proc: subprocess.Popen[bytes], count: int) -> dict[str, float]:
    """RSS with ``count`` CoreClusters at zero replicas, and how long reconciling them took."""
    text = "---\n".join(corecluster(f"many-{i}", replicas=0) for i in range(count))
    start = time.monotonic()
    kubectl("apply", "-n", namespace, "-f", "-", stdin=text)

    def all_ready() -> bool:
        ccs = json.loads(kubectl("get", "-n", namespace, "coreclusters", "-o", "json"))["items"]
        done = [
            cc
            for cc in ccs
            if cc["metadata"]["name"].startswith("many-")
            and any(
                c["type"] == "Ready" and c["status"] == "True"
                for c in (cc.get("status") or {}).get("conditions") or []
            )
        ]
        return len(done) == count

    poll(f"{count} CoreClusters Ready", all_ready, timeout=900, interval=2)
    took = time.monotonic() - start
    time.sleep(15)  # let the watch streams and timers settle
    return {
        "count": count,
        "all_ready_seconds": round(took, 1),
        "rss_mib": round(rss_kib(proc.pid) / 1024, 1),
    }


def report(results: dict[str, Any]) -> str:
    rows = [
        "| measurement | n | median (s) | worst (s) | best (s) |",
        "| --- | --- | --- | --- | --- |",
    ]
    for key, label in (
        ("apply_to_ready", "`kubectl apply` -> Ready (1 worker)"),
        ("change_to_deployment", "spec change -> Deployment updated"),
        ("scale_to_serving", "`kubectl scale` 1 -> 2 -> new worker serving"),
    ):
        if key in results:
            s = results[key]
            rows.append(f"| {label} | {s['n']} | {s['median']} | {s['worst']} | {s['best']} |")
    rss = results["rss"]
    rows += ["", f"Operator RSS idle: {rss['idle_mib']} MiB."]
    if "many" in rss:
        many_ = rss["many"]
        rows.append(
            f"With {many_['count']} CoreClusters: {many_['rss_mib']} MiB (all Ready "
            f"{many_['all_ready_seconds']} s after one `kubectl apply`)."
        )
    rows += ["", f"Measured {results['when']} on {results['machine']}."]
    return "\n".join(rows) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--changes", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--many", type=int, default=200)
    parser.add_argument(
        "--parts", default=",".join(PARTS), help=f"comma-separated subset of {','.join(PARTS)}"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    if not os.environ.get("KUBECONFIG"):
        os.environ["KUBECONFIG"] = subprocess.run(
            [str(ROOT / "hack" / "cluster.sh"), "kubeconfig"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    kubectl("apply", "--server-side", "--force-conflicts", "-k", str(ROOT / "manifests" / "crd"))
    kubectl("wait", "--for=condition=Established", "crd/coreclusters.corescale.io")
    namespace = f"bench-operator-{secrets.token_hex(3)}"
    kubectl("create", "namespace", namespace)
    RESULTS.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": f"{os.cpu_count()} CPUs, {socket.gethostname()}",
    }
    try:
        with operator(namespace, RESULTS / "operator-bench.log.tmp") as proc:
            time.sleep(5)
            idle = round(rss_kib(proc.pid) / 1024, 1)
            log.info("idle RSS %.1f MiB", idle)
            parts = set(args.parts.split(","))
            if "ready" in parts:
                results["apply_to_ready"] = summary(apply_to_ready(namespace, args.rounds))
            if "changes" in parts:
                results["change_to_deployment"] = summary(
                    change_to_deployment(namespace, args.changes)
                )
            if "scale" in parts:
                results["scale_to_serving"] = summary(scale_to_serving(namespace, args.rounds))
            results["rss"] = {"idle_mib": idle}
            if "rss" in parts:
                results["rss"]["many"] = many(namespace, proc, args.many)
    finally:
        kubectl("delete", "namespace", namespace, "--wait=false", "--ignore-not-found")
    (RESULTS / "operator.json").write_text(json.dumps(results, indent=2) + "\n")
    (RESULTS / "operator.md").write_text(report(results))
    sys.stdout.write(report(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
