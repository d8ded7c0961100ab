"""Tests of transforms.phone: E.164 normalization (Python and DataFrame) and masking.

Expected values are literals written by hand, never computed with the code under test.
"""

from __future__ import annotations

import pytest
from chispa import assert_df_equality
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import LongType, StringType, StructField, StructType

from factories import session_conf
from jobs.spark_status import last_execution_id, metric_count, sql_executions
from transforms.phone import (
    BROADCAST_LIMIT_KEY,
    mask_phone,
    mask_phone_str,
    normalize_phone_columns,
    phone_mapping,
    to_e164,
)

RAW_SCHEMA = StructType(
    [
        StructField("id", LongType(), True),
        StructField("msisdn", StringType(), True),
        StructField("other_party", StringType(), True),
    ]
)
OUT_SCHEMA = StructType(
    [
        *RAW_SCHEMA.fields,
        StructField("msisdn_e164", StringType(), True),
        StructField("other_party_e164", StringType(), True),
    ]
)


def _executed_plan(df: DataFrame) -> str:
    return str(df._jdf.queryExecution().executedPlan().toString())


# ---------------------------------------------------------------- to_e164 (plain Python)


@pytest.mark.parametrize(
    ("raw", "region", "expected"),
    [
        pytest.param("tel:+44-20-7946-0958;ext=12", "US", "+442079460958", id="tel-uri-with-ext"),
        pytest.param("tel:+1-555-123-4567", "US", "+15551234567", id="tel-uri"),
        pytest.param("+1 555-123-4567", "US", "+15551234567", id="plus-with-dashes"),
        pytest.param("(555) 123-4567", "US", "+15551234567", id="national-parentheses"),
        pytest.param("15551234567", "US", "+15551234567", id="leading-1-without-plus"),
        pytest.param("555.123.4567 x100", "US", "+15551234567", id="x-extension-dropped"),
        pytest.param("555-123-4567 ext. 7", "US", "+15551234567", id="ext-extension-dropped"),
        pytest.param("00 44 20 7946 0958", "US", "+442079460958", id="00-prefix-from-US"),
        pytest.param("0044 20 7946 0958", "US", "+442079460958", id="0044-prefix-from-US"),
        pytest.param("011 44 20 7946 0958", "US", "+442079460958", id="011-prefix-from-US"),
        pytest.param("+44 (0)20 7946 0958", "US", "+442079460958", id="uk-plus44-trunk-zero"),
        pytest.param("+44 20 7946 0958", "US", "+442079460958", id="uk-plus44-region-US"),
        pytest.param("020 7946 0958", "GB", "+442079460958", id="uk-national-region-GB"),
        pytest.param("  +1 555 123 4567\t", "US", "+15551234567", id="surrounding-whitespace"),
        pytest.param("5551234567", "us", "+15551234567", id="lower-case-region"),
    ],
)
def test_to_e164_accepts_formats(raw: str, region: str, expected: str) -> None:
    assert to_e164(raw, region) == expected


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(None, id="none"),
        pytest.param("", id="empty"),
        pytest.param("   ", id="blank"),
        pytest.param("BANK", id="alpha-sender"),
        pytest.param("garbage", id="garbage"),
        pytest.param("INFO1234567890", id="alpha-sender-with-digits"),
        pytest.param("12", id="too-short"),
        pytest.param("555-1234", id="local-only-no-area-code"),
        pytest.param("12345678901234567890", id="too-long"),
        pytest.param("+", id="plus-only"),
        pytest.param("tel:", id="empty-tel-uri"),
    ],
)
def test_to_e164_rejects_non_numbers(raw: str | None) -> None:
    assert to_e164(raw, "US") is None


def test_to_e164_never_raises_on_bad_region_or_type() -> None:
    assert to_e164("5551234567", "ZZ") is None
    assert to_e164("+15551234567", "ZZ") == "+15551234567"
    assert to_e164(15551234567, "US") is None  # type: ignore[arg-type]


def test_us_and_uk_defaults_differ_for_the_same_national_digits() -> None:
    assert to_e164("020 7946 0958", "GB") == "+442079460958"
    assert to_e164("020 7946 0958", "US") is None


# ---------------------------------------------------------------- normalize_phone_columns (DataFrame)


