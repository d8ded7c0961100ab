"""The figures of a run report, read from the output tables only (control_run, ra_case, record_outcome,
aggregate_variance): small aggregations in Spark, and only bounded results collected (one row per control point,
outcome, class, owner team, run of the cycle or top-N entry).

Everything returned is plain JSON-able data: amounts are exact decimal strings (`"1.200000"`), instants ISO-8601 UTC
text. The page (jobs/report/page.py) renders it and embeds it as a machine-readable block, so a test or an auditor
compares the page with control_run without parsing formatted numbers.

Per control point, the outcome counts, amounts and exposures are control_run's `metrics`, copied, never recomputed:
the page's figures are control_run's by construction. What control_run cannot say is added beside them: each
outcome's exposure summed apart by sign (from record_outcome, or aggregate_variance for an aggregate control point),
because an outcome whose exposure is signed (TARIFF_MISMATCH, CHARGE_AMOUNT_MISMATCH) sums under- and overbilling
into one net figure there.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import yaml
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs.cases import REPRODUCTION_MARK, case_history
from jobs.figure_totals import figure_totals
from jobs.outputs import exists, read_output, table_ref
from jobs.report.masking import mask_phones_in_text
from jobs.utc import as_utc, utc_text
from transforms.lifecycle import (
    ACKNOWLEDGED,
    AUTO_CLEARED,
    IN_CORRECTION,
    OPEN,
    PENDING_APPROVAL,
    REOPENED,
    RESOLVED,
    TERMINAL,
    current_state,
)
from transforms.schema import EXPOSURE_CLASSES, MONEY_SUM

LOG = logging.getLogger(__name__)

# Cases someone still has to act on (RESOLVED is a claim awaiting a run's confirmation; TERMINAL ones are closed).
ACTIVE = (OPEN, REOPENED, ACKNOWLEDGED, IN_CORRECTION, PENDING_APPROVAL)
# An active case is "due" when its due date falls within this long after the SLA reference time.
DUE_SOON = timedelta(days=2)
SLA_STATES = ("open", "due", "overdue", "resolved", "closed")
TOP = 10
TREND_RUNS = 12
# Exposure classes whose positive exposure is revenue not billed (leak) and whose negative is billed in excess.
UNDER, OVER = "UNDERBILLING", "OVERBILLING"
LEAK_CLASSES = (UNDER, "BY_SIGN")
EXCESS_CLASSES = (OVER, "BY_SIGN")


class ReportError(ValueError):
    """No committed run to report on, or an output table missing: exit code 2, nothing written."""


def money(value: Decimal | None) -> str | None:
    """An amount as exact text (`'1.200000'`), never scientific notation; None stays None."""
    return None if value is None else format(value, "f")


def instant(value: datetime | None) -> str | None:
    """A collected timestamp as ISO-8601 UTC text; None stays None."""
    return None if value is None else utc_text(as_utc(value))


@dataclass(frozen=True)
class Run:
    """The run a report is about, as its control_run rows say."""

    run_id: str
    cycle_id: str
    ruleset_name: str
    ruleset_version: str
    completed_at: datetime
    partition_scope: str
    cycle_close: datetime | None
    watermark: datetime | None
    control_points: tuple[str, ...]
    reproduction_of: str | None

    @property
    def bucket(self) -> int | None:
        scope = self.partition_scope or "all"
        return int(scope.split("=", 1)[1]) if scope.startswith("account_bucket=") else None


def load_run(spark: SparkSession, output: str) -> Any:
    """control_run under `output` (ReportError when no run was ever committed there)."""
    ref = table_ref(output, "control_run")
    if not exists(spark, ref):
        raise ReportError(f"--run-id: no committed run under {output} (no control_run table at {ref})")
    return read_output(spark, ref)


def run_rows(spark: SparkSession, output: str, run_id: str) -> tuple[Run, list[Any]]:
    """The run's control_run rows (one per control point: bounded) and what identifies it."""
    rows = sorted(load_run(spark, output).where(F.col("run_id") == run_id).collect(),
                  key=lambda r: r["control_point_id"])
    if not rows:
        raise ReportError(f"--run-id: {run_id!r} is not a committed run under {output} (no control_run row)")
    first = rows[0]
    names = sorted({r["ruleset_name"] for r in rows})
    return Run(
        run_id=run_id, cycle_id=first["cycle_id"], ruleset_name=",".join(names),
        ruleset_version=",".join(sorted({r["ruleset_version"] for r in rows})),
        completed_at=max(r["completed_at"] for r in rows).astimezone(UTC),
        partition_scope=first["partition_scope"] or "all",
        cycle_close=as_utc(first["cycle_close"]), watermark=as_utc(first["watermark"]),
        control_points=tuple(r["control_point_id"] for r in rows),
        reproduction_of=first.asDict().get("reproduction_of"),
    ), rows


