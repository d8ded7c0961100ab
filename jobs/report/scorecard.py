"""The RA scorecard of a cycle: revenue covered, leakage detected, recoverable and recovered, from the outputs alone.

Named in the TM Forum revenue-assurance KPI terms (GB941 family), per cycle and currency, as of a committed run R:

- **revenue covered by controls** (`revenue_covered`): the billed amount the controls reconciled, i.e. the amounts of
  the record outcomes of every control side that reads a billed table (`bill_charge`), each (table, filter) once (the
  usage ruleset's rating-to-billing RIGHT side; usage-aggregate reads the same charges and is not counted again).
  Summed over currencies it equals that side's `right_amount` in control_run (the conservation law).
- **leakage detected**: the cases of the cycle found by the committed runs of R's ruleset up to R (in R's scope):
  positive UNDERBILLING exposure (`leakage_underbilling`) and |OVERBILLING| exposure (`leakage_overbilling`) apart,
  never netted; other classes (TIMING, COST_LEAKAGE, INVENTORY) as `exposure_other` (|exposure|).
- **recoverable**: underbilling not accepted as lost (current status not WAIVED / WRITTEN_OFF: `accepted_loss`).
- **recovered**: underbilling of cases a run confirmed gone (current status AUTO_CLEARED: `recovered_confirmed`) plus
  cases a person RESOLVED with evidence that no run has refuted yet (`recovered_claimed`).
- **% revenue recovered**, **% recoverable**, **% leakage detected**: each amount as % of `revenue_covered`;
  `pct_leakage_recovered`: recovered as % of underbilling detected.
- **days per recovery case**: mean days from a recovered case's detection to its recovery, both on telco-ra's own
  clock (`recorded_at`): from its first row in the history to the RESOLVED row when a person resolved it (whether a
  run has confirmed it yet or not), else to the AUTO_CLEARED row of the run that no longer found it. (`opened_at` is
  the data watermark, another clock: it says which data a case was found in, not when.)

The case population is the current state (latest row of the history, manual transitions included) of those cases, so
the scorecard of R improves as its cases are worked. `as_of` is the latest `recorded_at` of those cases' history:
the figures are a function of the output tables alone, and recomputing them over the same tables gives the same row.

`write_scorecard` appends the rows to the Delta output table `ra_scorecard` (partitioned by cycle_id) as a run slice:
the rows of (cycle, R) are replaced in one commit, and Delta skips a write of exactly the same figures again.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql.types import DecimalType, LongType, StringType, StructField, StructType, TimestampType

from jobs.cases import REPRODUCTION_MARK
from jobs.outputs import exists, read_output, table_ref, write_run_slice
from jobs.report.figures import UNDER, Run, load_run, money
from jobs.utc import as_utc, utc_text
from transforms.lifecycle import AUTO_CLEARED, RESOLVED, WAIVED, WRITTEN_OFF
from transforms.schema import MONEY_SUM

TABLE = "ra_scorecard"
# Tables whose amounts are billed revenue: a control side reading one of them is revenue the controls covered.
BILLED_TABLES = ("bill_charge",)
PCT = DecimalType(18, 4)
DAYS = DecimalType(18, 2)
ACCEPTED = (WAIVED, WRITTEN_OFF)
RECOVERED = (AUTO_CLEARED, RESOLVED)
AMOUNTS = ("leakage_underbilling", "leakage_overbilling", "exposure_other")

RA_SCORECARD = StructType([StructField(name, dtype, True) for name, dtype in (
    ("run_id", StringType()), ("control_point_id", StringType()), ("ruleset_version", StringType()),
    ("cycle_id", StringType()), ("ruleset_name", StringType()), ("partition_scope", StringType()),
    ("currency", StringType()), ("as_of", TimestampType()), ("revenue_covered", MONEY_SUM), ("cases", LongType()),
    ("leakage_underbilling", MONEY_SUM), ("leakage_overbilling", MONEY_SUM), ("exposure_other", MONEY_SUM),
    ("recoverable", MONEY_SUM), ("recovered", MONEY_SUM), ("recovered_confirmed", MONEY_SUM),
    ("recovered_claimed", MONEY_SUM), ("accepted_loss", MONEY_SUM), ("recovery_cases", LongType()),
    ("pct_leakage_detected", PCT), ("pct_recoverable", PCT), ("pct_revenue_recovered", PCT),
    ("pct_leakage_recovered", PCT), ("days_per_recovery_case", DAYS),
)])
# The KPI names a person reads, in the page and in docs.
KPI_NAMES = {
    "revenue_covered": "Revenue covered by controls",
    "leakage_underbilling": "Leakage detected: underbilling",
    "leakage_overbilling": "Leakage detected: overbilling (|exposure|)",
    "exposure_other": "Other exposure (timing, cost, inventory)",
    "recoverable": "Recoverable leakage",
    "recovered": "Revenue recovered",
    "recovered_confirmed": "of which confirmed by a run",
    "recovered_claimed": "of which resolved, awaiting a run",
    "accepted_loss": "Accepted loss (waived, written off)",
    "pct_leakage_detected": "% leakage detected (of revenue covered)",
    "pct_recoverable": "% recoverable",
    "pct_revenue_recovered": "% revenue recovered",
    "pct_leakage_recovered": "% of detected leakage recovered",
    "days_per_recovery_case": "Days per recovery case",
}


@dataclass(frozen=True)
class BilledSide:
    control_point_id: str
    side: str                     # LEFT / RIGHT (record outcomes) or AGGREGATE (aggregate_variance's right side)
    table: str


def billed_sides(layout: Mapping[str, Mapping[str, Any]], run_cps: Sequence[str]) -> list[BilledSide]:
    """The run's control sides that read billed revenue, each (table, filter) once, record-level sides first (their
    outcome rows carry each record's amount and currency)."""
    candidates = []
    for cp_id in sorted(run_cps):
        shape = layout.get(cp_id) or {}
        for side in ("left", "right"):
            s = shape.get(side)
            if s and s["table"] in BILLED_TABLES:
                record = shape.get("kind") != "aggregate"
                key = (s["table"], json.dumps(s["filter"], sort_keys=True))
                candidates.append((0 if record else 1, key, BilledSide(
                    cp_id, side.upper() if record else "AGGREGATE", s["table"])))
    chosen: dict[tuple[str, str], BilledSide] = {}
    for _, key, billed in sorted(candidates, key=lambda c: (c[0], c[2].control_point_id)):
        chosen.setdefault(key, billed)
    return sorted(chosen.values(), key=lambda b: (b.control_point_id, b.side))


