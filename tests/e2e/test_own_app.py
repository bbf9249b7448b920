"""The README's "Serve your own app", followed word for word.

The Dockerfile and the CoreCluster are read from the README itself, so the
section cannot describe an image or a spec that does not work. The app image
is built FROM corescale-worker:dev (which `make image` builds) with the same
buildah storage and chroot isolation as hack/image.sh, and loaded into the
local cluster's node like it.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e.operator_helpers import OperatorProcess, apply, wait_ready, wait_serving
from tests.kube import http_get

ROOT = Path(__file__).resolve().parents[2]
SECTION = "**Serve your own app.**"

APP = '''\
"""A stand-in for a user's package: one route, named so a test can tell it apart."""

from aiohttp import web


async def hello(request: web.Request) -> web.Response:
    return web.Response(text="served by the shop app\\n")


def create_app() -> web.Application:
    app = web.Application()
    app.router.add_get("/", hello)
    return app
'''

# hack/lib.sh's bah (buildah on the project's storage) and
# hack/cluster/env.sh's ctr_k8s (the node's containerd), as hack/image.sh
# uses them: build, export as a docker archive, import into the node.
BUILD_AND_LOAD = """\
set -euo pipefail
source "$ROOT/hack/lib.sh"
source "$ROOT/hack/cluster/env.sh"
bah bud --quiet --isolation chroot --pull=never -t "localhost/$IMAGE" "$CONTEXT" >/dev/null
tar="$CONTEXT.tar"
bah push --quiet "localhost/$IMAGE" "docker-archive:$tar:docker.io/library/$IMAGE"
ctr_k8s images import "$tar" >/dev/null
"""


def readme_blocks(language: str) -> list[str]:
    """The fenced ``language`` blocks of the README's "Serve your own app"."""
    readme = (ROOT / "README.md").read_text()
    start = readme.index(SECTION)
    end = readme.index("\n**", start + len(SECTION))
    return re.findall(rf"^```{language}\n(.*?)^```$", readme[start:end], re.M | re.S)


def build_and_load(context: Path, image: str) -> None:
    proc = subprocess.run(
        ["bash", "-c", BUILD_AND_LOAD],
        env={**os.environ, "ROOT": str(ROOT), "CONTEXT": str(context), "IMAGE": image},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, f"building {image} failed:\n{proc.stdout}\n{proc.stderr}"


@pytest.mark.e2e
def test_the_readme_app_image_serves_its_app(
    operator: OperatorProcess, namespace: str, tmp_path: Path
) -> None:
    (dockerfile,) = readme_blocks("dockerfile")
    (manifest,) = readme_blocks("yaml")
    assert dockerfile.startswith("FROM corescale-worker:dev\n")
    cc: dict[str, Any] = yaml.safe_load(manifest)

    context = tmp_path / "shop-image"
    (context / "shop").mkdir(parents=True)
    (context / "shop" / "__init__.py").write_text("")
    (context / "shop" / "web.py").write_text(APP)
    (context / "Dockerfile").write_text(dockerfile)
    build_and_load(context, cc["spec"]["image"])

    apply(namespace, manifest)
    name = cc["metadata"]["name"]
    wait_ready(namespace, name, cc["spec"]["replicas"])
    assert "served by the shop app" in http_get(wait_serving(namespace, name))
