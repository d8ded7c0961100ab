"""Line-inventory audit (CONTRACT section 9) on the engine: the decision tree branch by branch on a hand-written month
(ids, phone formats, status words and carriers of its own, a session in America/New_York), thresholds and a ninth
bucket changed in YAML only, the leakage figures of the run summary against sums made by hand, and every outcome of
both sides (each SIM_SWAP reason) against the synthetic generator's ground truth at precision and recall 1.0.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml
from pyspark.sql import Row, SparkSession
from pyspark.sql import functions as F

from factories import session_conf, write_table
from jobs import summary
from jobs.config import load_conf
from jobs.ruleset import load_ruleset
from jobs.run import RunResult, execute

RULESET = Path(__file__).resolve().parent.parent / "rulesets" / "line_inventory_audit.yaml"
CARRIERS = RULESET.parent.parent / "conf" / "carriers"
JUNE = {"start": "2026-06-01T00:00:00Z", "end": "2026-07-01T00:00:00Z", "close": "2026-07-03T00:00:00Z"}
END = datetime(2026, 7, 1, tzinfo=UTC)
D = Decimal
TABLES = ("carrier_bill_line", "crm_asset", "device_status")


def icc(n: int) -> str:
    """A 19-digit ICCID."""
    return f"89103000000000{n:05d}"


def write_month(spark: SparkSession, root: Path, tables: Mapping[str, list[dict[str, Any]]],
                ruleset: Path = RULESET) -> tuple[Path, Any]:
    """Each table as a Delta table under root/input and a conf naming them; returns (conf path, loaded conf)."""
    paths = {}
    for table in TABLES:
        paths[table] = write_table(spark, table, tables.get(table, []), root / "input" / table, defaults=False)
    conf_path = root / "conf.yaml"
    conf_path.write_text(yaml.safe_dump({"tables": paths, "output": str(root / "output"),
                                         "cycles": {"2026-06": JUNE}}))
    return conf_path, load_conf(conf_path)


def _line(line_id: str, carrier: str, phone: str | None, iccid: str | None, usage: str | None,
          amount: str | None, **kw: Any) -> dict[str, Any]:
    return {"line_id": line_id, "carrier": carrier, "layout": "hand", "bill_id": "B-77", "bill_period": "2026-06",
            "phone": phone, "iccid": iccid, "usage_mb": None if usage is None else D(usage),
            "amount": None if amount is None else D(amount), "currency": "USD", "source_file": f"{carrier}.csv",
            "source_sha256": "0" * 64, "source_row": int(re.sub(r"\D", "", line_id) or 0), "parse_error": None,
            "ingested_at": datetime(2026, 7, 2, 9, tzinfo=UTC), **kw}


def _asset(asset_id: str, phone: str | None, iccid: str | None, status: str, supplier: str = "Tidewater Wireless",
           **kw: Any) -> dict[str, Any]:
    return {"asset_id": asset_id, "account_id": "ACME-1", "phone": phone, "iccid": iccid, "status": status,
            "supplier": supplier, "updated_at": datetime(2026, 3, 1, tzinfo=UTC), **kw}


def _device(iccid: str, online: bool, days_ago: float | None) -> dict[str, Any]:
    seen = None if days_ago is None else END - timedelta(days=days_ago)
    return {"device_id": f"dev-{iccid[-4:]}", "iccid": iccid, "serial": f"SN{iccid[-6:]}", "online": online,
            "last_seen_at": seen}


TIDE, COBALT, FRONTERA = "Tidewater Wireless", " cobalt MOBILE ", "Frontera"
# One line per branch of the tree; the expected (outcome, reason_code, band, bucket whose action, leakage) by hand.
LINES = [
    _line("L-01", TIDE, None, None, "5", "12.00"),                                 # no phone, no ICCID
    _line("L-02", TIDE, "+12125550102", None, None, None, parse_error="amount: 'abc' is not a number"),
    _line("L-03", TIDE, "+12125550103", None, "1", "10.00", bill_period=None),    # no readable period
    _line("L-04", TIDE, "+12125550104", icc(4), "50", None),                       # cancelled in CRM, no amount
    _line("L-05", COBALT, "+12125550105", None, "0", "22.50"),                     # DISCONNECTED in CRM
    _line("L-06", TIDE, "+12125550106", icc(6), "0", "30.00"),                     # not in CRM, device online
    _line("L-07", TIDE, "+12125550107", None, None, "18.00"),                      # not in CRM, no ICCID: no device
    _line("L-08", TIDE, "+12125550108", icc(8), "2", None),                        # not in CRM, offline 61 days
    _line("L-09", TIDE, "+12125550109", icc(9), "0", "15.00"),                     # not in CRM, offline exactly 60
    _line("L-10", TIDE, "+12125550110", None, None, "9.00"),                       # in CRM only as Pending
    _line("L-11", TIDE, "+12125550111", icc(11), "120.5", "40.00"),                # usage, ICCIDs agree
    _line("L-12", COBALT, "+12125550112", None, "3", "40.00"),                     # usage, the bill has no ICCID
    _line("L-13", TIDE, "+12125550113", icc(13), "10", "40.00"),                   # usage, the CRM has no ICCID
    _line("L-14", TIDE, "+12125550114", icc(114), "4", "40.00"),                   # usage, another ICCID
    _line("L-15", TIDE, "+12125550115", icc(15), "0", "19.99"),                    # no usage, offline 31 days
    _line("L-16", TIDE, "+12125550116", icc(16), None, "19.99"),                   # no usage, offline exactly 30
    _line("L-17", TIDE, "+12125550117", icc(117), None, "25.00"),                  # no usage, online, other ICCID
    _line("L-18", TIDE, "+12125550118", None, "0", "25.00"),                       # no usage, online by CRM ICCID
    _line("L-19", TIDE, "+12125550119", icc(19), "0", "25.00"),                    # no usage, no device record
    _line("L-20", FRONTERA, None, icc(20), None, "11.00"),                         # matched by ICCID, online
    _line("L-21", TIDE, "+12125550121", None, "7", "25.00"),                       # active and cancelled assets
    _line("L-22", TIDE, "+12125550122", icc(22), "0", "25.00", bill_period="2026-05"),   # another cycle
]
ASSETS = [
    _asset("crm:004", "(212) 555-0104", icc(4), "Cancelled "),
    _asset("crm:005", "+1 212-555-0105", None, "DISCONNECTED", supplier="Cobalt Mobile"),
    _asset("crm:010", "2125550110", None, "Pending"),
    _asset("crm:011", "212.555.0111 x100", icc(11), " deployed "),
    _asset("crm:012", "1-212-555-0112", icc(12), "ACTIVE", supplier="Cobalt Mobile"),
    _asset("crm:013", "(212) 555-0113", None, "Active"),
    _asset("crm:014", "(212) 555-0114", icc(14), "Active"),
    _asset("crm:015", "(212) 555-0115", icc(15), "Active"),
    _asset("crm:016", "(212) 555-0116", icc(16), "active"),
    _asset("crm:017", "(212) 555-0117", icc(17), "Active"),
    _asset("crm:018", "(212) 555-0118", icc(18), "Deployed"),
    _asset("crm:019", "(212) 555-0119", icc(19), "Active"),
    _asset("crm:020", None, f"{icc(20)[:4]} {icc(20)[4:]}", "Active", supplier="Frontera"),
    _asset("crm:021", "tel:+12125550121", None, "Active"),
    _asset("crm:021-old", "(212) 555-0121", None, " canceled"),
    _asset("crm:030", "(212) 555-0130", icc(30), "Active"),                        # on no bill
    _asset("crm:031", None, icc(31), "Deployed", supplier="Frontera"),             # on no bill
    _asset("crm:032", "(212) 555-0102", None, "Active"),                           # only on an unreadable line
    _asset("crm:033", "n/a", None, "Active"),                                      # no phone, no ICCID
    _asset("crm:034", "(212) 555-0122", icc(22), "Active"),                        # billed in May only
]
DEVICES = [
    _device(icc(6), True, 0.1),
    _device(icc(8), False, 61),
    _device(icc(9), False, 60),
    _device(icc(15), False, 31),
    _device(icc(16), False, 30),
    _device(icc(117), True, 0.2),
    _device(icc(18), True, 0.5),
    _device(icc(20), True, 1),
    _device(icc(11), False, 200),            # usage wins: a stale device record does not make it a ghost
]
FALLBACK = D("25.000000")
EXPECTED_LEFT: dict[str, tuple[str, str | None, str, str, Decimal]] = {
    "L-01": ("QUARANTINED", None, "low", "QUARANTINED", D(0)),
    "L-02": ("QUARANTINED", None, "low", "QUARANTINED", D(0)),
    "L-03": ("QUARANTINED", None, "low", "QUARANTINED", D(0)),
    "L-04": ("GHOST_DEVICE", None, "high", "GHOST_DEVICE", FALLBACK),
    "L-05": ("GHOST_DEVICE", None, "high", "GHOST_DEVICE", D("22.500000")),
    "L-06": ("ADD_TO_CRM", None, "high", "ADD_TO_CRM", D("30.000000")),
    "L-07": ("NOT_IN_CRM", None, "medium", "NOT_IN_CRM", D("18.000000")),
    "L-08": ("NOT_IN_CRM", None, "medium", "NOT_IN_CRM", FALLBACK),
    "L-09": ("MANUAL_AUDIT", None, "low", "MANUAL_AUDIT", D(0)),
    "L-10": ("NOT_IN_CRM", None, "medium", "NOT_IN_CRM", D("9.000000")),
    "L-11": ("WORKING", None, "high", "WORKING", D(0)),
    "L-12": ("WORKING", None, "high", "WORKING", D(0)),
    "L-13": ("SIM_SWAP", "MISSING_ICCID", "medium", "SIM_SWAP/MISSING_ICCID", D(0)),
    "L-14": ("SIM_SWAP", "SWAP", "medium", "SIM_SWAP/SWAP", D(0)),
    "L-15": ("GHOST_DEVICE", None, "high", "GHOST_DEVICE", D("19.990000")),
    "L-16": ("MANUAL_AUDIT", None, "low", "MANUAL_AUDIT", D(0)),
    "L-17": ("SIM_SWAP", "FAILOVER", "medium", "SIM_SWAP/FAILOVER", D(0)),
    "L-18": ("WORKING", None, "high", "WORKING", D(0)),
    "L-19": ("NO_DEVICE_ATTACHED", None, "medium", "NO_DEVICE_ATTACHED", D(0)),
    "L-20": ("WORKING", None, "high", "WORKING", D(0)),
    "L-21": ("WORKING", None, "high", "WORKING", D(0)),
}
EXPECTED_RIGHT = {
    **{a: ("ON_BILL", "high", "ON_BILL") for a in ("crm:011", "crm:012", "crm:013", "crm:014", "crm:015", "crm:016",
                                                    "crm:017", "crm:018", "crm:019", "crm:020", "crm:021")},
    **{a: ("UNBILLED_ASSET", "medium", "UNBILLED_ASSET") for a in ("crm:030", "crm:031", "crm:032", "crm:034")},
    "crm:033": ("QUARANTINED", "low", "QUARANTINED"),
}
HAND_MONTH = {"carrier_bill_line": LINES, "crm_asset": ASSETS, "device_status": DEVICES}


def outcomes(spark: SparkSession, root: Path, result: RunResult) -> dict[tuple[str, str | None], Any]:
    rows = (spark.read.format("delta").load(str(root / "output" / "record_outcome"))
            .where(F.col("run_id") == result.run_id).collect())
    return {(r["side"], r["record_id"]): r for r in rows}


@pytest.fixture(scope="module")
def hand_run(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, RunResult, dict[Any, Any]]:
    """The hand-written month, run with the session's time zone in America/New_York (timestamps must not move)."""
    root = tmp_path_factory.mktemp("line-audit-hand")
    _, conf = write_month(spark, root, HAND_MONTH)
    with session_conf(spark, {"spark.sql.session.timeZone": "America/New_York"}):
        result = execute(spark, conf, load_ruleset(RULESET), "2026-06")
    return root, result, outcomes(spark, root, result)


