"""Writing the output tables: one run's slice at a time, idempotently, control_run last.

Each write replaces exactly the rows of (cycle_id, run_id) with `replaceWhere`, in one Delta commit, and carries
Delta's idempotent-write options (`txnAppId`, `txnVersion`): a retried write of the same run over the same input
versions is skipped by Delta itself, and a rerun after a crash replaces whatever half-written slice the crash left.
Readers see a run only through its control_run row, which is written after everything else.
"""

from __future__ import annotations

import logging
import re

from delta.tables import DeltaTable
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs.inputs import is_path

LOG = logging.getLogger(__name__)

SAFE = re.compile(r"^[A-Za-z0-9._:\-]+$")
PARTITIONS = {
    "record_outcome": ("cycle_id", "account_bucket"),
    "ra_case": ("cycle_id", "account_bucket"),
    "aggregate_variance": ("cycle_id", "account_bucket"),
    "control_run": ("cycle_id",),
}


def table_ref(output: str, table: str) -> str:
    return f"{output.rstrip('/')}/{table}" if is_path(output) else f"{output}.{table}"


def exists(spark: SparkSession, ref: str) -> bool:
    if is_path(ref):
        return DeltaTable.isDeltaTable(spark, ref)
    return bool(spark.catalog.tableExists(ref))


def read_output(spark: SparkSession, ref: str) -> DataFrame:
    return spark.read.format("delta").load(ref) if is_path(ref) else spark.read.table(ref)


def write_run_slice(df: DataFrame, ref: str, table: str, cycle_id: str, run_id: str, txn_app_id: str) -> None:
    """Replace the (cycle_id, run_id) slice of output `table` with `df`, once."""
    if not (SAFE.match(cycle_id) and SAFE.match(run_id)):
        raise ValueError(f"unsafe cycle_id/run_id {cycle_id!r}/{run_id!r}")
    spark = df.sparkSession
    partitions = PARTITIONS[table]
    writer = (df.repartition(*[F.col(c) for c in partitions]).write.format("delta")
              .option("txnAppId", txn_app_id).option("txnVersion", 1))
    if exists(spark, ref):
        writer = writer.mode("overwrite").option("replaceWhere", f"cycle_id = '{cycle_id}' AND run_id = '{run_id}'")
    else:
        writer = writer.mode("append").partitionBy(*partitions)
    if is_path(ref):
        writer.save(ref)
    else:
        writer.saveAsTable(ref)
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
