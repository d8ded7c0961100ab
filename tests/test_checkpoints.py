"""A cut keeps its result and frees the shuffle files that computed it (spark.local.dir must not fill up)."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import pytest
from chispa import assert_df_equality
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from factories import session_conf
from jobs.outputs import write_run_slice
from jobs.phases import phase
from jobs.spark_status import figures_by_description
from transforms.checkpoints import (
    CUT_DIR_KEY,
    RELEASE_SHUFFLES_KEY,
    STORAGE_LEVEL_KEY,
    cut_scope,
    materialize,
    materialize_freeing,
    registered_shuffles,
    release,
    release_shuffles,
    settled_shuffles,
    small_run,
)


def _shuffle_files(spark: SparkSession, shuffle_ids: frozenset[int]) -> list[Path]:
    jvm = spark.sparkContext._jvm
    assert jvm is not None
    dirs = jvm.org.apache.spark.SparkEnv.get().blockManager().diskBlockManager().localDirs()
    return [f for d in dirs for f in Path(d.getPath()).rglob("shuffle_*")
            if int(f.name.split("_")[1]) in shuffle_ids]


def _grouped(spark: SparkSession) -> DataFrame:
    """Two shuffles: a repartition and an aggregation."""
    return (spark.range(2000).repartition(3, "id").withColumn("k", F.col("id") % 7)
            .groupBy("k").agg(F.count(F.lit(1)).alias("n"), F.sum("id").alias("s")))


def test_a_cut_keeps_its_result_and_releases_the_shuffles_it_created(spark: SparkSession) -> None:
    before = registered_shuffles(spark)
    cut = materialize(_grouped(spark))
    created = registered_shuffles(spark) - before
    assert created == frozenset(), f"shuffles left registered by the cut: {sorted(created)}"
    expected = spark.createDataFrame([(k, len(range(k, 2000, 7)), sum(range(k, 2000, 7))) for k in range(7)],
                                     "k bigint, n bigint, s bigint")
    assert_df_equality(cut, expected, ignore_row_order=True, ignore_nullable=True)
    # and the cut stays usable after its producers are gone
    assert cut.where(F.col("k") == 3).select("n").first()[0] == len(range(3, 2000, 7))


def test_a_shuffle_whose_map_stage_still_runs_is_never_released(spark: SparkSession) -> None:
    """Unregistering a shuffle under a running map stage stops the SparkContext (its tasks register into a shuffle
    that is gone): such a shuffle is not settled until its stage is done and out of the DAG scheduler."""
    before = registered_shuffles(spark)
    slow = (spark.range(0, 2, 1, 2).withColumn("z", F.expr("java_method('java.lang.Thread', 'sleep', 4000L)"))
            .repartition(2, "z", "id"))
    worker = threading.Thread(target=lambda: slow.write.format("noop").mode("overwrite").save())
    worker.start()
    try:
        running = frozenset()
        for _ in range(200):                          # the shuffle is registered when its stage is created
            running = registered_shuffles(spark) - before
            if running:
                break
            threading.Event().wait(0.02)
        assert running, "the slow job's shuffle never showed up"
        assert settled_shuffles(spark, running) == frozenset()
    finally:
        worker.join()
    assert settled_shuffles(spark, running) == running
    release_shuffles(spark, running)
    assert registered_shuffles(spark) & running == frozenset()


def test_without_release_the_shuffle_files_stay(spark: SparkSession) -> None:
    """The other branch of the setting, so the test above can be seen to fail when the release does nothing."""
    with session_conf(spark, {RELEASE_SHUFFLES_KEY: "false"}):
        before = registered_shuffles(spark)
        materialize(_grouped(spark))
        kept = registered_shuffles(spark) - before
    assert len(kept) >= 2
    assert _shuffle_files(spark, kept), "expected the kept shuffles' files on disk"
    released = materialize(_grouped(spark))   # with release on: the new shuffles' files are deleted
    assert released.count() == 7
    release_shuffles(spark, kept)
    assert _shuffle_files(spark, kept) == []
    assert registered_shuffles(spark) & kept == frozenset()


def test_unknown_storage_level_names_the_setting(spark: SparkSession) -> None:
    with session_conf(spark, {STORAGE_LEVEL_KEY: "ON_THE_MOON"}), \
            pytest.raises(ValueError, match="spark.telcora.materialize.storageLevel='ON_THE_MOON'"):
        materialize(spark.range(3))


def test_release_frees_a_checkpoint_and_a_parquet_cut(spark: SparkSession, tmp_path: Path) -> None:
    sc = spark.sparkContext._jsc.sc()  # type: ignore[union-attr]
    cut = materialize(_grouped(spark))
    rdd_id = cut._jdf.queryExecution().analyzed().rdd().id()     # the checkpoint's kept RDD
    assert sc.getPersistentRDDs().contains(rdd_id)               # (other tests' cuts come and go with GC: by id)
    release(cut)
    assert not sc.getPersistentRDDs().contains(rdd_id)

    with session_conf(spark, {CUT_DIR_KEY: str(tmp_path / "cuts")}):
        with cut_scope(spark, "scope-a"):
            first, second = materialize(_grouped(spark)), materialize(spark.range(5))
            folders = sorted(p.name for p in (tmp_path / "cuts" / "scope-a").iterdir())
            assert len(folders) == 2
            release(first)
            assert sorted(p.name for p in (tmp_path / "cuts" / "scope-a").iterdir()) == folders[1:]
            assert second.count() == 5
        assert not (tmp_path / "cuts" / "scope-a").exists()


def test_a_control_points_intermediate_cuts_are_freed_once_its_result_is_cut(spark: SparkSession,
                                                                             tmp_path: Path) -> None:
    folder = tmp_path / "cuts" / "scope-f"

    def cuts() -> list[str]:
        return sorted(p.name for p in folder.iterdir())

    def control_point() -> DataFrame:
        step = materialize(_grouped(spark))                        # an intermediate, read by the result only
        inner = materialize_freeing(lambda: materialize(spark.range(3)).crossJoin(step.select("k")))
        return inner.groupBy().agg(F.count(F.lit(1)).alias("n"), F.sum("k").alias("k"))

    with session_conf(spark, {CUT_DIR_KEY: str(tmp_path / "cuts")}), cut_scope(spark, "scope-f"):
        kept = materialize(spark.range(4))                         # made outside the block: not the block's to free
        result = materialize_freeing(control_point)
        assert len(cuts()) == 2, cuts()                            # `kept` and the result; 3 intermediates gone
        assert_df_equality(result, spark.createDataFrame([(21, 63)], "n bigint, k bigint"), ignore_nullable=True)
        assert kept.count() == 4

    cut = materialize_freeing(lambda: materialize(_grouped(spark)).where(F.col("k") > 2))    # checkpoint blocks
    assert cut.count() == 4


def test_runs_side_by_side_keep_their_shuffles_and_their_own_cut_folders(spark: SparkSession,
                                                                         tmp_path: Path) -> None:
    """Two runs in one process share the SparkContext: a cut of one must not free what the other may still use,
    and neither may write into or delete the other's cut folder (partition reruns run this way)."""
    opened, ours_open, cut_again, may_close = (threading.Event() for _ in range(4))
    neighbour_cuts: list[DataFrame] = []

    def neighbour() -> None:
        with cut_scope(spark, "scope-b"):
            neighbour_cuts.append(materialize(spark.range(4)))
            opened.set()
            ours_open.wait(timeout=120)
            neighbour_cuts.append(materialize(spark.range(6)))     # while scope-a is open in the other thread
            cut_again.set()
            may_close.wait(timeout=120)

    thread = threading.Thread(target=neighbour)
    kept: frozenset[int] = frozenset()
    with session_conf(spark, {CUT_DIR_KEY: str(tmp_path / "cuts")}):   # until the neighbour has deleted its cuts
        try:
            thread.start()
            assert opened.wait(timeout=120)
            with cut_scope(spark, "scope-a"):
                ours_open.set()
                assert cut_again.wait(timeout=120)
                before = registered_shuffles(spark)
                materialize(_grouped(spark))
                kept = registered_shuffles(spark) - before
                assert len(kept) >= 2, "a cut released shuffles while another run was open"
                assert len(list((tmp_path / "cuts" / "scope-a").iterdir())) == 1
                assert len(list((tmp_path / "cuts" / "scope-b").iterdir())) == 2
            assert not (tmp_path / "cuts" / "scope-a").exists()
            assert [c.count() for c in neighbour_cuts] == [4, 6]     # the neighbour's cuts outlived our scope
        finally:
            may_close.set()
            thread.join(timeout=120)
            release_shuffles(spark, kept)
    assert not (tmp_path / "cuts" / "scope-b").exists()


