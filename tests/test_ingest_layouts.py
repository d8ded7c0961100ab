"""Carrier layouts and file recognition (CONTRACT section 6): no Spark is started by any test here.

A bad layout, an unknown file and an unreadable file all exit 2 with a message naming the file and what is wrong,
before Spark starts (these tests would take many seconds if it did).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from factories import ingest_conf
from jobs.cli import main
from jobs.ingest.layouts import LayoutError, load_layout, load_layouts, spark_pattern
from jobs.ingest.recognize import Grid, UnknownLayout, recognize

REPO = Path(__file__).resolve().parent.parent
CARRIERS = REPO / "conf" / "carriers"

KESTREL_HEADER = "Call Date,Call Time (ET),Orig TN,Term TN,Dir,DURATION_SEC,Billed Mins,Charge USD,Ref,CALL_ID"


def test_shipped_layouts_load() -> None:
    everything = load_layouts(CARRIERS)
    layouts = {name: layout for name, layout in everything.items() if layout.kind == "call_invoice"}
    assert sorted(layouts) == ["albion-ssv", "generic-csv", "kestrel-csv", "meridian-xlsx", "rheinwelle-html"]
    assert sorted(n for n, lay in everything.items() if lay.kind == "line_bill") == [
        "cobalt-xlsx", "frontera-csv", "harbor-html", "relay2go-csv", "tidewater-csv"]
    zones = {layout.timezone for layout in layouts.values()}
    assert {"America/New_York", "Europe/London"} <= zones
    assert {layout.unit("billed_duration") for layout in layouts.values()} == {"seconds", "minutes",
                                                                               "decimal_minutes"}
    assert {layout.rates.cost_places for layout in layouts.values()} >= {4, 6}


@pytest.mark.parametrize(("fmt", "pattern"), [
    ("%m/%d/%Y", "M'/'d'/'yyyy"),
    ("%d.%m.%Y %H:%M:%S", "d'.'M'.'yyyy' 'H':'m':'s"),
    ("%Y%m%d%H%M", "yyyyMMddHHmm"),         # fields that touch get fixed widths
    ("%Y%m%d %I:%M %p", "yyyyMMdd' 'h':'m' 'a"),
    ("%I:%M %p", "h':'m' 'a"),
    ("%b %d, %Y", "MMM' 'd', 'yyyy"),
    ("%Y-%m-%dT%H:%M:%S.%f", "yyyy'-'M'-'d'T'H':'m':'s'.'SSSSSS"),
    ("%d/%m/%y 100%%", "d'/'M'/'yy' 100''%'"),
])
def test_strptime_formats_become_spark_patterns(fmt: str, pattern: str) -> None:
    assert spark_pattern(fmt) == pattern


def _layout(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "osprey.yaml"
    path.write_text(text)
    return path


VALID = """\
layout: osprey-psv
kind: call_invoice
carrier: Osprey
recognize: ["Osprey Call Ref", "Dest"]
timezone: America/Chicago
columns: {start: "Start", destination_number: "Dest", billed_duration: "Secs", cost: "Cost"}
currency: USD
rates: {increment_s: 6, minimum_s: 6, cost_places: 4, per_minute: {default: "0.0100"}}
"""


@pytest.mark.parametrize(("change", "message"), [
    (("timezone: America/Chicago", "timezone: US/Centre"),
     "timezone: 'US/Centre' is not an IANA time zone"),
    (("cost: \"Cost\"}", "cost: \"Cost\", price: \"Price\"}"),
     "columns.price: unknown key (allowed: billed_duration, call_id, cost, destination_number, direction, "
     "duration, invoice_id, record_id, source_number, start, start_date, start_time)"),
    (("currency: USD", "currency: USD\nunits: {billed_duration: hours}"),
     "units.billed_duration: 'hours' is not one of seconds, minutes, decimal_minutes"),
    (("currency: USD", "currency: USD\nformats: {start: \"%d/%m/%Y %H:%M %Z\"}"),
     "formats.start: '%d/%m/%Y %H:%M %Z': %Z is not a directive ingest can read"),
    (("start: \"Start\", ", ""), "columns.start: missing (required: start, or start_date and start_time)"),
    (("cost_places: 4", "cost_places: 8"), "rates.cost_places: 8 is not a whole number 0..6"),
    (("{default: \"0.0100\"}", "{\"+44\": \"0.0100\"}"),
     "rates.per_minute.+44: not an E.164 digit prefix"),
    (("kind: call_invoice", "kind: call_invoices"),
     "kind: 'call_invoices': ingest reads call_invoice layouts (carrier invoices, CONTRACT section 6) and line_bill "
     "layouts (carrier bills, section 9)"),
    (("currency: USD", "currency: USD\ndirection: {MO: [OUT]}"),
     "direction: words given but columns.direction is missing (or write direction: MO)"),
])
def test_bad_layout_names_file_key_and_value(tmp_path: Path, change: tuple[str, str], message: str) -> None:
    assert change[0] in VALID
    path = _layout(tmp_path, VALID.replace(*change))
    with pytest.raises(LayoutError) as caught:
        load_layout(path)
    assert str(caught.value).startswith(f"{path}: ")
    assert message in str(caught.value)


def test_line_bill_layouts_share_the_folder(tmp_path: Path) -> None:
    _layout(tmp_path, VALID)
    (tmp_path / "acme-bill.yaml").write_text(
        "layout: acme-bill\nkind: line_bill\ncarrier: Acme\nrecognize: [MDN, Acme Bill]\n"
        "columns: {bill_id: Acme Bill, phone: MDN}\ncurrency: USD\n")
    layouts = load_layouts(tmp_path)
    assert {name: layout.kind for name, layout in layouts.items()} == {"osprey-psv": "call_invoice",
                                                                       "acme-bill": "line_bill"}


def test_two_layouts_one_set_of_headers_are_refused(tmp_path: Path) -> None:
    _layout(tmp_path, VALID)
    (tmp_path / "osprey2.yaml").write_text(VALID.replace("osprey-psv", "osprey-two").replace(
        '["Osprey Call Ref", "Dest"]', '["dest", "OSPREY call-ref"]'))
    with pytest.raises(LayoutError, match="the same headers recognise osprey-psv"):
        load_layouts(tmp_path)


def test_headers_are_compared_ignoring_case_spaces_and_punctuation() -> None:
    layouts = load_layouts(CARRIERS)
    rows = [["Kestrel Telecom - invoice 2026-03"], [],
            ["call date", "CALL TIME ET", "orig_tn", "Term-TN", "DIR", "Duration Sec", "BILLED MINS", "charge (usd)",
             "ref", "call id"],
            ["03/01/2026", "10:00:00", "2125550100", "6465550199", "OUT", "60", "1", "0.0120", "K1", ""]]
    match = recognize(Path("march.csv"), [Grid("delimiter ','", rows)], layouts)
    assert match.layout.name == "kestrel-csv"
    assert match.header_row == 2                  # the title rows above the header are not data
    assert match.positions["cost"] == 7 and match.positions["record_id"] == 9


def test_unknown_file_names_headers_and_closest_layout() -> None:
    layouts = load_layouts(CARRIERS)
    rows = [["Call Date", "Call Time (ET)", "Orig TN", "Term TN", "Billed Minutes", "Charge USD"]]
    with pytest.raises(UnknownLayout) as caught:
        recognize(Path("kestrel_april.csv"), [Grid("delimiter ','", rows)], layouts)
    assert str(caught.value) == (
        f"kestrel_april.csv: (layout): no carrier layout recognises this file; headers seen: 'Call Date', "
        f"'Call Time (ET)', 'Orig TN', 'Term TN', 'Billed Minutes', 'Charge USD'; closest layout: kestrel-csv "
        f"({CARRIERS / 'kestrel.yaml'}), which lacks 'Billed Mins'")


def test_recognised_file_lacking_a_mapped_column_is_refused() -> None:
    layouts = load_layouts(CARRIERS)
    rows = [["Call Date", "Call Time (ET)", "Orig TN", "Dir", "DURATION_SEC", "Billed Mins", "Charge USD", "Ref",
             "CALL_ID"]]
    with pytest.raises(UnknownLayout, match="recognised as layout kestrel-csv .* but it has no column 'Term TN' "
                       r"\(columns.destination_number\)"):
        recognize(Path("k.csv"), [Grid("delimiter ','", rows)], layouts)


def _conf(tmp_path: Path, carriers: Path = CARRIERS) -> Path:
    return ingest_conf(tmp_path, carriers)


def test_unknown_layout_exits_2_and_writes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = tmp_path / "in" / "kestrel.csv"
    good.parent.mkdir()
    good.write_text(KESTREL_HEADER + "\n03/01/2026,10:00:00,2125550100,6465550199,OUT,60,1,0.0120,K1,\n")
    unknown = tmp_path / "in" / "zz_unknown.csv"
    unknown.write_text("Datum;Zeit;Von;Nach;Minuten;Preis\n01.03.2026;10:00;030 1234567;089 7654321;1;0,01\n")
    code = main(["ingest", "--conf", str(_conf(tmp_path)), str(tmp_path / "in")])
    err = capsys.readouterr().err
    assert code == 2
    assert (f"telco-ra: {unknown}: (layout): no carrier layout recognises this file; headers seen: 'Datum', "
            "'Zeit', 'Von', 'Nach', 'Minuten', 'Preis'; closest layout: rheinwelle-html") in err
    assert "which lacks 'B-Nummer', 'Betrag (EUR)'" in err
    assert not (tmp_path / "lake").exists()     # the good file before it was not written either


def test_binary_xls_and_empty_files_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    xls = tmp_path / "old.xls"
    xls.write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(504))
    assert main(["ingest", "--conf", str(_conf(tmp_path)), str(xls)]) == 2
    assert "old.xls: (file): is a binary Excel 97-2003 workbook" in capsys.readouterr().err
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    assert main(["ingest", "--conf", str(_conf(tmp_path)), str(empty)]) == 2
    assert "empty.csv: (file): is empty" in capsys.readouterr().err


def test_bad_period_and_missing_table_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    conf = _conf(tmp_path)
    assert main(["ingest", "--conf", str(conf), "--period", "2026-3", str(tmp_path)]) == 2
    assert "--period: 2026-3: expected YYYY-MM" in capsys.readouterr().err
    conf.write_text(conf.read_text().replace("carrier_invoice_line:", "cdr:"))
    assert main(["ingest", "--conf", str(conf), str(tmp_path)]) == 2
    assert ("tables: names none of carrier_invoice_line, carrier_bill_line: telco-ra ingest appends carrier invoice "
            "files to the first, carrier bill files to the second") in capsys.readouterr().err
    invoice = tmp_path / "in" / "kestrel.csv"
    invoice.parent.mkdir()
    invoice.write_text(KESTREL_HEADER + "\n03/01/2026,10:00:00,2125550100,6465550199,OUT,60,1,0.0120,K1,\n")
    conf.write_text(conf.read_text().replace("cdr:", "carrier_bill_line:"))
    assert main(["ingest", "--conf", str(conf), str(invoice)]) == 2
    assert (f"tables.carrier_invoice_line: missing: telco-ra ingest appends the lines of {invoice} (layout "
            "kestrel-csv, a call_invoice layout) to this table") in capsys.readouterr().err


def test_a_broken_layout_in_the_folder_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    carriers = tmp_path / "carriers"
    carriers.mkdir()
    (carriers / "osprey.yaml").write_text(VALID.replace("timezone: America/Chicago", "timezone: Chicago"))
    invoice = tmp_path / "osprey.psv"
    invoice.write_text("Osprey Call Ref|Start|Dest|Secs|Cost\nO1|2026-03-01 10:00|3125550100|60|0.0100\n")
    assert main(["ingest", "--conf", str(_conf(tmp_path, carriers)), str(invoice)]) == 2
    assert f"{carriers / 'osprey.yaml'}: timezone: 'Chicago' is not an IANA time zone" in capsys.readouterr().err
