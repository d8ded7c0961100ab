"""Carrier layouts: one YAML file per layout in `conf/carriers/` (CONTRACT sections 6 and 9), loaded and validated.

A layout says how one carrier's file looks: the headers that recognise it, which header holds which canonical
column, the formats and units of its cells and its currency. Its `kind` says what the file is and which table its
rows go to: `call_invoice` (section 6: calls billed, into carrier_invoice_line; with the time zone of its times, its
direction words and the agreed rate deck) or `line_bill` (section 9: lines billed, into carrier_bill_line; bill id,
period, phone, ICCID, usage and amount). Both kinds share one folder: a file's headers pick its layout, and the
layout its kind. A new carrier is a new YAML file, never new code. Every error names the file, the key and the
value (exit 2), and the whole folder is checked before any file is read, so a typo in one layout stops an ingest
before it writes anything.

Beyond the contract's keys a layout may carry `description` (free text), `decimal_mark` ("." or ",": how the file
writes 2,5 vs 2.5; "." by default) and `carrier_column` (the header naming the carrier per row, for a reseller's or
a generic file; `carrier` is then the value for rows that leave it blank).

Example::

    layouts = load_layouts("conf/carriers")
    layouts["kestrel-csv"].columns["billed_duration"]   # 'Billed Mins'
"""

from __future__ import annotations

import logging
import re
import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import phonenumbers
import yaml

from jobs.config import ConfigError

LOG = logging.getLogger(__name__)


class LayoutError(ConfigError):
    """A bad carrier layout: exit 2; the message names the layout file, the key and the value."""


UNITS: tuple[str, ...] = ("seconds", "minutes", "decimal_minutes")
CALL_INVOICE, LINE_BILL = "call_invoice", "line_bill"
KINDS = (CALL_INVOICE, LINE_BILL)
TIME_COLUMNS = ("start", "start_date", "start_time")
# Canonical columns of a call_invoice layout; the first four groups are required (start, or start_date + start_time).
REQUIRED_COLUMNS = ("destination_number", "billed_duration", "cost")
OPTIONAL_COLUMNS = ("source_number", "direction", "duration", "call_id", "record_id", "invoice_id")
CANONICAL_COLUMNS = TIME_COLUMNS + REQUIRED_COLUMNS + OPTIONAL_COLUMNS
# Canonical columns of a line_bill layout: bill_id, and phone or iccid (or both), are required; a layout without
# bill_period takes the ingest's --period, one without usage or amount leaves usage_mb or amount null.
LINE_COLUMNS = ("bill_id", "bill_period", "phone", "iccid", "usage", "amount")
LINE_IDENTIFIERS = ("phone", "iccid")
# Units of a line_bill usage column, as multiples of the stored megabyte (decimal prefixes, as the names say).
USAGE_UNITS: Mapping[str, Decimal] = {"KB": Decimal("0.001"), "MB": Decimal(1), "GB": Decimal(1000)}
COMMON_KEYS = {"layout", "kind", "carrier", "carrier_column", "description", "recognize", "phone_region", "columns",
               "formats", "units", "currency", "decimal_mark"}
KIND_KEYS: Mapping[str, set[str]] = {CALL_INVOICE: COMMON_KEYS | {"timezone", "direction", "rates"},
                                     LINE_BILL: set(COMMON_KEYS)}
RATE_KEYS = {"increment_s", "minimum_s", "cost_places", "per_minute"}
# Words read as a direction when a layout maps a direction column but lists no words of its own.
DEFAULT_DIRECTION_WORDS: Mapping[str, tuple[str, ...]] = {
    "MO": ("MO", "OUT", "OUTBOUND", "ORIG", "ORIGINATING"),
    "MT": ("MT", "IN", "INBOUND", "TERM", "TERMINATING"),
}

# strptime directive -> Spark datetime pattern letters: (next to another directive, between literals). Python's
# %m/%d/%H/... accept one or two digits; Spark's one-letter forms do the same, but fields that touch need fixed
# widths to be told apart ("%Y%m%d" is yyyyMMdd).
_DIRECTIVES: Mapping[str, tuple[str, str]] = {
    "Y": ("yyyy", "yyyy"), "y": ("yy", "yy"), "m": ("MM", "M"), "d": ("dd", "d"), "H": ("HH", "H"),
    "I": ("hh", "h"), "M": ("mm", "m"), "S": ("ss", "s"), "f": ("SSSSSS", "SSSSSS"), "p": ("a", "a"),
    "b": ("MMM", "MMM"), "B": ("MMMM", "MMMM"),
}
_DIRECTIVE = re.compile(r"%(.)")


