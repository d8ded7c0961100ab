"""A synthetic carrier month (CONTRACT section 6): outbound voice CDRs carried by each carrier that has a
call_invoice layout, the carriers' raw invoice files written in each layout's own shape (delimiter, title lines,
local zone, date and time formats, units, number dialling, decimal mark, XLSX or HTML saved as .xls), every outcome
of both sides of `carrier-invoice-vs-cdr` planted, and the ground truth.

Why files and not rows: the control's input is what `telco-ra ingest` makes of the carriers' files, so the truth
must survive recognition, parsing, the local-time-to-UTC rules and number normalisation. The files are written from
the layouts themselves (`conf/carriers/*.yaml`): a layout a user adds for a new carrier gets its synthetic file with
no code change. A line's id is known before ingest (sha256 of the file's SHA-256 and its data row, as ingest makes
it), so the truth names every record by its side's own id (jobs/score.py scores such a truth by record_id).

Planted per carrier (call times are hours apart, so no two plants compete in the 10 s window):
MATCHED (one through our record id where the layout echoes it), MATCHED_ROUNDING_VARIANCE, COST_VARIANCE,
DUPLICATE_INVOICE_LINE (a later copy of a matched line), MISSING_IN_CDR, AMBIGUOUS_MATCH (two calls 3 s either side
of a line: both sides), MISSING_IN_INVOICE, QUARANTINED on both sides (an unreadable cost; a CDR without duration);
and, where the carrier's zone falls back in the cycle, a line at a local time of the repeated hour matched through
each of its two instants, and one whose two instants each have a call (AMBIGUOUS_MATCH). CDRs out of the control's
scope (inbound, SMS, a carrier with no layout) get no outcome and no truth.

Invoice files are small (a carrier's planted month is tens of lines, plus `clean` matched lines per layout): they
are written by the driver; CDRs and truth are Delta tables.
"""

from __future__ import annotations

import csv
import hashlib
import io
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from html import escape
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import phonenumbers
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.types import LongType, StringType, StructField, StructType, TimestampType

from jobs.ingest.layouts import Layout, load_layouts

CONTROL_POINT = "carrier-invoice-vs-cdr"
INVOICE_TABLE = "carrier_invoice_line"
CDR_SCHEMA = StructType([StructField(n, t, True) for n, t in (
    ("record_id", StringType()), ("source_file", StringType()), ("msisdn", StringType()),
    ("account_id", StringType()), ("service_type", StringType()), ("direction", StringType()),
    ("other_party", StringType()), ("start_time", TimestampType()), ("duration_s", LongType()),
    ("volume_bytes", LongType()), ("cycle_id", StringType()), ("received_at", TimestampType()),
    ("carrier", StringType()),
)])
TRUTH_SCHEMA = StructType([StructField(n, StringType(), True) for n in (
    "control_point_id", "side", "record_id", "expected_outcome", "table_name", "carrier")])

# Our subscribers per region, and destinations that fall under different prefixes of the shipped rate decks.
SOURCES = {"US": "+1212555", "GB": "+44207946", "DE": "+49301234"}
# destination stem -> digits that follow it
DESTINATIONS = (("+1646555", 4), ("+44207946", 4), ("+447700900", 3), ("+4989123", 5), ("+4915123456", 3),
                ("+33142685", 3))
NO_CARRIER_LAYOUT = "Osprey Wholesale"       # a carrier of ours with no layout: its CDRs are out of scope


