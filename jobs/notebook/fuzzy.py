"""Tune a fuzzy window: a control point of a committed run decided again at other windows, through the engine.

Why this way: the window is data (`stages.fuzzy.window_s` in the ruleset), and what it changes is only visible
through everything after it (the one-to-one selection, its ties, the further-match probe, then the ordered rules
that turn a match or its absence into an outcome). So each window is a modified copy of the run's own control point
spec (`dataclasses.replace` of its FuzzyStage: nothing else differs) run by the engine's `record_outcomes` over the
inputs exactly as the run read them: the Delta versions control_run pinned, the ruleset text it stored, its
partition scope and the ignore entries it applied. Nothing is written.

At the run's own window the counts are the run's (tests/test_notebooks.py checks it against control_run), so a
difference at another window is the window's doing.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import pandas as pd
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from jobs.config import EnvConf
from jobs.ignore import read_ignores
from jobs.inputs import PinnedTable
from jobs.layouts_input import layout_tables
from jobs.notebook.charts import line_chart
from jobs.outputs import read_output, table_ref
from jobs.ruleset import Ruleset, load_ruleset
from jobs.run import _is_small_run, _read_inputs, _run_params, record_outcomes, scope_inputs
from jobs.utc import as_utc
from transforms.checkpoints import cut_scope, materialize, small_run
from transforms.engine.prepare import IN_SIDE, phone_mappings, prepare
from transforms.engine.spec import ControlPoint
from transforms.engine.sql import params_of

LOG = logging.getLogger(__name__)
FUZZY_MATCHES = "LEFT matched FUZZY"
SWEEP_COLUMNS = ["window_s", "side", "outcome", "match_stage", "records", "mean_confidence"]


def fuzzy_point(ruleset: Ruleset, control_point: str | None = None) -> ControlPoint:
    """The control point to tune: `control_point`, or the ruleset's first one with a fuzzy stage."""
    found = [cp for cp in ruleset.record_points() if cp.stages.fuzzy is not None]
    if control_point is not None:
        found = [cp for cp in found if cp.id == control_point]
    if not found:
        named = f"control point {control_point!r}" if control_point else "no control point"
        raise LookupError(f"{named} of ruleset {ruleset.name} has a fuzzy stage")
    return found[0]


def _run(spark: SparkSession, output: str, run_id: str) -> tuple[dict[str, Any], Ruleset]:
    """A committed run's first control_run row (what every row of a run shares) and the ruleset text it stored."""
    first = (read_output(spark, table_ref(output, "control_run")).where(F.col("run_id") == run_id)
             .orderBy("control_point_id").limit(1).collect())
    if not first:
        raise LookupError(f"{run_id!r} is not a committed run under {output}")
    row = first[0].asDict()
    return row, load_ruleset(f"control_run[{run_id}]:{row['ruleset_name']}", text=row["ruleset_text"])


def run_window(spark: SparkSession, output: str, run_id: str, control_point: str | None = None) -> tuple[str, int]:
    """(control point, its fuzzy window in seconds) as the run's ruleset declared it."""
    cp = fuzzy_point(_run(spark, output, run_id)[1], control_point)
    assert cp.stages.fuzzy is not None
    return cp.id, cp.stages.fuzzy.window_s


