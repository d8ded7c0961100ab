"""Expected rated amounts from the tariff table (CONTRACT section 2).

expected = max(minimum_charge, ceil(quantity / rounding_increment) * rounding_increment * rate_per_unit), rounded
half-up to 6 places, with the tariff version valid at the event's start_time. All arithmetic is decimal: the
rounded units are whole numbers (bigint), multiplied by a decimal(18,8) rate, rounded once at the end.
"""

from __future__ import annotations

from collections.abc import Mapping

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from transforms.schema import MONEY, RATE
from transforms.sizing import broadcast_hint

TARIFF_COLUMNS = ("tariff_id", "tariff_version", "service_type", "valid_from", "valid_to", "rate_per_unit",
                  "rounding_increment", "minimum_charge", "currency")


def rounded_units(quantity: Column, increment: Column) -> Column:
    """quantity (rounded half-up to a whole number) rounded UP to a multiple of increment (an increment below 1
    counts as 1), in 64-bit integers: the multiple at or below it (quantity less its non-negative remainder), plus
    one increment where the remainder is not 0. As decimal(20,0) division and floor, it cost every priced record two
    BigDecimal operations, and a month prices every usage record; the results are equal (tests/test_review_defects.
    py). A multiple beyond the bigint range is an arithmetic overflow error, as its cast to bigint was."""
    inc = F.greatest(increment.cast("bigint"), F.lit(1).cast("bigint"))
    q = F.round(quantity, 0).cast("bigint")
    rem = F.pmod(q, inc)
    return q - rem + F.when(rem > 0, inc).otherwise(F.lit(0).cast("bigint"))


def expected_amount(quantity: Column, rate: Column, increment: Column, minimum: Column) -> Column:
    """The contract's expected amount, exact to 6 places, half-up, for every amount decimal(18,6) holds.

    Units are a bigint (at most 19 digits) and the rate a decimal(18,8): as decimal(19,0) x decimal(18,8) the product
    is a decimal(38,8), which Spark computes exactly. Units as decimal(20,0) made it a decimal(39,8), which Spark
    cuts to decimal(38,7) by rounding, so 123,456,745 bytes at 0.00000001 became 1.2345675 and then 1.234568
    instead of 1.234567: two roundings where the contract has one.
    """
    units = rounded_units(quantity, increment).cast("decimal(19,0)")
    priced = F.round(units * rate.cast(RATE), 6)
    return F.greatest(F.coalesce(minimum, F.lit(0)).cast(MONEY), priced).cast(MONEY)


def repeated_versions(tariff: DataFrame) -> DataFrame:
    """(tariff_id, tariff_version, copies) for versions given more than once: bad reference data.

    A repeated version would join every priced row twice and break the conservation law with a message that names
    nothing; it is refused up front instead, naming the tariff and the version.
    """
    return (tariff.groupBy("tariff_id", "tariff_version").agg(F.count(F.lit(1)).alias("copies"))
            .where(F.col("copies") > 1))


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


FAR_FUTURE = "9999-12-31 00:00:00"


class TariffJoin:
    """Left-joins the valid tariff version onto rows carrying `_t` (event start) and `_qty`.

    `lookup` is matched against the price list's `key` column: a rated event's tariff_id against the tariff table's
    tariff_id; a never-rated usage record's service_type against `service_price_list`'s `_price_service`. Adds
    `<prefix>tariff_id`, `<prefix>tariff_version`, `<prefix>currency`, `<prefix>found` and `expected_amount`. A price
    list is reference data (a few thousand rows at most), so it is broadcast.
    """

    def __init__(self, tariff: DataFrame, lookup: Column, prefix: str, key: str = "tariff_id") -> None:
        self.tariff, self.lookup, self.prefix, self.key = tariff, lookup, prefix, key

    def apply(self, df: DataFrame) -> DataFrame:
        p = self.prefix
        columns = TARIFF_COLUMNS if self.key in TARIFF_COLUMNS else (*TARIFF_COLUMNS, self.key)
        t = self.tariff.select(*[F.col(c).alias(p + c) for c in columns])
        keyed = df.withColumn("_tariff_lookup", self.lookup)
        cond = (
            (F.col("_tariff_lookup") == F.col(p + self.key))
            & (F.col(p + "valid_from") <= F.col("_t"))
            & (F.col("_t") < F.coalesce(F.col(p + "valid_to"), F.lit(FAR_FUTURE).cast("timestamp")))
        )
        joined = keyed.join(broadcast_hint(t), cond, "left")
        extra = [] if self.key in TARIFF_COLUMNS else [p + self.key]
        return joined.withColumn(
            "expected_amount",
            F.when(F.col(p + "tariff_id").isNotNull(),
                   expected_amount(F.col("_qty"), F.col(p + "rate_per_unit"), F.col(p + "rounding_increment"),
                                   F.col(p + "minimum_charge"))),
        ).withColumn(p + "found", F.col(p + "tariff_id").isNotNull()).drop(
            "_tariff_lookup", p + "valid_from", p + "valid_to", p + "rate_per_unit", p + "rounding_increment",
            p + "minimum_charge", p + "service_type", *extra,
        )


