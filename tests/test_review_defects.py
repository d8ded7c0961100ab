"""Defects found in review and on unseen data (issue 10), each pinned by a test that failed before its fix.

One hand-built month whose tariff table uses ids of its own (nothing like the generator's VOICE-STD), run once under
a host time zone that is not UTC (America/New_York), holds most of the points; each test reads one concept from it.
The runs that need a state of their own (a crash, a rerun, a broken outcome set) are separate and small.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml
from chispa import assert_df_equality
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

import scenario
from factories import RULESET, T0, frame, write_inputs
from jobs.config import ConfigError, load_conf
from jobs.inputs import InputError
from jobs.outputs import content_hash, current, read_output
from jobs.rerun import rerun
from jobs.ruleset import load_ruleset
from jobs.run import ConservationError, RunHooks, RunResult, execute
from jobs.summary import render
from scenario import CLOSE, H, cdr, charge
from transforms.tariff import expected_amount

RUN_ID = "defects-month"

# Tariff ids of the operator's own: the shipped ruleset must price never-rated usage from these. The lowest VOICE id
# has no version valid in June (point 4); SMS has no tariff at all (a record that truly cannot be priced).
TARIFFS = [
    {"tariff_id": "A-VOX-LEGACY", "tariff_version": "2019", "service_type": "VOICE",
     "valid_from": datetime(2025, 1, 1, tzinfo=UTC), "valid_to": datetime(2026, 5, 1, tzinfo=UTC),
     "rate_per_unit": Decimal("0.02000000"), "rounding_increment": 60, "minimum_charge": Decimal("0"),
     "currency": "USD"},
    {"tariff_id": "B-VOX", "tariff_version": "v7", "service_type": "VOICE",
     "valid_from": datetime(2026, 1, 1, tzinfo=UTC), "valid_to": None, "rate_per_unit": Decimal("0.01000000"),
     "rounding_increment": 60, "minimum_charge": Decimal("0.050000"), "currency": "USD"},
    {"tariff_id": "NET-1", "tariff_version": "a", "service_type": "DATA",
     "valid_from": datetime(2026, 1, 1, tzinfo=UTC), "valid_to": None, "rate_per_unit": Decimal("0.00000001"),
     "rounding_increment": 1048576, "minimum_charge": Decimal("0.010000"), "currency": "USD"},
]


def rated(reid: str, src: str | None, i: int, **kw: Any) -> dict[str, Any]:
    """scenario.rated, rated with this month's own tariff."""
    return scenario.rated(reid, src, i, **{"tariff_id": "B-VOX", "tariff_version": "v7", **kw})


# Point 18: a chain where each round can match exactly one pair (every rated event's best is the previous usage
# record), ten rounds in all; positions R1, L1, R2, L2, ... with gaps of 1, 2, 3, ... units of 50 ms.
CHAIN = 10
_pos, _at = [], 0
for _gap in range(1, 2 * CHAIN + 1):
    _pos.append(_at)
    _at += _gap
CHAIN_R = [T0 + timedelta(milliseconds=50 * _pos[2 * k]) for k in range(CHAIN)]
CHAIN_L = [T0 + timedelta(milliseconds=50 * _pos[2 * k + 1]) for k in range(CHAIN)]
# Point 18, pinned ambiguity: L1 ties R1 and R2 (1 s each side); L2 fits R2 (3 s) and R1 (5 s).
TIE = T0 + 3 * H

# Point 19: ACC-30's usage rated and billed to ACC-33. Their own buckets differ (9 and 3 of 16).
XACC_BUCKET, XACC_PAYER = 9, "ACC-33"

