"""`telco-ra ingest` end to end (CONTRACT section 6): hand-written carrier files -> real Delta table -> rows.

Every file here is written by hand, in the shape its carrier sends, and every expected value is worked out by hand
(local time and offset -> UTC, units -> seconds, text -> exact decimal), never by the code under test. One ingest of
the shipped carriers' files is shared by the tests of this module (Spark time is the suite's budget).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from factories import ingest_again, ingest_conf, write_workbook
from jobs.cli import main
from jobs.ingest.normalize import CARRIER_INVOICE_LINE
from jobs.utc import micros_to_utc

REPO = Path(__file__).resolve().parent.parent
CARRIERS = REPO / "conf" / "carriers"

KESTREL = (  # comma-separated, CRLF, quoted fields; March and November DST days of New York
    "Call Date,Call Time (ET),Orig TN,Term TN,Dir,DURATION_SEC,Billed Mins,Charge USD,Ref,CALL_ID\r\n"
    "03/07/2026,23:15:00,(212) 555-0100,1-646-555-0199,OUT,61,2,0.0240,K-1001,MED-000001\r\n"
    "03/08/2026,02:30:00,212.555.0100,011 44 20 7946 0958,OUT,30,1,0.0350,K-1002,\r\n"
    '11/01/2026,01:30:00,+1 212 555 0100,"(646) 555-0199",Outbound,59,1,0.0120,K-1003,\r\n'
    "03/09/2026,25:61:00,2125550100,6465550199,OUT,59,1,0.0120,K-1004,\r\n"
    "03/09/2026,10:00:00,2125550100,N/A,OUT,59,1,0.0120,K-1005,\r\n"
    "03/09/2026,10:05:00,2125550100,6465550199,OUT,59,1,TBD,K-1006,\r\n"
    '03/10/2026,09:00:00,2125550100,6465550199,IN,125,3,"1,000.1000",K-1007,MED-000007\r\n'
    "03/10/2026,09:30:00,2125550100,6465550199,OUT,130,3,0.0360,K-1008,MED-000008\r\n"
)
ALBION = (  # semicolons, two title lines, day-first UK local time, UK dialling, per-second billing
    "Albion Voice plc;;;;;;;\n"
    "Call detail for account 88123, period 01/03/2026 - 31/10/2026;;;;;;;\n"
    "Call Start;Caller;Dialled Number;Call Direction;Duration;Chargeable Secs;Cost (GBP);Call Reference\n"
    "29/03/2026 00:59:59;020 7946 0000;07700 900123;Outgoing;0:00:45;45;0.024000;ALB-1\n"
    "29/03/2026 01:30:00;020 7946 0000;0044 20 7946 0958;Outgoing;0:02:30;150;0.020000;ALB-2\n"
    "25/10/2026 01:30:00;020 7946 0000;001 212 555 0100;Outgoing;0:01:00;60;0.015000;ALB-3\n"
    "25/10/2026 02:30:00;020 7946 0000;020 7946 0958;Incoming;12;30;0.004000;ALB-4\n"
)
RHEINWELLE = """\
<html><head><meta http-equiv="Content-Type" content="text/html; charset=utf-8"></head><body>
<table><tr><td>Rheinwelle Carrier GmbH &ndash; Einzelverbindungsnachweis M&auml;rz 2026</td></tr></table>
<table border="1">
<tr><th>Datum</th><th>Uhrzeit</th><th>A-Nummer</th><th>B-Nummer</th><th>Richtung</th><th>Dauer (s)</th>
<th>Abrechnung (min)</th><th>Betrag (EUR)</th><th>Verbindungs-ID</th></tr>
<tr><td>29.03.2026</td><td>02:30:00</td><td>030 1234567</td><td>0151 23456789</td><td>abgehend</td><td>75</td>
<td>2</td><td>0,090000</td><td>RW-1</td></tr>
<tr><td>25.10.2026</td><td>02:30:00</td><td>030 1234567</td><td>00 44 20 7946 0958</td><td>abgehend</td>
<td>59</td><td>1</td><td>0,080000</td><td>RW-2</td></tr>
<tr><td>01.03.2026</td><td>12:00:00</td><td>030&nbsp;1234567</td><td>089 1234567</td><td>ankommend</td>
<td>3.600</td><td>60</td><td>1.234,567800</td><td>RW-3</td></tr>
<tr><td>01.03.2026</td><td>12:05:00</td><td>030 1234567</td><td>089 1234567</td><td>abgehend</td><td>30</td>
<td>1</td><td>0.012</td><td>RW-4</td></tr>
<tr><td colspan="7">Summe</td><td>1.234,747800</td><td></td></tr>
</table></body></html>
"""
GENERIC = (  # tab-separated canonical columns, one carrier per row, UTC
    "carrier\tstart_time\tsource_number\tdestination_number\tbilled_duration_s\tcost\n"
    "Vantage\t2026-03-15T10:00:00Z\t+12125550100\t+16465550199\t60\t0.010000\n"
    "Vantage\t2026-03-15 11:00:00\t12125550100\t442079460958\t61\t0.010167\n"
    "\t2026-03-15T12:00:00+01:00\t2125550100\t6465550199\t30\t0.005\n"
)


def _meridian(path: Path) -> None:
    """A workbook as Meridian's portal exports it: a summary sheet, then the calls under a title, Excel-typed."""
    write_workbook(path, [["Meridian Networks", "Invoice INV-7781"], ["Total due", 0.0843]], "Calls", [
        ["Meridian Networks - usage detail"],
        [],
        ["Invoice", "Call Start (PT)", "Calling Number", "Called Number", "Talk Min", "Billed Min", "Amount",
         "Our Ref"],
        ["INV-7781", datetime(2026, 3, 8, 1, 59), 4155550100, 14155550123, 2.35, 2.4, 0.0216, "MED-000010"],
        ["INV-7781", datetime(2026, 3, 8, 2, 15), "(415) 555-0100", "+44 20 7946 0958", "0.75", 0.8, 0.048, None],
        ["INV-7781", datetime(2026, 11, 1, 1, 45), 4155550100, 4155550123, 1, 1.0, 0.009, None],
        [None] * 8,
        ["INV-7781", "2026-03-10 08:00:00", 4155550100, 4155550123, 1.1, "1.1", "0.0099", None],
    ])


