"""Regression fixtures of flagged rows: a folder of input rows and the outcome one record must get from them.

    tests/fixtures/flagged/<fixture-id>/
        fixture.yaml            ruleset name and version, cycle, the conf values that change outcomes, the record
        expected.yaml           the outcome the record must get (a person edits it to the correct one) and why
        tables/<table>.jsonl    the rows of every table the ruleset reads, one JSON object a line (may be empty)
        tables/<table>.schema.json   the table's Spark schema (columns and types exactly as stored)
        ignore_list.jsonl       the ignore entry that made the record IGNORED, where one did
        carriers/*.yaml         the conf's carrier layouts, where the ruleset builds an input from them

`replay` writes the rows as Delta tables in a scratch folder, writes a conf naming them, and runs the ruleset through
the real run path (jobs.run.execute); `problems` says how the record's outcome differs from expected.yaml. The flag
command replays a fixture before writing it (with the run's own ruleset: the rows must give the run's outcome);
tests/test_flagged_fixtures.py replays every committed one with `rulesets/<name>.yaml` as it is now.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml
from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import StructType

from jobs.config import Cycle, EnvConf, load_conf
from jobs.flag.context import Context
from jobs.flag.source import JSON_OPTIONS
from jobs.outputs import read_output, table_ref
from jobs.report.masking import mask_phones_in_text_str
from jobs.ruleset import Ruleset
from jobs.run import execute
from jobs.utc import parse_instant
from transforms.schema import IGNORE_LIST

FIXTURES = Path("tests/fixtures/flagged")
FIXTURE_FILE, EXPECTED_FILE, TABLES, IGNORES, CARRIERS = (
    "fixture.yaml", "expected.yaml", "tables", "ignore_list.jsonl", "carriers")
READ_OPTIONS = {"mode": "FAILFAST", "timestampFormat": JSON_OPTIONS["timestampFormat"]}


class FixtureError(ValueError):
    """A fixture folder that cannot be read as one: the message names the file and the key or line."""


@dataclass(frozen=True)
class Fixture:
    folder: Path
    fixture_id: str
    ruleset: str                                  # rulesets/<ruleset>.yaml
    ruleset_version: str                          # the version the flagged run used (information)
    cycle: Cycle
    phone_region: str
    suspense_sla_days: int | None
    ignore_as_of: datetime | None
    tables: Mapping[str, tuple[StructType, list[str]]]
    ignore_rows: list[str]
    record: Mapping[str, Any]                     # control_point_id, side, record_id, payload_hash
    expected: Mapping[str, Any]                   # outcome, and reason_code where given

    @property
    def carriers(self) -> Path | None:
        folder = self.folder / CARRIERS
        return folder if folder.is_dir() else None


@dataclass(frozen=True)
class Replayed:
    """What the replay gave the fixture's record (None fields: no row of it)."""

    outcome: str | None
    reason_code: str | None
    rule: str | None
    reason: str | None


def fixture_id(run_id: str, row: Mapping[str, Any]) -> str:
    """`<control point>-<side>-<record id>-<8 hex>`: readable, a safe folder name (no phone number in clear), and
    one per flagged row of one run (the hex: of the run id and the record key)."""
    digest = hashlib.sha256(f"{run_id}|{row['control_point_id']}|{row['side']}|{row['record_key']}".encode())
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", _masked(str(row["record_id"]))).strip("_")[:40]
    return f"{row['control_point_id']}-{str(row['side']).lower()}-{safe}-{digest.hexdigest()[:8]}"


def _masked(text: str) -> str:
    return mask_phones_in_text_str(text) or ""


def _comment(text: str) -> str:
    """`text` as YAML comment lines of at most 120 characters, phone numbers masked."""
    return "".join(f"# {line}\n" for line in textwrap.wrap(_masked(text), 118, break_on_hyphens=False))


def _instant(value: datetime | None) -> str | None:
    return None if value is None else f"{value:%Y-%m-%dT%H:%M:%S.%f}Z"


