"""The `corescale-worker` command: settings, mode, socket, then single or prefork."""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence

from corescale.worker.config import Config, Mode, load_config
from corescale.worker.errors import ExitCode, UsageError, WorkerError
from corescale.worker.loader import load_factory
from corescale.worker.single import run_single
from corescale.worker.sockets import bind_listener

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
        from corescale.worker.cgroup import available_cpus  # noqa: PLC0415 (see main)

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
    try:
        factory = load_factory(config.app)
        mode, workers = resolve_mode(config)
        log.info("mode=%s workers=%d app=%s bind=%s", mode.value, workers, config.app, config.bind)
        reuse_port = mode is Mode.PREFORK and config.accept.value == "reuseport"
        sock = bind_listener(
            config.host, config.port, config.backlog, reuse_port=reuse_port, listen=not reuse_port
        )
        if mode is Mode.SINGLE:
            return run_single(config, factory, sock)
        # Imported here so that a single-mode process, the normal one-CPU
        # pod, never loads the prefork machinery: about 0.6 MiB of RSS.
        from corescale.worker.prefork import Master  # noqa: PLC0415

        return int(Master(config, factory, sock, workers).run())
    except WorkerError as exc:
        log.error("%s", exc)
        return int(exc.exit_code)
    except KeyboardInterrupt:
        return int(ExitCode.OK)
