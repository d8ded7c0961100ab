"""Which layout a carrier file is, from its headers (CONTRACT section 6; seed 002 section 8).

A reader offers one or more *grids* of a file's first rows: a CSV under each plausible delimiter, each sheet of a
workbook, each table of an HTML page. A layout is recognised when every one of its `recognize` headers is in one
row of a grid, compared ignoring case, spaces and punctuation; that row is the header and the rows after it are
data (title rows above it are allowed). The file name is at most a hint: it only breaks a tie between layouts.

When several layouts fit, the one whose mapped columns are all present wins, then the more specific (more
recognise headers). A file no layout fits is refused with the headers seen, the closest layout and what that
layout lacks, so the person reading the message knows whether to fix the file or write a layout.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jobs.ingest.layouts import Layout, LayoutError, header_key

HEADER_SCAN_ROWS = 30        # the header may follow this many title rows at most
Row = Sequence[str | None]


class UnknownLayout(LayoutError):
    """No layout recognises a file (or one does but the file lacks a mapped column): exit 2."""


@dataclass(frozen=True)
class Grid:
    """The first rows of a file as one reading sees them (a delimiter, a sheet, a table)."""

    label: str
    rows: Sequence[Row]
    token: Any = None           # what the reader needs to read all of it (a dialect, a sheet name, a table index)


@dataclass(frozen=True)
class Match:
    layout: Layout
    grid: Grid
    header_row: int                      # index of the header in grid.rows
    headers: tuple[str, ...]             # the header row as written
    positions: Mapping[str, int]         # canonical column (and "carrier" for carrier_column) -> 0-based position


def _keys(row: Row) -> list[str]:
    return [header_key(cell) if cell is not None else "" for cell in row]


def _mapped(layout: Layout) -> dict[str, str]:
    mapped = dict(layout.columns)
    if layout.carrier_column:
        mapped["carrier"] = layout.carrier_column
    return mapped


def _shown(row: Row) -> str:
    cells = [repr(str(c).strip()) for c in row if c is not None and str(c).strip()]
    return ", ".join(cells[:40]) + (", ..." if len(cells) > 40 else "") if cells else "(none)"


def recognize(file: Path, grids: Sequence[Grid], layouts: Mapping[str, Layout]) -> Match:
    """The layout and header row of `file`; UnknownLayout (exit 2) when none fits.

    Example::

        match = recognize(Path("inv.csv"), [Grid("delimiter ','", [["Call Date", "Orig TN", ...], ...])], layouts)
        match.layout.name, match.positions["cost"]
    """
    candidates: list[tuple[tuple[int, ...], Layout, int, int]] = []
    for g, grid in enumerate(grids):
        for r, row in enumerate(grid.rows[:HEADER_SCAN_ROWS]):
            present = set(_keys(row))
            for layout in layouts.values():
                if layout.recognize_keys <= present:
                    mapped = {header_key(h) for h in _mapped(layout).values()}
                    score = (int(mapped <= present), len(layout.recognize_keys), len(mapped & present), -g, -r)
                    candidates.append((score, layout, g, r))
    if not candidates:
        raise _unknown(file, grids, layouts)
    candidates.sort(key=lambda c: c[0], reverse=True)
    best = candidates[0]
    rivals = {c[1].name: c[1] for c in candidates if c[0][:3] == best[0][:3]}
    if len(rivals) > 1:
        hinted = [lay for lay in rivals.values() if _named_in(file, lay)]
        if len(hinted) != 1:
            raise UnknownLayout(file, "(layout)", f"its headers fit {len(rivals)} layouts equally well: "
                                f"{', '.join(f'{n} ({lay.path})' for n, lay in sorted(rivals.items()))}; the file "
                                "name names none of them (make one layout's recognize headers more specific)")
        best = next(c for c in candidates if c[1] is hinted[0])
    _, layout, g, r = best
    grid = grids[g]
    return Match(layout, grid, r, tuple("" if c is None else str(c) for c in grid.rows[r]),
                 _positions(file, layout, grid.rows[r]))


def _named_in(file: Path, layout: Layout) -> bool:
    stem = header_key(file.stem)
    return header_key(layout.name) in stem or (layout.carrier is not None and header_key(layout.carrier) in stem)


def _positions(file: Path, layout: Layout, row: Row) -> dict[str, int]:
    keys = _keys(row)
    positions: dict[str, int] = {}
    for canonical, header in _mapped(layout).items():
        where = [i for i, k in enumerate(keys) if k == header_key(header)]
        what = "carrier_column" if canonical == "carrier" else f"columns.{canonical}"
        if not where:
            raise UnknownLayout(file, "(headers)", f"recognised as layout {layout.name} ({layout.path}) but it has "
                                f"no column {header!r} ({what}); headers seen: {_shown(row)}")
        if len(where) > 1:
            raise UnknownLayout(file, "(headers)", f"recognised as layout {layout.name} ({layout.path}) but "
                                f"{header!r} ({what}) is the header of columns {', '.join(str(i + 1) for i in where)}")
        positions[canonical] = where[0]
    return positions


def _unknown(file: Path, grids: Sequence[Grid], layouts: Mapping[str, Layout]) -> UnknownLayout:
    """The refusal: headers seen, and the layout that comes closest with the recognise headers it lacks."""
    best: tuple[tuple[float, int], Layout, Row] | None = None
    for grid in grids:
        for row in grid.rows[:HEADER_SCAN_ROWS]:
            present = set(_keys(row))
            for layout in sorted(layouts.values(), key=lambda lay: lay.name):
                hits = len(layout.recognize_keys & present)
                share = (hits / len(layout.recognize_keys), hits)      # most of its headers, then most headers
                if hits and (best is None or share > best[0]):
                    best = (share, layout, row)
    if best is None:
        first = next((row for grid in grids for row in grid.rows if any(c and str(c).strip() for c in row)), [])
        return UnknownLayout(file, "(layout)", f"no carrier layout recognises this file; headers seen: "
                             f"{_shown(first)}; no layout shares a header with it ({len(layouts)} layouts: "
                             f"{', '.join(sorted(layouts))}); write one for this carrier")
    _, closest, seen = best
    present = set(_keys(seen))
    lacks = [h for h in closest.recognize if header_key(h) not in present]
    return UnknownLayout(file, "(layout)", f"no carrier layout recognises this file; headers seen: "
                         f"{_shown(seen)}; closest layout: {closest.name} ({closest.path}), which lacks "
                         f"{', '.join(repr(h) for h in lacks)}")