@pytest.fixture(scope="module")
def shipped(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, DataFrame]]:
    """The five shipped carriers' files, ingested once with `telco-ra ingest` into a fresh table."""
    root = tmp_path_factory.mktemp("ingest")
    inbox = root / "inbox"
    inbox.mkdir()
    (inbox / "kestrel_2026-03.csv").write_bytes(KESTREL.encode())
    (inbox / "ALB-INV-88123.txt").write_text(ALBION)
    (inbox / "Rheinwelle_Export_2026-03.xls").write_text(RHEINWELLE)
    (inbox / "calls_export.tsv").write_text(GENERIC)
    _meridian(inbox / "meridian_march.xlsx")
    conf = ingest_conf(root, CARRIERS)
    assert main(["ingest", "--conf", str(conf), "--period", "2026-03", str(inbox)]) == 0
    yield root, spark.read.format("delta").load(str(root / "lake" / "carrier_invoice_line"))


def _utc(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text).replace(tzinfo=UTC)


def _lines(table: DataFrame, layout: str) -> dict[int, dict[str, Any]]:
    """The layout's lines by source_row; instants as aware UTC datetimes whatever the host's zone."""
    rows = table.where(F.col("layout") == layout).select(
        "*", F.unix_micros("start_time").alias("_t"), F.unix_micros("start_time_alt").alias("_alt")).collect()
    out = {}
    for row in rows:
        line = row.asDict()
        line["start_time"], line["start_time_alt"] = micros_to_utc(line.pop("_t")), micros_to_utc(line.pop("_alt"))
        out[line["source_row"]] = line
    return out


FIELDS = ("start_time", "start_time_alt", "time_rule", "direction", "source_number", "destination_number",
          "duration_s", "billed_duration_s", "cost")


def _check(line: dict[str, Any], expected: tuple[Any, ...]) -> None:
    start, alt, rule, direction, source, destination, duration, billed, cost = expected
    want = (_utc(start), _utc(alt), rule, direction, source, destination, duration, billed,
            None if cost is None else Decimal(cost))
    assert tuple(line[f] for f in FIELDS) == want, line


def test_table_has_the_contract_columns_and_types(shipped: tuple[Path, DataFrame]) -> None:
    _, table = shipped
    assert table.schema == CARRIER_INVOICE_LINE
    contract = ("line_id carrier layout invoice_id start_time start_time_alt direction source_number "
                "destination_number duration_s billed_duration_s cost currency call_id record_id source_file "
                "source_sha256 source_row parse_error ingested_at").split()
    assert table.columns[:len(contract)] == contract
    assert dict(table.dtypes)["cost"] == "decimal(18,6)"


