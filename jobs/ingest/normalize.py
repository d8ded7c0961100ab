"""Carrier cells (strings) to carrier_invoice_line's types, as Spark column expressions: no row loop anywhere.

The cell readers here (numbers, money, phone numbers, the row filter and line ids) are shared with `bill_lines`,
which does the same for line_bill layouts into carrier_bill_line.

- Times: the layout's strptime format (ISO 8601 when omitted; ISO is also accepted where a format is given, which
  is how typed Excel dates arrive) gives the local wall clock, made an instant in the layout's IANA zone with
  Spark's `to_utc_timestamp` (java.time rules). A wall clock in a spring-forward gap is shifted forward by the gap
  (02:30 on the US change day is 03:30 EDT); one in a fall-back hour has two instants: `start_time` is the
  earlier, `start_time_alt` the later, and `time_rule` says which rule applied (SPRING_FORWARD_SHIFTED,
  FALL_BACK_AMBIGUOUS; null otherwise). Every step is epoch arithmetic or an explicit offset, so neither the
  session's nor the host's time zone changes a result. An ISO value with an offset (`Z`, `+01:00`) is that instant.
- Numbers: E.164 by the project's phone normalisation (`transforms.phone.to_e164`, run over the DISTINCT cells in
  a pandas UDF) with the layout's region, so 011/00 international prefixes, trunk prefixes and separators are
  handled there; a number written as bare international digits (`442079460958`: E.164 without its
  plus, common in carrier files) that does not parse in the region is read as international (`e164_numbers`).
- Durations: seconds, `minutes` (whole minutes) or `decimal_minutes`, or clock notation (`2:30`, `0:02:30`) in any
  unit; whole seconds, half-up.
- Money: exact decimal from the text (never through a float): grouping checked against the layout's decimal mark
  (so `0,0120` in a file with `.` decimals is an error, not 120), currency symbols and codes stripped (a code other
  than the layout's currency is an error), `(1.20)` and `1.20-` negative; more than 6 decimal places is an error.

A cell that cannot be read adds a clause to `parse_error` and leaves its column null; the row is kept. Phone
numbers in `parse_error` are masked. A row whose mapped cells are all blank (a spacer or a note in an unmapped
column) is not a line.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import reduce

import pandas as pd
import phonenumbers
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import DecimalType, LongType, StringType, StructField, StructType, TimestampType

from jobs.ingest.layouts import LINE_BILL, Layout
from jobs.ingest.readers import MALFORMED, SOURCE_ROW
from transforms.phone import mask_phone, to_e164

MONEY = DecimalType(18, 6)
S, T, L = StringType(), TimestampType(), LongType()
# CONTRACT section 6, in its order, then the columns this ingest adds (allowed: columns beyond the contract's).
CARRIER_INVOICE_LINE = StructType([StructField(n, t, True) for n, t in (
    ("line_id", S), ("carrier", S), ("layout", S), ("invoice_id", S), ("start_time", T), ("start_time_alt", T),
    ("direction", S), ("source_number", S), ("destination_number", S), ("duration_s", L), ("billed_duration_s", L),
    ("cost", MONEY), ("currency", S), ("call_id", S), ("record_id", S), ("source_file", S), ("source_sha256", S),
    ("source_row", L), ("parse_error", S), ("ingested_at", T),
    # Which DST rule placed start_time: null, SPRING_FORWARD_SHIFTED or FALL_BACK_AMBIGUOUS.
    ("time_rule", S),
    # --period of the ingest (YYYY-MM), for files that carry no period of their own; null when not given.
    ("invoice_period", S),
)])
SPRING_FORWARD_SHIFTED = "SPRING_FORWARD_SHIFTED"
FALL_BACK_AMBIGUOUS = "FALL_BACK_AMBIGUOUS"

_ISO_DATE = "yyyy-MM-dd"
_ISO_TIME = "HH:mm[:ss][.SSSSSS]"
_SHOWN = 40                                    # characters of a bad cell quoted in parse_error
_MICROS_26H = 26 * 3600 * 1_000_000           # wider than any offset: brackets a transition near the wall clock
# Separators aside, 10 to 15 digits: long enough to hold a country code, no longer than E.164 allows.
_BARE_INTERNATIONAL = re.compile(r"\d{10,15}")
_BLANKS = " \t\r\n\u00a0\u2007\u202f\ufeff"     # trimmed from every cell


@dataclass(frozen=True)
class FileFacts:
    """What the lines of one file share besides its rows."""

    source_file: str
    source_sha256: str
    phone_region: str
    ingested_at: datetime
    period: str | None = None


def _clean(c: Column) -> Column:
    """Trimmed (no-break spaces too), empty as null. btrim, not a regex: ten times cheaper, on every cell."""
    return F.nullif(F.btrim(c, F.lit(_BLANKS)), F.lit(""))


def _quote(c: Column) -> Column:
    return F.concat(F.lit("'"), F.substring(c, 1, _SHOWN), F.lit("'"))


# --------------------------------------------------------------------------------------------------------- numbers
def _number(text: Column, mark: str) -> Column:
    """A number as written with the layout's decimal mark, in Spark's decimal syntax ('-1234.5'), or null.

    Digits are grouped by threes or not at all, then the decimal mark. Grouping that does not fit the mark
    ('0,0120' where '.' is the mark) is not a number: read loosely it would be 120, a silent error of four orders
    of magnitude. A leading 0 group ('0.012' where ',' is the mark) is refused too: it reads as 12 or as 0.012.
    """
    group, point = (",", "\\.") if mark == "." else ("\\.", ",")
    simple = text.rlike(f"^[+-]?\\d+({point}\\d+)?$")          # most cells: one cheap test
    grouped = text.rlike(f"^[+-]?([1-9]\\d{{0,2}}({group}\\d{{3}})+|\\d+)({point}\\d+)?$|^[+-]?{point}\\d+$")
    return F.when(simple | grouped, F.translate(text, ",", "") if mark == "." else F.translate(text, ",.", "."))


def _money_parsed(c: str, layout: Layout) -> dict[str, Column]:
    """The currency code written in a money cell (if any), the amount in Spark's decimal syntax, and whether it
    has at most 6 decimal places (trailing zeros aside), checked on the text: never through a float, nor through
    a wider decimal (decimal(18,6) is a long inside Spark; wider ones are BigDecimals, much slower)."""
    text = F.col(c)
    code = F.upper(F.coalesce(F.nullif(F.regexp_extract(text, "^([A-Za-z]{3})\\s*[-+(]?[\\d.,]", 1), F.lit("")),
                              F.nullif(F.regexp_extract(text, "[\\d.,)]\\s*([A-Za-z]{3})$", 1), F.lit(""))))
    body = F.trim(F.regexp_replace(F.regexp_replace(text, "^[A-Za-z]{3}\\s*|\\s*[A-Za-z]{3}$", ""), "[$£€¥]", ""))
    signed = (F.when(body.rlike("^\\(.*\\)$"), F.concat(F.lit("-"), F.regexp_extract(body, "^\\((.*)\\)$", 1)))
              .when(body.rlike("^[^-].*-$"), F.concat(F.lit("-"), F.regexp_extract(body, "^(.*)-$", 1)))
              .otherwise(body))
    point = "\\." if layout.decimal_mark == "." else ","
    bare = text.rlike(f"^-?\\d+({point}\\d+)?$")                # no symbol, code or sign to take off
    plain = F.when(bare, _number(text, layout.decimal_mark)).otherwise(_number(signed, layout.decimal_mark))
    return {f"_{c}_code": F.when(~bare, code), f"_{c}_plain": plain,
            f"_{c}_places": plain.rlike("^[+-]?\\d*(\\.\\d{0,6}0*)?$")}


def _money_value(c: str) -> Column:
    return F.when(F.col(f"_{c}_places"), F.col(f"_{c}_plain").try_cast(MONEY))


def _money_error(c: str, layout: Layout) -> Column:
    text, code, plain, value = F.col(c), F.col(f"_{c}_code"), F.col(f"_{c}_plain"), F.col(f"_{c}_value")
    return (F.when(text.isNull(), F.lit(f"{c} is empty"))
            .when(plain.isNull(), F.concat(F.lit(f"{c} "), _quote(text), F.lit(" is not a number")))
            .when(code.isNotNull() & (code != layout.currency),
                  F.concat(F.lit(f"{c} "), _quote(text), F.lit(" is in "), code,
                           F.lit(f", the layout's currency is {layout.currency}")))
            .when(~F.col(f"_{c}_places"),
                  F.concat(F.lit(f"{c} "), _quote(text), F.lit(" has more than 6 decimal places")))
            .when(value.isNull(), F.concat(F.lit(f"{c} "), _quote(text), F.lit(" is out of range"))))


_CLOCK = "^\\d{1,6}:[0-5]?\\d(:[0-5]\\d)?$"


def _duration_parsed(c: str, layout: Layout) -> dict[str, Column]:
    """Seconds of a cell in clock notation (else null), and the cell as a decimal number (else null)."""
    text = F.col(c)
    parts = F.split(text, ":")
    clock = (F.when(F.size(parts) == 3, parts[0].try_cast("bigint") * 3600 + parts[1].try_cast("bigint") * 60
                    + parts[2].try_cast("bigint"))
             .otherwise(parts[0].try_cast("bigint") * 60 + parts[1].try_cast("bigint")))
    return {f"_{c}_clock": F.when(text.contains(":") & text.rlike(_CLOCK), clock),
            f"_{c}_n": _number(text, layout.decimal_mark).try_cast("decimal(18,6)")}


def _duration_seconds(c: str, layout: Layout) -> Column:
    n = F.col(f"_{c}_n")
    unit = layout.unit(c)
    if unit == "seconds":
        numeric = F.round(n, 0)
    elif unit == "minutes":
        numeric = F.when(n == F.floor(n), n * 60)
    else:
        numeric = F.round(n * 60, 0)
    return F.coalesce(F.col(f"_{c}_clock"), numeric.try_cast("bigint"))


def _duration_error(c: str, layout: Layout, required: bool) -> Column:
    text, clock, n, seconds = F.col(c), F.col(f"_{c}_clock"), F.col(f"_{c}_n"), F.col(f"_{c}_value")
    unit = layout.unit(c)
    return (F.when(text.isNull(), F.lit(f"{c} is empty") if required else F.lit(None).cast("string"))
            .when(clock.isNull() & n.isNull(),
                  F.concat(F.lit(f"{c} "), _quote(text), F.lit(f" is not a number of {unit.replace('_', ' ')}")))
            .when(clock.isNull() & F.lit(unit == "minutes") & (n != F.floor(n)),
                  F.concat(F.lit(f"{c} "), _quote(text), F.lit(" is not a whole number of minutes (the layout's unit "
                                                               "is minutes: use decimal_minutes for fractions)")))
            .when(seconds.isNull(), F.concat(F.lit(f"{c} "), _quote(text), F.lit(" is out of range")))
            .when(seconds < 0, F.concat(F.lit(f"{c} "), _quote(text), F.lit(" is negative"))))


# ----------------------------------------------------------------------------------------------------------- times
def _wall(text: Column, pattern: str) -> Column:
    """The wall clock `text` shows as the instant at which a UTC clock shows it. The explicit +0000 makes the
    parse independent of the session time zone (Spark uses a parsed offset in place of the session's)."""
    return F.try_to_timestamp(F.concat(text, F.lit(" +0000")), F.lit(pattern + " Z"))


def _iso_t(text: Column) -> Column:
    return F.regexp_replace(text, "(?<=\\d)T(?=\\d)", " ")


def _start_parsed(layout: Layout) -> dict[str, Column]:
    """`_wall`: the local wall clock of the start (as `_wall` makes it); `_given`: the instant, when an ISO value
    carries its own offset (then `_wall` is null)."""
    if "start" in layout.columns:
        text = F.col("start")
        iso_local = _wall(_iso_t(text), f"{_ISO_DATE} {_ISO_TIME}")
        pattern = layout.pattern("start")
        if pattern is not None:
            return {"_wall": F.coalesce(_wall(text, pattern), iso_local), "_given": F.lit(None).cast("timestamp")}
        with_offset = _iso_t(text).rlike("(Z|[+-]\\d{2}:?\\d{2})$")
        given = F.try_to_timestamp(F.regexp_replace(_iso_t(text), "([+-]\\d{2})(\\d{2})$", "$1:$2"),
                                   F.lit(f"{_ISO_DATE} {_ISO_TIME}XXX"))
        return {"_wall": F.when(~with_offset, iso_local), "_given": F.when(with_offset, given)}
    day, clock = F.col("start_date"), F.col("start_time")
    day_pattern, time_pattern = layout.pattern("start_date"), layout.pattern("start_time")
    epoch_day = F.concat(F.lit("1970-01-01 "), clock)
    midnight = _wall(day, _ISO_DATE) if day_pattern is None else F.coalesce(_wall(day, day_pattern),
                                                                            _wall(day, _ISO_DATE))
    iso_clock = _wall(epoch_day, f"{_ISO_DATE} {_ISO_TIME}")
    time_of_day = iso_clock if time_pattern is None else F.coalesce(
        _wall(epoch_day, f"{_ISO_DATE} {time_pattern}"), iso_clock)
    return {"_midnight": midnight, "_time_of_day": time_of_day,
            "_wall": F.timestamp_micros(F.unix_micros(midnight) + F.unix_micros(time_of_day)),
            "_given": F.lit(None).cast("timestamp")}


def _start_error(layout: Layout) -> Column:
    if "start" in layout.columns:
        text = F.col("start")
        shown = layout.formats.get("start", "ISO 8601")
        return (F.when(text.isNull(), F.lit("start is empty"))
                .when(F.col("_wall").isNull() & F.col("_given").isNull(),
                      F.concat(F.lit("start "), _quote(text), F.lit(f" is not a date-time ({shown})"))))
    day, clock = F.col("start_date"), F.col("start_time")
    shown = f"{layout.formats.get('start_date', 'ISO 8601')} / {layout.formats.get('start_time', 'ISO 8601')}"
    return (F.when(day.isNull(), F.lit("start_date is empty"))
            .when(clock.isNull(), F.lit("start_time is empty"))
            .when(F.col("_midnight").isNull(),
                  F.concat(F.lit("start_date "), _quote(day), F.lit(f" is not a date ({shown})")))
            .when(F.col("_time_of_day").isNull(),
                  F.concat(F.lit("start_time "), _quote(clock), F.lit(f" is not a time of day ({shown})"))))


def _local_us(instant_us: Column, zone: str) -> Column:
    """The wall clock in `zone` at an instant (both as epoch microseconds; the wall clock read as if UTC)."""
    return F.unix_micros(F.from_utc_timestamp(F.timestamp_micros(instant_us), zone))


def local_to_utc(wall: DataFrame, zone: str) -> DataFrame:
    """Add `_first`, `_other` (epoch microseconds) and `time_rule` for the wall clock `_wall` in IANA `zone`.

    The offsets in force a day before and a day after the wall clock are looked up first: equal (nearly every
    line), the instant is the wall clock less that offset. Otherwise a change is near: `to_utc_timestamp` reads
    the wall clock by java.time's rules (in a gap it moves the clock forward by the gap, in an overlap it takes
    the earlier offset); a gap shows as a wall clock that does not come back from that instant
    (SPRING_FORWARD_SHIFTED), an overlap as a second instant, the wall clock less the other offset, that does
    (FALL_BACK_AMBIGUOUS). Null `_wall`: all null.
    """
    wall_us = F.unix_micros("_wall")
    offsets = wall.withColumns({
        "_before": _local_us(wall_us - _MICROS_26H, zone) - (wall_us - _MICROS_26H),
        "_after": _local_us(wall_us + _MICROS_26H, zone) - (wall_us + _MICROS_26H),
    })
    steady = F.col("_before") == F.col("_after")
    first = offsets.withColumn("_first", F.when(steady, wall_us - F.col("_before"))
                               .otherwise(F.unix_micros(F.to_utc_timestamp(F.col("_wall"), zone))))
    other = F.lit(None).cast("bigint")
    for candidate in (wall_us - F.col("_before"), wall_us - F.col("_after")):
        fits = (candidate != F.col("_first")) & (_local_us(candidate, zone) == wall_us)
        other = F.when(fits, candidate).otherwise(other)
    changing = first.withColumns({"_other": F.when(~steady, other),
                                  "_gap": ~steady & (_local_us(F.col("_first"), zone) != wall_us)})
    return changing.withColumn("time_rule", F.when(F.col("_gap"), F.lit(SPRING_FORWARD_SHIFTED))
                               .when(F.col("_other").isNotNull(), F.lit(FALL_BACK_AMBIGUOUS)))


# ---------------------------------------------------------------------------------------------------- directions
def _direction_value(layout: Layout) -> Column:
    if layout.fixed_direction is not None:
        return F.lit(layout.fixed_direction)
    word = F.upper(F.col("direction"))
    value: Column | None = None
    for direction, words in layout.direction_words.items():
        hit = word.isin([w.upper() for w in words])
        value = F.when(hit, F.lit(direction)) if value is None else value.when(hit, F.lit(direction))
    assert value is not None
    return value


def _direction_error(layout: Layout) -> Column:
    if layout.fixed_direction is not None:
        return F.lit(None).cast("string")
    known = "; ".join(f"{d}: {', '.join(ws)}" for d, ws in layout.direction_words.items())
    text = F.col("direction")
    return (F.when(text.isNull(), F.lit("direction is empty"))
            .when(F.col("_direction").isNull(),
                  F.concat(F.lit("direction "), _quote(text), F.lit(f" is not a word of the layout ({known})"))))


# ------------------------------------------------------------------------------------------------------------ all
def phone_columns(layout: Layout) -> list[str]:
    """The layout's columns that hold phone numbers (none: a bill whose lines carry ICCIDs only)."""
    names = ("phone",) if layout.kind == LINE_BILL else ("source_number", "destination_number")
    return [c for c in names if c in layout.columns]


def line_id(sha256: Column) -> Column:
    """A line's id: sha256 of `<file SHA-256>:<1-based data row>` (deterministic: the same bytes, the same ids)."""
    return F.sha2(F.concat(sha256, F.lit(":"), F.col(SOURCE_ROW).cast("string")), 256)


def mapped_rows(raw: DataFrame, layout: Layout) -> tuple[DataFrame, list[str]]:
    """The rows of `readers.read` with every mapped cell cleaned (`_clean`), less the rows whose mapped cells are
    all blank (a spacer, a note in an unmapped column); and the mapped column names."""
    mapped = [c for c in raw.columns if c not in (SOURCE_ROW, MALFORMED)]
    missing = [c for c in layout.columns if c not in mapped]
    if missing:
        raise ValueError(f"reader gave no column {missing} for layout {layout.name}")
    cleaned = raw.select(SOURCE_ROW, MALFORMED, *[_clean(F.col(c)).alias(c) for c in mapped])
    return cleaned.where(reduce(operator.or_, [F.col(c).isNotNull() for c in mapped],
                                F.col(MALFORMED).isNotNull())), mapped


def with_numbers(rows: DataFrame, numbers: DataFrame, phones: list[str]) -> DataFrame:
    """`_<column>`: the E.164 form of each phone column's cell, from `e164_numbers` of the same file."""
    for c in phones:
        side = numbers.select(F.col("_raw").alias(f"__{c}_raw"), F.col("_e164").alias(f"_{c}"))
        rows = rows.join(side, F.col(c) == F.col(f"__{c}_raw"), "left").drop(f"__{c}_raw")
    return rows


def e164_numbers(raw: DataFrame, layout: Layout, region: str) -> DataFrame:
    """The file's distinct phone cells (`_raw`, trimmed) and their E.164 form (`_e164`, null when unreadable).

    Parsing is the project's (`transforms.phone.to_e164`: phonenumbers, possible-number rule, 00, tel: and label
    handling, extensions dropped) in a pandas UDF over the DISTINCT cells, as `normalize_phone_columns` does;
    called here directly because the distinct cells are all there is to parse (no wide table to join back). A cell
    that does not parse in the region is tried once more as bare international digits ('442079460958' read as
    '+44...'): carrier files often write E.164 without its plus. Cut the result
    (transforms.checkpoints.materialize_freeing) before handing it to `normalize` (or `bill_lines.normalize_bill`),
    which joins it once per phone column (`with_numbers`).
    """
    if region not in phonenumbers.SUPPORTED_REGIONS:
        raise ValueError(f"unknown phone region {region!r} (expected an ISO 3166 code like 'US')")
    if not phone_columns(layout):
        raise ValueError(f"layout {layout.name} maps no phone column: it has no numbers to normalise")
    cells = [raw.select(_clean(F.col(c)).alias("_raw")) for c in phone_columns(layout)]
    values = reduce(DataFrame.unionByName, cells).where(F.col("_raw").isNotNull()).distinct()

    def parse(texts: pd.Series) -> pd.Series:
        out = []
        for text in texts:
            e164 = to_e164(text, region)
            if e164 is None:
                digits = re.sub(r"[\s().\-/]", "", text)
                if _BARE_INTERNATIONAL.fullmatch(digits):
                    e164 = to_e164("+" + digits, region)
            out.append(e164)
        return pd.Series(out, index=texts.index, dtype=object)

    e164 = F.pandas_udf(parse, returnType=StringType())  # type: ignore[call-overload]
    return values.select("_raw", e164(F.col("_raw")).alias("_e164"))


def normalize(layout: Layout, facts: FileFacts, numbers: DataFrame) -> Callable[[DataFrame], DataFrame]:
    """Rows from `readers.read` -> carrier_invoice_line rows (CARRIER_INVOICE_LINE's columns, in order).

    `numbers` is `e164_numbers` of the same rows. Built in stages (clean, numbers, parse, values, errors), each a
    projection over the previous one's columns, so every cell is parsed once and the generated code stays small.

    Example::

        raw = readers.read(spark, path, kind, match)
        numbers = materialize_freeing(lambda: e164_numbers(raw, layout, "US"))
        lines = raw.transform(normalize(layout, facts, numbers))
    """

    def transform(raw: DataFrame) -> DataFrame:
        rows, mapped = mapped_rows(raw, layout)
        phones = phone_columns(layout)
        rows = with_numbers(rows, numbers, phones)
        durations = ["billed_duration"] + (["duration"] if "duration" in mapped else [])
        parsed = rows.withColumns({
            **_start_parsed(layout),
            **{k: v for d in durations for k, v in _duration_parsed(d, layout).items()},
            **_money_parsed("cost", layout),
            "_direction": _direction_value(layout),
        })
        valued = parsed.withColumns({
            **{f"_{d}_value": _duration_seconds(d, layout) for d in durations},
            "_cost_value": _money_value("cost"),
        })
        if layout.timezone == "UTC":
            timed = valued.withColumns({"_first": F.unix_micros("_wall"), "_other": F.lit(None).cast("bigint"),
                                        "time_rule": F.lit(None).cast("string")})
        else:
            timed = local_to_utc(valued, layout.timezone)
        errors: dict[str, Column] = {}
        for c in phones:
            errors[f"_e_{c}"] = F.when(F.col(c).isNull(), F.lit(f"{c} is empty")).when(
                F.col(f"_{c}").isNull(), F.concat(F.lit(f"{c} is not a phone number ("), mask_phone(F.col(c)),
                                                  F.lit(")")))
        errors["_e_start"] = _start_error(layout)
        errors["_e_direction"] = _direction_error(layout)
        errors.update({f"_e_{d}": _duration_error(d, layout, required=d == "billed_duration") for d in durations})
        errors["_e_cost"] = _money_error("cost", layout)
        if layout.carrier_column:
            carrier = F.coalesce(F.col("carrier"), F.lit(layout.carrier))
            errors["_e_carrier"] = F.when(carrier.isNull(), F.lit(f"carrier is empty ({layout.carrier_column})"))
        else:
            carrier = F.lit(layout.carrier)
        checked = timed.withColumns(errors)
        checked = checked.withColumn("_problems", F.concat_ws("; ", F.col(MALFORMED), *map(F.col, errors)))

        def text_of(c: str) -> Column:
            return F.col(c) if c in mapped else F.lit(None).cast("string")

        def number_of(c: str) -> Column:
            return F.col(f"_{c}") if c in phones else F.lit(None).cast("string")

        def valid(c: str) -> Column:
            return F.when(F.col(f"_e_{c}").isNull(), F.col(f"_{c}_value"))

        sha = F.lit(facts.source_sha256)
        out = checked.select(
            line_id(sha).alias("line_id"),
            carrier.alias("carrier"),
            F.lit(layout.name).alias("layout"),
            text_of("invoice_id").alias("invoice_id"),
            F.coalesce(F.col("_given"), F.timestamp_micros(F.least("_first", "_other"))).alias("start_time"),
            F.when(F.col("_other").isNotNull(), F.timestamp_micros(F.greatest("_first", "_other")))
            .alias("start_time_alt"),
            F.col("_direction").alias("direction"),
            number_of("source_number").alias("source_number"),
            number_of("destination_number").alias("destination_number"),
            (valid("duration") if "duration" in durations else F.lit(None).cast("bigint")).alias("duration_s"),
            valid("billed_duration").alias("billed_duration_s"),
            valid("cost").alias("cost"),
            F.lit(layout.currency).alias("currency"),
            text_of("call_id").alias("call_id"),
            text_of("record_id").alias("record_id"),
            F.lit(facts.source_file).alias("source_file"),
            sha.alias("source_sha256"),
            F.col(SOURCE_ROW).cast("bigint").alias("source_row"),
            F.when(F.col("_problems") != "", F.col("_problems")).alias("parse_error"),
            F.lit(facts.ingested_at).cast("timestamp").alias("ingested_at"),
            F.col("time_rule"),
            F.lit(facts.period).cast("string").alias("invoice_period"),
        )
        return out.select([F.col(f.name).cast(f.dataType).alias(f.name) for f in CARRIER_INVOICE_LINE.fields])

    return transform
