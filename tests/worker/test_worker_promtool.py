"""The worker's /metrics passes ``promtool check metrics`` in both modes.

promtool is Prometheus' own linter of the text exposition (types, names,
histogram buckets); it comes with ``make prometheus`` (hack/cluster/build.sh
prometheus, which ``make test`` runs in its go-builds phase). Without it the
test is skipped, visibly: tests/e2e/test_prometheus.py checks the image's
workers with it too, and that one never skips.
"""

from __future__ import annotations

import shutil
import subprocess

import pytest
from workerproc import StartWorker, metric_values, wait_until

pytestmark = pytest.mark.worker

MODES = {"single": ("--mode", "single"), "prefork": ("--mode", "prefork", "--workers", "2")}


@pytest.mark.parametrize("mode", MODES)
def test_exposition_passes_promtool(mode: str, start_worker: StartWorker) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not built: make prometheus (hack/cluster/build.sh prometheus)")
    worker = start_worker(*MODES[mode])
    for path in ("/", "/", "/missing"):
        worker.get(path)
    # The page holds what promtool is to judge: requests by two codes, a
    # histogram. In prefork another worker's counts reach the page on its next
    # heartbeat (at most half a second), so the page is read until they have.
    pages: list[str] = []

    def complete() -> bool:
        status, page = worker.get("/metrics")
        assert status == 200
        pages.append(page)
        return len(metric_values(page, "corescale_requests_total")) >= 2

    assert wait_until(complete, 3, 0.1), pages[-1]
    page = pages[-1]
    assert metric_values(page, "corescale_request_duration_seconds_count")
    checked = subprocess.run(
        [promtool, "check", "metrics"],
        input=page,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert checked.returncode == 0, (checked.stdout, checked.stderr, page)
