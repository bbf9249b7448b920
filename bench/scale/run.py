"""The operator at scale on simulated nodes: ``make bench-scale``.

N KWOK nodes (hack/cluster.sh nodes, a pool of the benchmark's own), M
CoreClusters holding W workers in all, and the operator on the host watching
the benchmark's namespace. Measured:

* create -> all Ready: the M CoreClusters created by four kubectl clients at
  once, until every one is Ready at its generation;
* the spread: the most workers of one CoreCluster in one zone over its share,
  and on one node, once all are Ready;
* the operator's RSS and CPU seconds (from /proc) at each phase's end;
* spec change -> Deployment updated, while all M exist: a pod annotation
  patched into one CoreCluster (one HTTP PATCH through kubectl proxy) until
  a watch event shows its Deployment's template carrying it (client.py),
  timed both from the PATCH sent and from its answer; once back to back
  (each change 0.1 s after the last one was seen, while earlier rollouts
  still run) and once on a settled cluster (each change after every
  rollout has finished);
* API requests: deltas of the API server's ``apiserver_request_total`` per
  phase. That metric has no label naming the client, so requests are
  attributed by resource: every request on coreclusters is the operator's
  (nothing else reads or writes them) but the benchmark's own creates and
  changes, which are subtracted, and writes to deployments, services and
  poddisruptionbudgets (not their status) are the operator's too. Reads
  of those resources are shared with the controllers and not attributed;
* a restart: the operator stopped and started again until its own metrics
  count every CoreCluster reconciled (corescale_operator_coreclusters), and
  the attributed writes of that restart (zero where nothing changed);
* RSS is sampled at each phase's end, and the peak (VmHWM) beside it.

Results go to bench/results/scale.{json,md,png} (or --out). A benchmark, not
a test: no figure is asserted; --quick is the small version the e2e suite
runs to see every column produced.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import secrets
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import yaml

from corescale.operator.api.names import API_VERSION, CLUSTER_LABEL, PLURAL
from corescale.operator.api.placement import ZONE_KEY

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from bench.scale.client import DeploymentWatch, Proxy  # noqa: E402
from tests.e2e.operator_helpers import OperatorProcess  # noqa: E402 - root on sys.path
from tests.kube import http_get, kubectl, wait_for  # noqa: E402

CLUSTER_SH = ROOT / "hack" / "cluster.sh"
log = logging.getLogger("bench.scale")
WRITES = ("APPLY", "PATCH", "CREATE", "UPDATE", "DELETE", "DELETECOLLECTION")
OPERATOR_WRITES = {"deployments", "services", "poddisruptionbudgets"}
CHANGE_ANNOTATION = "bench.corescale.dev/change"
_SAMPLE = re.compile(r"^apiserver_request_total\{(?P<labels>[^}]*)\} (?P<value>\S+)$")


def requests() -> Counter[tuple[str, str, str]]:
    """apiserver_request_total by (verb, resource, subresource)."""
    counts: Counter[tuple[str, str, str]] = Counter()
    for line in kubectl("get", "--raw", "/metrics").splitlines():
        found = _SAMPLE.match(line)
        if not found:
            continue
        labels = dict(re.findall(r'(\w+)="([^"]*)"', found["labels"]))
        key = (labels.get("verb", ""), labels.get("resource", ""), labels.get("subresource", ""))
        counts[key] += int(float(found["value"]))
    return counts


def attributed(
    before: Counter[tuple[str, str, str]],
    after: Counter[tuple[str, str, str]],
    own_writes: int = 0,
) -> dict[str, int]:
    """The operator's share of the requests between two snapshots (see the module's doc),
    less ``own_writes``: the benchmark's own writes of CoreClusters meanwhile (its
    creates, its changes), which the API server counts on the same resource."""
    delta = after - before
    writes = -own_writes + sum(
        n
        for (verb, resource, sub), n in delta.items()
        if verb in WRITES
        and (resource == "coreclusters" or (resource in OPERATOR_WRITES and not sub))
    )
    reads = sum(
        n
        for (verb, resource, _), n in delta.items()
        if verb not in WRITES and resource == "coreclusters"
    )
    return {"writes": writes, "corecluster_reads": reads}


def proc_figures(pid: int) -> dict[str, float]:
    status = Path(f"/proc/{pid}/status").read_text()
    rss = int(re.search(r"VmRSS:\s+(\d+)", status)[1])  # type: ignore[index]
    peak = int(re.search(r"VmHWM:\s+(\d+)", status)[1])  # type: ignore[index]
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return {
        "rss_mib": round(rss / 1024, 1),
        "peak_rss_mib": round(peak / 1024, 1),
        "cpu_s": round((int(fields[11]) + int(fields[12])) / ticks, 1),
    }


def manifests(clusters: int, workers: int, pool: str) -> list[dict[str, Any]]:
    docs = []
    for i in range(clusters):
        replicas = workers // clusters + (1 if i < workers % clusters else 0)
        docs.append(
            {
                "apiVersion": "corescale.io/v1alpha1",
                "kind": "CoreCluster",
                "metadata": {"name": f"c{i:04d}"},
                "spec": {
                    "replicas": replicas,
                    "cpu": "100m",
                    "cpuRequest": "10m",
                    "memory": "16Mi",
                    "drainSeconds": 0,
                    "nodeSelector": {"corescale.dev/pool": pool},
                    "tolerations": [
                        {
                            "key": "corescale.dev/simulated",
                            "operator": "Exists",
                            "effect": "NoSchedule",
                        }
                    ],
                },
            }
        )
    return docs


def create(namespace: str, docs: list[dict[str, Any]], clients: int = 4) -> None:
    """Create the CoreClusters from a few kubectl processes at once.

    One kubectl applies its objects one after another, two requests each:
    1,000 CoreClusters took 13 minutes on a loaded API server, which then
    measured kubectl rather than the operator.
    """
    procs = [
        subprocess.Popen(
            ["kubectl", "create", "-n", namespace, "-f", "-"],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            text=True,
        )
        for _ in range(clients)
    ]
    for i, proc in enumerate(procs):
        assert proc.stdin is not None
        proc.stdin.write(yaml.safe_dump_all(docs[i::clients]))
        proc.stdin.close()
    failed = [proc.wait(timeout=900) for proc in procs]
    if any(failed):
        raise RuntimeError(f"kubectl create exited {failed}")


def not_ready(namespace: str) -> int:
    found = json.loads(kubectl("get", "coreclusters", "-n", namespace, "-o", "json"))["items"]
    waiting = 0
    for cc in found:
        conditions = {c["type"]: c for c in (cc.get("status") or {}).get("conditions") or []}
        ready = conditions.get("Ready", {})
        if (
            ready.get("status") != "True"
            or ready.get("observedGeneration") != cc["metadata"]["generation"]
        ):
            waiting += 1
    return waiting


def spread(namespace: str) -> dict[str, int]:
    """How evenly each CoreCluster's workers sit over zones and nodes.

    The issue's goal: no zone holds more than its share plus one, the share
    being the CoreCluster's workers over the zones its pool has. Read once,
    after all are Ready: two lists (nodes, pods), not one request per pod.
    """
    zone_column = ZONE_KEY.replace(".", "\\.")
    zone_of = dict(
        line.split()
        for line in kubectl(
            "get",
            "nodes",
            "--no-headers",
            "-o",
            f"custom-columns=N:.metadata.name,Z:.metadata.labels.{zone_column}",
        ).splitlines()
    )
    cluster_column = CLUSTER_LABEL.replace(".", "\\.")
    zones: dict[str, Counter[str]] = {}
    nodes: dict[str, Counter[str]] = {}
    for line in kubectl(
        "get",
        "pods",
        "-n",
        namespace,
        "--no-headers",
        "-o",
        f"custom-columns=C:.metadata.labels.{cluster_column},N:.spec.nodeName",
        timeout=300,
    ).splitlines():
        cluster, node = line.split()
        zones.setdefault(cluster, Counter())[zone_of.get(node, "<none>")] += 1
        nodes.setdefault(cluster, Counter())[node] += 1
    pool_zones = {zone for node, zone in zone_of.items() if zone != "<none>"}
    over = [
        max(counts.values()) - -(-sum(counts.values()) // max(1, len(pool_zones)))
        for counts in zones.values()
    ]
    return {
        "pods": sum(sum(c.values()) for c in zones.values()),
        "zones": len(pool_zones),
        "worst_zone_over_share": max(over, default=0),
        "most_on_one_node": max((max(c.values()) for c in nodes.values()), default=0),
    }


def percentile(samples: list[float], p: float) -> float:
    ordered = sorted(samples)
    return round(ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))], 3)


def change_to_deployment(
    namespace: str, clusters: int, changes: int, *, settled: bool
) -> tuple[list[float], list[float]]:
    """Patch a pod annotation into one CoreCluster after another, each until a
    watch event shows its Deployment's template carrying it.

    Two samples per change: from the PATCH sent, and from its answer (the
    change committed, which is when the operator's watch can see it). The
    difference is the API server's time on the PATCH itself, which on this
    machine's saturated control plane is up to 0.4 s (docs/operator.md).

    Back to back (`settled` False), a change follows the last one's
    Deployment update by 0.1 s, while the rollouts of the changes before it
    still run: two or three 10-pod rollouts a second, which fill this
    machine's two CPUs with the control plane's own work. `settled` waits
    before each change until no Deployment of the namespace is rolling out,
    so the change meets the cluster idle but for its 1,000 CoreClusters and
    10,000 workers: the operator's and the API server's latency at that
    size, without the backlog the benchmark itself made. The settled series
    numbers its changes on from the back-to-back one's, so that the two
    patch different CoreClusters.
    """
    proxy = Proxy()
    watch = DeploymentWatch(proxy, namespace, CHANGE_ANNOTATION)
    try:
        sent, answered = [], []
        first = changes if settled else 0
        for i in range(first, first + changes):
            if settled:
                watch.wait_settled(timeout=600)
            name = f"c{(i * 7919) % clusters:04d}"
            mark = f"change-{secrets.token_hex(4)}"
            path = f"/apis/{API_VERSION}/namespaces/{namespace}/{PLURAL}/{name}"
            t0 = time.monotonic()
            proxy.request("PATCH", path, {"spec": {"podAnnotations": {CHANGE_ANNOTATION: mark}}})
            t1 = time.monotonic()
            seen = watch.wait(f"{name}-pods", mark, timeout=120)
            sent.append(seen - t0)
            answered.append(seen - t1)
            time.sleep(0.1)  # one change after another, not a burst
        return sent, answered
    finally:
        watch.close()
        proxy.close()


def seen_by_operator(metrics_url: str) -> int:
    """CoreClusters the operator has reconciled since it started: every
    reconcile records its conditions in corescale_operator_coreclusters,
    whether or not it writes, so the Ready series sum to that count."""
    total = 0.0
    for line in http_get(metrics_url).splitlines():
        if line.startswith('corescale_operator_coreclusters{condition="Ready"'):
            total += float(line.rsplit(" ", 1)[1])
    return int(total)


def run(args: argparse.Namespace) -> dict[str, Any]:
    token = secrets.token_hex(3)
    pool, namespace = f"bench-scale-{token}", f"bench-scale-{token}"
    results: dict[str, Any] = {
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": f"{os.cpu_count()} CPUs, {socket.gethostname()}",
        "nodes": args.nodes,
        "clusters": args.clusters,
        "workers": args.workers,
    }
    kubectl("apply", "--server-side", "--force-conflicts", "-k", str(ROOT / "manifests" / "crd"))
    kubectl("wait", "--for=condition=Established", "crd/coreclusters.corescale.io")
    t0 = time.monotonic()
    subprocess.run([str(CLUSTER_SH), "nodes", str(args.nodes), pool], check=True)
    results["nodes_ready_s"] = round(time.monotonic() - t0, 1)
    kubectl("create", "namespace", namespace)
    logs = args.out.parent / "logs"  # bench/logs is not kept in git
    logs.mkdir(parents=True, exist_ok=True)
    operator = OperatorProcess(namespace, logs)
    try:
        operator.start()
        assert operator.proc is not None
        results["idle"] = proc_figures(operator.proc.pid)
        before = requests()
        t0 = time.monotonic()
        create(namespace, manifests(args.clusters, args.workers, pool))
        wait_for("every CoreCluster Ready", lambda: not_ready(namespace) == 0, timeout=args.timeout)
        results["all_ready_s"] = round(time.monotonic() - t0, 1)
        results["ready"] = proc_figures(operator.proc.pid) | attributed(
            before, requests(), own_writes=args.clusters
        )
        log.info("all Ready: %s", results["ready"])
        results["spread"] = spread(namespace)
        log.info("spread: %s", results["spread"])

        time.sleep(5)
        before = requests()
        time.sleep(args.idle)
        results["idle_requests"] = attributed(before, requests()) | {"seconds": args.idle}

        for key, settled in (("change_to_deployment", False), ("change_settled", True)):
            before, cpu = requests(), proc_figures(operator.proc.pid)["cpu_s"]
            samples, after_patch = change_to_deployment(
                namespace, args.clusters, args.changes, settled=settled
            )
            after = requests()
            spent = attributed(before, after, own_writes=len(samples))
            log.info(
                "writes during the changes (%s), by verb/resource/subresource: %s",
                key,
                {"/".join(k): n for k, n in sorted((after - before).items()) if k[0] in WRITES},
            )
            results[key] = {
                "n": len(samples),
                "p50_s": percentile(samples, 50),
                "p99_s": percentile(samples, 99),
                "max_s": round(max(samples), 3),
                "after_patch_p50_s": percentile(after_patch, 50),
                "after_patch_p99_s": percentile(after_patch, 99),
                "after_patch_max_s": round(max(after_patch), 3),
                "writes_per_change": round(spent["writes"] / len(samples), 1),
                "cpu_s": round(proc_figures(operator.proc.pid)["cpu_s"] - cpu, 1),
                "samples_s": [round(sample, 3) for sample in samples],
                "after_patch_samples_s": [round(sample, 3) for sample in after_patch],
            }
            log.info("%s: %s", key, {k: v for k, v in results[key].items() if "samples" not in k})
            wait_for(
                "every CoreCluster Ready again",
                lambda: not_ready(namespace) == 0,
                timeout=args.timeout,
            )
        results["after_changes"] = proc_figures(operator.proc.pid)

        operator.stop()
        time.sleep(2)
        before = requests()
        t0 = time.monotonic()
        operator.start()
        wait_for(
            "every CoreCluster seen again",
            lambda: seen_by_operator(operator.metrics_url) >= args.clusters,
            timeout=args.timeout,
            interval=0.2,
        )
        seen = time.monotonic() - t0
        time.sleep(5)
        results["restart"] = (
            {"all_seen_s": round(seen, 1)}
            | attributed(before, requests())
            | proc_figures(operator.proc.pid)
        )
    finally:
        operator.stop()
        try:
            # The namespace first, while KWOK still plays the pool: a pod on
            # a node already gone is never confirmed deleted and stays
            # Terminating until the pod garbage collector finds it (6,700 of
            # them still there 28 minutes after a run that removed the nodes
            # at once, slowing the next run).
            kubectl(
                "delete",
                "namespace",
                namespace,
                "--ignore-not-found",
                "--timeout=900s",
                timeout=960,
            )
        finally:
            subprocess.run([str(CLUSTER_SH), "nodes", "0", pool], check=False)
    return results


def report(r: dict[str, Any]) -> str:
    c, idle, restart = r["change_to_deployment"], r["idle_requests"], r["restart"]
    s = r["change_settled"]
    rss = " / ".join(str(r[p]["rss_mib"]) for p in ("idle", "ready", "after_changes", "restart"))
    per_cluster = r["ready"]["writes"] / r["clusters"]
    measures = [
        ("nodes Ready (KWOK)", f"{r['nodes_ready_s']} s"),
        ("create -> all CoreClusters Ready", f"{r['all_ready_s']} s"),
        ("operator RSS idle / all Ready / after changes / after restart", f"{rss} MiB"),
        ("operator CPU until all Ready", f"{r['ready']['cpu_s'] - r['idle']['cpu_s']:.1f} s"),
        ("operator writes until all Ready", f"{r['ready']['writes']} ({per_cluster:.1f} each)"),
        (
            f"spec change (PATCH sent) -> Deployment updated, p50 / p99 / max (n={c['n']})",
            f"{c['p50_s']} / {c['p99_s']} / {c['max_s']} s",
        ),
        (
            "spec change (PATCH answered) -> Deployment updated, p50 / p99 / max",
            f"{c['after_patch_p50_s']} / {c['after_patch_p99_s']} / {c['after_patch_max_s']} s",
        ),
        (
            f"spec change on a settled cluster (PATCH sent) -> Deployment updated, "
            f"p50 / p99 / max (n={s['n']})",
            f"{s['p50_s']} / {s['p99_s']} / {s['max_s']} s",
        ),
        (
            "spec change on a settled cluster (PATCH answered) -> Deployment updated, "
            "p50 / p99 / max",
            f"{s['after_patch_p50_s']} / {s['after_patch_p99_s']} / {s['after_patch_max_s']} s",
        ),
        ("operator writes per spec change", str(c["writes_per_change"])),
        (
            f"operator writes / CoreCluster reads while idle ({idle['seconds']} s)",
            f"{idle['writes']} / {idle['corecluster_reads']}",
        ),
        (
            "most workers of one CoreCluster in one zone, over its share (goal <= 1)",
            str(r["spread"]["worst_zone_over_share"]),
        ),
        ("most workers of one CoreCluster on one node", str(r["spread"]["most_on_one_node"])),
        ("restart -> every CoreCluster seen again", f"{restart['all_seen_s']} s"),
        ("operator writes during the restart", str(restart["writes"])),
    ]
    title = f"{r['nodes']} simulated nodes, {r['clusters']} CoreClusters, {r['workers']} workers"
    rows = [f"# Operator at scale: {title}", "", "| measure | value |", "|---|---|"]
    rows += [f"| {measure} | {value} |" for measure, value in measures]
    rows += [
        "",
        f"Measured {r['when']} on {r['machine']}. Writes are attributed from the API "
        "server's apiserver_request_total by resource (see bench/scale/run.py).",
        "",
    ]
    return "\n".join(rows)


def plot(r: dict[str, Any], samples_path: Path) -> None:
    import matplotlib  # noqa: PLC0415 - only the plot needs it

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    phases = ["idle", "ready", "after_changes", "restart"]
    left.bar(phases, [r[p]["rss_mib"] for p in phases])
    left.set_ylabel("operator RSS (MiB)")
    where = range(3)
    series = [
        (r["change_to_deployment"], "", "back to back, PATCH sent"),
        (r["change_to_deployment"], "after_patch_", "back to back, PATCH answered"),
        (r["change_settled"], "", "settled, PATCH sent"),
        (r["change_settled"], "after_patch_", "settled, PATCH answered"),
    ]
    for offset, (c, prefix, label) in enumerate(series):
        right.bar(
            [x - 0.3 + 0.2 * offset for x in where],
            [c[f"{prefix}p50_s"], c[f"{prefix}p99_s"], c[f"{prefix}max_s"]],
            0.2,
            label=label,
        )
    right.axhline(1.0, color="grey", linewidth=0.8, linestyle="--")
    right.set_xticks(list(where), ["p50", "p99", "max"])
    right.legend(fontsize="small")
    right.set_ylabel("spec change -> Deployment updated (s)")
    fig.suptitle(f"{r['nodes']} nodes, {r['clusters']} CoreClusters, {r['workers']} workers")
    fig.tight_layout()
    fig.savefig(samples_path)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=500)
    parser.add_argument("--clusters", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=10000)
    parser.add_argument("--changes", type=int, default=100)
    parser.add_argument("--idle", type=float, default=60, help="seconds of quiet measured")
    parser.add_argument("--timeout", type=float, default=3600)
    parser.add_argument("--quick", action="store_true", help="6 nodes, 5 CoreClusters, 15 workers")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args()
    if args.quick:
        args.nodes, args.clusters, args.workers, args.changes, args.idle = 6, 5, 15, 5, 10
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    if not os.environ.get("KUBECONFIG"):
        os.environ["KUBECONFIG"] = subprocess.run(
            [str(CLUSTER_SH), "kubeconfig"], capture_output=True, text=True, check=True
        ).stdout.strip()
    args.out.mkdir(parents=True, exist_ok=True)
    results = run(args)
    (args.out / "scale.json").write_text(json.dumps(results, indent=2) + "\n")
    (args.out / "scale.md").write_text(report(results))
    plot(results, args.out / "scale.png")
    sys.stdout.write(report(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