def revenue_covered(spark: SparkSession, output: str, run: Run,
                    sides: Sequence[BilledSide]) -> dict[str | None, Decimal]:
    """currency -> billed amount of the run's billed sides (one small group-by per side)."""
    totals: dict[str | None, Decimal] = {}
    for s in sides:
        if s.side == "AGGREGATE":
            df = read_output(spark, table_ref(output, "aggregate_variance")).where(
                (F.col("cycle_id") == run.cycle_id) & (F.col("run_id") == run.run_id)
                & (F.col("control_point_id") == s.control_point_id))
            amount = F.col("right_amount")
        else:
            df = read_output(spark, table_ref(output, "record_outcome")).where(
                (F.col("cycle_id") == run.cycle_id) & (F.col("run_id") == run.run_id)
                & (F.col("control_point_id") == s.control_point_id) & (F.col("side") == s.side))
            amount = F.col("amount")
        for r in df.groupBy("currency").agg(F.sum(amount).cast(MONEY_SUM).alias("amount")).collect():
            totals[r["currency"]] = totals.get(r["currency"], Decimal(0)) + (r["amount"] or Decimal(0))
    return totals


def _population(spark: SparkSession, output: str, run: Run, history: DataFrame) -> DataFrame:
    """The case ids found by the committed runs of R's ruleset up to R, in R's scope (control points, bucket)."""
    runs = load_run(spark, output).where(
        (F.col("cycle_id") == run.cycle_id) & F.col("ruleset_name").isin(*run.ruleset_name.split(","))
        & (F.col("completed_at") <= F.lit(run.completed_at).cast("timestamp"))
        & ~F.col("run_id").contains(REPRODUCTION_MARK))
    if "reproduction_of" in runs.columns:
        runs = runs.where(F.col("reproduction_of").isNull())
    found = (history.join(runs.select("run_id").distinct(), "run_id", "left_semi")
             .where((F.col("status") != AUTO_CLEARED) & F.col("control_point_id").isin(*run.control_points)))
    if run.bucket is not None:
        found = found.where(F.col("account_bucket") == run.bucket)
    return found.select("case_id").distinct()