def test_kestrel_csv(shipped: tuple[Path, DataFrame]) -> None:
    root, table = shipped
    lines = _lines(table, "kestrel-csv")
    assert sorted(lines) == [1, 2, 3, 4, 5, 6, 7, 8]
    # 23:15 EST (UTC-5) is 04:15Z the next day; whole billed minutes become seconds.
    _check(lines[1], ("2026-03-08 04:15:00", None, None, "MO", "+12125550100", "+16465550199", 61, 120, "0.0240"))
    # 02:30 does not exist in New York on 8 March: shifted by the gap to 03:30 EDT (UTC-4) = 07:30Z. 011 is the
    # US international prefix.
    _check(lines[2], ("2026-03-08 07:30:00", None, "SPRING_FORWARD_SHIFTED", "MO", "+12125550100", "+442079460958",
                      30, 60, "0.0350"))
    # 01:30 happens twice on 1 November: 05:30Z (EDT) first, 06:30Z (EST) the other.
    _check(lines[3], ("2026-11-01 05:30:00", "2026-11-01 06:30:00", "FALL_BACK_AMBIGUOUS", "MO", "+12125550100",
                      "+16465550199", 59, 60, "0.0120"))
    _check(lines[7], ("2026-03-10 13:00:00", None, None, "MT", "+12125550100", "+16465550199", 125, 180, "1000.1"))
    first = lines[1]
    assert (first["carrier"], first["currency"], first["call_id"], first["record_id"], first["source_file"]) == (
        "Kestrel", "USD", "K-1001", "MED-000001", "kestrel_2026-03.csv")
    assert lines[2]["record_id"] is None and first["invoice_id"] is None and first["invoice_period"] == "2026-03"
    sha = hashlib.sha256(KESTREL.encode()).hexdigest()
    assert first["source_sha256"] == sha
    assert first["line_id"] == hashlib.sha256(f"{sha}:1".encode()).hexdigest()
    assert all(lines[n]["parse_error"] is None for n in (1, 2, 3, 7, 8))


def test_bad_rows_are_kept_with_parse_error(shipped: tuple[Path, DataFrame]) -> None:
    _, table = shipped
    lines = _lines(table, "kestrel-csv")
    assert lines[4]["parse_error"] == "start_time '25:61:00' is not a time of day (%m/%d/%Y / %H:%M:%S)"
    assert lines[4]["start_time"] is None and lines[4]["cost"] == Decimal("0.012")
    # The unreadable number is masked in the message, as everywhere a person reads.
    assert lines[5]["parse_error"] == "destination_number is not a phone number (***/A)"
    assert lines[5]["destination_number"] is None
    assert lines[6]["parse_error"] == "cost 'TBD' is not a number"
    assert lines[6]["cost"] is None and lines[6]["billed_duration_s"] == 60
    # Three here, two in the Rheinwelle file, one in the generic one; every other line reads cleanly.
    assert table.where(F.col("parse_error").isNotNull()).count() == 6


def test_albion_semicolons_title_lines_and_london_dst(shipped: tuple[Path, DataFrame]) -> None:
    _, table = shipped
    lines = _lines(table, "albion-ssv")
    assert sorted(lines) == [1, 2, 3, 4]           # the two title lines and the header are not data rows
    _check(lines[1], ("2026-03-29 00:59:59", None, None, "MO", "+442079460000", "+447700900123", 45, 45,
                      "0.024"))
    # London springs from 01:00 GMT to 02:00 BST: 01:30 is shifted to 02:30 BST = 01:30Z. 00 is the UK's
    # international prefix, 0 its trunk prefix.
    _check(lines[2], ("2026-03-29 01:30:00", None, "SPRING_FORWARD_SHIFTED", "MO", "+442079460000", "+442079460958",
                      150, 150, "0.020"))
    # 01:30 on 25 October happens in BST (00:30Z) and again in GMT (01:30Z).
    _check(lines[3], ("2026-10-25 00:30:00", "2026-10-25 01:30:00", "FALL_BACK_AMBIGUOUS", "MO", "+442079460000",
                      "+12125550100", 60, 60, "0.015"))
    _check(lines[4], ("2026-10-25 02:30:00", None, None, "MT", "+442079460000", "+442079460958", 12, 30, "0.004"))
    assert lines[3]["call_id"] == "ALB-3" and lines[3]["currency"] == "GBP"


