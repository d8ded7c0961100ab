"""From matched records to outcome rows: lookups, counterpart columns, let-expressions, the ordered rules (first
match wins) and the record columns every control point hands the writer (transforms/outcomes.py).

Lookups are joined before the lets, except one that joins on a let (a key found through another lookup): it is
joined as soon as that let is computed. A `record:` column's SQL also sees `decided` (the row's `outcome` and
`reason_code`): a confidence band, an action or a leakage is a function of the outcome the rules gave.

A record no rule decides gets a null outcome; the run refuses to commit it (jobs/run.py names the control point and
side), since a ruleset whose rules leave records undecided is a ruleset bug, never a silent drop.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence

from pyspark.errors import AnalysisException, ParseException
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from transforms.engine.lookups import apply_lookup
from transforms.engine.spec import ControlPoint, Input, Lookup, Rule
from transforms.engine.sql import render
from transforms.outcomes import INTERNAL
from transforms.schema import MONEY, RECORD_EXTRAS

COUNTERPART = re.compile(r"\bcounterpart\.([A-Za-z_][A-Za-z0-9_]*)")
# A right record's SQL may read its left counterpart's decision: these outcome columns of it.
DECIDED = ("outcome", "reason_code", "reason", "expected_amount", "exposure")
# What a record column's SQL reads of its own row's decision (`decided.outcome`, `decided.reason_code`).
OWN_DECISION = "decided"
OWN_DECISION_TYPE = "struct<outcome:string,reason_code:string>"


class RuleError(ValueError):
    """A rule's SQL does not analyse against the record's columns: exit 2, naming the control point, side and
    rule (or key) and Spark's reason."""

    def __init__(self, where: str, text: str, why: str) -> None:
        self.detail = f"{why.splitlines()[0][:300]} (in {text!r})"
        super().__init__(f"{where}: {self.detail}")
        self.where = where


def side_sql(cp: ControlPoint, side: str) -> list[tuple[str, str]]:
    """(where, SQL) of every text a side's records are decided with: rules, lets, record columns, describe."""
    texts: list[tuple[str, str]] = []
    base = f"control_points.{cp.id}"
    for name, sql in cp.let.get(side, {}).items():
        texts.append((f"{base}.let.{side}.{name}", sql))
    for rule in cp.decide.get(side, ()):
        for part in ("when", "reason", "reason_code", "exposure"):
            value = getattr(rule, part)
            if value is not None:
                texts.append((f"{base}.decide.{side}.{rule.name}.{part}", value))
    for col, sql in cp.record.get(side, {}).items():
        if col != "counterpart_table":
            texts.append((f"{base}.record.{side}.{col}", sql))
    for col, sql in cp.sides[side].describe.items():
        texts.append((f"{base}.{side.lower()}.describe.{col}", sql))
    return texts


def counterpart_columns(cp: ControlPoint, side: str) -> list[str]:
    """The other side's columns a side's SQL names as `counterpart.<column>`."""
    names: dict[str, None] = {}
    for _, sql in side_sql(cp, side):
        for m in COUNTERPART.finditer(sql):
            names[m.group(1)] = None
    return list(names)


def lookups_used(cp: ControlPoint, side: str) -> list[str]:
    """The lookups of `side` its SQL reads (or its rules price by), in the order declared."""
    texts = " ".join(sql for _, sql in side_sql(cp, side))
    used = {r.priced_by for r in cp.decide.get(side, ()) if r.priced_by}
    return [name for name, lookup in cp.lookups.items()
            if lookup.side == side and (name in used or re.search(rf"\b{re.escape(name)}\b", texts))]


def lookup_texts(lookup: Lookup) -> list[str]:
    """The SQL texts and column names a lookup reads of its input's rows."""
    return [*lookup.on.values(), *([lookup.where] if lookup.where else []), *lookup.columns.values(),
            *([lookup.prefix] if lookup.prefix else [])]


def _checked(shape: DataFrame, where: str, text: str, params: Mapping[str, object]) -> Column:
    """The rendered SQL as a Column, analysed against `shape` (an empty frame of the records' schema: a short plan,
    no job) so that SQL that does not analyse is named by its rule, not by a stack trace."""
    rendered = render(text, params)
    try:
        column = F.expr(rendered)
        shape.select(column)
    except (AnalysisException, ParseException) as exc:
        raise RuleError(where, text, str(exc)) from exc
    return column


def _shape(df: DataFrame) -> DataFrame:
    return df.sparkSession.createDataFrame([], df.schema)


