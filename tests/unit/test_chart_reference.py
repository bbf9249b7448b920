"""The README cannot drift from the CRD and the chart: its configuration
reference is what hack/reference.py generates from them, every value and
field is in it, and it opens the way users need it to."""

from __future__ import annotations

import importlib.util
import re
from types import ModuleType
from typing import Any

import yaml

from tests.charttools import CHART, ROOT, source_crds

README = ROOT / "README.md"


def _reference() -> ModuleType:
    spec = importlib.util.spec_from_file_location("reference", ROOT / "hack" / "reference.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _table_keys(readme: str, section: str) -> list[str]:
    """First-column keys of a generated table."""
    begin = readme.index(f"<!-- BEGIN GENERATED {section}")
    end = readme.index(f"<!-- END GENERATED {section}")
    return re.findall(r"^\| `([^`]+)` \|", readme[begin:end], flags=re.MULTILINE)


def test_readme_reference_is_what_the_sources_generate() -> None:
    readme = README.read_text()
    assert _reference().render(readme) == readme, (
        "README.md's configuration reference is stale: run python hack/reference.py --write"
    )


def test_every_corecluster_field_is_in_the_readme() -> None:
    crd = next(c for c in source_crds() if c["metadata"]["name"] == "coreclusters.corescale.io")
    version = next(v for v in crd["spec"]["versions"] if v["storage"])
    spec = version["schema"]["openAPIV3Schema"]["properties"]["spec"]

    def fields(schema: dict[str, Any], prefix: str) -> list[str]:
        out = []
        for name, child in schema["properties"].items():
            if child.get("type") == "object" and "properties" in child:
                out += fields(child, f"{prefix}.{name}")
            else:
                out.append(f"{prefix}.{name}")
        return out

    documented = _table_keys(README.read_text(), "corecluster-spec")
    assert documented == fields(spec, "spec")
    assert "spec.replicas" in documented and "spec.mode" in documented


def test_every_chart_value_is_documented_with_its_default() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    documented = _table_keys(README.read_text(), "chart-values")
    # Every top-level value is in the table, itself or through its children.
    for key in values:
        assert any(d == key or d.startswith(f"{key}.") for d in documented), key
    # Every row names a real value, and shows its default.
    readme = README.read_text()
    for key in documented:
        node: Any = values
        for part in key.split("."):
            node = node[part]
        row = next(line for line in readme.splitlines() if line.startswith(f"| `{key}` |"))
        assert row.split("|")[2].strip().startswith("`"), f"{key} has no default in the README"


def test_values_comments_are_parsed_from_the_line_above_each_key() -> None:
    comments = _reference().values_comments(
        "# header, not about any key\n\n# the image\nimage:\n  # its tag\n  tag: dev\nplain: 1\n"
    )
    assert comments == {"image": "the image", "image.tag": "its tag"}


def test_readme_opens_with_what_corescale_is_and_the_two_commands() -> None:
    head = README.read_text().splitlines()[:40]
    assert head[0] == "# corescale"
    text = "\n".join(head)
    assert "one-CPU worker" in text
    assert re.search(r"^make up\b", text, flags=re.MULTILINE)
    assert re.search(r"^make test\b", text, flags=re.MULTILINE)


def test_readme_links_the_other_documents_and_covers_the_usage() -> None:
    readme = README.read_text()
    for doc in ("docs/cluster.md", "docs/worker.md", "docs/operator.md"):
        assert f"]({doc})" in readme, doc
    for topic in (
        "**Apply**",
        "**Scale.**",
        "**Switch mode**",
        "**Autoscale.**",
        "**Upgrade**",
        "**Uninstall.**",
        "kind load docker-image corescale-worker:dev corescale-operator:dev",
    ):
        assert topic in readme, topic
