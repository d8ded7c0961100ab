"""Inventory-to-bill (CONTRACT section 7) on the engine: every outcome of both sides against the generator's ground
truth at precision and recall 1.0, with reason codes; the seed-004 section-30 mix at 1/100; and one hand-written
month (other ids, other SKUs, a 31-day month, a cutoff) whose outcomes are written here by hand.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from factories import write_table
from jobs.config import load_conf
from jobs.generate import generate
from jobs.ruleset import load_ruleset
from jobs.run import execute
from jobs.score import score
from jobs.synthetic.inventory_to_bill import InventoryParams

RULESET = str(Path(__file__).resolve().parent.parent / "rulesets" / "inventory_to_bill.yaml")


def _conf(root: Path, paths: dict[str, str], cycle: dict[str, str], cycle_id: str = "2026-06") -> Path:
    conf = {"tables": {k: v for k, v in paths.items() if k != "ground_truth"}, "output": str(root / "output"),
            "cycles": {cycle_id: cycle}}
    path = root / "conf.yaml"
    path.write_text(yaml.safe_dump(conf))
    return path


JUNE = {"start": "2026-06-01T00:00:00Z", "end": "2026-07-01T00:00:00Z", "close": "2026-07-03T00:00:00Z"}


def _run_and_score(spark: SparkSession, root: Path, params: InventoryParams, cycle: dict[str, str]) -> Any:
    paths = generate(spark, str(root / "input"), params)
    conf = load_conf(_conf(root, paths, cycle, params.cycle_id))
    ruleset = load_ruleset(RULESET)
    result = execute(spark, conf, ruleset, params.cycle_id)
    assert result.committed
    truth = spark.read.format("delta").load(paths["ground_truth"])
    return result, score(spark, conf, ruleset, result.run_id, truth)


def test_every_outcome_of_both_sides_at_precision_and_recall_one(spark: SparkSession, tmp_path: Path) -> None:
    cutoff = datetime(2026, 6, 28, tzinfo=UTC)
    params = InventoryParams.for_cycle("2026-06", rows=600, seed=11, cutoff=cutoff)
    _, scores = _run_and_score(spark, tmp_path, params, {**JUNE, "cutoff": "2026-06-28T00:00:00Z"})
    bad = [s for s in scores if s.precision != 1.0 or s.recall != 1.0]
    assert not bad, "\n".join(f"{s.side} {s.outcome}: expected {s.expected} actual {s.actual} tp {s.true_positive}"
                              for s in bad)
    seen = {(s.side, s.outcome) for s in scores if s.expected}
    cp = load_ruleset(RULESET).control_points["inventory-to-bill"]
    vocabulary = {(side, rule.outcome) for side in cp.sides for rule in cp.decide[side]}
    outcomes_seen = {(side, o.split("/")[0]) for side, o in seen}
    assert outcomes_seen == vocabulary, vocabulary - outcomes_seen
    reasons = {o.split("/")[1] for side, o in seen if o.startswith("EXEMPT/")}
    assert reasons == {"FREE_TRIAL", "BILLING_HOLD", "TEST_ACCOUNT", "ZERO_PRICE", "CHILD_BUNDLE_CHARGED_AT_PARENT",
                       "ACTIVATED_AFTER_CUTOFF"}


def test_seed004_section_30_gives_exactly_20_active_products_not_billed_at_one_hundredth(
        spark: SparkSession, tmp_path: Path) -> None:
    result, scores = _run_and_score(spark, tmp_path, InventoryParams.seed004_s30(rows=12_000), JUNE)
    counts = {(m["side"], m["outcome"]): int(m["count"]) for m in result.metrics}
    assert counts[("LEFT", "ACTIVE_PRODUCT_NOT_BILLED")] == 20
    assert counts[("LEFT", "MATCHED")] == 11_850
    assert counts[("LEFT", "EXEMPT")] == 130
    assert sum(n for (side, _), n in counts.items() if side == "LEFT") == 12_000
    by_reason = {s.outcome: s.actual for s in scores if s.side == "LEFT" and s.outcome.startswith("EXEMPT/")}
    assert by_reason == {"EXEMPT/FREE_TRIAL": 100, "EXEMPT/BILLING_HOLD": 20, "EXEMPT/TEST_ACCOUNT": 10}
    assert all(s.precision == 1.0 and s.recall == 1.0 for s in scores)


def _product(pid: str | None, **kw: Any) -> dict[str, Any]:
    return {"product_id": pid, **kw}


def _charge(cid: str | None, pid: str | None, amount: str, **kw: Any) -> dict[str, Any]:
    return {"charge_id": cid, "product_id": pid, "charge_type": "RECURRING", "cycle_id": "2026-07",
            "amount": Decimal(amount), "billed_at": datetime(2026, 8, 1, 3, tzinfo=UTC), "account_id": "A-9",
            "billing_product_code": "FIBRE-1G", **kw}


def test_a_hand_written_july_with_other_ids_and_skus(spark: SparkSession, tmp_path: Path) -> None:
    """July has 31 days; ids, SKUs and accounts are not the generator's; the cutoff is the 30th."""
    base = {"account_id": "A-9", "billing_product_code": "FIBRE-1G", "monthly_fee": Decimal("31.000000"),
            "quantity": 1, "activation_date": datetime(2026, 1, 5, tzinfo=UTC)}
    products = [
        _product("p/full", **base),                                                     # MATCHED 31.00
        _product("p/mid", **{**base, "activation_date": datetime(2026, 7, 11, 15, tzinfo=UTC)}),  # 21 days: 21.00
        _product("p/gone", **{**base, "termination_date": datetime(2026, 6, 30, 23, tzinfo=UTC)}),  # not active
        _product("p/seats", **{**base, "billing_product_code": "SEAT-PRO", "quantity": 5,
                               "monthly_fee": Decimal("10.000000")}),                 # billed 3 seats
        _product("p/trial", **{**base, "exemption": "FREE_TRIAL"}),                       # EXEMPT
        _product("p/hold-billed", **{**base, "exemption": "BILLING_HOLD"}),               # EXEMPT_BUT_BILLED
        _product("p/late", **{**base, "activation_date": datetime(2026, 7, 30, 8, tzinfo=UTC)}),  # after cutoff
        _product("p/none", **base),                                                     # not billed: 31.00
        _product(None, **base),                                                         # QUARANTINED
        _product("p/sku", **{**base, "billing_product_code": "TV-BASIC"}),               # billed as FIBRE-1G
    ]
    charges = [
        _charge("c/1", "p/full", "31.000000"),
        _charge("c/2", "p/mid", "21.004000"),                                            # within 0.01
        _charge("c/3", "p/gone", "31.000000"),                                           # no active product
        _charge("c/4", "p/seats", "30.000000", billing_product_code="SEAT-PRO", quantity=3),
        _charge("c/5", "p/hold-billed", "31.000000"),
        _charge("c/6", "p/full", "31.000000", billed_at=datetime(2026, 8, 2, tzinfo=UTC)),  # duplicate
        _charge("c/7", "p/sku", "31.000000"),
        _charge("c/8", None, "31.000000", account_id="A-9", billing_product_code="TV-BASIC"),  # -> p/sku: dup
        _charge("c/9", "p/full", "5.000000", charge_type="ONE_TIME"),                  # out of scope
    ]
    root = tmp_path
    paths = {}
    for table, rows in (("product_inventory", products), ("bill_charge", charges)):
        paths[table] = write_table(spark, table, rows, root / "input" / table)
    cycle = {"start": "2026-07-01T00:00:00Z", "end": "2026-08-01T00:00:00Z", "close": "2026-08-03T00:00:00Z",
             "cutoff": "2026-07-30T00:00:00Z"}
    conf = load_conf(_conf(root, paths, cycle, "2026-07"))
    result = execute(spark, conf, load_ruleset(RULESET), "2026-07")
    rows = (spark.read.format("delta").load(str(root / "output" / "record_outcome"))
            .where(F.col("run_id") == result.run_id)
            .select("side", "record_id", "outcome", "reason_code", "expected_amount", "exposure_amount").collect())
    got = {(r["side"], r["record_id"]): (r["outcome"], r["reason_code"], r["expected_amount"], r["exposure_amount"])
           for r in rows}
    d = Decimal
    assert got[("LEFT", "p/full")][:3] == ("MATCHED", None, d("31.000000"))
    assert got[("LEFT", "p/mid")][:3] == ("MATCHED", None, d("21.000000"))
    assert ("LEFT", "p/gone") not in got
    assert got[("LEFT", "p/seats")] == ("QUANTITY_MISMATCH", None, d("50.000000"), d("20.000000"))
    assert got[("LEFT", "p/trial")][:2] == ("EXEMPT", "FREE_TRIAL")
    assert got[("LEFT", "p/hold-billed")] == ("EXEMPT_BUT_BILLED", None, d("31.000000"), d("-31.000000"))
    assert got[("LEFT", "p/late")][:2] == ("EXEMPT", "ACTIVATED_AFTER_CUTOFF")
    assert got[("LEFT", "p/none")] == ("ACTIVE_PRODUCT_NOT_BILLED", None, d("31.000000"), d("31.000000"))
    assert got[("LEFT", None)][0] == "QUARANTINED"
    assert got[("LEFT", "p/sku")][0] == "PRODUCT_MAPPING_MISMATCH"
    assert got[("RIGHT", "c/1")][0] == "MATCHED"
    assert got[("RIGHT", "c/2")][0] == "MATCHED"
    assert got[("RIGHT", "c/3")] == ("BILLED_WITHOUT_ACTIVE_PRODUCT", None, None, d("-31.000000"))
    assert got[("RIGHT", "c/4")][0] == "QUANTITY_MISMATCH"
    assert got[("RIGHT", "c/5")][:2] == ("EXEMPT_BUT_BILLED", None)
    assert got[("RIGHT", "c/6")] == ("DUPLICATE_CHARGE", None, d("31.000000"), d("-31.000000"))
    assert got[("RIGHT", "c/7")][0] == "PRODUCT_MAPPING_MISMATCH"
    assert got[("RIGHT", "c/8")][0] == "DUPLICATE_CHARGE"
    assert ("RIGHT", "c/9") not in got
    run = {r["control_point_id"]: r for r in spark.read.format("delta").load(str(root / "output" / "control_run"))
           .where(F.col("run_id") == result.run_id).collect()}["inventory-to-bill"]
    assert run["counters"]["rows_out_of_scope.bill_charge"] == 1
    assert run["counters"]["rows_out_of_scope.product_inventory"] == 1
