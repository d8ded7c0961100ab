"""The synthetic month: reproducible, in the contract's shapes, every outcome planted once per record, skewed.

The generator's ground truth is what the end-to-end tests grade the engine against, so these tests pin what that
ground truth promises: one label per record and control side, the whole vocabulary present, and data shaped so the
labels can be true (no accidental fuzzy candidates, rated amounts that agree with the tariff table).
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from chispa import assert_df_equality
from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql.types import DataType, DecimalType, LongType, StringType, TimestampType

from jobs.generate import generate, main
from jobs.synthetic.usage_to_bill import ExactCounts, GeneratorParams, generate_month

ROWS = 5_000
SEED = 42

S, T, L, MONEY = StringType(), TimestampType(), LongType(), DecimalType(18, 6)
CONTRACT_TYPES: dict[str, dict[str, DataType]] = {
    "cdr": {"record_id": S, "source_file": S, "msisdn": S, "account_id": S, "service_type": S, "direction": S,
            "other_party": S, "start_time": T, "duration_s": L, "volume_bytes": L, "cycle_id": S, "received_at": T,
            "carrier": S, "gen_row_id": S},
    "rated_event": {"rated_event_id": S, "source_record_id": S, "msisdn": S, "account_id": S, "service_type": S,
                    "direction": S, "other_party": S, "start_time": T, "cycle_id": S, "quantity": L, "tariff_id": S,
                    "tariff_version": S, "amount": MONEY, "currency": S, "rated_at": T, "gen_row_id": S},
    "bill_charge": {"charge_id": S, "source_rated_event_id": S, "product_id": S, "account_id": S, "msisdn": S,
                    "cycle_id": S, "invoice_id": S, "charge_type": S, "billing_product_code": S, "quantity": L,
                    "amount": MONEY, "currency": S, "billed_at": T, "gen_row_id": S},
    "suspense": {"record_id": S, "reason": S, "rejected_at": T, "status": S},
    "tariff": {"tariff_id": S, "tariff_version": S, "service_type": S, "valid_from": T, "valid_to": T,
               "rate_per_unit": DecimalType(18, 8), "rounding_increment": L, "minimum_charge": MONEY, "currency": S},
    "ground_truth": {"gen_row_id": S, "table_name": S, "control_point_id": S, "side": S, "expected_outcome": S,
                     "account_id": S, "service_type": S},
}

# CONTRACT section 4, written out here on purpose (not imported): the generator must plant every one of them.
VOCABULARY: dict[tuple[str, str | None], set[str]] = {
    ("usage-to-rating", "LEFT"): {"MATCHED", "IN_SUSPENSE", "SUSPENSE_AGED", "LATE_USAGE", "USAGE_NOT_RATED",
                                  "AMBIGUOUS_MATCH", "DUPLICATE_USAGE", "QUARANTINED"},
    ("usage-to-rating", "RIGHT"): {"MATCHED", "DUPLICATE_RATED_EVENT", "RATED_WITHOUT_USAGE", "AMBIGUOUS_MATCH",
                                   "QUARANTINED"},
    ("rating-accuracy", "LEFT"): {"MATCHED", "TARIFF_MISMATCH", "TARIFF_NOT_FOUND", "QUARANTINED"},
    ("rating-to-billing", "LEFT"): {"MATCHED", "RATED_NOT_BILLED", "CHARGE_AMOUNT_MISMATCH", "QUARANTINED"},
    ("rating-to-billing", "RIGHT"): {"MATCHED", "CHARGE_WITHOUT_RATED_EVENT", "DUPLICATE_CHARGE",
                                     "CHARGE_AMOUNT_MISMATCH", "QUARANTINED"},
    ("usage-aggregate", None): {"MATCHED", "AGGREGATE_VARIANCE"},
}

ORDER: dict[str, list[str]] = {
    "cdr": ["gen_row_id"], "rated_event": ["gen_row_id"], "bill_charge": ["gen_row_id"],
    "suspense": ["record_id"], "tariff": ["tariff_id", "tariff_version"],
    "ground_truth": ["control_point_id", "side", "gen_row_id", "account_id", "service_type"],
}


def _month(spark: SparkSession, seed: int) -> dict[str, DataFrame]:
    return generate_month(spark.range(ROWS), GeneratorParams(rows=ROWS, seed=seed))


@pytest.fixture(scope="module")
def month(spark: SparkSession) -> Iterator[dict[str, DataFrame]]:
    # localCheckpoint, not cache: the suite's autouse fixture clears the cache after every test.
    yield {name: df.localCheckpoint() for name, df in _month(spark, SEED).items()}


def _national(col: str) -> F.Column:
    """Last 10 digits of a US number in any of the generated formats, the PBX extension dropped first."""
    digits = F.regexp_replace(F.regexp_replace(F.col(col), r"\s*x\d+$", ""), r"\D", "")
    return F.when(F.length(digits) >= 10, F.substring(digits, -10, 10))


def test_same_seed_gives_identical_tables_written_as_delta(spark: SparkSession, month: dict[str, DataFrame],
                                                          tmp_path: Path) -> None:
    """A second generation with the same params, written by the job and read back, equals the first."""
    paths = generate(spark, str(tmp_path), GeneratorParams(rows=ROWS, seed=SEED))
    assert sorted(paths) == sorted(CONTRACT_TYPES)
    for name, path in paths.items():
        again = spark.read.format("delta").load(path)
        assert_df_equality(again.orderBy(*ORDER[name]), month[name].orderBy(*ORDER[name]), ignore_nullable=True)


def test_other_seed_gives_other_data(spark: SparkSession, month: dict[str, DataFrame]) -> None:
    other = _month(spark, SEED + 1)
    for name in ("cdr", "rated_event"):
        assert other[name].exceptAll(month[name]).limit(1).count() == 1, name


def test_schemas_are_the_contract_types(month: dict[str, DataFrame]) -> None:
    for name, expected in CONTRACT_TYPES.items():
        actual = {f.name: f.dataType for f in month[name].schema.fields}
        assert actual == expected, name


def test_every_outcome_of_every_control_side_is_planted(month: dict[str, DataFrame]) -> None:
    rows = month["ground_truth"].select("control_point_id", "side", "expected_outcome").distinct().collect()
    planted: dict[tuple[str, str | None], set[str]] = {}
    for row in rows:
        planted.setdefault((row.control_point_id, row.side), set()).add(row.expected_outcome)
    assert planted == VOCABULARY


def test_ground_truth_has_one_row_per_record_and_control_side(month: dict[str, DataFrame]) -> None:
    gt = month["ground_truth"].collect()
    records = [r for r in gt if r.gen_row_id is not None]
    keys = [(r.gen_row_id, r.control_point_id, r.side) for r in records]
    assert len(keys) == len(set(keys))
    aggregate = [r for r in gt if r.control_point_id == "usage-aggregate"]
    assert all(r.gen_row_id is None and r.side is None for r in aggregate)
    assert len({(r.account_id, r.service_type) for r in aggregate}) == len(aggregate)
    assert len(aggregate) + len(records) == len(gt)

    expected_sides = {
        "cdr": {("usage-to-rating", "LEFT")},
        "rated_event": {("usage-to-rating", "RIGHT"), ("rating-accuracy", "LEFT"), ("rating-to-billing", "LEFT")},
        "bill_charge": {("rating-to-billing", "RIGHT")},
    }
    charge_types = {r.gen_row_id: r.charge_type for r in month["bill_charge"].select("gen_row_id", "charge_type")
                    .collect()}
    assert "RECURRING" in charge_types.values()
    for name, sides in expected_sides.items():
        ids = [r.gen_row_id for r in month[name].select("gen_row_id").collect()]
        assert len(ids) == len(set(ids)), name
        if name == "bill_charge":
            ids = [i for i in ids if charge_types[i] == "USAGE"]
        expected = {(i, cp, side) for i in ids for cp, side in sides}
        labelled = {(r.gen_row_id, r.control_point_id, r.side) for r in records if r.table_name == name}
        assert labelled == expected, name


def test_hot_numbers_carry_the_skew_share(month: dict[str, DataFrame]) -> None:
    per_number = month["cdr"].select(_national("msisdn").alias("n")).where(F.col("n").isNotNull()) \
        .groupBy("n").count()
    numbers = per_number.count()
    top = max(3, round(0.001 * numbers))
    counts = [r["count"] for r in per_number.orderBy(F.desc("count")).collect()]
    share = sum(counts[:top]) / sum(counts)
    assert 0.25 <= share <= 0.35, (top, numbers, share)


def test_distinct_usage_of_one_number_is_never_within_fuzzy_reach(month: dict[str, DataFrame]) -> None:
    """Records of different slots of a number are > 10 s + 2 x 3 s clock skew apart, so only planted ones meet."""
    cdr = month["cdr"].where(F.col("start_time").isNotNull()).select(
        _national("msisdn").alias("n"), F.split("gen_row_id", "-")[1].alias("slot"),
        F.unix_timestamp("start_time").alias("t"),
    ).where(F.col("n").isNotNull())
    w = Window.partitionBy("n").orderBy("t", "slot")
    gaps = cdr.select("*", F.lag("t").over(w).alias("prev_t"), F.lag("slot").over(w).alias("prev_slot"))
    too_close = gaps.where((F.col("slot") != F.col("prev_slot")) & (F.col("t") - F.col("prev_t") <= 16))
    assert too_close.count() == 0


def test_rating_accuracy_labels_agree_with_the_tariff_table(month: dict[str, DataFrame]) -> None:
    """Expected amounts recomputed here from the tariff table: MATCHED within tolerance, TARIFF_MISMATCH beyond."""
    tariff = month["tariff"]
    rated = month["rated_event"].alias("r")
    priced = rated.join(
        tariff.alias("t"),
        (F.col("r.tariff_id") == F.col("t.tariff_id")) & (F.col("r.start_time") >= F.col("t.valid_from"))
        & (F.col("t.valid_to").isNull() | (F.col("r.start_time") < F.col("t.valid_to"))),
        "left",
    )
    units = F.ceil(F.col("r.quantity").cast(DecimalType(20, 0)) / F.col("t.rounding_increment")) \
        * F.col("t.rounding_increment")
    expected = F.round(F.greatest(F.col("t.minimum_charge"), units * F.col("t.rate_per_unit")), 6)
    labels = month["ground_truth"].where(F.col("control_point_id") == "rating-accuracy") \
        .select("gen_row_id", "expected_outcome")
    checked = priced.select("r.gen_row_id", "r.amount", expected.alias("expected"), F.col("t.tariff_id").alias("tid")) \
        .join(labels, "gen_row_id")
    off = F.abs(F.col("amount") - F.col("expected")) > F.greatest(F.lit(Decimal("0.01")),
                                                                   F.col("expected") * Decimal("0.001"))
    assert checked.where((F.col("expected_outcome") == "MATCHED") & (off | F.col("tid").isNull())).count() == 0
    assert checked.where((F.col("expected_outcome") == "TARIFF_MISMATCH") & ~off).count() == 0
    assert checked.where((F.col("expected_outcome") == "TARIFF_NOT_FOUND") & F.col("tid").isNotNull()).count() == 0


def test_main_rejects_a_bad_cycle_before_starting_spark() -> None:
    assert main(["--cycle", "2026-13", "--out", "/nonexistent"]) == 2


def test_seed004_preset_states_the_scenario_at_10m_and_scales_it() -> None:
    assert GeneratorParams.seed004().rows == 10_000_000
    assert GeneratorParams.seed004().exact == ExactCounts(rejected=50_000, late=20_000, duplicates=5_000,
                                                          tariff_mismatches=3_000)
    assert GeneratorParams.seed004(rows=200_000).exact == ExactCounts(1_000, 400, 100, 60)
    assert GeneratorParams.seed004(rows=20_000, seed=3).exact == ExactCounts(100, 40, 10, 6)


@pytest.mark.parametrize("counts, message", [
    (ExactCounts(late=900, duplicates=900), "need 1800 slots"),
    (ExactCounts(rejected=600), "more than 0.5"),
])
def test_exact_counts_that_cannot_be_planted_are_refused(counts: ExactCounts, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        GeneratorParams(rows=1_000, exact=counts)
    with pytest.raises(ValueError, match="non-negative int"):
        ExactCounts(late=-1)


def test_exact_counts_come_out_exactly_and_every_other_outcome_is_still_planted(spark: SparkSession) -> None:
    """The four counted outcomes equal the requested numbers to the record (on an odd partitioning: the placement
    must not depend on it); the rest of the vocabulary is still planted from the rates."""
    rows = 20_000
    params = GeneratorParams.seed004(rows=rows, seed=11)
    assert params.exact is not None
    gt = generate_month(spark.range(0, rows, 1, 3), params)["ground_truth"]
    counts = {(r.control_point_id, r.side, r.expected_outcome): r["count"]
              for r in gt.groupBy("control_point_id", "side", "expected_outcome").count().collect()}

    def u2r(outcome: str) -> int:
        return counts.get(("usage-to-rating", "LEFT", outcome), 0)

    measured = ExactCounts(rejected=u2r("IN_SUSPENSE") + u2r("SUSPENSE_AGED"), late=u2r("LATE_USAGE"),
                           duplicates=u2r("DUPLICATE_USAGE"),
                           tariff_mismatches=counts.get(("rating-accuracy", "LEFT", "TARIFF_MISMATCH"), 0))
    assert measured == params.exact == ExactCounts(100, 40, 10, 6)
    assert u2r("IN_SUSPENSE") > 0 and u2r("SUSPENSE_AGED") > 0
    planted: dict[tuple[str, str | None], set[str]] = {}
    for cp, side, outcome in counts:
        planted.setdefault((cp, side), set()).add(outcome)
    assert planted == VOCABULARY


def test_main_rejects_a_scenario_too_small_for_its_counts_before_starting_spark() -> None:
    assert main(["--scenario", "seed004", "--rows", "500", "--out", "/nonexistent"]) == 2
