"""The inventory-to-bill synthetic month: contract shapes, reproducible, every section-7 outcome planted, and labels
that an independent reading of CONTRACT section 7 (plain Python over the generated rows) reproduces record by record.

The ground truth grades the engine's inventory-to-bill control, so what it promises is pinned here: one label per
product active in the cycle and per RECURRING charge of the cycle, the whole vocabulary, the seed004-s30 mix to the
record, and amounts prorated by calendar day. The reference below is written from the contract, not from the
generator: it reads only the two generated input tables.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import pytest
from chispa import assert_df_equality
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import DataType, DecimalType, LongType, StringType, TimestampType

from jobs.generate import main, ruleset_name
from jobs.synthetic.inventory_to_bill import InventoryParams, generate_month

ROWS = 1_500
SEED = 4
CUTOFF = datetime(2026, 6, 26, tzinfo=UTC)     # before the cycle end: ACTIVATED_AFTER_CUTOFF can be planted

S, T, L, MONEY = StringType(), TimestampType(), LongType(), DecimalType(18, 6)
CONTRACT_TYPES: dict[str, dict[str, DataType]] = {
    "product_inventory": {"product_id": S, "account_id": S, "offering_id": S, "billing_product_code": S, "state": S,
                          "activation_date": T, "termination_date": T, "monthly_fee": MONEY, "quantity": L,
                          "parent_product_id": S, "exemption": S, "gen_row_id": S},
    "bill_charge": {"charge_id": S, "source_rated_event_id": S, "product_id": S, "account_id": S, "msisdn": S,
                    "cycle_id": S, "invoice_id": S, "charge_type": S, "billing_product_code": S, "quantity": L,
                    "amount": MONEY, "currency": S, "billed_at": T, "gen_row_id": S},
    "ground_truth": {"gen_row_id": S, "table_name": S, "control_point_id": S, "side": S, "expected_outcome": S,
                     "account_id": S, "service_type": S, "expected_reason_code": S},
}

# CONTRACT section 7, written out here on purpose (not imported). IGNORED needs an ignore list: not planted.
VOCABULARY = {
    "LEFT": {"QUARANTINED", "EXEMPT", "EXEMPT_BUT_BILLED", "MATCHED", "PRODUCT_MAPPING_MISMATCH", "QUANTITY_MISMATCH",
             "RECURRING_AMOUNT_MISMATCH", "ACTIVE_PRODUCT_NOT_BILLED"},
    "RIGHT": {"MATCHED", "PRODUCT_MAPPING_MISMATCH", "QUANTITY_MISMATCH", "RECURRING_AMOUNT_MISMATCH",
              "EXEMPT_BUT_BILLED", "DUPLICATE_CHARGE", "BILLED_WITHOUT_ACTIVE_PRODUCT", "QUARANTINED"},
}
EXEMPT_REASONS = {"FREE_TRIAL", "BILLING_HOLD", "TEST_ACCOUNT", "ZERO_PRICE", "CHILD_BUNDLE_CHARGED_AT_PARENT",
                  "ACTIVATED_AFTER_CUTOFF"}
ORDER = {"product_inventory": ["gen_row_id"], "bill_charge": ["gen_row_id"], "ground_truth": ["side", "gen_row_id"]}


def _params(**overrides: Any) -> InventoryParams:
    return InventoryParams(**{"rows": ROWS, "seed": SEED, "cutoff": CUTOFF, **overrides})


@pytest.fixture(scope="module")
def month(spark: SparkSession) -> Iterator[dict[str, DataFrame]]:
    # localCheckpoint, not cache: the suite's autouse fixture clears the cache after every test.
    yield {name: df.localCheckpoint() for name, df in generate_month(spark.range(ROWS), _params()).items()}


@dataclass(frozen=True)
class Collected:
    products: list[dict[str, Any]]
    charges: list[dict[str, Any]]
    truth: dict[str, tuple[str, str, str | None]]


@pytest.fixture(scope="module")
def collected(month: dict[str, DataFrame]) -> Collected:
    """The small month in plain Python: the checks below read it without further Spark jobs."""
    return Collected(_collect(month["product_inventory"]), _collect(month["bill_charge"]),
                     _truth(month["ground_truth"]))


# ------------------------------------------------------------------------------- section 7, read independently


@dataclass(frozen=True)
class Cycle:
    cycle_id: str
    start: datetime
    end: datetime
    cutoff: datetime

    @classmethod
    def of(cls, params: InventoryParams) -> Cycle:
        return cls(params.cycle_id, params.cycle_start, params.cycle_end, params.cutoff_at)


def prorate(fee: Decimal, quantity: int, activation: datetime, termination: datetime | None, cycle: Cycle) -> Decimal:
    """monthly_fee * quantity * active days / days in the cycle, half-up to 6 places (`proration: daily`); active
    days run from the activation day to the termination day, both counted, clipped to the cycle's calendar days."""
    days_in_cycle = (cycle.end - cycle.start).days
    first: date = max(cycle.start.date(), activation.date())
    last: date = (cycle.end - timedelta(days=1)).date()
    if termination is not None:
        last = min(last, termination.date())
    active_days = (last - first).days + 1
    return (fee * quantity * active_days / days_in_cycle).quantize(Decimal("0.000001"), rounding=ROUND_HALF_UP)


