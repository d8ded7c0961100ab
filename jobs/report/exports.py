"""Per owner team, its open cases as a CSV and a Parquet file a person opens without Spark.

Open means someone still has to act: the current status (latest row of the case history) is OPEN, REOPENED,
ACKNOWLEDGED, IN_CORRECTION or PENDING_APPROVAL. Each row carries what is needed to act: the case, its business key
(account, number, service type, record ids), exposure and class, status and SLA state, dates, the correction the
ruleset asks for, the reason and a one-line evidence summary (source table, record id and Delta version of each
record). Phone numbers are masked (`+1555***4567`), in the number column and inside the free text, unless the conf
allows clear numbers for that team (`report: {clear_numbers_for: [team, ...]}`).

Rows are streamed to the driver a partition at a time (`toLocalIterator`) and written by the driver, so the files
land next to the report on the machine that writes it, whatever the cluster; nothing holds a team's cases in memory
at once.
"""

from __future__ import annotations

import csv
import logging
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from jobs.report.figures import ACTIVE, sla_state
from jobs.report.masking import mask_phones_in_text
from jobs.utc import as_utc, utc_text
from transforms.phone import mask_phone

LOG = logging.getLogger(__name__)

COLUMNS: tuple[tuple[str, pa.DataType], ...] = (
    ("case_id", pa.string()), ("cycle_id", pa.string()), ("control_point_id", pa.string()),
    ("case_type", pa.string()), ("severity", pa.string()), ("owner_team", pa.string()),
    ("account_id", pa.string()), ("msisdn", pa.string()), ("service_type", pa.string()),
    ("record_ids", pa.string()), ("exposure_amount", pa.decimal128(18, 6)), ("exposure_class", pa.string()),
    ("currency", pa.string()), ("status", pa.string()), ("sla", pa.string()),
    ("opened_at", pa.timestamp("us", tz="UTC")), ("first_opened_at", pa.timestamp("us", tz="UTC")),
    ("due_at", pa.timestamp("us", tz="UTC")), ("correction_action", pa.string()), ("reason", pa.string()),
    ("evidence_summary", pa.string()),
)
SCHEMA = pa.schema([pa.field(name, dtype) for name, dtype in COLUMNS])
TIMES = {name for name, dtype in COLUMNS if pa.types.is_timestamp(dtype)}
BATCH = 5_000


@dataclass(frozen=True)
class TeamExport:
    owner_team: str
    rows: int
    csv: Path
    parquet: Path
    clear_numbers: bool


