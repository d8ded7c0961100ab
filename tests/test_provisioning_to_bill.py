"""Provisioning audits (CONTRACT section 8) on the engine: item-audit and seat-audit on a hand-written snapshot (ids,
number formats and accounts of its own, outcomes written here by hand); every outcome of both control points against
the generator's ground truth at precision and recall 1.0; and the ruleset's product mapping and seat roles changing
outcomes with no code change.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from factories import run_cli, write_table
from jobs import ignore, summary
from jobs.config import ConfigError, load_conf
from jobs.generate import generate
from jobs.rerun import rerun
from jobs.ruleset import load_ruleset
from jobs.run import RunResult, execute
from jobs.score import score
from jobs.synthetic.provisioning_to_bill import ProvisioningParams
from transforms.accounts import account_status
from transforms.ignore import ADD, REMOVE

RULESET = Path(__file__).resolve().parent.parent / "rulesets" / "provisioning_to_bill.yaml"
JUNE = {"start": "2026-06-01T00:00:00Z", "end": "2026-07-01T00:00:00Z", "close": "2026-07-03T00:00:00Z"}
D = Decimal


def _item(item_id: str | None, item_type: str, account: str, number: str | None, **kw: Any) -> dict[str, Any]:
    return {"item_id": item_id, "item_type": item_type, "account_id": account, "domain": f"{account.lower()}.pbx",
            "number": number, **kw}


def _sub(sub_id: str, account: str, product: str, ref: str | None, **kw: Any) -> dict[str, Any]:
    return {"subscription_id": sub_id, "account_id": account, "product_code": product, "item_ref": ref, **kw}


ITEMS = [
    _item("acme/e1", "EXTENSION", "ACME", "101"),
    _item("acme/e2", "EXTENSION", "ACME", "102"),
    _item("acme/e3", "EXTENSION", "ACME", "8001", user_kind="VOICEMAIL"),
    _item("acme/e4", "EXTENSION", "ACME", "103"),
    _item("acme/n1", "PHONE_NUMBER", "ACME", "+1 (555) 201-0001", user_kind=None),
    _item("acme/n2", "PHONE_NUMBER", "ACME", "tel:+15552010002", user_kind=None),
    _item("acme/n3", "PHONE_NUMBER", "ACME", "n/a", user_kind=None),
    _item("acme/e5", "EXTENSION", "ACME", "104", state="DELETED", deleted_at=datetime(2026, 3, 1, tzinfo=UTC)),
    _item("acme/q1", "QUEUE_AGENT", "ACME", "101", queue_id="sales", role="AGENT", user_kind=None),
    _item("acme/q2", "QUEUE_AGENT", "ACME", "102", queue_id="sales", role="SUPERVISOR", user_kind=None),
    _item("acme/q3", "QUEUE_AGENT", "ACME", "103", queue_id="sales", role="OFFICE_MANAGER", user_kind=None),
    _item("beta/q1", "QUEUE_AGENT", "BETA", "200", queue_id="help", role="AGENT", user_kind=None),
]
SUBS = [
    _sub("S-1", "ACME", "EXT-STD", "101"),
    _sub("S-4", "ACME", "DID-LOCAL", "103", unit_price=D("2.000000")),
    _sub("S-5", "ACME", "DID-LOCAL", "5552010001", unit_price=D("2.000000")),
    _sub("S-6", "ACME", "DID-LOCAL", "1-555-201-0001", unit_price=D("2.000000"),
         start_date=datetime(2026, 2, 1, tzinfo=UTC)),
    _sub("S-7", "ACME", "LEGACY-X", "(555) 201-0002", unit_price=D("3.000000")),
    _sub("S-8", "ACME", "EXT-STD", "104"),
    _sub("S-9", "ACME", "CC-AGENT", None, quantity=3, unit_price=D("45.000000")),
    _sub("S-10", "ACME", "EXT-STD", "ext"),
    _sub("S-11", "BETA", "CC-AGENT", None, quantity=1, unit_price=D("45.000000")),
    _sub("S-12", "GAMMA", "CC-AGENT", None, quantity=2, unit_price=D("45.000000")),
    _sub("S-13", "ACME", "EXT-STD", "105", status="CANCELLED"),
]


def write_snapshot(spark: SparkSession, root: Path, items: list[dict[str, Any]], subs: list[dict[str, Any]]
                   ) -> Path:
    paths = {}
    for table, rows in (("provisioned_item", items), ("billing_subscription", subs)):
        paths[table] = write_table(spark, table, rows, root / "input" / table)
    conf = {"tables": paths, "output": str(root / "output"), "cycles": {"2026-06": JUNE}}
    conf_path = root / "conf.yaml"
    conf_path.write_text(yaml.safe_dump(conf))
    return conf_path


def outcomes_of(spark: SparkSession, root: Path, result: RunResult) -> dict[tuple[str, str, str | None], Any]:
    rows = (spark.read.format("delta").load(str(root / "output" / "record_outcome"))
            .where(F.col("run_id") == result.run_id)
            .select("control_point_id", "side", "record_id", "outcome", "exposure_amount", "service_type",
                    "reason").collect())
    return {(r["control_point_id"], r["side"], r["record_id"]): r for r in rows}


def variances_of(spark: SparkSession, root: Path, result: RunResult) -> dict[str, Any]:
    rows = (spark.read.format("delta").load(str(root / "output" / "aggregate_variance"))
            .where(F.col("run_id") == result.run_id).collect())
    return {r["account_id"]: r for r in rows}


def test_a_hand_written_snapshot(spark: SparkSession, tmp_path: Path) -> None:
    conf = load_conf(write_snapshot(spark, tmp_path, ITEMS, SUBS))
    result = execute(spark, conf, load_ruleset(RULESET), "2026-06")
    got = outcomes_of(spark, tmp_path, result)
    item = {k[2]: (r["outcome"], r["exposure_amount"]) for k, r in got.items() if k[:2] == ("item-audit", "LEFT")}
    sub = {k[2]: (r["outcome"], r["exposure_amount"]) for k, r in got.items() if k[:2] == ("item-audit", "RIGHT")}
    assert item == {
        "acme/e1": ("MATCHED", D(0)),
        "acme/e2": ("UNBILLED_ITEM", D("20.000000")),
        "acme/e3": ("NON_BILLABLE", D(0)),
        "acme/e4": ("PRODUCT_MAPPING_MISMATCH", D("18.000000")),    # list 20.00, billed 2.00
        "acme/n1": ("MATCHED", D(0)),
        "acme/n2": ("PRODUCT_MAPPING_MISMATCH", D("-1.000000")),    # list 2.00, billed 3.00 under an unknown product
        "acme/n3": ("QUARANTINED", D(0)),
    }
    assert sub == {
        "S-1": ("MATCHED", D(0)),
        "S-4": ("PRODUCT_MAPPING_MISMATCH", D(0)),
        "S-5": ("MATCHED", D(0)),
        "S-6": ("DUPLICATE_SUBSCRIPTION", D("-2.000000")),
        "S-7": ("PRODUCT_MAPPING_MISMATCH", D(0)),
        "S-8": ("ORPHANED_BILLING", D("-20.000000")),
        "S-10": ("QUARANTINED", D(0)),
    }
    assert got[("item-audit", "RIGHT", "S-4")]["service_type"] == "EXTENSION"      # evidence names the item type
    assert got[("item-audit", "RIGHT", "S-8")]["service_type"] == "EXTENSION"
    seats = variances_of(spark, tmp_path, result)
    assert {a: (r["left_count"], r["right_count"], r["beyond_tolerance"], r["difference"]) for a, r in seats.items()} \
        == {"ACME": (2, 3, True, D("-45.000000")), "BETA": (1, 1, False, D(0)), "GAMMA": (0, 2, True, D("-90.000000"))}
    cases = (spark.read.format("delta").load(str(tmp_path / "output" / "ra_case"))
             .where((F.col("run_id") == result.run_id) & (F.col("control_point_id") == "seat-audit")).collect())
    assert sorted((c["business_key"]["account_id"], c["case_type"], c["exposure_amount"], c["exposure_class"])
                  for c in cases) == [("ACME", "QUANTITY_MISMATCH", D("-45.000000"), "OVERBILLING"),
                                      ("GAMMA", "QUANTITY_MISMATCH", D("-90.000000"), "OVERBILLING")]


def test_two_items_with_one_reference_are_billed_once(spark: SparkSession, tmp_path: Path) -> None:
    """Extension 101 provisioned in two domains of one account, and two subscriptions for 101: the subscriptions go
    to the first item by created_at (the first bills it, the second is a further one), and the other item is
    audited on its own: UNBILLED_ITEM. Each record has one outcome row (once, each subscription came out once per
    item and the run refused to commit: conservation law broken)."""
    items = [_item("acme/e1", "EXTENSION", "ACME", "101", created_at=datetime(2026, 2, 1, tzinfo=UTC)),
             _item("acme/e9", "EXTENSION", "ACME", "101", domain="branch.pbx",
                   created_at=datetime(2026, 1, 1, tzinfo=UTC))]
    subs = [_sub("S-1", "ACME", "EXT-STD", "101"), _sub("S-2", "ACME", "EXT-STD", "101",
                                                        start_date=datetime(2026, 3, 1, tzinfo=UTC))]
    conf = load_conf(write_snapshot(spark, tmp_path, items, subs))
    got = outcomes_of(spark, tmp_path, execute(spark, conf, load_ruleset(RULESET), "2026-06"))
    assert {k[1:]: (r["outcome"], r["exposure_amount"]) for k, r in got.items() if k[0] == "item-audit"} == {
        ("LEFT", "acme/e9"): ("MATCHED", D(0)),
        ("LEFT", "acme/e1"): ("UNBILLED_ITEM", D("20.000000")),
        ("RIGHT", "S-1"): ("MATCHED", D(0)),
        ("RIGHT", "S-2"): ("DUPLICATE_SUBSCRIPTION", D("-20.000000")),
    }


def _run_generated(spark: SparkSession, root: Path, params: ProvisioningParams, ruleset_path: Path = RULESET,
                   with_ignores: bool = True) -> tuple[RunResult, list[Any]]:
    paths = generate(spark, str(root / "input"), params)
    tables = {k: paths[k] for k in ("provisioned_item", "billing_subscription")}
    conf_path = root / "conf.yaml"
    conf_path.write_text(yaml.safe_dump({"tables": tables, "output": str(root / "output"),
                                         "cycles": {"2026-06": JUNE}}))
    conf = load_conf(conf_path)
    if with_ignores:
        entries = spark.read.format("delta").load(paths["ignore_entries"]).collect()   # the generator's few entries
        for e in entries:
            ignore.add(spark, conf.output, e["control_point_id"], e["scope"], e["key"], e["reason"], "generator")
    ruleset = load_ruleset(ruleset_path)
    result = execute(spark, conf, ruleset, "2026-06")
    truth = spark.read.format("delta").load(paths["ground_truth"])
    return result, score(spark, conf, ruleset, result.run_id, truth)


def test_every_outcome_of_both_control_points_at_precision_and_recall_one(spark: SparkSession,
                                                                          tmp_path: Path) -> None:
    _, scores = _run_generated(spark, tmp_path, ProvisioningParams(rows=400, seed=7))
    bad = [s for s in scores if s.precision != 1.0 or s.recall != 1.0]
    assert not bad, "\n".join(f"{s.control_point_id} {s.side} {s.outcome}: expected {s.expected} actual {s.actual} "
                              f"tp {s.true_positive}" for s in bad)
    seen = {(s.control_point_id, s.side, s.outcome) for s in scores if s.expected}
    rs = load_ruleset(RULESET)
    item = rs.control_points["item-audit"]
    vocabulary = {("item-audit", side, rule.outcome) for side in item.sides for rule in item.decide[side]}
    vocabulary |= {("item-audit", "LEFT", "IGNORED"), ("item-audit", "RIGHT", "IGNORED")}
    seat = rs.control_points["seat-audit"]
    vocabulary |= {("seat-audit", "AGGREGATE", o) for o in (seat.beyond, seat.within)}
    assert seen == vocabulary, vocabulary ^ seen


def test_product_mapping_and_seat_roles_are_ruleset_values(spark: SparkSession, tmp_path: Path) -> None:
    """The same snapshot under a ruleset that maps LEGACY-X to numbers and gives office managers a seat: n2 and its
    subscription are MATCHED and ACME's three queue members match its three seats, with no code change."""
    text = RULESET.read_text()
    changed = text.replace('    CC-AGENT: {bills: QUEUE_AGENT, list_price: "45.00"}',
                           '    CC-AGENT: {bills: QUEUE_AGENT, list_price: "45.00"}\n'
                           '    LEGACY-X: {bills: PHONE_NUMBER, list_price: "3.00"}')
    changed = changed.replace("seat_roles: [AGENT, SUPERVISOR]", "seat_roles: [AGENT, SUPERVISOR, OFFICE_MANAGER]")
    assert changed.count("LEGACY-X") == 1 and "OFFICE_MANAGER]" in changed
    path = tmp_path / "provisioning_to_bill.yaml"
    path.write_text(changed)
    conf = load_conf(write_snapshot(spark, tmp_path, ITEMS, SUBS))
    result = execute(spark, conf, load_ruleset(path), "2026-06")
    got = outcomes_of(spark, tmp_path, result)
    assert got[("item-audit", "LEFT", "acme/n2")]["outcome"] == "MATCHED"
    assert got[("item-audit", "RIGHT", "S-7")]["outcome"] == "MATCHED"
    assert got[("item-audit", "LEFT", "acme/e4")]["outcome"] == "PRODUCT_MAPPING_MISMATCH"      # unchanged
    acme = variances_of(spark, tmp_path, result)["ACME"]
    assert (acme["left_count"], acme["right_count"], acme["beyond_tolerance"]) == (3, 3, False)


