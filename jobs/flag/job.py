"""`telco-ra flag`: one wrong row -> its context in `flagged_row` and a regression fixture the test suite runs.

    telco-ra flag --conf C --run-id R --record-id ID [--control-point CP] [--side LEFT|RIGHT] [--record-key K]
                  --why "..." [--by WHO] [--fixtures tests/fixtures/flagged]

Extract (source.py: the run, its row; context.py: the rows the outcome depends on, at the run's input versions) ->
check (fixture.py: those rows alone, through the run's own ruleset, give the same outcome and rule; else the wider
context is tried) -> load (the fixture folder, then one append to `flagged_row`). Exit 2 when the flag names no row
or several (nothing written); exit 1 when no context reproduces the outcome (the flag is recorded, no fixture).
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from jobs.config import EnvConf
from jobs.flag.context import Context, ContextRow, gather
from jobs.flag.fixture import FIXTURES, Replayed, fixture_id, load_fixture, replay, write_fixture
from jobs.flag.source import FlagError, FlaggedRun, as_json, committed_run, outcome_row
from jobs.ignore import TABLE as IGNORE_TABLE
from jobs.inputs import is_path
from jobs.outputs import exists, table_ref
from jobs.report.masking import mask_phones_in_text_str
from jobs.utc import utc_text
from transforms.ignore import ADD
from transforms.schema import FLAGGED_ROW, IGNORE_LIST

LOG = logging.getLogger(__name__)
TABLE = "flagged_row"
LEVELS = (0, 1)            # context.py: the narrow context first, then the record's matching neighbourhood


@dataclass(frozen=True)
class Flagged:
    """What one flag did."""

    flag_id: str
    flagged_at: datetime
    run: FlaggedRun
    row: Mapping[str, Any]
    rule: str | None
    rule_source: str                   # recorded | replayed | unknown
    context: Context
    fixture: Path | None               # the fixture folder (None: no context reproduced the outcome)
    reproduced: bool | None            # None: a fixture of this row was there already and is kept as it is
    replayed: Replayed | None
    table: str                         # the flagged_row table appended to


def _same(row: Mapping[str, Any], got: Replayed) -> bool:
    """The replay gave the record the run's outcome, reason code and (where the run recorded it) rule."""
    return (got.outcome == row["outcome"] and got.reason_code == row["reason_code"]
            and (row.get("rule") is None or got.rule == row["rule"]))


def _ignore_rows(spark: SparkSession, conf: EnvConf, run: FlaggedRun, row: Mapping[str, Any]) -> list[str]:
    """The ignore entry that made the row IGNORED (its ADD row, at the ignore list version the run read)."""
    entry = row.get("ignore_entry_id")
    ref = table_ref(conf.output, IGNORE_TABLE)
    if entry is None or not exists(spark, ref):
        return []
    reader = spark.read.format("delta")
    if run.ignore_list_version is not None:
        reader = reader.option("versionAsOf", run.ignore_list_version)
    entries = reader.load(ref) if is_path(ref) else reader.table(ref)
    rows = (entries.where((F.col("entry_id") == entry) & (F.col("action") == ADD))
            .select(F.struct(*IGNORE_LIST.fieldNames()).alias("_e")).select(as_json("_e").alias("j"))
            .limit(10).collect())
    return [r["j"] for r in rows]