CDR = [
    cdr("C-NR1", 1),                                                          # USAGE_NOT_RATED 60 s
    cdr("C-LATE", 2, duration_s=61, received_at=CLOSE + 2 * H),               # LATE_USAGE
    cdr("C-SUSP", 3, duration_s=30),                                          # IN_SUSPENSE
    cdr("C-AGED", 4, duration_s=120),                                         # SUSPENSE_AGED
    cdr("C-DNR", 5, service_type="DATA", other_party=None, duration_s=0, volume_bytes=2_000_000),
    cdr("C-SNR", 6, service_type="SMS", duration_s=0),                        # no SMS tariff: not priced
    cdr("C-NULLREJ", 7),                                                      # suspense with rejected_at null
    cdr("C-CUR", 8),                                                          # rated in EUR, billed in USD
    cdr("C-NOCYC", 9, cycle_id=None, start_time=None),                        # no cycle can place it
    cdr("C-MAY", 10, cycle_id=None, start_time=datetime(2026, 5, 15, tzinfo=UTC)),   # another cycle's
    *[cdr(f"C-CH{k + 1}", 20, start_time=t, received_at=T0 + 5 * H) for k, t in enumerate(CHAIN_L)],
    cdr("C-TIE1", 21, start_time=TIE), cdr("C-TIE2", 21, start_time=TIE + timedelta(seconds=4)),
    cdr("C-XACC", 30),                                   # rated and billed to another account (point 19)
]
RATED = [
    rated("R-CUR", "C-CUR", 8, currency="EUR"),
    rated("R-NOCYC", None, 11, cycle_id=None, start_time=None),
    *[rated(f"R-CH{k + 1}", None, 20, start_time=t) for k, t in enumerate(CHAIN_R)],
    rated("R-TIE1", None, 21, start_time=TIE - timedelta(seconds=1)),
    rated("R-TIE2", None, 21, start_time=TIE + timedelta(seconds=1)),
    rated("R-XACC", "C-XACC", 30, account_id=XACC_PAYER),
]
CHARGES = [
    charge("B-CUR", "R-CUR", 8, currency="USD"),
    charge("B-NOCYC", None, 12, cycle_id=None),
    charge("B-NOTYPE", None, 13, charge_type=None),
    charge("B-REC", None, 14, charge_type="RECURRING", product_id="P-14"),
    charge("B-MAY", None, 15, cycle_id="2026-05"),                           # not a candidate of 2026-06 at all
    charge("B-XACC", "R-XACC", 30, account_id=XACC_PAYER),
]
SUSPENSE = [
    {"record_id": "C-SUSP", "rejected_at": CLOSE - timedelta(days=1), "status": "OPEN"},
    {"record_id": "C-AGED", "rejected_at": CLOSE - timedelta(days=10), "status": "OPEN"},
    {"record_id": "C-NULLREJ", "rejected_at": None, "status": "OPEN"},
]
# The latest arrival the run reads: the charges' billed_at (factories' default, T0 + 25 days); every case opens then.
WATERMARK = T0 + timedelta(days=25)


@contextmanager
def host_time_zone(name: str) -> Iterator[None]:
    """The Python process's local zone set to `name`, as on a host with TZ=name (the JVM stays on UTC)."""
    before = os.environ.get("TZ")
    os.environ["TZ"] = name
    time.tzset()
    try:
        yield
    finally:
        if before is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = before
        time.tzset()


def _write_month(spark: SparkSession, root: Path, **tables: Any) -> Path:
    conf_path = write_inputs(spark, root, {"cdr": CDR, "rated_event": RATED, "bill_charge": CHARGES,
                                           "suspense": SUSPENSE, "tariff": TARIFFS, **tables})
    conf = yaml.safe_load(conf_path.read_text())
    conf["cycles"]["2026-07"] = {"start": "2026-07-01T00:00:00Z", "end": "2026-08-01T00:00:00Z",
                                 "close": "2026-08-03T00:00:00Z"}
    conf_path.write_text(yaml.safe_dump(conf))
    return conf_path


@pytest.fixture(scope="module")
def month(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, RunResult]]:
    conf_path = _write_month(spark, tmp_path_factory.mktemp("defects"))
    with host_time_zone("America/New_York"):
        result = execute(spark, load_conf(conf_path), load_ruleset(RULESET), "2026-06", RUN_ID)
    yield conf_path, result


