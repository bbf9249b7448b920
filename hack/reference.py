#!/usr/bin/env python3
"""Generates the README's configuration reference and docs/worker.md's settings table.

The CoreCluster fields come from the CRD (manifests/crd/), the chart values
from the comments in charts/corescale/values.yaml, the worker's settings from
their table in corescale.worker.config. Writing them by hand would let the
documents drift from what the API server, Helm and the worker accept;
generating them, and checking in unit tests that the documents hold exactly
what this script prints, keeps them in step.

    python hack/reference.py --write   # rewrite the generated tables
    python hack/reference.py --check   # exit 1 when a document is stale
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
CRD = ROOT / "manifests" / "crd" / "corescale.io_coreclusters.yaml"
VALUES = ROOT / "charts" / "corescale" / "values.yaml"
README = ROOT / "README.md"
WORKER_DOC = ROOT / "docs" / "worker.md"

BEGIN = "<!-- BEGIN GENERATED {name}: hack/reference.py --write -->"
END = "<!-- END GENERATED {name} -->"

_KEY = re.compile(r"^(?P<indent> *)(?P<key>[A-Za-z0-9_.-]+):(?P<rest>.*)$")


def _cell(text: str) -> str:
    """Text safe inside a Markdown table cell."""
    return text.replace("|", "\\|").replace("\n", " ").strip()


def _code(value: Any) -> str:
    return "`" + json.dumps(value, separators=(", ", ": ")) + "`"


def _schema_type(schema: dict[str, Any]) -> str:
    if schema.get("x-kubernetes-int-or-string"):
        return "quantity"
    kind = str(schema.get("type", "object"))
    if kind == "array":
        return f"list of {_schema_type(schema.get('items', {}))}"
    return kind


def _constraints(schema: dict[str, Any]) -> str:
    """The limits the API server enforces, in words."""
    parts = []
    if "enum" in schema:
        parts.append("one of " + ", ".join(f"`{v}`" for v in schema["enum"]))
    if "minimum" in schema and "maximum" in schema:
        parts.append(f"{schema['minimum']} to {schema['maximum']}")
    elif "minimum" in schema:
        parts.append(f"at least {schema['minimum']}")
    elif "maximum" in schema:
        parts.append(f"at most {schema['maximum']}")
    if "maxItems" in schema:
        parts.append(f"at most {schema['maxItems']} entries")
    return "; ".join(parts)


def _crd_spec() -> dict[str, Any]:
    """The openAPIV3Schema of spec in the storage version of the CRD."""
    crd = yaml.safe_load(CRD.read_text())
    version = next(v for v in crd["spec"]["versions"] if v.get("storage"))
    spec: dict[str, Any] = version["schema"]["openAPIV3Schema"]["properties"]["spec"]
    return spec


def _spec_rows(schema: dict[str, Any], prefix: str) -> Iterator[tuple[str, str, str, str]]:
    """One row per field; objects with properties of their own are expanded."""
    for name, field in schema.get("properties", {}).items():
        path = f"{prefix}.{name}"
        if field.get("type") == "object" and "properties" in field:
            yield from _spec_rows(field, path)
            continue
        default = _code(field["default"]) if "default" in field else ""
        words = [field.get("description", "").strip(), _constraints(field)]
        required = name in schema.get("required", [])
        if required:
            words.append("Required")
        text = ". ".join(w[0].upper() + w[1:].rstrip(".") for w in words if w)
        yield path, _schema_type(field), default, text + ("." if text else "")


def spec_table() -> str:
    """The CoreCluster spec fields as a Markdown table."""
    lines = ["| Field | Type | Default | Description |", "| --- | --- | --- | --- |"]
    for path, kind, default, text in _spec_rows(_crd_spec(), "spec"):
        lines.append(f"| `{path}` | {kind} | {default} | {_cell(text)} |")
    return "\n".join(lines)


def values_comments(text: str) -> dict[str, str]:
    """Each key of values.yaml with the comment block right above it.

    A blank line ends a comment block, so a file or section header that is
    separated from the next key by an empty line describes no key.
    """
    comments: dict[str, str] = {}
    stack: list[tuple[int, str]] = []
    pending: list[str] = []
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped:
            pending = []
            continue
        if stripped.startswith("#"):
            pending.append(stripped.lstrip("#").strip())
            continue
        match = _KEY.match(line)
        if match is None:
            pending = []
            continue
        indent = len(match["indent"])
        while stack and stack[-1][0] >= indent:
            stack.pop()
        path = ".".join([*(key for _, key in stack), match["key"]])
        stack.append((indent, match["key"]))
        if pending:
            comments[path] = " ".join(pending)
        pending = []
    return comments


def _lookup(values: dict[str, Any], path: str) -> Any:
    node: Any = values
    for key in path.split("."):
        node = node[key]
    return node


def values_rows() -> list[tuple[str, str, str]]:
    """(key, default, description) for every documented leaf of values.yaml.

    A documented key whose children are documented too is a heading, not a
    row: its children carry the defaults.
    """
    text = VALUES.read_text()
    values = yaml.safe_load(text)
    comments = values_comments(text)
    rows = []
    for path, comment in comments.items():
        if any(other.startswith(path + ".") for other in comments):
            continue
        rows.append((path, _code(_lookup(values, path)), comment))
    return rows


def values_table() -> str:
    """The chart values as a Markdown table."""
    lines = ["| Key | Default | Description |", "| --- | --- | --- |"]
    for path, default, comment in values_rows():
        lines.append(f"| `{path}` | {default} | {_cell(comment)} |")
    return "\n".join(lines)


def sections() -> dict[str, str]:
    return {"corecluster-spec": spec_table(), "chart-values": values_table()}


def worker_sections() -> dict[str, str]:
    """docs/worker.md's generated part: the worker's settings, from their one table."""
    from corescale.worker.config import settings_table  # noqa: PLC0415 - only here

    return {"worker-settings": settings_table().rstrip("\n")}


def render(readme: str, generated: dict[str, str] | None = None) -> str:
    """`readme` with every generated section replaced by fresh output.

    ``generated`` maps section names to their text; the README's by default.
    """
    for name, table in (sections() if generated is None else generated).items():
        begin, end = BEGIN.format(name=name), END.format(name=name)
        pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.DOTALL)
        if not pattern.search(readme):
            raise ValueError(f"the file lacks the markers of section {name}: {begin}")
        readme = pattern.sub(lambda _m: f"{begin}\n{table}\n{end}", readme)  # noqa: B023
    return readme


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--write", action="store_true", help="rewrite the generated tables")
    mode.add_argument("--check", action="store_true", help="exit 1 if a document is stale")
    args = parser.parse_args()
    stale = 0
    for path, generated in ((README, sections()), (WORKER_DOC, worker_sections())):
        current = path.read_text()
        fresh = render(current, generated)
        if args.write:
            path.write_text(fresh)
        elif fresh != current:
            name = path.relative_to(ROOT)
            sys.stderr.write(f"{name} is stale: run python hack/reference.py --write\n")
            stale = 1
    return stale


if __name__ == "__main__":
    sys.exit(main())
