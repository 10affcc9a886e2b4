# Every target CI uses is here; `.ci/run` calls `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test check lint format generate check-generated clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $(STAMP)

## Embedded broker + worker + live simulator + metrics, until Ctrl-C.
run: $(STAMP)
	PIPELINE_QUEUES_FILE=$${PIPELINE_QUEUES_FILE:-deploy/queues.toml} $(BIN)/python -m pipeline run

## The whole test suite (lint first: it is quick and fails early).
test: $(STAMP) lint
	$(BIN)/python -m pytest -q

## The fast lane before a commit: lint, then the unit and property tests (no broker, no worker processes).
check: $(STAMP) lint
	$(BIN)/python -m pytest -q -m "not integration"

lint: $(STAMP)
	$(BIN)/ruff format --check pipeline tests
	$(BIN)/ruff check pipeline tests
	$(BIN)/lint-imports
	$(BIN)/mypy

## Let the formatter format.
format: $(STAMP)
	$(BIN)/ruff format pipeline tests
	$(BIN)/ruff check --fix pipeline tests

## Regenerate schemas/ and docs/kpis.md from the code (tests fail when they are stale).
generate: $(STAMP)
	$(BIN)/python -m pipeline schemas
	$(BIN)/python -m pipeline catalogue

clean:
	rm -rf $(VENV) out .pytest_cache .mypy_cache