def ruleset_layout(text: str | None) -> dict[str, dict[str, Any]]:
    """Per control point of the ruleset text a run stored: kind, each side's table and filter, and each outcome's
    exposure class (None where the outcome raises no case). Read with `yaml.safe_load` only: the run validated this
    text when it ran, and the report must read the rulesets of every engine version that wrote a run.

    Example::

        ruleset_layout(row["ruleset_text"])["rating-to-billing"]["right"]  # {'table': 'bill_charge', 'filter': {...}}
    """
    try:
        data = yaml.safe_load(text or "")
    except yaml.YAMLError:
        return {}
    cps = data.get("control_points") if isinstance(data, dict) else None
    raw_inputs = data.get("inputs") if isinstance(data, dict) else None
    inputs: dict[str, Any] = raw_inputs if isinstance(raw_inputs, dict) else {}
    layout: dict[str, dict[str, Any]] = {}
    # Record control points first: an aggregate's side (contract 2: `{of, side}`) is a record control point's side.
    ordered = sorted((cps or {}).items(), key=lambda kv: isinstance(kv[1], dict) and kv[1].get("kind") == "aggregate")
    for cp_id, spec in ordered:
        if not isinstance(spec, dict):
            continue
        sides = {side: _side_layout(spec.get(side), inputs, layout) for side in ("left", "right")}
        classes = {str(o): (p.get("exposure_class") if isinstance(p, dict) and p.get("case") else None)
                   for o, p in (spec.get("outcomes") or {}).items()}
        layout[str(cp_id)] = {"kind": spec.get("kind"), **sides, "classes": classes}
    return layout


def _side_layout(side: Any, inputs: Mapping[str, Any], layout: Mapping[str, Mapping[str, Any]]
                 ) -> dict[str, Any] | None:
    """A side's table and filter: contract 1 names them (`table`, `filter`); contract 2 names an input (its `table`,
    default its name, and its SQL `filter`), or for an aggregate the record control point side it sums."""
    if not isinstance(side, dict):
        return None
    if "input" in side:
        found = inputs.get(side["input"])
        inp: Mapping[str, Any] = found if isinstance(found, dict) else {}
        sql = inp.get("filter")
        return {"table": str(inp.get("table") or side["input"]), "filter": {"sql": str(sql)} if sql else {}}
    if "of" in side:
        of = layout.get(str(side["of"])) or {}
        return of.get(str(side.get("side", "")).lower())
    return {"table": str(side.get("table")), "filter": dict(side.get("filter") or {})}


def ruleset_owners(rows: Sequence[Any]) -> list[str]:
    """The owner teams the run's ruleset text names (`owners:`), sorted."""
    teams: set[str] = set()
    for text in {r["ruleset_text"] or "" for r in rows}:
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError:
            continue
        owners = data.get("owners") if isinstance(data, dict) else None
        teams |= {str(t) for t in owners or {}} if isinstance(owners, dict) else set()
    return sorted(teams)


def run_layout(rows: Sequence[Any]) -> dict[str, dict[str, Any]]:
    """`ruleset_layout` of every ruleset text among the run's control_run rows (one, today)."""
    layout: dict[str, dict[str, Any]] = {}
    for text in sorted({r["ruleset_text"] or "" for r in rows}):
        layout.update(ruleset_layout(text))
    return layout


def _sign_split(amount: Column) -> list[Column]:
    return [F.sum(F.when(amount > 0, amount)).cast(MONEY_SUM).alias("positive"),
            F.sum(F.when(amount < 0, amount)).cast(MONEY_SUM).alias("negative")]


