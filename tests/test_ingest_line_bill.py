"""`telco-ra ingest` of carrier bills (`kind: line_bill` layouts, CONTRACT section 9) into carrier_bill_line, and the
synthetic bill writer (jobs/synthetic/bill_files.py) round-tripped through it.

Every file of the first fixture is written by hand, in its carrier's shape, with data the writer never makes (other
column orders, extra columns, a BOM and CRLF, blank and bad cells, total rows, labels and extensions on numbers),
and every expected value is worked out by hand (units -> MB, text -> exact decimal, a number -> E.164). The writer's
files are checked against the lines it was given, not against what ingest makes of them. The Spark tests share two
ingests (module fixtures): Spark time is the suite's budget.
"""

from __future__ import annotations

import hashlib
import random
import re
import shutil
from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from chispa import assert_df_equality
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import DecimalType, LongType, StringType, StructField, StructType

from factories import ingest_again, ingest_conf, write_workbook
from jobs.cli import main
from jobs.ingest.bill_lines import CARRIER_BILL_LINE
from jobs.ingest.layouts import LayoutError, header_key, load_layout, load_layouts
from jobs.synthetic.bill_files import (
    BillLine,
    as_ingested,
    bill_line_id,
    line_bill_layouts,
    render_phone,
    write_bill_file,
)
from transforms.phone import to_e164

REPO = Path(__file__).resolve().parent.parent
CARRIERS = REPO / "conf" / "carriers"
SHIPPED = ["cobalt-xlsx", "frontera-csv", "harbor-html", "relay2go-csv", "tidewater-csv"]
SEED_FORMATS = ["(555) 123-4567", "+1 555-123-4567", "1.555.123.4567", "5551234567", "MTN: 555-123-4567",
                "sub: +1 (555) 123-4567", "5551234567 ext 22", "555.123.4567 x100"]