def test_each_branch_of_the_tree_on_a_hand_written_month(hand_run: tuple[Path, RunResult, dict[Any, Any]]) -> None:
    _, _, got = hand_run
    buckets = load_ruleset(RULESET).params["buckets"]
    assert isinstance(buckets, dict)
    left = {rid: (r["outcome"], r["reason_code"], r["confidence_band"], r["action"], r["leakage"])
            for (side, rid), r in got.items() if side == "LEFT"}
    want = {rid: (o, code, band, buckets[key]["action"], leak) for rid, (o, code, band, key, leak)
            in EXPECTED_LEFT.items()}
    assert left == want
    right = {rid: (r["outcome"], r["confidence_band"], r["action"], r["leakage"])
             for (side, rid), r in got.items() if side == "RIGHT"}
    assert right == {rid: (o, band, buckets[key]["action"], D(0)) for rid, (o, band, key) in EXPECTED_RIGHT.items()}


def test_evidence_of_the_hand_written_month(hand_run: tuple[Path, RunResult, dict[Any, Any]]) -> None:
    """Counterparts, match stage, accounts, exposure = leakage, and reasons that say why (with no phone number)."""
    _, _, got = hand_run
    assert (got[("LEFT", "L-11")]["counterpart_id"], got[("LEFT", "L-11")]["match_stage"]) == ("crm:011", "EXACT")
    assert (got[("LEFT", "L-04")]["counterpart_id"], got[("LEFT", "L-04")]["account_id"]) == ("crm:004", None)
    assert got[("LEFT", "L-20")]["counterpart_id"] == "crm:020"             # matched by ICCID
    assert got[("LEFT", "L-21")]["counterpart_id"] == "crm:021"             # the active asset, not the cancelled
    assert (got[("LEFT", "L-06")]["counterpart_id"], got[("LEFT", "L-06")]["match_stage"]) == (None, "NONE")
    assert got[("LEFT", "L-11")]["account_id"] == "ACME-1"
    assert got[("RIGHT", "crm:011")]["counterpart_id"] == "L-11"
    for (side, _), r in got.items():
        if side == "LEFT":
            assert r["exposure_amount"] == r["leakage"]
        assert not re.search(r"555\D?01", r["reason"] or ""), r["reason"]
    assert "Cancelled" in got[("LEFT", "L-04")]["reason"]
    assert "Pending" in got[("LEFT", "L-10")]["reason"]
    assert "offline 60.0 days" in got[("LEFT", "L-09")]["reason"]
    assert "unreadable line: amount" in got[("LEFT", "L-02")]["reason"]
    assert got[("LEFT", "L-03")]["reason"] == "null bill_period"
    assert ("LEFT", "L-22") not in got                                       # May's bill


