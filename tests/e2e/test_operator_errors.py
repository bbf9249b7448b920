"""Errors classified by what helps (issue 16, item 4).

A child the API server refuses for the spec's sake is reported once and
retried at the resync interval (or at once when the spec changes), never in
kopf's 5 s loop; deleting a namespace full of CoreClusters writes nothing
into it and logs no error.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from kubernetes import client

from tests.e2e.operator_helpers import (
    OperatorProcess,
    apply,
    condition,
    corecluster,
    get,
    wait_ready,
)
from tests.kube import kubectl, wait_for

RESYNC = 10
WINDOW = 25
"""Seconds watched after the first report: two or three resyncs, five 5 s retries."""
# The Deployment API refuses this field path (422); the CRD cannot know it.
BAD_ENV = [{"name": "A", "valueFrom": {"fieldRef": {"fieldPath": "spec.bogus"}}}]


def _runs(log: str, name: str) -> int:
    return sum(f"/{name}: reconcile generation" in line for line in log.splitlines())


@pytest.mark.e2e
def test_a_child_refused_for_the_spec_is_reported_once_and_retried_at_the_resync(
    crds: None, namespace: str, tmp_path: Path
) -> None:
    operator = OperatorProcess(
        namespace,
        tmp_path,
        CORESCALE_RESYNC_SECONDS=str(RESYNC),
        CORESCALE_LOG_LEVEL="debug",
        CORESCALE_PEERING="",
    )
    operator.start()
    try:
        apply(namespace, corecluster("hello", replicas=0, env=BAD_ENV))

        def failed() -> dict[str, str] | None:
            found = condition(get(namespace, "corecluster", "hello"), "Degraded")
            return found if found.get("reason") == "ApplyFailed" else None

        found = wait_for("the refusal to be reported", failed, timeout=60)
        assert "spec.bogus" in found["message"]
        before = _runs(operator.log(), "hello")
        time.sleep(WINDOW)
        log = operator.log()
        retries = _runs(log, "hello") - before
        assert 1 <= retries <= WINDOW // RESYNC + 1, retries
        said = [line for line in log.splitlines() if "spec.bogus" in line and "WARNING" in line]
        assert len(said) == 1, said
        assert " ERROR " not in log and "failed temporarily" not in log

        apply(namespace, corecluster("hello", replicas=0))  # the fix is applied at once
        wait_ready(namespace, "hello", workers=0, timeout=30)
    finally:
        operator.stop()


@pytest.mark.e2e
def test_deleting_a_namespace_of_coreclusters_logs_no_error(
    crds: None, api_client: object, tmp_path: Path, namespace: str
) -> None:
    doomed = f"{namespace}-gone"[:63]
    core = client.CoreV1Api(api_client)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=doomed)))
    operator = OperatorProcess(doomed, tmp_path, CORESCALE_PEERING="")
    try:
        wait_for(
            "the default ServiceAccount",
            lambda: core.read_namespaced_service_account("default", doomed),
            timeout=60,
        )
        operator.start()
        names = [f"c{i}" for i in range(10)]
        for name in names:
            apply(doomed, corecluster(name, replicas=0))
        for name in names:
            wait_ready(doomed, name, workers=0, timeout=120)
        kubectl("delete", "namespace", doomed, "--wait=true", "--timeout=180s")
        time.sleep(3)  # the last watch events
        log = operator.log()
        problems = [
            line
            for line in log.splitlines()
            if any(level in line for level in (" ERROR ", " WARNING ", "recovered", "re-created"))
        ]
        assert problems == [], "\n".join(problems)
        assert operator.proc is not None and operator.proc.poll() is None
    finally:
        operator.stop()
        kubectl("delete", "namespace", doomed, "--ignore-not-found", "--wait=false")


@pytest.mark.e2e
def test_an_app_that_cannot_be_imported_is_reported_with_the_import_error(
    operator: OperatorProcess, namespace: str
) -> None:
    apply(namespace, corecluster("hello", app="nope.web:create_app"))

    def degraded_with_the_import_error() -> str | None:
        found = condition(get(namespace, "corecluster", "hello"), "Degraded")
        message = str(found.get("message", ""))
        return message if "No module named 'nope'" in message else None

    message = wait_for("the import error in Degraded", degraded_with_the_import_error, timeout=120)
    assert "CrashLoopBackOff" in message and "cannot import APP" in message, message


@pytest.mark.e2e
def test_a_service_type_the_operator_does_not_allow_is_refused_and_reported(
    operator: OperatorProcess, namespace: str
) -> None:
    """CORESCALE_SERVICE_TYPES defaults to ClusterIP: a NodePort is never opened."""
    apply(namespace, corecluster("hello", service={"type": "NodePort"}))

    def refused() -> dict[str, object] | None:
        found = condition(get(namespace, "corecluster", "hello"), "Degraded")
        return found if found.get("reason") == "ServiceTypeNotAllowed" else None

    degraded = wait_for("the refusal in Degraded", refused, timeout=60)
    assert "NodePort" in str(degraded["message"]), degraded
    services = kubectl("get", "services", "-n", namespace, "-o", "name")
    assert "service/hello" not in services, services
    # Allowed once the spec asks for what the operator permits.
    apply(namespace, corecluster("hello", service={"type": "ClusterIP"}))
    wait_ready(namespace, "hello", workers=1)
