"""A reader of the Spark SQL expressions rulesets write, as a tree of nodes that keep their source text.

`telco-ra explain` puts a rule's condition into words (jobs/explain/words.py). That needs the condition's structure
(AND/OR/NOT, comparisons, IS NULL, IN, calls), not Spark's analysed plan: the words are written before any data or
session exists, and they must say what the ruleset *wrote* (`coalesce(x, false)`, `${name}`), which an optimised plan
no longer shows. So this is a small recursive-descent parser of the expression forms the rulesets use. It never
guesses: a form it does not know is either kept whole as a `raw` node (its exact text, shown as code in the words)
or, where the text cannot be read at all, a `SqlSyntax` error, and the document then shows the SQL alone.

Example::

    parse("quarantine IS NOT NULL AND match.rank > 1")
    # Node('and', children=(Node('isnull', negated=True, ...), Node('cmp', value='>', ...)))
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

KEYWORDS = {"AND", "OR", "NOT", "IS", "NULL", "TRUE", "FALSE", "IN", "BETWEEN", "LIKE", "RLIKE", "ILIKE", "CASE",
            "WHEN", "THEN", "ELSE", "END", "CAST", "AS", "INTERVAL", "DISTINCT"}
COMPARISONS = ("<=>", "<=", ">=", "<>", "!=", "==", "=", "<", ">")
_TOKEN = re.compile(r"""
    (?P<ws>\s+)
  | (?P<param>\$\{[A-Za-z_][A-Za-z0-9_.]*\})
  | (?P<str>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
  | (?P<quoted>`(?:[^`]|``)*`)
  | (?P<num>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?[A-Za-z]*)
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<op><=>|<=|>=|<>|!=|==|->|\|\||[=<>+\-*/%(),.\[\]])
""", re.VERBOSE)


class SqlSyntax(ValueError):
    """The text is not an expression this reader knows how to read (the document shows its SQL only)."""


@dataclass(frozen=True)
class Token:
    kind: str
    text: str
    start: int
    end: int

    @property
    def upper(self) -> str:
        return self.text.upper() if self.kind == "name" else ""


@dataclass(frozen=True)
class Node:
    """One expression: `kind` says what it is, `value` its operator/name/literal, `children` its operands, and
    `start`/`end` its place in the source text (so an unknown form is shown exactly as written)."""

    kind: str
    start: int
    end: int
    value: str = ""
    children: tuple[Node, ...] = ()
    negated: bool = False
    path: tuple[str, ...] = field(default=())


def tokenize(text: str) -> list[Token]:
    out, i = [], 0
    while i < len(text):
        m = _TOKEN.match(text, i)
        if m is None:
            raise SqlSyntax(f"cannot read {text[i:i + 20]!r}")
        kind = m.lastgroup or ""
        if kind != "ws":
            out.append(Token(kind, m.group(), m.start(), m.end()))
        i = m.end()
    return out


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = tokenize(text)
        self.i = 0

    # ---------------------------------------------------------------------------------------------- helpers
    def peek(self, ahead: int = 0) -> Token | None:
        j = self.i + ahead
        return self.tokens[j] if j < len(self.tokens) else None

    def at_op(self, *ops: str) -> bool:
        t = self.peek()
        return t is not None and t.kind == "op" and t.text in ops

    def at_word(self, *words: str, ahead: int = 0) -> bool:
        t = self.peek(ahead)
        return t is not None and t.upper in words

    def take(self) -> Token:
        t = self.peek()
        if t is None:
            raise SqlSyntax("the expression ends too early")
        self.i += 1
        return t

    def expect_op(self, op: str) -> Token:
        t = self.take()
        if t.kind != "op" or t.text != op:
            raise SqlSyntax(f"expected {op!r}, found {t.text!r}")
        return t

    def expect_word(self, word: str) -> Token:
        t = self.take()
        if t.upper != word:
            raise SqlSyntax(f"expected {word}, found {t.text!r}")
        return t

    def prev_end(self) -> int:
        return self.tokens[self.i - 1].end

    # ---------------------------------------------------------------------------------------------- grammar
    def parse(self) -> Node:
        node = self.expression()
        extra = self.peek()
        if extra is not None:
            raise SqlSyntax(f"unexpected {extra.text!r}")
        return node

    def expression(self) -> Node:
        return self.disjunction()

    def _chain(self, word: str, kind: str, operand: str) -> Node:
        parts = [getattr(self, operand)()]
        while self.at_word(word):
            self.take()
            parts.append(getattr(self, operand)())
        if len(parts) == 1:
            return parts[0]
        return Node(kind, parts[0].start, parts[-1].end, children=tuple(parts))

    def disjunction(self) -> Node:
        return self._chain("OR", "or", "conjunction")

    def conjunction(self) -> Node:
        return self._chain("AND", "and", "negation")

    def negation(self) -> Node:
        if self.at_word("NOT"):
            start = self.take().start
            inner = self.negation()
            return Node("not", start, inner.end, children=(inner,))
        return self.predicate()

    def predicate(self) -> Node:
        left = self.additive()
        if self.at_op(*COMPARISONS):
            op = self.take().text
            right = self.additive()
            return Node("cmp", left.start, right.end, value=op, children=(left, right))
        if self.at_word("IS"):
            self.take()
            negated = bool(self.at_word("NOT") and self.take())
            what = self.take()
            if what.upper not in ("NULL", "TRUE", "FALSE"):
                raise SqlSyntax(f"IS {what.text} is not read")
            kind = "isnull" if what.upper == "NULL" else "istrue"
            return Node(kind, left.start, what.end, value=what.upper, children=(left,), negated=negated)
        negated = False
        if self.at_word("NOT") and self.at_word("IN", "BETWEEN", "LIKE", "RLIKE", "ILIKE", ahead=1):
            self.take()
            negated = True
        if self.at_word("IN"):
            self.take()
            self.expect_op("(")
            items = [self.expression()]
            while self.at_op(","):
                self.take()
                items.append(self.expression())
            end = self.expect_op(")").end
            return Node("in", left.start, end, children=(left, *items), negated=negated)
        if self.at_word("BETWEEN"):
            self.take()
            low = self.additive()
            self.expect_word("AND")
            high = self.additive()
            return Node("between", left.start, high.end, children=(left, low, high), negated=negated)
        if self.at_word("LIKE", "RLIKE", "ILIKE"):
            op = self.take().upper
            pattern = self.additive()
            return Node("like", left.start, pattern.end, value=op, children=(left, pattern), negated=negated)
        if negated:
            raise SqlSyntax("NOT where a predicate was expected")
        return left

    def _binary(self, ops: tuple[str, ...], operand: str) -> Node:
        node: Node = getattr(self, operand)()
        while self.at_op(*ops):
            op = self.take().text
            right = getattr(self, operand)()
            node = Node("arith", node.start, right.end, value=op, children=(node, right))
        return node

    def additive(self) -> Node:
        return self._binary(("+", "-", "||"), "multiplicative")

    def multiplicative(self) -> Node:
        return self._binary(("*", "/", "%"), "unary")

    def unary(self) -> Node:
        if self.at_op("-", "+"):
            t = self.take()
            inner = self.unary()
            return inner if t.text == "+" else Node("neg", t.start, inner.end, children=(inner,))
        return self.postfix(self.primary())

    def postfix(self, node: Node) -> Node:
        while True:
            if self.at_op(".") and node.kind in ("call", "field", "group", "index"):
                self.take()
                name = self.take()
                if name.kind not in ("name", "quoted"):
                    raise SqlSyntax(f"expected a field name after '.', found {name.text!r}")
                node = Node("field", node.start, name.end, value=name.text.strip("`"), children=(node,))
            elif self.at_op("["):
                self.take()
                index = self.expression()
                end = self.expect_op("]").end
                node = Node("index", node.start, end, children=(node, index))
            else:
                return node

    def primary(self) -> Node:
        t = self.take()
        if t.kind == "param":
            return Node("param", t.start, t.end, value=t.text[2:-1])
        if t.kind == "str":
            return Node("str", t.start, t.end, value=t.text)
        if t.kind == "num":
            return Node("num", t.start, t.end, value=t.text)
        if t.kind == "op" and t.text == "(":
            inner = self.expression()
            end = self.expect_op(")").end
            return Node("group", t.start, end, children=(inner,))
        if t.kind == "op" and t.text == "*":
            return Node("star", t.start, t.end)
        if t.kind == "quoted":
            return self.name_path(t, t.text[1:-1].replace("``", "`"))
        if t.kind != "name":
            raise SqlSyntax(f"unexpected {t.text!r}")
        word = t.upper
        if word in ("TRUE", "FALSE"):
            return Node("bool", t.start, t.end, value=word.lower())
        if word == "NULL":
            return Node("null", t.start, t.end)
        if word == "CASE":
            return self.case(t)
        if word == "CAST" and self.at_op("("):
            return self.cast(t)
        if word == "INTERVAL":
            amount = self.unary()
            unit = self.take()
            if unit.kind != "name":
                raise SqlSyntax(f"expected an interval unit, found {unit.text!r}")
            return Node("interval", t.start, unit.end, value=unit.text.upper(), children=(amount,))
        if word in KEYWORDS:
            raise SqlSyntax(f"unexpected {t.text}")
        if self.at_op("("):
            return self.call(t)
        if self.at_op("->"):
            self.take()
            body = self.expression()
            return Node("lambda", t.start, body.end, value=t.text, children=(body,))
        return self.name_path(t, t.text)

    def name_path(self, first: Token, name: str) -> Node:
        parts, end = [name], first.end
        while self.at_op(".") and (after := self.peek(1)) is not None and after.kind in ("name", "quoted"):
            self.take()
            t = self.take()
            parts.append(t.text[1:-1] if t.kind == "quoted" else t.text)
            end = t.end
        return Node("name", first.start, end, value=".".join(parts), path=tuple(parts))

    def call(self, name: Token) -> Node:
        self.expect_op("(")
        distinct = bool(self.at_word("DISTINCT") and self.take())
        args: list[Node] = []
        if not self.at_op(")"):
            args.append(self.expression())
            while self.at_op(","):
                self.take()
                args.append(self.expression())
        end = self.expect_op(")").end
        return Node("call", name.start, end, value=name.text.lower(), children=tuple(args), negated=distinct)

    def case(self, start: Token) -> Node:
        depth = 1
        while depth:                      # kept whole: its branches are shown as written
            t = self.take()
            if t.upper == "CASE":
                depth += 1
            elif t.upper == "END":
                depth -= 1
        return Node("raw", start.start, self.prev_end(), value="case")

    def cast(self, start: Token) -> Node:
        self.expect_op("(")
        inner = self.expression()
        self.expect_word("AS")
        type_start, depth = self.peek(), 0
        if type_start is None:
            raise SqlSyntax("CAST without a type")
        while depth or not self.at_op(")"):
            t = self.take()
            depth += (t.text == "(") - (t.text == ")") if t.kind == "op" else 0
        type_text = self.text[type_start.start:self.prev_end()]
        end = self.expect_op(")").end
        return Node("cast", start.start, end, value=type_text, children=(inner,))


def parse(text: str) -> Node:
    """The expression tree of `text`; SqlSyntax where it cannot be read."""
    return _Parser(text).parse()
