"""Aggregate control points: per group, the totals of two sides, their difference and whether it is beyond tolerance
(aggregate_variance).

A side is either a record control point's side (its outcome rows that took part, i.e. not quarantined) or an input's
rows in the cycle (`input`, optionally `where`). The measure is either `amount` (the sum of the outcome rows'
amounts, compared in money) or `count` (a `count` aggregate SQL per side, e.g. `count(DISTINCT item_id)` against
`sum(quantity)`, valued at `price` per unit so the difference is money: `(left - right) * price`).

The groups are declared per side (`group_by: {account_id: {LEFT: bucket_account, RIGHT: bucket_account}, ...}`,
SQL over the side's rows): amounts of different groups, currencies included, are never added together. Outcome rows
are summed under their bucket account, so a partition run holds every row of the aggregates it writes.
"""

from __future__ import annotations

from collections.abc import Mapping

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from transforms.engine.spec import ControlPoint
from transforms.engine.sql import render
from transforms.schema import MONEY_SUM
from transforms.tariff import beyond_tolerance

GROUPS = ("account_id", "service_type", "currency")


def aggregate_variance(cp: ControlPoint, left: DataFrame, right: DataFrame,
                       params: Mapping[str, object] | None = None) -> DataFrame:
    """(account_id, service_type, currency, left/right count and amount, difference, tolerance, beyond_tolerance)
    from the two sides' rows (outcome rows, or an input's prepared rows for an `input` side)."""
    assert cp.tolerance is not None
    abs_tol, rel_tol = str(cp.tolerance.abs), str(cp.tolerance.rel)
    params = params or {}

    def totals(rows: DataFrame, side: str, prefix: str) -> DataFrame:
        agg = cp.aggregate_sides[side]
        if agg.input is None:
            valid = rows.where(~F.col("quarantined"))
        else:
            valid = rows if agg.where is None else rows.where(F.coalesce(F.expr(render(agg.where, params)),
                                                                         F.lit(False)))
        keys = [(F.expr(render(cp.group_by[g][side], params)) if g in cp.group_by else F.lit(None)).cast("string")
                .alias(g) for g in GROUPS]
        if cp.measure == "count":
            return valid.groupBy(*keys).agg(
                F.coalesce(F.expr(render(cp.count[side], params)), F.lit(0)).cast("bigint").alias(f"{prefix}_count"))
        return valid.groupBy(*keys).agg(F.count(F.lit(1)).alias(f"{prefix}_count"),
                                        F.sum("amount").cast(MONEY_SUM).alias(f"{prefix}_amount"))

    lt, rt = totals(left, "LEFT", "left"), totals(right, "RIGHT", "right")
    same = None
    for g in GROUPS:
        c = lt[g].eqNullSafe(rt[g])
        same = c if same is None else same & c
    joined = lt.join(rt, same, "full_outer").select(
        *[F.coalesce(lt[g], rt[g]).alias(g) for g in GROUPS],
        F.coalesce("left_count", F.lit(0)).cast("bigint").alias("left_count"),
        F.coalesce("right_count", F.lit(0)).cast("bigint").alias("right_count"),
        *([] if cp.measure == "count" else [F.col("left_amount"), F.col("right_amount")]),
    )
    if cp.measure == "count":
        assert cp.price is not None
        price = F.coalesce(F.expr(render(cp.price, params)).cast("decimal(18,6)"), F.lit(0).cast("decimal(18,6)"))
        joined = (joined.withColumn("left_amount", (F.col("left_count") * price).cast(MONEY_SUM))
                  .withColumn("right_amount", (F.col("right_count") * price).cast(MONEY_SUM)))
    joined = joined.select(*GROUPS, "left_count",
                           F.coalesce("left_amount", F.lit(0)).cast(MONEY_SUM).alias("left_amount"), "right_count",
                           F.coalesce("right_amount", F.lit(0)).cast(MONEY_SUM).alias("right_amount"))
    diff = (F.col("left_amount") - F.col("right_amount")).cast(MONEY_SUM)
    # amount: tolerance in money, of the left amount; count: in units, of the left count (a count difference is a
    # variance even where the unit price is 0)
    compared = ("left_count", "right_count") if cp.measure == "count" else ("left_amount", "right_amount")
    tolerance = F.greatest(F.lit(abs_tol).cast(MONEY_SUM),
                           (F.lit(rel_tol).cast("decimal(20,6)") * F.abs(F.col(compared[0]))).cast(MONEY_SUM))
    beyond = beyond_tolerance((F.col(compared[0]) - F.col(compared[1])).cast(MONEY_SUM), F.col(compared[0]),
                              abs_tol, rel_tol)
    return (joined.withColumn("difference", diff).withColumn("tolerance", tolerance.cast(MONEY_SUM))
            .withColumn("beyond_tolerance", beyond))
