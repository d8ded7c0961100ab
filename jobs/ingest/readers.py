"""Reading a carrier file: what kind it is, its first rows (to recognise it), then all its rows as strings.

The kind comes from the bytes, never the name: a zip is XLSX, markup with a `<table>` is an HTML table (what many
billing portals save with an `.xls` name), an OLE2 compound file is a real Excel 97 `.xls` (refused: save it as
.xlsx or CSV), anything else is delimited text.

Readers, and why:

- CSV: Spark's own CSV reader (univocity), so a file of any size is parsed in parallel by the executors, never
  row by row on the driver. Only the dialect is sniffed in Python, from the first MiB: each plausible delimiter
  is tried and the one under which a layout recognises a header wins; quoting is RFC 4180 (`"`, doubled to
  escape). The schema is explicit (all strings, as wide as the file's rows), so a row with more or fewer fields
  than its neighbours is caught by Spark as malformed and kept with a parse error. Quoted line breaks switch the
  reader to multiLine (one task per file) only when the sample shows them.
- XLSX: openpyxl (read-only), the well-kept reader pandas itself uses; cells typed by Excel (dates, times,
  numbers) are turned into text here so normalisation sees one form.
- HTML saved as .xls: lxml's HTML parser (what pandas.read_html uses), read directly so that every cell stays the
  text as written (pandas would turn "0012" and phone numbers into numbers).

XLSX and HTML invoices are small in practice (a spreadsheet holds at most 1,048,576 rows), so their rows go to Spark
through a pandas DataFrame (Arrow); a large invoice comes as CSV.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import logging
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import LongType, StringType, StructField, StructType

from jobs.ingest.layouts import LayoutError
from jobs.ingest.recognize import HEADER_SCAN_ROWS, Grid, Match

LOG = logging.getLogger(__name__)

SNIFF_BYTES = 1 << 20
SNIFF_ROWS = 500
DELIMITERS = (",", ";", "\t", "|")
CORRUPT = "_corrupt"
# Columns every reader hands to normalisation besides the canonical ones it maps.
SOURCE_ROW, MALFORMED = "source_row", "_malformed"
_PARTITION_BITS = 33          # monotonically_increasing_id: partition index << 33 | row within the partition
# Spark session setting read when a CSV scan is planned: with pruning on, a query that uses some of the file's
# columns no longer checks the others, and a row with one field too many or too few is not seen as malformed.
CSV_PRUNING = "spark.sql.csv.parser.columnPruning.enabled"


class UnreadableFile(LayoutError):
    """A file no reader can read (a binary .xls, an empty file, markup without a table): exit 2."""


@dataclass(frozen=True)
class CsvDialect:
    delimiter: str
    encoding: str
    width: int = 0              # fields per row: the schema Spark reads the file with
    multiline: bool = False


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def kind_of(path: Path, head: bytes) -> str:
    """'xlsx', 'html' or 'csv' from the first bytes of the file; UnreadableFile for what no reader takes."""
    if not head:
        raise UnreadableFile(path, "(file)", "is empty")
    if head.startswith(b"PK\x03\x04"):
        return "xlsx"
    if head.startswith(b"\xd0\xcf\x11\xe0"):
        raise UnreadableFile(path, "(file)", "is a binary Excel 97-2003 workbook, which ingest does not read: save "
                             "it as .xlsx or CSV")
    text = head.lstrip(codecs.BOM_UTF8).lstrip().lower()
    if text.startswith(b"<"):
        if b"<table" in head.lower():
            return "html"
        raise UnreadableFile(path, "(file)", "is markup without a <table>: not a carrier invoice ingest can read")
    return "csv"


def grids(path: Path, kind: str) -> list[Grid]:
    """The first rows of the file under each reading that could be right (see recognize.Grid)."""
    if kind == "xlsx":
        return _xlsx_grids(path)
    if kind == "html":
        return [Grid(f"table {i + 1}", rows, i) for i, rows in enumerate(_html_tables(path))]
    return _csv_grids(path)


def read(spark: SparkSession, path: Path, kind: str, match: Match) -> DataFrame:
    """All data rows of a recognised file: `source_row` (1-based, header not counted), `_malformed` (a reason or
    null) and one string column per canonical column the layout maps (named by it)."""
    if kind == "csv":
        return _read_csv(spark, path, match)
    rows = _xlsx_rows(path, match.grid.token, None) if kind == "xlsx" else _html_tables(path)[match.grid.token]
    return _rows_frame(spark, rows, match, typed=kind == "xlsx")


# ------------------------------------------------------------------------------------------------------------ CSV
def _decode_head(path: Path) -> tuple[str, str]:
    with path.open("rb") as f:
        head = f.read(SNIFF_BYTES)
        whole = not f.read(1)
    if not whole and b"\n" in head:
        head = head[: head.rindex(b"\n") + 1]        # no row cut in half
    head = head.removeprefix(codecs.BOM_UTF8)
    try:
        return head.decode("utf-8"), "UTF-8"
    except UnicodeDecodeError:
        # Not UTF-8: the Windows code page spreadsheet tools write by default (latin-1 plus the euro sign).
        return head.decode("cp1252", errors="replace"), "windows-1252"


def _csv_grids(path: Path) -> list[Grid]:
    text, encoding = _decode_head(path)
    found: list[tuple[float, Grid]] = []
    for delimiter in DELIMITERS:
        rows = [r for r in csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, quotechar='"',
                                      doublequote=True, strict=False) if r][:SNIFF_ROWS]
        if not rows:
            continue
        widths = Counter(len(r) for r in rows)
        width, count = widths.most_common(1)[0]
        # A delimiter that splits nothing is a poor reading; one that splits every row alike is a good one.
        score = (count / len(rows)) * (width > 1)
        found.append((score, Grid(f"delimiter {delimiter!r}", rows, CsvDialect(delimiter, encoding))))
    # Best-scoring reading first: recognise() prefers it when several readings fit a layout.
    return [g for _, g in sorted(found, key=lambda sg: -sg[0])]


def csv_dialect(match: Match) -> CsvDialect:
    """The recognised reading's dialect, with the width and line-break handling the sampled data rows show."""
    base: CsvDialect = match.grid.token
    data = match.grid.rows[match.header_row + 1:]
    width = Counter(len(r) for r in data).most_common(1)[0][0] if data else len(match.headers)
    multiline = any("\n" in cell or "\r" in cell for r in data for cell in r if cell)
    return CsvDialect(base.delimiter, base.encoding, max(width, max(match.positions.values()) + 1), multiline)


