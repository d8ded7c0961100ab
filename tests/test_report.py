"""`telco-ra report`: the HTML page, the RA scorecard and the per-team exports of one hand-built cycle.

The story (module fixture) is the scenario month of tests/scenario.py, where every record's outcome is known, with
the case lifecycle worked between two runs:

  run 1        the scenario month as it is
  manual       X (RATED_NOT_BILLED of R-E10) RESOLVED; Y (RATED_NOT_BILLED of R-T) RESOLVED too; N (USAGE_NOT_RATED
               of C-N, 0.60) WAIVED
  fix          R-E10 is billed (charge B-E10): rating-to-billing matches it, and account ACC-3's aggregate is within
               tolerance
  run 2        X AUTO_CLEARED (confirms the resolution); ACC-3's AGGREGATE_VARIANCE AUTO_CLEARED; Y found again:
               REOPENED; N stays WAIVED
  manual       Z (USAGE_NOT_RATED of C-E11, 0.60) RESOLVED (claimed, not confirmed)
  report       `telco-ra report` of run 2 through the command line, SLA status as of four days after the watermark

Expected figures are written here by hand from the scenario; the page's per-control-point figures are compared with
control_run as the run wrote it. Phone numbers: C-S2's suspense reason carries two numbers in free text, and the conf
shows clear numbers to mediation-operations only.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
import yaml
from delta.tables import DeltaTable
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from factories import CYCLE, DEFAULTS, RULESET, frame, run_cli, write_inputs
from jobs.cases import current_cases, transition
from jobs.config import ConfigError, load_conf
from jobs.outputs import read_output, table_ref
from jobs.report import page
from jobs.report.exports import COLUMNS as EXPORT_COLUMNS
from jobs.report.exports import open_case_rows
from jobs.report.figures import Run, account_variance, cycle_history, funnel, run_layout, run_rows
from jobs.report.masking import mask_phones_in_text, mask_phones_in_text_str
from jobs.report.scorecard import scorecard, write_scorecard
from jobs.ruleset import load_ruleset
from jobs.run import RunResult, execute
from scenario import CDR, CHARGES, RATED, SUSPENSE, charge
from transforms.schema import CONTROL_RUN, RA_CASE, RECORD_OUTCOME

E164 = re.compile(r"\+\d{8,15}")
WATERMARK = datetime(2026, 11, 1, 7, 30, tzinfo=UTC)    # latest received_at in scope: C-FB2 (scenario.FALL_BACK_2 + 1h)
AS_OF = WATERMARK + timedelta(days=4)
SUSPENSE_REASON = "unknown subscriber +15552000008, caller (555) 200-0008"
CLEAR_TEAM = "mediation-operations"
OWNERS = ("billing-operations", "charging-operations", "mediation-operations", "revenue-assurance")
D = Decimal


# ------------------------------------------------------------------------------------------------ reading the page
class _Elements(HTMLParser):
    """Every element's tag, class and data-* attributes in document order, plus the report's JSON data block."""

    def __init__(self) -> None:
        super().__init__()
        self.elements: list[dict[str, Any]] = []
        self.data_text: list[str] = []
        self._in_data = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        self.elements.append({"tag": tag, "class": (a.get("class") or "").split(),
                              "data": {k[5:]: v for k, v in a.items() if k.startswith("data-")}})
        self._in_data = tag == "script" and a.get("id") == "report-data"

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_data = False

    def handle_data(self, data: str) -> None:
        if self._in_data:
            self.data_text.append(data)


@dataclass
class Page:
    html: str
    elements: list[dict[str, Any]]
    data: dict[str, Any]

    def having(self, css: str) -> list[dict[str, str]]:
        return [e["data"] for e in self.elements if css in e["class"]]


def read_page(html: str) -> Page:
    parser = _Elements()
    parser.feed(html)
    return Page(html, parser.elements, json.loads("".join(parser.data_text)))


# ------------------------------------------------------------------------------------------------------- the story
@dataclass
class Story:
    conf_path: Path
    output: str
    runs: list[RunResult]
    case_ids: dict[str, str]
    out_dir: Path
    cli_code: int
    cli_out: str
    cli_err: str
    page: Page


def _case_id(spark: SparkSession, output: str, case_type: str, record: str) -> str:
    rows = current_cases(spark, output, CYCLE).where(
        (F.col("case_type") == case_type) & F.array_contains("business_key.record_ids", record)).collect()
    assert len(rows) == 1, (case_type, record, rows)
    return str(rows[0]["case_id"])


@pytest.fixture(scope="module")
def story(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Story]:
    root = tmp_path_factory.mktemp("report")
    suspense = [dict(s, reason=SUSPENSE_REASON) if s["record_id"] == "C-S2" else s for s in SUSPENSE]
    conf_path = write_inputs(spark, root, {"cdr": CDR, "rated_event": RATED, "bill_charge": CHARGES,
                                            "suspense": suspense})
    conf_data = yaml.safe_load(conf_path.read_text())
    conf_data["report"] = {"clear_numbers_for": [CLEAR_TEAM]}
    conf_path.write_text(yaml.safe_dump(conf_data))
    conf, ruleset = load_conf(conf_path), load_ruleset(RULESET)
    runs = [execute(spark, conf, ruleset, CYCLE)]
    ids = {"X": _case_id(spark, conf.output, "RATED_NOT_BILLED", "R-E10"),
           "Y": _case_id(spark, conf.output, "RATED_NOT_BILLED", "R-T"),
           "N": _case_id(spark, conf.output, "USAGE_NOT_RATED", "C-N"),
           "Z": _case_id(spark, conf.output, "USAGE_NOT_RATED", "C-E11")}
    # Manual transitions on the wall clock, like the runs' rows: a case's current state is its latest row.
    transition(spark, conf, ids["X"], "RESOLVED", "alice", "missed charge generated", ["CHG-1"])
    transition(spark, conf, ids["Y"], "RESOLVED", "alice", "thought it billed", ["CHG-2"])
    transition(spark, conf, ids["N"], "WAIVED", "alice", "goodwill")

    frame(spark, "bill_charge", [charge("B-E10", "R-E10", 3)]).write.format("delta").mode("append").save(
        conf.tables["bill_charge"])
    runs.append(execute(spark, conf, ruleset, CYCLE))
    transition(spark, conf, ids["Z"], "RESOLVED", "bob", "re-rated", ["RERATE-9"])

    out_dir = root / "report"
    code, out, err = run_cli(spark, "report", "--conf", str(conf_path), "--run-id", runs[1].run_id, "--out",
                          str(out_dir), "--as-of", AS_OF.isoformat())
    html = next(out_dir.glob("report-*.html")).read_text(encoding="utf-8") if code == 0 else ""
    yield Story(conf_path, conf.output, runs, ids, out_dir, code, out, err, read_page(html) if html else
                Page("", [], {}))


def control_run_rows(spark: SparkSession, story: Story) -> dict[str, Any]:
    rows = read_output(spark, table_ref(story.output, "control_run")).where(
        F.col("run_id") == story.runs[1].run_id).collect()
    return {r["control_point_id"]: r for r in rows}


def _dec(text: str | None) -> Decimal | None:
    return None if text is None else D(text)


# --------------------------------------------------------------------------------------------------------- the CLI
def test_the_report_command_writes_one_page_and_says_where(story: Story) -> None:
    assert story.cli_code == 0, story.cli_err
    html = next(story.out_dir.glob("report-*.html"))
    assert f"report: {html}" in story.cli_out
    assert html.name == f"report-{story.runs[1].run_id}.html"
    assert "scorecard: 1 row(s) in" in story.cli_out


def test_an_unknown_run_is_refused_with_exit_2(spark: SparkSession, story: Story, tmp_path: Path) -> None:
    code, out, err = run_cli(spark, "report", "--conf", str(story.conf_path), "--run-id", "no-such-run",
                          "--out", str(tmp_path))
    assert code == 2 and out == ""
    assert "--run-id: 'no-such-run' is not a committed run under" in err
    assert list(tmp_path.iterdir()) == []


def test_the_page_is_self_contained(story: Story) -> None:
    html = story.page.html
    assert html.startswith("<!DOCTYPE html>")
    assert re.search(r"<script(?![^>]*type=\"application/json\")", html) is None      # no executable script
    assert re.search(r"""(?:src|href)\s*=\s*["'](?:https?:)?//""", html) is None      # nothing fetched
    assert "<link" not in html and "@import" not in html and "url(" not in html
    assert "default-src 'none'" in html                                              # the CSP forbids fetching
    assert html.count("<svg") >= 5                                                    # charts are inline SVG