def _collect(df: DataFrame) -> list[dict[str, Any]]:
    """Rows as dicts, timestamps as UTC datetimes (read as epoch seconds: the host's zone plays no part)."""
    stamps = [f.name for f in df.schema.fields if isinstance(f.dataType, TimestampType)]
    rows = df.select(*[F.col(c).cast("long").alias(c) if c in stamps else F.col(c) for c in df.columns]).collect()
    out = []
    for row in rows:
        record = row.asDict()
        for c in stamps:
            record[c] = None if record[c] is None else datetime.fromtimestamp(record[c], UTC)
        out.append(record)
    return out


def reference_outcomes(products: list[dict[str, Any]], charges: list[dict[str, Any]],
                       cycle: Cycle) -> dict[str, tuple[str, str, str | None]]:
    """gen_row_id -> (side, outcome, reason code) for every record section 7 gives an outcome, decided in plain
    Python from the two input tables. Readings of what the contract leaves open follow the generator's docstring."""
    def active(p: dict[str, Any]) -> bool:
        act, term = p["activation_date"], p["termination_date"]
        return act is None or (act < cycle.end and (term is None or term >= cycle.start))

    def product_quarantined(p: dict[str, Any]) -> bool:
        return any(p[c] is None for c in ("product_id", "activation_date", "monthly_fee", "account_id",
                                          "billing_product_code", "quantity"))

    out: dict[str, tuple[str, str, str | None]] = {}
    by_id = {p["product_id"]: p for p in products if p["product_id"] is not None}
    pairs = Counter((p["account_id"], p["billing_product_code"]) for p in products)
    by_pair = {(p["account_id"], p["billing_product_code"]): p for p in products
               if pairs[(p["account_id"], p["billing_product_code"])] == 1}
    right = [c for c in charges if c["cycle_id"] == cycle.cycle_id and c["charge_type"] == "RECURRING"]
    matched: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for c in right:
        if c["charge_id"] is None or c["amount"] is None:
            out[c["gen_row_id"]] = ("RIGHT", "QUARANTINED", None)
            continue
        if c["product_id"] is not None:
            p = by_id.get(c["product_id"])
        else:
            p = by_pair.get((c["account_id"], c["billing_product_code"]))
        if p is None or not active(p) or product_quarantined(p):
            out[c["gen_row_id"]] = ("RIGHT", "BILLED_WITHOUT_ACTIVE_PRODUCT", None)
        else:
            matched[p["gen_row_id"]].append(c)
    original: dict[str, dict[str, Any]] = {}
    for product_row, found in matched.items():
        first, *further = sorted(found, key=lambda c: (c["billed_at"], c["charge_id"]))
        original[product_row] = first
        for c in further:
            out[c["gen_row_id"]] = ("RIGHT", "DUPLICATE_CHARGE", None)
    billed_ids = {p["product_id"] for p in products if p["gen_row_id"] in original}
    for p in products:
        if not active(p):
            continue
        if product_quarantined(p):
            out[p["gen_row_id"]] = ("LEFT", "QUARANTINED", None)
            continue
        charge = original.get(p["gen_row_id"])
        reason = (p["exemption"] or ("ZERO_PRICE" if p["monthly_fee"] == 0 else None)
                  or ("CHILD_BUNDLE_CHARGED_AT_PARENT" if p["parent_product_id"] in billed_ids else None)
                  or ("ACTIVATED_AFTER_CUTOFF" if p["activation_date"] >= cycle.cutoff else None))
        if charge is None:
            out[p["gen_row_id"]] = ("LEFT", "EXEMPT", reason) if reason else ("LEFT", "ACTIVE_PRODUCT_NOT_BILLED", None)
            continue
        expected = prorate(p["monthly_fee"], p["quantity"], p["activation_date"], p["termination_date"], cycle)
        if reason:
            outcome = "EXEMPT_BUT_BILLED"
        elif charge["billing_product_code"] != p["billing_product_code"]:
            outcome = "PRODUCT_MAPPING_MISMATCH"
        elif charge["quantity"] != p["quantity"]:
            outcome = "QUANTITY_MISMATCH"
        elif abs(charge["amount"] - expected) > max(Decimal("0.01"), expected * Decimal("0.001")):
            outcome = "RECURRING_AMOUNT_MISMATCH"
        else:
            outcome = "MATCHED"
        out[p["gen_row_id"]] = ("LEFT", outcome, None)
        out[charge["gen_row_id"]] = ("RIGHT", outcome, None)
    return out


