"""Conf and ruleset validation: a bad key, value or column exits 2 naming file, key and value, before Spark runs."""

from __future__ import annotations

import io
from collections.abc import Callable
from contextlib import redirect_stderr
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml
from pyspark.sql import SparkSession

from factories import CYCLE_BOUNDS, RULESET, jobs_started, write_inputs
from jobs.cli import main
from jobs.config import ConfigError, load_conf
from jobs.ruleset import load_ruleset


def _ruleset_with(tmp_path: Path, edit: Any) -> Path:
    data = yaml.safe_load(Path(RULESET).read_text())
    edit(data)
    path = tmp_path / "bad_ruleset.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _conf(tmp_path: Path, **overrides: Any) -> Path:
    data = {"tables": {t: str(tmp_path / t) for t in ("cdr", "rated_event", "bill_charge", "suspense", "tariff")},
            "output": str(tmp_path / "out"), "cycles": {"2026-06": dict(CYCLE_BOUNDS)}, **overrides}
    path = tmp_path / "conf.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


CP = "control_points"
U2R, RA, R2B, AGG = "usage-to-rating", "rating-accuracy", "rating-to-billing", "usage-aggregate"


def _rule(data: dict[str, Any], cp: str, side: str, name: str) -> dict[str, Any]:
    """The rule of that name in a loaded ruleset's YAML (edits find rules by name, never by position)."""
    return next(r for r in data[CP][cp]["decide"][side] if r["rule"] == name)


def test_shipped_ruleset_loads() -> None:
    data = yaml.safe_load(Path(RULESET).read_text())
    rs = load_ruleset(RULESET)
    assert rs.version == data["version"] and len(rs.content_hash) == 64
    assert set(rs.control_points) == {"usage-to-rating", "rating-accuracy", "rating-to-billing", "usage-aggregate"}
    fuzzy = rs.control_points["usage-to-rating"].stages.fuzzy
    assert fuzzy is not None and fuzzy.window_s == 10
    r2b = rs.control_points["rating-to-billing"]
    assert r2b.tolerance is not None and (r2b.tolerance.abs, r2b.tolerance.rel) == (Decimal("0.01"), Decimal("0.001"))
    assert [rule.name for rule in r2b.decide["RIGHT"]] == [r["rule"] for r in data[CP][R2B]["decide"]["RIGHT"]]


