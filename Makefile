PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: help venv demo test test-unit lint typecheck bench bench-dashboard quality constraints clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

# the runtime dependencies at the versions the image pins (constraints.txt), so that the
# tests run what the image ships
$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet --constraint constraints.txt -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)  ## create the virtual environment with everything installed

DEMO_HISTORY := $(CURDIR)/.demo/history.db

demo: $(STAMP)  ## start the embedded broker and a worker, stream a scenario, print accounts by zone (SERVE=1: then serve the page)
	@mkdir -p .demo && rm -f $(DEMO_HISTORY) $(DEMO_HISTORY)-wal $(DEMO_HISTORY)-shm
	HEALTHSTREAM_HISTORY_URL=sqlite:///$(DEMO_HISTORY) $(BIN)/healthstream demo
	@echo ""
	@echo "The worker kept every output in .demo/history.db. To see the book, each account and"
	@echo "the alerts in a browser:"
	@echo "  $(BIN)/healthstream serve --history sqlite:///$(DEMO_HISTORY)"
	@echo "and open http://127.0.0.1:8080/ (or run 'make demo SERVE=1' to have it served now)."
	@if [ -n "$(SERVE)" ]; then $(BIN)/healthstream serve --history sqlite:///$(DEMO_HISTORY); fi

test: $(STAMP)  ## unit and integration tests (integration on the embedded broker unless KAFKA_BOOTSTRAP_SERVERS is set)
	$(BIN)/python -m pytest -q

test-unit: $(STAMP)  ## unit tests only, no broker
	$(BIN)/python -m pytest -q -m "not integration"

lint: $(STAMP)  ## ruff and mypy (strict on every package)
	$(BIN)/ruff check .
	$(BIN)/mypy

bench: $(STAMP)  ## throughput (raw loop, worker, replay), latency, memory, state size, recovery
	$(BIN)/python bench/run.py

bench-dashboard: $(STAMP)  ## healthstream serve over 300 and 100,000 accounts: page load times (writes ~5 GB to a temp dir)
	$(BIN)/python bench/dashboard.py

quality: $(STAMP)  ## model quality: false alarms, detection, memory of declines (quality/results.json, quality/report.html)
	$(BIN)/python -m quality.run

constraints: $(STAMP)  ## pin the image's dependencies: constraints.txt from the virtual environment
	{ echo "# pins for the Docker image, from the tested virtual environment: make constraints"; \
	  $(BIN)/pip freeze --exclude-editable --exclude healthstream; } > constraints.txt

clean:  ## remove the virtual environment and caches
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info
