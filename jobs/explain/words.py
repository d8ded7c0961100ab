"""A ruleset's SQL in plain words, beside (never instead of) the SQL itself.

The translation is mechanical and only where it is safe: boolean structure (AND, OR, NOT, with NOT pushed inward by
De Morgan's laws, which hold in SQL's three-valued logic too), comparisons, IS [NOT] NULL, IN, BETWEEN, LIKE,
arithmetic, `${name}` (the ruleset's value, with the value), the engine's names (`quarantine`, `match.*`, `dup.*`,
`counterpart.<column>`, a lookup's `<name>.found`) and a few functions whose meaning is one phrase (coalesce, abs,
beyond_tolerance, array_contains, datediff, ...). Anything else (CASE, concat, a lambda) stays as its exact SQL, set
as code inside the sentence, so the words never claim more than the SQL says.

Example::

    condition_words("quarantine IS NULL AND NOT tariff.found", context)
    # Words('all', parts=(the record is not quarantined, the tariff lookup finds no row))
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal

from jobs.explain.blocks import Code, Inline, Span, inline, joined
from jobs.explain.sqlparse import Node, SqlSyntax, parse
from transforms.engine.spec import Tolerance

CYCLE = {"cycle.start": "the cycle start", "cycle.end": "the cycle end", "cycle.close": "the cycle close",
         "cycle.cutoff": "the cycle cutoff", "cycle.id": "the cycle id"}
ENGINE_NAMES = {
    "quarantine": "the quarantine reason",
    "match.stage": "the match stage",
    "match.rank": "the match rank",
    "match.id": "the matched record's id",
    "match.key": "the matched record's key",
    "match.hash": "the matched record's payload hash",
    "match.confidence": "the match confidence",
    "match.ambiguous": "the ambiguity note",
    "match.further": "the number of further matches",
    "match.further_ties": "the number of matched records it fits equally well",
    "dup.copy": "the copy flag",
    "dup.of_id": "its original's id",
    "dup.by": "what it shares with its original (id or content)",
}
NULL_TESTS = {   # (name, IS NOT NULL) -> words
    ("quarantine", True): "the record is quarantined",
    ("quarantine", False): "the record is not quarantined",
    ("match.stage", True): "the record is matched (by some stage)",
    ("match.stage", False): "the record is not matched",
    ("match.ambiguous", True): "the record's best candidates tie (ambiguous)",
    ("match.ambiguous", False): "the record's match is not ambiguous",
}
FLAGS = {"dup.copy": ("the record is a copy of an earlier record", "the record is not a copy")}
OPS = {"=": "is", "==": "is", "<>": "is not", "!=": "is not", "<": "is less than", "<=": "is at most",
       ">": "is more than", ">=": "is at least"}
TIME_OPS = {"<": "is before", "<=": "is at or before", ">": "is after", ">=": "is at or after"}
FLIP = {"=": "<>", "==": "<>", "<>": "=", "!=": "=", "<": ">=", ">=": "<", ">": "<=", "<=": ">"}
ARITH = {"+": "plus", "-": "minus", "*": "times", "/": "divided by", "%": "modulo", "||": "followed by"}
MOSTLY = 0.6
TIME_FUNCTIONS = {"to_date", "date_sub", "date_add", "to_timestamp", "current_timestamp", "current_date"}


@dataclass(frozen=True)
class Words:
    """A condition in words: a phrase, or all / any of several conditions."""

    kind: str                       # phrase | all | any
    text: Inline = ()
    parts: tuple[Words, ...] = ()


@dataclass(frozen=True)
class Context:
    """What a SQL text's names mean where it is written: the ruleset's parameters, the control point's tolerance and
    lookups; `rule` is set for a decision rule's condition (`true` there means "every record left")."""

    params: Mapping[str, object]
    tolerance: Tolerance | None = None
    lookups: frozenset[str] = field(default_factory=frozenset)
    rule: bool = False


