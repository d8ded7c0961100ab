"""Determinism: the same inputs give byte-identical outputs whatever the shuffle partitioning, AQE or run size."""

from __future__ import annotations

from pathlib import Path

import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from factories import RULESET, session_conf, write_inputs
from jobs.config import load_conf
from jobs.outputs import content_hash, read_output
from jobs.ruleset import load_ruleset
from jobs.run import execute
from scenario import CDR, CHARGES, RATED, SUSPENSE
from transforms.checkpoints import CUT_DIR_KEY, SMALL_RUN_BYTES_KEY
from transforms.phone import BROADCAST_LIMIT_KEY as PHONE_BROADCAST_KEY
from transforms.sizing import BROADCAST_ROWS_KEY

TABLES = ("record_outcome", "ra_case", "aggregate_variance")


@pytest.mark.slow
def test_outputs_identical_across_partitioning_and_aqe(spark: SparkSession, tmp_path: Path) -> None:
    conf_path = write_inputs(spark, tmp_path, {"cdr": CDR, "rated_event": RATED, "bill_charge": CHARGES,
                                                "suspense": SUSPENSE})
    conf, ruleset = load_conf(conf_path), load_ruleset(RULESET)
    hashes = {}
    cuts = tmp_path / "cuts"
    # Each variant changes how Spark may execute the same run: partitioning, AQE, every small side joined by a
    # shuffle instead of a broadcast (the path a month with big fuzzy sets takes), and intermediate results kept
    # as Parquet files instead of checkpoint blocks.
    # A small run (lazy cuts, no adaptive execution, no broadcast; transforms/checkpoints.small_run) against the
    # path a big month takes (the inputs here are tiny: every other variant turns small runs off).
    no_broadcast = {BROADCAST_ROWS_KEY: "0", PHONE_BROADCAST_KEY: "0", "spark.sql.autoBroadcastJoinThreshold": "-1"}
    big = {SMALL_RUN_BYTES_KEY: "0"}
    variants = {
        "small": {SMALL_RUN_BYTES_KEY: str(1 << 30)},
        "p4-aqe": {"spark.sql.shuffle.partitions": "4", "spark.sql.adaptive.enabled": "true", **big},
        "p16-no-aqe-no-broadcast": {"spark.sql.shuffle.partitions": "16", "spark.sql.adaptive.enabled": "false",
                                    **no_broadcast, **big},
        "p16-aqe": {"spark.sql.shuffle.partitions": "16", "spark.sql.adaptive.enabled": "true", **big},
        "p4-aqe-parquet-cuts": {"spark.sql.shuffle.partitions": "4", "spark.sql.adaptive.enabled": "true",
                                CUT_DIR_KEY: str(cuts), **big},
    }
    for run_id, settings in variants.items():
        with session_conf(spark, settings):
            result = execute(spark, conf, ruleset, "2026-06", run_id)
        hashes[run_id] = {t: content_hash(read_output(spark, result.output_refs[t]).where(
            F.col("run_id") == run_id), exclude=("run_id", "recorded_at")) for t in TABLES}
    assert cuts.is_dir(), "the Parquet-cut run wrote no intermediate files"
    assert list(cuts.iterdir()) == [], "a run's intermediate files outlived it"
    first, *others = hashes.values()
    assert all(h == first for h in others), hashes
    assert int(first["record_outcome"].split(":")[0]) > 0

