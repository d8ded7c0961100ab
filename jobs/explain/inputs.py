"""The inputs of a ruleset, explained: which table, which rows of a cycle, identity and the original among copies,
phones, derived columns, amounts, lineage, and the order in which a side quarantines a record."""

from __future__ import annotations

from jobs.explain.blocks import Block, Code, Heading, Inline, Item, Items, Para, Sql, codes, inline
from jobs.explain.common import anchor, context, input_link, short_words, sql_with_words, undescribed
from jobs.ruleset import Ruleset
from transforms.engine.spec import Input, SideSpec


def cycle_words(inp: Input) -> Inline:
    """Which rows of the input belong to a cycle (transforms/engine/prepare.py `in_side`)."""
    c = inp.cycle
    if c is None:
        return ("every row, whatever the cycle (a snapshot)",)
    if c.by is not None:
        text = inline("rows whose ", Code(c.by), " is the cycle")
        if c.time:
            return inline(text, "; a row whose ", Code(c.by), " is missing is placed by its ", Code(c.time),
                          " (in the cycle's bounds), or is QUARANTINED where that is missing too")
        return inline(text, "; a row whose ", Code(c.by), " is missing is QUARANTINED")
    assert c.active is not None
    frm, to = c.active
    return ("rows active in the cycle: ", Code(frm), " before the cycle end and ", Code(to),
            " missing or not before the cycle start (a missing ", Code(frm), " is QUARANTINED)")


def input_facts(rs: Ruleset, inp: Input, brief: bool = False) -> list[Item]:
    """What an input is, as list items; `brief` (inside a side) leaves out derived columns and lineage details."""
    ctx = context(rs)
    facts = [Item(inline("Rows of the cycle: ", cycle_words(inp)))]
    if inp.layouts:
        facts.append(Item(("Built by the run from the conf's ", Code(inp.layouts), " layouts (their rate decks), "
                           "not read from a Delta table",)))
    if inp.filter:
        facts.append(Item(inline("Only rows where ", short_words(inp.filter, ctx),
                                 " (a row where this cannot be told is kept, and quarantined by the required columns)"),
                          () if brief else (Sql(inp.filter),)))
    if inp.id:
        order = inline(" (copies of one id: the first in order ", codes(inp.order), " is the original)") \
            if inp.order else ()
        facts.append(Item(inline("Record id ", Code(inp.id), order)))
    if inp.amount:
        facts.append(Item(inline("Amount ", Code(inp.amount),
                                 (", currency ", Code(inp.currency)) if inp.currency else ())))
    if inp.arrival:
        facts.append(Item(("Arrival time ", Code(inp.arrival), " (the run's watermark)")))
    if inp.phones:
        facts.append(Item(inline("Phone columns normalised to E.164: ",
                                 codes([f"{p} -> {p}_e164" for p in inp.phones]),
                                 " (shown masked wherever a person reads them)")))
    if inp.lineage:
        facts.append(Item(("Lineage: ", Code(inp.lineage.column), " names its parent record in ",
                           input_link(inp.lineage.parent), "; the record is laid out in its parent's account bucket")))
    for col, (other, other_col) in inp.within.items():
        facts.append(Item(("Only rows whose ", Code(col), " is among the values of ", input_link(other), "'s ",
                           Code(other_col), " (the others are out of scope)")))
    if undescribed(inp):
        facts.append(Item(undescribed(inp, "Also declared for this input: ")))
    if inp.columns and not brief:
        facts.append(Item(("Derived columns:",), (Items(tuple(Item((Code(name),), sql_with_words(sql, ctx))
                                                              for name, sql in inp.columns.items())),)))
    elif inp.columns:
        facts.append(Item(inline("Derived columns: ", codes(list(inp.columns)), " (see ", input_link(inp.name), ")")))
    return facts


def quarantine_order(rs: Ruleset, inp: Input, side: SideSpec) -> list[Item]:
    """The side's quarantine reasons in the order prepare.quarantine_reason tries them."""
    out: list[Item] = []
    if inp.cycle is not None and inp.cycle.by is not None:
        out.append(Item((Code(f"null {inp.cycle.by}"), ": no cycle column")))
    out += [Item((Code(f"null {name}"), ": a required column is missing")) for name in side.required]
    if side.unique_id and inp.id:
        out.append(Item((Code(f"repeated {inp.id}"), ": a copy of an id after the first")))
    for check in rs.checks.get(inp.name, ()):
        if check.needs is None or check.needs in side.required:
            out.append(Item(inline(Code(check.reason), ": ", short_words(check.fails, context(rs))),
                            (Sql(check.fails),)))
    return out


def inputs_section(rs: Ruleset) -> list[Block]:
    out: list[Block] = [Heading(2, ("Inputs",), "inputs"),
                        Para(("Every table the ruleset reads, under the ruleset's name for it.",))]
    for inp in rs.inputs.values():
        facts = [Item(("Table ", Code(inp.table), ", system ", Code(inp.system),
                       *((", contract schema ", Code(inp.schema)) if inp.schema else ())))]
        facts += input_facts(rs, inp)
        checks = rs.checks.get(inp.name, ())
        if checks:
            facts.append(Item(("Quarantine checks, in order (each runs on the sides that require its column, or "
                               "on every side where it names none):",),
                              (Items(tuple(Item(inline(Code(c.reason), ": ", short_words(c.fails, context(rs)),
                                                       (" (needs ", Code(c.needs), ")") if c.needs else ()),
                                                (Sql(c.fails),)) for c in checks), ordered=True),)))
        out += [Heading(3, (Code(inp.name),), anchor("input", inp.name)), Items(tuple(facts))]
    return out