ROUND_ITEMS = [
    _item("z1", "EXTENSION", "ZED", "201"),
    _item("z2", "EXTENSION", "ZED", "202"),
    _item("zq", "QUEUE_AGENT", "ZED", "201", role="AGENT", queue_id="q", user_kind=None),
    _item("y1", "EXTENSION", "YUK", "301"),
    _item("y2", "PHONE_NUMBER", "YUK", "+44 20 7946 0958", user_kind=None),
    _item("o1", "EXTENSION", "OLD", "401"),
]
ROUND_SUBS = [
    _sub("SZ-1", "ZED", "EXT-STD", "201"),
    _sub("SZ-Q", "ZED", "CC-AGENT", None, quantity=1, unit_price=D("45.000000")),
    _sub("SY-Q", "YUK", "CC-AGENT", None, quantity=2, unit_price=D("45.000000")),      # no agents: a variance
]


def _cases(spark: SparkSession, root: Path, run_id: str) -> dict[tuple[str, str | None], Any]:
    rows = (spark.read.format("delta").load(str(root / "output" / "ra_case")).where(F.col("run_id") == run_id)
            .collect())
    return {(r["case_type"], r["business_key"]["record_ids"][0] if r["business_key"]["record_ids"]
             else r["business_key"]["account_id"]): r for r in rows}


