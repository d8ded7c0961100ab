"""Account status (the seed's operations view): per account, GOOD or VARIANCE with its counts.

An account is VARIANCE when the run found a case on it (any control point: a record gap, an aggregate variance),
else GOOD, however many of its gaps the ignore list made IGNORED: ignoring right-sizes an account so it reads as
Good. Pure DataFrame functions over one run's outputs; the summary (jobs/summary.py) shows the accounts with
variances first.
"""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from transforms.ignore import IGNORED
from transforms.lifecycle import found_by_run

GOOD, VARIANCE = "GOOD", "VARIANCE"


def account_status(outcomes: DataFrame, variances: DataFrame, cases: DataFrame) -> DataFrame:
    """(account_id, status, variances, ignored, records) per account of one run's record_outcome, aggregate_variance
    and ra_case rows: `variances` the cases the run found on it, `ignored` its IGNORED rows (records and aggregate
    groups), `records` its outcome rows."""
    rec = outcomes.where(F.col("account_id").isNotNull()).groupBy("account_id").agg(
        F.count(F.lit(1)).alias("records"), F.count_if(F.col("outcome") == IGNORED).alias("ignored_records"))
    ign = (F.col("ignore_entry_id").isNotNull() if "ignore_entry_id" in variances.columns else F.lit(False))
    agg = variances.where(F.col("account_id").isNotNull()).groupBy("account_id").agg(
        F.count_if(ign).alias("ignored_groups"))
    found = cases.where(found_by_run() & F.col("business_key.account_id").isNotNull()).groupBy(
        F.col("business_key.account_id").alias("account_id")).agg(F.count(F.lit(1)).alias("variances"))
    joined = rec.join(agg, "account_id", "full_outer").join(found, "account_id", "full_outer")
    n = F.coalesce(F.col("variances"), F.lit(0)).cast("bigint")
    return joined.select(
        "account_id", F.when(n > 0, F.lit(VARIANCE)).otherwise(F.lit(GOOD)).alias("status"), n.alias("variances"),
        (F.coalesce(F.col("ignored_records"), F.lit(0)) + F.coalesce(F.col("ignored_groups"), F.lit(0)))
        .cast("bigint").alias("ignored"),
        F.coalesce(F.col("records"), F.lit(0)).cast("bigint").alias("records"))
