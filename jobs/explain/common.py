"""Pieces every part of the explained page uses: SQL shown with its words, anchors, policy phrases, the key paths
where a parameter is used."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator, Mapping

from jobs.explain.blocks import Block, Code, Inline, Item, Items, Link, Para, Sql, Tag, inline, joined
from jobs.explain.words import Context, Words, as_inline, sql_words
from jobs.ruleset import Ruleset
from transforms.engine.decide import side_sql
from transforms.engine.spec import ControlPoint, Input, OutcomePolicy, Rule, SideSpec

EXPOSURE_CLASS_WORDS = {
    "UNDERBILLING": "underbilling: money not billed, a positive exposure",
    "OVERBILLING": "overbilling: money billed that should not be, a negative exposure",
    "TIMING": "timing: revenue delayed to a later cycle",
    "COST_LEAKAGE": "cost leakage: money paid to a partner that should not be",
    "INVENTORY": "inventory: a record out of step between systems",
    "BY_SIGN": "by sign: underbilling when the exposure is positive, overbilling when negative",
}


def anchor(*parts: str) -> str:
    """A stable HTML id / Markdown anchor from names (lower case, runs of other characters as '-')."""
    return "-".join(re.sub(r"[^a-z0-9]+", "-", p.lower()).strip("-") for p in parts)


def cp_link(cp_id: str) -> Link:
    return Link(cp_id, anchor("cp", cp_id))


def input_link(name: str) -> Link:
    return Link(name, anchor("input", name))


def words_blocks(words: Words | None, lead: str = "In words") -> tuple[Block, ...]:
    """A condition's words as blocks: one sentence, or 'all of these hold' / 'at least one holds' with a list."""
    if words is None:
        return ()
    if words.kind == "phrase":
        return (Para(inline(f"{lead}: ", words.text)),)
    return (Para((f"{lead}, {_group_lead(words)}:",)), Items(tuple(_item(p) for p in words.parts)))


def _group_lead(words: Words) -> str:
    return "all of these hold" if words.kind == "all" else "at least one of these holds"


def _item(words: Words) -> Item:
    if words.kind == "phrase":
        return Item(words.text)
    return Item((f"{_group_lead(words)}:",), (Items(tuple(_item(p) for p in words.parts)),))


def sql_with_words(text: str, ctx: Context, lead: str = "In words") -> tuple[Block, ...]:
    """The words (where the SQL reads as words) and then the exact SQL."""
    return (*words_blocks(sql_words(text, ctx), lead), Sql(text))


def short_words(text: str, ctx: Context) -> Inline:
    """A SQL text in one line of words where it reads as words, else its SQL as code (table cells, list items)."""
    words = sql_words(text, ctx)
    return as_inline(words) if words is not None else (Code(text),)


def policy_words(name: str, policy: OutcomePolicy, owners: Mapping[str, int]) -> Inline:
    """'raises a case: HIGH, owner billing-operations (SLA 3 days), underbilling ..., correction x' or 'no case'."""
    if not policy.case:
        return inline(Tag(name, "outcome"), " raises no case", undescribed(policy))
    sla = owners.get(policy.owner or "")
    parts: list[Inline] = [
        (Tag(name, "outcome"), " raises a case of severity ", Tag(policy.severity or "", policy.severity or "")),
        (", owned by ", Code(policy.owner or ""), f" (SLA {sla} day{'s' if sla != 1 else ''})"),
        (", exposure class ", Code(policy.exposure_class or ""), f" ({EXPOSURE_CLASS_WORDS.get(policy.exposure_class or '', '')})"),
    ]
    if policy.correction:
        parts.append((", correction ", Code(policy.correction)))
    if policy.one_case_per_pair:
        parts.append(("; both records of a pair get it and one case is raised, from the LEFT record",))
    return inline(*parts, undescribed(policy))


def context(rs: Ruleset, cp: ControlPoint | None = None, rule: bool = False) -> Context:
    if cp is None:
        return Context(rs.params)
    return Context(rs.params, cp.tolerance, frozenset(cp.lookups), rule)