def flag(spark: SparkSession, conf: EnvConf, run_id: str, record_id: str, why: str, by: str, *,
         control_point: str | None = None, side: str | None = None, record_key: str | None = None,
         fixtures: Path = FIXTURES, scratch: str | None = None) -> Flagged:
    """Flag one record_outcome row as wrong (module docstring). `scratch`: where replays write their Delta tables
    (default: the system's temp folder; on a cluster, a folder every executor reads)."""
    if not why.strip():
        raise FlagError("--why: say what is wrong with the row (it is written with the flag and in the fixture)")
    run = committed_run(spark, conf, run_id)
    row = outcome_row(spark, conf, run, record_id, control_point, side, record_key)
    cycle = conf.cycle(run.cycle_id)
    if conf.fingerprint != run.conf_fingerprint:
        LOG.warning("the conf is not the one run %s ran with: the fixture takes the cycle's bounds, phone_region and "
                    "suspense_sla_days from this one (its replay checks the outcome still follows)", run.run_id)
    at = datetime.now(UTC)
    flag_id = "FLAG-" + hashlib.sha256(
        f"{run.run_id}|{row['control_point_id']}|{row['side']}|{row['record_key']}|{at.isoformat()}|{by}".encode()
    ).hexdigest()[:16]
    fid = fixture_id(run.run_id, row)
    target = fixtures / fid
    ignores = _ignore_rows(spark, conf, run, row)
    flagged = {"run_id": run.run_id, "flag_id": flag_id, "at": at, "by": by, "why": why, "rule": row.get("rule")}

    def write(folder: Path, context: Context, rule: str | None) -> Path:
        return write_fixture(folder, fid=fid, ruleset=run.ruleset, cycle=cycle, conf=conf, row=row, context=context,
                             versions=run.input_versions, ignore_rows=ignores, ignore_as_of=run.ignore_as_of,
                             flagged={**flagged, "rule": rule})

    got: Replayed | None = None
    reproduced: bool | None = None
    if target.exists():
        LOG.info("a fixture of this row exists (%s): kept as it is", target)
        context = gather(spark, conf, run, row, LEVELS[0])
    else:
        with tempfile.TemporaryDirectory(prefix="telco-ra-flag-", dir=scratch) as tmp:
            for level in LEVELS:
                context = gather(spark, conf, run, row, level)
                trial = write(Path(tmp) / f"context{level}" / fid, context, row.get("rule"))
                got = replay(spark, load_fixture(trial), run.ruleset, Path(tmp) / f"replay{level}")
                reproduced = _same(row, got)
                LOG.info("context level %s (%s rows): the replay gives %s (rule %s)%s", level, context.count(),
                         got.outcome, got.rule, "" if reproduced else f", the run gave {row['outcome']}")
                if reproduced:
                    break
    rule = row.get("rule") or (got.rule if reproduced and got is not None else None)
    source = "recorded" if row.get("rule") else ("replayed" if rule else "unknown")
    if reproduced:
        write(target, context, rule)
    result = Flagged(flag_id, at, run, row, rule, source, context, target if reproduced is not False else None,
                     reproduced, got, table_ref(conf.output, TABLE))
    _append(spark, result, why, by, fid)
    return result


def _rule_when(run: FlaggedRun, row: Mapping[str, Any], rule: str | None) -> str | None:
    for r in run.ruleset.control_points[row["control_point_id"]].decide.get(row["side"], ()):
        if r.name == rule:
            return r.when
    return None


def _recommendation(run: FlaggedRun, row: Mapping[str, Any]) -> dict[str, str | None]:
    """The outcome's policy: the severity, owner team and correction the run's case carries (none without a case)."""
    policy = run.ruleset.control_points[row["control_point_id"]].outcomes.get(row["outcome"])
    if policy is None or not policy.case:
        return {"severity": None, "owner_team": None, "correction_action": None}
    return {"severity": policy.severity, "owner_team": policy.owner, "correction_action": policy.correction}


def _evidence(run: FlaggedRun, r: ContextRow | None) -> dict[str, Any] | None:
    if r is None:
        return None
    system = next((i.system for i in run.ruleset.inputs.values() if i.table == r.table), None)
    return {"source_system": system, "source_table": r.table, "record_id": r.record_id,
            "payload_hash": r.payload_hash, "table_version": r.version}


