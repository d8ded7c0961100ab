"""Which account a record belongs to for output layout and partition runs: its lineage root's.

Outputs are partitioned by account bucket, and a partition run (`--partition account_bucket=N`) reconciles one
bucket's records. A rated event billed to another account than its usage record (a corporate account paying for a
subscriber's usage, a re-homed line) would land in another bucket than its usage record if records were bucketed by
their own account: a partition run of either bucket would miss its counterpart and report a false USAGE_NOT_RATED
plus RATED_WITHOUT_USAGE. So each record is bucketed by the account of its lineage root:

- a usage record (cdr): its own account_id;
- a rated event: the account of the usage record its source_record_id names (the first in-scope row carrying that
  record_id, by received_at, source_file), else its own account_id;
- a charge: the bucket account of the rated event its source_rated_event_id names (the first in-scope row carrying
  that id, by rated_at), else its own account_id.

A full run and every partition run assign the same buckets, so a partition run's rows are the full run's rows of
its bucket. Records linked only by a fuzzy match (lineage lost) across accounts cannot be placed this way; their
partition run sees what lineage shows (docs/usage_to_bill.md says so).
"""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

BUCKET_ACCOUNT = "_bucket_account"


def _first_account(df: DataFrame, id_column: str, account: str, order: tuple[str, ...]) -> DataFrame:
    """(`_lid`, `_lacc`): per id among the in-side rows, the account of its first row in `order` (account last,
    so rows equal in order still give one answer)."""
    rows = df.where(F.col("_in_side") & F.col(id_column).isNotNull())
    first = F.min_by(F.col(account), F.struct(*[F.col(c) for c in order], F.col(account)))
    return rows.groupBy(F.col(id_column).alias("_lid")).agg(first.alias("_lacc"))


def _via(df: DataFrame, link: str, lookup: DataFrame) -> DataFrame:
    joined = df.join(lookup, F.col(link) == F.col("_lid"), "left")
    return joined.withColumn(BUCKET_ACCOUNT, F.coalesce(F.col("_lacc"), F.col("account_id"))).drop("_lid", "_lacc")


def with_bucket_accounts(cdr: DataFrame, rated: DataFrame, charges: DataFrame
                         ) -> tuple[DataFrame, DataFrame, DataFrame]:
    """The three side inputs (candidates carrying `_in_side`) with `_bucket_account` (see the module docstring)."""
    cdr_b = cdr.withColumn(BUCKET_ACCOUNT, F.col("account_id"))
    rated_b = _via(rated, "source_record_id", _first_account(cdr, "record_id", "account_id",
                                                             ("received_at", "source_file")))
    charges_b = _via(charges, "source_rated_event_id", _first_account(rated_b, "rated_event_id", BUCKET_ACCOUNT,
                                                                      ("rated_at",)))
    return cdr_b, rated_b, charges_b
