"""Synthetic carrier bills (CONTRACT section 9): the lines a generator decides on, written as a carrier's raw bill
file in a `kind: line_bill` layout's shape, for `telco-ra ingest` to read into carrier_bill_line.

Why files and not rows: the line audit's input is what ingest makes of the carriers' bills, so a generator's truth
must survive recognition by headers, number normalisation, ICCID clean-up, units and periods. The writer therefore
varies what ingest must cope with, chosen by the caller's `random.Random` (the same seed, the same bytes): each
phone cell in one of the formats carriers and CRM exports use (for US numbers the eight of seed 002: "(555)
123-4567", "+1 555-123-4567", "1.555.123.4567", "5551234567", "MTN: 555-123-4567", "sub: +1 (555) 123-4567",
"5551234567 ext 22", "555.123.4567 x100"), ICCIDs plain, in groups of four or dashed, usage sometimes with its unit
written in the cell, amounts with or without a currency symbol, typed spreadsheet cells, a BOM and CRLF or LF line
ends in text files. What a layout cannot carry is not written: a phone for a layout with no phone column (ICCIDs
only, like Frontera's), usage for one with no usage column; `as_ingested` says what the table will hold.

Example::

    layouts = line_bill_layouts("conf/carriers")
    lines = [BillLine("Tidewater Wireless", "BAN-1", "2026-03", "+15551234567", "89103000000000123456",
                      Decimal("1500"), Decimal("45.00"))]
    path, sha = write_bill_file(Path("/tmp/bills"), layouts[-1], lines, random.Random(7))
    bill_line_id(sha, 1)       # the line_id ingest gives that row
"""

from __future__ import annotations

import hashlib
import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import phonenumbers
from phonenumbers import PhoneNumberFormat

from jobs.ingest.layouts import LINE_BILL, USAGE_UNITS, Layout, header_key, load_layouts
from jobs.synthetic.files import form_of, line_id, write_grid

SYMBOLS = {"USD": "$", "GBP": "£", "EUR": "€"}
CARRIER = "_carrier"          # the reseller's provider column among the canonical ones


@dataclass(frozen=True)
class BillLine:
    carrier: str                 # provider (written to the carrier column of a reseller layout)
    bill_id: str
    bill_period: str             # YYYY-MM
    phone: str | None            # E.164, or None; rendered in a format of the layout's region
    iccid: str | None
    usage_mb: Decimal | None     # rendered in the layout's usage unit; ignored by a layout with no usage column
    amount: Decimal | None       # None -> blank cell
    phone_text: str | None = None  # exact cell text to write instead of rendering `phone` (edge cases)


def line_bill_layouts(carriers: str | Path) -> list[Layout]:
    """The folder's line_bill layouts, by name."""
    return [layout for _, layout in sorted(load_layouts(carriers).items()) if layout.kind == LINE_BILL]


def bill_line_id(sha256: str, row: int) -> str:
    """The line_id ingest gives data row `row` (1-based) of the file with this SHA-256 (the carrier-invoice
    scheme: sha256 of `<file SHA-256>:<row>`)."""
    return line_id(sha256, row)


def as_ingested(layout: Layout, line: BillLine) -> BillLine:
    """`line` as carrier_bill_line will hold it once written in `layout` and ingested: the layout's carrier unless
    it names a carrier column (then the line's, the layout's where the line names none), no phone or ICCID where
    it has no column for them, no usage where it has no usage column (`phone_text` is not interpreted: the phone
    it stands for is the caller's `phone`)."""
    own = layout.carrier or line.carrier
    return replace(line, carrier=(line.carrier or own) if layout.carrier_column else own,
                   phone=line.phone if "phone" in layout.columns else None,
                   iccid=line.iccid if "iccid" in layout.columns else None,
                   usage_mb=line.usage_mb if "usage" in layout.columns else None, phone_text=None)