def write_fixture(folder: Path, *, fid: str, ruleset: Ruleset, cycle: Cycle, conf: EnvConf, row: Mapping[str, Any],
                  context: Context, versions: Mapping[str, int], ignore_rows: Sequence[str],
                  ignore_as_of: datetime | None, flagged: Mapping[str, Any]) -> Path:
    """Write the fixture folder (which must not exist): `context`'s rows, read at `versions`; `flagged`: run_id,
    flag_id, at, by, why, rule."""
    folder.mkdir(parents=True)
    tables = folder / TABLES
    tables.mkdir()
    for table, rows in sorted(context.rows.items()):
        (tables / f"{table}.jsonl").write_text("".join(r.json + "\n" for r in rows), encoding="utf-8")
        fields = json.loads(context.schemas[table])["fields"]       # one column a line: readable, diffable
        (tables / f"{table}.schema.json").write_text(
            '{"type": "struct", "fields": [\n' + ",\n".join(json.dumps(f) for f in fields) + "\n]}\n",
            encoding="utf-8")
    if ignore_rows:
        (folder / IGNORES).write_text("".join(line + "\n" for line in ignore_rows), encoding="utf-8")
    if ruleset.layout_inputs():
        (folder / CARRIERS).mkdir()
        for layout in sorted(Path(conf.carriers).iterdir()):
            if layout.suffix in (".yaml", ".yml") and layout.is_file():
                shutil.copyfile(layout, folder / CARRIERS / layout.name)
    roles: dict[str, int] = {}
    for r in (r for rows in context.rows.values() for r in rows):
        for role in r.roles:
            roles[role] = roles.get(role, 0) + 1
    spec = {
        "fixture": fid,
        "ruleset": ruleset.name,
        "ruleset_version": ruleset.version,
        "cycle": {"id": cycle.cycle_id, "start": _instant(cycle.start), "end": _instant(cycle.end),
                  "close": _instant(cycle.close), **({"cutoff": _instant(cycle.cutoff)} if cycle.cutoff else {})},
        "conf": {"phone_region": conf.phone_region, "suspense_sla_days": conf.suspense_sla_days},
        "ignore_as_of": _instant(ignore_as_of) if ignore_rows else None,
        "tables": {t: {"rows": f"{TABLES}/{t}.jsonl", "schema": f"{TABLES}/{t}.schema.json", "count": len(rows),
                       "read_at_version": versions.get(t)}
                   for t, rows in sorted(context.rows.items())},
        "record": {k: row[k] for k in ("control_point_id", "side", "record_id", "payload_hash")},
        "flagged": {"run_id": flagged["run_id"], "flag_id": flagged["flag_id"], "at": _instant(flagged["at"]),
                    "by": flagged["by"], "outcome": row["outcome"], "rule": flagged["rule"],
                    "reason": mask_phones_in_text_str(row["reason"]), "context_level": context.level,
                    "rows_by_role": dict(sorted(roles.items()))},
    }
    header = (f"Written by `telco-ra flag` from run {flagged['run_id']}: the input rows record {row['record_id']} "
              f"({row['control_point_id']} {row['side']}) was decided from, read at the Delta versions the run read. "
              f"tests/test_flagged_fixtures.py runs rulesets/{ruleset.name}.yaml over them (docs/flag.md).")
    (folder / FIXTURE_FILE).write_text(_comment(header) + yaml.safe_dump(spec, sort_keys=False, width=120),
                                       encoding="utf-8")
    expected = {"outcome": row["outcome"], "reason_code": row["reason_code"], "why": flagged["why"]}
    note = (f"The outcome rulesets/{ruleset.name}.yaml must give record {row['record_id']} ({row['control_point_id']} "
            f"{row['side']}) over the rows of this folder. It is the outcome run {flagged['run_id']} gave when "
            f"{flagged['by']} flagged it as wrong (why: below). Once the rule is fixed, set `outcome` (and "
            "`reason_code`: null where the outcome has none) to the correct one: tests/test_flagged_fixtures.py then "
            "holds the rules to it.")
    (folder / EXPECTED_FILE).write_text(_comment(note) + yaml.safe_dump(expected, sort_keys=False, width=120),
                                        encoding="utf-8")
    return folder


