# The front door: `make run` starts the local stack, `make test` runs every check, `make bench` measures.
# Each sets up what it needs from a fresh clone (Python 3.11 and Node on the PATH).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: run test lint format bench setup clean

setup: $(VENV)/.installed node_modules/.installed .venv-checkov/.installed

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

run: $(VENV)/.installed node_modules/.installed
	$(PY) -m dev.stack

# A few minutes: per-operation latency and round trips, a concurrent phase, import time (docs/performance.md).
bench: $(VENV)/.installed node_modules/.installed
	$(PY) -m bench

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(VENV)/.installed
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

test: setup lint
	$(PY) -m pytest

clean:
	rm -rf $(VENV) .venv-checkov node_modules .pytest_cache .ruff_cache .hypothesis .local