# ------------------------------------------------------------------------------------------ figures = control_run
def _page_metrics(rows: list[dict[str, str]]) -> dict[tuple[str, str, str], tuple[Any, ...]]:
    return {(r["cp"], r["side"], r["outcome"]): (int(r["count"]), _dec(r.get("amount")), _dec(r.get("exposure")),
                                                 int(r["unpriced"])) for r in rows}


def _control_run_metrics(cps: dict[str, Any]) -> dict[tuple[str, str, str], tuple[Any, ...]]:
    return {(cp, m["side"], m["outcome"]): (m["count"], m["amount"], m["exposure"], m["unpriced"])
            for cp, r in cps.items() for m in r["metrics"]}


def test_every_control_point_figure_equals_control_run(spark: SparkSession, story: Story) -> None:
    cps = control_run_rows(spark, story)
    assert set(cps) == {"usage-to-rating", "rating-accuracy", "rating-to-billing", "usage-aggregate"}
    expected = _control_run_metrics(cps)
    assert _page_metrics(story.page.having("metric")) == expected          # the data-* attributes of each row
    from_json = {(cp["control_point_id"], m["side"], m["outcome"]): (m["count"], _dec(m["amount"]),
                                                                     _dec(m["exposure"]), m["unpriced"])
                 for cp in story.page.data["control_points"] for m in cp["metrics"]}
    assert from_json == expected                                            # and the embedded data block
    sections = {s["cp"]: s for s in story.page.having("control-point")}
    for cp_id, r in cps.items():
        s = sections[cp_id]
        assert (_dec(s.get("left-amount")), _dec(s.get("right-amount"))) == (r["left_amount"], r["right_amount"])
        assert (s.get("left-count"), s.get("right-count"), s["cases-opened"]) == (
            None if r["left_count"] is None else str(r["left_count"]),
            None if r["right_count"] is None else str(r["right_count"]), str(r["cases_opened"]))


def test_each_outcomes_exposure_parts_add_up_to_control_runs(spark: SparkSession, story: Story) -> None:
    """Beside control_run's exposure the page shows what it is made of: positive, negative and exempt, apart."""
    expected = _control_run_metrics(control_run_rows(spark, story))
    for cp in story.page.data["control_points"]:
        for m in cp["metrics"]:
            parts = sum((_dec(m[k]) or D(0) for k in ("exposure_positive", "exposure_negative", "exposure_exempt")),
                        D(0))
            assert parts == (expected[(cp["control_point_id"], m["side"], m["outcome"])][2] or D(0)), m