def header_key(text: object) -> str:
    """A header as layouts compare it: case, spaces and punctuation ignored ('Call Time (ET)' -> 'calltimeet')."""
    return re.sub(r"[\W_]+", "", str(text).casefold())


def spark_pattern(fmt: str) -> str:
    """A strptime format as a Spark datetime pattern; ValueError names a directive Spark cannot parse.

    Example::

        spark_pattern("%m/%d/%Y %I:%M %p")   # "M'/'d'/'yyyy' 'h':'m' 'a"
    """
    out: list[str] = []
    pos = previous_end = 0
    for match in _DIRECTIVE.finditer(fmt):
        if match.start() > pos:
            out.append(_quoted(fmt[pos:match.start()]))
        code = match.group(1)
        pos = match.end()
        if code == "%":
            out.append(_quoted("%"))
            continue
        if code not in _DIRECTIVES:
            supported = " ".join(f"%{c}" for c in _DIRECTIVES)
            raise ValueError(f"%{code} is not a directive ingest can read (supported: {supported}; time zones "
                             "come from the layout's timezone key)")
        follows = match.start() > 0 and match.start() == previous_end
        precedes = fmt.startswith("%", pos) and not fmt.startswith("%%", pos)
        out.append(_DIRECTIVES[code][0 if follows or precedes else 1])
        previous_end = pos
    if pos < len(fmt):
        out.append(_quoted(fmt[pos:]))
    return "".join(out)


def _quoted(literal: str) -> str:
    return "'" + literal.replace("'", "''") + "'"


@dataclass(frozen=True)
class Rates:
    """The agreed rate deck (read by the carrier-invoice control, not by ingest)."""

    increment_s: int
    minimum_s: int
    cost_places: int
    per_minute: Mapping[str, Decimal]       # E.164 digit prefix (or "default") -> rate per minute


@dataclass(frozen=True)
class Layout:
    name: str
    path: str
    kind: str                               # call_invoice | line_bill
    carrier: str | None
    recognize: tuple[str, ...]
    columns: Mapping[str, str]              # canonical column -> header as written in the layout
    currency: str
    rates: Rates | None = None              # call_invoice layouts only (see `deck`)
    timezone: str = "UTC"
    phone_region: str | None = None         # None: the conf's phone_region
    formats: Mapping[str, str] = field(default_factory=dict)   # canonical time (or bill_period) column -> strptime
    units: Mapping[str, str] = field(default_factory=dict)     # duration / billed_duration / usage -> unit
    direction_words: Mapping[str, tuple[str, ...]] = field(default_factory=dict)   # MO/MT -> words
    fixed_direction: str | None = None      # every row's direction, when the file has no direction column
    decimal_mark: str = "."
    carrier_column: str | None = None
    description: str = ""

    @property
    def recognize_keys(self) -> frozenset[str]:
        return frozenset(header_key(h) for h in self.recognize)

    @property
    def deck(self) -> Rates:
        """The agreed rate deck: every call_invoice layout has one; a line_bill layout has none (ValueError)."""
        if self.rates is None:
            raise ValueError(f"layout {self.name} ({self.path}) is a {self.kind} layout: it has no rate deck")
        return self.rates

    @property
    def usage_unit(self) -> str:
        """The unit of a line_bill layout's usage column: MB unless `units: {usage: ...}` says otherwise."""
        return self.units.get("usage", "MB")

    def unit(self, column: str) -> str:
        return self.units.get(column, "seconds")

    def pattern(self, column: str) -> str | None:
        """The Spark pattern of a time column's format, None for ISO 8601 (format omitted)."""
        fmt = self.formats.get(column)
        return None if fmt is None else spark_pattern(fmt)