# Each edit is structural, on the loaded YAML; each message names the key path and the offending value.
BAD_RULESETS = [
    # inputs: a side, a lookup, a check list, a lineage parent or an aggregate side naming what is not declared
    ("unknown side input", lambda d: d[CP][U2R]["left"].update(input="cdrs"),
     "control_points.usage-to-rating.left.input: 'cdrs' is not an input (inputs: "),
    ("unknown lookup input", lambda d: d[CP][U2R]["lookups"]["suspense"].update(input="rejects"),
     "control_points.usage-to-rating.lookups.suspense.input: 'rejects' is not an input"),
    ("checks of an unknown input", lambda d: d["checks"].update(cdrs=[]), "checks.cdrs: 'cdrs' is not an input"),
    ("unknown lineage parent", lambda d: d["inputs"]["rated_event"]["lineage"].update(parent="cdrs"),
     "inputs.rated_event.lineage.parent: 'cdrs' is not an input"),
    ("aggregate of an unknown control point", lambda d: d[CP][AGG]["left"].update(of="rating-to-bill"),
     "control_points.usage-aggregate.left.of: 'rating-to-bill' is not a record control point declared before"),
    # columns: a side's required columns and every stage's keys are checked against the input's contract columns
    ("unknown required column", lambda d: d[CP][U2R]["left"]["required"].append("msisd"),
     "control_points.usage-to-rating.left.required: unknown column 'msisd' of input cdr (table cdr; columns:"),
    ("unknown exact right column", lambda d: d[CP][R2B]["stages"]["exact"][0].update(right="source_event_id"),
     "control_points.rating-to-billing.stages.exact[0].right: unknown column 'source_event_id' of input "
     "usage_charge (table bill_charge;"),
    ("unknown exact left column", lambda d: d[CP][U2R]["stages"]["exact"][0].update(left="recordid"),
     "control_points.usage-to-rating.stages.exact[0].left: unknown column 'recordid' of input cdr"),
    ("unknown exact order column", lambda d: d[CP][R2B]["stages"]["exact"][0].update(order=["billed"]),
     "control_points.rating-to-billing.stages.exact[0].order: unknown column 'billed' of input usage_charge"),
    ("unknown duplicates content column", lambda d: d[CP][U2R]["stages"]["duplicates"]["content"].append("imsi"),
     "control_points.usage-to-rating.stages.duplicates.content: unknown column 'imsi' of input cdr"),
    ("fuzzy key of one side only", lambda d: d[CP][U2R]["stages"]["fuzzy"]["keys"].append("usage_quantity"),
     "control_points.usage-to-rating.stages.fuzzy.keys: unknown column 'usage_quantity' of input rated_event"),
    ("unknown fuzzy quantity column", lambda d: d[CP][U2R]["stages"]["fuzzy"]["quantity"].update(right="qty"),
     "control_points.usage-to-rating.stages.fuzzy.quantity.right: unknown column 'qty' of input rated_event"),
    ("unknown lookup join column", lambda d: d[CP][U2R]["lookups"]["suspense"].update(join={"record_id": "rec_id"}),
     "control_points.usage-to-rating.lookups.suspense.join: unknown column 'rec_id' of input suspense"),
    ("unknown cycle column", lambda d: d["inputs"]["cdr"]["cycle"].update(by="cycle"),
     "inputs.cdr.cycle: unknown column 'cycle' of input cdr"),
    # rules: outcome, lookup, parameters, names
    ("unknown outcome in a rule", lambda d: _rule(d, R2B, "RIGHT", "further").update(outcome="DUPLICATE_CHARGES"),
     "control_points.rating-to-billing.decide.RIGHT.further.outcome: 'DUPLICATE_CHARGES' has no policy under "
     "outcomes ("),
    ("rule priced by an unknown lookup", lambda d: _rule(d, U2R, "LEFT", "late").update(priced_by="tariffs"),
     "control_points.usage-to-rating.decide.LEFT.late.priced_by: 'tariffs' is not a price or price_list lookup"),
    ("rule priced by a key lookup", lambda d: _rule(d, U2R, "LEFT", "late").update(priced_by="suspense"),
     "control_points.usage-to-rating.decide.LEFT.late.priced_by: 'suspense' is not a price or price_list lookup"),
    ("unknown parameter in a rule",
     lambda d: _rule(d, U2R, "LEFT", "in-suspense").update(when="suspense.rejected_at >= ${cycle.close} - INTERVAL "
                                                               "${suspense_sla} DAYS"),
     "control_points.usage-to-rating.decide.LEFT.in-suspense.when: unknown parameter ${suspense_sla} (known: "),
    ("unknown parameter in a let", lambda d: d[CP][R2B]["let"]["LEFT"].update(x="amount > ${x}"),
     "control_points.rating-to-billing.let.LEFT.x: unknown parameter ${x}"),
    ("beyond_tolerance without its two arguments",
     lambda d: _rule(d, R2B, "LEFT", "amount-mismatch").update(when="beyond_tolerance(amount)"),
     "control_points.rating-to-billing.decide.LEFT.amount-mismatch.when: beyond_tolerance takes (difference, "
     "reference), got 1 argument(s): 'beyond_tolerance(amount)'"),
    ("duplicate rule name",
     lambda d: d[CP][R2B]["decide"]["RIGHT"].insert(1, {"rule": "matched", "when": "false", "outcome": "MATCHED"}),
     "control_points.rating-to-billing.decide.RIGHT.matched: a rule of this name comes earlier"),
    ("rule without when", lambda d: _rule(d, R2B, "LEFT", "matched").pop("when"),
     "control_points.rating-to-billing.decide.LEFT.matched.when: expected a non-empty text, got None"),
    # tolerances
    ("tolerance not a number", lambda d: d[CP][RA]["tolerance"].update(abs="a cent"),
     "control_points.rating-accuracy.tolerance.abs: 'a cent' is not a number"),
    ("negative tolerance", lambda d: d[CP][R2B]["tolerance"].update(rel=-0.001),
     "control_points.rating-to-billing.tolerance.rel: -0.001 is not a non-negative number"),
    ("tolerance key", lambda d: d[CP][R2B]["tolerance"].update(pct=1),
     "control_points.rating-to-billing.tolerance.pct: unknown key (allowed: abs, rel)"),
    ("fuzzy tolerance not a number", lambda d: d[CP][U2R]["stages"]["fuzzy"]["tolerances"]["VOICE"].update(abs="one"),
     "control_points.usage-to-rating.stages.fuzzy.tolerances.VOICE.abs: 'one' is not a number"),
    ("negative window", lambda d: d[CP][U2R]["stages"]["fuzzy"].update(window_s=-10),
     "control_points.usage-to-rating.stages.fuzzy.window_s: -10 is not a positive whole number"),
    # outcome policies
    ("unknown owner", lambda d: d[CP][R2B]["outcomes"]["DUPLICATE_CHARGE"].update(owner="nobody"),
     "control_points.rating-to-billing.outcomes.DUPLICATE_CHARGE.owner: 'nobody' is not a team under owners"),
    ("bad severity", lambda d: d[CP][R2B]["outcomes"]["DUPLICATE_CHARGE"].update(severity="URGENT"),
     "control_points.rating-to-billing.outcomes.DUPLICATE_CHARGE.severity: 'URGENT' is not one of"),
    ("bad exposure class", lambda d: d[CP][R2B]["outcomes"]["DUPLICATE_CHARGE"].update(exposure_class="LEAKAGE"),
     "control_points.rating-to-billing.outcomes.DUPLICATE_CHARGE.exposure_class: 'LEAKAGE' is not one of "
     "UNDERBILLING, OVERBILLING, TIMING, COST_LEAKAGE, INVENTORY, BY_SIGN"),
    ("a case without exposure class", lambda d: d[CP][R2B]["outcomes"]["DUPLICATE_CHARGE"].pop("exposure_class"),
     "control_points.rating-to-billing.outcomes.DUPLICATE_CHARGE.exposure_class: None is not one of"),
    ("a policy no rule gives", lambda d: d[CP][RA]["outcomes"].update(TARIFF_WRONG={"case": False}),
     "control_points.rating-accuracy.outcomes.TARIFF_WRONG: no rule gives this outcome"),
    ("exemption of an unknown outcome", lambda d: d[CP][U2R]["exemptions"][0]["outcomes"].append("USAGE_UNRATED"),
     "control_points.usage-to-rating.exemptions[0].outcomes: 'USAGE_UNRATED' is not an outcome of this control "
     "point"),
    ("aggregate outcome without policy", lambda d: d[CP][AGG]["decide"].update(beyond="VARIANCE"),
     "control_points.usage-aggregate.decide.beyond: 'VARIANCE' has no policy under outcomes"),
    # the file as a whole
    ("contract 1", lambda d: d.update(contract=1),
     "contract: 1: this telco-ra reads rulesets of contract 2 (control points declared with inputs, stages and "
     "rules)"),
    ("no contract", lambda d: d.pop("contract"), "contract: None: this telco-ra reads rulesets of contract 2"),
    ("unknown key", lambda d: d.update(acount_buckets=8), "acount_buckets: unknown key"),
    ("version not a string", lambda d: d.update(version=None), "version: None is not a version string"),
    ("unknown kind", lambda d: d[CP][RA].update(kind="aggregated"),
     "control_points.rating-accuracy.kind: 'aggregated' is not one of record, aggregate"),
    # keys of the contract-1 format are refused, not ignored
    ("contract-1 side table", lambda d: d[CP][U2R]["left"].update(table="cdr"),
     "control_points.usage-to-rating.left.table: unknown key (allowed: describe, input, required, unique_id)"),
    ("contract-1 unrated_tariff", lambda d: d[CP][U2R].update(unrated_tariff={"VOICE": "VOICE-STD"}),
     "control_points.usage-to-rating.unrated_tariff: unknown key"),
    # keys are reported where they are, not under their parent
    ("lookup time column", lambda d: d[CP][U2R]["lookups"]["price"].update(at="start_tme"),
     "control_points.usage-to-rating.lookups.price.at: unknown column 'start_tme' of input cdr"),
    ("lookup quantity column", lambda d: d[CP][U2R]["lookups"]["price"].update(quantity="qty"),
     "control_points.usage-to-rating.lookups.price.quantity: unknown column 'qty' of input cdr"),
    ("input id column", lambda d: d["inputs"]["rated_event"].update(id="rated_id"),
     "inputs.rated_event.id: unknown column 'rated_id' of input rated_event"),
    ("report outcome", lambda d: d[CP][U2R]["reports"][0].update(outcomes=["IN_SUSPENSE", "AGED"]),
     "control_points.usage-to-rating.reports[0].outcomes: 'AGED' is not an outcome of this control point"),
    ("report owner_of", lambda d: d[CP][U2R]["reports"][0].update(owner_of="AGED"),
     "control_points.usage-to-rating.reports[0].owner_of: 'AGED' is not an outcome of this control point"),
    # lookups price LEFT records (their columns are checked against the left input)
    ("priced_by on a RIGHT rule", lambda d: d[CP][U2R]["decide"]["RIGHT"][-1].update(priced_by="price"),
     "control_points.usage-to-rating.decide.RIGHT.without-usage.priced_by: 'price': lookups price the LEFT side"),
    # a check runs on the sides that require its column: one no side requires would never run
    ("check nobody runs", lambda d: d["checks"]["rated_event"].append(
        {"reason": "no tariff id", "fails": "tariff_id = ''", "needs": "tariff_version"}),
     "checks.rated_event[4].needs: no side reading input rated_event requires 'tariff_version', so this check "
     "would never run"),
    ("checks of a lookup input", lambda d: d["checks"].update(tariff=[{"reason": "x", "fails": "amount < 0"}]),
     "checks.tariff: input tariff is no side of a record control point: its checks would never run"),
    # Fuzzy selection loops until a round resolves nothing: a ruleset that still bounds the rounds is out of date.
    ("max_rounds removed", lambda d: d[CP][U2R]["stages"]["fuzzy"].update(max_rounds=8),
     "control_points.usage-to-rating.stages.fuzzy.max_rounds: unknown key"),
]


