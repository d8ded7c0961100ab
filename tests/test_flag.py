"""`telco-ra flag`: a wrong row's context in flagged_row, as its run read it, and a fixture that reproduces it.

The story (module fixture): the scenario month of tests/scenario.py (every record's outcome known in advance) is run
once; then the inputs change (R-M's amount is corrected, the voice tariff's rate goes up), and two rows of the run
are flagged through the command line: R-M's TARIFF_MISMATCH (rating-accuracy) and C-S2's SUSPENSE_AGED, whose
suspense reason carries two phone numbers in free text. Expected rows are written here from the scenario's own
definitions, never read back from what the command wrote.
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml
from delta.tables import DeltaTable
from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from test_flagged_fixtures import replay_fixture

from factories import CYCLE, DEFAULTS, RULESET, TARIFFS, Cli, frame, run_cli, write_inputs
from jobs.config import load_conf
from jobs.flag.fixture import Replayed, load_fixture, problems
from jobs.outputs import read_output, table_ref
from jobs.rerun import rerun
from jobs.ruleset import load_ruleset
from jobs.run import RunResult, execute
from scenario import CDR, CHARGES, CLOSE, RATED, SUSPENSE
from transforms.schema import INPUT_SCHEMAS

E164 = re.compile(r"\+\d{8,15}")
SUSPENSE_REASON = "unknown subscriber +15552000008, caller (555) 200-0008"
WHY = "the rate card changed on the 1st: 0.90 is the new voice price"


@dataclass
class Story:
    conf: Path
    output: str
    run: RunResult
    fixtures: Path
    flags: dict[str, Cli]          # record id -> what the command did
    before: datetime
    after: datetime


def _stored(table: str, row: dict[str, Any]) -> dict[str, Any]:
    """A row of the scenario as its table stores it and JSON shows it: every column in order, contract defaults
    filled in, instants in UTC to the microsecond."""
    full = {**DEFAULTS[table], **row}
    out = {}
    for field in INPUT_SCHEMAS[table].fields:
        value = full.get(field.name)
        out[field.name] = f"{value.astimezone(UTC):%Y-%m-%dT%H:%M:%S.%f}Z" if isinstance(value, datetime) else value
    return out


def _json(text: str) -> dict[str, Any]:
    return dict(json.loads(text, parse_float=Decimal))


def _flag(spark: SparkSession, story_conf: Path, run_id: str, fixtures: Path, *args: str) -> Cli:
    return run_cli(spark, "flag", "--conf", str(story_conf), "--run-id", run_id, "--fixtures", str(fixtures),
                   "--by", "ana", *args)


@pytest.fixture(scope="module")
def story(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> Story:
    root = tmp_path_factory.mktemp("flag")
    suspense = [dict(s, reason=SUSPENSE_REASON) if s["record_id"] == "C-S2" else s for s in SUSPENSE]
    conf_path = write_inputs(spark, root, {"cdr": CDR, "rated_event": RATED, "bill_charge": CHARGES,
                                            "suspense": suspense})
    conf = load_conf(conf_path)
    run = execute(spark, conf, load_ruleset(RULESET), CYCLE)
    # Since the run: R-M's amount is corrected and the voice tariff's rate goes up (version 1 of both tables).
    fixed = [dict(r, amount=Decimal("0.600000")) if r["rated_event_id"] == "R-M" else r for r in RATED]
    frame(spark, "rated_event", fixed).write.format("delta").mode("overwrite").save(conf.tables["rated_event"])
    dearer = [dict(t, rate_per_unit=Decimal("0.02000000")) if t["tariff_id"] == "VOICE-STD" else t for t in TARIFFS]
    frame(spark, "tariff", dearer).write.format("delta").mode("overwrite").save(conf.tables["tariff"])
    fixtures = root / "fixtures"
    before = datetime.now(UTC)
    flags = {
        "R-M": _flag(spark, conf_path, run.run_id, fixtures, "--record-id", "R-M", "--control-point",
                     "rating-accuracy", "--why", WHY),
        "C-S2": _flag(spark, conf_path, run.run_id, fixtures, "--record-id", "C-S2", "--why",
                      "the subscriber +15552000008 was reprocessed on the 2nd"),
    }
    return Story(conf_path, conf.output, run, fixtures, flags, before, datetime.now(UTC))


def _flagged(spark: SparkSession, story: Story, record_id: str) -> dict[str, Any]:
    rows = (read_output(spark, table_ref(story.output, "flagged_row")).where(F.col("record_id") == record_id)
            .withColumn("at_micros", F.unix_micros("flagged_at")).collect())
    assert len(rows) == 1, rows
    return rows[0].asDict(recursive=True)


def test_the_flag_commands_succeed(story: Story) -> None:
    for record_id, cli in story.flags.items():
        assert cli.code == 0, (record_id, cli.err)


def test_flagged_row_holds_the_record_and_counterpart_as_the_run_read_them(spark: SparkSession,
                                                                            story: Story) -> None:
    """Read at the run's versions (time travel): R-M at 0.90, the tariff at 0.01, though both changed since."""
    got = _flagged(spark, story, "R-M")
    r_m = next(r for r in RATED if r["rated_event_id"] == "R-M")
    voice = next(t for t in TARIFFS if t["tariff_id"] == "VOICE-STD")
    assert (got["record_table"], got["record_version"]) == ("rated_event", story.run.input_versions["rated_event"])
    assert _json(got["record"]) == _stored("rated_event", r_m)
    assert (got["counterpart_table"], got["counterpart_version"]) == ("tariff", story.run.input_versions["tariff"])
    assert _json(got["counterpart"]) == _stored("tariff", voice)
    now = read_output(spark, load_conf(story.conf).tables["rated_event"]).where(F.col("rated_event_id") == "R-M")
    assert now.first()["amount"] == Decimal("0.600000")                   # the table did change since the run


