"""Aggregate control points: per group, the totals of two record control point sides, their difference and whether
it is beyond tolerance (aggregate_variance), summed over the rows that took part (not quarantined).

The groups are declared per side (`group_by: {account_id: {LEFT: bucket_account, RIGHT: bucket_account}, ...}`,
SQL over the sides' outcome rows): amounts of different groups, currencies included, are never added together.
Rows are summed under their bucket account, so a partition run holds every row of the aggregates it writes.
"""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from transforms.engine.spec import ControlPoint
from transforms.schema import MONEY_SUM
from transforms.tariff import beyond_tolerance

GROUPS = ("account_id", "service_type", "currency")


def aggregate_variance(cp: ControlPoint, left: DataFrame, right: DataFrame) -> DataFrame:
    """(account_id, service_type, currency, left/right count and amount, difference, tolerance, beyond_tolerance)
    from the two sides' outcome rows."""
    assert cp.tolerance is not None
    abs_tol, rel_tol = str(cp.tolerance.abs), str(cp.tolerance.rel)

    def totals(rows: DataFrame, side: str, prefix: str) -> DataFrame:
        valid = rows.where(~F.col("quarantined"))
        keys = [(F.expr(cp.group_by[g][side]) if g in cp.group_by else F.lit(None)).cast("string").alias(g)
                for g in GROUPS]
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
        F.coalesce("left_amount", F.lit(0)).cast(MONEY_SUM).alias("left_amount"),
        F.coalesce("right_count", F.lit(0)).cast("bigint").alias("right_count"),
        F.coalesce("right_amount", F.lit(0)).cast(MONEY_SUM).alias("right_amount"),
    )
    diff = (F.col("left_amount") - F.col("right_amount")).cast(MONEY_SUM)
    tolerance = F.greatest(F.lit(abs_tol).cast(MONEY_SUM),
                           (F.lit(rel_tol).cast("decimal(20,6)") * F.abs(F.col("left_amount"))).cast(MONEY_SUM))
    return (joined.withColumn("difference", diff).withColumn("tolerance", tolerance.cast(MONEY_SUM))
            .withColumn("beyond_tolerance",
                        beyond_tolerance(F.col("difference"), F.col("left_amount"), abs_tol, rel_tol)))
