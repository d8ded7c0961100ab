# The README's two commands: `make demo` and `make test`. Each sets up what it needs on a fresh machine.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export PYSPARK_PYTHON := $(CURDIR)/$(PY)
export PYSPARK_DRIVER_PYTHON := $(CURDIR)/$(PY)
export TZ := UTC

.PHONY: setup jars browser demo test cluster-test lint typecheck clean bench explain strip-notebooks

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

# The browser test (tests/test_report_browser.py) drives Debian's chromium: installed here when it is missing and
# apt-get can (root), else the test fails naming the package. Not part of `setup`: `make demo` needs no browser.
browser:
	@command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	  { apt-get install -y -q chromium >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null; }; }; } || \
	  echo "no chromium and no root apt-get: the browser test will fail (Debian: apt-get install chromium)"

test: setup browser lint typecheck
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