def _sign_split_counted(amount: Column) -> list[Column]:
    return [*_sign_split(amount), F.count_if(amount > 0).alias("positive_records"),
            F.count_if(amount < 0).alias("negative_records")]


def _parts(r: Any, exempt: Decimal | None) -> dict[str, Any]:
    return {"positive": r["positive"], "negative": r["negative"], "exempt": exempt,
            "positive_records": int(r["positive_records"]), "negative_records": int(r["negative_records"])}


def exposure_by_sign(spark: SparkSession, output: str, run: Run) -> dict[tuple[str, str, str], dict[str, Any]]:
    """(control point, side, outcome) -> the outcome's exposure in three parts that add up to control_run's: positive
    and negative summed apart, and that of exempt records (an exemption keeps the outcome but raises no case, so it
    is neither leak nor excess).

    Record-level control points from record_outcome, aggregate ones from aggregate_variance (side AGGREGATE, the
    rows beyond tolerance being AGGREGATE_VARIANCE as in control_run). One small group-by each; bounded by the
    outcome vocabulary.
    """
    split: dict[tuple[str, str, str], dict[str, Any]] = {}
    ro_ref = table_ref(output, "record_outcome")
    if exists(spark, ro_ref):
        ro = read_output(spark, ro_ref).where((F.col("cycle_id") == run.cycle_id) & (F.col("run_id") == run.run_id))
        exempt = F.col("exemption").isNotNull()
        e = F.col("exposure_amount")
        for r in ro.groupBy("control_point_id", "side", "outcome").agg(
                *_sign_split_counted(F.when(~exempt, e)),
                F.sum(F.when(exempt, e)).cast(MONEY_SUM).alias("exempt")).collect():
            split[(r["control_point_id"], r["side"], r["outcome"])] = _parts(r, r["exempt"])
    av_ref = table_ref(output, "aggregate_variance")
    if exists(spark, av_ref):
        av = read_output(spark, av_ref).where((F.col("cycle_id") == run.cycle_id) & (F.col("run_id") == run.run_id))
        outcome = F.when(F.col("beyond_tolerance"), F.lit("AGGREGATE_VARIANCE")).otherwise(F.lit("MATCHED"))
        diff = F.when(F.col("beyond_tolerance"), F.col("difference"))
        for r in av.groupBy("control_point_id", outcome.alias("outcome")).agg(*_sign_split_counted(diff)).collect():
            split[(r["control_point_id"], "AGGREGATE", r["outcome"])] = _parts(r, None)
    return split