def _status(spark: SparkSession, root: Path, result: RunResult) -> dict[str, tuple[str, int, int]]:
    out = spark.read.format("delta").load(str(root / "output" / "record_outcome")).where(
        F.col("run_id") == result.run_id)
    var = spark.read.format("delta").load(str(root / "output" / "aggregate_variance")).where(
        F.col("run_id") == result.run_id)
    cases = spark.read.format("delta").load(str(root / "output" / "ra_case")).where(
        F.col("run_id") == result.run_id)
    return {r["account_id"]: (r["status"], r["variances"], r["ignored"])
            for r in account_status(out, var, cases).collect()}


def test_ignore_round_trip(spark: SparkSession, tmp_path: Path) -> None:
    """Ignore an item, a domain and an account: IGNORED with the entry as evidence, the accounts read GOOD; an
    expired entry no longer applies; removing the item's entry brings its case back under the same case_id,
    REOPENED; the rerun of the ignoring run reads the ignore list as it did; `ignore list` shows the history."""
    conf = load_conf(write_snapshot(spark, tmp_path, ROUND_ITEMS, ROUND_SUBS))
    ruleset = load_ruleset(RULESET)
    first = execute(spark, conf, ruleset, "2026-06")
    before = _cases(spark, tmp_path, first.run_id)
    unbilled_z2 = before[("UNBILLED_ITEM", "z2")]
    assert unbilled_z2["status"] == "OPEN"
    assert _status(spark, tmp_path, first)["ZED"] == ("VARIANCE", 1, 0)

    item = ignore.add(spark, conf.output, "item-audit", "ITEM", "z2", "lobby phone, never billed", "ana")
    domain = ignore.add(spark, conf.output, "item-audit", "DOMAIN", "yuk.pbx", "internal PBX", "ben",
                        expires_at=datetime(2099, 1, 1, tzinfo=UTC))
    seats = ignore.add(spark, conf.output, "seat-audit", "ACCOUNT", "YUK", "seats billed elsewhere", "ben")
    expired = ignore.add(spark, conf.output, "item-audit", "ACCOUNT", "OLD", "trial ended", "cy",
                         expires_at=datetime(2026, 2, 1, tzinfo=UTC), now=datetime(2026, 1, 1, tzinfo=UTC))
    second = execute(spark, conf, ruleset, "2026-06")
    assert second.run_id != first.run_id                 # the entries in force are part of the run's identity
    with pytest.raises(ConfigError, match=r"ignore_list version: committed None, asked 3"):
        execute(spark, conf, ruleset, "2026-06", first.run_id)       # an explicit run id names one run
    rows = (spark.read.format("delta").load(str(tmp_path / "output" / "record_outcome"))
            .where(F.col("run_id") == second.run_id).collect())
    got = {r["record_id"]: r for r in rows}
    assert (got["z2"]["outcome"], got["z2"]["reason_code"], got["z2"]["ignore_entry_id"],
            got["z2"]["exposure_amount"]) == ("IGNORED", "UNBILLED_ITEM", item, D(0))
    assert item in got["z2"]["reason"] and "lobby phone" in got["z2"]["reason"]
    assert {got["y1"]["outcome"], got["y2"]["outcome"]} == {"IGNORED"}
    assert got["y2"]["ignore_entry_id"] == domain
    assert got["z1"]["outcome"] == "MATCHED" and got["z1"]["ignore_entry_id"] is None     # no gap: kept
    assert (got["o1"]["outcome"], got["o1"]["ignore_entry_id"]) == ("UNBILLED_ITEM", None)  # expired entry
    yuk = variances_of(spark, tmp_path, second)["YUK"]
    assert (yuk["beyond_tolerance"], yuk["ignore_entry_id"], yuk["case_id"]) == (True, seats, None)
    status = _status(spark, tmp_path, second)
    assert status["ZED"] == ("GOOD", 0, 1) and status["YUK"] == ("GOOD", 0, 3)
    assert status["OLD"] == ("VARIANCE", 1, 0)
    cleared = _cases(spark, tmp_path, second.run_id)[("UNBILLED_ITEM", "z2")]
    assert (cleared["case_id"], cleared["status"]) == (unbilled_z2["case_id"], "AUTO_CLEARED")
    runs = (spark.read.format("delta").load(str(tmp_path / "output" / "control_run"))
            .where(F.col("run_id") == second.run_id).select("ignore_list_version").distinct().collect())
    assert [r["ignore_list_version"] for r in runs] == [3]           # four appends: versions 0..3
    text = summary.render(spark, second)
    assert "account status: 1 VARIANCE, 2 GOOD (4 ignored gaps" in text
    assert text.index("OLD ") < text.index("ZED ")                     # variances first

    ignore.remove(spark, conf.output, item, "ana", "billed from July")
    third = execute(spark, conf, ruleset, "2026-06")
    back = _cases(spark, tmp_path, third.run_id)[("UNBILLED_ITEM", "z2")]
    assert (back["case_id"], back["status"]) == (unbilled_z2["case_id"], "REOPENED")
    assert _status(spark, tmp_path, third)["ZED"] == ("VARIANCE", 1, 0)

    repro = rerun(spark, conf, second.run_id)          # reads ignore_list v3 as of the second run's start
    # ra_case is not compared: a reproduction's AUTO_CLEARED rows name the reproduction as closed_by_run (the case
    # lifecycle's, not the ignore list's; transforms/lifecycle.py)
    for table in ("record_outcome", "aggregate_variance"):
        assert repro.hashes[table][0] == repro.hashes[table][1], table

    listed = {r["entry_id"]: r for r in ignore.history(spark, conf.output).collect()}
    assert {e: listed[e]["state"] for e in (item, domain, seats, expired)} == {
        item: "REMOVED", domain: "IN_FORCE", seats: "IN_FORCE", expired: "EXPIRED"}
    assert (listed[item]["actor"], listed[item]["removed_by"], listed[item]["why"]) == ("ana", "ana",
                                                                                       "billed from July")
    page = ignore.render(list(listed.values()))
    assert "billed from July" in page and "trial ended" in page


