"""How an API error is classified: what may help (waiting, a new spec, nothing)."""

import pytest

from corescale.operator.runtime.apipaths import as_applied
from corescale.operator.runtime.kube import KubeError


@pytest.mark.parametrize(
    ("status", "message", "transient"),
    [
        (0, "apply Deployment hello-pods: ClientConnectorError: refused", True),
        (429, "apply Deployment hello-pods: too many requests", True),
        (503, "apply Deployment hello-pods: service unavailable", True),
        (500, "apply Deployment hello-pods: etcdserver: request timed out", True),
        # Server-side apply of a body its schema does not know: the spec's fault.
        (
            500,
            "apply Deployment hello-pods: failed to create typed patch object (apps/v1, "
            'Kind=Deployment): .spec.template.spec.containers[name="worker"].env'
            '[name="A"].valueFrom.bogus: field not declared in schema',
            False,
        ),
        (422, "apply Deployment hello-pods: spec.template: Invalid value", False),
        (403, "apply Service hello: forbidden", False),
    ],
)
def test_transient_means_the_same_call_may_pass(status: int, message: str, transient: bool) -> None:
    assert KubeError(status, message).transient is transient


def test_a_taken_name_and_a_terminating_namespace_are_told_apart() -> None:
    taken = KubeError(409, 'create Service hello: services "hello" already exists', "AlreadyExists")
    conflict = KubeError(409, "apply Service hello: Operation cannot be fulfilled", "Conflict")
    gone = KubeError(
        403,
        'create Service hello: services "hello" is forbidden: unable to create new content '
        "in namespace demo because it is being terminated",
        "Forbidden",
    )
    assert taken.exists and not conflict.exists and not gone.exists
    assert gone.terminating and not taken.terminating
    assert not KubeError(403, "create Service hello: forbidden: RBAC", "Forbidden").terminating


def test_the_create_entry_is_handed_to_apply_and_only_that_one() -> None:
    fields = [
        {"manager": "kube-controller-manager", "operation": "Update"},
        {"manager": "corescale", "operation": "Update"},
    ]
    assert as_applied(fields) == [
        {"op": "test", "path": "/metadata/managedFields/1/manager", "value": "corescale"},
        {"op": "test", "path": "/metadata/managedFields/1/operation", "value": "Update"},
        {"op": "replace", "path": "/metadata/managedFields/1/operation", "value": "Apply"},
    ]
    assert as_applied([{"manager": "corescale", "operation": "Apply"}]) == []