def test_flagged_row_names_the_rule_its_outcome_and_evidence(spark: SparkSession, story: Story) -> None:
    got = _flagged(spark, story, "R-M")
    ruleset = load_ruleset(RULESET)
    mismatch = next(r for r in ruleset.control_points["rating-accuracy"].decide["LEFT"] if r.name == "mismatch")
    assert (got["run_id"], got["control_point_id"], got["side"], got["cycle_id"]) == (
        story.run.run_id, "rating-accuracy", "LEFT", CYCLE)
    assert (got["outcome"], got["rule"], got["rule_when"], got["rule_source"]) == (
        "TARIFF_MISMATCH", "mismatch", mismatch.when, "recorded")
    assert (got["severity"], got["owner_team"], got["correction_action"]) == ("HIGH", "charging-operations", "re-rate")
    assert (got["amount"], got["expected_amount"], got["exposure_amount"]) == (
        Decimal("0.900000"), Decimal("0.600000"), Decimal("-0.300000"))
    assert (got["ruleset_name"], got["ruleset_version"], got["ruleset_hash"]) == (
        "usage_to_bill", ruleset.version, ruleset.content_hash)
    assert (got["flagged_by"], got["why"]) == ("ana", WHY)
    at = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=got["at_micros"])
    assert story.before <= at <= story.after
    assert [(e["source_system"], e["source_table"], e["record_id"]) for e in got["evidence"]] == [
        ("rating", "rated_event", "R-M"), ("catalog", "tariff", None)]
    assert _json(got["outcome_row"])["outcome"] == "TARIFF_MISMATCH"
    assert got["input_versions"] == story.run.input_versions
    roles = {(c["source_table"], tuple(c["roles"])) for c in got["context"]}
    assert roles == {("rated_event", ("record", "record-id")), ("tariff", ("counterpart", "lookup:tariff"))}


def test_a_suspense_row_carries_its_lookup_rows(spark: SparkSession, story: Story) -> None:
    """C-S2's SUSPENSE_AGED rests on its OPEN suspense row and the voice price list: both travel with it."""
    got = _flagged(spark, story, "C-S2")
    by_table = {c["source_table"]: c for c in got["context"]}
    assert set(by_table) == {"cdr", "suspense", "tariff"}
    s2 = next(s for s in SUSPENSE if s["record_id"] == "C-S2")
    assert _json(by_table["suspense"]["row"]) == _stored("suspense", dict(s2, reason=SUSPENSE_REASON))
    assert by_table["suspense"]["roles"] == ["lookup:suspense"]
    assert (got["outcome"], got["rule"], got["counterpart"]) == ("SUSPENSE_AGED", "suspense-aged", None)


def test_the_console_shows_no_phone_number_in_clear(story: Story) -> None:
    for record_id, cli in story.flags.items():
        assert not E164.search(cli.out + cli.err), (record_id, E164.findall(cli.out + cli.err))
    assert "+1555***0008" in story.flags["C-S2"].out          # the reason is shown, masked


@pytest.fixture(scope="module")
def r_m_fixture(spark: SparkSession, story: Story,
                tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Replayed]:
    """R-M's fixture folder as the command wrote it, and what the fixture test's replay gives its record."""
    folder = next(p for p in story.fixtures.iterdir() if p.name.startswith("rating-accuracy-left-R-M-"))
    return folder, replay_fixture(spark, folder, tmp_path_factory.mktemp("replay-r-m"))[1]


def test_the_fixture_holds_the_rows_and_reproduces_the_outcome(r_m_fixture: tuple[Path, Replayed]) -> None:
    folder, got = r_m_fixture
    fixture = load_fixture(folder)
    assert {t: len(lines) for t, (_, lines) in fixture.tables.items()} == {
        "bill_charge": 0, "cdr": 0, "rated_event": 1, "suspense": 0, "tariff": 1}
    assert (fixture.ruleset, fixture.cycle.close, fixture.expected["outcome"]) == ("usage_to_bill", CLOSE,
                                                                                 "TARIFF_MISMATCH")
    assert yaml.safe_load((folder / "expected.yaml").read_text())["why"] == WHY
    assert (got.outcome, got.rule) == ("TARIFF_MISMATCH", "mismatch")
    assert problems(fixture, got) == []