def _current_with_recovery(history: DataFrame, population: DataFrame) -> DataFrame:
    """Each case's latest row (current_state's order), with how long it took from first being recorded to being
    recovered, in microseconds (null when it is not recovered). Both ends are telco-ra's own `recorded_at`: the
    first row of the case, and the RESOLVED row (a person's resolution, confirmed or not) or else the AUTO_CLEARED
    row (the run that no longer found it)."""
    case = Window.partitionBy("cycle_id", "case_id")
    asc = case.orderBy(F.col("recorded_at").asc_nulls_first(), F.col("run_id").asc(), F.col("status").asc())
    desc = case.orderBy(F.col("recorded_at").desc_nulls_last(), F.col("run_id").desc(), F.col("status").desc())
    latest = (history.join(population, "case_id", "left_semi")
              .withColumn("_first_recorded_at", F.min("recorded_at").over(case))
              .withColumn("_prev_status", F.lag("status").over(asc))
              .withColumn("_prev_at", F.lag("recorded_at").over(asc))
              .withColumn("_n", F.row_number().over(desc)).where(F.col("_n") == 1))
    recovered_at = (F.when(F.col("status") == RESOLVED, F.col("recorded_at"))
                    .when((F.col("status") == AUTO_CLEARED) & (F.col("_prev_status") == RESOLVED), F.col("_prev_at"))
                    .when(F.col("status") == AUTO_CLEARED, F.col("recorded_at")))
    return latest.withColumn("_recovery_micros",
                             F.unix_micros(recovered_at) - F.unix_micros(F.col("_first_recorded_at")))


def _figures(current: DataFrame) -> dict[str | None, dict[str, Any]]:
    e, cls, status = F.col("exposure_amount"), F.col("exposure_class"), F.col("status")
    under = (cls == UNDER) & (e > 0)
    recovered = under & status.isin(*RECOVERED)

    def total(condition: Any, value: Any = None) -> Any:
        return F.sum(F.when(condition, e if value is None else value)).cast(MONEY_SUM)

    rows = current.groupBy("currency").agg(
        F.count(F.lit(1)).alias("cases"),
        total(under).alias("leakage_underbilling"),
        total((cls == "OVERBILLING") & (e < 0), F.abs(e)).alias("leakage_overbilling"),
        total(~cls.isin(UNDER, "OVERBILLING"), F.abs(e)).alias("exposure_other"),
        total(under & ~status.isin(*ACCEPTED)).alias("recoverable"),
        total(under & (status == AUTO_CLEARED)).alias("recovered_confirmed"),
        total(under & (status == RESOLVED)).alias("recovered_claimed"),
        total(under & status.isin(*ACCEPTED)).alias("accepted_loss"),
        F.count_if(recovered).alias("recovery_cases"),
        F.sum(F.when(recovered, F.col("_recovery_micros"))).alias("recovery_micros"),
        F.count_if(recovered & F.col("_recovery_micros").isNotNull()).alias("timed_recoveries"),
        F.max("recorded_at").alias("as_of"),   # each case's latest row
    ).collect()                                                   # bounded: one row per currency
    return {r["currency"]: r.asDict() for r in rows}


def _pct(part: Decimal | None, whole: Decimal | None) -> Decimal | None:
    if part is None or not whole:
        return None
    return (part * 100 / whole).quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP)