def service_price_list(tariff: DataFrame, mapping: Mapping[str, str]) -> DataFrame:
    """What prices never-rated usage: per `_price_service` (a record's service_type), validity intervals that do not
    overlap, each with the tariff version that prices a record starting then (`_price_service` + TARIFF_COLUMNS).

    CONTRACT section 2: such a record is priced with the tariff of its service_type valid at its start_time. Where
    several tariffs of the service type are valid at once, the lowest tariff_id among those valid then prices it (a
    rule the docs state). Before, the lowest tariff_id overall was taken even when none of its versions was valid
    then, and the record was priced at zero without a word. A ruleset's `unrated_tariff` map names a service type's
    tariff instead; its versions keep their own validity.

    Every valid_from and valid_to of a service type is a boundary; between two boundaries the set of valid tariffs
    does not change, so the tariff chosen at an interval's start holds throughout it. Everything here runs over the
    tariff table (reference data): the window is over a few thousand boundaries at most.
    """
    far = F.lit(FAR_FUTURE).cast("timestamp")
    rows = tariff.where(F.col("valid_from").isNotNull() & F.col("service_type").isNotNull())
    own = rows.where(~F.col("service_type").isin(*mapping)) if mapping else rows
    bounds = (own.select("service_type", F.col("valid_from").alias("_at"))
              .unionByName(own.where(F.col("valid_to").isNotNull())
                           .select("service_type", F.col("valid_to").alias("_at")))
              .distinct())
    segments = bounds.withColumn("_until", F.lead("_at").over(Window.partitionBy("service_type").orderBy("_at")))
    t = own.alias("t")
    valid = segments.alias("s").join(
        t, (F.col("s.service_type") == F.col("t.service_type")) & (F.col("t.valid_from") <= F.col("s._at"))
        & (F.col("s._at") < F.coalesce(F.col("t.valid_to"), far)))
    best = valid.groupBy(F.col("s.service_type").alias("_price_service"), F.col("s._at"), F.col("s._until")).agg(
        F.min(F.struct(*[F.col(f"t.{c}") for c in TARIFF_COLUMNS])).alias("_b"))
    by_service = best.select(
        "_price_service", *[F.col(f"_b.{c}") for c in TARIFF_COLUMNS if c not in ("valid_from", "valid_to")],
        F.col("_at").alias("valid_from"), F.col("_until").alias("valid_to"))
    for service, tariff_id in mapping.items():
        by_service = by_service.unionByName(
            rows.where(F.col("tariff_id") == tariff_id).withColumn("_price_service", F.lit(service)))
    return by_service.select("_price_service", *TARIFF_COLUMNS)


def beyond_tolerance(diff: Column, reference: Column, abs_tol: str, rel_tol: str) -> Column:
    """|diff| > max(abs, rel * |reference|): the contract's money tolerance."""
    allowed = F.greatest(F.lit(abs_tol).cast("decimal(38,6)"),
                         (F.lit(rel_tol).cast("decimal(20,6)") * F.abs(reference)).cast("decimal(38,6)"))
    return F.abs(diff).cast("decimal(38,6)") > allowed
