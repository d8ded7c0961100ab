"""`telco-ra ingest --conf C [--period YYYY-MM] FILE_OR_DIR ...` (CONTRACT sections 6 and 9).

Two phases. First, without Spark: the conf, the carrier layouts, and every file (its hash, its kind and its
layout, from its headers; the layout's kind names the file's table: carrier_invoice_line or carrier_bill_line);
any problem exits 2 naming the file, and nothing is written. Then, per file in path order: skipped when its bytes
are in its table already, else read, normalised and appended in one commit. Folders are read recursively; names
starting with '.' or '_' are skipped (editor and Spark side files).
"""

from __future__ import annotations

import logging
import re
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import TextIO

from pyspark.sql import Observation, SparkSession
from pyspark.sql import functions as F

from jobs.config import ConfigError, EnvConf, load_conf
from jobs.ingest import readers, write
from jobs.ingest.bill_lines import normalize_bill
from jobs.ingest.layouts import CALL_INVOICE, LINE_BILL, Layout, load_layouts
from jobs.ingest.normalize import FileFacts, e164_numbers, normalize, phone_columns
from jobs.ingest.recognize import Match, recognize
from jobs.phases import phase
from transforms.checkpoints import materialize_freeing, release

LOG = logging.getLogger(__name__)
PERIOD = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")


@dataclass(frozen=True)
class Planned:
    """A file recognised before Spark starts."""

    path: Path
    sha256: str
    kind: str
    match: Match

    @property
    def layout(self) -> Layout:
        return self.match.layout


@dataclass(frozen=True)
class Ingested:
    file: Planned
    status: str                  # committed | already ingested | same bytes as <file>
    lines: int = 0
    parse_errors: int = 0
    version: int | None = None


def expand(targets: Sequence[str]) -> list[Path]:
    """The files named, and the files under the folders named, in a stable order; ConfigError for a name that
    is neither."""
    files: list[Path] = []
    for target in targets:
        path = Path(target)
        if path.is_file():
            files.append(path)
        elif path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file()
                           and not any(part.startswith((".", "_")) for part in p.relative_to(path).parts))
            if not found:
                raise ConfigError(path, "(folder)", "holds no file to ingest")
            files += found
        else:
            raise ConfigError(path, "(file)", "no such file or folder")
    return files


def plan(path: Path, layouts: dict[str, Layout]) -> Planned:
    """Hash, kind and layout of one file (no Spark); exit-2 errors name the file."""
    with path.open("rb") as f:
        head = f.read(readers.SNIFF_BYTES)
    kind = readers.kind_of(path, head)
    match = recognize(path, readers.grids(path, kind), layouts)
    return Planned(path, readers.sha256_of(path), kind, match)


def check_period(planned: Sequence[Planned], period: str | None) -> None:
    """A line_bill file whose layout has no bill_period column needs --period: ConfigError (exit 2) otherwise."""
    for item in planned:
        if period is None and item.layout.kind == LINE_BILL and "bill_period" not in item.layout.columns:
            raise ConfigError(item.path, "--period", f"missing: layout {item.layout.name} ({item.layout.path}) has "
                              "no bill_period column, so the bill's period must be given (--period YYYY-MM)")


def ingest_files(spark: SparkSession, conf: EnvConf, planned: Sequence[Planned], period: str | None = None,
                 refs: Mapping[str, str] | None = None) -> list[Ingested]:
    """Append each planned file's lines to its kind's table (phase two; see the module docstring). `refs`: kind
    -> table reference (default: the conf's, `table_refs`)."""
    refs = refs if refs is not None else table_refs(conf, planned)
    for kind in sorted({item.layout.kind for item in planned}):
        write.check_table(spark, refs[kind], write.TARGETS[kind])
    results: list[Ingested] = []
    first_of: dict[str, Path] = {}
    # One ingested_at for the files of one ingest: a timestamp literal is compiled into Spark's generated code, and
    # one value lets files of the same layout share it (about 2 s of compiling saved per file).
    started = datetime.now(UTC)
    with readers.csv_pruning(spark, False), phase(spark, "ingest"):
        for item in planned:
            ref = refs[item.layout.kind]
            if item.sha256 in first_of:
                results.append(Ingested(item, f"same bytes as {first_of[item.sha256].name}"))
            elif write.holds(spark, ref, item.sha256):
                results.append(Ingested(item, "already ingested"))
            else:
                results.append(_append(spark, ref, item, FileFacts(
                    source_file=item.path.name, source_sha256=item.sha256, ingested_at=started,
                    phone_region=item.layout.phone_region or conf.phone_region, period=period)))
            first_of.setdefault(item.sha256, item.path)
    return results


