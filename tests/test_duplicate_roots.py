"""Issue 10, defects 16 and 17: duplicate roots are resolved to a fixed point, and ids never pick a duplicate's original.

One run (module fixture) over two scenarios, each on its own subscriber number and account so they cannot interfere:

- chain (17): A(CH-1, X) <- B(CH-1, Y) <- C(CH-2, Y) <- D(CH-2, Z) <- E(CH-3, Z), in arrival order. Each copy is a
  duplicate of the earliest row sharing its record_id or its content, so the chain leads back to A through four
  levels: every copy's original is A (once, E's was C). A is rated (R-CH-A, lineage CH-1) and so is E (R-CH-E,
  lineage CH-3): E's lineage leads to A, which R-CH-A already matched, so R-CH-E is a further rating of A.
- tie (16): two usage records (TIE-U1 2 s before T0, TIE-U2 2 s after), each MATCHED by its own rated event's
  lineage, and a rated event without lineage at T0 with the same quantity: it fits both equally well (same |dt|,
  same |dq|), so it is a DUPLICATE_RATED_EVENT with no counterpart, its reason naming the tie. The control
  (UNQ-U4 1 s before, UNQ-U5 3 s after) has a unique best, UNQ-U4, which stays its counterpart.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from chispa import assert_df_equality
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from factories import RULESET, T0, write_inputs
from jobs.config import load_conf
from jobs.ruleset import load_ruleset
from jobs.run import RunResult, execute
from transforms.engine.match import with_roots

S = timedelta(seconds=1)
H = timedelta(hours=1)
CHAIN, TIE, UNIQUE = 1, 2, 3
CP = "usage-to-rating"
ROWS = "record_id string, outcome string, counterpart_id string"


def _n(i: int) -> str:
    return f"+1555300{i:04d}"


def _cdr(rid: str, i: int, **kw: Any) -> dict[str, Any]:
    return {"record_id": rid, "msisdn": _n(i), "account_id": f"ACC-DR-{i}", **kw}


def _rated(reid: str, src: str | None, i: int, **kw: Any) -> dict[str, Any]:
    return {"rated_event_id": reid, "source_record_id": src, "msisdn": _n(i), "account_id": f"ACC-DR-{i}", **kw}


# Content X, Y, Z differ only in start_time; arrival order is A, B, C, D, E.
X, Y, Z = T0, T0 + 100 * S, T0 + 200 * S
CDR = [
    _cdr("CH-1", CHAIN, start_time=X, received_at=T0 + 1 * H),      # A
    _cdr("CH-1", CHAIN, start_time=Y, received_at=T0 + 2 * H),      # B: same id as A
    _cdr("CH-2", CHAIN, start_time=Y, received_at=T0 + 3 * H),      # C: same content as B
    _cdr("CH-2", CHAIN, start_time=Z, received_at=T0 + 4 * H),      # D: same id as C
    _cdr("CH-3", CHAIN, start_time=Z, received_at=T0 + 5 * H),      # E: same content as D
    _cdr("TIE-U1", TIE, start_time=T0 - 2 * S),
    _cdr("TIE-U2", TIE, start_time=T0 + 2 * S),
    _cdr("UNQ-U4", UNIQUE, start_time=T0 - 1 * S),
    _cdr("UNQ-U5", UNIQUE, start_time=T0 + 3 * S),
]
RATED = [
    _rated("R-CH-A", "CH-1", CHAIN, start_time=X),
    _rated("R-CH-E", "CH-3", CHAIN, start_time=Z, rated_at=T0 + 9 * H),
    _rated("R-TIE-1", "TIE-U1", TIE, start_time=T0 - 2 * S),
    _rated("R-TIE-2", "TIE-U2", TIE, start_time=T0 + 2 * S),
    _rated("R-TIE-3", None, TIE, start_time=T0),
    _rated("R-UNQ-4", "UNQ-U4", UNIQUE, start_time=T0 - 1 * S),
    _rated("R-UNQ-5", "UNQ-U5", UNIQUE, start_time=T0 + 3 * S),
    _rated("R-UNQ-6", None, UNIQUE, start_time=T0),
]


@pytest.fixture(scope="module")
def run(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunResult, DataFrame,
                                                                                          DataFrame]]:
    root = tmp_path_factory.mktemp("duplicate-roots")
    conf_path = write_inputs(spark, root, {"cdr": CDR, "rated_event": RATED})
    result = execute(spark, load_conf(conf_path), load_ruleset(RULESET), "2026-06")
    outcomes = (spark.read.format("delta").load(result.output_refs["record_outcome"])
                .where((F.col("run_id") == result.run_id) & (F.col("control_point_id") == CP)))
    cases = (spark.read.format("delta").load(result.output_refs["ra_case"])
             .where((F.col("run_id") == result.run_id) & (F.col("control_point_id") == CP)))
    yield result, outcomes, cases


def _rows(outcomes: DataFrame, side: str, i: int) -> DataFrame:
    return (outcomes.where((F.col("side") == side) & (F.col("msisdn_e164") == _n(i)))
            .select("record_id", "outcome", "counterpart_id"))


def _expected(spark: SparkSession, rows: list[tuple[str, str, str | None]]) -> DataFrame:
    return spark.createDataFrame(rows, ROWS)


def _reasons(outcomes: DataFrame, side: str, i: int) -> list[tuple[str, str]]:
    return sorted((r["record_id"], r["reason"] or "") for r in
                  outcomes.where((F.col("side") == side) & (F.col("msisdn_e164") == _n(i))).collect())


def test_every_copy_in_a_chain_of_duplicates_has_the_chain_original_as_its_root(
        spark: SparkSession, run: tuple[RunResult, DataFrame, DataFrame]) -> None:
    _, outcomes, _ = run
    expected = _expected(spark, [
        ("CH-1", "MATCHED", "R-CH-A"),
        ("CH-1", "DUPLICATE_USAGE", "CH-1"),        # B
        ("CH-2", "DUPLICATE_USAGE", "CH-1"),        # C
        ("CH-2", "DUPLICATE_USAGE", "CH-1"),        # D (was B's record through C, by luck of B sharing A's id)
        ("CH-3", "DUPLICATE_USAGE", "CH-1"),        # E (was C: one level deep)
    ])
    assert_df_equality(_rows(outcomes, "LEFT", CHAIN), expected, ignore_row_order=True, ignore_nullable=True)
    # Every copy says so, and knows its original was rated again (by R-CH-E, through E's lineage).
    copies = [reason for _, reason in _reasons(outcomes, "LEFT", CHAIN) if "copy of" in reason]
    assert len(copies) == 4 and all(r.startswith("copy of CH-1 ") and "rated again: 1 " in r for r in copies), copies


def test_a_rating_of_the_chain_end_is_a_further_rating_of_the_chain_original(
        spark: SparkSession, run: tuple[RunResult, DataFrame, DataFrame]) -> None:
    """docs step 2: a rated event whose lineage reaches an original already rated by its own id is a duplicate."""
    _, outcomes, _ = run
    expected = _expected(spark, [("R-CH-A", "MATCHED", "CH-1"), ("R-CH-E", "DUPLICATE_RATED_EVENT", "CH-1")])
    assert_df_equality(_rows(outcomes, "RIGHT", CHAIN), expected, ignore_row_order=True, ignore_nullable=True)
    assert dict(_reasons(outcomes, "RIGHT", CHAIN))["R-CH-E"] == "further rated event for usage CH-1 (lineage)"
    matched = outcomes.where((F.col("record_id") == "CH-1") & (F.col("outcome") == "MATCHED")).collect()
    assert [r["reason"] for r in matched] == ["1 further rated event(s) for this usage"]


def test_a_rated_event_fitting_two_matched_usages_equally_gets_no_counterpart(
        spark: SparkSession, run: tuple[RunResult, DataFrame, DataFrame]) -> None:
    _, outcomes, cases = run
    expected = _expected(spark, [
        ("TIE-U1", "MATCHED", "R-TIE-1"), ("TIE-U2", "MATCHED", "R-TIE-2"),
        ("R-TIE-1", "MATCHED", "TIE-U1"), ("R-TIE-2", "MATCHED", "TIE-U2"),
        ("R-TIE-3", "DUPLICATE_RATED_EVENT", None),
    ])
    actual = _rows(outcomes, "LEFT", TIE).unionByName(_rows(outcomes, "RIGHT", TIE))
    assert_df_equality(actual, expected, ignore_row_order=True, ignore_nullable=True)
    reason = dict(_reasons(outcomes, "RIGHT", TIE))["R-TIE-3"]
    assert "fits 2 matched usage records equally well" in reason and "tie" in reason, reason
    assert "TIE-U" not in reason, reason                      # no id chosen between them, none named as the one
    # The case names the rated event alone and carries no usage record as evidence.
    case = cases.where(F.col("case_type") == "DUPLICATE_RATED_EVENT").where(
        F.array_contains("business_key.record_ids", "R-TIE-3")).collect()
    assert len(case) == 1
    assert case[0]["business_key"]["record_ids"] == ["R-TIE-3"]
    assert [e["source_table"] for e in case[0]["evidence"]] == ["rated_event"]


def test_a_rated_event_with_a_unique_best_matched_usage_keeps_it_as_counterpart(
        spark: SparkSession, run: tuple[RunResult, DataFrame, DataFrame]) -> None:
    _, outcomes, _ = run
    expected = _expected(spark, [
        ("UNQ-U4", "MATCHED", "R-UNQ-4"), ("UNQ-U5", "MATCHED", "R-UNQ-5"),
        ("R-UNQ-4", "MATCHED", "UNQ-U4"), ("R-UNQ-5", "MATCHED", "UNQ-U5"),
        ("R-UNQ-6", "DUPLICATE_RATED_EVENT", "UNQ-U4"),
    ])
    actual = _rows(outcomes, "LEFT", UNIQUE).unionByName(_rows(outcomes, "RIGHT", UNIQUE))
    assert_df_equality(actual, expected, ignore_row_order=True, ignore_nullable=True)
    assert dict(_reasons(outcomes, "RIGHT", UNIQUE))["R-UNQ-6"] == (
        "further rated event for usage UNQ-U4 (lineage lost; fits a matched usage record)")
    assert dict(_reasons(outcomes, "LEFT", UNIQUE))["UNQ-U4"] == "1 further rated event(s) for this usage"


def test_roots_of_a_long_alternating_chain_reach_its_first_row(spark: SparkSession) -> None:
    """`with_roots` alone, on a chain nine rows deep (several pointer-jumping steps), plus a row with no copy.

    Row i carries record_id L-(i // 2) and content (i + 1) // 2: rows 2k, 2k+1 share an id, rows 2k+1, 2k+2 share a
    content, so each row's parent is the one before it and every root is row 0, which the record_outcome table
    cannot show for a copy whose parent shares row 0's record_id. The duplicates stage is the shipped ruleset's.
    """
    depth = 9
    rows = [(f"k{i}", f"h{i}", f"L-{i // 2}", T0 + (i + 1) // 2 * 100 * S, T0 + i * H) for i in range(depth)]
    rows.append(("k-alone", "h-alone", "L-alone", T0 + 5000 * S, T0))
    valid = (spark.createDataFrame(rows, "_key string, _hash string, record_id string, start_time timestamp, "
                                         "received_at timestamp")
             .select("*", F.lit(_n(9)).alias("msisdn_e164"), F.lit("VOICE").alias("service_type"),
                     F.lit("MO").alias("direction"), F.lit(_n(99)).alias("other_party_key"),
                     F.lit(60).cast("bigint").alias("duration_s"), F.lit(0).cast("bigint").alias("volume_bytes"),
                     F.lit("F1").alias("source_file")))
    ruleset = load_ruleset(RULESET)
    cdr = ruleset.inputs[ruleset.control_points[CP].left.input]
    duplicates = ruleset.control_points[CP].stages.duplicates
    assert duplicates is not None and cdr.id == "record_id"
    # Only the columns the stage reads take part: its content and its order (received_at, source_file, record_id).
    assert set(duplicates.content) | set(duplicates.order) <= set(valid.columns), (duplicates, valid.columns)
    actual = with_roots(valid, cdr.id, duplicates).select(
        "_key", "_is_dup", "_dup_by", "_first_of_id", F.col("_root._key").alias("root"),
        F.col("_root._rid").alias("root_id"))
    expected = spark.createDataFrame(
        [("k0", False, "content", True, "k0", "L-0")]
        + [(f"k{i}", True, "record_id" if i % 2 else "content", i % 2 == 0, "k0", "L-0") for i in range(1, depth)]
        + [("k-alone", False, "content", True, "k-alone", "L-alone")],
        "_key string, _is_dup boolean, _dup_by string, _first_of_id boolean, root string, root_id string")
    assert_df_equality(actual, expected, ignore_row_order=True, ignore_nullable=True)
