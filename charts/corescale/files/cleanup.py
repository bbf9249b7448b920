"""Pre-delete hook of the corescale chart, run only when crds.keep is false.

`helm uninstall` then deletes the CRDs, and the API server deletes every
CoreCluster with them. A CoreCluster carries kopf's finalizer, which only the
running operator removes; but Helm stops the operator before it deletes the
CRDs, so the CoreClusters (and the CRDs waiting for them) would hang in
Terminating forever. This hook runs first: it deletes the CoreClusters of the
watched namespaces (every namespace when CORESCALE_NAMESPACES is empty) and
waits until the still-running operator has let them go. The Job's
activeDeadlineSeconds bounds the wait.
"""

from __future__ import annotations

import asyncio
import logging
import os

from kubernetes_asyncio import client, config
from kubernetes_asyncio.client.exceptions import ApiException

GROUP, VERSION, PLURAL = "corescale.io", "v1alpha1", "coreclusters"
POLL_SECONDS = 2.0

log = logging.getLogger("corescale.cleanup")


async def remaining(api: client.CustomObjectsApi, namespaces: list[str]) -> list[tuple[str, str]]:
    """(namespace, name) of every CoreCluster still there; none without the CRD."""
    found: list[tuple[str, str]] = []
    try:
        if namespaces:
            for ns in namespaces:
                items = await api.list_namespaced_custom_object(GROUP, VERSION, ns, PLURAL)
                found += [(ns, i["metadata"]["name"]) for i in items["items"]]
        else:
            items = await api.list_cluster_custom_object(GROUP, VERSION, PLURAL)
            found += [(i["metadata"]["namespace"], i["metadata"]["name"]) for i in items["items"]]
    except ApiException as exc:
        if exc.status != 404:
            raise
    return found


async def main() -> None:
    namespaces = [ns for ns in os.environ.get("CORESCALE_NAMESPACES", "").split(",") if ns]
    config.load_incluster_config()  # type: ignore[no-untyped-call]
    async with client.ApiClient() as api_client:
        api = client.CustomObjectsApi(api_client)
        found = await remaining(api, namespaces)
        for ns, name in found:
            log.info("deleting corecluster %s/%s", ns, name)
            try:
                await api.delete_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, name)
            except ApiException as exc:
                if exc.status != 404:
                    raise
        while found:
            await asyncio.sleep(POLL_SECONDS)
            found = await remaining(api, namespaces)
        log.info("no CoreCluster left; the CRDs can go")


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    asyncio.run(main())
