"""The control engine knows no control point, outcome or input table: the ruleset declares them.

Two runs of the hand-built usage-to-bill month: the shipped ruleset, and a copy in which every control point id,
every input name and every input table name (in conf and ruleset together) is renamed, and to which one control
point is added with YAML only. The renamed run must give the same outcome counts under the new names, and the added
control point must run and agree with rating-to-billing, whose question it asks another way.
"""

from __future__ import annotations

import copy
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml
from pyspark.sql import SparkSession

from factories import RULESET, write_inputs
from jobs.config import ConfigError, load_conf
from jobs.ruleset import load_ruleset
from jobs.run import execute
from scenario import CDR, CHARGES, RATED, SUSPENSE

CP_NAMES = {"usage-to-rating": "mediation-vs-rating", "rating-accuracy": "price-check",
            "rating-to-billing": "rating-vs-invoice", "usage-aggregate": "account-totals"}
INPUT_NAMES = {"cdr": "calls", "rated_event": "ratings", "usage_charge": "invoice_usage", "suspense": "rejects",
               "tariff": "price_book"}
TABLE_NAMES = {"cdr": "mediation_calls", "rated_event": "rating_out", "bill_charge": "invoice_lines",
               "suspense": "rating_rejects", "tariff": "catalog_prices"}

# Added with YAML only: is every rated event on an invoice, to the same account? (rating-to-billing asks "is it
# billed at its amount"; this asks "is it billed to its account").
ADDED = {
    "kind": "record",
    "left": {"input": "ratings", "required": ["rated_event_id", "amount"], "unique_id": True,
             "describe": {"account_id": "account_id"}},
    "right": {"input": "invoice_usage", "required": ["charge_id", "amount", "charge_type"], "unique_id": True,
              "describe": {"account_id": "account_id"}},
    "stages": {"exact": [{"left": "rated_event_id", "right": "source_rated_event_id", "order": ["billed_at"]}]},
    "decide": {
        "LEFT": [
            {"rule": "bad-row", "when": "quarantine IS NOT NULL", "outcome": "QUARANTINED", "reason": "quarantine"},
            {"rule": "other-account", "when": "match.rank = 1 AND NOT (account_id <=> counterpart.account_id)",
             "outcome": "BILLED_TO_OTHER_ACCOUNT", "exposure": "amount",
             "reason": "concat('billed to ', coalesce(counterpart.account_id, '?'))"},
            {"rule": "billed", "when": "match.rank = 1", "outcome": "BILLED"},
            {"rule": "unbilled", "when": "true", "outcome": "UNBILLED", "exposure": "amount"},
        ],
        "RIGHT": [
            {"rule": "bad-row", "when": "quarantine IS NOT NULL", "outcome": "QUARANTINED", "reason": "quarantine"},
            {"rule": "linked", "when": "match.stage IS NOT NULL", "outcome": "BILLED"},
            {"rule": "orphan", "when": "true", "outcome": "UNLINKED", "exposure": "-amount"},
        ],
    },
    "outcomes": {
        "BILLED": {"case": False}, "UNLINKED": {"case": False},
        "UNBILLED": {"case": True, "exposure_class": "UNDERBILLING", "owner": "billing-operations",
                     "severity": "LOW", "correction": "investigate"},
        "BILLED_TO_OTHER_ACCOUNT": {"case": True, "exposure_class": "UNDERBILLING", "owner": "billing-operations",
                                    "severity": "MEDIUM", "correction": "investigate"},
        "QUARANTINED": {"case": False},
    },
}


def renamed_ruleset(data: dict[str, Any]) -> dict[str, Any]:
    """The ruleset with every control point id, input name and table name replaced (structurally, not by text)."""
    out = copy.deepcopy(data)
    inputs = {}
    for name, spec in out["inputs"].items():
        spec = dict(spec or {})
        table = spec.get("table", name)
        spec["schema"] = table                       # the data still follows the contract's table
        spec["table"] = TABLE_NAMES[table]
        if "lineage" in spec:
            spec["lineage"] = {**spec["lineage"], "parent": INPUT_NAMES[spec["lineage"]["parent"]]}
        inputs[INPUT_NAMES[name]] = spec
    out["inputs"] = inputs
    out["checks"] = {INPUT_NAMES[k]: v for k, v in out["checks"].items()}
    cps = {}
    for cp_id, cp in out["control_points"].items():
        for part in ("left", "right"):
            side = cp.get(part)
            if side and "input" in side:
                side["input"] = INPUT_NAMES[side["input"]]
            if side and "of" in side:
                side["of"] = CP_NAMES[side["of"]]
        for lookup in (cp.get("lookups") or {}).values():
            lookup["input"] = INPUT_NAMES[lookup["input"]]
        for report in cp.get("reports") or []:
            report["input"] = INPUT_NAMES[report["input"]]
        cps[CP_NAMES[cp_id]] = cp
    out["control_points"] = cps
    return out


def _counts(metrics: list[dict[str, Any]]) -> Counter[tuple[str, str, str]]:
    return Counter({(m["control_point_id"], m["side"], m["outcome"]): int(m["count"]) for m in metrics})


@pytest.fixture(scope="module")
def runs(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Any]:
    root = tmp_path_factory.mktemp("engine")
    conf_path = write_inputs(spark, root / "plain", {"cdr": CDR, "rated_event": RATED, "bill_charge": CHARGES,
                                                     "suspense": SUSPENSE})
    plain = execute(spark, load_conf(conf_path), load_ruleset(RULESET), "2026-06")
    conf = yaml.safe_load(conf_path.read_text())
    conf["tables"] = {TABLE_NAMES[k]: v for k, v in conf["tables"].items() if k in TABLE_NAMES}
    conf["output"] = str(root / "renamed-output")
    renamed_conf = root / "renamed.yaml"
    renamed_conf.write_text(yaml.safe_dump(conf))
    data = renamed_ruleset(yaml.safe_load(Path(RULESET).read_text()))
    data["control_points"]["rated-billed-to-account"] = ADDED
    renamed_path = root / "renamed_ruleset.yaml"
    renamed_path.write_text(yaml.safe_dump(data, sort_keys=False))
    renamed = execute(spark, load_conf(renamed_conf), load_ruleset(renamed_path), "2026-06")
    return plain, renamed


