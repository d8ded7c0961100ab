"""Carrier layouts: one YAML file per layout in `conf/carriers/` (CONTRACT section 6), loaded and validated.

A layout says how one carrier's file looks: the headers that recognise it, which header holds which canonical
column, the time zone and formats of its times, the units of its durations, its direction words, currency and the
agreed rate deck. A new carrier is a new YAML file, never new code. Every error names the file, the key and the
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
KINDS = ("call_invoice",)
# Kinds the contract names that this ingest does not read yet: such layouts may share the folder, and are skipped.
LATER_KINDS = ("line_bill",)
TIME_COLUMNS = ("start", "start_date", "start_time")
# Canonical columns of a call_invoice layout; the first four groups are required (start, or start_date + start_time).
REQUIRED_COLUMNS = ("destination_number", "billed_duration", "cost")
OPTIONAL_COLUMNS = ("source_number", "direction", "duration", "call_id", "record_id", "invoice_id")
CANONICAL_COLUMNS = TIME_COLUMNS + REQUIRED_COLUMNS + OPTIONAL_COLUMNS
LAYOUT_KEYS = {"layout", "kind", "carrier", "carrier_column", "description", "recognize", "timezone", "phone_region",
               "columns", "formats", "units", "direction", "currency", "decimal_mark", "rates"}
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
    kind: str
    carrier: str | None
    recognize: tuple[str, ...]
    columns: Mapping[str, str]              # canonical column -> header as written in the layout
    currency: str
    rates: Rates
    timezone: str = "UTC"
    phone_region: str | None = None         # None: the conf's phone_region
    formats: Mapping[str, str] = field(default_factory=dict)   # canonical time column -> strptime format
    units: Mapping[str, str] = field(default_factory=dict)     # duration / billed_duration -> unit
    direction_words: Mapping[str, tuple[str, ...]] = field(default_factory=dict)   # MO/MT -> words
    fixed_direction: str | None = None      # every row's direction, when the file has no direction column
    decimal_mark: str = "."
    carrier_column: str | None = None
    description: str = ""

    @property
    def recognize_keys(self) -> frozenset[str]:
        return frozenset(header_key(h) for h in self.recognize)

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
    c.unknown("", m, LAYOUT_KEYS)
    for required in ("layout", "kind", "recognize", "columns", "currency", "rates"):
        if required not in m:
            raise c.fail(required, "missing (required)")
    name = c.text("layout", m["layout"])
    kind = m["kind"]
    if kind not in KINDS:
        raise c.fail("kind", f"{kind!r}: this ingest reads {', '.join(KINDS)} layouts"
                     + (f" ({', '.join(LATER_KINDS)} layouts are skipped)" if LATER_KINDS else ""))
    carrier = c.text("carrier", m["carrier"]) if m.get("carrier") is not None else None
    carrier_column = c.text("carrier_column", m["carrier_column"]) if m.get("carrier_column") is not None else None
    if carrier is None and carrier_column is None:
        raise c.fail("carrier", "missing (required: the carrier written to each line, unless carrier_column names "
                     "a header that carries it)")
    recognize = c.texts("recognize", m["recognize"])
    if any(not header_key(h) for h in recognize):
        raise c.fail("recognize", f"{list(recognize)!r}: a header with no letter or digit recognises nothing")
    columns = _columns(c, m["columns"])
    timezone = c.text("timezone", m.get("timezone", "UTC"))
    try:
        zoneinfo.ZoneInfo(timezone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
        raise c.fail("timezone", f"{timezone!r} is not an IANA time zone (e.g. America/New_York, Europe/London)") \
            from exc
    region = m.get("phone_region")
    if region is not None and region not in phonenumbers.SUPPORTED_REGIONS:
        raise c.fail("phone_region", f"{region!r} is not a region phonenumbers knows (ISO 3166 codes such as US, GB)")
    formats = c.mapping("formats", m.get("formats") or {})
    for key, fmt in formats.items():
        if key not in columns or key not in TIME_COLUMNS:
            raise c.fail(f"formats.{key}", f"not a time column of this layout (its time columns: "
                         f"{', '.join(k for k in TIME_COLUMNS if k in columns)})")
        try:
            spark_pattern(c.text(f"formats.{key}", fmt))
        except ValueError as exc:
            raise c.fail(f"formats.{key}", f"{fmt!r}: {exc}") from exc
    units = c.mapping("units", m.get("units") or {})
    for key, unit in units.items():
        if key not in ("duration", "billed_duration"):
            raise c.fail(f"units.{key}", "only duration and billed_duration have units")
        if unit not in UNITS:
            raise c.fail(f"units.{key}", f"{unit!r} is not one of {', '.join(UNITS)}")
    words, fixed = _direction(c, m.get("direction"), "direction" in columns)
    currency = c.text("currency", m["currency"])
    if not re.fullmatch(r"[A-Z]{3}", currency):
        raise c.fail("currency", f"{currency!r} is not an ISO 4217 code like USD")
    decimal_mark = m.get("decimal_mark", ".")
    if decimal_mark not in (".", ","):
        raise c.fail("decimal_mark", f"{decimal_mark!r} is not '.' or ','")
    return Layout(name=name, path=str(p), kind=str(kind), carrier=carrier, recognize=recognize, columns=columns,
                  currency=currency, rates=_rates(c, m["rates"]), timezone=timezone, phone_region=region,
                  formats={k: str(v).strip() for k, v in formats.items()}, units={k: str(v) for k, v in units.items()},
                  direction_words=words, fixed_direction=fixed, decimal_mark=str(decimal_mark),
                  carrier_column=carrier_column, description=str(m.get("description") or "").strip())


def _columns(c: _Checker, value: Any) -> dict[str, str]:
    columns = {k: c.text(f"columns.{k}", v) for k, v in c.mapping("columns", value).items()}
    c.unknown("columns.", columns, CANONICAL_COLUMNS)
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
    seen: dict[str, str] = {}
    for canonical, header in columns.items():
        key = header_key(header)
        if not key:
            raise c.fail(f"columns.{canonical}", f"{header!r} has no letter or digit")
        if key in seen:
            raise c.fail(f"columns.{canonical}", f"{header!r} is the header of columns.{seen[key]} too (headers "
                         "are compared ignoring case, spaces and punctuation)")
        seen[key] = canonical
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


def _later_kind(path: Path) -> str | None:
    """The kind of a layout file when it is one this ingest skips (a broken file is load_layout's to report)."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, OSError, UnicodeDecodeError):
        return None
    kind = data.get("kind") if isinstance(data, dict) else None
    return kind if kind in LATER_KINDS else None


def load_layouts(folder: str | Path) -> dict[str, Layout]:
    """Every `*.yaml` / `*.yml` layout in `folder`, by name; the folder must hold at least one.

    Two layouts with one name, or with the same recognise headers (no file could tell them apart), are refused.
    Layouts of a kind this ingest does not read yet (line_bill, CONTRACT section 9) are skipped with a warning.
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
        if _later_kind(path):
            LOG.warning("%s: a %s layout: not read by this ingest, skipped", path, _later_kind(path))
            continue
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