@contextmanager
def csv_pruning(spark: SparkSession, enabled: bool) -> Iterator[None]:
    """CSV column pruning on or off for the Spark jobs started in the block (CSV_PRUNING); the caller's value is
    restored. Ingest reads with it off: a row whose fields do not line up must be seen whatever columns a job
    uses."""
    previous = spark.conf.get(CSV_PRUNING, None)
    spark.conf.set(CSV_PRUNING, str(enabled).lower())
    try:
        yield
    finally:
        if previous is None:
            spark.conf.unset(CSV_PRUNING)
        else:
            spark.conf.set(CSV_PRUNING, previous)


def _glob_escaped(path: Path) -> str:
    text = str(path.resolve())
    for ch in "\\[]{}*?":
        text = text.replace(ch, "\\" + ch)
    return text


def _read_csv(spark: SparkSession, path: Path, match: Match) -> DataFrame:
    dialect = csv_dialect(match)
    schema = StructType([StructField(f"_c{i}", StringType()) for i in range(dialect.width)]
                        + [StructField(CORRUPT, StringType())])
    raw = (spark.read.schema(schema)
           .option("header", "false").option("sep", dialect.delimiter).option("quote", '"').option("escape", '"')
           .option("encoding", dialect.encoding).option("multiLine", str(dialect.multiline).lower())
           .option("mode", "PERMISSIVE").option("columnNameOfCorruptRecord", CORRUPT)
           .csv(_glob_escaped(path))
           .withColumn("_mid", F.monotonically_increasing_id()))
    # Row numbers without a shuffle and without a row loop: the rows each file split holds (one small aggregate),
    # then each row's number is its split's offset plus its place in the split. Splits of one file are read in
    # file order and re-read identically, so the numbers are the file's.
    part = F.shiftright("_mid", _PARTITION_BITS)
    with csv_pruning(spark, True):            # counting rows needs no field checked, nor converted
        counts = sorted((int(r["p"]), int(r["n"]))
                        for r in raw.groupBy(part.alias("p")).agg(F.count("*").alias("n")).collect())
    # Rows up to the header (title rows, the header itself) are not data. Spark skips blank lines, as the sample
    # parse above did, so the header's index among the sample rows is its index here. The offsets are one map
    # literal, which generated code reads by reference: the same layout's next file reuses the compiled code.
    offsets: list[Any] = []
    running = -match.header_row
    for p, n in counts:
        offsets += [F.lit(p), F.lit(running)]
        running += n
    offset = F.element_at(F.create_map(*offsets), part) if offsets else F.lit(0)
    index = offset + F.col("_mid").bitwiseAND(F.lit((1 << _PARTITION_BITS) - 1))
    numbered = raw.withColumn(SOURCE_ROW, index.cast(LongType()))
    return numbered.where(F.col(SOURCE_ROW) >= 1).select(
        SOURCE_ROW,
        F.when(F.col(CORRUPT).isNotNull(),
               F.lit(f"malformed row: its fields do not line up with the file's {dialect.width} columns"))
        .alias(MALFORMED),
        *[F.col(f"_c{pos}").alias(name) for name, pos in match.positions.items()])


