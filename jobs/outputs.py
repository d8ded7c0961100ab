"""Writing the output tables: one run's slice at a time, idempotently, control_run last.

Each write replaces exactly the rows of (cycle_id, run_id) with `replaceWhere`, in one Delta commit, and carries
Delta's idempotent-write options (`txnAppId`, `txnVersion`): a retried write of the same run over the same input
versions is skipped by Delta itself, and a rerun after a crash replaces whatever half-written slice the crash left.
Readers see a run only through its control_run row, which is written after everything else.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from delta.exceptions import (
    ConcurrentAppendException,
    ConcurrentDeleteDeleteException,
    ConcurrentDeleteReadException,
    ConcurrentTransactionException,
    ConcurrentWriteException,
    DeltaConcurrentModificationException,
    MetadataChangedException,
    ProtocolChangedException,
)
from delta.tables import DeltaTable
from py4j.protocol import Py4JJavaError
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs.inputs import is_path
from transforms.checkpoints import few_partitions

LOG = logging.getLogger(__name__)

CONCURRENT = (ConcurrentAppendException, ConcurrentDeleteReadException, ConcurrentDeleteDeleteException,
              ConcurrentTransactionException, ConcurrentWriteException, MetadataChangedException,
              ProtocolChangedException, DeltaConcurrentModificationException)


class ConcurrentRunError(RuntimeError):
    """Another writer committed the same output slice first: this run is not committed (exit 1)."""


SAFE = re.compile(r"^[A-Za-z0-9._:\-]+$")
PARTITIONS = {
    "record_outcome": ("cycle_id", "account_bucket"),
    "ra_case": ("cycle_id", "account_bucket"),
    "aggregate_variance": ("cycle_id", "account_bucket"),
    "correction_request": ("cycle_id", "account_bucket"),
    # Small: one row per age bucket and run. Partitioned by run too, so a run replaces exactly its own rows without
    # conflicting with runs of other slices writing theirs.
    "suspense_aging": ("cycle_id", "run_id"),
    # A few rows per run (one per scope beyond an alert's threshold), partitioned like suspense_aging.
    "run_alert": ("cycle_id", "run_id"),
    "control_run": ("cycle_id",),
    "cycle_close": ("cycle_id",),
    # The RA scorecard (jobs/report/scorecard.py): a few rows per run, replaced as the run's cases are worked.
    "ra_scorecard": ("cycle_id",),
}
# Written once per run (after the already-committed check) and not bucketed: blind, idempotent appends, so runs of
# disjoint slices never conflict on them.
APPEND_ONLY = ("control_run", "cycle_close")   # written once per run/close, after the checks: blind appends
# Columns whose min/max Delta keeps per file (table property delta.dataSkippingStatsColumns, set when the table is
# created): the ones readers filter the big tables by. Delta's default is the first 32 columns, sha256 hex
# fingerprints included, whose ranges skip nothing; computing them was a sixth of the write (measured on 5M
# record_outcome rows: 28.3 s with every column's stats, 23.8 s with these).
STATS_COLUMNS = {
    "record_outcome": ("run_id", "control_point_id", "side", "outcome", "record_id", "account_id", "start_time",
                       "exposure_amount"),
    "ra_case": ("run_id", "control_point_id", "case_id", "case_type", "status", "recorded_at", "exposure_amount"),
    "correction_request": ("run_id", "control_point_id", "case_id"),
}


# Columns written without Parquet's dictionary encoding: their values are all but unique per row (ids, record keys,
# sha256 hex, per-row reasons, accounts and numbers, times, amounts). Parquet builds a dictionary for every column
# chunk and gives it up only past 1 MB or when, at the page's end, it compresses worse than plain: for these columns
# that is hashing, probing and rehashing every value for nothing, and an output file of a bucket rarely reaches 1 MB.
# Measured on the 4,955,221 record_outcome rows of a seed-004 1M run, written three times each in one process:
# 29.7-35.8 s with dictionaries everywhere, 20.8-22.0 s without them on these columns, and files 2% smaller
# (359.2 -> 352.0 MB; zstd stores what a dictionary would have). Low-cardinality columns (outcome, side, run, rule,
# owner...) keep their dictionaries: they are what readers filter by.
PLAIN_COLUMNS = {
    "record_outcome": ("record_id", "record_key", "payload_hash", "counterpart_id", "reason", "account_id",
                       "msisdn_e164", "start_time", "amount", "expected_amount", "amount_diff", "exposure_amount",
                       "leakage"),
}
# parquet-mr's per-column setting. Delta hands a write only its table's properties and the session's SQL settings
# as the Hadoop configuration (writer options other than compression and maxRecordsPerFile are dropped), so the
# setting is put in the session for the duration of the write (_plain_encoded).
_DICTIONARY_KEY = "parquet.enable.dictionary#{}"
_PLAIN_LOCK = threading.Lock()
# (session, key) -> [writes in flight that need the key, the session's value of it before the first of them]
_plain_writes: dict[tuple[int, str], list[Any]] = {}


@contextmanager
def _plain_encoded(spark: SparkSession, columns: tuple[str, ...]) -> Iterator[None]:
    """Within the block, the session writes `columns` without dictionary encoding; after it, the session's settings
    are what they were. Runs writing side by side in one session (partition reruns in threads) share the setting:
    the last one out restores it."""
    keys = [(id(spark), _DICTIONARY_KEY.format(c)) for c in columns]
    with _PLAIN_LOCK:
        for key in keys:
            if key not in _plain_writes:
                _plain_writes[key] = [0, spark.conf.get(key[1], None)]
                spark.conf.set(key[1], "false")
            _plain_writes[key][0] += 1
    try:
        yield
    finally:
        with _PLAIN_LOCK:
            for key in keys:
                _plain_writes[key][0] -= 1
                if _plain_writes[key][0] == 0:
                    before = _plain_writes.pop(key)[1]
                    if before is None:
                        spark.conf.unset(key[1])
                    else:
                        spark.conf.set(key[1], before)


def table_ref(output: str, table: str) -> str:
    return f"{output.rstrip('/')}/{table}" if is_path(output) else f"{output}.{table}"


def exists(spark: SparkSession, ref: str) -> bool:
    if is_path(ref):
        return DeltaTable.isDeltaTable(spark, ref)
    return bool(spark.catalog.tableExists(ref))


def read_output(spark: SparkSession, ref: str) -> DataFrame:
    return spark.read.format("delta").load(ref) if is_path(ref) else spark.read.table(ref)


def write_run_slice(df: DataFrame, ref: str, table: str, cycle_id: str, run_id: str, txn_app_id: str,
                    bucket: int | None = None) -> None:
    """Replace the (cycle_id[, account_bucket], run_id) slice of output `table` with `df`, once.

    The partition columns in the predicate keep Delta's conflict check to that slice: reruns of different
    account buckets commit side by side, two writers of the same slice cannot both commit. control_run is a blind
    append (written once per run, after the already-committed check), so runs of other slices never conflict on it.
    """
    if not (SAFE.match(cycle_id) and SAFE.match(run_id)):
        raise ValueError(f"unsafe cycle_id/run_id {cycle_id!r}/{run_id!r}")
    spark = df.sparkSession
    partitions = PARTITIONS[table]
    # No repartition by the partition columns: with one cycle and a handful of buckets it would funnel the run
    # into as many tasks as buckets (and shuffle every wide output row once more). Each task writes its own rows
    # to the slices it holds; compact with OPTIMIZE later if file counts matter.
    # A small run writes each slice from one task (transforms/checkpoints.few_partitions): one file per partition
    # value instead of one per task, and no task per empty partition.
    writer = (few_partitions(df).write.format("delta")
              .option("txnAppId", txn_app_id).option("txnVersion", 1).option("mergeSchema", "true"))
    if exists(spark, ref) and table not in APPEND_ONLY:
        predicate = f"cycle_id = '{cycle_id}'"
        if bucket is not None:
            predicate += f" AND account_bucket = {int(bucket)}"
        writer = writer.mode("overwrite").option("replaceWhere", f"{predicate} AND run_id = '{run_id}'")
    else:
        writer = writer.mode("append").partitionBy(*partitions)
        if table in STATS_COLUMNS:
            writer = writer.option("delta.dataSkippingStatsColumns", ",".join(STATS_COLUMNS[table]))
    try:
        with _plain_encoded(spark, PLAIN_COLUMNS.get(table, ())):
            if is_path(ref):
                writer.save(ref)
            else:
                writer.saveAsTable(ref)
    except (*CONCURRENT, Py4JJavaError) as exc:
        if isinstance(exc, Py4JJavaError) and "Concurrent" not in str(exc.java_exception):
            raise
        raise ConcurrentRunError(
            f"another run committed to the {table} slice of cycle {cycle_id}"
            f"{'' if bucket is None else f', account_bucket {bucket}'} while run {run_id} was writing; "
            f"run {run_id} is not committed (no control_run row): run it again") from exc
    LOG.info("wrote %s for run %s", table, run_id)


def content_hash(df: DataFrame, exclude: tuple[str, ...] = ()) -> str:
    """An order-independent fingerprint of a DataFrame's rows (two 60-bit sums of per-row sha256, and the count).

    Lets an auditor compare a re-run with the original without collecting rows: equal hashes, equal content.
    """
    cols = sorted(c for c in df.columns if c not in exclude)
    row_hash = F.sha2(F.to_json(F.struct(*cols), {"ignoreNullFields": "false"}), 256)
    part = [F.sum(F.conv(F.substring(row_hash, start, 15), 16, 10).cast("decimal(38,0)")) for start in (1, 16, 31)]
    row = df.agg(F.count(F.lit(1)).alias("n"), *[p.alias(f"h{i}") for i, p in enumerate(part)]).first()
    assert row is not None
    return f"{row['n']}:{row['h0'] or 0}:{row['h1'] or 0}:{row['h2'] or 0}"


def current(spark: SparkSession, output: str, table: str, cycle_id: str, buckets: int) -> DataFrame:
    """The current rows of an output for a cycle: per account bucket, those of the latest committed run covering it.

    A full run covers every bucket; a partition-level rerun (`--partition account_bucket=N`) covers one, so after
    a rerun of bucket 7 the current view shows the rerun's rows for bucket 7 and the earlier run's everywhere else,
    while every run's rows stay in the table as history.
    """
    runs = read_output(spark, table_ref(output, "control_run")).where(F.col("cycle_id") == cycle_id)
    if "reproduction_of" in runs.columns:          # absent from tables written before reproductions were marked
        runs = runs.where(F.col("reproduction_of").isNull())   # a reproduction is evidence about a run, not a result
    runs = runs.select("run_id", "partition_scope", "completed_at").distinct()
    all_buckets = spark.range(buckets).select(F.col("id").cast("int").alias("account_bucket"))
    full = runs.where(F.col("partition_scope") == "all").crossJoin(all_buckets)
    sliced = runs.where(F.col("partition_scope").startswith("account_bucket=")).withColumn(
        "account_bucket", F.split(F.col("partition_scope"), "=").getItem(1).cast("int"))
    latest = (full.unionByName(sliced).groupBy("account_bucket")
              .agg(F.max_by("run_id", F.struct("completed_at", "run_id")).alias("run_id")))
    rows = read_output(spark, table_ref(output, table)).where(F.col("cycle_id") == cycle_id)
    return rows.join(latest, ["account_bucket", "run_id"], "left_semi")