def _append(spark: SparkSession, ref: str, item: Planned, facts: FileFacts) -> Ingested:
    """Read, normalise and append one file; the numbers' cut is freed once the lines are written."""
    layout = item.layout
    raw = readers.read(spark, item.path, item.kind, item.match)
    numbers = (materialize_freeing(partial(e164_numbers, raw, layout, facts.phone_region))
               if phone_columns(layout) else None)
    if layout.kind == CALL_INVOICE:
        assert numbers is not None             # a call_invoice layout always maps destination_number
        transform = normalize(layout, facts, numbers)
    else:
        transform = normalize_bill(layout, facts, numbers)
    # The counts come from the write's own pass (an Observation), not from reading the lines back.
    counted = Observation(f"ingest {item.sha256[:16]} {time.monotonic_ns()}")
    lines = raw.transform(transform).observe(counted, F.count(F.lit(1)).alias("n"),
                                             F.count("parse_error").alias("bad"))
    try:
        appended = write.append(lines, ref, item.sha256, write.TARGETS[layout.kind])
    finally:
        if numbers is not None:
            release(numbers)
    if not appended.committed:             # Delta skipped the write: the query never ran, nothing was counted
        return Ingested(item, "already ingested", version=appended.version)
    counts = counted.get
    LOG.info("%s: %s lines as layout %s (%s with parse_error), table version %s", item.path.name, counts["n"],
             item.layout.name, counts["bad"], appended.version)
    return Ingested(item, "committed", int(counts["n"]), int(counts["bad"]), appended.version)


def check_tables(conf: EnvConf) -> None:
    """The conf must name at least one table ingest appends to (checked before any file is read)."""
    names = [target.table for target in write.TARGETS.values()]
    if not any(conf.tables.get(name) for name in names):
        raise ConfigError(conf.path, "tables", f"names none of {', '.join(names)}: telco-ra ingest appends "
                          "carrier invoice files to the first, carrier bill files to the second")


def table_refs(conf: EnvConf, planned: Sequence[Planned]) -> dict[str, str]:
    """Kind -> the conf's table for the kinds of the planned files; ConfigError (exit 2) names a missing one and
    the file that needs it."""
    refs: dict[str, str] = {}
    for item in planned:
        kind = item.layout.kind
        target = write.TARGETS[kind]
        ref = conf.tables.get(target.table)
        if not ref:
            raise ConfigError(conf.path, f"tables.{target.table}", f"missing: telco-ra ingest appends the lines of "
                              f"{item.path} (layout {item.layout.name}, a {kind} layout) to this table")
        refs[kind] = ref
    return refs


def render(results: Sequence[Ingested]) -> str:
    """The console summary: one line per file (no phone number appears in it)."""
    width = max((len(r.file.path.name) for r in results), default=0)
    out = []
    for r in results:
        what = (f"{r.lines} lines ({r.parse_errors} with parse_error), table version {r.version}"
                if r.status == "committed" else r.status)
        out.append(f"{r.file.path.name:<{width}}  {r.file.layout.name:<18} {r.file.kind:<4}  {what}\n")
    return "".join(out)


def run(conf_path: str, targets: Sequence[str], period: str | None = None, out: TextIO | None = None) -> int:
    """The command: 0 when every file is in the table (new or already), ConfigError (exit 2) before any write."""
    conf = load_conf(conf_path)
    check_tables(conf)
    if period is not None and not PERIOD.match(period):
        raise ConfigError("--period", period, "expected YYYY-MM, e.g. 2026-03")
    layouts = load_layouts(conf.carriers)
    planned = [plan(path, layouts) for path in expand(targets)]
    check_period(planned, period)
    refs = table_refs(conf, planned)
    from jobs.session import build_session

    spark = build_session(conf.spark)
    results = ingest_files(spark, conf, planned, period, refs)
    (out or sys.stdout).write(render(results))
    return 0
