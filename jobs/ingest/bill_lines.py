"""Carrier bill cells (strings) to carrier_bill_line's types (CONTRACT section 9), as Spark column expressions.

A line_bill layout's file lists the lines a carrier bills us for: a bill id, the bill's period, the line's phone
number and/or SIM (ICCID), its data usage and its amount. What each becomes, and why:

- `phone`: E.164 by the project's phone normalisation (`transforms.phone.to_e164` over the file's DISTINCT cells,
  `normalize.e164_numbers`), so "(555) 123-4567", "1.555.123.4567", "MTN: 555-123-4567" and "555.123.4567 x100"
  are one line: extensions and labels dropped. A cell that is no possible number leaves `phone` null; the line is
  kept (the audit quarantines a line with neither phone nor ICCID) and `parse_warning` says why.
- `iccid`: the cell's digits once spaces and dashes are taken out, when they are 18 to 22 of them (an ICCID is 19
  or 20 digits; some carriers drop or pad the check digit); anything else (letters, the SIM's 'F' filler, a phone
  number, a spreadsheet's rounded 8.9103E+18) is no ICCID: null, with `parse_warning`. A carrier that bills SIMs
  in a phone-looking column (Service_TN) maps that header to `iccid` in its layout.
- `usage_mb`: decimal(18,6) megabytes from the layout's unit (`units: {usage: KB | MB | GB}`, MB by default;
  decimal prefixes: 1 GB = 1000 MB), or the unit written in the cell ("512 KB"); computed on exact decimals, so a
  value that would need more than 6 decimal places of a MB is an error, never rounded. Null when the layout has no
  usage column, or the cell is blank (no usage).
- `amount`: decimal(18,6) money by the call-invoice rules (`normalize._money_*`: grouping checked against the
  decimal mark, currency symbols and codes, negatives in parentheses); a blank cell is no amount (null, no error).
- `bill_period`: YYYY-MM from the layout's strptime format (`formats: {bill_period: "%m/%Y"}`; a full date such as
  a bill date gives its month), ISO 8601 accepted besides (typed Excel dates arrive so); no column, or a blank
  cell, takes the ingest's --period. Computed from calendar fields, never through the session's time zone.
- `carrier`: the layout's carrier, or the row's provider where the layout names a `carrier_column` (a reseller).

A cell that cannot be read (usage or amount no number, a period no period, an empty bill id) adds a clause to
`parse_error` and leaves its column null; the row is appended all the same. Phone numbers in messages are masked.
"""

from __future__ import annotations

from collections.abc import Callable

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import DecimalType, StringType, StructField, StructType

from jobs.ingest.layouts import USAGE_UNITS, Layout
from jobs.ingest.normalize import (
    MONEY,
    FileFacts,
    _iso_t,
    _money_error,
    _money_parsed,
    _money_value,
    _number,
    _quote,
    _wall,
    line_id,
    mapped_rows,
    phone_columns,
    with_numbers,
)
from jobs.ingest.readers import MALFORMED, SOURCE_ROW
from transforms.phone import mask_phone
from transforms.schema import INPUT_SCHEMAS

S = StringType()
# The contract's carrier_bill_line (transforms/schema.py, which the audit reads it by) plus what ingest adds: cells
# read as null that leave the line readable (a phone that is no possible number, an ICCID that is none).
CARRIER_BILL_LINE = StructType([*INPUT_SCHEMAS["carrier_bill_line"].fields, StructField("parse_warning", S, True)])
ICCID_DIGITS = (18, 22)
# Parsed with up to 9 decimal places (a GB cell's 6 places of a MB), multiplied exactly, then held as decimal(18,6).
_USAGE_PARSE = DecimalType(30, 12)
_UNIT_SUFFIX = "(?i)\\s*([KMG]B)$"


def _period(month_start: Column) -> Column:
    """'YYYY-MM' of a parsed instant, from the calendar fields of its UTC day (no session time zone involved)."""
    day = F.date_from_unix_date(F.floor(F.unix_micros(month_start) / F.lit(86_400_000_000)).cast("int"))
    return F.when(day.isNotNull(), F.format_string("%04d-%02d", F.year(day), F.month(day)))


