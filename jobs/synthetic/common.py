"""What every synthetic generator shares: deterministic hash draws, the money type, the ground-truth shape, and small
column helpers.

Why: the same seed must give the same month on any cluster and any partitioning, so pseudo-randomness comes only from
`xxhash64(seed, columns..., salt)` of the row's own ids (no `rand()`, no UDFs, no row numbering); and the scorer reads
every generator's ground truth alike, so its columns are defined once here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import DecimalType, StringType, StructField, StructType

MONEY = DecimalType(18, 6)
_HASH_MASK = (1 << 53) - 1

GROUND_TRUTH_SCHEMA = StructType([
    StructField("gen_row_id", StringType()), StructField("table_name", StringType()),
    StructField("control_point_id", StringType()), StructField("side", StringType()),
    StructField("expected_outcome", StringType()), StructField("account_id", StringType()),
    StructField("service_type", StringType()),
])


def _hash(seed: int, salt: str, *cols: Column) -> Column:
    """A 64-bit hash of (seed, cols, salt): the one source of pseudo-randomness."""
    return F.xxhash64(F.lit(seed).cast("long"), *cols, F.lit(salt))


def _unit(seed: int, salt: str, *cols: Column) -> Column:
    """A pseudo-random double in [0, 1) from (seed, cols, salt)."""
    return _hash(seed, salt, *cols).bitwiseAND(F.lit(_HASH_MASK)).cast("double") / float(1 << 53)


def _below(seed: int, salt: str, modulus: int, *cols: Column) -> Column:
    """A pseudo-random long in [0, modulus)."""
    return F.pmod(_hash(seed, salt, *cols), F.lit(modulus).cast("long"))


def _apportion(total: int, weights: Sequence[float]) -> list[int]:
    """`total` split in proportion to `weights` (largest remainder, ties to the first), summing to `total` exactly.

    All-zero weights split evenly: an exact count must be planted even if the rates that shape it are all 0.
    """
    if sum(weights) <= 0:
        weights = [1.0] * len(weights)
    quotas = [total * w / sum(weights) for w in weights]
    parts = [math.floor(q) for q in quotas]
    by_remainder = sorted(range(len(quotas)), key=lambda i: (-(quotas[i] - parts[i]), i))
    for i in by_remainder[:total - sum(parts)]:
        parts[i] += 1
    return parts


def _money(value: str | Decimal) -> Column:
    return F.lit(Decimal(value)).cast(MONEY)


def _epoch(value: datetime) -> int:
    """Seconds since the epoch of an aware datetime (a naive one would be read in the host's zone: refused)."""
    if value.tzinfo is None:
        raise ValueError(f"need an aware (UTC) datetime, got {value!r}")
    return int(value.timestamp())


def _emit(df: DataFrame, name: str, kinds: Sequence[tuple[int, Column]]) -> DataFrame:
    """One output row per (input row, kind) whose condition holds; `name` holds the kind.

    Explodes `[kind if condition else null, ...]` and drops the nulls: the filter then references only the generated
    column. A filter on the slot columns would be pushed below the staged projections with all of them inlined, and
    a higher-order `filter` over the array is interpreted (several times slower).
    """
    exploded = df.select("*", F.explode(F.array(*[F.when(cond, F.lit(code)) for code, cond in kinds])).alias(name))
    return exploded.where(F.col(name).isNotNull())


def _code(prefix: str, number: Column, width: int) -> Column:
    """`prefix` + the number zero-padded to `width` digits (concat/lpad: `format_string` is several times slower)."""
    return F.concat(F.lit(prefix), F.lpad(number.cast("string"), width, "0"))


def _row_key(*parts: str | Column) -> Column:
    """A gen_row_id such as `c-123-0` (table letter, slot id, sub-record)."""
    return F.concat_ws("-", *[F.lit(p) if isinstance(p, str) else p.cast("string") for p in parts])


def _sql_literal(value: object) -> str:
    """A Python constant (None, bool, int, str, or a tuple of them: an array) as Spark SQL text."""
    if value is None:
        return "CAST(NULL AS STRING)"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    if isinstance(value, tuple):
        return "array(" + ", ".join(_sql_literal(v) for v in value) + ")"
    raise TypeError(f"no SQL literal for {value!r}")


def _const_array(values: Sequence[object]) -> Column:
    """A constant array as one SQL literal expression: one JVM call instead of one per element (1024-entry lookup
    tables built element by element cost seconds of driver time per plan)."""
    return F.expr(_sql_literal(tuple(values)))


def _case_sql(key: str, values: Mapping[str, object]) -> str:
    """`CASE WHEN <key> IN (...) THEN <value> ... END` over the column named `key`, one branch per distinct value
    (a constant when all keys share one): a lookup table keyed by role, as SQL text."""
    groups: dict[object, list[str]] = {}
    for name, value in values.items():
        groups.setdefault(value, []).append(name)
    if len(groups) == 1:
        return _sql_literal(next(iter(groups)))
    branches = " ".join(f"WHEN `{key}` IN ({', '.join(_sql_literal(n) for n in names)}) THEN {_sql_literal(value)}"
                        for value, names in groups.items())
    return f"CASE {branches} END"


def _case(key: str, values: Mapping[str, object]) -> Column:
    """`_case_sql` as one Column: one JVM call instead of one per key and value."""
    return F.expr(_case_sql(key, values))


def _hash_sql(seed: int, salt: str, *cols: str) -> str:
    """`_hash` as SQL text over columns named `cols` (the same values as `_hash(seed, salt, F.col(c), ...)`)."""
    return f"xxhash64(CAST({seed} AS BIGINT), {', '.join(cols)}, {_sql_literal(salt)})"


def _below_sql(seed: int, salt: str, modulus: int, *cols: str) -> str:
    """`_below` as SQL text: a pseudo-random bigint in [0, modulus)."""
    return f"pmod({_hash_sql(seed, salt, *cols)}, CAST({modulus} AS BIGINT))"


def _unit_sql(seed: int, salt: str, *cols: str) -> str:
    """`_unit` as SQL text: a pseudo-random double in [0, 1)."""
    return f"CAST({_hash_sql(seed, salt, *cols)} & {_HASH_MASK} AS DOUBLE) / {float(1 << 53)!r}D"