def _rows(spark: SparkSession, result: RunResult, table: str, run_id: str | None = None) -> DataFrame:
    return read_output(spark, result.output_refs[table]).where(F.col("run_id") == (run_id or result.run_id))


def _outcomes(spark: SparkSession, result: RunResult, cp: str, side: str) -> dict[str | None, Any]:
    rows = _rows(spark, result, "record_outcome").where(
        (F.col("control_point_id") == cp) & (F.col("side") == side)).collect()
    return {r["record_id"]: r for r in rows}


def _counters(spark: SparkSession, result: RunResult, cp: str) -> dict[str, int]:
    row = _rows(spark, result, "control_run").where(F.col("control_point_id") == cp).first()
    assert row is not None
    return dict(row["counters"])


# ------------------------------------------------------------------------------------------ money and pricing
def test_never_rated_usage_is_priced_with_its_service_tariff_valid_then(spark: SparkSession, month: Any) -> None:
    """Points 1 and 4: no tariff id of the generator's in the ruleset; the lowest VOICE id is not valid in June."""
    _, result = month
    left = _outcomes(spark, result, "usage-to-rating", "LEFT")
    expected = {"C-NR1": ("USAGE_NOT_RATED", "0.600000"), "C-LATE": ("LATE_USAGE", "1.200000"),
                "C-SUSP": ("IN_SUSPENSE", "0.600000"), "C-AGED": ("SUSPENSE_AGED", "1.200000"),
                "C-DNR": ("USAGE_NOT_RATED", "0.020972")}    # 2 MiB of bytes at 1e-8, half-up to 6 places
    got = {rid: (left[rid]["outcome"], str(left[rid]["expected_amount"])) for rid in expected}
    assert got == expected
    assert {rid: left[rid]["exposure_amount"] for rid in ("C-NR1", "C-LATE")} == {
        "C-NR1": Decimal("0.600000"), "C-LATE": Decimal("1.200000")}


def test_a_record_that_cannot_be_priced_says_so_and_is_counted(spark: SparkSession, month: Any) -> None:
    _, result = month
    sms = _outcomes(spark, result, "usage-to-rating", "LEFT")["C-SNR"]
    assert sms["outcome"] == "USAGE_NOT_RATED" and sms["exposure_amount"] == Decimal("0.000000")
    assert "not priced: no tariff of service_type SMS valid at start_time" in sms["reason"]
    assert _counters(spark, result, "usage-to-rating")["records_unpriced"] == 1
    metrics = _rows(spark, result, "control_run").where(F.col("control_point_id") == "usage-to-rating").select(
        F.explode("metrics").alias("m")).where(F.col("m.outcome") == "USAGE_NOT_RATED").first()
    assert metrics is not None and metrics["m"]["unpriced"] == 1
    assert "NOT PRICED: 1 record(s) have no tariff of their service type" in render(spark, result)


def test_a_mapping_naming_a_tariff_absent_from_the_table_is_refused(spark: SparkSession, month: Any,
                                                                    tmp_path: Path) -> None:
    conf_path, _ = month
    data = yaml.safe_load(Path(RULESET).read_text())
    data["control_points"]["usage-to-rating"]["lookups"]["price"]["map"] = {"VOICE": "B-VOX", "DATA": "VOICE-STD"}
    ruleset = tmp_path / "mapped.yaml"
    ruleset.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match=r"mapped.yaml: control_points.usage-to-rating.lookups.price.map.DATA: "
                                          r"tariff id 'VOICE-STD' is not in table tariff"):
        execute(spark, load_conf(conf_path), load_ruleset(ruleset), "2026-06", "mapped-run")


