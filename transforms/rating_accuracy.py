"""Control point rating-accuracy: every rated event re-priced from the tariff table.

The tariff is evidence, not a side: only rated events get outcomes. TARIFF_MISMATCH carries a signed exposure
(expected - amount: positive when the customer was charged too little).
"""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from transforms.outcomes import outcome_frame
from transforms.tariff import TariffJoin, beyond_tolerance


def rating_accuracy(rated: DataFrame, tariff: DataFrame, abs_tol: str, rel_tol: str) -> DataFrame:
    """Outcome rows for rating-accuracy; `rated` carries `_key`, `_hash`, `_q`, `msisdn_e164`."""
    priced = TariffJoin(tariff, F.col("tariff_id"), "t_").apply(
        rated.withColumn("_t", F.col("start_time")).withColumn("_qty", F.col("quantity")))
    diff = F.col("amount") - F.col("expected_amount")
    currency_differs = F.col("currency") != F.col("t_currency")
    outcome = (
        F.when(F.col("_q").isNotNull(), F.lit("QUARANTINED"))
        .when(~F.col("t_found"), F.lit("TARIFF_NOT_FOUND"))
        .when(beyond_tolerance(diff, F.col("expected_amount"), abs_tol, rel_tol) | currency_differs,
              F.lit("TARIFF_MISMATCH"))
        .otherwise(F.lit("MATCHED"))
    )
    decided = priced.withColumn("_outcome", outcome)
    version_note = F.when(F.col("tariff_version") != F.col("t_tariff_version"),
                          F.concat(F.lit("; rated with version "), F.col("tariff_version"), F.lit(", valid version is "),
                                   F.col("t_tariff_version")))
    reason = (
        F.when(F.col("_outcome") == "QUARANTINED", F.col("_q"))
        .when(F.col("_outcome") == "TARIFF_NOT_FOUND",
              F.concat(F.lit("no version of tariff "), F.coalesce(F.col("tariff_id"), F.lit("(null)")),
                       F.lit(" valid at start_time")))
        .when(F.col("_outcome") == "TARIFF_MISMATCH",
              F.concat_ws("", F.when(currency_differs, F.concat(F.lit("currency "), F.col("currency"),
                                                                F.lit(" vs tariff "), F.col("t_currency"))),
                          F.when(~currency_differs, F.concat(F.lit("rated "), F.col("amount").cast("string"),
                                                             F.lit(", expected "),
                                                             F.col("expected_amount").cast("string"))),
                          version_note))
    )
    return outcome_frame(
        decided, side="LEFT", table="rated_event", record_id=F.col("rated_event_id"), outcome=F.col("_outcome"),
        match_stage=F.when(F.col("t_found") & F.col("_q").isNull(), F.lit("EXACT")).otherwise(F.lit("NONE")),
        counterpart_id=F.when(F.col("t_found"), F.concat_ws("@", F.col("t_tariff_id"), F.col("t_tariff_version"))),
        counterpart_table="tariff",
        amount=F.col("amount"), expected_amount=F.when(F.col("_q").isNull(), F.col("expected_amount")),
        currency=F.col("currency"), reason=reason,
        exposure=F.when(F.col("_outcome") == "TARIFF_MISMATCH", F.col("expected_amount") - F.col("amount")),
        account_id=F.col("account_id"), msisdn=F.col("msisdn_e164"), service_type=F.col("service_type"),
        start_time=F.col("start_time"),
    )
