"""Settings every test run shares, whichever part of corescale it tests.

End-to-end tests must never pass by not running: if the cluster cannot be
reached or started, they fail with the reason instead of being skipped.
"""

from __future__ import annotations

import os
from collections.abc import Generator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def pytest_configure(config: pytest.Config) -> None:
    """Put the pinned cluster binaries (kubectl, helm) on PATH.

    `make` does this already; running `pytest` by hand should find the same
    kubectl and helm instead of whichever the machine happens to have.
    """
    tools = Path(os.environ.get("CORESCALE_TOOLS", Path.home() / ".cache" / "corescale-tools"))
    os.environ["CORESCALE_TOOLS"] = str(tools)
    bin_dir = str(tools / "bin")
    path = os.environ.get("PATH", "").split(os.pathsep)
    if bin_dir not in path:
        os.environ["PATH"] = os.pathsep.join([bin_dir, *path])


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Turn a skipped end-to-end test into a failure.

    A skip would let a run without a working cluster look green.
    """
    report = yield
    if (
        report.skipped
        and item.get_closest_marker("e2e") is not None
        and not hasattr(report, "wasxfail")
    ):
        report.outcome = "failed"
        report.longrepr = f"e2e test skipped, which hides a missing cluster: {report.longrepr}"
    return report