def _truth(ground_truth: DataFrame) -> dict[str, tuple[str, str, str | None]]:
    rows = ground_truth.collect()
    truth = {r.gen_row_id: (r.side, r.expected_outcome, r.expected_reason_code) for r in rows}
    assert len(truth) == len(rows), "one ground-truth row per record"
    return truth


def test_the_reference_prorates_as_computed_by_hand() -> None:
    """The reference itself, against figures worked out by hand (so the check below checks against something)."""
    june = Cycle("2026-06", datetime(2026, 6, 1, tzinfo=UTC), datetime(2026, 7, 1, tzinfo=UTC),
                 datetime(2026, 7, 1, tzinfo=UTC))
    july = Cycle("2026-07", datetime(2026, 7, 1, tzinfo=UTC), datetime(2026, 8, 1, tzinfo=UTC),
                 datetime(2026, 8, 1, tzinfo=UTC))
    fee = Decimal("49.99")
    assert prorate(fee, 1, datetime(2026, 6, 11, 13, tzinfo=UTC), None, june) == Decimal("33.326667")   # 20/30
    assert prorate(fee, 1, datetime(2026, 7, 11, 13, tzinfo=UTC), None, july) == Decimal("33.864194")   # 21/31
    before = datetime(2025, 1, 1, tzinfo=UTC)
    assert prorate(fee, 1, before, datetime(2026, 6, 1, tzinfo=UTC), june) == Decimal("1.666333")       # 1/30
    assert prorate(fee, 1, before, datetime(2026, 6, 30, 23, tzinfo=UTC), june) == fee                  # 30/30
    assert prorate(Decimal("24.50"), 3, datetime(2026, 6, 16, 23, 59, 59, tzinfo=UTC), None, june) == Decimal("36.75")


# ------------------------------------------------------------------------------------------------------- tests


def test_schemas_are_the_contract_types(month: dict[str, DataFrame]) -> None:
    assert sorted(month) == sorted(CONTRACT_TYPES)
    for name, expected in CONTRACT_TYPES.items():
        actual = {f.name: f.dataType for f in month[name].schema.fields}
        assert actual == expected, name
        assert month[name].columns == list(expected), name


def test_other_seed_gives_other_data(spark: SparkSession, month: dict[str, DataFrame]) -> None:
    other = generate_month(spark.range(ROWS), _params(seed=SEED + 1))["product_inventory"]
    assert other.exceptAll(month["product_inventory"]).limit(1).count() == 1


