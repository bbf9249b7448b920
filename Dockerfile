# One image for both corescale commands: corescale-worker (the aiohttp
# worker, single or prefork) and corescale-operator (the kopf operator).
#
# BASE_IMAGE defaults to the official slim Python for anyone with a
# registry; the local cluster builds it on a debootstrap Debian base instead
# (hack/image.sh), which has the same Python minor version as the host.
ARG BASE_IMAGE=python:3.11-slim

FROM ${BASE_IMAGE} AS build
# The virtualenv is one self-contained folder that the final stage copies,
# leaving pip, build tools and the sources behind.
RUN python3 -m venv /opt/corescale
COPY . /src
# hack/image.sh builds every wheel on the host (build/wheels), so nothing is
# fetched here and the build needs no network; without them, pip builds the
# project and fetches its dependencies from PyPI as usual.
RUN if [ -d /src/build/wheels ]; then \
      /opt/corescale/bin/pip install --no-cache-dir --no-index \
        --find-links /src/build/wheels 'corescale[fast,operator]'; \
    else \
      /opt/corescale/bin/pip install --no-cache-dir '/src[fast,operator]'; \
    fi \
 && /opt/corescale/bin/pip uninstall --yes --quiet pip setuptools \
 && find /opt/corescale -name __pycache__ -prune -exec rm -rf {} +

FROM ${BASE_IMAGE}
# A fixed numeric uid, so `runAsNonRoot` can verify it without /etc/passwd.
RUN groupadd --gid 65532 corescale \
 && useradd --uid 65532 --gid 65532 --home-dir /nonexistent \
      --no-create-home --shell /usr/sbin/nologin corescale
COPY --from=build /opt/corescale /opt/corescale
# No bytecode is written at run time: the root filesystem may be read-only,
# and /tmp (an emptyDir) is the only writable place.
ENV PATH=/opt/corescale/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
USER 65532:65532
WORKDIR /tmp
EXPOSE 8080
CMD ["corescale-worker"]
