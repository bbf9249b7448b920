"""manifests/ and the chart install the same thing, from one CRD source.

`kubectl apply -k manifests/` and `helm install corescale charts/corescale
-n corescale-system` must give the same objects, so a fix made in one place
and forgotten in the other fails here rather than on a user's cluster.
"""

from __future__ import annotations

import importlib.util
from types import ModuleType
from typing import Any

import pytest
import yaml

from tests.charttools import (
    CHART,
    MANIFESTS,
    OPERATOR_NS,
    ROOT,
    find,
    helm_template,
    identities,
    kustomize,
    render,
    source_crds,
    tool,
    without_helm_labels,
)

# helm renders the chart: `make test-chart` builds the pinned helm first.
pytestmark = pytest.mark.chart


def _by_identity(objects: list[dict[str, Any]]) -> dict[tuple[str, str, str], dict[str, Any]]:
    return {
        (o["kind"], o["metadata"].get("namespace", ""), o["metadata"]["name"]): o for o in objects
    }


def _strip(obj: dict[str, Any]) -> dict[str, Any]:
    """Drop what legitimately differs: Helm's own labels, and the CRDs'
    keep policy (plain manifests have no uninstall to survive)."""
    obj = without_helm_labels(obj)
    annotations = obj["metadata"].get("annotations", {})
    annotations.pop("helm.sh/resource-policy", None)
    if not annotations:
        obj["metadata"].pop("annotations", None)
    return obj


def test_kustomize_gives_the_same_objects_as_the_chart() -> None:
    plain = kustomize(MANIFESTS)
    namespace = find(plain, "Namespace", OPERATOR_NS)
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    plain = [o for o in plain if o["kind"] != "Namespace"]
    chart = render()
    assert identities(plain) == identities(chart)
    chart_objects = _by_identity(chart)
    for key, obj in _by_identity(plain).items():
        assert _strip(obj) == _strip(chart_objects[key]), f"{key}: manifests/ and chart differ"


def _generate() -> ModuleType:
    spec = importlib.util.spec_from_file_location("generate", ROOT / "hack" / "generate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_chart_crd_templates_are_generated_from_manifests_crd() -> None:
    """One source of truth: the chart's CRD templates are what hack/generate.py
    makes of manifests/crd, not copies that could fall behind."""
    templates = _generate().crd_templates()
    assert sorted(path.name for path in templates) == sorted(
        f"crd-{crd['metadata']['name']}.yaml" for crd in source_crds()
    )
    on_disk = sorted((CHART / "templates").glob("crd-*.yaml"))
    assert on_disk == sorted(templates), "a CRD template without a source in manifests/crd"
    for path, text in templates.items():
        assert path.read_text() == text, (
            f"{path.name} is stale: run python hack/generate.py --write"
        )


def test_manifests_are_what_the_chart_generates() -> None:
    """manifests/manager and manifests/rbac are `helm template` of the chart."""
    tool("helm")
    for path, text in _generate().manifests(helm_template().stdout).items():
        assert path.read_text() == text, (
            f"{path.relative_to(ROOT)} is stale: run python hack/generate.py --write"
        )


def test_kustomize_installs_every_crd_of_manifests_crd() -> None:
    plain = {
        o["metadata"]["name"]: o
        for o in kustomize(MANIFESTS)
        if o["kind"] == "CustomResourceDefinition"
    }
    for crd in source_crds():
        assert plain[crd["metadata"]["name"]]["spec"] == crd["spec"]


def test_example_cluster_uses_only_fields_the_crd_defines() -> None:
    """The README's example must be accepted by the API server; the e2e tests
    apply it for real, this catches a renamed field without a cluster."""
    example = yaml.safe_load((MANIFESTS / "cluster.yaml").read_text())
    crd = next(c for c in source_crds() if c["metadata"]["name"] == "coreclusters.corescale.io")
    version = next(v for v in crd["spec"]["versions"] if v["storage"])
    assert example["apiVersion"] == f"{crd['spec']['group']}/{version['name']}"
    assert example["kind"] == crd["spec"]["names"]["kind"]
    assert "namespace" not in example["metadata"], "the example goes where kubectl -n says"

    def check(value: Any, schema: dict[str, Any], path: str) -> None:
        if "enum" in schema:
            assert value in schema["enum"], path
        if isinstance(value, dict):
            for key, child in value.items():
                assert key in schema.get("properties", {}), f"{path}.{key} is not in the CRD"
                check(child, schema["properties"][key], f"{path}.{key}")

    check(example["spec"], version["schema"]["openAPIV3Schema"]["properties"]["spec"], "spec")
    # Small requests: the example must fit on a two-CPU node beside the tests.
    assert example["spec"]["cpuRequest"] == "100m"