def test_renamed_control_points_and_tables_give_the_same_outcomes(runs: tuple[Any, Any]) -> None:
    plain, renamed = runs
    assert plain.committed and renamed.committed
    want = Counter({(CP_NAMES[cp], side, o): n for (cp, side, o), n in _counts(plain.metrics).items()})
    got = Counter({k: n for k, n in _counts(renamed.metrics).items() if k[0] != "rated-billed-to-account"})
    assert got == want
    assert set(renamed.input_versions) == set(TABLE_NAMES.values())


def test_a_control_point_added_with_yaml_only_runs_and_agrees(runs: tuple[Any, Any]) -> None:
    _, renamed = runs
    counts = _counts(renamed.metrics)
    added = {k: n for k, n in counts.items() if k[0] == "rated-billed-to-account"}
    r2b = {k: n for k, n in counts.items() if k[0] == "rating-vs-invoice"}

    def n(cp: str, side: str, *outcomes: str) -> int:
        return sum(v for (c, s, o), v in counts.items() if c == cp and s == side and o in outcomes)

    assert added, "the added control point wrote no outcome"
    assert n("rated-billed-to-account", "LEFT", "BILLED", "BILLED_TO_OTHER_ACCOUNT") == n(
        "rating-vs-invoice", "LEFT", "MATCHED", "CHARGE_AMOUNT_MISMATCH")
    assert n("rated-billed-to-account", "LEFT", "UNBILLED") == n("rating-vs-invoice", "LEFT", "RATED_NOT_BILLED")
    assert n("rated-billed-to-account", "RIGHT", "UNLINKED") == n("rating-vs-invoice", "RIGHT",
                                                                  "CHARGE_WITHOUT_RATED_EVENT")
    assert sum(v for k, v in added.items() if k[1] == "LEFT") == sum(v for k, v in r2b.items() if k[1] == "LEFT")


def _write(tmp_path: Path, data: dict[str, Any]) -> Path:
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_an_unknown_outcome_lookup_or_column_is_refused_naming_it(tmp_path: Path) -> None:
    base = yaml.safe_load(Path(RULESET).read_text())
    data = copy.deepcopy(base)
    data["control_points"]["rating-to-billing"]["decide"]["LEFT"][1]["outcome"] = "NOT_AN_OUTCOME"
    with pytest.raises(ConfigError, match=r"bad.yaml: control_points.rating-to-billing.decide.LEFT.not-billed"
                                          r".outcome: 'NOT_AN_OUTCOME' has no policy"):
        load_ruleset(_write(tmp_path, data))
    data = copy.deepcopy(base)
    data["control_points"]["usage-to-rating"]["decide"]["LEFT"][3]["priced_by"] = "nope"
    with pytest.raises(ConfigError, match=r"decide.LEFT.in-suspense.priced_by: 'nope' is not a price"):
        load_ruleset(_write(tmp_path, data))
    data = copy.deepcopy(base)
    data["control_points"]["usage-to-rating"]["stages"]["fuzzy"]["keys"].append("imsi")
    with pytest.raises(ConfigError, match=r"stages.fuzzy.keys: unknown column 'imsi' of input cdr"):
        load_ruleset(_write(tmp_path, data))
    data = copy.deepcopy(base)
    data["control_points"]["rating-to-billing"]["decide"]["LEFT"][2]["when"] = "amount > ${no_such_param}"
    with pytest.raises(ConfigError, match=r"decide.LEFT.amount-mismatch.when: unknown parameter \$\{no_such_param\}"):
        load_ruleset(_write(tmp_path, data))


def test_a_rule_whose_sql_does_not_analyse_is_named(spark: SparkSession, tmp_path: Path) -> None:
    data = yaml.safe_load(Path(RULESET).read_text())
    data["control_points"]["rating-accuracy"]["decide"]["LEFT"][1]["when"] = "NOT tarif.found"
    conf_path = write_inputs(spark, tmp_path, {"rated_event": RATED[:3]})
    path = _write(tmp_path, data)
    with pytest.raises(ConfigError, match=rf"{path}: control_points.rating-accuracy.decide.LEFT.no-tariff.when: "
                                          r".*tarif"):
        execute(spark, load_conf(conf_path), load_ruleset(path), "2026-06")


def test_each_prepared_input_is_freed_after_its_last_reader(tmp_path: Path) -> None:
    """A run frees a prepared input once the last record control point reading it has cut its rows (at 1M a
    million wide rows each), and keeps to the end of the aggregates one that an aggregate sums directly."""
    assert load_ruleset(RULESET).done_after() == {
        "usage-to-rating": ["cdr"], "rating-accuracy": [], "rating-to-billing": ["rated_event", "usage_charge"]}
    provisioning = Path(RULESET).parent / "provisioning_to_bill.yaml"
    assert load_ruleset(provisioning).done_after() == {"item-audit": ["provisioned_item", "subscription"]}
    data = yaml.safe_load(provisioning.read_text())
    data["control_points"]["seat-audit"]["right"]["input"] = "subscription"     # now also summed directly
    assert load_ruleset(_write(tmp_path, data)).done_after() == {"item-audit": ["provisioned_item"]}