def test_normalize_phone_columns_all_formats(spark: SparkSession) -> None:
    rows = [
        (1, "tel:+44-20-7946-0958;ext=12", "+1 555-123-4567"),
        (2, "(555) 123-4567", "15551234567"),
        (3, "555.123.4567 x100", "00 44 20 7946 0958"),
        (4, "+44 (0)20 7946 0958", "BANK"),
        (5, "garbage", ""),
        (6, None, None),
    ]
    df = spark.createDataFrame(rows, RAW_SCHEMA)

    actual = df.transform(normalize_phone_columns(["msisdn", "other_party"], "US"))

    expected = spark.createDataFrame(
        [
            (1, "tel:+44-20-7946-0958;ext=12", "+1 555-123-4567", "+442079460958", "+15551234567"),
            (2, "(555) 123-4567", "15551234567", "+15551234567", "+15551234567"),
            (3, "555.123.4567 x100", "00 44 20 7946 0958", "+15551234567", "+442079460958"),
            (4, "+44 (0)20 7946 0958", "BANK", "+442079460958", None),
            (5, "garbage", "", None, None),
            (6, None, None, None, None),
        ],
        OUT_SCHEMA,
    )
    assert_df_equality(actual, expected, ignore_row_order=True)


def test_normalize_phone_columns_region_gb(spark: SparkSession) -> None:
    df = spark.createDataFrame(
        [(1, "020 7946 0958", "+1 555-123-4567"), (2, "07700 900123", "(555) 123-4567")], RAW_SCHEMA
    )

    actual = df.transform(normalize_phone_columns(["msisdn", "other_party"], "GB"))

    expected = spark.createDataFrame(
        [
            # The region decides the country of every national number: with GB, US-looking national digits are
            # read as a (length-possible) UK number; only the +1 form stays American.
            (1, "020 7946 0958", "+1 555-123-4567", "+442079460958", "+15551234567"),
            (2, "07700 900123", "(555) 123-4567", "+447700900123", "+445551234567"),
        ],
        OUT_SCHEMA,
    )
    assert_df_equality(actual, expected, ignore_row_order=True)


def test_normalize_phone_columns_keeps_every_row_with_duplicates_and_nulls(spark: SparkSession) -> None:
    # The same raw value repeats within a column and across both columns; nulls and garbage repeat too.
    rows = [
        (1, "+1 555-123-4567", "+1 555-123-4567"),
        (2, "+1 555-123-4567", None),
        (3, "+1 555-123-4567", "(555) 123-4567"),
        (4, None, "+1 555-123-4567"),
        (5, None, None),
        (6, None, None),
        (7, "BANK", "BANK"),
        (8, "BANK", "(555) 123-4567"),
        (9, "(555) 123-4567", "BANK"),
        (9, "(555) 123-4567", "BANK"),  # a fully duplicated input row stays two rows
    ]
    df = spark.createDataFrame(rows, RAW_SCHEMA)

    actual = df.transform(normalize_phone_columns(["msisdn", "other_party"], "US"))

    assert actual.count() == 10
    expected = spark.createDataFrame(
        [
            (1, "+1 555-123-4567", "+1 555-123-4567", "+15551234567", "+15551234567"),
            (2, "+1 555-123-4567", None, "+15551234567", None),
            (3, "+1 555-123-4567", "(555) 123-4567", "+15551234567", "+15551234567"),
            (4, None, "+1 555-123-4567", None, "+15551234567"),
            (5, None, None, None, None),
            (6, None, None, None, None),
            (7, "BANK", "BANK", None, None),
            (8, "BANK", "(555) 123-4567", None, "+15551234567"),
            (9, "(555) 123-4567", "BANK", "+15551234567", None),
            (9, "(555) 123-4567", "BANK", "+15551234567", None),
        ],
        OUT_SCHEMA,
    )
    assert_df_equality(actual, expected, ignore_row_order=True)


def test_normalize_phone_columns_custom_suffix_and_non_string_column(spark: SparkSession) -> None:
    schema = StructType([StructField("id", LongType(), True), StructField("msisdn", LongType(), True)])
    df = spark.createDataFrame([(1, 15551234567), (2, None)], schema)

    actual = df.transform(normalize_phone_columns(["msisdn"], "US", suffix="_norm"))

    expected = spark.createDataFrame(
        [(1, 15551234567, "+15551234567"), (2, None, None)],
        StructType([*schema.fields, StructField("msisdn_norm", StringType(), True)]),
    )
    assert_df_equality(actual, expected, ignore_row_order=True)