def test_every_outcome_and_reason_of_section_7_is_planted_and_ignored_rows_have_none(
        month: dict[str, DataFrame], collected: Collected) -> None:
    shapes = month["ground_truth"].select("table_name", "control_point_id", "side", "service_type").distinct()
    assert {tuple(r) for r in shapes.collect()} == {("product_inventory", "inventory-to-bill", "LEFT", None),
                                                     ("bill_charge", "inventory-to-bill", "RIGHT", None)}
    truth = collected.truth.values()
    assert {side: {o for s, o, _ in truth if s == side} for side in VOCABULARY} == VOCABULARY
    assert {(o, r) for _, o, r in truth if r is not None} == {("EXEMPT", reason) for reason in EXEMPT_REASONS}
    # The traps the control must step over are there, and have no ground truth: charges that are not RECURRING of
    # this cycle, products not active in it.
    ignored = {(c["charge_type"], c["cycle_id"]) for c in collected.charges if c["gen_row_id"] not in collected.truth}
    assert ignored == {("ONE_TIME", "2026-06"), ("ADJUSTMENT", "2026-06"), ("USAGE", "2026-06"),
                       ("RECURRING", "2026-05")}
    inactive = [p for p in collected.products if p["gen_row_id"] not in collected.truth]
    start, end = datetime(2026, 6, 1, tzinfo=UTC), datetime(2026, 7, 1, tzinfo=UTC)
    assert any(p["termination_date"] == start - timedelta(seconds=1) for p in inactive), "the last second before"
    assert any(p["activation_date"] == end for p in inactive), "activated exactly at the cycle end"
    assert all(p["activation_date"] >= end or p["termination_date"] < start for p in inactive)


def test_ground_truth_agrees_with_an_independent_reading_of_section_7(collected: Collected) -> None:
    """Every label, recomputed from the generated product and charge rows alone: same records, same outcomes."""
    products, charges, truth = collected.products, collected.charges, collected.truth
    assert len({p["gen_row_id"] for p in products}) == len(products)
    assert len({c["gen_row_id"] for c in charges}) == len(charges)
    expected = reference_outcomes(products, charges, Cycle.of(_params()))
    wrong = sorted((k, truth.get(k), expected.get(k)) for k in truth.keys() | expected.keys()
                   if truth.get(k) != expected.get(k))
    assert not wrong, f"{len(wrong)} labels differ (gen_row_id, ground truth, reference): {wrong[:10]}"
    # The planted edge cases the reference decided on are really in the data.
    by_pair = [c for c in charges if c["product_id"] is None and c["charge_type"] == "RECURRING"]
    assert {expected[c["gen_row_id"]][1] for c in by_pair if c["gen_row_id"] in expected} \
        >= {"MATCHED", "BILLED_WITHOUT_ACTIVE_PRODUCT"}
    billed_at = Counter((c["product_id"], c["billed_at"]) for c in charges
                        if c["product_id"] is not None and c["charge_type"] == "RECURRING")
    assert max(billed_at.values()) >= 2, "a duplicate billed at the same instant as its original"
    at_cutoff = [p for p in products if p["activation_date"] == CUTOFF]
    assert at_cutoff and all(expected[p["gen_row_id"]] == ("LEFT", "EXEMPT", "ACTIVATED_AFTER_CUTOFF")
                             for p in at_cutoff)
    assert any(p["termination_date"] == datetime(2026, 6, 1, tzinfo=UTC) and p["gen_row_id"] in expected
               for p in products), "a product terminated at the first instant of the cycle: active, one day"


def test_seed004_s30_at_one_hundredth_gives_the_exact_mix(spark: SparkSession) -> None:
    """12,000 active products: 11,850 charged and MATCHED, 100 / 20 / 10 exempt, exactly 20 not billed; placed the
    same on an odd partitioning (the placement must not depend on it), and nothing else planted."""
    params = InventoryParams.seed004_s30(rows=12_000)
    month = generate_month(spark.range(0, 12_000, 1, 3), params)
    counts = {(r.side, r.expected_outcome, r.expected_reason_code): r["count"] for r in
              month["ground_truth"].groupBy("side", "expected_outcome", "expected_reason_code").count().collect()}
    assert counts == {
        ("LEFT", "MATCHED", None): 11_850, ("RIGHT", "MATCHED", None): 11_850,
        ("LEFT", "EXEMPT", "FREE_TRIAL"): 100, ("LEFT", "EXEMPT", "BILLING_HOLD"): 20,
        ("LEFT", "EXEMPT", "TEST_ACCOUNT"): 10, ("LEFT", "ACTIVE_PRODUCT_NOT_BILLED", None): 20,
    }
    assert month["product_inventory"].count() == 12_000
    assert month["bill_charge"].count() == 11_850


