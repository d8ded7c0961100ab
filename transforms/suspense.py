"""Suspense aging (seed 004, 14 and 27.3): suspense is not a trash bin; it has an age, an owner and a value.

OPEN suspense records are aged at the cycle close into buckets 0-2, 3-7, 8-30 and 30+ days, each with its count and
the exposure of the usage behind it (priced like never-rated usage by the usage-to-rating control).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from transforms.schema import MONEY_SUM

AGE_BUCKETS = (("0-2", 0, 2), ("3-7", 3, 7), ("8-30", 8, 30), ("30+", 31, None))


def suspense_aging(suspense: DataFrame, usage_outcomes: DataFrame, as_of: datetime, owner: str,
                   only_with_usage: bool = False, outcomes: Sequence[str] = ("IN_SUSPENSE", "SUSPENSE_AGED")
                   ) -> DataFrame:
    """(age_bucket, owner_team, records, records_with_usage, exposure) for OPEN suspense as of `as_of`.

    `usage_outcomes` are the usage-to-rating LEFT outcome rows of the run (record_id, exposure_amount, outcome).
    A partition-level run ages only the suspense of its own usage records (`only_with_usage`).
    """
    open_rows = suspense.where((F.col("status") == "OPEN") & F.col("record_id").isNotNull()).groupBy(
        "record_id").agg(F.min("rejected_at").alias("rejected_at"))
    age = F.floor((F.unix_seconds(F.lit(as_of).cast("timestamp")) - F.unix_seconds("rejected_at")) / 86400)
    bucket = F.lit(None).cast("string")
    for name, low, high in reversed(AGE_BUCKETS):
        cond = age >= low if high is None else (age >= low) & (age <= high)
        bucket = F.when(cond, F.lit(name)).otherwise(bucket)
    priced = (usage_outcomes.where(F.col("outcome").isin(*outcomes))
              .groupBy("record_id").agg(F.sum("exposure_amount").alias("exposure")))
    # Rejected after as_of: the youngest bucket. rejected_at unknown (null): the oldest, as usage-to-rating counts
    # its record SUSPENSE_AGED: an age that cannot be shown to be within the SLA is treated as past it, alike in both.
    oldest = AGE_BUCKETS[-1][0]
    aged = open_rows.join(priced, "record_id", "inner" if only_with_usage else "left").withColumn(
        "age_bucket", F.when(F.col("rejected_at").isNull(), F.lit(oldest)).otherwise(F.coalesce(bucket, F.lit("0-2"))))
    return aged.groupBy("age_bucket").agg(
        F.count(F.lit(1)).alias("records"), F.count("exposure").alias("records_with_usage"),
        F.coalesce(F.sum("exposure"), F.lit(0)).cast(MONEY_SUM).alias("exposure"),
    ).withColumn("owner_team", F.lit(owner))