def test_the_ignore_command_line_appends_every_change_and_refuses_bad_ones(spark: SparkSession,
                                                                          tmp_path: Path) -> None:
    """`telco-ra ignore add|list|remove` as CONTRACT section 8 spells them: an add and a removal are each one
    appended commit (no row edited); a naive or unparseable expiry, an unknown entry and a second removal exit 2
    naming what is wrong and write nothing; `ignore list` shows each entry's history with who and why."""
    c = str(write_snapshot(spark, tmp_path, ROUND_ITEMS, ROUND_SUBS))
    add = ("ignore", "add", "--conf", c, "--control-point", "item-audit", "--scope", "ITEM", "--key", "z2",
           "--reason", "lobby phone, never billed", "--actor", "ana")
    code, out, _ = run_cli(spark, *add, "--expires", "2099-01-01T00:00:00+01:00")
    assert code == 0, out
    found = re.search(r"ignore entry (\S+) added: item-audit ITEM z2", out)
    assert found, out
    entry = found.group(1)
    table = str(tmp_path / "output" / "ignore_list")

    def commits() -> int:
        return spark.sql(f"DESCRIBE HISTORY delta.`{table}`").count()

    assert commits() == 1
    for expires, says in (("2099-01-01T00:00:00", "--expires must carry a zone"),
                          ("next tuesday", "--expires must be an ISO 8601 instant")):
        code, _, err = run_cli(spark, *add, "--expires", expires)
        assert code == 2 and says in err and repr(expires) in err, err
    code, _, err = run_cli(spark, "ignore", "remove", "--conf", c, "--entry-id", "no-such-entry", "--actor", "ben",
                        "--why", "typo")
    assert code == 2 and "no ignore entry 'no-such-entry'" in err, err
    # A control point no ruleset declares would make an entry that never applies: refused, naming the known ones.
    typo = [a if a != "item-audit" else "item-audti" for a in add]
    code, _, err = run_cli(spark, *typo)
    assert code == 2 and "--control-point 'item-audti' is not a control point" in err, err
    assert "item-audit" in err and "seat-audit" in err and "--ruleset" in err, err
    assert commits() == 1                                       # refusals wrote nothing
    # A ruleset of one's own names its control points with --ruleset.
    own = tmp_path / "own.yaml"
    own.write_text(RULESET.read_text(encoding="utf-8").replace("item-audit:", "lobby-audit:"), encoding="utf-8")
    lobby = [a if a != "item-audit" else "lobby-audit" for a in add]
    code, _, err = run_cli(spark, *lobby)
    assert code == 2 and "'lobby-audit' is not a control point" in err, err
    code, out, err = run_cli(spark, *lobby, "--ruleset", str(own))
    assert code == 0 and "added: lobby-audit ITEM z2" in out, err
    assert commits() == 2

    code, out, _ = run_cli(spark, "ignore", "remove", "--conf", c, "--entry-id", entry, "--actor", "ben",
                        "--why", "billed from July")
    assert code == 0 and f"ignore entry {entry} removed by ben" in out, out
    code, _, err = run_cli(spark, "ignore", "remove", "--conf", c, "--entry-id", entry, "--actor", "ben",
                        "--why", "again")
    assert code == 2 and "already removed" in err, err
    assert commits() == 3
    ops = {r["operation"] for r in spark.sql(f"DESCRIBE HISTORY delta.`{table}`").collect()}
    assert ops == {"WRITE"}                                      # appends only: no MERGE, UPDATE or DELETE
    rows = spark.read.format("delta").load(table).where(F.col("entry_id") == entry).collect()
    assert sorted(r["action"] for r in rows) == sorted([ADD, REMOVE])
    added = next(r for r in rows if r["action"] == ADD)
    assert added["expires_at"] == datetime(2098, 12, 31, 23, 0)  # +01:00 read as UTC (the session is UTC)

    code, out, _ = run_cli(spark, "ignore", "list", "--conf", c)
    assert code == 0
    line = next(ln for ln in out.splitlines() if entry in ln)
    for text in ("REMOVED", "item-audit", "ITEM", "z2", "ana", "ben", "billed from July"):
        assert text in out, (text, out)
    assert "lobby phone" in out and "REMOVED" in line, out


