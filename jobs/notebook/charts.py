"""The report's inline SVG charts (jobs/report/svg.py) for a notebook: the same drawing code, made standalone.

The report colours its charts with the page's stylesheet (CSS classes `under`, `over`, `ok`, ...). A notebook has
no such stylesheet, so each chart here carries the page's SVG rules in a `<style>` of its own (and the colour
variables on its root): it renders the same in Jupyter, in an exported HTML file, or opened alone. No plotting
library is needed, and nothing is fetched.

Example::

    from IPython.display import SVG, display
    display(SVG(bar_chart([("MATCHED", 120, "ok"), ("USAGE_NOT_RATED", 3, "under")], "outcomes")))
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from functools import cache

from jobs.report import svg
from jobs.report.page import STYLE

LINE_STROKES = {"ok": "ok", "timing": "timing", "cost": "cost", "inventory": "inventory", "other": "muted"}


@cache
def _css() -> str:
    """The page's `:root` colour variables (moved onto the chart's root) and every rule for SVG elements."""
    rules = [r.strip() + " }" for r in STYLE.replace("}", "}\n").split("}\n") if r.strip()]
    kept = [r.replace(":root", "svg.chart", 1) if r.startswith(":root") else r
            for r in rules if r.startswith((":root", "svg"))]
    font = "svg.chart { font-family: system-ui, 'DejaVu Sans', sans-serif; background: #fff; }"
    # The page strokes only the lines its trend draws (under, over, open); a notebook's lines may be any class.
    lines = " ".join(f"svg polyline.{c} {{ stroke: var(--{v}); }}" for c, v in LINE_STROKES.items())
    return " ".join([font, *kept, lines]).replace("  ", " ")


def standalone(chart: str) -> str:
    """An SVG of jobs/report/svg.py with the page's chart styles inside it."""
    head, sep, rest = chart.partition(">")
    return f"{head}{sep}<style>{_css()}</style>{rest}"


def _magnitude(value: object) -> Decimal:
    return abs(Decimal(str(value))) if value is not None else Decimal(0)


def bar_chart(items: Sequence[tuple[str, object, str]], title: str, text: Sequence[str] | None = None,
              width: int = 720) -> str:
    """A bar per (label, value, css class), the bar as long as |value|; `text` (default the value) after it."""
    shown = list(text) if text is not None else [f"{v:,}" if isinstance(v, int) else str(v) for _, v, _ in items]
    return standalone(svg.bars([svg.Bar(label, _magnitude(value), t, css)
                                for (label, value, css), t in zip(items, shown, strict=True)], title, width))


def line_chart(points: Sequence[str], series: Sequence[tuple[str, str, Sequence[object]]], title: str,
               width: int = 720, height: int = 240) -> str:
    """A line per (label, css class, values) over `points` (e.g. windows), the y axis from 0."""
    return standalone(svg.lines(points, [svg.Series(label, css, [None if v is None else _magnitude(v) for v in values])
                                         for label, css, values in series], title, width, height))