@pytest.mark.parametrize("name,edit,message", BAD_RULESETS, ids=[b[0] for b in BAD_RULESETS])
def test_bad_ruleset_names_file_key_and_value(tmp_path: Path, name: str, edit: Any, message: str) -> None:
    path = _ruleset_with(tmp_path, edit)
    with pytest.raises(ConfigError) as err:
        load_ruleset(path)
    assert str(err.value).startswith(f"{path}: ")
    assert message in str(err.value)


def test_bad_ruleset_value_exits_2_before_spark(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _ruleset_with(tmp_path, lambda d: d[CP][U2R]["stages"]["fuzzy"].update(window_s="ten"))
    code = main(["run", "--conf", str(_conf(tmp_path)), "--ruleset", str(path), "--cycle", "2026-06"])
    err = capsys.readouterr().err
    assert code == 2
    assert f"telco-ra: {path}: control_points.usage-to-rating.stages.fuzzy.window_s: 'ten' is not a positive " \
           "whole number" in err
    assert not (tmp_path / "out").exists()


BAD_CONFS = [
    ("missing output", {"output": None}, "output: None is not a path or schema"),
    ("naive timestamp", {"cycles": {"2026-06": {**CYCLE_BOUNDS, "close": "2026-07-03T00:00:00"}}},
     "cycles.2026-06.close: '2026-07-03T00:00:00' has no time zone"),
    ("close before end", {"cycles": {"2026-06": {**CYCLE_BOUNDS, "close": "2026-06-20T00:00:00Z"}}},
     "cycles.2026-06: expected start < end <= close"),
    ("region", {"phone_region": "usa"}, "phone_region: 'usa' is not a two-letter"),
    ("unsupported region", {"phone_region": "XX"}, "phone_region: 'XX' is not a region phonenumbers knows"),
    ("spark key", {"spark": {"mastr": "local[2]"}}, "spark.mastr: unknown key"),
]


@pytest.mark.parametrize("name,overrides,message", BAD_CONFS, ids=[b[0] for b in BAD_CONFS])
def test_bad_conf_names_key_and_value(tmp_path: Path, name: str, overrides: dict[str, Any], message: str) -> None:
    path = _conf(tmp_path, **overrides)
    with pytest.raises(ConfigError, match=None) as err:
        load_conf(path)
    assert str(err.value).startswith(str(path))
    assert message in str(err.value)


def test_unknown_cycle_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["run", "--conf", str(_conf(tmp_path)), "--ruleset", RULESET, "--cycle", "2026-13"])
    assert code == 2 and "no cycle '2026-13'" in capsys.readouterr().err