def test_the_ignore_list_applies_to_inventory_to_bill_too(spark: SparkSession, tmp_path: Path) -> None:
    products = [{"product_id": "p/1", "account_id": "A-1"}, {"product_id": "p/2", "account_id": "A-2"}]
    paths = {}
    for table, rows in (("product_inventory", products), ("bill_charge", [])):
        paths[table] = write_table(spark, table, rows, tmp_path / "input" / table)
    conf_path = tmp_path / "conf.yaml"
    conf_path.write_text(yaml.safe_dump({"tables": paths, "output": str(tmp_path / "output"),
                                         "cycles": {"2026-06": JUNE}}))
    conf = load_conf(conf_path)
    entry = ignore.add(spark, conf.output, "inventory-to-bill", "ACCOUNT", "A-1", "migrated account", "ana")
    result = execute(spark, conf, load_ruleset(RULESET.parent / "inventory_to_bill.yaml"), "2026-06")
    got = {r["record_id"]: (r["outcome"], r["reason_code"], r["ignore_entry_id"])
           for r in spark.read.format("delta").load(str(tmp_path / "output" / "record_outcome"))
           .where(F.col("run_id") == result.run_id).collect()}
    assert got == {"p/1": ("IGNORED", "ACTIVE_PRODUCT_NOT_BILLED", entry), "p/2": ("ACTIVE_PRODUCT_NOT_BILLED", None,
                                                                                   None)}

    # An entry of another ruleset's control point is not part of this run: the plain re-run is the same run
    # (already committed), though the ignore list has a newer version.
    ignore.add(spark, conf.output, "item-audit", "ACCOUNT", "A-2", "another ruleset's entry", "ana")
    again = execute(spark, conf, load_ruleset(RULESET.parent / "inventory_to_bill.yaml"), "2026-06")
    assert (again.run_id, again.already_committed) == (result.run_id, True)


