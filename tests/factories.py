"""Small input tables for tests: explicit rows with contract defaults filled in, written as real Delta tables."""

from __future__ import annotations

import atexit
import io
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, NamedTuple

import yaml
from pyspark.sql import DataFrame, SparkSession

from transforms.schema import INPUT_SCHEMAS

T0 = datetime(2026, 6, 10, 12, 0, 0, tzinfo=UTC)
CYCLE = "2026-06"
CYCLE_BOUNDS = {"start": "2026-06-01T00:00:00Z", "end": "2026-07-01T00:00:00Z", "close": "2026-07-03T00:00:00Z"}
RULESET = str(Path(__file__).resolve().parent.parent / "rulesets" / "usage_to_bill.yaml")

DEFAULTS: dict[str, dict[str, Any]] = {
    "cdr": {"source_file": "F1", "msisdn": "+15551230001", "account_id": "ACC-1", "service_type": "VOICE",
            "direction": "MO", "other_party": "+15559870001", "start_time": T0, "duration_s": 60, "volume_bytes": 0,
            "cycle_id": CYCLE, "received_at": T0 + timedelta(hours=1)},
    "rated_event": {"msisdn": "+15551230001", "account_id": "ACC-1", "service_type": "VOICE", "direction": "MO",
                    "other_party": "+15559870001", "start_time": T0, "cycle_id": CYCLE, "quantity": 60,
                    "tariff_id": "VOICE-STD", "tariff_version": "v1", "amount": Decimal("0.600000"),
                    "currency": "USD", "rated_at": T0 + timedelta(hours=2)},
    "bill_charge": {"product_id": None, "account_id": "ACC-1", "msisdn": "+15551230001", "cycle_id": CYCLE,
                    "invoice_id": "INV-1", "charge_type": "USAGE", "billing_product_code": "USAGE-VOICE",
                    "quantity": 1, "amount": Decimal("0.600000"), "currency": "USD",
                    "billed_at": T0 + timedelta(days=25)},
    "suspense": {"reason": "unknown subscriber", "rejected_at": T0, "status": "OPEN"},
    "tariff": {},
    "product_inventory": {"account_id": "ACC-1", "offering_id": "OFF-1", "billing_product_code": "BB-100",
                          "state": "ACTIVE", "activation_date": datetime(2026, 1, 1, tzinfo=UTC),
                          "termination_date": None, "monthly_fee": Decimal("30.000000"), "quantity": 1,
                          "parent_product_id": None, "exemption": None},
    "provisioned_item": {"item_type": "EXTENSION", "account_id": "ACC-1", "domain": "acc1.pbx", "user_kind": "USER",
                         "number": "101", "queue_id": None, "role": None, "state": "ACTIVE",
                         "created_at": datetime(2026, 1, 1, tzinfo=UTC), "deleted_at": None,
                         "snapshot_at": datetime(2026, 6, 30, 23, 45, tzinfo=UTC)},
    "billing_subscription": {"account_id": "ACC-1", "product_code": "EXT-STD", "item_ref": "101", "quantity": 1,
                             "unit_price": Decimal("20.000000"), "currency": "USD", "status": "ACTIVE",
                             "start_date": datetime(2026, 1, 1, tzinfo=UTC), "end_date": None},
}

# VOICE: 0.01 per second, per-minute rounding, minimum 0.05. SMS 0.05 per event. DATA 1e-8 per byte, per-MB.
TARIFFS = [
    {"tariff_id": "VOICE-STD", "tariff_version": "v1", "service_type": "VOICE",
     "valid_from": datetime(2026, 1, 1, tzinfo=UTC), "valid_to": None, "rate_per_unit": Decimal("0.01000000"),
     "rounding_increment": 60, "minimum_charge": Decimal("0.050000"), "currency": "USD"},
    {"tariff_id": "SMS-STD", "tariff_version": "v1", "service_type": "SMS",
     "valid_from": datetime(2026, 1, 1, tzinfo=UTC), "valid_to": None, "rate_per_unit": Decimal("0.05000000"),
     "rounding_increment": 1, "minimum_charge": Decimal("0"), "currency": "USD"},
    {"tariff_id": "DATA-STD", "tariff_version": "v1", "service_type": "DATA",
     "valid_from": datetime(2026, 1, 1, tzinfo=UTC), "valid_to": None, "rate_per_unit": Decimal("0.00000001"),
     "rounding_increment": 1048576, "minimum_charge": Decimal("0.010000"), "currency": "USD"},
]