def _period_parsed(layout: Layout) -> Column:
    """The bill_period cell as YYYY-MM, or null: the layout's format, else (or besides) ISO 8601."""
    text = F.col("bill_period")
    iso = F.coalesce(_wall(_iso_t(text), "yyyy-MM-dd HH:mm[:ss][.SSSSSS]"), _wall(text, "yyyy-MM-dd"),
                     _wall(text, "yyyy-MM"))
    pattern = layout.pattern("bill_period")
    return _period(iso if pattern is None else F.coalesce(_wall(text, pattern), iso))


def _usage_parsed(layout: Layout) -> dict[str, Column]:
    """`_usage_unit` (the cell's own unit, else the layout's), `_usage_plain` (the number in Spark's syntax) and
    `_usage_places` (whether it has no more decimal places than its unit allows for 6 places of a MB)."""
    text = F.col("usage")
    written = F.upper(F.nullif(F.regexp_extract(text, _UNIT_SUFFIX, 1), F.lit("")))
    unit = F.coalesce(written, F.lit(layout.usage_unit))
    plain = _number(F.regexp_replace(text, _UNIT_SUFFIX, ""), layout.decimal_mark)
    places: Column | None = None
    for name, factor in USAGE_UNITS.items():
        allowed = 6 + factor.adjusted()          # KB: 3, MB: 6, GB: 9
        fits = plain.rlike(f"^[+-]?\\d*(\\.\\d{{0,{allowed}}}0*)?$")
        places = F.when(unit == name, fits) if places is None else places.when(unit == name, fits)
    assert places is not None
    return {"_usage_unit": unit, "_usage_plain": plain, "_usage_places": places}


def _usage_value() -> Column:
    parsed = F.col("_usage_plain").try_cast(_USAGE_PARSE)
    value: Column | None = None
    for name, factor in USAGE_UNITS.items():
        mb = (parsed * F.lit(factor)).try_cast(MONEY)
        value = F.when(F.col("_usage_unit") == name, mb) if value is None else value.when(F.col("_usage_unit") == name,
                                                                                       mb)
    assert value is not None
    return F.when(F.col("_usage_places"), value)


def _usage_error() -> Column:
    text, unit, value = F.col("usage"), F.col("_usage_unit"), F.col("_usage_mb")
    shown = F.concat(F.lit("usage "), _quote(text))
    return (F.when(text.isNull(), F.lit(None).cast("string"))
            .when(F.col("_usage_plain").isNull(), F.concat(shown, F.lit(" is not a number of "), unit))
            .when(~F.col("_usage_places"),
                  F.concat(shown, F.lit(" has more decimal places than 6 of a MB ("), unit, F.lit(")")))
            .when(value.isNull(), F.concat(shown, F.lit(" is out of range")))
            .when(value < 0, F.concat(shown, F.lit(" is negative"))))