def _refused(tmp_path: Path, old: str, new: str) -> str:
    text = RULESET.read_text()
    assert old in text, old
    path = tmp_path / "bad.yaml"
    path.write_text(text.replace(old, new, 1))
    try:
        load_ruleset(path)
    except ConfigError as exc:
        return str(exc)
    raise AssertionError(f"{new!r} was accepted")


def test_the_new_keys_are_validated_on_load_naming_file_key_and_value(tmp_path: Path) -> None:
    message = _refused(tmp_path, 'list_price: "2.00"}', 'list_price: "two"}')
    assert "bad.yaml" in message and "params.products.DID-LOCAL.list_price" in message and "'two'" in message
    message = _refused(tmp_path, "DID-LOCAL: {bills: PHONE_NUMBER, ", "DID-LOCAL: {bill: PHONE_NUMBER, ")
    assert "params.products.DID-LOCAL" in message and "differ" in message
    message = _refused(tmp_path, "seat_roles: [AGENT, SUPERVISOR]", "seat_roles: []")
    assert "params.seat_roles" in message
    message = _refused(tmp_path, "seat_roles: [AGENT, SUPERVISOR]", "seat_roles: [AGENT, SUPERVISOR]\n  unused: [X]")
    assert "params.unused" in message and "drive nothing" in message
    message = _refused(tmp_path, "left: {input: queue_agent,", "left: {input: queue_agents,")
    assert "control_points.seat-audit.left.input" in message and "'queue_agents'" in message
    message = _refused(tmp_path, "    measure: count\n", "    measure: seats\n")
    assert "control_points.seat-audit.measure" in message and "'seats'" in message
    message = _refused(tmp_path, "outcome: UNBILLED_ITEM", "outcome: IGNORED")
    assert "control_points.item-audit.decide.LEFT.unbilled.outcome" in message and "ignore list" in message
