"""Every flagged row's fixture (tests/fixtures/flagged/<fixture-id>/, written by `telco-ra flag`) still gets the
outcome its expected.yaml names.

Each folder holds the input rows a flagged record was decided from and the outcome it must get: the rows are loaded
into temporary Delta tables and `rulesets/<name>.yaml`, as it is now, runs over them through the real run path
(jobs.run.execute). When a rule is fixed, the person who flagged the row sets the correct outcome in expected.yaml;
from then on this test holds the rules to it, so the same wrong row cannot silently return.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from jobs.flag.fixture import Fixture, FixtureError, Replayed, load_fixture, problems, replay
from jobs.ruleset import load_ruleset

REPO = Path(__file__).resolve().parent.parent
FLAGGED = REPO / "tests" / "fixtures" / "flagged"
FOLDERS = sorted(p for p in FLAGGED.iterdir() if p.is_dir()) if FLAGGED.is_dir() else []


def replay_fixture(spark: SparkSession, folder: Path, workdir: Path,
                   rulesets: Path = REPO / "rulesets") -> tuple[Fixture, Replayed]:
    """The fixture, and what `rulesets/<name>.yaml` gives its record over its rows."""
    fixture = load_fixture(folder)
    path = rulesets / f"{fixture.ruleset}.yaml"
    if not path.is_file():
        raise FixtureError(f"{folder / 'fixture.yaml'}: ruleset: {fixture.ruleset!r}, but there is no {path}")
    return fixture, replay(spark, fixture, load_ruleset(path), workdir)


def check_fixture(spark: SparkSession, folder: Path, workdir: Path) -> list[str]:
    """How the fixture's record fares against its expected.yaml (empty: as expected)."""
    return problems(*replay_fixture(spark, folder, workdir))


def test_the_flagged_fixtures_folder_holds_fixtures() -> None:
    """The folder the parametrised test reads is where `telco-ra flag` writes (a renamed folder would run none)."""
    assert FOLDERS, f"no fixture under {FLAGGED}"
    for folder in FOLDERS:
        assert (folder / "fixture.yaml").is_file() and (folder / "expected.yaml").is_file(), folder


@pytest.mark.parametrize("folder", FOLDERS, ids=lambda p: p.name)
def test_a_flagged_row_gets_the_outcome_its_fixture_expects(spark: SparkSession, folder: Path,
                                                            tmp_path: Path) -> None:
    assert check_fixture(spark, folder, tmp_path) == []
