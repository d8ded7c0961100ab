"""Appending one file's lines to its table: one Delta commit per file, the same bytes never twice.

The table is the one of the file's layout's kind (`TARGETS`): carrier_invoice_line for call_invoice layouts
(CONTRACT section 6), carrier_bill_line for line_bill layouts (section 9), each the conf's `tables.<name>`.
A file's identity is the SHA-256 of its bytes (CONTRACT section 6). Two guards keep a re-sent file out:

- before any work, a look for the hash in the table (`source_sha256` has file statistics, so Delta reads only the
  files that hold it): already there, the file is skipped and nothing is computed;
- the append itself carries Delta's idempotent-write options (`txnAppId` = the hash, `txnVersion` 1), so two
  ingests racing on the same bytes, or a retry after a crash between commit and report, commit once: Delta
  skips a transaction it has already recorded (a file with no data rows is recorded this way too).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from delta.tables import DeltaTable
from py4j.protocol import Py4JJavaError
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import StructType

from jobs.ingest.bill_lines import CARRIER_BILL_LINE
from jobs.ingest.layouts import CALL_INVOICE, LINE_BILL
from jobs.ingest.normalize import CARRIER_INVOICE_LINE
from jobs.inputs import InputError, is_path
from jobs.outputs import CONCURRENT, exists

LOG = logging.getLogger(__name__)
TXN_APP_PREFIX = "telco-ra-ingest:"


@dataclass(frozen=True)
class Target:
    """The table the lines of one kind of layout are appended to."""

    table: str                   # its name, and its key under the conf's `tables`
    schema: StructType           # the columns ingest writes (an existing table must have them)
    # Columns whose min/max Delta keeps per data file: the hash (the re-ingest check), and what the control
    # filters by.
    stats: tuple[str, ...]


TARGETS: dict[str, Target] = {
    CALL_INVOICE: Target("carrier_invoice_line", CARRIER_INVOICE_LINE,
                         ("source_sha256", "carrier", "start_time", "record_id", "call_id", "source_row")),
    LINE_BILL: Target("carrier_bill_line", CARRIER_BILL_LINE,
                      ("source_sha256", "carrier", "bill_period", "phone", "iccid", "source_row")),
}


class ConcurrentIngestError(RuntimeError):
    """Another writer changed the table's metadata while this file was written (exit 1: run it again)."""


@dataclass(frozen=True)
class Appended:
    committed: bool              # False: Delta already held this file's transaction (nothing written)
    version: int | None          # the table version holding the file's lines


def read_table(spark: SparkSession, ref: str) -> DataFrame:
    return spark.read.format("delta").load(ref) if is_path(ref) else spark.read.table(ref)


def check_table(spark: SparkSession, ref: str, target: Target) -> None:
    """An existing table must have the columns and types ingest writes (extra columns are allowed): InputError
    (exit 2) names the first that does not, before anything is appended."""
    if not exists(spark, ref):
        return
    actual = {f.name: f.dataType for f in read_table(spark, ref).schema.fields}
    for field in target.schema.fields:
        if field.name not in actual:
            raise InputError(f"table {target.table} ({ref}): missing column {field.name} "
                             f"({field.dataType.simpleString()}); ingest appends exactly the contract's columns")
        if actual[field.name] != field.dataType:
            raise InputError(f"table {target.table} ({ref}): column {field.name} is "
                             f"{actual[field.name].simpleString()}, ingest writes {field.dataType.simpleString()}")


def holds(spark: SparkSession, ref: str, sha256: str) -> bool:
    """Whether lines of the file with this hash are in the table already."""
    if not exists(spark, ref):
        return False
    return bool(read_table(spark, ref).where(F.col("source_sha256") == sha256).limit(1).count())


def _version(spark: SparkSession, ref: str) -> int | None:
    if not exists(spark, ref):
        return None
    table = DeltaTable.forPath(spark, ref) if is_path(ref) else DeltaTable.forName(spark, ref)
    row = table.history(1).select("version").first()
    return None if row is None else int(row["version"])


def append(lines: DataFrame, ref: str, sha256: str, target: Target) -> Appended:
    """Append one file's lines to `target`'s table at `ref` in one commit, idempotently (see the module
    docstring)."""
    spark = lines.sparkSession
    before = _version(spark, ref)
    writer = (lines.write.format("delta").mode("append")
              .option("txnAppId", TXN_APP_PREFIX + sha256).option("txnVersion", 1))
    if before is None:
        writer = writer.option("delta.dataSkippingStatsColumns", ",".join(target.stats))
    try:
        if is_path(ref):
            writer.save(ref)
        else:
            writer.saveAsTable(ref)
    except (*CONCURRENT, Py4JJavaError) as exc:
        text = str(exc.java_exception) if isinstance(exc, Py4JJavaError) else str(exc)
        if "Concurrent" not in text and not isinstance(exc, CONCURRENT):
            raise
        if "ConcurrentTransaction" in text or holds(spark, ref, sha256):
            LOG.info("another ingest committed the same bytes (%s) first", sha256[:12])
            return Appended(False, _version(spark, ref))
        raise ConcurrentIngestError(f"table {target.table} ({ref}) changed while file {sha256[:12]} was appended; "
                                    "nothing of it was committed: run the ingest again") from exc
    after = _version(spark, ref)
    return Appended(after != before, after)
