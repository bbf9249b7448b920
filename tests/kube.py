"""Helpers for end-to-end tests and the operator benchmark: run kubectl, wait
for cluster state, call a Service from the host.

This is the one kubectl helper: tests/e2e, tests/charttools.py and
bench/operator/run.py all call it.

Waiting is polling with a generous deadline, never a fixed sleep: the cluster
runs on two shared cores and its speed varies, so tests wait for the state
they need and report what they saw last when it never comes.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import time
import urllib.request
from collections.abc import Callable
from typing import Any, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")


def kubectl(*args: str, stdin: str | None = None, timeout: float = 320) -> str:
    """Run kubectl (the KUBECONFIG fixture has set the environment) and return
    its output; a non-zero exit raises with kubectl's own message.

    The timeout is generous: on two shared cores a `rollout status` or a
    delete that waits for pods can take minutes."""
    proc = subprocess.run(
        ["kubectl", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"kubectl {' '.join(args)} failed ({proc.returncode}): {proc.stderr}")
    return proc.stdout


def kubectl_json(*args: str) -> Any:
    """`kubectl ... -o json`, parsed."""
    return json.loads(kubectl(*args, "-o", "json"))


def wait_for(
    what: str,
    probe: Callable[[], T | None],
    timeout: float = 120,
    interval: float = 1.0,
) -> T:
    """Poll `probe` until it returns something other than None or False.

    Exceptions from the probe count as "not yet" (the API server or a
    Service may be briefly unavailable); the last one is reported if the
    deadline passes, so a timeout says what was wrong rather than just "no".
    """
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            result = probe()
        except Exception as exc:
            last = exc
        else:
            if result is not None and result is not False:
                return result
            last = result
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}; last: {last!r}")
        time.sleep(interval)


def pod_is_ready(pod: Any) -> bool:
    """A pod counts once it runs, is not being deleted, and is Ready."""
    if pod.metadata.deletion_timestamp is not None or pod.status.phase != "Running":
        return False
    conditions = pod.status.conditions or []
    return any(c.type == "Ready" and c.status == "True" for c in conditions)


def wait_ready_pods(
    core: Any, namespace: str, selector: str, count: int, timeout: float = 180
) -> list[Any]:
    """Wait until exactly `count` pods matching `selector` are Ready and no
    others are still around (a scale-down or replacement has settled)."""

    def probe() -> list[Any] | None:
        pods = core.list_namespaced_pod(namespace, label_selector=selector).items
        ready = [p for p in pods if pod_is_ready(p)]
        if len(ready) == count and len(pods) == count:
            return ready
        return None

    return wait_for(f"{count} ready pods with {selector} in {namespace}", probe, timeout)


def http_get(url: str, timeout: float = 5) -> str:
    """GET `url` and return the body as text; HTTP errors raise."""
    with urllib.request.urlopen(url, timeout=timeout) as response:
        body: bytes = response.read()
    return body.decode()


def base_image() -> str:
    """The Python image test pods run: the registry-less base that the local
    cluster imports, or any image with python3 the cluster can pull (for
    example python:3.11-slim on kind), named by CORESCALE_TEST_BASE_IMAGE."""
    return os.environ.get("CORESCALE_TEST_BASE_IMAGE", "corescale-base:bookworm")
