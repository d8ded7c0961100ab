"""One run, explored: outcomes per control point, exposure by class, top accounts, and one account drilled down to
its records, cases and evidence.

The figures are the report's (jobs/report/figures.py): per control point and outcome exactly control_run's, the
exposure by class from the cases the run found, underbilling and overbilling never netted. The drill-down reads the
run's record_outcome and ra_case rows of one account, a bounded number of each, every phone number masked.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

import pandas as pd
from pyspark.sql import Column, SparkSession
from pyspark.sql import functions as F

from jobs.notebook.charts import bar_chart
from jobs.notebook.lakehouse import utc
from jobs.outputs import read_output, table_ref
from jobs.report import figures
from jobs.report.masking import mask_phones_in_text
from jobs.report.masking import mask_phones_in_text_str as masked_text
from jobs.report.page import CLASS_CSS, money
from transforms.lifecycle import AUTO_CLEARED
from transforms.phone import mask_phone

OUTCOME_COLUMNS = ["control_point_id", "side", "outcome", "exposure_class", "count", "amount", "exposure",
                   "exposure_positive", "exposure_negative", "exposure_exempt", "unpriced"]


def outcomes(spark: SparkSession, output: str, run_id: str) -> pd.DataFrame:
    """Per control point, side and outcome: control_run's count, amount and exposure (exact decimals), the
    outcome's exposure class, and its exposure split by sign and exempt (they add up to control_run's)."""
    run, rows = figures.run_rows(spark, output, run_id)
    cps = figures.control_points(rows, figures.run_layout(rows), figures.exposure_by_sign(spark, output, run))
    table = [{"control_point_id": cp["control_point_id"], **m} for cp in cps for m in cp["metrics"]]
    return _decimals(pd.DataFrame(table, columns=OUTCOME_COLUMNS),
                     ["amount", "exposure", "exposure_positive", "exposure_negative", "exposure_exempt"])


def outcome_chart(table: pd.DataFrame, control_point: str) -> str:
    """The report's outcome-count bars of one control point of `outcomes(...)`: a match green, every other outcome
    in its exposure class's colour."""
    rows = table[table["control_point_id"] == control_point].to_dict("records")
    return bar_chart([(f"{r['side']} {r['outcome']}", int(r["count"]),
                       "ok" if r["outcome"] == "MATCHED" else CLASS_CSS.get(r["exposure_class"] or "", "other"))
                      for r in rows], f"{control_point} outcome counts")


def exposure_by_class(spark: SparkSession, output: str, run_id: str) -> pd.DataFrame:
    """Per exposure class and currency: the run's cases (found, not cleared), their exposure, and its positive and
    negative parts apart."""
    run, _ = figures.run_rows(spark, output, run_id)
    rows = figures.exposure_by_class(figures.run_cases(spark, output, run))
    return _decimals(pd.DataFrame(rows, columns=["exposure_class", "currency", "cases", "exposure", "positive",
                                                 "negative", "gross"]),
                     ["exposure", "positive", "negative", "gross"])


def exposure_chart(table: pd.DataFrame) -> str:
    """The report's exposure-by-class bars of `exposure_by_class(...)`: each class and currency its own bar."""
    rows = table.to_dict("records")
    return bar_chart([(f"{r['exposure_class']} ({r['currency'] or '?'})", r["exposure"],
                       CLASS_CSS.get(r["exposure_class"], "other")) for r in rows],
                     "exposure by class, each class its own bar",
                     [f"{money(None if r['exposure'] is None else str(r['exposure']))} · {r['cases']:,} cases"
                      for r in rows])


def top_accounts(spark: SparkSession, output: str, run_id: str, n: int = figures.TOP) -> pd.DataFrame:
    """The accounts with the largest gross (|exposure|) findings of the run, account ids masked."""
    run, _ = figures.run_rows(spark, output, run_id)
    rows = figures.top_accounts(figures.run_cases(spark, output, run), n)
    return _decimals(pd.DataFrame(rows, columns=["account_id", "currency", "cases", "exposure", "positive",
                                                 "negative", "gross"]),
                     ["exposure", "positive", "negative", "gross"])


