"""The worker's settings: command line first, then CORESCALE_* variables, then defaults.

Every option has a variable (docs/contract.md) because the operator and the
image set them through the pod's environment. Values are checked here, once,
so that a bad one is a usage error (exit 2) before anything binds or forks.
"""

from __future__ import annotations

import argparse
import enum
import ipaddress
import os
from collections.abc import Mapping, Sequence
from typing import NamedTuple

from corescale.worker.errors import UsageError

DEMO_APP = "corescale.worker.app:create_app"
MAX_WORKERS = 255


class Mode(enum.StrEnum):
    """How requests are served: one process, or a master with forked workers."""

    SINGLE = "single"
    PREFORK = "prefork"
    AUTO = "auto"


class Accept(enum.StrEnum):
    """How prefork workers share the port (see docs/worker.md for the measurement)."""

    BALANCED = "balanced"
    SHARED = "shared"
    REUSEPORT = "reuseport"


LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"", "0", "false", "no", "off"})


class Config(NamedTuple):
    """Everything one run needs; `workers` is None for `auto`.

    A NamedTuple rather than a dataclass: the dataclasses module is the one
    import a single-mode worker would otherwise load for this alone.
    """

    app: str
    mode: Mode
    workers: int | None
    host: str
    port: int
    drain_delay: float
    shutdown_timeout: float
    access_log: bool
    log_level: str
    metrics_dir: str | None
    heartbeat_timeout: float
    accept: Accept
    backlog: int

    @property
    def bind(self) -> str:
        """HOST:PORT as a person would type it (IPv6 in brackets)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


def parse_bind(value: str) -> tuple[str, int]:
    """HOST:PORT, [IPv6]:PORT or :PORT (all addresses)."""
    host, sep, port_text = value.rpartition(":")
    if not sep or not port_text.isdigit():
        raise UsageError(f"bind address {value!r} is not HOST:PORT (e.g. 0.0.0.0:8080)")
    port = int(port_text)
    if port > 65535:
        raise UsageError(f"bind address {value!r}: port {port} is above 65535")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
        try:
            ipaddress.IPv6Address(host)
        except ValueError as exc:
            raise UsageError(f"bind address {value!r}: {exc}") from None
    return host or "0.0.0.0", port


def parse_workers(value: str) -> int | None:
    """A positive count or `auto` (None)."""
    if value.strip().lower() == "auto":
        return None
    try:
        count = int(value)
    except ValueError:
        raise UsageError(f"workers must be a positive number or 'auto', not {value!r}") from None
    if not 1 <= count <= MAX_WORKERS:
        raise UsageError(f"workers must be between 1 and {MAX_WORKERS} or 'auto', not {count}")
    return count


def parse_seconds(name: str, value: str) -> float:
    """A duration in seconds, zero or more."""
    try:
        seconds = float(value)
    except ValueError:
        raise UsageError(f"{name} must be a number of seconds, not {value!r}") from None
    if not seconds >= 0 or seconds == float("inf"):
        raise UsageError(f"{name} must be a finite number of seconds >= 0, not {value!r}")
    return seconds


def parse_bool(name: str, value: str) -> bool:
    """The spellings of yes and no that people put into environment variables."""
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise UsageError(f"{name} must be true or false, not {value!r}")


def _choice(name: str, value: str, choices: Sequence[str]) -> str:
    lowered = value.strip().lower()
    if lowered not in choices:
        raise UsageError(f"{name} must be one of {', '.join(choices)}, not {value!r}")
    return lowered


def build_parser() -> argparse.ArgumentParser:
    """The command line; defaults are None so that the environment can fill them in."""
    parser = argparse.ArgumentParser(
        prog="corescale-worker",
        description=(
            "Serve an aiohttp application as one process (single) or as a prefork "
            "master with N workers. Every option can also be set by the CORESCALE_* "
            "variable named in brackets."
        ),
    )
    parser.add_argument(
        "app",
        nargs="?",
        metavar="APP",
        help="module:factory returning an aiohttp web.Application [CORESCALE_APP] "
        "(default: the built-in demo app)",
    )
    parser.add_argument("--mode", help="single, prefork or auto [CORESCALE_MODE] (default auto)")
    parser.add_argument("--workers", help="N or auto [CORESCALE_WORKERS] (default auto)")
    parser.add_argument("--bind", help="HOST:PORT [CORESCALE_BIND] (default 0.0.0.0:8080)")
    parser.add_argument(
        "--drain-delay",
        help="seconds to keep serving after SIGTERM while /readyz fails "
        "[CORESCALE_DRAIN_DELAY] (default 5)",
    )
    parser.add_argument(
        "--shutdown-timeout",
        help="seconds in-flight requests get to finish [CORESCALE_SHUTDOWN_TIMEOUT] (default 20)",
    )
    parser.add_argument(
        "--access-log",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="log every request [CORESCALE_ACCESS_LOG] (default off)",
    )
    parser.add_argument(
        "--log-level", help=f"{', '.join(LOG_LEVELS)} [CORESCALE_LOG_LEVEL] (default info)"
    )
    parser.add_argument(
        "--metrics-dir",
        help="folder for the shared metrics file [CORESCALE_METRICS_DIR] "
        "(default: a private temporary folder)",
    )
    parser.add_argument(
        "--heartbeat-timeout",
        help="prefork: kill a worker whose event loop is stuck this long "
        "[CORESCALE_HEARTBEAT_TIMEOUT] (default 30)",
    )
    parser.add_argument(
        "--accept",
        help="prefork: balanced, shared or reuseport [CORESCALE_ACCEPT] (default balanced)",
    )
    parser.add_argument("--backlog", help="listen backlog [CORESCALE_BACKLOG] (default 2048)")
    return parser


def _pick(cli: str | None, env: Mapping[str, str], name: str, default: str) -> tuple[str, str]:
    """The value and where it came from, so that an error names the right source."""
    if cli is not None:
        return cli, "--" + name.lower().replace("_", "-")
    variable = "CORESCALE_" + name
    if variable in env:
        return env[variable], variable
    return default, "--" + name.lower().replace("_", "-")


def load_config(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> Config:
    """Parse the command line and the environment; UsageError on anything wrong.

    argparse itself exits with status 2 on unknown options, which is the same
    code a bad value gets here.
    """
    environ = os.environ if env is None else env
    args = build_parser().parse_args(argv)

    app, _ = _pick(args.app, environ, "APP", DEMO_APP)
    mode_text, source = _pick(args.mode, environ, "MODE", "auto")
    mode = Mode(_choice(source, mode_text, [m.value for m in Mode]))
    workers_text, source = _pick(args.workers, environ, "WORKERS", "auto")
    try:
        workers = parse_workers(workers_text)
    except UsageError as exc:
        raise UsageError(f"{source}: {exc}") from None
    bind_text, _ = _pick(args.bind, environ, "BIND", "0.0.0.0:8080")
    host, port = parse_bind(bind_text)
    drain_text, source = _pick(args.drain_delay, environ, "DRAIN_DELAY", "5")
    drain_delay = parse_seconds(source, drain_text)
    timeout_text, source = _pick(args.shutdown_timeout, environ, "SHUTDOWN_TIMEOUT", "20")
    shutdown_timeout = parse_seconds(source, timeout_text)
    if args.access_log is not None:
        access_log = bool(args.access_log)
    else:
        access_log = parse_bool("CORESCALE_ACCESS_LOG", environ.get("CORESCALE_ACCESS_LOG", ""))
    level_text, source = _pick(args.log_level, environ, "LOG_LEVEL", "info")
    log_level = _choice(source, level_text, LOG_LEVELS)
    metrics_dir = args.metrics_dir or environ.get("CORESCALE_METRICS_DIR") or None
    heartbeat_text, source = _pick(args.heartbeat_timeout, environ, "HEARTBEAT_TIMEOUT", "30")
    heartbeat_timeout = parse_seconds(source, heartbeat_text)
    if heartbeat_timeout < 1:
        raise UsageError(f"{source} must be at least 1 second, not {heartbeat_text!r}")
    accept_text, source = _pick(args.accept, environ, "ACCEPT", "balanced")
    accept = Accept(_choice(source, accept_text, [a.value for a in Accept]))
    backlog_text, source = _pick(args.backlog, environ, "BACKLOG", "2048")
    if not backlog_text.isdigit() or int(backlog_text) < 1:
        raise UsageError(f"{source} must be a positive number, not {backlog_text!r}")

    if mode is Mode.SINGLE and workers not in (None, 1):
        raise UsageError(
            f"--mode single runs exactly one process; drop --workers {workers} "
            "or use --mode prefork"
        )
    return Config(
        app=app,
        mode=mode,
        workers=workers,
        host=host,
        port=port,
        drain_delay=drain_delay,
        shutdown_timeout=shutdown_timeout,
        access_log=access_log,
        log_level=log_level,
        metrics_dir=metrics_dir,
        heartbeat_timeout=heartbeat_timeout,
        accept=accept,
        backlog=int(backlog_text),
    )