def fuzzy_sweep(spark: SparkSession, conf: EnvConf, run_id: str, windows: Sequence[int],
                control_point: str | None = None) -> pd.DataFrame:
    """Per window (seconds) and per side, outcome and match stage of the control point: how many records, and the
    mean confidence of their matches. One Spark pass per window; bounded by the outcome vocabulary."""
    row, ruleset = _run(spark, conf.output, run_id)
    cp = fuzzy_point(ruleset, control_point)
    fz = cp.stages.fuzzy
    assert fz is not None
    bad = [w for w in windows if not isinstance(w, int) or w <= 0]
    if bad:
        raise ValueError(f"windows: {bad} are not whole numbers of seconds above 0")
    cycle = conf.cycle(row["cycle_id"])
    scope = row["partition_scope"] or "all"
    bucket = int(scope.split("=", 1)[1]) if scope.startswith("account_bucket=") else None
    pinned = {name: PinnedTable(name, row["input_tables"][name], version)
              for name, version in sorted(row["input_versions"].items())}
    params = params_of(_run_params(conf, ruleset), cp.tolerance, cycle)
    sides = {s.input for s in cp.sides.values()}
    out: list[dict[str, object]] = []
    with contextlib.ExitStack() as stack:          # like a run: cuts in a scope of their own, a small run if small
        stack.enter_context(cut_scope(spark, f"{spark.sparkContext.applicationId}-fuzzy-sweep"))
        if _is_small_run(spark, pinned):
            stack.enter_context(small_run(spark))
        raw = _read_inputs(spark, ruleset, pinned)
        raw.update(layout_tables(spark, conf, ruleset)[0])
        scoped = scope_inputs(raw, cycle, ruleset, bucket)
        scoped = {name: df for name, df in scoped.items() if name in sides}
        phones = phone_mappings(scoped, ruleset.inputs, conf.phone_region)
        prepared = {name: materialize(prepare(df.where(F.col(IN_SIDE)).drop(IN_SIDE), ruleset.inputs[name],
                                              conf.phone_region, phones=phones))
                    for name, df in scoped.items()}
        started = as_utc(row["started_at"])
        assert started is not None
        ignores = read_ignores(spark, conf.output, row.get("ignore_list_version"),
                               as_utc(row.get("ignore_as_of")) or started, [cp.id]).entries
        for window in windows:
            variant = replace(cp, stages=replace(cp.stages, fuzzy=replace(fz, window_s=window)))
            counters: dict[str, int] = {}
            decided = record_outcomes(ruleset, variant, prepared, raw, params, counters, ignores=ignores)
            stats = (decided.groupBy("side", "outcome", "match_stage")
                     .agg(F.count(F.lit(1)).alias("records"),
                          F.avg(F.when(F.col("match_stage") != "NONE", F.col("confidence"))).alias("mean_confidence"))
                     .collect())                                   # bounded: sides x outcomes x stages
            LOG.info("fuzzy sweep of %s at %d s: %d fuzzy rounds", cp.id, window, counters.get("fuzzy_rounds", 0))
            out += [{"window_s": window, **r.asDict()} for r in stats]
    table = pd.DataFrame(out, columns=SWEEP_COLUMNS)
    table["mean_confidence"] = [None if v is None else round(float(v), 4) for v in table["mean_confidence"]]
    return table.sort_values(["window_s", "side", "outcome", "match_stage"]).reset_index(drop=True)


def sweep_summary(sweep: pd.DataFrame) -> pd.DataFrame:
    """One row per window: records per side and outcome (a column `SIDE OUTCOME` each), and the left side's matches
    by stage. Columns whose count never changes across the windows are dropped (but the fuzzy matches): what is left is
    what the window moves."""
    by_outcome = sweep.pivot_table(index="window_s", columns=["side", "outcome"], values="records", aggfunc="sum",
                                   fill_value=0)
    by_outcome.columns = [f"{side} {outcome}" for side, outcome in by_outcome.columns]
    left = sweep[sweep["side"] == "LEFT"]
    by_stage = left.pivot_table(index="window_s", columns="match_stage", values="records", aggfunc="sum",
                                fill_value=0)
    by_stage.columns = [f"LEFT matched {stage}" for stage in by_stage.columns]
    summary = by_stage.drop(columns=[c for c in by_stage.columns if c.endswith(" NONE")]).join(by_outcome)
    moving = [c for c in summary.columns if c == FUZZY_MATCHES or summary[c].nunique() > 1]
    return summary[moving].astype(int)


def confidence_by_window(sweep: pd.DataFrame) -> pd.DataFrame:
    """Per window: the left side's fuzzy matches and their mean confidence (1 at |dt| = 0, 0.5 at the window's
    edge with no quantity difference)."""
    fuzzy = sweep[(sweep["side"] == "LEFT") & (sweep["match_stage"] == "FUZZY")].copy()
    fuzzy["weighted"] = fuzzy["records"] * fuzzy["mean_confidence"].astype(float)
    per = fuzzy.groupby("window_s")[["records", "weighted"]].sum()
    per["mean_confidence"] = (per["weighted"] / per["records"]).round(4)
    return per.drop(columns="weighted").rename(columns={"records": "fuzzy_matches"})


LINE_CSS = ("ok", "under", "over", "timing", "cost", "inventory", "other")


def sweep_chart(summary: pd.DataFrame, title: str = "records by fuzzy window") -> str:
    """A line per column of `sweep_summary(...)` over the windows."""
    series = [(str(c), LINE_CSS[i % len(LINE_CSS)], [int(v) for v in summary[c]]) for i, c in enumerate(summary)]
    return line_chart([f"{w} s" for w in summary.index], series, title, width=max(720, 90 + 200 * len(series)))