def ruleset_sql(rs: Ruleset) -> Iterator[tuple[str, str]]:
    """(YAML key path, SQL) of every SQL text the loaded ruleset holds, in declaration order."""
    for inp in rs.inputs.values():
        if inp.filter:
            yield f"inputs.{inp.name}.filter", inp.filter
        for name, sql in inp.columns.items():
            yield f"inputs.{inp.name}.columns.{name}", sql
    for name, checks in rs.checks.items():
        for i, check in enumerate(checks):
            yield f"checks.{name}[{i}].fails", check.fails
    for cp in rs.control_points.values():
        base = f"control_points.{cp.id}"
        for lk in cp.lookups.values():
            if lk.where:
                yield f"{base}.lookups.{lk.name}.where", lk.where
            for name, sql in lk.columns.items():
                yield f"{base}.lookups.{lk.name}.columns.{name}", sql
        for side in cp.sides:
            yield from side_sql(cp, side)
        for i, alert in enumerate(cp.alerts):
            yield f"{base}.alerts[{i}].scope", alert.scope
            yield f"{base}.alerts[{i}].counts", alert.counts
        for part, agg in (("left", cp.aggregate_sides.get("LEFT")), ("right", cp.aggregate_sides.get("RIGHT"))):
            if agg is not None and agg.where:
                yield f"{base}.{part}.where", agg.where
        for out, per_side in cp.group_by.items():
            for side, sql in per_side.items():
                yield f"{base}.group_by.{out}.{side}", sql
        for side, sql in cp.count.items():
            yield f"{base}.count.{side}", sql
        if cp.price:
            yield f"{base}.price", cp.price


def param_uses(rs: Ruleset, name: str) -> list[str]:
    """The key paths whose SQL names `${name}`, and the alerts whose threshold it is."""
    uses = [where for where, sql in ruleset_sql(rs) if "${" + name + "}" in sql]
    for cp in rs.control_points.values():
        for i, alert in enumerate(cp.alerts):
            if alert.threshold_param == name:
                uses.append(f"control_points.{cp.id}.alerts[{i}].above")
    return uses


def let_names_in(cp: ControlPoint, side: str, text: str) -> list[str]:
    """The side's let names a SQL text reads (not as a field of something else), in declaration order."""
    return [n for n in cp.let.get(side, {}) if re.search(rf"(?<![\w.]){re.escape(n)}(?![\w])", text)]


def sentence(*parts: Inline | str) -> Para:
    return Para(inline(*[(p,) if isinstance(p, str) else p for p in parts]))


# The fields of the spec objects this page explains one by one. A field added to the spec later (a new ruleset
# key) is still shown, as `name: value`, by `undescribed` until the page learns to say it in words.
DESCRIBED: dict[type, frozenset[str]] = {
    Rule: frozenset({"name", "when", "outcome", "reason", "reason_code", "exposure", "priced_by"}),
    OutcomePolicy: frozenset({"case", "exposure_class", "owner", "severity", "correction", "one_case_per_pair"}),
    SideSpec: frozenset({"input", "required", "unique_id", "describe"}),
    Input: frozenset({"name", "table", "schema", "system", "id", "order", "arrival", "cycle", "filter", "phones",
                      "columns", "amount", "currency", "lineage", "layouts", "within"}),
    ControlPoint: frozenset({"id", "kind", "sides", "lookups", "stages", "let", "decide", "record", "tolerance",
                             "outcomes", "exemptions", "reports", "alerts", "aggregate_sides", "group_by", "measure",
                             "count", "price", "beyond", "within", "figures"}),
}


def _shown(value: object) -> str:
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{k}: {_shown(v)}" for k, v in value.items()) + "}"
    if isinstance(value, tuple | list):
        return "[" + ", ".join(_shown(v) for v in value) + "]"
    return str(value)


def undescribed(obj: object, lead: str = "; also declared: ") -> Inline:
    """`lead` and `name: value` of each field of a spec object that this page does not explain yet and that is not at
    its default, e.g. ("; also declared: ", Code("confidence_band: high")); () when there is none."""
    described = next((names for kind, names in DESCRIBED.items() if isinstance(obj, kind)), None)
    if described is None or not dataclasses.is_dataclass(obj):
        return ()
    extra: list[Inline] = []
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        default = f.default if f.default is not dataclasses.MISSING else (
            f.default_factory() if f.default_factory is not dataclasses.MISSING else dataclasses.MISSING)
        if f.name not in described and value != default:
            extra.append((Code(f"{f.name}: {_shown(value)}"),))
    return inline(lead, joined(extra)) if extra else ()
