"""From outcomes to RA cases: the actionable exceptions, each with owner, SLA, signed exposure and evidence.

A case is keyed by (control point, case type, business key), so the same problem found by the next run is the same
case_id; rows that share a business key (two quarantined copies of one bad record) are one case with all their
evidence. Nothing here reads the wall clock: opened_at is the run's watermark.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from transforms.keys import case_id
from transforms.schema import CASE_FINDING, EVIDENCE, MONEY


def _lookup(column: Column, mapping: Mapping[str, object], dtype: str = "string") -> Column:
    expr: Column = F.lit(None).cast(dtype)
    for key, value in mapping.items():
        expr = F.when(column == key, F.lit(value).cast(dtype)).otherwise(expr)
    return expr


def _exposure_class(declared: Column, exposure: Column) -> Column:
    return F.when(declared == "BY_SIGN", F.when(exposure < 0, F.lit("OVERBILLING")).otherwise(F.lit("UNDERBILLING"))
                  ).otherwise(declared)


def _evidence(table: Column | str, record_id: Column, payload_hash: Column, versions: Mapping[str, int],
              systems: Mapping[str, str]) -> Column:
    """One evidence item: the record's source system (the ruleset's `system` of its table), table, id, payload
    hash and the table's Delta version this run read."""
    if isinstance(table, str):
        system, name = F.lit(systems.get(table, table)), F.lit(table)
        version = F.lit(versions.get(table)).cast("bigint")
    else:
        system, name, version = _lookup(table, dict(systems)), table, _lookup(table, dict(versions), "bigint")
    return F.struct(
        system.alias("source_system"), name.alias("source_table"), record_id.alias("record_id"),
        payload_hash.alias("payload_hash"), version.alias("table_version"),
    ).cast(EVIDENCE)


def record_cases(
    outcomes: DataFrame,
    policies: Mapping[str, Mapping[str, str]],
    owner_sla_days: Mapping[str, int],
    opened_at: datetime,
    versions: Mapping[str, int],
    systems: Mapping[str, str],
    pair_outcomes: Sequence[str] = (),
) -> DataFrame:
    """Cases for one record-level control point's finalized outcome rows.

    `policies[outcome]` = {exposure_class, owner, severity, correction} for outcomes that raise a case. An outcome
    of `pair_outcomes` (both rows of a matched pair get it) raises one case per pair, from the LEFT row.
    """
    raising = outcomes.where(F.col("outcome").isin(*policies) & F.col("exemption").isNull())
    if pair_outcomes:
        raising = raising.where(~((F.col("side") == "RIGHT") & F.col("outcome").isin(*pair_outcomes)))
    ids = F.array_sort(F.filter(F.array(F.coalesce(F.col("record_id"), F.col("record_key")), F.col("counterpart_id")),
                                lambda x: x.isNotNull()))
    key = F.concat_ws("|", F.coalesce(F.col("account_id"), F.lit("")), F.coalesce(F.col("msisdn_e164"), F.lit("")),
                      F.array_join(ids, ","))
    own = _evidence(F.col("source_table"), F.col("record_id"), F.col("payload_hash"), versions, systems)
    other = F.when(F.col("counterpart_key").isNotNull(),
                   _evidence(F.col("counterpart_table"), F.col("counterpart_id"), F.col("counterpart_hash"), versions,
                             systems))
    rows = raising.select(
        "run_id", "control_point_id", "ruleset_version", "cycle_id", "account_bucket", "account_id", "msisdn_e164",
        "service_type", "currency", "reason", "exposure",
        F.col("outcome").alias("case_type"),
        case_id(F.col("control_point_id"), F.col("outcome"), key).alias("case_id"),
        ids.alias("record_ids"),
        F.filter(F.array(own, other), lambda x: x.isNotNull()).alias("evidence"),
    )
    grouped = rows.groupBy("run_id", "control_point_id", "ruleset_version", "cycle_id", "case_id", "case_type").agg(
        F.min("account_bucket").alias("account_bucket"),
        F.min("account_id").alias("account_id"), F.min("msisdn_e164").alias("msisdn"),
        F.min("service_type").alias("service_type"),
        F.array_sort(F.array_distinct(F.flatten(F.collect_list("record_ids")))).alias("record_ids"),
        F.sum("exposure").cast(MONEY).alias("exposure_amount"),
        F.min("currency").alias("currency"), F.min("reason").alias("reason"),
        F.array_sort(F.array_distinct(F.flatten(F.collect_list("evidence")))).alias("evidence"),
    )
    return _finish(grouped, policies, owner_sla_days, opened_at)