@pytest.mark.parametrize("cycle_id, days", [("2026-06", 30), ("2026-07", 31)])
def test_mid_cycle_activation_is_prorated_by_calendar_day(spark: SparkSession, cycle_id: str, days: int) -> None:
    """MATCHED products activated after the first day are billed fee x seats x active days / days in the month, as
    the reference prorates it (exactly, or within the planted 0.004); the default cutoff (the end) plants no
    ACTIVATED_AFTER_CUTOFF."""
    params = InventoryParams.for_cycle(cycle_id, rows=400, seed=SEED)
    assert params.days == days
    month = generate_month(spark.range(400), params)
    cycle = Cycle.of(params)
    truth = _truth(month["ground_truth"])
    assert not [v for v in truth.values() if v[2] == "ACTIVATED_AFTER_CUTOFF"]
    products = [p for p in _collect(month["product_inventory"])
                if truth.get(p["gen_row_id"]) == ("LEFT", "MATCHED", None)
                and p["activation_date"].date() > cycle.start.date()]
    billed = {c["product_id"]: c["amount"] for c in _collect(month["bill_charge"])
              if truth.get(c["gen_row_id"], ("", ""))[1] == "MATCHED"}
    exact = 0
    for p in products:
        expected = prorate(p["monthly_fee"], p["quantity"], p["activation_date"], p["termination_date"], cycle)
        assert expected < p["monthly_fee"] * p["quantity"], p
        amount = billed.get(p["product_id"])
        assert amount is not None and amount - expected in {Decimal(0), Decimal("0.004"), Decimal("-0.004")}, p
        exact += amount == expected
    assert exact >= 3, f"only {exact} mid-cycle activations billed at exactly the prorated amount"


def test_cli_writes_the_month_as_delta_and_the_same_seed_gives_the_same_rows(spark: SparkSession,
                                                                            month: dict[str, DataFrame],
                                                                            tmp_path: Path) -> None:
    """`telco-ra generate --ruleset rulesets/inventory_to_bill.yaml` (no such file yet: its stem names the generator)
    writes the three tables as Delta; read back, they equal the fixture's independent generation with the same
    arguments, row for row."""
    out = tmp_path / "month"
    assert main(["--ruleset", str(tmp_path / "rulesets" / "inventory_to_bill.yaml"), "--rows", str(ROWS),
                 "--seed", str(SEED), "--cutoff", CUTOFF.isoformat().replace("+00:00", "Z"), "--out", str(out),
                 "--master", "local[2]"]) == 0
    assert sorted(p.name for p in out.iterdir()) == sorted(CONTRACT_TYPES)
    for name in CONTRACT_TYPES:
        written = spark.read.format("delta").load(str(out / name))
        assert_df_equality(written.orderBy(*ORDER[name]), month[name].orderBy(*ORDER[name]), ignore_nullable=True)


def test_ruleset_name_is_the_ruleset_key_else_the_file_stem(tmp_path: Path) -> None:
    named = tmp_path / "my_inventory_rules.yaml"
    named.write_text("ruleset: inventory_to_bill\nversion: '1'\n")
    assert ruleset_name(str(named)) == "inventory_to_bill"
    unnamed = tmp_path / "inventory_to_bill.yaml"
    unnamed.write_text("version: '1'\n")
    assert ruleset_name(str(unnamed)) == "inventory_to_bill"
    assert ruleset_name(str(tmp_path / "missing" / "inventory_to_bill.yaml")) == "inventory_to_bill"
    assert ruleset_name("rulesets/usage_to_bill.yaml") == "usage_to_bill"


@pytest.mark.parametrize("argv, message", [
    (["--ruleset", "rulesets/partner_settlement.yaml"],      # a ruleset with no generator (yet)
     "no synthetic generator for ruleset 'partner_settlement' (from rulesets/partner_settlement.yaml); generators "
     "exist for: carrier_invoice_vs_cdr, inventory_to_bill, line_inventory_audit, provisioning_to_bill, "
     "usage_to_bill"),
    (["--ruleset", "rulesets/inventory_to_bill.yaml", "--scenario", "seed004"], "not one of ruleset inventory_to_bill"),
    (["--ruleset", "rulesets/inventory_to_bill.yaml", "--cutoff", "2026-06-28T00:00:00"], "must carry a zone"),
    (["--ruleset", "rulesets/inventory_to_bill.yaml", "--cutoff", "2026-06-01T12:00:00Z"], "cutoff must be within"),
    (["--scenario", "seed004-s30"], "not one of ruleset usage_to_bill"),
])
def test_main_refuses_bad_arguments_before_starting_spark(argv: list[str], message: str,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*argv, "--out", "/nonexistent"]) == 2
    assert message in capsys.readouterr().err
