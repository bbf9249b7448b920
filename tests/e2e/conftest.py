"""Fixtures for end-to-end tests against a real Kubernetes cluster.

`kubeconfig` is the cluster the tests use: the one KUBECONFIG names when it
is set (for example kind on a laptop), otherwise the local cluster that
`hack/cluster.sh` runs on this machine, started here when it is not running.
`namespace` gives every test its own namespace, deleted afterwards, so tests
never see each other's objects. `crds` installs the CRDs from manifests/crd/,
and `operator` runs the operator on the host for one test (operator_helpers.py).
`prometheus` is the host's Prometheus (prom.py), started when a test needs it.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import subprocess
import sys
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config

from tests.e2e import prom
from tests.e2e.operator_helpers import CRD_DIR, CRD_NAMES, OperatorProcess
from tests.kube import kubectl, wait_for

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[2]
CLUSTER_SH = ROOT / "hack" / "cluster.sh"
# A warm start takes seconds. A cold one builds Kubernetes from source (half
# an hour here), longer than pytest's per-test timeout: `make e2e` and `make
# test` therefore start the cluster before pytest runs.
CLUSTER_START_TIMEOUT = 60 * 60

DUMP_KINDS = "pods,services,endpointslices,deployments,replicasets,statefulsets,events"

PHASE_REPORTS = pytest.StashKey[dict[str, pytest.TestReport]]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Keep each phase's report so the namespace fixture knows whether the
    test failed, and can then show what the namespace held."""
    report = yield
    item.stash.setdefault(PHASE_REPORTS, {})[report.when] = report
    return report


def _local_cluster_kubeconfig() -> str:
    """Start the local cluster unless it is already healthy; return its
    kubeconfig path. A failure raises with the script's output, which names
    the folder holding every component's log."""
    status = subprocess.run(
        [str(CLUSTER_SH), "status"], capture_output=True, text=True, check=False
    )
    if status.returncode != 0:
        log.info("local cluster not running; starting it with %s up", CLUSTER_SH)
        up = subprocess.run(
            [str(CLUSTER_SH), "up"],
            capture_output=True,
            text=True,
            timeout=CLUSTER_START_TIMEOUT,
            check=False,
        )
        if up.returncode != 0:
            pytest.fail(
                f"`hack/cluster.sh up` failed ({up.returncode}):\n{up.stdout[-4000:]}\n"
                f"{up.stderr[-8000:]}",
                pytrace=False,
            )
    path = subprocess.run(
        [str(CLUSTER_SH), "kubeconfig"], capture_output=True, text=True, check=True
    ).stdout.strip()
    return path


@pytest.fixture(scope="session")
def kubeconfig() -> str:
    """Path of the kubeconfig for the cluster under test.

    It is also exported as KUBECONFIG so kubectl and helm run by tests talk
    to the same cluster. The API server must answer, or every e2e test fails.
    """
    path = os.environ.get("KUBECONFIG") or _local_cluster_kubeconfig()
    os.environ["KUBECONFIG"] = path
    api = config.new_client_from_config(config_file=path)
    try:
        wait_for(
            "the API server to answer",
            lambda: client.VersionApi(api).get_code().git_version,
            timeout=60,
        )
    finally:
        api.close()
    return path


def _cluster_wide_operators(api: Any) -> list[str]:
    """Operators already installed in the cluster (by `make up`, say) that
    watch every namespace: they would act on the tests' CoreClusters beside
    the operators the tests start, and the two would fight."""
    found = []
    deployments = client.AppsV1Api(api).list_deployment_for_all_namespaces(
        label_selector="app.kubernetes.io/part-of=corescale,app.kubernetes.io/component=operator"
    )
    for dep in deployments.items:
        if not dep.spec.replicas:
            continue
        env = {e.name: e.value for c in dep.spec.template.spec.containers for e in (c.env or [])}
        if not env.get("CORESCALE_NAMESPACES"):
            found.append(f"{dep.metadata.namespace}/{dep.metadata.name}")
    return found


@pytest.fixture(scope="session")
def api_client(kubeconfig: str) -> Iterator[Any]:
    """A `kubernetes` client for the cluster under test.

    The tests need the cluster to themselves as far as corescale goes: a
    cluster-wide operator left running is a clear failure, not flaky tests.
    """
    api = config.new_client_from_config(config_file=kubeconfig)
    running = _cluster_wide_operators(api)
    if running:
        api.close()
        pytest.fail(
            f"a corescale operator watching every namespace is installed ({', '.join(running)}); "
            "it would act on the tests' objects too. Remove it first (`make down`).",
            pytrace=False,
        )
    yield api
    api.close()


def _namespace_name(test_name: str) -> str:
    """A valid, unique namespace name that still says which test made it."""
    slug = re.sub(r"[^a-z0-9-]+", "-", test_name.lower()).strip("-")[:40].strip("-")
    return f"e2e-{slug}-{secrets.token_hex(3)}"


@pytest.fixture
def namespace(request: pytest.FixtureRequest, api_client: Any) -> Iterator[str]:
    """A fresh namespace for one test, deleted afterwards.

    Yields once the namespace's default ServiceAccount exists, because pods
    are rejected until it does. After a failed test, the namespace's objects
    and events are logged before it is deleted.
    """
    core = client.CoreV1Api(api_client)
    name = _namespace_name(request.node.name)
    core.create_namespace(
        client.V1Namespace(
            metadata=client.V1ObjectMeta(name=name, labels={"corescale.dev/e2e": "true"})
        )
    )
    try:
        wait_for(
            f"the default ServiceAccount in {name}",
            lambda: core.read_namespaced_service_account("default", name),
            timeout=60,
        )
        yield name
    finally:
        reports = request.node.stash.get(PHASE_REPORTS, {})
        if any(r.failed for r in reports.values()):
            try:
                # Named kinds, not "all": that category also names custom
                # resources whose CRD a test may just have removed.
                state = kubectl("get", DUMP_KINDS, "-n", name, "-o", "wide")
                log.error("namespace %s after the failed test:\n%s", name, state)
            except (RuntimeError, subprocess.TimeoutExpired) as exc:
                log.error("could not list namespace %s: %s", name, exc)
        core.delete_namespace(name, propagation_policy="Background")


@pytest.fixture(scope="session")
def crds(kubeconfig: str) -> None:
    """Install (or update) the CRDs from manifests/crd/ and wait until they serve."""
    kubectl("apply", "--server-side", "--force-conflicts", "-k", str(CRD_DIR))
    for name in CRD_NAMES:
        kubectl("wait", "--for=condition=Established", f"crd/{name}", "--timeout=60s")


@pytest.fixture
def operator(
    crds: None, namespace: str, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[OperatorProcess]:
    """The operator, running and watching the test's namespace; its log is shown on failure."""
    process = OperatorProcess(namespace, tmp_path)
    process.start()
    try:
        yield process
    finally:
        process.stop()
        reports = request.node.stash.get(PHASE_REPORTS, {}).values()
        if any(report.failed for report in reports):
            sys.stderr.write(f"--- operator log ({namespace}) ---\n{process.log()}\n")


@pytest.fixture(scope="session")
def prometheus(kubeconfig: str) -> str:
    """The URL of the host's Prometheus, built and started unless it runs.

    It watches the local cluster (hack/cluster.sh), so it needs that one.
    """
    try:
        return prom.start()
    except (RuntimeError, subprocess.TimeoutExpired) as exc:
        pytest.fail(str(exc), pytrace=False)
