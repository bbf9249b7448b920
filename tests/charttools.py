"""Helpers shared by the chart's unit tests and the Helm/kustomize e2e tests:
run helm and kubectl's kustomize, parse what they print, compare objects.

helm and kubectl come from PATH, which tests/conftest.py starts with the
cluster build's cache ($CORESCALE_CACHE/bin). A missing tool is a failure
that says how to get it, never a skip.
"""

from __future__ import annotations

import copy
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
CHART = ROOT / "charts" / "corescale"
MANIFESTS = ROOT / "manifests"
CRD_DIR = MANIFESTS / "crd"
RELEASE = "corescale"
OPERATOR_NS = "corescale-system"

# Labels that only Helm sets (they name the chart's version and the tool), so
# they are left out when the chart is compared with the plain manifests.
HELM_ONLY_LABELS = ("helm.sh/chart", "app.kubernetes.io/managed-by", "app.kubernetes.io/version")


def tool(name: str) -> str:
    """Absolute path of a command-line tool, or a failure saying how to get it."""
    path = shutil.which(name)
    if path is None:
        pytest.fail(
            f"{name} is not on PATH: `make cluster` builds it into $CORESCALE_CACHE/bin",
            pytrace=False,
        )
    return path


def kubernetes_version() -> str:
    """The pinned Kubernetes release (hack/versions.env), for which the chart
    is rendered: helm's own default is older than the chart's kubeVersion."""
    for line in (ROOT / "hack" / "versions.env").read_text().splitlines():
        if line.startswith("KUBERNETES_VERSION="):
            return line.split("=", 1)[1].strip()
    raise AssertionError("hack/versions.env has no KUBERNETES_VERSION")


def run(*args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run a command; with check, a non-zero exit fails with its output."""
    proc = subprocess.run(args, capture_output=True, text=True, timeout=timeout, check=False)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"{' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
        )
    return proc


def helm_template(
    *args: str,
    release: str = RELEASE,
    namespace: str = OPERATOR_NS,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    """`helm template` of the chart; extra args are --set and friends."""
    return run(
        tool("helm"),
        "template",
        release,
        str(CHART),
        "--namespace",
        namespace,
        "--kube-version",
        kubernetes_version(),
        *args,
        check=check,
    )


def render(
    *args: str, release: str = RELEASE, namespace: str = OPERATOR_NS
) -> list[dict[str, Any]]:
    """The chart's objects, parsed."""
    return documents(helm_template(*args, release=release, namespace=namespace).stdout)


def sets(*assignments: str) -> list[str]:
    """`--set` arguments for each KEY=VALUE."""
    return [arg for assignment in assignments for arg in ("--set", assignment)]


def kustomize(path: Path) -> list[dict[str, Any]]:
    """The objects `kubectl apply -k path` would apply, parsed."""
    return documents(run(tool("kubectl"), "kustomize", str(path)).stdout)


def documents(text: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(text) if doc]


def source_crds() -> list[dict[str, Any]]:
    """The CRDs exactly as manifests/crd holds them."""
    crds = []
    for path in sorted(CRD_DIR.glob("*.yaml")):
        crds += [d for d in documents(path.read_text()) if d["kind"] == "CustomResourceDefinition"]
    return crds


def find(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    """The one object of that kind and name; fails listing what there is."""
    found = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name} not found once in {identities(objects)}"
    return found[0]


def identities(objects: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    """(kind, namespace, name) of each object, sorted, for comparisons."""
    return sorted(
        (o["kind"], o["metadata"].get("namespace", ""), o["metadata"]["name"]) for o in objects
    )


def without_helm_labels(obj: dict[str, Any]) -> dict[str, Any]:
    """A copy of obj without the labels only Helm sets, in its metadata and
    in a pod template's metadata."""
    obj = copy.deepcopy(obj)
    metas = [obj["metadata"]]
    template = obj.get("spec", {}).get("template")
    if isinstance(template, dict):
        metas.append(template["metadata"])
    for meta in metas:
        labels = meta.get("labels", {})
        for key in HELM_ONLY_LABELS:
            labels.pop(key, None)
    return obj


def container_env(deployment: dict[str, Any]) -> dict[str, str]:
    """The operator container's plain environment variables."""
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e["value"] for e in container.get("env", []) if "value" in e}
