# corescale: every entry point a person or CI types. Recipes stay thin: the
# work lives in hack/ (cluster, image, install) and bench/ (benchmarks).
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
# Two caches (hack/lib.sh): the Go binaries built from the pins in
# hack/versions.env, and everything else (images, PKI, cluster state).
export CORESCALE_CACHE ?= $(HOME)/.cache/corescale
export CORESCALE_TOOLS ?= $(HOME)/.cache/corescale-tools
export PATH := $(CORESCALE_TOOLS)/bin:$(PATH)

.PHONY: help deps venv lint generate unit test-chart test-worker e2e test tools helm base-images \
        cluster cluster-down prometheus nodes kubeconfig image up down bench bench-worker bench-autoscale bench-operator bench-scale bench-compare clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

deps: ## install the Debian packages the cluster, image, lint and benchmarks need
	hack/deps.sh

venv: $(VENV)/.installed ## the Python virtualenv: corescale-worker and corescale-operator editable, and the dev tools
$(VENV)/.installed: pyproject.toml worker/pyproject.toml operator/pyproject.toml
	hack/venv.sh $(VENV)
	@touch $@

lint: deps venv ## ruff (check and format), mypy (strict), import-linter and shellcheck
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports
	hack/shellcheck.sh

generate: venv ## rewrite the generated files: the chart's CRD templates, manifests/manager and rbac
	$(PY) hack/generate.py --write

unit: venv ## unit tests only (no cluster, no worker processes, no helm)
	hack/test.sh unit

test-chart: venv helm ## the chart's tests: helm template, lint and schema (builds the pinned helm)
	hack/test.sh chart

test-worker: venv ## worker tests: real processes on real sockets
	hack/test.sh worker

e2e: venv cluster image ## end-to-end tests on the cluster
	hack/test.sh e2e

test: ## everything, phase by phase with a timing table: setup, lint, unit, chart, worker, end-to-end
	hack/test.sh

tools: deps ## build the pinned Go binaries (Kubernetes, etcd, containerd, runc, crictl, helm) once
	hack/cluster/build.sh

helm: deps ## build the pinned helm alone
	hack/cluster/build.sh helm

base-images: deps ## build the pause and base images (no registry needed)
	hack/images/build.sh

cluster: deps ## build (once) and start the local single-node cluster
	hack/cluster.sh up

prometheus: cluster ## build (once) and start Prometheus on the local cluster: 127.0.0.1:9090, 1 s scrapes
	hack/cluster.sh prometheus

NODES ?= 10
nodes: cluster ## KWOK beside the local cluster: NODES simulated one-CPU nodes over three zones, tainted corescale.dev/simulated (NODES=0 removes them)
	hack/cluster.sh nodes $(NODES)

cluster-down: ## stop the local cluster and remove everything it left
	hack/cluster.sh down

kubeconfig: ## print the local cluster's kubeconfig path
	@hack/cluster.sh kubeconfig

image: deps ## build the worker and operator images and load them into the node
	hack/image.sh

up: deps venv ## the cluster of the current context (or the local one), the image, the operator and the example
	hack/up.sh

down: ## uninstall the operator and the example (the cluster stays)
	hack/up.sh down

bench: bench-worker bench-operator bench-autoscale bench-compare ## every benchmark: tables and plots under bench/results

bench-worker: deps venv ## worker benchmark: corescale vs gunicorn vs node cluster, with wrk
	bench/worker/run.sh

bench-autoscale: venv cluster image ## corescale's autoscaler against an HPA on CPU, side by side (about 20 minutes)
	$(PY) bench/autoscale/run.py

bench-operator: venv cluster image ## operator timings on the cluster
	$(PY) bench/operator/run.py

COMPARE ?=
bench-compare: deps venv cluster image ## one-CPU pods against prefork on the same CPU budget, on the cluster and the host (COMPARE="--workers 2 --cpu-per-worker 500m ..."; about 20 minutes)
	$(PY) bench/compare/compare.py $(COMPARE)

SCALE ?=
bench-scale: venv cluster ## the operator at scale: 500 KWOK nodes, 1,000 CoreClusters, 10,000 workers, about 25 minutes (SCALE="--nodes N --clusters M --workers W"): table, JSON and plot
	$(PY) bench/scale/run.py $(SCALE)

clean: ## remove build output (both caches under ~/.cache stay)
	rm -rf build dist *.egg-info
