"""Control point usage-aggregate: rated totals vs billed USAGE totals per cycle, account and service type.

The first-level control (seed 004, 10.4): cheap, and it catches what detail lineage cannot see. It never replaces
the detail controls, which catch netting of under- and overbilling inside one account.
"""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from transforms.outcomes import bucket_account_of
from transforms.schema import MONEY_SUM
from transforms.tariff import beyond_tolerance

GROUP_BY = ("account_id", "service_type", "currency")


def _by_bucket_account(df: DataFrame) -> DataFrame:
    """Rows summed under their lineage root's account (transforms/lineage_bucket.py): the account whose bucket the
    row is laid out in, so a partition run holds every row of the aggregates it writes."""
    return df.withColumn("account_id", bucket_account_of(df))


def usage_aggregate(rated: DataFrame, charges: DataFrame, abs_tol: str, rel_tol: str) -> DataFrame:
    """(account_id, service_type, currency, left/right count and amount, difference, tolerance, beyond_tolerance).

    Only rows that take part (`_q` null) are summed; a charge's service_type is its rated event's (via lineage),
    null when it has none. Amounts of different currencies are never added: each currency is a row of its own.
    """
    valid_rated = _by_bucket_account(rated.where(F.col("_q").isNull()))
    rated_totals = valid_rated.groupBy(*GROUP_BY).agg(
        F.count(F.lit(1)).alias("left_count"), F.sum("amount").cast(MONEY_SUM).alias("left_amount"))
    service_of = valid_rated.select(F.col("rated_event_id").alias("_re_id"),
                                    F.col("service_type").alias("service_type"))
    billed_totals = (
        _by_bucket_account(charges.where(F.col("_q").isNull()))
        .join(service_of, F.col("source_rated_event_id") == F.col("_re_id"), "left")
        .groupBy(*GROUP_BY)
        .agg(F.count(F.lit(1)).alias("right_count"), F.sum("amount").cast(MONEY_SUM).alias("right_amount"))
    )
    same_group = [rated_totals[c].eqNullSafe(billed_totals[c]) for c in GROUP_BY]
    joined = rated_totals.join(
        billed_totals, same_group[0] & same_group[1] & same_group[2], "full_outer",
    ).select(
        *[F.coalesce(rated_totals[c], billed_totals[c]).alias(c) for c in GROUP_BY],
        F.coalesce("left_count", F.lit(0)).cast("bigint").alias("left_count"),
        F.coalesce("left_amount", F.lit(0)).cast(MONEY_SUM).alias("left_amount"),
        F.coalesce("right_count", F.lit(0)).cast("bigint").alias("right_count"),
        F.coalesce("right_amount", F.lit(0)).cast(MONEY_SUM).alias("right_amount"),
    )
    diff = (F.col("left_amount") - F.col("right_amount")).cast(MONEY_SUM)
    tolerance = F.greatest(F.lit(abs_tol).cast(MONEY_SUM),
                           (F.lit(rel_tol).cast("decimal(20,6)") * F.abs(F.col("left_amount"))).cast(MONEY_SUM))
    return (joined.withColumn("difference", diff).withColumn("tolerance", tolerance.cast(MONEY_SUM))
            .withColumn("beyond_tolerance", beyond_tolerance(F.col("difference"), F.col("left_amount"), abs_tol, rel_tol)))