def largest_account(spark: SparkSession, output: str, run_id: str) -> str:
    """The account (its id as the data has it, to drill into) whose findings in the run have the largest gross
    exposure; ties by account id."""
    run, _ = figures.run_rows(spark, output, run_id)
    account = F.col("business_key.account_id")
    row = (figures.run_cases(spark, output, run).where((F.col("status") != AUTO_CLEARED) & account.isNotNull())
           .groupBy(account.alias("account_id")).agg(F.sum(F.abs("exposure_amount")).alias("gross"))
           .orderBy(F.desc("gross"), "account_id").first())
    if row is None:
        raise LookupError(f"run {run_id} found no case with an account")
    return str(row["account_id"])


@dataclass(frozen=True)
class Drill:
    """One account's part of a run: its record outcomes, its cases and their evidence (at most `limit` rows each,
    largest |exposure| first; `records_total` and `cases_total` say how many there are)."""

    account: str
    records: pd.DataFrame
    cases: pd.DataFrame
    evidence: pd.DataFrame
    records_total: int
    cases_total: int


def drill_account(spark: SparkSession, output: str, run_id: str, account_id: str, limit: int = 50) -> Drill:
    """The run's record outcomes and cases of `account_id`, and each case's evidence records."""
    run, _ = figures.run_rows(spark, output, run_id)
    ro = (read_output(spark, table_ref(output, "record_outcome"))
          .where((F.col("cycle_id") == run.cycle_id) & (F.col("run_id") == run_id)
                 & (F.col("account_id") == account_id)))
    cases = figures.run_cases(spark, output, run).where(F.col("business_key.account_id") == account_id)
    by_exposure = [F.desc(F.abs(F.col("exposure_amount")))]
    records = (ro.orderBy(*by_exposure, "control_point_id", "side", "record_id").limit(limit).select(
        "control_point_id", "side", _text("record_id"), "outcome", "match_stage", "confidence",
        _text("counterpart_id"), "amount", "expected_amount", "exposure_amount", "currency",
        mask_phone(F.col("msisdn_e164")).alias("msisdn"), "service_type", utc("start_time").alias("start_time"),
        _text("reason"), "reason_code"))
    shown = cases.orderBy(*by_exposure, "case_id").limit(limit)
    case_table = shown.select(
        "case_id", "control_point_id", "case_type", "severity", "status", "owner_team", "exposure_amount",
        "exposure_class", "currency", mask_phone(F.col("business_key.msisdn")).alias("msisdn"),
        F.array_join(F.transform("business_key.record_ids", mask_phones_in_text), ", ").alias("record_ids"),
        utc("due_at").alias("due_at"), _text("reason"), "correction_action")
    evidence = (shown.select("case_id", "case_type", "exposure_amount", F.posexplode("evidence").alias("n", "e"))
                .orderBy(*by_exposure, "case_id", "n").select(
                    "case_id", "case_type", "e.source_system", "e.source_table",
                    mask_phones_in_text(F.col("e.record_id")).alias("record_id"), "e.table_version",
                    F.substring("e.payload_hash", 1, 16).alias("payload_hash")))
    totals = cases.agg(F.count(F.lit(1)).alias("n")).first()
    n_records = ro.agg(F.count(F.lit(1)).alias("n")).first()
    return Drill(masked_text(account_id) or "", records.toPandas(), case_table.toPandas(), evidence.toPandas(),
                 int(n_records["n"]) if n_records else 0, int(totals["n"]) if totals else 0)


def _text(name: str) -> Column:
    """Free text or an id, with any phone number in it masked."""
    return mask_phones_in_text(F.col(name)).alias(name)


def _decimals(table: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """Exact decimal text (the figures' form) as Decimal values: exact, and sortable and summable in pandas."""
    for c in columns:
        table[c] = [None if v is None else Decimal(v) for v in table[c]]
    return table