def control_points(rows: Sequence[Any], layout: Mapping[str, Mapping[str, Any]],
                   split: Mapping[tuple[str, str, str], Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Per control point: control_run's counts, amounts and metrics as they are, plus each outcome's exposure class
    (from the ruleset) and its exposure by sign and exempt (from `split`). Generic: any control point of any
    ruleset."""
    out = []
    for r in rows:
        cp = r["control_point_id"]
        shape = layout.get(cp, {})
        metrics = []
        for m in r["metrics"] or []:
            by_sign = split.get((cp, m["side"], m["outcome"]), {})
            metrics.append({
                "side": m["side"], "outcome": m["outcome"], "count": int(m["count"]), "amount": money(m["amount"]),
                "exposure": money(m["exposure"]), "unpriced": int(m["unpriced"] or 0),
                "exposure_class": (shape.get("classes") or {}).get(m["outcome"]),
                "exposure_positive": money(by_sign.get("positive")),
                "exposure_negative": money(by_sign.get("negative")),
                "exposure_exempt": money(by_sign.get("exempt")),
                "positive_records": by_sign.get("positive_records", 0),
                "negative_records": by_sign.get("negative_records", 0),
            })
        out.append({
            "control_point_id": cp, "kind": shape.get("kind"),
            "left_table": (shape.get("left") or {}).get("table"),
            "right_table": (shape.get("right") or {}).get("table"),
            "left_count": r["left_count"], "right_count": r["right_count"],
            "left_amount": money(r["left_amount"]), "right_amount": money(r["right_amount"]),
            "cases_opened": r["cases_opened"], "conservation_ok": r["conservation_ok"],
            "counters": dict(sorted((r["counters"] or {}).items())), "metrics": metrics,
        })
    return out


def identity(run: Run, rows: Sequence[Any]) -> dict[str, Any]:
    """Who and what the run was: rulesets, versions and hashes, inputs at their Delta versions, watermark, close."""
    first = rows[0]
    rulesets = sorted({(r["ruleset_name"], r["ruleset_version"], r["ruleset_hash"]) for r in rows})
    return {
        "run_id": run.run_id, "cycle_id": run.cycle_id,
        "rulesets": [{"name": n, "version": v, "hash": h} for n, v, h in rulesets],
        "partition_scope": run.partition_scope,
        "input_versions": dict(sorted((first["input_versions"] or {}).items())),
        "input_tables": dict(sorted((first["input_tables"] or {}).items())),
        "watermark": instant(first["watermark"]), "cycle_close": instant(first["cycle_close"]),
        "started_at": instant(min(r["started_at"] for r in rows)),
        "completed_at": utc_text(run.completed_at),
        "status": ",".join(sorted({r["status"] for r in rows})),
        "conf_fingerprint": first["conf_fingerprint"],
        "post_close": bool(first["post_close"]), "close_run_id": first["close_run_id"],
        "reproduction_of": run.reproduction_of,
        "control_points": list(run.control_points),
    }


def run_cases(spark: SparkSession, output: str, run: Run) -> DataFrame:
    """The ra_case rows the run wrote (its findings and its AUTO_CLEARED closures)."""
    ref = table_ref(output, "ra_case")
    if not exists(spark, ref):
        raise ReportError(f"output table ra_case missing at {ref}: the run {run.run_id} has no cases table")
    return read_output(spark, ref).where((F.col("cycle_id") == run.cycle_id) & (F.col("run_id") == run.run_id))


def _found(cases: DataFrame) -> DataFrame:
    return cases.where(F.col("status") != AUTO_CLEARED)


def _exposure_aggs() -> list[Column]:
    e = F.col("exposure_amount")
    return [F.count(F.lit(1)).alias("cases"), *_sign_split(e), F.sum(e).cast(MONEY_SUM).alias("exposure"),
            F.sum(F.abs(e)).cast(MONEY_SUM).alias("gross")]


def _exposure_row(r: Any) -> dict[str, Any]:
    return {"cases": int(r["cases"]), "positive": money(r["positive"]), "negative": money(r["negative"]),
            "exposure": money(r["exposure"]), "gross": money(r["gross"])}


def exposure_by_class(cases: DataFrame) -> list[dict[str, Any]]:
    """The run's findings per exposure class and currency: each class its own row (underbilling and overbilling
    apart, never netted against each other), in the contract's class order."""
    rows = _found(cases).groupBy("exposure_class", "currency").agg(*_exposure_aggs()).collect()
    order = {c: i for i, c in enumerate(EXPOSURE_CLASSES)}
    rows = sorted(rows, key=lambda r: (order.get(r["exposure_class"], len(order)), r["exposure_class"] or "",
                                       r["currency"] or ""))
    return [{"exposure_class": r["exposure_class"], "currency": r["currency"], **_exposure_row(r)} for r in rows]


def top_accounts(cases: DataFrame, n: int = TOP) -> list[dict[str, Any]]:
    """Accounts with the largest gross (|exposure|) findings of the run; account ids pass the number mask."""
    account = mask_phones_in_text(F.col("business_key.account_id")).alias("account_id")
    rows = (_found(cases).groupBy(account, "currency").agg(*_exposure_aggs())
            .orderBy(F.desc("gross"), F.asc_nulls_last("account_id"), "currency").limit(n).collect())
    return [{"account_id": r["account_id"], "currency": r["currency"], **_exposure_row(r)} for r in rows]


def top_case_types(cases: DataFrame, n: int = TOP) -> list[dict[str, Any]]:
    """Case types (per control point) with the largest gross findings of the run."""
    rows = (_found(cases).groupBy("control_point_id", "case_type", "currency").agg(*_exposure_aggs())
            .orderBy(F.desc("gross"), "control_point_id", "case_type").limit(n).collect())
    return [{"control_point_id": r["control_point_id"], "case_type": r["case_type"], "currency": r["currency"],
             **_exposure_row(r)} for r in rows]


def cycle_history(spark: SparkSession, output: str, run: Run) -> DataFrame:
    """The case history of the run's cycle: rows of committed runs and manual transitions (jobs/cases.py)."""
    return case_history(spark, table_ref(output, "ra_case"), table_ref(output, "control_run")).where(
        F.col("cycle_id") == run.cycle_id)


def current_cases_of_run(history: DataFrame, cases: DataFrame) -> DataFrame:
    """The current state (latest history row) of every case the run found or cleared."""
    return current_state(history).join(cases.select("case_id").distinct(), "case_id", "left_semi")


def sla_state(as_of: datetime) -> Column:
    """open / due / overdue for an active case by its due date against `as_of`; resolved (awaiting a run's
    confirmation) and closed (terminal) otherwise."""
    ref = F.lit(as_of).cast("timestamp")
    soon = F.lit(as_of + DUE_SOON).cast("timestamp")
    return (F.when(F.col("status").isin(*TERMINAL), F.lit("closed"))
            .when(F.col("status") == RESOLVED, F.lit("resolved"))
            .when(F.col("due_at") < ref, F.lit("overdue"))
            .when(F.col("due_at") < soon, F.lit("due"))
            .otherwise(F.lit("open")))


def cases_by_owner(current: DataFrame, as_of: datetime) -> list[dict[str, Any]]:
    """Per owner team: how many of the run's cases are open, due, overdue, resolved or closed now, and the active
    cases' exposure by sign."""
    e = F.col("exposure_amount")
    active = F.col("status").isin(*ACTIVE)
    rows = (current.withColumn("sla", sla_state(as_of))
            .groupBy("owner_team", "sla")
            .agg(F.count(F.lit(1)).alias("n"),
                 F.sum(F.when(active & (e > 0), e)).cast(MONEY_SUM).alias("positive"),
                 F.sum(F.when(active & (e < 0), e)).cast(MONEY_SUM).alias("negative")).collect())
    teams: dict[str, dict[str, Any]] = {}
    for r in rows:
        team = teams.setdefault(r["owner_team"] or "(none)", {
            "owner_team": r["owner_team"] or "(none)", **{s: 0 for s in SLA_STATES},
            "active_positive": Decimal(0), "active_negative": Decimal(0)})
        team[r["sla"]] += int(r["n"])
        team["active_positive"] += r["positive"] or Decimal(0)
        team["active_negative"] += r["negative"] or Decimal(0)
    return [{**t, "active_positive": money(t["active_positive"]), "active_negative": money(t["active_negative"])}
            for _, t in sorted(teams.items())]


def trend(spark: SparkSession, output: str, run: Run, n: int = TREND_RUNS) -> list[dict[str, Any]]:
    """Each committed run of the cycle under the same ruleset, up to and including this one (the last `n`), oldest
    first: its open cases (all currencies) and, per currency, the exposure of the cases it found (underbilling,
    overbilling and other classes apart). Reproductions are evidence about a run, not a run of the cycle."""
    runs = load_run(spark, output).where(
        (F.col("cycle_id") == run.cycle_id) & F.col("ruleset_name").isin(*run.ruleset_name.split(","))
        & ~F.col("run_id").contains(REPRODUCTION_MARK))
    if "reproduction_of" in runs.columns:
        runs = runs.where(F.col("reproduction_of").isNull())
    earlier = (runs.groupBy("run_id").agg(F.max("completed_at").alias("completed_at"),
                                          F.first("partition_scope").alias("partition_scope"),
                                          F.max("watermark").alias("watermark"))
               .where(F.col("completed_at") <= F.lit(run.completed_at).cast("timestamp"))
               .orderBy(F.desc("completed_at"), F.desc("run_id")).limit(n).collect())
    cases = read_output(spark, table_ref(output, "ra_case")).where(
        (F.col("cycle_id") == run.cycle_id) & F.col("run_id").isin(*[r["run_id"] for r in earlier]))
    e, cls, found = F.col("exposure_amount"), F.col("exposure_class"), F.col("status") != AUTO_CLEARED
    per_currency = cases.groupBy("run_id", "currency").agg(
        F.sum(F.when(found & (cls == UNDER) & (e > 0), e)).cast(MONEY_SUM).alias("underbilling"),
        F.sum(F.when(found & (cls == OVER) & (e < 0), e)).cast(MONEY_SUM).alias("overbilling"),
        F.sum(F.when(found & ~cls.isin(UNDER, OVER), F.abs(e))).cast(MONEY_SUM).alias("other"),
        F.count_if(F.col("status").isin(*ACTIVE)).alias("open_cases"),
        F.count_if(found).alias("found"), F.count_if(~found).alias("cleared")).collect()
    out = []
    for r in sorted(earlier, key=lambda r: (as_utc(r["completed_at"]), r["run_id"])):
        mine = sorted((p for p in per_currency if p["run_id"] == r["run_id"]), key=lambda p: p["currency"] or "")
        out.append({
            "run_id": r["run_id"], "completed_at": instant(r["completed_at"]), "partition_scope": r["partition_scope"],
            "watermark": instant(r["watermark"]), "this_run": r["run_id"] == run.run_id,
            "open_cases": sum(int(p["open_cases"]) for p in mine), "found": sum(int(p["found"]) for p in mine),
            "cleared": sum(int(p["cleared"]) for p in mine),
            "exposure": [{"currency": p["currency"], "underbilling": money(p["underbilling"]),
                          "overbilling": money(p["overbilling"]), "other": money(p["other"])}
                         for p in mine if p["currency"] is not None or p["underbilling"] or p["overbilling"]
                         or p["other"]],
        })
    return out


def account_variance(spark: SparkSession, output: str, run: Run, n: int = TOP) -> list[dict[str, Any]]:
    """Per aggregate control point of the run: accounts GOOD (every row within tolerance) or VARIANCE (a row beyond
    it), and the rows with the largest |difference|. Empty when the run wrote no aggregate_variance."""
    ref = table_ref(output, "aggregate_variance")
    if not exists(spark, ref):
        return []
    av = read_output(spark, ref).where((F.col("cycle_id") == run.cycle_id) & (F.col("run_id") == run.run_id))
    per_account = av.groupBy("control_point_id", "account_id").agg(F.max("beyond_tolerance").alias("beyond"))
    counts = per_account.groupBy("control_point_id").agg(
        F.count_if(~F.col("beyond")).alias("good"), F.count_if(F.col("beyond")).alias("variance")).collect()
    out = []
    for c in sorted(counts, key=lambda c: c["control_point_id"]):
        top = (av.where((F.col("control_point_id") == c["control_point_id"]) & F.col("beyond_tolerance"))
               .select(mask_phones_in_text(F.col("account_id")).alias("account_id"), "service_type", "currency",
                       "left_count", "left_amount", "right_count", "right_amount", "difference", "tolerance")
               .orderBy(F.desc(F.abs("difference")), "account_id", "service_type", "currency").limit(n).collect())
        out.append({
            "control_point_id": c["control_point_id"], "good": int(c["good"]), "variance": int(c["variance"]),
            "top": [{"account_id": t["account_id"], "service_type": t["service_type"], "currency": t["currency"],
                     "left_count": t["left_count"], "left_amount": money(t["left_amount"]),
                     "right_count": t["right_count"], "right_amount": money(t["right_amount"]),
                     "difference": money(t["difference"]), "tolerance": money(t["tolerance"])} for t in top],
        })
    return out


def _dec(value: str | None) -> Decimal:
    return Decimal(value) if value is not None else Decimal(0)


def _edge(cp: Mapping[str, Any]) -> dict[str, Any]:
    """What leaks across one control point: revenue not carried downstream (positive exposure of outcomes whose class
    is UNDERBILLING or BY_SIGN), and what was carried in excess (negative exposure of OVERBILLING or BY_SIGN
    outcomes), apart, each with its records; other classes (TIMING, ...) listed by class. Exempt records are
    neither (see `exposure_by_sign`)."""
    leak, excess = Decimal(0), Decimal(0)
    leak_records = excess_records = 0
    other: dict[str, Decimal] = {}
    outcomes = []
    for m in cp["metrics"]:
        cls = m["exposure_class"]
        if m["outcome"] == "MATCHED" or cls is None:
            continue
        pos, neg = _dec(m["exposure_positive"]), _dec(m["exposure_negative"])
        if cls in LEAK_CLASSES:
            leak += pos
            leak_records += m["positive_records"]
        if cls in EXCESS_CLASSES:
            excess += neg
            excess_records += m["negative_records"]
        if cls not in LEAK_CLASSES + EXCESS_CLASSES:
            other[cls] = other.get(cls, Decimal(0)) + pos + neg
        outcomes.append({"side": m["side"], "outcome": m["outcome"], "exposure_class": cls, "count": m["count"],
                         "exposure_positive": m["exposure_positive"], "exposure_negative": m["exposure_negative"]})
    return {"control_point_id": cp["control_point_id"], "leak": money(leak), "leak_records": leak_records,
            "excess": money(excess), "excess_records": excess_records, "other": {k: money(v) for k, v in sorted(other.items())}, "outcomes": outcomes}


def funnel(cps: Sequence[Mapping[str, Any]]) -> dict[str, Any] | None:
    """usage -> rated -> billed with the leak at each edge, from the usage-to-rating and rating-to-billing control
    points when the run has them (either one is enough for its edge); None when it has neither."""
    by_id = {cp["control_point_id"]: cp for cp in cps}
    u2r, r2b = by_id.get("usage-to-rating"), by_id.get("rating-to-billing")
    if u2r is None and r2b is None:
        return None
    stages = []
    if u2r is not None:
        stages.append({"stage": "usage", "table": u2r["left_table"], "count": u2r["left_count"],
                       "amount": u2r["left_amount"]})
    rated = r2b["left_count"] if r2b is not None else u2r["right_count"] if u2r is not None else None
    rated_amount = r2b["left_amount"] if r2b is not None else u2r["right_amount"] if u2r is not None else None
    stages.append({"stage": "rated", "table": "rated_event", "count": rated, "amount": rated_amount})
    if r2b is not None:
        stages.append({"stage": "billed", "table": r2b["right_table"], "count": r2b["right_count"],
                       "amount": r2b["right_amount"]})
    edges = [_edge(cp) for cp in (u2r, r2b) if cp is not None]
    return {"stages": stages, "edges": edges}


def _figure_row(f: Mapping[str, Any], summed: str | None) -> dict[str, Any]:
    values: list[str | None] = [g["value"] for g in f["group"]]
    return {"values": values, "count": int(f["count"]), "sum": money(f["sum"]) if summed else None}


def declared_figures(rows: Sequence[Any]) -> list[dict[str, Any]]:
    """Per control point of the run, the figures its ruleset declares (control_run `figures`, e.g. the line audit's
    lines and leakage per bucket and confidence band), copied from control_run as they are: one entry per figure with
    its group columns, its rows (group values, count, sum: None where the figure counts only) and its totals
    (jobs/figure_totals.py: one per currency where the figure is grouped by currency)."""
    out: list[dict[str, Any]] = []
    for r in rows:
        data = r.asDict(recursive=True)
        by_name: dict[str, list[dict[str, Any]]] = {}
        for f in data.get("figures") or []:
            by_name.setdefault(f["figure"], []).append(f)
        for name, figs in by_name.items():
            summed = figs[0]["summed"]
            out.append({
                "control_point_id": data["control_point_id"], "figure": name, "side": figs[0]["side"],
                "columns": [g["column"] for g in figs[0]["group"]], "summed": summed,
                "rows": sorted((_figure_row(f, summed) for f in figs), key=lambda g: [v or "" for v in g["values"]]),
                "count": sum(int(f["count"]) for f in figs),
                "totals": [{"currency": t.currency, "count": t.count,
                            "sum": money(t.sum) if t.sum is not None else None} for t in figure_totals(figs)]})
    return out


def run_alerts(spark: SparkSession, output: str, run: Run) -> list[dict[str, Any]]:
    """The run's run_alert rows (bounded: one per control point and scope above its threshold), messages masked."""
    ref = table_ref(output, "run_alert")
    if not exists(spark, ref):
        return []
    rows = (read_output(spark, ref).where(F.col("run_id") == run.run_id)
            .select("control_point_id", mask_phones_in_text(F.col("scope")).alias("scope"), "metric", "value",
                    "threshold", mask_phones_in_text(F.col("message")).alias("message"))
            .orderBy("control_point_id", "scope", "metric").collect())
    return [{"control_point_id": a["control_point_id"], "scope": a["scope"], "metric": a["metric"],
             "value": str(a["value"]), "threshold": str(a["threshold"]), "message": a["message"]} for a in rows]
