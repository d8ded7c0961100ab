"""Control point rating-to-billing: every rated event against the USAGE charges the bill run made of it.

Exact on lineage only: a bill charge carries no event time, and a usage charge without lineage to a rated event
is itself the finding (seed 004, 27.2). The first charge of a rated event (by billed_at, charge_id) is the original;
further ones are DUPLICATE_CHARGE.
"""

from __future__ import annotations

from collections.abc import Sequence

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from transforms.outcomes import outcome_frame
from transforms.tariff import beyond_tolerance


def _money_text(amount: str, currency: str) -> Column:
    """`1.200000 EUR`: an amount with its currency (`?` where the currency is null), for reasons."""
    return F.concat_ws(" ", F.col(amount).cast("string"), F.coalesce(F.col(currency), F.lit("?")))


def rating_to_billing(
    rated: DataFrame, charges: DataFrame, order: Sequence[str], abs_tol: str, rel_tol: str
) -> DataFrame:
    """Outcome rows for both sides; both inputs carry `_key`, `_hash`, `_q` (this control's quarantine reason)."""
    # Both sides are hash-partitioned once on the lineage key, wide: the link, the rank of a rated event's charges
    # and the rated events' join back to their original charge then run on those partitions without moving a row
    # again (at 10M the link, the rank and the join back each shuffled their wide side: 7.9 GB).
    parts = int(rated.sparkSession.conf.get("spark.sql.shuffle.partitions") or "200")
    charges = charges.drop("_rank")      # the identity's rank of repeated ids; `_rank` below is the charge's rank
    valid_rated = rated.where(F.col("_q").isNull()).repartition(parts, "rated_event_id")
    rated_keys = valid_rated.select(
        F.col("rated_event_id").alias("_re_id"), F.col("_key").alias("_re_key"), F.col("_hash").alias("_re_hash"),
        F.col("amount").alias("_re_amount"), F.col("service_type").alias("_re_service_type"),
        F.col("currency").alias("_re_currency"))
    valid_charges = charges.where(F.col("_q").isNull())
    # Charges without lineage link to nothing: kept out of the partitioning (all of them would hash to one task).
    with_lineage = valid_charges.where(F.col("source_rated_event_id").isNotNull()).repartition(
        parts, "source_rated_event_id")
    linked = with_lineage.join(rated_keys, F.col("source_rated_event_id") == F.col("_re_id"), "left")
    # All charges of one lineage key are linked or none is: ranking by the key is ranking the linked ones.
    rank_w = Window.partitionBy("source_rated_event_id").orderBy(
        *[F.col(c).asc_nulls_last() for c in order], F.col("_key"))
    linked = linked.withColumn("_rank", F.when(F.col("_re_id").isNotNull(), F.row_number().over(rank_w)))
    linked = linked.unionByName(valid_charges.where(F.col("source_rated_event_id").isNull()), allowMissingColumns=True)
    # An equal amount in another currency is not the same money: a currency difference is a mismatch too.
    currency_differs = ~F.col("_re_currency").eqNullSafe(F.col("currency"))
    mismatch = (beyond_tolerance(F.col("_re_amount") - F.col("amount"), F.col("_re_amount"), abs_tol, rel_tol)
                | currency_differs)
    linked = (linked.withColumn("_mismatch", (F.col("_rank") == 1) & mismatch)
              .withColumn("_currency_differs", (F.col("_rank") == 1) & currency_differs))
    all_charges = linked.unionByName(charges.where(F.col("_q").isNotNull()), allowMissingColumns=True)
    r_outcome = (
        F.when(F.col("_q").isNotNull(), F.lit("QUARANTINED"))
        .when(F.col("_rank") > 1, F.lit("DUPLICATE_CHARGE"))
        .when(F.col("_mismatch"), F.lit("CHARGE_AMOUNT_MISMATCH"))
        .when(F.col("_rank") == 1, F.lit("MATCHED"))
        .otherwise(F.lit("CHARGE_WITHOUT_RATED_EVENT"))
    )
    charges_decided = all_charges.withColumn("_outcome", r_outcome)
    r_reason = (
        F.when(F.col("_outcome") == "QUARANTINED", F.col("_q"))
        .when(F.col("_outcome") == "DUPLICATE_CHARGE",
              F.concat(F.lit("further charge for rated event "), F.col("_re_id")))
        .when(F.col("_outcome") == "CHARGE_AMOUNT_MISMATCH",
              F.concat(F.lit("charged "), _money_text("amount", "currency"), F.lit(", rated "),
                       _money_text("_re_amount", "_re_currency"),
                       F.when(F.col("_currency_differs"), F.lit(": currencies differ")).otherwise(F.lit(""))))
        .when(F.col("_outcome") == "CHARGE_WITHOUT_RATED_EVENT",
              F.when(F.col("source_rated_event_id").isNull(), F.lit("no lineage to a rated event"))
              .otherwise(F.concat(F.lit("lineage to "), F.col("source_rated_event_id"),
                                  F.lit(" not found among valid rated events"))))
    )
    right_rows = outcome_frame(
        charges_decided, side="RIGHT", table="bill_charge", record_id=F.col("charge_id"), outcome=F.col("_outcome"),
        match_stage=F.when(F.col("_rank").isNotNull(), F.lit("EXACT")).otherwise(F.lit("NONE")),
        counterpart_id=F.col("_re_id"), counterpart_key=F.col("_re_key"), counterpart_hash=F.col("_re_hash"),
        counterpart_table="rated_event", amount=F.col("amount"),
        expected_amount=F.when(F.col("_rank").isNotNull(), F.col("_re_amount")), currency=F.col("currency"),
        reason=r_reason,
        exposure=F.when(F.col("_outcome").isin("DUPLICATE_CHARGE", "CHARGE_WITHOUT_RATED_EVENT"), -F.col("amount")),
        account_id=F.col("account_id"), msisdn=F.col("msisdn_e164"), service_type=F.col("_re_service_type"),
    )

    # Named by the charges' partitioning column, so the join back to the rated events needs no shuffle.
    originals = linked.where(F.col("_rank") == 1).select(
        F.col("source_rated_event_id").alias("rated_event_id"), F.col("charge_id").alias("_ch_id"),
        F.col("_key").alias("_ch_key"), F.col("_hash").alias("_ch_hash"), F.col("amount").alias("_ch_amount"),
        F.col("currency").alias("_ch_currency"), F.col("_mismatch"), F.col("_currency_differs"))
    left = valid_rated.join(originals, "rated_event_id", "left").unionByName(
        rated.where(F.col("_q").isNotNull()), allowMissingColumns=True)
    l_outcome = (
        F.when(F.col("_q").isNotNull(), F.lit("QUARANTINED"))
        .when(F.col("_ch_id").isNull(), F.lit("RATED_NOT_BILLED"))
        .when(F.col("_mismatch"), F.lit("CHARGE_AMOUNT_MISMATCH"))
        .otherwise(F.lit("MATCHED"))
    )
    left_decided = left.withColumn("_outcome", l_outcome)
    l_reason = (
        F.when(F.col("_outcome") == "QUARANTINED", F.col("_q"))
        .when(F.col("_outcome") == "RATED_NOT_BILLED", F.lit("no USAGE charge with lineage to this rated event"))
        .when(F.col("_outcome") == "CHARGE_AMOUNT_MISMATCH",
              F.concat(F.lit("rated "), _money_text("amount", "currency"), F.lit(", charged "),
                       _money_text("_ch_amount", "_ch_currency"),
                       F.when(F.col("_currency_differs"), F.lit(": currencies differ")).otherwise(F.lit(""))))
    )
    left_rows = outcome_frame(
        left_decided, side="LEFT", table="rated_event", record_id=F.col("rated_event_id"), outcome=F.col("_outcome"),
        match_stage=F.when(F.col("_ch_id").isNotNull(), F.lit("EXACT")).otherwise(F.lit("NONE")),
        counterpart_id=F.col("_ch_id"), counterpart_key=F.col("_ch_key"), counterpart_hash=F.col("_ch_hash"),
        counterpart_table="bill_charge", amount=F.col("amount"),
        expected_amount=F.when(F.col("_ch_id").isNotNull(), F.col("_ch_amount")), currency=F.col("currency"),
        reason=l_reason,
        exposure=F.when(F.col("_outcome") == "RATED_NOT_BILLED", F.col("amount"))
        .when(F.col("_outcome") == "CHARGE_AMOUNT_MISMATCH", F.col("amount") - F.col("_ch_amount")),
        account_id=F.col("account_id"), msisdn=F.col("msisdn_e164"), service_type=F.col("service_type"),
        start_time=F.col("start_time"),
    )
    return left_rows.unionByName(right_rows)
