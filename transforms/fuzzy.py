"""Fuzzy matching as a bucketed range join, and the one-to-one selection that follows it.

Why buckets: a plain non-equi join on `|t_left - t_right| <= w` over a hot number (a PBX trunk with 100k calls)
is k^2 per number; bucketing `start_time` into windows of width `w` and probing the neighbouring buckets turns it
into an equi-join on (keys, bucket), so a hot number only pairs calls that are seconds apart.

Why rounds: the contract says the candidate with the smallest time difference wins, then the smallest quantity
difference, and that equally good candidates are AMBIGUOUS_MATCH, never broken by ids. Every round matches the pairs
that are each side's unique best; when a round matches nothing, the records whose best candidates tie are declared
ambiguous with those candidates (and those candidates leave with them, their other pairs too). Pair scores are
symmetric, so the globally best remaining pair is always either a unique mutual best or a tie: each round makes
progress, and the result does not depend on partitioning. Rounds run until no pair remains; there is no cap (a cap
once turned clear unique bests of a long chain into AMBIGUOUS_MATCH with only a log line). Should a round ever
resolve nothing with pairs left, those records are AMBIGUOUS_MATCH with a reason that says so, and counted.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from transforms.checkpoints import materialize
from transforms.sizing import broadcast_hint

LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class QuantityTolerance:
    abs: str
    rel: str


def quantity_tolerance(service_type: Column, left_qty: Column, tolerances: Mapping[str, QuantityTolerance]) -> Column:
    """Allowed |Δquantity| for a pair: max(abs, rel * left quantity) of the pair's service type; 0 if unknown."""
    expr: Column = F.lit(0).cast("decimal(38,6)")
    for service, tol in tolerances.items():
        allowed = F.greatest(F.lit(tol.abs).cast("decimal(38,6)"),
                             (F.lit(tol.rel).cast("decimal(20,6)") * left_qty.cast("decimal(20,0)")).cast("decimal(38,6)"))
        expr = F.when(service_type == service, allowed).otherwise(expr)
    return expr


def candidate_pairs(
    left: DataFrame,
    right: DataFrame,
    keys: Sequence[str],
    window_s: int,
    tolerances: Mapping[str, QuantityTolerance],
    broadcast_right: bool = False,
    class_column: str = "service_type",
) -> DataFrame:
    """All (l_key, r_key, dt, dq) within the window and tolerance, each pair once.

    Both sides carry `_key`, `_t` (timestamp), `_qty` (bigint), `class_column` (which picks the quantity tolerance of
    a pair, from the left record) and the `keys` columns (already
    normalized; null keys compare equal to null). dt is |Δt| in milliseconds, dq is |Δquantity|. With
    `broadcast_right` (a right side known to be small) the left side is probed where it lies, without a shuffle.
    """
    width = window_s * 1000
    join_keys = [f"_k{i}" for i in range(len(keys))]

    def keyed(df: DataFrame) -> DataFrame:
        return df.select(
            "_key", "_t", "_qty", F.col(class_column).alias("_class"),
            *[F.coalesce(F.col(k).cast("string"), F.lit("\u0000")).alias(j) for k, j in zip(keys, join_keys, strict=True)],
            F.unix_millis("_t").alias("_ms"),
        )

    lhs = keyed(left).withColumn("_bucket", F.floor(F.col("_ms") / width))
    # Each right row probes its own bucket and both neighbours: |Δt| <= width implies the left bucket is among them.
    rhs = keyed(right).withColumn(
        "_bucket", F.explode(F.array(*[F.floor(F.col("_ms") / width) + d for d in (-1, 0, 1)]))
    )
    lft, rgt = lhs.alias("l"), (broadcast_hint(rhs) if broadcast_right else rhs).alias("r")
    cond = [F.col(f"l.{j}") == F.col(f"r.{j}") for j in join_keys] + [F.col("l._bucket") == F.col("r._bucket")]
    pairs = lft.join(rgt, cond, "inner").select(
        F.col("l._key").alias("l_key"),
        F.col("r._key").alias("r_key"),
        F.abs(F.col("l._ms") - F.col("r._ms")).alias("dt"),
        F.abs(F.col("l._qty") - F.col("r._qty")).alias("dq"),
        quantity_tolerance(F.col("l._class"), F.col("l._qty"), tolerances).alias("_tol"),
    )
    return pairs.where((F.col("dt") <= width) & (F.col("dq").cast("decimal(38,6)") <= F.col("_tol"))).drop("_tol")


