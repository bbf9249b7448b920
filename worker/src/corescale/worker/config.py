"""The worker's settings: command line first, then CORESCALE_* variables, then defaults.

Every option has a variable (docs/contract.md) because the operator and the
image set them through the pod's environment. Values are checked here, once,
so that a bad one is a usage error (exit 2) before anything binds or forks.

SETTINGS is the one table of them: the command line, the variables, the
help text and the table in docs/worker.md (settings_table(), checked by a
unit test) all come from it.
"""

from __future__ import annotations

import argparse
import enum
import ipaddress
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

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
    keep_alive_timeout: float
    header_timeout: float
    write_delay: float

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


def _workers(source: str, text: str) -> int | None:
    try:
        return parse_workers(text)
    except UsageError as exc:
        raise UsageError(f"{source}: {exc}") from None


def _heartbeat(source: str, text: str) -> float:
    seconds = parse_seconds(source, text)
    if seconds < 1:
        raise UsageError(f"{source} must be at least 1 second, not {text!r}")
    return seconds


def _positive_seconds(source: str, text: str) -> float:
    seconds = parse_seconds(source, text)
    if seconds <= 0:
        raise UsageError(f"{source} must be more than 0 seconds, not {text!r}")
    return seconds


def _backlog(source: str, text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise UsageError(f"{source} must be a positive number, not {text!r}")
    return int(text)


class Setting(NamedTuple):
    """One setting: its option, its variable, its default and how its text is read."""

    name: str
    """The Config field; the variable is CORESCALE_<NAME>, the option --<name>."""
    parse: Callable[[str, str], object]
    """(where the text came from, the text) -> the value; UsageError if it is bad."""
    default: str
    """The text used when neither the command line nor the environment sets it."""
    help: str
    """What --help says."""
    meaning: str
    """What docs/worker.md's table says (Markdown)."""
    shown_default: str | None = None
    """The default as --help and the docs say it, when not the literal default text."""
    positional: bool = False
    switch: bool = False
    """An on/off option: --name and --no-name, and a true/false variable."""

    @property
    def variable(self) -> str:
        return "CORESCALE_" + self.name.upper()

    @property
    def option(self) -> str:
        return self.name.upper() if self.positional else "--" + self.name.replace("_", "-")


SETTINGS = (
    Setting(
        "app",
        lambda source, text: text,
        DEMO_APP,
        "module:factory returning an aiohttp web.Application",
        "the application factory",
        positional=True,
    ),
    Setting(
        "mode",
        lambda source, text: Mode(_choice(source, text, [m.value for m in Mode])),
        "auto",
        "single, prefork or auto",
        "`single`, `prefork`, or `auto` (see below)",
    ),
    Setting(
        "workers",
        _workers,
        "auto",
        "N or auto",
        f"1\u2013{MAX_WORKERS}, or `auto` (the CPUs really granted)",
    ),
    Setting(
        "bind",
        lambda source, text: parse_bind(text),
        "0.0.0.0:8080",
        "HOST:PORT",
        "`HOST:PORT`, `[IPv6]:PORT`, `:PORT`",
    ),
    Setting(
        "drain_delay",
        parse_seconds,
        "5",
        "seconds to keep serving after SIGTERM while /readyz fails",
        "seconds of serving after SIGTERM while /readyz fails",
    ),
    Setting(
        "shutdown_timeout",
        parse_seconds,
        "20",
        "seconds in-flight requests get to finish",
        "seconds in-flight requests get to finish",
    ),
    Setting(
        "access_log",
        parse_bool,
        "",
        "log every request",
        "one log line per request (`true/false/1/0/yes/no/on/off`)",
        shown_default="off",
        switch=True,
    ),
    Setting(
        "log_level",
        lambda source, text: _choice(source, text, LOG_LEVELS),
        "info",
        ", ".join(LOG_LEVELS),
        ", ".join(f"`{level}`" for level in LOG_LEVELS),
    ),
    Setting(
        "metrics_dir",
        lambda source, text: text or None,
        "",
        "folder for the shared metrics file",
        "where the shared metrics file lives",
        shown_default="none: anonymous shared memory (nothing on disk)",
    ),
    Setting(
        "heartbeat_timeout",
        _heartbeat,
        "30",
        "prefork: kill a worker whose event loop is stuck this long",
        "prefork: kill a worker whose event loop is stuck this long (≥ 1)",
    ),
    Setting(
        "accept",
        lambda source, text: Accept(_choice(source, text, [a.value for a in Accept])),
        "balanced",
        "prefork: balanced, shared or reuseport",
        "prefork: `balanced`, `shared` or `reuseport` (see *Accept strategy*)",
    ),
    Setting(
        "backlog",
        _backlog,
        "2048",
        "listen backlog",
        "listen backlog (the kernel caps it at `net.core.somaxconn`)",
    ),
    Setting(
        "keep_alive_timeout",
        _positive_seconds,
        "75",
        "seconds an idle keep-alive connection stays open between requests",
        "seconds an idle keep-alive connection stays open between requests (longer than the "
        "60 s idle timeout of common proxies and load balancers, so that they close first)",
    ),
    Setting(
        "header_timeout",
        _positive_seconds,
        "10",
        "seconds a client has to send a whole request head, from connecting or from its first byte",
        "seconds a client has to send a whole request head: from connecting for the first "
        "request, from its first byte for the next ones (slow or silent clients are closed)",
    ),
    Setting(
        "write_delay",
        parse_seconds,
        "0.001",
        "seconds an answer may wait to leave with the others of the loop's turn (0: at once)",
        "seconds an answer may wait to be sent with the others of the event loop's turn: "
        "fewer trips between the process and the kernel under load (0 sends each at once)",
    ),
)


def _shown_default(setting: Setting) -> str:
    return setting.default if setting.shown_default is None else setting.shown_default


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
    for setting in SETTINGS:
        shown = _shown_default(setting).replace("`", "")
        # "(default auto)", but "(default: a private folder ...)".
        default = f"default: {shown}" if " " in shown else f"default {shown}"
        text = f"{setting.help} [{setting.variable}] ({default})"
        if setting.positional:
            parser.add_argument(setting.name, nargs="?", metavar=setting.option, help=text)
        elif setting.switch:
            parser.add_argument(
                setting.option, action=argparse.BooleanOptionalAction, default=None, help=text
            )
        else:
            parser.add_argument(setting.option, help=text)
    return parser


def settings_table() -> str:
    """docs/worker.md's table of the settings, in Markdown."""
    lines = ["| option | variable | default | meaning |", "| --- | --- | --- | --- |"]
    for setting in SETTINGS:
        option = setting.option if setting.positional else f"`{setting.option}`"
        if setting.switch:
            option += f" / `--no-{setting.option[2:]}`"
        default = setting.shown_default or f"`{setting.default}`"
        lines.append(f"| {option} | `{setting.variable}` | {default} | {setting.meaning} |")
    return "\n".join(lines) + "\n"


def load_config(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> Config:
    """Parse the command line and the environment; UsageError on anything wrong.

    argparse itself exits with status 2 on unknown options, which is the same
    code a bad value gets here. An error names where the bad text came from:
    the option, or the variable.
    """
    environ = os.environ if env is None else env
    args = vars(build_parser().parse_args(argv))
    values: dict[str, Any] = {}
    for setting in SETTINGS:
        given = args[setting.name]
        if setting.switch and given is not None:
            values[setting.name] = bool(given)
        elif given is not None:
            values[setting.name] = setting.parse(setting.option, given)
        elif setting.variable in environ:
            values[setting.name] = setting.parse(setting.variable, environ[setting.variable])
        else:
            values[setting.name] = setting.parse(setting.option, setting.default)
    values["host"], values["port"] = values.pop("bind")
    config = Config(**values)
    if config.mode is Mode.SINGLE and config.workers not in (None, 1):
        raise UsageError(
            f"--mode single runs exactly one process; drop --workers {config.workers} "
            "or use --mode prefork"
        )
    return config
