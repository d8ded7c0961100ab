# The README's two commands: `make demo` and `make test`. Each sets up what it needs on a fresh machine.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export PYSPARK_PYTHON := $(CURDIR)/$(PY)
export PYSPARK_DRIVER_PYTHON := $(CURDIR)/$(PY)
export TZ := UTC

.PHONY: setup jars demo test cluster-test lint typecheck clean bench explain strip-notebooks

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

BENCH_STAMP := $(VENV)/.installed-bench
$(BENCH_STAMP): $(STAMP)
	$(PY) -m pip install -q -e ".[dev,bench]"
	touch $(BENCH_STAMP)

# make bench ROWS=1000000 (ROWS="1000000 10000000" for the linearity pair); BENCH_ARGS for more (see --help).
ROWS ?= 1000000
bench: setup $(BENCH_STAMP)
	$(PY) bench/run_bench.py $(foreach r,$(ROWS),--rows $(r)) $(BENCH_ARGS)

# Every shipped ruleset in words (docs/rules/<ruleset>.md and .html, committed; tests/test_explain.py fails when one
# is out of date with its ruleset).
explain: $(STAMP)
	$(VENV)/bin/telco-ra explain rulesets/*.yaml --out docs/rules

lint: $(STAMP)
	$(VENV)/bin/ruff check jobs transforms tests bench cluster

typecheck: $(STAMP)
	$(VENV)/bin/mypy

test: setup lint typecheck
	$(PY) -m pytest -q tests

# A standalone master and two workers on 127.0.0.1 from the pyspark install; the job spark-submitted to them as a
# user would (wheel via --py-files, Delta via --jars) must write exactly the local run's rows. Also part of `test`.
cluster-test: setup
	$(PY) -m pytest -q -m cluster tests

# Notebooks are committed without outputs (tests/test_notebooks.py fails otherwise): strip them before a commit.
strip-notebooks: $(STAMP)
	$(PY) -m jobs.notebook.strip notebooks/*.ipynb

clean:
	rm -rf lakehouse spark-warehouse metastore_db derby.log .pytest_cache