def test_a_signed_outcome_is_shown_apart_where_control_run_nets_it(story: Story) -> None:
    """R-M is rated 0.30 over its tariff, R-M2 0.30 under it: control_run's TARIFF_MISMATCH exposure is 0.00."""
    accuracy = next(cp for cp in story.page.data["control_points"] if cp["control_point_id"] == "rating-accuracy")
    mismatch = next(m for m in accuracy["metrics"] if m["outcome"] == "TARIFF_MISMATCH")
    assert (D(mismatch["exposure"]), D(mismatch["exposure_positive"]), D(mismatch["exposure_negative"])) == (
        D("0"), D("0.3"), D("-0.3"))


def test_exposure_by_class_keeps_under_and_overbilling_apart(story: Story) -> None:
    """Run 2's findings (X and ACC-3's aggregate are cleared): underbilling SUSPENSE_AGED 0.60 (C-S2),
    USAGE_NOT_RATED 1.20 (C-E11, C-N; C-TA is exempt), TARIFF_MISMATCH +0.30 (R-M2), RATED_NOT_BILLED 1.20 (R-E11,
    R-T), CHARGE_AMOUNT_MISMATCH +0.20 (R-B), AGGREGATE_VARIANCE +1.40 (ACC-2 0.20, ACC-4 and ACC-6 0.60 each)
    = 4.90; overbilling RATED_WITHOUT_USAGE 1.20, DUPLICATE_RATED_EVENT 1.20, TARIFF_MISMATCH 0.30,
    CHARGE_WITHOUT_RATED_EVENT 1.20, DUPLICATE_CHARGE 0.60, AGGREGATE_VARIANCE 1.80 = -6.30; timing LATE_USAGE 0.60."""
    rows = {(r["exposure-class"], r.get("currency")): r for r in story.page.having("exposure-class")}
    under, over = rows[("UNDERBILLING", "USD")], rows[("OVERBILLING", "USD")]
    assert D(under["exposure"]) == D(under["positive"]) == D("4.9") and "negative" not in under
    assert D(over["exposure"]) == D(over["negative"]) == D("-6.3") and "positive" not in over
    assert D(rows[("TIMING", "USD")]["exposure"]) == D("0.6")
    net = D("4.9") + D("-6.3")
    assert all(_dec(r.get("exposure")) != net for r in rows.values())      # no figure nets the two


def test_cases_without_a_currency_are_named_as_not_valued_never_as_a_question_mark(story: Story) -> None:
    """The 3 quarantined usage records carry no amount and are not priced: their cases have no currency. The page
    says what that means (exposure unknown, not zero) instead of a bare "?"."""
    rows = story.page.having("exposure-class")
    unvalued = sum(int(r["cases"]) for r in rows if r.get("currency") is None)
    assert unvalued == 3
    assert f"{unvalued:,} cases have no currency" in story.page.html
    assert "(?)" not in story.page.html and "<td>?</td>" not in story.page.html
    assert f"unknown · {unvalued:,} cases" in story.page.html      # the bar's label: not "0.00 · 3 cases"


def test_the_funnel_follows_usage_to_billing_with_the_leak_at_each_edge(spark: SparkSession, story: Story) -> None:
    cps = control_run_rows(spark, story)
    f = story.page.data["funnel"]
    assert [(s["stage"], s["count"]) for s in f["stages"]] == [
        ("usage", cps["usage-to-rating"]["left_count"]), ("rated", cps["rating-to-billing"]["left_count"]),
        ("billed", cps["rating-to-billing"]["right_count"])]
    assert D(f["stages"][2]["amount"]) == cps["rating-to-billing"]["right_amount"]
    u2r, r2b = f["edges"]
    # usage -> rated: SUSPENSE_AGED 0.60 and USAGE_NOT_RATED 1.20 (C-TA exempt) leak; 2 rated without usage and
    # 2 duplicate ratings (0.60 each) in excess.
    assert (D(u2r["leak"]), u2r["leak_records"], D(u2r["excess"]), u2r["excess_records"]) == (
        D("1.8"), 3, D("-2.4"), 4)
    assert u2r["other"] == {"TIMING": "0.600000"}
    # rated -> billed: R-E11 and R-T not billed, R-B charged 0.20 short; B-NL, B-NX without a rated event and B-A2 a
    # duplicate charge.
    assert (D(r2b["leak"]), r2b["leak_records"], D(r2b["excess"]), r2b["excess_records"]) == (
        D("1.4"), 3, D("-1.8"), 3)


def test_a_ruleset_without_the_usage_control_points_renders_generically(story: Story) -> None:
    """Another ruleset's control points get their own section, outcome table and chart; no funnel is drawn."""
    data = json.loads(json.dumps(story.page.data))
    metric = {"side": "LEFT", "outcome": "UNBILLED_LINE", "count": 4, "amount": "40.000000", "exposure": "40.000000",
              "unpriced": 0, "exposure_class": "UNDERBILLING", "exposure_positive": "40.000000",
              "exposure_negative": None, "exposure_exempt": None, "positive_records": 4, "negative_records": 0}
    data["control_points"] = [{"control_point_id": "carrier-invoice", "kind": "record", "left_table": "carrier_bill",
                               "right_table": "cdr", "left_count": 9, "right_count": 11, "left_amount": "90.000000",
                               "right_amount": None, "cases_opened": 4, "conservation_ok": True, "counters": {},
                               "metrics": [metric]}]
    data["funnel"] = funnel(data["control_points"])
    assert data["funnel"] is None
    other = read_page(page.render(data))
    assert other.having("metric") == [{"cp": "carrier-invoice", "side": "LEFT", "outcome": "UNBILLED_LINE",
                                       "count": "4", "amount": "40.000000", "exposure": "40.000000", "unpriced": "0"}]
    assert 'id="funnel"' not in other.html and "carrier-invoice outcome counts" in other.html


