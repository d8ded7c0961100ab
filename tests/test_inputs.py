"""Input tables against the CONTRACT schema: a wrong type or a missing column exits 2 naming table and column."""

from __future__ import annotations

from pathlib import Path

import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from factories import RULESET, write_inputs
from jobs.cli import main


def test_wrong_typed_column_exits_2_naming_it(spark: SparkSession, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    conf = write_inputs(spark, tmp_path, {"cdr": [{"record_id": "C1"}]})
    rated = str(tmp_path / "input" / "rated_event")
    df = spark.read.format("delta").load(rated)
    # A rating system that exports money as double: exactly what the contract forbids.
    df.withColumn("amount", F.col("amount").cast("double")).write.format("delta").mode("overwrite").option(
        "overwriteSchema", "true").save(rated)
    code = main(["run", "--conf", str(conf), "--ruleset", RULESET, "--cycle", "2026-06"])
    err = capsys.readouterr().err
    assert code == 2
    assert "table rated_event: column amount is double, contract says decimal(18,6)" in err
    assert not (tmp_path / "output").exists()


def test_missing_column_exits_2_naming_it(spark: SparkSession, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    conf = write_inputs(spark, tmp_path, {})
    cdr = str(tmp_path / "input" / "cdr")
    spark.read.format("delta").load(cdr).withColumnRenamed("received_at", "Received_At").write.format("delta").mode(
        "overwrite").option("overwriteSchema", "true").save(cdr)
    code = main(["run", "--conf", str(conf), "--ruleset", RULESET, "--cycle", "2026-06"])
    err = capsys.readouterr().err
    assert code == 2
    assert "table cdr: missing column received_at (timestamp) (found 'Received_At': names are case-sensitive)" in err


def test_missing_table_exits_2(spark: SparkSession, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    conf = write_inputs(spark, tmp_path, {})
    text = conf.read_text().replace(str(tmp_path / "input" / "suspense"), str(tmp_path / "nowhere"))
    conf.write_text(text)
    code = main(["run", "--conf", str(conf), "--ruleset", RULESET, "--cycle", "2026-06"])
    assert code == 2
    assert "table suspense: no Delta table at" in capsys.readouterr().err
