"""The suite's input writer: a table written again with the same rows is a copy of the first write, and a copy is a
Delta table of its own (tests append to and vacuum theirs)."""

from __future__ import annotations

from pathlib import Path

from delta.tables import DeltaTable
from pyspark.sql import SparkSession

from factories import frame, write_table
from scenario import CDR


def test_the_same_rows_written_twice_are_two_tables_of_their_own(spark: SparkSession, tmp_path: Path) -> None:
    first = write_table(spark, "cdr", CDR[:3], tmp_path / "first")
    second = write_table(spark, "cdr", CDR[:3], tmp_path / "second")
    frame(spark, "cdr", CDR[3:4]).write.format("delta").mode("append").save(second)
    assert spark.read.format("delta").load(first).count() == 3
    assert spark.read.format("delta").load(second).count() == 4
    assert DeltaTable.forPath(spark, first).history().count() == 1
    assert spark.read.format("delta").option("versionAsOf", 0).load(second).exceptAll(
        spark.read.format("delta").load(first)).count() == 0
    other = write_table(spark, "cdr", CDR[1:4], tmp_path / "other")
    assert sorted(r["record_id"] for r in spark.read.format("delta").load(other).collect()) == sorted(
        r["record_id"] for r in CDR[1:4])
