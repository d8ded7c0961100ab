"""Deterministic identities: payload hashes, record keys, account buckets and case ids.

Everything here is a pure function of the data, so a re-run over the same Delta versions produces the same keys,
whatever the partitioning, the cluster or the wall clock. Nothing uses monotonically_increasing_id, rand or
uuid4.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F


def payload_hash(columns: Sequence[str]) -> Column:
    """sha256 of the record's columns as JSON: the evidence fingerprint that detects silent changes (seed 004 8.1).

    Nulls are kept as explicit JSON nulls so that a null and a missing value hash differently from ''.
    """
    return F.sha2(F.to_json(F.struct(*[F.col(c) for c in columns]), {"ignoreNullFields": "false"}), 256)


def with_record_identity(id_column: str, order: Sequence[str]) -> Callable[[DataFrame], DataFrame]:
    """Add `_hash` (payload hash of the input columns) and `_key`, a record key unique within the table.

    `_key` = id, hash prefix and the row's rank among rows sharing that id (ordered by `order`, then hash). Rows
    with the same id and the same hash are identical, so which of them gets which rank cannot change any output.
    Null ids are ranked among rows of the same hash.
    """

    def transform(df: DataFrame) -> DataFrame:
        # The record's own columns only: columns the job added (`_`-prefixed) are not its payload.
        hashed = df.withColumn("_hash", payload_hash([c for c in df.columns if not c.startswith("_")]))
        group = F.coalesce(F.col(id_column), F.concat(F.lit("#"), F.col("_hash")))
        window = Window.partitionBy(group).orderBy(*[F.col(c).asc_nulls_first() for c in order], F.col("_hash"))
        return hashed.withColumn("_rank", F.row_number().over(window)).withColumn(
            "_key",
            F.concat_ws(":", F.coalesce(F.col(id_column), F.lit("")), F.substring("_hash", 1, 16),
                        F.col("_rank").cast("string")),
        )

    return transform


def key_fingerprint(keys: Column) -> Column:
    """Aggregate: the sum of a 64-bit hash of each key, as decimal(38,0): equal for two sets of rows exactly when
    they carry the same keys the same number of times (up to a hash collision). An order-free multiset fingerprint,
    computed in the aggregation that counts the rows, so the conservation check needs no extra pass."""
    return F.sum(F.xxhash64(keys).cast("decimal(38,0)"))


def account_bucket(account: Column, buckets: int) -> Column:
    """Stable bucket of an account id: the output partition a partition-level re-run replaces."""
    return F.pmod(F.xxhash64(F.coalesce(account, F.lit(""))), F.lit(buckets)).cast("int")


def case_id(control_point: Column, case_type: Column, business_key: Column) -> Column:
    """`RA-` + 24 hex of sha256(control point | case type | business key): the same problem next run, same case."""
    return F.concat(F.lit("RA-"), F.substring(F.sha2(F.concat_ws("|", control_point, case_type, business_key), 256), 1, 24))
