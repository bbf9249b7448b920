"""The pod store: summaries by CoreCluster, and which changes are worth a reconcile."""

from typing import Any

from corescale.operator.podwatch import PodStore


def _pod(
    uid: str, cluster: str, *, ready: str = "True", ns: str = "shop", **extra: Any
) -> dict[str, Any]:
    return {
        "metadata": {
            "uid": uid,
            "name": f"{cluster}-{uid}",
            "namespace": ns,
            "labels": {"corescale.io/cluster": cluster, "corescale.io/mode": "pods"},
            "managedFields": [{"manager": "kubelet"}],
            **extra,
        },
        "spec": {"nodeName": "n1", "containers": [{"name": "worker"}]},
        "status": {"conditions": [{"type": "Ready", "status": ready}], "podIP": "10.0.0.1"},
    }


def test_put_files_a_summary_under_its_corecluster() -> None:
    store = PodStore()
    assert store.put(_pod("a", "hello")) == {("shop", "hello")}
    [summary] = store[("shop", "hello")]
    assert summary["metadata"] == {"name": "hello-a", "mode": "pods", "deletionTimestamp": None}
    assert "managedFields" not in str(summary)
    assert store.get(("shop", "other"), ()) == ()


def test_an_event_that_changes_no_summary_field_changes_nothing() -> None:
    store = PodStore()
    store.put(_pod("a", "hello"))
    assert store.put(_pod("a", "hello", resourceVersion="9")) == set()
    assert store.put(_pod("a", "hello", ready="False")) == {("shop", "hello")}


def test_a_pod_relabelled_to_another_corecluster_moves() -> None:
    store = PodStore()
    store.put(_pod("a", "hello"))
    assert store.put(_pod("a", "other")) == {("shop", "hello"), ("shop", "other")}
    assert ("shop", "hello") not in store
    assert len(store[("shop", "other")]) == 1


def test_remove_and_retain_forget_pods() -> None:
    store = PodStore()
    store.put(_pod("a", "hello"))
    store.put(_pod("b", "hello"))
    store.put(_pod("c", "hello", ns="other"))
    assert store.remove(_pod("a", "hello")) == {("shop", "hello")}
    assert store.remove(_pod("a", "hello")) == set()
    # A relist of namespace shop found only b: nothing to forget there, and
    # namespace other is not touched by it.
    assert store.retain("shop", {"b"}) == set()
    assert store.retain("shop", set()) == {("shop", "hello")}
    assert list(store) == [("other", "hello")]
    assert store.retain(None, set()) == {("other", "hello")}
    assert len(store) == 0
