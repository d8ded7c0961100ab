"""`telco-ra run`: one cycle through every control point of a ruleset, committed as one run.

Extract (pinned Delta versions, schema-checked) -> transforms (one per control point) -> conservation check ->
load (outputs, control_run last). The transforms are pure and live in `transforms/`; this module only wires them.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import json
import logging
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs.cases import case_history
from jobs.config import ConfigError, ControlPoint, Cycle, EnvConf, Ruleset
from jobs.inputs import InputError, conform, pin, validate_schema
from jobs.outputs import SAFE, exists, read_output, table_ref, write_run_slice
from jobs.phases import phase
from jobs.utc import instant_micros, micros_to_utc
from transforms.cases import aggregate_cases, aggregate_key, record_cases
from transforms.checkpoints import cut_scope, materialize, materialize_freeing, release
from transforms.corrections import correction_requests
from transforms.fuzzy import QuantityTolerance
from transforms.keys import account_bucket, case_id, key_fingerprint, with_record_identity
from transforms.lifecycle import apply_lifecycle, current_state
from transforms.lineage_bucket import BUCKET_ACCOUNT, with_bucket_accounts
from transforms.outcomes import INTERNAL, finalize_outcomes
from transforms.phone import normalize_phone_columns
from transforms.quarantine import quarantine_reason
from transforms.rating_accuracy import rating_accuracy
from transforms.rating_to_billing import rating_to_billing
from transforms.schema import AGGREGATE_VARIANCE, CONTROL_RUN, INPUT_SCHEMAS, MONEY_SUM, OUTPUT_SCHEMAS, SUSPENSE_AGING
from transforms.scope import Scope, candidates, in_side, side_scopes
from transforms.suspense import suspense_aging
from transforms.tariff import overlapping_versions, repeated_versions
from transforms.usage_aggregate import usage_aggregate
from transforms.usage_to_rating import UsageToRatingParams, usage_to_rating

LOG = logging.getLogger(__name__)

# Which input feeds which record-level control side, and which column carries its amount.
SIDE_INPUT = {
    ("usage-to-rating", "LEFT"): ("cdr", None),
    ("usage-to-rating", "RIGHT"): ("rated_event", "amount"),
    ("rating-accuracy", "LEFT"): ("rated_event", "amount"),
    ("rating-to-billing", "LEFT"): ("rated_event", "amount"),
    ("rating-to-billing", "RIGHT"): ("bill_charge", "amount"),
}
ARRIVAL = {"cdr": "received_at", "rated_event": "rated_at", "bill_charge": "billed_at"}
# How each input's record_key is formed: (id column, order among rows sharing that id).
IDENTITY = {"cdr": ("record_id", ["received_at", "source_file"]), "rated_event": ("rated_event_id", ["rated_at"]),
            "bill_charge": ("charge_id", ["billed_at"])}


@dataclass(frozen=True)
class RunHooks:
    """Points where a caller (a test) steps into a run: handed to `execute`, never set on the module.

    outcome_fault: applied to the record outcomes before the conservation check (e.g. drop or repeat a row).
    before_write: called with the run id once outputs are computed, right before the first write (tests line up
    concurrent writers).
    before_control_run: called with the run id after every other output is written and before control_run (tests
    crash a run there).
    """

    outcome_fault: Callable[[DataFrame], DataFrame] | None = None
    before_write: Callable[[str], None] | None = None
    before_control_run: Callable[[str], None] | None = None


NO_HOOKS = RunHooks()


class ConservationError(RuntimeError):
    """Outcomes do not account for every input row and amount: the run must not commit (exit 1)."""


@dataclass
class RunResult:
    run_id: str
    cycle_id: str
    committed: bool
    already_committed: bool = False
    metrics: list[dict[str, Any]] = field(default_factory=list)
    input_versions: dict[str, int] = field(default_factory=dict)
    output_refs: dict[str, str] = field(default_factory=dict)
    watermark: datetime | None = None


def default_run_id(ruleset: Ruleset, cycle_id: str, versions: Mapping[str, int], conf: EnvConf,
                   scope: str = "all") -> str:
    """Same ruleset content, cycle, scope, input versions and conf => same run id: a plain re-run is a no-op."""
    material = json.dumps([ruleset.content_hash, cycle_id, sorted(versions.items()), conf.fingerprint, scope])
    suffix = "" if scope == "all" else "-b" + scope.split("=", 1)[1]
    return f"{ruleset.name}-{cycle_id}{suffix}-{hashlib.sha256(material.encode()).hexdigest()[:12]}"


def _inputs_digest(ruleset: Ruleset, versions: Mapping[str, int], conf: EnvConf, cycle_id: str, scope: str) -> str:
    """What a run's writes are: Delta skips a write whose txnAppId it has seen, so the id names everything the
    written rows depend on (the same run id over another cycle, scope or conf is other rows)."""
    material = json.dumps([ruleset.content_hash, sorted(versions.items()), conf.fingerprint, cycle_id, scope])
    return hashlib.sha256(material.encode()).hexdigest()[:16]


def _tol(cp: ControlPoint) -> tuple[str, str]:
    assert cp.tolerance is not None, f"{cp.id}: tolerance"
    return str(cp.tolerance.abs), str(cp.tolerance.rel)


def _policies(cp: ControlPoint) -> dict[str, dict[str, str]]:
    return {name: {"exposure_class": p.exposure_class or "", "owner": p.owner or "", "severity": p.severity or "",
                   "correction": p.correction or ""}
            for name, p in cp.outcomes.items() if p.case}


def _already_committed(spark: SparkSession, ref: str, run_id: str) -> list[dict[str, Any]]:
    if not exists(spark, ref):
        return []
    rows = (read_output(spark, ref).where(F.col("run_id") == run_id)
            .select("control_point_id", "cycle_id", "partition_scope", "ruleset_hash", "input_versions",
                    "conf_fingerprint").limit(50).collect())                  # one row per control point
    return [r.asDict() for r in rows]


# Named, not shown, when they differ: a content hash and a map of versions say nothing at a glance.
UNSHOWN = ("ruleset", "input versions")


def _check_committed(done: list[dict[str, Any]], run_id: str, ruleset: Ruleset, cycle_id: str, scope: str,
                     versions: Mapping[str, int], conf: EnvConf) -> None:
    """A run id names one run: the same cycle, partition scope, conf, ruleset and input versions. Reusing it for
    anything else is refused (exit 2) instead of answered "nothing to do" for a slice that was never computed."""
    want = {"cycle": cycle_id, "partition scope": scope, "conf fingerprint": conf.fingerprint,
            "ruleset": ruleset.content_hash, "input versions": dict(versions)}
    for d in done:
        got = {"cycle": d["cycle_id"], "partition scope": d["partition_scope"],
               "conf fingerprint": d["conf_fingerprint"], "ruleset": d["ruleset_hash"],
               "input versions": dict(d["input_versions"])}
        differ = [f"{k}: committed {got[k]!r}, asked {want[k]!r}" if k not in UNSHOWN else f"other {k}"
                  for k in want if want[k] != got[k]]
        if differ:
            raise ConfigError("--run-id", "run_id", f"{run_id!r} is already committed as another run "
                              f"({'; '.join(differ)}): a run id names one run, choose a new one")


def _closed_by(spark: SparkSession, output: str, cycle_id: str) -> str | None:
    """The run that closed this cycle, if it is closed: runs after it are post-close adjustments."""
    ref = table_ref(output, "cycle_close")
    if not exists(spark, ref):
        return None
    row = read_output(spark, ref).where(F.col("cycle_id") == cycle_id).select("close_run_id").first()
    return None if row is None else str(row["close_run_id"])


def fault_point(name: str) -> None:
    """Fault injection for crash tests: with TELCO_RA_FAULT=<name>, signal TELCO_RA_FAULT_MARKER and hang there.

    The kill-during-write test stops the driver at this point (outputs written, control_run not yet) and checks
    that the half-written run is invisible and that its rerun gives exactly the clean result.
    """
    if os.environ.get("TELCO_RA_FAULT") != name:
        return
    marker = os.environ.get("TELCO_RA_FAULT_MARKER")
    if marker:
        Path(marker).write_text(name)
    LOG.warning("fault point %s reached: waiting to be killed", name)
    time.sleep(3600)


# Where each input table is placed in a cycle (its event-time column; None: by cycle_id alone).
TIME_COLUMN = {"cdr": "start_time", "rated_event": "start_time", "bill_charge": None}


def input_scopes(ruleset: Ruleset) -> dict[str, Scope]:
    """Each side input's scope: bill_charge takes the rating-to-billing side's filter (USAGE)."""
    right = ruleset.control_points["rating-to-billing"].right
    return side_scopes(TIME_COLUMN, {"bill_charge": dict(right.filter) if right else {"charge_type": "USAGE"}})


def scope_inputs(raw: Mapping[str, DataFrame], cycle: Cycle, ruleset: Ruleset,
                 bucket: int | None = None) -> dict[str, DataFrame]:
    """Each side input's candidates (transforms/scope.py) with `_in_side`: true for the rows its sides reconcile,
    false for those out of scope, and `_bucket_account`, the account of the record's lineage root
    (transforms/lineage_bucket.py). A partition run keeps one account bucket's rows."""
    scoped = {name: raw[name].where(candidates(cycle.cycle_id))
              .withColumn("_in_side", in_side(scope, cycle.cycle_id, cycle.start, cycle.end))
              for name, scope in input_scopes(ruleset).items()}
    cdr, rated, charges = with_bucket_accounts(scoped["cdr"], scoped["rated_event"], scoped["bill_charge"])
    scoped = {"cdr": cdr, "rated_event": rated, "bill_charge": charges}
    if bucket is not None:
        scoped = {name: df.where(account_bucket(F.col(BUCKET_ACCOUNT), ruleset.account_buckets) == bucket)
                  for name, df in scoped.items()}
    return scoped


