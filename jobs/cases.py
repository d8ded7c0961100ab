"""`telco-ra cases ...`: the case history, its current state, and governed manual transitions.

Reads and appends `ra_case` (transforms/lifecycle.py says what the rows mean). The history that counts is the rows
of committed runs (those with a control_run row; a crashed run's half-written rows never count) and the manual
transition rows (`run_id` = `manual:...`). A manual transition appends one row that copies the case and records the
new status with its actor, reason and evidence references; waiving or writing off more than the ruleset's
`maker_checker_above` first records PENDING_APPROVAL, and only a different actor can approve it (seed 004, 23).

    telco-ra cases transition --conf C --case-id ID --to ACKNOWLEDGED --actor alice --reason "..." [--evidence REF]
    telco-ra cases approve    --conf C --case-id ID --actor bob
    telco-ra cases list       --conf C [--cycle 2026-06] [--status OPEN]
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs.config import EnvConf
from jobs.outputs import exists, read_output, table_ref, write_run_slice
from jobs.ruleset import Ruleset, load_ruleset
from transforms.lifecycle import (
    MANUAL_FROM,
    MANUAL_PREFIX,
    MANUAL_TARGETS,
    NEEDS_APPROVAL,
    PENDING_APPROVAL,
    current_state,
    manual_run_id,
    manual_transition,
)
from transforms.phone import mask_phone
from transforms.schema import RA_CASE

LOG = logging.getLogger(__name__)


class CaseError(ValueError):
    """A refused manual transition or an unknown case: exit code 2, nothing written."""


@dataclass(frozen=True)
class Transition:
    case_id: str
    cycle_id: str
    run_id: str
    previous_status: str
    status: str
    requested_status: str | None
    actor: str
    approved_by: str | None


REPRODUCTION_MARK = ".rerun-"


def case_history(spark: SparkSession, ra_case_ref: str, control_run_ref: str) -> DataFrame:
    """ra_case rows of committed runs and manual transitions (empty, with RA_CASE's schema, before the first run)."""
    if not exists(spark, ra_case_ref):
        return spark.createDataFrame([], RA_CASE)
    rows = read_output(spark, ra_case_ref)
    manual = rows.where(F.col("run_id").startswith(MANUAL_PREFIX))
    if not exists(spark, control_run_ref):
        return manual
    # Reproductions (`telco-ra rerun`) re-derive an old run's statuses; they never move a case's current state.
    committed = (read_output(spark, control_run_ref).select("run_id").distinct()
                 .where(~F.col("run_id").contains(REPRODUCTION_MARK)))
    return rows.join(committed, "run_id", "left_semi").unionByName(manual)


def current_cases(spark: SparkSession, output: str, cycle_id: str | None = None) -> DataFrame:
    """The current state of every case under `output` (of one cycle): one row per (cycle_id, case_id)."""
    history = case_history(spark, table_ref(output, "ra_case"), table_ref(output, "control_run"))
    if cycle_id is not None:
        history = history.where(F.col("cycle_id") == cycle_id)
    return current_state(history)


def _the_case(spark: SparkSession, output: str, case_id: str, cycle_id: str | None) -> tuple[DataFrame, Any]:
    view = current_cases(spark, output, cycle_id).where(F.col("case_id") == case_id)
    rows = view.limit(3).collect()                       # one case: at most one row per cycle
    if not rows:
        where = f" in cycle {cycle_id}" if cycle_id else ""
        raise CaseError(f"--case-id: no case {case_id!r}{where} under {output}")
    if len(rows) > 1:
        cycles = ", ".join(sorted(r["cycle_id"] for r in rows))
        raise CaseError(f"--case-id: case {case_id!r} exists in cycles {cycles}: name one with --cycle")
    row = rows[0]
    # The appended row is built from exactly the row the checks were made on, not from a re-read of the table.
    return spark.createDataFrame([row], RA_CASE), row


def _case_ruleset(spark: SparkSession, output: str, row: Any) -> Ruleset:
    """The ruleset of the latest committed run that recorded the case (its rules, as the run stored them)."""
    runs = read_output(spark, table_ref(output, "control_run"))
    history = read_output(spark, table_ref(output, "ra_case")).where(
        (F.col("cycle_id") == row["cycle_id"]) & (F.col("case_id") == row["case_id"]))
    found = (history.join(runs.select("run_id", "ruleset_name", "ruleset_text", "completed_at").dropDuplicates(
        ["run_id"]), "run_id").orderBy(F.desc("completed_at"), F.desc("run_id")).select(
        "run_id", "ruleset_name", "ruleset_text").first())
    if found is None:
        raise CaseError(f"--case-id: no committed run recorded case {row['case_id']!r}: pass --ruleset")
    return load_ruleset(f"control_run[{found['run_id']}]:{found['ruleset_name']}", text=found["ruleset_text"])


def _append(case: DataFrame, conf: EnvConf, row: Any, run_id: str) -> None:
    write_run_slice(case, table_ref(conf.output, "ra_case"), "ra_case", row["cycle_id"], run_id,
                    f"telco-ra:ra_case:{run_id}", row["account_bucket"])


def _required(name: str, value: str | None) -> str:
    if value is None or not value.strip():
        raise CaseError(f"{name}: required, and not blank")
    return value.strip()


def transition(
    spark: SparkSession,
    conf: EnvConf,
    case_id: str,
    to: str,
    actor: str,
    reason: str,
    evidence: Sequence[str] = (),
    *,
    cycle_id: str | None = None,
    ruleset: Ruleset | None = None,
    now: datetime | None = None,
) -> Transition:
    """Move a case to ACKNOWLEDGED, IN_CORRECTION, RESOLVED, WAIVED or WRITTEN_OFF (from OPEN, REOPENED,
    ACKNOWLEDGED or IN_CORRECTION). WAIVED/WRITTEN_OFF of |exposure| above `maker_checker_above` records
    PENDING_APPROVAL instead; `approve` by another actor completes it."""
    actor, reason = _required("--actor", actor), _required("--reason", reason)
    to = to.strip().upper()
    if to not in MANUAL_TARGETS:
        raise CaseError(f"--to: {to!r} is not a manual target (allowed: {', '.join(MANUAL_TARGETS)})")
    case, row = _the_case(spark, conf.output, case_id, cycle_id)
    if row["status"] not in MANUAL_FROM:
        hint = (f": it awaits approval of {row['requested_status']} (telco-ra cases approve)"
                if row["status"] == PENDING_APPROVAL else "")
        raise CaseError(f"--to: case {case_id} is {row['status']}{hint}; manual transitions start from "
                        f"{', '.join(MANUAL_FROM)}")
    rules = ruleset or _case_ruleset(spark, conf.output, row)
    exposure = abs(row["exposure_amount"] or Decimal(0))
    needs_approval = to in NEEDS_APPROVAL and exposure > rules.maker_checker_above
    status = PENDING_APPROVAL if needs_approval else to
    recorded_at = now or datetime.now(UTC)
    run_id = manual_run_id(case_id, status, actor, recorded_at)
    refs = [e.strip() for e in evidence if e and e.strip()]
    _append(manual_transition(case, run_id=run_id, status=status, actor=actor, reason=reason, evidence_refs=refs,
                              recorded_at=recorded_at, requested_status=to if needs_approval else None),
            conf, row, run_id)
    LOG.info("case %s: %s -> %s by %s (%s)", case_id, row["status"], status, actor, run_id)
    return Transition(case_id, row["cycle_id"], run_id, row["status"], status, to if needs_approval else None, actor,
                      None)


def approve(spark: SparkSession, conf: EnvConf, case_id: str, actor: str, *, cycle_id: str | None = None,
            now: datetime | None = None) -> Transition:
    """Approve a PENDING_APPROVAL transition: records the requested status with `approved_by`; the maker (the actor
    who requested it) cannot approve it."""
    actor = _required("--actor", actor)
    case, row = _the_case(spark, conf.output, case_id, cycle_id)
    if row["status"] != PENDING_APPROVAL:
        raise CaseError(f"--case-id: case {case_id} is {row['status']}, not {PENDING_APPROVAL}: nothing to approve")
    maker = row["actor"]
    if actor == maker:
        raise CaseError(f"--actor: maker-checker: {actor} requested {row['requested_status']} of case {case_id} "
                        "and cannot also approve it; another actor must approve")
    recorded_at = now or datetime.now(UTC)
    status = row["requested_status"]
    run_id = manual_run_id(case_id, status, actor, recorded_at)
    _append(manual_transition(case, run_id=run_id, status=status, actor=maker, reason=row["transition_reason"],
                              evidence_refs=list(row["evidence_refs"] or []), recorded_at=recorded_at,
                              approved_by=actor), conf, row, run_id)
    LOG.info("case %s: %s approved by %s (requested by %s, %s)", case_id, status, actor, maker, run_id)
    return Transition(case_id, row["cycle_id"], run_id, PENDING_APPROVAL, status, None, maker, actor)


LIST_COLUMNS = ("case_id", "cycle_id", "status", "case_type", "severity", "owner_team", "exposure", "due_at",
                "account_id", "msisdn", "actor", "approved_by")


def list_cases(spark: SparkSession, conf: EnvConf, cycle_id: str | None = None, status: str | None = None,
               limit: int = 200) -> tuple[list[dict[str, Any]], int]:
    """Current cases (phone numbers masked), most urgent first; returns (rows up to `limit`, total count)."""
    view = current_cases(spark, conf.output, cycle_id)
    if status is not None:
        view = view.where(F.col("status") == status.strip().upper())
    shown = view.select(
        "case_id", "cycle_id", "status", "case_type", "severity", "owner_team",
        F.col("exposure_amount").alias("exposure"), "due_at", F.col("business_key.account_id").alias("account_id"),
        mask_phone(F.col("business_key.msisdn")).alias("msisdn"), "actor", "approved_by",
    ).orderBy(F.asc_nulls_last("due_at"), F.desc(F.abs("exposure")), "case_id")
    return [r.asDict() for r in shown.limit(limit).collect()], view.count()


def render_list(rows: list[dict[str, Any]], total: int) -> str:
    lines = [f"{'case_id':<28} {'cycle':<8} {'status':<16} {'case_type':<26} {'owner':<22} {'exposure':>14} "
             f"{'due_at':<20} {'account':<14} {'msisdn':<14} actor / approved_by"]
    for r in rows:
        who = (r["actor"] or "") + (f" / {r['approved_by']}" if r["approved_by"] else "")
        lines.append(f"{r['case_id']:<28} {r['cycle_id']:<8} {r['status']:<16} {r['case_type']:<26} "
                     f"{r['owner_team'] or '-':<22} {r['exposure'] or Decimal(0):>14,.2f} "
                     f"{str(r['due_at'] or '-'):<20} {r['account_id'] or '-':<14} {r['msisdn'] or '-':<14} {who}")
    lines.append(f"{len(rows)} of {total} cases")
    return "\n".join(lines) + "\n"
