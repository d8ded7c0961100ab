"""Which rows of an input a run reads, which of them a control side reconciles, and which are out of its scope.

Every row of an input that could belong to the cycle is a *candidate*: its cycle_id is the cycle's, or null (a null
cycle_id could be any cycle's). A candidate is either in the side, where it gets an outcome (QUARANTINED when its
scope is unreadable), or out of scope, where control_run counts it. Nothing falls between the two: before, a charge
with a null cycle_id or charge_type, and a usage record with neither cycle_id nor start_time, reached no control and
no count. The conservation law is taken over candidates: candidates = outcome rows + rows out of scope.

Time-placed tables (cdr, rated_event) also take a null-cycle row whose event time falls in the cycle, and one whose
event time is null too (no cycle can place it: CONTRACT's conventions say every run that reads its table reports
it). A side's filter (bill_charge: charge_type = USAGE) keeps a row whose filter column is null: it may belong to the
side, so it is QUARANTINED there, with the column named, rather than silently left out.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from pyspark.sql import Column
from pyspark.sql import functions as F


@dataclass(frozen=True)
class Scope:
    """How one input table is placed in a cycle: its event-time column (None: placed by cycle_id alone) and the
    side's filter (column -> value)."""

    time_column: str | None = None
    filter: Mapping[str, str] = field(default_factory=dict)


def candidates(cycle_id: str) -> Column:
    """Rows that could belong to the cycle: its cycle_id, or a null one (a partition-pruning predicate)."""
    return F.coalesce((F.col("cycle_id") == cycle_id) | F.col("cycle_id").isNull(), F.lit(False))


def in_side(scope: Scope, cycle_id: str, start: datetime, end: datetime) -> Column:
    """Of the candidates, those the side reconciles (see the module docstring); never null."""
    placed = F.col("cycle_id") == cycle_id
    if scope.time_column:
        t = F.col(scope.time_column)
        in_time = (t >= F.lit(start).cast("timestamp")) & (t < F.lit(end).cast("timestamp"))
        placed = placed | (F.col("cycle_id").isNull() & (t.isNull() | in_time))
    else:
        placed = placed | F.col("cycle_id").isNull()
    condition = F.coalesce(placed, F.lit(False))
    for column, value in scope.filter.items():
        condition = condition & F.coalesce((F.col(column) == value) | F.col(column).isNull(), F.lit(False))
    return condition


def side_scopes(time_columns: Mapping[str, str | None], filters: Mapping[str, Mapping[str, str]]
                ) -> dict[str, Scope]:
    """One Scope per input table from its time column and its side filter (if any)."""
    return {table: Scope(time_column, dict(filters.get(table, {}))) for table, time_column in time_columns.items()}
