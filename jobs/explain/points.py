"""One control point of a ruleset, explained: its sides, lookups, match stages, tolerance and let names, then its
decision (jobs/explain/decisions.py) for a record control point; its sides, groups, measure, tolerance and outcomes for
an aggregate one."""

from __future__ import annotations

from jobs.explain.blocks import (
    Block,
    Code,
    Heading,
    Inline,
    Item,
    Items,
    Para,
    Table,
    Tag,
    codes,
    inline,
    joined,
    prose,
)
from jobs.explain.common import (
    anchor,
    context,
    cp_link,
    input_link,
    sentence,
    short_words,
    sql_with_words,
    undescribed,
)
from jobs.explain.decisions import alerts, decisions, exemptions, figures, outcomes, record_columns, reports
from jobs.explain.inputs import input_facts, quarantine_order
from jobs.explain.words import percent
from jobs.ruleset import Ruleset
from transforms.engine.match import first_pick
from transforms.engine.spec import ControlPoint, ExactStage, FuzzyStage, Lookup, Tolerance


def control_point(rs: Ruleset, cp: ControlPoint) -> tuple[Block, ...]:
    head = Heading(2, ("Control point ", Code(cp.id)), anchor("cp", cp.id))
    body = _record(rs, cp) if cp.kind == "record" else _aggregate(rs, cp)
    return (head, *body)


# ------------------------------------------------------------------------------------------------------- record
def _record(rs: Ruleset, cp: ControlPoint) -> list[Block]:
    left, right = cp.left, cp.right
    if right is None:
        lead = sentence("Checks each record of ", (input_link(left.input),), " on its own (one side, LEFT).")
    else:
        lead = sentence("Reconciles the records of ", (input_link(left.input),), " (LEFT) with those of ",
                        (input_link(right.input),), " (RIGHT). Every record of each side gets exactly one outcome.")
    out: list[Block] = [lead]
    out += _sides(rs, cp)
    if cp.lookups:
        out += [Heading(3, ("Lookups (evidence joined to a record)",), anchor("cp", cp.id, "lookups")),
                Items(tuple(_lookup(rs, cp, lk) for lk in cp.lookups.values()))]
    out += _stages(rs, cp)
    if cp.tolerance is not None:
        out += [Heading(3, ("Tolerance",), anchor("cp", cp.id, "tolerance")), _tolerance(cp.tolerance)]
    out += _lets(rs, cp)
    out += decisions(rs, cp)
    if undescribed(cp):
        out.append(Para(undescribed(cp, "Also declared for this control point: ")))
    out += outcomes(rs, cp)
    out += record_columns(rs, cp)
    out += exemptions(cp)
    out += reports(cp)
    out += alerts(rs, cp)
    out += figures(cp)
    return out


def _sides(rs: Ruleset, cp: ControlPoint) -> list[Block]:
    out: list[Block] = [Heading(3, ("Sides",), anchor("cp", cp.id, "sides"))]
    for side, spec in cp.sides.items():
        inp = rs.inputs[spec.input]
        facts = [Item(("Input ", input_link(inp.name), ", read from table ", Code(inp.table), " (system ",
                       Code(inp.system), ")"))]
        facts += input_facts(rs, inp, brief=True)
        if spec.required:
            facts.append(Item(inline("Required columns (a record missing one is QUARANTINED): ",
                                     codes(spec.required))))
        if spec.unique_id and inp.id:
            facts.append(Item(("Ids are unique: a repeated ", Code(inp.id), " is QUARANTINED for every copy after "
                               "the first",)))
        if spec.describe:
            facts.append(Item(("What describes a record in the outputs:",),
                              (Table(("output column", "SQL"),
                                     tuple(((Code(k),), (Code(v),)) for k, v in spec.describe.items())),)))
        if undescribed(spec):
            facts.append(Item(undescribed(spec, "Also declared for this side: ")))
        reasons = quarantine_order(rs, inp, spec)
        if reasons:
            facts.append(Item(("A record is QUARANTINED with the first of these reasons that holds:",),
                              (Items(tuple(reasons), ordered=True),)))
        out += [Heading(4, (f"{side}: ", Code(inp.name)), anchor("cp", cp.id, side)), Items(tuple(facts))]
    return out


