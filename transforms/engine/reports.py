"""Extra outputs a control point feeds, by kind (a ruleset's `reports:`): each is computed from the control
point's outcome rows and a lookup input, and written as its own output table.

- `suspense_aging`: OPEN rows of the `input` (a suspense table: record_id, rejected_at, status) aged at the cycle
  close into buckets, each with its count and the exposure of the records whose `outcomes` say they are in it;
  owned by the team that owns `owner_of` (transforms/suspense.py).
"""

from __future__ import annotations

from datetime import datetime

from pyspark.sql import DataFrame

from transforms.engine.spec import ControlPoint, Report
from transforms.suspense import suspense_aging


def report_rows(report: Report, cp: ControlPoint, left_outcomes: DataFrame, table: DataFrame, as_of: datetime,
                partition_run: bool) -> DataFrame:
    """The report's rows (without the run's tags). `left_outcomes` carry record_id, outcome and exposure_amount."""
    if report.kind == "suspense_aging":
        owner = cp.outcomes[report.owner_of].owner or ""
        return suspense_aging(table, left_outcomes, as_of, owner, only_with_usage=partition_run,
                              outcomes=report.outcomes)
    raise ValueError(f"unknown report kind {report.kind!r}")
