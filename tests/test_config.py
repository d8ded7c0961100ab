"""Conf and ruleset validation: a bad key, value or column exits 2 naming file, key and value, before Spark runs."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from pyspark.sql import SparkSession

from factories import CYCLE_BOUNDS, RULESET, write_inputs
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


def test_shipped_ruleset_loads() -> None:
    rs = load_ruleset(RULESET)
    assert rs.version == "2026.12.0" and len(rs.content_hash) == 64
    assert set(rs.control_points) == {"usage-to-rating", "rating-accuracy", "rating-to-billing", "usage-aggregate"}
    fuzzy = rs.control_points["usage-to-rating"].fuzzy
    assert fuzzy is not None and fuzzy.time_window_s == 10


CP = "control_points"
BAD_RULESETS = [
    ("negative window", lambda d: d[CP]["usage-to-rating"]["fuzzy"].update(time_window_s=-10),
     "control_points.usage-to-rating.fuzzy.time_window_s: -10 is not a positive whole number"),
    ("unknown column", lambda d: d[CP]["usage-to-rating"]["left"]["required"].append("msisd"),
     "control_points.usage-to-rating.left.required: unknown column 'msisd' of table cdr"),
    ("unknown outcome", lambda d: d[CP]["rating-accuracy"]["outcomes"].update(TARIFF_WRONG={"case": False}),
     "control_points.rating-accuracy.outcomes.TARIFF_WRONG: 'TARIFF_WRONG' is not an outcome of rating-accuracy"),
    ("bad severity", lambda d: d[CP]["rating-to-billing"]["outcomes"]["DUPLICATE_CHARGE"].update(severity="URGENT"),
     "control_points.rating-to-billing.outcomes.DUPLICATE_CHARGE.severity: 'URGENT' is not one of"),
    ("unknown owner", lambda d: d[CP]["rating-to-billing"]["outcomes"]["DUPLICATE_CHARGE"].update(owner="nobody"),
     "outcomes.DUPLICATE_CHARGE.owner: 'nobody' is not a team under owners"),
    ("tolerance not a number", lambda d: d[CP]["rating-accuracy"]["tolerance"].update(abs="a cent"),
     "control_points.rating-accuracy.tolerance.abs: 'a cent' is not a number"),
    ("unknown key", lambda d: d.update(acount_buckets=8), "acount_buckets: unknown key"),
    ("version not a string", lambda d: d.update(version=None), "version: None is not a version string"),
    # Fuzzy selection loops until a round resolves nothing: a ruleset that still bounds the rounds is out of date.
    ("max_rounds removed", lambda d: d[CP]["usage-to-rating"]["fuzzy"].update(max_rounds=8),
     "control_points.usage-to-rating.fuzzy.max_rounds: unknown key"),
    # What jobs/run.py needs of each control point, missing: each ended in a KeyError or an assert after Spark read.
    ("no usage-aggregate", lambda d: d[CP].pop("usage-aggregate"),
     "control_points: no control point 'usage-aggregate' (this engine runs"),
    ("usage-to-rating without right side", lambda d: d[CP]["usage-to-rating"].pop("right"),
     "control_points.usage-to-rating.right: missing (required"),
    ("usage-to-rating without duplicates", lambda d: d[CP]["usage-to-rating"].pop("duplicates"),
     "control_points.usage-to-rating.duplicates.content: missing (required"),
    ("rating-to-billing without exact", lambda d: d[CP]["rating-to-billing"].pop("exact"),
     "control_points.rating-to-billing.exact: missing (required"),
    ("usage-aggregate without right side", lambda d: d[CP]["usage-aggregate"].pop("right"),
     "control_points.usage-aggregate.right: missing (required"),
    ("rating-accuracy as aggregate", lambda d: d[CP]["rating-accuracy"].update(kind="aggregate"),
     "control_points.rating-accuracy.kind: 'aggregate': this engine runs rating-accuracy as a record control point"),
    ("usage-aggregate on the wrong table", lambda d: d[CP]["usage-aggregate"]["left"].update(table="bill_charge"),
     "control_points.usage-aggregate.left.table: 'bill_charge': this engine reads rated_event here"),
    # Decoration: keys the engine does not read; any value but the one it uses would change the run id and nothing else.
    ("exact not the engine's", lambda d: d[CP]["usage-to-rating"]["exact"].update(right="rated_event_id"),
     "control_points.usage-to-rating.exact.right: 'rated_event_id': this engine uses 'source_record_id'"),
    ("exact left not the engine's", lambda d: d[CP]["rating-to-billing"]["exact"].update(left="source_record_id"),
     "control_points.rating-to-billing.exact.left: 'source_record_id': this engine uses 'rated_event_id'"),
    ("side id not the engine's", lambda d: d[CP]["rating-to-billing"]["right"].update(id="source_rated_event_id"),
     "control_points.rating-to-billing.right.id: 'source_rated_event_id': this engine uses 'charge_id'"),
    ("cdr id not the engine's", lambda d: d[CP]["usage-to-rating"]["left"].update(id="source_file"),
     "control_points.usage-to-rating.left.id: 'source_file': this engine uses 'record_id'"),
    ("group_by not the engine's", lambda d: d[CP]["usage-aggregate"].update(group_by=["account_id", "service_type"]),
     "control_points.usage-aggregate.group_by: ['account_id', 'service_type']: this engine uses "
     "['account_id', 'service_type', 'currency']"),
    ("group_by on a record control point", lambda d: d[CP]["rating-to-billing"].update(group_by=["account_id"]),
     "control_points.rating-to-billing.group_by: not read by this engine"),
    ("aggregate filter not rating-to-billing's",
     lambda d: d[CP]["usage-aggregate"]["right"].update(filter={"charge_type": "RECURRING"}),
     "control_points.usage-aggregate.right.filter: {'charge_type': 'RECURRING'}: this engine uses "
     "{'charge_type': 'USAGE'}"),
    ("filter on a left side", lambda d: d[CP]["usage-to-rating"]["left"].update(filter={"service_type": "VOICE"}),
     "control_points.usage-to-rating.left.filter: {'service_type': 'VOICE'}: this engine uses {}"),
    ("tolerance on usage-to-rating", lambda d: d[CP]["usage-to-rating"].update(tolerance={"abs": 1}),
     "control_points.usage-to-rating.tolerance: not read by this engine"),
    ("right side on rating-accuracy", lambda d: d[CP]["rating-accuracy"].update(right={"table": "bill_charge"}),
     "control_points.rating-accuracy.right: not read by this engine"),
]


@pytest.mark.parametrize("name,edit,message", BAD_RULESETS, ids=[b[0] for b in BAD_RULESETS])
def test_bad_ruleset_names_file_key_and_value(tmp_path: Path, name: str, edit: Any, message: str) -> None:
    path = _ruleset_with(tmp_path, edit)
    with pytest.raises(ConfigError) as err:
        load_ruleset(path)
    assert str(err.value).startswith(str(path))
    assert message in str(err.value)


def test_bad_ruleset_value_exits_2_before_spark(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _ruleset_with(tmp_path, lambda d: d[CP]["usage-to-rating"]["fuzzy"].update(time_window_s="ten"))
    code = main(["run", "--conf", str(_conf(tmp_path)), "--ruleset", str(path), "--cycle", "2026-06"])
    err = capsys.readouterr().err
    assert code == 2
    assert "fuzzy.time_window_s: 'ten' is not a positive whole number" in err and str(path) in err
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


def _jobs_started(spark: SparkSession) -> int:
    """How many Spark jobs this context has started: the DAG scheduler's next job id, exact whatever ran."""
    return int(spark.sparkContext._jsc.sc().dagScheduler().nextJobId())  # type: ignore[union-attr]


def _exits_2_before_spark(spark: SparkSession, capsys: pytest.CaptureFixture[str], argv: list[str],
                          output: Path) -> str:
    capsys.readouterr()
    before = _jobs_started(spark)
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    assert _jobs_started(spark) == before, "a Spark job ran before the bad configuration was reported"
    assert not output.exists()
    return err


def test_job_counter_sees_a_spark_job(spark: SparkSession) -> None:
    """The counter the tests below rely on moves when a job runs (else they would prove nothing)."""
    before = _jobs_started(spark)
    spark.range(3).count()
    assert _jobs_started(spark) > before


INCOMPLETE = [
    ("no rating-accuracy", lambda d: d[CP].pop("rating-accuracy"),
     "control_points: no control point 'rating-accuracy' (this engine runs"),
    ("usage-to-rating without fuzzy", lambda d: d[CP]["usage-to-rating"].pop("fuzzy"),
     "control_points.usage-to-rating.fuzzy: missing (required"),
    ("rating-to-billing without tolerance", lambda d: d[CP]["rating-to-billing"].pop("tolerance"),
     "control_points.rating-to-billing.tolerance: missing (required"),
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
