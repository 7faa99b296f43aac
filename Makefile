PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: help venv demo test test-unit lint typecheck bench quality clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)  ## create the virtual environment with everything installed

demo: $(STAMP)  ## start the embedded broker and a worker, stream a scenario, print accounts by zone
	$(BIN)/healthstream demo

test: $(STAMP)  ## unit and integration tests (integration on the embedded broker unless KAFKA_BOOTSTRAP_SERVERS is set)
	$(BIN)/python -m pytest -q

test-unit: $(STAMP)  ## unit tests only, no broker
	$(BIN)/python -m pytest -q -m "not integration"

lint: $(STAMP)  ## ruff and mypy (strict on the pure core)
	$(BIN)/ruff check .
	$(BIN)/mypy

bench: $(STAMP)  ## throughput (raw loop, worker, replay), latency, memory, state size, recovery
	$(BIN)/python bench/run.py

quality: $(STAMP)  ## model quality: false alarms, detection, memory of declines (quality/results.json, quality/report.html)
	$(BIN)/python -m quality.run

clean:  ## remove the virtual environment and caches
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info
