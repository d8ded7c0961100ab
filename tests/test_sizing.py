"""A computed join side is broadcast only when this run's data makes it small."""

from __future__ import annotations

import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from factories import session_conf
from transforms.checkpoints import materialize
from transforms.sizing import BROADCAST_ROWS_KEY, is_small, small_side


def _plan(spark: SparkSession, limit: str) -> str:
    big = spark.range(5000).withColumn("k", F.col("id") % 100)
    side = materialize(spark.range(100).withColumnRenamed("id", "k").withColumn("v", F.col("k") * 2))
    # only our decision may broadcast
    with session_conf(spark, {BROADCAST_ROWS_KEY: limit, "spark.sql.autoBroadcastJoinThreshold": "-1"}):
        joined = big.join(small_side(side), "k", "left")
        assert joined.where(F.col("v").isNull()).count() == 0
        return str(joined._jdf.queryExecution().executedPlan().toString())


def test_a_side_under_the_limit_is_broadcast_and_one_over_it_is_not(spark: SparkSession) -> None:
    assert "BroadcastHashJoin" in _plan(spark, "100")
    over = _plan(spark, "99")
    assert "BroadcastHashJoin" not in over and "SortMergeJoin" in over
    assert "BroadcastHashJoin" not in _plan(spark, "0")


def test_the_limit_must_be_a_number(spark: SparkSession) -> None:
    with session_conf(spark, {BROADCAST_ROWS_KEY: "many"}), \
            pytest.raises(ValueError, match="spark.telcora.join.broadcastMaxRows='many'"):
        is_small(spark.range(3))
