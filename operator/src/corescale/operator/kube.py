"""The operator's own Kubernetes API calls, and nothing else.

kopf makes the others: it logs in, watches the CoreClusters and their
children (the indexes of handlers.py, from which reconciles read), keeps the
peering object current and posts the events queued with ``kopf.event``.
What is left is here: writing the children, the status and the peering
object, and one read, :meth:`Kube.owner_exists`, which asks the API server
rather than a watch that may lag.

Children are written with server-side apply (field manager ``corescale``,
forced): the operator states the fields it owns and the API server merges,
so reconciling twice is the same as once, and a field someone else changed
is simply taken back.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from typing import Any

from kubernetes_asyncio import client, config
from kubernetes_asyncio.client.exceptions import ApiException

from corescale.operator.names import API_VERSION, FIELD_MANAGER, KIND, PLURALS

log = logging.getLogger(__name__)

TRANSIENT = frozenset({408, 409, 425, 429, 500, 502, 503, 504})
"""Statuses worth retrying as they are: timeouts, conflicts, overload, server errors."""


class KubeError(Exception):
    """An API call failed; ``transient`` says whether retrying the same call may work."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message

    @property
    def transient(self) -> bool:
        return self.status in TRANSIENT or self.status == 0


def _error(exc: Exception, doing: str) -> KubeError:
    if isinstance(exc, ApiException):
        try:
            message = json.loads(exc.body or "{}").get("message") or exc.reason
        except (ValueError, AttributeError):
            message = exc.reason
        return KubeError(int(exc.status or 0), f"{doing}: {message}")
    return KubeError(0, f"{doing}: {exc.__class__.__name__}: {exc}")


def _path(body: Mapping[str, Any], subresource: str = "") -> str:
    api_version, kind = body["apiVersion"], body["kind"]
    prefix = "/api" if "/" not in api_version else "/apis"
    meta = body["metadata"]
    path = (
        f"{prefix}/{api_version}/namespaces/{meta['namespace']}/"
        f"{PLURALS[(api_version, kind)]}/{meta['name']}"
    )
    return f"{path}/{subresource}" if subresource else path


async def connect() -> client.ApiClient:
    """An API client for the cluster the operator runs in, or KUBECONFIG's.

    Called once at startup, never at import: importing the operator (tests,
    the CLI's --help) must not need a cluster.
    """
    if os.environ.get("KUBERNETES_SERVICE_HOST"):
        config.load_incluster_config()  # type: ignore[no-untyped-call]
    else:
        await config.load_kube_config()
    return client.ApiClient()


class Kube:
    """The operator's own calls: apply and delete children, write the status,
    create the peering object, and check that a CoreCluster still exists."""

    def __init__(self, api: client.ApiClient) -> None:
        self.api = api

    async def _call(
        self,
        method: str,
        path: str,
        doing: str,
        *,
        body: Any = None,
        query: list[tuple[str, str]] | None = None,
        content_type: str = "application/json",
    ) -> Any:
        try:
            return await self.api.call_api(
                path,
                method,
                query_params=query or [],
                header_params={"Content-Type": content_type, "Accept": "application/json"},
                body=body,
                response_types_map={200: "object", 201: "object", 202: "object"},
                auth_settings=["BearerToken"],
                _return_http_data_only=True,
            )
        except (ApiException, OSError, TimeoutError) as exc:
            raise _error(exc, doing) from exc

    async def apply(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """Server-side apply ``body`` as the ``corescale`` field manager, forcing conflicts."""
        result: dict[str, Any] = await self._call(
            "PATCH",
            _path(body),
            f"apply {body['kind']} {body['metadata']['name']}",
            body=dict(body),
            query=[("fieldManager", FIELD_MANAGER), ("force", "true")],
            content_type="application/apply-patch+yaml",
        )
        return result

    async def delete(self, body: Mapping[str, Any]) -> None:
        """Delete a child; one that is already gone counts as deleted."""
        try:
            await self._call(
                "DELETE",
                _path(body),
                f"delete {body['kind']} {body['metadata']['name']}",
                body={"propagationPolicy": "Background"},
            )
        except KubeError as exc:
            if exc.status != 404:
                raise

    async def patch_status(
        self, namespace: str, name: str, status: Mapping[str, Any]
    ) -> dict[str, Any] | None:
        """Write the CoreCluster's status; returns the object, or None if it is gone."""
        body = {
            "apiVersion": API_VERSION,
            "kind": KIND,
            "metadata": {"namespace": namespace, "name": name},
        }
        try:
            written: dict[str, Any] = await self._call(
                "PATCH",
                _path(body, "status"),
                f"update the status of {namespace}/{name}",
                body={"status": dict(status)},
                query=[("fieldManager", FIELD_MANAGER)],
                content_type="application/merge-patch+json",
            )
        except KubeError as exc:
            if exc.status != 404:  # deleted meanwhile: nothing left to report on
                raise
            return None
        return written

    async def owner_exists(self, namespace: str, name: str, uid: str) -> bool:
        """Whether this very CoreCluster (same uid) still exists in the API server."""
        body = {
            "apiVersion": API_VERSION,
            "kind": KIND,
            "metadata": {"namespace": namespace, "name": name},
        }
        try:
            found = await self._call("GET", _path(body), f"get {namespace}/{name}")
        except KubeError as exc:
            if exc.status == 404:
                return False
            raise
        return bool(found.get("metadata", {}).get("uid") == uid)

    async def ensure_peering(self, name: str, namespaces: tuple[str, ...]) -> None:
        """Create the kopf peering object(s) if missing, so peering is never silently off.

        Cluster-wide operators share one ClusterKopfPeering; namespaced ones
        meet in a KopfPeering in every watched namespace.
        """
        base = "/apis/kopf.dev/v1"
        targets = (
            [(f"{base}/namespaces/{ns}/kopfpeerings", "KopfPeering", ns) for ns in namespaces]
            if namespaces
            else [(f"{base}/clusterkopfpeerings", "ClusterKopfPeering", None)]
        )
        for path, kind, namespace in targets:
            metadata: dict[str, str] = {"name": name}
            if namespace:
                metadata["namespace"] = namespace
            try:
                await self._call(
                    "POST",
                    path,
                    f"create {kind} {name}",
                    body={"apiVersion": "kopf.dev/v1", "kind": kind, "metadata": metadata},
                )
                log.info("created %s %s for peering", kind, name)
            except KubeError as exc:
                if exc.status != 409:  # 409: it exists already, which is the goal
                    raise

    async def close(self) -> None:
        await self.api.close()
