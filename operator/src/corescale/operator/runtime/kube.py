"""What the runtime asks of the Kubernetes API, as a Protocol, and how a call fails.

The reconcile, the child watches and the handlers depend on :class:`Kube`,
never on a client library: :class:`~corescale.operator.runtime.apiclient.ApiKube`
is the real one, and the unit tests hand the :class:`Reconciler` an in-memory
fake that keeps objects in dicts, so every decision the reconcile takes on an
API's answer (a name taken, a refusal, a timeout, an owner gone) is tested
without a cluster.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any, Protocol

TRANSIENT = frozenset({408, 409, 425, 429, 500, 502, 503, 504})
"""Statuses worth retrying as they are: timeouts, conflicts, overload, server errors."""
SPEC_ERRORS = ("field not declared in schema", "failed to create typed patch object")
"""What a 500 from server-side apply says when the body itself does not fit the
resource's schema (an unknown field under ``valueFrom``, say): retrying the
same body cannot help."""


class KubeError(Exception):
    """An API call failed; the properties say what may help."""

    def __init__(self, status: int, message: str, reason: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.reason = reason
        """The API's machine-readable reason (``AlreadyExists``, ``Forbidden``, ...)."""

    @property
    def transient(self) -> bool:
        """Retrying the same call in a moment may work: the cause is not in the request."""
        if self.status == 500 and any(text in self.message for text in SPEC_ERRORS):
            return False
        return self.status in TRANSIENT or self.status == 0

    @property
    def exists(self) -> bool:
        """A create found the name taken."""
        return self.status == 409 and self.reason == "AlreadyExists"

    @property
    def terminating(self) -> bool:
        """The namespace is being deleted: nothing can be created in it any more."""
        return self.status == 403 and "being terminated" in self.message


class Kube(Protocol):
    """The operator's own API calls (kopf makes the others: login, the CoreClusters'
    watch, the peering keepalive)."""

    async def create(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """Create a child that must not exist yet: 409 AlreadyExists if any object has its name."""
        ...

    async def apply(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """Server-side apply, forced, as the operator's field manager; the object written."""
        ...

    async def delete(self, body: Mapping[str, Any]) -> None:
        """Delete a child (uid precondition when known); one already gone counts as deleted."""
        ...

    async def patch_status(
        self, namespace: str, name: str, status: Mapping[str, Any]
    ) -> dict[str, Any] | None:
        """Merge-patch a CoreCluster's status; the object written, None if it is gone."""
        ...

    async def owner_exists(self, namespace: str, name: str, uid: str) -> bool:
        """Whether this very CoreCluster (same uid) still exists, asked of the API server."""
        ...

    async def post_event(self, event: Mapping[str, Any]) -> None:
        """Create one core/v1 Event (its namespace in its metadata)."""
        ...

    async def ensure_peering(self, name: str, namespaces: tuple[str, ...]) -> None:
        """Create the kopf peering object(s) if missing."""
        ...

    async def list_page(
        self, path: str, selector: str, limit: int, token: str = ""
    ) -> dict[str, Any]:
        """One page of a list; ``metadata.continue`` asks for the next."""
        ...

    def watch(
        self, path: str, selector: str, version: str, seconds: int
    ) -> AsyncIterator[dict[str, Any]]:
        """The events of a watch from ``version`` until the server ends it."""
        ...

    async def close(self) -> None:
        """Release the connection pool."""
        ...