def with_decided(df: DataFrame, decided_left: DataFrame, columns: Sequence[str]) -> DataFrame:
    """`counterpart` with the named columns of the left decision (outcome rows) of the record `match.key` names
    added to what the match carried (null where there is no counterpart)."""
    info = decided_left.select(F.col("record_key").alias("_ck"), *[F.col(c).alias(f"_cd_{c}") for c in columns])
    joined = df.join(info, F.col("match.key") == F.col("_ck"), "left")
    carried = [F.col(f"counterpart.{f}") for f in df.schema["counterpart"].dataType.fieldNames()  # type: ignore
               ] if "counterpart" in df.columns else []
    merged = F.when(F.col("_ck").isNotNull(), F.struct(*carried, *[F.col(f"_cd_{c}").alias(c) for c in columns]))
    return joined.withColumn("counterpart", merged).drop("_ck", *[f"_cd_{c}" for c in columns])


def decide(df: DataFrame, cp: ControlPoint, side: str, inp: Input, other: Input | None,
           lookup_tables: Mapping[str, DataFrame], params: Mapping[str, object],
           extra: Mapping[str, str] | None = None) -> DataFrame:
    """Outcome rows (transforms.outcomes shape) of one side of a record control point; `extra` (name -> SQL over
    the record, e.g. an alert's scope) adds columns beyond them, for the caller to aggregate and drop."""
    base = f"control_points.{cp.id}"
    lets = cp.let.get(side, {})
    pending = lookups_used(cp, side)

    def join_ready(df: DataFrame, done: set[str]) -> DataFrame:
        """Join the pending lookups whose let keys (if any) are all computed."""
        for name in [n for n in pending if all(c in done for c in cp.lookups[n].on if c in lets)]:
            df = apply_lookup(df, cp.lookups[name], lookup_tables[cp.lookups[name].input], params)
            pending.remove(name)
        return df

    computed: set[str] = set()
    df = join_ready(df, computed)
    shape = _shape(df)
    for name, sql in lets.items():
        let_col = _checked(shape, f"{base}.let.{side}.{name}", sql, params)
        df = df.withColumn(name, let_col)
        computed.add(name)
        before = len(pending)
        df = join_ready(df, computed)
        shape = _shape(df) if len(pending) != before else shape.withColumn(name, let_col)
    rules: Sequence[Rule] = cp.decide[side]
    which: Column = F.lit(None).cast("int")
    for i, rule in reversed(list(enumerate(rules))):
        cond = _checked(shape, f"{base}.decide.{side}.{rule.name}.when", rule.when, params)
        which = F.when(F.coalesce(cond, F.lit(False)), F.lit(i)).otherwise(which)
    df = df.withColumn("_rule", which)

    def by_rule(value: Callable[[Rule], Column | None], dtype: str) -> Column:
        expr: Column = F.lit(None).cast(dtype)
        for i, rule in reversed(list(enumerate(rules))):
            v = value(rule)
            if v is not None:
                expr = F.when(F.col("_rule") == i, v.cast(dtype)).otherwise(expr)
        return expr

    def part(name: str) -> Callable[[Rule], Column | None]:
        def get(rule: Rule) -> Column | None:
            text = getattr(rule, name)
            if text is None:
                return None
            return _checked(shape, f"{base}.decide.{side}.{rule.name}.{name}", text, params)
        return get

    def exposure(rule: Rule) -> Column | None:
        if rule.exposure is not None:
            return part("exposure")(rule)
        if rule.priced_by is not None:
            return F.col(f"{rule.priced_by}.amount")
        return None

    def unpriced(rule: Rule) -> Column | None:
        return None if rule.priced_by is None else ~F.col(f"{rule.priced_by}.found")

    outcome = by_rule(lambda r: F.lit(r.outcome), "string")
    reason_code = by_rule(part("reason_code"), "string")
    overrides = cp.record.get(side, {})
    # record columns read the row's own decision as `decided.outcome`, `decided.reason_code`
    df = df.withColumn(OWN_DECISION, F.struct(outcome.alias("outcome"), reason_code.alias("reason_code")))
    own_shape = shape.withColumn(OWN_DECISION, F.lit(None).cast(OWN_DECISION_TYPE))

    def record(col: str, default: Column, dtype: str) -> Column:
        if col in overrides:
            return _checked(own_shape, f"{base}.record.{side}.{col}", overrides[col], params).cast(dtype)
        return default.cast(dtype)

    def described(col: str, dtype: str) -> Column:
        sql = cp.sides[side].describe.get(col)
        if sql is None:
            return F.lit(None).cast(dtype)
        return _checked(shape, f"{base}.{side.lower()}.describe.{col}", sql, params).cast(dtype)

    has_match = "match" in df.columns
    copy = F.coalesce(F.col("dup.copy"), F.lit(False)) if "dup" in df.columns else F.lit(False)
    match_col = (lambda f: F.col(f"match.{f}")) if has_match else (lambda f: F.lit(None))
    stage = record("match_stage", F.when(copy, F.lit("NONE")).otherwise(F.coalesce(match_col("stage"),
                                                                                  F.lit("NONE"))), "string")
    cp_key = F.when(copy, F.col("dup.of_key")).otherwise(match_col("key")) if "dup" in df.columns else match_col("key")
    cp_hash = (F.when(copy, F.col("dup.of_hash")).otherwise(match_col("hash")) if "dup" in df.columns
               else match_col("hash"))
    cp_id = record("counterpart_id", F.when(copy, F.col("dup.of_id")).otherwise(match_col("id"))
                   if "dup" in df.columns else match_col("id"), "string")
    amount = F.col(inp.amount) if inp.amount else F.lit(None)
    currency = F.col(inp.currency) if inp.currency else F.lit(None)
    out = {
        "side": F.lit(side),
        "source_table": F.lit(inp.table),
        "record_id": F.col(inp.id).cast("string") if inp.id else F.lit(None).cast("string"),
        "record_key": F.col("_key"),
        "payload_hash": F.col("_hash"),
        "counterpart_id": cp_id,
        "outcome": outcome,
        # the name of the rule that decided the row (first match wins): what `telco-ra flag` names and explains
        "rule": by_rule(lambda r: F.lit(r.name), "string"),
        "match_stage": stage,
        "amount": record("amount", amount, "decimal(18,6)"),
        "expected_amount": record("expected_amount", F.lit(None), "decimal(18,6)"),
        "currency": record("currency", currency, "string"),
        "reason": by_rule(part("reason"), "string"),
        "reason_code": reason_code,
        "account_id": described("account_id", "string"),
        "msisdn_e164": described("msisdn", "string"),
        "service_type": described("service_type", "string"),
        "start_time": described("start_time", "timestamp"),
        "domain": described("domain", "string"),
        "ignore_entry_id": F.lit(None).cast("string"),        # the run's ignore list sets it (transforms/ignore.py)
        "exposure": F.coalesce(record("exposure", by_rule(exposure, "decimal(18,6)"), "decimal(18,6)"),
                               F.lit(0).cast(MONEY)),
        **{col: record(col, F.lit(None), dtype) for col, dtype in RECORD_EXTRAS.items()},
        "counterpart_key": cp_key.cast("string"),
        "counterpart_hash": cp_hash.cast("string"),
        "unpriced": F.coalesce(by_rule(unpriced, "boolean"), F.lit(False)),
        "bucket_account": F.col("_bucket_account"),
        "quarantined": F.col("quarantine").isNotNull(),
        "_copy": copy,
    }
    decided = df.select("*", *[c.alias(f"_o_{n}") for n, c in out.items()])
    counterpart_table = overrides.get("counterpart_table")
    other_table = other.table if other is not None else None
    if counterpart_table is not None:
        table_col = F.when(F.col("_o_counterpart_id").isNotNull(), F.lit(counterpart_table))
    else:
        table_col = F.when(F.col("_o__copy"), F.lit(inp.table)).when(F.col("_o_counterpart_key").isNotNull(),
                                                                     F.lit(other_table))
    confidence_default = F.when(F.col("_o__copy"), F.lit(0)).otherwise(
        F.coalesce(match_col("confidence"), F.when(F.col("_o_match_stage") == "EXACT", F.lit(1)).otherwise(F.lit(0))))
    decided = decided.withColumn("_o_counterpart_table", table_col.cast("string"))
    decided = decided.withColumn("_o_confidence", record("confidence", confidence_default, "decimal(5,4)"))
    exemptions = [(e.id, e.column, e.values, e.outcomes) for e in cp.exemptions] if side == "LEFT" else []
    exempt = F.lit(None).cast("string")
    for ex_id, column, values, outcomes in reversed(exemptions):
        cond = F.col(column).isin(*values)
        if outcomes:
            cond = cond & F.col("_o_outcome").isin(*outcomes)
        exempt = F.when(cond, F.lit(ex_id)).otherwise(exempt)
    decided = decided.withColumn("_o_exemption", exempt)
    extras = [_checked(shape, f"{base}.alerts.{name}", sql, params).alias(name)
              for name, sql in (extra or {}).items()]
    if extras:
        decided = decided.select("*", *[c.alias(f"_o_{n}") for n, c in zip(extra or {}, extras, strict=True)])
    return decided.select(*[F.col(f"_o_{c}").alias(c) for c in (*OUTCOME_COLUMNS, *(extra or {}))])


# The columns of a side's outcome rows: record_outcome's (before the run's tags) and the internal ones.
OUTCOME_COLUMNS = ("side", "source_table", "record_id", "record_key", "payload_hash", "counterpart_id", "outcome",
                   "match_stage", "confidence", "amount", "expected_amount", "currency", "reason", "reason_code",
                   "account_id", "msisdn_e164", "service_type", "start_time", "exemption", "ignore_entry_id",
                   *RECORD_EXTRAS, "rule", *INTERNAL)
