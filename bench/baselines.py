"""What the job is measured against: floors (the least any reconciliation of these inputs must do) and baselines
(how a plain approach would do the job's hardest parts).

- scan floor: read every input's needed columns, write to the `noop` sink.
- join floor: one exact-key full outer join per input pair (cdr-rated_event on lineage, rated_event-bill_charge on
  lineage), written to Delta.
- exact stage: our rating-to-billing control point as the engine runs it (identity, quarantine, exact lineage match,
  duplicates, amount tolerance, one outcome per record) vs datacompy's `SparkSQLCompare` on the same two tables.
- fuzzy: our bucketed range join + one-to-one selection vs Spark's plain non-equi join
  (`l.msisdn = r.msisdn and abs(l.t - r.t) <= window`) followed by the same selection, on the same prepared
  records; both must find the same matches.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs.config import Cycle, EnvConf
from jobs.inputs import conform, in_cycle
from jobs.ruleset import Ruleset
from jobs.run import record_outcomes
from jobs.spark_status import JOIN_OPERATORS, last_execution_id, metric_count, sql_executions
from transforms.engine.prepare import ACCOUNT, BUCKET_ACCOUNT, IN_SIDE, prepare, quarantine_reason, scoped
from transforms.engine.spec import ControlPoint
from transforms.engine.sql import params_of
from transforms.fuzzy import QuantityTolerance, candidate_pairs, quantity_tolerance, resolve_one_to_one
from transforms.schema import INPUT_SCHEMAS

INPUTS = ("cdr", "rated_event", "bill_charge", "suspense", "tariff")


def cycle_inputs(spark: SparkSession, conf: EnvConf, cycle: Cycle) -> dict[str, DataFrame]:
    """Each input at its latest version, needed columns only, scoped to the cycle as the job scopes it."""
    out = {}
    for name in INPUTS:
        df = conform(name, spark.read.format("delta").load(conf.tables[name]))
        out[name] = df.select(*INPUT_SCHEMAS[name].fieldNames())
    out["cdr"] = out["cdr"].where(in_cycle(cycle, "start_time"))
    out["rated_event"] = out["rated_event"].where(in_cycle(cycle, "start_time"))
    out["bill_charge"] = out["bill_charge"].where(in_cycle(cycle, None) & (F.col("charge_type") == "USAGE"))
    return out


def scan_floor(inputs: dict[str, DataFrame]) -> None:
    for df in inputs.values():
        df.write.format("noop").mode("overwrite").save()


def _prefixed(df: DataFrame, prefix: str) -> DataFrame:
    return df.select(*[F.col(c).alias(prefix + c) for c in df.columns])


def join_floor(inputs: dict[str, DataFrame], folder: Path) -> None:
    pairs = (("cdr", "record_id", "rated_event", "source_record_id"),
             ("rated_event", "rated_event_id", "bill_charge", "source_rated_event_id"))
    for left, lkey, right, rkey in pairs:
        lhs, rhs = _prefixed(inputs[left], "l_"), _prefixed(inputs[right], "r_")
        joined = lhs.join(rhs, lhs[f"l_{lkey}"] == rhs[f"r_{rkey}"], "full_outer")
        joined.write.format("delta").mode("overwrite").save(str(folder / f"{left}-{right}"))


# ------------------------------------------------------------------------------------------------- exact stage


def _prepared_sides(inputs: dict[str, DataFrame], ruleset: Ruleset, cycle: Cycle, region: str,
                    cp: ControlPoint) -> dict[str, DataFrame]:
    """The inputs a control point's sides read, as a run prepares them (transforms/engine/prepare.py: scope,
    identity, phones, derived columns), left lazy: the step that reads them computes them. The account bucket is
    the record's own account: laying outputs out by lineage root (a join to the parent input) is not compared."""
    out = {}
    for name in dict.fromkeys(side.input for side in cp.sides.values()):
        inp = ruleset.inputs[name]
        rows = scoped(inputs[inp.table], inp, cycle.cycle_id, cycle.start, cycle.end)
        rows = rows.where(F.col(IN_SIDE)).drop(IN_SIDE).withColumn(BUCKET_ACCOUNT, F.col(ACCOUNT))
        out[name] = prepare(rows, inp, region)
    return out


def exact_stage_ours(inputs: dict[str, DataFrame], ruleset: Ruleset, cycle: Cycle, region: str) -> dict[str, Any]:
    """Rating-to-billing as the job runs it (both sides' outcomes, jobs.run.record_outcomes), written to the noop
    sink."""
    r2b = ruleset.control_points["rating-to-billing"]
    prepared = _prepared_sides(inputs, ruleset, cycle, region, r2b)
    params = params_of(ruleset.params, r2b.tolerance, cycle)
    outcomes = record_outcomes(ruleset, r2b, prepared, inputs, params, {})
    outcomes.write.format("noop").mode("overwrite").save()
    return {"outputs": "one outcome per rated event and per charge, with reason, exposure and counterpart"}


def datacompy_available() -> bool:
    try:
        import datacompy  # noqa: F401
    except ImportError:
        return False
    return True


def exact_stage_datacompy(spark: SparkSession, inputs: dict[str, DataFrame]) -> dict[str, Any]:
    """datacompy's Spark comparison of rated_event and bill_charge on the lineage key (amount and currency)."""
    from datacompy.spark import SparkSQLCompare

    rated = inputs["rated_event"].select("rated_event_id", "amount", "currency")
    charges = inputs["bill_charge"].select(F.col("source_rated_event_id").alias("rated_event_id"), "amount",
                                           "currency")
    compare = SparkSQLCompare(spark, rated, charges, join_columns=["rated_event_id"], abs_tol=0.01, rel_tol=0.001,
                              df1_name="rated_event", df2_name="bill_charge")
    matches = compare.matches()
    return {"matches": matches, "outputs": "row overlap and per-column mismatch counts"}


