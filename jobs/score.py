"""Score a committed run against the synthetic generator's ground truth: precision and recall per outcome.

The ground truth is written by `telco-ra generate` as the outcome each planted record should get; the run is
joined to it through the record key (the same identity function the run used, over the same scoped inputs).
Precision and recall of 1.0 for every outcome is the bar for the usage-to-bill ruleset.

    telco-ra score --conf CONF --run-id RUN [--truth lakehouse/input/ground_truth]
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs.config import EnvConf, load_conf
from jobs.inputs import PinnedTable
from jobs.layouts_input import layout_tables
from jobs.outputs import read_output, table_ref
from jobs.ruleset import Ruleset, load_ruleset
from jobs.run import scope_inputs
from transforms.ignore import IGNORED
from transforms.keys import with_record_identity


@dataclass(frozen=True)
class Score:
    control_point_id: str
    side: str
    outcome: str
    expected: int
    actual: int
    true_positive: int

    @property
    def precision(self) -> float:
        return self.true_positive / self.actual if self.actual else (1.0 if not self.expected else 0.0)

    @property
    def recall(self) -> float:
        return self.true_positive / self.expected if self.expected else (1.0 if not self.actual else 0.0)


def _pairs(spark: SparkSession, conf: EnvConf, ruleset: Ruleset, run_id: str, truth: DataFrame) -> DataFrame:
    """(control_point_id, side, expected, actual) per record, and per aggregate group."""
    if "record_id" in truth.columns and "gen_row_id" in truth.columns:
        return _pairs_mixed(spark, conf, ruleset, run_id, truth)
    if "record_id" in truth.columns:
        return _pairs_by_record_id(spark, conf, run_id, truth)
    return _pairs_by_key(spark, conf, ruleset, run_id, truth).unionByName(
        _aggregate_pairs(spark, conf, ruleset, run_id, truth))


def _pairs_mixed(spark: SparkSession, conf: EnvConf, ruleset: Ruleset, run_id: str, truth: DataFrame) -> DataFrame:
    """A truth naming some records by `gen_row_id` (a table whose own ids may be null or repeated, such as a
    synthetic cdr table) and others by `record_id` (gen_row_id null: invoice lines, whose line_id the generator
    computes as ingest does): each table's outcomes are scored the way its truth rows name them."""
    by_key = truth.where(F.col("gen_row_id").isNotNull())
    keyed = sorted(r["table_name"] for r in by_key.select("table_name").distinct().collect())   # a few tables
    by_id = truth.where(F.col("gen_row_id").isNull())
    return (_pairs_by_key(spark, conf, ruleset, run_id, by_key.drop("record_id"), keyed)
            .unionByName(_pairs_by_record_id(spark, conf, run_id, by_id.drop("gen_row_id"), exclude=keyed)))


def _pairs_by_key(spark: SparkSession, conf: EnvConf, ruleset: Ruleset, run_id: str, truth: DataFrame,
                  tables: list[str] | None = None) -> DataFrame:
    """Records named by (table_name, gen_row_id), joined to the run's outcomes through the record key the run gave
    them; `tables`: only these tables' records and outcomes (else all)."""
    runs = read_output(spark, table_ref(conf.output, "control_run")).where(F.col("run_id") == run_id)
    first = runs.select("cycle_id", "input_versions", "input_tables").first()
    if first is None:
        raise ValueError(f"no committed run {run_id!r} under {conf.output}")
    tables_read = {ruleset.inputs[name].table for name in ruleset.scoped_inputs()
                   if ruleset.inputs[name].layouts is None}
    raw = {name: PinnedTable(name, first["input_tables"][name], first["input_versions"][name]).read(spark)
           for name in tables_read}
    raw.update(layout_tables(spark, conf, ruleset)[0])      # rate decks a side's `within` may name
    scoped = scope_inputs(raw, conf.cycle(first["cycle_id"]), ruleset)
    keys = None
    for name, df in scoped.items():
        inp = ruleset.inputs[name]
        if name not in ruleset.side_inputs() or (tables is not None and inp.table not in tables):
            continue      # an aggregate's input (its rows get no outcome), or a table scored otherwise
        assert inp.id is not None
        part = df.where(F.col("_in_side")).transform(with_record_identity(inp.id, inp.order)).select(
            F.lit(inp.table).alias("table_name"), "gen_row_id", F.col("_key").alias("record_key"))
        keys = part if keys is None else keys.unionByName(part)
    assert keys is not None
    keys = keys.distinct()        # two inputs of one table (other filters) carry the same rows' keys
    # Where the truth names reason codes (EXEMPT's FREE_TRIAL ...), an outcome is scored with its code.
    coded = "expected_reason_code" in truth.columns
    outcomes = read_output(spark, table_ref(conf.output, "record_outcome")).where(F.col("run_id") == run_id)
    if tables is not None:
        outcomes = outcomes.where(F.col("source_table").isin(*tables))
    outcomes = outcomes.select(
        "control_point_id", "side", "record_key",
        (F.concat_ws("/", "outcome", "reason_code") if coded else F.col("outcome")).alias("actual"))
    expected = (F.concat_ws("/", "expected_outcome", "expected_reason_code") if coded
                else F.col("expected_outcome"))
    record_truth = truth.where(F.col("side").isNotNull()).join(keys, ["table_name", "gen_row_id"], "left")
    return record_truth.join(outcomes, ["control_point_id", "side", "record_key"], "full_outer").select(
        "control_point_id", "side", expected.alias("expected"), "actual")