def _lookup(rs: Ruleset, cp: ControlPoint, lk: Lookup) -> Item:
    name, source = Code(lk.name), input_link(lk.input)
    on = [(Code(k), " = ", Code(v)) for k, v in lk.on.items()]
    on_words: Inline = inline(*[inline(part, (" and ",) if i < len(on) - 1 else ()) for i, part in enumerate(on)])
    if lk.kind == "key":
        text = inline(name, ": the rows of ", source, " joined on the record's ", on_words,
                      " (record column = lookup column), aggregated per key; ", Code(f"{lk.name}.found"),
                      " says one exists")
    elif lk.kind == "price":
        text = (name, ": the version of tariff ", Code(lk.by or ""), " (from ", source, ") valid at ",
                Code(lk.at or ""), ", pricing the quantity ", Code(lk.quantity or ""), "; gives ",
                Code("tariff_id"), ", ", Code("tariff_version"), ", ", Code("currency"), ", ", Code("amount"),
                " and ", Code("found"))
    elif lk.kind == "price_list":
        chosen: Inline = (("the lowest tariff_id valid then",) if not lk.map else
                          inline("the tariff the map names per class: ",
                                 codes([f"{k} -> {v}" for k, v in lk.map.items()])))
        text = inline(name, ": the tariff of the record's ", Code(lk.by or ""), " (from ", source, ") valid at ",
                      Code(lk.at or ""), ", ", chosen, ", pricing the quantity ", Code(lk.quantity or ""),
                      "; gives ", Code("amount"), ", ", Code("currency"), " and ", Code("found"))
    else:
        among: Inline = inline(" among rows where ", on_words) if on else ()
        text = inline(name, ": the row of ", source, " whose ", Code(lk.prefix or ""),
                      " is the longest leading part of the digits of the record's ", Code(lk.by or ""), among,
                      " (a row with prefix '' fits every number: a default); ", Code(f"{lk.name}.found"),
                      " says one fits")
    children: list[Block] = []
    if lk.where:
        children += [Para(("Only rows where:",)), *sql_with_words(lk.where, context(rs, cp))]
    if lk.columns:
        children.append(Table(("gives", "SQL"), tuple(((Code(f"{lk.name}.{k}"),), (Code(v),))
                                                      for k, v in lk.columns.items())))
    return Item(text, tuple(children))


def _stages(rs: Ruleset, cp: ControlPoint) -> list[Block]:
    st = cp.stages
    if st.duplicates is None and not st.exact and st.fuzzy is None:
        return []
    left_id = rs.inputs[cp.left.input].id or "id"
    steps: list[Item] = []
    if st.duplicates is not None:
        d = st.duplicates
        by_key = inline("the same ", codes(d.key), " (a record with a missing one shares no key)") if d.key else \
            ("the same ", Code(left_id))
        steps.append(Item(inline(
            "Duplicates (LEFT): a record is a copy when an earlier record has ", by_key,
            ", or the same content (", codes(d.content), "). Earlier means first in the order ", codes(d.order),
            "; the original of a copy is found by following earlier copies to one with none. A copy's match is "
            "its original's.")))
    for i, stage in enumerate(st.exact, start=1):
        steps.append(_exact(rs, cp, i, stage))
    if st.fuzzy is not None:
        steps.append(_fuzzy(st.fuzzy))
    out: list[Block] = [Heading(3, ("Match stages, in order",), anchor("cp", cp.id, "stages")),
                        Items(tuple(steps), ordered=True)]
    if st.exact or st.fuzzy:
        out.append(Para(prose(
            "A RIGHT record linked by an earlier stage is not offered to a later one. `match.rank` 1 is a record's "
            "match; a further RIGHT record of the same LEFT record has rank 2 and on. Equally good candidates are "
            "never split by ids: they are ambiguous (`match.ambiguous` says why).")))
    return out