# ------------------------------------------------------------------------------------------------------- fuzzy


@dataclass
class Prepared:
    left: DataFrame
    right: DataFrame
    left_rows: int
    right_rows: int
    window_s: int
    tolerances: dict[str, QuantityTolerance]
    class_column: str          # the column that picks a pair's quantity tolerance (the left record's)


@dataclass
class FuzzyResult:
    matched: DataFrame
    figures: dict[str, Any] = field(default_factory=dict)


FUZZY_KEY = "msisdn_e164"


def fuzzy_inputs(spark: SparkSession, inputs: dict[str, DataFrame], conf: EnvConf, cycle: Cycle, ruleset: Ruleset,
                 folder: Path) -> Prepared:
    """Every valid cdr and rated event, normalized and keyed as usage-to-rating's fuzzy stage sees them (time and
    quantity as `_t` and `_qty`), stored as Parquet so both contenders start from the same materialized records
    (normalization is not part of the comparison)."""
    u2r = ruleset.control_points["usage-to-rating"]
    fz = u2r.stages.fuzzy
    # usage-to-rating's fuzzy stage compares quantities by class (carrier's compares none: not this baseline's case)
    assert fz is not None and u2r.right is not None
    assert fz.quantity_left is not None and fz.quantity_right is not None and fz.tolerance_by is not None
    prepared = _prepared_sides(inputs, ruleset, cycle, conf.phone_region, u2r)
    cols = ["_key", "_t", "_qty", fz.tolerance_by, FUZZY_KEY]
    for side, quantity, part in (("LEFT", fz.quantity_left, "l"), ("RIGHT", fz.quantity_right, "r")):
        spec = u2r.sides[side]
        inp = ruleset.inputs[spec.input]
        df = prepared[inp.name]
        reason = quarantine_reason(inp, spec, ruleset.checks.get(inp.name, ()), df.columns)
        (df.where(reason.isNull()).withColumn("_t", F.col(fz.time)).withColumn("_qty", F.col(quantity).cast("bigint"))
         .select(*cols).write.mode("overwrite").parquet(str(folder / part)))
    left, right = spark.read.parquet(str(folder / "l")), spark.read.parquet(str(folder / "r"))
    tolerances = {k: QuantityTolerance(str(v.abs), str(v.rel)) for k, v in fz.tolerances.items()}
    return Prepared(left, right, left.count(), right.count(), fz.window_s, tolerances, fz.tolerance_by)


def _select(spark: SparkSession, pairs: DataFrame, p: Prepared, after: int) -> FuzzyResult:
    resolution = resolve_one_to_one(pairs)
    matched = resolution.matched
    figures: dict[str, Any] = {"matched": matched.count(), "ambiguous": resolution.ambiguous.count(),
                               "rounds": resolution.rounds}
    # The candidate pairs are the first thing materialized: its plan holds the join and its output-row metric.
    for execution in sql_executions(spark, after):
        joins = [n for n in execution.nodes if n.name in JOIN_OPERATORS]
        if joins:
            figures["join_output_rows"] = sum(metric_count(n.metrics.get("number of output rows")) for n in joins)
            figures["join_plan"] = [n.name for n in execution.nodes if n.name not in ("WholeStageCodegen",)
                                    and not n.name.startswith("WholeStageCodegen")]
            break
    return FuzzyResult(matched, figures)


def fuzzy_ours(p: Prepared) -> FuzzyResult:
    spark = p.left.sparkSession
    after = last_execution_id(spark)
    pairs = candidate_pairs(p.left, p.right, [FUZZY_KEY], p.window_s, p.tolerances, class_column=p.class_column)
    return _select(spark, pairs, p, after)


def fuzzy_naive(p: Prepared) -> FuzzyResult:
    spark = p.left.sparkSession
    after = last_execution_id(spark)
    width = p.window_s * 1000
    lhs = p.left.select(*[F.col(c).alias("l" + c) for c in p.left.columns])
    rhs = p.right.select(*[F.col(c).alias("r" + c) for c in p.right.columns])
    l_ms, r_ms = F.unix_millis(F.col("l_t")), F.unix_millis(F.col("r_t"))
    joined = lhs.join(rhs, (F.col("l" + FUZZY_KEY) == F.col("r" + FUZZY_KEY)) & (F.abs(l_ms - r_ms) <= width))
    pairs = joined.select(
        F.col("l_key").alias("l_key"), F.col("r_key").alias("r_key"), F.abs(l_ms - r_ms).alias("dt"),
        F.abs(F.col("l_qty") - F.col("r_qty")).alias("dq"),
        quantity_tolerance(F.col("l" + p.class_column), F.col("l_qty"), p.tolerances).alias("_tol"))
    pairs = pairs.where(F.col("dq").cast("decimal(38,6)") <= F.col("_tol")).drop("_tol")
    return _select(spark, pairs, p, after)


def same_matches(a: FuzzyResult, b: FuzzyResult) -> bool:
    """Both selections matched exactly the same (cdr, rated event) pairs."""
    ka, kb = a.matched.select("l_key", "r_key"), b.matched.select("l_key", "r_key")
    return ka.exceptAll(kb).isEmpty() and kb.exceptAll(ka).isEmpty()
