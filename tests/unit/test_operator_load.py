"""Reading the load of a CoreCluster from its workers' expositions."""

from __future__ import annotations

import pytest

from corescale.operator.autoscaler.decision import Sample
from corescale.operator.autoscaler.load import (
    MetricsError,
    Reading,
    cluster_sample,
    concurrency,
    parse,
)

EXPOSITION = """\
# HELP corescale_requests_in_flight Requests being handled now.
# TYPE corescale_requests_in_flight gauge
corescale_requests_in_flight{worker="0"} 3
corescale_requests_in_flight{worker="1"} 2
corescale_request_duration_seconds_bucket{worker="0",le="+Inf"} 10
corescale_request_duration_seconds_sum{worker="0"} 12.5
corescale_request_duration_seconds_sum{worker="1"} 7.5
corescale_request_duration_seconds_count{worker="0"} 10
corescale_workers 2
"""


def test_parse_sums_over_the_pods_processes() -> None:
    assert parse(EXPOSITION, 5.0) == Reading(5.0, 5.0, 20.0, 2)


def test_parse_refuses_what_is_not_a_corescale_worker() -> None:
    with pytest.raises(MetricsError, match="corescale_workers"):
        parse("up 1\n", 0.0)
    with pytest.raises(MetricsError, match="not a sample line"):
        parse("corescale_workers\n", 0.0)


def test_littles_law_gives_the_average_between_two_scrapes() -> None:
    before, after = Reading(10.0, 1.0, 100.0, 1), Reading(11.0, 2.0, 106.0, 1)
    assert concurrency(before, after) == 6.0


def test_requests_still_running_count_even_before_they_finish() -> None:
    before, after = Reading(10.0, 0.0, 100.0, 1), Reading(11.0, 9.0, 100.5, 1)
    assert concurrency(before, after) == 9.0


def test_a_counter_reset_is_not_read_as_a_dip() -> None:
    before, after = Reading(10.0, 4.0, 500.0, 1), Reading(11.0, 4.0, 0.4, 1)
    assert concurrency(before, after) == 4.0
    assert concurrency(None, after) == 4.0


def test_pods_that_did_not_answer_are_not_idle_pods() -> None:
    sample = cluster_sample(3.0, {"a": (6.0, 1), "b": (4.0, 1)}, ready_workers=4)
    assert sample == Sample(3.0, 20.0, 4)


def test_a_round_where_no_pod_answered_is_no_sample() -> None:
    assert cluster_sample(3.0, {}, ready_workers=4) is None


def test_prefork_pods_count_all_their_workers() -> None:
    sample = cluster_sample(3.0, {"a": (8.0, 4)}, ready_workers=8)
    assert sample == Sample(3.0, 16.0, 8)


def test_the_busy_integral_gives_the_exact_average_when_published() -> None:
    text = EXPOSITION + 'corescale_request_busy_seconds_total{worker="0"} 30.5\n'
    reading = parse(text, 5.0)
    assert reading.busy_total == 30.5
    before = Reading(4.0, 9.0, 0.0, 1, busy_total=24.5)
    # 6 s of requests in flight over 1 s: six on average, whatever the gauge says now
    assert concurrency(before, reading) == 6.0
    assert concurrency(Reading(4.0, 0.0, 0.0, 1, busy_total=99.0), reading) == reading.in_flight