def file_stem(team: str) -> str:
    """A file name for a team: letters, digits, '.', '_' and '-' kept, anything else '_'."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", team) or "_"


def _evidence_summary() -> Column:
    """'mediation cdr C-A @v3; rating rated_event R-A @v2': each evidence record, in one line."""
    one = F.transform(F.col("evidence"), lambda e: F.concat_ws(
        " ", e["source_system"], e["source_table"], e["record_id"],
        F.concat(F.lit("@v"), F.coalesce(e["table_version"].cast("string"), F.lit("?")))))
    return F.array_join(one, "; ")


def open_case_rows(current: DataFrame, as_of: datetime, clear_teams: Sequence[str]) -> DataFrame:
    """The export's columns for the open cases among `current` (current-state rows), masked unless the team is in
    `clear_teams`; ordered by team, then most urgent first."""
    clear = F.col("owner_team").isin(*clear_teams) if clear_teams else F.lit(False)

    def masked(col: Column, mask: Any) -> Column:
        return F.when(clear, col).otherwise(mask(col))

    return current.where(F.col("status").isin(*ACTIVE)).select(
        "case_id", "cycle_id", "control_point_id", "case_type", "severity",
        F.coalesce(F.col("owner_team"), F.lit("(none)")).alias("owner_team"),
        masked(F.col("business_key.account_id"), mask_phones_in_text).alias("account_id"),
        masked(F.col("business_key.msisdn"), mask_phone).alias("msisdn"),
        F.col("business_key.service_type").alias("service_type"),
        masked(F.array_join(F.col("business_key.record_ids"), " "), mask_phones_in_text).alias("record_ids"),
        "exposure_amount", "exposure_class", "currency", "status", sla_state(as_of).alias("sla"),
        "opened_at", F.coalesce("first_opened_at", "opened_at").alias("first_opened_at"), "due_at",
        "correction_action",
        masked(F.col("reason"), mask_phones_in_text).alias("reason"),
        masked(_evidence_summary(), mask_phones_in_text).alias("evidence_summary"),
    ).orderBy("owner_team", F.asc_nulls_last("due_at"), F.desc(F.abs("exposure_amount")), "case_id")


class _TeamFiles:
    """One team's CSV and Parquet files, written a batch at a time."""

    def __init__(self, out_dir: Path, team: str, clear: bool) -> None:
        stem = file_stem(team)
        self.team, self.clear, self.rows = team, clear, 0
        self.csv_path = out_dir / f"open-cases-{stem}.csv"
        self.parquet_path = out_dir / f"open-cases-{stem}.parquet"
        self._csv_file = self.csv_path.open("w", newline="", encoding="utf-8")
        self._csv = csv.writer(self._csv_file)
        self._csv.writerow([name for name, _ in COLUMNS])
        self._parquet = pq.ParquetWriter(str(self.parquet_path), SCHEMA)
        self._batch: list[dict[str, Any]] = []

    def add(self, row: dict[str, Any]) -> None:
        self._csv.writerow([_csv_text(row[name], name) for name, _ in COLUMNS])
        self._batch.append(row)
        self.rows += 1
        if len(self._batch) >= BATCH:
            self._flush()

    def _flush(self) -> None:
        if self._batch:
            self._parquet.write_table(pa.Table.from_pylist(self._batch, schema=SCHEMA))
            self._batch = []

    def close(self) -> TeamExport:
        self._flush()
        self._parquet.close()
        self._csv_file.close()
        return TeamExport(self.team, self.rows, self.csv_path, self.parquet_path, self.clear)


def _csv_text(value: Any, name: str) -> str:
    if value is None:
        return ""
    if name in TIMES:
        return utc_text(value)
    if isinstance(value, Decimal):
        return format(value, "f")
    return str(value)


def _rows(df: DataFrame) -> Iterator[dict[str, Any]]:
    for r in df.toLocalIterator(prefetchPartitions=False):
        row = r.asDict()
        for name in TIMES:
            row[name] = as_utc(row[name])
        yield row


def write_exports(current: DataFrame, out_dir: Path, as_of: datetime, clear_teams: Sequence[str],
                  teams: Sequence[str] = ()) -> list[TeamExport]:
    """Write `open-cases-<team>.csv` and `.parquet` under `out_dir` for every team with open cases, and for each of
    `teams` (the ruleset's owners: a team with nothing open gets files with the header only, so an empty file says
    "nothing to do" instead of a missing one saying nothing). Returns what was written, by team."""
    out_dir.mkdir(parents=True, exist_ok=True)
    exports: list[TeamExport] = []
    files: _TeamFiles | None = None
    for row in _rows(open_case_rows(current, as_of, clear_teams)):
        if files is None or files.team != row["owner_team"]:
            if files is not None:
                exports.append(files.close())
            files = _TeamFiles(out_dir, row["owner_team"], row["owner_team"] in clear_teams)
        files.add(row)
    if files is not None:
        exports.append(files.close())
    written = {e.owner_team for e in exports}
    for team in sorted(set(teams) - written):
        exports.append(_TeamFiles(out_dir, team, team in clear_teams).close())
    LOG.info("exports: %s", ", ".join(f"{e.owner_team} {e.rows}" for e in exports) or "no open cases")
    return sorted(exports, key=lambda e: e.owner_team)
