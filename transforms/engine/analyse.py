"""Every SQL text of a ruleset analysed against the columns it will see, before the run reads a row.

An analyst's misspelt column in rule 7 of a control point must not surface after the month's inputs were read,
scoped and matched (minutes at month end), nor as a stack trace: it is refused first, naming the rule. Each side's
records are modelled as an empty frame of the shape they have when decided (transforms/engine/decide.py): the
input's contract schema, its E.164 phones and derived columns, the engine's columns (`quarantine`, `dup`, `match`),
the other side's columns as `counterpart`, each lookup's struct and the side's lets. Analysing a projection of an
empty local frame is Catalyst work only: no Spark job.

An input that follows no contract schema has no known shape before its table is read: its sides' SQL is analysed
when they are decided (decide.py `_checked`), with the same message.
"""

from __future__ import annotations

from collections.abc import Mapping

from pyspark.errors import AnalysisException, ParseException
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import BooleanType, DataType, StringType, StructField, StructType

from transforms.engine.decide import (
    DECIDED,
    OWN_DECISION,
    OWN_DECISION_TYPE,
    RuleError,
    counterpart_columns,
    lookups_used,
    side_sql,
)
from transforms.engine.match import MATCH_TYPE
from transforms.engine.spec import Check, ControlPoint, Input, Lookup
from transforms.engine.sql import params_of, render
from transforms.schema import INPUT_SCHEMAS, MONEY, OPTIONAL_INPUT_COLUMNS

DUP_TYPE = "struct<copy:boolean,of_id:string,of_key:string,of_hash:string,by:string>"
# A left record's decision, as a right record's SQL reads it (`counterpart.outcome`, ...).
DECIDED_TYPES: dict[str, DataType | str] = {"outcome": "string", "reason_code": "string", "reason": "string", "expected_amount": MONEY,
                 "exposure": MONEY}
ENGINE_COLUMNS = {"_key": "string", "_hash": "string", "_rank": "int", "_id": "string", "_bucket_account": "string",
                  "quarantine": "string"}


def _analysed(df: DataFrame, where: str, text: str, params: Mapping[str, object]) -> Column:
    try:
        column = F.expr(render(text, params))
        df.select(column)          # analysed eagerly; an empty local frame runs no job
    except (AnalysisException, ParseException) as exc:
        raise RuleError(where, text, str(exc)) from exc
    return column


def _empty(spark: SparkSession, schema: StructType) -> DataFrame:
    return spark.createDataFrame([], schema)


def input_shape(spark: SparkSession, inp: Input, params: Mapping[str, object] | None = None) -> DataFrame | None:
    """An empty frame shaped as the input's prepared records (transforms/engine/prepare.py), None without a
    contract schema. Its filter and derived columns (which may name the ruleset's `params`) are analysed on the
    way."""
    if inp.schema is None:
        return None
    params = params or {}
    optional = OPTIONAL_INPUT_COLUMNS.get(inp.schema, StructType())
    df = _empty(spark, StructType(INPUT_SCHEMAS[inp.schema].fields + optional.fields))
    if inp.filter:
        _analysed(df, f"inputs.{inp.name}.filter", inp.filter, params)
    for name, dtype in ENGINE_COLUMNS.items():
        df = df.withColumn(name, F.lit(None).cast(dtype))
    for phone in inp.phones:
        df = df.withColumn(f"{phone}_e164", F.lit(None).cast(StringType()))
    for name, sql in inp.columns.items():
        df = df.withColumn(name, _analysed(df, f"inputs.{inp.name}.columns.{name}", sql, params))
    return df


def _lookup_type(spark: SparkSession, cp: ControlPoint, lookup: Lookup, inputs: Mapping[str, Input],
                 params: Mapping[str, object]) -> DataType:
    base = f"control_points.{cp.id}.lookups.{lookup.name}"
    if lookup.kind == "prefix":
        shape = input_shape(spark, inputs[lookup.input], params)
        fields = [StructField("found", BooleanType())]
        for name, sql in lookup.columns.items():
            if shape is None:
                fields.append(StructField(name, StringType()))
                continue
            column = _analysed(shape, f"{base}.columns.{name}", sql, params)
            fields.append(StructField(name, shape.select(column.alias(name)).schema[name].dataType))
        return StructType(fields)
    if lookup.kind != "key":
        return StructType([StructField("found", BooleanType()), StructField("tariff_id", StringType()),
                           StructField("tariff_version", StringType()), StructField("currency", StringType()),
                           StructField("amount", MONEY)])
    table = input_shape(spark, inputs[lookup.input], params)
    fields = [StructField("found", BooleanType())]
    for name, sql in lookup.columns.items():
        if table is None:
            fields.append(StructField(name, StringType()))
            continue
        rows = table
        if lookup.where:
            rows = rows.where(_analysed(table, f"{base}.where", lookup.where, params))
        try:
            dtype = rows.groupBy(*lookup.on.values()).agg(F.expr(sql).alias(name)).schema[name].dataType
        except (AnalysisException, ParseException) as exc:
            raise RuleError(f"{base}.columns.{name}", sql, str(exc)) from exc
        fields.append(StructField(name, dtype))
    return StructType(fields)


