"""The decision of a control point, explained: each side's ordered rules (condition in words beside its SQL, outcome
and its policy, exposure, reason), the outcome policies, output columns the ruleset sets, exemptions, reports and
alerts."""

from __future__ import annotations

from jobs.explain.blocks import (
    Block,
    Box,
    Code,
    Heading,
    Inline,
    Item,
    Items,
    Link,
    Para,
    Sql,
    Table,
    Tag,
    codes,
    inline,
)
from jobs.explain.common import (
    EXPOSURE_CLASS_WORDS,
    anchor,
    context,
    input_link,
    let_names_in,
    policy_words,
    short_words,
    sql_with_words,
    undescribed,
    words_blocks,
)
from jobs.explain.words import condition_words, percent
from jobs.ruleset import Ruleset
from transforms.engine.spec import ControlPoint, Rule


def decisions(rs: Ruleset, cp: ControlPoint) -> list[Block]:
    out: list[Block] = [Heading(3, ("Decision rules",), anchor("cp", cp.id, "decide")),
                        Para(("The rules of a side are tried in order; the first whose condition holds gives the "
                              "record its outcome (first match wins). A condition that compares a missing value "
                              "does not hold.",))]
    for side, rules in cp.decide.items():
        inp = cp.sides[side].input
        out += [Heading(4, (f"{side} records (", Code(inp), ")"), anchor("cp", cp.id, "decide", side)),
                _rule_table(rs, cp, rules)]
        out += [_rule(rs, cp, side, i, rule) for i, rule in enumerate(rules, start=1)]
    return out


def _rule_table(rs: Ruleset, cp: ControlPoint, rules: tuple[Rule, ...]) -> Table:
    rows = []
    for i, rule in enumerate(rules, start=1):
        p = cp.outcomes[rule.outcome]
        owner: Inline = (Code(p.owner), f" ({rs.owners[p.owner]} d)") if p.case and p.owner else ("",)
        rows.append(((str(i),), (Link(rule.name, anchor("rule", cp.id, rule.name, str(i))),),
                     (Tag(rule.outcome, "outcome"),), ("yes" if p.case else "no",),
                     (Tag(p.severity, p.severity),) if p.case and p.severity else ("",), owner,
                     (Code(p.exposure_class),) if p.case and p.exposure_class else ("",),
                     _exposure_cell(rule), (Code(p.correction),) if p.correction else ("",)))
    return Table(("#", "rule", "outcome", "case", "severity", "owner (SLA)", "exposure class", "exposure",
                  "correction"), tuple(rows))


def _exposure_cell(rule: Rule) -> Inline:
    if rule.exposure is not None:
        return (Code(rule.exposure),)
    if rule.priced_by is not None:
        return ("priced by ", Code(rule.priced_by))
    return ("0",)


def _rule(rs: Ruleset, cp: ControlPoint, side: str, i: int, rule: Rule) -> Box:
    ctx = context(rs, cp, rule=True)
    policy = cp.outcomes[rule.outcome]
    blocks: list[Block] = [
        Heading(5, (f"{i}. ", Code(rule.name), " gives ", Tag(rule.outcome, "outcome")),
                anchor("rule", cp.id, rule.name, str(i))),
        *words_blocks(condition_words(rule.when, ctx), "When"),
        Sql(rule.when),
    ]
    names = let_names_in(cp, side, rule.when)
    if names:
        lets = cp.let[side]
        blocks += [Para(("Where (", Link("let names", anchor("cp", cp.id, "let", side)), "):")),
                   Items(tuple(Item(inline(Code(n), ": ", short_words(lets[n], ctx))) for n in names))]
    blocks.append(Para(inline("Outcome: ", policy_words(rule.outcome, policy, rs.owners), ".")))
    if undescribed(rule):
        blocks.append(Para(undescribed(rule, "Also declared for this rule: ")))
    if rule.exposure is not None:
        blocks += [Para(("Exposure (signed money at stake, of the outcome's exposure class):",)),
                   *sql_with_words(rule.exposure, ctx)]
    elif rule.priced_by is not None:
        blocks.append(Para(("Exposure: the amount the ", Code(rule.priced_by), " lookup prices the record at (",
                            Code(f"{rule.priced_by}.amount"), "); a record it cannot price is marked unpriced, "
                            "exposure 0.")))
    else:
        blocks.append(Para(("Exposure: 0.",)))
    if rule.reason_code is not None:
        blocks += [Para(("Reason code (", Code("reason_code"), "):",)), Sql(rule.reason_code)]
    if rule.reason is not None:
        blocks += [Para(("Reason (", Code("reason"), ", the sentence on the outcome row):",)), Sql(rule.reason)]
    return Box("rule", tuple(blocks))


