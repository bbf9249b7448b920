"""``corescale-operator``: run the CoreCluster operator until it is stopped.

There are no command-line options on purpose: every setting comes from a
``CORESCALE_*`` environment variable (see settings.py and docs/operator.md),
which is how a Deployment or the Helm chart configures it.
"""

from __future__ import annotations

import logging
import sys

import kopf

from corescale.operator.process import heap, logs, metrics, settings
from corescale.operator.runtime import handlers
from corescale.operator.runtime.state import State

log = logging.getLogger(__name__)


def main(argv: list[str] | None = None) -> int:
    """Read the settings, then hand control to kopf; returns the exit code."""
    args = sys.argv[1:] if argv is None else argv
    if args:
        sys.stderr.write(
            "corescale-operator takes no arguments; it is configured by CORESCALE_* "
            "environment variables (see docs/operator.md)\n"
        )
        return 2
    try:
        ours = settings.load()
    except settings.SettingsError as exc:
        sys.stderr.write(f"corescale-operator: {exc}\n")
        return 2
    logs.configure(ours.log_format, ours.log_level)
    try:
        metrics.serve(ours.metrics)
    except OSError as exc:
        sys.stderr.write(f"corescale-operator: cannot serve metrics on {ours.metrics}: {exc}\n")
        return 2
    heap.keep_long_lived_frozen()
    registry = kopf.OperatorRegistry()
    handlers.register(registry)
    kopf.run(
        registry=registry,
        clusterwide=ours.clusterwide,
        namespaces=list(ours.namespaces),
        standalone=not ours.peering,
        peering_name=ours.peering or None,
        priority=ours.priority,
        liveness_endpoint=ours.liveness_url,
        memo=State(ours),
    )
    log.info("stopped")
    return 0
