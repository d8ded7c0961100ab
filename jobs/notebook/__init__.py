"""Helpers for the notebooks in notebooks/: what a cell would otherwise compute by hand, written once and tested.

- `lakehouse.py`: open a lakehouse's conf and Spark session; list its committed runs, pick the latest or previous;
- `explore.py`: one run's outcomes, exposure, top accounts, and an account's records, cases and evidence;
- `fuzzy.py`: a control point's fuzzy stage re-run at other windows, through the engine, on the run's inputs;
- `compare.py`: two runs of a cycle side by side (outcomes, exposure, cases new and cleared);
- `charts.py`: the report's inline SVG charts (jobs/report/svg.py), made standalone for a notebook.

Everything returns pandas DataFrames or SVG text of bounded size (one row per control point, outcome, class, run,
window or top-N entry), with phone numbers masked and instants as UTC text, whatever the host's zone: a notebook
shows what a report would, and never a clear number.
"""

from __future__ import annotations

from jobs.notebook.charts import bar_chart, line_chart
from jobs.notebook.compare import Comparison, compare_runs, comparison_chart, run_pair
from jobs.notebook.explore import (
    Drill,
    drill_account,
    exposure_by_class,
    exposure_chart,
    largest_account,
    outcome_chart,
    outcomes,
    top_accounts,
)
from jobs.notebook.fuzzy import confidence_by_window, fuzzy_sweep, run_window, sweep_chart, sweep_summary
from jobs.notebook.lakehouse import latest_run_id, open_lakehouse, previous_run_id, runs

__all__ = [
    "Comparison", "Drill", "bar_chart", "compare_runs", "comparison_chart", "confidence_by_window", "drill_account",
    "exposure_by_class", "exposure_chart", "fuzzy_sweep", "largest_account", "latest_run_id", "line_chart",
    "open_lakehouse", "outcome_chart", "outcomes", "previous_run_id", "run_pair", "run_window", "runs",
    "sweep_chart", "sweep_summary", "top_accounts",
]
