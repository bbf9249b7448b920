"""The operator's environment variables, their defaults and their errors."""

import pytest

from corescale.operator.process import settings


def test_defaults_watch_everything_with_peering() -> None:
    loaded = settings.load({})
    assert loaded.worker_image == "corescale-worker:dev"
    assert loaded.clusterwide and loaded.namespaces == ()
    assert loaded.log_format == "text" and loaded.log_level == "info"
    assert loaded.peering == "corescale"
    assert loaded.liveness_url == "http://0.0.0.0:8081/healthz"
    assert loaded.resync_seconds == 60.0
    assert loaded.peering_lifetime == 10
    assert loaded.service_types == ("ClusterIP",)


def test_every_variable_is_read() -> None:
    loaded = settings.load(
        {
            "CORESCALE_WORKER_IMAGE": "registry.example/corescale:1.2",
            "CORESCALE_NAMESPACES": " team-b, team-a ,,team-b",
            "CORESCALE_LOG_FORMAT": "JSON",
            "CORESCALE_LOG_LEVEL": "debug",
            "CORESCALE_PEERING": "",
            "CORESCALE_PEERING_PRIORITY": "7",
            "CORESCALE_LIVENESS": "",
            "CORESCALE_RESYNC_SECONDS": "5",
            "CORESCALE_PEERING_LIFETIME": "20",
            "CORESCALE_SERVICE_TYPES": "NodePort, ClusterIP",
        }
    )
    assert loaded.worker_image == "registry.example/corescale:1.2"
    assert loaded.namespaces == ("team-a", "team-b") and not loaded.clusterwide
    assert loaded.log_format == "json" and loaded.log_level == "debug"
    assert loaded.peering == "" and loaded.priority == 7
    assert loaded.liveness_url is None
    assert loaded.resync_seconds == 5.0
    assert loaded.peering_lifetime == 20
    assert loaded.service_types == ("ClusterIP", "NodePort")


def test_replicas_get_distinct_priorities_by_default() -> None:
    """kopf pauses all peers that share a priority, so defaults must differ."""
    priorities = {settings.load({}).priority for _ in range(20)}
    assert len(priorities) > 1


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("CORESCALE_LOG_FORMAT", "xml"),
        ("CORESCALE_LOG_LEVEL", "loud"),
        ("CORESCALE_PEERING_PRIORITY", "high"),
        ("CORESCALE_RESYNC_SECONDS", "0.1"),
        ("CORESCALE_RESYNC_SECONDS", "soon"),
        ("CORESCALE_PEERING_LIFETIME", "2"),
        ("CORESCALE_PEERING_LIFETIME", "7.5"),
        ("CORESCALE_SERVICE_TYPES", "ClusterIP,ExternalName"),
    ],
)
def test_bad_values_are_named(name: str, value: str) -> None:
    with pytest.raises(settings.SettingsError, match=name):
        settings.load({name: value})
