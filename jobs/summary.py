"""The run summary a person reads at the end of `telco-ra run` / `telco-ra demo`.

Built from the committed outputs of one run (control_run metrics, ra_case), so it shows what was written, not what
the job meant to write. Phone numbers never appear: accounts and case ids identify the problems.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs.cases import case_history
from jobs.figure_totals import figure_totals
from jobs.outputs import exists, read_output
from jobs.run import RunResult
from jobs.utc import utc_text
from transforms.accounts import GOOD, VARIANCE, account_status
from transforms.lifecycle import current_state, found_by_run, is_overdue


def _money(value: Decimal | None) -> str:
    return f"{(value or Decimal(0)):,.2f}"


def _changes_since_close(spark: SparkSession, control_run: str, run_id: str, close_run_id: str) -> list[str]:
    def metrics(rid: str) -> dict[tuple[str, str, str], Any]:
        rows = (read_output(spark, control_run).where(F.col("run_id") == rid)
                .select("control_point_id", F.explode("metrics").alias("m")).collect())
        return {(r["control_point_id"], r["m"]["side"], r["m"]["outcome"]): r["m"] for r in rows}

    now, then = metrics(run_id), metrics(close_run_id)
    lines = []
    for key in sorted(set(now) | set(then)):
        a, b = now.get(key), then.get(key)
        count = (a["count"] if a else 0) - (b["count"] if b else 0)
        exposure = ((a["exposure"] if a else None) or Decimal(0)) - ((b["exposure"] if b else None) or Decimal(0))
        if count or exposure:
            lines.append(f"  {key[0]:<18} {key[1]:<9} {key[2]:<28} {count:>+10,} records {_money(exposure):>16}")
    return lines or ["  no change since close"]


def _lifecycle(spark: SparkSession, result: RunResult, runs: DataFrame, written: DataFrame) -> list[str]:
    """Case statuses this run recorded, and the cycle's overdue cases: current, not terminal, due before the
    run's watermark."""
    statuses = sorted((r["status"], int(r["n"])) for r in written.groupBy("status").agg(
        F.count(F.lit(1)).alias("n")).collect())                      # bounded: the status vocabulary
    refs = result.output_refs
    current = current_state(case_history(spark, refs["ra_case"], refs["control_run"]).where(
        F.col("cycle_id") == result.cycle_id))
    watermark = runs.agg(F.max("watermark").alias("_watermark"))
    overdue = current.crossJoin(watermark).where(is_overdue(F.col("_watermark"))).count()
    return ["", "case lifecycle: " + (", ".join(f"{s} {n:,}" for s, n in statuses) or "no cases"),
            f"overdue cases (cycle {result.cycle_id}, current, not closed, due before the watermark): {overdue:,}"]


def _counter_notes(counters: dict[str, int]) -> list[str]:
    """What a person must know beside the outcome counts: records that could not be priced (shown as 0), rows of
    the inputs outside this control's scope, fuzzy selection that ended unresolved."""
    notes = []
    if counters.get("records_unpriced"):
        notes.append(f"  NOT PRICED: {counters['records_unpriced']:,} record(s) have no tariff of their service type "
                     "valid at start_time: their exposure shows as 0.00 (each row's reason says so)")
    out = {k.split(".", 1)[1]: v for k, v in counters.items() if k.startswith("rows_out_of_scope.") and v}
    if out:
        notes.append("  rows read but out of this control's scope: "
                     + ", ".join(f"{table} {n:,}" for table, n in sorted(out.items())))
    if counters.get("fuzzy_unresolved"):
        notes.append(f"  fuzzy selection left {counters['fuzzy_unresolved']:,} candidate pair(s) unresolved "
                     f"after {counters.get('fuzzy_rounds', 0)} round(s): AMBIGUOUS_MATCH")
    return notes


def _figures(figures: list[Any] | None) -> list[str]:
    """A control point's declared figures (control_run `figures`): per figure a table of its groups, the rows and
    the sum of each (where the figure sums a column), and the totals (jobs/figure_totals.py: the rows shown, one
    total per currency where the figure is grouped by currency)."""
    lines: list[str] = []
    by_name: dict[str, list[Any]] = {}
    for f in figures or []:
        by_name.setdefault(f["figure"], []).append(f)
    for name, rows in by_name.items():
        columns = [g["column"] for g in rows[0]["group"]]
        summed = rows[0]["summed"]
        lines.append(f"  {name} ({rows[0]['side']} rows by {', '.join(columns)}: their count"
                     + (f" and {summed})" if summed else ")"))
        lines.append("    " + " ".join(f"{c:<22}" for c in columns) + f" {'count':>10}"
                     + (f" {summed:>16}" if summed else ""))
        for r in rows:
            lines.append("    " + " ".join(f"{g['value'] or '-':<22}" for g in r["group"])
                         + f" {r['count']:>10,}" + (f" {_money(r['sum']):>16}" if summed else ""))
        for t in figure_totals(rows):
            cells = ["total" if i == 0 else t.currency if c == "currency" else "" for i, c in enumerate(columns)]
            lines.append("    " + " ".join(f"{v or '':<22}" for v in cells) + f" {t.count:>10,}"
                         + (f" {_money(t.sum):>16}" if summed else ""))
    return lines