# ----------------------------------------------------------------------------------------------------------- XLSX
def _cell_text(value: Any) -> str | None:
    """An Excel cell as text: integral numbers without '.0' (phone numbers, whole minutes), other numbers by
    their shortest round-trip form (what Excel shows for a typed 0.0012), dates and times in ISO 8601."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, (date, time)):
        return value.isoformat()
    if isinstance(value, timedelta):
        seconds = int(value.total_seconds())
        return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
    return str(value)


def _open_workbook(path: Path) -> Any:
    import openpyxl  # imported here: only XLSX files need it

    try:
        return openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:  # noqa: BLE001 - openpyxl raises many types for a damaged zip; all mean "unreadable"
        raise UnreadableFile(path, "(file)", f"is not a readable XLSX workbook ({type(exc).__name__}: {exc})") from exc


def _sheet(book: Any, name: str) -> Any:
    sheet = book[name]
    if hasattr(sheet, "reset_dimensions"):
        # Read-only sheets trust the size the writing program recorded, which some exporters get wrong (rows
        # silently cut off); forgetting it makes openpyxl read every row there is.
        sheet.reset_dimensions()
    return sheet


def _xlsx_rows(path: Path, sheet: str, limit: int | None) -> list[tuple[Any, ...]]:
    book = _open_workbook(path)
    try:
        return [tuple(row) for row in _sheet(book, sheet).iter_rows(max_row=limit, values_only=True)]
    finally:
        book.close()


def _xlsx_grids(path: Path) -> list[Grid]:
    book = _open_workbook(path)
    try:
        return [Grid(f"sheet {name!r}",
                     [tuple(_cell_text(v) for v in row)
                      for row in _sheet(book, name).iter_rows(max_row=HEADER_SCAN_ROWS, values_only=True)], name)
                for name in book.sheetnames]
    finally:
        book.close()


# ----------------------------------------------------------------------------------------------------------- HTML
def _html_tables(path: Path) -> list[list[tuple[str | None, ...]]]:
    import lxml.html  # imported here: only HTML files need it

    data = path.read_bytes()
    try:
        # Without a charset declaration libxml2 assumes latin-1; most such files are UTF-8, so try that first.
        doc = lxml.html.document_fromstring(data.removeprefix(codecs.BOM_UTF8).decode("utf-8"))
    except UnicodeDecodeError:
        doc = lxml.html.document_fromstring(data)
    tables = []
    for table in doc.iter("table"):
        rows: list[tuple[str | None, ...]] = []
        for tr in table.xpath("./tr|./thead/tr|./tbody/tr|./tfoot/tr"):
            cells: list[str | None] = []
            for cell in tr.xpath("./th|./td"):
                text = " ".join(cell.text_content().split())
                span = int(cell.get("colspan", "1")) if cell.get("colspan", "1").isdigit() else 1
                cells += [text or None] + [None] * (max(span, 1) - 1)
            rows.append(tuple(cells))
        if rows:
            tables.append(rows)
    if not tables:
        raise UnreadableFile(path, "(file)", "has a <table> tag but no table rows")
    return tables


# ----------------------------------------------------------------------------------------- XLSX / HTML to Spark
# The largest whole number a double (an Excel number) holds exactly: an ICCID typed as a number beyond it has lost
# its last digits (Excel keeps 15 significant digits), and is read as what it is, a rounded number, not an ICCID.
_EXACT_DOUBLE = 2 ** 53


def _typed(value: Any, canonical: str) -> str | None:
    """A typed Excel cell as the text its canonical column expects (a date-time cell in a date or time column; an
    ICCID typed as a number too large for a double to hold exactly, as its rounded form, e.g. 8.9103e+18)."""
    if isinstance(value, float) and canonical == "iccid" and abs(value) >= _EXACT_DOUBLE:
        return repr(value)
    if isinstance(value, datetime) and canonical == "start_date":
        return value.date().isoformat()
    if isinstance(value, datetime) and canonical == "start_time":
        return value.time().isoformat()
    return _cell_text(value)


def _rows_frame(spark: SparkSession, rows: Sequence[Sequence[Any]], match: Match, typed: bool) -> DataFrame:
    names = list(match.positions)
    width = len(match.headers)

    def records() -> Iterator[list[Any]]:
        for n, row in enumerate(rows[match.header_row + 1:], start=1):
            cells = [(_typed(row[p], name) if typed else row[p]) if p < len(row) else None
                     for name, p in match.positions.items()]
            filled = sum(1 for c in row if c is not None and str(c).strip())
            bad = (f"malformed row: {len(row)} cells where the header has {width}"
                   if not typed and filled and len(row) != width else None)
            yield [n, bad, *cells]

    frame = pd.DataFrame(list(records()), columns=[SOURCE_ROW, MALFORMED, *names])
    frame[SOURCE_ROW] = frame[SOURCE_ROW].astype("int64")
    schema = StructType([StructField(SOURCE_ROW, LongType(), False), StructField(MALFORMED, StringType())]
                        + [StructField(n, StringType()) for n in names])
    return spark.createDataFrame(frame, schema=schema)
