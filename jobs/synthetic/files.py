"""Writing a carrier's raw file (CSV and its cousins, XLSX, an HTML table saved as .xls) from a header and rows:
what the synthetic carrier month (`carrier_invoice`) and the synthetic bills (`bill_files`) share.

Why one writer: `telco-ra ingest` is tested on what carriers send, so every synthetic file takes one of the shapes
ingest reads, and a layout's shape is named once: by the last part of its name (`kestrel-csv`, `albion-ssv`,
`meridian-xlsx`, `harbor-html`; `form_of`). A layout a user adds gets its synthetic file with no code change.

Example::

    path, sha = write_grid(Path("/tmp/in"), "kestrel-csv_2026-10", "csv", ["Call Date", ...], [["10/01/2026", ...]])
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
from collections.abc import Sequence
from html import escape
from pathlib import Path
from typing import Any

from jobs.ingest.layouts import Layout

# form -> (delimiter, file suffix) of the delimited-text forms
TEXT_FORMS = {"csv": (",", "csv"), "ssv": (";", "txt"), "tsv": ("\t", "tsv"), "psv": ("|", "psv")}
FORMS = (*TEXT_FORMS, "xlsx", "html")


def form_of(layout: Layout) -> str:
    """The file shape of a layout, from the last part of its name; CSV when it names none."""
    suffix = layout.name.rsplit("-", 1)[-1]
    return suffix if suffix in FORMS else "csv"


def line_id(sha256: str, row: int) -> str:
    """A line's id as ingest makes it (`jobs.ingest.normalize.line_id`): sha256 of `<file SHA-256>:<1-based data
    row>`."""
    return hashlib.sha256(f"{sha256}:{row}".encode()).hexdigest()


def _text(cell: Any) -> str:
    return "" if cell is None else str(cell)


def write_grid(folder: Path, stem: str, form: str, header: Sequence[str], rows: Sequence[Sequence[Any]], *,
               title: Sequence[str] = (), summary: Sequence[Any] = (), sheet: str = "Data", bom: bool = False,
               line_end: str | None = None) -> tuple[Path, str]:
    """One file `<folder>/<stem>.<suffix>` in `form`; returns its path and the SHA-256 of its bytes.

    `title`: lines above the header (XLSX: rows, then a blank row; HTML: a title table before the data table;
    text: rows padded to the header's width). `summary`: XLSX only, a first sheet "Summary" holding this row.
    `rows`' cells are written as given to XLSX (numbers and dates typed) and as text elsewhere (None: blank).
    Text forms: `bom` starts the file with a UTF-8 byte-order mark; `line_end` defaults to CRLF for CSV, LF
    otherwise.
    """
    if form not in FORMS:
        raise ValueError(f"{form!r} is not a file form ({', '.join(FORMS)})")
    if form == "xlsx":
        import openpyxl  # imported here: only XLSX files need it

        path = folder / f"{stem}.xlsx"
        book = openpyxl.Workbook()
        first = book.active
        assert first is not None
        if summary:
            first.title = "Summary"
            first.append(list(summary))
            data = book.create_sheet(sheet)
        else:
            first.title = sheet
            data = first
        for line in title:
            data.append([line])
        if title:
            data.append([])
        data.append(list(header))
        for row in rows:
            data.append(list(row))
        book.save(path)
    elif form == "html":
        path = folder / f"{stem}.xls"
        head = "".join(f"<th>{escape(h)}</th>" for h in header)
        body = "".join("<tr>" + "".join(f"<td>{escape(_text(c))}</td>" for c in row) + "</tr>\n" for row in rows)
        titled = (f"<table><tr><td>{escape(' '.join(title))}</td></tr></table>\n" if title else "")
        path.write_text(f"<html><body>{titled}<table border=\"1\"><tr>{head}</tr>\n{body}</table></body></html>\n",
                        encoding="utf-8")
    else:
        delimiter, suffix = TEXT_FORMS[form]
        buffer = io.StringIO()
        writer = csv.writer(buffer, delimiter=delimiter,
                            lineterminator=line_end or ("\r\n" if form == "csv" else "\n"))
        for line in title:
            writer.writerow([line] + [""] * (len(header) - 1))
        writer.writerow(list(header))
        writer.writerows([[_text(c) for c in row] for row in rows])
        path = folder / f"{stem}.{suffix}"
        path.write_bytes((codecs.BOM_UTF8 if bom else b"") + buffer.getvalue().encode("utf-8"))
    return path, hashlib.sha256(path.read_bytes()).hexdigest()
