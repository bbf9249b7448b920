"""The workers' pods, watched by the operator itself and kept as small summaries.

kopf keeps every object it watches in full while it starts: each object's
event waits, parsed, until every watched kind has been listed once. A pod
as the API sends it (with its managedFields) is about 35 KB of Python
objects, so at 10,000 workers a restart held some 400 MB of pods before the
first reconcile and the operator peaked near 900 MB (make bench-scale,
2026-11-30; docs/operator.md). The reconciles and the autoscaler need a few
fields of each pod (scaling.pod_summary), so the operator lists and watches
its pods here, keeps only those fields, and drops each page and event as
soon as it is summarised. Everything else is still watched by kopf.

A change to a pod's summary calls ``on_change`` with its CoreCluster's key,
as kopf's event handlers do for the other children; changes that leave the
summary as it was (most status rewrites) call nothing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from corescale.operator.kube import Kube, KubeError
from corescale.operator.names import CLUSTER_LABEL, MANAGED_BY
from corescale.operator.scaling import pod_summary

log = logging.getLogger(__name__)

Key = tuple[str, str]
Summary = dict[str, Any]
SELECTOR = f"app.kubernetes.io/managed-by={MANAGED_BY},{CLUSTER_LABEL}"
"""The pods kopf watched before: the operator's labels, with a CoreCluster named."""
PAGE = 500
WATCH_SECONDS = 300
MAX_DELAY = 30.0


class Expired(Exception):
    """The watch's resourceVersion is too old (410 Gone): list again."""


class PodStore(Mapping[Key, list[Summary]]):
    """Pod summaries by CoreCluster key, in the shape of a kopf index's ``get``."""

    def __init__(self) -> None:
        self._pods: dict[Key, dict[str, Summary]] = {}
        self._where: dict[str, tuple[str, Key]] = {}  # uid -> (namespace, key)
        self.synced = asyncio.Event()
        """Set once every watched namespace has been listed."""

    def __getitem__(self, key: Key) -> list[Summary]:
        return list(self._pods[key].values())

    def __iter__(self) -> Iterator[Key]:
        return iter(self._pods)

    def __len__(self) -> int:
        return len(self._pods)

    def put(self, body: Mapping[str, Any]) -> set[Key]:
        """Add or update one pod; the keys whose pods changed."""
        metadata = body["metadata"]
        uid, namespace = metadata["uid"], metadata.get("namespace", "")
        key = (namespace, (metadata.get("labels") or {}).get(CLUSTER_LABEL, ""))
        summary = pod_summary(body)
        changed = self._drop(uid, unless=key)
        pods = self._pods.setdefault(key, {})
        if pods.get(uid) != summary:
            pods[uid] = summary
            changed.add(key)
        self._where[uid] = (namespace, key)
        return changed

    def remove(self, body: Mapping[str, Any]) -> set[Key]:
        """Forget one pod; the keys whose pods changed."""
        return self._drop(body["metadata"]["uid"])

    def retain(self, namespace: str | None, seen: set[str]) -> set[Key]:
        """Forget the pods of one namespace (None: all) not in ``seen``; the keys changed."""
        gone = [
            uid
            for uid, (where, _) in self._where.items()
            if uid not in seen and (namespace is None or where == namespace)
        ]
        changed: set[Key] = set()
        for uid in gone:
            changed |= self._drop(uid)
        return changed

    def _drop(self, uid: str, unless: Key | None = None) -> set[Key]:
        where = self._where.get(uid)
        if where is None or where[1] == unless:
            return set()
        key = where[1]
        del self._where[uid]
        pods = self._pods.get(key, {})
        pods.pop(uid, None)
        if not pods:
            self._pods.pop(key, None)
        return {key}


class PodWatch:
    """Lists then watches the operator's pods in each namespace, for ever.

    A watch the server ends is resumed from the last version seen; one too
    old to resume (410) is replaced by a new list; a failed call is retried
    after a delay that doubles up to 30 s, logged once per message.
    """

    def __init__(self, api: Kube, namespaces: tuple[str, ...], store: PodStore) -> None:
        self.api = api
        self.namespaces: tuple[str | None, ...] = namespaces or (None,)
        self.store = store
        self.on_change: Callable[[Key], None] | None = None
        """Set by the handlers once they can reconcile (handlers._follow_pods)."""

    async def run(self) -> None:
        listed = [asyncio.Event() for _ in self.namespaces]
        followers = [
            asyncio.create_task(self._follow(namespace, done), name=f"pods in {namespace or 'all'}")
            for namespace, done in zip(self.namespaces, listed, strict=True)
        ]
        try:
            for done in listed:
                await done.wait()
            self.store.synced.set()
            await asyncio.gather(*followers)
        finally:
            for task in followers:
                task.cancel()

    @staticmethod
    def _path(namespace: str | None) -> str:
        return f"/api/v1/namespaces/{namespace}/pods" if namespace else "/api/v1/pods"

    async def _follow(self, namespace: str | None, listed: asyncio.Event) -> None:
        version, delay, said = "", 1.0, ""
        while True:
            try:
                if not version:
                    version = await self._list(namespace)
                    listed.set()
                version = await self._watch(namespace, version)
                delay, said = 1.0, ""
            except Expired:
                version = ""
            except KubeError as exc:
                if exc.message != said:
                    log.warning("pods: %s; retrying", exc.message)
                    said = exc.message
                if exc.status == 410:
                    version = ""
                await asyncio.sleep(delay)
                delay = min(delay * 2, MAX_DELAY)

    async def _list(self, namespace: str | None) -> str:
        """Every pod of the namespace, a page at a time; the list's resourceVersion.

        Each page is summarised into the store as it comes, so only one
        page of full objects is held at a time.
        """
        path, token, seen, changed = self._path(namespace), "", set(), set()
        while True:
            page = await self.api.list_page(path, SELECTOR, PAGE, token)
            for body in page.get("items") or []:
                seen.add(body["metadata"]["uid"])
                changed |= self.store.put(body)
            token = (page.get("metadata") or {}).get("continue") or ""
            if not token:
                self._notify(changed | self.store.retain(namespace, seen))
                return str(page["metadata"]["resourceVersion"])

    async def _watch(self, namespace: str | None, version: str) -> str:
        async for event in self.api.watch(self._path(namespace), SELECTOR, version, WATCH_SECONDS):
            kind, body = event.get("type"), event.get("object") or {}
            if kind == "ERROR":
                if body.get("code") == 410:
                    raise Expired()
                raise KubeError(int(body.get("code") or 0), f"watching pods: {body.get('message')}")
            version = (body.get("metadata") or {}).get("resourceVersion") or version
            if kind == "DELETED":
                self._notify(self.store.remove(body))
            elif kind in ("ADDED", "MODIFIED"):
                self._notify(self.store.put(body))
        return version

    def _notify(self, keys: set[Key]) -> None:
        if self.on_change is None:
            return
        for key in keys:
            self.on_change(key)
