"""The operator's memory of its own writes: newer copy wins, for a while only."""

from __future__ import annotations

from typing import Any

from corescale.operator.runtime.own_writes import MEMORY_SECONDS, OwnWrites, version

KEY = ("shop", "hello")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def obj(rv: int, **extra: Any) -> dict[str, Any]:
    return {"metadata": {"name": "hello", "resourceVersion": str(rv)}, **extra}


def test_version_reads_resource_version_or_zero() -> None:
    assert version(obj(42)) == 42
    assert version(None) == 0
    assert version({"metadata": {"resourceVersion": "not-a-number"}}) == 0


def test_an_own_write_newer_than_the_watch_is_used_until_the_watch_catches_up() -> None:
    clock = Clock()
    own = OwnWrites(clock)
    own.applied(KEY, "Service", obj(7, spec={"port": 80}))
    # The watch still shows the object before the write.
    assert own.child(KEY, "Service", obj(5)) == obj(7, spec={"port": 80})
    # The watch has the write now (or a later change): it wins, and stays the source.
    assert own.child(KEY, "Service", obj(7)) == obj(7)
    assert own.child(KEY, "Service", obj(5)) == obj(5)


def test_an_own_write_is_forgotten_after_the_memory_span() -> None:
    clock = Clock()
    own = OwnWrites(clock)
    own.applied(KEY, "Service", obj(7))
    clock.now += MEMORY_SECONDS + 0.1
    assert own.child(KEY, "Service", obj(5)) == obj(5)
    assert own.child(KEY, "Service", None) is None


def test_a_deleted_child_is_gone_unless_the_watch_shows_a_newer_one() -> None:
    clock = Clock()
    own = OwnWrites(clock)
    own.applied(KEY, "Deployment/pods", obj(3))
    own.deleted(KEY, "Deployment/pods", 3)
    assert own.child(KEY, "Deployment/pods", obj(3)) is None
    # Re-created since (by anyone): a newer version is real.
    assert own.child(KEY, "Deployment/pods", obj(9)) == obj(9)
    clock.now += MEMORY_SECONDS + 0.1
    assert own.child(KEY, "Deployment/pods", obj(3)) == obj(3)


def test_a_written_status_is_used_while_the_body_is_older() -> None:
    clock = Clock()
    own = OwnWrites(clock)
    body = obj(10, status={"replicas": 2})
    assert own.status(KEY, body) == {"replicas": 2}
    own.status_written(KEY, 11, {"replicas": 4})
    assert own.status(KEY, body) == {"replicas": 4}
    assert own.status(KEY, obj(11, status={"replicas": 4, "x": 1})) == {"replicas": 4, "x": 1}
    # Once the body caught up, the memory is dropped for good.
    assert own.status(KEY, body) == {"replicas": 2}
    assert own.status(KEY, obj(3)) == {}


def test_forget_drops_one_corecluster_only() -> None:
    clock = Clock()
    own = OwnWrites(clock)
    other = ("shop", "other")
    for key in (KEY, other):
        own.applied(key, "Service", obj(7))
        own.status_written(key, 11, {"replicas": 4})
    own.forget(KEY)
    assert own.child(KEY, "Service", obj(5)) == obj(5)
    assert own.status(KEY, obj(10)) == {}
    assert own.child(other, "Service", obj(5)) == obj(7)
    assert own.status(other, obj(10)) == {"replicas": 4}