def execute(spark: SparkSession, conf: EnvConf, ruleset: Ruleset, cycle_id: str, run_id: str | None = None,
            versions: Mapping[str, int] | None = None, bucket: int | None = None,
            history_before: datetime | None = None, reproduction_of: str | None = None,
            hooks: RunHooks = NO_HOOKS) -> RunResult:
    """Run every control point of `ruleset` for `cycle_id`; returns what was committed (or found committed).

    `reproduction_of` (with `versions` and `history_before`): this run reproduces that committed run (`telco-ra
    rerun`): evidence about it, never the current result, and it requests no correction.
    Intermediate results written as files (spark.telcora.materialize.dir) live only as long as the run.
    """
    with cut_scope(spark, f"{spark.sparkContext.applicationId}-run{next(_RUN_NUMBERS)}"):
        return _execute(spark, conf, ruleset, cycle_id, run_id, versions, bucket, history_before, reproduction_of,
                        hooks)


_RUN_NUMBERS = itertools.count()


def _check_reference_data(tariff: DataFrame, ruleset: Ruleset) -> None:
    """Refuse tariff data the pricing cannot use, and a ruleset mapping that names a tariff the table lacks (exit 2).

    Tariff is reference data (a few thousand rows): these reads are bounded, and no usage has been read yet.
    """
    repeated = repeated_versions(tariff).limit(3).collect()
    if repeated:
        r = repeated[0]
        raise InputError(f"table tariff: tariff {r['tariff_id']} version {r['tariff_version']} appears "
                         f"{r['copies']} times (a (tariff_id, tariff_version) is one row)")
    overlaps = overlapping_versions(tariff).limit(3).collect()
    if overlaps:
        o = overlaps[0]
        raise InputError(f"table tariff: versions {o['tariff_version']} and {o['other_version']} of tariff "
                         f"{o['tariff_id']} are valid at the same time")
    named = sorted(set(ruleset.unrated_tariff.values()))
    if named:
        found = {r["tariff_id"] for r in tariff.where(F.col("tariff_id").isin(*named)).select("tariff_id")
                 .distinct().collect()}                       # at most as many rows as the mapping has ids
        for service, tariff_id in sorted(ruleset.unrated_tariff.items()):
            if tariff_id not in found:
                raise ConfigError(ruleset.path, f"unrated_tariff.{service}",
                                  f"tariff id {tariff_id!r} is not in table tariff: it cannot price never-rated "
                                  f"{service} usage")


