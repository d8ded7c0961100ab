"""The usage-to-bill controls on one hand-built month where every record's outcome is known in advance.

One run (module fixture) over a scenario in which each group of records uses its own subscriber number, so groups
cannot interfere; each test checks one concept against expectations written here by hand.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from chispa import assert_df_equality
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from factories import DEFAULTS, RULESET, session_conf, write_inputs
from jobs.config import load_conf
from jobs.ruleset import load_ruleset
from jobs.run import ConservationError, RunResult, _check_conservation, execute
from jobs.spark_status import FORBIDDEN_OPERATORS, SqlExecution, last_execution_id, metric_count, sql_executions
from scenario import CDR, CHARGES, DST_GAP, EXPECTED, RATED, SUSPENSE, H
from transforms.checkpoints import SMALL_RUN_BYTES_KEY

# The SQL executions of the module's run (plans as Spark executed them, with metrics), for the plan checks.
EXECUTIONS: list[SqlExecution] = []


@pytest.fixture(scope="module")
def run(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunResult, dict[str, DataFrame]]]:
    root = tmp_path_factory.mktemp("scenario")
    conf_path = write_inputs(spark, root, {"cdr": CDR, "rated_event": RATED, "bill_charge": CHARGES,
                                            "suspense": SUSPENSE})
    before = last_execution_id(spark)
    # As a big run (tiny inputs would make it a small one): the plan checks below read each plan's own metrics, and
    # a small run's lazy cuts compute their rows in the plan that first reads them (tests/test_determinism.py
    # shows both give the same outputs).
    with session_conf(spark, {SMALL_RUN_BYTES_KEY: "0"}):
        result = execute(spark, load_conf(conf_path), load_ruleset(RULESET), "2026-06")
    EXECUTIONS[:] = sql_executions(spark, before)
    outputs = {name: spark.read.format("delta").load(ref).where(F.col("run_id") == result.run_id)
               for name, ref in result.output_refs.items()}
    yield result, outputs


def _outcomes(outputs: dict[str, DataFrame], cp: str, side: str) -> DataFrame:
    return (outputs["record_outcome"].where((F.col("control_point_id") == cp) & (F.col("side") == side))
            .select("record_id", "outcome"))


@pytest.mark.parametrize("cp_side", list(EXPECTED), ids=lambda k: f"{k[0]}:{k[1]}")
def test_every_record_gets_its_expected_outcome(spark: SparkSession, run: Any, cp_side: tuple[str, str]) -> None:
    _, outputs = run
    expected = spark.createDataFrame(
        [(rid, o) for rid, outs in EXPECTED[cp_side].items() for o in outs], "record_id string, outcome string")
    actual = _outcomes(outputs, *cp_side)
    assert_df_equality(actual, expected, ignore_row_order=True, ignore_nullable=True)


def test_every_contract_outcome_is_exercised() -> None:
    """Every outcome each record control point side's rules can give is expected of some record of the scenario,
    and every record side of the ruleset is in the scenario."""
    ruleset = load_ruleset(RULESET)
    sides = {(cp.id, side) for cp in ruleset.record_points() for side in cp.sides}
    assert set(EXPECTED) == sides
    for (cp, side), records in EXPECTED.items():
        seen = {o for outs in records.values() for o in outs}
        given = {rule.outcome for rule in ruleset.control_points[cp].decide[side]}
        assert seen == given, (cp, side, given - seen, seen - given)
    for cp in ruleset.record_points():      # the sides' rules give every outcome the control point declares
        assert {rule.outcome for side in cp.sides for rule in cp.decide[side]} == set(cp.outcomes), cp.id


def test_a_quarantined_row_claims_no_match(run: Any) -> None:
    """It took part in no matching, so its match_stage is NONE (a charge's repeated-id rank once leaked in as EXACT)."""
    _, outputs = run
    claims = (outputs["record_outcome"].where((F.col("outcome") == "QUARANTINED") & (F.col("match_stage") != "NONE"))
              .select("control_point_id", "side", "record_id", "match_stage"))
    assert claims.collect() == []


def test_fuzzy_window_edge_and_confidence(run: Any) -> None:
    _, outputs = run
    rows = {r["record_id"]: r for r in outputs["record_outcome"].where(
        (F.col("control_point_id") == "usage-to-rating") & (F.col("side") == "LEFT")).collect()}
    assert rows["C-E10"]["match_stage"] == "FUZZY" and rows["C-E10"]["counterpart_id"] == "R-E10"
    assert rows["C-E10"]["confidence"] == Decimal("0.5000")      # 10 s of a 10 s window
    assert rows["C-B"]["confidence"] == Decimal("0.3500")        # 3 s of 10 s, and 1 s of a 1 s tolerance
    assert rows["C-E11"]["counterpart_id"] is None


def test_ambiguous_tie_is_not_broken_by_ids(run: Any) -> None:
    _, outputs = run
    amb = outputs["record_outcome"].where(F.col("outcome") == "AMBIGUOUS_MATCH").collect()
    assert sorted(r["record_id"] for r in amb) == ["C-T1", "C-T2", "R-T"]
    assert all(r["counterpart_id"] is None and "tie" in r["reason"] for r in amb)


def test_utc_times_ignore_daylight_saving(run: Any) -> None:
    _, outputs = run
    ro = outputs["record_outcome"].where(F.col("record_id").isin("C-DST", "C-FB1", "C-FB2")
                                         & (F.col("control_point_id") == "usage-to-rating"))
    times = {r["record_id"]: r["start_time"] for r in ro.collect()}
    # Instants come back exactly as given (the session reads and writes UTC); wall-clock ambiguity is irrelevant.
    assert times["C-DST"] == DST_GAP.replace(tzinfo=None)
    assert times["C-FB2"] - times["C-FB1"] == H


def test_signed_exposure_and_cases(run: Any) -> None:
    _, outputs = run
    cases = {(r["case_type"], tuple(r["business_key"]["record_ids"])): r for r in outputs["ra_case"].collect()}
    mismatch = cases[("TARIFF_MISMATCH", ("R-M", "VOICE-STD@v1"))]
    assert mismatch["exposure_amount"] == Decimal("-0.300000") and mismatch["exposure_class"] == "OVERBILLING"
    under = cases[("TARIFF_MISMATCH", ("R-M2", "VOICE-STD@v1"))]
    assert under["exposure_amount"] == Decimal("0.300000") and under["exposure_class"] == "UNDERBILLING"
    unrated = cases[("USAGE_NOT_RATED", ("C-N",))]
    assert unrated["exposure_amount"] == Decimal("0.600000") and unrated["owner_team"] == "charging-operations"
    assert unrated["due_at"] - unrated["opened_at"] == timedelta(days=5)
    assert {e["source_table"] for e in unrated["evidence"]} == {"cdr"}
    assert all(len(e["payload_hash"]) == 64 for c in cases.values() for e in c["evidence"])
    late = cases[("LATE_USAGE", ("C-L",))]
    assert late["exposure_class"] == "TIMING"
    # informational and exempt outcomes raise no case
    assert not [k for k in cases if k[0] in ("IN_SUSPENSE", "DUPLICATE_USAGE", "MATCHED")]
    assert ("USAGE_NOT_RATED", ("C-TA",)) not in cases
    dup = cases[("DUPLICATE_RATED_EVENT", ("C-A", "R-A2"))]
    assert dup["exposure_amount"] == Decimal("-0.600000")
    assert outputs["ra_case"].select("case_id").distinct().count() == outputs["ra_case"].count()


def test_aggregate_variance_per_account(run: Any) -> None:
    _, outputs = run
    agg = {(r["account_id"], r["service_type"]): r for r in outputs["aggregate_variance"].collect()}
    assert agg[("ACC-2", "VOICE")]["difference"] == Decimal("0.200000")        # rated 1.20, billed 1.00
    assert agg[("ACC-2", "VOICE")]["beyond_tolerance"] is True
    assert agg[("ACC-13", "VOICE")]["beyond_tolerance"] is False
    assert agg[("ACC-40", None)]["right_amount"] == Decimal("0.600000")        # charge without lineage


def test_conservation_of_counts_and_amounts(run: Any) -> None:
    _, outputs = run
    ro = outputs["record_outcome"]
    got = {(r["control_point_id"], r["side"]): (r["n"], r["amount"]) for r in
           ro.groupBy("control_point_id", "side").agg(F.count(F.lit(1)).alias("n"), F.sum("amount").alias("amount"))
           .collect()}
    rated_sum = sum((r.get("amount", Decimal("0.600000")) or Decimal(0) for r in RATED), Decimal(0))
    usage_charges = [c for c in CHARGES if c.get("charge_type", "USAGE") == "USAGE"]
    charge_sum = sum((c.get("amount", Decimal("0.600000")) or Decimal(0) for c in usage_charges), Decimal(0))
    assert got[("usage-to-rating", "LEFT")][0] == len(CDR)
    for key in (("usage-to-rating", "RIGHT"), ("rating-accuracy", "LEFT"), ("rating-to-billing", "LEFT")):
        assert got[key] == (len(RATED), rated_sum), key
    assert got[("rating-to-billing", "RIGHT")] == (len(usage_charges), charge_sum)
    run_rows = outputs["control_run"].collect()
    assert {r["control_point_id"] for r in run_rows} == {"usage-to-rating", "rating-accuracy", "rating-to-billing",
                                                         "usage-aggregate"}
    assert all(r["conservation_ok"] and r["status"] == "COMMITTED" for r in run_rows)


def test_conservation_check_refuses_a_lost_row() -> None:
    def side(n: int, amount: Decimal | None, n_out: int = 0, keys: int = 0) -> dict[str, Any]:
        return {"n_read": n + n_out, "n_out": n_out, "n": n, "amount": amount, "amount_read": amount,
                "amount_out": Decimal(0) if amount is not None else None, "keys": keys}

    metrics = [{"control_point_id": "usage-to-rating", "side": "LEFT", "outcome": "MATCHED", "count": 9,
                "amount": None, "keys": 0}]
    totals = {"cdr": side(10, None, n_out=2), "rated_event": side(0, Decimal(0)), "usage_charge": side(0, Decimal(0))}
    ruleset = load_ruleset(RULESET)
    with pytest.raises(ConservationError, match=r"9 outcome rows \+ 2 out of scope for 12 cdr rows read"):
        _check_conservation(ruleset, metrics, totals)
    totals["cdr"] = side(9, None, n_out=2)
    metrics.append({"control_point_id": "rating-accuracy", "side": "LEFT", "outcome": "MATCHED", "count": 0,
                    "amount": Decimal("1.000000"), "keys": 0})
    with pytest.raises(ConservationError, match="outcome amounts 1.000000 != rated_event total 0"):
        _check_conservation(ruleset, metrics, totals)
    metrics.append({"control_point_id": "rating-to-billing", "side": "LEFT", "outcome": None, "count": 1,
                    "amount": Decimal(0), "keys": 0})
    with pytest.raises(ConservationError, match="rating-to-billing LEFT: 1 rated_event rows no rule decides"):
        _check_conservation(ruleset, metrics, totals)


def test_rerun_same_run_id_commits_nothing(spark: SparkSession, run: Any, tmp_path: Path) -> None:
    result, _ = run
    from delta.tables import DeltaTable

    def versions() -> dict[str, int]:
        return {name: DeltaTable.forPath(spark, ref).history(1).collect()[0]["version"]
                for name, ref in result.output_refs.items()}

    before = versions()
    conf_path = Path(result.output_refs["control_run"]).parent.parent / "conf.yaml"
    again = execute(spark, load_conf(conf_path), load_ruleset(RULESET), "2026-06", result.run_id)
    assert again.already_committed and not again.committed
    assert versions() == before


def test_same_inputs_give_identical_rows_and_case_ids(spark: SparkSession, run: Any) -> None:
    result, outputs = run
    conf_path = Path(result.output_refs["control_run"]).parent.parent / "conf.yaml"
    other = execute(spark, load_conf(conf_path), load_ruleset(RULESET), "2026-06", "second-run")
    for table in ("record_outcome", "ra_case", "aggregate_variance"):
        first = outputs[table].drop("run_id", "recorded_at")         # recorded_at: wall clock of the write
        second = spark.read.format("delta").load(other.output_refs[table]).where(
            F.col("run_id") == "second-run").drop("run_id", "recorded_at")
        assert_df_equality(first, second, ignore_row_order=True)


CONTRACT_CHECK = Path(__file__).resolve().parent.parent.parent / "shared" / "contract_check.py"


def test_outputs_pass_the_independent_contract_check(run: Any) -> None:
    """../shared/contract_check.py reads the outputs with delta-rs, a second Delta implementation."""
    import subprocess
    import sys

    result, _ = run
    assert CONTRACT_CHECK.is_file(), f"{CONTRACT_CHECK} not found: the repo expects shared/ beside it"
    conf_path = Path(result.output_refs["control_run"]).parent.parent / "conf.yaml"
    proc = subprocess.run([sys.executable, str(CONTRACT_CHECK), str(conf_path), result.run_id],
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "CONTRACT: PASS" in proc.stdout
    assert "FAIL" not in proc.stdout.replace("CONTRACT: PASS", "")


def test_big_outputs_keep_file_stats_only_for_the_columns_readers_filter_by(spark: SparkSession, run: Any) -> None:
    """Delta's default keeps min/max of the first 32 columns (sha256 fingerprints too): a quarter of the write."""
    import json

    from jobs.outputs import STATS_COLUMNS
    from transforms.schema import OUTPUT_SCHEMAS

    result, _ = run
    for table, columns in STATS_COLUMNS.items():
        assert set(columns) <= set(OUTPUT_SCHEMAS[table].fieldNames()), table
        ref = result.output_refs[table]
        props = spark.sql(f"DESCRIBE DETAIL delta.`{ref}`").first()["properties"]
        assert props.get("delta.dataSkippingStatsColumns") == ",".join(columns), (table, props)
        stats = (spark.read.json(f"{ref}/_delta_log/00000000000000000000.json").where(F.col("add").isNotNull())
                 .select("add.stats").first()[0])
        assert set(json.loads(stats)["minValues"]) <= set(columns), (table, stats)


def test_correction_requests_not_corrections(spark: SparkSession, run: Any) -> None:
    result, outputs = run
    requests = spark.read.format("delta").load(result.output_refs["correction_request"]).where(
        F.col("run_id") == result.run_id)
    cases = outputs["ra_case"]
    assert requests.count() == cases.where(F.col("status").isin("OPEN", "REOPENED")).count() > 0
    by_case = {r["case_type"]: (r["action"], r["target_system"]) for r in requests.collect()}
    assert by_case["USAGE_NOT_RATED"] == ("reprocess-usage", "rating")
    assert by_case["RATED_NOT_BILLED"] == ("generate-missed-charge", "billing")
    assert by_case["DUPLICATE_CHARGE"] == ("reverse-duplicate-charge", "billing")
    # telco-ra never writes to an input table: every input is still at the version the run read
    from delta.tables import DeltaTable

    conf = load_conf(Path(result.output_refs["control_run"]).parent.parent / "conf.yaml")
    assert set(result.input_versions) == load_ruleset(RULESET).tables()
    for name, ref in conf.tables.items():       # a table the ruleset does not read is still as factories wrote it
        latest = DeltaTable.forPath(spark, ref).history(1).collect()[0]["version"]
        assert latest == result.input_versions.get(name, 0), name


def test_suspense_ages_by_bucket_with_exposure(spark: SparkSession, run: Any) -> None:
    result, _ = run
    aging = spark.read.format("delta").load(result.output_refs["suspense_aging"]).where(
        F.col("run_id") == result.run_id)
    got = {r["age_bucket"]: (r["records"], r["exposure"], r["owner_team"]) for r in aging.collect()}
    assert got == {"0-2": (1, Decimal("0.600000"), "charging-operations"),
                   "8-30": (1, Decimal("0.600000"), "charging-operations")}


def test_plans_have_no_pair_explosion_and_no_row_at_a_time_python(spark: SparkSession, run: Any) -> None:
    """Every plan the run executed: no Cartesian product, no nested-loop join, no row-at-a-time Python UDF; the
    only Python is phone normalization, and it runs once, on the distinct raw phone values of all the inputs
    together (one mapping for the run: a number on a call, its rating and its charge is parsed once), not rows."""
    assert len(EXECUTIONS) > 10
    for execution in EXECUTIONS:
        found = {op for op in FORBIDDEN_OPERATORS if op in execution.operators() or op in execution.plan}
        assert not found, (execution.execution_id, execution.description, found)
    python_rows = [metric_count(node.metrics.get("number of output rows"))
                   for e in EXECUTIONS for node in e.nodes if node.name == "ArrowEvalPython"]
    distinct: dict[str, set[str]] = {}
    for table, rows, columns in (("cdr", CDR, ("msisdn", "other_party")),
                                 ("rated_event", RATED, ("msisdn", "other_party")),
                                 ("bill_charge", CHARGES, ("msisdn",))):
        scoped = [r for r in rows if r.get("charge_type", "USAGE") == "USAGE"]   # the job's bill_charge filter
        values = {row.get(c, DEFAULTS[table][c]) for row in scoped for c in columns}
        distinct[table] = {str(v) for v in values if v is not None}
    union = set().union(*distinct.values())
    assert python_rows, "phone normalization ran no pandas UDF"
    assert python_rows == [len(union)], (python_rows, {t: len(v) for t, v in distinct.items()}, len(union))
    assert len(union) < sum(len(v) for v in distinct.values())     # the inputs share numbers: each parsed once
    total_rows = len(CDR) + len(RATED) + len(CHARGES)
    assert sum(python_rows) < 2 * total_rows
