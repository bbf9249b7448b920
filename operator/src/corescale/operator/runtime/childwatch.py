"""The CoreClusters' children, watched by the operator itself and kept as small summaries.

kopf keeps every object it watches in full while it starts: each object's
event waits, parsed, until every watched kind has been listed once. A pod
as the API sends it (with its managedFields) is about 35 KB of Python
objects, a Deployment some 20 KB, so at 10,000 workers a restart held some
400 MB of pods before the first reconcile and the operator peaked near
900 MB; with the pods watched here and the rest still by kopf, a restart at
1,000 CoreClusters still held about 84 MiB of parsed Deployments, Services,
budgets and EndpointSlices and peaked at 337 MiB (make bench-scale,
2026-11-30; docs/operator.md). The reconciles and the autoscaler need a
part of each child (the summary each Kind names), so the operator lists
and watches its children here, keeps only that part, and drops each page
and event as soon as it is summarised. kopf watches the CoreClusters alone.

A change to a child's summary calls ``on_change`` with its CoreCluster's
key; changes that leave the summary as it was (most pod status rewrites)
call nothing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from corescale.operator.api.names import CLUSTER_LABEL
from corescale.operator.runtime.kube import Kube, KubeError

log = logging.getLogger(__name__)

Key = tuple[str, str]
Summary = dict[str, Any]
PAGE = 500
WATCH_SECONDS = 300
MAX_DELAY = 30.0


@dataclass(frozen=True)
class Kind:
    """One kind of child: where it is listed, which labels pick ours, what is kept of each."""

    api: str
    """The group's path: ``/api/v1`` or ``/apis/GROUP/VERSION``."""
    plural: str
    selector: str
    summary: Callable[[Mapping[str, Any]], Summary]

    def path(self, namespace: str | None) -> str:
        if namespace:
            return f"{self.api}/namespaces/{namespace}/{self.plural}"
        return f"{self.api}/{self.plural}"


class ChildStore(Mapping[Key, list[Summary]]):
    """Summaries of one kind by CoreCluster key, in the shape of a kopf index's ``get``."""

    def __init__(self, summary: Callable[[Mapping[str, Any]], Summary]) -> None:
        self._summary = summary
        self._children: dict[Key, dict[str, Summary]] = {}
        self._where: dict[str, Key] = {}  # uid -> its CoreCluster's key
        self.synced = asyncio.Event()
        """Set once every watched namespace has been listed."""

    def __getitem__(self, key: Key) -> list[Summary]:
        return list(self._children[key].values())

    def __iter__(self) -> Iterator[Key]:
        return iter(self._children)

    def __len__(self) -> int:
        return len(self._children)

    def put(self, body: Mapping[str, Any]) -> set[Key]:
        """Add or update one child; the keys whose children changed."""
        metadata = body["metadata"]
        uid, namespace = metadata["uid"], metadata.get("namespace", "")
        key = (namespace, (metadata.get("labels") or {}).get(CLUSTER_LABEL, ""))
        summary = self._summary(body)
        changed = self._drop(uid, unless=key)
        children = self._children.setdefault(key, {})
        if children.get(uid) != summary:
            children[uid] = summary
            changed.add(key)
        self._where[uid] = key
        return changed

    def remove(self, body: Mapping[str, Any]) -> set[Key]:
        """Forget one child; the keys whose children changed."""
        return self._drop(body["metadata"]["uid"])

    def retain(self, namespace: str | None, seen: set[str]) -> set[Key]:
        """Forget the children of one namespace (None: all) not in ``seen``; the keys changed."""
        gone = [
            uid
            for uid, (where, _) in self._where.items()
            if uid not in seen and namespace in (None, where)
        ]
        changed: set[Key] = set()
        for uid in gone:
            changed |= self._drop(uid)
        return changed

    def _drop(self, uid: str, unless: Key | None = None) -> set[Key]:
        key = self._where.get(uid)
        if key is None or key == unless:
            return set()
        del self._where[uid]
        children = self._children.get(key, {})
        children.pop(uid, None)
        if not children:
            self._children.pop(key, None)
        return {key}


class ChildWatch:
    """Lists then watches one kind of child in each namespace, for ever.

    A watch the server ends is resumed from the last version seen; a version
    too old to resume from (410 Gone) means a new list at once; any other
    failed call is retried after a delay that doubles up to 30 s, logged once
    per message.
    """

    def __init__(
        self, api: Kube, namespaces: tuple[str, ...], kind: Kind, store: ChildStore
    ) -> None:
        self.api = api
        self.namespaces: tuple[str | None, ...] = namespaces or (None,)
        self.kind = kind
        self.store = store
        self.on_change: Callable[[Key], None] | None = None
        """Set by the handlers once they can reconcile (handlers._follow_children)."""

    async def run(self) -> None:
        listed = [asyncio.Event() for _ in self.namespaces]
        followers = [
            asyncio.create_task(
                self._follow(namespace, done),
                name=f"{self.kind.plural} in {namespace or 'all namespaces'}",
            )
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

    async def _follow(self, namespace: str | None, listed: asyncio.Event) -> None:
        version, delay, said = "", 1.0, ""
        while True:
            try:
                if not version:
                    version = await self._list(namespace)
                    listed.set()
                version = await self._watch(namespace, version)
                delay, said = 1.0, ""
            except KubeError as exc:
                if exc.status == 410:
                    version = ""
                    continue
                if exc.message != said:
                    log.warning("%s: %s; retrying", self.kind.plural, exc.message)
                    said = exc.message
                await asyncio.sleep(delay)
                delay = min(delay * 2, MAX_DELAY)

    async def _list(self, namespace: str | None) -> str:
        """Every child of the namespace, a page at a time; the list's resourceVersion.

        Each page is summarised into the store as it comes, so only one
        page of full objects is held at a time.
        """
        path, token = self.kind.path(namespace), ""
        seen: set[str] = set()
        changed: set[Key] = set()
        while True:
            page = await self.api.list_page(path, self.kind.selector, PAGE, token)
            kind, api_version = (
                str(page.get("kind", "")).removesuffix("List"),
                page.get("apiVersion"),
            )
            for body in page.get("items") or []:
                # A list names the kind once, for all its items; a watch
                # event names it in each object, and so must the store.
                body.setdefault("kind", kind)
                body.setdefault("apiVersion", api_version)
                seen.add(body["metadata"]["uid"])
                changed |= self.store.put(body)
            token = (page.get("metadata") or {}).get("continue") or ""
            if not token:
                self._notify(changed | self.store.retain(namespace, seen))
                return str(page["metadata"]["resourceVersion"])

    async def _watch(self, namespace: str | None, version: str) -> str:
        path = self.kind.path(namespace)
        async for event in self.api.watch(path, self.kind.selector, version, WATCH_SECONDS):
            happened, body = event.get("type"), event.get("object") or {}
            if happened == "ERROR":
                message = f"watching {self.kind.plural}: {body.get('message')}"
                raise KubeError(int(body.get("code") or 0), message)
            version = (body.get("metadata") or {}).get("resourceVersion") or version
            if happened == "DELETED":
                self._notify(self.store.remove(body))
            elif happened in ("ADDED", "MODIFIED"):
                self._notify(self.store.put(body))
        return version

    def _notify(self, keys: set[Key]) -> None:
        if self.on_change is None:
            return
        for key in keys:
            self.on_change(key)