def _execute(spark: SparkSession, conf: EnvConf, ruleset: Ruleset, cycle_id: str, run_id: str | None,
             versions: Mapping[str, int] | None, bucket: int | None, history_before: datetime | None,
             reproduction_of: str | None, hooks: RunHooks) -> RunResult:
    started_at = datetime.now(UTC)
    cycle = conf.cycle(cycle_id)
    if not SAFE.match(cycle_id):
        raise ConfigError(conf.path, f"cycles.{cycle_id}", "cycle ids may only hold letters, digits and ._:-")
    if run_id is not None and not SAFE.match(run_id):
        raise ConfigError("--run-id", "run_id", f"{run_id!r}: only letters, digits and ._:- are allowed")
    if bucket is not None and not 0 <= bucket < ruleset.account_buckets:
        raise ConfigError("--partition", "account_bucket",
                          f"{bucket} is not a bucket of this ruleset (0..{ruleset.account_buckets - 1})")
    pinned = pin(spark, conf.tables, ruleset.tables(), conf.path, versions)
    raw: dict[str, DataFrame] = {}
    for name, table in pinned.items():
        df = table.read(spark)
        validate_schema(name, df.schema)
        raw[name] = conform(name, df)
    input_versions = {name: t.version for name, t in pinned.items()}
    _check_reference_data(raw["tariff"], ruleset)

    scope = "all" if bucket is None else f"account_bucket={bucket}"
    run_id = run_id or default_run_id(ruleset, cycle_id, input_versions, conf, scope)
    refs = {t: table_ref(conf.output, t) for t in OUTPUT_SCHEMAS if t != "cycle_close"}
    result = RunResult(run_id, cycle_id, committed=False, input_versions=input_versions, output_refs=refs)
    done = _already_committed(spark, refs["control_run"], run_id)
    if done:
        _check_committed(done, run_id, ruleset, cycle_id, scope, input_versions, conf)
        LOG.info("run %s already committed over the same inputs: nothing to do", run_id)
        result.already_committed = True
        return result

    tags = {"run_id": run_id, "ruleset_version": ruleset.version, "cycle_id": cycle_id}
    region = conf.phone_region
    sla_days = conf.suspense_sla_days if conf.suspense_sla_days is not None else ruleset.suspense_sla_days
    cps = ruleset.control_points

    candidates_of = scope_inputs(raw, cycle, ruleset, bucket)
    with phase(spark, "prepare", run_id):
        if bucket is not None:
            # A partition run finds its bucket's rows by a hash of account_id, which no file layout prunes: every
            # read of an input is a read of the whole month, and prepare and totals read each input more than once
            # (100M seed-004, one bucket of 16: prepare 350 s of the run's 964 s, where a 10M run's prepare scaled
            # to the bucket's rows is about 230 s). Read each input once and keep the bucket's rows.
            candidates_of = {name: materialize(df) for name, df in candidates_of.items()}
        cdr, rated, usage_charges = (candidates_of[n].where(F.col("_in_side")).drop("_in_side")
                                     for n in ("cdr", "rated_event", "bill_charge"))
        # Prepared sides: identity, normalized phones, and a quarantine reason per control point that reads them.
        u2r, acc, r2b = cps["usage-to-rating"], cps["rating-accuracy"], cps["rating-to-billing"]
        cdr_cols = INPUT_SCHEMAS["cdr"].fieldNames()
        rated_cols = INPUT_SCHEMAS["rated_event"].fieldNames()
        charge_filter = tuple(input_scopes(ruleset)["bill_charge"].filter)
        cdr_p = (cdr.transform(with_record_identity(*IDENTITY["cdr"]))
                 .transform(normalize_phone_columns(["msisdn", "other_party"], region))
                 .withColumn("_q", quarantine_reason(u2r.left.required, cdr_cols, phone_column="msisdn")))
        cdr_p = materialize(cdr_p)
        rated_p = (rated.transform(with_record_identity(*IDENTITY["rated_event"]))
                   .transform(normalize_phone_columns(["msisdn", "other_party"], region))
                   .withColumn("_q_u2r", quarantine_reason(u2r.right.required if u2r.right else (), rated_cols,
                                                           phone_column="msisdn", repeated_id="rated_event_id"))
                   .withColumn("_q_acc", quarantine_reason(acc.left.required, rated_cols, repeated_id="rated_event_id"))
                   .withColumn("_q_r2b", quarantine_reason(r2b.left.required, rated_cols,
                                                           repeated_id="rated_event_id")))
        rated_p = materialize(rated_p)
        charges_p = (usage_charges.transform(with_record_identity(*IDENTITY["bill_charge"]))
                     .transform(normalize_phone_columns(["msisdn"], region))
                     .withColumn("_q", quarantine_reason((*(r2b.right.required if r2b.right else ()), *charge_filter),
                                                         INPUT_SCHEMAS["bill_charge"].fieldNames(),
                                                         repeated_id="charge_id")))
        charges_p = materialize(charges_p)
        # Each side's record keys as a multiset fingerprint: outcome rows must carry each exactly once.
        key_totals = {name: _key_fingerprint(df) for name, df in
                      (("cdr", cdr_p), ("rated_event", rated_p), ("bill_charge", charges_p))}

    assert u2r.fuzzy is not None
    params = UsageToRatingParams(
        fuzzy_keys=u2r.fuzzy.keys, window_s=u2r.fuzzy.time_window_s,
        tolerances={k: QuantityTolerance(str(v.abs), str(v.rel)) for k, v in u2r.fuzzy.quantity_tolerance.items()},
        content_columns=u2r.duplicates.get("content", ()),
        order_columns=u2r.duplicates.get("order", ("received_at", "source_file", "record_id")),
        cycle_close=cycle.close, suspense_sla_days=sla_days, unrated_tariff=ruleset.unrated_tariff,
    )
    buckets = ruleset.account_buckets
    counters: dict[str, dict[str, int]] = {cp_id: {} for cp_id in cps}

    def exemptions(cp: ControlPoint) -> list[tuple[str, str, tuple[str, ...], tuple[str, ...]]]:
        return [(e.id, e.column, e.values, e.outcomes) for e in cp.exemptions]

    # Built lazily (some transforms checkpoint as they go): each control point runs in its own phase, so its
    # cost shows under its name in the Spark UI and in bench/.
    per_cp: dict[str, Callable[[], DataFrame]] = {
        "usage-to-rating": lambda: usage_to_rating(cdr_p, rated_p.withColumn("_q", F.col("_q_u2r")),
                                                   raw["suspense"], raw["tariff"], params,
                                                   counters["usage-to-rating"]),
        "rating-accuracy": lambda: rating_accuracy(rated_p.withColumn("_q", F.col("_q_acc")), raw["tariff"],
                                                   *_tol(acc)),
        "rating-to-billing": lambda: rating_to_billing(rated_p.withColumn("_q", F.col("_q_r2b")), charges_p,
                                                       r2b.duplicates.get("order", ("billed_at", "charge_id")),
                                                       *_tol(r2b)),
    }
    outcome_parts = []
    for cp_id, build in per_cp.items():
        with phase(spark, cp_id, run_id):
            finalize = finalize_outcomes(tags, cp_id, buckets, exemptions(cps[cp_id]))
            outcome_parts.append(materialize_freeing(functools.partial(_finalized, build, finalize)))
        if cp_id == "usage-to-rating":
            release(cdr_p)          # read by no later control point
    outcomes = outcome_parts[0]
    for part in outcome_parts[1:]:
        outcomes = outcomes.unionByName(part)
    if hooks.outcome_fault is not None:
        outcomes = materialize(hooks.outcome_fault(outcomes))

    agg_cp = cps["usage-aggregate"]
    variances = usage_aggregate(rated_p.withColumn("_q", F.col("_q_r2b")), charges_p, *_tol(agg_cp))
    variances = (variances.withColumn("run_id", F.lit(run_id)).withColumn("control_point_id", F.lit(agg_cp.id))
                 .withColumn("ruleset_version", F.lit(ruleset.version)).withColumn("cycle_id", F.lit(cycle_id))
                 .withColumn("account_bucket", account_bucket(F.col("account_id"), buckets)))
    variances = variances.withColumn(
        "case_id", F.when(F.col("beyond_tolerance"), case_id(F.col("control_point_id"), F.lit("AGGREGATE_VARIANCE"),
                                                             aggregate_key())))
    with phase(spark, agg_cp.id, run_id):
        variances = materialize(variances.select(*AGGREGATE_VARIANCE.fieldNames()))
    release(rated_p)                # the last reader of the prepared rated events and charges is done
    release(charges_p)

    with phase(spark, "totals", run_id):
        # Watermark and input totals in one pass per input, over its candidates (the conservation law's left-hand
        # side is taken before scoping: rows read = outcome rows + rows out of scope).
        totals: dict[str, dict[str, Any]] = {}
        watermark_micros: int | None = None
        for name, df in candidates_of.items():
            out, with_amount = ~F.col("_in_side"), "amount" in df.columns
            aggs = [F.count(F.lit(1)).alias("n_read"), F.count_if(out).alias("n_out"),
                    F.max(F.when(F.col("_in_side"), instant_micros(ARRIVAL[name]))).alias("w")]
            if with_amount:
                aggs += [F.sum("amount").cast(MONEY_SUM).alias("amount_read"),
                         F.sum(F.when(out, F.col("amount"))).cast(MONEY_SUM).alias("amount_out")]
            row = df.agg(*aggs).first()
            assert row is not None
            totals[name] = {"n_read": int(row["n_read"]), "n_out": int(row["n_out"]),
                            "n": int(row["n_read"]) - int(row["n_out"]),
                            "amount_read": row["amount_read"] if with_amount else None,
                            "amount_out": row["amount_out"] if with_amount else None,
                            "amount": ((row["amount_read"] or Decimal(0)) - (row["amount_out"] or Decimal(0))
                                       if with_amount else None),
                            "keys": key_totals[name]}
            if row["w"] is not None:
                watermark_micros = row["w"] if watermark_micros is None else max(watermark_micros, row["w"])
        watermark = micros_to_utc(watermark_micros)
        opened_at = watermark or cycle.close

        metric_rows = (outcomes.groupBy("control_point_id", "side", "outcome")
                       .agg(F.count(F.lit(1)).alias("count"), F.sum("amount").cast(MONEY_SUM).alias("amount"),
                            F.sum("exposure").cast(MONEY_SUM).alias("exposure"),
                            F.count_if(F.col("unpriced")).alias("unpriced"),
                            key_fingerprint(F.col("record_key")).alias("keys")).collect())   # bounded: vocabulary size
        metrics = [r.asDict() for r in metric_rows]
        agg_metrics = (variances.groupBy(F.when(F.col("beyond_tolerance"), "AGGREGATE_VARIANCE").otherwise("MATCHED")
                                         .alias("outcome"))
                       .agg(F.count(F.lit(1)).alias("count"), F.sum("difference").cast(MONEY_SUM).alias("amount"),
                            F.sum(F.when(F.col("beyond_tolerance"), F.col("difference"))).cast(MONEY_SUM)
                            .alias("exposure")).collect())
        metrics += [{"control_point_id": agg_cp.id, "side": "AGGREGATE", "unpriced": 0, "keys": None, **r.asDict()}
                    for r in agg_metrics]
        _check_conservation(metrics, totals)

    with phase(spark, "cases", run_id):
        versions_for_evidence = dict(input_versions)
        case_parts = [record_cases(outcomes.where(F.col("control_point_id") == cp_id), _policies(cps[cp_id]),
                                   ruleset.owners, opened_at, versions_for_evidence) for cp_id in per_cp]
        case_parts.append(aggregate_cases(variances, _policies(agg_cp)["AGGREGATE_VARIANCE"], ruleset.owners, opened_at,
                                          versions_for_evidence))
        cases = case_parts[0]
        for part in case_parts[1:]:
            cases = cases.unionByName(part)
        cases = materialize(cases)
        case_counts = {r["control_point_id"]: int(r["n"]) for r in
                       cases.groupBy("control_point_id").agg(F.count(F.lit(1)).alias("n")).collect()}
        # --- case lifecycle (transforms/lifecycle.py): this run's findings against each case's current state, read
        # from the committed ra_case history before writing; `cases` becomes the rows this run appends (its findings
        # with their status, and AUTO_CLEARED closures of open cases of its scope it no longer finds).
        recorded_at = datetime.now(UTC)
        history = case_history(spark, refs["ra_case"], refs["control_run"]).where(F.col("cycle_id") == cycle_id)
        if history_before is not None:        # a reproduction sees the case history as the original run saw it
            history = history.where(F.col("recorded_at") < F.lit(history_before).cast("timestamp"))
        cases = materialize(apply_lifecycle(
            cases, current_state(history), run_id, recorded_at, cycle_id=cycle_id, ruleset_version=ruleset.version,
            control_points=list(cps), bucket=bucket,
            evidence_refs=[f"{name}@v{version}" for name, version in sorted(input_versions.items())]))
        # --- end case lifecycle

    digest = _inputs_digest(ruleset, input_versions, conf, cycle_id, scope)
    if hooks.before_write is not None:
        hooks.before_write(run_id)
    with phase(spark, "write", run_id):
        record_outcome = outcomes.withColumnRenamed("exposure", "exposure_amount").drop(
            *[c for c in INTERNAL if c != "exposure"])
        write_run_slice(record_outcome, refs["record_outcome"], "record_outcome", cycle_id, run_id,
                        f"telco-ra:record_outcome:{run_id}:{digest}", bucket)
        write_run_slice(cases, refs["ra_case"], "ra_case", cycle_id, run_id, f"telco-ra:ra_case:{run_id}:{digest}",
                        bucket)
        write_run_slice(variances, refs["aggregate_variance"], "aggregate_variance", cycle_id, run_id,
                        f"telco-ra:aggregate_variance:{run_id}:{digest}", bucket)
        if reproduction_of is None:       # a reproduction is evidence about a run: it requests no correction
            write_run_slice(correction_requests(cases), refs["correction_request"], "correction_request", cycle_id,
                            run_id, f"telco-ra:correction_request:{run_id}:{digest}", bucket)
        u2r_left = outcomes.where((F.col("control_point_id") == u2r.id) & (F.col("side") == "LEFT")).withColumnRenamed(
            "exposure", "exposure_amount")
        suspense_owner = (u2r.outcomes["SUSPENSE_AGED"].owner or "") if "SUSPENSE_AGED" in u2r.outcomes else ""
        aging = suspense_aging(raw["suspense"], u2r_left, cycle.close, suspense_owner,
                               only_with_usage=bucket is not None)
        aging = (aging.withColumn("run_id", F.lit(run_id)).withColumn("control_point_id", F.lit(u2r.id))
                 .withColumn("ruleset_version", F.lit(ruleset.version)).withColumn("cycle_id", F.lit(cycle_id))
                 .select(*SUSPENSE_AGING.fieldNames()))
        write_run_slice(aging, refs["suspense_aging"], "suspense_aging", cycle_id, run_id,
                        f"telco-ra:suspense_aging:{run_id}:{digest}")

    fault_point("before-control-run")
    if hooks.before_control_run is not None:
        hooks.before_control_run(run_id)
    close_run_id = _closed_by(spark, conf.output, cycle_id)
    completed_at = datetime.now(UTC)
    control_rows = []
    for cp_id in cps:
        cp_metrics = [m for m in metrics if m["control_point_id"] == cp_id]
        sides = {s: SIDE_INPUT.get((cp_id, s)) for s in ("LEFT", "RIGHT")}
        left_in, right_in = sides["LEFT"], sides["RIGHT"]
        if cp_id == "usage-aggregate":
            left_in, right_in = ("rated_event", "amount"), ("bill_charge", "amount")
        cp_counters = dict(counters[cp_id])
        for side_in in (left_in, right_in):
            if side_in:
                cp_counters[f"rows_read.{side_in[0]}"] = totals[side_in[0]]["n_read"]
                cp_counters[f"rows_out_of_scope.{side_in[0]}"] = totals[side_in[0]]["n_out"]
        cp_counters["records_unpriced"] = sum(int(m["unpriced"] or 0) for m in cp_metrics)
        control_rows.append({
            "run_id": run_id, "control_point_id": cp_id, "ruleset_version": ruleset.version, "cycle_id": cycle_id,
            "ruleset_name": ruleset.name, "ruleset_hash": ruleset.content_hash, "ruleset_text": ruleset.text,
            "partition_scope": scope,
            "input_tables": {n: t.ref for n, t in pinned.items()}, "input_versions": input_versions,
            "watermark": watermark, "cycle_close": cycle.close, "started_at": started_at,
            "completed_at": completed_at, "status": "COMMITTED", "conf_fingerprint": conf.fingerprint,
            "left_count": totals[left_in[0]]["n"] if left_in else None,
            "right_count": totals[right_in[0]]["n"] if right_in else None,
            "left_amount": totals[left_in[0]]["amount"] if left_in else None,
            "right_amount": totals[right_in[0]]["amount"] if right_in else None,
            "metrics": [{"side": m["side"], "outcome": m["outcome"], "count": m["count"],
                         "amount": m["amount"], "exposure": m["exposure"], "unpriced": m["unpriced"]}
                        for m in sorted(cp_metrics, key=lambda m: (m["side"], m["outcome"]))],
            "cases_opened": case_counts.get(cp_id, 0), "conservation_ok": True,
            "post_close": close_run_id is not None, "close_run_id": close_run_id,
            "counters": cp_counters, "reproduction_of": reproduction_of,
        })
    control_run = spark.createDataFrame(control_rows, CONTROL_RUN)
    write_run_slice(control_run, refs["control_run"], "control_run", cycle_id, run_id,
                    f"telco-ra:control_run:{run_id}:{digest}")
    spark.catalog.clearCache()
    result.committed, result.metrics, result.watermark = True, metrics, watermark
    return result