def aggregate_cases(
    variances: DataFrame,
    policy: Mapping[str, str],
    owner_sla_days: Mapping[str, int],
    opened_at: datetime,
    versions: Mapping[str, int],
    systems: Mapping[str, str],
    tables: Sequence[str],
    case_type: str,
) -> DataFrame:
    """One case per aggregate row beyond tolerance; its business key names the account (and service type and
    currency: amounts of two currencies are two rows, never one sum)."""
    beyond = variances.where(F.col("beyond_tolerance"))
    key = aggregate_key()
    totals_hash = F.sha2(F.concat_ws("|", key, F.col("left_count"), F.col("left_amount"), F.col("right_count"),
                                     F.col("right_amount")), 256)
    evidence = F.array(*[_evidence(t, F.concat(F.lit("sum:"), key), totals_hash, versions, systems)
                         for t in tables])
    rows = beyond.select(
        "run_id", "control_point_id", "ruleset_version", "cycle_id", "account_bucket", "account_id",
        F.lit(None).cast("string").alias("msisdn"), "service_type",
        F.lit(case_type).alias("case_type"),
        case_id(F.col("control_point_id"), F.lit(case_type), key).alias("case_id"),
        F.array().cast("array<string>").alias("record_ids"),
        F.col("difference").cast(MONEY).alias("exposure_amount"),
        F.col("currency"),
        F.concat(F.lit(f"{tables[0]} "), F.col("left_amount").cast("string"), F.lit(f" vs {tables[-1]} "),
                 F.col("right_amount").cast("string"), F.lit(" (tolerance "), F.col("tolerance").cast("string"),
                 F.lit(")")).alias("reason"),
        evidence.alias("evidence"),
    )
    return _finish(rows, {case_type: policy}, owner_sla_days, opened_at)


def aggregate_key() -> Column:
    """The business key of an aggregate row: account|service_type|currency (its case id and its evidence)."""
    return F.concat_ws("|", *[F.coalesce(F.col(c), F.lit("")) for c in ("account_id", "service_type", "currency")])


def _finish(
    grouped: DataFrame, policies: Mapping[str, Mapping[str, str]], owner_sla_days: Mapping[str, int],
    opened_at: datetime,
) -> DataFrame:
    outcome = F.col("case_type")
    owner = _lookup(outcome, {o: p["owner"] for o, p in policies.items()})
    sla = _lookup(owner, dict(owner_sla_days), "int")
    opened = F.lit(opened_at).cast("timestamp")
    return grouped.select(
        "run_id", "control_point_id", "ruleset_version", "cycle_id", "account_bucket", "case_id", "case_type",
        _lookup(outcome, {o: p["severity"] for o, p in policies.items()}).alias("severity"),
        F.struct(F.col("account_id"), F.col("msisdn"), F.col("service_type"), F.col("record_ids")).alias("business_key"),
        "exposure_amount",
        _exposure_class(_lookup(outcome, {o: p["exposure_class"] for o, p in policies.items()}),
                        F.col("exposure_amount")).alias("exposure_class"),
        "currency",
        owner.alias("owner_team"),
        F.lit("OPEN").alias("status"),
        opened.alias("opened_at"),
        (opened + F.make_dt_interval(F.coalesce(sla, F.lit(0)))).alias("due_at"),
        "evidence", "reason",
        _lookup(outcome, {o: p.get("correction") or "investigate" for o, p in policies.items()}).alias(
            "correction_action"),
    ).select(*[F.col(f.name).cast(f.dataType) for f in CASE_FINDING.fields])
