# Two images from one file, one per distribution:
#
#   --target worker     corescale-worker:  the worker and aiohttp (and
#                       uvloop), nothing else. Applications build FROM it,
#                       and CoreClusters run it by default. The last stage,
#                       so a build without --target gives it.
#   --target operator   corescale-operator: the kopf operator, its Kubernetes
#                       client and PyYAML; no worker.
#
# BASE_IMAGE defaults to the official slim Python for anyone with a
# registry; the local cluster builds it on a debootstrap Debian base instead
# (hack/image.sh), which has the same Python minor version as the host.
ARG BASE_IMAGE=python:3.11-slim

# The virtualenv is one self-contained folder that the final stage copies,
# leaving build tools and the sources behind. hack/image.sh builds every
# wheel on the host (build/wheels), so nothing is fetched here and the build
# needs no network; without them, pip builds the project and fetches its
# dependencies from PyPI as usual.
FROM ${BASE_IMAGE} AS build-worker
RUN python3 -m venv /opt/corescale
COPY . /src
RUN if [ -d /src/build/wheels ]; then \
      /opt/corescale/bin/pip install --no-cache-dir --no-index \
        --find-links /src/build/wheels 'corescale-worker[fast]'; \
    else \
      /opt/corescale/bin/pip install --no-cache-dir '/src/worker[fast]'; \
    fi \
 && /opt/corescale/bin/pip uninstall --yes --quiet setuptools \
 && find /opt/corescale -name __pycache__ -prune -exec rm -rf {} +

FROM ${BASE_IMAGE} AS build-operator
RUN python3 -m venv /opt/corescale
COPY . /src
RUN if [ -d /src/build/wheels ]; then \
      /opt/corescale/bin/pip install --no-cache-dir --no-index \
        --find-links /src/build/wheels corescale-operator; \
    else \
      /opt/corescale/bin/pip install --no-cache-dir /src/operator; \
    fi \
 && /opt/corescale/bin/pip uninstall --yes --quiet pip setuptools \
 && find /opt/corescale -name __pycache__ -prune -exec rm -rf {} +

# What both images share: a fixed numeric uid, so `runAsNonRoot` can verify
# it without /etc/passwd, and no bytecode written at run time (the root
# filesystem may be read-only, and /tmp, an emptyDir, is the only writable
# place).
FROM ${BASE_IMAGE} AS runtime
RUN groupadd --gid 65532 corescale \
 && useradd --uid 65532 --gid 65532 --home-dir /nonexistent \
      --no-create-home --shell /usr/sbin/nologin corescale
ENV PATH=/opt/corescale/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
USER 65532:65532
WORKDIR /tmp

FROM runtime AS operator
COPY --from=build-operator /opt/corescale /opt/corescale
CMD ["corescale-operator"]

# The worker image keeps pip in its virtualenv, so that an application's
# Dockerfile can `pip install` its package into /opt/corescale (as root; see
# the README's "Serve your own app").
FROM runtime AS worker
COPY --from=build-worker /opt/corescale /opt/corescale
EXPOSE 8080
CMD ["corescale-worker"]