def test_expected_amounts_are_exact_to_six_places_half_up(spark: SparkSession) -> None:
    """Point 2: one rounding, half-up, where units x rate once overflowed 38 digits and was rounded twice."""
    cases = [(123_456_745, "0.00000001", 1, "0"), (5, "0.00000010", 1, "0"), (15, "0.00000010", 1, "0"),
             (9_000_000_000, "99.99999999", 1, "0"), (61, "0.01000000", 60, "0.05"), (1, "0.00000001", 1, "0"),
             # whole increments, one unit over, none, an increment below 1, negative quantities, near the bigint top
             (120, "0.01000000", 60, "0"), (121, "0.01000000", 60, "0"), (0, "0.01000000", 60, "0"),
             (7, "0.01000000", 0, "0"), (7, "0.01000000", -5, "0"), (-30, "0.01000000", 60, "-1"),
             (-90, "0.01000000", 60, "-1"), (-120, "0.01000000", 60, "-1"),
             (9_223_372_036_854_775_000, "0.00000001", 1000, "0"), (1_048_577, "0.00000001", 1_048_576, "0.01")]
    df = spark.createDataFrame(
        [(q, Decimal(r), inc, Decimal(m)) for q, r, inc, m in cases],
        "quantity bigint, rate decimal(18,8), increment bigint, minimum decimal(18,6)")
    got = [r["e"] for r in df.select(expected_amount(F.col("quantity"), F.col("rate"), F.col("increment"),
                                                     F.col("minimum")).alias("e")).collect()]
    want = []
    for q, r, inc, m in cases:
        units = -(-q // max(inc, 1)) * max(inc, 1)
        want.append(max(Decimal(m), (units * Decimal(r)).quantize(Decimal("0.000001"), rounding=ROUND_HALF_UP)))
    assert got == want
    assert got[0] == Decimal("1.234567")


def test_a_currency_difference_is_a_mismatch_and_aggregates_keep_currencies_apart(spark: SparkSession,
                                                                                   month: Any) -> None:
    """Point 3."""
    _, result = month
    left = _outcomes(spark, result, "rating-to-billing", "LEFT")["R-CUR"]
    right = _outcomes(spark, result, "rating-to-billing", "RIGHT")["B-CUR"]
    assert (left["outcome"], right["outcome"]) == ("CHARGE_AMOUNT_MISMATCH", "CHARGE_AMOUNT_MISMATCH")
    assert "currencies differ" in left["reason"] and "EUR" in left["reason"] and "USD" in right["reason"]
    agg = _rows(spark, result, "aggregate_variance").where(F.col("account_id") == "ACC-8").select(
        "service_type", "currency", "left_amount", "right_amount", "beyond_tolerance")
    expected = spark.createDataFrame(
        [("VOICE", "EUR", Decimal("0.600000"), Decimal("0"), True),
         ("VOICE", "USD", Decimal("0"), Decimal("0.600000"), True)], agg.schema)
    assert_df_equality(agg, expected, ignore_row_order=True, ignore_nullable=True)
    cases = _rows(spark, result, "ra_case").where((F.col("case_type") == "AGGREGATE_VARIANCE")
                                                  & (F.col("business_key.account_id") == "ACC-8"))
    assert sorted(r["currency"] for r in cases.collect()) == ["EUR", "USD"]


def test_a_repeated_tariff_version_is_bad_input_naming_it(spark: SparkSession, tmp_path: Path) -> None:
    """Point 5: exit 2 naming the tariff and version, not a conservation failure that names nothing."""
    conf_path = _write_month(spark, tmp_path, tariff=[*TARIFFS, TARIFFS[1]])
    with pytest.raises(InputError, match="table tariff: tariff B-VOX version v7 appears 2 times"):
        execute(spark, load_conf(conf_path), load_ruleset(RULESET), "2026-06")


# ------------------------------------------------------------------------------------------- runs and reruns
def test_a_run_id_names_one_run(spark: SparkSession, month: Any) -> None:
    """Point 6: the same run id for another bucket, cycle or conf is refused, not 'nothing to do'."""
    conf_path, result = month
    conf, ruleset = load_conf(conf_path), load_ruleset(RULESET)
    with pytest.raises(ConfigError, match=r"--run-id: run_id: 'defects-month' is already committed as another run "
                                          r"\(partition scope: committed 'all', asked 'account_bucket=3'\)"):
        execute(spark, conf, ruleset, "2026-06", RUN_ID, bucket=3)
    with pytest.raises(ConfigError, match=r"cycle: committed '2026-06', asked '2026-07'"):
        execute(spark, conf, ruleset, "2026-07", RUN_ID)
    data = yaml.safe_load(conf_path.read_text())
    data["phone_region"] = "GB"
    other = conf_path.with_name("gb.yaml")
    other.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match=r"conf fingerprint: committed"):
        execute(spark, load_conf(other), ruleset, "2026-06", RUN_ID)
    assert execute(spark, conf, ruleset, "2026-06", RUN_ID).already_committed


