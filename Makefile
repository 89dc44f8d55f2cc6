# Two commands do everything on a fresh machine: `make demo` and `make test`.
# Each creates .venv if missing and installs what it needs (re-run when pyproject changes).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-dev

.PHONY: demo test lint typecheck unit bench fuzz quality clean help

help:
	@echo "make demo   - the bundled suites on the example services, every transport; reports/"
	@echo "make test   - install test dependencies, then ruff, mypy --strict and pytest"
	@echo "make bench  - pytest-benchmark suites under benchmarks/"
	@echo "make fuzz   - the fuzz and hostile-peer tests at full size (slow: minutes)"
	@echo "make quality - the oracle quality corpus at full size: every wrong client, 50 plans x 3 seeds per correct one (slow)"
	@echo "make clean  - remove the virtualenv and caches"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $@

demo: $(STAMP)
	@mkdir -p reports
	$(BIN)/faultlab transports
	$(BIN)/faultlab demo --reports reports

lint: $(STAMP)
	$(BIN)/ruff check faultlab tests benchmarks
	$(BIN)/ruff format --check faultlab tests benchmarks

typecheck: $(STAMP)
	$(BIN)/mypy --strict faultlab

unit: $(STAMP)
	$(BIN)/python -m pytest

test: lint typecheck unit

fuzz: $(STAMP)
	FAULTLAB_SLOW=1 $(BIN)/python -m pytest tests/fuzz tests/integration/test_backpressure.py -p no:cacheprovider -o timeout=3600

quality: $(STAMP)
	FAULTLAB_SLOW=1 $(BIN)/python -m pytest tests/quality tests/blackbox -p no:cacheprovider -o timeout=3600

bench: $(STAMP)
	$(BIN)/python -m pytest benchmarks --benchmark-only

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
