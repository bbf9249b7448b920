"""`kubectl apply -k manifests/` on a real cluster: the operator runs and the
example CoreCluster becomes Ready and answers through its Service.

tests/unit/test_chart_manifests.py shows that manifests/ renders the same
objects as the chart; this shows those objects work. They are applied
through a throw-away overlay that only renames them (its own namespace and
a name prefix), so the test never touches a `make up` install in
corescale-system that may be running on the same cluster. The overlay also
sets CORESCALE_NAMESPACES to the example's namespace: the permissions stay
cluster-wide as manifests/ grants them, but the operator acts only on this
test's CoreCluster, never on those of tests running beside it.
"""

from __future__ import annotations

import os
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.charttools import (
    MANIFESTS,
    create_namespace,
    kustomize,
    release_coreclusters,
    tool,
)
from tests.kube import http_get, kubectl, kubectl_json, wait_for

pytestmark = pytest.mark.e2e


def overlay(folder: Path, prefix: str, watch: str) -> Path:
    """A kustomization that takes manifests/ whole, renames it and points
    the operator at the namespace ``watch``."""
    folder.mkdir(parents=True, exist_ok=True)
    deployment = next(o for o in kustomize(MANIFESTS) if o["kind"] == "Deployment")
    (folder / "kustomization.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                # kustomize takes a folder outside the overlay only by a
                # relative path.
                "resources": [os.path.relpath(MANIFESTS, folder)],
                "namespace": prefix,
                "namePrefix": f"{prefix}-",
                "patches": [
                    {
                        "target": {"kind": "Deployment", "name": deployment["metadata"]["name"]},
                        "patch": yaml.safe_dump(
                            [
                                {
                                    "op": "replace",
                                    "path": "/spec/template/spec/containers/0/env/0",
                                    "value": {"name": "CORESCALE_NAMESPACES", "value": watch},
                                }
                            ]
                        ),
                    }
                ],
            }
        )
    )
    return folder


@pytest.fixture
def installed(kubeconfig: str, tmp_path: Path) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """The overlay applied; afterwards everything but the CRDs is removed."""
    prefix = f"e2e-kustomize-{secrets.token_hex(3)}"
    folder = overlay(tmp_path / "overlay", prefix, watch=f"{prefix}-example")
    objects = kustomize(folder)
    create_namespace(f"{prefix}-example")
    try:
        kubectl("apply", "-k", str(folder))
        yield prefix, objects
    finally:
        release_coreclusters(f"{prefix}-example")
        kubectl("delete", "namespace", f"{prefix}-example", "--wait=false")
        # The CRDs stay: the other tests use them.
        for obj in objects:
            if obj["kind"] in ("CustomResourceDefinition", "Namespace"):
                continue
            subprocess.run(
                [
                    tool("kubectl"),
                    "delete",
                    obj["kind"],
                    obj["metadata"]["name"],
                    *(
                        ["-n", obj["metadata"]["namespace"]]
                        if "namespace" in obj["metadata"]
                        else []
                    ),
                    "--ignore-not-found",
                    "--wait=false",
                ],
                capture_output=True,
                check=False,
                timeout=60,
            )
        kubectl("delete", "namespace", prefix, "--ignore-not-found", "--wait=false")


def test_apply_k_runs_the_operator_and_the_example_becomes_ready_and_answers(
    installed: tuple[str, list[dict[str, Any]]],
) -> None:
    prefix, objects = installed
    # The overlay renames and re-scopes; the objects are manifests/'s.
    assert {o["kind"] for o in objects} == {o["kind"] for o in kustomize(MANIFESTS)}
    assert len(objects) == len(kustomize(MANIFESTS))
    operator = f"{prefix}-corescale-operator"
    kubectl("rollout", "status", f"deployment/{operator}", "-n", prefix, "--timeout=300s")
    namespace = kubectl_json("get", "namespace", prefix)
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"

    env = next(o for o in objects if o["kind"] == "Deployment")["spec"]["template"]["spec"][
        "containers"
    ][0]["env"]
    assert env[0] == {"name": "CORESCALE_NAMESPACES", "value": f"{prefix}-example"}
    assert len({e["name"] for e in env}) == len(env), "the patch replaced another variable"
    example_ns = f"{prefix}-example"
    try:
        kubectl("apply", "-n", example_ns, "-f", str(MANIFESTS / "cluster.yaml"))
        kubectl(
            "wait", "-n", example_ns, "--for=condition=Ready", "corecluster/hello", "--timeout=300s"
        )
        service = kubectl_json("get", "service", "hello", "-n", example_ns)
        url = f"http://{service['spec']['clusterIP']}:{service['spec']['ports'][0]['port']}/"
        assert "corescale" in wait_for(f"{url} to answer", lambda: http_get(url), timeout=120)
        log = kubectl("logs", "-n", prefix, f"deployment/{operator}")
        assert "forbidden" not in log.lower(), log
        # Deleted while the operator runs, the CoreCluster goes with its children.
        kubectl("delete", "corecluster", "hello", "-n", example_ns, "--timeout=120s")
        wait_for(
            "the example's children to be collected",
            lambda: (
                not kubectl_json(
                    "get", "deployments,services", "-n", example_ns, "-l", "corescale.io/cluster"
                )["items"]
            ),
            timeout=180,
        )
    finally:
        release_coreclusters(example_ns)