def _accounts(spark: SparkSession, result: RunResult, cases: DataFrame, top: int) -> list[str]:
    """Per account GOOD or VARIANCE with its counts (transforms/accounts.py), the accounts with variances first."""
    refs = result.output_refs
    outcomes = read_output(spark, refs["record_outcome"]).where(F.col("run_id") == result.run_id)
    variances = read_output(spark, refs["aggregate_variance"]).where(F.col("run_id") == result.run_id)
    status = account_status(outcomes, variances, cases)
    totals = {r["status"]: (int(r["n"]), int(r["ignored"] or 0)) for r in status.groupBy("status").agg(
        F.count(F.lit(1)).alias("n"), F.sum("ignored").alias("ignored")).collect()}        # two rows at most
    good, variance = totals.get(GOOD, (0, 0)), totals.get(VARIANCE, (0, 0))
    lines = ["", f"account status: {variance[0]:,} VARIANCE, {good[0]:,} GOOD "
             f"({good[1] + variance[1]:,} ignored gaps; an account whose only gaps are ignored is GOOD)"]
    rows = (status.orderBy(F.when(F.col("status") == VARIANCE, 0).otherwise(1), F.desc("variances"),
                           F.desc("ignored"), "account_id").limit(top).collect())
    for r in rows:
        lines.append(f"  {r['account_id']:<20} {r['status']:<9} {r['variances']:>6,} variances {r['ignored']:>6,} "
                     f"ignored {r['records']:>8,} records")
    return lines


def render(spark: SparkSession, result: RunResult, top: int = 10) -> str:
    refs = result.output_refs
    runs = read_output(spark, refs["control_run"]).where(F.col("run_id") == result.run_id)
    # `figures` is absent from control_run tables written before control points declared figures
    figures = F.col("figures") if "figures" in runs.columns else F.lit(None).alias("figures")
    control_rows = sorted(runs.select("control_point_id", "metrics", "left_count", "right_count", "cases_opened",
                                      "watermark", "input_versions", "ruleset_version", "counters", figures)
                          .collect(), key=lambda r: r["control_point_id"])
    alerts: dict[str, list[Any]] = {}
    if "run_alert" in refs and exists(spark, refs["run_alert"]):
        for r in (read_output(spark, refs["run_alert"]).where(F.col("run_id") == result.run_id)
                  .orderBy("control_point_id", "metric", "scope").collect()):     # a few: one per scope beyond
            alerts.setdefault(r["control_point_id"], []).append(r)
    lines = [f"telco-ra run {result.run_id}  cycle {result.cycle_id}"
             + ("  (already committed: nothing new written)" if result.already_committed else "")]
    closed_by = runs.where(F.col("post_close")).select("close_run_id").first()
    if closed_by is not None:
        lines.append(f"POST-CLOSE ADJUSTMENT: cycle {result.cycle_id} was closed by run {closed_by['close_run_id']}; "
                     "its closed figures are unchanged, the changes since close are below")
        lines += _changes_since_close(spark, refs["control_run"], result.run_id, closed_by["close_run_id"])
    if control_rows:
        first = control_rows[0]
        versions = ", ".join(f"{k}@v{v}" for k, v in sorted(first["input_versions"].items()))
        lines.append(f"ruleset {first['ruleset_version']}; inputs {versions}; watermark {utc_text(first['watermark'])}")
    for row in control_rows:
        lines.append("")
        lines.append(f"{row['control_point_id']}: left {row['left_count']}, right {row['right_count']}, "
                     f"cases {row['cases_opened']}")
        lines.append(f"  {'side':<9} {'outcome':<28} {'count':>10} {'amount':>16} {'exposure':>16}")
        for m in row["metrics"]:
            lines.append(f"  {m['side']:<9} {m['outcome']:<28} {m['count']:>10,} {_money(m['amount']):>16} "
                         f"{_money(m['exposure']):>16}")
        lines += _counter_notes(row["counters"] or {})
        lines += _figures(row["figures"])
        lines += [f"  ALERT {a['metric']}: {a['message']}" for a in alerts.get(row["control_point_id"], [])]
    written = read_output(spark, refs["ra_case"]).where(F.col("run_id") == result.run_id)
    lines += _lifecycle(spark, result, runs, written)
    cases = written.where(found_by_run())          # its findings; AUTO_CLEARED rows are closures, not exposure
    by_class = cases.groupBy("exposure_class").agg(F.count(F.lit(1)).alias("n"),
                                                   F.sum("exposure_amount").alias("exposure")).collect()
    lines += ["", "exposure by class (signed: + underbilling, - overbilling; never netted across classes)"]
    for r in sorted(by_class, key=lambda r: r["exposure_class"] or ""):
        lines.append(f"  {r['exposure_class'] or '-':<14} {r['n']:>8,} cases {_money(r['exposure']):>16}")
    lines += _accounts(spark, result, cases, top)
    top_rows: list[Any] = (cases.groupBy(F.col("business_key.account_id").alias("account_id"))
                           .agg(F.sum(F.abs("exposure_amount")).alias("gross"), F.count(F.lit(1)).alias("n"))
                           .orderBy(F.desc("gross"), "account_id").limit(top).collect())
    lines += ["", f"top {top} accounts by gross exposure"]
    for r in top_rows:
        lines.append(f"  {r['account_id'] or '(none)':<20} {r['n']:>6,} cases {_money(r['gross']):>16}")
    lines += ["", "outputs:"] + [f"  {name:<19} {ref}" for name, ref in refs.items()]
    return "\n".join(lines) + "\n"