def _best(pairs: DataFrame, side: str) -> DataFrame:
    """Per record of `side`: its best score and how many of its candidates reach it."""
    w = Window.partitionBy(side)
    score = F.struct("dt", "dq")
    with_min = pairs.withColumn(f"{side}_best", F.min(score).over(w))
    return with_min.withColumn(
        f"{side}_ties", F.sum(F.when(score == F.col(f"{side}_best"), 1).otherwise(0)).over(w)
    )


@dataclass(frozen=True)
class Resolution:
    """matched: (l_key, r_key, dt, dq); ambiguous: (_key, side 'l'|'r', reason); rounds run; candidate pairs left
    when a round resolved nothing (0 unless the invariant in the module docstring is broken)."""

    matched: DataFrame
    ambiguous: DataFrame
    rounds: int
    unresolved: int = 0


def resolve_one_to_one(pairs: DataFrame) -> Resolution:
    """Pick one-to-one matches from candidate pairs, in rounds until none is left (see the module docstring)."""
    spark = pairs.sparkSession
    current = materialize(pairs.select("l_key", "r_key", "dt", "dq"))
    remaining = current.count()
    matched: list[DataFrame] = []
    ambiguous: list[DataFrame] = []
    rounds = 0
    unresolved = 0
    while remaining > 0:
        rounds += 1
        scored = _best(_best(current, "l_key"), "r_key")
        score = F.struct("dt", "dq")
        unique_mutual = scored.where(
            (score == F.col("l_key_best")) & (F.col("l_key_ties") == 1)
            & (score == F.col("r_key_best")) & (F.col("r_key_ties") == 1)
        ).select("l_key", "r_key", "dt", "dq")
        unique_mutual = materialize(unique_mutual)
        if unique_mutual.count() > 0:
            matched.append(unique_mutual)
            gone_l, gone_r = unique_mutual.select("l_key"), unique_mutual.select("r_key")
        else:
            tied = scored.where(
                ((score == F.col("l_key_best")) & (F.col("l_key_ties") > 1))
                | ((score == F.col("r_key_best")) & (F.col("r_key_ties") > 1))
            )
            reason = F.concat(F.lit("best candidates tie on |dt| "), (F.col("dt") / 1000).cast("string"),
                              F.lit(" s and |dq| "), F.col("dq").cast("string"),
                              F.lit(": an arbitrary pick is not evidence"))
            amb = (
                tied.select(F.col("l_key").alias("_key"), F.lit("l").alias("side"), reason.alias("reason"))
                .unionByName(tied.select(F.col("r_key").alias("_key"), F.lit("r").alias("side"), reason.alias("reason")))
                .groupBy("_key", "side").agg(F.min("reason").alias("reason"))
            )
            amb = materialize(amb)
            if amb.count() == 0:          # nothing matched, nothing tied: stop instead of looping for ever
                unresolved = remaining
                break
            ambiguous.append(amb)
            gone_l = amb.where(F.col("side") == "l").select(F.col("_key").alias("l_key"))
            gone_r = amb.where(F.col("side") == "r").select(F.col("_key").alias("r_key"))
        current = materialize(current.join(gone_l, "l_key", "left_anti").join(gone_r, "r_key", "left_anti"))
        remaining = current.count()
    if unresolved > 0:
        LOG.warning("fuzzy selection: %d candidate pairs unresolved in round %d: AMBIGUOUS_MATCH", unresolved, rounds)
        reason = F.lit(f"no unique best and no tie among its candidates in selection round {rounds}: unresolved")
        ambiguous.append(
            current.select(F.col("l_key").alias("_key"), F.lit("l").alias("side"), reason.alias("reason"))
            .unionByName(current.select(F.col("r_key").alias("_key"), F.lit("r").alias("side"), reason.alias("reason")))
            .distinct()
        )
    empty_matched = spark.createDataFrame([], "l_key string, r_key string, dt bigint, dq bigint")
    empty_amb = spark.createDataFrame([], "_key string, side string, reason string")
    all_matched = empty_matched
    for part in matched:
        all_matched = all_matched.unionByName(part)
    all_amb = empty_amb
    for part in ambiguous:
        all_amb = all_amb.unionByName(part)
    return Resolution(all_matched, all_amb, rounds, unresolved)


def confidence(dt_ms: Column, dq: Column, window_s: int, tolerance: Column) -> Column:
    """1 - 0.5·|Δt|/window - 0.5·|Δq|/max(tolerance, 1), floored at 0, as decimal(5,4)."""
    half = F.lit("0.5").cast("decimal(2,1)")
    value = (F.lit(1) - half * dt_ms.cast("decimal(20,6)") / F.lit(window_s * 1000)
             - half * dq.cast("decimal(20,6)") / F.greatest(tolerance.cast("decimal(20,6)"), F.lit(1)))
    return F.greatest(F.round(value.cast("decimal(20,6)"), 4), F.lit(0)).cast("decimal(5,4)")
