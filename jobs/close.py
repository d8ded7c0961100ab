"""`telco-ra close --cycle C`: month-end close of a billing cycle.

Runs every control of the ruleset for the cycle, refuses to close when a control could not account for every
record (conservation) or an account bucket has no committed result, and writes one immutable `cycle_close` record
per control point: counts and exposure by class with underbilling and overbilling shown separately (never netted),
the input versions, the ruleset version and hash, and a content hash of the run's outputs, so an auditor can re-run
(`telco-ra rerun`) and compare. After close the cycle's outputs stay append-only: later runs of the cycle are
marked post-close adjustments in control_run, and the closed figures never change.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs.config import EnvConf
from jobs.outputs import content_hash, current, exists, read_output, table_ref, write_run_slice
from jobs.ruleset import Ruleset
from jobs.run import NO_HOOKS, RunHooks, RunResult, execute
from jobs.utc import utc_text
from transforms.lifecycle import found_by_run
from transforms.schema import CYCLE_CLOSE

LOG = logging.getLogger(__name__)
HASHED = ("record_outcome", "ra_case", "aggregate_variance")


class CloseRefused(RuntimeError):
    """The cycle cannot be closed (exit 1); nothing was written to cycle_close."""


@dataclass(frozen=True)
class Closed:
    cycle_id: str
    run: RunResult
    rows: list[dict[str, Any]]


def close_record(spark: SparkSession, output: str, cycle_id: str) -> DataFrame | None:
    ref = table_ref(output, "cycle_close")
    if not exists(spark, ref):
        return None
    rows = read_output(spark, ref).where(F.col("cycle_id") == cycle_id)
    return rows if rows.limit(1).count() else None


def close_cycle(spark: SparkSession, conf: EnvConf, ruleset: Ruleset, cycle_id: str,
                hooks: RunHooks = NO_HOOKS) -> Closed:
    existing = close_record(spark, conf.output, cycle_id)
    if existing is not None:
        first = existing.select("close_run_id", "closed_at").first()
        assert first is not None
        raise CloseRefused(f"cycle {cycle_id} is already closed (run {first['close_run_id']} at {utc_text(first['closed_at'])}); "
                           "later runs of it are post-close adjustments")
    from jobs.run import ConservationError

    try:
        result = execute(spark, conf, ruleset, cycle_id, hooks=hooks)
    except ConservationError as exc:
        raise CloseRefused(f"cycle {cycle_id} not closed: {exc}") from exc
    runs = read_output(spark, table_ref(conf.output, "control_run")).where(F.col("run_id") == result.run_id)
    run_rows = runs.collect()                                           # one row per control point
    missing_cps = set(ruleset.control_points) - {r["control_point_id"] for r in run_rows}
    if missing_cps or not all(r["conservation_ok"] for r in run_rows):
        raise CloseRefused(f"cycle {cycle_id} not closed: run {result.run_id} lacks a conserved result for "
                           f"{', '.join(sorted(missing_cps)) or 'some control point'}")
    covered = (current(spark, conf.output, "record_outcome", cycle_id, ruleset.account_buckets)
               .select("account_bucket").distinct())
    inputs_buckets = (read_output(spark, table_ref(conf.output, "record_outcome"))
                      .where(F.col("run_id") == result.run_id).select("account_bucket").distinct())
    gaps = inputs_buckets.join(covered, "account_bucket", "left_anti").limit(5).collect()
    if gaps:
        raise CloseRefused(f"cycle {cycle_id} not closed: no committed result for account buckets "
                           f"{sorted(r['account_bucket'] for r in gaps)}")
    hashes = {t: content_hash(read_output(spark, table_ref(conf.output, t)).where(F.col("run_id") == result.run_id),
                              exclude=("run_id", "recorded_at")) for t in HASHED}
    cases = read_output(spark, table_ref(conf.output, "ra_case")).where(
        (F.col("run_id") == result.run_id) & found_by_run())      # the run's findings, not its AUTO_CLEARED closures
    exposure = {(r["control_point_id"], r["exposure_class"]): r for r in cases.groupBy(
        "control_point_id", "exposure_class").agg(
        F.count(F.lit(1)).alias("cases"),
        F.sum(F.when(F.col("exposure_amount") > 0, F.col("exposure_amount")).otherwise(0)).alias("under"),
        F.sum(F.when(F.col("exposure_amount") < 0, F.col("exposure_amount")).otherwise(0)).alias("over"),
    ).collect()}                                                       # bounded: control points x classes
    closed_at = datetime.now(UTC)
    rows = []
    for r in run_rows:
        cp = r["control_point_id"]
        rows.append({
            "run_id": result.run_id, "control_point_id": cp, "ruleset_version": r["ruleset_version"],
            "cycle_id": cycle_id, "close_run_id": result.run_id, "closed_at": closed_at,
            "ruleset_hash": r["ruleset_hash"], "input_versions": r["input_versions"], "watermark": r["watermark"],
            "metrics": r["metrics"],
            "exposure": [{"exposure_class": cls, "cases": int(e["cases"]), "underbilling": e["under"],
                          "overbilling": e["over"]}
                         for (c, cls), e in sorted(exposure.items()) if c == cp],
            "output_hashes": hashes,
        })
    write_run_slice(spark.createDataFrame(rows, CYCLE_CLOSE), table_ref(conf.output, "cycle_close"), "cycle_close",
                    cycle_id, result.run_id, f"telco-ra:cycle_close:{cycle_id}")
    LOG.info("cycle %s closed by run %s", cycle_id, result.run_id)
    return Closed(cycle_id, result, rows)


def render(closed: Closed) -> str:
    lines = [f"cycle {closed.cycle_id} CLOSED by run {closed.run.run_id}"]
    for row in closed.rows:
        lines.append(f"  {row['control_point_id']}")
        for e in row["exposure"]:
            lines.append(f"    {e['exposure_class']:<14} {e['cases']:>8,} cases  underbilling "
                         f"{e['underbilling'] or 0:>14,.2f}  overbilling {e['overbilling'] or 0:>14,.2f}")
    lines.append("  output hashes: " + ", ".join(f"{t}={h}" for t, h in closed.rows[0]["output_hashes"].items()))
    return "\n".join(lines) + "\n"
