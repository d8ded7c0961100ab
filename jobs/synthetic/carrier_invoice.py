"""A synthetic carrier month (CONTRACT section 6) built on a synthetic usage month: the carriers' raw invoice files
bill that month's outbound voice legs, each written in its layout's own shape (delimiter, title lines, local zone,
date and time formats, units, number dialling, decimal mark, XLSX or HTML saved as .xls), every outcome of both
sides of `carrier-invoice-vs-cdr` is planted, and the ground truth names every record of both sides in scope.

Why on the usage month: one synthetic month then serves usage-to-bill and carrier-invoice-vs-cdr alike, as a real
month does (the cdr table mediation delivers is the one both controls read). The usage month is generated with the
carriers of the invoice layouts (`usage_params`: `GeneratorParams.carriers` names them, plus `NO_CARRIER_LAYOUT`, a
carrier of ours with no layout, whose legs are out of the control's scope) in a month that crosses a DST change
(October: London and Berlin fall back on its last Sunday; November for the US zones).

Why files and not rows: the control's input is what `telco-ra ingest` makes of the carriers' files, so the truth
must survive recognition, parsing, the local-time-to-UTC rules and number normalisation. The files are written from
the layouts themselves (`conf/carriers/*.yaml`): a layout a user adds for a new carrier gets its synthetic file with
no code change. A line's id is known before ingest (sha256 of the file's SHA-256 and its data row, as ingest makes
it), so the truth names a line by its own id (`record_id`) and a CDR by its `gen_row_id` (jobs/score.py scores a
truth holding both; a CDR's own id may be null or repeated).

What each carrier's file bills (call times of plants are hours apart, so no two plants compete in the 10 s window):
- legs of the usage month, chosen Spark-side (a bounded, deterministic selection per carrier: by a hash of the
  seed and the record id, then the record id; never by row position): `clean` legs billed as agreed (MATCHED where
  the deck bills the call's own length, else MATCHED_ROUNDING_VARIANCE; the first through our record id where the
  layout echoes it), one leg priced above the deck (COST_VARIANCE) and the first clean leg billed again at the end
  of the file (DUPLICATE_INVOICE_LINE). Only a leg that is the one CDR of its call is billed (not a re-sent or
  re-recorded copy, not one of the usage month's ambiguous pairs, not a quarantined one), away from the fall-back
  hours;
- lines with no call of ours (MISSING_IN_CDR) and with an unreadable cost (QUARANTINED), from a number of ours that
  makes no call in the usage month;
- calls the plants need shaped specially, APPENDED to the usage month's cdr table in one separate Delta commit
  (replacing an earlier carrier month's, so a re-run is idempotent; their gen_row_id starts with `APPENDED`): two
  calls 3 s either side of a line (AMBIGUOUS_MATCH), a call without duration (QUARANTINED), and where the carrier's
  zone falls back in the cycle, a line at a local time of the repeated hour matched through each of its two
  instants, and one whose two instants each have a call (AMBIGUOUS_MATCH).
Every other in-scope leg of the usage month is MISSING_IN_INVOICE in the truth (the carrier billed a sample of the
month: under-billed, or bills late), or QUARANTINED where the run cannot read it (a null id, cycle, start or
duration, a number that is no number, a repeated record id after its first copy). Legs out of the control's scope
(inbound, SMS and DATA, the carrier with no layout) get no truth.

Invoice files are small (per carrier `clean` + a dozen lines): the driver writes them from the bounded selection it
collects; the usage legs' truth is derived Spark-side from the cdr table (it grows with the month).
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import phonenumbers
from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql.types import LongType, StringType, StructField, StructType, TimestampType

from jobs.ingest.layouts import Layout, load_layouts
from jobs.synthetic.files import form_of, line_id, write_grid
from jobs.synthetic.usage_to_bill import CDR_COLUMNS, GeneratorParams

CONTROL_POINT = "carrier-invoice-vs-cdr"
INVOICE_TABLE = "carrier_invoice_line"
CDR_SCHEMA = StructType([StructField(n, t, True) for n, t in (
    ("record_id", StringType()), ("source_file", StringType()), ("msisdn", StringType()),
    ("account_id", StringType()), ("service_type", StringType()), ("direction", StringType()),
    ("other_party", StringType()), ("start_time", TimestampType()), ("duration_s", LongType()),
    ("volume_bytes", LongType()), ("cycle_id", StringType()), ("received_at", TimestampType()),
    ("carrier", StringType()),
)])
APPENDED_SCHEMA = StructType([*CDR_SCHEMA.fields, StructField("gen_row_id", StringType(), True)])
TRUTH_SCHEMA = StructType([StructField(n, StringType(), True) for n in (
    "control_point_id", "side", "record_id", "gen_row_id", "expected_outcome", "table_name", "carrier")])
APPENDED = "carrier-"            # gen_row_id prefix of the CDRs this module appends to the usage month

# Numbers of ours that make no call in the usage month (its subscribers are +1 555 NXX XXXX): the appended calls and
# the lines without a call come from these, per region; destinations under different prefixes of the shipped decks.
SOURCES = {"US": "+1212555", "GB": "+44207946", "DE": "+49301234"}
DESTINATIONS = (("+1646555", 4), ("+44207946", 4), ("+447700900", 3), ("+4989123", 5), ("+4915123456", 3),
                ("+33142685", 3))
NO_CARRIER_LAYOUT = "Osprey Wholesale"       # a carrier of ours with no layout: its legs are out of scope
NO_LAYOUT_SHARE = 0.2                        # of the usage month's legs; the layouts' carriers share the rest
CLEAN_LEGS = 5                               # legs billed as agreed per carrier, unless CarrierParams.clean says


@dataclass(frozen=True)
class CarrierParams:
    cycle_id: str = "2026-10"
    seed: int = 7
    clean: Mapping[str, int] = field(default_factory=dict)    # layout -> legs billed as agreed (CLEAN_LEGS)

    @property
    def start(self) -> datetime:
        year, month = map(int, self.cycle_id.split("-"))
        return datetime(year, month, 1, tzinfo=UTC)

    @property
    def end(self) -> datetime:
        year, month = map(int, self.cycle_id.split("-"))
        return datetime(year + month // 12, month % 12 + 1, 1, tzinfo=UTC)

    def clean_legs(self, layout: str) -> int:
        return self.clean.get(layout, CLEAN_LEGS)


def call_layouts(carriers: str | Path) -> list[Layout]:
    """The call_invoice layouts that name their carrier (a reseller layout's rows name theirs), by layout name."""
    layouts = [lay for _, lay in sorted(load_layouts(carriers).items())
               if lay.kind == "call_invoice" and lay.carrier is not None]
    names = [lay.carrier for lay in layouts]
    repeated = sorted({n for n in names if names.count(n) > 1 and n is not None})
    if repeated:
        raise ValueError(f"{carriers}: carriers {repeated} have more than one call_invoice layout; the synthetic "
                         "carrier month writes one file per carrier")
    return layouts


def usage_carriers(carriers: str | Path) -> tuple[tuple[str, float], ...]:
    """`GeneratorParams.carriers` for a usage month the carrier month bills: the layouts' carriers in equal shares,
    and NO_CARRIER_LAYOUT (out of the control's scope) the last NO_LAYOUT_SHARE."""
    names = [lay.carrier for lay in call_layouts(carriers) if lay.carrier is not None]
    if not names:
        raise ValueError(f"{carriers}: no call_invoice layout names a carrier")
    share = (1.0 - NO_LAYOUT_SHARE) / len(names)
    return (*[(name, share) for name in names], (NO_CARRIER_LAYOUT, NO_LAYOUT_SHARE))


def usage_params(carriers: str | Path, cycle_id: str = "2026-10", **overrides: Any) -> GeneratorParams:
    """The usage month a carrier month bills: `GeneratorParams.for_cycle` with the layouts' carriers.

    Example::

        usage = usage_params("conf/carriers", "2026-10", rows=6_000, seed=7)
        paths = generate(spark, "/tmp/m", usage)                  # jobs/generate.py
        generate_carrier_month(spark, "conf/carriers", "/tmp/carrier", paths["cdr"], CarrierParams("2026-10"))
    """
    return GeneratorParams.for_cycle(cycle_id, carriers=usage_carriers(carriers), **overrides)


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


@dataclass(frozen=True)
class _Leg:
    """A leg of the usage month the carrier bills (collected: a bounded selection)."""

    gen_row_id: str
    record_id: str
    msisdn: str                     # E.164
    other_party: str                # E.164
    start: datetime
    duration_s: int


def rate_for(layout: Layout, destination: str) -> Decimal:
    """The deck's rate of the longest prefix of the destination's digits (else its default)."""
    digits = destination.lstrip("+")
    best = max((p for p in layout.deck.per_minute if p != "default" and digits.startswith(p)), key=len, default=None)
    return layout.deck.per_minute[best if best is not None else "default"]


def expected_seconds(layout: Layout, duration_s: int) -> int:
    inc = layout.deck.increment_s
    return max(layout.deck.minimum_s, -(-duration_s // inc) * inc)


def expected_cost(layout: Layout, billed_s: int, destination: str) -> Decimal:
    exact = Decimal(billed_s) * rate_for(layout, destination) / Decimal(60)
    return exact.quantize(Decimal(1).scaleb(-layout.deck.cost_places), rounding=ROUND_HALF_UP)


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


# --------------------------------------------------------------------------------------------- the usage month's legs
def _e164(number: Column) -> Column:
    """A usage-month number (10 national US digits in any of its formats, maybe with a PBX extension) as E.164."""
    digits = F.regexp_replace(F.regexp_replace(number, r"\s*x\d+$", ""), r"[^0-9]", "")
    return F.concat(F.lit("+1"), F.substring(digits, -10, 10))


def _a_number(number: Column) -> Column:
    """False for what normalises to no number (`N/A`, `abc`): fewer than 10 digits."""
    return F.coalesce(F.length(F.regexp_replace(number, r"[^0-9]", "")) >= 10, F.lit(False))


def _in_scope(params: CarrierParams, names: list[str]) -> Column:
    """The cdr rows the control reconciles (rulesets/carrier_invoice_vs_cdr.yaml `cdr`): of the cycle (a null
    cycle_id: its start in the cycle, or null), outbound voice, carried by a carrier with a layout."""
    s, e = F.lit(params.start).cast("timestamp"), F.lit(params.end).cast("timestamp")
    t = F.col("start_time")
    placed = F.coalesce((F.col("cycle_id") == params.cycle_id)
                        | (F.col("cycle_id").isNull() & (t.isNull() | ((t >= s) & (t < e)))), F.lit(False))
    outbound = F.coalesce((F.col("service_type") == "VOICE") & (F.col("direction") == "MO"), F.lit(True))
    return placed & outbound & F.col("carrier").isin(*names)


def _unreadable() -> Column:
    """Why the run quarantines a leg: a null id, cycle, start or duration, a number that is none, or a repeated
    record id after its first copy (by received_at, then source_file; copies of one id differ in received_at)."""
    first = Window.partitionBy("record_id").orderBy("received_at", "source_file")
    return (F.col("record_id").isNull() | F.col("cycle_id").isNull() | F.col("start_time").isNull()
            | F.col("duration_s").isNull() | ~_a_number(F.col("msisdn")) | ~_a_number(F.col("other_party"))
            | (F.col("record_id").isNotNull() & (F.rank().over(first) > 1)))


def _legs(cdr: DataFrame, params: CarrierParams, layouts: list[Layout]) -> DataFrame:
    """The in-scope legs of the usage month with `_unreadable` and `_billable` (the one readable CDR of its call,
    a positive duration, away from its carrier's fall-back hour) and `_pick`, its rank among its carrier's billable
    legs (by a hash of seed and record id, then record id, then the generator's row id: a total order, so the
    sample spread over the month is the same on every run even where a record id repeats)."""
    names = [lay.carrier for lay in layouts if lay.carrier is not None]
    legs = cdr.where(_in_scope(params, names)).withColumn("_unreadable", _unreadable())
    # One call, one CDR: the usage generator's second CDR of a slot (`c-<slot>-1`: a re-sent or re-recorded copy,
    # an ambiguous twin) makes both CDRs of the slot unbillable (a line would find two candidates).
    slot = F.regexp_extract("gen_row_id", r"^(c-\d+)-\d+$", 1)
    legs = legs.withColumn("_slot", slot).withColumn("_cdrs", F.count(F.lit(1)).over(Window.partitionBy("_slot")))
    away = F.lit(True)
    for lay in layouts:
        instants = _fall_back_instants(ZoneInfo(lay.timezone), params.start, params.end)
        if instants is not None:
            near = F.col("start_time").between(F.lit(instants[0] - timedelta(hours=2)).cast("timestamp"),
                                               F.lit(instants[1] + timedelta(hours=2)).cast("timestamp"))
            away = away & ~((F.col("carrier") == lay.carrier) & near)
    billable = (~F.col("_unreadable") & (F.col("_slot") != "") & (F.col("_cdrs") == 1) & (F.col("duration_s") > 0)
                & away)
    return (legs.withColumn("_billable", billable)
            .withColumn("_pick", F.when(F.col("_billable"), F.row_number().over(
                Window.partitionBy("carrier", "_billable").orderBy(
                    F.xxhash64(F.lit(params.seed), F.col("record_id")), "record_id", "gen_row_id")))))


def _collect_legs(legs: DataFrame, wanted: Mapping[str, int]) -> dict[str, list[_Leg]]:
    """Per carrier, its first `wanted[carrier]` billable legs by `_pick` (bounded: collected)."""
    limit = F.coalesce(F.element_at(F.create_map(*[x for name, n in wanted.items() for x in (F.lit(name), F.lit(n))]),
                                    F.col("carrier")), F.lit(0))
    rows = (legs.where(F.col("_billable") & (F.col("_pick") <= limit))
            .select("carrier", "_pick", "gen_row_id", "record_id", _e164(F.col("msisdn")).alias("msisdn"),
                    _e164(F.col("other_party")).alias("other_party"),
                    # epoch seconds: a collected timestamp would come back naive, in the driver's local zone
                    F.col("start_time").cast("long").alias("start_epoch"), "duration_s")
            .collect())    # bounded: at most sum(wanted) rows
    out: dict[str, list[_Leg]] = {name: [] for name in wanted}
    for r in sorted(rows, key=lambda r: (r["carrier"], r["_pick"])):
        start = datetime.fromtimestamp(r["start_epoch"], UTC)
        out[r["carrier"]].append(_Leg(r["gen_row_id"], r["record_id"], r["msisdn"], r["other_party"], start,
                                      int(r["duration_s"])))
    short = {name: (len(out[name]), n) for name, n in wanted.items() if len(out[name]) < n}
    if short:
        raise ValueError("the usage month has too few billable outbound voice legs of " + ", ".join(
            f"{name} ({got} of {n})" for name, (got, n) in sorted(short.items())) + ": generate it with more rows")
    return out


def _plant(layout: Layout, params: CarrierParams, index: int, rng: random.Random,
           legs: list[_Leg]) -> tuple[list[_Line], list[tuple[Any, ...]], list[tuple[Any, ...]],
                                      list[tuple[str, str]]]:
    """(lines in file order, appended CDR rows, their truth rows, (gen_row_id, outcome) of the billed legs)."""
    assert layout.carrier is not None
    region = layout.phone_region or "US"
    carrier = layout.carrier
    lines: list[_Line] = []
    cdrs: list[tuple[Any, ...]] = []
    truth: list[tuple[Any, ...]] = []
    billed: list[tuple[str, str]] = []
    prefix = layout.name.split("-")[0][:3].upper()
    base = params.start + timedelta(days=2, hours=index * 3)
    msisdn = f"{SOURCES.get(region, '+1212555')}{1000 + index * 10:04d}"
    seq = iter(range(1, 10_000))
    inc, minimum = layout.deck.increment_s, layout.deck.minimum_s
    echoes = "record_id" in layout.columns

    def cdr(start: datetime, destination: str, duration: int | None, outcome: str) -> str:
        rid = f"MED-{prefix}-{next(seq):05d}"
        row_id = f"{APPENDED}{layout.name}-{rid}"
        cdrs.append((rid, f"med_{params.cycle_id}_{prefix.lower()}.dat", msisdn, f"ACC-{prefix}", "VOICE", "MO",
                     destination, start, duration, 0, params.cycle_id, start + timedelta(hours=1), carrier, row_id))
        truth.append((CONTROL_POINT, "RIGHT", rid, row_id, outcome, "cdr", carrier))
        return rid

    slot = iter(range(100_000))
    # Plants spread over the cycle's first weeks, hours apart (far beyond the 10 s window).
    spacing = timedelta(hours=7)

    def when() -> datetime:
        jitter = rng.randrange(0, int(spacing.total_seconds() // 2))
        return (base + spacing * next(slot) + timedelta(seconds=jitter)).replace(microsecond=0)

    def dest(i: int) -> str:
        stem, width = DESTINATIONS[i % len(DESTINATIONS)]
        return stem + f"{rng.randrange(10 ** (width - 1), 10 ** width)}"

    def exact_multiple(n: int) -> int:            # a duration the deck bills as it is
        return max(minimum, inc) * n if max(minimum, inc) % inc == 0 else inc * (-(-minimum // inc)) * n

    def line(start: datetime, source: str, destination: str, billed_s: int, cost: Decimal | None, duration: int,
             outcome: str, record_id: str | None = None, **kw: Any) -> _Line:
        made = _Line(start, source, destination, billed_s, cost, duration, f"{prefix}-{len(lines) + 1:05d}",
                     record_id, outcome=outcome, **kw)
        lines.append(made)
        return made

    clean, variance = legs[:-1], legs[-1]
    # Legs billed as agreed: MATCHED where the deck bills the call's own length, else rounded up as agreed (the
    # first through our record id where the layout echoes it), a second or two off our clock.
    for i, leg in enumerate(clean):
        seconds = expected_seconds(layout, leg.duration_s)
        outcome = "MATCHED" if seconds == leg.duration_s else "MATCHED_ROUNDING_VARIANCE"
        line(leg.start + timedelta(seconds=rng.choice((-2, 0, 1))), leg.msisdn, leg.other_party, seconds,
             expected_cost(layout, seconds, leg.other_party), leg.duration_s, outcome,
             leg.record_id if echoes and i == 0 else None)
        billed.append((leg.gen_row_id, outcome))
    # COST_VARIANCE: a leg priced above the deck, beyond max(0.01, 0.1%)
    seconds = expected_seconds(layout, variance.duration_s)
    fair = expected_cost(layout, seconds, variance.other_party)
    line(variance.start, variance.msisdn, variance.other_party, seconds,
         fair + max(Decimal("0.05"), fair / 2).quantize(Decimal(1).scaleb(-layout.deck.cost_places)),
         variance.duration_s, "COST_VARIANCE")
    billed.append((variance.gen_row_id, "COST_VARIANCE"))
    # MISSING_IN_CDR: a call we never made
    d = dest(4)
    line(when(), msisdn, d, exact_multiple(1), expected_cost(layout, exact_multiple(1), d), exact_multiple(1),
         "MISSING_IN_CDR")
    # AMBIGUOUS_MATCH: two calls to the same number, 3 s before and after the billed one
    t, d = when(), dest(5)
    cdr(t - timedelta(seconds=3), d, exact_multiple(1), "AMBIGUOUS_MATCH")
    cdr(t + timedelta(seconds=3), d, exact_multiple(1), "AMBIGUOUS_MATCH")
    line(t, msisdn, d, exact_multiple(1), expected_cost(layout, exact_multiple(1), d), exact_multiple(1),
         "AMBIGUOUS_MATCH")
    # QUARANTINED: a line whose cost cannot be read, and a CDR without a duration
    line(when(), msisdn, dest(1), exact_multiple(1), None, exact_multiple(1), "QUARANTINED", bad_cost=True)
    cdr(when(), dest(2), None, "QUARANTINED")
    # the fall-back hour: a local time that happens twice
    instants = _fall_back_instants(ZoneInfo(layout.timezone), params.start, params.end)
    if instants is not None:
        earlier, later = instants
        dur = exact_multiple(1)
        for n, at in enumerate((later, earlier, earlier + timedelta(seconds=1))):
            d = dest(n)
            if n < 2:                      # one call, at one of the two instants: matched through it
                cdr(at, d, dur, "MATCHED")
                line(at, msisdn, d, dur, expected_cost(layout, dur, d), dur, "MATCHED")
            else:                          # a call at each instant: both are candidates, neither wins
                cdr(at, d, dur, "AMBIGUOUS_MATCH")
                cdr(at + (later - earlier), d, dur, "AMBIGUOUS_MATCH")
                line(at, msisdn, d, dur, expected_cost(layout, dur, d), dur, "AMBIGUOUS_MATCH")
    # DUPLICATE_INVOICE_LINE: the first clean line billed again at the end of the file
    first = lines[0]
    lines.append(_Line(first.start, first.source, first.destination, first.billed_s, first.cost, first.duration_s,
                       first.call_id, first.record_id, outcome="DUPLICATE_INVOICE_LINE"))
    return lines, cdrs, truth, billed


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
            text = "n/a" if ln.bad_cost or ln.cost is None else f"{ln.cost:.{layout.deck.cost_places}f}"
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


def _write_file(folder: Path, layout: Layout, lines: list[_Line], cycle_id: str) -> tuple[Path, str]:
    """The carrier's file for the cycle (in its layout's form, `files.form_of`); returns its path and SHA-256."""
    form = form_of(layout)
    headers = _headers(layout)
    rows = [[_cells(layout, ln).get(col, "") for col, _ in headers] for ln in lines]
    described = layout.description or layout.name
    title: list[str] = []
    summary: list[Any] = []
    if form == "xlsx":            # a summary sheet, then the calls under a title; an ISO start typed as a date-time
        summary, title = [described, f"period {cycle_id}"], [f"{layout.carrier} - usage detail {cycle_id}"]
        if "start" in layout.columns and layout.formats.get("start") is None:
            at = [col for col, _ in headers].index("start")
            for ln, row in zip(lines, rows, strict=True):
                row[at] = ln.start.astimezone(ZoneInfo(layout.timezone)).replace(tzinfo=None)
    elif form == "html":
        title = [f"{described} {cycle_id}"]
    elif form == "ssv":           # title lines above the header, as such exports have them
        title = [described, f"period {cycle_id}"]
    return write_grid(folder, f"{layout.name}_{cycle_id}", form, [h for _, h in headers], rows, title=title,
                      summary=summary, sheet="Calls")


def generate_carrier_month(spark: SparkSession, carriers: str | Path, out_dir: str | Path, usage_cdr: str,
                           params: CarrierParams | None = None) -> dict[str, str]:
    """Bill the usage month's outbound voice legs (the cdr Delta table at `usage_cdr`, written by jobs/generate.py
    from `usage_params`): write the invoice files (`<out>/invoices/`), append the specially shaped calls to
    `usage_cdr` (one commit, replacing an earlier carrier month's) and write the ground truth
    (`<out>/ground_truth`); returns name -> path (`cdr` is `usage_cdr`).

    Example::

        usage = generate(spark, "/tmp/m", usage_params("conf/carriers", "2026-10", rows=6_000))
        paths = generate_carrier_month(spark, "conf/carriers", "/tmp/carrier", usage["cdr"], CarrierParams("2026-10"))
        # telco-ra ingest --conf C /tmp/carrier/invoices ; telco-ra run --ruleset rulesets/carrier_invoice_vs_cdr.yaml
    """
    params = params or CarrierParams()
    layouts = call_layouts(carriers)
    if not layouts:
        raise ValueError(f"{carriers}: no call_invoice layout names a carrier; nothing to bill")
    out = Path(out_dir)
    invoices = out / "invoices"
    invoices.mkdir(parents=True, exist_ok=True)
    table = spark.read.format("delta").load(usage_cdr)
    missing = [c for c in CDR_COLUMNS if c not in table.columns]
    if missing:
        raise ValueError(f"{usage_cdr}: not a synthetic usage month's cdr table (no {', '.join(missing)})")
    usage = table.where(~F.coalesce(F.col("gen_row_id").startswith(APPENDED), F.lit(False)))
    legs = _legs(usage, params, layouts)
    picked = _collect_legs(legs, {lay.carrier: params.clean_legs(lay.name) + 1 for lay in layouts
                                  if lay.carrier is not None})
    rng = random.Random(params.seed)
    appended: list[tuple[Any, ...]] = []
    truth: list[tuple[Any, ...]] = []
    billed: list[tuple[str, str]] = []
    for index, layout in enumerate(layouts):
        assert layout.carrier is not None
        lines, cdrs, cdr_truth, leg_outcomes = _plant(layout, params, index, rng, picked[layout.carrier])
        path, sha = _write_file(invoices, layout, lines, params.cycle_id)
        appended += cdrs
        truth += cdr_truth
        truth += [(CONTROL_POINT, "LEFT", line_id(sha, row), None, ln.outcome, INVOICE_TABLE, layout.carrier)
                  for row, ln in enumerate(lines, start=1)]
        billed += leg_outcomes
    # The specially shaped calls: one commit that replaces an earlier carrier month's (a re-run adds nothing twice).
    calls = spark.createDataFrame(appended, APPENDED_SCHEMA)
    (calls.select(*[F.col(f.name).cast(f.dataType) for f in table.schema.fields])
     .write.format("delta").mode("overwrite").option("replaceWhere", f"gen_row_id LIKE '{APPENDED}%'")
     .save(usage_cdr))
    # Every in-scope leg of the usage month: its billed outcome, else QUARANTINED or MISSING_IN_INVOICE.
    outcomes = spark.createDataFrame(billed or [("", "")], "gen_row_id string, _billed string")
    leg_truth = legs.join(F.broadcast(outcomes), "gen_row_id", "left").select(
        F.lit(CONTROL_POINT).alias("control_point_id"), F.lit("RIGHT").alias("side"), "record_id", "gen_row_id",
        F.when(F.col("_unreadable"), F.lit("QUARANTINED"))
        .otherwise(F.coalesce(F.col("_billed"), F.lit("MISSING_IN_INVOICE"))).alias("expected_outcome"),
        F.lit("cdr").alias("table_name"), "carrier")
    paths = {"invoices": str(invoices), "cdr": usage_cdr, "ground_truth": str(out / "ground_truth")}
    (spark.createDataFrame(truth, TRUTH_SCHEMA).unionByName(leg_truth)
     .write.format("delta").mode("overwrite").option("overwriteSchema", "true").save(paths["ground_truth"]))
    return paths
