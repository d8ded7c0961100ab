"""What a flag names: a committed run (its control_run identity) and exactly one record_outcome row of it.

The run's control_run rows carry the exact ruleset text, every input's table reference and Delta version, and the
ignore list version it read, so the row's inputs can be read as the run read them (time travel), whatever has been
written to the tables since. A row is named by its record id; the control point, the side and the record key narrow
it down where one id has several rows (a rated event is a record of three control points; a re-sent usage record
carries its id twice).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs.config import EnvConf
from jobs.inputs import PinnedTable, check_available, conform
from jobs.outputs import exists, read_output, table_ref
from jobs.report.masking import mask_phones_in_text_str
from jobs.ruleset import Ruleset, load_ruleset
from jobs.utc import instant_micros, micros_to_utc
from transforms.keys import payload_hash

RAW = "_raw"          # an input row exactly as stored (its own types): what a fixture keeps
HASH = "_ph"          # the payload hash the run gave the row (over its columns as the run conformed them)
JSON_OPTIONS = {"ignoreNullFields": "false", "timestampFormat": "yyyy-MM-dd'T'HH:mm:ss.SSSSSSXXX"}
MAX_ROWS = 20         # rows of one record id shown when a flag is ambiguous


class FlagError(ValueError):
    """A flag that names no row, or several, or a run that is not committed: exit 2, nothing written."""


def as_json(column: str = RAW) -> F.Column:
    """A struct column as one JSON object (nulls kept, instants in UTC with their offset): what a person reads in
    flagged_row and what a fixture stores, the same text."""
    return F.to_json(F.col(column), JSON_OPTIONS)


@dataclass(frozen=True)
class FlaggedRun:
    """A committed run as control_run recorded it."""

    run_id: str
    cycle_id: str
    ruleset: Ruleset
    input_tables: dict[str, str]
    input_versions: dict[str, int]
    conf_fingerprint: str
    ignore_list_version: int | None
    ignore_as_of: datetime | None

    def read(self, spark: SparkSession, table: str) -> DataFrame:
        """The rows of input `table` at the version the run read, each with `_raw` (the row as stored) and `_ph`
        (its payload hash as the run computed it: transforms/keys.py over the columns as jobs/inputs.conform cast
        them). Exit 2 (InputError) when that version is gone (vacuumed), rather than reading today's rows."""
        pinned = PinnedTable(table, self.input_tables[table], self.input_versions[table])
        check_available(spark, pinned)
        df = pinned.read(spark)
        df = df.withColumn(RAW, F.struct(*[F.col(f"`{c}`") for c in df.columns]))
        for schema in sorted({i.schema for i in self.ruleset.inputs.values() if i.table == table and i.schema}):
            df = conform(schema, df)
        return df.withColumn(HASH, payload_hash([c for c in df.columns if not c.startswith("_")]))

    def raw_schema(self, spark: SparkSession, table: str) -> str:
        """The table's schema at the run's version (Spark's JSON form), columns and types exactly as stored."""
        pinned = PinnedTable(table, self.input_tables[table], self.input_versions[table])
        return str(pinned.read(spark).schema.json())


def committed_run(spark: SparkSession, conf: EnvConf, run_id: str) -> FlaggedRun:
    """The run `run_id` as its control_run rows recorded it; FlagError when it is not committed under the conf's
    output."""
    ref = table_ref(conf.output, "control_run")
    if not exists(spark, ref):
        raise FlagError(f"--run-id {run_id!r}: no committed run under {conf.output} (no control_run table)")
    runs = read_output(spark, ref)
    optional = [c for c in ("ignore_list_version", "ignore_as_of") if c in runs.columns]
    rows = (runs.where(F.col("run_id") == run_id)
            .select("cycle_id", "ruleset_name", "ruleset_text", "input_tables", "input_versions", "conf_fingerprint",
                    *optional, *([instant_micros("ignore_as_of").alias("_as_of")] if optional else []))
            .limit(1).collect())
    if not rows:
        raise FlagError(f"--run-id {run_id!r}: no committed run of that id under {conf.output}")
    r = rows[0].asDict()
    ruleset = load_ruleset(f"control_run[{run_id}]:{r['ruleset_name']}", text=r["ruleset_text"])
    return FlaggedRun(run_id, r["cycle_id"], ruleset, dict(r["input_tables"]),
                      {k: int(v) for k, v in r["input_versions"].items()}, r["conf_fingerprint"],
                      r.get("ignore_list_version"), micros_to_utc(r.get("_as_of")))


def _where(name: str, value: str | None) -> str:
    return f" {name} {value}" if value else ""


def outcome_row(spark: SparkSession, conf: EnvConf, run: FlaggedRun, record_id: str,
                control_point: str | None = None, side: str | None = None,
                record_key: str | None = None) -> dict[str, Any]:
    """The one record_outcome row of `run` for `record_id` (narrowed by control point, side and record key), as
    its columns plus `row_json` (the whole row as JSON). FlagError naming the rows found when there is not exactly
    one."""
    if control_point is not None and control_point not in run.ruleset.control_points:
        raise FlagError(f"--control-point {control_point!r} is not a control point of run {run.run_id} (ruleset "
                        f"{run.ruleset.name}: {', '.join(run.ruleset.control_points)})")
    rows = (read_output(spark, table_ref(conf.output, "record_outcome"))
            .where((F.col("cycle_id") == run.cycle_id) & (F.col("run_id") == run.run_id)
                   & (F.col("record_id") == record_id)))
    for column, value in (("control_point_id", control_point), ("side", side), ("record_key", record_key)):
        if value is not None:
            rows = rows.where(F.col(column) == value)
    found = (rows.select("*", F.to_json(F.struct(*[F.col(c) for c in rows.columns]), JSON_OPTIONS).alias("row_json"))
             .orderBy("control_point_id", "side", "record_key").limit(MAX_ROWS + 1).collect())
    asked = (f"record {record_id!r}{_where('control point', control_point)}{_where('side', side)}"
             f"{_where('record key', record_key)}")
    if not found:
        raise FlagError(mask_phones_in_text_str(f"{asked}: no record_outcome row in run {run.run_id}") or "")
    if len(found) > 1:
        listed = "; ".join(f"{r['control_point_id']} {r['side']} key {r['record_key']} ({r['outcome']})"
                           for r in found[:MAX_ROWS])
        places = {(r["control_point_id"], r["side"]) for r in found}
        narrow = "--control-point/--side" if len(places) > 1 else "--record-key (copies share the id)"
        raise FlagError(mask_phones_in_text_str(f"{asked}: {len(found)} rows in run {run.run_id} ({listed}): "
                                                f"name one with {narrow}") or "")
    row = found[0].asDict()
    row["row"] = json.loads(row["row_json"])
    return row