def frame(spark: SparkSession, table: str, rows: Iterable[Mapping[str, Any]]) -> DataFrame:
    return spark.createDataFrame(_rows(table, rows), INPUT_SCHEMAS[table])


class _WrittenTables:
    """Input tables this process has written with Delta, by content: the same rows are copied, not written again.

    Most tests write the same few inputs (the scenario's month, and the empty tables of the rulesets they do not
    run): eight Delta writes, 3.5-4.3 s a call in a warm session, most of them rows written before. A copy of a table
    Delta wrote is that table (its log at version 0 and its Parquet files), at a path of the test's own, so a test
    may append to or vacuum its copy; files are copied with fresh modification times, as a new write would have
    them. Kept per Spark application, under one temporary folder removed at exit.
    """

    def __init__(self) -> None:
        self._folder: Path | None = None
        self._written: dict[tuple[str, str, str], Path] = {}

    def write(self, spark: SparkSession, table: str, rows: list[tuple[Any, ...]], path: Path) -> None:
        """`rows` (full tuples of `table`'s input schema) as a new Delta table at `path` (overwritten if there)."""
        key = (spark.sparkContext.applicationId, table, repr(rows))
        template = self._written.get(key)
        if template is not None and not path.exists():
            shutil.copytree(template, path, copy_function=shutil.copy)
            return
        spark.createDataFrame(rows, INPUT_SCHEMAS[table]).write.format("delta").mode("overwrite").save(str(path))
        if template is None:
            if self._folder is None:
                self._folder = Path(tempfile.mkdtemp(prefix="telco-ra-test-inputs-"))
                atexit.register(shutil.rmtree, self._folder, True)
            copy = self._folder / str(len(self._written))
            shutil.copytree(path, copy, copy_function=shutil.copy)
            self._written[key] = copy


_WRITTEN = _WrittenTables()


def _rows(table: str, rows: Iterable[Mapping[str, Any]], defaults: bool = True) -> list[tuple[Any, ...]]:
    """`rows` as full tuples of `table`'s input schema; a column a row does not give is DEFAULTS' (or null)."""
    base = DEFAULTS[table] if defaults else {}
    return [tuple({**base, **row}.get(f.name) for f in INPUT_SCHEMAS[table].fields) for row in rows]


def write_table(spark: SparkSession, table: str, rows: Iterable[Mapping[str, Any]], path: Path | str,
                defaults: bool = True) -> str:
    """`rows` as input `table`, a new Delta table at `path` (columns not given from DEFAULTS unless `defaults` is
    false); the same rows written before in this session are copied (_WrittenTables). Returns the path."""
    _WRITTEN.write(spark, table, _rows(table, rows, defaults), Path(path))
    return str(path)


def write_inputs(spark: SparkSession, root: Path, tables: Mapping[str, Iterable[Mapping[str, Any]]]) -> Path:
    """Write each input table (missing ones empty; tariff defaults to TARIFFS) and a conf; returns the conf path.
    A table whose rows this session already wrote is a copy of that write (_WrittenTables)."""
    refs = {}
    for table in DEFAULTS:          # the tables of the usage, inventory and provisioning rulesets
        rows = list(tables.get(table, TARIFFS if table == "tariff" else []))
        refs[table] = write_table(spark, table, rows, root / "input" / table)
    conf = {"tables": refs, "output": str(root / "output"), "cycles": {CYCLE: CYCLE_BOUNDS}}
    conf_path = root / "conf.yaml"
    conf_path.write_text(yaml.safe_dump(conf))
    return conf_path