def _exact(rs: Ruleset, cp: ControlPoint, i: int, stage: ExactStage) -> Item:
    pairs = [inline("its ", Code(r), " equals the LEFT record's ", Code(lft)) for lft, r in
             zip(stage.left, stage.right, strict=True)]
    text: list[Inline] = [(f"Exact stage {i}: a RIGHT record links to a LEFT record when ",),
                          inline(*[inline(p, (" and ",) if j < len(pairs) - 1 else ()) for j, p in enumerate(pairs)]),
                          ("; several RIGHT records of one LEFT record are ranked by ",), codes(stage.order),
                          (" (rank 1 is its match, later ones are further records).",)]
    if stage.unique:
        text.append((" Only a key carried by exactly one LEFT record links (else the RIGHT record is unmatched "
                     "by this stage).",))
    else:
        left = rs.inputs[cp.left.input]
        dups = cp.stages.duplicates
        order = first_pick(stage, left.id, dups is None, cp.left.unique_id,
                           dups.order if dups is not None else left.order)
        if order is not None:
            text.append(inline(" A key carried by several LEFT records links to the first of them by ", codes(order),
                               " (then the record key).") if order else
                        (" A key carried by several LEFT records links to the first of them by the record key.",))
    children: tuple[Block, ...] = ()
    if stage.right_where:
        children = (Para(("Only RIGHT records where:",)), *sql_with_words(stage.right_where, context(rs, cp)))
    return Item(inline(*text), children)


def _fuzzy(fz: FuzzyStage) -> Item:
    when: list[Item] = [Item(inline("they are equal on ", codes(fz.keys), " (two missing values count as equal)")),
                        Item(("their ", Code(fz.time), f" are at most {fz.window_s} s apart"))]
    if fz.alt_time:
        when.append(Item(("or, for a LEFT record that has one, its ", Code(fz.alt_time), " (another instant it may "
                          "have happened at) is at most that far from the RIGHT record's; such a match's confidence "
                          f"is multiplied by {fz.alt_confidence}",)))
    if fz.quantity_left and fz.quantity_right:
        table = Table(("class", "absolute", "relative (of the LEFT quantity)"),
                      tuple(((Code(k),), (str(t.abs),), (percent(t.rel),)) for k, t in fz.tolerances.items()))
        when.append(Item(("their quantities (LEFT ", Code(fz.quantity_left), ", RIGHT ", Code(fz.quantity_right),
                          ") differ by no more than the greater of the absolute and relative tolerance of the LEFT "
                          "record's ", Code(fz.tolerance_by or ""), " (a class not listed: no difference allowed)"),
                         (table,)))
    then = [Item(("Each record pairs one-to-one with its best candidate: the smallest time difference, then the "
                  "smallest quantity difference. Records whose best candidates tie are ambiguous: ids never break "
                  "the tie.",)),
            Item(("Confidence of a fuzzy match: 1 - 0.5 x time difference / window - 0.5 x quantity difference / "
                  "tolerance (at least 0).",))]
    if fz.further:
        then.append(Item(prose("A RIGHT record left over that fits an already matched LEFT record is a further match "
                               "of it (rank 2); where it fits several equally well, `match.further_ties` counts them "
                               "and none is named.")))
    return Item(("Fuzzy stage: a LEFT original and a RIGHT record that no exact stage linked are candidates when "
                 "all of these hold:",), (Items(tuple(when)), Items(tuple(then))))


def _tolerance(t: Tolerance) -> Para:
    return Para(inline(prose("Money compared with `beyond_tolerance(difference, reference)` is beyond tolerance when "
                             f"the difference's absolute value exceeds the greater of {t.abs} (absolute) and "
                             f"{percent(t.rel)} of the reference's absolute value. "),
                       Code("${tolerance.abs}"), f" is {t.abs}, ", Code("${tolerance.rel}"), f" is {t.rel}."))