class _Checker:
    """Typed reads of one layout file's mapping; each failure names the file and the dotted key."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, key: str, message: str) -> LayoutError:
        return LayoutError(self.path, key, message)

    def unknown(self, where: str, data: Mapping[str, Any], allowed: set[str] | tuple[str, ...]) -> None:
        extra = sorted(set(map(str, data)) - set(allowed))
        if extra:
            raise self.fail(f"{where}{extra[0]}", f"unknown key (allowed: {', '.join(sorted(allowed))})")

    def text(self, key: str, value: Any) -> str:
        if not isinstance(value, str) or not value.strip():
            raise self.fail(key, f"{value!r} is not a non-empty text")
        return value.strip()

    def mapping(self, key: str, value: Any) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(key, f"expected a mapping, got {value!r}")
        return {str(k): v for k, v in value.items()}

    def texts(self, key: str, value: Any) -> tuple[str, ...]:
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not value or not all(isinstance(v, str) and v.strip() for v in value):
            raise self.fail(key, f"expected a list of non-empty texts, got {value!r}")
        return tuple(v.strip() for v in value)

    def whole(self, key: str, value: Any, low: int, high: int | None = None) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < low or (high is not None and value > high):
            bounds = f"{low}..{high}" if high is not None else f">= {low}"
            raise self.fail(key, f"{value!r} is not a whole number {bounds}")
        return value

    def rate(self, key: str, value: Any) -> Decimal:
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise self.fail(key, f"{value!r} is not a rate (write it quoted, e.g. \"0.0120\")")
        try:
            number = Decimal(str(value).strip())
        except InvalidOperation as exc:
            raise self.fail(key, f"{value!r} is not a number") from exc
        if not number.is_finite() or number < 0:
            raise self.fail(key, f"{value!r} is not a non-negative number")
        return number


def load_layout(path: str | Path) -> Layout:
    """One layout file, validated; LayoutError names the file, the key and the value."""
    p = Path(path)
    c = _Checker(p)
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise c.fail("(yaml)", f"not valid YAML: {str(exc).splitlines()[0]}") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise c.fail("(file)", f"cannot be read: {exc}") from exc
    m = c.mapping("(top level)", data)
    if "kind" not in m:
        raise c.fail("kind", f"missing (required: {' or '.join(KINDS)})")
    kind = m["kind"]
    if kind not in KINDS:
        raise c.fail("kind", f"{kind!r}: ingest reads {CALL_INVOICE} layouts (carrier invoices, CONTRACT section 6) "
                     f"and {LINE_BILL} layouts (carrier bills, section 9)")
    c.unknown("", m, KIND_KEYS[kind])
    for required in ("layout", "recognize", "columns", "currency") + (("rates",) if kind == CALL_INVOICE else ()):
        if required not in m:
            raise c.fail(required, "missing (required)")
    name = c.text("layout", m["layout"])
    carrier = c.text("carrier", m["carrier"]) if m.get("carrier") is not None else None
    carrier_column = c.text("carrier_column", m["carrier_column"]) if m.get("carrier_column") is not None else None
    if carrier is None and carrier_column is None:
        raise c.fail("carrier", "missing (required: the carrier written to each line, unless carrier_column names "
                     "a header that carries it)")
    recognize = c.texts("recognize", m["recognize"])
    if any(not header_key(h) for h in recognize):
        raise c.fail("recognize", f"{list(recognize)!r}: a header with no letter or digit recognises nothing")
    region = m.get("phone_region")
    if region is not None and region not in phonenumbers.SUPPORTED_REGIONS:
        raise c.fail("phone_region", f"{region!r} is not a region phonenumbers knows (ISO 3166 codes such as US, GB)")
    currency = c.text("currency", m["currency"])
    if not re.fullmatch(r"[A-Z]{3}", currency):
        raise c.fail("currency", f"{currency!r} is not an ISO 4217 code like USD")
    decimal_mark = m.get("decimal_mark", ".")
    if decimal_mark not in (".", ","):
        raise c.fail("decimal_mark", f"{decimal_mark!r} is not '.' or ','")
    specific = _call_invoice(c, m) if kind == CALL_INVOICE else _line_bill(c, m)
    return Layout(name=name, path=str(p), kind=str(kind), carrier=carrier, recognize=recognize, currency=currency,
                  phone_region=region, decimal_mark=str(decimal_mark), carrier_column=carrier_column,
                  description=str(m.get("description") or "").strip(), **specific)


def _formats(c: _Checker, m: Mapping[str, Any], columns: Mapping[str, str], formatted: tuple[str, ...],
             what: str) -> dict[str, str]:
    """`formats`: strptime formats of the layout's `formatted` columns, each one Spark can read."""
    formats = c.mapping("formats", m.get("formats") or {})
    for key, fmt in formats.items():
        if key not in columns or key not in formatted:
            raise c.fail(f"formats.{key}", f"not a {what} column of this layout (its {what} columns: "
                         f"{', '.join(k for k in formatted if k in columns) or 'none'})")
        try:
            spark_pattern(c.text(f"formats.{key}", fmt))
        except ValueError as exc:
            raise c.fail(f"formats.{key}", f"{fmt!r}: {exc}") from exc
    return {k: str(v).strip() for k, v in formats.items()}