def test_a_reproduction_is_never_current_and_requests_no_correction(spark: SparkSession, month: Any) -> None:
    """Point 7 (under a non-UTC host zone, as the original ran: point 11's rerun history cut)."""
    conf_path, result = month
    conf = load_conf(conf_path)
    with host_time_zone("America/New_York"):
        repro = rerun(spark, conf, RUN_ID)
    assert repro.identical, repro.hashes
    view = current(spark, conf.output, "record_outcome", "2026-06", load_ruleset(RULESET).account_buckets)
    assert [r["run_id"] for r in view.select("run_id").distinct().collect()] == [RUN_ID]
    assert _rows(spark, result, "correction_request").count() > 0
    assert _rows(spark, result, "correction_request", repro.rerun.run_id).count() == 0
    marks = _rows(spark, result, "control_run", repro.rerun.run_id).select("reproduction_of").distinct().collect()
    assert marks == [(RUN_ID,)]


def test_a_crashed_run_rerun_after_inputs_changed_replaces_its_suspense_aging(spark: SparkSession,
                                                                              tmp_path: Path) -> None:
    """Point 8: every output of a run replaces exactly its slice, suspense_aging too."""
    conf_path = _write_month(spark, tmp_path)
    conf, ruleset = load_conf(conf_path), load_ruleset(RULESET)

    def crash(_run_id: str) -> None:
        raise RuntimeError("driver lost")

    with pytest.raises(RuntimeError, match="driver lost"):
        execute(spark, conf, ruleset, "2026-06", "crashy", hooks=RunHooks(before_control_run=crash))
    frame(spark, "suspense", [{"record_id": "C-NR1", "rejected_at": CLOSE - timedelta(days=40), "status": "OPEN"}]
          ).write.format("delta").mode("append").save(conf.tables["suspense"])
    again = execute(spark, conf, ruleset, "2026-06", "crashy")
    aging = _rows(spark, again, "suspense_aging").select("age_bucket", "records")
    expected = spark.createDataFrame([("0-2", 1), ("8-30", 1), ("30+", 2)], aging.schema)
    assert_df_equality(aging, expected, ignore_row_order=True, ignore_nullable=True)


def test_every_candidate_row_is_in_a_side_or_counted_out_of_scope(spark: SparkSession, month: Any) -> None:
    """Point 9: null cycle_id / charge_type rows and unplaceable usage reach a control; the rest is counted."""
    _, result = month
    u2r_left = _outcomes(spark, result, "usage-to-rating", "LEFT")
    assert u2r_left["C-NOCYC"]["outcome"] == "QUARANTINED" and "C-MAY" not in u2r_left
    for cp in ("usage-to-rating", "rating-accuracy"):
        side = "RIGHT" if cp == "usage-to-rating" else "LEFT"
        assert _outcomes(spark, result, cp, side)["R-NOCYC"]["outcome"] == "QUARANTINED"
    charges = _outcomes(spark, result, "rating-to-billing", "RIGHT")
    assert {c: (charges[c]["outcome"], charges[c]["reason"]) for c in ("B-NOCYC", "B-NOTYPE")} == {
        "B-NOCYC": ("QUARANTINED", "null cycle_id"), "B-NOTYPE": ("QUARANTINED", "null charge_type")}
    assert "B-REC" not in charges and "B-MAY" not in charges
    u2r = _counters(spark, result, "usage-to-rating")
    assert (u2r["rows_read.cdr"], u2r["rows_out_of_scope.cdr"]) == (len(CDR), 1)
    r2b = _counters(spark, result, "rating-to-billing")
    assert (r2b["rows_read.bill_charge"], r2b["rows_out_of_scope.bill_charge"]) == (len(CHARGES) - 1, 1)
    assert "rows read but out of this control's scope: bill_charge 1" in render(spark, result)


