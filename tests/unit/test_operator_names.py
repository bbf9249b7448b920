"""The operator's API names are the CRD's."""

from __future__ import annotations

from pathlib import Path

import yaml

from corescale.operator.api import names

CRD = Path(__file__).parents[2] / "manifests" / "crd" / "corescale.io_coreclusters.yaml"


def test_the_corecluster_resource_is_named_as_the_crd_names_it() -> None:
    crd = yaml.safe_load(CRD.read_text())["spec"]
    (served,) = [v["name"] for v in crd["versions"] if v["storage"]]
    assert (crd["group"], served) == (names.GROUP, names.VERSION)
    assert crd["names"]["kind"] == names.KIND
    assert crd["names"]["plural"] == names.PLURAL
    assert (crd["group"], served, crd["names"]["plural"]) == names.CORECLUSTERS
    assert names.PLURALS[(f"{crd['group']}/{served}", crd["names"]["kind"])] == names.PLURAL
