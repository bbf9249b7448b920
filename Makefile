# corescale: every entry point a person or CI types. Recipes stay thin: the
# work lives in hack/ (cluster, image, install) and bench/ (benchmarks).
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
export CORESCALE_CACHE ?= $(HOME)/.cache/corescale
export PATH := $(CORESCALE_CACHE)/bin:$(PATH)

.PHONY: help deps venv lint generate unit test-worker e2e test cluster cluster-down kubeconfig \
        image up down bench bench-worker bench-operator clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

deps: ## install the Debian packages the cluster, image and benchmarks need
	hack/deps.sh

venv: $(VENV)/.installed ## the Python virtualenv: corescale-worker and corescale-operator editable, and the dev tools
$(VENV)/.installed: pyproject.toml worker/pyproject.toml operator/pyproject.toml
	hack/venv.sh $(VENV)
	@touch $@

lint: venv ## ruff (check and format), mypy (strict) and import-linter
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

generate: venv ## rewrite the generated files: the chart's CRD templates, manifests/manager and rbac
	$(PY) hack/generate.py --write

unit: venv ## unit tests only (no cluster, no worker processes)
	$(PY) -m pytest -m "not e2e and not worker"

test-worker: venv ## worker tests: real processes on real sockets
	$(PY) -m pytest -m worker

e2e: venv cluster image ## end-to-end tests on the cluster
	$(PY) -m pytest -m e2e

test: deps venv lint cluster image ## everything: lint, unit, worker and end-to-end tests
	$(PY) -m pytest

cluster: deps ## build (once) and start the local single-node cluster
	hack/cluster.sh up

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

bench: bench-worker bench-operator ## every benchmark: tables and plots under bench/results

bench-worker: deps venv ## worker benchmark: corescale vs gunicorn vs node cluster, with wrk
	bench/worker/run.sh

bench-operator: venv cluster image ## operator timings on the cluster
	$(PY) bench/operator/run.py

clean: ## remove build output (the Go cache under $(CORESCALE_CACHE) stays)
	rm -rf build dist *.egg-info
