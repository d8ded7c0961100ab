"""The totals of a declared figure (control_run `figures`), as the run summary and the report show them.

A figure's total is the sum of the groups shown. Where the figure is grouped by `currency`, there is one total per
currency: amounts in two currencies are never added (a GBP carrier bill's leakage beside a USD one's). Where the
figure sums nothing (`sum` absent in its ruleset), a total counts rows only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any


@dataclass(frozen=True)
class FigureTotal:
    currency: str | None         # None: the figure is not grouped by currency (one total)
    count: int
    sum: Decimal | None          # None: the figure counts only


def figure_totals(rows: Sequence[Mapping[str, Any]]) -> list[FigureTotal]:
    """The totals of one figure's rows (each with `group` [{column, value}], `count`, `summed`, `sum`): one, or one
    per currency in the order the currencies first appear."""
    counts: dict[str | None, int] = {}
    sums: dict[str | None, Decimal] = {}
    for r in rows:
        currency = next((g["value"] for g in r["group"] if g["column"] == "currency"), None)
        counts[currency] = counts.get(currency, 0) + int(r["count"])
        sums[currency] = sums.get(currency, Decimal(0)) + Decimal(r["sum"] or 0)
    summed = bool(rows) and rows[0]["summed"] is not None
    return [FigureTotal(c, n, sums[c] if summed else None) for c, n in counts.items()]
