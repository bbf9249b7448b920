"""Settings: command line over CORESCALE_* variables over defaults, and usage errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from corescale.worker.cli import resolve_mode
from corescale.worker.config import (
    DEMO_APP,
    SETTINGS,
    Accept,
    Config,
    Mode,
    build_parser,
    load_config,
    parse_bind,
    settings_table,
)
from corescale.worker.errors import ExitCode, UsageError


def test_defaults_follow_the_contract() -> None:
    config = load_config([], env={})
    assert config.app == DEMO_APP
    assert (config.mode, config.workers) == (Mode.AUTO, None)
    assert (config.host, config.port) == ("0.0.0.0", 8080)
    assert (config.drain_delay, config.shutdown_timeout) == (5.0, 20.0)
    assert config.access_log is False
    assert config.log_level == "info"
    assert config.metrics_dir is None
    assert config.accept is Accept.BALANCED


def test_environment_fills_what_the_command_line_leaves_out() -> None:
    env = {
        "CORESCALE_APP": "pkg.mod:make",
        "CORESCALE_MODE": "prefork",
        "CORESCALE_WORKERS": "3",
        "CORESCALE_BIND": "[::1]:9000",
        "CORESCALE_DRAIN_DELAY": "0.5",
        "CORESCALE_SHUTDOWN_TIMEOUT": "7",
        "CORESCALE_ACCESS_LOG": "yes",
        "CORESCALE_LOG_LEVEL": "DEBUG",
        "CORESCALE_METRICS_DIR": "/tmp/m",
    }
    config = load_config([], env=env)
    assert (config.app, config.mode, config.workers) == ("pkg.mod:make", Mode.PREFORK, 3)
    assert (config.host, config.port, config.bind) == ("::1", 9000, "[::1]:9000")
    assert (config.drain_delay, config.shutdown_timeout) == (0.5, 7.0)
    assert (config.access_log, config.log_level, config.metrics_dir) == (True, "debug", "/tmp/m")

    overridden = load_config(["other:app", "--workers", "2", "--no-access-log"], env=env)
    assert (overridden.app, overridden.workers, overridden.access_log) == ("other:app", 2, False)


@pytest.mark.parametrize(
    "argv",
    [
        ["--workers", "0"],
        ["--workers", "-1"],
        ["--workers", "x"],
        ["--workers", "256"],
        ["--mode", "fork"],
        ["--bind", "8080"],
        ["--bind", "host:port"],
        ["--bind", "0.0.0.0:70000"],
        ["--drain-delay", "nan"],
        ["--shutdown-timeout", "-3"],
        ["--heartbeat-timeout", "0.5"],
        ["--accept", "random"],
        ["--backlog", "0"],
        ["--mode", "single", "--workers", "2"],
    ],
)
def test_bad_values_are_usage_errors(argv: list[str]) -> None:
    with pytest.raises(UsageError) as caught:
        load_config(argv, env={})
    assert caught.value.exit_code == ExitCode.USAGE
    assert int(caught.value.exit_code) == 2


def test_parse_bind_forms() -> None:
    assert parse_bind("127.0.0.1:8080") == ("127.0.0.1", 8080)
    assert parse_bind(":8081") == ("0.0.0.0", 8081)
    assert parse_bind("[::]:80") == ("::", 80)


@pytest.mark.parametrize(
    ("argv", "cpus", "expected"),
    [
        (["--mode", "auto"], 1, (Mode.SINGLE, 1)),
        (["--mode", "auto"], 4, (Mode.PREFORK, 4)),
        (["--mode", "auto", "--workers", "1"], 4, (Mode.SINGLE, 1)),
        (["--mode", "auto", "--workers", "3"], 1, (Mode.PREFORK, 3)),
        (["--mode", "prefork"], 1, (Mode.PREFORK, 1)),
        (["--mode", "prefork", "--workers", "2"], 8, (Mode.PREFORK, 2)),
        (["--mode", "single"], 8, (Mode.SINGLE, 1)),
    ],
)
def test_resolve_mode(
    monkeypatch: pytest.MonkeyPatch, argv: list[str], cpus: int, expected: tuple[Mode, int]
) -> None:
    monkeypatch.setattr("corescale.worker.cgroup.available_cpus", lambda: cpus)
    assert resolve_mode(load_config(argv, env={})) == expected


def test_docs_worker_md_table_is_the_settings_table() -> None:
    """docs/worker.md's settings are generated from SETTINGS (hack/reference.py --write)."""
    doc = (Path(__file__).parents[2] / "docs" / "worker.md").read_text()
    begin = doc.index("<!-- BEGIN GENERATED worker-settings")
    block = doc[doc.index("\n", begin) + 1 : doc.index("<!-- END GENERATED worker-settings")]
    assert block == settings_table(), "docs/worker.md is stale: run hack/reference.py --write"


def test_every_setting_has_an_option_a_variable_and_help() -> None:
    helps = {action.dest: action.help or "" for action in build_parser()._actions}
    for setting in SETTINGS:
        assert f"[{setting.variable}]" in helps[setting.name], setting.name
    # One setting per Config field (bind is host and port).
    assert ({s.name for s in SETTINGS} - {"bind"}) | {"host", "port"} == set(Config._fields)
