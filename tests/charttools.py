"""Helpers shared by the chart's unit tests and the Helm/kustomize e2e tests:
run helm and kubectl's kustomize, parse what they print, compare objects.

helm and kubectl come from PATH, which tests/conftest.py starts with the
cluster build's tools cache ($CORESCALE_TOOLS/bin). A missing tool is a failure
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

from tests.kube import kubectl_json

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
            f"{name} is not on PATH: `make tools` builds it into $CORESCALE_TOOLS/bin",
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


# --- on a cluster (e2e) --------------------------------------------------

HELM_OWNER_ANNOTATIONS = ("meta.helm.sh/release-name", "meta.helm.sh/release-namespace")


def helm(*args: str, timeout: float = 420) -> str:
    """Run helm against the cluster of KUBECONFIG; a failure shows its output."""
    return run(tool("helm"), *args, timeout=timeout).stdout


def source_crd_names() -> list[str]:
    return sorted(crd["metadata"]["name"] for crd in source_crds())


def present_crd_names() -> list[str]:
    """The project's CRDs that exist in the cluster now."""
    return [
        name
        for name in source_crd_names()
        if run(
            tool("kubectl"), "get", "crd", name, "--ignore-not-found", "-o", "name"
        ).stdout.strip()
    ]


def adopt_crds(release: str, namespace: str) -> None:
    """Mark CRDs that exist already (from manifests/crd, the operator's tests
    or a kept release) as the release's, as a user adopting them would:
    helm refuses to install over objects another owner made."""
    for name in present_crd_names():
        run(
            tool("kubectl"),
            "label",
            "crd",
            name,
            "--overwrite",
            "app.kubernetes.io/managed-by=Helm",
        )
        run(
            tool("kubectl"),
            "annotate",
            "crd",
            name,
            "--overwrite",
            f"meta.helm.sh/release-name={release}",
            f"meta.helm.sh/release-namespace={namespace}",
        )


def disown_crds() -> None:
    """Take the marks of a kept, uninstalled release off the CRDs, so the
    next install (`make up`, another test) can adopt them."""
    for name in present_crd_names():
        run(
            tool("kubectl"),
            "annotate",
            "crd",
            name,
            *(f"{a}-" for a in HELM_OWNER_ANNOTATIONS),
            "helm.sh/resource-policy-",
        )
        run(tool("kubectl"), "label", "crd", name, "app.kubernetes.io/managed-by-")


def restore_crds() -> None:
    """Put the CRDs back as the operator's tests install them, once any
    deletion has finished, and wait until they serve."""
    for name in source_crd_names():
        run(tool("kubectl"), "wait", "--for=delete", f"crd/{name}", "--timeout=180s", timeout=200)
    # -k: the folder also holds its kustomization.yaml, which -f would send
    # to the API server as an object.
    run(tool("kubectl"), "apply", "--server-side", "--force-conflicts", "-k", str(CRD_DIR))
    for name in source_crd_names():
        run(tool("kubectl"), "wait", "--for=condition=Established", f"crd/{name}", "--timeout=60s")


def create_namespace(name: str) -> None:
    """A namespace that enforces the restricted Pod Security level, which the
    operator's pod and the workers must meet."""
    run(tool("kubectl"), "create", "namespace", name)
    run(
        tool("kubectl"),
        "label",
        "namespace",
        name,
        "corescale.dev/e2e=true",
        "pod-security.kubernetes.io/enforce=restricted",
        "pod-security.kubernetes.io/enforce-version=latest",
    )


def release_coreclusters(namespace: str) -> None:
    """Delete the namespace's CoreClusters without waiting for an operator.
    The operator sets no finalizer today; one left by a regression is
    removed too, or the namespace would never finish terminating."""
    names = [
        o["metadata"]["name"] for o in kubectl_json("get", "coreclusters", "-n", namespace)["items"]
    ]
    for name in names:
        run(
            tool("kubectl"),
            "patch",
            "corecluster",
            name,
            "-n",
            namespace,
            "--type=merge",
            "-p",
            '{"metadata":{"finalizers":null}}',
        )
        run(tool("kubectl"), "delete", "corecluster", name, "-n", namespace, "--wait=false")