def _aggregate_pairs(spark: SparkSession, conf: EnvConf, ruleset: Ruleset, run_id: str, truth: DataFrame) -> DataFrame:
    """(control_point_id, AGGREGATE, expected, actual) per aggregate group."""
    variances = read_output(spark, table_ref(conf.output, "aggregate_variance")).where(F.col("run_id") == run_id)
    verdict = F.lit(None).cast("string")
    for cp in ruleset.aggregate_points():
        verdict = F.when(F.col("control_point_id") == cp.id, F.when(F.col("beyond_tolerance"), F.lit(cp.beyond))
                         .otherwise(F.lit(cp.within))).otherwise(verdict)
    if "ignore_entry_id" in variances.columns:
        verdict = F.when(F.col("ignore_entry_id").isNotNull(), F.lit(IGNORED)).otherwise(verdict)
    agg_actual = variances.select("control_point_id", "account_id", "service_type", verdict.alias("actual"))
    agg_truth = truth.where(F.col("side").isNull()).select("control_point_id", "account_id", "service_type",
                                                            F.col("expected_outcome").alias("expected"))
    cond = [agg_truth[c].eqNullSafe(agg_actual[c]) for c in ("control_point_id", "account_id", "service_type")]
    aggs = agg_truth.join(agg_actual, cond, "full_outer").select(
        F.coalesce(agg_truth["control_point_id"], agg_actual["control_point_id"]).alias("control_point_id"),
        F.lit("AGGREGATE").alias("side"), "expected", "actual")
    return aggs


def _pairs_by_record_id(spark: SparkSession, conf: EnvConf, run_id: str, truth: DataFrame,
                        exclude: list[str] | None = None) -> DataFrame:
    """A truth that names each record by its side's own id (`record_id`: ids unique per side, e.g. invoice lines
    whose line_id the generator computes from the file it wrote, as ingest does): joined on it directly. Where the
    truth names reason codes (SIM_SWAP's SWAP ...), an outcome is scored with its code.
    `exclude`: tables whose outcomes are scored otherwise."""
    coded = "expected_reason_code" in truth.columns
    outcomes = read_output(spark, table_ref(conf.output, "record_outcome")).where(F.col("run_id") == run_id)
    if exclude:
        outcomes = outcomes.where(~F.col("source_table").isin(*exclude))
    outcomes = outcomes.select(
        "control_point_id", "side", "record_id",
        (F.concat_ws("/", "outcome", "reason_code") if coded else F.col("outcome")).alias("actual"))
    expected = truth.select("control_point_id", "side", "record_id",
                            (F.concat_ws("/", "expected_outcome", "expected_reason_code") if coded
                             else F.col("expected_outcome")).alias("expected"))
    return expected.join(outcomes, ["control_point_id", "side", "record_id"], "full_outer").select(
        "control_point_id", "side", "expected", "actual")


def score(spark: SparkSession, conf: EnvConf, ruleset: Ruleset, run_id: str, truth: DataFrame) -> list[Score]:
    pairs = _pairs(spark, conf, ruleset, run_id, truth)
    expected = pairs.where(F.col("expected").isNotNull()).groupBy(
        "control_point_id", "side", F.col("expected").alias("outcome")).agg(F.count(F.lit(1)).alias("expected"))
    actual = pairs.where(F.col("actual").isNotNull()).groupBy(
        "control_point_id", "side", F.col("actual").alias("outcome")).agg(F.count(F.lit(1)).alias("actual"))
    hits = pairs.where(F.col("expected") == F.col("actual")).groupBy(
        "control_point_id", "side", F.col("actual").alias("outcome")).agg(F.count(F.lit(1)).alias("tp"))
    keys = ["control_point_id", "side", "outcome"]
    table = expected.join(actual, keys, "full_outer").join(hits, keys, "left").fillna(0).orderBy(*keys)
    return [Score(r["control_point_id"], r["side"], r["outcome"], int(r["expected"]), int(r["actual"]), int(r["tp"]))
            for r in table.collect()]   # bounded: one row per outcome of the vocabulary


def render(scores: list[Score]) -> str:
    lines = [f"{'control point':<18} {'side':<9} {'outcome':<28} {'expected':>9} {'actual':>9} {'precision':>9} "
             f"{'recall':>7}"]
    for s in scores:
        lines.append(f"{s.control_point_id:<18} {s.side:<9} {s.outcome:<28} {s.expected:>9,} {s.actual:>9,} "
                     f"{s.precision:>9.4f} {s.recall:>7.4f}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="telco-ra score")
    parser.add_argument("--conf", required=True)
    parser.add_argument("--ruleset", default="rulesets/usage_to_bill.yaml")
    parser.add_argument("--run-id", required=True)
    parser.add_argument("--truth", help="ground-truth Delta table (default: beside the cdr table)")
    args = parser.parse_args(argv)
    from jobs.session import build_session

    conf, ruleset = load_conf(args.conf), load_ruleset(args.ruleset)
    spark = build_session(conf.spark, app_name="telco-ra-score")
    first_table = ruleset.inputs[ruleset.side_inputs()[0]].table
    truth_ref = args.truth or conf.tables[first_table].rstrip("/").rsplit("/", 1)[0] + "/ground_truth"
    scores = score(spark, conf, ruleset, args.run_id, spark.read.format("delta").load(truth_ref))
    sys.stdout.write(render(scores))
    return 0 if all(s.precision == 1.0 and s.recall == 1.0 for s in scores) else 1
