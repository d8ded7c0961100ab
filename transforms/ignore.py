"""Ignore lists (CONTRACT section 8): entries that right-size an account so a known, accepted gap reads as clean.

`ignore_list` is an append-only Delta table under `output` (jobs/ignore.py appends to it): an ADD row per entry
(entry_id, control_point_id, scope ITEM / ACCOUNT / DOMAIN, key, reason, actor, created_at, expires_at) and a REMOVE
row per removal (the entry's id, removed_by, removed_at, why). Nothing edits a row, so the table is its own history.

A run reads one version of it and applies the entries in force when it started (`in_force`): added by then, not
expired, not removed. An outcome row of a record control point that would raise a case (and is not quarantined or
exempt) and whose record id (ITEM), account (ACCOUNT) or domain (DOMAIN) an entry of its control point names becomes
IGNORED: `reason_code` keeps the outcome it replaces, `reason` names the entry, `ignore_entry_id` is the evidence, and
its exposure is 0. A record without a gap keeps its outcome. An aggregate row beyond tolerance of an ignored account
raises no case. Pure DataFrame functions: no I/O; the entries are reference data (broadcast).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from transforms.schema import IGNORE_LIST, MONEY

IGNORED = "IGNORED"
ADD, REMOVE = "ADD", "REMOVE"
SCOPES = ("ITEM", "ACCOUNT", "DOMAIN")
# the record column each scope's key is compared with (outcome rows carry `domain` as an internal column)
SCOPE_COLUMNS = {"ITEM": "record_id", "ACCOUNT": "account_id", "DOMAIN": "domain"}


def in_force(entries: DataFrame, as_of: datetime) -> DataFrame:
    """The ADD rows in force at `as_of`: created by then, not expiring by then, and with no REMOVE row by then."""
    t = F.lit(as_of).cast("timestamp")
    removed = entries.where((F.col("action") == REMOVE) & (F.col("removed_at") <= t)).select("entry_id")
    added = entries.where((F.col("action") == ADD) & (F.col("created_at") <= t)
                          & (F.col("expires_at").isNull() | (F.col("expires_at") > t)))
    return added.join(removed, "entry_id", "left_anti").select(*IGNORE_LIST.fieldNames())


def _first_per_key(entries: DataFrame, scope: str) -> DataFrame:
    """One entry per key of a scope: the earliest created (then the smallest entry id: a fixed order)."""
    first = F.min_by(F.struct("entry_id", "scope", "key", "actor", "reason"), F.struct("created_at", "entry_id"))
    return (entries.where(F.col("scope") == scope).groupBy(F.col("key").alias(f"_ik_{scope}"))
            .agg(first.alias(f"_ie_{scope}")))


def apply_ignores(outcomes: DataFrame, entries: DataFrame, control_point_id: str, gaps: Sequence[str]) -> DataFrame:
    """`outcomes` (one control point's outcome rows, with `domain`) with IGNORED where an entry in force names a gap.

    `gaps`: the outcomes that raise a case (the control point's policies); `entries`: `in_force` rows (any control
    point: those of `control_point_id` are used).
    """
    mine = F.broadcast(entries.where(F.col("control_point_id") == control_point_id))
    df = outcomes
    for scope in SCOPES:
        df = df.join(F.broadcast(_first_per_key(mine, scope)),
                     F.col(SCOPE_COLUMNS[scope]) == F.col(f"_ik_{scope}"), "left")
    entry = F.coalesce(*[F.col(f"_ie_{scope}") for scope in SCOPES])
    gap = (F.col("outcome").isin(*gaps) & ~F.col("quarantined") & F.col("exemption").isNull()) if gaps else F.lit(False)
    hit = gap & entry.isNotNull()
    text = F.concat(F.lit("ignored by "), entry["entry_id"], F.lit(" ("), entry["scope"], F.lit(" "), entry["key"],
                    F.lit(", "), entry["actor"], F.lit(": "), entry["reason"], F.lit("); would be "),
                    F.col("outcome"), F.lit(": "), F.coalesce(F.col("reason"), F.lit("")))
    return df.withColumns({
        "reason": F.when(hit, text).otherwise(F.col("reason")),
        "reason_code": F.when(hit, F.col("outcome")).otherwise(F.col("reason_code")),
        "exposure": F.when(hit, F.lit(0).cast(MONEY)).otherwise(F.col("exposure")),
        "ignore_entry_id": F.when(hit, entry["entry_id"]).otherwise(F.lit(None).cast("string")),
        "outcome": F.when(hit, F.lit(IGNORED)).otherwise(F.col("outcome")),
    }).drop(*[f"_ik_{s}" for s in SCOPES], *[f"_ie_{s}" for s in SCOPES])


def ignored_accounts(variances: DataFrame, entries: DataFrame | None, control_point_id: str) -> DataFrame:
    """aggregate_variance rows with `ignore_entry_id`: the ACCOUNT entry of this control point naming the row's
    account, where the row is beyond tolerance (a row within tolerance has no gap to ignore). `entries` None: none
    in force."""
    if entries is None:
        return variances.withColumn("ignore_entry_id", F.lit(None).cast("string"))
    first = _first_per_key(entries.where(F.col("control_point_id") == control_point_id), "ACCOUNT")
    joined = variances.join(F.broadcast(first), F.col("account_id") == F.col("_ik_ACCOUNT"), "left")
    return joined.withColumn("ignore_entry_id", F.when(F.col("beyond_tolerance"), F.col("_ie_ACCOUNT.entry_id"))
                             .cast("string")).drop("_ik_ACCOUNT", "_ie_ACCOUNT")


def fingerprint(entries: DataFrame) -> Column:
    """Aggregate: sha256 of the sorted ids of the entries (in force): what a run's identity depends on ('' for
    none)."""
    ids = F.concat_ws(",", F.array_sort(F.collect_list("entry_id")))
    return F.when(ids == "", F.lit("")).otherwise(F.sha2(ids, 256))