def test_meridian_xlsx_typed_cells_and_decimal_minutes(shipped: tuple[Path, DataFrame]) -> None:
    _, table = shipped
    lines = _lines(table, "meridian-xlsx")
    assert sorted(lines) == [1, 2, 3, 5]          # row 4 of the data is blank: not a line, not renumbered
    # Excel date-time 01:59 PST (UTC-8); 2.35 min = 141 s, 2.4 min = 144 s; the double 0.0216 is the text 0.0216.
    _check(lines[1], ("2026-03-08 09:59:00", None, None, "MO", "+14155550100", "+14155550123", 141, 144, "0.0216"))
    _check(lines[2], ("2026-03-08 10:15:00", None, "SPRING_FORWARD_SHIFTED", "MO", "+14155550100",
                      "+442079460958", 45, 48, "0.048"))
    _check(lines[3], ("2026-11-01 08:45:00", "2026-11-01 09:45:00", "FALL_BACK_AMBIGUOUS", "MO", "+14155550100",
                      "+14155550123", 60, 60, "0.009"))
    _check(lines[5], ("2026-03-10 15:00:00", None, None, "MO", "+14155550100", "+14155550123", 66, 66, "0.0099"))
    assert {line["invoice_id"] for line in lines.values()} == {"INV-7781"}
    assert lines[1]["record_id"] == "MED-000010" and lines[2]["record_id"] is None
    assert all(line["parse_error"] is None for line in lines.values())


def test_rheinwelle_html_saved_as_xls(shipped: tuple[Path, DataFrame]) -> None:
    _, table = shipped
    lines = _lines(table, "rheinwelle-html")
    assert sorted(lines) == [1, 2, 3, 4, 5]
    # Berlin springs from 02:00 CET to 03:00 CEST: 02:30 -> 03:30 CEST = 01:30Z. German trunk prefix 0.
    _check(lines[1], ("2026-03-29 01:30:00", None, "SPRING_FORWARD_SHIFTED", "MO", "+49301234567", "+4915123456789",
                      75, 120, "0.09"))
    _check(lines[2], ("2026-10-25 00:30:00", "2026-10-25 01:30:00", "FALL_BACK_AMBIGUOUS", "MO", "+49301234567",
                      "+442079460958", 59, 60, "0.08"))
    # Decimal commas and dotted thousands: 3.600 s, 1.234,5678 EUR.
    _check(lines[3], ("2026-03-01 11:00:00", None, None, "MT", "+49301234567", "+49891234567", 3600, 3600,
                      "1234.5678"))
    # '0.012' in a file with decimal commas is 12 or 0.012: refused, not guessed.
    assert lines[4]["parse_error"] == "cost '0.012' is not a number"
    assert lines[4]["cost"] is None
    # The total row is kept (nothing is dropped silently) and says why it is not a call.
    assert lines[5]["parse_error"] == ("source_number is empty; destination_number is empty; start_time is empty; "
                                       "direction is empty; billed_duration is empty")
    assert lines[1]["call_id"] == "RW-1" and lines[1]["currency"] == "EUR"


def test_generic_fallback_tab_separated(shipped: tuple[Path, DataFrame]) -> None:
    _, table = shipped
    lines = _lines(table, "generic-csv")
    _check(lines[1], ("2026-03-15 10:00:00", None, None, "MO", "+12125550100", "+16465550199", None, 60, "0.01"))
    # Naive ISO is UTC in this layout; bare international digits are read as E.164 without its plus.
    _check(lines[2], ("2026-03-15 11:00:00", None, None, "MO", "+12125550100", "+442079460958", None, 61,
                      "0.010167"))
    # An explicit offset is honoured: 12:00+01:00 is 11:00Z.
    assert lines[3]["start_time"] == _utc("2026-03-15 11:00:00")
    assert lines[3]["carrier"] is None and lines[3]["parse_error"] == "carrier is empty (carrier)"
    assert lines[1]["carrier"] == "Vantage"


def test_minutes_seconds_and_decimal_minutes(shipped: tuple[Path, DataFrame]) -> None:
    _, table = shipped
    billed = {(r["layout"], r["source_row"]): r["billed_duration_s"]
              for r in table.select("layout", "source_row", "billed_duration_s").collect()}
    assert billed[("kestrel-csv", 7)] == 180            # "3" minutes
    assert billed[("albion-ssv", 2)] == 150             # "150" seconds
    assert billed[("meridian-xlsx", 5)] == 66           # "1.1" decimal minutes
    assert billed[("rheinwelle-html", 3)] == 3600       # "60" minutes