def test_conservation_catches_a_repeated_row_plus_a_lost_one(spark: SparkSession, tmp_path: Path) -> None:
    """Point 10: counts and sums are equal, the record keys are not."""
    conf_path = write_inputs(spark, tmp_path, {
        "cdr": [cdr("C-1", 1), cdr("C-2", 2)], "rated_event": [rated("R-1", "C-1", 1), rated("R-2", "C-2", 2)],
        "bill_charge": [charge("B-1", "R-1", 1), charge("B-2", "R-2", 2)], "tariff": TARIFFS})

    def repeat_one_lose_another(outcomes: DataFrame) -> DataFrame:
        r2b_left = (F.col("control_point_id") == "rating-to-billing") & (F.col("side") == "LEFT")
        kept = outcomes.where(~(r2b_left & (F.col("record_id") == "R-2")))
        return kept.unionByName(outcomes.where(r2b_left & (F.col("record_id") == "R-1")))

    with pytest.raises(ConservationError, match="rating-to-billing LEFT: the outcome rows do not carry each "
                                                "rated_event record exactly once"):
        execute(spark, load_conf(conf_path), load_ruleset(RULESET), "2026-06",
                hooks=RunHooks(outcome_fault=repeat_one_lose_another))


def test_times_are_utc_on_a_host_in_another_zone(spark: SparkSession, month: Any) -> None:
    """Point 11: the module's run ran with TZ=America/New_York: watermark, opened_at and due_at are the instants."""
    _, result = month
    fmt = "yyyy-MM-dd HH:mm:ss"
    assert result.watermark == WATERMARK
    run_row = _rows(spark, result, "control_run").select(F.date_format("watermark", fmt).alias("w")).distinct()
    assert run_row.collect() == [(f"{WATERMARK:%Y-%m-%d %H:%M:%S}",)]
    case = _rows(spark, result, "ra_case").where(F.col("case_type") == "USAGE_NOT_RATED").select(
        F.date_format("opened_at", fmt).alias("o"), F.date_format("due_at", fmt).alias("d")).first()
    assert case is not None and case["o"] == f"{WATERMARK:%Y-%m-%d %H:%M:%S}"
    assert case["d"] == f"{WATERMARK + timedelta(days=5):%Y-%m-%d %H:%M:%S}"
    with host_time_zone("Asia/Kolkata"):
        text = render(spark, result)
    assert f"watermark {WATERMARK:%Y-%m-%dT%H:%M:%S}Z" in text


# ----------------------------------------------------------------------------------------------- suspense
def test_suspense_with_unknown_rejection_time_is_aged_alike_in_both_places(spark: SparkSession, month: Any) -> None:
    """Point 15: SUSPENSE_AGED in usage-to-rating and the oldest bucket in suspense_aging."""
    _, result = month
    row = _outcomes(spark, result, "usage-to-rating", "LEFT")["C-NULLREJ"]
    assert row["outcome"] == "SUSPENSE_AGED" and "rejected_at unknown" in row["reason"]
    assert row["exposure_amount"] == Decimal("0.600000")
    aging = _rows(spark, result, "suspense_aging").select("age_bucket", "records", "records_with_usage", "exposure")
    expected = spark.createDataFrame([("0-2", 1, 1, Decimal("0.600000")), ("8-30", 1, 1, Decimal("1.200000")),
                                      ("30+", 1, 1, Decimal("0.600000"))], aging.schema)
    assert_df_equality(aging, expected, ignore_row_order=True, ignore_nullable=True)


