"""`helm uninstall` of a release with crds.keep=false removes the CRDs and
every CoreCluster with them, and hangs on nothing.

This deletes the cluster's CRDs, which the other end-to-end tests need: the
test puts them back (as the operator's tests install them) whatever happens.
It lives in its own module so that the kept release of test_helm.py has
been cleaned up before: CRDs are only deleted once no CoreCluster is left.
"""

from __future__ import annotations

import secrets
import subprocess
from collections.abc import Iterator

import pytest

from tests.charttools import (
    CHART,
    MANIFESTS,
    adopt_crds,
    create_namespace,
    helm,
    restore_crds,
    run,
    source_crd_names,
    tool,
)
from tests.kube import kubectl, kubectl_json, wait_for

pytestmark = pytest.mark.e2e


def crds_left() -> list[str]:
    names = {c["metadata"]["name"] for c in kubectl_json("get", "crds")["items"]}
    return sorted(names & set(source_crd_names()))


def unblock_crd_deletion() -> None:
    """If a regression left a finalizer on some CoreCluster, the CRDs would
    stay in Terminating with no operator to remove it; remove it here, after
    the test has failed, so the cluster is usable for the tests that follow."""
    if "coreclusters.corescale.io" not in crds_left():
        return
    for cc in kubectl_json("get", "coreclusters", "--all-namespaces")["items"]:
        meta = cc["metadata"]
        subprocess.run(
            [
                tool("kubectl"),
                "patch",
                "corecluster",
                meta["name"],
                "-n",
                meta["namespace"],
                "--type=merge",
                "-p",
                '{"metadata":{"finalizers":null}}',
            ],
            capture_output=True,
            check=False,
            timeout=60,
        )


@pytest.fixture
def release(kubeconfig: str) -> Iterator[tuple[str, str]]:
    suffix = secrets.token_hex(3)
    name = namespace = f"e2e-helm-gone-{suffix}"
    create_namespace(namespace)
    adopt_crds(name, namespace)
    try:
        helm(
            "upgrade",
            "--install",
            name,
            str(CHART),
            "--namespace",
            namespace,
            "--set",
            f"watchNamespaces={{{namespace}}}",
            "--set",
            "crds.keep=false",
            "--wait",
            "--timeout",
            "5m",
        )
        yield name, namespace
    finally:
        if run(tool("helm"), "status", name, "-n", namespace, check=False).returncode == 0:
            run(tool("helm"), "uninstall", name, "-n", namespace, check=False)
        unblock_crd_deletion()
        restore_crds()
        kubectl("delete", "namespace", namespace, "--wait=false")


def test_uninstall_without_keep_removes_the_crds_and_the_coreclusters(
    release: tuple[str, str],
) -> None:
    name, namespace = release
    kubectl("apply", "-n", namespace, "-f", str(MANIFESTS / "cluster.yaml"))
    cc = wait_for(
        "the operator to create the example's Deployment",
        lambda: kubectl_json("get", "corecluster", "hello", "-n", namespace)["status"]["selector"],
        timeout=120,
    )
    deployments = kubectl_json("get", "deployments", "-n", namespace, "-l", cc)["items"]
    assert deployments, "the operator made no Deployment for the example"

    # Helm stops the operator before it deletes the CRDs: the CoreCluster
    # must go without it, so it may carry no finalizer.
    helm("uninstall", name, "-n", namespace, "--wait", "--timeout", "5m")
    wait_for("the CRDs to be deleted", lambda: not crds_left(), timeout=180)
    # The CoreCluster's children went with it (garbage collection).
    wait_for(
        "the example's Deployment to be collected",
        lambda: not kubectl_json("get", "deployments", "-n", namespace, "-l", cc)["items"],
        timeout=180,
    )
    wait_for(
        "the namespace to hold nothing of the release or the example",
        lambda: not kubectl_json("get", "all", "-n", namespace)["items"],
        timeout=180,
    )
