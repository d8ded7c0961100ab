"""End to end against the synthetic generator: every outcome scored with precision and recall 1.0.

The generator labels each record as it plants the fault (it does not re-implement matching), so this compares two
independent readings of docs/usage_to_bill.md: the generator's and the engine's.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from factories import CYCLE_BOUNDS, RULESET, jobs_started
from jobs.config import load_conf
from jobs.generate import generate
from jobs.outputs import content_hash, read_output
from jobs.ruleset import Ruleset, load_ruleset
from jobs.run import execute
from jobs.score import render, score
from jobs.synthetic.usage_to_bill import GeneratorParams
from jobs.utc import instant_micros
from transforms.keys import account_bucket


def vocabulary(ruleset: Ruleset) -> set[tuple[str, str, str]]:
    """(control point, side, outcome) of every outcome the ruleset can give: per record control point side, the
    outcomes its rules give (together, the control point's declared outcomes); per aggregate control point, its
    outcomes beyond and within tolerance (side AGGREGATE, as jobs.score reports them)."""
    out: set[tuple[str, str, str]] = set()
    for cp in ruleset.record_points():
        given = {(cp.id, side, rule.outcome) for side in cp.sides for rule in cp.decide[side]}
        assert {o for _, _, o in given} == set(cp.outcomes), cp.id
        out |= given
    for cp in ruleset.aggregate_points():
        assert cp.beyond is not None and cp.within is not None
        out |= {(cp.id, "AGGREGATE", cp.beyond), (cp.id, "AGGREGATE", cp.within)}
    return out


def priced_outcomes(ruleset: Ruleset, cp_id: str) -> set[str]:
    """The LEFT outcomes of a control point whose exposure is the record priced by a lookup (`priced_by`)."""
    return {rule.outcome for rule in ruleset.control_points[cp_id].decide["LEFT"] if rule.priced_by}


def _conf(tmp_path: Path, paths: dict[str, str]) -> Path:
    """A conf over a generated month's inputs (as `paths` names them), outputs under `tmp_path`."""
    conf_path = tmp_path / "conf.yaml"
    conf_path.write_text(yaml.safe_dump({
        "tables": {k: paths[k] for k in ("cdr", "rated_event", "bill_charge", "suspense", "tariff")},
        "output": str(tmp_path / "output"), "cycles": {"2026-06": CYCLE_BOUNDS}}))
    return conf_path


@pytest.mark.slow
def test_generated_month_scores_precision_and_recall_one(spark: SparkSession, tmp_path: Path) -> None:
    paths = generate(spark, str(tmp_path / "input"), GeneratorParams(rows=6_000, seed=7))
    conf_path = _conf(tmp_path, paths)
    conf, ruleset = load_conf(conf_path), load_ruleset(RULESET)
    before = jobs_started(spark)
    result = execute(spark, conf, ruleset, "2026-06")
    # A small run's Spark jobs are its actions (issue "One control engine", point 6: at most 80), not one per
    # intermediate and adaptive stage (a big run of this month starts some 300).
    assert jobs_started(spark) - before <= 80, f"{jobs_started(spark) - before} Spark jobs"
    scores = score(spark, conf, ruleset, result.run_id, spark.read.format("delta").load(paths["ground_truth"]))
    table = render(scores)
    imperfect = [s for s in scores if s.precision != 1.0 or s.recall != 1.0]
    assert not imperfect, table
    seen = {(s.control_point_id, s.side, s.outcome) for s in scores if s.expected > 0}
    want = vocabulary(ruleset)
    assert want <= seen, f"outcomes the generator did not plant: {sorted(want - seen)}\n{table}"


@pytest.mark.slow
def test_never_rated_usage_is_priced_on_a_tariff_table_with_its_own_ids(spark: SparkSession, tmp_path: Path) -> None:
    """Issue 10 point 1, on a month made another way: the generator's month with every tariff id renamed (in tariff
    and rated_event alike). The shipped ruleset names no tariff id, so every never-rated record must carry the
    exposure its service type's tariff valid at its start_time gives, computed here independently in Python."""
    paths = generate(spark, str(tmp_path / "input"), GeneratorParams(rows=3_000, seed=11))
    renamed = F.concat(F.lit("OP/"), F.upper(F.substring(F.sha2(F.col("tariff_id"), 256), 1, 6)))
    for table in ("tariff", "rated_event"):
        out = str(tmp_path / "renamed" / table)
        (spark.read.format("delta").load(paths[table]).withColumn("tariff_id", renamed)
         .write.format("delta").save(out))
        paths[table] = out
    conf_path = _conf(tmp_path, paths)
    ruleset = load_ruleset(RULESET)
    priced_set = priced_outcomes(ruleset, "usage-to-rating")
    assert priced_set == {"IN_SUSPENSE", "SUSPENSE_AGED", "LATE_USAGE", "USAGE_NOT_RATED"}, priced_set   # CONTRACT 2
    result = execute(spark, load_conf(conf_path), ruleset, "2026-06")

    tariffs = [r.asDict() for r in spark.read.format("delta").load(paths["tariff"]).select(
        "tariff_id", "tariff_version", "service_type", instant_micros("valid_from").alias("since"),
        instant_micros("valid_to").alias("until"), "rate_per_unit", "rounding_increment", "minimum_charge").collect()]
    assert not [t for t in tariffs if not t["tariff_id"].startswith("OP/")]
    cdr = spark.read.format("delta").load(paths["cdr"]).select(
        "record_id", "duration_s", "volume_bytes", instant_micros("start_time").alias("t")).dropDuplicates(["record_id"])
    never_rated = (spark.read.format("delta").load(result.output_refs["record_outcome"])
                   .where((F.col("run_id") == result.run_id) & (F.col("control_point_id") == "usage-to-rating")
                          & (F.col("side") == "LEFT") & F.col("outcome").isin(*priced_set))
                   .join(cdr, "record_id").select("record_id", "outcome", "service_type", "t", "duration_s",
                                                  "volume_bytes", "exposure_amount").collect())
    assert {r["outcome"] for r in never_rated} == priced_set

    def price(row: Any) -> Decimal:
        valid = sorted((t for t in tariffs if t["service_type"] == row["service_type"] and t["since"] <= row["t"]
                        and (t["until"] is None or row["t"] < t["until"])), key=lambda t: t["tariff_id"])
        assert valid, f"no tariff valid for {row['record_id']}"
        tariff = valid[0]
        quantity = {"VOICE": row["duration_s"], "SMS": 1, "DATA": row["volume_bytes"]}[row["service_type"]]
        increment = max(int(tariff["rounding_increment"]), 1)
        units = -(-quantity // increment) * increment
        priced = (units * tariff["rate_per_unit"]).quantize(Decimal("0.000001"), rounding=ROUND_HALF_UP)
        return max(tariff["minimum_charge"] or Decimal(0), priced)

    wrong = [(r["record_id"], r["outcome"], r["exposure_amount"], price(r)) for r in never_rated
             if r["exposure_amount"] != price(r) or r["exposure_amount"] <= 0]
    assert not wrong, wrong[:10]


@pytest.mark.slow
def test_a_partition_run_holding_cross_account_lineage_equals_that_bucket_of_the_full_run(
        spark: SparkSession, tmp_path: Path) -> None:
    """Issue 10 point 19, on the generator's month: matched usage rated and billed to another account than the usage
    record's is planted, and every record is bucketed by its lineage root's (the cdr's) account. So the partition
    run of a bucket holding such a pair's cdr reports exactly the full run's rows of that bucket, and the pair stays
    matched there (no false USAGE_NOT_RATED plus RATED_WITHOUT_USAGE)."""
    paths = generate(spark, str(tmp_path / "input"), GeneratorParams(rows=2_000, seed=23))
    conf_path = _conf(tmp_path, paths)
    conf, ruleset = load_conf(conf_path), load_ruleset(RULESET)
    buckets = ruleset.account_buckets

    cdr = spark.read.format("delta").load(paths["cdr"]).select("record_id", F.col("account_id").alias("cdr_account"))
    rated = spark.read.format("delta").load(paths["rated_event"]).select(
        "rated_event_id", "source_record_id", F.col("account_id").alias("rated_account"))
    charges = spark.read.format("delta").load(paths["bill_charge"]).select("charge_id", "source_rated_event_id")
    pairs = (rated.join(cdr, F.col("source_record_id") == F.col("record_id"))
             .where(F.col("rated_account") != F.col("cdr_account"))
             .select("record_id", "rated_event_id",
                     account_bucket(F.col("cdr_account"), buckets).alias("root_bucket"),
                     account_bucket(F.col("rated_account"), buckets).alias("own_bucket"))
             .collect())                                                   # bounded: a few dozen planted pairs
    split = sorted((p for p in pairs if p["root_bucket"] != p["own_bucket"]), key=lambda p: p["rated_event_id"])
    assert split, f"no cross-account pair whose accounts fall in different buckets among {len(pairs)} planted"
    bucket = split[0]["root_bucket"]
    in_bucket = [p for p in pairs if p["root_bucket"] == bucket]
    rated_ids = [p["rated_event_id"] for p in in_bucket]
    charge_ids = [r["charge_id"] for r in charges.where(F.col("source_rated_event_id").isin(*rated_ids)).collect()]
    assert charge_ids, "the planted pairs are billed"
    pair_ids = [p["record_id"] for p in in_bucket] + rated_ids + charge_ids

    full = execute(spark, conf, ruleset, "2026-06")
    part = execute(spark, conf, ruleset, "2026-06", bucket=bucket)
    ro = read_output(spark, full.output_refs["record_outcome"])
    mine = ro.where(F.col("run_id") == part.run_id)
    theirs = ro.where((F.col("run_id") == full.run_id) & (F.col("account_bucket") == bucket))

    def counts(df: DataFrame) -> dict[tuple[str, str, str], int]:
        return {(r["control_point_id"], r["side"], r["outcome"]): r["count"]
                for r in df.groupBy("control_point_id", "side", "outcome").count().collect()}

    assert counts(mine) == counts(theirs)
    assert content_hash(mine, exclude=("run_id",)) == content_hash(theirs, exclude=("run_id",))

    def pair_rows(df: DataFrame) -> set[tuple[str, str, str, str]]:
        return {(r["control_point_id"], r["side"], r["record_id"], r["outcome"]) for r in
                df.where(F.col("record_id").isin(*pair_ids)).select("control_point_id", "side", "record_id",
                                                                    "outcome").collect()}

    got = pair_rows(mine)
    # each cdr once, each rated event on three control sides, each charge once
    assert len(got) == len(in_bucket) * 4 + len(charge_ids), sorted(got)
    assert got == pair_rows(theirs)
    assert not [r for r in got if r[3] in ("USAGE_NOT_RATED", "RATED_WITHOUT_USAGE")], sorted(got)
    variances = read_output(spark, full.output_refs["aggregate_variance"])
    assert content_hash(variances.where(F.col("run_id") == part.run_id), exclude=("run_id",)) == content_hash(
        variances.where((F.col("run_id") == full.run_id) & (F.col("account_bucket") == bucket)), exclude=("run_id",))