def test_the_fixture_test_fails_when_the_expected_outcome_is_edited(r_m_fixture: tuple[Path, Replayed],
                                                                    tmp_path: Path) -> None:
    """The same rows replay to the same outcome whatever expected.yaml says (r_m_fixture's replay serves both);
    edited to another outcome, the fixture test reports the difference."""
    written, got = r_m_fixture
    folder = Path(shutil.copytree(written, tmp_path / written.name))
    expected = yaml.safe_load((folder / "expected.yaml").read_text())
    (folder / "expected.yaml").write_text(yaml.safe_dump({**expected, "outcome": "MATCHED"}))
    found = problems(load_fixture(folder), got)
    assert len(found) == 1 and "outcome TARIFF_MISMATCH (rule mismatch" in found[0] and "expected MATCHED" in found[0]


@pytest.mark.parametrize(("args", "says"), [
    (("--run-id", "no-such-run", "--record-id", "R-M"), "no committed run of that id"),
    (("--record-id", "R-NOPE"), "record 'R-NOPE': no record_outcome row"),
    (("--record-id", "R-E10"), "3 rows in run"),
    (("--record-id", "C-A", "--control-point", "usage-to-rating"), "--record-key (copies share the id)"),
    (("--record-id", "R-M", "--control-point", "no-such-point"), "is not a control point"),
])
def test_a_flag_that_names_no_single_row_exits_2(spark: SparkSession, story: Story, args: tuple[str, ...],
                                                 says: str) -> None:
    run_id = [] if "--run-id" in args else ["--run-id", story.run.run_id]
    cli = run_cli(spark, "flag", "--conf", str(story.conf), *run_id, *args, "--why", "wrong",
                  "--fixtures", str(story.fixtures / "refused"))
    assert cli.code == 2, cli.err
    assert says in cli.err
    assert not (story.fixtures / "refused").exists()


def test_a_further_charge_travels_with_the_charge_it_repeats(spark: SparkSession, story: Story,
                                                              tmp_path: Path) -> None:
    """B-A2 is DUPLICATE_CHARGE because B-A charged R-A first; R-A's id is repeated (one copy QUARANTINED)."""
    cli = _flag(spark, story.conf, story.run.run_id, tmp_path, "--record-id", "B-A2", "--why", "one charge only")
    assert cli.code == 0, cli.err
    fixture = load_fixture(next(tmp_path.iterdir()))
    ids = {t: sorted(json.loads(line)[key] for line in fixture.tables[t][1])
           for t, key in (("bill_charge", "charge_id"), ("rated_event", "rated_event_id"))}
    assert ids == {"bill_charge": ["B-A", "B-A2"], "rated_event": ["R-A", "R-A"]}
    assert fixture.expected["outcome"] == "DUPLICATE_CHARGE"


def test_an_ambiguous_match_needs_the_records_neighbourhood(spark: SparkSession, story: Story,
                                                            tmp_path: Path) -> None:
    """C-T1 ties with C-T2 for R-T: neither is its counterpart, so only the wider context reproduces it."""
    cli = _flag(spark, story.conf, story.run.run_id, tmp_path / "fixtures", "--record-id", "C-T1", "--why", "C-T1 "
                "is the call")
    assert cli.code == 0, cli.err
    folder = next((tmp_path / "fixtures").iterdir())
    fixture = load_fixture(folder)
    assert sorted(json.loads(line)["record_id"] for line in fixture.tables["cdr"][1]) == ["C-T1", "C-T2"]
    assert yaml.safe_load((folder / "fixture.yaml").read_text())["flagged"]["context_level"] == 1
    assert fixture.expected["outcome"] == "AMBIGUOUS_MATCH"      # the command replayed it to that before writing


def test_a_run_written_before_outcome_rows_named_their_rule(spark: SparkSession, story: Story,
                                                            tmp_path: Path) -> None:
    """A copy of the story's output whose record_outcome rows carry no rule (as a run written before the column
    existed): the flag names the rule its replay fired, and `telco-ra rerun` still finds the run reproduced."""
    output = tmp_path / "output"
    shutil.copytree(story.output, output)
    DeltaTable.forPath(spark, str(output / "record_outcome")).update(set={"rule": F.lit(None).cast("string")})
    data = yaml.safe_load(story.conf.read_text())
    conf_path = tmp_path / "conf.yaml"
    conf_path.write_text(yaml.safe_dump({**data, "output": str(output)}))
    cli = _flag(spark, conf_path, story.run.run_id, tmp_path / "fixtures", "--record-id", "R-M", "--control-point",
                "rating-accuracy", "--why", "written before rules were named")
    assert cli.code == 0, cli.err
    got = (read_output(spark, str(output / "flagged_row")).where(F.col("why") == "written before rules were named")
           .select("rule", "rule_source", "fixture_reproduced").collect())
    assert [tuple(r) for r in got] == [("mismatch", "replayed", True)]
    assert rerun(spark, load_conf(conf_path), story.run.run_id).identical