def render_phone(e164: str, region: str, rng: random.Random) -> str:
    """An E.164 number as a bill or CRM export of `region` may print it, the format chosen by `rng`: at home in the
    region's national forms (the seed's eight for NANP numbers), abroad in international ones; sometimes with an
    extension or a label, which normalisation drops."""
    number = phonenumbers.parse(e164)
    ext = str(rng.randint(1, 9999))
    if number.country_code != phonenumbers.country_code_for_region(region):
        international = phonenumbers.format_number(number, PhoneNumberFormat.INTERNATIONAL)
        return rng.choice([phonenumbers.format_out_of_country_calling_number(number, region), international, e164,
                           f"Tel: {international}", f"{international} ext {ext}"])
    national = phonenumbers.format_number(number, PhoneNumberFormat.NATIONAL)
    if number.country_code == 1:
        digits = str(number.national_number)
        a, b, c = digits[:3], digits[3:6], digits[6:]
        return rng.choice([f"({a}) {b}-{c}", f"+1 {a}-{b}-{c}", f"1.{a}.{b}.{c}", f"{a}{b}{c}", f"MTN: {a}-{b}-{c}",
                           f"sub: +1 ({a}) {b}-{c}", f"{a}{b}{c} ext {ext}", f"{a}.{b}.{c} x{ext}"])
    return rng.choice([national, phonenumbers.format_number(number, PhoneNumberFormat.INTERNATIONAL), e164,
                       "".join(ch for ch in national if ch.isdigit()), f"Tel: {national}", f"{national} x{ext}"])


def _plain(value: Decimal, mark: str) -> str:
    """A decimal without exponent or trailing zeros, in the layout's decimal mark."""
    text = format(value.normalize(), "f") if value != 0 else "0"
    return text.replace(".", ",") if mark == "," else text


def _number_cell(value: Decimal, text: str, typed: bool) -> Any:
    """A spreadsheet number typed as Excel holds it (a double) when that is exact, else the text."""
    if typed and Decimal(repr(float(value))) == value:
        return float(value)
    return text


def _period_cell(layout: Layout, period: str, typed: bool, rng: random.Random) -> Any:
    year, month = map(int, period.split("-"))
    fmt = layout.formats.get("bill_period")
    day = rng.randint(1, 28) if fmt is not None and "%d" in fmt else 1
    if typed:                     # an Excel date: read back as ISO, which ingest accepts besides the format
        return datetime(year, month, day)
    return date(year, month, day).strftime(fmt) if fmt is not None else period


def _iccid_cell(iccid: str, rng: random.Random) -> str:
    style = rng.randrange(3)
    if style == 0:
        return iccid
    groups = [iccid[i:i + 4] for i in range(0, len(iccid), 4)]
    return (" " if style == 1 else "-").join(groups)


def _cells(layout: Layout, line: BillLine, form: str, rng: random.Random) -> dict[str, Any]:
    """Canonical column (and CARRIER) -> the cell of one line, in the layout's conventions."""
    region = layout.phone_region or "US"
    typed = form == "xlsx"
    mark = layout.decimal_mark
    cells: dict[str, Any] = {}
    for col in layout.columns:
        if col == "bill_id":
            cells[col] = line.bill_id
        elif col == "bill_period":
            cells[col] = _period_cell(layout, line.bill_period, typed and rng.random() < 0.3, rng)
        elif col == "phone":
            if line.phone_text is not None:
                cells[col] = line.phone_text
            elif line.phone is not None:
                text = render_phone(line.phone, region, rng)
                whole = typed and text.isdigit() and not text.startswith("0") and rng.random() < 0.5
                cells[col] = int(text) if whole else text
        elif col == "iccid" and line.iccid is not None:
            cells[col] = _iccid_cell(line.iccid, rng)
        elif col == "usage" and line.usage_mb is not None:
            unit = layout.usage_unit
            value = line.usage_mb / USAGE_UNITS[unit]
            text = _plain(value, mark)
            cells[col] = f"{text} {unit}" if rng.random() < 0.2 else _number_cell(value, text, typed)
        elif col == "amount" and line.amount is not None:
            cents = line.amount.quantize(Decimal("0.01"))
            text = f"{cents:f}" if cents == line.amount else _plain(line.amount, ".")
            text = text.replace(".", ",") if mark == "," else text
            symbol = SYMBOLS.get(layout.currency)
            if symbol and line.amount >= 0 and rng.random() < 0.3:
                cells[col] = symbol + text
            else:
                cells[col] = _number_cell(line.amount, text, typed)
    if layout.carrier_column:
        cells[CARRIER] = line.carrier
    return cells


