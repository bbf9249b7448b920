"""The shared metrics file: slots, what survives a restart, and the text format."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from aiohttp import web

from corescale.worker.errors import AppImportError
from corescale.worker.exposition import render
from corescale.worker.loader import load_factory
from corescale.worker.scoreboard import FILE_NAME, Scoreboard, Slot, SlotState


def enter(slot: Slot, started: float) -> None:
    """What the request gate (health.py) writes when a request enters the app."""
    slot.entered.append(started)


def leave(slot: Slot, status: int, seconds: float, started: float) -> None:
    """What the request gate writes when a request leaves the app."""
    slot.left.append(started)
    slot.durations.append(seconds)
    slot.statuses.append(status)


def values(page: str) -> dict[str, float]:
    result = {}
    for line in page.splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            result[key] = float(value)
    return result


def test_requests_are_counted_per_worker_and_rendered(tmp_path: Path) -> None:
    metrics = Scoreboard(str(tmp_path))
    try:
        assert (tmp_path / FILE_NAME).exists()
        metrics.claim(0, 100)
        metrics.claim(1, 101)
        one, two = metrics.slot(0), metrics.slot(1)
        enter(one, 1.0)
        leave(one, 200, 0.003, 1.0)
        enter(one, 2.0)
        leave(one, 503, 0.2, 2.0)
        enter(two, 3.0)
        leave(two, 200, 20.0, 3.0)
        enter(two, time.perf_counter() - 5)  # still in flight, for 5 s
        before_publishing = values(render(metrics.figures()).decode())
        one.publish()
        two.publish()
        metrics.set_workers(2)
        page = values(render(metrics.figures()).decode())
    finally:
        metrics.close()
    assert page['corescale_requests_total{worker="0",code="200"}'] == 1
    assert page['corescale_requests_total{worker="0",code="503"}'] == 1
    assert page['corescale_requests_total{worker="1",code="200"}'] == 1
    assert page['corescale_request_duration_seconds_bucket{worker="0",le="0.001"}'] == 0
    assert page['corescale_request_duration_seconds_bucket{worker="0",le="0.005"}'] == 1
    assert page['corescale_request_duration_seconds_bucket{worker="0",le="0.25"}'] == 2
    assert page['corescale_request_duration_seconds_bucket{worker="1",le="10.0"}'] == 0
    assert page['corescale_request_duration_seconds_bucket{worker="1",le="+Inf"}'] == 1
    assert page['corescale_request_duration_seconds_count{worker="0"}'] == 2
    assert page['corescale_request_duration_seconds_sum{worker="0"}'] == pytest.approx(0.203)
    assert page['corescale_requests_in_flight{worker="1"}'] == 1
    # Busy time: the answered durations plus the age of the one still running.
    assert page['corescale_request_busy_seconds_total{worker="0"}'] == pytest.approx(0.203)
    assert page['corescale_request_busy_seconds_total{worker="1"}'] == pytest.approx(25.0, abs=0.5)
    assert page["corescale_workers"] == 2
    # A process's figures reach the shared slots when it publishes them.
    assert 'corescale_requests_total{worker="0",code="200"}' not in before_publishing


def test_a_publish_sorts_durations_into_buckets_as_prometheus_does(tmp_path: Path) -> None:
    """A duration on a bound counts in that bound's bucket (le); batches add up."""
    metrics = Scoreboard(str(tmp_path))
    try:
        metrics.claim(0, 100)
        slot = metrics.slot(0)
        for index, seconds in enumerate((0.001, 0.0011, 0.0005, 10.0, 10.5, 0.0025)):
            started = 123456.789 + index / 7  # start times that do not add up exactly
            enter(slot, started)
            leave(slot, 200, seconds, started)
        enter(slot, 1.0)
        leave(slot, 999, 0.0001, 1.0)  # no such code: timed, not counted by code
        slot.publish()
        enter(slot, 1.0)
        leave(slot, 404, 0.001, 1.0)
        slot.publish()
        assert (slot.durations, slot.statuses) == ([], [])
        page = values(render(metrics.figures()).decode())
    finally:
        metrics.close()
    bucket = 'corescale_request_duration_seconds_bucket{{worker="0",le="{}"}}'.format
    assert page[bucket("0.001")] == 4
    assert page[bucket("0.0025")] == 6
    assert page[bucket("10.0")] == 7
    assert page[bucket("+Inf")] == 8
    assert page['corescale_request_duration_seconds_count{worker="0"}'] == 8
    assert page['corescale_request_duration_seconds_sum{worker="0"}'] == pytest.approx(20.5062)
    assert page['corescale_requests_total{worker="0",code="200"}'] == 6
    assert page['corescale_requests_total{worker="0",code="404"}'] == 1
    assert not any('code="999"' in key for key in page)
    # Nothing in flight: no age left over from rounding the start times.
    assert (
        page['corescale_request_busy_seconds_total{worker="0"}']
        == page['corescale_request_duration_seconds_sum{worker="0"}']
    )


