"""Phone-number normalization to E.164, and masking of numbers for logs and reports.

Why: cdr, rated_event, bill_charge and carrier invoices carry the same subscriber in different formats
(`+1 555-123-4567`, `(555) 123-4567`, `tel:+44-20-7946-0958;ext=12`, ...). Reconciliation may only compare numbers
after they are normalized to E.164 (CONTRACT section 2, docs/usage_to_bill.md "Normalization"); extensions are
dropped because a PBX extension bills to its trunk number.

Parsing is done by `phonenumbers`, which is pure Python and comparatively slow. A month of usage repeats the same few
numbers millions of times, so `normalize_phone_columns` parses each DISTINCT raw value once (in a vectorized pandas
UDF, never a row-at-a-time `@udf`) and joins that small mapping back, instead of parsing every row.

Numbers are personal data: anything that logs or reports a number should pass it through `mask_phone` (Spark) or
`mask_phone_str` (Python) first.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import pandas as pd
import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberFormat, ValidationResult
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import StringType

from transforms.checkpoints import materialize, small_mode

LOG = logging.getLogger(__name__)
# Session setting: the largest E.164 mapping (estimated bytes in a broadcast hash table) that is broadcast; 0: never.
# What a broadcast costs is memory, on the driver and in every executor, so the limit is in bytes, not values.
BROADCAST_LIMIT_KEY = "spark.telcora.phone.broadcastMaxBytes"
BROADCAST_LIMIT_DEFAULT = "256m"
# Per mapping entry, besides the characters: the hash table's entry and the two UnsafeRows' headers and padding.
_ENTRY_OVERHEAD_BYTES = 64

_TEL_SCHEME = re.compile(r"^tel:", re.IGNORECASE)
# The number proper starts at the first digit or plus sign; letters before it mean an alphanumeric sender
# ("INFO1234567890"), which phonenumbers would otherwise silently strip. Letters after it are vanity digits or an
# extension marker ("1-800-FLOWERS", "555.123.4567 x100") and are left to phonenumbers.
_LETTER_BEFORE_NUMBER = re.compile(r"^[^\d+\uff0b]*[^\W\d_]")
# A label before the number, as carrier bills and CRM exports write it ("MTN: 555-123-4567", "sub: +1 (555) ...",
# "Mobile #: ..."): words, then a colon, then the number. It names the column, not the number, and is dropped; an
# alphanumeric sender has no colon and is still refused. "tel:" (RFC 3966) is the URI scheme, left to phonenumbers.
_LABEL = re.compile(r"^\s*[^\W\d_]+(?:[ ._/-]+[^\W\d_]+)*\s*#?\s*:\s*(?=[\d+\uff0b(])")
# "00" is the ITU-recommended international call prefix. phonenumbers only understands the default region's own
# prefix (011 for US), so "00 44 20 7946 0958" with region US is retried as "+44 20 7946 0958".
_DOUBLE_ZERO_PREFIX = re.compile(r"^[\s().\-/]*0[\s().\-/]*0")

_MASK = "***"
# The mapping's columns: a column's label, a raw value, its E.164 form.
_COL, _RAW, _E164 = "__phone_col", "__phone_raw", "__phone_e164"


def _parse_possible(text: str, region: str) -> phonenumbers.PhoneNumber | None:
    """The parsed number if it is a possible full number, else None (never raises)."""
    try:
        number = phonenumbers.parse(text, region)
    except NumberParseException:
        return None
    # IS_POSSIBLE only: a local-only number ("555-1234" in US, no area code) has no E.164 form, and
    # is_possible_number() would accept it (IS_POSSIBLE_LOCAL_ONLY) and yield a bogus "+15551234".
    if phonenumbers.is_possible_number_with_reason(number) != ValidationResult.IS_POSSIBLE:
        return None
    return number


def to_e164(raw: str | None, default_region: str) -> str | None:
    """Normalize one raw phone number to E.164 (`+15551234567`), or None when it is not a possible phone number.

    Accepts `tel:` URIs (RFC 3966, `;ext=` dropped), national and international formats, a `00` international
    prefix, `+44 (0)20 ...`, extensions (`x100`, `ext. 100`, `#100`: dropped, the main number is returned) and a
    label before the number (`MTN: 555-123-4567`, `sub: +1 (555) 123-4567`: dropped).
    Uses `is_possible_number` semantics (length-based), not `is_valid_number`, so fictional 555 numbers pass.
    Never raises: None, empty, alphanumeric senders ('BANK') and garbage give None.

    Example::

        to_e164("(555) 123-4567", "US")  # '+15551234567'
    """
    if not isinstance(raw, str):
        return None
    text = raw.strip()
    if not text:
        return None
    region = default_region.strip().upper() if isinstance(default_region, str) else ""
    if not _TEL_SCHEME.match(text):
        text = _LABEL.sub("", text, count=1)
    number_part = _TEL_SCHEME.sub("", text, count=1)
    if _LETTER_BEFORE_NUMBER.match(number_part):
        return None
    try:
        number = _parse_possible(text, region)
        if number is None and _DOUBLE_ZERO_PREFIX.match(number_part):
            number = _parse_possible("+" + _DOUBLE_ZERO_PREFIX.sub("", number_part, count=1), region)
        if number is None:
            return None
        return str(phonenumbers.format_number(number, PhoneNumberFormat.E164))
    except (ValueError, TypeError, IndexError, KeyError, AttributeError):  # defensive: phonenumbers internals
        LOG.debug("phone number could not be normalized: %s", mask_phone_str(text))
        return None


def _e164_pandas_udf(default_region: str) -> Callable[[Column], Column]:
    """A Series -> Series pandas UDF mapping raw values to E.164, with the region bound by closure."""

    def to_e164_series(raw: pd.Series) -> pd.Series:
        return pd.Series([to_e164(value, default_region) for value in raw], index=raw.index, dtype=object)

    return F.pandas_udf(to_e164_series, returnType=StringType())  # type: ignore[call-overload]


@dataclass(frozen=True)
class PhoneMapping:
    """Raw phone values -> E.164 for the columns of one or more frames (a run's inputs), each distinct raw value
    parsed once: `pairs` (`__phone_col` a column's label, `__phone_raw`) are the distinct values of each column,
    `parsed` (`__phone_raw`, `__phone_e164`) the distinct values of them all; both are cuts. `whole_broadcast`:
    the whole of `parsed` weighs at most the broadcast limit, so every column joins it broadcast, as it is."""

    pairs: DataFrame
    parsed: DataFrame
    whole_broadcast: bool
    region: str
    labels: tuple[str, ...]


def _region(default_region: str) -> str:
    region = default_region.strip().upper()
    if region not in phonenumbers.SUPPORTED_REGIONS:
        raise ValueError(f"unknown default phone region {default_region!r} (expected an ISO 3166 code like 'US')")
    return region


def phone_mapping(sources: Mapping[str, tuple[DataFrame, Sequence[str]]], default_region: str) -> PhoneMapping:
    """One mapping for the phone columns of several frames: `{label: (frame, columns)}`, a column known afterwards
    as `label.column` (`normalize_phone_columns(..., mapping=, label=)`).

    Why one: a month's inputs carry the same subscribers (a call's number is on its cdr, its rated event and its
    charge), and parsing is the slow part (phonenumbers is pure Python). Parsed per input, every number was parsed
    once per input that carries it, and each input paid its own jobs for it.
    """
    region = _region(default_region)
    raw_values: DataFrame | None = None
    limit = -1
    labels: list[str] = []
    for label, (frame, columns) in sources.items():
        if len(set(columns)) != len(columns):
            raise ValueError(f"phone columns listed twice: {list(columns)}")
        for c in columns:
            if c not in frame.columns:
                raise ValueError(f"phone columns not in DataFrame: [{c!r}]; it has {frame.columns}")
            labels.append(f"{label}.{c}")
            values = frame.select(F.lit(f"{label}.{c}").alias(_COL), F.col(c).cast("string").alias(_RAW))
            raw_values = values if raw_values is None else raw_values.unionByName(values)
            limit = _broadcast_limit(frame.sparkSession)      # a bad setting fails before any job
    if raw_values is None:
        raise ValueError("phone_mapping: no phone column given")
    # (column, raw value) pairs, so that where the whole mapping is too big to broadcast each column gets a mapping
    # of its own values only: a column with few distinct values (other_party: a few thousand short codes and
    # trunks) is broadcast even when another (msisdn: millions) is too big to be, and only the big one costs a
    # shuffle of the wide table.
    pairs = materialize(raw_values.where(F.col(_RAW).isNotNull()).distinct())
    to_e164_col = _e164_pandas_udf(region)
    parsed = materialize(pairs.select(_RAW).distinct()
                         .select(F.col(_RAW), to_e164_col(F.col(_RAW)).alias(_E164)))
    # Distinct numbers grow with subscribers, not with usage: a month's mapping is often small enough to
    # broadcast, which spares one shuffle of the whole (wide) table per phone column. Past the limit (a huge
    # subscriber base) it is a shuffle join, which scales without the driver holding the mapping.
    whole = not small_mode() and limit > 0 and _hash_table_bytes(parsed, _RAW, _E164) <= limit
    return PhoneMapping(pairs, parsed, whole, region, tuple(labels))


def _broadcast_limit(spark: SparkSession) -> int:
    return _byte_size(spark.conf.get(BROADCAST_LIMIT_KEY, BROADCAST_LIMIT_DEFAULT) or "0")


def normalize_phone_columns(
    columns: Sequence[str], default_region: str, suffix: str = "_e164", mapping: PhoneMapping | None = None,
    label: str = "",
) -> Callable[[DataFrame], DataFrame]:
    """Add `<col><suffix>` (nullable string, E.164 or null) for each phone column; use with `DataFrame.transform`.

    The distinct raw values of all the columns are taken once (one union + distinct) and parsed by a pandas UDF;
    each column's own part of that mapping is left-joined back on the raw value (cast to string), broadcast when it
    is small enough (spark.telcora.phone.broadcastMaxBytes). A null raw value, or
    one that is not a possible number, gives null. Rows are never dropped or duplicated (the mapping is unique on
    the raw value) but their order is not kept.

    `mapping`: one made beforehand by `phone_mapping` for the frame's own rows or for several frames (a run's
    inputs), this one's columns under `label` (then nothing is parsed here); else one is made from the frame.

    Example::

        cdr.transform(normalize_phone_columns(["msisdn", "other_party"], "US"))
    """
    cols = list(columns)
    region = _region(default_region)
    if len(set(cols)) != len(cols):
        raise ValueError(f"phone columns listed twice: {cols}")
    if not suffix:
        raise ValueError("suffix must not be empty (the raw columns are kept)")

    def transform(df: DataFrame) -> DataFrame:
        if not cols:
            return df
        missing = [c for c in cols if c not in df.columns]
        if missing:
            raise ValueError(f"phone columns not in DataFrame: {missing}; it has {df.columns}")
        clashing = [c + suffix for c in cols if c + suffix in df.columns]
        if clashing:
            raise ValueError(f"output columns already exist: {clashing}")
        if any(c.startswith("__phone_") for c in df.columns):
            raise ValueError("column names starting with '__phone_' are reserved by normalize_phone_columns")
        if mapping is not None and mapping.region != region:
            raise ValueError(f"the phone mapping was made for region {mapping.region}, not {region}")
        if mapping is not None:
            unmapped = [f"{label}.{c}" for c in cols if f"{label}.{c}" not in mapping.labels]
            if unmapped:    # else every number of the column would come out null, for no reason a reader could see
                raise ValueError(f"phone columns {unmapped} are not in the mapping (it has {list(mapping.labels)})")
        own = mapping if mapping is not None else phone_mapping({label: (df, cols)}, region)
        limit = _broadcast_limit(df.sparkSession)
        out = df
        for i, c in enumerate(cols):
            key = f"{_RAW}_{i}"
            column_map = own.parsed
            if own.whole_broadcast:
                column_map = F.broadcast(column_map)
            elif not small_mode() and own.labels != (f"{label}.{c}",):    # one column: its values are all of them
                column_map = materialize(own.parsed.join(
                    own.pairs.where(F.col(_COL) == f"{label}.{c}").select(_RAW), _RAW, "left_semi"))
                if limit > 0 and _hash_table_bytes(column_map, _RAW, _E164) <= limit:
                    column_map = F.broadcast(column_map)
            side = column_map.select(F.col(_RAW).alias(key), F.col(_E164).alias(c + suffix))
            out = out.join(side, out[c].cast("string") == side[key], "left").drop(key)
        LOG.debug("normalize_phone_columns: %s -> E.164 (region %s)", cols, region)
        return out

    return transform


def _hash_table_bytes(mapping: DataFrame, raw_key: str, e164_key: str) -> int:
    """Roughly what the mapping weighs as a broadcast hash table: the raw key twice (key and row), the E.164 value,
    and a fixed overhead per entry. One pass over the (already computed) mapping, a single row back."""
    row = mapping.agg(F.count(F.lit(1)).alias("n"),
                      F.sum(2 * F.length(raw_key) + F.coalesce(F.length(e164_key), F.lit(0))).alias("chars")).first()
    assert row is not None
    return int(row["n"]) * _ENTRY_OVERHEAD_BYTES + int(row["chars"] or 0)


def _byte_size(text: str) -> int:
    """'256m', '1g', '4096' (bytes) -> bytes, as Spark spells sizes; the setting's name is in the error."""
    match = re.fullmatch(r"\s*(\d+)\s*([kmgt]?)b?\s*", text.lower())
    if not match:
        raise ValueError(f"{BROADCAST_LIMIT_KEY}={text!r}: expected a size like 256m, 1g or a number of bytes")
    return int(match.group(1)) * 1024 ** "bkmgt".index(match.group(2) or "b")


def mask_phone(col: Column) -> Column:
    """Mask a phone string: first 5 and last 4 characters kept, `***` between; 9 chars or fewer -> `***` + last 2.

    Example::

        df.select(mask_phone(F.col("msisdn_e164")))  # '+15551234567' -> '+1555***4567'
    """
    return (
        F.when(col.isNull(), F.lit(None).cast("string"))
        .when(F.length(col) <= 9, F.concat(F.lit(_MASK), F.right(col, F.lit(2))))
        .otherwise(F.concat(F.left(col, F.lit(5)), F.lit(_MASK), F.right(col, F.lit(4))))
    )


def mask_phone_str(value: str | None) -> str | None:
    """`mask_phone` in plain Python, for log lines: '+15551234567' -> '+1555***4567'; None stays None."""
    if value is None:
        return None
    if len(value) <= 9:
        return _MASK + value[-2:]
    return value[:5] + _MASK + value[-4:]
