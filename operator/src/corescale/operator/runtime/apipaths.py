"""Where each of the operator's API calls goes, and what a failed one says.

Kept apart from the client so that the addressing (a child's collection and
path from its own apiVersion and kind) and the reading of an API error (its
status, message and reason) are plain functions, unit-tested without a server.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from kubernetes_asyncio.client.exceptions import ApiException

from corescale.operator.api.names import FIELD_MANAGER, PLURALS
from corescale.operator.runtime.kube import KubeError


def error(exc: Exception, doing: str) -> KubeError:
    if isinstance(exc, ApiException):
        try:
            body = json.loads(exc.body or "{}")
            message, reason = body.get("message") or exc.reason, str(body.get("reason") or "")
        except (ValueError, AttributeError):
            message, reason = exc.reason, ""
        return KubeError(int(exc.status or 0), f"{doing}: {message}", reason)
    return KubeError(0, f"{doing}: {exc.__class__.__name__}: {exc}")


def collection(body: Mapping[str, Any]) -> str:
    api_version, kind = body["apiVersion"], body["kind"]
    prefix = "/api" if "/" not in api_version else "/apis"
    namespace = body["metadata"]["namespace"]
    return f"{prefix}/{api_version}/namespaces/{namespace}/{PLURALS[(api_version, kind)]}"


def object_path(body: Mapping[str, Any], subresource: str = "") -> str:
    path = f"{collection(body)}/{body['metadata']['name']}"
    return f"{path}/{subresource}" if subresource else path


def as_applied(managed_fields: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """A JSON patch that turns the create's managedFields entry into an apply entry.

    A create records its fields under (corescale, Update); server-side apply
    by corescale is another manager, (corescale, Apply), which could then
    never remove a field it stops setting. The ``test`` operations make the
    patch fail rather than edit an entry that changed meanwhile.
    """
    for index, entry in enumerate(managed_fields):
        if entry.get("manager") == FIELD_MANAGER and entry.get("operation") == "Update":
            path = f"/metadata/managedFields/{index}"
            return [
                {"op": "test", "path": f"{path}/manager", "value": FIELD_MANAGER},
                {"op": "test", "path": f"{path}/operation", "value": "Update"},
                {"op": "replace", "path": f"{path}/operation", "value": "Apply"},
            ]
    return []
