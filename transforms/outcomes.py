"""The shape every record-level control emits before it becomes `record_outcome`.

Controls build their decisions with whatever joins they need, then call `outcome_frame` so that all of them hand
the writer the same columns; `finalize_outcomes` adds the run's tags, account bucket, amount difference and
exemptions. Keeping one shape is what lets a new ruleset be YAML plus a few transforms.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from transforms.keys import account_bucket
from transforms.schema import CONFIDENCE, MONEY, RECORD_OUTCOME

# Internal columns carried next to the contract's, used for cases and metrics, dropped or kept as extras.
# `unpriced`: a row whose exposure should come from a price and could not (no tariff): counted in control_run.
# `bucket_account`: the account whose bucket the row is laid out in (its lineage root's, transforms/engine/prepare.py).
# `quarantined`: the row could not take part (aggregates sum only the rows that did).
# `domain`: the record's domain (its side's `describe.domain`), which an ignore entry of scope DOMAIN names.
INTERNAL = ("exposure", "counterpart_key", "counterpart_hash", "counterpart_table", "unpriced", "bucket_account",
            "quarantined", "domain")


def _col(value: Any, dtype: str) -> Column:
    if isinstance(value, Column):
        return value.cast(dtype)
    return F.lit(value).cast(dtype)


def outcome_frame(
    df: DataFrame,
    *,
    side: str,
    table: str,
    record_id: Column,
    outcome: Column,
    match_stage: Column,
    confidence: Column | float | None = None,
    counterpart_id: Column | None = None,
    counterpart_key: Column | None = None,
    counterpart_hash: Column | None = None,
    counterpart_table: str | None = None,
    amount: Column | None = None,
    expected_amount: Column | None = None,
    currency: Column | None = None,
    reason: Column | None = None,
    exposure: Column | None = None,
    account_id: Column | None = None,
    msisdn: Column | None = None,
    service_type: Column | None = None,
    start_time: Column | None = None,
    unpriced: Column | None = None,
) -> DataFrame:
    """Select the standard outcome columns from a control's decision DataFrame (which carries `_key`, `_hash`)."""
    return df.select(
        F.lit(side).alias("side"),
        F.lit(table).alias("source_table"),
        record_id.cast("string").alias("record_id"),
        F.col("_key").alias("record_key"),
        F.col("_hash").alias("payload_hash"),
        _col(counterpart_id, "string").alias("counterpart_id"),
        outcome.alias("outcome"),
        match_stage.alias("match_stage"),
        _col(confidence if confidence is not None else F.when(match_stage == "EXACT", 1).otherwise(0),
             "decimal(5,4)").alias("confidence"),
        _col(amount, "decimal(18,6)").alias("amount"),
        _col(expected_amount, "decimal(18,6)").alias("expected_amount"),
        _col(currency, "string").alias("currency"),
        _col(reason, "string").alias("reason"),
        _col(account_id, "string").alias("account_id"),
        _col(msisdn, "string").alias("msisdn_e164"),
        _col(service_type, "string").alias("service_type"),
        _col(start_time, "timestamp").alias("start_time"),
        F.coalesce(_col(exposure, "decimal(18,6)"), F.lit(0).cast(MONEY)).alias("exposure"),
        _col(counterpart_key, "string").alias("counterpart_key"),
        _col(counterpart_hash, "string").alias("counterpart_hash"),
        _col(counterpart_table, "string").alias("counterpart_table"),
        F.coalesce(_col(unpriced, "boolean"), F.lit(False)).alias("unpriced"),
        bucket_account_of(df).alias("bucket_account"),
        F.lit(None).cast("string").alias("domain"),
    )


def bucket_account_of(df: DataFrame) -> Column:
    """The account a row of `df` is bucketed by: `_bucket_account` where the job placed it (every prepared side
    carries it), else the row's own account_id."""
    return F.col("_bucket_account") if "_bucket_account" in df.columns else F.col("account_id")


def exemption_column(exemptions: Sequence[tuple[str, str, Sequence[str], Sequence[str]]], side: str) -> Column:
    """Name of the first exemption that applies to an outcome row (id, column, values, outcomes), else null.

    Exemptions apply to the LEFT side of the control that declares them; an exempt row keeps its outcome (the
    contract's vocabulary) but raises no case, and says why in `exemption`.
    """
    expr: Column = F.lit(None).cast("string")
    if side != "LEFT":
        return expr
    for ex_id, column, values, outcomes in reversed(list(exemptions)):
        cond = F.col(column).isin(*values)
        if outcomes:
            cond = cond & F.col("outcome").isin(*outcomes)
        expr = F.when(cond, F.lit(ex_id)).otherwise(expr)
    return expr


def finalize_outcomes(tags: Mapping[str, str], control_point_id: str, buckets: int
                      ) -> Callable[[DataFrame], DataFrame]:
    """Add run tags, account bucket and amount_diff; order columns as RECORD_OUTCOME plus internals."""

    def transform(df: DataFrame) -> DataFrame:
        out = (
            df.withColumn("run_id", F.lit(tags["run_id"]))
            .withColumn("control_point_id", F.lit(control_point_id))
            .withColumn("ruleset_version", F.lit(tags["ruleset_version"]))
            .withColumn("cycle_id", F.lit(tags["cycle_id"]))
            .withColumn("account_bucket", account_bucket(F.col("bucket_account"), buckets))
            .withColumn("amount_diff", (F.col("amount") - F.col("expected_amount")).cast(MONEY))
            .withColumn("confidence", F.col("confidence").cast(CONFIDENCE))
        )
        return out.select(*[f for f in RECORD_OUTCOME.fieldNames() if f != "exposure_amount"], *INTERNAL)

    return transform