@dataclass(frozen=True)
class CarrierParams:
    cycle_id: str = "2026-10"
    seed: int = 7
    clean: Mapping[str, int] = field(default_factory=dict)    # layout -> extra MATCHED lines (alert rates)

    @property
    def start(self) -> datetime:
        year, month = map(int, self.cycle_id.split("-"))
        return datetime(year, month, 1, tzinfo=UTC)

    @property
    def end(self) -> datetime:
        year, month = map(int, self.cycle_id.split("-"))
        return datetime(year + month // 12, month % 12 + 1, 1, tzinfo=UTC)


@dataclass
class _Line:
    start: datetime                 # UTC instant the carrier's clock shows (in its zone)
    source: str
    destination: str
    billed_s: int
    cost: Decimal | None
    duration_s: int
    call_id: str
    record_id: str | None = None
    bad_cost: bool = False
    outcome: str = ""


@dataclass
class _Month:
    cdrs: list[tuple[Any, ...]] = field(default_factory=list)
    truth: list[tuple[Any, ...]] = field(default_factory=list)
    files: dict[str, Path] = field(default_factory=dict)


def rate_for(layout: Layout, destination: str) -> Decimal:
    """The deck's rate of the longest prefix of the destination's digits (else its default)."""
    digits = destination.lstrip("+")
    best = max((p for p in layout.rates.per_minute if p != "default" and digits.startswith(p)), key=len, default=None)
    return layout.rates.per_minute[best if best is not None else "default"]


def expected_seconds(layout: Layout, duration_s: int) -> int:
    inc = layout.rates.increment_s
    return max(layout.rates.minimum_s, -(-duration_s // inc) * inc)


def expected_cost(layout: Layout, billed_s: int, destination: str) -> Decimal:
    exact = Decimal(billed_s) * rate_for(layout, destination) / Decimal(60)
    return exact.quantize(Decimal(1).scaleb(-layout.rates.cost_places), rounding=ROUND_HALF_UP)


def _fall_back_instants(zone: ZoneInfo, start: datetime, end: datetime) -> tuple[datetime, datetime] | None:
    """The two UTC instants of the local time 30 minutes into the first repeated hour in [start, end), if any."""
    t = start
    while t < end:
        before, after = (t - timedelta(hours=1)).astimezone(zone).utcoffset(), t.astimezone(zone).utcoffset()
        if before is not None and after is not None and after < before:        # the offset fell at t
            gap = before - after
            later = t + timedelta(minutes=30)
            return later - gap, later
        t += timedelta(hours=1)
    return None


def _plant(layout: Layout, params: CarrierParams, index: int, rng: random.Random) -> tuple[list[_Line],
                                                                                            list[tuple[Any, ...]],
                                                                                            list[tuple[Any, ...]]]:
    """(lines in file order, CDR rows, CDR truth rows) of one carrier's month."""
    assert layout.carrier is not None
    region = layout.phone_region or "US"
    carrier = layout.carrier
    lines: list[_Line] = []
    cdrs: list[tuple[Any, ...]] = []
    truth: list[tuple[Any, ...]] = []
    prefix = layout.name.split("-")[0][:3].upper()
    base = params.start + timedelta(days=2, hours=index * 3)
    msisdn = f"{SOURCES.get(region, '+1212555')}{1000 + index * 10:04d}"
    seq = iter(range(1, 10_000))
    inc, minimum = layout.rates.increment_s, layout.rates.minimum_s

    def cdr(start: datetime, destination: str, duration: int | None, outcome: str | None, **kw: Any) -> str:
        rid = f"MED-{prefix}-{next(seq):05d}"
        cdrs.append((rid, f"med_{params.cycle_id}_{prefix.lower()}.dat", msisdn, f"ACC-{prefix}", kw.get("service",
                     "VOICE"), kw.get("direction", "MO"), destination, start, duration, 0, params.cycle_id,
                     start + timedelta(hours=1), kw.get("carrier", carrier)))
        if outcome is not None:
            truth.append((CONTROL_POINT, "RIGHT", rid, outcome, "cdr", carrier))
        return rid

    slot = iter(range(100_000))
    # Plants spread over the cycle, at least 20 minutes apart (far beyond the 10 s window), at most 7 hours.
    slots = 20 + params.clean.get(layout.name, 0)
    spacing = max(timedelta(minutes=20), min(timedelta(hours=7), (params.end - base - timedelta(days=1)) / slots))

    def when() -> datetime:
        jitter = rng.randrange(0, int(spacing.total_seconds() // 2))
        return (base + spacing * next(slot) + timedelta(seconds=jitter)).replace(microsecond=0)

    def dest(i: int) -> str:
        stem, width = DESTINATIONS[i % len(DESTINATIONS)]
        return stem + f"{rng.randrange(10 ** (width - 1), 10 ** width)}"

    def exact_multiple(n: int) -> int:            # a duration the deck bills as it is
        return max(minimum, inc) * n if max(minimum, inc) % inc == 0 else inc * (-(-minimum // inc)) * n

    def line(start: datetime, destination: str, billed: int, cost: Decimal | None, duration: int, outcome: str,
             record_id: str | None = None, **kw: Any) -> _Line:
        made = _Line(start, msisdn, destination, billed, cost, duration, f"{prefix}-{len(lines) + 1:05d}",
                     record_id, outcome=outcome, **kw)
        lines.append(made)
        return made

    echoes = "record_id" in layout.columns
    # MATCHED: billed as long as the call, priced as agreed (the first through our record id where echoed)
    matched = []
    for i in range(3 + params.clean.get(layout.name, 0)):
        t, d, dur = when(), dest(i), exact_multiple(1 + i % 3)
        rid = cdr(t, d, dur, "MATCHED")
        matched.append(line(t + timedelta(seconds=rng.choice((-2, 0, 1))), d, dur, expected_cost(layout, dur, d),
                            dur, "MATCHED", rid if echoes and i == 0 else None))
    # MATCHED_ROUNDING_VARIANCE: the call is shorter than the billing step, billed up to it as agreed
    for i in range(2):
        t, d = when(), dest(i + 1)
        dur = max(1, minimum - 7) if minimum > 7 else inc * 2 + 7 if inc > 7 else inc + 1 + i
        if expected_seconds(layout, dur) == dur:
            dur = inc * 2 + 1
        billed = expected_seconds(layout, dur)
        rid = cdr(t, d, dur, "MATCHED_ROUNDING_VARIANCE")
        line(t, d, billed, expected_cost(layout, billed, d), dur, "MATCHED_ROUNDING_VARIANCE",
             rid if echoes and i == 0 else None)
    # COST_VARIANCE: priced above the deck, beyond max(0.01, 0.1%)
    t, d = when(), dest(3)
    dur = exact_multiple(2)
    rid = cdr(t, d, dur, "COST_VARIANCE")
    fair = expected_cost(layout, dur, d)
    line(t, d, dur, fair + max(Decimal("0.05"), fair / 2).quantize(Decimal(1).scaleb(-layout.rates.cost_places)),
         dur, "COST_VARIANCE")
    # MISSING_IN_CDR: a call we never made
    t = when()
    line(t, dest(4), exact_multiple(1), expected_cost(layout, exact_multiple(1), dest(4)), exact_multiple(1),
         "MISSING_IN_CDR")
    # AMBIGUOUS_MATCH: two calls to the same number, 3 s before and after the billed one
    t, d = when(), dest(5)
    cdr(t - timedelta(seconds=3), d, exact_multiple(1), "AMBIGUOUS_MATCH")
    cdr(t + timedelta(seconds=3), d, exact_multiple(1), "AMBIGUOUS_MATCH")
    line(t, d, exact_multiple(1), expected_cost(layout, exact_multiple(1), d), exact_multiple(1), "AMBIGUOUS_MATCH")
    # MISSING_IN_INVOICE: a call the carrier has not billed
    cdr(when(), dest(0), exact_multiple(1), "MISSING_IN_INVOICE")
    # QUARANTINED: a line whose cost cannot be read, and a CDR without a duration
    t = when()
    line(t, dest(1), exact_multiple(1), None, exact_multiple(1), "QUARANTINED", bad_cost=True)
    cdr(when(), dest(2), None, "QUARANTINED")
    # out of scope: inbound, SMS, a carrier with no layout
    cdr(when(), dest(0), 60, None, direction="MT")
    cdr(when(), dest(0), 0, None, service="SMS")
    cdr(when(), dest(0), 60, None, carrier=NO_CARRIER_LAYOUT)
    # the fall-back hour: a local time that happens twice
    instants = _fall_back_instants(ZoneInfo(layout.timezone), params.start, params.end)
    if instants is not None:
        earlier, later = instants
        dur = exact_multiple(1)
        for n, at in enumerate((later, earlier, earlier + timedelta(seconds=1))):
            d = dest(n)
            if n < 2:                      # one call, at one of the two instants: matched through it
                cdr(at, d, dur, "MATCHED")
                line(at, d, dur, expected_cost(layout, dur, d), dur, "MATCHED")
            else:                          # a call at each instant: both are candidates, neither wins
                cdr(at, d, dur, "AMBIGUOUS_MATCH")
                cdr(at + (later - earlier), d, dur, "AMBIGUOUS_MATCH")
                line(at, d, dur, expected_cost(layout, dur, d), dur, "AMBIGUOUS_MATCH")
    # DUPLICATE_INVOICE_LINE: the first matched line billed again at the end of the file
    first = matched[0]
    lines.append(_Line(first.start, first.source, first.destination, first.billed_s, first.cost, first.duration_s,
                       first.call_id, first.record_id, outcome="DUPLICATE_INVOICE_LINE"))
    return lines, cdrs, truth


# ------------------------------------------------------------------------------------------------------ rendering
def _number(e164: str, region: str) -> str:
    """As the carrier prints it: national format at home, the region's international dialling otherwise."""
    return phonenumbers.format_out_of_country_calling_number(phonenumbers.parse(e164), region)


def _duration(seconds: int, unit: str) -> str:
    if unit == "minutes" and seconds % 60 == 0:
        return str(seconds // 60)
    if unit == "decimal_minutes" and (seconds * 10) % 60 == 0:
        return str(Decimal(seconds) / Decimal(60))
    if unit == "seconds":
        return str(seconds)
    return f"{seconds // 60}:{seconds % 60:02d}"            # clock notation: read in any unit


def _cells(layout: Layout, ln: _Line) -> dict[str, Any]:
    """Canonical column -> cell text of one line, in the layout's conventions."""
    zone = ZoneInfo(layout.timezone)
    local = ln.start.astimezone(zone).replace(tzinfo=None)
    region = layout.phone_region or "US"
    cells: dict[str, Any] = {}
    for col in layout.columns:
        fmt = layout.formats.get(col)
        if col == "start":
            cells[col] = local.strftime(fmt) if fmt else local.isoformat(sep=" ")
        elif col == "start_date":
            cells[col] = local.strftime(fmt or "%Y-%m-%d")
        elif col == "start_time":
            cells[col] = local.strftime(fmt or "%H:%M:%S")
        elif col == "source_number":
            cells[col] = _number(ln.source, region)
        elif col == "destination_number":
            cells[col] = _number(ln.destination, region)
        elif col == "direction":
            cells[col] = layout.direction_words.get("MO", ("MO",))[0]
        elif col == "duration":
            cells[col] = _duration(ln.duration_s, layout.unit("duration"))
        elif col == "billed_duration":
            cells[col] = _duration(ln.billed_s, layout.unit("billed_duration"))
        elif col == "cost":
            text = "n/a" if ln.bad_cost or ln.cost is None else f"{ln.cost:.{layout.rates.cost_places}f}"
            cells[col] = text.replace(".", ",") if layout.decimal_mark == "," else text
        elif col == "call_id":
            cells[col] = ln.call_id
        elif col == "record_id":
            cells[col] = ln.record_id or ""
        elif col == "invoice_id":
            cells[col] = f"INV-{layout.name.upper()}"
    if layout.carrier_column:
        cells["_carrier"] = layout.carrier
    return cells


def _headers(layout: Layout) -> list[tuple[str, str]]:
    out = list(layout.columns.items())
    if layout.carrier_column:
        out.append(("_carrier", layout.carrier_column))
    return out


def _kind(layout: Layout) -> str:
    suffix = layout.name.rsplit("-", 1)[-1]
    return {"xlsx": "xlsx", "html": "html", "ssv": "ssv", "tsv": "tsv", "psv": "psv"}.get(suffix, "csv")


def _write_file(folder: Path, layout: Layout, lines: list[_Line], cycle_id: str) -> tuple[Path, str]:
    """The carrier's file for the cycle; returns its path and SHA-256."""
    kind = _kind(layout)
    headers = _headers(layout)
    rows = [[_cells(layout, ln).get(col, "") for col, _ in headers] for ln in lines]
    name = f"{layout.name}_{cycle_id}"
    if kind == "xlsx":
        import openpyxl

        path = folder / f"{name}.xlsx"
        book = openpyxl.Workbook()
        summary = book.active
        assert summary is not None
        summary.title = "Summary"
        summary.append([layout.description or layout.name, f"period {cycle_id}"])
        sheet = book.create_sheet("Calls")
        sheet.append([f"{layout.carrier} - usage detail {cycle_id}"])
        sheet.append([])
        sheet.append([h for _, h in headers])
        for ln, row in zip(lines, rows, strict=True):
            typed = []
            for (col, _), cell in zip(headers, row, strict=True):
                if col == "start" and layout.formats.get("start") is None:
                    typed.append(ln.start.astimezone(ZoneInfo(layout.timezone)).replace(tzinfo=None))
                else:
                    typed.append(cell)
            sheet.append(typed)
        book.save(path)
    elif kind == "html":
        path = folder / f"{name}.xls"
        head = "".join(f"<th>{escape(h)}</th>" for _, h in headers)
        body = "".join("<tr>" + "".join(f"<td>{escape(str(c))}</td>" for c in row) + "</tr>\n" for row in rows)
        path.write_text(f"<html><body><table><tr><td>{escape(layout.description or layout.name)} {cycle_id}</td>"
                        f"</tr></table>\n<table border=\"1\"><tr>{head}</tr>\n{body}</table></body></html>\n",
                        encoding="utf-8")
    else:
        delimiter = {"ssv": ";", "tsv": "\t", "psv": "|"}.get(kind, ",")
        buffer = io.StringIO()
        writer = csv.writer(buffer, delimiter=delimiter, lineterminator="\r\n" if kind == "csv" else "\n")
        if kind == "ssv":        # title lines above the header, as such exports have them
            writer.writerow([layout.description or layout.name] + [""] * (len(headers) - 1))
            writer.writerow([f"period {cycle_id}"] + [""] * (len(headers) - 1))
        writer.writerow([h for _, h in headers])
        writer.writerows(rows)
        path = folder / f"{name}.{'txt' if kind == 'ssv' else kind}"
        path.write_text(buffer.getvalue(), encoding="utf-8")
    return path, hashlib.sha256(path.read_bytes()).hexdigest()


def line_id(sha256: str, row: int) -> str:
    """As ingest makes it: sha256 of `<file SHA-256>:<1-based data row>`."""
    return hashlib.sha256(f"{sha256}:{row}".encode()).hexdigest()


def generate_carrier_month(spark: SparkSession, carriers: str | Path, out_dir: str | Path,
                           params: CarrierParams | None = None) -> dict[str, str]:
    """Write the invoice files (`<out>/invoices/`), the cdr and ground_truth Delta tables; returns name -> path.

    Example::

        paths = generate_carrier_month(spark, "conf/carriers", "/tmp/carrier", CarrierParams("2026-10"))
        # telco-ra ingest --conf C /tmp/carrier/invoices ; telco-ra run --ruleset rulesets/carrier_invoice_vs_cdr.yaml
    """
    params = params or CarrierParams()
    out = Path(out_dir)
    invoices = out / "invoices"
    invoices.mkdir(parents=True, exist_ok=True)
    rng = random.Random(params.seed)
    month = _Month()
    layouts = [lay for _, lay in sorted(load_layouts(carriers).items())
               if lay.kind == "call_invoice" and lay.carrier is not None]
    for index, layout in enumerate(layouts):
        lines, cdrs, truth = _plant(layout, params, index, rng)
        path, sha = _write_file(invoices, layout, lines, params.cycle_id)
        month.cdrs += cdrs
        month.truth += truth
        month.truth += [(CONTROL_POINT, "LEFT", line_id(sha, row), ln.outcome, INVOICE_TABLE, layout.carrier)
                        for row, ln in enumerate(lines, start=1)]
        month.files[layout.name] = path
    paths = {"invoices": str(invoices)}
    for name, rows, schema in (("cdr", month.cdrs, CDR_SCHEMA), ("ground_truth", month.truth, TRUTH_SCHEMA)):
        frame: DataFrame = spark.createDataFrame(rows, schema)
        paths[name] = str(out / name)
        frame.write.format("delta").mode("overwrite").option("overwriteSchema", "true").save(paths[name])
    return paths
