"""Expected rated amounts from the tariff table (CONTRACT section 2).

expected = max(minimum_charge, ceil(quantity / rounding_increment) * rounding_increment * rate_per_unit), rounded
half-up to 6 places, with the tariff version valid at the event's start_time. All arithmetic is decimal: the
rounded units are whole numbers (bigint), multiplied by a decimal(18,8) rate, rounded once at the end.
"""

from __future__ import annotations

from collections.abc import Mapping

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from transforms.schema import MONEY

TARIFF_COLUMNS = ("tariff_id", "tariff_version", "service_type", "valid_from", "valid_to", "rate_per_unit",
                  "rounding_increment", "minimum_charge", "currency")


def rounded_units(quantity: Column, increment: Column) -> Column:
    """quantity rounded UP to a multiple of increment (an increment below 1 counts as 1)."""
    inc = F.greatest(increment, F.lit(1)).cast("decimal(20,0)")
    return (F.floor((quantity.cast("decimal(20,0)") + inc - F.lit(1)) / inc) * inc).cast("bigint")


def expected_amount(quantity: Column, rate: Column, increment: Column, minimum: Column) -> Column:
    units = rounded_units(quantity, increment).cast("decimal(20,0)")
    priced = F.round(units * rate, 6)
    return F.greatest(F.coalesce(minimum, F.lit(0)).cast(MONEY), priced).cast(MONEY)


def overlapping_versions(tariff: DataFrame) -> DataFrame:
    """(tariff_id, tariff_version, other_version) pairs whose validity overlaps: bad reference data."""
    a, b = tariff.alias("a"), tariff.alias("b")
    far = F.lit("9999-12-31 00:00:00").cast("timestamp")
    overlap = (
        (F.col("a.tariff_id") == F.col("b.tariff_id"))
        & (F.col("a.tariff_version") < F.col("b.tariff_version"))
        & (F.col("a.valid_from") < F.coalesce(F.col("b.valid_to"), far))
        & (F.col("b.valid_from") < F.coalesce(F.col("a.valid_to"), far))
    )
    return a.join(b, overlap).select("a.tariff_id", "a.tariff_version", F.col("b.tariff_version").alias("other_version"))


class TariffJoin:
    """Left-joins the valid tariff version onto rows carrying `_t` (event start) and `_qty`.

    Adds `<prefix>tariff_id`, `<prefix>tariff_version`, `<prefix>currency`, `<prefix>found` and `expected_amount`.
    The tariff table is reference data (a few thousand rows at most), so it is broadcast.
    """

    def __init__(self, tariff: DataFrame, tariff_id: Column, prefix: str) -> None:
        self.tariff, self.tariff_id, self.prefix = tariff, tariff_id, prefix

    def apply(self, df: DataFrame) -> DataFrame:
        p = self.prefix
        t = self.tariff.select(*[F.col(c).alias(p + c) for c in TARIFF_COLUMNS])
        keyed = df.withColumn("_tariff_lookup", self.tariff_id)
        cond = (
            (F.col("_tariff_lookup") == F.col(p + "tariff_id"))
            & (F.col(p + "valid_from") <= F.col("_t"))
            & (F.col("_t") < F.coalesce(F.col(p + "valid_to"), F.lit("9999-12-31 00:00:00").cast("timestamp")))
        )
        joined = keyed.join(F.broadcast(t), cond, "left")
        return joined.withColumn(
            "expected_amount",
            F.when(F.col(p + "tariff_id").isNotNull(),
                   expected_amount(F.col("_qty"), F.col(p + "rate_per_unit"), F.col(p + "rounding_increment"),
                                   F.col(p + "minimum_charge"))),
        ).withColumn(p + "found", F.col(p + "tariff_id").isNotNull()).drop(
            "_tariff_lookup", p + "valid_from", p + "valid_to", p + "rate_per_unit", p + "rounding_increment",
            p + "minimum_charge", p + "service_type",
        )


def unrated_tariff_id(service_type: Column, mapping: Mapping[str, str]) -> Column:
    """The ruleset's tariff for pricing never-rated usage of a service type (null when unmapped)."""
    expr: Column = F.lit(None).cast("string")
    for service, tariff_id in mapping.items():
        expr = F.when(service_type == service, F.lit(tariff_id)).otherwise(expr)
    return expr


def beyond_tolerance(diff: Column, reference: Column, abs_tol: str, rel_tol: str) -> Column:
    """|diff| > max(abs, rel * |reference|): the contract's money tolerance."""
    allowed = F.greatest(F.lit(abs_tol).cast("decimal(38,6)"),
                         (F.lit(rel_tol).cast("decimal(20,6)") * F.abs(reference)).cast("decimal(38,6)"))
    return F.abs(diff).cast("decimal(38,6)") > allowed