def figure_lines(text: str, figure: str) -> dict[tuple[str, ...], tuple[int, Decimal]]:
    """The rows of a figure as the summary prints them, its totals last (one per currency where it is grouped by
    currency): group values -> (count, sum)."""
    out: dict[tuple[str, ...], tuple[int, Decimal]] = {}
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip().startswith(f"{figure} ("))
    for line in lines[start + 2:]:
        parts = line.split()
        if not line.startswith("    ") or len(parts) < 3:
            break
        out[tuple(parts[:-2])] = (int(parts[-2].replace(",", "")), D(parts[-1].replace(",", "")))
    return out


def count_lines(text: str, figure: str) -> dict[tuple[str, ...], int]:
    """The rows of a figure that counts only, as the summary prints them: group values -> count."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip().startswith(f"{figure} ("))
    assert "count" in lines[start + 1] and lines[start + 1].split()[-1] == "count", lines[start + 1]
    out: dict[tuple[str, ...], int] = {}
    for line in lines[start + 2:]:
        parts = line.split()
        if not line.startswith("    ") or len(parts) < 2:
            break
        out[tuple(parts[:-1])] = int(parts[-1].replace(",", ""))
        if parts[0] == "total":
            break
    return out


def test_the_summary_shows_buckets_confidence_and_leakage_summed_by_hand(
        spark: SparkSession, hand_run: tuple[Path, RunResult, dict[Any, Any]]) -> None:
    _, result, _ = hand_run
    text = summary.render(spark, result)
    by_hand: dict[tuple[str, ...], tuple[int, Decimal]] = {}
    for outcome, _, band, _, leak in EXPECTED_LEFT.values():
        n, total = by_hand.get((outcome, band, "USD"), (0, D(0)))
        by_hand[(outcome, band, "USD")] = (n + 1, total + leak)
    by_hand[("total", "USD")] = (len(EXPECTED_LEFT), sum((v[4] for v in EXPECTED_LEFT.values()), D(0)))
    assert figure_lines(text, "leakage") == by_hand
    assert by_hand[("total", "USD")][1] == D("149.490000")      # 25 + 22.50 + 30 + 18 + 25 + 9 + 19.99
    # the inventory side has no cost of its own: its figure counts assets per bucket, no sum
    reverse = count_lines(text, "reverse")
    assert reverse[("UNBILLED_ASSET", "medium")] == 4
    assert reverse[("total",)] == len(EXPECTED_RIGHT)


def test_the_report_shows_the_buckets_by_confidence_with_their_leakage(
        spark: SparkSession, hand_run: tuple[Path, RunResult, dict[Any, Any]]) -> None:
    """The run report's per-ruleset view: each bucket and confidence band with its lines and leakage, as the
    hand-written month says, and no clear phone number on the page."""
    from jobs.report import write_report

    root, result, _ = hand_run
    conf = load_conf(root / "conf.yaml")
    html = write_report(spark, conf, result.run_id, str(root / "report")).html.read_text()
    shown = {tuple(m.group(1).split("|")): (int(m.group(2)), D(m.group(3))) for m in re.finditer(
        r'data-cp="line-audit" data-figure="leakage" data-group="([^"]*)" data-count="(\d+)" data-sum="([^"]+)"', html)}
    by_hand: dict[tuple[str, ...], tuple[int, Decimal]] = {}
    for outcome, _, band, _, leak in EXPECTED_LEFT.values():
        n, total = by_hand.get((outcome, band, "USD"), (0, D(0)))
        by_hand[(outcome, band, "USD")] = (n + 1, total + leak)
    assert shown == by_hand
    assert f'data-figure="leakage" data-total="USD" data-count="{len(EXPECTED_LEFT)}" data-sum="149.490000"' in html
    assert not re.search(r"\+1\d{10}", html)


def test_leakage_in_two_currencies_has_a_total_per_currency_never_added() -> None:
    """A GBP carrier bill's leakage beside a USD one's: the summary and the report total each currency apart."""
    from jobs.report.figures import declared_figures
    from jobs.report.page import _declared

    def row(outcome: str, currency: str, n: int, leak: str) -> dict[str, Any]:
        return {"figure": "leakage", "side": "LEFT", "count": n, "summed": "leakage", "sum": D(leak).quantize(D("0.000001")),
                "group": [{"column": "outcome", "value": outcome}, {"column": "confidence_band", "value": "high"},
                          {"column": "currency", "value": currency}]}

    rows = [row("GHOST_DEVICE", "GBP", 2, "30.00"), row("GHOST_DEVICE", "USD", 3, "75.00"),
            row("NOT_IN_CRM", "USD", 1, "22.50")]
    printed = figure_lines("\n".join(summary._figures(rows)), "leakage")
    assert printed[("total", "GBP")] == (2, D("30.00")) and printed[("total", "USD")] == (4, D("97.50"))
    assert not any(v[1] == D("127.50") for v in printed.values())
    control_run = Row(control_point_id="line-audit", figures=[Row(**{**r, "group": [Row(**g) for g in r["group"]]})
                                                               for r in rows])
    html = _declared(declared_figures([control_run]), [])
    assert 'data-total="GBP" data-count="2" data-sum="30.000000"' in html
    assert 'data-total="USD" data-count="4" data-sum="97.500000"' in html
    assert "127.5" not in html


def ruleset_copy(root: Path, edit: Any) -> Path:
    """The shipped ruleset, changed by `edit` (a function of its YAML document), written under root."""
    document = yaml.safe_load(RULESET.read_text())
    edit(document)
    path = root / "line_inventory_audit.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def test_thresholds_are_ruleset_values_a_yaml_copy_moves_rows(spark: SparkSession, tmp_path: Path,
                                                               hand_run: tuple[Path, RunResult, dict[Any, Any]]
                                                               ) -> None:
    def edit(document: dict[str, Any]) -> None:
        document["params"]["ghost_offline_days"] = 29
        document["params"]["unknown_offline_days"] = 59
        document["params"]["fallback_monthly_amount"] = "31.50"

    ruleset = load_ruleset(ruleset_copy(tmp_path, edit))
    _, conf = write_month(spark, tmp_path, HAND_MONTH)
    result = execute(spark, conf, ruleset, "2026-06")
    got = outcomes(spark, tmp_path, result)
    before = {k: (r["outcome"], r["leakage"]) for k, r in hand_run[2].items()}
    after = {k: (r["outcome"], r["leakage"]) for k, r in got.items()}
    moved = {k: (before[k], after[k]) for k in before if before[k] != after[k]}
    assert moved == {
        ("LEFT", "L-16"): (("MANUAL_AUDIT", D(0)), ("GHOST_DEVICE", D("19.990000"))),     # offline 30 > 29
        ("LEFT", "L-09"): (("MANUAL_AUDIT", D(0)), ("NOT_IN_CRM", D("15.000000"))),       # offline 60 > 59
        ("LEFT", "L-04"): (("GHOST_DEVICE", FALLBACK), ("GHOST_DEVICE", D("31.500000"))),  # no amount: fallback
        ("LEFT", "L-08"): (("NOT_IN_CRM", FALLBACK), ("NOT_IN_CRM", D("31.500000"))),
    }


def test_a_ninth_bucket_with_yaml_only(spark: SparkSession, tmp_path: Path) -> None:
    """STALE_DEVICE: a line of ours with no usage whose device is offline more than a week (but not a ghost's
    month) is no longer a manual audit; it counts toward leakage. A rule, a policy, a bucket entry, a parameter."""
    def edit(document: dict[str, Any]) -> None:
        params = document["params"]
        params["stale_offline_days"] = 7
        params["leakage_buckets"].append("STALE_DEVICE")
        params["buckets"]["STALE_DEVICE"] = {"confidence_band": "medium",
                                             "action": "Power-cycle the router on site; cancel if it stays dark."}
        cp = document["control_points"]["line-audit"]
        rules = cp["decide"]["LEFT"]
        at = next(i for i, rule in enumerate(rules) if rule["rule"] == "manual-audit")
        rules.insert(at, {"rule": "stale", "when": "offline_days > ${stale_offline_days}", "outcome": "STALE_DEVICE",
                          "reason": "concat(crm_text, '; no usage; ', seen)"})
        cp["outcomes"]["STALE_DEVICE"] = {"case": True, "exposure_class": "COST_LEAKAGE", "owner": "asset-management",
                                          "severity": "MEDIUM", "correction": "power-cycle-device"}

    ruleset = load_ruleset(ruleset_copy(tmp_path, edit))
    _, conf = write_month(spark, tmp_path, HAND_MONTH)
    result = execute(spark, conf, ruleset, "2026-06")
    got = outcomes(spark, tmp_path, result)
    stale = {rid: (r["outcome"], r["confidence_band"], r["action"], r["leakage"], r["exposure_amount"])
             for (side, rid), r in got.items() if r["outcome"] == "STALE_DEVICE"}
    action = "Power-cycle the router on site; cancel if it stays dark."
    assert stale == {"L-16": ("STALE_DEVICE", "medium", action, D("19.990000"), D("19.990000"))}
    assert got[("LEFT", "L-09")]["outcome"] == "MANUAL_AUDIT"            # not matched: step 3 decides it
    cases = (spark.read.format("delta").load(str(tmp_path / "output" / "ra_case"))
             .where((F.col("run_id") == result.run_id) & (F.col("case_type") == "STALE_DEVICE")).collect())
    assert [(c["severity"], c["owner_team"], c["exposure_amount"]) for c in cases] == [
        ("MEDIUM", "asset-management", D("19.990000"))]
    assert figure_lines(summary.render(spark, result), "leakage")[("STALE_DEVICE", "medium", "USD")] == (1, D("19.99"))


def test_output_tables_written_before_the_new_columns_still_take_appends(spark: SparkSession, tmp_path: Path) -> None:
    """record_outcome and control_run as a run of an earlier telco-ra wrote them (no confidence_band, action,
    leakage, figures): this run appends to them, and their earlier rows read the new columns as null."""
    from transforms.schema import CONTROL_RUN, RECORD_EXTRAS, RECORD_OUTCOME

    old = {"record_outcome": (RECORD_OUTCOME, [c for c in RECORD_OUTCOME.fieldNames() if c not in RECORD_EXTRAS],
                              ("cycle_id", "account_bucket")),
           "control_run": (CONTROL_RUN, [c for c in CONTROL_RUN.fieldNames() if c != "figures"], ("cycle_id",))}
    for table, (schema, columns, partitions) in old.items():
        row = {"run_id": "earlier", "control_point_id": "usage-to-rating", "cycle_id": "2026-06", "account_bucket": 3,
               "status": "COMMITTED"}
        earlier = spark.createDataFrame([tuple(row.get(c) for c in schema.fieldNames())], schema).select(*columns)
        (earlier.write.format("delta").partitionBy(*partitions)
         .save(str(tmp_path / "output" / table)))
    month = {"carrier_bill_line": [LINES[3], LINES[10]], "crm_asset": ASSETS[:4], "device_status": []}
    _, conf = write_month(spark, tmp_path, month)
    result = execute(spark, conf, load_ruleset(RULESET), "2026-06")
    got = outcomes(spark, tmp_path, result)
    assert (got[("LEFT", "L-04")]["confidence_band"], got[("LEFT", "L-04")]["leakage"]) == ("high", FALLBACK)
    table = spark.read.format("delta").load(str(tmp_path / "output" / "record_outcome"))
    assert table.where(F.col("run_id") == "earlier").select("leakage", "action").collect() == [(None, None)]
    runs = spark.read.format("delta").load(str(tmp_path / "output" / "control_run"))
    assert runs.where(F.col("run_id") == "earlier").select("figures").collect() == [(None,)]
    assert "leakage (LEFT rows" in summary.render(spark, result)


def _edited(tmp_path: Path, edit: Any) -> str:
    with pytest.raises(Exception) as caught:
        load_ruleset(ruleset_copy(tmp_path, edit))
    return str(caught.value)


def _cp(document: dict[str, Any]) -> dict[str, Any]:
    return dict(document["control_points"]["line-audit"])


@pytest.mark.parametrize("change, names", [
    (lambda d: _cp(d)["lookups"]["device"].update(side="MIDDLE"), ("lookups.device.side", "MIDDLE")),
    (lambda d: _cp(d)["lookups"]["billed_by_phone"]["join"].update(phone_e164="no_such_column"),
     ("lookups.billed_by_phone.join", "no_such_column")),
    (lambda d: _cp(d)["figures"]["leakage"].update(by=["record_id"]), ("figures.leakage.by", "record_id")),
    (lambda d: _cp(d)["figures"]["leakage"].update(sum="reason"), ("figures.leakage.sum", "reason")),
    (lambda d: _cp(d)["decide"]["LEFT"][1].update(exposure="line_cost"),
     ("decide.LEFT.cancelled-in-crm", "record.LEFT.exposure")),
    (lambda d: _cp(d)["let"]["LEFT"].update({"crm": "CASE WHEN device.found THEN crm_by_sim ELSE crm_by_phone END"}),
     ("let.LEFT.crm", "device_iccid")),
    (lambda d: d["params"].update(spare_days=3), ("params.spare_days",)),
])
def test_the_new_keys_are_validated_on_load_naming_file_key_and_value(tmp_path: Path, change: Any,
                                                                        names: tuple[str, ...]) -> None:
    message = _edited(tmp_path, change)
    assert "line_inventory_audit.yaml" in message
    for name in names:
        assert name in message, message


def test_every_outcome_of_both_sides_at_precision_and_recall_one(spark: SparkSession, tmp_path: Path) -> None:
    """`telco-ra generate --ruleset line_inventory_audit` plants every branch; the run reproduces every label (with
    each SIM_SWAP reason), and its leakage is the labels' leakage, line by line."""
    from factories import run_cli
    from jobs.score import score

    out = tmp_path / "lines"
    cli = run_cli(spark, "generate", "--ruleset", str(RULESET), "--rows", "260", "--seed", "7", "--out", str(out))
    assert cli.code == 0, cli.err
    # the bills come as carrier files in the shipped line_bill layouts: telco-ra ingest makes carrier_bill_line
    files = sorted(p.name for p in (out / "bills").iterdir())
    assert {name.split("_")[0] for name in files} == {"tidewater-csv", "cobalt-xlsx", "frontera-csv", "relay2go-csv"}
    tables = {t: str(out / t) for t in TABLES}
    conf_path = tmp_path / "conf.yaml"
    conf_path.write_text(yaml.safe_dump({"tables": tables, "output": str(tmp_path / "output"),
                                         "cycles": {"2026-06": JUNE}, "carriers": str(CARRIERS)}))
    ingested = run_cli(spark, "ingest", "--conf", str(conf_path), str(out / "bills"))
    assert ingested.code == 0, ingested.err
    conf, ruleset = load_conf(conf_path), load_ruleset(RULESET)
    result = execute(spark, conf, ruleset, "2026-06")
    truth = spark.read.format("delta").load(str(out / "ground_truth"))
    scores = score(spark, conf, ruleset, result.run_id, truth)
    bad = [s for s in scores if s.precision != 1.0 or s.recall != 1.0]
    assert not bad, "\n".join(f"{s.side} {s.outcome}: expected {s.expected} actual {s.actual} tp {s.true_positive}"
                              for s in bad)
    assert sum(s.expected for s in scores) == truth.count() == sum(s.actual for s in scores)   # every record
    seen = {(s.side, s.outcome) for s in scores if s.expected}
    cp = ruleset.control_points["line-audit"]
    vocabulary = {(side, rule.outcome) for side in cp.sides for rule in cp.decide[side]}
    assert {(side, o.split("/")[0]) for side, o in seen} == vocabulary
    assert {o for side, o in seen if o.startswith("SIM_SWAP/")} == {"SIM_SWAP/SWAP", "SIM_SWAP/MISSING_ICCID",
                                                                     "SIM_SWAP/FAILOVER"}
    leak = (spark.read.format("delta").load(str(tmp_path / "output" / "record_outcome"))
            .where(F.col("run_id") == result.run_id).select("record_id", "leakage")
            .join(truth.select("record_id", F.col("expected_leakage").cast("decimal(18,6)").alias("want")),
                  "record_id"))
    assert leak.where(~F.col("leakage").eqNullSafe(F.col("want"))).count() == 0
    assert leak.where(F.col("leakage") > 0).count() > 0
    blank = spark.read.format("delta").load(tables["carrier_bill_line"]).where(F.col("amount").isNull())
    assert blank.count() > 0


@pytest.mark.parametrize("option", [["--cutoff", "2026-06-28T00:00:00Z"], ["--scenario", "seed004"],
                                    ["--accounts", "9"]])
def test_generate_refuses_options_the_line_month_has_not_before_starting_spark(
        option: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    from jobs.generate import main

    assert main(["--ruleset", str(RULESET), *option, "--out", "/nonexistent"]) == 2
    assert f"{option[0]} is not an option of the line_inventory_audit month" in capsys.readouterr().err