def _append(spark: SparkSession, f: Flagged, why: str, by: str, fid: str) -> None:
    """One row appended to flagged_row, in one Delta commit."""
    row, run = f.row, f.run
    record = next(iter(f.context.of_role("record")), None)
    counterpart = next(iter(f.context.of_role("counterpart")), None)
    values = {
        "flag_id": f.flag_id, "flagged_at": f.flagged_at, "flagged_by": by, "why": why,
        "run_id": run.run_id, "control_point_id": row["control_point_id"], "ruleset_version": row["ruleset_version"],
        "cycle_id": run.cycle_id, "ruleset_name": run.ruleset.name, "ruleset_hash": run.ruleset.content_hash,
        "input_versions": run.input_versions, "outcome_row": row["row_json"],
        **{k: row.get(k) for k in ("side", "record_id", "record_key", "payload_hash", "account_id", "outcome",
                                   "reason_code", "reason", "match_stage", "counterpart_id", "amount",
                                   "expected_amount", "exposure_amount")},
        "rule": f.rule, "rule_when": _rule_when(run, row, f.rule), "rule_source": f.rule_source,
        **_recommendation(run, row),
        "record_table": record.table if record else None, "record_version": record.version if record else None,
        "record": record.json if record else None,
        "counterpart_table": counterpart.table if counterpart else None,
        "counterpart_version": counterpart.version if counterpart else None,
        "counterpart": counterpart.json if counterpart else None,
        "evidence": [e for e in (_evidence(run, record), _evidence(run, counterpart)) if e is not None],
        "context": [{"roles": list(r.roles), "source_table": r.table, "table_version": r.version,
                     "record_id": r.record_id, "payload_hash": r.payload_hash, "row": r.json}
                    for rows in f.context.rows.values() for r in rows],
        "context_level": f.context.level, "fixture_id": fid,
        "fixture": str(f.fixture) if f.fixture is not None else None, "fixture_reproduced": f.reproduced,
    }
    frame = spark.createDataFrame([tuple(values.get(c) for c in FLAGGED_ROW.fieldNames())], FLAGGED_ROW)
    writer = frame.write.format("delta").mode("append")
    if is_path(f.table):
        writer.save(f.table)
    else:
        writer.saveAsTable(f.table)
    LOG.info("flag %s appended to %s", f.flag_id, f.table)


def _rows(n: int) -> str:
    return f"{n} input row{'' if n == 1 else 's'}"


def lines(f: Flagged) -> list[str]:
    """What the command prints: phone numbers masked."""
    row = f.row
    code = f" ({row['reason_code']})" if row["reason_code"] else ""
    roles: dict[str, int] = {}
    for r in (r for rows in f.context.rows.values() for r in rows):
        for role in r.roles:
            roles[role] = roles.get(role, 0) + 1
    versions = ", ".join(f"{t}@v{rows[0].version}: {len(rows)}" for t, rows in sorted(f.context.rows.items()) if rows)
    out = [
        f"flag {f.flag_id} at {utc_text(f.flagged_at)}: run {f.run.run_id}, {row['control_point_id']} {row['side']} "
        f"record {row['record_id']} (key {row['record_key']})",
        f"  outcome {row['outcome']}{code}, rule "
        f"{f.rule or '(unknown)'} ({f.rule_source}): {row['reason'] or '-'}",
        f"  context: {_rows(f.context.count())} at the run's versions ({versions}); "
        + ", ".join(f"{role} {n}" for role, n in sorted(roles.items())),
        f"  appended to {f.table}",
    ]
    if f.reproduced is None:
        out.append(f"  fixture {f.fixture}: there already (kept as it is)")
    elif f.reproduced:
        out.append(f"  fixture {f.fixture}: replaying its {_rows(f.context.count())} gives {row['outcome']} again; set "
                   "the correct outcome in its expected.yaml")
    else:
        got = f.replayed
        out.append(f"  no fixture: the rows the outcome depends on give {got.outcome if got else '-'} "
                   f"(rule {got.rule if got else '-'}), the run gave {row['outcome']}")
    return [mask_phones_in_text_str(line) or "" for line in out]
