"""Inline SVG charts for the run report: plain strings, no JavaScript, no fonts or files fetched.

Each chart takes values already computed (Decimal magnitudes and the text to print beside them) and returns one
`<svg>` element with a `<title>` (what a screen reader announces) and CSS classes the page's stylesheet colours
(`under`, `over`, `timing`, `other`, `ok`, `due`, `overdue`, ...). Bars scale to the largest value of the chart;
a zero or missing value draws no bar but keeps its label, so nothing silently disappears.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from html import escape

LABEL_W = 230
ROW_H = 26
BAR_H = 16


@dataclass(frozen=True)
class Bar:
    label: str
    value: Decimal            # a magnitude (>= 0): the bar's length
    text: str                 # what is printed after the bar (the signed, formatted figure)
    css: str = "other"


def _svg(width: int, height: int, title: str, body: list[str], css: str = "chart") -> str:
    return (f'<svg class="{escape(css)}" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" role="img"><title>{escape(title)}</title>{"".join(body)}</svg>')


def _scale(values: Sequence[Decimal], room: int) -> Decimal:
    top = max((v for v in values if v > 0), default=Decimal(0))
    return Decimal(room) / top if top else Decimal(0)


def bars(items: Sequence[Bar], title: str, width: int = 720) -> str:
    """A horizontal bar per item: its label on the left, the bar, its text after the bar."""
    room = width - LABEL_W - 140
    k = _scale([i.value for i in items], room)
    body = []
    for n, item in enumerate(items):
        y = n * ROW_H + 4
        length = int((item.value * k).to_integral_value()) if item.value > 0 else 0
        if item.value > 0:
            length = max(length, 1)
        body.append(f'<text class="label" x="{LABEL_W - 8}" y="{y + BAR_H - 3}" text-anchor="end">'
                    f'{escape(item.label)}</text>')
        if length:
            body.append(f'<rect class="{escape(item.css)}" x="{LABEL_W}" y="{y}" width="{length}" height="{BAR_H}"/>')
        body.append(f'<text class="value" x="{LABEL_W + length + 6}" y="{y + BAR_H - 3}">{escape(item.text)}</text>')
    return _svg(width, max(len(items), 1) * ROW_H + 8, title, body)


def stacked(segments: Sequence[tuple[str, int, str]], title: str, width: int = 360) -> str:
    """One bar split into (label, count, css) segments in proportion, with the counts written in the segments."""
    total = sum(n for _, n, _ in segments)
    body, x = [], 0
    for label, n, css in segments:
        if not n:
            continue
        w = max(int(round(n * width / total)), 18) if total else 0
        w = min(w, width - x)
        body.append(f'<rect class="{escape(css)}" x="{x}" y="0" width="{w}" height="20"><title>{escape(label)}: {n}'
                    f'</title></rect>')
        body.append(f'<text class="in-bar" x="{x + w / 2:.1f}" y="14" text-anchor="middle">{n}</text>')
        x += w
    if not total:
        body.append('<text class="value" x="0" y="14">no cases</text>')
    return _svg(width, 20, title, body, css="chart stacked")


@dataclass(frozen=True)
class Stage:
    label: str
    count_text: str
    amount_text: str


@dataclass(frozen=True)
class Edge:
    leak_text: str            # revenue not carried downstream (underbilling)
    excess_text: str          # carried in excess (overbilling)
    other_text: str = ""      # timing and other classes


def funnel(stages: Sequence[Stage], edges: Sequence[Edge], title: str, width: int = 900) -> str:
    """Boxes for the stages left to right, and between each two the edge's leak (red, down) and excess (orange)."""
    n = len(stages)
    box_w = 170
    gap = (width - n * box_w) / max(n - 1, 1)
    body = []
    for i, stage in enumerate(stages):
        x = i * (box_w + gap)
        body.append(f'<rect class="stage" x="{x:.1f}" y="10" width="{box_w}" height="74" rx="6"/>')
        body.append(f'<text class="stage-title" x="{x + box_w / 2:.1f}" y="32" text-anchor="middle">'
                    f'{escape(stage.label)}</text>')
        body.append(f'<text class="value" x="{x + box_w / 2:.1f}" y="52" text-anchor="middle">'
                    f'{escape(stage.count_text)}</text>')
        body.append(f'<text class="value" x="{x + box_w / 2:.1f}" y="70" text-anchor="middle">'
                    f'{escape(stage.amount_text)}</text>')
    for i, edge in enumerate(edges[: max(n - 1, 0)]):
        x0 = i * (box_w + gap) + box_w
        x1 = x0 + gap
        mid = (x0 + x1) / 2
        body.append(f'<line class="flow" x1="{x0 + 4:.1f}" y1="47" x2="{x1 - 10:.1f}" y2="47"/>')
        body.append(f'<polygon class="flow-head" points="{x1 - 10:.1f},41 {x1 - 2:.1f},47 {x1 - 10:.1f},53"/>')
        body.append(f'<line class="leak" x1="{mid:.1f}" y1="47" x2="{mid:.1f}" y2="104"/>')
        body.append(f'<text class="leak-text" x="{mid:.1f}" y="120" text-anchor="middle">{escape(edge.leak_text)}'
                    '</text>')
        body.append(f'<text class="excess-text" x="{mid:.1f}" y="138" text-anchor="middle">'
                    f'{escape(edge.excess_text)}</text>')
        if edge.other_text:
            body.append(f'<text class="other-text" x="{mid:.1f}" y="156" text-anchor="middle">'
                        f'{escape(edge.other_text)}</text>')
    return _svg(width, 166, title, body, css="chart funnel")


