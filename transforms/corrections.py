"""Correction requests: what telco-ra asks the owning system to do, never does itself.

Seed 004 (7, 23, 27.4): RA detects and requests; the domain that owns the data corrects it, with its own audit
trail. Each case that is open after a run becomes one request naming the action the ruleset assigns to its case
type and the system expected to act. telco-ra never writes to an input table.
"""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from transforms.cases import _lookup

# Which system acts on which correction action (the ruleset names the action per outcome).
TARGET_SYSTEM = {
    "reprocess-usage": "rating",
    "carry-forward-usage": "billing",
    "reverse-duplicate-rating": "rating",
    "re-rate": "rating",
    "publish-missing-tariff": "catalog",
    "generate-missed-charge": "billing",
    "create-adjustment": "billing",
    "credit-note": "billing",
    "reverse-duplicate-charge": "billing",
    "repair-record": "mediation",
    "raise-partner-dispute": "partner-settlement",
    "update-inventory": "inventory",
    "investigate": "revenue-assurance",
}
OPEN_STATUSES = ("OPEN", "REOPENED")


def correction_requests(cases: DataFrame) -> DataFrame:
    """One REQUESTED correction per open case of the run; request_id is deterministic (case and action)."""
    open_cases = cases.where(F.col("status").isin(*OPEN_STATUSES))
    return open_cases.select(
        "run_id", "control_point_id", "ruleset_version", "cycle_id", "account_bucket",
        F.concat(F.lit("CR-"), F.substring(F.sha2(F.concat_ws("|", "case_id", "correction_action"), 256), 1, 24))
        .alias("request_id"),
        "case_id", "case_type", F.col("correction_action").alias("action"),
        F.coalesce(_lookup(F.col("correction_action"), TARGET_SYSTEM), F.lit("revenue-assurance")).alias(
            "target_system"),
        "owner_team", "exposure_amount", "exposure_class", "currency", "business_key", "evidence",
        F.lit("REQUESTED").alias("status"), F.col("opened_at").alias("requested_at"), "due_at",
    )
