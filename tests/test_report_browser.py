"""The run report in a real browser: headless Chromium (tests/devtools.py) opens the page `telco-ra report` wrote for
a real small run (conftest's `small_lakehouse`: the demo's usage month at 2,000 rows, its second run) from disk, and

- the page logs nothing: no console error or warning, no exception, no refused or failed load (it is offline);
- the figures a person sees equal control_run's, read with Spark: per control point and outcome the count, amount
  and exposure cells (formatted: 1,234 and 2 decimals half-up) and their exact `data-*` values, each side's count
  and amount; and the exposure totals by class equal the run's cases summed by Spark;
- no clear phone number is on the rendered page;
- a screenshot is saved (its path printed); with UPDATE_SCREENSHOT=1 its top is copied to
  docs/report-screenshot.png for the README.

The checks that the figures are read from the page are themselves tested: a page with one altered figure fails them.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

import devtools
from jobs.config import load_conf
from jobs.outputs import read_output, table_ref
from jobs.report import write_report
from small_lakehouse import SmallLakehouse

REPO = Path(__file__).resolve().parent.parent
SCREENSHOT = REPO / "docs" / "report-screenshot.png"
E164 = re.compile(r"\+\d{8,15}")
D = Decimal

# What the page shows, read in the browser: each figure cell's visible text and its row's exact data-* values.
READ_FIGURES = """(() => {
  const data = (el) => Object.fromEntries([...el.attributes].filter(a => a.name.startsWith('data-'))
      .map(a => [a.name.slice(5), a.value]));
  const cells = (row) => Object.fromEntries([...row.querySelectorAll('td[data-figure]')]
      .map(td => [td.dataset.figure, td.innerText.trim()]));
  return {
    metrics: [...document.querySelectorAll('tr.metric')].map(r => ({data: data(r), shown: cells(r)})),
    sections: [...document.querySelectorAll('section.control-point')].map(s => ({data: data(s),
        badges: [...s.querySelectorAll('.badge.side')].map(b => ({side: b.dataset.side, text: b.innerText.trim()}))})),
    classes: [...document.querySelectorAll('tr.exposure-class')].map(r => ({data: data(r), shown: cells(r)})),
    text: document.body.innerText,
  };
})()"""


def shown_money(value: Decimal | None) -> str:
    """How the page writes an amount: two decimals, half-up, thousands separated; none as an en dash."""
    return "–" if value is None else f"{value.quantize(D('0.01'), rounding=ROUND_HALF_UP):,}"


def _exact(text: str | None) -> Decimal | None:
    return None if text is None else D(text)


@dataclass
class Opened:
    html: Path
    run_id: str
    figures: dict[str, Any]
    problems: list[str]
    screenshot: Path


@pytest.fixture(scope="module")
def opened(spark: SparkSession, small_lakehouse: SmallLakehouse,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[Opened]:
    if devtools.binary() is None:
        pytest.fail("the browser test needs Debian's chromium (apt-get install chromium)")
    out = tmp_path_factory.mktemp("report-browser")
    run_id = small_lakehouse.runs[1]
    files = write_report(spark, load_conf(small_lakehouse.conf_path), run_id, out / "report", as_of="close")
    with devtools.chromium(out / "profile") as page:
        page.open(files.html.as_uri())
        figures = page.evaluate(READ_FIGURES)
        shot = page.screenshot(out / "report.png")
        problems = page.problems()
    print(f"report: {files.html}\nscreenshot: {shot}")
    if os.environ.get("UPDATE_SCREENSHOT") == "1":
        with devtools.chromium(out / "profile-docs") as page:
            page.open(files.html.as_uri())
            shutil.copyfile(page.screenshot(out / "report-top.png", max_height=2200), SCREENSHOT)
        print(f"copied to {SCREENSHOT}")
    yield Opened(files.html, run_id, figures, problems, shot)


def control_run(spark: SparkSession, lakehouse: SmallLakehouse, run_id: str) -> dict[str, Any]:
    rows = read_output(spark, table_ref(lakehouse.output, "control_run")).where(F.col("run_id") == run_id).collect()
    return {r["control_point_id"]: r for r in rows}


def metric_mismatches(figures: dict[str, Any], cps: dict[str, Any]) -> list[str]:
    """Every way the page's outcome rows differ from control_run's metrics (empty: they agree)."""
    expected = {(cp, m["side"], m["outcome"]): m for cp, r in cps.items() for m in r["metrics"]}
    seen = {}
    wrong = []
    for row in figures["metrics"]:
        data, shown = row["data"], row["shown"]
        key = (data["cp"], data["side"], data["outcome"])
        seen[key] = row
        m = expected.get(key)
        if m is None:
            wrong.append(f"{key}: on the page, not in control_run")
            continue
        want = {"count": f"{m['count']:,}", "amount": shown_money(m["amount"]), "exposure": shown_money(m["exposure"])}
        if shown != want:
            wrong.append(f"{key}: shows {shown}, control_run {want}")
        if (int(data["count"]), _exact(data.get("amount")), _exact(data.get("exposure"))) != (
                m["count"], m["amount"], m["exposure"]):
            wrong.append(f"{key}: data-* {data}, control_run {m}")
    wrong += [f"{key}: in control_run, not on the page" for key in expected if key not in seen]
    return wrong


def test_the_page_logs_no_error_and_loads_nothing(opened: Opened) -> None:
    assert opened.problems == []
    assert opened.screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_every_outcome_figure_shown_is_control_runs(spark: SparkSession, small_lakehouse: SmallLakehouse,
                                                    opened: Opened) -> None:
    cps = control_run(spark, small_lakehouse, opened.run_id)
    assert set(cps) == {"usage-to-rating", "rating-accuracy", "rating-to-billing", "usage-aggregate"}
    assert len(opened.figures["metrics"]) == sum(len(r["metrics"]) for r in cps.values()) > 20
    assert metric_mismatches(opened.figures, cps) == []
    sections = {s["data"]["cp"]: s for s in opened.figures["sections"]}
    for cp_id, r in cps.items():
        shown = {b["side"]: b["text"] for b in sections[cp_id]["badges"]}      # "left cdr: 1,999 records, ..."
        counted = {side: r[f"{side.lower()}_count"] for side in ("LEFT", "RIGHT")}
        for side, n in counted.items():
            if n is not None:
                amount = r[f"{side.lower()}_amount"]
                assert shown[side].endswith(f": {n:,} records, amount {shown_money(amount)}"), (cp_id, shown)
                assert _exact(sections[cp_id]["data"].get(f"{side.lower()}-amount")) == amount, cp_id
        assert sections[cp_id]["data"]["cases-opened"] == str(r["cases_opened"]), cp_id


def test_the_check_fails_on_a_page_with_one_figure_wrong(spark: SparkSession, small_lakehouse: SmallLakehouse,
                                                         opened: Opened) -> None:
    cps = control_run(spark, small_lakehouse, opened.run_id)
    for field, value in (("shown", {"count": "1,000,000"}), ("data", {"exposure": "0.000001"})):
        figures = {**opened.figures, "metrics": [dict(m) for m in opened.figures["metrics"]]}
        figures["metrics"][0] = {**figures["metrics"][0], field: {**figures["metrics"][0][field], **value}}
        assert len(metric_mismatches(figures, cps)) == 1, field
    assert metric_mismatches({"metrics": opened.figures["metrics"][1:]}, cps) != []


def test_exposure_totals_are_the_runs_cases(spark: SparkSession, small_lakehouse: SmallLakehouse,
                                            opened: Opened) -> None:
    """Per class and currency: the cases the run found (not its AUTO_CLEARED closures), summed by Spark."""
    cases = read_output(spark, table_ref(small_lakehouse.output, "ra_case")).where(
        (F.col("run_id") == opened.run_id) & (F.col("status") != "AUTO_CLEARED"))
    expected = {(r["exposure_class"], r["currency"]): (r["n"], r["e"]) for r in cases.groupBy(
        "exposure_class", "currency").agg(F.count(F.lit(1)).alias("n"), F.sum("exposure_amount").alias("e")).collect()}
    shown = {(c["data"]["exposure-class"], c["data"].get("currency")): c for c in opened.figures["classes"]}
    assert set(shown) == set(expected)
    for key, (n, total) in expected.items():
        c = shown[key]
        # Cases without a currency were never priced: ra_case's 0 for them is shown as unknown, never as 0.00.
        want = shown_money(total) if key[1] is not None else "unknown"
        assert (c["shown"]["cases"], c["shown"]["exposure"]) == (f"{n:,}", want), key
        assert (int(c["data"]["cases"]), _exact(c["data"]["exposure"])) == (n, total), key
    assert any(k[1] is None for k in expected), "the month has no unpriced case: the unknown cell went untested"
    under = shown[("UNDERBILLING", "USD")]["data"]
    over = shown[("OVERBILLING", "USD")]["data"]
    assert D(under["exposure"]) > 0 > D(over["exposure"])           # apart, never netted


def test_no_clear_phone_number_on_the_rendered_page(opened: Opened) -> None:
    assert E164.findall(opened.figures["text"]) == []
