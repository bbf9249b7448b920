"""Bad input ends with the documented exit code and a message that says what to do."""

from __future__ import annotations

import socket

import pytest
from workerproc import StartWorker

pytestmark = pytest.mark.worker


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["--workers", "0"], {}, "workers must be between 1 and 255"),
        (["--workers", "many"], {}, "workers must be a positive number or 'auto'"),
        ([], {"CORESCALE_WORKERS": "0"}, "CORESCALE_WORKERS"),
        (["--mode", "cluster"], {}, "--mode must be one of single, prefork, auto"),
        (["--mode", "single", "--workers", "3"], {}, "--mode single runs exactly one process"),
        (["--drain-delay", "-1"], {}, "--drain-delay must be a finite number"),
        ([], {"CORESCALE_SHUTDOWN_TIMEOUT": "soon"}, "CORESCALE_SHUTDOWN_TIMEOUT must be"),
        ([], {"CORESCALE_ACCESS_LOG": "maybe"}, "CORESCALE_ACCESS_LOG must be true or false"),
        (["--bind", "localhost"], {}, "is not HOST:PORT"),
        (["--log-level", "loud"], {}, "--log-level must be one of"),
        (["--no-such-option"], {}, "unrecognized arguments"),
    ],
)
def test_usage_errors_exit_2(
    start_worker: StartWorker, args: list[str], env: dict[str, str], message: str
) -> None:
    worker = start_worker(*args, env=env, wait=False)
    assert worker.wait(30) == 2
    assert message in worker.log()


@pytest.mark.parametrize(
    ("app", "message"),
    [
        ("no_such_module:create_app", "module 'no_such_module' failed to import"),
        ("worker_test_apps:no_such_factory", "has no attribute 'no_such_factory'"),
        ("worker_test_apps", "must be 'package.module:factory'"),
        ("worker_test_apps:MAX_NOTHING", "has no attribute"),
    ],
)
def test_an_app_that_cannot_be_imported_exits_2(
    start_worker: StartWorker, app: str, message: str
) -> None:
    worker = start_worker(app, wait=False)
    assert worker.wait(30) == 2
    assert message in worker.log()
    assert "cannot import APP" in worker.log() or "must be" in worker.log()


@pytest.mark.parametrize("mode", ["single", "prefork"])
@pytest.mark.parametrize(
    ("app", "message"),
    [
        ("worker_test_apps:raising_factory", "RuntimeError: database unreachable"),
        ("worker_test_apps:not_an_app", "returned str, not an aiohttp web.Application"),
    ],
)
def test_a_factory_that_fails_exits_3_without_respawning(
    start_worker: StartWorker, mode: str, app: str, message: str
) -> None:
    worker = start_worker(
        app, "--mode", mode, "--workers", "2" if mode == "prefork" else "1", wait=False
    )
    assert worker.wait(30) == 3
    log = worker.log()
    assert message in log
    if mode == "prefork":
        assert log.count("failed to boot") == 1, "the master stops at the first boot failure"


def test_a_port_in_use_exits_3_naming_the_port(start_worker: StartWorker) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        worker = start_worker("--bind", f"127.0.0.1:{port}", wait=False)
        assert worker.wait(30) == 3
    log = worker.log()
    assert f"port {port} on 127.0.0.1 is already in use" in log
    assert "--bind HOST:PORT" in log
