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


def test_version_is_the_opaque_resource_version_or_empty() -> None:
    assert version(obj(42)) == "42"
    assert version(None) == ""
    assert version({"metadata": {"resourceVersion": "not-a-number"}}) == "not-a-number"


def test_an_own_write_is_used_while_the_watch_shows_the_version_before_it() -> None:
    clock = Clock()
    own = OwnWrites(clock)
    own.applied(KEY, "Service", obj(7, spec={"port": 80}), before="5")
    # The watch still shows the object before the write.
    assert own.child(KEY, "Service", obj(5)) == obj(7, spec={"port": 80})
    # The watch has the write now: it wins, and stays the source.
    assert own.child(KEY, "Service", obj(7)) == obj(7)
    assert own.child(KEY, "Service", obj(5)) == obj(5)


def test_versions_are_never_ordered_a_later_change_with_a_smaller_number_wins() -> None:
    """Kubernetes' resourceVersions are opaque: only "the one before the write" is stale."""
    own = OwnWrites(Clock())
    own.applied(KEY, "Service", obj(700), before="650")
    assert own.child(KEY, "Service", obj(99)) == obj(99)


def test_a_created_child_is_used_until_the_watch_shows_any_copy() -> None:
    own = OwnWrites(Clock())
    own.applied(KEY, "Service", obj(7))
    assert own.child(KEY, "Service", None) == obj(7)
    assert own.child(KEY, "Service", obj(8)) == obj(8)


def test_an_own_write_is_forgotten_after_the_memory_span() -> None:
    clock = Clock()
    own = OwnWrites(clock)
    own.applied(KEY, "Service", obj(7), before="5")
    clock.now += MEMORY_SECONDS + 0.1
    assert own.child(KEY, "Service", obj(5)) == obj(5)
    assert own.child(KEY, "Service", None) is None


def test_a_deleted_child_is_gone_unless_the_watch_shows_another_version() -> None:
    clock = Clock()
    own = OwnWrites(clock)
    own.applied(KEY, "Deployment/pods", obj(3))
    own.deleted(KEY, "Deployment/pods", "3")
    assert own.child(KEY, "Deployment/pods", obj(3)) is None
    # Re-created since (by anyone): another version is real.
    assert own.child(KEY, "Deployment/pods", obj(9)) == obj(9)
    clock.now += MEMORY_SECONDS + 0.1
    assert own.child(KEY, "Deployment/pods", obj(3)) == obj(3)


def test_a_written_status_is_used_while_the_body_is_the_one_it_was_written_over() -> None:
    clock = Clock()
    own = OwnWrites(clock)
    body = obj(10, status={"replicas": 2})
    assert own.status(KEY, body) == {"replicas": 2}
    own.status_written(KEY, "10", {"replicas": 4})
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
        own.applied(key, "Service", obj(7), before="5")
        own.status_written(key, "10", {"replicas": 4})
    own.forget(KEY)
    assert own.child(KEY, "Service", obj(5)) == obj(5)
    assert own.status(KEY, obj(10)) == {}
    assert own.child(other, "Service", obj(5)) == obj(7)
    assert own.status(other, obj(10)) == {"replicas": 4}
