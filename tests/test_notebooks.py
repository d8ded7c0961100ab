"""The notebooks in notebooks/ and the helpers they use (jobs/notebook/).

Each notebook is executed top to bottom by nbclient, in a Jupyter kernel of its own, as a person runs it: the venv's
python (checked in the kernel), its own Spark session from the lakehouse's conf with the suite's settings laid over
it (SPARK, injected after the notebook's parameters cell like papermill does), and TZ=America/New_York for the
kernel: nothing may assume a UTC host. The lakehouse is conftest's `small_lakehouse`: the demo's usage month at
2,000 rows, run twice. A cell that raises fails the test with the cell and its traceback. Every output is scanned for
a clear phone number.

The helpers are also checked here in the suite's own session against what the tables say.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from conftest import MASTER, SETTINGS
from jobs import notebook as nb
from jobs.config import load_conf
from jobs.notebook.strip import stripped, text
from jobs.outputs import read_output, table_ref
from small_lakehouse import LOST, SmallLakehouse

REPO = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))
KERNEL_TZ = "America/New_York"
# A notebook's own Spark: the suite's settings, a smaller heap (the suite's session runs beside it).
KERNEL_SPARK = {"master": MASTER, "settings": {**SETTINGS, "spark.driver.memory": "2g"}}
E164 = re.compile(r"\+\d{8,15}")
CELL_TIMEOUT_S = 900


# ------------------------------------------------------------------------------------------- stored notebooks
def test_there_are_the_three_notebooks() -> None:
    assert [p.name for p in NOTEBOOKS] == ["compare_runs.ipynb", "explore_run.ipynb", "tune_fuzzy_window.ipynb"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebooks_are_stored_without_outputs(path: Path) -> None:
    stored = path.read_text(encoding="utf-8")
    assert stored == text(stripped(json.loads(stored))), (
        f"{path.name} carries outputs or run-time metadata: run `make strip-notebooks` before committing it")
    notebook = nbformat.reads(stored, as_version=4)
    nbformat.validate(notebook)
    tagged = [c for c in notebook.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, f"{path.name}: one cell tagged 'parameters' (the test injects its values after it)"


def test_the_strip_check_catches_an_output() -> None:
    notebook = json.loads(NOTEBOOKS[0].read_text(encoding="utf-8"))
    code = next(c for c in notebook["cells"] if c["cell_type"] == "code")
    code["outputs"] = [{"output_type": "stream", "name": "stdout", "text": ["+15551234567\n"]}]
    code["execution_count"] = 3
    assert text(notebook) != text(stripped(notebook))
    assert text(stripped(stripped(notebook))) == text(stripped(notebook))


# ---------------------------------------------------------------------------------------------- executed
def execute(path: Path, parameters: dict[str, Any]) -> nbformat.NotebookNode:
    """Run the notebook at `path` in a fresh kernel with `parameters` set after its parameters cell."""
    notebook = nbformat.read(path, as_version=4)
    at = next(i for i, c in enumerate(notebook.cells) if "parameters" in c.metadata.get("tags", []))
    lines = [f"{name} = {value!r}" for name, value in parameters.items()]
    lines += ["import sys", f"assert sys.executable == {sys.executable!r}, sys.executable   # the venv's python"]
    notebook.cells.insert(at + 1, nbformat.v4.new_code_cell("\n".join(lines),
                                                            metadata={"tags": ["injected-parameters"]}))
    env = {**os.environ, "TZ": KERNEL_TZ, "PYSPARK_PYTHON": sys.executable, "PYSPARK_DRIVER_PYTHON": sys.executable,
           "PYTHONPATH": os.pathsep.join([str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])])}
    client = NotebookClient(notebook, timeout=CELL_TIMEOUT_S, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})
    started = time.monotonic()
    client.execute(env=env)
    print(f"{path.name}: executed in {time.monotonic() - started:.0f} s")
    return notebook


def outputs_text(notebook: nbformat.NotebookNode) -> str:
    """Everything the cells showed: streams, results (text, HTML, SVG) and errors."""
    parts = []
    for cell in notebook.cells:
        for out in cell.get("outputs", []):
            parts.append(out.get("text", ""))
            parts += [v if isinstance(v, str) else json.dumps(v) for v in out.get("data", {}).values()]
            parts += out.get("traceback", [])
    return "\n".join(parts)


def _parameters(lakehouse: SmallLakehouse, **more: Any) -> dict[str, Any]:
    return {"LAKEHOUSE": str(lakehouse.root), "SPARK": KERNEL_SPARK, **more}


def _run(name: str, parameters: dict[str, Any]) -> str:
    shown = outputs_text(execute(REPO / "notebooks" / name, parameters))
    assert E164.findall(shown) == [], "a clear phone number in the notebook's outputs"
    return shown


def test_explore_run_executes(small_lakehouse: SmallLakehouse) -> None:
    shown = _run("explore_run.ipynb", _parameters(small_lakehouse))
    assert f"run {small_lakehouse.runs[1]}" in shown                  # the latest run by default
    assert shown.count("<svg") >= 5                                    # outcome charts, exposure chart
    assert "***" in shown                                              # masked numbers in the drill-down


def test_tune_fuzzy_window_executes(small_lakehouse: SmallLakehouse) -> None:
    shown = _run("tune_fuzzy_window.ipynb", _parameters(small_lakehouse, WINDOWS=[60]))
    assert "usage-to-rating matches within 10 s" in shown
    assert "records by fuzzy window" in shown and "<polyline" in shown


def test_compare_runs_executes(small_lakehouse: SmallLakehouse) -> None:
    before, after = small_lakehouse.runs
    shown = _run("compare_runs.ipynb", _parameters(small_lakehouse))
    assert f"before: {before}" in shown and f"after:  {after}" in shown
    assert "DUPLICATE_RATED_EVENT" in shown and "AUTO_CLEARED" in shown


# ------------------------------------------------------------------------------------------------- helpers
def _control_run(spark: SparkSession, lakehouse: SmallLakehouse, run_id: str) -> dict[tuple[str, str, str], Any]:
    rows = read_output(spark, table_ref(lakehouse.output, "control_run")).where(F.col("run_id") == run_id).collect()
    return {(r["control_point_id"], m["side"], m["outcome"]): m for r in rows for m in r["metrics"]}


def test_outcomes_are_control_runs(spark: SparkSession, small_lakehouse: SmallLakehouse) -> None:
    run_id = small_lakehouse.runs[1]
    table = nb.outcomes(spark, small_lakehouse.output, run_id)
    expected = {k: (m["count"], m["amount"], m["exposure"]) for k, m in _control_run(spark, small_lakehouse,
                                                                                      run_id).items()}
    got = {(r["control_point_id"], r["side"], r["outcome"]): (r["count"], r["amount"], r["exposure"])
           for r in table.to_dict("records")}
    assert got == expected
    assert nb.latest_run_id(spark, small_lakehouse.output, "usage_to_bill") == run_id
    assert nb.previous_run_id(spark, small_lakehouse.output, run_id) == small_lakehouse.runs[0]
    assert nb.previous_run_id(spark, small_lakehouse.output, small_lakehouse.runs[0]) is None


def test_drilling_into_an_account_shows_its_records_cases_and_evidence(spark: SparkSession,
                                                                       small_lakehouse: SmallLakehouse) -> None:
    output, run_id = small_lakehouse.output, small_lakehouse.runs[1]
    account = nb.largest_account(spark, output, run_id)
    drill = nb.drill_account(spark, output, run_id, account, limit=10)
    cases = read_output(spark, table_ref(output, "ra_case")).where(
        (F.col("run_id") == run_id) & (F.col("business_key.account_id") == account))
    records = read_output(spark, table_ref(output, "record_outcome")).where(
        (F.col("run_id") == run_id) & (F.col("account_id") == account))
    assert (drill.cases_total, drill.records_total) == (cases.count(), records.count())
    assert len(drill.cases) == min(10, drill.cases_total) and len(drill.records) == min(10, drill.records_total)
    # the largest |exposure| first, and every case shown has its evidence rows
    top = records.orderBy(F.desc(F.abs("exposure_amount")), "control_point_id", "side", "record_id").first()
    assert top is not None and drill.records["exposure_amount"].iloc[0] == top["exposure_amount"]
    assert set(drill.evidence["case_id"]) == set(drill.cases["case_id"])
    shown = drill.records.to_csv() + drill.cases.to_csv() + drill.evidence.to_csv()
    assert E164.findall(shown) == [] and drill.records["msisdn"].str.contains(r"\*\*\*").all()


def test_comparing_the_two_runs(spark: SparkSession, small_lakehouse: SmallLakehouse) -> None:
    """Between the runs the duplicate rated events were withdrawn (their cases clear; their charges are now without
    a rated event) and LOST matched rated events were lost (their usages are now unrated)."""
    before, after = small_lakehouse.runs
    cmp = nb.compare_runs(spark, small_lakehouse.output, before, after)
    cases = read_output(spark, table_ref(small_lakehouse.output, "ra_case"))
    dup_cases = cases.where((F.col("run_id") == before) & (F.col("case_type") == "DUPLICATE_RATED_EVENT")).count()
    types = {(r["control_point_id"], r["case_type"]): r for r in cmp.case_types.to_dict("records")}
    duplicate = types[("usage-to-rating", "DUPLICATE_RATED_EVENT")]
    assert dup_cases > 0 and (duplicate["new"], duplicate["cleared"], duplicate["still found"]) == (0, dup_cases, 0)
    assert types[("usage-to-rating", "USAGE_NOT_RATED")]["new"] == LOST
    changes = {(r["control_point_id"], r["side"], r["outcome"]): r for r in cmp.outcomes.to_dict("records")}
    assert changes[("usage-to-rating", "RIGHT", "DUPLICATE_RATED_EVENT")]["count_after"] == 0
    assert changes[("usage-to-rating", "LEFT", "USAGE_NOT_RATED")]["count_change"] == LOST
    assert changes[("usage-to-rating", "LEFT", "MATCHED")]["count_change"] == -LOST
    new_total = sum(int(r["new"]) for r in types.values())
    assert len(cmp.new_cases) == min(20, new_total)
    assert set(cmp.cleared_cases["status_after"]) == {"AUTO_CLEARED"}
    # under- and overbilling stay apart: the withdrawn duplicates were overbilling
    over = cmp.exposure[cmp.exposure["exposure_class"] == "OVERBILLING"].iloc[0]
    assert over["positive_before"] == over["positive_after"] == Decimal(0)
    assert nb.run_pair(spark, small_lakehouse.output, "usage_to_bill") == (before, after)
    with pytest.raises(LookupError, match="the only committed run of its cycle"):
        nb.run_pair(spark, small_lakehouse.output, "usage_to_bill", after=before)


def test_the_sweep_at_the_runs_window_is_the_run(spark: SparkSession, small_lakehouse: SmallLakehouse) -> None:
    """At the ruleset's own window the engine decides every record as the run did (control_run's counts); at a
    window of 1 s fewer records match by the fuzzy stage."""
    conf = load_conf(small_lakehouse.conf_path)
    run_id = small_lakehouse.runs[1]
    cp, window = nb.run_window(spark, conf.output, run_id)
    assert (cp, window) == ("usage-to-rating", 10)
    sweep = nb.fuzzy_sweep(spark, conf, run_id, [1, window])
    at_run = sweep[sweep["window_s"] == window].groupby(["side", "outcome"])["records"].sum().to_dict()
    expected = {(side, outcome): m["count"] for (c, side, outcome), m in
                _control_run(spark, small_lakehouse, run_id).items() if c == cp}
    assert at_run == expected
    summary = nb.sweep_summary(sweep)
    assert summary.loc[1, "LEFT matched FUZZY"] < summary.loc[window, "LEFT matched FUZZY"]
    with pytest.raises(ValueError, match="whole numbers of seconds"):
        nb.fuzzy_sweep(spark, conf, run_id, [0])
