"""The operator's own Kubernetes API calls, and nothing else: the real ``Kube``.

kopf makes the others: it logs in, watches the CoreClusters and keeps the
peering object current. What is left is here: writing the children, the
status, the events and the peering object, listing and watching the
children (childwatch.py), and one read, :meth:`ApiKube.owner_exists`, which
asks the API server rather than a watch that may lag.

A missing child is *created* (POST), which the API server refuses with 409
if any object holds the name, so the operator never merges into an object
someone else made; the create's fields are then handed to the apply manager
(:meth:`ApiKube.create`). A child that exists is written with server-side apply
(field manager ``corescale``), forced: it is only called for objects whose
controller ownerReference names this CoreCluster's uid (plan.split_ownership),
so forcing takes back fields of the operator's own object that someone else
changed (drift), never fields of an object it does not control.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import AsyncIterator, Mapping
from typing import Any

import aiohttp
from kubernetes_asyncio import client, config
from kubernetes_asyncio.client.exceptions import ApiException

from corescale.operator.api.names import API_VERSION, FIELD_MANAGER, KIND
from corescale.operator.process import metrics
from corescale.operator.runtime.apipaths import as_applied, collection, error, object_path
from corescale.operator.runtime.kube import KubeError

log = logging.getLogger(__name__)


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


class ApiKube:
    """The operator's own calls over the API server: apply and delete children, write
    the status, post events, create the peering object, check that a CoreCluster
    still exists, and list and watch children."""

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
        write: tuple[str, str] | None = None,
    ) -> Any:
        """One API call; ``write`` names (kind, verb) of a write, counted in the metrics."""
        try:
            result = await self.api.call_api(
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
            if write is not None:
                metrics.api_write(*write, ok=False)
            raise error(exc, doing) from exc
        if write is not None:
            metrics.api_write(*write, ok=True)
        return result

    async def create(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """Create a child that must not exist yet; 409 (a KubeError) if any object has its name.

        The fields are then handed to the apply manager (:func:`as_applied`).
        """
        doing = f"create {body['kind']} {body['metadata']['name']}"
        created: dict[str, Any] = await self._call(
            "POST",
            collection(body),
            doing,
            body=dict(body),
            query=[("fieldManager", FIELD_MANAGER)],
            write=(body["kind"], "create"),
        )
        patch = as_applied(created.get("metadata", {}).get("managedFields") or [])
        if not patch:
            return created
        meta = created["metadata"]
        target = {**body, "metadata": {"namespace": meta["namespace"], "name": meta["name"]}}
        try:
            adopted: dict[str, Any] = await self._call(
                "PATCH",
                object_path(target),
                f"hand the fields of {body['kind']} {meta['name']} to server-side apply",
                body=patch,
                content_type="application/json-patch+json",
                write=(body["kind"], "patch"),
            )
        except KubeError as exc:
            # Created all the same; the next apply shares the fields instead.
            log.debug("%s/%s: %s", meta["namespace"], meta["name"], exc.message)
            return created
        return adopted

    async def apply(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """Server-side apply ``body`` as the ``corescale`` field manager, forcing conflicts.

        Only for a child this CoreCluster controls (see the module's docstring).
        """
        result: dict[str, Any] = await self._call(
            "PATCH",
            object_path(body),
            f"apply {body['kind']} {body['metadata']['name']}",
            body=dict(body),
            query=[("fieldManager", FIELD_MANAGER), ("force", "true")],
            content_type="application/apply-patch+yaml",
            write=(body["kind"], "apply"),
        )
        return result

    async def delete(self, body: Mapping[str, Any]) -> None:
        """Delete a child; one that is already gone counts as deleted.

        The uid precondition makes the API server refuse (409) if the name
        now belongs to another object than the one the operator saw.
        """
        options: dict[str, Any] = {"propagationPolicy": "Background"}
        uid = body["metadata"].get("uid")
        if uid:
            options["preconditions"] = {"uid": uid}
        try:
            await self._call(
                "DELETE",
                object_path(body),
                f"delete {body['kind']} {body['metadata']['name']}",
                body=options,
                write=(body["kind"], "delete"),
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
                object_path(body, "status"),
                f"update the status of {namespace}/{name}",
                body={"status": dict(status)},
                query=[("fieldManager", FIELD_MANAGER)],
                content_type="application/merge-patch+json",
                write=(KIND, "patch_status"),
            )
        except KubeError as exc:
            if exc.status != 404:  # deleted meanwhile: nothing left to report on
                raise
            return None
        return written

    async def post_event(self, event: Mapping[str, Any]) -> None:
        """Create one Event; the namespace is the event's own."""
        namespace = event["metadata"]["namespace"]
        await self._call(
            "POST",
            f"/api/v1/namespaces/{namespace}/events",
            f"post event {event.get('reason')} in {namespace}",
            body=dict(event),
            write=("Event", "create"),
        )

    async def owner_exists(self, namespace: str, name: str, uid: str) -> bool:
        """Whether this very CoreCluster (same uid) still exists in the API server."""
        body = {
            "apiVersion": API_VERSION,
            "kind": KIND,
            "metadata": {"namespace": namespace, "name": name},
        }
        try:
            found = await self._call("GET", object_path(body), f"get {namespace}/{name}")
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
                    write=(kind, "create"),
                )
                log.info("created %s %s for peering", kind, name)
            except KubeError as exc:
                if exc.status != 409:  # 409: it exists already, which is the goal
                    raise

    async def list_page(
        self, path: str, selector: str, limit: int, token: str = ""
    ) -> dict[str, Any]:
        """One page of a list: a continue token in ``metadata.continue`` asks for the next."""
        query = [("labelSelector", selector), ("limit", str(limit))]
        if token:
            query.append(("continue", token))
        result: dict[str, Any] = await self._call("GET", path, f"listing {path}", query=query)
        return result

    async def watch(
        self, path: str, selector: str, version: str, seconds: int
    ) -> AsyncIterator[dict[str, Any]]:
        """The events of a watch from ``version``, one parsed object each, until the
        server ends it after ``seconds``.

        Read in chunks and split on newlines, not with readline: one event
        can be larger than aiohttp's line limit.
        """
        doing = f"watching {path}"
        query = [
            ("labelSelector", selector),
            ("watch", "true"),
            ("resourceVersion", version),
            ("allowWatchBookmarks", "true"),
            ("timeoutSeconds", str(seconds)),
        ]
        timeout = aiohttp.ClientTimeout(sock_connect=30, sock_read=seconds + 30)
        try:
            response = await self.api.call_api(
                path,
                "GET",
                query_params=query,
                header_params={"Accept": "application/json"},
                auth_settings=["BearerToken"],
                _preload_content=False,
                _request_timeout=timeout,
            )
        except (ApiException, OSError, TimeoutError) as exc:
            raise error(exc, doing) from exc
        async with response:
            if response.status != 200:
                refused = ApiException(status=response.status, reason=response.reason)
                refused.body = await response.text()
                raise error(refused, doing)
            pending: list[bytes] = []  # the start of a line still arriving
            try:
                async for chunk in response.content.iter_any():
                    *complete, rest = chunk.split(b"\n")
                    if complete:
                        complete[0] = b"".join([*pending, complete[0]])
                        pending = []
                    pending.append(rest)
                    for line in complete:
                        if line.strip():
                            yield json.loads(line)
            except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                raise error(exc, doing) from exc

    async def close(self) -> None:
        await self.api.close()