def value_text(value: object) -> str:
    """A parameter's value, short: 5, 0.02, 'daily', [AGENT, SUPERVISOR], a table of 5 entries."""
    if isinstance(value, tuple):
        return "[" + ", ".join(value_text(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return f"a table of {len(value)} entries"
    if isinstance(value, str):
        return repr(value)
    return str(value)


def percent(rate: Decimal) -> str:
    return f"{(rate * 100).normalize():f} %"


def phrase(*parts: Span | Inline) -> Words:
    return Words("phrase", inline(*parts))


class _Translator:
    def __init__(self, text: str, ctx: Context) -> None:
        self.text, self.ctx = text, ctx
        self.raw_chars = 0          # how much of the text the words keep as code (see `mostly_code`)

    def raw(self, n: Node) -> Inline:
        self.raw_chars += n.end - n.start
        return (Code(self.text[n.start:n.end]),)

    def mostly_code(self) -> bool:
        """Most of the text stayed SQL (a CASE with a cast around it): the words would add nothing to the SQL."""
        return self.raw_chars > MOSTLY * len(self.text.strip())

    # ------------------------------------------------------------------------------------------------ values
    def value(self, n: Node) -> Inline:
        kind = n.kind
        if kind == "group":
            return self.value(n.children[0])
        if kind == "name":
            return self.name(n)
        if kind == "param":
            return self.param(n.value)
        if kind in ("str", "num"):
            return (Code(n.value),) if kind == "str" else (n.value,)
        if kind == "bool":
            return (n.value,)
        if kind == "null":
            return ("nothing (null)",)
        if kind == "neg":
            return inline("minus ", self.operand(n.children[0]))
        if kind == "arith":
            return inline(self.operand(n.children[0]), f" {ARITH[n.value]} ", self.operand(n.children[1]))
        if kind == "cast":
            return inline(self.value(n.children[0]), " (as ", Code(n.value), ")")
        if kind == "interval":
            amount, unit = self.value(n.children[0]), n.value.lower().rstrip("s")
            return inline(amount, f" {unit}" if amount == ("1",) else f" {unit}s")
        if kind == "call":
            return self.call(n)
        if kind == "field":
            return inline("the ", Code(n.value), " of ", self.value(n.children[0]))
        if kind in ("cmp", "and", "or", "not", "isnull", "istrue", "in", "between", "like"):
            return as_inline(self.cond(n))
        return self.raw(n)

    def operand(self, n: Node) -> Inline:
        """A value inside arithmetic: parenthesised where it is arithmetic itself, so 'a minus (b times c)'."""
        inner = n.children[0] if n.kind == "group" else n
        words = self.value(inner)
        return inline("(", words, ")") if inner.kind == "arith" else words

    def name(self, n: Node) -> Inline:
        head, rest = n.path[0], n.path[1:]
        if n.value in ENGINE_NAMES:
            return (ENGINE_NAMES[n.value],)
        if head == "counterpart" and rest:
            return ("the counterpart's ", Code(".".join(rest)))
        if head in self.ctx.lookups and rest:
            if rest == ("found",):
                return ("whether the ", Code(head), " lookup finds a row")
            return ("the ", Code(head), " lookup's ", Code(".".join(rest)))
        return (Code(n.value),)

    def param(self, name: str) -> Inline:
        if name in CYCLE:
            return (CYCLE[name],)
        if name.startswith("tolerance.") and self.ctx.tolerance is not None:
            value = getattr(self.ctx.tolerance, name.split(".", 1)[1], None)
            return (f"the tolerance's {name.split('.', 1)[1]} ({value})",)
        if name in self.ctx.params:
            value = self.ctx.params[name]
            plain = isinstance(value, int | Decimal | float | Mapping)     # a table: "a table of 5 entries"
            shown: Inline = (value_text(value),) if plain else (Code(value_text(value)),)
            return inline("the ruleset's ", Code(name), " (", shown, ")")
        return (Code("${" + name + "}"),)

    def call(self, n: Node) -> Inline:
        f, args = n.value, n.children
        v = [self.value(a) for a in args]
        if f == "coalesce" and len(args) == 2:
            return inline(v[0], " (or ", v[1], " where it is missing)")
        if f == "coalesce" and len(args) > 2:
            return inline("the first present of ", joined(v, last=" and "))
        if f in ("greatest", "least") and len(args) >= 2:
            word = {"greatest": ("greater", "greatest"), "least": ("smaller", "smallest")}[f][len(args) > 2]
            return inline(f"the {word} of ", joined(v, last=" and "))
        one = {"abs": ("the absolute value of ", ""), "to_date": ("the date of ", ""), "upper": ("", " in upper case"),
               "lower": ("", " in lower case"), "trim": ("", " without surrounding spaces"),
               "ceil": ("", " rounded up"), "floor": ("", " rounded down"), "sum": ("the sum of ", ""),
               "min": ("the smallest ", ""), "max": ("the largest ", ""), "avg": ("the average of ", ""),
               "size": ("the number of elements of ", ""), "map_values": ("the entries of ", ""),
               "round": ("", " rounded")}
        if f in one and len(args) == 1:
            return inline(one[f][0], v[0], one[f][1])
        if f == "round" and len(args) == 2:
            return inline(v[0], " rounded to ", v[1], " decimal places")
        if f in ("date_sub", "date_add") and len(args) == 2:
            days = " day " if v[1] == ("1",) else " days "
            return inline(v[1], days, "before " if f == "date_sub" else "after ", v[0])
        if f == "datediff" and len(args) == 2:
            return inline("the number of days from ", v[1], " to ", v[0])
        if f in ("try_element_at", "element_at") and len(args) == 2:
            return inline("the entry for ", v[1], " in ", v[0])
        if f == "nullif" and len(args) == 2:
            return inline(v[0], " (missing where it is ", v[1], ")")
        if f == "count":
            if len(args) == 1 and (args[0].kind == "star" or (args[0].kind == "num" and not n.negated)):
                return ("the number of rows",)
            if len(args) == 1:
                return inline("the number of distinct " if n.negated else "the number of present ", v[0])
        if f in ("beyond_tolerance", "array_contains"):
            return as_inline(self.cond(n))
        return self.raw(n)

    # ------------------------------------------------------------------------------------------------ conditions
    def is_time(self, n: Node) -> bool:
        if n.kind == "param":
            return n.value in CYCLE and n.value != "cycle.id"
        if n.kind == "interval":
            return True
        if n.kind == "call" and n.value in TIME_FUNCTIONS:
            return True
        return n.kind in ("arith", "group", "cast") and any(self.is_time(c) for c in n.children)

    def cond(self, n: Node) -> Words:
        kind = n.kind
        if kind == "group":
            return self.cond(n.children[0])
        if kind in ("and", "or"):
            parts: list[Words] = []
            for child in n.children:
                w = self.cond(child)
                parts.extend(w.parts if w.kind == ("all" if kind == "and" else "any") else (w,))
            return Words("all" if kind == "and" else "any", parts=tuple(parts))
        if kind == "not":
            return self.negate(n.children[0])
        return self.predicate(n, negated=False)

    def negate(self, n: Node) -> Words:
        if n.kind == "group":
            return self.negate(n.children[0])
        if n.kind == "not":
            return self.cond(n.children[0])
        if n.kind in ("and", "or"):     # De Morgan: exact in three-valued logic too
            parts = [self.negate(c) for c in n.children]
            return Words("any" if n.kind == "and" else "all", parts=tuple(parts))
        return self.predicate(n, negated=True)

    def predicate(self, n: Node, negated: bool) -> Words:
        kind, c = n.kind, n.children
        if kind == "cmp":
            op = FLIP.get(n.value, n.value) if negated else n.value
            if op == "<=>":
                verb = " is not the same as " if negated else " is the same as "
                return phrase(self.value(c[0]), verb, self.value(c[1]), " (a missing value counts as a value)")
            words = TIME_OPS.get(op) if self.is_time(c[0]) or self.is_time(c[1]) else None
            return phrase(self.value(c[0]), f" {words or OPS[op]} ", self.value(c[1]))
        if kind == "isnull":
            present = n.negated != negated
            special = NULL_TESTS.get((c[0].value, present)) if c[0].kind == "name" else None
            if special is not None:
                return phrase(special)
            return phrase(self.value(c[0]), " is present" if present else " is missing")
        if kind == "istrue":
            is_it = n.negated == negated
            return phrase(self.value(c[0]), " is " if is_it else " is not ", n.value.lower())
        if kind == "in":
            verb = " is not one of " if n.negated != negated else " is one of "
            return phrase(self.value(c[0]), verb, joined([self.value(x) for x in c[1:]], last=" or "))
        if kind == "between":
            verb = " is not between " if n.negated != negated else " is between "
            return phrase(self.value(c[0]), verb, self.value(c[1]), " and ", self.value(c[2]))
        if kind == "like":
            verb = " does not match the pattern " if n.negated != negated else " matches the pattern "
            return phrase(self.value(c[0]), verb, self.value(c[1]))
        if kind == "bool":
            holds = (n.value == "true") != negated
            if self.ctx.rule and holds:
                return phrase("always: every record no earlier rule decided")
            return phrase("always" if holds else "never")
        if kind == "name":
            return self.flag(n, negated)
        if kind == "call" and n.value == "beyond_tolerance" and len(c) == 2:
            return phrase(self.value(c[0]), " is within tolerance of " if negated else " is beyond tolerance of ",
                          self.value(c[1]), self.tolerance_note(negated))
        if kind == "call" and n.value == "array_contains" and len(c) == 2:
            return phrase(self.value(c[0]), " does not contain " if negated else " contains ", self.value(c[1]))
        if kind == "call" and n.value == "coalesce" and len(c) == 2 and c[1].kind == "bool":
            inner = self.negate(c[0]) if negated else self.cond(c[0])
            default = (c[1].value == "true") != negated
            return phrase(as_inline(inner), f" ({'true' if default else 'false'} where it cannot be told)")
        if negated:
            return phrase("it is not the case that ", self.value(n))
        return phrase(self.value(n), " holds")

    def flag(self, n: Node, negated: bool) -> Words:
        """A boolean name: the engine's copy flag, a lookup's `found`, or a column / let holding true or false."""
        if n.value in FLAGS:
            return phrase(FLAGS[n.value][negated])
        head, rest = n.path[0], n.path[1:]
        if head in self.ctx.lookups and rest == ("found",):
            return phrase("the ", Code(head), " lookup finds no row" if negated else " lookup finds a row")
        return phrase(self.name(n), " does not hold" if negated else " holds")

    def tolerance_note(self, within: bool) -> Inline:
        t = self.ctx.tolerance
        if t is None:
            return ()
        verb = "is at most" if within else "exceeds"
        return (f" (its absolute value {verb} the greater of {t.abs} and {percent(t.rel)} of the reference's)",)


def as_inline(words: Words) -> Inline:
    """A condition as one sentence: nested groups in parentheses, 'either ... or ...' for any."""
    if words.kind == "phrase":
        return words.text
    parts = [as_inline(p) if p.kind == "phrase" else inline("(", as_inline(p), ")") for p in words.parts]
    if words.kind == "all":
        return joined(parts, sep=", ", last=" and ") if len(parts) > 2 else joined(parts, sep=" and ")
    return inline("either ", joined(parts, sep=", ", last=" or ") if len(parts) > 2 else joined(parts, sep=" or "))


def _only_sql(words: Inline, text: str) -> bool:
    """The words would only repeat the SQL (the whole text kept as code): say nothing rather than that."""
    return words == (Code(text.strip()),)


BOOLEAN = {"cmp", "and", "or", "not", "isnull", "istrue", "in", "between", "like", "bool"}
BOOLEAN_CALLS = {"beyond_tolerance", "array_contains"}


def _boolean(node: Node) -> bool:
    """Whether an expression is a condition by its form (a let may be a value or a condition)."""
    while node.kind == "group":
        node = node.children[0]
    if node.kind == "call" and node.value == "coalesce" and len(node.children) == 2:
        return node.children[1].kind == "bool" or _boolean(node.children[0])
    return node.kind in BOOLEAN or (node.kind == "call" and node.value in BOOLEAN_CALLS)


def _translate(text: str, ctx: Context, as_condition: bool | None) -> Words | None:
    """`text` in words, as a condition, a value, or (None) whichever its form says; None where the text cannot be
    read, the words would only be its SQL, or most of it stays SQL anyway."""
    try:
        node = parse(text)
    except SqlSyntax:
        return None
    translator = _Translator(text, ctx)
    condition = _boolean(node) if as_condition is None else as_condition
    words = translator.cond(node) if condition else Words("phrase", translator.value(node))
    if translator.mostly_code() or (words.kind == "phrase" and _only_sql(words.text, text)):
        return None
    return words


def condition_words(text: str, ctx: Context) -> Words | None:
    """`text` (a boolean SQL expression) in words; None where it cannot be read or the words would be its SQL."""
    return _translate(text, ctx, as_condition=True)


def value_words(text: str, ctx: Context) -> Inline | None:
    """`text` (a SQL value: an exposure, a let) in words; None where it cannot be read or would be its SQL."""
    words = _translate(text, ctx, as_condition=False)
    return None if words is None else words.text


def sql_words(text: str, ctx: Context) -> Words | None:
    """`text` in words whether it is a condition or a value (a let, an exposure); None as for the two above."""
    return _translate(text, ctx, as_condition=None)