# Tidewater: a BOM, CRLF, its columns in another order among columns no layout maps; "$" and grouped thousands;
# usage in GB, twice with a unit written in the cell; blank usage and amount cells; a bad amount; a blank period.
TIDEWATER = (
    "\ufeffPlan,Total Charges,Wireless Number,Device,ICCID,BAN,Bill Date,Data Usage (GB),Minutes\r\n"
    "Unlimited Plus,$45.00,(555) 123-4567,Phone,8910 3000 0000 0012 345,BAN-77001,03/31/2026,2.5,120\r\n"
    "Unlimited Plus,,+1 555-123-4568,Hotspot,89103000000000123469,BAN-77001,03/31/2026,,0\r\n"
    'Data Only,"1,234.56",1.555.123.4569,Router,,BAN-77001,03/31/2026,0.000001,0\r\n'
    "Data Only,12.3x,5551234570,Router,8910300000000012347,BAN-77001,03/31/2026,0,5\r\n"
    "Data Only,5.00,5551234571,Router,8910300000000012348,BAN-77001,3/1/2026,1.25 GB,5\r\n"
    "Data Only,5.00,5551234572,Router,,BAN-77001,,512 KB,5\r\n"
)
# Relay2Go: one number in each of the seed's eight formats, the provider per row (one blank: Relay2Go's own),
# usage in MB with units in some cells, a quoted comma, a number that is none, a month written out, a foreign code.
RELAY2GO = (
    "Statement ID,Carrier Name,Statement Period,MDN,ICCID,Data (MB),Charge,Notes\n"
    "R2G-0326,Tidewater Wireless,Mar 2026,(555) 123-4567,89103000000000000018,100,10.00,\n"
    "R2G-0326,Cobalt Mobile,Mar 2026,+1 555-123-4567,,100.5,10.00,\n"
    "R2G-0326,Verity,Mar 2026,1.555.123.4567,,0,10.00,\n"
    "R2G-0326,Tidewater Wireless,Mar 2026,5551234567,,1.5 GB,10.00,\n"
    "R2G-0326,Cobalt Mobile,Mar 2026,MTN: 555-123-4567,,2048 KB,10.00,\n"
    'R2G-0326,Verity,Mar 2026,"sub: +1 (555) 123-4567",,,10.00,"quoted, with a comma"\n'
    "R2G-0326,Tidewater Wireless,Mar 2026,5551234567 ext 22,,,10.00,\n"
    "R2G-0326,,Mar 2026,555.123.4567 x100,,,10.00,\n"
    "R2G-0326,Verity,Mar 2026,N/A,8910300000000000026,,USD 3.50,\n"
    "R2G-0326,Verity,March 2026,555-123-4573,,,EUR 3.50,\n"
)
# Frontera: Service_TN holds ICCIDs (one dashed, one a phone number by mistake), no usage column, a bad cycle and a
# total row at the foot.
FRONTERA = (
    "Account,Service_Status,Service_TN,Service_Circuit_Number,Invoice_Number,Bill_Cycle,Monthly_Charge,"
    "Service_Address\n"
    'A-100,Active,8910300000001234567,CKT-0001,FR-2026-03,202603,25.00,"1 Main St, Springfield"\n'
    "A-100,Active,89103-00000-01234-5678,CKT-0002,FR-2026-03,202603,25.00,2 Main St\n"
    "A-100,Suspended,555-123-4567,CKT-0003,FR-2026-03,202603,0.00,\n"
    "A-100,Active,8910300000001234569,CKT-0004,FR-2026-03,20263,25.00,\n"
    ",,,,,,75.00,\n"
)
# Harbor (UK): a title table, thead/tbody, a seed phone-synonym header ("Line Number") that is not the phone column,
# UK national numbers (one labelled, one with a no-break space), pounds, a credit in parentheses, too many decimal
# places of a MB, and a total row spanning six cells.
HARBOR = """\
<html><head><meta charset="utf-8"></head><body>
<table><tr><td>Harbor Telecom &ndash; line charges, March 2026</td></tr></table>
<table border="1">
<thead><tr><th>Line Number</th><th>Mobile Number</th><th>Invoice #</th><th>Billing Period</th><th>SIM Number</th>
<th>Data Used (MB)</th><th>Line Total</th></tr></thead>
<tbody>
<tr><td>1</td><td>07700 900123</td><td>HT-100</td><td>03/2026</td><td>8944 1000 0000 0000 0017</td><td>2,048.5</td>
<td>&pound;12.50</td></tr>
<tr><td>2</td><td>+44 7700 900124</td><td>HT-100</td><td>03/2026</td><td></td><td></td><td></td></tr>
<tr><td>3</td><td>Mobile: 07700&nbsp;900125</td><td>HT-100</td><td>3/2026</td><td>89441000000000000025</td><td>0</td>
<td>(5.00)</td></tr>
<tr><td>4</td><td>07700 900126</td><td>HT-100</td><td>03/2026</td><td>89441000000000000033</td><td>1.2345678</td>
<td>GBP 1.00</td></tr>
<tr><td colspan="6">Total</td><td>&pound;8.50</td></tr>
</tbody></table></body></html>
"""
# A carrier no code knows, written by a user: pipes, decimal commas, German numbers, usage in GB, no period column.
PELICAN_LAYOUT = """\
layout: pelican-psv
kind: line_bill
carrier: Pelican Mobil
recognize: ["Rufnummer", "Rechnungsnr"]
phone_region: DE
columns: {bill_id: "Rechnungsnr", phone: "Rufnummer", usage: "Volumen (GB)", amount: "Betrag"}
units: {usage: GB}
decimal_mark: ","
currency: EUR
"""
PELICAN = (
    "Rechnungsnr|Rufnummer|Volumen (GB)|Betrag\n"
    "PM-1|0151 23456789|1,5|9,99\n"
    "PM-1|+49 30 1234567|0,000001|1.234,50\n"
)
KESTREL = ("Call Date,Call Time (ET),Orig TN,Term TN,Dir,DURATION_SEC,Billed Mins,Charge USD,Ref,CALL_ID\n"
           "03/10/2026,09:30:00,2125550100,6465550199,OUT,130,3,0.0360,K-1,\n")


def _cobalt(path: Path) -> None:
    """Cobalt's workbook: a summary sheet, then the lines under a title, cells typed by Excel (an MSISDN as a
    number, an ICCID as a number that lost its digits, a period as a date, usage and amounts as numbers)."""
    write_workbook(path, [["Cobalt Mobile", "Invoice CB-2026-03"], ["Total due", 31.7]], "Lines", [
        ["Cobalt Mobile - subscriber usage"],
        [],
        ["Invoice No", "Period", "Subscriber Number", "MSISDN", "Plan", "SIM", "Usage KB", "Amount"],
        ["CB-2026-03", "2026-03", "SUB-0001", 5551234567, "Pooled 5GB", "89103000000000000034", 1536000, 30.5],
        ["CB-2026-03", datetime(2026, 3, 1), "SUB-0002", "555-123-4571", "Pooled 5GB", 8.9103e18, 1, None],
        [None] * 8,
        [None, "2026-3", "SUB-0004", "5551234572", "Pooled 5GB", None, None, "0.10"],
        ["CB-2026-03", "2026-03", "SUB-0005", 5551234573, "Pooled 5GB", "89103000000000000042", 0.5, 1.1],
    ])


