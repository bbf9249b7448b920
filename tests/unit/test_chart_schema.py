"""The chart's metadata and values schema: `helm lint --strict` is clean, and
values that the chart does not know are refused instead of ignored."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml

from tests.charttools import CHART, helm_template, kubernetes_version, run, tool

# helm renders the chart: `make test-chart` builds the pinned helm first.
pytestmark = pytest.mark.chart


def _schema() -> dict[str, Any]:
    schema: dict[str, Any] = json.loads((CHART / "values.schema.json").read_text())
    return schema


def _resolve(schema: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    if "$ref" in node:
        name = node["$ref"].rsplit("/", 1)[1]
        resolved: dict[str, Any] = schema["definitions"][name]
        return resolved
    return node


def test_helm_lint_strict_is_clean() -> None:
    proc = run(tool("helm"), "lint", "--strict", "--kube-version", kubernetes_version(), str(CHART))
    assert "[WARNING]" not in proc.stdout and "[ERROR]" not in proc.stdout, proc.stdout
    assert "0 chart(s) failed" in proc.stdout


def test_chart_declares_the_kubernetes_versions_it_supports() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["apiVersion"] == "v2"
    assert chart["kubeVersion"]
    # CEL validation in the CRD needs 1.29 or newer: an older cluster is
    # refused by helm instead of by the API server halfway through.
    proc = helm_template("--kube-version", "1.28.5", check=False)
    assert proc.returncode != 0
    assert "kubeVersion" in proc.stderr


@pytest.mark.parametrize(
    ("args", "complaint"),
    [
        (["--set", "replicaCount=2"], "replicaCount"),
        (["--set", "image.name=x"], "name"),
        (["--set", "crds.install=true"], "install"),
        (["--set", "serviceAccount.automount=true"], "automount"),
        (["--set", "resources.requests.gpu=1"], "gpu"),
        (["--set", "logFormat=xml"], "logFormat"),
        (["--set", "logLevel=trace"], "logLevel"),
        (["--set", "strategy=BlueGreen"], "strategy"),
        (["--set", "watchNamespaces={Bad_Name}"], "watchNamespaces"),
        (["--set", "image.pullPolicy=Sometimes"], "pullPolicy"),
        (["--set", "livenessPort=70000"], "livenessPort"),
        (["--set", "crds.keep=maybe"], "keep"),
    ],
)
def test_schema_refuses_unknown_keys_and_bad_values(args: list[str], complaint: str) -> None:
    proc = helm_template(*args, check=False)
    assert proc.returncode != 0, f"helm accepted {args}"
    assert "schema" in proc.stderr and complaint in proc.stderr, proc.stderr


def test_every_object_of_the_schema_rejects_unknown_keys() -> None:
    """additionalProperties: false on every object the chart defines; only
    maps of the user's own keys (labels, selectors) and Kubernetes types
    passed through whole (tolerations, affinity) are open."""
    schema = _schema()
    open_maps = {
        "extraLabels",
        "podAnnotations",
        "nodeSelector",
        "annotations",
        "affinity",
        "global",
    }

    def walk(node: dict[str, Any], path: str) -> None:
        node = _resolve(schema, node)
        if node.get("type") == "object" and "properties" in node:
            assert node.get("additionalProperties") is False, f"{path} accepts unknown keys"
            for key, child in node["properties"].items():
                if key not in open_maps:
                    walk(child, f"{path}.{key}")

    walk(schema, "values")


def test_schema_and_values_yaml_have_the_same_keys() -> None:
    """A key in values.yaml that the schema lacks would be refused; a key in
    the schema that values.yaml lacks would be undocumented."""
    schema = _schema()
    values = yaml.safe_load((CHART / "values.yaml").read_text())

    def walk(node: dict[str, Any], value: Any, path: str) -> None:
        node = _resolve(schema, node)
        # resources is one documented value whose keys (cpu, memory, ...)
        # are all optional.
        if not isinstance(value, dict) or "properties" not in node or path == "values.resources":
            return
        declared = set(node["properties"]) - {"global"}
        if node.get("additionalProperties") is False:
            assert set(value) == declared, path
        for key, child in value.items():
            walk(node["properties"][key], child, f"{path}.{key}")

    walk(schema, values, "values")


def test_defaults_pass_the_schema_and_render() -> None:
    assert helm_template().stdout.count("kind:") >= 6
