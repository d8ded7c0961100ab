"""The case lifecycle across runs (seed 004, 8.4 / 15 / 23 / 24): pure DataFrame functions, no I/O.

`ra_case` is append-only and is the history of every case: each run appends one row per case it found and one
AUTO_CLEARED row per open case of its scope it no longer finds; each manual transition appends one row. A case's
current state is its latest row (`current_state`). Case ids are per problem, not per cycle (an aggregate variance
of one account in two cycles has one case id), so a case's identity in the history is (cycle_id, case_id).

What a run does with a case it finds, given the case's current status:

    (none)                                        -> OPEN
    OPEN, REOPENED, ACKNOWLEDGED, IN_CORRECTION,  -> unchanged (first_opened_at, due_at and who moved it there kept)
    PENDING_APPROVAL
    RESOLVED, AUTO_CLEARED                        -> REOPENED (same case id; a fresh due date from the owner SLA)
    WAIVED, WRITTEN_OFF                           -> unchanged (accepted exposure)

and every case of its scope (cycle, control points, account bucket of a partition run) whose current status is not
terminal and that it did not find -> AUTO_CLEARED, with `closed_by_run` = the run: closure is evidence (a run over
pinned input versions that no longer finds the problem), not a click. RESOLVED is a claim and stays non-terminal
until a run confirms it (AUTO_CLEARED) or refutes it (REOPENED).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from transforms.schema import RA_CASE

OPEN, REOPENED, AUTO_CLEARED = "OPEN", "REOPENED", "AUTO_CLEARED"
ACKNOWLEDGED, IN_CORRECTION, RESOLVED = "ACKNOWLEDGED", "IN_CORRECTION", "RESOLVED"
WAIVED, WRITTEN_OFF, PENDING_APPROVAL = "WAIVED", "WRITTEN_OFF", "PENDING_APPROVAL"

TERMINAL = (AUTO_CLEARED, WAIVED, WRITTEN_OFF)
REOPENS = (RESOLVED, AUTO_CLEARED)                       # found again after these -> REOPENED
MANUAL_TARGETS = (ACKNOWLEDGED, IN_CORRECTION, RESOLVED, WAIVED, WRITTEN_OFF)
MANUAL_FROM = (OPEN, REOPENED, ACKNOWLEDGED, IN_CORRECTION)
NEEDS_APPROVAL = (WAIVED, WRITTEN_OFF)                   # above the ruleset's maker_checker_above
SYSTEM_ACTOR = "telco-ra"
MANUAL_PREFIX = "manual:"

_CARRIED = ("actor", "transition_reason", "evidence_refs", "approved_by", "requested_status")


def _ts(value: datetime) -> Column:
    return F.lit(value).cast("timestamp")


def _refs(refs: Sequence[str]) -> Column:
    return F.array(*[F.lit(str(r)) for r in refs]).cast("array<string>")


def _conform(df: DataFrame) -> DataFrame:
    """RA_CASE's columns in its order and types; a column the frame lacks (older history) is null."""
    return df.select(*[(F.col(f.name) if f.name in df.columns else F.lit(None)).cast(f.dataType).alias(f.name)
                       for f in RA_CASE.fields])


def current_state(history: DataFrame) -> DataFrame:
    """One row per (cycle_id, case_id): its latest row by recorded_at, then run_id, then status (a fixed order,
    so two rows recorded in the same microsecond still give one answer)."""
    order = Window.partitionBy("cycle_id", "case_id").orderBy(
        F.col("recorded_at").desc_nulls_last(), F.col("run_id").desc(), F.col("status").desc())
    return _conform(history.withColumn("_latest", F.row_number().over(order)).where(F.col("_latest") == 1))


def is_overdue(watermark: Column) -> Column:
    """A case is overdue when its due date is before the data watermark and it is not terminal."""
    return (F.col("due_at") < watermark) & ~F.col("status").isin(*TERMINAL)


def found_by_run() -> Column:
    """Rows a run wrote because it found the problem (not its AUTO_CLEARED closures): what exposure sums count."""
    return F.col("status") != AUTO_CLEARED


