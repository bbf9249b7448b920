"""The `corescale-worker` command: settings, mode, socket, then single or prefork."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence

from corescale.worker.config import Config, Mode, load_config
from corescale.worker.errors import ExitCode, UsageError, WorkerError
from corescale.worker.limits import raise_open_file_limit

log = logging.getLogger(__name__)

LOG_FORMAT = "%(asctime)s %(levelname)s [%(process)d] %(name)s: %(message)s"


def resolve_mode(config: Config) -> tuple[Mode, int]:
    """Single or prefork, and how many workers, from the settings and the CPUs really granted.

    One CPU means one process: a second would only take turns on the same
    CPU. `auto` reads the cgroup quota and the affinity mask, never
    `os.cpu_count()` alone.
    """
    if config.mode is Mode.SINGLE:
        return Mode.SINGLE, 1
    if config.workers is not None:
        count = config.workers
    else:
        from corescale.worker.cgroup import available_cpus  # noqa: PLC0415 (see _serve)

        count = available_cpus()
    if config.mode is Mode.AUTO and count == 1:
        return Mode.SINGLE, 1
    return Mode.PREFORK, count


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the worker; the process exit code (see docs/contract.md)."""
    try:
        config = load_config(argv)
    except UsageError as exc:
        sys.stderr.write(f"corescale-worker: error: {exc}\n")
        return int(exc.exit_code)
    logging.basicConfig(level=config.log_level.upper(), format=LOG_FORMAT, stream=sys.stderr)
    raise_open_file_limit()
    mode, workers = resolve_mode(config)
    if mode is Mode.SINGLE and os.getpid() == 1:
        from corescale.worker.init import run_as_init  # noqa: PLC0415

        return run_as_init(lambda: _serve(config, mode, workers))
    return _serve(config, mode, workers)


def _serve(config: Config, mode: Mode, workers: int) -> int:
    """Loads the app, binds, and serves in the chosen mode; the exit code.

    aiohttp and the app are imported only here, so that the init a
    single-mode PID 1 runs (init.py) forks before any of it is loaded and
    stays a few MiB, and a single-mode process never loads the prefork
    machinery (about 0.6 MiB).
    """
    from corescale.worker.accept import listener  # noqa: PLC0415
    from corescale.worker.loader import load_factory  # noqa: PLC0415

    try:
        factory = load_factory(config.app)
        log.info("mode=%s workers=%d app=%s bind=%s", mode.value, workers, config.app, config.bind)
        sock = listener(config, prefork=mode is Mode.PREFORK)
        if mode is Mode.SINGLE:
            from corescale.worker.single import run_single  # noqa: PLC0415

            return run_single(config, factory, sock)
        from corescale.worker.prefork import Master  # noqa: PLC0415

        return int(Master(config, factory, sock, workers).run())
    except WorkerError as exc:
        log.error("%s", exc)
        return int(exc.exit_code)
    except KeyboardInterrupt:
        return int(ExitCode.OK)
