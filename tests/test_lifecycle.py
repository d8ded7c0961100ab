"""The case lifecycle across runs: one small month, three runs and the manual transitions between them.

Six unrated usage records (one case each, a.k.a. A..F) go through:
  run 1            every record is unrated: six OPEN cases
  manual           C acknowledged, D resolved, E waived above the maker-checker threshold (refused for the maker,
                   approved by another actor), F waived below it
  run 2            B is fixed (rated and billed) and the data watermark moves on: B AUTO_CLEARED, D REOPENED
  run 3            B's rating is gone again: B REOPENED under the same case id
Expected statuses are written here by hand; case ids are recomputed independently from the documented formula.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from factories import CYCLE, RULESET, T0, Cli, frame, run_cli, write_inputs
from jobs.cases import current_cases
from jobs.config import ConfigError, load_conf
from jobs.outputs import read_output, table_ref
from jobs.ruleset import load_ruleset
from jobs.run import RunResult, execute
from jobs.summary import render
from scenario import cdr, charge, rated
from transforms.lifecycle import apply_lifecycle, current_state
from transforms.schema import RA_CASE

NAMES = "ABCDEF"
ACCOUNT = {k: 60 + i for i, k in enumerate(NAMES)}          # ACC-60 .. ACC-65, subscriber +15552000060 ..
CDR = [cdr(f"C-{k}", ACCOUNT[k], duration_s=20_000 if k == "E" else 60) for k in NAMES]
FIX_B_RATED = [rated("R-B", "C-B", ACCOUNT["B"], rated_at=T0 + timedelta(days=10))]
FIX_B_BILLED = [charge("B-B", "R-B", ACCOUNT["B"], billed_at=T0 + timedelta(days=12))]
WATERMARK_1 = T0 + timedelta(hours=1)                       # latest cdr received_at
WATERMARK_2 = T0 + timedelta(days=12)                       # latest billed_at once B is billed
SLA = timedelta(days=5)                                     # charging-operations owns USAGE_NOT_RATED


def expected_case_id(k: str) -> str:
    """docs/usage_to_bill.md: RA- + 24 hex of sha256(control point | case type | account, msisdn, record ids)."""
    i = ACCOUNT[k]
    key = f"usage-to-rating|USAGE_NOT_RATED|ACC-{i}|+1555200{i:04d}|C-{k}"
    return "RA-" + hashlib.sha256(key.encode()).hexdigest()[:24]


def local(ts: datetime) -> datetime:
    """A UTC instant as PySpark's collect() returns it (naive, process-local time)."""
    return datetime.fromtimestamp(ts.timestamp())


@dataclass
class Story:
    conf_path: Path
    runs: list[RunResult]
    states: dict[str, dict[str, Any]]                   # stage -> case name -> current row
    cli: dict[str, Cli]
    summary_2: str
    current_after_3: Any
    history_rows: int


def _state(spark: SparkSession, output: str) -> dict[str, dict[str, Any]]:
    rows = current_cases(spark, output, CYCLE).collect()
    by_record = {r["business_key"]["record_ids"][0]: r.asDict() for r in rows}
    return {k: by_record[f"C-{k}"] for k in NAMES if f"C-{k}" in by_record}


@pytest.fixture(scope="module")
def story(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Story]:
    root = tmp_path_factory.mktemp("lifecycle")
    conf_path = write_inputs(spark, root, {"cdr": CDR})
    conf, ruleset = load_conf(conf_path), load_ruleset(RULESET)
    c = str(conf_path)
    states, cli = {}, {}
    runs = [execute(spark, conf, ruleset, CYCLE)]
    states["run1"] = _state(spark, conf.output)
    ids = {k: row["case_id"] for k, row in states["run1"].items()}

    cli["ack"] = run_cli(spark, "cases", "transition", "--conf", c, "--case-id", ids["C"], "--to", "ACKNOWLEDGED",
                      "--actor", "alice", "--reason", "asked rating why", "--evidence", "TICKET-1")
    cli["resolve"] = run_cli(spark, "cases", "transition", "--conf", c, "--case-id", ids["D"], "--to", "RESOLVED",
                          "--actor", "alice", "--reason", "re-rated", "--evidence", "RERATE-7")
    cli["waive_e"] = run_cli(spark, "cases", "transition", "--conf", c, "--case-id", ids["E"], "--to", "WAIVED",
                          "--actor", "alice", "--reason", "goodwill", "--evidence", "MEMO-3")
    states["pending"] = _state(spark, conf.output)
    cli["self_approve"] = run_cli(spark, "cases", "approve", "--conf", c, "--case-id", ids["E"], "--actor", "alice")
    states["refused"] = _state(spark, conf.output)
    cli["approve"] = run_cli(spark, "cases", "approve", "--conf", c, "--case-id", ids["E"], "--actor", "bob")
    cli["waive_f"] = run_cli(spark, "cases", "transition", "--conf", c, "--case-id", ids["F"], "--to", "WAIVED",
                          "--actor", "alice", "--reason", "below threshold")
    cli["list"] = run_cli(spark, "cases", "list", "--conf", c, "--cycle", CYCLE)
    states["manual"] = _state(spark, conf.output)

    frame(spark, "rated_event", FIX_B_RATED).write.format("delta").mode("overwrite").save(conf.tables["rated_event"])
    frame(spark, "bill_charge", FIX_B_BILLED).write.format("delta").mode("overwrite").save(conf.tables["bill_charge"])
    runs.append(execute(spark, conf, ruleset, CYCLE))
    states["run2"] = _state(spark, conf.output)
    summary_2 = render(spark, runs[1])

    frame(spark, "rated_event", []).write.format("delta").mode("overwrite").save(conf.tables["rated_event"])
    frame(spark, "bill_charge", []).write.format("delta").mode("overwrite").save(conf.tables["bill_charge"])
    runs.append(execute(spark, conf, ruleset, CYCLE))
    states["run3"] = _state(spark, conf.output)
    current = current_cases(spark, conf.output, CYCLE)
    history = read_output(spark, table_ref(conf.output, "ra_case")).count()
    yield Story(conf_path, runs, states, cli, summary_2, current, history)