def _header(layout: Layout) -> list[tuple[str, str]]:
    """(canonical column or '' for filler, header): the mapped columns, the reseller's carrier column, then the
    recognise headers that map to no column (a status, a circuit number), which every file of the layout has."""
    out = list(layout.columns.items())
    if layout.carrier_column:
        out.append((CARRIER, layout.carrier_column))
    mapped = {header_key(h) for _, h in out}
    out += [("", h) for h in layout.recognize if header_key(h) not in mapped]
    return out


def _filler(header: str, row: int) -> str:
    """A value for a recognise header that maps to no column: its words' initials and the row ('SCN-00001')."""
    initials = "".join(word[0] for word in re.split(r"[\W_]+", header) if word).upper()
    return f"{initials}-{row:05d}"


def write_bill_file(folder: Path, layout: Layout, lines: Sequence[BillLine], rng: random.Random) -> tuple[Path, str]:
    """Write `lines` in order (data row i+1 = lines[i]) as one file in the layout's format; return (path, sha256).

    The file is `<folder>/<layout>_<first line's period>_<first bill id>_<digest of the lines>.<suffix>`
    (created, or replaced when the same lines are written again); its shape is the layout's (`files.form_of`:
    csv, ssv, tsv, psv, xlsx or html saved as .xls).
    """
    if layout.kind != LINE_BILL:
        raise ValueError(f"layout {layout.name} ({layout.path}) is a {layout.kind} layout, not a line_bill one")
    if not lines:
        raise ValueError(f"no lines to write for layout {layout.name}: a bill has at least one line")
    form = form_of(layout)
    header = _header(layout)
    rows = []
    for n, line in enumerate(lines, start=1):
        cells = _cells(layout, line, form, rng)
        rows.append([cells.get(col, "") if col else _filler(h, n) for col, h in header])
    described = layout.description or layout.name
    first = lines[0]
    title: list[str] = []
    summary: list[Any] = []
    if form == "xlsx":
        summary, title = [described, f"period {first.bill_period}"], [f"{layout.carrier or described} - lines"]
    elif form in ("html", "ssv"):
        title = [f"{described} {first.bill_period}"]
    folder.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256(repr(list(lines)).encode()).hexdigest()[:10]
    stem = f"{layout.name}_{first.bill_period}_{''.join(ch for ch in first.bill_id if ch.isalnum())[:24]}_{digest}"
    return write_grid(folder, stem, form, [h for _, h in header], rows, title=title, summary=summary, sheet="Lines",
                      bom=form == "csv" and rng.random() < 0.5, line_end=rng.choice(("\r\n", "\n")))


def files_writer(folder: Path, layouts: Sequence[Layout], seed: int,
                 via: dict[str, str] | None = None) -> Callable[[Sequence[Any]], list[str]]:
    """A writer of a line month's bills as files (`jobs.synthetic.line_inventory_audit.WriteBills`): each
    (carrier, bill id)'s lines, in order, as one file in that carrier's own layout, or in the layout `via` names for
    it (a reseller's, whose rows name the provider); returns the line_id `telco-ra ingest` will give each line.
    Lines come as any object with BillLine's fields (the generator has its own copy of the type). A carrier with no
    layout is refused naming the layouts there are: a month written here must ingest whole."""
    by_name = {layout.name: layout for layout in layouts}
    own = {layout.carrier: layout for layout in layouts if not layout.carrier_column and layout.carrier}
    rng = random.Random(seed)

    def layout_of(carrier: str) -> Layout:
        name = (via or {}).get(carrier)
        layout = by_name.get(name) if name else own.get(carrier)
        if layout is None:
            raise ValueError(f"no line_bill layout for carrier {carrier!r}"
                             f"{f' (via {name!r})' if name else ''}: layouts {sorted(by_name)}")
        return layout

    def write(lines: Sequence[Any]) -> list[str]:
        folder.mkdir(parents=True, exist_ok=True)
        groups: dict[tuple[str, str], list[int]] = {}
        for i, line in enumerate(lines):
            groups.setdefault((line.carrier, line.bill_id), []).append(i)
        ids = [""] * len(lines)
        for (carrier, _), members in sorted(groups.items()):
            bill = [BillLine(**{f: getattr(lines[i], f) for f in BillLine.__dataclass_fields__}) for i in members]
            _, sha = write_bill_file(folder, layout_of(carrier), bill, rng)
            for row, i in enumerate(members, start=1):
                ids[i] = bill_line_id(sha, row)
        return ids

    return write