# ------------------------------------------------------------------------------------------------------ reading
def _yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise FixtureError(f"{path}: no such file")
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise FixtureError(f"{path}: expected a mapping")
    return data


def _get(data: Mapping[str, Any], path: Path, key: str) -> Any:
    value: Any = data
    for part in key.split("."):
        if not isinstance(value, Mapping) or part not in value:
            raise FixtureError(f"{path}: {key}: missing")
        value = value[part]
    return value


def _rows(folder: Path, table: str, spec: Mapping[str, Any], path: Path) -> tuple[StructType, list[str]]:
    """A table's schema and its JSON lines, each line checked to name exactly the schema's columns (a misspelt
    column would otherwise read as null)."""
    schema_file, rows_file = folder / str(_get(spec, path, "schema")), folder / str(_get(spec, path, "rows"))
    try:
        schema = StructType.fromJson(json.loads(schema_file.read_text(encoding="utf-8")))
    except (OSError, ValueError, KeyError) as exc:
        raise FixtureError(f"{schema_file}: not a Spark schema ({exc})") from exc
    if not rows_file.is_file():
        raise FixtureError(f"{rows_file}: no such file (tables.{table}.rows in {path.name})")
    columns = set(schema.fieldNames())
    lines = []
    for n, line in enumerate(rows_file.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            keys = set(json.loads(line))
        except ValueError as exc:
            raise FixtureError(f"{rows_file}: line {n}: not JSON ({exc})") from exc
        if keys != columns:
            raise FixtureError(f"{rows_file}: line {n}: columns {sorted(keys ^ columns)} differ from "
                               f"{schema_file.name}")
        lines.append(line)
    return schema, lines


def load_fixture(folder: Path) -> Fixture:
    """Read and check a fixture folder; FixtureError names the file and key or line that is wrong."""
    path, exp_path = folder / FIXTURE_FILE, folder / EXPECTED_FILE
    spec, expected = _yaml(path), _yaml(exp_path)
    if not isinstance(expected.get("outcome"), str) or not expected["outcome"].strip():
        raise FixtureError(f"{exp_path}: outcome: {expected.get('outcome')!r} is not an outcome name")
    try:
        bounds = {b: parse_instant(str(_get(spec, path, f"cycle.{b}"))) for b in ("start", "end", "close")}
        cutoff = spec["cycle"].get("cutoff")
        cycle = Cycle(str(_get(spec, path, "cycle.id")), bounds["start"], bounds["end"], bounds["close"],
                      parse_instant(str(cutoff)) if cutoff else None)
        as_of = parse_instant(str(spec["ignore_as_of"])) if spec.get("ignore_as_of") else None
    except ValueError as exc:
        raise FixtureError(f"{path}: cycle / ignore_as_of: not an ISO 8601 instant with a zone ({exc})") from exc
    tables = {str(t): _rows(folder, str(t), s, path) for t, s in (_get(spec, path, "tables") or {}).items()}
    ignore_file = folder / IGNORES
    ignores = [line for line in ignore_file.read_text(encoding="utf-8").splitlines() if line.strip()] \
        if ignore_file.is_file() else []
    conf = spec.get("conf") or {}
    return Fixture(folder, str(_get(spec, path, "fixture")), str(_get(spec, path, "ruleset")),
                   str(spec.get("ruleset_version")), cycle, str(conf.get("phone_region") or "US"),
                   conf.get("suspense_sla_days"), as_of, tables, ignores, dict(_get(spec, path, "record")),
                   expected)


# ------------------------------------------------------------------------------------------------------ replaying
def replay(spark: SparkSession, fixture: Fixture, ruleset: Ruleset, workdir: Path) -> Replayed:
    """Run `ruleset` over the fixture's rows (Delta tables under `workdir`, which must be empty or absent) through
    jobs.run.execute, and return what the record got."""
    missing = sorted(ruleset.tables() - set(fixture.tables))
    if missing:
        raise FixtureError(f"{fixture.folder / FIXTURE_FILE}: tables: no rows for {', '.join(missing)}, which "
                           f"ruleset {ruleset.name} reads")
    refs = {}
    for table in sorted(ruleset.tables()):
        schema, lines = fixture.tables[table]
        refs[table] = str(workdir / "input" / table)
        _frame(spark, schema, lines).write.format("delta").mode("overwrite").save(refs[table])
    output = workdir / "output"
    if fixture.ignore_rows:
        _frame(spark, IGNORE_LIST, fixture.ignore_rows).write.format("delta").save(str(output / "ignore_list"))
    c = fixture.cycle
    bounds = {"start": _instant(c.start), "end": _instant(c.end), "close": _instant(c.close),
              **({"cutoff": _instant(c.cutoff)} if c.cutoff else {})}
    conf_data: dict[str, Any] = {"tables": refs, "output": str(output), "cycles": {c.cycle_id: bounds},
                                 "phone_region": fixture.phone_region}
    if fixture.suspense_sla_days is not None:
        conf_data["suspense_sla_days"] = fixture.suspense_sla_days
    if fixture.carriers is not None:
        conf_data["carriers"] = str(fixture.carriers)
    conf_path = workdir / "conf.yaml"
    conf_path.write_text(yaml.safe_dump(conf_data), encoding="utf-8")
    result = execute(spark, load_conf(conf_path), ruleset, c.cycle_id, f"fixture-{fixture.fixture_id}",
                     ignore_as_of=fixture.ignore_as_of)
    rec = fixture.record
    rows = (read_output(spark, table_ref(str(output), "record_outcome"))
            .where((F.col("run_id") == result.run_id) & (F.col("control_point_id") == rec["control_point_id"])
                   & (F.col("side") == rec["side"]) & (F.col("record_id") == rec["record_id"]))
            .select("outcome", "reason_code", "rule", "reason", "payload_hash").collect())    # one id: a few rows
    if len(rows) > 1:
        rows = [r for r in rows if r["payload_hash"] == rec.get("payload_hash")]
    if len(rows) != 1:
        return Replayed(None, None, None, f"{len(rows)} rows of record {rec['record_id']} in the replay")
    r = rows[0]
    return Replayed(r["outcome"], r["reason_code"], r["rule"], r["reason"])


def _frame(spark: SparkSession, schema: StructType, lines: Sequence[str]) -> Any:
    if not lines:
        return spark.createDataFrame([], schema)
    text = spark.createDataFrame([(line,) for line in lines], "value string")
    return text.select(F.from_json("value", schema, READ_OPTIONS).alias("r")).select("r.*")


def problems(fixture: Fixture, got: Replayed) -> list[str]:
    """How the replayed record differs from expected.yaml: its outcome, and its reason_code where expected.yaml
    gives one (masked: what a test prints)."""
    where = f"{fixture.folder.name}: record {fixture.record['record_id']} ({fixture.record['control_point_id']} " \
            f"{fixture.record['side']})"
    out = []
    if got.outcome is None:
        out.append(f"{where}: {got.reason}")
    elif got.outcome != fixture.expected["outcome"]:
        out.append(f"{where}: outcome {got.outcome} (rule {got.rule}: {got.reason}), expected "
                   f"{fixture.expected['outcome']}")
    code = fixture.expected.get("reason_code")
    if got.outcome is not None and code is not None and got.reason_code != code:
        out.append(f"{where}: reason_code {got.reason_code}, expected {code}")
    return [_masked(p) for p in out]
