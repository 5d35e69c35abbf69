# The front door: `make run` starts the local stack, `make test` runs every check, `make bench` measures.
# Each sets up what it needs from a fresh clone (Python 3.11 and Node on the PATH).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: run test test-model lint format bench bench-scale setup clean web-check

setup: $(VENV)/.installed node_modules/.installed .venv-checkov/.installed web/node_modules/.installed \
	$(VENV)/.browser-installed /usr/bin/chromium

$(VENV)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -r requirements-dev.txt
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

# checkov pins an older pycep-parser than the tests use, so it lives in its own environment.
.venv-checkov/.installed: requirements-checkov.txt
	$(PYTHON) -m venv .venv-checkov
	.venv-checkov/bin/pip install --quiet -r requirements-checkov.txt
	touch $@

# The SPA's address first (from local.settings.json, else the example), then the first run's slow set-up, step by step.
SPA_URL = $(shell sed -n 's/.*"APP_BASE_URL": *"\([^"]*\)".*/\1/p' $(firstword $(wildcard local.settings.json) local.settings.json.example))

run:
	@echo "make run: the SPA will be on $(SPA_URL) once everything is up; Ctrl-C stops it all."
	@$(MAKE) --no-print-directory -q $(VENV)/.installed || { echo "Setting up: Python packages into $(VENV) (first run: about two minutes)"; $(MAKE) --no-print-directory $(VENV)/.installed; }
	@$(MAKE) --no-print-directory -q node_modules/.installed || { echo "Setting up: Azurite (npm ci; first run: under a minute)"; $(MAKE) --no-print-directory node_modules/.installed; }
	@$(PY) -m dev.stack

# A few minutes: per-operation latency and round trips, a concurrent phase, import time (docs/performance.md).
bench: $(VENV)/.installed node_modules/.installed
	$(PY) -m bench

# A few minutes more: 100,000 meetings seeded into Azurite; sweeps, reads and webhooks at 1,000 and at 100,000.
bench-scale: $(VENV)/.installed node_modules/.installed
	$(PY) -m bench.scale

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(VENV)/.installed
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

# Most of the suite waits on sockets and timers, not on the CPU: it runs in one worker more than the cores (each
# with its own Azurite and app, a file to a worker) while the convergence tests run beside it in their own
# workers (their report follows); then the browser tests, alone, since they wait the way a person does.
TEST_WORKERS ?= $(shell echo $$(( $$(nproc) + 1 )))

test: setup lint web-check
	mkdir -p .local
	$(PY) -m pytest tests/convergence >.local/convergence.log 2>&1 & convergence=$$!; \
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile --ignore=tests/convergence --ignore=tests/browser; rest=$$?; \
	wait $$convergence; converged=$$?; echo "tests/convergence:"; cat .local/convergence.log; \
	[ $$rest -eq 0 ] && [ $$converged -eq 0 ]
	$(PY) -m pytest tests/browser

# The model-based convergence test, long (README "Convergence under failure"); failures are shrunk.
MODEL_MINUTES ?= 10
test-model: setup
	MODEL_MINUTES=$(MODEL_MINUTES) MODEL_EXAMPLES=$${MODEL_EXAMPLES:-20} MODEL_STEPS=$${MODEL_STEPS:-50} \
		$(PY) -m pytest tests/convergence/test_model.py -p no:cacheprovider -s

# The SPA (web/, see web/README.md): its own pinned npm packages, Vitest, the type check and the build.
WEB_INPUTS := $(shell find web/src -type f) web/index.html web/package.json web/tsconfig.json web/vite.config.ts \
	openapi.yaml

web/node_modules/.installed: web/package.json web/package-lock.json
	npm --prefix web ci --no-audit --no-fund --loglevel=error
	touch $@

web/dist/index.html: web/node_modules/.installed $(WEB_INPUTS)
	npm --prefix web run build

# Vitest before the build: it fails on API types older than openapi.yaml, which the build regenerates.
web-check: web/node_modules/.installed
	npm --prefix web test
	$(MAKE) web/dist/index.html

# The browser tests (tests/browser) drive Debian's Chromium: nothing downloads a browser.
/usr/bin/chromium:
	@if [ "$$(id -u)" != 0 ]; then echo "the browser tests need Debian's chromium: sudo apt-get install chromium"; exit 1; fi
	apt-get update
	DEBIAN_FRONTEND=noninteractive apt-get install -y chromium

$(VENV)/.browser-installed: $(VENV)/.installed tests/browser/requirements.txt
	$(VENV)/bin/pip install --quiet -r tests/browser/requirements.txt
	touch $@

clean:
	rm -rf $(VENV) .venv-checkov node_modules .pytest_cache .ruff_cache .hypothesis .local web/node_modules web/dist \
		tests/browser/output
