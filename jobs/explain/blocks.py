"""The document `telco-ra explain` writes, as renderer-neutral blocks: Markdown and HTML are two readings of it.

Building the content once (jobs/explain/document.py) and rendering it twice (jobs/explain/render.py) is what keeps
the two files saying the same thing. Inline text is a tuple of spans: plain text, code (a column, a rule name, an
outcome, SQL), a tag (a severity or an outcome, shown as a badge in HTML) or a link to an anchor of the page.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Code:
    text: str


@dataclass(frozen=True)
class Tag:
    """A short label (an outcome, a severity): bold in Markdown, a badge in HTML (its `kind` picks the colour)."""

    text: str
    kind: str = ""


@dataclass(frozen=True)
class Link:
    text: str
    anchor: str


Span = str | Code | Tag | Link
Inline = tuple[Span, ...]


@dataclass(frozen=True)
class Heading:
    level: int
    text: Inline
    anchor: str = ""


@dataclass(frozen=True)
class Para:
    text: Inline


@dataclass(frozen=True)
class Item:
    text: Inline
    children: tuple[Block, ...] = ()


@dataclass(frozen=True)
class Items:
    items: tuple[Item, ...]
    ordered: bool = False


@dataclass(frozen=True)
class Table:
    header: tuple[str, ...]
    rows: tuple[tuple[Inline, ...], ...]


@dataclass(frozen=True)
class Sql:
    """A SQL text exactly as the ruleset holds it (a code block)."""

    text: str


@dataclass(frozen=True)
class Box:
    """A group of blocks that belong together (a rule, a control point): a framed card in HTML, nothing in
    Markdown."""

    kind: str
    blocks: tuple[Block, ...]


Block = Heading | Para | Items | Table | Sql | Box


def inline(*parts: Span | Inline | None) -> Inline:
    """Spans and inlines joined into one inline (None is skipped), e.g. inline("the ", Code("x"), more)."""
    out: list[Span] = []
    for part in parts:
        if part is None:
            continue
        if isinstance(part, tuple):
            out.extend(part)
        else:
            out.append(part)
    return tuple(out)


def joined(parts: list[Inline], sep: str = ", ", last: str | None = None) -> Inline:
    """Inlines joined by `sep` (and `last` before the final one: "a, b and c")."""
    out: list[Span] = []
    for i, part in enumerate(parts):
        if i:
            out.append(last if last is not None and i == len(parts) - 1 else sep)
        out.extend(part)
    return tuple(out)


def codes(names: tuple[str, ...] | list[str], last: str | None = None) -> Inline:
    return joined([(Code(n),) for n in names], last=last)


def prose(text: str) -> Inline:
    """Fixed prose whose `backticked` words are code: prose("`match.rank` 1 is a match") -> (Code, str)."""
    parts = text.split("`")
    return tuple(Code(p) if i % 2 else p for i, p in enumerate(parts) if p)