def check_rules(spark: SparkSession, inputs: Mapping[str, Input], checks: Mapping[str, tuple[Check, ...]],
                control_points: Mapping[str, ControlPoint], ruleset_params: Mapping[str, object],
                cycle: object) -> None:
    """Raise RuleError (naming the key, the rule and Spark's reason) for the first SQL text that does not analyse."""
    shapes = {name: input_shape(spark, inp, ruleset_params) for name, inp in inputs.items()}
    for name, items in checks.items():
        shape = shapes.get(name)
        if shape is None:
            continue
        for i, check in enumerate(items):
            _analysed(shape, f"checks.{name}[{i}].fails", check.fails, {})
    for cp in control_points.values():
        if cp.kind != "record":
            continue
        params = params_of(ruleset_params, cp.tolerance, cycle)
        for side, spec in cp.sides.items():
            df = shapes[spec.input]
            if df is None:
                continue
            other_side = "RIGHT" if side == "LEFT" else "LEFT"
            if side == "LEFT":
                df = df.withColumn("dup", F.lit(None).cast(DUP_TYPE))
            df = df.withColumn("match", F.lit(None).cast(MATCH_TYPE))
            other_spec = cp.sides.get(other_side)
            other = shapes[other_spec.input] if other_spec is not None else None
            wanted = counterpart_columns(cp, side)
            if wanted and other is not None:
                fields = []
                for col in wanted:
                    if side == "RIGHT" and col in DECIDED:
                        fields.append(F.lit(None).cast(DECIDED_TYPES[col]).alias(col))
                    elif col in other.columns:
                        fields.append(F.lit(None).cast(other.schema[col].dataType).alias(col))
                df = df.withColumn("counterpart", F.struct(*fields) if fields else F.lit(None).cast(
                    "struct<none:string>"))
            for name in lookups_used(cp, side):
                df = df.withColumn(name, F.lit(None).cast(_lookup_type(spark, cp, cp.lookups[name], inputs, params)))
            for name, sql in cp.let.get(side, {}).items():
                df = df.withColumn(name, _analysed(df, f"control_points.{cp.id}.let.{side}.{name}", sql, params))
            # record columns also read the row's own decision (`decided`); rules, lets and describe do not
            own = df.withColumn(OWN_DECISION, F.lit(None).cast(OWN_DECISION_TYPE))
            for where, sql in side_sql(cp, side):
                if ".let." not in where:
                    _analysed(own if ".record." in where else df, where, sql, params)
            for i, alert in enumerate(cp.alerts):
                if alert.side == side:
                    _analysed(df, f"control_points.{cp.id}.alerts[{i}].scope", alert.scope, params)
    for cp in control_points.values():
        if cp.kind == "aggregate":
            _check_aggregate(cp, shapes, params_of(ruleset_params, cp.tolerance, cycle))


def _check_aggregate(cp: ControlPoint, shapes: Mapping[str, DataFrame | None], params: Mapping[str, object]) -> None:
    """An aggregate's SQL over an input's rows (`where`, `group_by`, `count`) and its `price`, analysed likewise."""
    base = f"control_points.{cp.id}"
    for side, agg in cp.aggregate_sides.items():
        df = shapes.get(agg.input) if agg.input else None
        if df is None:
            continue
        if agg.where:
            df = df.where(_analysed(df, f"{base}.{side.lower()}.where", agg.where, params))
        keys = [_analysed(df, f"{base}.group_by.{g}.{side}", cp.group_by[g][side], params).alias(g)
                for g in cp.group_by]
        if cp.measure == "count":
            text = cp.count[side]
            try:
                grouped = df.groupBy(*keys).agg(F.expr(render(text, params)).alias("_n"))
            except (AnalysisException, ParseException) as exc:
                raise RuleError(f"{base}.count.{side}", text, str(exc)) from exc
            if cp.price is not None:
                _analysed(grouped, f"{base}.price", cp.price, params)