@dataclass(frozen=True)
class Series:
    label: str
    css: str
    values: Sequence[Decimal | None]      # one per point; None: no value (no line through it)


def lines(points: Sequence[str], series: Sequence[Series], title: str, width: int = 720, height: int = 200) -> str:
    """A line per series over the points (runs, oldest first), the y axis from 0 to the largest value."""
    left, right, top, bottom = 70, 20, 14, 40
    plot_w, plot_h = width - left - right, height - top - bottom
    values = [v for s in series for v in s.values if v is not None]
    peak = max(values, default=Decimal(0)) or Decimal(1)
    step = plot_w / max(len(points) - 1, 1)
    body = [f'<line class="axis" x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}"/>',
            f'<line class="axis" x1="{left}" y1="{top}" x2="{left}" y2="{top + plot_h}"/>',
            f'<text class="tick" x="{left - 6}" y="{top + 4}" text-anchor="end">{escape(_short(peak))}</text>',
            f'<text class="tick" x="{left - 6}" y="{top + plot_h + 4}" text-anchor="end">0</text>']
    for i, label in enumerate(points):
        x = left + (i * step if len(points) > 1 else plot_w / 2)
        body.append(f'<text class="tick" x="{x:.1f}" y="{top + plot_h + 16}" text-anchor="middle">'
                    f'{escape(label)}</text>')
    for k, s in enumerate(series):
        coords = []
        for i, v in enumerate(s.values):
            if v is None:
                continue
            x = left + (i * step if len(points) > 1 else plot_w / 2)
            y = top + plot_h - float(v / peak) * plot_h
            coords.append((x, y, v))
        if len(coords) > 1:
            path = " ".join(f"{x:.1f},{y:.1f}" for x, y, _ in coords)
            body.append(f'<polyline class="line {escape(s.css)}" points="{path}"/>')
        for x, y, v in coords:
            body.append(f'<circle class="dot {escape(s.css)}" cx="{x:.1f}" cy="{y:.1f}" r="3.5">'
                        f'<title>{escape(s.label)}: {escape(_short(v))}</title></circle>')
        legend_x = left + k * 200
        body.append(f'<rect class="{escape(s.css)}" x="{legend_x}" y="{height - 14}" width="10" height="10"/>')
        body.append(f'<text class="tick" x="{legend_x + 14}" y="{height - 5}">{escape(s.label)}</text>')
    return _svg(width, height, title, body, css="chart trend")


def _short(value: Decimal) -> str:
    return f"{value:,.2f}" if value != value.to_integral_value() else f"{int(value):,}"
