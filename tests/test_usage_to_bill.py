"""The usage-to-bill controls on one hand-built month where every record's outcome is known in advance.

One run (module fixture) over a scenario in which each group of records uses its own subscriber number, so groups
cannot interfere; each test checks one concept against expectations written here by hand.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from chispa import assert_df_equality
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from factories import RULESET, T0, write_inputs
from jobs.config import load_conf, load_ruleset
from jobs.run import ConservationError, RunResult, _check_conservation, execute

CLOSE = datetime(2026, 7, 3, tzinfo=UTC)
H = timedelta(hours=1)


def n(i: int) -> str:
    """A distinct subscriber number per scenario group, in E.164."""
    return f"+1555200{i:04d}"


def cdr(rid: str | None, i: int, **kw: Any) -> dict[str, Any]:
    return {"record_id": rid, "msisdn": n(i), "account_id": f"ACC-{i}", **kw}


def rated(reid: str | None, src: str | None, i: int, **kw: Any) -> dict[str, Any]:
    return {"rated_event_id": reid, "source_record_id": src, "msisdn": n(i), "account_id": f"ACC-{i}", **kw}


def charge(cid: str | None, reid: str | None, i: int, **kw: Any) -> dict[str, Any]:
    return {"charge_id": cid, "source_rated_event_id": reid, "msisdn": n(i), "account_id": f"ACC-{i}", **kw}


DST_GAP = datetime(2026, 3, 8, 7, 30, tzinfo=UTC)        # 02:30 America/New_York: a local time that never existed
FALL_BACK_1 = datetime(2026, 11, 1, 5, 30, tzinfo=UTC)   # 01:30 EDT
FALL_BACK_2 = datetime(2026, 11, 1, 6, 30, tzinfo=UTC)   # 01:30 EST: same wall clock, one hour later

CDR = [
    cdr("C-A", 1),
    cdr("C-A", 1, source_file="F2", received_at=T0 + 5 * H),                     # re-sent copy, rated again
    cdr("C-B", 2, msisdn="+1 555-200-0002", other_party="(555) 987-0001", start_time=T0),
    cdr("C-E10", 3), cdr("C-E11", 4),
    cdr("C-D", 5, service_type="DATA", other_party=None, duration_s=0, volume_bytes=1_000_000),
    cdr("C-T1", 6, start_time=T0 - timedelta(seconds=2)), cdr("C-T2", 6, start_time=T0 + timedelta(seconds=2)),
    cdr("C-S1", 7), cdr("C-S2", 8), cdr("C-S3", 9),
    cdr("C-L", 10, received_at=CLOSE + 2 * H),
    cdr("C-N", 11),
    cdr("C-TA", 12, account_id="ACC-TEST-0001"),
    cdr("C-X", 13), cdr("C-X2", 13, source_file="F3", received_at=T0 + 6 * H),    # content copy, new id
    cdr("C-P", 14),
    cdr(None, 15), cdr("C-Q2", 16, msisdn="N/A"), cdr("C-Q3", 17, start_time=None),
    cdr("C-M", 18), cdr("C-M2", 19), cdr("C-NF", 20), cdr("C-NA", 21),
    cdr("C-DST", 22, start_time=DST_GAP, received_at=DST_GAP + H),
    cdr("C-FB1", 23, start_time=FALL_BACK_1, received_at=FALL_BACK_1 + H),
    cdr("C-FB2", 23, start_time=FALL_BACK_2, received_at=FALL_BACK_2 + H),
    cdr("C-SMS", 24, service_type="SMS", duration_s=0, other_party="BANK"),
]
RATED = [
    rated("R-A", "C-A", 1), rated("R-A2", "C-A", 1, rated_at=T0 + 9 * H),
    rated("R-A", "C-A", 1, rated_at=T0 + 30 * H),                                  # repeated rated_event_id
    rated("R-B", None, 2, msisdn="(555) 200-0002", other_party="+1 555 987 0001",
          start_time=T0 + timedelta(seconds=3), quantity=61, amount=Decimal("1.200000")),
    rated("R-E10", None, 3, start_time=T0 + timedelta(seconds=10)),
    rated("R-E11", None, 4, start_time=T0 + timedelta(seconds=11)),
    rated("R-D", None, 5, service_type="DATA", other_party=None, quantity=1_009_000, tariff_id="DATA-STD",
          amount=Decimal("0.010000")),
    rated("R-T", None, 6),
    rated("R-S3", "C-S3", 9),
    rated("R-X", "C-X", 13),
    rated("R-P", "C-P", 14), rated("R-P2", None, 14, start_time=T0 + timedelta(seconds=1)),
    rated("R-W", "C-NOPE", 30, start_time=T0 + 100 * H),
    rated(None, None, 31),
    rated("R-M", "C-M", 18, amount=Decimal("0.900000")), rated("R-M2", "C-M2", 19, amount=Decimal("0.300000")),
    rated("R-NF", "C-NF", 20, tariff_id="VOICE-PROMO-X"),
    rated("R-NA", "C-NA", 21, amount=None),
    rated("R-DST", None, 22, start_time=DST_GAP + timedelta(seconds=4)),
    rated("R-FB1", "C-FB1", 23, start_time=FALL_BACK_1), rated("R-FB2", "C-FB2", 23, start_time=FALL_BACK_2),
    rated("R-SMS", None, 24, service_type="SMS", quantity=1, other_party="bank", tariff_id="SMS-STD",
          amount=Decimal("0.050000")),
]
CHARGES = [
    charge("B-A", "R-A", 1), charge("B-A2", "R-A", 1, billed_at=T0 + 30 * 24 * H),
    charge("B-A3", "R-A2", 1),
    charge("B-B", "R-B", 2, amount=Decimal("1.000000")),
    charge("B-D", "R-D", 5, amount=Decimal("0.010000")),
    charge("B-S3", "R-S3", 9), charge("B-X", "R-X", 13), charge("B-P", "R-P", 14), charge("B-P2", "R-P2", 14),
    charge("B-W", "R-W", 30),
    charge("B-M", "R-M", 18, amount=Decimal("0.900000")), charge("B-M2", "R-M2", 19, amount=Decimal("0.300000")),
    charge("B-NF", "R-NF", 20),
    charge("B-NL", None, 40), charge("B-NX", "R-NOPE", 41),
    charge(None, "R-X", 13), charge("B-NAMT", "R-S3", 9, amount=None),
    charge("B-REC", None, 42, charge_type="RECURRING", product_id="P-1"),
    charge("B-DST", "R-DST", 22), charge("B-FB1", "R-FB1", 23), charge("B-FB2", "R-FB2", 23),
    charge("B-SMS", "R-SMS", 24, amount=Decimal("0.050000")),
]
SUSPENSE = [
    {"record_id": "C-S1", "rejected_at": CLOSE - timedelta(days=2), "status": "OPEN"},
    {"record_id": "C-S2", "rejected_at": CLOSE - timedelta(days=10), "status": "OPEN"},
    {"record_id": "C-S3", "rejected_at": T0, "status": "RESOLVED"},
]

EXPECTED = {
    ("usage-to-rating", "LEFT"): {
        "C-A": ["MATCHED", "DUPLICATE_USAGE"], "C-B": ["MATCHED"], "C-E10": ["MATCHED"], "C-E11": ["USAGE_NOT_RATED"],
        "C-D": ["MATCHED"], "C-T1": ["AMBIGUOUS_MATCH"], "C-T2": ["AMBIGUOUS_MATCH"], "C-S1": ["IN_SUSPENSE"],
        "C-S2": ["SUSPENSE_AGED"], "C-S3": ["MATCHED"], "C-L": ["LATE_USAGE"], "C-N": ["USAGE_NOT_RATED"],
        "C-TA": ["USAGE_NOT_RATED"], "C-X": ["MATCHED"], "C-X2": ["DUPLICATE_USAGE"], "C-P": ["MATCHED"],
        None: ["QUARANTINED"], "C-Q2": ["QUARANTINED"], "C-Q3": ["QUARANTINED"], "C-M": ["MATCHED"],
        "C-M2": ["MATCHED"], "C-NF": ["MATCHED"], "C-NA": ["MATCHED"], "C-DST": ["MATCHED"], "C-FB1": ["MATCHED"],
        "C-FB2": ["MATCHED"], "C-SMS": ["MATCHED"],
    },
    ("usage-to-rating", "RIGHT"): {
        "R-A": ["MATCHED", "QUARANTINED"], "R-A2": ["DUPLICATE_RATED_EVENT"], "R-B": ["MATCHED"],
        "R-E10": ["MATCHED"], "R-E11": ["RATED_WITHOUT_USAGE"], "R-D": ["MATCHED"], "R-T": ["AMBIGUOUS_MATCH"],
        "R-S3": ["MATCHED"], "R-X": ["MATCHED"], "R-P": ["MATCHED"], "R-P2": ["DUPLICATE_RATED_EVENT"],
        "R-W": ["RATED_WITHOUT_USAGE"], None: ["QUARANTINED"], "R-M": ["MATCHED"], "R-M2": ["MATCHED"],
        "R-NF": ["MATCHED"], "R-NA": ["MATCHED"], "R-DST": ["MATCHED"], "R-FB1": ["MATCHED"], "R-FB2": ["MATCHED"],
        "R-SMS": ["MATCHED"],
    },
    ("rating-accuracy", "LEFT"): {
        "R-A": ["MATCHED", "QUARANTINED"], "R-A2": ["MATCHED"], "R-B": ["MATCHED"], "R-E10": ["MATCHED"],
        "R-E11": ["MATCHED"], "R-D": ["MATCHED"], "R-T": ["MATCHED"], "R-S3": ["MATCHED"], "R-X": ["MATCHED"],
        "R-P": ["MATCHED"], "R-P2": ["MATCHED"], "R-W": ["MATCHED"], None: ["QUARANTINED"],
        "R-M": ["TARIFF_MISMATCH"], "R-M2": ["TARIFF_MISMATCH"], "R-NF": ["TARIFF_NOT_FOUND"],
        "R-NA": ["QUARANTINED"], "R-DST": ["MATCHED"], "R-FB1": ["MATCHED"], "R-FB2": ["MATCHED"],
        "R-SMS": ["MATCHED"],
    },
    ("rating-to-billing", "LEFT"): {
        "R-A": ["MATCHED", "QUARANTINED"], "R-A2": ["MATCHED"], "R-B": ["CHARGE_AMOUNT_MISMATCH"],
        "R-E10": ["RATED_NOT_BILLED"], "R-E11": ["RATED_NOT_BILLED"], "R-D": ["MATCHED"], "R-T": ["RATED_NOT_BILLED"],
        "R-S3": ["MATCHED"], "R-X": ["MATCHED"], "R-P": ["MATCHED"], "R-P2": ["MATCHED"], "R-W": ["MATCHED"],
        None: ["QUARANTINED"], "R-M": ["MATCHED"], "R-M2": ["MATCHED"], "R-NF": ["MATCHED"], "R-NA": ["QUARANTINED"],
        "R-DST": ["MATCHED"], "R-FB1": ["MATCHED"], "R-FB2": ["MATCHED"], "R-SMS": ["MATCHED"],
    },
    ("rating-to-billing", "RIGHT"): {
        "B-A": ["MATCHED"], "B-A2": ["DUPLICATE_CHARGE"], "B-A3": ["MATCHED"], "B-B": ["CHARGE_AMOUNT_MISMATCH"],
        "B-D": ["MATCHED"], "B-S3": ["MATCHED"], "B-X": ["MATCHED"], "B-P": ["MATCHED"], "B-P2": ["MATCHED"],
        "B-W": ["MATCHED"], "B-M": ["MATCHED"], "B-M2": ["MATCHED"], "B-NF": ["MATCHED"],
        "B-NL": ["CHARGE_WITHOUT_RATED_EVENT"], "B-NX": ["CHARGE_WITHOUT_RATED_EVENT"], None: ["QUARANTINED"],
        "B-NAMT": ["QUARANTINED"], "B-DST": ["MATCHED"], "B-FB1": ["MATCHED"], "B-FB2": ["MATCHED"],
        "B-SMS": ["MATCHED"],
    },
}


@pytest.fixture(scope="module")
def run(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunResult, dict[str, DataFrame]]]:
    root = tmp_path_factory.mktemp("scenario")
    conf_path = write_inputs(spark, root, {"cdr": CDR, "rated_event": RATED, "bill_charge": CHARGES,
                                            "suspense": SUSPENSE})
    result = execute(spark, load_conf(conf_path), load_ruleset(RULESET), "2026-06")
    outputs = {name: spark.read.format("delta").load(ref).where(F.col("run_id") == result.run_id)
               for name, ref in result.output_refs.items()}
    yield result, outputs


def _outcomes(outputs: dict[str, DataFrame], cp: str, side: str) -> DataFrame:
    return (outputs["record_outcome"].where((F.col("control_point_id") == cp) & (F.col("side") == side))
            .select("record_id", "outcome"))


@pytest.mark.parametrize("cp_side", list(EXPECTED), ids=lambda k: f"{k[0]}:{k[1]}")
def test_every_record_gets_its_expected_outcome(spark: SparkSession, run: Any, cp_side: tuple[str, str]) -> None:
    _, outputs = run
    expected = spark.createDataFrame(
        [(rid, o) for rid, outs in EXPECTED[cp_side].items() for o in outs], "record_id string, outcome string")
    actual = _outcomes(outputs, *cp_side)
    assert_df_equality(actual, expected, ignore_row_order=True, ignore_nullable=True)


def test_every_contract_outcome_is_exercised() -> None:
    from transforms.schema import OUTCOMES

    for (cp, side), records in EXPECTED.items():
        seen = {o for outs in records.values() for o in outs}
        assert seen == set(OUTCOMES[cp][side]), (cp, side, set(OUTCOMES[cp][side]) - seen)


def test_fuzzy_window_edge_and_confidence(run: Any) -> None:
    _, outputs = run
    rows = {r["record_id"]: r for r in outputs["record_outcome"].where(
        (F.col("control_point_id") == "usage-to-rating") & (F.col("side") == "LEFT")).collect()}
    assert rows["C-E10"]["match_stage"] == "FUZZY" and rows["C-E10"]["counterpart_id"] == "R-E10"
    assert rows["C-E10"]["confidence"] == Decimal("0.5000")      # 10 s of a 10 s window
    assert rows["C-B"]["confidence"] == Decimal("0.3500")        # 3 s of 10 s, and 1 s of a 1 s tolerance
    assert rows["C-E11"]["counterpart_id"] is None


def test_ambiguous_tie_is_not_broken_by_ids(run: Any) -> None:
    _, outputs = run
    amb = outputs["record_outcome"].where(F.col("outcome") == "AMBIGUOUS_MATCH").collect()
    assert sorted(r["record_id"] for r in amb) == ["C-T1", "C-T2", "R-T"]
    assert all(r["counterpart_id"] is None and "tie" in r["reason"] for r in amb)


def test_utc_times_ignore_daylight_saving(run: Any) -> None:
    _, outputs = run
    ro = outputs["record_outcome"].where(F.col("record_id").isin("C-DST", "C-FB1", "C-FB2")
                                         & (F.col("control_point_id") == "usage-to-rating"))
    times = {r["record_id"]: r["start_time"] for r in ro.collect()}
    # Instants come back exactly as given (the session reads and writes UTC); wall-clock ambiguity is irrelevant.
    assert times["C-DST"] == DST_GAP.replace(tzinfo=None)
    assert times["C-FB2"] - times["C-FB1"] == H


def test_signed_exposure_and_cases(run: Any) -> None:
    _, outputs = run
    cases = {(r["case_type"], tuple(r["business_key"]["record_ids"])): r for r in outputs["ra_case"].collect()}
    mismatch = cases[("TARIFF_MISMATCH", ("R-M", "VOICE-STD@v1"))]
    assert mismatch["exposure_amount"] == Decimal("-0.300000") and mismatch["exposure_class"] == "OVERBILLING"
    under = cases[("TARIFF_MISMATCH", ("R-M2", "VOICE-STD@v1"))]
    assert under["exposure_amount"] == Decimal("0.300000") and under["exposure_class"] == "UNDERBILLING"
    unrated = cases[("USAGE_NOT_RATED", ("C-N",))]
    assert unrated["exposure_amount"] == Decimal("0.600000") and unrated["owner_team"] == "charging-operations"
    assert unrated["due_at"] - unrated["opened_at"] == timedelta(days=5)
    assert {e["source_table"] for e in unrated["evidence"]} == {"cdr"}
    assert all(len(e["payload_hash"]) == 64 for c in cases.values() for e in c["evidence"])
    late = cases[("LATE_USAGE", ("C-L",))]
    assert late["exposure_class"] == "TIMING"
    # informational and exempt outcomes raise no case
    assert not [k for k in cases if k[0] in ("IN_SUSPENSE", "DUPLICATE_USAGE", "MATCHED")]
    assert ("USAGE_NOT_RATED", ("C-TA",)) not in cases
    dup = cases[("DUPLICATE_RATED_EVENT", ("C-A", "R-A2"))]
    assert dup["exposure_amount"] == Decimal("-0.600000")
    assert outputs["ra_case"].select("case_id").distinct().count() == outputs["ra_case"].count()


def test_aggregate_variance_per_account(run: Any) -> None:
    _, outputs = run
    agg = {(r["account_id"], r["service_type"]): r for r in outputs["aggregate_variance"].collect()}
    assert agg[("ACC-2", "VOICE")]["difference"] == Decimal("0.200000")        # rated 1.20, billed 1.00
    assert agg[("ACC-2", "VOICE")]["beyond_tolerance"] is True
    assert agg[("ACC-13", "VOICE")]["beyond_tolerance"] is False
    assert agg[("ACC-40", None)]["right_amount"] == Decimal("0.600000")        # charge without lineage


def test_conservation_of_counts_and_amounts(run: Any) -> None:
    _, outputs = run
    ro = outputs["record_outcome"]
    got = {(r["control_point_id"], r["side"]): (r["n"], r["amount"]) for r in
           ro.groupBy("control_point_id", "side").agg(F.count(F.lit(1)).alias("n"), F.sum("amount").alias("amount"))
           .collect()}
    rated_sum = sum((r.get("amount", Decimal("0.600000")) or Decimal(0) for r in RATED), Decimal(0))
    usage_charges = [c for c in CHARGES if c.get("charge_type", "USAGE") == "USAGE"]
    charge_sum = sum((c.get("amount", Decimal("0.600000")) or Decimal(0) for c in usage_charges), Decimal(0))
    assert got[("usage-to-rating", "LEFT")][0] == len(CDR)
    for key in (("usage-to-rating", "RIGHT"), ("rating-accuracy", "LEFT"), ("rating-to-billing", "LEFT")):
        assert got[key] == (len(RATED), rated_sum), key
    assert got[("rating-to-billing", "RIGHT")] == (len(usage_charges), charge_sum)
    run_rows = outputs["control_run"].collect()
    assert {r["control_point_id"] for r in run_rows} == {"usage-to-rating", "rating-accuracy", "rating-to-billing",
                                                         "usage-aggregate"}
    assert all(r["conservation_ok"] and r["status"] == "COMMITTED" for r in run_rows)


def test_conservation_check_refuses_a_lost_row() -> None:
    metrics = [{"control_point_id": "usage-to-rating", "side": "LEFT", "outcome": "MATCHED", "count": 9,
                "amount": None}]
    totals = {"cdr": {"n": 10, "amount": None}, "rated_event": {"n": 0, "amount": Decimal(0)},
              "bill_charge": {"n": 0, "amount": Decimal(0)}}
    with pytest.raises(ConservationError, match="9 outcome rows for 10 cdr rows"):
        _check_conservation(metrics, totals)
    totals["cdr"]["n"] = 9
    metrics.append({"control_point_id": "rating-accuracy", "side": "LEFT", "outcome": "MATCHED", "count": 0,
                    "amount": Decimal("1.000000")})
    with pytest.raises(ConservationError, match="outcome amounts 1.000000 != rated_event total 0"):
        _check_conservation(metrics, totals)


def test_rerun_same_run_id_commits_nothing(spark: SparkSession, run: Any, tmp_path: Path) -> None:
    result, _ = run
    from delta.tables import DeltaTable

    def versions() -> dict[str, int]:
        return {name: DeltaTable.forPath(spark, ref).history(1).collect()[0]["version"]
                for name, ref in result.output_refs.items()}

    before = versions()
    conf_path = Path(result.output_refs["control_run"]).parent.parent / "conf.yaml"
    again = execute(spark, load_conf(conf_path), load_ruleset(RULESET), "2026-06", result.run_id)
    assert again.already_committed and not again.committed
    assert versions() == before


def test_same_inputs_give_identical_rows_and_case_ids(spark: SparkSession, run: Any) -> None:
    result, outputs = run
    conf_path = Path(result.output_refs["control_run"]).parent.parent / "conf.yaml"
    other = execute(spark, load_conf(conf_path), load_ruleset(RULESET), "2026-06", "second-run")
    for table in ("record_outcome", "ra_case", "aggregate_variance"):
        first = outputs[table].drop("run_id")
        second = spark.read.format("delta").load(other.output_refs[table]).where(
            F.col("run_id") == "second-run").drop("run_id")
        assert_df_equality(first, second, ignore_row_order=True)


CONTRACT_CHECK = Path(__file__).resolve().parent.parent.parent / "shared" / "contract_check.py"


def test_outputs_pass_the_independent_contract_check(run: Any) -> None:
    """../shared/contract_check.py reads the outputs with delta-rs, a second Delta implementation."""
    import subprocess
    import sys

    result, _ = run
    assert CONTRACT_CHECK.is_file(), f"{CONTRACT_CHECK} not found: the repo expects shared/ beside it"
    conf_path = Path(result.output_refs["control_run"]).parent.parent / "conf.yaml"
    proc = subprocess.run([sys.executable, str(CONTRACT_CHECK), str(conf_path), result.run_id],
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "CONTRACT: PASS" in proc.stdout
    assert "FAIL" not in proc.stdout.replace("CONTRACT: PASS", "")
