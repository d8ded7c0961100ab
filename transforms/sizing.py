"""Broadcast one side of a join when this run's data makes it small, never because it usually is.

Why: the controls join their full inputs (tens of millions of rows at month end) to sets that are small on a
healthy month (fuzzy matches, ambiguous records, duplicate ratings, open suspense) but need not be: a month whose
lineage is lost sends every record through the fuzzy stage. A shuffle join of a big side to a small one moves the
big side across the cluster for nothing; a broadcast of a side that turned out big fills the driver. So the small
side is first cut (transforms.checkpoints: computed once, counted cheaply), and broadcast only if its count is under
`spark.telcora.join.broadcastMaxRows`; otherwise the join stays a shuffle join that scales.
"""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from transforms.checkpoints import small_mode

# Session setting: the most rows a computed join side may hold to be broadcast (0: never). The sides this is used
# for carry a few keys and figures per row (about 100-200 bytes in a broadcast hash table).
BROADCAST_ROWS_KEY = "spark.telcora.join.broadcastMaxRows"
BROADCAST_ROWS_DEFAULT = 1_000_000


def broadcast_limit(df: DataFrame) -> int:
    text = df.sparkSession.conf.get(BROADCAST_ROWS_KEY, str(BROADCAST_ROWS_DEFAULT)) or "0"
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"{BROADCAST_ROWS_KEY}={text!r}: expected a number of rows (0: never broadcast)") from None


def is_small(cut: DataFrame) -> bool:
    """Whether `cut` (an already computed result: counting it reads no upstream) may be broadcast. In a small run
    (transforms.checkpoints.small_run) everything is small and nothing is counted."""
    if small_mode():
        return True
    limit = broadcast_limit(cut)
    return limit > 0 and cut.count() <= limit


def small_side(cut: DataFrame) -> DataFrame:
    """`cut` with a broadcast hint when it is small (see `is_small`), else `cut` as it is."""
    if small_mode():
        return cut
    return F.broadcast(cut) if is_small(cut) else cut


def broadcast_hint(df: DataFrame) -> DataFrame:
    """`df` hinted for broadcast (reference data, a side known to be small), except in a small run, where every
    broadcast would be a Spark job of its own and a shuffle of a few rows costs nothing."""
    return df if small_mode() else F.broadcast(df)