def test_a_case_found_again_stays_open_with_its_first_opened_at(story: Story) -> None:
    first, again, third = (story.states[s]["A"] for s in ("run1", "run2", "run3"))
    assert first["status"] == again["status"] == third["status"] == "OPEN"
    assert first["case_id"] == again["case_id"] == expected_case_id("A")
    assert again["run_id"] == story.runs[1].run_id and again["opened_at"] == local(WATERMARK_2)
    assert first["first_opened_at"] == again["first_opened_at"] == third["first_opened_at"] == local(WATERMARK_1)
    assert again["due_at"] == local(WATERMARK_1 + SLA)          # the owner SLA runs from the first appearance


def test_a_fixed_record_auto_clears_its_case_with_closure_evidence(story: Story) -> None:
    before, cleared = story.states["run1"]["B"], story.states["run2"]["B"]
    assert before["status"] == "OPEN"
    assert cleared["status"] == "AUTO_CLEARED" and cleared["case_id"] == expected_case_id("B")
    assert cleared["closed_by_run"] == cleared["run_id"] == story.runs[1].run_id
    versions = story.runs[1].input_versions
    assert f"rated_event@v{versions['rated_event']}" in cleared["evidence_refs"]
    assert cleared["actor"] == "telco-ra" and "was OPEN" in cleared["transition_reason"]


def test_breaking_it_again_reopens_the_same_case(story: Story) -> None:
    reopened = story.states["run3"]["B"]
    assert reopened["status"] == "REOPENED" and reopened["case_id"] == expected_case_id("B")
    assert reopened["run_id"] == story.runs[2].run_id and reopened["closed_by_run"] is None
    assert reopened["first_opened_at"] == local(WATERMARK_1)
    assert reopened["transition_reason"] == "found again after AUTO_CLEARED"


def test_acknowledged_survives_a_run_that_finds_it_again(story: Story) -> None:
    assert story.cli["ack"].code == 0, story.cli["ack"].err
    manual, after = story.states["manual"]["C"], story.states["run2"]["C"]
    assert manual["status"] == "ACKNOWLEDGED" and manual["run_id"].startswith("manual:")
    assert after["status"] == "ACKNOWLEDGED" and after["run_id"] == story.runs[1].run_id
    assert (after["actor"], after["transition_reason"], after["evidence_refs"]) == (
        "alice", "asked rating why", ["TICKET-1"])


def test_resolved_but_still_found_is_reopened(story: Story) -> None:
    assert story.cli["resolve"].code == 0, story.cli["resolve"].err
    assert story.states["manual"]["D"]["status"] == "RESOLVED"
    after = story.states["run2"]["D"]
    assert after["status"] == "REOPENED" and after["case_id"] == expected_case_id("D")
    assert after["transition_reason"] == "found again after RESOLVED"
    assert after["due_at"] == local(WATERMARK_2 + SLA)          # reopened: a fresh due date from the owner SLA


