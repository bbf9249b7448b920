"""The operator's own metrics: names, labels, counting and forgetting."""

import socket
import urllib.request

import pytest
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from corescale.operator.process import metrics, settings
from corescale.operator.runtime.outcome import Outcome

KEY = ("shop", "hello")


def _value(name: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(name, labels)


def _conditions(ready: str, degraded: str) -> list[dict[str, str]]:
    return [
        {"type": "Ready", "status": ready},
        {"type": "Progressing", "status": "False"},
        {"type": "Degraded", "status": degraded},
    ]


def test_outcomes_map_to_the_four_results() -> None:
    assert Outcome().result == "ok"
    assert Outcome("bad spec", invalid=True).result == "invalid"
    assert Outcome("timeout", transient=True).result == "transient"
    assert Outcome("forbidden").result == "error"


def test_reconciles_are_counted_and_timed() -> None:
    before = _value("corescale_operator_reconciles_total", result="ok") or 0.0
    count = _value("corescale_operator_reconcile_duration_seconds_count") or 0.0
    metrics.reconciled("ok", 0.02)
    assert _value("corescale_operator_reconciles_total", result="ok") == before + 1
    assert _value("corescale_operator_reconcile_duration_seconds_count") == count + 1


def test_coreclusters_are_counted_by_condition_and_forgotten() -> None:
    other = ("shop", "other")
    metrics.corecluster(KEY, _conditions("True", "False"), desired=3, ready=2)
    metrics.corecluster(other, _conditions("False", "True"), desired=1, ready=0)
    assert _value("corescale_operator_coreclusters", condition="Ready", status="True") == 1
    assert _value("corescale_operator_coreclusters", condition="Degraded", status="True") == 1
    assert _value("corescale_operator_coreclusters", condition="Ready", status="Unknown") == 0
    labels = {"namespace": "shop", "corecluster": "hello"}
    assert _value("corescale_operator_workers_desired", **labels) == 3
    assert _value("corescale_operator_workers_ready", **labels) == 2

    # An unusable spec says nothing about workers: the last figures stay.
    metrics.corecluster(KEY, _conditions("False", "True"))
    assert _value("corescale_operator_workers_desired", **labels) == 3
    assert _value("corescale_operator_coreclusters", condition="Degraded", status="True") == 2

    metrics.forget(KEY)
    metrics.forget(other)
    assert _value("corescale_operator_coreclusters", condition="Degraded", status="True") == 0
    assert _value("corescale_operator_workers_desired", **labels) is None
    assert _value("corescale_operator_workers_ready", **labels) is None


def test_decisions_by_direction() -> None:
    metrics.decided(KEY, 2, 5)
    metrics.decided(KEY, 5, 5)
    metrics.decided(KEY, 5, 3)
    labels = {"namespace": "shop", "corecluster": "hello"}
    for direction in ("up", "hold", "down"):
        assert _value(
            "corescale_operator_autoscaler_decisions_total", direction=direction, **labels
        )
    metrics.forget(KEY)
    assert _value("corescale_operator_autoscaler_decisions_total", direction="up", **labels) is None


def test_api_writes_by_kind_verb_and_result() -> None:
    metrics.api_write("Deployment", "apply", ok=True)
    metrics.api_write("Deployment", "apply", ok=False)
    for result in ("ok", "error"):
        assert _value(
            "corescale_operator_api_writes_total", kind="Deployment", verb="apply", result=result
        )


def test_served_on_its_own_port_in_the_exposition_format() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    thread = metrics.serve(f"127.0.0.1:{port}")
    assert thread is not None and thread.daemon
    metrics.reconciled("ok", 0.01)
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    names = {family.name for family in text_string_to_metric_families(text)}
    assert {
        "corescale_operator_reconciles",
        "corescale_operator_reconcile_duration_seconds",
        "corescale_operator_api_writes",
        "corescale_operator_coreclusters",
        "corescale_operator_autoscaler_rounds",
        "corescale_operator_autoscaler_scrapes",
        "corescale_operator_autoscaler_scrape_errors",
        "process_cpu_seconds",
    } <= names


def test_the_metrics_address_is_a_setting() -> None:
    assert settings.load({}).metrics == "0.0.0.0:8080"
    assert settings.load({"CORESCALE_METRICS": ""}).metrics == ""
    assert settings.load({"CORESCALE_METRICS": "127.0.0.1:9100"}).metrics == "127.0.0.1:9100"
    assert metrics.serve("") is None
    for wrong in ("8080", "host:http", "0.0.0.0:70000"):
        with pytest.raises(settings.SettingsError, match="CORESCALE_METRICS"):
            settings.load({"CORESCALE_METRICS": wrong})
