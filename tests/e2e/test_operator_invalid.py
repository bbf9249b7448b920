"""Specs that cannot work are refused by the API server, naming the field.

These need only the CRD (its schema and CEL rules), not the operator, so
they use server-side dry runs: nothing is stored.
"""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from tests.e2e.operator_helpers import corecluster
from tests.kube import kubectl

INVALID: list[tuple[str, dict[str, Any], str, str]] = [
    ("negative replicas", {"replicas": -1}, "spec.replicas", "greater than or equal to 0"),
    ("unknown mode", {"mode": "threads"}, "spec.mode", 'supported values: "pods", "prefork"'),
    (
        "workersPerPod in pods mode",
        {"workersPerPod": 2},
        "spec.workersPerPod",
        "must be 1 (or unset) in pods mode",
    ),
    (
        "prefork without workersPerPod",
        {"mode": "prefork"},
        "spec.workersPerPod",
        "required in prefork mode",
    ),
    ("malformed cpu", {"cpu": "lots"}, "spec.cpu", "positive quantity"),
    ("zero cpu", {"cpu": 0}, "spec.cpu", "positive quantity"),
    ("malformed memory", {"memory": "1 GB"}, "spec.memory", "positive quantity"),
    ("malformed cpuRequest", {"cpuRequest": "1x"}, "spec.cpuRequest", "positive quantity"),
    (
        "request above limit",
        {"cpu": "500m", "cpuRequest": "1"},
        "spec.cpuRequest",
        "must not be larger than spec.cpu",
    ),
    ("port too high", {"port": 70000}, "spec.port", "less than or equal to 65535"),
    ("port zero", {"port": 0}, "spec.port", "greater than or equal to 1"),
    (
        "service port",
        {"service": {"port": 65536}},
        "spec.service.port",
        "less than or equal to 65535",
    ),
    (
        "service type",
        {"service": {"type": "ExternalName"}},
        "spec.service.type",
        "supported values",
    ),
    ("app without factory", {"app": "web"}, "spec.app", "must be module:factory"),
    (
        "autoscaling min above max",
        {"autoscaling": {"minReplicas": 5, "maxReplicas": 2}},
        "spec.autoscaling.minReplicas",
        "must not be larger than spec.autoscaling.maxReplicas",
    ),
    (
        "autoscaling without max",
        {"autoscaling": {"minReplicas": 1}},
        "spec.autoscaling.maxReplicas",
        "Required value",
    ),
    (
        "autoscaling target zero",
        {"autoscaling": {"maxReplicas": 3, "targetInFlight": 0}},
        "spec.autoscaling.targetInFlight",
        "must be a number from 0.01 to 10000",
    ),
    (
        "autoscaling scale-down factor below one",
        {"autoscaling": {"maxReplicas": 3, "scaleDown": {"maxFactor": 0.5}}},
        "spec.autoscaling.scaleDown.maxFactor",
        "greater than or equal to 1",
    ),
    (
        "reserved env",
        {"env": [{"name": "CORESCALE_MODE", "value": "prefork"}]},
        "spec.env",
        "must not set CORESCALE_APP, CORESCALE_MODE",
    ),
    (
        "valueFrom of an unknown kind",
        {"env": [{"name": "A", "valueFrom": {"bogus": 1}}]},
        "spec.env[0].valueFrom.bogus",
        "unknown field",
    ),
    (
        "valueFrom with two sources",
        {
            "env": [
                {
                    "name": "A",
                    "valueFrom": {
                        "fieldRef": {"fieldPath": "metadata.name"},
                        "secretKeyRef": {"name": "s", "key": "k"},
                    },
                }
            ]
        },
        "spec.env[0].valueFrom",
        "must have at most 1",
    ),
    (
        "secretKeyRef without key",
        {"env": [{"name": "A", "valueFrom": {"secretKeyRef": {"name": "s"}}}]},
        "spec.env[0].valueFrom.secretKeyRef.key",
        "Required value",
    ),
    ("cpu below a millicore", {"cpu": "1n"}, "spec.cpu", "at least 1m"),
]


def _dry_run(manifest: dict[str, Any]) -> str:
    return kubectl(
        "apply",
        "--dry-run=server",
        "-n",
        "default",
        "-o",
        "yaml",
        "-f",
        "-",
        stdin=yaml.safe_dump(manifest),
    )


@pytest.mark.e2e
@pytest.mark.parametrize(("case", "spec", "field", "text"), INVALID, ids=[i[0] for i in INVALID])
def test_invalid_spec_is_refused_naming_the_field(
    crds: None, case: str, spec: dict[str, Any], field: str, text: str
) -> None:
    with pytest.raises(RuntimeError) as refused:
        _dry_run(corecluster("bad", **spec))
    message = str(refused.value)
    assert field in message, message
    assert text in message, message


@pytest.mark.e2e
@pytest.mark.parametrize("name", ["2web", "web.v2"])
def test_a_name_that_cannot_name_a_service_is_refused(crds: None, name: str) -> None:
    with pytest.raises(RuntimeError, match=r"metadata\.name must be a DNS-1035 label"):
        _dry_run(corecluster(name))


@pytest.mark.e2e
def test_an_empty_spec_is_accepted_with_every_default(crds: None) -> None:
    stored = yaml.safe_load(
        _dry_run(
            {
                "apiVersion": "corescale.io/v1alpha1",
                "kind": "CoreCluster",
                "metadata": {"name": "plain"},
            }
        )
    )
    assert stored["spec"] == {
        "mode": "pods",
        "replicas": 1,
        "port": 8080,
        "cpu": "1",
        "cpuRequest": "100m",
        "memory": "256Mi",
        "drainSeconds": 5,
        "shutdownTimeoutSeconds": 20,
        "imagePullPolicy": "IfNotPresent",
        "service": {"type": "ClusterIP", "port": 80},
        "topologySpread": {
            "maxSkew": 1,
            "topologyKeys": ["kubernetes.io/hostname", "topology.kubernetes.io/zone"],
            "whenUnsatisfiable": "ScheduleAnyway",
        },
    }


@pytest.mark.e2e
def test_integer_quantities_and_prefork_are_accepted(crds: None) -> None:
    stored = yaml.safe_load(
        _dry_run(
            corecluster(
                "fine",
                mode="prefork",
                workersPerPod=2,
                cpu=1,
                cpuRequest="250m",
                memory="1Gi",
                app="shop.web:create_app",
                env=[{"name": "CORESCALE_ACCESS_LOG", "value": "1"}],
            )
        )
    )
    assert stored["spec"]["cpu"] == 1
    assert stored["spec"]["workersPerPod"] == 2