def outcomes(rs: Ruleset, cp: ControlPoint) -> list[Block]:
    given: dict[str, list[str]] = {}
    for side, rules in cp.decide.items():
        for rule in rules:
            given.setdefault(rule.outcome, []).append(f"{side} {rule.name}")
    if cp.kind == "aggregate":
        given = {o: [part] for part, o in (("beyond tolerance", cp.beyond), ("within tolerance", cp.within)) if o}
    rows = []
    for name, p in cp.outcomes.items():
        sla = f"{rs.owners[p.owner]} days" if p.owner is not None and p.owner in rs.owners else ""
        rows.append(((Tag(name, "outcome"),), ("yes" if p.case else "no",),
                     (Tag(p.severity, p.severity),) if p.severity else ("",),
                     (Code(p.owner),) if p.owner else ("",), (sla,),
                     (Code(p.exposure_class),) if p.exposure_class else ("",),
                     (Code(p.correction),) if p.correction else ("",),
                     ("yes" if p.one_case_per_pair else "",), codes(given.get(name, []))))
    classes = sorted({p.exposure_class for p in cp.outcomes.values() if p.exposure_class})
    legend = Items(tuple(Item((Code(c), ": ", EXPOSURE_CLASS_WORDS.get(c, ""))) for c in classes))
    return [Heading(3, ("Outcomes and their policies",), anchor("cp", cp.id, "outcomes")),
            Table(("outcome", "case", "severity", "owner", "SLA", "exposure class", "correction",
                   "one case per pair", "given by"), tuple(rows)),
            *((legend,) if classes else ())]


def record_columns(rs: Ruleset, cp: ControlPoint) -> list[Block]:
    rows = tuple(((Code(side),), (Code(col),), (Code(sql),)) for side, cols in cp.record.items()
                 for col, sql in cols.items())
    if not rows:
        return []
    return [Heading(3, ("Output columns set by the ruleset",), anchor("cp", cp.id, "record")),
            Para(("These record_outcome columns are computed as written here instead of by default:",)),
            Table(("side", "column", "SQL"), rows)]


def exemptions(cp: ControlPoint) -> list[Block]:
    if not cp.exemptions:
        return []
    items = tuple(Item(inline(Code(e.id), ": a LEFT record whose ", Code(e.column), " is one of ", codes(e.values),
                              *((" and whose outcome is one of ", codes(e.outcomes)) if e.outcomes else ()),
                              " keeps its outcome, raises no case, and carries ", Code(e.id), " in ",
                              Code("exemption"), "."))
                  for e in cp.exemptions)
    return [Heading(3, ("Exemptions",), anchor("cp", cp.id, "exemptions")), Items(items)]


def reports(cp: ControlPoint) -> list[Block]:
    if not cp.reports:
        return []
    items = tuple(Item(inline(Code(r.kind), ": rows of ", input_link(r.input), " behind the outcomes ",
                              codes(r.outcomes), "; their owner is the owner of ", Tag(r.owner_of, "outcome"), "."))
                  for r in cp.reports)
    return [Heading(3, ("Reports this control point feeds",), anchor("cp", cp.id, "reports")), Items(items)]


def figures(cp: ControlPoint) -> list[Block]:
    """The summary figures a control point declares (`figures`): what a run counts and sums beside the outcomes."""
    if not cp.figures:
        return []
    items = tuple(Item(inline(Code(f.name), ": per ", codes(f.by), " of the ", f.side, " outcome rows, their count",
                              *((" and the sum of ", Code(f.sum)) if f.sum is not None else ()),
                              *((" (totals per currency: amounts in two currencies are never added)",)
                                if f.sum is not None and "currency" in f.by else ()),
                              " (in control_run's figures, the run summary and the report)."))
                  for f in cp.figures)
    return [Heading(3, ("Figures in the summary",), anchor("cp", cp.id, "figures")), Items(items)]


def alerts(rs: Ruleset, cp: ControlPoint) -> list[Block]:
    if not cp.alerts:
        return []
    out: list[Block] = [Heading(3, ("Alerts",), anchor("cp", cp.id, "alerts"))]
    ctx = context(rs, cp)
    for a in cp.alerts:
        source: Inline = (" (the ruleset's ", Code(a.threshold_param), ")") if a.threshold_param else ()
        out += [Para(inline("Alert ", Code(a.metric), ": per value of the ", a.side, " records' scope, the share of "
                            "its records whose outcome row is counted; above ", f"{a.threshold} ({percent(a.threshold)})",
                            source, ", a run_alert row is written and printed.")),
                Para(("Scope:",)), *sql_with_words(a.scope, ctx),
                Para(("Counted:",)), *sql_with_words(a.counts, ctx)]
        if a.message:
            out.append(Para(("Message: ", Code(a.message))))
    return out
