# The README's two commands: `make demo` and `make test`. Each sets up what it needs on a fresh machine.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export PYSPARK_PYTHON := $(CURDIR)/$(PY)
export PYSPARK_DRIVER_PYTHON := $(CURDIR)/$(PY)
export TZ := UTC

.PHONY: setup jars demo test lint typecheck clean

$(PY):
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[dev]"
	touch $(STAMP)

setup: $(STAMP) jars

jars: $(STAMP)
	@$(PY) -m jobs.jars >/dev/null

demo: setup
	$(VENV)/bin/telco-ra demo

lint: $(STAMP)
	$(VENV)/bin/ruff check jobs transforms tests $(wildcard bench)

typecheck: $(STAMP)
	$(VENV)/bin/mypy

test: setup lint typecheck
	$(PY) -m pytest -q tests

clean:
	rm -rf lakehouse spark-warehouse metastore_db derby.log .pytest_cache