# ------------------------------------------------------------------------------------------------ matching
def test_fuzzy_rounds_run_until_none_is_left(spark: SparkSession, month: Any) -> None:
    """Point 18: a chain needing ten rounds ends MATCHED pair by pair, not AMBIGUOUS after a cap."""
    _, result = month
    left = _outcomes(spark, result, "usage-to-rating", "LEFT")
    got = {f"C-CH{k}": (left[f"C-CH{k}"]["outcome"], left[f"C-CH{k}"]["counterpart_id"])
           for k in range(1, CHAIN + 1)}
    assert got == {f"C-CH{k}": ("MATCHED", f"R-CH{k}") for k in range(1, CHAIN + 1)}
    counters = _counters(spark, result, "usage-to-rating")
    assert counters["fuzzy_rounds"] >= CHAIN and counters["fuzzy_unresolved"] == 0


def test_which_pairs_the_round_selection_declares_ambiguous(spark: SparkSession, month: Any) -> None:
    """Point 18, pinned (docs/usage_to_bill.md): a record whose best candidates tie is ambiguous with them, and a
    candidate that leaves as ambiguous leaves its other pairs too: C-TIE2 could have had R-TIE2, and is unrated."""
    _, result = month
    left = _outcomes(spark, result, "usage-to-rating", "LEFT")
    right = _outcomes(spark, result, "usage-to-rating", "RIGHT")
    assert {k: left[k]["outcome"] for k in ("C-TIE1", "C-TIE2")} == {"C-TIE1": "AMBIGUOUS_MATCH",
                                                                     "C-TIE2": "USAGE_NOT_RATED"}
    assert {k: right[k]["outcome"] for k in ("R-TIE1", "R-TIE2")} == {"R-TIE1": "AMBIGUOUS_MATCH",
                                                                      "R-TIE2": "AMBIGUOUS_MATCH"}
    assert all("tie" in r["reason"] and r["counterpart_id"] is None
               for r in (left["C-TIE1"], right["R-TIE1"], right["R-TIE2"]))


# ------------------------------------------------------------------------------------------ partition runs
def test_a_partition_rerun_keeps_cross_account_lineage_together(spark: SparkSession, month: Any) -> None:
    """Point 19: a rated event and charge billed to another account are laid out in their usage record's bucket,
    so the partition rerun of that bucket gives exactly the full run's rows of it (no false USAGE_NOT_RATED /
    RATED_WITHOUT_USAGE). Last in the module: it adds a run to the output tables."""
    conf_path, full = month
    ro = read_output(spark, full.output_refs["record_outcome"])
    placed = ro.where((F.col("run_id") == RUN_ID) & F.col("record_id").isin("C-XACC", "R-XACC", "B-XACC"))
    assert {(r["record_id"], r["outcome"], r["account_bucket"]) for r in placed.collect()} == {
        ("C-XACC", "MATCHED", XACC_BUCKET), ("R-XACC", "MATCHED", XACC_BUCKET), ("B-XACC", "MATCHED", XACC_BUCKET)}
    with host_time_zone("America/New_York"):
        part = execute(spark, load_conf(conf_path), load_ruleset(RULESET), "2026-06", bucket=XACC_BUCKET)
    for table in ("record_outcome", "aggregate_variance"):
        rows = read_output(spark, full.output_refs[table])
        mine = rows.where(F.col("run_id") == part.run_id)
        theirs = rows.where((F.col("run_id") == RUN_ID) & (F.col("account_bucket") == XACC_BUCKET))
        assert mine.count() > 0
        assert content_hash(mine, exclude=("run_id",)) == content_hash(theirs, exclude=("run_id",)), table
