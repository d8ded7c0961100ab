"""The ruleset's SQL: `${name}` parameters and the `beyond_tolerance(diff, reference)` form, rendered to Spark SQL.

Rules are written in Spark SQL so an RA engineer can read and change them without Python. Two additions make them
short: `${name}` takes a value of the ruleset's `params`, the control point's `tolerance` (`${tolerance.abs}`,
`${tolerance.rel}`) or the cycle (`${cycle.start}`, `${cycle.end}`, `${cycle.close}`, `${cycle.cutoff}`,
`${cycle.id}`), and `beyond_tolerance(diff, reference)` is the contract's money tolerance,
|diff| > max(abs, rel * |reference|), computed exactly as decimals.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from pyspark.sql import Column
from pyspark.sql import functions as F

from transforms.engine.spec import Tolerance

PARAM = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_.]*)\}")
MACRO = "beyond_tolerance("


class SqlError(ValueError):
    """A rule's SQL cannot be rendered (an unknown parameter, a malformed form): the loader names the rule."""


def literal(value: object) -> str:
    """A Python value as a Spark SQL literal. Instants become `timestamp_micros(...)`: no session time zone can
    shift them."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        ts = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
        micros = int(ts.timestamp()) * 1_000_000 + ts.microsecond
        return f"timestamp_micros({micros})"
    if isinstance(value, int | Decimal):
        return str(value)
    if isinstance(value, tuple):
        return f"array({', '.join(literal(v) for v in value)})"
    if isinstance(value, Mapping):
        # a table of named entries: map(name, named_struct(field, value, ...)); numbers as decimal(18,6), so every
        # entry's struct has one type
        def field(v: object) -> str:
            return f"CAST({v} AS DECIMAL(18,6))" if isinstance(v, Decimal) else literal(v)
        entries = [f"{literal(name)}, named_struct({', '.join(f'{literal(f)}, {field(v)}' for f, v in e.items())})"
                   for name, e in value.items()]
        return f"map({', '.join(entries)})"
    if isinstance(value, float):
        return repr(value)
    text = str(value).replace("\\", "\\\\").replace("'", "\\'")
    return f"'{text}'"


def _split_args(text: str, start: int) -> tuple[list[str], int]:
    """The comma-separated arguments of a call whose '(' precedes `start`, and the index after its ')'."""
    depth, args, current, i, quote = 0, [], [], start, ""
    while i < len(text):
        ch = text[i]
        if quote:
            current.append(ch)
            if ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
            current.append(ch)
        elif ch == "(":
            depth += 1
            current.append(ch)
        elif ch == ")":
            if depth == 0:
                args.append("".join(current).strip())
                return args, i + 1
            depth -= 1
            current.append(ch)
        elif ch == "," and depth == 0:
            args.append("".join(current).strip())
            current = []
        else:
            current.append(ch)
        i += 1
    raise SqlError("unbalanced parentheses in beyond_tolerance(...)")


def _expand_tolerance(text: str) -> str:
    out, i = [], 0
    while True:
        j = text.find(MACRO, i)
        if j < 0 or (j > 0 and (text[j - 1].isalnum() or text[j - 1] == "_")):
            if j < 0:
                out.append(text[i:])
                return "".join(out)
            out.append(text[i:j + len(MACRO)])
            i = j + len(MACRO)
            continue
        args, end = _split_args(text, j + len(MACRO))
        if len(args) != 2 or not all(args):
            raise SqlError(f"beyond_tolerance takes (difference, reference), got {len(args)} argument(s)")
        diff, ref = (_expand_tolerance(a) for a in args)
        out.append(text[i:j])
        out.append(f"(CAST(abs({diff}) AS DECIMAL(38,6)) > greatest(CAST(${{tolerance.abs}} AS DECIMAL(38,6)), "
                   f"CAST(CAST(${{tolerance.rel}} AS DECIMAL(20,6)) * abs({ref}) AS DECIMAL(38,6))))")
        i = end


def render(text: str, params: Mapping[str, object]) -> str:
    """`text` with its forms expanded and every `${name}` replaced by its value's literal."""
    expanded = _expand_tolerance(text)

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in params:
            raise SqlError(f"unknown parameter ${{{name}}} (known: {', '.join(sorted(params))})")
        return literal(params[name])

    return PARAM.sub(value, expanded)


def expr(text: str, params: Mapping[str, object]) -> Column:
    return F.expr(render(text, params))


def params_of(ruleset_params: Mapping[str, object], tolerance: Tolerance | None, cycle: Any | None
              ) -> dict[str, object]:
    """The parameters a control point's SQL may name (see the module docstring)."""
    out: dict[str, object] = dict(ruleset_params)
    if tolerance is not None:
        out["tolerance.abs"] = tolerance.abs
        out["tolerance.rel"] = tolerance.rel
    if cycle is not None:
        for name in ("start", "end", "close", "cutoff"):
            out[f"cycle.{name}"] = getattr(cycle, name, None) or cycle.end
        out["cycle.id"] = cycle.cycle_id
    return out