# ------------------------------------------------------------- checked before Spark touches data (issue 10: 12, 13)
@pytest.fixture(scope="module")
def month(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Real input tables (one matched call): a run that got past validation would read them and commit."""
    root = tmp_path_factory.mktemp("month")
    return write_inputs(spark, root, {"cdr": [{"record_id": "C1"}],
                                      "rated_event": [{"rated_event_id": "R1", "source_record_id": "C1"}],
                                      "bill_charge": [{"charge_id": "B1", "source_rated_event_id": "R1"}]})


def _exits_2_before_spark(spark: SparkSession, capsys: pytest.CaptureFixture[str], argv: list[str],
                          output: Path) -> str:
    capsys.readouterr()
    before = jobs_started(spark)
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    assert jobs_started(spark) == before, "a Spark job ran before the bad configuration was reported"
    assert not output.exists()
    return err


def test_job_counter_sees_a_spark_job(spark: SparkSession) -> None:
    """The counter the tests below rely on moves when a job runs (else they would prove nothing)."""
    before = jobs_started(spark)
    spark.range(3).count()
    assert jobs_started(spark) > before


# What the engine needs of a control point, missing: the loader refuses it, so no Spark job reads a table for it.
INCOMPLETE = [
    ("a side without rules", lambda d: d[CP][R2B]["decide"].pop("RIGHT"),
     "control_points.rating-to-billing.decide.RIGHT: missing: every side's records need rules giving their outcome"),
    ("aggregate without tolerance", lambda d: d[CP][AGG].pop("tolerance"),
     "control_points.usage-aggregate.tolerance: missing (required for an aggregate control point)"),
    ("aggregate of a side its control point lacks", lambda d: d[CP][AGG]["right"].update(side="AGGREGATE"),
     "control_points.usage-aggregate.right.side: 'AGGREGATE' is not a side of rating-to-billing"),
    ("tolerance a rule needs, removed", lambda d: d[CP][R2B].pop("tolerance"),
     "control_points.rating-to-billing.decide.LEFT.amount-mismatch.when: unknown parameter ${tolerance.abs}"),
    ("contract 1", lambda d: d.update(contract=1), "contract: 1: this telco-ra reads rulesets of contract 2"),
]


@pytest.mark.parametrize("name,edit,message", INCOMPLETE, ids=[b[0] for b in INCOMPLETE])
def test_incomplete_ruleset_exits_2_before_spark(spark: SparkSession, month: Path, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str], name: str,
                                                 edit: Callable[[dict[str, Any]], Any], message: str) -> None:
    path = _ruleset_with(tmp_path, edit)
    err = _exits_2_before_spark(spark, capsys, ["run", "--conf", str(month), "--ruleset", str(path),
                                                "--cycle", "2026-06"], month.parent / "output")
    assert f"telco-ra: {path}: {message}" in err


def test_bucket_out_of_range_exits_2_before_spark(spark: SparkSession, month: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    err = _exits_2_before_spark(spark, capsys, ["run", "--conf", str(month), "--ruleset", RULESET, "--cycle",
                                                "2026-06", "--partition", "account_bucket=99"], month.parent / "output")
    assert "--partition: account_bucket: 99 is not a bucket of this ruleset (0..15" in err


def test_unsupported_region_exits_2_before_spark(spark: SparkSession, month: Path, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    conf = tmp_path / "conf.yaml"
    conf.write_text(month.read_text() + "phone_region: XX\n")
    err = _exits_2_before_spark(spark, capsys, ["run", "--conf", str(conf), "--ruleset", RULESET,
                                                "--cycle", "2026-06"], month.parent / "output")
    assert f"telco-ra: {conf}: phone_region: 'XX' is not a region phonenumbers knows" in err



# --------------------------------------------------- a rule's SQL is analysed by Spark: refused naming the rule
@pytest.fixture(scope="module")
def misspelt_rule(spark: SparkSession, month: Path, tmp_path_factory: pytest.TempPathFactory
                  ) -> tuple[Path, int, str, int]:
    """`telco-ra run` with a ruleset whose rule names a column no record has: (ruleset, exit code, stderr, Spark
    jobs started before the refusal)."""
    path = _ruleset_with(tmp_path_factory.mktemp("misspelt"), lambda d: _rule(d, R2B, "LEFT", "matched").update(
        when="amout > 0"))
    before = jobs_started(spark)
    err = io.StringIO()
    with redirect_stderr(err):
        code = main(["run", "--conf", str(month), "--ruleset", str(path), "--cycle", "2026-06"])
    return path, code, err.getvalue(), jobs_started(spark) - before


def test_a_rule_naming_an_unknown_column_exits_2_naming_rule_and_column(
        month: Path, misspelt_rule: tuple[Path, int, str, int]) -> None:
    _, code, err, _ = misspelt_rule
    assert code == 2, err
    assert "control_points.rating-to-billing.decide.LEFT.matched.when: [UNRESOLVED_COLUMN" in err, err
    assert "`amout` cannot be resolved" in err and "(in 'amout > 0')" in err, err
    assert not (month.parent / "output").exists()


# Rule SQL is analysed against the shape each side's records will have (transforms/engine/analyse.py) before the
# inputs are pinned: refused naming the ruleset file and the rule, with no Spark job run.
def test_a_rule_naming_an_unknown_column_is_refused_naming_the_file(misspelt_rule: tuple[Path, int, str, int]
                                                                    ) -> None:
    path, _, err, _ = misspelt_rule
    assert f"telco-ra: {path}: control_points.rating-to-billing.decide.LEFT.matched.when: " in err, err


def test_a_rule_naming_an_unknown_column_is_refused_before_spark_runs_a_job(
        misspelt_rule: tuple[Path, int, str, int]) -> None:
    _, _, _, jobs = misspelt_rule
    assert jobs == 0, f"{jobs} Spark jobs ran before the rule was refused"