def _call_invoice(c: _Checker, m: Mapping[str, Any]) -> dict[str, Any]:
    """The keys of a call_invoice layout (CONTRACT section 6) as Layout fields."""
    columns = _columns(c, m["columns"])
    timezone = c.text("timezone", m.get("timezone", "UTC"))
    try:
        zoneinfo.ZoneInfo(timezone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
        raise c.fail("timezone", f"{timezone!r} is not an IANA time zone (e.g. America/New_York, Europe/London)") \
            from exc
    formats = _formats(c, m, columns, TIME_COLUMNS, "time")
    units = c.mapping("units", m.get("units") or {})
    for key, unit in units.items():
        if key not in ("duration", "billed_duration"):
            raise c.fail(f"units.{key}", "only duration and billed_duration have units")
        if unit not in UNITS:
            raise c.fail(f"units.{key}", f"{unit!r} is not one of {', '.join(UNITS)}")
    words, fixed = _direction(c, m.get("direction"), "direction" in columns)
    return {"columns": columns, "rates": _rates(c, m["rates"]), "timezone": timezone, "formats": formats,
            "units": {k: str(v) for k, v in units.items()}, "direction_words": words, "fixed_direction": fixed}


def _line_bill(c: _Checker, m: Mapping[str, Any]) -> dict[str, Any]:
    """The keys of a line_bill layout (CONTRACT section 9) as Layout fields."""
    columns = _mapped_headers(c, m["columns"], LINE_COLUMNS)
    if "bill_id" not in columns:
        raise c.fail("columns.bill_id", "missing (required)")
    if not any(k in columns for k in LINE_IDENTIFIERS):
        raise c.fail("columns.phone", "missing (required: phone, iccid or both; map a header that holds ICCIDs, "
                     "even one named like a phone column, to iccid)")
    formats = _formats(c, m, columns, ("bill_period",), "period")
    units = c.mapping("units", m.get("units") or {})
    for key, unit in units.items():
        if key != "usage":
            raise c.fail(f"units.{key}", "only usage has a unit in a line_bill layout")
        if "usage" not in columns:
            raise c.fail("units.usage", "given but columns.usage is missing (a bill without usage has no unit)")
        if unit not in USAGE_UNITS:
            raise c.fail("units.usage", f"{unit!r} is not one of {', '.join(USAGE_UNITS)}")
    return {"columns": columns, "formats": formats, "units": {k: str(v) for k, v in units.items()}}


def _mapped_headers(c: _Checker, value: Any, canonical: tuple[str, ...]) -> dict[str, str]:
    """`columns`: canonical name -> header, each header distinct from the others as recognition compares them."""
    columns = {k: c.text(f"columns.{k}", v) for k, v in c.mapping("columns", value).items()}
    c.unknown("columns.", columns, canonical)
    seen: dict[str, str] = {}
    for name, header in columns.items():
        key = header_key(header)
        if not key:
            raise c.fail(f"columns.{name}", f"{header!r} has no letter or digit")
        if key in seen:
            raise c.fail(f"columns.{name}", f"{header!r} is the header of columns.{seen[key]} too (headers "
                         "are compared ignoring case, spaces and punctuation)")
        seen[key] = name
    return columns


def _columns(c: _Checker, value: Any) -> dict[str, str]:
    columns = _mapped_headers(c, value, CANONICAL_COLUMNS)
    for required in REQUIRED_COLUMNS:
        if required not in columns:
            raise c.fail(f"columns.{required}", "missing (required)")
    split = [k for k in ("start_date", "start_time") if k in columns]
    if "start" in columns and split:
        raise c.fail(f"columns.{split[0]}", "give either start (date and time in one column) or start_date and "
                     "start_time, not both")
    if "start" not in columns and len(split) != 2:
        missing = "start_time" if split == ["start_date"] else "start_date" if split else "start"
        raise c.fail(f"columns.{missing}", "missing (required: start, or start_date and start_time)")
    return columns


def _direction(c: _Checker, value: Any, has_column: bool) -> tuple[dict[str, tuple[str, ...]], str | None]:
    """(words per direction, None) for a direction column; ({}, MO|MT) when every row has one direction."""
    if value is None:
        return (dict(DEFAULT_DIRECTION_WORDS), None) if has_column else ({}, "MO")
    if isinstance(value, str):
        if value not in DEFAULT_DIRECTION_WORDS:
            raise c.fail("direction", f"{value!r} is not MO or MT")
        if has_column:
            raise c.fail("direction", f"{value!r}: a layout with a direction column maps its words, e.g. "
                         "{MO: [OUT], MT: [IN]}")
        return {}, value
    m = c.mapping("direction", value)
    c.unknown("direction.", m, tuple(DEFAULT_DIRECTION_WORDS))
    if not has_column:
        raise c.fail("direction", "words given but columns.direction is missing (or write direction: MO)")
    words = {d: c.texts(f"direction.{d}", v) for d, v in m.items()}
    owners: dict[str, str] = {}
    for d, ws in words.items():
        for w in ws:
            if w.casefold() in owners and owners[w.casefold()] != d:
                raise c.fail(f"direction.{d}", f"{w!r} is listed under {owners[w.casefold()]} too")
            owners[w.casefold()] = d
    return words, None


def _rates(c: _Checker, value: Any) -> Rates:
    m = c.mapping("rates", value)
    c.unknown("rates.", m, RATE_KEYS)
    for required in sorted(RATE_KEYS):
        if required not in m:
            raise c.fail(f"rates.{required}", "missing (required)")
    deck = c.mapping("rates.per_minute", m["per_minute"])
    if not deck:
        raise c.fail("rates.per_minute", "empty: give at least one prefix or default")
    per_minute: dict[str, Decimal] = {}
    for prefix, rate in deck.items():
        if prefix != "default" and not re.fullmatch(r"\d{1,15}", prefix):
            raise c.fail(f"rates.per_minute.{prefix}", "not an E.164 digit prefix (like \"44\") or default")
        per_minute[prefix] = c.rate(f"rates.per_minute.{prefix}", rate)
    return Rates(increment_s=c.whole("rates.increment_s", m["increment_s"], 1),
                 minimum_s=c.whole("rates.minimum_s", m["minimum_s"], 0),
                 cost_places=c.whole("rates.cost_places", m["cost_places"], 0, 6), per_minute=per_minute)


def load_layouts(folder: str | Path) -> dict[str, Layout]:
    """Every `*.yaml` / `*.yml` layout in `folder`, by name; the folder must hold at least one.

    Two layouts with one name, or with the same recognise headers (no file could tell them apart), are refused,
    whatever their kinds: call_invoice and line_bill layouts share the folder and are told apart by headers alone.
    """
    root = Path(folder)
    if not root.is_dir():
        raise LayoutError(root, "(folder)", "no such folder of carrier layouts (set carriers: in the conf)")
    files = sorted(p for p in root.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())
    if not files:
        raise LayoutError(root, "(folder)", "holds no *.yaml carrier layout")
    layouts: dict[str, Layout] = {}
    by_keys: dict[frozenset[str], Layout] = {}
    for path in files:
        layout = load_layout(path)
        if layout.name in layouts:
            raise LayoutError(path, "layout", f"{layout.name!r} is also the name of {layouts[layout.name].path}")
        twin = by_keys.get(layout.recognize_keys)
        if twin is not None:
            raise LayoutError(path, "recognize", f"the same headers recognise {twin.name} ({twin.path}): no file "
                              "could tell the two apart")
        layouts[layout.name] = layout
        by_keys[layout.recognize_keys] = layout
    return layouts
