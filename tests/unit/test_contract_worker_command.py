"""The operator's worker command line and environment, read by the worker itself.

render.py writes `corescale-worker` arguments and CORESCALE_* variables into
every worker pod; the worker's own config loader is what reads them there.
Feeding one to the other here means a flag or variable renamed on one side
fails in seconds instead of in a pod that never starts.
"""

from __future__ import annotations

from typing import Any

import pytest

from corescale.operator.api import spec
from corescale.operator.decide import render
from corescale.operator.decide.render import Owner
from corescale.worker.config import Config, Mode, load_config

OWNER = Owner("hello", "shop", "0f0e-uid")


def worker_config(raw: dict[str, Any]) -> Config:
    """What `corescale-worker` makes of the pod that render.py renders for ``raw``."""
    deployment = render.deployment(OWNER, spec.parse(raw, "corescale-worker:dev"))
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == ["corescale-worker"]
    env = {entry["name"]: entry["value"] for entry in container["env"] if "value" in entry}
    return load_config(container["args"], env=env)


def test_pods_mode_runs_one_single_worker_on_the_spec_port() -> None:
    config = worker_config({"port": 9000, "shutdownTimeoutSeconds": 45})
    assert (config.mode, config.workers) == (Mode.SINGLE, None)
    assert (config.host, config.port) == ("0.0.0.0", 9000)
    assert config.shutdown_timeout == 45.0
    # The pod drains in its preStop sleep, so the worker itself does not wait.
    assert config.drain_delay == 0.0


def test_prefork_mode_runs_workers_per_pod_and_the_app() -> None:
    config = worker_config(
        {"mode": "prefork", "replicas": 4, "workersPerPod": 2, "app": "shop.web:create_app"}
    )
    assert (config.mode, config.workers) == (Mode.PREFORK, 2)
    assert config.app == "shop.web:create_app"
    assert config.port == 8080


@pytest.mark.parametrize("level", ["debug", "warning"])
def test_user_env_reaches_the_worker_config(level: str) -> None:
    config = worker_config({"env": [{"name": "CORESCALE_LOG_LEVEL", "value": level}]})
    assert config.log_level == level