def _conf(root: Path, carriers: Path) -> Path:
    return ingest_conf(root, carriers, ("carrier_bill_line", "carrier_invoice_line"))


def _carriers(root: Path) -> Path:
    """The shipped layouts plus a user's (Pelican), in one folder."""
    carriers = root / "carriers"
    shutil.copytree(CARRIERS, carriers)
    (carriers / "pelican.yaml").write_text(PELICAN_LAYOUT)
    return carriers


@pytest.fixture(scope="module")
def bills(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, DataFrame]]:
    """The hand-written bills of the five shipped line_bill layouts and a call invoice, ingested in one command
    (no --period); then the user layout's bill, which has no period column, with --period 2026-03."""
    root = tmp_path_factory.mktemp("bills")
    inbox = root / "inbox"
    inbox.mkdir()
    (inbox / "Tidewater March.csv").write_bytes(TIDEWATER.encode())
    (inbox / "statement_0326.csv").write_text(RELAY2GO)
    _cobalt(inbox / "cobalt_export.xlsx")
    (inbox / "FR-2026-03.csv").write_text(FRONTERA)
    (inbox / "harbor_export.xls").write_text(HARBOR)
    (inbox / "kestrel.csv").write_text(KESTREL)
    conf = _conf(root, _carriers(root))
    assert main(["ingest", "--conf", str(conf), str(inbox)]) == 0
    pelican = root / "pelican" / "pelican_march.psv"
    pelican.parent.mkdir()
    pelican.write_text(PELICAN)
    assert main(["ingest", "--conf", str(conf), "--period", "2026-03", str(pelican)]) == 0
    yield root, spark.read.format("delta").load(str(root / "lake" / "carrier_bill_line"))


FIELDS = ("carrier", "bill_id", "bill_period", "phone", "iccid", "usage_mb", "amount", "parse_error", "parse_warning")


def _lines(table: DataFrame, layout: str) -> dict[int, tuple[Any, ...]]:
    """The layout's lines by source_row, as FIELDS."""
    return {r["source_row"]: tuple(r[f] for f in FIELDS)
            for r in table.where(F.col("layout") == layout).collect()}


def _d(text: str | None) -> Decimal | None:
    return None if text is None else Decimal(text)


# ----------------------------------------------------------------------------------------------- no Spark needed
@pytest.mark.parametrize("text", SEED_FORMATS + ["Tel: 555-123-4567", "Mobile #: (555) 123 4567"])
def test_every_seed_phone_format_is_one_e164(text: str) -> None:
    assert to_e164(text, "US") == "+15551234567"


@pytest.mark.parametrize("text", ["Line 2: 5551234567", "MTN:", "MTN: N/A", "INFO1234567890", "BANK: 12"])
def test_a_label_is_dropped_but_text_is_no_number(text: str) -> None:
    assert to_e164(text, "US") is None


def test_writer_renders_every_seed_format_and_each_reads_back() -> None:
    rng = random.Random(11)
    shapes = {re.sub(r"\d", "9", re.sub(r"(ext |x)\d+$", r"\1E", render_phone("+15551234567", "US", rng)))
              for _ in range(400)}
    assert shapes == {re.sub(r"\d", "9", re.sub(r"(ext |x)\d+$", r"\1E", f)) for f in SEED_FORMATS}
    for e164, region in (("+15551234567", "US"), ("+447700900123", "GB"), ("+15551234567", "GB"),
                         ("+4915123456789", "DE"), ("+447700900123", "US")):
        for _ in range(100):
            text = render_phone(e164, region, rng)
            assert to_e164(text, region) == e164, (text, region)