def test_waiver_above_the_threshold_needs_a_different_approver(story: Story) -> None:
    assert story.states["run1"]["E"]["exposure_amount"] == Decimal("200.400000")     # above maker_checker_above 100
    assert story.cli["waive_e"].code == 0 and "needs approval" in story.cli["waive_e"].out
    pending = story.states["pending"]["E"]
    assert (pending["status"], pending["requested_status"], pending["actor"]) == ("PENDING_APPROVAL", "WAIVED",
                                                                                 "alice")
    refused = story.cli["self_approve"]
    assert refused.code == 2
    assert "maker-checker: alice requested WAIVED" in refused.err and "another actor must approve" in refused.err
    assert story.states["refused"]["E"]["status"] == "PENDING_APPROVAL"
    assert story.cli["approve"].code == 0, story.cli["approve"].err
    waived = story.states["manual"]["E"]
    assert (waived["status"], waived["actor"], waived["approved_by"]) == ("WAIVED", "alice", "bob")
    assert waived["evidence_refs"] == ["MEMO-3"]
    after = story.states["run2"]["E"]                           # accepted exposure: the next run keeps it waived
    assert (after["status"], after["approved_by"]) == ("WAIVED", "bob")


def test_waiver_below_the_threshold_applies_directly(story: Story) -> None:
    assert story.cli["waive_f"].code == 0, story.cli["waive_f"].err
    waived = story.states["manual"]["F"]
    assert waived["exposure_amount"] == Decimal("0.600000")
    assert (waived["status"], waived["actor"], waived["approved_by"]) == ("WAIVED", "alice", None)


def test_current_view_has_one_row_per_case(story: Story) -> None:
    current = story.current_after_3
    assert current.count() == current.select("cycle_id", "case_id").distinct().count() == len(NAMES)
    assert story.history_rows > len(NAMES)                      # the history keeps every run's and transition's row
    statuses = {r["case_id"]: r["status"] for r in current.collect()}
    assert statuses == {expected_case_id("A"): "OPEN", expected_case_id("B"): "REOPENED",
                        expected_case_id("C"): "ACKNOWLEDGED", expected_case_id("D"): "REOPENED",
                        expected_case_id("E"): "WAIVED", expected_case_id("F"): "WAIVED"}


def test_summary_counts_overdue_cases(story: Story) -> None:
    # After run 2 (watermark June 22): A and C are due June 15 and not closed; D was reopened with a fresh due date,
    # B is auto-cleared, E and F are waived.
    assert "overdue cases (cycle 2026-06, current, not closed, due before the watermark): 2" in story.summary_2
    assert "AUTO_CLEARED 1" in story.summary_2 and "REOPENED 1" in story.summary_2


def test_list_shows_masked_phone_numbers_only(story: Story) -> None:
    listing = story.cli["list"]
    assert listing.code == 0, listing.err
    assert "+1555***0060" in listing.out and "+15552000060" not in listing.out
    assert "6 of 6 cases" in listing.out


def test_maker_checker_threshold_is_validated(tmp_path: Path) -> None:
    text = Path(RULESET).read_text().replace("maker_checker_above: 100.00", "maker_checker_above: lots")
    with pytest.raises(ConfigError, match=r"bad\.yaml: maker_checker_above: 'lots' is not a number"):
        load_ruleset(tmp_path / "bad.yaml", text=text)
    assert load_ruleset(RULESET).maker_checker_above == Decimal("100.0")


def _case(case_id: str, status: str, bucket: int, cp: str = "usage-to-rating", cycle: str = CYCLE) -> dict[str, Any]:
    at = datetime(2026, 6, 10, tzinfo=UTC)
    return {"run_id": "r0", "control_point_id": cp, "ruleset_version": "v", "cycle_id": cycle,
            "account_bucket": bucket, "case_id": case_id, "case_type": "USAGE_NOT_RATED", "status": status,
            "exposure_amount": Decimal("1"), "opened_at": at, "due_at": at, "first_opened_at": at,
            "recorded_at": at, "evidence": [], "evidence_refs": []}


def test_auto_clear_stays_inside_the_runs_scope(spark: SparkSession) -> None:
    """A partition run clears only its bucket, its cycle and its control points, and never a terminal case."""
    rows = [_case("IN", "OPEN", 1), _case("OTHER-BUCKET", "OPEN", 2), _case("OTHER-CYCLE", "OPEN", 1, cycle="2026-05"),
            _case("OTHER-CP", "OPEN", 1, cp="inventory-to-bill"), _case("WAIVED", "WAIVED", 1),
            _case("RESOLVED", "RESOLVED", 1), _case("FOUND", "ACKNOWLEDGED", 1)]
    current = spark.createDataFrame([tuple(r.get(f.name) for f in RA_CASE.fields) for r in rows], RA_CASE)
    found = current.where(F.col("case_id") == "FOUND").withColumn("status", F.lit("OPEN"))
    out = apply_lifecycle(found, current_state(current), "r1", datetime(2026, 6, 20, tzinfo=UTC), cycle_id=CYCLE,
                          ruleset_version="v", control_points=["usage-to-rating"], bucket=1)
    got = {r["case_id"]: (r["status"], r["closed_by_run"]) for r in out.collect()}
    assert got == {"IN": ("AUTO_CLEARED", "r1"), "RESOLVED": ("AUTO_CLEARED", "r1"), "FOUND": ("ACKNOWLEDGED", None)}
