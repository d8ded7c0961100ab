"""Two runs of one cycle side by side: what changed between them, and which cases came and went.

Outcome counts, amounts and exposure are control_run's (per control point, side and outcome); exposure by class is
that of the cases each run found, underbilling and overbilling apart. A case is *new* when the later run found it
and the earlier did not, *cleared* when the earlier found it and the later did not (the later run then wrote its
AUTO_CLEARED row, where the case was in its scope), and *still found* when both did. Case ids are stable across
runs (transforms/keys.py), so the comparison is a join on them.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs.notebook.charts import bar_chart
from jobs.notebook.explore import exposure_by_class, outcomes
from jobs.notebook.lakehouse import latest_run_id, previous_run_id, utc
from jobs.report import figures
from jobs.report.masking import mask_phones_in_text
from jobs.report.page import CLASS_CSS, money
from transforms.lifecycle import AUTO_CLEARED
from transforms.phone import mask_phone

KEYS = ["control_point_id", "side", "outcome"]


@dataclass(frozen=True)
class Comparison:
    """`before` and `after` run ids; tables of changes; the new and cleared cases (at most `limit` of each, largest
    |exposure| first)."""

    before: str
    after: str
    outcomes: pd.DataFrame          # KEYS, count/amount/exposure before and after, count_change
    exposure: pd.DataFrame          # class and currency: cases, positive and negative before and after
    case_types: pd.DataFrame        # control point and case type: new, cleared, still found
    new_cases: pd.DataFrame
    cleared_cases: pd.DataFrame


def run_pair(spark: SparkSession, output: str, ruleset: str, before: str | None = None,
             after: str | None = None) -> tuple[str, str]:
    """(before, after): `after` default the latest committed run of `ruleset`, `before` default the run of its
    cycle just before it; LookupError saying how to get a second run when the cycle has only one."""
    after = after or latest_run_id(spark, output, ruleset)
    before = before or previous_run_id(spark, output, after)
    if before is None:
        raise LookupError(f"run {after} is the only committed run of its cycle under {output}: nothing to compare "
                          "it with. Run the cycle again once an input has changed (telco-ra run), or run `make "
                          "demo` a second time, or name BEFORE")
    return before, after


def compare_runs(spark: SparkSession, output: str, before: str, after: str, limit: int = 20) -> Comparison:
    """Compare committed run `before` with the later run `after` of the same cycle and ruleset."""
    run_a, _ = figures.run_rows(spark, output, before)
    run_b, _ = figures.run_rows(spark, output, after)
    if (run_a.cycle_id, run_a.ruleset_name) != (run_b.cycle_id, run_b.ruleset_name):
        raise ValueError(f"runs {before} ({run_a.ruleset_name}, cycle {run_a.cycle_id}) and {after} "
                         f"({run_b.ruleset_name}, cycle {run_b.cycle_id}) are not runs of one cycle and ruleset")
    found_a = _found(spark, output, run_a)
    found_b = _found(spark, output, run_b)
    new = found_b.join(found_a.select("case_id"), "case_id", "left_anti")
    cleared = found_a.join(found_b.select("case_id"), "case_id", "left_anti")
    status_after = (figures.run_cases(spark, output, run_b).where(F.col("status") == AUTO_CLEARED)
                    .select("case_id", F.col("status").alias("status_after")))
    kinds = (new.select("control_point_id", "case_type", F.lit("new").alias("change"))
             .unionByName(cleared.select("control_point_id", "case_type", F.lit("cleared").alias("change")))
             .unionByName(found_b.join(found_a.select("case_id"), "case_id", "left_semi")
                          .select("control_point_id", "case_type", F.lit("still found").alias("change"))))
    case_types = (kinds.groupBy("control_point_id", "case_type").pivot("change", ["new", "cleared", "still found"])
                  .agg(F.count(F.lit(1))).na.fill(0).orderBy("control_point_id", "case_type").toPandas())
    return Comparison(
        before, after, _outcome_changes(spark, output, before, after),
        _side_by_side(exposure_by_class(spark, output, before), exposure_by_class(spark, output, after),
                      ["exposure_class", "currency"], ["cases", "positive", "negative"]),
        case_types, _listed(new, limit).toPandas(),
        _listed(cleared.join(status_after, "case_id", "left"), limit, "status_after").toPandas())


def _found(spark: SparkSession, output: str, run: figures.Run) -> DataFrame:
    """The cases a run found (its rows that are not AUTO_CLEARED closures)."""
    return figures.run_cases(spark, output, run).where(F.col("status") != AUTO_CLEARED)


def _listed(cases: DataFrame, limit: int, *extra: str) -> DataFrame:
    return cases.orderBy(F.desc(F.abs(F.col("exposure_amount"))), "case_id").limit(limit).select(
        "case_id", "control_point_id", "case_type", "severity", "status", *extra, "owner_team", "exposure_amount",
        "exposure_class", "currency", mask_phones_in_text(F.col("business_key.account_id")).alias("account_id"),
        mask_phone(F.col("business_key.msisdn")).alias("msisdn"), utc("opened_at").alias("opened_at"),
        mask_phones_in_text(F.col("reason")).alias("reason"))


def _outcome_changes(spark: SparkSession, output: str, before: str, after: str) -> pd.DataFrame:
    table = _side_by_side(outcomes(spark, output, before), outcomes(spark, output, after), KEYS,
                          ["count", "amount", "exposure"])
    table["count_change"] = table["count_after"] - table["count_before"]
    return table


def _side_by_side(a: pd.DataFrame, b: pd.DataFrame, keys: list[str], values: list[str]) -> pd.DataFrame:
    """`a` and `b` joined on `keys` (outer), each value as `<value>_before` and `<value>_after`; a row one side
    lacks counts 0 there."""
    merged = a[keys + values].merge(b[keys + values], on=keys, how="outer", suffixes=("_before", "_after"))
    for v in values:
        for side in ("before", "after"):
            col = f"{v}_{side}"
            zero: object = 0 if v in ("count", "cases") else Decimal(0)
            merged[col] = [zero if x is None or (isinstance(x, float) and x != x) else x for x in merged[col]]
    merged["_order"] = list(zip(*[merged[k].fillna("") for k in keys], strict=True))
    return merged.sort_values("_order").drop(columns="_order").reset_index(drop=True)


def comparison_chart(cmp: Comparison) -> str:
    """Exposure by class and currency, a bar for each run, underbilling and overbilling apart."""
    items, texts = [], []
    for r in cmp.exposure.to_dict("records"):
        for part, css in (("positive", CLASS_CSS.get(r["exposure_class"], "other")), ("negative", "over")):
            for when in ("before", "after"):
                value = r[f"{part}_{when}"]
                if value:
                    items.append((f"{r['exposure_class']} {'+' if part == 'positive' else '−'} ({r['currency'] or '?'}) "
                                  f"{when}", value, css))
                    texts.append(f"{money(str(value))} · {r[f'cases_{when}']:,} cases")
    return bar_chart(items, f"exposure by class: {cmp.before} (before) and {cmp.after} (after)", texts)
