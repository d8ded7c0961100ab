"""Local carrier times to UTC across the 2026 DST changes, checked against Python's zoneinfo (CONTRACT section 6).

Every quarter hour of each 2026 change day in New York, Los Angeles, London and Berlin goes through ingest's
normalisation (text -> wall clock -> instants); the expected instants come from zoneinfo (PEP 495): a wall clock
that exists once is that instant; one in the fall-back hour exists at fold=0 and fold=1 (start_time the earlier,
start_time_alt the later); one in the spring-forward gap exists at neither, and is read with the offset before the
gap (fold=0), i.e. shifted forward by the gap. The same rows under another session time zone give the same result.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs.ingest.layouts import Layout, Rates
from jobs.ingest.normalize import FALL_BACK_AMBIGUOUS, SPRING_FORWARD_SHIFTED, FileFacts, normalize

CHANGES = {   # 2026's DST change days
    "America/New_York": (date(2026, 3, 8), date(2026, 11, 1)),
    "America/Los_Angeles": (date(2026, 3, 8), date(2026, 11, 1)),
    "Europe/London": (date(2026, 3, 29), date(2026, 10, 25)),
    "Europe/Berlin": (date(2026, 3, 29), date(2026, 10, 25)),
}
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _walls(day: date) -> Iterator[datetime]:
    start = datetime(day.year, day.month, day.day)
    return (start + timedelta(minutes=15 * i) for i in range(4 * 5))      # 00:00 .. 04:45


def _micros(instant: datetime) -> int:
    return (instant - EPOCH) // timedelta(microseconds=1)


def _expected(wall: datetime, zone: str) -> tuple[int, int | None, str | None]:
    """(start_time, start_time_alt, time_rule) by zoneinfo alone."""
    tz = ZoneInfo(zone)
    instants = [wall.replace(tzinfo=tz, fold=fold).astimezone(UTC) for fold in (0, 1)]
    real = sorted({i for i in instants if i.astimezone(tz).replace(tzinfo=None) == wall})
    if not real:                                     # in the gap: fold=0 reads it with the offset before the gap
        return _micros(instants[0]), None, SPRING_FORWARD_SHIFTED
    if len(real) == 2:
        return _micros(real[0]), _micros(real[1]), FALL_BACK_AMBIGUOUS
    return _micros(real[0]), None, None


def _layout(zone: str, split: bool) -> Layout:
    columns = ({"start_date": "D", "start_time": "T"} if split else {"start": "S"}) | {
        "destination_number": "N", "billed_duration": "B", "cost": "C"}
    formats = {"start_date": "%d/%m/%Y", "start_time": "%H:%M"} if split else {"start": "%m/%d/%Y %I:%M %p"}
    return Layout(name=f"t-{zone}", path="(test)", kind="call_invoice", carrier="T", recognize=("S",),
                  columns=columns, currency="USD", rates=Rates(1, 0, 6, {"default": Decimal("0.01")}),
                  timezone=zone, formats=formats, fixed_direction="MO")


def _raw(spark: SparkSession, walls: list[datetime], split: bool) -> DataFrame:
    """Rows as a carrier writes them: 'MM/DD/YYYY hh:mm AM' in one column, or day-first date and 24h time apart."""
    starts = [(f"{w:%d/%m/%Y}", f"{w:%H:%M}") if split else (f"{w:%m/%d/%Y %I:%M %p}",) for w in walls]
    names = "start_date string, start_time string" if split else "start string"
    return spark.createDataFrame(
        [(n, None, *start, "2125550100", "60", "0.01") for n, start in enumerate(starts, 1)],
        f"source_row long, _malformed string, {names}, destination_number string, billed_duration string, "
        "cost string")


def _converted(spark: SparkSession) -> dict[tuple[str, int], tuple[int, int | None, str | None]]:
    numbers = spark.createDataFrame([("2125550100", "+12125550100")], "_raw string, _e164 string")
    facts = FileFacts("t.csv", "0" * 64, "US", datetime(2026, 1, 1, tzinfo=UTC))
    frames = []
    for i, (zone, days) in enumerate(sorted(CHANGES.items())):
        walls = [w for day in days for w in _walls(day)]
        split = i % 2 == 0          # both ways of writing a start, two zones each
        frames.append(_raw(spark, walls, split).transform(normalize(_layout(zone, split), facts, numbers))
                      .select(F.lit(zone).alias("zone"), "source_row", F.unix_micros("start_time").alias("t"),
                              F.unix_micros("start_time_alt").alias("alt"), "time_rule", "parse_error"))
    rows = frames[0]
    for frame in frames[1:]:
        rows = rows.unionByName(frame)
    out = {}
    for r in rows.collect():
        assert r["parse_error"] is None, r
        out[(r["zone"], r["source_row"])] = (r["t"], r["alt"], r["time_rule"])
    return out


def _expected_all() -> dict[tuple[str, int], tuple[int, int | None, str | None]]:
    return {(zone, n): _expected(w, zone) for zone, days in CHANGES.items()
            for n, w in enumerate((w for day in days for w in _walls(day)), 1)}


@pytest.fixture(scope="module")
def in_utc_session(spark: SparkSession) -> dict[tuple[str, int], tuple[int, int | None, str | None]]:
    return _converted(spark)


def test_dst_changes_of_2026_match_zoneinfo(in_utc_session: dict[tuple[str, int], tuple[int, int | None, str | None]]
                                            ) -> None:
    want = _expected_all()
    assert in_utc_session == want
    rules = [rule for _, _, rule in want.values()]
    # The grid does cross every change: four gaps and four overlaps of four quarter hours each.
    assert rules.count(SPRING_FORWARD_SHIFTED) == 16 and rules.count(FALL_BACK_AMBIGUOUS) == 16


def test_session_time_zone_changes_nothing(
        spark: SparkSession, in_utc_session: dict[tuple[str, int], tuple[int, int | None, str | None]]) -> None:
    try:
        # A zone with DST changes of its own on the same days as half the rows.
        spark.conf.set("spark.sql.session.timeZone", "America/Los_Angeles")
        assert _converted(spark) == in_utc_session
    finally:
        spark.conf.set("spark.sql.session.timeZone", "UTC")


@pytest.mark.parametrize(("zone", "wall", "start", "alt"), [
    # Spot checks written out by hand, so the zoneinfo comparison is not the only witness.
    ("America/New_York", datetime(2026, 3, 8, 2, 30), "2026-03-08T07:30:00", None),
    ("America/New_York", datetime(2026, 11, 1, 1, 30), "2026-11-01T05:30:00", "2026-11-01T06:30:00"),
    ("Europe/London", datetime(2026, 3, 29, 1, 30), "2026-03-29T01:30:00", None),
    ("Europe/London", datetime(2026, 10, 25, 1, 30), "2026-10-25T00:30:00", "2026-10-25T01:30:00"),
])
def test_zoneinfo_reading_is_the_contract(zone: str, wall: datetime, start: str, alt: str | None) -> None:
    t, other, _ = _expected(wall, zone)
    assert t == _micros(datetime.fromisoformat(start).replace(tzinfo=UTC))
    assert other == (None if alt is None else _micros(datetime.fromisoformat(alt).replace(tzinfo=UTC)))
