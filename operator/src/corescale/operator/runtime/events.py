"""Events on CoreClusters, posted by the operator itself in the background.

kopf's ``kopf.event`` only works inside kopf's processing of one object (its
queue lives in a context variable set there), which tied every reconcile, and
so the child watches and the autoscaler, to the context of some handler call.
The operator posts its own events through :class:`~corescale.operator.runtime.kube.Kube`
instead, from a queue that any task may fill, so a reconcile needs nothing of
kopf and the unit tests read the events a fake Kube received.

The queue is bounded: a tenant whose CoreCluster fails in a loop cannot make
the operator hold an unbounded backlog; what does not fit is dropped and
counted in one log line.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import os

from corescale.operator.api import names
from corescale.operator.runtime.kube import Kube, KubeError
from corescale.operator.runtime.own_writes import Object

log = logging.getLogger(__name__)

COMPONENT = "corescale-operator"
"""The ``source.component`` of every event: the "From" column of ``kubectl describe``."""
MAX_MESSAGE = 1024
"""The API server refuses longer event messages; the middle is cut, as kopf cuts it."""
MAX_QUEUED = 1000


def _cut(message: str) -> str:
    if len(message) <= MAX_MESSAGE:
        return message
    half = (MAX_MESSAGE - 3) // 2
    return f"{message[:half]}...{message[-half:]}"


def event_body(target: Object, kind: str, reason: str, message: str, now: str) -> dict[str, object]:
    """A core/v1 Event about the CoreCluster ``target`` (a body with its metadata)."""
    meta = target["metadata"]
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"namespace": meta["namespace"], "generateName": f"{meta['name']}."},
        "involvedObject": {
            "apiVersion": names.API_VERSION,
            "kind": names.KIND,
            "namespace": meta["namespace"],
            "name": meta["name"],
            "uid": meta["uid"],
        },
        "type": kind,
        "reason": reason,
        "message": _cut(message),
        "action": reason,
        "source": {"component": COMPONENT},
        "reportingComponent": COMPONENT,
        "reportingInstance": os.environ.get("HOSTNAME", COMPONENT),
        "firstTimestamp": now[:19] + "Z",
        "lastTimestamp": now[:19] + "Z",
        "eventTime": now,
        "count": 1,
    }


class Events:
    """A queue of events and the task that posts them in order."""

    def __init__(self, kube: Kube) -> None:
        self._kube = kube
        self._queue: asyncio.Queue[dict[str, object]] = asyncio.Queue(MAX_QUEUED)
        self._dropped = 0

    def post(self, target: Object, kind: str, reason: str, message: str) -> None:
        """Queue one event; never waits (a full queue drops it, counted)."""
        now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        try:
            self._queue.put_nowait(event_body(target, kind, reason, message, now))
        except asyncio.QueueFull:
            self._dropped += 1

    async def run(self) -> None:
        """Post until cancelled; a refused post is logged, not retried."""
        while True:
            event = await self._queue.get()
            try:
                await self._kube.post_event(event)
            except KubeError as exc:
                log.warning("cannot post an event: %s", exc.message)
            finally:
                self._queue.task_done()
            if self._dropped and self._queue.empty():
                log.warning(
                    "%d events dropped: more than %d were waiting", self._dropped, MAX_QUEUED
                )
                self._dropped = 0

    async def flush(self) -> None:
        """Wait until every queued event has been posted (or refused)."""
        await self._queue.join()