def apply_lifecycle(
    found: DataFrame,
    current: DataFrame,
    run_id: str,
    recorded_at: datetime,
    *,
    cycle_id: str,
    ruleset_version: str,
    control_points: Sequence[str],
    bucket: int | None = None,
    evidence_refs: Sequence[str] = (),
) -> DataFrame:
    """The ra_case rows a run appends: its findings with their lifecycle status, and its AUTO_CLEARED closures.

    `found`: the run's cases (transforms/cases.py, status OPEN, one row per case id). `current`: the current state
    of the output's cases (`current_state` of the committed history; any cycle, it is filtered here).
    `evidence_refs` names what the run read (e.g. `cdr@v3`): the closure evidence of an AUTO_CLEARED row and the
    evidence of a REOPENED one. Joins only: nothing is collected.

    Example::

        rows = apply_lifecycle(cases, current_state(history), run_id, datetime.now(UTC), cycle_id="2026-06",
                               ruleset_version="2026.11.0", control_points=list(ruleset.control_points))
    """
    recorded, refs = _ts(recorded_at), _refs(evidence_refs)
    now = current.where(F.col("cycle_id") == cycle_id)
    prev = now.select("case_id", *[F.col(c).alias(f"_p_{c}") for c in (
        "status", "first_opened_at", "opened_at", "due_at", *_CARRIED)])
    p = F.col("_p_status")
    keep = p.isNotNull() & ~p.isin(*REOPENS)
    reopen = p.isin(*REOPENS)
    findings = (
        found.join(prev, "case_id", "left")
        .withColumns({
            "status": F.when(p.isNull(), F.lit(OPEN)).when(reopen, F.lit(REOPENED)).otherwise(p),
            "first_opened_at": F.coalesce(F.col("_p_first_opened_at"), F.col("_p_opened_at"), F.col("opened_at")),
            "due_at": F.when(keep, F.coalesce(F.col("_p_due_at"), F.col("due_at"))).otherwise(F.col("due_at")),
            "actor": F.when(keep, F.col("_p_actor")).otherwise(F.lit(SYSTEM_ACTOR)),
            "transition_reason": F.when(keep, F.col("_p_transition_reason"))
            .when(reopen, F.concat(F.lit("found again after "), p))
            .otherwise(F.lit("found by the control")),
            "evidence_refs": F.when(keep, F.col("_p_evidence_refs")).when(reopen, refs)
            .otherwise(F.array().cast("array<string>")),
            "approved_by": F.when(keep, F.col("_p_approved_by")),
            "requested_status": F.when(keep, F.col("_p_requested_status")),
            "closed_by_run": F.lit(None).cast("string"),
            "recorded_at": recorded,
        })
    )
    scope = now.where(F.col("control_point_id").isin(*control_points) & ~F.col("status").isin(*TERMINAL))
    if bucket is not None:
        scope = scope.where(F.col("account_bucket") == bucket)
    cleared = (
        scope.join(found.select("case_id"), "case_id", "left_anti")
        .withColumns({
            "run_id": F.lit(run_id), "ruleset_version": F.lit(ruleset_version),
            "first_opened_at": F.coalesce(F.col("first_opened_at"), F.col("opened_at")),
            "status": F.lit(AUTO_CLEARED), "closed_by_run": F.lit(run_id), "actor": F.lit(SYSTEM_ACTOR),
            "transition_reason": F.concat(F.lit("not found by the control any more (was "), F.col("status"),
                                          F.lit(")")),
            "evidence_refs": refs, "approved_by": F.lit(None).cast("string"),
            "requested_status": F.lit(None).cast("string"), "recorded_at": recorded,
        })
    )
    return _conform(findings).unionByName(_conform(cleared))


def manual_run_id(case_id: str, status: str, actor: str, recorded_at: datetime) -> str:
    """`manual:` + 16 hex of sha256(case id, status, actor, recorded_at): the run_id of a manual transition row."""
    material = "|".join((case_id, status, actor, recorded_at.isoformat()))
    return MANUAL_PREFIX + hashlib.sha256(material.encode()).hexdigest()[:16]


def manual_transition(
    case: DataFrame,
    *,
    run_id: str,
    status: str,
    actor: str,
    reason: str | None,
    evidence_refs: Sequence[str],
    recorded_at: datetime,
    approved_by: str | None = None,
    requested_status: str | None = None,
) -> DataFrame:
    """The row a manual transition appends: the case's current row (identity, exposure, owner, due date, evidence
    kept) with the new status and who moved it, why, on what evidence, and who approved it."""
    return _conform(case.withColumns({
        "run_id": F.lit(run_id), "status": F.lit(status), "actor": F.lit(actor),
        "transition_reason": F.lit(reason).cast("string"), "evidence_refs": _refs(evidence_refs),
        "approved_by": F.lit(approved_by).cast("string"), "requested_status": F.lit(requested_status).cast("string"),
        "closed_by_run": F.lit(None).cast("string"), "recorded_at": _ts(recorded_at),
        "first_opened_at": F.coalesce(F.col("first_opened_at"), F.col("opened_at")),
    }))
