"""The shape every record-level control emits before it becomes `record_outcome`.

The engine's decision (transforms/engine/decide.py) hands every control point's rows over in one shape;
`finalize_outcomes` adds the run's tags, account bucket and amount difference. Keeping one shape is what lets a new
ruleset be YAML plus a few transforms.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from pyspark.sql import DataFrame
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
