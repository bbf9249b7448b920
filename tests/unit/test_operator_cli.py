"""The command line and logging: refusals before any cluster is contacted."""

import json
import logging
import os
import subprocess
import sys

from corescale.operator.process import logs


def _run(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "corescale.operator", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=os.environ | {"KUBECONFIG": "/nonexistent"} | env,
    )


def test_arguments_are_refused_with_a_pointer_to_the_settings() -> None:
    result = _run("--namespace", "x")
    assert result.returncode == 2
    assert "CORESCALE_" in result.stderr


def test_a_bad_setting_is_named_and_stops_the_operator() -> None:
    result = _run(CORESCALE_LOG_FORMAT="xml")
    assert result.returncode == 2
    assert "CORESCALE_LOG_FORMAT='xml'" in result.stderr


def test_json_logs_are_one_object_per_line() -> None:
    record = logging.LogRecord(
        "corescale.operator.runtime.reconcile",
        logging.INFO,
        __file__,
        1,
        "%s/%s: scaled 2 -> 4 workers",
        ("ns", "hello"),
        None,
    )
    entry = json.loads(logs.JsonFormatter().format(record))
    assert entry["message"] == "ns/hello: scaled 2 -> 4 workers"
    assert entry["level"] == "info"
    assert entry["logger"] == "corescale.operator.runtime.reconcile"
