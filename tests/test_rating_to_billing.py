"""rating-to-billing moves each side once: partitioned on the lineage key, then linked, ranked and joined back."""

from __future__ import annotations

import re
from decimal import Decimal

from chispa import assert_df_equality
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from factories import session_conf
from transforms.checkpoints import materialize
from transforms.rating_to_billing import rating_to_billing

RATED = [("R1", "10.000000", None), ("R2", "5.000000", None), ("R3", "2.000000", "null amount")]
# C1 and C3 both charge R1 (C3 billed later: a duplicate); C2 has no lineage; C4 names an unknown event; C5 charges
# R3, which is quarantined; C6 is itself quarantined.
CHARGES = [("C1", "R1", "10.000000", 1, None), ("C2", None, "2.000000", 2, None), ("C3", "R1", "10.000000", 3, None),
           ("C4", "NOPE", "3.000000", 4, None), ("C5", "R3", "2.000000", 5, None),
           ("C6", "R2", "5.000000", 6, "null charge_id")]


def _inputs(spark: SparkSession) -> tuple[DataFrame, DataFrame]:
    common = [F.lit("USD").alias("currency"), F.lit("ACC-1").alias("account_id"),
              F.lit("+15551230000").alias("msisdn_e164")]
    rated = spark.createDataFrame(RATED, "rated_event_id string, amount string, _q string").select(
        "rated_event_id", F.col("amount").cast("decimal(18,6)").alias("amount"), "_q", *common,
        F.concat(F.lit("k-"), "rated_event_id").alias("_key"), F.lit("h").alias("_hash"),
        F.lit("VOICE").alias("service_type"), F.lit(None).cast("timestamp").alias("start_time"),
        F.lit(1).alias("_rank"))
    charges = spark.createDataFrame(
        CHARGES, "charge_id string, source_rated_event_id string, amount string, billed_at int, _q string").select(
        "charge_id", "source_rated_event_id", F.col("amount").cast("decimal(18,6)").alias("amount"), "billed_at",
        "_q", *common, F.concat(F.lit("k-"), "charge_id").alias("_key"), F.lit("h").alias("_hash"),
        F.lit(1).alias("_rank"))           # the record identity's rank of repeated ids: not the charge's rank
    return materialize(rated), materialize(charges)


def test_outcomes_of_both_sides(spark: SparkSession) -> None:
    rated, charges = _inputs(spark)
    out = rating_to_billing(rated, charges, ("billed_at", "charge_id"), "0.01", "0.001")
    expected = spark.createDataFrame([
        ("LEFT", "R1", "MATCHED", "EXACT", "C1"), ("LEFT", "R2", "RATED_NOT_BILLED", "NONE", None),
        ("LEFT", "R3", "QUARANTINED", "NONE", None),
        ("RIGHT", "C1", "MATCHED", "EXACT", "R1"), ("RIGHT", "C2", "CHARGE_WITHOUT_RATED_EVENT", "NONE", None),
        ("RIGHT", "C3", "DUPLICATE_CHARGE", "EXACT", "R1"), ("RIGHT", "C4", "CHARGE_WITHOUT_RATED_EVENT", "NONE", None),
        ("RIGHT", "C5", "CHARGE_WITHOUT_RATED_EVENT", "NONE", None), ("RIGHT", "C6", "QUARANTINED", "NONE", None),
    ], "side string, record_id string, outcome string, match_stage string, counterpart_id string")
    assert_df_equality(out.select(*expected.columns), expected, ignore_row_order=True, ignore_nullable=True)
    exposure = {r["record_id"]: r["exposure"] for r in out.select("record_id", "exposure").collect()}
    assert exposure["C3"] == Decimal("-10.000000") and exposure["R2"] == Decimal("5.000000")


def test_each_side_is_shuffled_only_on_its_lineage_key(spark: SparkSession) -> None:
    """The link, the rank of a rated event's charges and the join back reuse one partitioning per side (at 10M
    they shuffled the wide charges twice and the rated events twice: 7.9 GB)."""
    rated, charges = _inputs(spark)
    with session_conf(spark, {"spark.sql.autoBroadcastJoinThreshold": "-1"}):     # the shape of a big month
        out = rating_to_billing(rated, charges, ("billed_at", "charge_id"), "0.01", "0.001")
        plan = out._jdf.queryExecution().executedPlan().toString()
        assert out.count() == len(RATED) + len(CHARGES)
    keys = {re.sub(r"#\d+", "", k) for k in re.findall(r"Exchange hashpartitioning\(([^,]+),", plan)}
    assert keys == {"rated_event_id", "source_rated_event_id"}, plan
    assert "Exchange SinglePartition" not in plan and "RoundRobinPartitioning" not in plan, plan
