"""Instants between Spark and Python, the same whatever the host's time zone.

PySpark hands a collected `timestamp` to Python as a *naive* datetime in the Python process's local time zone (it
calls `datetime.fromtimestamp`), and reads a naive datetime it is given as local time too. Re-labelling a collected
value as UTC (`.replace(tzinfo=UTC)`) is therefore right only on a UTC host: with TZ=America/New_York the watermark,
opened_at, due_at and a rerun's history cut moved by the offset. A run never relies on the host's TZ: values that
must be exact cross as microseconds since the epoch, and a collected timestamp is read with `as_utc`.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from pyspark.sql import Column
from pyspark.sql import functions as F

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def instant_micros(column: Column | str) -> Column:
    """A timestamp column as microseconds since the epoch (a bigint): collected, it means one instant anywhere."""
    return F.unix_micros(F.col(column) if isinstance(column, str) else column)


def micros_to_utc(micros: int | None) -> datetime | None:
    """The aware UTC datetime of a collected `instant_micros` value, exactly (no float)."""
    return None if micros is None else EPOCH + timedelta(microseconds=int(micros))


def utc_text(value: datetime | None) -> str:
    """A collected timestamp as a person reads it: ISO-8601 in UTC with a Z, whatever the host's zone."""
    return "-" if value is None else f"{value.astimezone(UTC):%Y-%m-%dT%H:%M:%S}Z"


def as_utc(value: datetime | None) -> datetime | None:
    """A collected timestamp as an aware UTC datetime: a naive one is PySpark's local time, so it is converted
    from the host's zone (fold included), never re-labelled."""
    return None if value is None else value.astimezone(UTC)


class NaiveInstant(ValueError):
    """An ISO 8601 date-time without a zone: which instant it means is unknown."""


def parse_instant(text: str) -> datetime:
    """An ISO 8601 instant with a zone (`2026-06-28T00:00:00Z`) as a UTC datetime. ValueError when it does not
    parse, NaiveInstant when it carries no zone (the command line's --cutoff and --as-of read instants this way)."""
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if value.tzinfo is None:
        raise NaiveInstant(text)
    return value.astimezone(UTC)