@contextmanager
def session_conf(spark: SparkSession, settings: Mapping[str, str]) -> Iterator[None]:
    """Session settings for the block only: each key gets its previous value back (or is unset) on the way out."""
    previous = {key: spark.conf.get(key, None) for key in settings}
    for key, value in settings.items():
        spark.conf.set(key, value)
    try:
        yield
    finally:
        for key, value in previous.items():
            if value is None:
                spark.conf.unset(key)
            else:
                spark.conf.set(key, value)


class Cli(NamedTuple):
    """What `telco-ra ...` did in-process: its exit code and what it wrote."""

    code: int
    out: str
    err: str


def run_cli(spark: SparkSession, *argv: str) -> Cli:
    """jobs.cli.main in-process (as an operator types it); the session settings it re-applies are put back
    afterwards (it builds its session from the conf, which here is the suite's one session)."""
    from jobs.cli import main

    saved = dict(spark.conf.getAll)
    out, err = io.StringIO(), io.StringIO()
    try:
        with redirect_stdout(out), redirect_stderr(err):
            code = main(list(argv))
    finally:
        for key, value in dict(spark.conf.getAll).items():
            if key in saved and saved[key] != value and spark.conf.isModifiable(key):
                spark.conf.set(key, saved[key])
    return Cli(code, out.getvalue(), err.getvalue())


def ingest_conf(root: Path, carriers: Path, tables: Sequence[str] = ("carrier_invoice_line",)) -> Path:
    """`<root>/conf.yaml` for `telco-ra ingest`: the tables named under `<root>/lake`, a March 2026 cycle and the
    carrier layouts' folder."""
    conf = root / "conf.yaml"
    refs = ", ".join(f"{name}: {root / 'lake' / name}" for name in tables)
    conf.write_text(f"tables: {{{refs}}}\n"
                    f"output: {root / 'lake' / 'output'}\n"
                    "cycles: {\"2026-03\": {start: 2026-03-01T00:00:00Z, end: 2026-04-01T00:00:00Z, "
                    "close: 2026-04-03T00:00:00Z}}\n"
                    f"carriers: {carriers}\n")
    return conf


def write_workbook(path: Path, summary: Sequence[Sequence[Any]], sheet: str, rows: Sequence[Sequence[Any]]) -> None:
    """An XLSX workbook as carrier portals export one: a first sheet "Summary" holding `summary`, then `sheet`
    holding `rows` exactly as given (title rows, blank rows, the header, Excel-typed cells)."""
    import openpyxl

    book = openpyxl.Workbook()
    first = book.active
    assert first is not None
    first.title = "Summary"
    for row in summary:
        first.append(list(row))
    data = book.create_sheet(sheet)
    for row in rows:
        data.append(list(row))
    book.save(path)


def ingest_again(spark: SparkSession, root: Path, table: str, copied: Path) -> str:
    """`telco-ra ingest` once more over `<root>/inbox` (already ingested with `<root>/conf.yaml`) and over a copy of
    one of its files (same bytes, another name): checks that it exits 0 and leaves `<root>/lake/<table>` as it was,
    rows and Delta history; returns what it printed."""
    ref = str(root / "lake" / table)
    before = spark.sql(f"DESCRIBE HISTORY delta.`{ref}`").count()
    count = spark.read.format("delta").load(ref).count()
    again = root / "again"
    again.mkdir()
    shutil.copy(root / "inbox" / copied, again / f"{copied.stem} copy{copied.suffix}")
    done = run_cli(spark, "ingest", "--conf", str(root / "conf.yaml"), str(root / "inbox"), str(again))
    assert done.code == 0, done.err
    assert spark.read.format("delta").load(ref).count() == count
    assert spark.sql(f"DESCRIBE HISTORY delta.`{ref}`").count() == before
    return done.out


def jobs_started(spark: SparkSession) -> int:
    """How many Spark jobs this context has started: the DAG scheduler's next job id, exact whatever ran (a run's
    job count is the difference before and after it)."""
    return int(spark.sparkContext._jsc.sc().dagScheduler().nextJobId())  # type: ignore[union-attr]
