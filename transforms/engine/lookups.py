"""Lookups: tables joined to a side's records as evidence (they get no outcome), each as one struct column named as
the ruleset names the lookup, with `found` and what the lookup gives.

- `key`: the lookup table's rows (optionally `where`) aggregated per key (`columns: {name: aggregate SQL}`), joined
  on `on: {record column: lookup column}`; e.g. the OPEN suspense of a usage record.
- `price`: the tariff version of the record's `by` column (a tariff id) valid at its `at` time, and the contract's
  expected amount for its `quantity` (transforms/tariff.py): `tariff_id`, `tariff_version`, `currency`, `amount`.
- `price_list`: the same, for the tariff of the record's class (`by`, e.g. service_type) valid at `at`: the lowest
  tariff_id among those valid then, or the one `map` names for the class (transforms/tariff.service_price_list).
- `prefix`: the row of the lookup table whose `prefix` column is the longest leading part of the digits of the
  record's `by` column (an E.164 number's digits: a rate deck by destination), among rows equal to the record on
  `on`; a row with prefix '' fits every number (a default). `columns: {name: SQL over that row}`.
Price tables and prefix tables are reference data: broadcast.
"""

from __future__ import annotations

from collections.abc import Mapping

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from transforms.checkpoints import materialize
from transforms.engine.spec import Lookup
from transforms.engine.sql import render
from transforms.sizing import small_side
from transforms.tariff import TariffJoin, service_price_list

PRICE_FIELDS = ("tariff_id", "tariff_version", "currency", "amount")


def key_table(lookup: Lookup, table: DataFrame, params: Mapping[str, object]) -> DataFrame:
    """One row per key: (`_lk<i>` keys, the lookup's columns)."""
    rows = table if lookup.where is None else table.where(F.expr(render(lookup.where, params)))
    keys = list(lookup.on.values())
    for k in keys:
        rows = rows.where(F.col(k).isNotNull())
    grouped = rows.groupBy(*[F.col(k).alias(f"_lk{i}") for i, k in enumerate(keys)]).agg(
        *[F.expr(sql).alias(name) for name, sql in lookup.columns.items()])
    return small_side(materialize(grouped))


MAX_PREFIX = 15          # E.164 numbers have at most 15 digits


def prefix_lookup(df: DataFrame, lookup: Lookup, table: DataFrame, params: Mapping[str, object]) -> DataFrame:
    """`df` with `<lookup.name>` from its longest-prefix row (see the module docstring).

    Each record probes the prefixes of its number, longest first ('' last), as an equi-join with the small table
    (no non-equi join); the longest found wins. A prefix is unique per `on` value where the table is a rate deck;
    should two rows share one, the smallest by their columns is taken (never by an id)."""
    assert lookup.by and lookup.prefix
    rows = table if lookup.where is None else table.where(F.expr(render(lookup.where, params)))
    on = list(lookup.on.items())
    deck = rows.select(*[F.col(c).alias(f"_lk{i}") for i, (_, c) in enumerate(on)],
                       F.coalesce(F.col(lookup.prefix), F.lit("")).alias("_lp"),
                       F.struct(*[F.expr(sql).alias(name) for name, sql in lookup.columns.items()]).alias("_lv"))
    deck = small_side(materialize(deck.groupBy(*[f"_lk{i}" for i in range(len(on))], "_lp")
                                  .agg(F.min("_lv").alias("_lv"))))
    digits = F.regexp_replace(F.coalesce(F.col(lookup.by).cast("string"), F.lit("")), "[^0-9]", "")
    probes = df.select("_key", *[F.col(c).alias(f"_lk{i}") for i, (c, _) in enumerate(on)],
                       F.explode(F.sequence(F.lit(0), F.least(F.length(digits), F.lit(MAX_PREFIX)))).alias("_n"),
                       digits.alias("_digits"))
    probes = probes.withColumn("_lp", F.expr("substring(_digits, 1, _n)"))
    found = probes.join(deck, [*[f"_lk{i}" for i in range(len(on))], "_lp"])
    best = found.groupBy(F.col("_key").alias("_pk")).agg(F.max_by(F.col("_lv"), F.col("_n")).alias("_lv"))
    joined = df.join(best, F.col("_key") == F.col("_pk"), "left")
    fields = [F.col("_lv").isNotNull().alias("found"), *[F.col(f"_lv.{name}").alias(name) for name in lookup.columns]]
    return joined.withColumn(lookup.name, F.struct(*fields)).drop("_pk", "_lv")


def apply_lookup(df: DataFrame, lookup: Lookup, table: DataFrame, params: Mapping[str, object]) -> DataFrame:
    """`df` with the struct column `<lookup.name>`."""
    if lookup.kind == "prefix":
        return prefix_lookup(df, lookup, table, params)
    if lookup.kind == "key":
        right = key_table(lookup, table, params).withColumn("_lfound", F.lit(True))
        cond = None
        for i, col in enumerate(lookup.on):
            c = F.col(col) == F.col(f"_lk{i}")
            cond = c if cond is None else cond & c
        joined = df.join(right, cond, "left")
        fields = [F.coalesce(F.col("_lfound"), F.lit(False)).alias("found"),
                  *[F.col(name).alias(name) for name in lookup.columns]]
        return (joined.withColumn(lookup.name, F.struct(*fields))
                .drop(*[f"_lk{i}" for i in range(len(lookup.on))], "_lfound", *lookup.columns))
    assert lookup.by and lookup.at and lookup.quantity
    prefix = f"_p_{lookup.name}_"
    if lookup.kind == "price":
        join = TariffJoin(table, F.col(lookup.by), prefix)
    else:
        join = TariffJoin(service_price_list(table, lookup.map), F.col(lookup.by), prefix, key="_price_service")
    staged = df.withColumn("_t", F.col(lookup.at)).withColumn("_qty", F.col(lookup.quantity))
    if "expected_amount" in staged.columns:
        raise ValueError("a record column named expected_amount collides with the price lookup's")
    priced = join.apply(staged)
    struct = F.struct(F.col(prefix + "found").alias("found"), F.col(prefix + "tariff_id").alias("tariff_id"),
                      F.col(prefix + "tariff_version").alias("tariff_version"),
                      F.col(prefix + "currency").alias("currency"), F.col("expected_amount").alias("amount"))
    return priced.withColumn(lookup.name, struct).drop(
        "_t", "_qty", "expected_amount", *[prefix + f for f in ("found", "tariff_id", "tariff_version", "currency")])