def test_a_cut_is_described_by_the_line_that_asks_for_it(spark: SparkSession) -> None:
    """Its jobs read '<phase> | cut at <file>:<line> (<function>)' so the Spark UI and the bench's profile tell
    cuts apart; the phase's own description comes back afterwards."""
    with phase(spark, "described", "run-x") as group:
        line = sys._getframe().f_lineno + 1
        materialize(_grouped(spark))
        spark.range(3).count()
    parts = figures_by_description(spark, group.__eq__)
    cut = f"telco-ra described (run-x) | cut at test_checkpoints.py:{line} " \
          "(test_a_cut_is_described_by_the_line_that_asks_for_it)"
    assert cut in parts, sorted(parts)
    assert parts[cut].stages >= 2 and parts[cut].shuffle_write_bytes > 0
    assert "telco-ra described (run-x)" in parts          # the count after the cut: the phase's description again


def test_a_small_run_cuts_and_writes_its_rows_in_one_partition(spark: SparkSession, tmp_path: Path) -> None:
    """A union of eight 4-partition sides is 32 tasks a stage; a small run keeps it, and writes it, as one (each task
    is driver and executor overhead for a few rows), and shuffles into one partition. A big run keeps its plan's
    partitions."""
    sides = [spark.range(i * 10, i * 10 + 10, numPartitions=4) for i in range(8)]
    union = sides[0]
    for side in sides[1:]:
        union = union.unionByName(side)
    rows = union.select(F.col("id"), (F.col("id") % 3).alias("account_bucket"), F.lit("2026-06").alias("cycle_id"),
                        F.lit("small-1").alias("run_id"))
    assert materialize(rows).rdd.getNumPartitions() == 32
    with small_run(spark):
        cut = materialize(rows)
        assert cut.rdd.getNumPartitions() == 1
        assert spark.conf.get("spark.sql.shuffle.partitions") == "1"
        ref = str(tmp_path / "aggregate_variance")        # partitioned by cycle_id, account_bucket
        write_run_slice(rows, ref, "aggregate_variance", "2026-06", "small-1", "test:small-1")
    assert_df_equality(cut, rows, ignore_row_order=True)
    written = spark.read.format("delta").load(ref)
    assert written.count() == 80
    # one file per partition value (cycle_id, account_bucket), not one per task
    assert len(written.inputFiles()) == 3
