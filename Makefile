# Batchyard: `make run` starts the service; `make test` runs every check and test tier.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: install run test check unit lint provision clean airflow-env test-airflow

install: $(STAMP)

$(STAMP): pyproject.toml
	@scripts/ensure-python "$(PYTHON)"
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@touch $(STAMP)

run: install
	$(BIN)/batchyard server --host 127.0.0.1 --port 8750 --data-dir .batchyard

provision:
	@scripts/provision

# `mypy` checks src/batchyard and tests (pyproject.toml's files); bench/ is scripts, apart.
lint: install
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy
	$(BIN)/mypy bench
	$(BIN)/lint-imports

# The unit and contract tiers run measured, with a coverage report of the whole package, and
# fail below 100% of the lines of domain/ and scheduling/ (the pure core, which unit tests reach
# in full); the other tiers test servers running in processes of their own, unmeasured.
COVERAGE_FLOOR := --include='src/batchyard/domain/*,src/batchyard/scheduling/*' --fail-under=100

test: install provision lint unit
	$(BIN)/pytest -q --ignore=tests/unit --ignore=tests/contract

unit: install provision
	$(BIN)/pytest -q --cov --cov-report=term tests/unit tests/contract
	@echo 'Coverage floor: 100% of lines in domain/ and scheduling/'
	$(BIN)/coverage report $(COVERAGE_FLOOR)

# A real Airflow 3 in .venv-airflow (built once, reused while its requirements are unchanged);
# tests/airflow builds it too when it is missing, so `make test` runs those tests as well.
airflow-env: install
	$(BIN)/python -c 'from tests.airflow.environment import ensure_venv; ensure_venv()'

test-airflow: install airflow-env
	$(BIN)/pytest -q -m airflow tests/airflow

clean:
	rm -rf $(VENV) .venv-airflow .pytest_cache .mypy_cache .ruff_cache

.PHONY: bench bench-full

bench: install
	$(BIN)/python bench/run.py --quick

bench-full: install
	$(BIN)/python bench/run.py --full