def test_a_slot_keeps_counting_across_processes_and_folds_in_cpu(tmp_path: Path) -> None:
    metrics = Scoreboard(str(tmp_path))
    try:
        metrics.claim(0, 100)
        slot = metrics.slot(0)
        enter(slot, 1.0)
        leave(slot, 200, 0.01, 1.0)
        enter(slot, 2.0)  # the process dies with this one in flight
        slot.publish()
        enter(slot, 3.0)  # and with this one, counted after its last heartbeat
        leave(slot, 200, 0.01, 3.0)
        metrics.release(0, cpu_seconds=1.5)
        assert metrics.state(0) is SlotState.FREE
        metrics.claim(0, 200)
        assert metrics.state(0) is SlotState.BOOTING
        successor = metrics.slot(0)
        enter(successor, 4.0)
        leave(successor, 200, 0.01, 4.0)
        successor.publish()
        page = values(render(metrics.figures()).decode())
    finally:
        metrics.close()
    assert page['corescale_requests_total{worker="0",code="200"}'] == 2
    assert page['corescale_requests_in_flight{worker="0"}'] == 0
    assert page['corescale_process_cpu_seconds_total{worker="0"}'] == 1.5


def test_balanced_accept_sees_only_ready_workers(tmp_path: Path) -> None:
    metrics = Scoreboard(str(tmp_path))
    try:
        for index in range(3):
            metrics.claim(index, 100 + index)
            metrics.slot(index).set_connections(10 * (index + 1))
        metrics.slot(1).state = SlotState.READY
        metrics.slot(2).state = SlotState.READY
        assert sorted(metrics.ready_connections(exclude=2)) == [20.0]
        assert sorted(metrics.ready_connections(exclude=0)) == [20.0, 30.0]
        # A worker whose loop stopped beating is left out: it cannot accept.
        since = time.monotonic()
        metrics.slot(1).beat(20)
        assert sorted(metrics.ready_connections(exclude=0, beating_since=since)) == [20.0]
    finally:
        metrics.close()


def test_without_a_folder_nothing_is_written_and_an_unusable_one_falls_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    anonymous = Scoreboard(None)
    try:
        assert anonymous.path is None
        assert list(tmp_path.iterdir()) == []
    finally:
        anonymous.close()

    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    fallback = Scoreboard(str(blocked))
    try:
        assert fallback.path is None
        fallback.claim(0, 1)
        slot = fallback.slot(0)
        enter(slot, time.perf_counter())
        slot.publish()
        assert b'corescale_requests_in_flight{worker="0"} 1' in render(fallback.figures())
    finally:
        fallback.close()


def test_load_factory_accepts_an_application_instance_and_rejects_junk() -> None:
    factory = load_factory("corescale.worker.app:create_app")
    assert isinstance(factory(), web.Application)
    with pytest.raises(AppImportError, match="not a factory"):
        load_factory("corescale.worker.app:MAX_MS")
