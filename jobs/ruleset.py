"""Rulesets: YAML in, a validated `Ruleset` of declared control points out (transforms/engine/spec.py).

Every error names the file, the key path and the offending value (a rule by its name), because the person reading
it is an RA analyst editing YAML at month-end. Loading never touches Spark: what needs Spark to be checked (a rule's
SQL against the columns it reads) is checked when the engine compiles the control point, before any job runs on
data, and also exits 2 naming the file and the rule (jobs/run.py `check_rules`).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from jobs.config import ConfigError, _read_yaml, _unknown
from transforms.engine.spec import (
    SIDES,
    AggregateSide,
    Alert,
    Check,
    ControlPoint,
    CyclePlacement,
    Duplicates,
    ExactStage,
    Exemption,
    Figure,
    FuzzyStage,
    Input,
    Lineage,
    Lookup,
    OutcomePolicy,
    Report,
    Rule,
    SideSpec,
    Stages,
    Tolerance,
)
from transforms.engine.sql import SqlError, render
from transforms.ignore import IGNORED
from transforms.schema import (
    EXPOSURE_CLASSES,
    INPUT_SCHEMAS,
    OPTIONAL_INPUT_COLUMNS,
    RECORD_EXTRAS,
    RECORD_OUTCOME,
    SEVERITIES,
)

CONTRACT = 2
RULESET_KEYS = {"ruleset", "version", "contract", "account_buckets", "owners", "maker_checker_above", "params",
                "inputs", "checks", "control_points"}
INPUT_KEYS = {"table", "schema", "system", "id", "order", "arrival", "cycle", "filter", "phones", "columns",
              "amount", "currency", "lineage", "layouts", "within"}
RECORD_KEYS = {"kind", "left", "right", "lookups", "stages", "let", "decide", "record", "tolerance", "outcomes",
               "exemptions", "reports", "alerts", "figures"}
AGGREGATE_KEYS = {"kind", "left", "right", "group_by", "measure", "count", "price", "tolerance", "decide",
                  "outcomes"}
MEASURES = ("amount", "count")
LOOKUP_KINDS = ("key", "price", "price_list", "prefix")
LAYOUT_KINDS = ("call_invoice",)          # kinds of conf/carriers layouts an input may be built from (`layouts`)
LAYOUT_SCHEMA = "carrier_rate"            # the contract-like schema of such an input's rows
RECORD_COLUMNS = ("counterpart_id", "counterpart_table", "match_stage", "confidence", "expected_amount", "currency",
                  "amount", "exposure", *RECORD_EXTRAS)
# Names the engine gives a record's own columns (its match, duplicate, counterpart, quarantine reason and, to its
# `record:` columns, its decided outcome): no lookup may take them.
ENGINE_NAMES = ("match", "dup", "counterpart", "quarantine", "decided")
# What a figure may group outcome rows by (columns of a small vocabulary: one collected row per group) and sum.
FIGURE_GROUPS = ("outcome", "reason_code", "confidence_band", "match_stage", "currency", "service_type", "exemption")
FIGURE_SUMS = tuple(f.name for f in RECORD_OUTCOME.fields if f.dataType.typeName() == "decimal"
                    and f.name != "confidence")
DESCRIBE = ("account_id", "msisdn", "service_type", "start_time", "domain")
AGGREGATE_GROUPS = ("account_id", "service_type", "currency")
REPORT_KINDS = ("suspense_aging",)
# What an alert's message may name (jobs/run.py fills them).
ALERT_FACTS = ("scope", "metric", "records", "counted", "value", "threshold", "percent", "threshold_percent")


@dataclass(frozen=True)
class Ruleset:
    path: str
    name: str
    version: str
    content_hash: str
    text: str
    account_buckets: int
    owners: Mapping[str, int]
    params: Mapping[str, object]
    inputs: Mapping[str, Input]
    checks: Mapping[str, tuple[Check, ...]]
    control_points: Mapping[str, ControlPoint]
    # WAIVED / WRITTEN_OFF of a case with |exposure_amount| above this needs a second actor's approval (jobs/cases.py).
    maker_checker_above: Decimal = Decimal(0)
    sides_read: tuple[str, ...] = field(default=())

    def tables(self) -> set[str]:
        """The conf `tables` keys the ruleset reads (inputs built from the conf's layouts are no table)."""
        return {i.table for i in self.inputs.values() if i.layouts is None}

    def layout_inputs(self) -> list[Input]:
        """Inputs the run builds from the conf's carrier layouts (`layouts:`), not read from a table."""
        return [i for i in self.inputs.values() if i.layouts is not None]

    def record_points(self) -> list[ControlPoint]:
        return [cp for cp in self.control_points.values() if cp.kind == "record"]

    def aggregate_points(self) -> list[ControlPoint]:
        return [cp for cp in self.control_points.values() if cp.kind == "aggregate"]

    def side_inputs(self) -> list[str]:
        """Inputs that are a side of some record control point (their rows get outcomes), in declaration order."""
        used = {s.input for cp in self.record_points() for s in cp.sides.values()}
        return [name for name in self.inputs if name in used]

    def done_after(self) -> dict[str, list[str]]:
        """Record control point id -> the prepared inputs no later control point reads: a run frees them once that
        point's outcome rows are cut. An input an aggregate control point sums directly is in no list (it is freed
        after the aggregates)."""
        last: dict[str, str] = {}
        for cp in self.record_points():
            for side in cp.sides.values():
                last[side.input] = cp.id
        for cp in self.aggregate_points():
            for a in cp.aggregate_sides.values():
                if a.input:
                    last.pop(a.input, None)
        return {cp.id: [name for name in self.inputs if last.get(name) == cp.id] for cp in self.record_points()}

    def scoped_inputs(self) -> list[str]:
        """Inputs a run scopes to the cycle and prepares: the record sides' and those an aggregate sums directly."""
        used = {*self.side_inputs(), *(a.input for cp in self.aggregate_points()
                                       for a in cp.aggregate_sides.values() if a.input)}
        return [name for name in self.inputs if name in used]


class _Reader:
    """Typed access to YAML values with errors that carry the file and dotted key."""

    def __init__(self, path: str | Path) -> None:
        self.path = path

    def fail(self, key: str, message: str) -> ConfigError:
        return ConfigError(self.path, key, message)

    def mapping(self, key: str, value: Any, allowed: set[str] | None = None) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(key, f"expected a mapping, got {value!r}")
        if allowed is not None:
            _unknown(self.path, f"{key}.", value, allowed)
        return value

    def text(self, key: str, value: Any) -> str:
        if not isinstance(value, str) or not value.strip():
            raise self.fail(key, f"expected a non-empty text, got {value!r}")
        return value

    def names(self, key: str, value: Any) -> tuple[str, ...]:
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise self.fail(key, f"expected a list of names, got {value!r}")
        return tuple(value)

    def positive_int(self, key: str, value: Any, zero_ok: bool = False) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < (0 if zero_ok else 1):
            raise self.fail(key, f"{value!r} is not a {'non-negative' if zero_ok else 'positive'} whole number")
        return value

    def decimal(self, key: str, value: Any) -> Decimal:
        try:
            number = Decimal(str(value))
        except InvalidOperation as exc:
            raise self.fail(key, f"{value!r} is not a number") from exc
        if isinstance(value, bool) or not number.is_finite() or number < 0:
            raise self.fail(key, f"{value!r} is not a non-negative number")
        return number

    def tolerance(self, key: str, value: Any) -> Tolerance:
        m = self.mapping(key, value, {"abs", "rel"})
        return Tolerance(self.decimal(f"{key}.abs", m.get("abs", 0)), self.decimal(f"{key}.rel", m.get("rel", 0)))

    def sql(self, key: str, value: Any, params: Mapping[str, object]) -> str:
        """A SQL text whose parameters and forms render (its columns are checked when the engine compiles it)."""
        text = self.text(key, value)
        try:
            render(text, params)
        except SqlError as exc:
            raise self.fail(key, f"{exc}: {text!r}") from exc
        return text


# ------------------------------------------------------------------------------------------------------- params
def _scalar(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, int | float | str)


def _number(value: Any) -> Decimal | None:
    """A YAML number or a text that reads as one (`"20.00"`), as a Decimal; None otherwise."""
    if isinstance(value, bool):
        return None
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


def _param(r: _Reader, key: str, value: Any) -> object:
    """A parameter: a number or a text; a list of them (SQL `array(...)`); or a table of named entries with the same
    fields (SQL `map(name, named_struct(field, value, ...))`, in the order written). A field whose every value reads
    as a number is a decimal(18,6) (a list price written `"20.00"`); one that mixes numbers and texts is refused,
    naming the entry."""
    if isinstance(value, list):
        if not value or not all(_scalar(v) for v in value):
            raise r.fail(key, f"expected a non-empty list of numbers or texts, got {value!r}")
        if len({type(v) for v in value}) > 1:
            raise r.fail(key, f"mixes numbers and texts: {value!r}")
        return tuple(Decimal(str(v)) if isinstance(v, float) else v for v in value)
    if isinstance(value, dict):
        if not value:
            raise r.fail(key, "expected named entries, got an empty mapping")
        fields: tuple[str, ...] | None = None
        for name, entry in value.items():
            e = r.mapping(f"{key}.{name}", entry)
            if not e or not all(_scalar(v) for v in e.values()):
                raise r.fail(f"{key}.{name}", f"expected fields of numbers or texts, got {entry!r}")
            if fields is None:
                fields = tuple(str(f) for f in e)
            elif set(map(str, e)) != set(fields):
                raise r.fail(f"{key}.{name}", f"fields {sorted(map(str, e))} differ from the first entry's "
                             f"{sorted(fields)}: every entry names the same fields")
        assert fields is not None
        numeric = {f: all(_number(e[f]) is not None for e in value.values()) for f in fields}
        for f in fields:
            numbers = [n for n, e in value.items() if _number(e[f]) is not None]
            if numbers and not numeric[f]:
                # the field mixes numbers and texts: name the odd one out (a text among numbers, or the reverse)
                texts = [n for n in value if n not in numbers]
                bad, other = (texts[0], numbers[0]) if len(numbers) >= len(texts) else (numbers[0], texts[0])
                raise r.fail(f"{key}.{bad}.{f}", f"{value[bad][f]!r}: field {f} is {value[other][f]!r} in entry "
                             f"{other}; write every entry's {f} as a number, or every one as a text")
        return {str(n): {f: (_number(e[f]) if numeric[f] else str(e[f])) for f in fields} for n, e in value.items()}
    if not _scalar(value):
        raise r.fail(key, f"{value!r} is not a number, a text, a list of them or a table of named entries")
    return Decimal(str(value)) if isinstance(value, float) else value


def _texts(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [t for v in value.values() for t in _texts(v)]
    if isinstance(value, list):
        return [t for v in value for t in _texts(v)]
    return []


def _params_used(r: _Reader, params: Mapping[str, object], data: Mapping[str, Any]) -> None:
    """A parameter no SQL text of the ruleset names (`${name}`) would be validated and drive nothing: refused."""
    texts = " ".join(t for k, v in data.items() if k != "params" for t in _texts(v))
    for name in params:
        if "${" + name + "}" not in texts:
            raise r.fail(f"params.{name}", f"no SQL of this ruleset names ${{{name}}}: it would drive nothing "
                         "(use it in a rule, or remove it)")


# ------------------------------------------------------------------------------------------------------- inputs
def _columns_of(inp: Input) -> set[str] | None:
    """The columns an input's rows carry for rules: the contract schema's, its derived ones and its E.164 phones;
    None where it follows no contract schema (then columns are checked when the engine compiles)."""
    if inp.schema is None:
        return None
    optional = OPTIONAL_INPUT_COLUMNS[inp.schema].fieldNames() if inp.schema in OPTIONAL_INPUT_COLUMNS else []
    return {*INPUT_SCHEMAS[inp.schema].fieldNames(), *optional, *inp.columns, *(f"{p}_e164" for p in inp.phones)}


def _check_columns(r: _Reader, key: str, names: tuple[str, ...], inp: Input, base_only: bool = False) -> None:
    known = (set(INPUT_SCHEMAS[inp.schema].fieldNames()) if base_only and inp.schema else _columns_of(inp))
    if known is None:
        return
    for name in names:
        if name not in known:
            raise r.fail(key, f"unknown column {name!r} of input {inp.name} (table {inp.table}; columns: "
                         f"{', '.join(sorted(known))})")


def _input(r: _Reader, name: str, value: Any, params: Mapping[str, object]) -> Input:
    """An input; its `filter` and derived `columns` may name the ruleset's parameters (`${active_statuses}`)."""
    key = f"inputs.{name}"
    m = r.mapping(key, value or {}, INPUT_KEYS)
    table = str(m.get("table") or name)
    schema = m.get("schema", table if table in INPUT_SCHEMAS else None)
    if schema is not None and schema not in INPUT_SCHEMAS:
        raise r.fail(f"{key}.schema", f"{schema!r} is not a contract table ({', '.join(INPUT_SCHEMAS)})")
    cycle = None
    if m.get("cycle") is not None:
        c = r.mapping(f"{key}.cycle", m["cycle"], {"by", "time", "active"})
        active = r.names(f"{key}.cycle.active", c["active"]) if c.get("active") is not None else None
        if active is not None and len(active) != 2:
            raise r.fail(f"{key}.cycle.active", f"expected [from column, to column], got {list(active)!r}")
        if (c.get("by") is None) == (active is None):
            raise r.fail(f"{key}.cycle", "give exactly one of `by` (a cycle column) and `active` ([from, to])")
        cycle = CyclePlacement(c.get("by"), c.get("time"), (active[0], active[1]) if active else None)
    lineage = None
    if m.get("lineage") is not None:
        lin = r.mapping(f"{key}.lineage", m["lineage"], {"column", "parent"})
        lineage = Lineage(r.text(f"{key}.lineage.column", lin.get("column")),
                          r.text(f"{key}.lineage.parent", lin.get("parent")))
    columns = r.mapping(f"{key}.columns", m.get("columns") or {})
    layouts = m.get("layouts")
    if layouts is not None:
        if layouts not in LAYOUT_KINDS:
            raise r.fail(f"{key}.layouts", f"{layouts!r} is not a kind of layout the run reads rate decks of "
                         f"({', '.join(LAYOUT_KINDS)})")
        if m.get("schema", LAYOUT_SCHEMA) != LAYOUT_SCHEMA:
            raise r.fail(f"{key}.schema", f"{m.get('schema')!r}: an input built from layouts has the schema "
                         f"{LAYOUT_SCHEMA}")
        schema = LAYOUT_SCHEMA
        table = str(m.get("table") or f"layouts:{layouts}")
    within: dict[str, tuple[str, str]] = {}
    for col, ref in r.mapping(f"{key}.within", m.get("within") or {}).items():
        parts = ref.split(".") if isinstance(ref, str) else []
        if len(parts) != 2 or not all(parts):
            raise r.fail(f"{key}.within.{col}", f"{ref!r} is not <input>.<column>")
        within[str(col)] = (parts[0], parts[1])
    inp = Input(
        name=name, table=table, schema=schema, system=str(m.get("system") or table),
        id=m.get("id"), order=r.names(f"{key}.order", m.get("order") or []), arrival=m.get("arrival"),
        cycle=cycle, filter=r.sql(f"{key}.filter", m["filter"], params) if m.get("filter") is not None else None,
        phones=r.names(f"{key}.phones", m.get("phones") or []),
        columns={str(k): r.sql(f"{key}.columns.{k}", v, params) for k, v in columns.items()},
        amount=m.get("amount"), currency=m.get("currency"), lineage=lineage, layouts=layouts, within=within,
    )
    for part in ("id", "arrival", "amount", "currency"):
        value_of = getattr(inp, part)
        if value_of is not None:
            _check_columns(r, f"{key}.{part}", (str(value_of),), inp, base_only=True)
    _check_columns(r, f"{key}.order", inp.order, inp, base_only=True)
    _check_columns(r, f"{key}.phones", inp.phones, inp, base_only=True)
    if cycle is not None:
        placed = tuple(c for c in (cycle.by, cycle.time, *(cycle.active or ())) if c)
        _check_columns(r, f"{key}.cycle", placed, inp, base_only=True)
    if lineage is not None:
        _check_columns(r, f"{key}.lineage.column", (lineage.column,), inp, base_only=True)
    for col in within:
        _check_columns(r, f"{key}.within.{col}", (col,), inp)
    return inp


def _check_within(r: _Reader, inputs: Mapping[str, Input]) -> None:
    for inp in inputs.values():
        for col, (other, other_col) in inp.within.items():
            wkey = f"inputs.{inp.name}.within.{col}"
            if other not in inputs or other == inp.name:
                raise r.fail(wkey, f"{other!r} is not another input (inputs: {', '.join(inputs)})")
            _check_columns(r, wkey, (other_col,), inputs[other])


def _checks(r: _Reader, value: Any, inputs: Mapping[str, Input]) -> dict[str, tuple[Check, ...]]:
    out: dict[str, tuple[Check, ...]] = {}
    for name, items in r.mapping("checks", value or {}).items():
        if name not in inputs:
            raise r.fail(f"checks.{name}", f"{name!r} is not an input (inputs: {', '.join(inputs)})")
        if not isinstance(items, list):
            raise r.fail(f"checks.{name}", f"expected a list of checks, got {items!r}")
        checks = []
        for i, item in enumerate(items):
            ckey = f"checks.{name}[{i}]"
            c = r.mapping(ckey, item, {"reason", "fails", "needs"})
            needs = c.get("needs")
            if needs is not None:
                _check_columns(r, f"{ckey}.needs", (str(needs),), inputs[name])
            checks.append(Check(r.text(f"{ckey}.reason", c.get("reason")), r.sql(f"{ckey}.fails", c.get("fails"), {}),
                                needs))
        out[str(name)] = tuple(checks)
    return out


def _checks_that_run(r: _Reader, checks: Mapping[str, tuple[Check, ...]], cps: Mapping[str, ControlPoint]) -> None:
    """Refuse a check that would never run: on an input no record control point has as a side, or one whose `needs`
    column no side reading its input requires (a check runs on the sides that require its column)."""
    sides = [s for cp in cps.values() if cp.kind == "record" for s in cp.sides.values()]
    for name, items in checks.items():
        reading = [s for s in sides if s.input == name]
        if items and not reading:
            raise r.fail(f"checks.{name}", f"input {name} is no side of a record control point: its checks would "
                         "never run")
        for i, check in enumerate(items):
            if check.needs is not None and not any(check.needs in s.required for s in reading):
                raise r.fail(f"checks.{name}[{i}].needs", f"no side reading input {name} requires "
                             f"{check.needs!r}, so this check would never run (add it to a side's required, or "
                             "drop needs to run the check on every side)")


# ------------------------------------------------------------------------------------------------ control points
def _policies(r: _Reader, key: str, value: Any, owners: Mapping[str, int]) -> dict[str, OutcomePolicy]:
    outcomes: dict[str, OutcomePolicy] = {}
    for name, pol in r.mapping(key, value).items():
        okey = f"{key}.{name}"
        p = r.mapping(okey, pol, {"case", "exposure_class", "owner", "severity", "correction", "one_case_per_pair"})
        case = p.get("case")
        if not isinstance(case, bool):
            raise r.fail(f"{okey}.case", f"{case!r} is not true or false")
        if case:
            if p.get("exposure_class") not in (*EXPOSURE_CLASSES, "BY_SIGN"):
                raise r.fail(f"{okey}.exposure_class", f"{p.get('exposure_class')!r} is not one of "
                             f"{', '.join(EXPOSURE_CLASSES)}, BY_SIGN")
            if p.get("owner") not in owners:
                raise r.fail(f"{okey}.owner", f"{p.get('owner')!r} is not a team under owners")
            if p.get("severity") not in SEVERITIES:
                raise r.fail(f"{okey}.severity", f"{p.get('severity')!r} is not one of {', '.join(SEVERITIES)}")
        pair = p.get("one_case_per_pair", False)
        if not isinstance(pair, bool):
            raise r.fail(f"{okey}.one_case_per_pair", f"{pair!r} is not true or false")
        outcomes[str(name)] = OutcomePolicy(case, p.get("exposure_class"), p.get("owner"), p.get("severity"),
                                            p.get("correction"), pair)
    if not outcomes:
        raise r.fail(key, "no outcome declared")
    return outcomes


def _side(r: _Reader, key: str, value: Any, inputs: Mapping[str, Input], checks: Mapping[str, tuple[Check, ...]]
          ) -> SideSpec:
    m = r.mapping(key, value, {"input", "required", "unique_id", "describe"})
    name = m.get("input")
    if name not in inputs:
        raise r.fail(f"{key}.input", f"{name!r} is not an input (inputs: {', '.join(inputs)})")
    inp = inputs[str(name)]
    required = r.names(f"{key}.required", m.get("required") or [])
    _check_columns(r, f"{key}.required", required, inp)
    unique = m.get("unique_id", False)
    if not isinstance(unique, bool):
        raise r.fail(f"{key}.unique_id", f"{unique!r} is not true or false")
    if unique and inp.id is None:
        raise r.fail(f"{key}.unique_id", f"input {inp.name} declares no id")
    describe = r.mapping(f"{key}.describe", m.get("describe") or {}, set(DESCRIBE))
    return SideSpec(inp.name, required, unique, {str(k): r.sql(f"{key}.describe.{k}", v, {}) for k, v in
                                                 describe.items()})


def _lookup(r: _Reader, key: str, name: str, value: Any, inputs: Mapping[str, Input],
            side_inputs: Mapping[str, Input], lets: Mapping[str, Mapping[str, str]], params: Mapping[str, object]
            ) -> Lookup:
    """A lookup of one side (`side`, LEFT by default): its `join` names that side's columns or lets."""
    m = r.mapping(key, value, {"input", "kind", "join", "where", "columns", "by", "at", "quantity", "map", "prefix",
                               "side"})
    if m.get("input") not in inputs:
        raise r.fail(f"{key}.input", f"{m.get('input')!r} is not an input (inputs: {', '.join(inputs)})")
    kind = m.get("kind")
    if kind not in LOOKUP_KINDS:
        raise r.fail(f"{key}.kind", f"{kind!r} is not one of {', '.join(LOOKUP_KINDS)}")
    side_name = m.get("side", "LEFT")
    if side_name not in side_inputs:
        raise r.fail(f"{key}.side", f"{side_name!r} is not a side of this control point ({', '.join(side_inputs)})")
    side = side_inputs[side_name]
    target = inputs[str(m["input"])]
    on = {str(k): str(v) for k, v in r.mapping(f"{key}.join", m.get("join") or {}).items()}
    # a record column the lookup joins on may be a let of its side (joined once that let is computed)
    on_columns = tuple(c for c in on if c not in lets.get(side_name, {}))
    if m.get("prefix") is not None and kind != "prefix":
        raise r.fail(f"{key}.prefix", f"only a prefix lookup takes a prefix column (this one is {kind})")
    if kind == "prefix":
        for part in ("by", "prefix"):
            if not m.get(part):
                raise r.fail(f"{key}.{part}", "missing (required by a prefix lookup)")
        _check_columns(r, f"{key}.by", (str(m["by"]),), side)
        _check_columns(r, f"{key}.prefix", (str(m["prefix"]),), target)
        _check_columns(r, f"{key}.join", on_columns, side)
        _check_columns(r, f"{key}.join", tuple(on.values()), target)
        for part in ("at", "quantity"):
            if m.get(part) is not None:
                raise r.fail(f"{key}.{part}", "a prefix lookup has no at or quantity (those are price lookups')")
        if not m.get("columns"):
            raise r.fail(f"{key}.columns", "missing: {name: SQL over the lookup's row} of what the lookup gives")
    elif kind == "key":
        if not on:
            raise r.fail(f"{key}.join", "missing: a key lookup joins on {record column: lookup column}")
        _check_columns(r, f"{key}.join", on_columns, side)
        _check_columns(r, f"{key}.join", tuple(on.values()), target)
        if not m.get("columns"):
            raise r.fail(f"{key}.columns", "missing: {name: aggregate SQL} of what the lookup gives")
    else:
        for part in ("by", "at", "quantity"):
            if not m.get(part):
                raise r.fail(f"{key}.{part}", f"missing (required by a {kind} lookup)")
        for part in ("by", "at", "quantity"):
            _check_columns(r, f"{key}.{part}", (str(m[part]),), side)
    columns = r.mapping(f"{key}.columns", m.get("columns") or {})
    mapping = r.mapping(f"{key}.map", m.get("map") or {})
    if mapping and kind != "price_list":
        raise r.fail(f"{key}.map", f"only a price_list lookup takes a map (this one is {kind})")
    return Lookup(name, target.name, str(kind), on,
                  r.sql(f"{key}.where", m["where"], params) if m.get("where") else None,
                  {str(k): r.text(f"{key}.columns.{k}", v) for k, v in columns.items()},
                  m.get("by"), m.get("at"), m.get("quantity"), {str(k): str(v) for k, v in mapping.items()},
                  m.get("prefix"), str(side_name))


def _stages(r: _Reader, key: str, value: Any, sides: Mapping[str, SideSpec], inputs: Mapping[str, Input]) -> Stages:
    m = r.mapping(key, value or {}, {"duplicates", "exact", "fuzzy"})
    if m and "RIGHT" not in sides and set(m) - {"duplicates"}:
        raise r.fail(key, "exact and fuzzy stages need a right side")
    left = inputs[sides["LEFT"].input]
    right = inputs[sides["RIGHT"].input] if "RIGHT" in sides else None
    dups = None
    if m.get("duplicates") is not None:
        d = r.mapping(f"{key}.duplicates", m["duplicates"], {"content", "order", "key"})
        if left.id is None:
            raise r.fail(f"{key}.duplicates", f"input {left.name} declares no id")
        content = r.names(f"{key}.duplicates.content", d.get("content"))
        order = r.names(f"{key}.duplicates.order", d.get("order") or [*left.order, left.id])
        dup_key = r.names(f"{key}.duplicates.key", d["key"]) if d.get("key") is not None else ()
        _check_columns(r, f"{key}.duplicates.content", content, left)
        _check_columns(r, f"{key}.duplicates.order", order, left)
        _check_columns(r, f"{key}.duplicates.key", dup_key, left)
        dups = Duplicates(content, order, dup_key)
    exact = []
    raw_exact = m.get("exact") or []
    if not isinstance(raw_exact, list):
        raise r.fail(f"{key}.exact", f"expected a list of exact stages, got {raw_exact!r}")
    for i, e in enumerate(raw_exact):
        ekey = f"{key}.exact[{i}]"
        x = r.mapping(ekey, e, {"left", "right", "order", "unique", "right_where"})
        lcols, rcols = r.names(f"{ekey}.left", x.get("left")), r.names(f"{ekey}.right", x.get("right"))
        if len(lcols) != len(rcols):
            raise r.fail(ekey, f"left {list(lcols)} and right {list(rcols)} differ in length")
        assert right is not None
        _check_columns(r, f"{ekey}.left", lcols, left)
        _check_columns(r, f"{ekey}.right", rcols, right)
        order = r.names(f"{ekey}.order", x.get("order") or [*right.order, *(right.id and [right.id] or [])])
        _check_columns(r, f"{ekey}.order", order, right)
        unique = x.get("unique", False)
        if not isinstance(unique, bool):
            raise r.fail(f"{ekey}.unique", f"{unique!r} is not true or false")
        exact.append(ExactStage(lcols, rcols, order, unique,
                                r.sql(f"{ekey}.right_where", x["right_where"], {}) if x.get("right_where") else None))
    fuzzy = None
    if m.get("fuzzy") is not None:
        fkey = f"{key}.fuzzy"
        f = r.mapping(fkey, m["fuzzy"], {"keys", "time", "window_s", "quantity", "tolerance_by", "tolerances",
                                         "further", "alt_time", "alt_confidence"})
        assert right is not None
        keys = r.names(f"{fkey}.keys", f.get("keys"))
        _check_columns(r, f"{fkey}.keys", keys, left)
        _check_columns(r, f"{fkey}.keys", keys, right)
        time = r.text(f"{fkey}.time", f.get("time"))
        _check_columns(r, f"{fkey}.time", (time,), left)
        _check_columns(r, f"{fkey}.time", (time,), right)
        # Without `quantity`, pairs are ranked on time alone (no tolerance_by / tolerances then).
        q_left = q_right = by = None
        tols: dict[str, Any] = {}
        if f.get("quantity") is not None:
            q = r.mapping(f"{fkey}.quantity", f.get("quantity"), {"left", "right"})
            _check_columns(r, f"{fkey}.quantity.left", (str(q.get("left")),), left)
            _check_columns(r, f"{fkey}.quantity.right", (str(q.get("right")),), right)
            q_left, q_right = str(q["left"]), str(q["right"])
            by = r.text(f"{fkey}.tolerance_by", f.get("tolerance_by"))
            _check_columns(r, f"{fkey}.tolerance_by", (by,), left)
            tols = r.mapping(f"{fkey}.tolerances", f.get("tolerances"))
        else:
            for part in ("tolerance_by", "tolerances"):
                if f.get(part) is not None:
                    raise r.fail(f"{fkey}.{part}", "a fuzzy stage without quantity has no quantity tolerance")
        further = f.get("further", False)
        if not isinstance(further, bool):
            raise r.fail(f"{fkey}.further", f"{further!r} is not true or false")
        alt_time = f.get("alt_time")
        if alt_time is not None:
            _check_columns(r, f"{fkey}.alt_time", (r.text(f"{fkey}.alt_time", alt_time),), left)
        alt_conf = r.decimal(f"{fkey}.alt_confidence", f.get("alt_confidence", 1))
        if alt_conf > 1:
            raise r.fail(f"{fkey}.alt_confidence", f"{f.get('alt_confidence')!r} is not a factor between 0 and 1")
        if f.get("alt_confidence") is not None and alt_time is None:
            raise r.fail(f"{fkey}.alt_confidence", "given without alt_time: it would lower nothing")
        fuzzy = FuzzyStage(keys, time, r.positive_int(f"{fkey}.window_s", f.get("window_s")), q_left,
                           q_right, by, {str(k): r.tolerance(f"{fkey}.tolerances.{k}", v)
                                         for k, v in tols.items()}, further, alt_time, alt_conf)
    return Stages(dups, tuple(exact), fuzzy)


def _by_side(r: _Reader, key: str, value: Any, sides: Mapping[str, SideSpec]) -> dict[str, Any]:
    """A mapping keyed by side (LEFT/RIGHT), or one mapping for every side."""
    m = r.mapping(key, value or {})
    if m and set(m) <= set(SIDES):
        for side in m:
            if side not in sides:
                raise r.fail(f"{key}.{side}", f"this control point has no {side} side")
        return m
    return dict.fromkeys(sides, m) if m else {}


def _rules(r: _Reader, key: str, value: Any, outcomes: Mapping[str, OutcomePolicy], lookups: Mapping[str, Lookup],
           params: Mapping[str, object], side: str) -> tuple[Rule, ...]:
    if not isinstance(value, list) or not value:
        raise r.fail(key, f"expected an ordered list of rules, got {value!r}")
    rules, seen = [], set()
    for i, item in enumerate(value):
        m = r.mapping(f"{key}[{i}]", item, {"rule", "when", "outcome", "reason", "reason_code", "exposure",
                                            "priced_by"})
        name = r.text(f"{key}[{i}].rule", m.get("rule"))
        rkey = f"{key}.{name}"
        if name in seen:
            raise r.fail(rkey, "a rule of this name comes earlier: rule names are unique per side")
        seen.add(name)
        outcome = m.get("outcome")
        if outcome == IGNORED:
            raise r.fail(f"{rkey}.outcome", f"{outcome!r} is given by the engine from the ignore list (telco-ra "
                         "ignore add), not by a rule")
        if outcome not in outcomes:
            raise r.fail(f"{rkey}.outcome", f"{outcome!r} has no policy under outcomes ({', '.join(outcomes)})")
        priced_by = m.get("priced_by")
        if priced_by is not None and side != "LEFT":
            raise r.fail(f"{rkey}.priced_by", f"{priced_by!r}: lookups price the LEFT side's records (their columns "
                         "are checked against the left input); a RIGHT rule gives its exposure as SQL")
        if priced_by is not None and (priced_by not in lookups or lookups[priced_by].kind == "key"):
            raise r.fail(f"{rkey}.priced_by", f"{priced_by!r} is not a price or price_list lookup of this control "
                         "point")
        when = r.sql(f"{rkey}.when", m.get("when"), params)
        opt = {k: (r.sql(f"{rkey}.{k}", m[k], params) if m.get(k) is not None else None)
               for k in ("reason", "reason_code", "exposure")}
        rules.append(Rule(name, when, str(outcome), opt["reason"], opt["reason_code"], opt["exposure"], priced_by))
    return tuple(rules)


def _exemptions(r: _Reader, key: str, value: Any, left: Input, outcomes: Mapping[str, OutcomePolicy]
                ) -> tuple[Exemption, ...]:
    out = []
    for i, ex in enumerate(value or []):
        ekey = f"{key}[{i}]"
        x = r.mapping(ekey, ex, {"id", "column", "values", "outcomes"})
        _check_columns(r, f"{ekey}.column", (str(x.get("column")),), left)
        values = x.get("values")
        if not isinstance(values, list) or not values:
            raise r.fail(f"{ekey}.values", f"expected a non-empty list, got {values!r}")
        for o in x.get("outcomes") or []:
            if o not in outcomes:
                raise r.fail(f"{ekey}.outcomes", f"{o!r} is not an outcome of this control point")
        out.append(Exemption(str(x.get("id")), str(x["column"]), tuple(map(str, values)),
                             tuple(x.get("outcomes") or [])))
    return tuple(out)


def _record_point(r: _Reader, cp_id: str, m: dict[str, Any], inputs: Mapping[str, Input],
                  checks: Mapping[str, tuple[Check, ...]], owners: Mapping[str, int], params: Mapping[str, object]
                  ) -> ControlPoint:
    key = f"control_points.{cp_id}"
    _unknown(r.path, f"{key}.", m, RECORD_KEYS)
    sides = {"LEFT": _side(r, f"{key}.left", m.get("left"), inputs, checks)}
    if m.get("right") is not None:
        sides["RIGHT"] = _side(r, f"{key}.right", m["right"], inputs, checks)
    tolerance = r.tolerance(f"{key}.tolerance", m["tolerance"]) if m.get("tolerance") is not None else None
    sql_params: dict[str, object] = {**params, "cycle.start": 0, "cycle.end": 0, "cycle.close": 0,
                                     "cycle.cutoff": 0, "cycle.id": ""}
    if tolerance is not None:
        sql_params.update({"tolerance.abs": tolerance.abs, "tolerance.rel": tolerance.rel})
    let = {side: {str(n): r.sql(f"{key}.let.{side}.{n}", v, sql_params)
                  for n, v in r.mapping(f"{key}.let.{side}", lets).items()}
           for side, lets in _by_side(r, f"{key}.let", m.get("let"), sides).items()}
    lookups: dict[str, Lookup] = {}
    side_inputs = {side: inputs[spec.input] for side, spec in sides.items()}
    for name, spec in r.mapping(f"{key}.lookups", m.get("lookups") or {}).items():
        if name in ENGINE_NAMES:
            raise r.fail(f"{key}.lookups.{name}", "a name the engine gives the record's own columns "
                         f"({', '.join(ENGINE_NAMES)}): choose another")
        lookups[str(name)] = _lookup(r, f"{key}.lookups.{name}", str(name), spec, inputs, side_inputs, let,
                                     sql_params)
    _lets_before_their_lookups(r, key, let, lookups)
    stages = _stages(r, f"{key}.stages", m.get("stages"), sides, inputs)
    outcomes = _policies(r, f"{key}.outcomes", m.get("outcomes"), owners)
    decide_raw = r.mapping(f"{key}.decide", m.get("decide"))
    decide = {}
    for side in sides:
        if side not in decide_raw:
            raise r.fail(f"{key}.decide.{side}", "missing: every side's records need rules giving their outcome")
        decide[side] = _rules(r, f"{key}.decide.{side}", decide_raw[side], outcomes, lookups, sql_params, side)
    for extra in set(decide_raw) - set(sides):
        raise r.fail(f"{key}.decide.{extra}", "this control point has no such side")
    used = {rule.outcome for rules in decide.values() for rule in rules}
    for name in outcomes:
        if name not in used:
            raise r.fail(f"{key}.outcomes.{name}", "no rule gives this outcome: remove it or add a rule")
    record = {}
    for side, cols in _by_side(r, f"{key}.record", m.get("record"), sides).items():
        c = r.mapping(f"{key}.record.{side}", cols, set(RECORD_COLUMNS))
        record[side] = {str(k): (str(v) if k == "counterpart_table" else r.sql(f"{key}.record.{side}.{k}", v,
                                                                                sql_params))
                        for k, v in c.items()}
        for rule in decide[side] if "exposure" in record[side] else ():
            if rule.exposure is not None or rule.priced_by is not None:
                raise r.fail(f"{key}.decide.{side}.{rule.name}", f"record.{side}.exposure gives every {side} row's "
                             "exposure: this rule's exposure (or priced_by) would drive nothing")
    reports = []
    for i, rep in enumerate(m.get("reports") or []):
        rkey = f"{key}.reports[{i}]"
        x = r.mapping(rkey, rep, {"kind", "input", "outcomes", "owner_of"})
        if x.get("kind") not in REPORT_KINDS:
            raise r.fail(f"{rkey}.kind", f"{x.get('kind')!r} is not one of {', '.join(REPORT_KINDS)}")
        if x.get("input") not in inputs:
            raise r.fail(f"{rkey}.input", f"{x.get('input')!r} is not an input")
        rep_outcomes = r.names(f"{rkey}.outcomes", x.get("outcomes"))
        for part, names in (("outcomes", rep_outcomes), ("owner_of", (x.get("owner_of"),))):
            for o in names:
                if o not in outcomes:
                    raise r.fail(f"{rkey}.{part}", f"{o!r} is not an outcome of this control point")
        reports.append(Report(str(x["kind"]), str(x["input"]), rep_outcomes, str(x["owner_of"])))
    alerts = _alerts(r, f"{key}.alerts", m.get("alerts"), sides, sql_params)
    return ControlPoint(
        id=cp_id, kind="record", sides=sides, lookups=lookups, stages=stages, let=let, decide=decide,
        record=record, tolerance=tolerance, outcomes=outcomes,
        exemptions=_exemptions(r, f"{key}.exemptions", m.get("exemptions"), inputs[sides["LEFT"].input], outcomes),
        reports=tuple(reports), alerts=alerts, figures=_figures(r, f"{key}.figures", m.get("figures"), sides),
    )


def _lets_before_their_lookups(r: _Reader, key: str, let: Mapping[str, Mapping[str, str]],
                               lookups: Mapping[str, Lookup]) -> None:
    """A lookup that joins on a let is joined once that let is computed (lets are computed in the order written):
    a let written before it cannot read it, so one that does is refused, naming both."""
    for lookup in lookups.values():
        names = list(let.get(lookup.side, {}))
        joined_after = [names.index(c) for c in lookup.on if c in names]
        if not joined_after:
            continue
        last = max(joined_after)
        for name in names[:last + 1]:
            if re.search(rf"\b{re.escape(lookup.name)}\b", let[lookup.side][name]):
                raise r.fail(f"{key}.let.{lookup.side}.{name}", f"reads lookup {lookup.name}, which joins on let "
                             f"{names[last]}: write {name} after {names[last]}")


def _figures(r: _Reader, key: str, value: Any, sides: Mapping[str, SideSpec]) -> tuple[Figure, ...]:
    """`figures: {name: {side, by: [outcome-row columns], sum: an amount column (optional: without it the figure
    counts rows)}}` (spec.Figure)."""
    out = []
    for name, spec in r.mapping(key, value or {}).items():
        fkey = f"{key}.{name}"
        f = r.mapping(fkey, spec, {"side", "by", "sum"})
        side = f.get("side", "LEFT")
        if side not in sides:
            raise r.fail(f"{fkey}.side", f"{side!r} is not a side of this control point ({', '.join(sides)})")
        by = r.names(f"{fkey}.by", f.get("by"))
        for column in by:
            if column not in FIGURE_GROUPS:
                raise r.fail(f"{fkey}.by", f"{column!r}: a figure groups outcome rows by columns of a small "
                             f"vocabulary ({', '.join(FIGURE_GROUPS)})")
        total = f.get("sum")
        if total is not None and total not in FIGURE_SUMS:
            raise r.fail(f"{fkey}.sum", f"{total!r} is not an amount column of the outcome rows "
                         f"({', '.join(FIGURE_SUMS)})")
        out.append(Figure(str(name), str(side), by, None if total is None else str(total)))
    return tuple(out)


def _alerts(r: _Reader, key: str, value: Any, sides: Mapping[str, SideSpec], params: Mapping[str, object]
            ) -> tuple[Alert, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise r.fail(key, f"expected a list of alerts, got {value!r}")
    out, seen = [], set()
    for i, item in enumerate(value):
        akey = f"{key}[{i}]"
        a = r.mapping(akey, item, {"metric", "side", "scope", "counts", "above", "message"})
        metric = r.text(f"{akey}.metric", a.get("metric"))
        if metric in seen:
            raise r.fail(f"{akey}.metric", f"{metric!r} comes earlier: metric names are unique per control point")
        seen.add(metric)
        side = a.get("side", "LEFT")
        if side not in sides:
            raise r.fail(f"{akey}.side", f"{side!r} is not a side of this control point ({', '.join(sides)})")
        above = a.get("above")
        threshold_param = None
        if isinstance(above, str) and above.startswith("${") and above.endswith("}"):
            threshold_param = above[2:-1]
            if threshold_param not in params:
                raise r.fail(f"{akey}.above", f"{above!r} names no parameter")
            above = params[threshold_param]
        threshold = r.decimal(f"{akey}.above", above)
        if threshold > 1:
            raise r.fail(f"{akey}.above", f"{a.get('above')!r} is not a rate between 0 and 1")
        message = a.get("message")
        if message is not None:
            try:
                r.text(f"{akey}.message", message).format(**dict.fromkeys(ALERT_FACTS, ""))
            except (KeyError, IndexError, ValueError) as exc:
                raise r.fail(f"{akey}.message", f"{message!r}: names {exc} (it may name "
                             f"{', '.join('{' + f + '}' for f in ALERT_FACTS)})") from None
        out.append(Alert(metric, str(side), r.sql(f"{akey}.scope", a.get("scope"), params),
                         r.sql(f"{akey}.counts", a.get("counts"), params), threshold,
                         r.text(f"{akey}.message", a["message"]) if a.get("message") is not None else None,
                         threshold_param))
    return tuple(out)


def _aggregate_point(r: _Reader, cp_id: str, m: dict[str, Any], record_points: Mapping[str, ControlPoint],
                     owners: Mapping[str, int], inputs: Mapping[str, Input], params: Mapping[str, object]
                     ) -> ControlPoint:
    key = f"control_points.{cp_id}"
    _unknown(r.path, f"{key}.", m, AGGREGATE_KEYS)
    measure = m.get("measure", "amount")
    if measure not in MEASURES:
        raise r.fail(f"{key}.measure", f"{measure!r} is not one of {', '.join(MEASURES)} (amount sums the sides' "
                     "outcome `amount`; count compares the `count` SQL of each side)")
    sides = {}
    for part, side in (("left", "LEFT"), ("right", "RIGHT")):
        s = r.mapping(f"{key}.{part}", m.get(part), {"of", "side", "input", "where"})
        if s.get("input") is not None:
            if s.get("of") is not None or s.get("side") is not None:
                raise r.fail(f"{key}.{part}", "give either `input` (an input's rows) or `of` and `side` (a record "
                             "control point's outcome rows), not both")
            if s["input"] not in inputs:
                raise r.fail(f"{key}.{part}.input", f"{s['input']!r} is not an input (inputs: {', '.join(inputs)})")
            if inputs[s["input"]].id is None:
                raise r.fail(f"{key}.{part}.input", f"input {s['input']} declares no id")
            where = r.sql(f"{key}.{part}.where", s["where"], params) if s.get("where") is not None else None
            sides[side] = AggregateSide(input=str(s["input"]), where=where)
            continue
        if s.get("where") is not None:
            raise r.fail(f"{key}.{part}.where", "only an `input` side takes a where (outcome rows are the side's)")
        if s.get("of") not in record_points:
            raise r.fail(f"{key}.{part}.of", f"{s.get('of')!r} is not a record control point declared before this "
                         f"one ({', '.join(record_points)})")
        if s.get("side") not in record_points[s["of"]].sides:
            raise r.fail(f"{key}.{part}.side", f"{s.get('side')!r} is not a side of {s['of']}")
        sides[side] = AggregateSide(str(s["of"]), str(s["side"]))
    count: dict[str, str] = {}
    price = None
    if measure == "count":
        c = r.mapping(f"{key}.count", m.get("count"), set(SIDES))
        count = {side: r.sql(f"{key}.count.{side}", c.get(side), params) for side in SIDES}
        price = r.sql(f"{key}.price", m.get("price"), params)
    else:
        for part in ("count", "price"):
            if m.get(part) is not None:
                raise r.fail(f"{key}.{part}", "only an aggregate with `measure: count` takes it (it would drive "
                             "nothing)")
        for side, a in sides.items():
            if a.input is not None:
                raise r.fail(f"{key}.{side.lower()}.input", "an input's rows carry no outcome amount: give "
                             "`measure: count` with `count` and `price`, or a record control point's side")
    group_raw = r.mapping(f"{key}.group_by", m.get("group_by"))
    group_by = {}
    for out, per_side in group_raw.items():
        if out not in AGGREGATE_GROUPS:
            raise r.fail(f"{key}.group_by.{out}", f"aggregate_variance has no column {out!r} "
                         f"({', '.join(AGGREGATE_GROUPS)})")
        ps = r.mapping(f"{key}.group_by.{out}", per_side, set(SIDES))
        group_by[str(out)] = {side: r.sql(f"{key}.group_by.{out}.{side}", ps.get(side), {}) for side in SIDES}
    if m.get("tolerance") is None:
        raise r.fail(f"{key}.tolerance", "missing (required for an aggregate control point)")
    outcomes = _policies(r, f"{key}.outcomes", m.get("outcomes"), owners)
    d = r.mapping(f"{key}.decide", m.get("decide"), {"beyond", "within"})
    for part in ("beyond", "within"):
        if d.get(part) not in outcomes:
            raise r.fail(f"{key}.decide.{part}", f"{d.get(part)!r} has no policy under outcomes")
    return ControlPoint(id=cp_id, kind="aggregate", tolerance=r.tolerance(f"{key}.tolerance", m["tolerance"]),
                        outcomes=outcomes, aggregate_sides=sides, group_by=group_by, measure=str(measure),
                        count=count, price=price, beyond=str(d["beyond"]), within=str(d["within"]))


def load_ruleset(path: str | Path, text: str | None = None) -> Ruleset:
    """Load and validate a ruleset file; with `text`, validate that content (a past run's) under the name `path`."""
    data, text = _read_yaml(path, text)
    r = _Reader(path)
    _unknown(path, "", data, RULESET_KEYS)
    version = data.get("version")
    if not isinstance(version, str) or not version.strip():
        raise r.fail("version", f"{version!r} is not a version string (quote it: version: \"2026.11.0\")")
    if data.get("contract") != CONTRACT:
        raise r.fail("contract", f"{data.get('contract')!r}: this telco-ra reads rulesets of contract {CONTRACT} "
                     "(control points declared with inputs, stages and rules)")
    owners: dict[str, int] = {}
    for team, spec in r.mapping("owners", data.get("owners")).items():
        s = r.mapping(f"owners.{team}", spec, {"sla_days"})
        owners[str(team)] = r.positive_int(f"owners.{team}.sla_days", s.get("sla_days"), zero_ok=True)
    params = {str(name): _param(r, f"params.{name}", value)
              for name, value in r.mapping("params", data.get("params") or {}).items()}
    inputs = {str(n): _input(r, str(n), v, params) for n, v in r.mapping("inputs", data.get("inputs")).items()}
    for inp in inputs.values():
        if inp.lineage is not None and inp.lineage.parent not in inputs:
            raise r.fail(f"inputs.{inp.name}.lineage.parent", f"{inp.lineage.parent!r} is not an input")
    _check_within(r, inputs)
    checks = _checks(r, data.get("checks"), inputs)
    cps: dict[str, ControlPoint] = {}
    for cp_id, spec in r.mapping("control_points", data.get("control_points")).items():
        m = r.mapping(f"control_points.{cp_id}", spec)
        kind = m.get("kind")
        if kind == "record":
            cps[str(cp_id)] = _record_point(r, str(cp_id), m, inputs, checks, owners, params)
        elif kind == "aggregate":
            cps[str(cp_id)] = _aggregate_point(r, str(cp_id), m, {k: v for k, v in cps.items()
                                                                  if v.kind == "record"}, owners, inputs, params)
        else:
            raise r.fail(f"control_points.{cp_id}.kind", f"{kind!r} is not one of record, aggregate")
    if not cps:
        raise r.fail("control_points", "no control point declared")
    _checks_that_run(r, checks, cps)
    _params_used(r, params, data)          # last: a misspelt ${name} in a rule is named as such first
    return Ruleset(
        path=str(path), name=str(data.get("ruleset") or Path(path).stem), version=version,
        content_hash=hashlib.sha256(text.encode("utf-8")).hexdigest(), text=text,
        account_buckets=r.positive_int("account_buckets", data.get("account_buckets", 16)), owners=owners,
        params=params, inputs=inputs, checks=checks, control_points=cps,
        # Optional so that older ruleset texts still load; absent means every non-zero waiver needs approval.
        maker_checker_above=r.decimal("maker_checker_above", data.get("maker_checker_above", 0)),
    )
