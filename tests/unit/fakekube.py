"""An in-memory Kube for unit tests of the runtime's decisions, never for integration tests.

It keeps objects in a dict and answers as the API server would for the calls
the operator makes: a create of a taken name is 409 AlreadyExists, every write
gets a new opaque resourceVersion, a status write on a CoreCluster that is gone
returns None. ``fail`` makes the next calls of one verb and kind raise the
KubeError given, as a refusing or overloaded API server would.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import AsyncIterator, Mapping
from typing import Any

from corescale.operator.runtime.kube import KubeError

Ident = tuple[str, str, str]
"""(kind, namespace, name)."""


def ident(body: Mapping[str, Any]) -> Ident:
    return body["kind"], body["metadata"]["namespace"], body["metadata"]["name"]


class FakeKube:
    """The operator's API calls against dicts; what was called is in ``calls``."""

    def __init__(self) -> None:
        self.objects: dict[Ident, dict[str, Any]] = {}
        self.statuses: dict[tuple[str, str], dict[str, Any]] = {}
        self.owners: dict[tuple[str, str], str] = {}
        """The CoreClusters that exist, by (namespace, name): their uid."""
        self.events: list[dict[str, Any]] = []
        self.calls: list[tuple[str, str]] = []
        """(verb, kind) of every write, in order."""
        self.fail: dict[tuple[str, str], KubeError] = {}
        self._versions = (f"v{n:x}" for n in itertools.count(17, 7))
        self.closed = False

    def _check(self, verb: str, kind: str) -> None:
        self.calls.append((verb, kind))
        error = self.fail.get((verb, kind))
        if error is not None:
            raise error

    def _stored(self, body: Mapping[str, Any], uid: str) -> dict[str, Any]:
        stored = copy.deepcopy(dict(body))
        stored["metadata"] = {
            **stored["metadata"],
            "uid": uid,
            "resourceVersion": next(self._versions),
        }
        self.objects[ident(body)] = stored
        return copy.deepcopy(stored)

    async def create(self, body: Mapping[str, Any]) -> dict[str, Any]:
        self._check("create", body["kind"])
        if ident(body) in self.objects:
            name = body["metadata"]["name"]
            raise KubeError(409, f"create {body['kind']} {name}: already exists", "AlreadyExists")
        return self._stored(body, f"uid-{body['kind']}-{body['metadata']['name']}")

    async def apply(self, body: Mapping[str, Any]) -> dict[str, Any]:
        self._check("apply", body["kind"])
        existing = self.objects.get(ident(body))
        uid = existing["metadata"]["uid"] if existing else f"uid-{body['metadata']['name']}"
        return self._stored(body, uid)

    async def delete(self, body: Mapping[str, Any]) -> None:
        self._check("delete", body["kind"])
        self.objects.pop(ident(body), None)

    async def patch_status(
        self, namespace: str, name: str, status: Mapping[str, Any]
    ) -> dict[str, Any] | None:
        self._check("patch_status", "CoreCluster")
        if (namespace, name) not in self.owners:
            return None
        merged = {**self.statuses.get((namespace, name), {}), **copy.deepcopy(dict(status))}
        self.statuses[(namespace, name)] = {k: v for k, v in merged.items() if v is not None}
        meta = {"namespace": namespace, "name": name, "resourceVersion": next(self._versions)}
        return {"metadata": meta, "status": self.statuses[(namespace, name)]}

    async def owner_exists(self, namespace: str, name: str, uid: str) -> bool:
        self._check("get", "CoreCluster")
        return self.owners.get((namespace, name)) == uid

    async def post_event(self, event: Mapping[str, Any]) -> None:
        self._check("create", "Event")
        self.events.append(copy.deepcopy(dict(event)))

    async def ensure_peering(self, name: str, namespaces: tuple[str, ...]) -> None:
        self._check("create", "ClusterKopfPeering")

    async def list_page(
        self, path: str, selector: str, limit: int, token: str = ""
    ) -> dict[str, Any]:
        return {"kind": "List", "items": [], "metadata": {"resourceVersion": "v0"}}

    async def watch(
        self, path: str, selector: str, version: str, seconds: int
    ) -> AsyncIterator[dict[str, Any]]:
        nothing: tuple[dict[str, Any], ...] = ()
        for event in nothing:
            yield event

    async def close(self) -> None:
        self.closed = True