def _lets(rs: Ruleset, cp: ControlPoint) -> list[Block]:
    if not cp.let:
        return []
    out: list[Block] = [Heading(3, ("Names the rules use (let)",), anchor("cp", cp.id, "let")),
                        Para(("Computed for each record before its rules, in this order (a name may use the ones "
                              "above it).",))]
    for side, lets in cp.let.items():
        items = tuple(Item((Code(name),), sql_with_words(sql, context(rs, cp))) for name, sql in lets.items())
        out += [Heading(4, (f"{side} records",), anchor("cp", cp.id, "let", side)), Items(items)]
    return out


# ---------------------------------------------------------------------------------------------------- aggregate
def _aggregate(rs: Ruleset, cp: ControlPoint) -> list[Block]:
    ctx = context(rs, cp)
    out: list[Block] = [sentence("Compares, per group, the totals of two sides; a group whose difference is beyond "
                                 "tolerance gets ", (Tag(cp.beyond or "", "outcome"),), ", one within it ",
                                 (Tag(cp.within or "", "outcome"),), "."),
                        Heading(3, ("Sides",), anchor("cp", cp.id, "sides"))]
    items = []
    for side, agg in cp.aggregate_sides.items():
        if agg.input is not None:
            children = (Para(("Only rows where:",)), *sql_with_words(agg.where, ctx)) if agg.where else ()
            items.append(Item((f"{side}: the rows of ", input_link(agg.input), " in the cycle"), children))
        else:
            items.append(Item((f"{side}: the outcome rows of ", cp_link(agg.of or ""), f" {agg.side} that took part "
                               "(not quarantined)")))
    out.append(Items(tuple(items)))
    out += [Heading(3, ("Groups",), anchor("cp", cp.id, "groups")),
            Table(("output column", "LEFT", "RIGHT"),
                  tuple(((Code(g),), (Code(ps.get("LEFT", "")),), (Code(ps.get("RIGHT", "")),))
                        for g, ps in cp.group_by.items())),
            Heading(3, ("Measure and tolerance",), anchor("cp", cp.id, "measure"))]
    t = cp.tolerance
    assert t is not None
    if cp.measure == "count":
        out += [Para(("Each side's total is a count per group; a unit is valued at the price below, so amounts and "
                      "the difference are counts times price. The difference is beyond tolerance when the count "
                      f"difference's absolute value exceeds the greater of {t.abs} and {percent(t.rel)} of the LEFT "
                      "count.",)),
                Table(("side", "count"), tuple(((Code(s),), short_words(sql, ctx)) for s, sql in cp.count.items())),
                Para(("Price of one unit:",)), *sql_with_words(cp.price or "", ctx)]
    else:
        out.append(Para(("Each side's total is the sum of its rows' amounts per group (amounts of different groups, "
                         "currencies included, are never added together). The difference (LEFT - RIGHT) is beyond "
                         f"tolerance when its absolute value exceeds the greater of {t.abs} and {percent(t.rel)} of the "
                         "LEFT amount.",)))
    if undescribed(cp):
        out.append(Para(undescribed(cp, "Also declared for this control point: ")))
    out += outcomes(rs, cp)
    return out


def at_a_glance(rs: Ruleset) -> Table:
    """One row per control point: kind, sides, rules, outcomes that raise a case."""
    rows = []
    for cp in rs.control_points.values():
        if cp.kind == "record":
            sides: Inline = inline((input_link(cp.left.input),),
                                   ((" vs ", input_link(cp.right.input)) if cp.right else ()))
            rules = str(sum(len(r) for r in cp.decide.values()))
        else:
            parts = [(input_link(a.input),) if a.input else (cp_link(a.of or ""), f" {a.side}")
                     for a in cp.aggregate_sides.values()]
            sides, rules = inline(parts[0], " vs ", parts[1]), "beyond / within"
        cases = [n for n, p in cp.outcomes.items() if p.case]
        rows.append(((cp_link(cp.id),), (cp.kind,), sides, (rules,),
                     joined([(Tag(n, "outcome"),) for n in cases], sep=" ") or ("none",)))
    return Table(("control point", "kind", "sides", "rules", "outcomes that raise a case"), tuple(rows))