def normalize_bill(layout: Layout, facts: FileFacts, numbers: DataFrame | None) -> Callable[[DataFrame], DataFrame]:
    """Rows from `readers.read` -> carrier_bill_line rows (CARRIER_BILL_LINE's columns, in order).

    `numbers` is `normalize.e164_numbers` of the same rows (None when the layout maps no phone column). A layout
    without a bill_period column needs `facts.period` (the ingest's --period; jobs/ingest/cli.py refuses the file
    before Spark starts otherwise).

    Example::

        raw = readers.read(spark, path, kind, match)
        numbers = materialize_freeing(lambda: e164_numbers(raw, layout, "US"))
        lines = raw.transform(normalize_bill(layout, facts, numbers))
    """
    if "bill_period" not in layout.columns and facts.period is None:
        raise ValueError(f"layout {layout.name} has no bill_period column and no period was given")

    def transform(raw: DataFrame) -> DataFrame:
        rows, mapped = mapped_rows(raw, layout)
        phones = phone_columns(layout)
        if phones:
            if numbers is None:
                raise ValueError(f"layout {layout.name} maps a phone column: its numbers are needed")
            rows = with_numbers(rows, numbers, phones)
        given = F.lit(facts.period).cast("string")
        has = {c: c in mapped for c in ("bill_period", "iccid", "usage", "amount")}
        iccid_digits = F.regexp_replace(F.col("iccid"), "[\\s-]", "")
        low, high = ICCID_DIGITS
        parsed = rows.withColumns({
            "_period": _period_parsed(layout) if has["bill_period"] else F.lit(None).cast("string"),
            "_iccid": (F.when(iccid_digits.rlike(f"^\\d{{{low},{high}}}$"), iccid_digits) if has["iccid"]
                       else F.lit(None).cast("string")),
            **(_usage_parsed(layout) if has["usage"] else {}),
            **(_money_parsed("amount", layout) if has["amount"] else {}),
        })
        valued = parsed.withColumns({
            **({"_usage_mb": _usage_value()} if has["usage"] else {}),
            **({"_amount_value": _money_value("amount")} if has["amount"] else {}),
        })
        errors: dict[str, Column] = {"_e_bill_id": F.when(F.col("bill_id").isNull(), F.lit("bill_id is empty"))}
        if has["bill_period"]:
            shown = layout.formats.get("bill_period", "YYYY-MM")
            text = F.col("bill_period")
            errors["_e_bill_period"] = (
                F.when(text.isNull() & given.isNull(), F.lit("bill_period is empty"))
                .when(text.isNotNull() & F.col("_period").isNull(),
                      F.concat(F.lit("bill_period "), _quote(text), F.lit(f" is not a period ({shown})"))))
        if has["usage"]:
            errors["_e_usage"] = _usage_error()
        if has["amount"]:
            errors["_e_amount"] = F.when(F.col("amount").isNotNull(), _money_error("amount", layout))
        if layout.carrier_column:
            carrier = F.coalesce(F.col("carrier"), F.lit(layout.carrier))
            errors["_e_carrier"] = F.when(carrier.isNull(), F.lit(f"carrier is empty ({layout.carrier_column})"))
        else:
            carrier = F.lit(layout.carrier)
        warnings: dict[str, Column] = {}
        if phones:
            warnings["_w_phone"] = F.when(F.col("phone").isNotNull() & F.col("_phone").isNull(), F.concat(
                F.lit("phone is not a phone number ("), mask_phone(F.col("phone")), F.lit(")")))
        if has["iccid"]:
            warnings["_w_iccid"] = F.when(F.col("iccid").isNotNull() & F.col("_iccid").isNull(), F.concat(
                F.lit(f"iccid is not an ICCID of {low} to {high} digits ("), mask_phone(F.col("iccid")), F.lit(")")))
        checked = valued.withColumns({**errors, **warnings}).withColumns({
            "_problems": F.concat_ws("; ", F.col(MALFORMED), *map(F.col, errors)),
            "_warnings": F.concat_ws("; ", *map(F.col, warnings)) if warnings else F.lit(""),
        })

        def valid(c: str, value: str) -> Column:
            return F.when(F.col(f"_e_{c}").isNull(), F.col(value)) if has[c] else F.lit(None).cast(MONEY)

        sha = F.lit(facts.source_sha256)
        out = checked.select(
            line_id(sha).alias("line_id"),
            carrier.alias("carrier"),
            F.lit(layout.name).alias("layout"),
            F.col("bill_id"),
            (F.when(F.col("bill_period").isNull(), given).otherwise(F.col("_period")) if has["bill_period"]
             else given).alias("bill_period"),
            (F.col("_phone") if phones else F.lit(None).cast("string")).alias("phone"),
            F.col("_iccid").alias("iccid"),
            valid("usage", "_usage_mb").alias("usage_mb"),
            valid("amount", "_amount_value").alias("amount"),
            F.lit(layout.currency).alias("currency"),
            F.lit(facts.source_file).alias("source_file"),
            sha.alias("source_sha256"),
            F.col(SOURCE_ROW).cast("bigint").alias("source_row"),
            F.when(F.col("_problems") != "", F.col("_problems")).alias("parse_error"),
            F.lit(facts.ingested_at).cast("timestamp").alias("ingested_at"),
            F.when(F.col("_warnings") != "", F.col("_warnings")).alias("parse_warning"),
        )
        return out.select([F.col(f.name).cast(f.dataType).alias(f.name) for f in CARRIER_BILL_LINE.fields])

    return transform