# ---------------------------------------------------------------------------------------- top, owners, trend, accounts
def test_top_accounts_and_case_types_rank_by_gross_exposure(story: Story) -> None:
    top = story.page.data["top_accounts"]
    assert [(r["account_id"], r["gross"]) for r in top[:2]] == [("ACC-4", "2.400000"), ("ACC-1", "1.800000")]
    acc4 = top[0]          # C-E11 unrated, R-E11 rated without usage and not billed, its aggregate 0.60 short
    assert (acc4["positive"], acc4["negative"], acc4["cases"]) == ("1.800000", "-0.600000", 4)
    types = story.page.data["top_case_types"]
    assert (types[0]["case_type"], types[0]["gross"]) == ("AGGREGATE_VARIANCE", "3.200000")


def test_cases_by_owner_team_with_sla_status(spark: SparkSession, story: Story) -> None:
    """SLA status as of four days after the watermark, every case due SLA days after it: billing (3 days) and
    mediation (2) overdue, charging (5) due within two days, revenue-assurance (10) open. Resolved: Z. Closed: X
    (auto-cleared), ACC-3's aggregate (auto-cleared), N (waived)."""
    owners = {r["owner"]: r for r in story.page.having("owner")}
    run2 = read_output(spark, table_ref(story.output, "ra_case")).where(F.col("run_id") == story.runs[1].run_id)
    per_team = {r["owner_team"]: r["n"] for r in run2.groupBy("owner_team").agg(
        F.countDistinct("case_id").alias("n")).collect()}
    assert set(owners) == set(per_team) == set(OWNERS)
    for team, o in owners.items():
        assert sum(int(o[k]) for k in ("open", "due", "overdue", "resolved", "closed")) == per_team[team], team
    b, c, m, ra = (owners[t] for t in OWNERS)
    assert (b["open"], b["due"], b["resolved"], b["closed"]) == ("0", "0", "0", "1") and int(b["overdue"]) > 0
    assert (c["open"], c["overdue"], c["resolved"], c["closed"]) == ("0", "0", "1", "1") and int(c["due"]) > 0
    assert (m["open"], m["due"], m["resolved"], m["closed"]) == ("0", "0", "0", "0") and int(m["overdue"]) > 0
    assert (ra["due"], ra["overdue"], ra["resolved"], ra["closed"]) == ("0", "0", "0", "1") and int(ra["open"]) > 0
    assert story.page.data["report"] == {"as_of": "2026-11-05T07:30:00Z", "as_of_basis": "given", "format": 1}


def test_the_trend_shows_both_runs_of_the_cycle(story: Story) -> None:
    """Run 1: 41 open cases (38 with a currency, 3 quarantined without one), underbilling 6.10 (run 2's 4.90 with
    X's 0.60 and ACC-3's 0.60), overbilling -6.30. Run 2: 38 open (X and ACC-3 cleared, N waived; Y reopened)."""
    t = story.page.data["trend"]
    assert [r["run_id"] for r in t] == [r.run_id for r in story.runs]
    assert [r["this_run"] for r in t] == [False, True]
    assert [r["open_cases"] for r in t] == [41, 38] and [r["cleared"] for r in t] == [0, 2]
    usd = [next(x for x in r["exposure"] if x["currency"] == "USD") for r in t]
    assert [(D(x["underbilling"]), D(x["overbilling"])) for x in usd] == [(D("6.1"), D("-6.3")),
                                                                         (D("4.9"), D("-6.3"))]


def test_accounts_good_and_variance(spark: SparkSession, story: Story) -> None:
    """Billing R-E10 puts ACC-3 within tolerance: run 2 has 12 GOOD and 6 VARIANCE accounts."""
    (agg,) = story.page.data["account_variance"]
    assert (agg["control_point_id"], agg["good"], agg["variance"]) == ("usage-aggregate", 12, 6)
    cps = control_run_rows(spark, story)
    beyond = {m["outcome"]: m["count"] for m in cps["usage-aggregate"]["metrics"]}
    assert beyond == {"MATCHED": 12, "AGGREGATE_VARIANCE": 6}          # one row per account in this month
    assert "ACC-3" not in {r["account_id"] for r in agg["top"]}


# ------------------------------------------------------------------------------------------------------- scorecard
def _pct(part: str, whole: str) -> Decimal:
    return (D(part) * 100 / D(whole)).quantize(D("0.0001"), rounding=ROUND_HALF_UP)


