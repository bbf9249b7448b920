"""The child store: summaries by CoreCluster, and which changes are worth a reconcile."""

import asyncio
from typing import Any

from corescale.operator.runtime.autoscaling import pod_summary
from corescale.operator.runtime.childwatch import ChildStore, ChildWatch, Kind


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
    store = ChildStore(pod_summary)
    assert store.put(_pod("a", "hello")) == {("shop", "hello")}
    [summary] = store[("shop", "hello")]
    assert summary["metadata"] == {"name": "hello-a", "mode": "pods", "deletionTimestamp": None}
    assert "managedFields" not in str(summary)
    assert store.get(("shop", "other"), ()) == ()


def test_an_event_that_changes_no_summary_field_changes_nothing() -> None:
    store = ChildStore(pod_summary)
    store.put(_pod("a", "hello"))
    assert store.put(_pod("a", "hello", resourceVersion="9")) == set()
    assert store.put(_pod("a", "hello", ready="False")) == {("shop", "hello")}


def test_a_pod_relabelled_to_another_corecluster_moves() -> None:
    store = ChildStore(pod_summary)
    store.put(_pod("a", "hello"))
    assert store.put(_pod("a", "other")) == {("shop", "hello"), ("shop", "other")}
    assert ("shop", "hello") not in store
    assert len(store[("shop", "other")]) == 1


def test_remove_and_retain_forget_pods() -> None:
    store = ChildStore(pod_summary)
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


def test_kind_paths_for_one_namespace_and_for_all() -> None:
    kind = Kind("/apis/apps/v1", "deployments", "a=b", pod_summary)
    assert kind.path("shop") == "/apis/apps/v1/namespaces/shop/deployments"
    assert kind.path(None) == "/apis/apps/v1/deployments"


def test_a_listed_child_is_stored_with_the_kind_its_list_names() -> None:
    """A list names kind and apiVersion once; the store keeps them on each child,
    as a watch event has them, because the reconcile writes with them."""

    class OnePage:
        async def list_page(self, path: str, selector: str, limit: int, token: str) -> Any:
            assert path == "/api/v1/namespaces/shop/pods"
            return {
                "kind": "PodList",
                "apiVersion": "v1",
                "metadata": {"resourceVersion": "7"},
                "items": [_pod("a", "hello")],
            }

    store = ChildStore(dict)  # the whole child, to see what was stored
    kind = Kind("/api/v1", "pods", "a", pod_summary)
    watch = ChildWatch(OnePage(), ("shop",), kind, store)  # type: ignore[arg-type]
    assert asyncio.run(watch._list("shop")) == "7"
    [child] = store[("shop", "hello")]
    assert (child["kind"], child["apiVersion"]) == ("Pod", "v1")