def scorecard(spark: SparkSession, output: str, run: Run, layout: Mapping[str, Mapping[str, Any]],
              history: DataFrame) -> list[dict[str, Any]]:
    """One scorecard row per currency (RA_SCORECARD's columns) for the run's cycle as of the run; `history` is the
    cycle's case history (figures.cycle_history). A currency with no billed revenue and nothing but zero exposure
    (quarantined rows that carry no amount) has no KPI and gets no row."""
    revenue = revenue_covered(spark, output, run, billed_sides(layout, run.control_points))
    figures = _figures(_current_with_recovery(history, _population(spark, output, run, history)))
    latest = [f["as_of"] for f in figures.values() if f["as_of"] is not None]
    as_of = as_utc(max(latest)) if latest else None
    zero = Decimal(0).quantize(Decimal("0.000001"))
    rows = []
    for currency in sorted(set(revenue) | set(figures), key=lambda c: (c is None, c or "")):
        f = figures.get(currency, {})
        if currency not in revenue and not any(f.get(k) for k in AMOUNTS):
            continue

        def amount(name: str, f: Mapping[str, Any] = f) -> Decimal:
            return f.get(name) or zero

        covered = revenue.get(currency)
        under, confirmed, claimed = amount("leakage_underbilling"), amount("recovered_confirmed"), amount(
            "recovered_claimed")
        recovered = confirmed + claimed
        timed = int(f.get("timed_recoveries") or 0)
        days = (Decimal(int(f["recovery_micros"])) / timed / Decimal(86_400_000_000)).quantize(
            Decimal("0.01"), rounding=ROUND_HALF_UP) if timed else None
        rows.append({
            "run_id": run.run_id, "control_point_id": ",".join(sorted(run.control_points)),
            "ruleset_version": run.ruleset_version, "cycle_id": run.cycle_id, "ruleset_name": run.ruleset_name,
            "partition_scope": run.partition_scope, "currency": currency, "as_of": as_of,
            "revenue_covered": covered, "cases": int(f.get("cases") or 0),
            "leakage_underbilling": under, "leakage_overbilling": amount("leakage_overbilling"),
            "exposure_other": amount("exposure_other"), "recoverable": amount("recoverable"),
            "recovered": recovered, "recovered_confirmed": confirmed, "recovered_claimed": claimed,
            "accepted_loss": amount("accepted_loss"), "recovery_cases": int(f.get("recovery_cases") or 0),
            "pct_leakage_detected": _pct(under, covered), "pct_recoverable": _pct(amount("recoverable"), covered),
            "pct_revenue_recovered": _pct(recovered, covered), "pct_leakage_recovered": _pct(recovered, under),
            "days_per_recovery_case": days,
        })
    return rows


def write_scorecard(spark: SparkSession, output: str, run: Run, rows: Sequence[Mapping[str, Any]]) -> str:
    """Append the rows as run R's slice of `ra_scorecard` (replacing an earlier slice of R); returns the table ref.

    The Delta transaction id names the figures: writing the same figures again is skipped by Delta, new figures (a
    case worked since) replace the slice in one commit.
    """
    ref = table_ref(output, TABLE)
    df = spark.createDataFrame([tuple(r.get(f.name) for f in RA_SCORECARD.fields) for r in rows], RA_SCORECARD)
    digest = hashlib.sha256(json.dumps([[_text(r.get(f.name)) for f in RA_SCORECARD.fields] for r in rows])
                            .encode()).hexdigest()[:16]
    write_run_slice(df, ref, TABLE, run.cycle_id, run.run_id, f"telco-ra:{TABLE}:{run.run_id}:{digest}")
    return ref


def _text(value: Any) -> Any:
    if isinstance(value, Decimal):
        return money(value)
    if isinstance(value, datetime):
        return utc_text(value)
    return value


def as_json(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Scorecard rows for the page's data block: amounts and percentages as exact text, instants as UTC text."""
    return [{k: _text(v) for k, v in r.items()} for r in rows]


def read_scorecard(spark: SparkSession, output: str, cycle_id: str) -> DataFrame:
    """The `ra_scorecard` rows of a cycle (every run's), for a notebook or a dashboard."""
    ref = table_ref(output, TABLE)
    if not exists(spark, ref):
        return spark.createDataFrame([], RA_SCORECARD)
    return read_output(spark, ref).where(F.col("cycle_id") == cycle_id)

