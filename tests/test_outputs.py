"""How output slices are written: the Parquet encoding of their columns (jobs/outputs.py)."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from jobs.outputs import PLAIN_COLUMNS, write_run_slice
from transforms.schema import OUTPUT_SCHEMAS, RECORD_OUTCOME

DICTIONARY_KEY = "parquet.enable.dictionary#record_key"


def _encodings(folder: Path) -> dict[str, set[str]]:
    """Each column's encodings over every data file under `folder`."""
    out: dict[str, set[str]] = {}
    files = sorted(folder.rglob("*.parquet"))
    assert files, f"no Parquet file under {folder}"
    for path in files:
        meta = pq.ParquetFile(path).metadata
        for g in range(meta.num_row_groups):
            group = meta.row_group(g)
            for c in range(group.num_columns):
                column = group.column(c)
                out.setdefault(column.path_in_schema, set()).update(column.encodings)
    return out


def test_record_outcome_writes_its_per_row_columns_without_dictionaries(spark: SparkSession, tmp_path: Path) -> None:
    """The columns whose values are all but unique per row are written plain (a dictionary per column chunk is work
    thrown away on them); the low-cardinality ones keep their dictionaries. The session's settings are as before
    the write, a value the session had set itself included."""
    values = {"record_id": F.lit("R1"), "record_key": F.lit("R1:abc:1"), "payload_hash": F.lit("ab" * 32),
              "outcome": F.lit("MATCHED"), "side": F.lit("LEFT"), "cycle_id": F.lit("2026-06"),
              "account_bucket": F.lit(3), "run_id": F.lit("enc-1"), "amount": F.lit("1.5").cast("decimal(18,6)")}
    rows = spark.range(500).select(*[values.get(f.name, F.lit(None)).cast(f.dataType).alias(f.name)
                                     for f in RECORD_OUTCOME.fields])
    spark.conf.set(DICTIONARY_KEY, "true")      # the session's own value, to be kept
    try:
        write_run_slice(rows, str(tmp_path / "record_outcome"), "record_outcome", "2026-06", "enc-1", "test:enc-1")
        assert spark.conf.get(DICTIONARY_KEY) == "true"
    finally:
        spark.conf.unset(DICTIONARY_KEY)
    assert spark.conf.get("parquet.enable.dictionary#payload_hash", None) is None

    encodings = _encodings(tmp_path / "record_outcome")
    dictionary = {name for name, found in encodings.items() if any("DICTIONARY" in e for e in found)}
    for name in ("record_id", "record_key", "payload_hash", "amount"):
        assert name in PLAIN_COLUMNS["record_outcome"]
        assert name not in dictionary, (name, encodings[name])
    for name in ("outcome", "side", "run_id"):
        assert name in dictionary, (name, encodings[name])


def test_every_plain_column_is_a_column_of_its_table() -> None:
    """A name that is not a column of the table would be written with a dictionary without a word."""
    for table, columns in PLAIN_COLUMNS.items():
        missing = set(columns) - set(OUTPUT_SCHEMAS[table].fieldNames())
        assert not missing, (table, missing)
