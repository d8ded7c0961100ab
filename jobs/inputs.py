"""Reading the input Delta tables: pinned versions, schema validation, cycle scope.

A run reads every input at one Delta version (recorded in control_run) so it can be reproduced by time travel. The
schema check happens on metadata only, before any Spark job touches data: a missing column or a wrong type exits 2
naming the table and the column.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

from delta.tables import DeltaTable
from pyspark.errors import AnalysisException
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import DataType, DecimalType, StructType

from jobs.config import ConfigError, Cycle
from transforms.schema import INPUT_SCHEMAS, MONEY, OPTIONAL_INPUT_COLUMNS, RATE

LOG = logging.getLogger(__name__)


class InputError(ValueError):
    """A bad input table (missing, wrong schema): exit 2, message names table and column."""


def is_path(ref: str) -> bool:
    return "/" in ref or ref.startswith(".") or "://" in ref


@dataclass(frozen=True)
class PinnedTable:
    name: str
    ref: str
    version: int

    def read(self, spark: SparkSession) -> DataFrame:
        reader = spark.read.format("delta").option("versionAsOf", self.version)
        return reader.load(self.ref) if is_path(self.ref) else reader.table(self.ref)


def latest_version(spark: SparkSession, name: str, ref: str) -> int:
    try:
        table = DeltaTable.forPath(spark, ref) if is_path(ref) else DeltaTable.forName(spark, ref)
    except AnalysisException as exc:
        raise InputError(f"table {name}: no Delta table at {ref!r} ({str(exc).splitlines()[0][:160]})") from exc
    row = table.history(1).select("version").first()
    if row is None:
        raise InputError(f"table {name}: Delta table at {ref!r} has no history")
    return int(row["version"])


def pin(spark: SparkSession, tables: Mapping[str, str], names: set[str], conf_path: str,
        versions: Mapping[str, int] | None = None) -> dict[str, PinnedTable]:
    """Pin each needed input to its latest Delta version (or to `versions`, for a reproduction)."""
    pinned = {}
    for name in sorted(names):
        if name not in tables:
            raise ConfigError(conf_path, f"tables.{name}", "missing: the ruleset reads this table")
        ref = tables[name]
        version = versions[name] if versions and name in versions else latest_version(spark, name, ref)
        pinned[name] = PinnedTable(name, ref, version)
    return pinned


def _compatible(expected: DataType, actual: DataType) -> bool:
    """Exact type, or a decimal that widens losslessly into the contract's decimal."""
    if expected == actual:
        return True
    if isinstance(expected, DecimalType) and isinstance(actual, DecimalType):
        return actual.scale <= expected.scale and actual.precision - actual.scale <= expected.precision - expected.scale
    return False


def validate_schema(name: str, schema: StructType, contract: str | None = None) -> None:
    """Raise InputError naming the first missing or wrongly typed column of table `name` against the contract
    table `contract` (default: the one of the same name)."""
    contract = contract or name
    actual = {f.name: f.dataType for f in schema.fields}
    expected = list(INPUT_SCHEMAS[contract].fields) + list(OPTIONAL_INPUT_COLUMNS.get(contract, StructType()).fields)
    optional = set(OPTIONAL_INPUT_COLUMNS.get(contract, StructType()).fieldNames())
    for field in expected:
        if field.name not in actual:
            if field.name in optional:
                continue
            lower = {k.lower(): k for k in actual}
            hint = f" (found {lower[field.name.lower()]!r}: names are case-sensitive)" if field.name.lower() in lower else ""
            raise InputError(f"table {name}: missing column {field.name} ({field.dataType.simpleString()}){hint}")
        if not _compatible(field.dataType, actual[field.name]):
            raise InputError(
                f"table {name}: column {field.name} is {actual[field.name].simpleString()}, "
                f"contract says {field.dataType.simpleString()}"
            )


def conform(name: str, df: DataFrame) -> DataFrame:
    """Cast lossless decimals to the contract's exact types so every downstream expression sees one type."""
    casts = {"amount": MONEY, "minimum_charge": MONEY, "rate_per_unit": RATE, "monthly_fee": MONEY, "cost": MONEY,
             "usage_mb": MONEY}
    out = df
    for column, dtype in casts.items():
        if column in INPUT_SCHEMAS[name].fieldNames() and df.schema[column].dataType != dtype:
            out = out.withColumn(column, F.col(column).cast(dtype))
    return out


def in_cycle(cycle: Cycle, time_column: str | None) -> Column:
    """Rows of the cycle, plus rows with no cycle_id whose event time falls in the cycle (they are quarantined)."""
    scoped = F.col("cycle_id") == cycle.cycle_id
    if time_column:
        start, end = F.lit(cycle.start).cast("timestamp"), F.lit(cycle.end).cast("timestamp")
        scoped = scoped | (F.col("cycle_id").isNull() & (F.col(time_column) >= start) & (F.col(time_column) < end))
    return F.coalesce(scoped, F.lit(False))


def check_available(spark: SparkSession, table: PinnedTable) -> None:
    """Raise InputError when a pinned version can no longer be read (log cleaned up, or its files vacuumed).

    Reading a vacuumed version would fail half-way through a run, or worse, a caller might fall back to today's
    data; reproduction must say which input version is gone instead.
    """
    try:
        files = table.read(spark).inputFiles()   # the snapshot's file list: bounded by files, not rows
    except AnalysisException as exc:
        raise InputError(f"table {table.name}: version {table.version} of {table.ref} is gone "
                         f"({str(exc).splitlines()[0][:160]})") from exc
    jvm = spark.sparkContext._jvm
    assert jvm is not None
    hadoop_conf = spark.sparkContext._jsc.hadoopConfiguration()  # type: ignore[union-attr]
    for name in files:
        path = jvm.org.apache.hadoop.fs.Path(name)
        if not path.getFileSystem(hadoop_conf).exists(path):
            raise InputError(f"table {table.name}: version {table.version} of {table.ref} is gone: its data file "
                             f"{name.rsplit('/', 1)[-1]} was removed (VACUUM?)")