def test_normalize_phone_columns_plan_has_no_row_at_a_time_udf(spark: SparkSession) -> None:
    df = spark.createDataFrame([(1, "+1 555-123-4567", "BANK"), (2, "(555) 123-4567", None)], RAW_SCHEMA)

    before = last_execution_id(spark)

    plan = _executed_plan(df.transform(normalize_phone_columns(["msisdn", "other_party"], "US")))

    executed = sql_executions(spark, before)
    plans = [plan] + [e.plan for e in executed] + [n.name for e in executed for n in e.nodes]
    assert not any("BatchEvalPython" in p for p in plans)
    assert any("ArrowEvalPython" in p for p in plans)  # the vectorized pandas UDF is what parses


def test_rows_sent_to_python_are_the_distinct_raw_values(spark: SparkSession) -> None:
    """600 rows holding 5 distinct raw values (over both columns) send 5 rows to each Python UDF call."""
    values = ["+1 555-123-4567", "(555) 123-4567", "BANK", "5551234568", None, "+44 20 7946 0958"]
    rows = [(i, values[i % 6], values[(i + 1) % 3]) for i in range(600)]
    df = spark.createDataFrame(rows, RAW_SCHEMA)
    before = last_execution_id(spark)

    df.transform(normalize_phone_columns(["msisdn", "other_party"], "US")).write.format("noop").mode(
        "overwrite").save()

    sent = [metric_count(node.metrics.get("number of output rows"))
            for e in sql_executions(spark, before) for node in e.nodes if node.name == "ArrowEvalPython"]
    assert sent and all(n == 5 for n in sent), sent


def test_one_mapping_parses_each_number_once_for_several_frames(spark: SparkSession) -> None:
    """A cdr-like frame and a rated-event-like frame carry the same subscriber in other formats: one mapping for
    both sends their 4 distinct raw values to Python once (per input, the shared number was parsed twice), and each
    frame comes out as it does with a mapping of its own."""
    calls = spark.createDataFrame([(1, "+1 555-123-4567", "BANK"), (2, "(555) 123-4567", "+1 555-123-4567")],
                                  RAW_SCHEMA)
    rated = spark.createDataFrame([(7, "+1 555-123-4567"), (8, "+44 20 7946 0958")], "id bigint, msisdn string")
    before = last_execution_id(spark)

    mapping = phone_mapping({"calls": (calls, ["msisdn", "other_party"]), "rated": (rated, ["msisdn"])}, "US")

    sent = [metric_count(node.metrics.get("number of output rows"))
            for e in sql_executions(spark, before) for node in e.nodes if node.name == "ArrowEvalPython"]
    assert sent == [4], sent
    for frame, label, cols in ((calls, "calls", ["msisdn", "other_party"]), (rated, "rated", ["msisdn"])):
        shared = frame.transform(normalize_phone_columns(cols, "US", mapping=mapping, label=label))
        own = frame.transform(normalize_phone_columns(cols, "US"))
        assert_df_equality(shared, own, ignore_row_order=True)
    with pytest.raises(ValueError, match="made for region US, not GB"):
        rated.transform(normalize_phone_columns(["msisdn"], "GB", mapping=mapping, label="rated"))
    with pytest.raises(ValueError, match=r"\['charges.msisdn'\] are not in the mapping"):
        rated.transform(normalize_phone_columns(["msisdn"], "US", mapping=mapping, label="charges"))


def test_a_shared_mapping_too_big_to_broadcast_is_cut_per_column(spark: SparkSession) -> None:
    """Under a 1 KB limit, the shared mapping (41 numbers) is not broadcast whole: each column takes its own
    values (other_party's one short code is broadcast, msisdn's 40 numbers are a shuffle join)."""
    rows = [(i, f"+1 555-200-{i:04d}", "611") for i in range(40)]
    df = spark.createDataFrame(rows, RAW_SCHEMA)
    with session_conf(spark, {BROADCAST_LIMIT_KEY: "1k"}):
        mapping = phone_mapping({"t": (df, ["msisdn", "other_party"])}, "US")
        out = df.transform(normalize_phone_columns(["msisdn", "other_party"], "US", mapping=mapping, label="t"))
        plan = _executed_plan(out)
        got = out.where(F.col("id") == 7).select("msisdn_e164", "other_party_e164").first()
    assert not mapping.whole_broadcast
    assert plan.count("BroadcastHashJoin") == 1 and "SortMergeJoin" in plan, plan
    assert got is not None and tuple(got) == ("+15552000007", None)