def test_four_decimal_cost_is_exact(shipped: tuple[Path, DataFrame]) -> None:
    _, table = shipped
    lines = _lines(table, "kestrel-csv")
    # Three billed minutes at Kestrel's 0.0120 a minute: the carrier bills 0.0360, exactly what the deck says...
    assert lines[8]["billed_duration_s"] == 180 and lines[8]["cost"] == Decimal("0.0360") == 3 * Decimal("0.0120")
    # ...which a float comparison would call a variance.
    assert 3 * 0.0120 != 0.0360
    clean = table.where((F.col("layout") == "kestrel-csv") & F.col("parse_error").isNull())
    total = clean.agg(F.sum("cost")).first()
    assert total is not None and total[0] == Decimal("1000.207000")


def test_same_bytes_again_add_nothing(spark: SparkSession, shipped: tuple[Path, DataFrame]) -> None:
    root, _ = shipped
    out = ingest_again(spark, root, "carrier_invoice_line", Path("kestrel_2026-03.csv"))
    assert out.count("already ingested") == 5 and "same bytes as kestrel_2026-03.csv" in out


OSPREY_LAYOUT = """\
# A carrier no code knows: written by a user, dropped in a folder, used as is.
layout: osprey-psv
kind: call_invoice
carrier: Osprey
recognize: ["Osprey Call Ref", "Dest"]
timezone: America/Chicago
phone_region: US
columns: {start: "Start", source_number: "Orig", destination_number: "Dest", billed_duration: "Secs",
          cost: "Cost", call_id: "Osprey Call Ref", record_id: "Cust Ref"}
formats: {start: "%Y%m%d %I:%M %p"}
currency: USD
rates: {increment_s: 6, minimum_s: 6, cost_places: 4, per_minute: {"1": "0.0090", default: "0.0500"}}
"""
OSPREY = (
    "Osprey Call Ref|Start|Orig|Dest|Secs|Cost|Cust Ref\n"
    "O-1|20260305 9:15 AM|312-555-0100|312-555-0199|60|$0.1000|MED-42\n"
    "O-2|20260305 2:05 PM|312-555-0100|312-555-0199|66|$0.2000|\n"
    "O-3|20260306 12:00 AM|312-555-0100|011 33 1 42 68 53 00|6|($0.0070)|\n"
    "O-4|20260306 1:00 AM|312-555-0100|3125550199|6|0.0010|extra|field\n"
    "O-5|20260306 1:30 AM|312-555-0100|3125550199|6|123456789012.345678|\n"
)


def test_user_layout_for_a_new_carrier_ingests(spark: SparkSession, tmp_path: Path) -> None:
    carriers = tmp_path / "my-carriers"
    carriers.mkdir()
    (carriers / "osprey.yaml").write_text(OSPREY_LAYOUT)
    invoice = tmp_path / "OSP 2026-03 [final].psv"           # glob characters in the name are just characters
    invoice.write_text(OSPREY)
    assert main(["ingest", "--conf", str(ingest_conf(tmp_path, carriers)), str(invoice)]) == 0
    table = spark.read.format("delta").load(str(tmp_path / "lake" / "carrier_invoice_line"))
    lines = _lines(table, "osprey-psv")
    # 9:15 AM CST (UTC-6); a credit in accounting parentheses; 011 from the US to France.
    _check(lines[1], ("2026-03-05 15:15:00", None, None, "MO", "+13125550100", "+13125550199", None, 60, "0.1"))
    _check(lines[2], ("2026-03-05 20:05:00", None, None, "MO", "+13125550100", "+13125550199", None, 66, "0.2"))
    _check(lines[3], ("2026-03-06 06:00:00", None, None, "MO", "+13125550100", "+33142685300", None, 6, "-0.007"))
    assert (lines[1]["carrier"], lines[1]["call_id"], lines[1]["record_id"]) == ("Osprey", "O-1", "MED-42")
    # A row with a field too many is kept, and says so.
    assert lines[4]["parse_error"] == "malformed row: its fields do not line up with the file's 7 columns"
    # All 18 digits decimal(18,6) holds, to the last place: a double keeps 15 to 17, and Spark's cast of one back
    # to a decimal gives 123456789012.345670.
    assert lines[5]["cost"] == Decimal("123456789012.345678")
    assert Decimal(repr(float("123456789012.345678"))) != Decimal("123456789012.345678")
    total = table.where(F.col("parse_error").isNull() & (F.col("cost") < 1)).agg(F.sum("cost")).first()
    assert total is not None and total[0] == Decimal("0.293000")