def test_shipped_line_bill_layouts() -> None:
    layouts = {layout.name: layout for layout in line_bill_layouts(CARRIERS)}
    assert sorted(layouts) == SHIPPED
    assert {layout.usage_unit for name, layout in layouts.items() if "usage" in layout.columns} == {"GB", "KB", "MB"}
    assert "phone" not in layouts["frontera-csv"].columns and layouts["frontera-csv"].columns["iccid"] == "Service_TN"
    assert layouts["relay2go-csv"].carrier_column == "Carrier Name"
    # Invented carriers, every one named by its layout, none a real operator's name.
    assert {layout.carrier for layout in layouts.values()} == {
        "Tidewater Wireless", "Cobalt Mobile", "Frontera", "Relay2Go", "Harbor Telecom"}


def test_every_shipped_layout_is_told_apart_by_headers_alone() -> None:
    """No layout's recognise headers are all among another's headers (whatever their kinds), so a file written in
    one layout's shape is never recognised as another's, whatever its name."""
    layouts = load_layouts(CARRIERS)
    headers = {name: {header_key(h) for h in (*lay.recognize, *lay.columns.values(),
                                              *([lay.carrier_column] if lay.carrier_column else []))}
               for name, lay in layouts.items()}
    for name, layout in layouts.items():
        for other in layouts:
            if other != name:
                assert not layout.recognize_keys <= headers[other], (name, other)


LINE_VALID = """\
layout: osprey-bill
kind: line_bill
carrier: Osprey Mobile
recognize: ["Osprey Line", "Osprey Invoice"]
columns: {bill_id: "Osprey Invoice", bill_period: "Month", phone: "Osprey Line", usage: "Used", amount: "Due"}
formats: {bill_period: "%m/%Y"}
units: {usage: GB}
currency: USD
"""


@pytest.mark.parametrize(("change", "message"), [
    (("units: {usage: GB}", "units: {usage: TB}"), "units.usage: 'TB' is not one of KB, MB, GB"),
    (("units: {usage: GB}", "units: {amount: GB}"), "units.amount: only usage has a unit in a line_bill layout"),
    (('usage: "Used", ', ""), "units.usage: given but columns.usage is missing"),
    (('phone: "Osprey Line", ', ""), "columns.phone: missing (required: phone, iccid or both"),
    (('bill_id: "Osprey Invoice", ', ""), "columns.bill_id: missing (required)"),
    (("formats: {bill_period: \"%m/%Y\"}", "formats: {usage: \"%m/%Y\"}"),
     "formats.usage: not a period column of this layout (its period columns: bill_period)"),
    (("formats: {bill_period: \"%m/%Y\"}", "formats: {bill_period: \"%m/%Y %Z\"}"),
     "formats.bill_period: '%m/%Y %Z': %Z is not a directive ingest can read"),
    (('amount: "Due"}', 'amount: "Due", cost: "Cost"}'),
     "columns.cost: unknown key (allowed: amount, bill_id, bill_period, iccid, phone, usage)"),
    (("currency: USD", "currency: USD\nrates: {increment_s: 1}"), "rates: unknown key (allowed: carrier, "),
    (("currency: USD", "currency: USD\ntimezone: UTC"), "timezone: unknown key"),
    (('amount: "Due"}', 'amount: "osprey-line"}'), "columns.amount: 'osprey-line' is the header of columns.phone too"),
])
def test_bad_line_bill_layout_names_file_key_and_value(tmp_path: Path, change: tuple[str, str], message: str) -> None:
    assert change[0] in LINE_VALID
    path = tmp_path / "osprey.yaml"
    path.write_text(LINE_VALID.replace(*change))
    with pytest.raises(LayoutError) as caught:
        load_layout(path)
    assert str(caught.value).startswith(f"{path}: ")
    assert message in str(caught.value)


