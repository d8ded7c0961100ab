"""Conf and ruleset validation: a bad key, value or column exits 2 naming file, key and value, before Spark runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from factories import CYCLE_BOUNDS, RULESET
from jobs.cli import main
from jobs.config import ConfigError, load_conf, load_ruleset


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
    assert rs.version == "2026.11.0" and len(rs.content_hash) == 64
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
    ("spark key", {"spark": {"mastr": "local[2]"}}, "spark.mastr: unknown key"),
]


@pytest.mark.parametrize("name,overrides,message", BAD_CONFS, ids=[b[0] for b in BAD_CONFS])
def test_bad_conf_names_key_and_value(tmp_path: Path, name: str, overrides: dict[str, Any], message: str) -> None:
    path = _conf(tmp_path, **overrides)
    with pytest.raises(ConfigError, match=None) as err:
        load_conf(path)
    assert message in str(err.value)


def test_unknown_cycle_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["run", "--conf", str(_conf(tmp_path)), "--ruleset", RULESET, "--cycle", "2026-13"])
    assert code == 2 and "no cycle '2026-13'" in capsys.readouterr().err