@pytest.mark.parametrize(("limit", "broadcast"), [("256m", True), ("100", False), ("0", False)])
def test_mapping_is_broadcast_only_under_the_byte_limit(spark: SparkSession, limit: str, broadcast: bool) -> None:
    """Three raw values weigh about 300 bytes as a hash table: broadcast under 256m, a shuffle join under 100 bytes
    or with broadcasting off; the rows are the same either way."""
    df = spark.createDataFrame([(1, "+1 555-123-4567", "BANK"), (2, "(555) 123-4567", None),
                                (3, "+44 20 7946 0958", "+1 555-123-4567")], RAW_SCHEMA)
    with session_conf(spark, {BROADCAST_LIMIT_KEY: limit}):
        out = df.transform(normalize_phone_columns(["msisdn", "other_party"], "US"))
        plan = _executed_plan(out)
        rows = sorted(tuple(r) for r in out.select("id", "msisdn_e164", "other_party_e164").collect())
    assert ("BroadcastHashJoin" in plan) is broadcast, plan
    assert rows == [(1, "+15551234567", None), (2, "+15551234567", None), (3, "+442079460958", "+15551234567")]


def test_each_column_is_broadcast_on_its_own_size(spark: SparkSession) -> None:
    """msisdn holds 40 numbers (about 4 KB as a hash table), other_party one short code: under a 1 KB limit only
    other_party's mapping is broadcast, and msisdn's is a shuffle join."""
    rows = [(i, f"+1 555-200-{i:04d}", "611") for i in range(40)]
    df = spark.createDataFrame(rows, RAW_SCHEMA)
    with session_conf(spark, {BROADCAST_LIMIT_KEY: "1k"}):
        out = df.transform(normalize_phone_columns(["msisdn", "other_party"], "US"))
        plan = _executed_plan(out)
        got = out.where(F.col("id") == 7).select("msisdn_e164", "other_party_e164").first()
    assert plan.count("BroadcastHashJoin") == 1 and "SortMergeJoin" in plan, plan
    assert got is not None and tuple(got) == ("+15552000007", None)   # '611' is not a possible full number


def test_broadcast_limit_must_be_a_size(spark: SparkSession) -> None:
    df = spark.createDataFrame([(1, "+15551234567", None)], RAW_SCHEMA)
    with session_conf(spark, {BROADCAST_LIMIT_KEY: "lots"}), \
            pytest.raises(ValueError, match="spark.telcora.phone.broadcastMaxBytes='lots'"):
        df.transform(normalize_phone_columns(["msisdn"], "US"))


def test_normalize_phone_columns_rejects_bad_arguments(spark: SparkSession) -> None:
    df = spark.createDataFrame([(1, "+15551234567", None)], RAW_SCHEMA)
    with pytest.raises(ValueError, match="region"):
        normalize_phone_columns(["msisdn"], "XX")
    with pytest.raises(ValueError, match="not in DataFrame"):
        df.transform(normalize_phone_columns(["nope"], "US"))
    with pytest.raises(ValueError, match="already exist"):
        df.withColumn("msisdn_e164", F.lit("x")).transform(normalize_phone_columns(["msisdn"], "US"))


# ---------------------------------------------------------------- masking


def test_mask_phone(spark: SparkSession) -> None:
    schema = StructType([StructField("v", StringType(), True)])
    df = spark.createDataFrame(
        [("+15551234567",), ("+442079460958",), ("+1234567890",), ("+12345678",), ("12",), ("7",), (None,)], schema
    )

    actual = df.select(F.col("v"), mask_phone(F.col("v")).alias("masked"))

    expected = spark.createDataFrame(
        [
            ("+15551234567", "+1555***4567"),
            ("+442079460958", "+4420***0958"),
            ("+1234567890", "+1234***7890"),  # 11 chars: 5 + *** + 4
            ("+12345678", "***78"),  # 9 chars: *** + last 2
            ("12", "***12"),
            ("7", "***7"),
            (None, None),
        ],
        StructType([StructField("v", StringType(), True), StructField("masked", StringType(), True)]),
    )
    assert_df_equality(actual, expected, ignore_row_order=True, ignore_nullable=True)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("+15551234567", "+1555***4567"),
        ("+442079460958", "+4420***0958"),
        ("+123456789", "+1234***6789"),  # 10 chars: the middle is a single character
        ("+12345678", "***78"),
        ("12", "***12"),
        ("7", "***7"),
        (None, None),
    ],
)
def test_mask_phone_str(value: str | None, expected: str | None) -> None:
    assert mask_phone_str(value) == expected
