"""A notebook's lakehouse: its conf and Spark session, and the committed runs under its output.

A notebook kernel is a process of its own: it starts its own Spark from the lakehouse's conf (`make demo` writes
`lakehouse/demo.yaml`), with the overrides a caller passes (a test runs the notebooks on a small local[2] session).
A run exists only through its control_run rows; reproductions (`telco-ra rerun`) are evidence about a run, not a
run of the cycle, and are left out.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs.cases import REPRODUCTION_MARK
from jobs.config import EnvConf, load_conf
from jobs.report.figures import load_run

REPO = Path(__file__).resolve().parent.parent.parent
DEMO_CONF = "demo.yaml"


def open_lakehouse(lakehouse: str | Path | None = None, conf: str = DEMO_CONF,
                   spark: Mapping[str, Any] | None = None,
                   app_name: str = "telco-ra-notebook") -> tuple[EnvConf, SparkSession]:
    """(conf, SparkSession) of the lakehouse folder `make demo` wrote (default `<repo>/lakehouse`). `spark`
    overrides the conf's `spark:` block: `master` replaces it, `settings` are laid over its settings.

    Example::

        conf, spark = open_lakehouse("lakehouse", spark={"master": "local[2]"})
    """
    from jobs.session import build_session

    root = Path(lakehouse) if lakehouse is not None else REPO / "lakehouse"
    path = root / conf
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no lakehouse conf there: run `make demo` first, or set LAKEHOUSE to the "
                                "folder `telco-ra demo --lakehouse` wrote")
    env = load_conf(path)
    override = dict(spark or {})
    block = {**env.spark, **{k: v for k, v in override.items() if k != "settings"},
             "settings": {**(env.spark.get("settings") or {}), **(override.get("settings") or {})}}
    return env, build_session(block, app_name=app_name)


def utc(col: str | Column) -> Column:
    """A timestamp column as ISO-8601 UTC text (the session's zone is pinned to UTC): what a person reads, and what
    pandas cannot shift into the host's zone."""
    c = F.col(col) if isinstance(col, str) else col
    return F.date_format(c, "yyyy-MM-dd'T'HH:mm:ss'Z'")


def committed(spark: SparkSession, output: str) -> DataFrame:
    """control_run without reproductions."""
    runs = load_run(spark, output).where(~F.col("run_id").contains(REPRODUCTION_MARK))
    return runs.where(F.col("reproduction_of").isNull()) if "reproduction_of" in runs.columns else runs


def runs(spark: SparkSession, output: str, ruleset: str | None = None, cycle_id: str | None = None) -> pd.DataFrame:
    """One row per committed run (newest first): run_id, ruleset, version, cycle, scope, completed_at (UTC text),
    control points and cases opened. Optionally only one ruleset's (by name) or one cycle's."""
    rows = committed(spark, output)
    if ruleset is not None:
        rows = rows.where(F.col("ruleset_name") == ruleset)
    if cycle_id is not None:
        rows = rows.where(F.col("cycle_id") == cycle_id)
    per_run = rows.groupBy("run_id").agg(
        F.first("ruleset_name").alias("ruleset"), F.first("ruleset_version").alias("version"),
        F.first("cycle_id").alias("cycle_id"), F.first("partition_scope").alias("scope"),
        F.max("completed_at").alias("_completed"),
        F.array_join(F.sort_array(F.collect_list("control_point_id")), ", ").alias("control_points"),
        F.sum("cases_opened").alias("cases_opened"))
    return (per_run.orderBy(F.desc("_completed"), F.desc("run_id"))
            .select("run_id", "ruleset", "version", "cycle_id", "scope", utc("_completed").alias("completed_at"),
                    "control_points", "cases_opened").toPandas())


def latest_run_id(spark: SparkSession, output: str, ruleset: str | None = None, cycle_id: str | None = None) -> str:
    """The most recently completed committed run (of `ruleset` and `cycle_id` when given)."""
    table = runs(spark, output, ruleset, cycle_id)
    if table.empty:
        what = " ".join(f"{k} {v}" for k, v in (("ruleset", ruleset), ("cycle", cycle_id)) if v)
        raise LookupError(f"no committed run{' of ' + what if what else ''} under {output}")
    return str(table["run_id"].iloc[0])


def previous_run_id(spark: SparkSession, output: str, run_id: str) -> str | None:
    """The committed run of the same cycle and ruleset completed just before `run_id` (None: it is the first)."""
    table = runs(spark, output)
    mine = table[table["run_id"] == run_id]
    if mine.empty:
        raise LookupError(f"{run_id!r} is not a committed run under {output}")
    ruleset, cycle = mine["ruleset"].iloc[0], mine["cycle_id"].iloc[0]
    same = table[(table["ruleset"] == ruleset) & (table["cycle_id"] == cycle)].reset_index(drop=True)
    at = int(same.index[same["run_id"] == run_id][0])
    return str(same["run_id"].iloc[at + 1]) if at + 1 < len(same) else None