def _days_to_recovery(spark: SparkSession, story: Story, case_ids: list[str]) -> Decimal:
    """Mean days from each case's first history row to its RESOLVED row, or else its AUTO_CLEARED row."""
    rows = read_output(spark, table_ref(story.output, "ra_case")).where(F.col("case_id").isin(*case_ids)).collect()
    total = D(0)
    for case in case_ids:
        mine = [r for r in rows if r["case_id"] == case]
        first = min(r["recorded_at"] for r in mine)
        done = [r["recorded_at"] for r in mine if r["status"] == "RESOLVED"] or [
            r["recorded_at"] for r in mine if r["status"] == "AUTO_CLEARED"]
        total += D((max(done) - first) // timedelta(microseconds=1)) / D(86_400_000_000)
    return (total / len(case_ids)).quantize(D("0.01"), rounding=ROUND_HALF_UP)


def test_the_scorecard_table(spark: SparkSession, story: Story) -> None:
    """Revenue covered: the cycle's USAGE charges (scenario CHARGES, a null amount counting 0, plus B-E10).
    Leakage: every case found by run 1 or 2 (their union is run 1's cases): underbilling 6.10, overbilling 6.30,
    timing 0.60. Recovered: X (0.60, resolved, then confirmed by run 2) and ACC-3's aggregate (0.60, cleared by
    run 2) confirmed; Z (0.60, resolved after run 2) claimed. N's 0.60 is an accepted loss."""
    usage = [c for c in CHARGES if c.get("charge_type", "USAGE") == "USAGE"] + [charge("B-E10", "R-E10", 3)]
    revenue = sum((c.get("amount", DEFAULTS["bill_charge"]["amount"]) or D(0) for c in usage), D(0))
    assert revenue == D("11.86")
    rows = read_output(spark, table_ref(story.output, "ra_scorecard")).where(
        F.col("run_id") == story.runs[1].run_id).collect()
    assert len(rows) == 1
    s = rows[0].asDict()
    aggregate_acc3 = next(r["case_id"] for r in current_cases(spark, story.output, CYCLE).where(
        (F.col("case_type") == "AGGREGATE_VARIANCE") & (F.col("business_key.account_id") == "ACC-3")).collect())
    expected = {
        "cycle_id": CYCLE, "currency": "USD", "partition_scope": "all", "ruleset_name": "usage_to_bill",
        "control_point_id": "rating-accuracy,rating-to-billing,usage-aggregate,usage-to-rating",
        "revenue_covered": revenue, "leakage_underbilling": D("6.1"), "leakage_overbilling": D("6.3"),
        "exposure_other": D("0.6"), "recoverable": D("5.5"), "recovered": D("1.8"), "recovered_confirmed": D("1.2"),
        "recovered_claimed": D("0.6"), "accepted_loss": D("0.6"), "recovery_cases": 3,
        "pct_leakage_detected": _pct("6.1", "11.86"), "pct_recoverable": _pct("5.5", "11.86"),
        "pct_revenue_recovered": _pct("1.8", "11.86"), "pct_leakage_recovered": _pct("1.8", "6.1"),
        "days_per_recovery_case": _days_to_recovery(spark, story, [story.case_ids["X"], aggregate_acc3,
                                                                   story.case_ids["Z"]]),
    }
    assert {k: s[k] for k in expected} == expected
    # Tied to control_run: the billed side the controls reconciled.
    assert s["revenue_covered"] == control_run_rows(spark, story)["rating-to-billing"]["right_amount"]
    # and the page shows the table's figures
    kpis = {r["kpi"]: r["value"] for r in story.page.having("kpi-row") if r.get("value") is not None}
    assert {k: D(v) for k, v in kpis.items()} == {k: s[k] for k in kpis}
    assert {"revenue_covered", "recovered", "pct_revenue_recovered", "days_per_recovery_case"} <= set(kpis)


# A history written by hand, on a clock of its own, for the scorecard's definitions (no run needed).
H_RULESET = yaml.safe_dump({"ruleset": "usage_to_bill", "owners": {"billing-operations": {"sla_days": 3}},
                            "control_points": {"rating-to-billing": {
                                "kind": "record", "left": {"table": "rated_event"},
                                "right": {"table": "bill_charge", "filter": {"charge_type": "USAGE"}},
                                "outcomes": {"MATCHED": {"case": False}}}}})
JUL = datetime(2026, 7, 1, tzinfo=UTC)


def _day(n: float) -> datetime:
    return JUL + timedelta(days=n)


def _rows(schema: Any, rows: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [tuple(r.get(f.name) for f in schema.fields) for r in rows]


def _history_case(run_id: str, case: str, status: str, at: float, exposure: str, cls: str = "UNDERBILLING",
                  currency: str = "USD") -> dict[str, Any]:
    return {"run_id": run_id, "control_point_id": "rating-to-billing", "ruleset_version": "v", "cycle_id": CYCLE,
            "account_bucket": 0, "case_id": case, "case_type": "RATED_NOT_BILLED", "exposure_amount": D(exposure),
            "exposure_class": cls, "currency": currency, "owner_team": "billing-operations", "status": status,
            "opened_at": JUL, "due_at": _day(3), "first_opened_at": JUL, "recorded_at": _day(at)}


def test_scorecard_kpis_on_a_hand_written_history(spark: SparkSession, tmp_path: Path) -> None:
    """USD: A (10) resolved on day 3 and confirmed by r2 on day 5; B (20) cleared by r2 on day 5; C (5) resolved on
    day 6 after r2; D (8) waived; E (7) open; F overbilling 6; G timing 3. EUR: H (4) open. K (100) is found by r3,
    after r2: not in r2's scorecard. Revenue covered (r2's billed side): USD 150, EUR 40."""
    output = tmp_path / "output"
    runs = [{"run_id": rid, "control_point_id": "rating-to-billing", "ruleset_version": "v", "cycle_id": CYCLE,
             "ruleset_name": "usage_to_bill", "ruleset_text": H_RULESET, "partition_scope": "all",
             "completed_at": _day(at), "watermark": JUL, "status": "COMMITTED", "metrics": []}
            for rid, at in (("r1", 0), ("r2", 5), ("r3", 9))]
    cases = [_history_case("r1", c, "OPEN", 0, e, *rest) for c, e, *rest in (
        ("A", "10"), ("B", "20"), ("C", "5"), ("D", "8"), ("E", "7"), ("F", "-6", "OVERBILLING"),
        ("G", "3", "TIMING"), ("H", "4", "UNDERBILLING", "EUR"))]
    cases += [_history_case("manual:a", "A", "RESOLVED", 3, "10"), _history_case("manual:d", "D", "WAIVED", 2, "8")]
    cases += [_history_case("r2", "A", "AUTO_CLEARED", 5, "10"), _history_case("r2", "B", "AUTO_CLEARED", 5, "20")]
    cases += [_history_case("r2", c, s, 5, e, *rest) for c, s, e, *rest in (
        ("C", "OPEN", "5"), ("D", "WAIVED", "8"), ("E", "OPEN", "7"), ("F", "OPEN", "-6", "OVERBILLING"),
        ("G", "OPEN", "3", "TIMING"), ("H", "OPEN", "4", "UNDERBILLING", "EUR"))]
    cases += [_history_case("manual:c", "C", "RESOLVED", 6, "5"), _history_case("r3", "K", "OPEN", 9, "100")]
    billed = [{"run_id": "r2", "control_point_id": "rating-to-billing", "cycle_id": CYCLE, "side": "RIGHT",
               "record_id": f"B{i}", "amount": D(a), "currency": cur}
              for i, (a, cur) in enumerate((("100", "USD"), ("50", "USD"), ("40", "EUR")))]
    for name, schema, rows in (("control_run", CONTROL_RUN, runs), ("ra_case", RA_CASE, cases),
                               ("record_outcome", RECORD_OUTCOME, billed)):
        spark.createDataFrame(_rows(schema, rows), schema).write.format("delta").save(str(output / name))

    run, control_rows = run_rows(spark, str(output), "r2")
    got = {r["currency"]: r for r in scorecard(spark, str(output), run, run_layout(control_rows),
                                               cycle_history(spark, str(output), run))}
    usd, eur = got["USD"], got["EUR"]
    assert set(got) == {"USD", "EUR"}
    assert {k: usd[k] for k in ("revenue_covered", "cases", "leakage_underbilling", "leakage_overbilling",
                                "exposure_other", "recoverable", "recovered", "recovered_confirmed",
                                "recovered_claimed", "accepted_loss", "recovery_cases", "pct_leakage_detected",
                                "pct_recoverable", "pct_revenue_recovered", "pct_leakage_recovered",
                                "days_per_recovery_case", "as_of")} == {
        "revenue_covered": D(150), "cases": 7, "leakage_underbilling": D(50), "leakage_overbilling": D(6),
        "exposure_other": D(3), "recoverable": D(42), "recovered": D(35), "recovered_confirmed": D(30),
        "recovered_claimed": D(5), "accepted_loss": D(8), "recovery_cases": 3,
        "pct_leakage_detected": D("33.3333"), "pct_recoverable": D("28.0000"), "pct_revenue_recovered": D("23.3333"),
        "pct_leakage_recovered": D("70.0000"), "days_per_recovery_case": D("4.67"),      # A 3, B 5, C 6
        "as_of": _day(6),
    }
    assert (eur["revenue_covered"], eur["leakage_underbilling"], eur["pct_leakage_detected"], eur["recovered"],
            eur["pct_revenue_recovered"], eur["days_per_recovery_case"]) == (
        D(40), D(4), D("10.0000"), D(0), D("0.0000"), None)

    # Written as r2's slice of ra_scorecard: the same figures again commit nothing; new figures replace the slice.
    ref = table_ref(str(output), "ra_scorecard")
    write_scorecard(spark, str(output), run, list(got.values()))
    versions = DeltaTable.forPath(spark, ref).history().count()
    write_scorecard(spark, str(output), run, list(got.values()))
    assert DeltaTable.forPath(spark, ref).history().count() == versions
    write_scorecard(spark, str(output), run, [dict(usd, recovered_claimed=D(0))])
    table = read_output(spark, ref).where(F.col("run_id") == "r2").collect()
    assert [(r["currency"], r["recovered_claimed"]) for r in table] == [("USD", D(0))]
    assert DeltaTable.forPath(spark, ref).detail().first()["partitionColumns"] == ["cycle_id"]


# ------------------------------------------------------------------------------------------------ phone numbers
def _export_text(path: Path) -> str:
    if path.suffix == ".parquet":
        return json.dumps(pq.read_table(path).to_pylist(), default=str)
    return path.read_text(encoding="utf-8")


def test_no_clear_phone_number_in_the_page_or_the_masked_exports(story: Story) -> None:
    assert E164.findall(story.page.html) == []
    masked = [p for p in story.out_dir.iterdir() if p.suffix in (".csv", ".parquet") and CLEAR_TEAM not in p.name]
    assert len(masked) == 2 * (len(OWNERS) - 1)
    for path in masked:
        assert E164.findall(_export_text(path)) == [], path.name
        assert "(555) 200-0008" not in _export_text(path), path.name


def test_the_conf_shows_clear_numbers_to_one_team_only(story: Story) -> None:
    """mediation-operations owns the quarantined usage C-Q3 (+15552000017): in clear in its export only."""
    for suffix in (".csv", ".parquet"):
        text = _export_text(story.out_dir / f"open-cases-{CLEAR_TEAM}{suffix}")
        assert "+15552000017" in text
    exports = {r["owner"]: r for r in story.page.having("export")}
    assert set(exports) == set(OWNERS)
    assert [e["clear_numbers"] for e in story.page.data["exports"]] == [False, False, True, False]


def test_phone_numbers_in_free_text_are_masked(spark: SparkSession) -> None:
    samples = {
        SUSPENSE_REASON: "unknown subscriber +1555***0008, caller ***",
        "tel:+15551234567": "tel:+1555***4567",
        "+12345678 then 15551234567.": "***78 then 15551***4567.",
        "+1 555-200-0009 x12 and 555.200.0009": "*** and ***",
        # not numbers: dates, times, amounts, ids, short groups, long record ids
        "rejected 2026-06-10 12:00:00, rated 1.200000 USD, charged 1234567.123456": None,
        "C-A,C-B RA-3f2a1234567890ab order 12 34 56 id 1234567890123456789": None,
    }
    got = [r[0] for r in spark.createDataFrame([(s,) for s in samples], "t string").select(
        mask_phones_in_text(F.col("t"))).collect()]
    for (text, want), spark_masked in zip(samples.items(), got, strict=True):
        assert mask_phones_in_text_str(text) == spark_masked == (text if want is None else want)


# --------------------------------------------------------------------------------------------------------- exports
def test_each_team_gets_its_open_cases_with_their_evidence(spark: SparkSession, story: Story) -> None:
    owners = {r["owner"]: r for r in story.page.having("owner")}
    for team in OWNERS:
        csv_rows = (story.out_dir / f"open-cases-{team}.csv").read_text(encoding="utf-8").splitlines()
        table = pq.read_table(story.out_dir / f"open-cases-{team}.parquet")
        active = sum(int(owners[team][k]) for k in ("open", "due", "overdue"))
        assert len(csv_rows) - 1 == table.num_rows == active, team
        assert set(table.column("owner_team").to_pylist()) <= {team}
        assert set(table.column("status").to_pylist()) <= {"OPEN", "REOPENED", "ACKNOWLEDGED", "IN_CORRECTION",
                                                           "PENDING_APPROVAL"}
    charging = {r["case_type"] + ":" + r["record_ids"]: r for r in
                pq.read_table(story.out_dir / "open-cases-charging-operations.parquet").to_pylist()}
    aged = charging["SUSPENSE_AGED:C-S2"]
    assert (aged["account_id"], aged["msisdn"], aged["exposure_amount"], aged["exposure_class"], aged["sla"]) == (
        "ACC-8", "+1555***0008", D("0.600000"), "UNDERBILLING", "due")
    assert aged["reason"] == "in suspense since 2026-06-23T00:00:00Z: unknown subscriber +1555***0008, caller ***"
    assert aged["evidence_summary"] == "mediation cdr C-S2 @v0"
    assert aged["due_at"] == WATERMARK + timedelta(days=5) and aged["correction_action"] == "reprocess-usage"
    assert "USAGE_NOT_RATED:C-E11" not in charging          # Z is resolved: nothing to do until a run says so
    billing = pq.read_table(story.out_dir / "open-cases-billing-operations.parquet").to_pylist()
    reopened = next(r for r in billing if r["record_ids"] == "R-T")
    assert reopened["status"] == "REOPENED" and reopened["evidence_summary"] == "rating rated_event R-T @v0"


def test_report_conf_is_validated(tmp_path: Path) -> None:
    conf = {"tables": {"cdr": "x/cdr"}, "output": "x/out",
            "cycles": {CYCLE: {"start": "2026-06-01T00:00:00Z", "end": "2026-07-01T00:00:00Z",
                               "close": "2026-07-03T00:00:00Z"}}}
    path = tmp_path / "c.yaml"
    for report, message in (({"clear_numbers_for": "billing"}, r"report\.clear_numbers_for: 'billing' is not a list"),
                            ({"clear": []}, r"report\.clear: unknown key")):
        path.write_text(yaml.safe_dump({**conf, "report": report}))
        with pytest.raises(ConfigError, match=message):
            load_conf(path)
    path.write_text(yaml.safe_dump(conf))
    plain = load_conf(path)
    path.write_text(yaml.safe_dump({**conf, "report": {"clear_numbers_for": ["billing-operations"]}}))
    with_report = load_conf(path)
    assert with_report.report_clear_numbers_for == ("billing-operations",) and plain.report_clear_numbers_for == ()
    assert with_report.fingerprint == plain.fingerprint           # it changes what an export shows, not a result


def test_accounts_are_good_only_when_every_row_is_within_tolerance(spark: SparkSession, tmp_path: Path) -> None:
    """ACC-1: VOICE within, DATA beyond -> VARIANCE; ACC-2: VOICE and SMS within -> GOOD; ACC-3 beyond -> VARIANCE."""
    from transforms.schema import AGGREGATE_VARIANCE

    rows = [{"run_id": "r", "control_point_id": "usage-aggregate", "cycle_id": CYCLE, "account_id": a,
             "service_type": st, "currency": "USD", "left_amount": D(left), "right_amount": D(right),
             "difference": D(left) - D(right), "tolerance": D("0.01"), "beyond_tolerance": beyond}
            for a, st, left, right, beyond in (("ACC-1", "VOICE", "1", "1", False), ("ACC-1", "DATA", "5", "2", True),
                                               ("ACC-2", "VOICE", "1", "1", False), ("ACC-2", "SMS", "2", "2", False),
                                               ("ACC-3", "VOICE", "1", "2", True))]
    output = tmp_path / "output"
    spark.createDataFrame(_rows(AGGREGATE_VARIANCE, rows), AGGREGATE_VARIANCE).write.format("delta").save(
        str(output / "aggregate_variance"))
    run = Run("r", CYCLE, "usage_to_bill", "v", JUL, "all", None, None, ("usage-aggregate",), None)
    (agg,) = account_variance(spark, str(output), run)
    assert (agg["good"], agg["variance"]) == (1, 2)
    assert [(t["account_id"], t["service_type"], t["difference"]) for t in agg["top"]] == [
        ("ACC-1", "DATA", "3.000000"), ("ACC-3", "VOICE", "-1.000000")]


def test_export_rows_mask_every_number_unless_the_team_may_see_them(spark: SparkSession) -> None:
    """Two teams' open cases, each with a number in the msisdn, the account id, a record id and the reason; only
    the team named in clear_numbers_for sees them in clear. Closed and resolved cases are not exported."""
    from transforms.schema import RA_CASE

    def case(case_id: str, team: str, status: str = "OPEN") -> dict[str, Any]:
        return {"case_id": case_id, "cycle_id": CYCLE, "control_point_id": "usage-to-rating",
                "case_type": "USAGE_NOT_RATED", "owner_team": team, "status": status, "exposure_amount": D("1"),
                "business_key": {"account_id": "15552000001", "msisdn": "+15552000001", "service_type": "VOICE",
                                 "record_ids": ["C-1", "+15552000001-0610"]},
                "reason": "no rated event; subscriber +15552000001", "due_at": JUL, "opened_at": JUL,
                "evidence": [{"source_system": "mediation", "source_table": "cdr", "record_id": "+15552000001-0610",
                              "payload_hash": "h", "table_version": 3}]}

    current = spark.createDataFrame(_rows(RA_CASE, [case("A", "ops"), case("B", "noc"), case("C", "ops", "WAIVED"),
                                                    case("D", "ops", "RESOLVED")]), RA_CASE)
    got = {r["case_id"]: r for r in open_case_rows(current, _day(1), ["noc"]).collect()}   # due a day ago
    assert set(got) == {"A", "B"}
    masked, clear = got["A"], got["B"]
    assert (masked["msisdn"], masked["account_id"], masked["record_ids"], masked["reason"],
            masked["evidence_summary"]) == (
        "+1555***0001", "15552***0001", "C-1 +1555***0001-0610", "no rated event; subscriber +1555***0001",
        "mediation cdr +1555***0001-0610 @v3")
    assert (clear["msisdn"], clear["account_id"], clear["record_ids"], clear["reason"], clear["evidence_summary"]) == (
        "+15552000001", "15552000001", "C-1 +15552000001-0610", "no rated event; subscriber +15552000001",
        "mediation cdr +15552000001-0610 @v3")
    assert masked["sla"] == "overdue" and "msisdn" in [name for name, _ in EXPORT_COLUMNS]


# --------------------------------------------------------------------------------------------------------- browser
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--hide-scrollbars", "--enable-logging=stderr", "--v=0")


def _chromium(url: str, profile: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("chromium")
    if binary is None:
        pytest.skip("browser test needs Debian's chromium (/usr/bin/chromium, apt-get install chromium): not installed")
    return subprocess.run([binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *extra, url],
                          capture_output=True, text=True, timeout=180, check=False)


def console_errors(stderr: str) -> list[str]:
    """What the page itself logged or failed to load: console messages, blocked or failed requests, CSP refusals."""
    return [line for line in stderr.splitlines()
            if "CONSOLE" in line or "net::ERR" in line or "Refused to" in line or "Content Security Policy" in line]


def test_the_console_check_catches_a_page_that_logs_an_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.html"
    bad.write_text('<!DOCTYPE html><html><body><script>console.error("broken page")</script>'
                   '<img src="missing.png"></body></html>')
    done = _chromium(bad.as_uri(), tmp_path / "profile", "--dump-dom")
    assert any("broken page" in line for line in console_errors(done.stderr)), done.stderr[-2000:]


def test_chromium_opens_the_report_with_no_console_error(spark: SparkSession, story: Story, tmp_path: Path) -> None:
    html = next(story.out_dir.glob("report-*.html"))
    dom = _chromium(html.as_uri(), tmp_path / "profile", "--dump-dom", "--virtual-time-budget=2000")
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert console_errors(dom.stderr) == [], dom.stderr[-4000:]
    shown = read_page(dom.stdout)          # the DOM Chromium built, not the file: figures as a browser has them
    assert _page_metrics(shown.having("metric")) == _control_run_metrics(control_run_rows(spark, story))
    cps = control_run_rows(spark, story)
    billed = cps["rating-to-billing"]["right_amount"].quantize(D("0.01"), rounding=ROUND_HALF_UP)
    assert f'<div class="v">{billed:,}</div>' in dom.stdout                # the revenue-covered tile: 11.86
    matched = next(m for m in cps["usage-to-rating"]["metrics"] if (m["side"], m["outcome"]) == ("LEFT", "MATCHED"))
    assert re.search(rf'data-outcome="MATCHED" data-count="{matched["count"]}"', dom.stdout)
    assert E164.findall(dom.stdout) == []
    shot = tmp_path / "report.png"
    done = _chromium(html.as_uri(), tmp_path / "profile2", f"--screenshot={shot}", "--window-size=1280,2400")
    assert done.returncode == 0 and console_errors(done.stderr) == [], done.stderr[-4000:]
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 50_000
    print(f"screenshot: {shot}")