def test_unknown_bill_exits_2_naming_the_closest_layout(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bill = tmp_path / "in" / "tidewater_april.csv"
    bill.parent.mkdir()
    bill.write_text("Wireless Number,BAN,ICCID,Data (GB),Total Charges,Bill Date\n"
                    "5551234567,BAN-1,,1.5,45.00,04/30/2026\n")
    assert main(["ingest", "--conf", str(_conf(tmp_path, CARRIERS)), str(bill)]) == 2
    err = capsys.readouterr().err
    assert (f"telco-ra: {bill}: (layout): no carrier layout recognises this file; headers seen: 'Wireless Number', "
            "'BAN', 'ICCID', 'Data (GB)', 'Total Charges', 'Bill Date'; closest layout: tidewater-csv "
            f"({CARRIERS / 'tidewater.yaml'}), which lacks 'Data Usage (GB)'") in err
    assert not (tmp_path / "lake").exists()


def test_a_bill_needs_its_table_and_a_period(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    carriers = _carriers(tmp_path)
    pelican = tmp_path / "pelican.psv"
    pelican.write_text(PELICAN)
    conf = _conf(tmp_path, carriers)
    assert main(["ingest", "--conf", str(conf), str(pelican)]) == 2
    assert (f"{pelican}: --period: missing: layout pelican-psv ({carriers / 'pelican.yaml'}) has no bill_period "
            "column, so the bill's period must be given (--period YYYY-MM)") in capsys.readouterr().err
    conf.write_text(re.sub(r"carrier_bill_line: [^,]*, ", "", conf.read_text()))
    assert main(["ingest", "--conf", str(conf), "--period", "2026-03", str(pelican)]) == 2
    assert (f"tables.carrier_bill_line: missing: telco-ra ingest appends the lines of {pelican} (layout "
            "pelican-psv, a line_bill layout) to this table") in capsys.readouterr().err
    assert not (tmp_path / "lake").exists()


def test_writer_refuses_a_call_invoice_layout(tmp_path: Path) -> None:
    kestrel = load_layouts(CARRIERS)["kestrel-csv"]
    with pytest.raises(ValueError, match="kestrel-csv .* is a call_invoice layout, not a line_bill one"):
        write_bill_file(tmp_path, kestrel, [BillLine("K", "B", "2026-03", None, None, None, None)], random.Random(1))


# ------------------------------------------------------------------------------------------ hand-written bills
def test_table_has_the_contract_columns_and_types(bills: tuple[Path, DataFrame]) -> None:
    _, table = bills
    assert table.schema == CARRIER_BILL_LINE
    contract = ("line_id carrier layout bill_id bill_period phone iccid usage_mb amount currency source_file "
                "source_sha256 source_row parse_error ingested_at").split()
    assert table.columns[:len(contract)] == contract
    assert dict(table.dtypes)["usage_mb"] == dict(table.dtypes)["amount"] == "decimal(18,6)"


def test_tidewater_csv_with_bom_crlf_and_columns_in_another_order(bills: tuple[Path, DataFrame]) -> None:
    _, table = bills
    t = "Tidewater Wireless"
    assert _lines(table, "tidewater-csv") == {
        # GB to MB exactly: 2.5 GB = 2500 MB, 0.000001 GB = 0.001 MB, "512 KB" in the cell = 0.512 MB
        1: (t, "BAN-77001", "2026-03", "+15551234567", "8910300000000012345", _d("2500"), _d("45"), None, None),
        2: (t, "BAN-77001", "2026-03", "+15551234568", "89103000000000123469", None, None, None, None),
        3: (t, "BAN-77001", "2026-03", "+15551234569", None, _d("0.001"), _d("1234.56"), None, None),
        4: (t, "BAN-77001", "2026-03", "+15551234570", "8910300000000012347", _d("0"), None,
            "amount '12.3x' is not a number", None),
        5: (t, "BAN-77001", "2026-03", "+15551234571", "8910300000000012348", _d("1250"), _d("5"), None, None),
        6: (t, "BAN-77001", None, "+15551234572", None, _d("0.512"), _d("5"), "bill_period is empty", None),
    }
    row = table.where(F.col("source_file") == "Tidewater March.csv").orderBy("source_row").first()
    assert row is not None
    sha = hashlib.sha256(TIDEWATER.encode()).hexdigest()
    assert (row["source_sha256"], row["currency"]) == (sha, "USD")
    assert row["line_id"] == hashlib.sha256(f"{sha}:1".encode()).hexdigest() == bill_line_id(sha, 1)


def test_relay2go_every_phone_format_and_the_provider_per_row(bills: tuple[Path, DataFrame]) -> None:
    _, table = bills
    lines = _lines(table, "relay2go-csv")
    assert sorted(lines) == list(range(1, 11))
    # The seed's eight formats of one number: one E.164.
    assert {lines[n][3] for n in range(1, 9)} == {"+15551234567"}
    assert [lines[n][0] for n in range(1, 10)] == [
        "Tidewater Wireless", "Cobalt Mobile", "Verity", "Tidewater Wireless", "Cobalt Mobile", "Verity",
        "Tidewater Wireless", "Relay2Go", "Verity"]
    # MB by default; "1.5 GB" and "2048 KB" written in an MB column are read in their own units.
    assert [lines[n][5] for n in range(1, 9)] == [_d("100"), _d("100.5"), _d("0"), _d("1500"), _d("2.048"), None,
                                                  None, None]
    assert all(lines[n][7] is None and lines[n][8] is None for n in range(1, 9))
    # A number that is none: no phone, the line kept with its ICCID, and the reason as a warning (masked).
    assert lines[9] == ("Verity", "R2G-0326", "2026-03", None, "8910300000000000026", None, _d("3.50"), None,
                        "phone is not a phone number (***/A)")
    assert lines[10] == ("Verity", "R2G-0326", None, "+15551234573", None, None, None,
                         "bill_period 'March 2026' is not a period (%b %Y); amount 'EUR 3.50' is in EUR, the "
                         "layout's currency is USD", None)


def test_cobalt_xlsx_typed_cells(bills: tuple[Path, DataFrame]) -> None:
    _, table = bills
    c = "Cobalt Mobile"
    assert _lines(table, "cobalt-xlsx") == {
        # 1,536,000 KB = 1536 MB; an MSISDN typed as a number; a period typed as a date
        1: (c, "CB-2026-03", "2026-03", "+15551234567", "89103000000000000034", _d("1536"), _d("30.5"), None, None),
        # An ICCID typed as a number has lost its last digits: not taken for an ICCID.
        2: (c, "CB-2026-03", "2026-03", "+15551234571", None, _d("0.001"), None, None,
            "iccid is not an ICCID of 18 to 22 digits (8.910***e+18)"),
        # (the blank row 3 is not a line, and the rows after it keep their numbers)
        4: (c, None, "2026-03", "+15551234572", None, None, _d("0.1"), "bill_id is empty", None),
        5: (c, "CB-2026-03", "2026-03", "+15551234573", "89103000000000000042", _d("0.0005"), _d("1.1"), None, None),
    }


def test_frontera_iccids_in_service_tn(bills: tuple[Path, DataFrame]) -> None:
    _, table = bills
    f = "Frontera"
    assert _lines(table, "frontera-csv") == {
        1: (f, "FR-2026-03", "2026-03", None, "8910300000001234567", None, _d("25"), None, None),
        2: (f, "FR-2026-03", "2026-03", None, "8910300000012345678", None, _d("25"), None, None),
        # A phone number where Frontera puts the SIM: neither a phone (the column is not one) nor an ICCID.
        3: (f, "FR-2026-03", "2026-03", None, None, None, _d("0"), None,
            "iccid is not an ICCID of 18 to 22 digits (555-1***4567)"),
        4: (f, "FR-2026-03", None, None, "8910300000001234569", None, _d("25"),
            "bill_period '20263' is not a period (%Y%m)", None),
        # The total row is kept (nothing is dropped silently) and says why it is not a line.
        5: (f, None, None, None, None, None, _d("75"), "bill_id is empty; bill_period is empty", None),
    }


def test_harbor_html_saved_as_xls(bills: tuple[Path, DataFrame]) -> None:
    _, table = bills
    h = "Harbor Telecom"
    assert _lines(table, "harbor-html") == {
        1: (h, "HT-100", "2026-03", "+447700900123", "89441000000000000017", _d("2048.5"), _d("12.5"), None, None),
        2: (h, "HT-100", "2026-03", "+447700900124", None, None, None, None, None),
        3: (h, "HT-100", "2026-03", "+447700900125", "89441000000000000025", _d("0"), _d("-5"), None, None),
        4: (h, "HT-100", "2026-03", "+447700900126", "89441000000000000033", None, _d("1"),
            "usage '1.2345678' has more decimal places than 6 of a MB (MB)", None),
        5: (h, None, None, None, None, None, _d("8.5"), "bill_id is empty; bill_period is empty", None),
    }
    assert {r["currency"] for r in table.where(F.col("layout") == "harbor-html").collect()} == {"GBP"}


def test_user_layout_without_a_period_takes_the_given_one(bills: tuple[Path, DataFrame]) -> None:
    _, table = bills
    p = "Pelican Mobil"
    assert _lines(table, "pelican-psv") == {
        1: (p, "PM-1", "2026-03", "+4915123456789", None, _d("1500"), _d("9.99"), None, None),
        2: (p, "PM-1", "2026-03", "+49301234567", None, _d("0.001"), _d("1234.5"), None, None),
    }


def test_each_file_goes_to_the_table_of_its_layouts_kind(spark: SparkSession, bills: tuple[Path, DataFrame]) -> None:
    root, table = bills
    assert sorted(r["layout"] for r in table.select("layout").distinct().collect()) == sorted(
        SHIPPED + ["pelican-psv"])
    calls = spark.read.format("delta").load(str(root / "lake" / "carrier_invoice_line"))
    assert [(r["layout"], r["source_file"], r["cost"]) for r in calls.collect()] == [
        ("kestrel-csv", "kestrel.csv", Decimal("0.036"))]


def test_same_bytes_again_add_nothing(spark: SparkSession, bills: tuple[Path, DataFrame]) -> None:
    root, _ = bills
    out = ingest_again(spark, root, "carrier_bill_line", Path("FR-2026-03.csv"))
    assert out.count("already ingested") == 6 and "same bytes as FR-2026-03.csv" in out


# ------------------------------------------------------------------------------------------------ round trip
def _random_lines(layout_name: str, region: str, rng: random.Random, n: int) -> list[BillLine]:
    """Lines a generator might write: numbers of the region, ICCIDs of 19 or 20 digits, usage to the millionth of
    a MB, cents and odd amounts, credits, blanks, a phone cell that is no number."""
    providers = ["Tidewater Wireless", "Cobalt Mobile", "Verity", ""]
    out = []
    for i in range(n):
        period = f"2026-{rng.randint(1, 12):02d}"
        if region == "GB":
            phone: str | None = f"+4477009{rng.randrange(10 ** 5):05d}"
        else:
            phone = f"+1{rng.choice(['212', '415', '646', '555'])}555{rng.randrange(10 ** 4):04d}"
        iccid = None if rng.random() < 0.2 else "8910" + "".join(rng.choice("0123456789")
                                                               for _ in range(rng.choice((15, 16))))
        usage = None if rng.random() < 0.2 else Decimal(rng.randrange(0, 10 ** 9)).scaleb(-rng.choice((0, 3, 6)))
        amount = (None if rng.random() < 0.15
                  else Decimal(rng.randrange(-5_000, 100_000)).scaleb(-rng.choice((2, 2, 6))))
        text = None
        if i == 3:                                  # an edge case: the cell says no number
            phone, text = None, "n/a"
        out.append(BillLine(rng.choice(providers) if layout_name == "relay2go-csv" else "ignored",
                            f"{layout_name[:3].upper()}-{rng.randint(1, 3)}", period, phone, iccid, usage, amount,
                            phone_text=text))
    return out


ROUND_TRIP = StructType([StructField(n, t, True) for n, t in (
    ("line_id", StringType()), ("carrier", StringType()), ("bill_id", StringType()), ("bill_period", StringType()),
    ("phone", StringType()), ("iccid", StringType()), ("usage_mb", DecimalType(18, 6)),
    ("amount", DecimalType(18, 6)), ("source_row", LongType()), ("parse_error", StringType()))])


def test_writer_round_trip_through_ingest(spark: SparkSession, tmp_path: Path) -> None:
    """Each shipped layout's file as the writer makes it, ingested: the table holds the lines given (as the
    layout can carry them), each under the line_id bill_line_id names."""
    rng = random.Random(20260301)
    expected: list[tuple[Any, ...]] = []
    folder = tmp_path / "bills"
    for layout in line_bill_layouts(CARRIERS):
        lines = _random_lines(layout.name, layout.phone_region or "US", rng, 40)
        _, sha = write_bill_file(folder, layout, lines, rng)
        for row, line in enumerate(lines, start=1):
            held = as_ingested(layout, line)
            expected.append((bill_line_id(sha, row), held.carrier, held.bill_id, held.bill_period, held.phone,
                             held.iccid, held.usage_mb, held.amount, row, None))
    assert {e[1] for e in expected} >= {"Frontera", "Relay2Go", "Verity", "Harbor Telecom", "Cobalt Mobile"}
    assert main(["ingest", "--conf", str(_conf(tmp_path, CARRIERS)), str(folder)]) == 0
    table = spark.read.format("delta").load(str(tmp_path / "lake" / "carrier_bill_line"))
    actual = table.select(*ROUND_TRIP.fieldNames())
    assert_df_equality(actual, spark.createDataFrame(expected, ROUND_TRIP), ignore_row_order=True,
                       ignore_nullable=True)