def _finalized(build: Callable[[], DataFrame], finalize: Callable[[DataFrame], DataFrame]) -> DataFrame:
    return build().transform(finalize)


def _key_fingerprint(prepared: DataFrame) -> int:
    """The multiset fingerprint of a prepared side's record keys (read from its cut: one narrow scan)."""
    row = prepared.agg(key_fingerprint(F.col("_key")).alias("keys")).first()
    assert row is not None
    return int(row["keys"] or 0)


def _check_conservation(metrics: list[dict[str, Any]], totals: Mapping[str, Mapping[str, Any]]) -> None:
    """Per record-level control point and side: rows read = outcome rows + rows out of scope, the same for amounts,
    and every record key of the side carried exactly once.

    Count and sum alone pass a repeated row plus a lost one of the same amount. Record keys are unique within a
    side, so equal multiset fingerprints (the sum of a 64-bit hash per key, transforms/keys.py) mean the outcome
    rows carry exactly the side's keys, each once (up to a hash collision of 2^-64).
    """
    problems = []
    for (cp_id, side), (table, amount_col) in SIDE_INPUT.items():
        rows = [m for m in metrics if m["control_point_id"] == cp_id and m["side"] == side]
        t = totals[table]
        count = sum(int(m["count"]) for m in rows)
        if count + t["n_out"] != t["n_read"]:
            problems.append(f"{cp_id} {side}: {count} outcome rows + {t['n_out']} out of scope for {t['n_read']} "
                            f"{table} rows read")
        keys = sum(int(m["keys"] or 0) for m in rows)
        if keys != t["keys"]:
            problems.append(f"{cp_id} {side}: the outcome rows do not carry each {table} record exactly once "
                            "(a record repeated and another lost?)")
        if amount_col:
            got = sum((m["amount"] or Decimal(0) for m in rows), Decimal(0))
            want = t["amount"] or Decimal(0)
            if got != want:
                problems.append(f"{cp_id} {side}: outcome amounts {got} != {table} total {want} "
                                f"(read {t['amount_read'] or 0}, out of scope {t['amount_out'] or 0})")
    if problems:
        raise ConservationError("conservation law broken, nothing committed: " + "; ".join(problems))
