"""`telco-ra run`: one cycle through every control point of a ruleset, committed as one run.

Extract (pinned Delta versions, schema-checked) -> transforms (one per control point) -> conservation check ->
load (outputs, control_run last). The transforms are pure and live in `transforms/`; this module only wires them.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import itertools
import json
import logging
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from delta.tables import DeltaTable
from pyspark.errors import AnalysisException, ParseException
from pyspark.sql import Column, DataFrame, Observation, SparkSession
from pyspark.sql import functions as F

from jobs.cases import case_history
from jobs.config import ConfigError, Cycle, EnvConf
from jobs.ignore import Ignores, read_ignores
from jobs.inputs import InputError, PinnedTable, conform, is_path, pin, validate_schema
from jobs.layouts_input import layout_tables
from jobs.outputs import SAFE, exists, read_output, table_ref, write_run_slice
from jobs.phases import phase
from jobs.progress import following, progress_seconds
from jobs.ruleset import Ruleset
from jobs.utc import instant_micros, micros_to_utc
from transforms.cases import aggregate_cases, aggregate_key, record_cases
from transforms.checkpoints import (
    SMALL_RUN_BYTES_DEFAULT,
    SMALL_RUN_BYTES_KEY,
    cut_scope,
    materialize,
    materialize_freeing,
    release,
    small_run,
    step,
)
from transforms.corrections import correction_requests
from transforms.engine.aggregate import aggregate_variance
from transforms.engine.analyse import check_rules
from transforms.engine.decide import DECIDED, RuleError, counterpart_columns, decide, lookup_texts, with_decided
from transforms.engine.match import match
from transforms.engine.prepare import (
    BUCKET_ACCOUNT,
    IN_SIDE,
    lookup_rows,
    phone_mappings,
    prepare,
    quarantine_reason,
    with_bucket_accounts,
)
from transforms.engine.prepare import scoped as scope_rows
from transforms.engine.reports import report_rows
from transforms.engine.spec import AggregateSide, ControlPoint, Input
from transforms.engine.sql import params_of, render
from transforms.ignore import IGNORED, apply_ignores, ignored_accounts
from transforms.keys import account_bucket, case_id, key_fingerprint
from transforms.lifecycle import apply_lifecycle, current_state
from transforms.outcomes import INTERNAL, finalize_outcomes
from transforms.schema import AGGREGATE_VARIANCE, CONTROL_RUN, MONEY_SUM, OUTPUT_SCHEMAS, RUN_ALERT
from transforms.sizing import small_side
from transforms.tariff import overlapping_versions, repeated_versions

LOG = logging.getLogger(__name__)


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
    alerts: list[dict[str, Any]] = field(default_factory=list)


def default_run_id(ruleset: Ruleset, cycle_id: str, versions: Mapping[str, int], conf: EnvConf,
                   scope: str = "all", ignores: str = "") -> str:
    """Same ruleset content, cycle, scope, input versions, conf and ignore entries in force => same run id: a plain
    re-run is a no-op (an ignore entry added, removed or expired since is another run)."""
    parts: list[object] = [ruleset.content_hash, cycle_id, sorted(versions.items()), conf.fingerprint, scope]
    material = json.dumps(parts + ([ignores] if ignores else []))
    suffix = "" if scope == "all" else "-b" + scope.split("=", 1)[1]
    return f"{ruleset.name}-{cycle_id}{suffix}-{hashlib.sha256(material.encode()).hexdigest()[:12]}"


def _inputs_digest(ruleset: Ruleset, versions: Mapping[str, int], conf: EnvConf, cycle_id: str, scope: str,
                   ignores: str = "") -> str:
    """What a run's writes are: Delta skips a write whose txnAppId it has seen, so the id names everything the
    written rows depend on (the same run id over another cycle, scope, conf or ignore entries is other rows)."""
    parts: list[object] = [ruleset.content_hash, sorted(versions.items()), conf.fingerprint, cycle_id, scope]
    material = json.dumps(parts + ([ignores] if ignores else []))
    return hashlib.sha256(material.encode()).hexdigest()[:16]


def _policies(cp: ControlPoint) -> dict[str, dict[str, str]]:
    return {name: {"exposure_class": p.exposure_class or "", "owner": p.owner or "", "severity": p.severity or "",
                   "correction": p.correction or ""}
            for name, p in cp.outcomes.items() if p.case}


def _already_committed(spark: SparkSession, ref: str, run_id: str) -> list[dict[str, Any]]:
    if not exists(spark, ref):
        return []
    table = read_output(spark, ref)
    rows = (table.where(F.col("run_id") == run_id)
            .select("control_point_id", "cycle_id", "partition_scope", "ruleset_hash", "input_versions",
                    "conf_fingerprint", *[c for c in ("ignore_list_version", "ignore_as_of") if c in table.columns])
            .limit(50).collect())                  # one row per control point
    return [r.asDict() for r in rows]


# Named, not shown, when they differ: a content hash and a map of versions say nothing at a glance.
UNSHOWN = ("ruleset", "input versions")


def _check_committed(done: list[dict[str, Any]], run_id: str, ruleset: Ruleset, cycle_id: str, scope: str,
                     versions: Mapping[str, int], conf: EnvConf, ignores: Ignores | None = None,
                     committed_ignores: Callable[[int | None, datetime | None], str] | None = None) -> None:
    """A run id names one run: the same cycle, partition scope, conf, ruleset, input versions and ignore entries in
    force for its control points. Reusing it for anything else is refused (exit 2) instead of answered "nothing to
    do" for a slice that was never computed. `committed_ignores(version, as_of)`: the fingerprint of the entries a
    committed run applied (the ignore list may have grown since by entries of other rulesets: the same run)."""
    want = {"cycle": cycle_id, "partition scope": scope, "conf fingerprint": conf.fingerprint,
            "ruleset": ruleset.content_hash, "input versions": dict(versions)}
    applied: dict[tuple[int | None, datetime | None], str] = {}       # a run's rows share one read: read it once
    for d in done:
        got = {"cycle": d["cycle_id"], "partition scope": d["partition_scope"],
               "conf fingerprint": d["conf_fingerprint"], "ruleset": d["ruleset_hash"],
               "input versions": dict(d["input_versions"])}
        differ = [f"{k}: committed {got[k]!r}, asked {want[k]!r}" if k not in UNSHOWN else f"other {k}"
                  for k in want if want[k] != got[k]]
        if ignores is not None and committed_ignores is not None:
            version, as_of = d.get("ignore_list_version"), d.get("ignore_as_of")
            if (version, as_of) not in applied:
                applied[(version, as_of)] = committed_ignores(version, as_of)
            if applied[(version, as_of)] != ignores.fingerprint:
                differ.append(f"ignore_list version: committed {version!r}, asked {ignores.version!r} (other entries "
                              "in force)")
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


def scope_inputs(raw: Mapping[str, DataFrame], cycle: Cycle, ruleset: Ruleset,
                 bucket: int | None = None, params: Mapping[str, object] | None = None) -> dict[str, DataFrame]:
    """Each side input's candidates (keyed by the ruleset's input name; `raw` by conf table name) with `_in_side`:
    true for the rows its sides reconcile, false for those out of scope, and `_bucket_account`, the account of the
    record's lineage root (transforms/engine/prepare.py). A partition run keeps one account bucket's rows.
    `params`: what the inputs' filters name (default: the ruleset's parameters)."""
    side_inputs = {name: ruleset.inputs[name] for name in ruleset.scoped_inputs()}
    params = ruleset.params if params is None else params
    scoped = {name: scope_rows(raw[inp.table], inp, cycle.cycle_id, cycle.start, cycle.end, params)
              for name, inp in side_inputs.items()}
    for name, inp in side_inputs.items():
        for column, (other, other_column) in inp.within.items():
            values = raw[ruleset.inputs[other].table].select(F.col(other_column).alias("_within")).where(
                F.col("_within").isNotNull()).distinct()
            joined = scoped[name].join(small_side(values), F.col(column) == F.col("_within"), "left")
            scoped[name] = joined.withColumn(IN_SIDE, F.col(IN_SIDE) & F.col("_within").isNotNull()).drop("_within")
    scoped = with_bucket_accounts(scoped, ruleset.inputs)
    if bucket is not None:
        scoped = {name: df.where(account_bucket(F.col(BUCKET_ACCOUNT), ruleset.account_buckets) == bucket)
                  for name, df in scoped.items()}
    return scoped


def execute(spark: SparkSession, conf: EnvConf, ruleset: Ruleset, cycle_id: str, run_id: str | None = None,
            versions: Mapping[str, int] | None = None, bucket: int | None = None,
            history_before: datetime | None = None, reproduction_of: str | None = None,
            hooks: RunHooks = NO_HOOKS, ignore_version: int | None = None,
            ignore_as_of: datetime | None = None) -> RunResult:
    """Run every control point of `ruleset` for `cycle_id`; returns what was committed (or found committed).

    `reproduction_of` (with `versions` and `history_before`): this run reproduces that committed run (`telco-ra
    rerun`): evidence about it, never the current result, and it requests no correction.
    `ignore_version`, `ignore_as_of`: read the ignore list at that version and apply the entries in force at that
    instant (a reproduction: what the original run saw); by default its latest version, at the run's start.
    Intermediate results written as files (spark.telcora.materialize.dir) live only as long as the run.
    """
    LOG.info("%s, cycle %s: checking the rules, pinning and checking the inputs", ruleset.name, cycle_id)
    progress_seconds(spark)          # a bad spark.telcora.progress.seconds exits 2 before any job, not mid-run
    with _named_by_ruleset(ruleset):
        # Every rule's SQL against the shape its records will have: refused before a job reads a row.
        check_rules(spark, ruleset.inputs, ruleset.checks, ruleset.control_points,
                    _run_params(conf, ruleset), conf.cycle(cycle_id))
    with cut_scope(spark, f"{spark.sparkContext.applicationId}-run{next(_RUN_NUMBERS)}"), \
            contextlib.ExitStack() as run_mode:
        return _execute(spark, conf, ruleset, cycle_id, run_id, versions, bucket, history_before,
                        reproduction_of, hooks, run_mode, ignore_version, ignore_as_of)


@contextlib.contextmanager
def _named_by_ruleset(ruleset: Ruleset) -> Iterator[None]:
    """A rule's SQL that does not analyse exits 2 naming the ruleset file, the key (the rule) and Spark's reason."""
    try:
        yield
    except RuleError as exc:
        raise ConfigError(ruleset.path, exc.where, exc.detail) from exc


def _run_params(conf: EnvConf, ruleset: Ruleset) -> dict[str, object]:
    """The ruleset's parameters, with the conf's override of the suspense SLA where the ruleset has one."""
    run_params = dict(ruleset.params)
    if conf.suspense_sla_days is not None and "suspense_sla_days" in run_params:
        run_params["suspense_sla_days"] = conf.suspense_sla_days
    return run_params


def _is_small_run(spark: SparkSession, pinned: Mapping[str, PinnedTable]) -> bool:
    """Whether the run's input tables are small enough to run as a small run (transforms/checkpoints.small_run):
    their bytes from Delta's table details (metadata: no Spark job reads data for it)."""
    text = spark.conf.get(SMALL_RUN_BYTES_KEY, str(SMALL_RUN_BYTES_DEFAULT)) or "0"
    try:
        limit = int(text)
    except ValueError:
        raise ConfigError("spark settings", SMALL_RUN_BYTES_KEY, f"{text!r} is not a number of bytes") from None
    if limit <= 0:
        return False
    total = 0
    for table in pinned.values():
        delta = DeltaTable.forPath(spark, table.ref) if is_path(table.ref) else DeltaTable.forName(spark, table.ref)
        row = delta.detail().select("sizeInBytes").first()
        total += int(row["sizeInBytes"] or 0) if row is not None else 0
        if total > limit:
            return False
    return True


_RUN_NUMBERS = itertools.count()


def _check_reference_data(ruleset: Ruleset, tables: Mapping[str, DataFrame]) -> None:
    """Refuse tariff data a price lookup cannot use, and a price list map naming a tariff its table lacks (exit 2).

    Price tables are reference data (a few thousand rows): these reads are bounded, and no record has been read yet.
    """
    seen: set[str] = set()
    for cp in ruleset.record_points():
        for lookup in cp.lookups.values():
            if lookup.kind in ("key", "prefix"):
                continue
            table_name = ruleset.inputs[lookup.input].table
            tariff = tables[table_name]
            if table_name not in seen:
                seen.add(table_name)
                repeated = repeated_versions(tariff).limit(3).collect()
                if repeated:
                    r = repeated[0]
                    raise InputError(f"table {table_name}: tariff {r['tariff_id']} version {r['tariff_version']} "
                                     f"appears {r['copies']} times (a (tariff_id, tariff_version) is one row)")
                overlaps = overlapping_versions(tariff).limit(3).collect()
                if overlaps:
                    o = overlaps[0]
                    raise InputError(f"table {table_name}: versions {o['tariff_version']} and {o['other_version']} "
                                     f"of tariff {o['tariff_id']} are valid at the same time")
            named = sorted(set(lookup.map.values()))
            if named:
                found = {r["tariff_id"] for r in tariff.where(F.col("tariff_id").isin(*named)).select("tariff_id")
                         .distinct().collect()}              # at most as many rows as the map has ids
                for klass, tariff_id in sorted(lookup.map.items()):
                    if tariff_id not in found:
                        raise ConfigError(ruleset.path, f"control_points.{cp.id}.lookups.{lookup.name}.map.{klass}",
                                          f"tariff id {tariff_id!r} is not in table {table_name}: it cannot price "
                                          f"{klass} records")


def _read_inputs(spark: SparkSession, ruleset: Ruleset, pinned: Mapping[str, PinnedTable]) -> dict[str, DataFrame]:
    """Each pinned table (by conf name), schema-checked against the contract schema of every input reading it."""
    raw: dict[str, DataFrame] = {}
    for name, table in pinned.items():
        df = table.read(spark)
        schemas = {inp.schema for inp in ruleset.inputs.values() if inp.table == name and inp.schema}
        for schema in sorted(schemas):
            validate_schema(name, df.schema, schema)
        for schema in sorted(schemas):
            df = conform(schema, df)
        raw[name] = df
    return raw


def _side_frame(prepared: DataFrame, ruleset: Ruleset, cp: ControlPoint, side: str) -> DataFrame:
    spec = cp.sides[side]
    inp = ruleset.inputs[spec.input]
    reason = quarantine_reason(inp, spec, ruleset.checks.get(inp.name, ()), prepared.columns)
    ident = F.col(inp.id) if inp.id else F.lit(None).cast("string")
    return prepared.withColumn("quarantine", reason).withColumn("_id", ident)


def record_outcomes(ruleset: Ruleset, cp: ControlPoint, prepared: Mapping[str, DataFrame],
                    tables: Mapping[str, DataFrame], params: Mapping[str, object],
                    counters: dict[str, int], alerts: list[dict[str, Any]] | None = None,
                    ignores: DataFrame | None = None, region: str = "US") -> DataFrame:
    """Outcome rows of both sides of a record control point (transforms/engine: match, then decide), with the
    ignore list's entries in force applied (`ignores`: transforms/ignore.in_force rows); with the control point's
    `alerts`, their rows beyond threshold are appended to `alerts`. An alert counts a side's outcome rows as they
    are written: after the ignore list (an IGNORED row's outcome is IGNORED). `region`: the default phone region
    of numbers a lookup normalises."""
    gaps = [o for o, p in cp.outcomes.items() if p.case]
    out: DataFrame | None = None
    for side, rows in _decided_sides(ruleset, cp, prepared, tables, params, counters, region).items():
        if ignores is not None:
            rows = apply_ignores(rows, ignores, cp.id, gaps)
        scopes = [f"_alert{i}" for i, a in enumerate(cp.alerts) if a.side == side]
        if scopes:
            step(rows.sparkSession, f"alerts, {side.lower()} side")
            rows = materialize(rows)
            _alerts(cp, side, rows, params, alerts)
            rows = rows.drop(*scopes)
        out = rows if out is None else out.unionByName(rows)
    assert out is not None
    return out


def _decided_sides(ruleset: Ruleset, cp: ControlPoint, prepared: Mapping[str, DataFrame],
                   tables: Mapping[str, DataFrame], params: Mapping[str, object],
                   counters: dict[str, int], region: str = "US") -> dict[str, DataFrame]:
    """Each side's decided rows (LEFT, then RIGHT where the control point has one), with a column `_alert<i>` (its
    scope) per alert of that side, for record_outcomes to count and drop."""
    left_inp = ruleset.inputs[cp.left.input]
    right_inp = ruleset.inputs[cp.right.input] if cp.right else None
    left = _side_frame(prepared[left_inp.name], ruleset, cp, "LEFT")
    right = _side_frame(prepared[right_inp.name], ruleset, cp, "RIGHT") if right_inp is not None else None
    # What each side reads of its counterpart travels with the match; a left record's decision (`counterpart.
    # outcome`, ...) exists only once the left side is decided, and is joined to the right records then.
    right_reads = counterpart_columns(cp, "RIGHT") if right_inp is not None else []
    decided = [c for c in right_reads if c in DECIDED]
    matched = match(left, right, cp.stages, left_inp.id, left.columns, right.columns if right is not None else [],
                    left_wants=counterpart_columns(cp, "LEFT"),
                    right_wants=[c for c in right_reads if c not in DECIDED], left_unique=cp.left.unique_id,
                    left_order=left_inp.order)
    counters.update(matched.counters)
    lookup_tables = {}
    for lookup in cp.lookups.values():      # each lookup's rows: its input's table, with what its SQL names of it
        inp = ruleset.inputs[lookup.input]
        lookup_tables[inp.name] = lookup_rows(tables[inp.table], inp, region, params,
                                              [t for other in cp.lookups.values() if other.input == inp.name
                                               for t in lookup_texts(other)])
    scopes = {side: {f"_alert{i}": a.scope for i, a in enumerate(cp.alerts) if a.side == side} for side in cp.sides}
    step(left.sparkSession, "deciding, left side")
    left_out = decide(matched.left, cp, "LEFT", left_inp, right_inp, lookup_tables, params, extra=scopes["LEFT"])
    if matched.right is None or right_inp is None:
        return {"LEFT": left_out}
    right_m = matched.right
    if decided:
        left_out = materialize(left_out)
        right_m = with_decided(right_m, left_out, decided)
    step(left.sparkSession, "deciding, right side")
    right_out = decide(right_m, cp, "RIGHT", right_inp, left_inp, lookup_tables, params, extra=scopes["RIGHT"])
    return {"LEFT": left_out, "RIGHT": right_out}


def _alerts(cp: ControlPoint, side: str, rows: DataFrame, params: Mapping[str, object],
            out: list[dict[str, Any]] | None) -> None:
    """Per scope value of each alert of `side`: records, records counted, their share; the ones above threshold
    are appended to `out` (collected: one row per scope value, e.g. per carrier)."""
    for i, alert in enumerate(cp.alerts):
        if alert.side != side:
            continue
        where = f"control_points.{cp.id}.alerts[{i}].counts"
        try:
            counted = F.expr(render(alert.counts, params))
            rows.select(counted)
        except (AnalysisException, ParseException) as exc:
            raise RuleError(where, alert.counts, str(exc)) from exc
        stats = (rows.groupBy(F.col(f"_alert{i}").cast("string").alias("scope"))
                 .agg(F.count(F.lit(1)).alias("n"), F.count_if(F.coalesce(counted, F.lit(False))).alias("k"))
                 .collect())                                  # bounded: one row per scope value
        for r in sorted(stats, key=lambda r: (r["scope"] is None, r["scope"] or "")):
            n, k = int(r["n"]), int(r["k"])
            value = (Decimal(k) / Decimal(n)).quantize(Decimal("0.000001")) if n else Decimal(0)
            if value <= alert.threshold:
                continue
            scope = r["scope"] if r["scope"] is not None else "(none)"
            facts = {"scope": scope, "metric": alert.metric, "records": n, "counted": k, "value": value,
                     "threshold": alert.threshold, "percent": f"{value * 100:.2f}%",
                     "threshold_percent": f"{alert.threshold * 100:.2f}%"}
            message = (alert.message or "{scope}: {counted} of {records} records ({percent}) counted by {metric}, "
                       "above {threshold_percent}").format(**facts)
            if out is not None:
                out.append({"control_point_id": cp.id, "scope": scope, "metric": alert.metric, "value": value,
                            "threshold": alert.threshold, "message": message, "records": n, "counted": k})


def _execute(spark: SparkSession, conf: EnvConf, ruleset: Ruleset, cycle_id: str, run_id: str | None,
             versions: Mapping[str, int] | None, bucket: int | None, history_before: datetime | None,
             reproduction_of: str | None, hooks: RunHooks, run_mode: contextlib.ExitStack,
             ignore_version: int | None = None, ignore_as_of: datetime | None = None) -> RunResult:
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
    if _is_small_run(spark, pinned):
        run_mode.enter_context(small_run(spark))       # until the run ends (execute's ExitStack)
    raw = _read_inputs(spark, ruleset, pinned)
    references, reference_counters = layout_tables(spark, conf, ruleset)
    raw = {**raw, **references}
    input_versions = {name: t.version for name, t in pinned.items()}
    _check_reference_data(ruleset, raw)

    ignores = read_ignores(spark, conf.output, ignore_version, ignore_as_of or started_at, ruleset.control_points)
    scope = "all" if bucket is None else f"account_bucket={bucket}"
    run_id = run_id or default_run_id(ruleset, cycle_id, input_versions, conf, scope, ignores.fingerprint)
    alerting = any(cp.alerts for cp in ruleset.record_points())
    refs = {t: table_ref(conf.output, t) for t in OUTPUT_SCHEMAS
            if t != "cycle_close" and (t != "run_alert" or alerting)}   # run_alert: written where alerts are declared
    result = RunResult(run_id, cycle_id, committed=False, input_versions=input_versions, output_refs=refs)
    done = _already_committed(spark, refs["control_run"], run_id)
    if done:
        def committed_ignores(version: int | None, as_of: datetime | None) -> str:
            if version is None or as_of is None:
                return ""
            return read_ignores(spark, conf.output, version, as_of, ruleset.control_points).fingerprint

        _check_committed(done, run_id, ruleset, cycle_id, scope, input_versions, conf, ignores, committed_ignores)
        LOG.info("run %s already committed over the same inputs: nothing to do", run_id)
        result.already_committed = True
        return result

    run_mode.enter_context(following(spark, run_id))      # progress lines until the run ends (jobs/progress.py)
    LOG.info("%s: ruleset %s %s, cycle %s%s, control points %s; inputs %s", run_id, ruleset.name, ruleset.version,
             cycle_id, "" if bucket is None else f", {scope}", ", ".join(ruleset.control_points),
             ", ".join(f"{name}@v{version}" for name, version in sorted(input_versions.items())))
    tags = {"run_id": run_id, "ruleset_version": ruleset.version, "cycle_id": cycle_id}
    run_params = _run_params(conf, ruleset)
    cps = ruleset.control_points

    candidates_of = scope_inputs(raw, cycle, ruleset, bucket, run_params)
    with phase(spark, "prepare", run_id):
        if bucket is not None:
            # A partition run finds its bucket's rows by a hash of account_id, which no file layout prunes: every
            # read of an input is a read of the whole month. Read each input once and keep the bucket's rows.
            candidates_of = {name: materialize(df) for name, df in candidates_of.items()}
        # Prepared sides: identity, normalized phones and derived columns, once per input for every side reading it.
        # The job that computes them also takes, as observed metrics, the conservation law's left-hand side over
        # the candidates (rows read and out of scope, amounts, the watermark) and the multiset fingerprint of the
        # side's record keys (outcome rows must carry each exactly once): no pass of its own.
        observed_totals: dict[str, Observation] = {}
        observed_keys: dict[str, Observation] = {}
        prepared = {}
        step(spark, "phone numbers")
        phones = phone_mappings(candidates_of, ruleset.inputs, conf.phone_region)
        for name, df in candidates_of.items():
            step(spark, name)
            observed_totals[name] = Observation(f"telco-ra:totals:{name}:{run_id}")
            observed_keys[name] = Observation(f"telco-ra:keys:{name}:{run_id}")
            read = df.observe(observed_totals[name], *_input_totals(ruleset.inputs[name]))
            side = prepare(read.where(F.col(IN_SIDE)).drop(IN_SIDE), ruleset.inputs[name], conf.phone_region,
                           params=run_params, phones=phones)
            prepared[name] = materialize(side.observe(observed_keys[name],
                                                      key_fingerprint(F.col("_key")).alias("keys")), observed=True)
        for name in candidates_of:       # observed as they were cut: no job of their own
            row = observed_totals[name].get
            LOG.info("prepare: %s: %s rows read (%s out of this run's scope)", name, f"{int(row['n_read']):,}",
                     f"{int(row['n_out']):,}")
        if bucket is not None:
            # Nothing reads a bucket's rows again: each side and the phone mapping are cuts of their own, and
            # lookups read the pinned tables. Freed now, not at the run's end, so the control points' cuts do not
            # compete with a copy of every input's bucket for executor storage or scratch disk.
            for df in candidates_of.values():
                release(df)

    buckets = ruleset.account_buckets
    counters: dict[str, dict[str, int]] = {cp_id: dict(reference_counters) for cp_id in cps}
    alert_rows: list[dict[str, Any]] = []
    outcome_parts = []
    # A prepared input is freed once the last control point reading it has cut its outcome rows: at 1M usage slots
    # each is about a million wide rows of executor memory that later control points' cuts would compete with.
    done_after = ruleset.done_after()
    for cp in ruleset.record_points():
        params = params_of(run_params, cp.tolerance, cycle)
        # Each control point runs in its own phase, so its cost shows under its name in the Spark UI and bench/.
        with phase(spark, cp.id, run_id):
            finalize = finalize_outcomes(tags, cp.id, buckets)
            build = functools.partial(record_outcomes, ruleset, cp, prepared, raw, params, counters[cp.id],
                                      alerts=alert_rows, ignores=ignores.entries, region=conf.phone_region)
            with _named_by_ruleset(ruleset):
                outcome_parts.append(materialize_freeing(functools.partial(_finalized, build, finalize)))
        for name in done_after[cp.id]:
            release(prepared[name])
    outcomes = outcome_parts[0]
    for part in outcome_parts[1:]:
        outcomes = outcomes.unionByName(part)
    # Each control point's rows as they were cut: what reads one control point's rows (aggregate sides, cases,
    # figures, reports) scans its own cut. A cut has no column or partition pruning, so a filter over the union
    # read every control point's rows: at 1M usage slots, 5M rows per read where usage-to-rating has 2M.
    outcomes_of = dict(zip((cp.id for cp in ruleset.record_points()), outcome_parts, strict=True))
    if hooks.outcome_fault is not None:
        outcomes = materialize(hooks.outcome_fault(outcomes))
        outcomes_of = {cp_id: outcomes.where(F.col("control_point_id") == cp_id) for cp_id in outcomes_of}

    def aggregate_rows(a: AggregateSide) -> DataFrame:
        """An aggregate side's rows: its input's prepared rows, or the outcome rows of a record control point side."""
        if a.input is not None:
            return prepared[a.input]
        assert a.of is not None
        return outcomes_of[a.of].where(F.col("side") == F.lit(a.side))

    variance_parts = []
    for cp in ruleset.aggregate_points():
        sides = {s: aggregate_rows(a) for s, a in cp.aggregate_sides.items()}
        variances = aggregate_variance(cp, sides["LEFT"], sides["RIGHT"], params_of(run_params, cp.tolerance, cycle))
        variances = ignored_accounts(variances, ignores.entries, cp.id)
        variances = (variances.withColumn("run_id", F.lit(run_id)).withColumn("control_point_id", F.lit(cp.id))
                     .withColumn("ruleset_version", F.lit(ruleset.version)).withColumn("cycle_id", F.lit(cycle_id))
                     .withColumn("account_bucket", account_bucket(F.col("account_id"), buckets)))
        assert cp.beyond is not None
        variances = variances.withColumn(
            "case_id", F.when(F.col("beyond_tolerance") & F.col("ignore_entry_id").isNull(),
                              case_id(F.col("control_point_id"), F.lit(cp.beyond), aggregate_key())))
        with phase(spark, cp.id, run_id):
            variance_parts.append(materialize(variances.select(*AGGREGATE_VARIANCE.fieldNames())))
    freed = {name for names in done_after.values() for name in names}
    for name in prepared:          # what the aggregates read directly; nothing reads a prepared input after them
        if name not in freed:
            release(prepared[name])

    with phase(spark, "totals", run_id):
        # Watermark and input totals, observed over each input's candidates while it was prepared (the conservation
        # law's left-hand side is taken before scoping: rows read = outcome rows + rows out of scope).
        totals: dict[str, dict[str, Any]] = {}
        watermark_micros: int | None = None
        for name in candidates_of:
            inp = ruleset.inputs[name]
            row = observed_totals[name].get
            totals[name] = {"n_read": int(row["n_read"]), "n_out": int(row["n_out"]),
                            "n": int(row["n_read"]) - int(row["n_out"]), "table": inp.table,
                            "amount_read": row["amount_read"] if inp.amount else None,
                            "amount_out": row["amount_out"] if inp.amount else None,
                            "amount": ((row["amount_read"] or Decimal(0)) - (row["amount_out"] or Decimal(0))
                                       if inp.amount else None),
                            "keys": int(observed_keys[name].get["keys"] or 0)}
            if inp.arrival and row["w"] is not None:
                watermark_micros = row["w"] if watermark_micros is None else max(watermark_micros, row["w"])
        watermark = micros_to_utc(watermark_micros)
        opened_at = watermark or cycle.close

        metric_rows = (outcomes.groupBy("control_point_id", "side", "outcome")
                       .agg(F.count(F.lit(1)).alias("count"), F.sum("amount").cast(MONEY_SUM).alias("amount"),
                            F.sum("exposure").cast(MONEY_SUM).alias("exposure"),
                            F.count_if(F.col("unpriced")).alias("unpriced"),
                            key_fingerprint(F.col("record_key")).alias("keys")).collect())   # bounded: vocabulary size
        metrics = [r.asDict() for r in metric_rows]
        for cp, variances in zip(ruleset.aggregate_points(), variance_parts, strict=True):
            verdict = (F.when(F.col("ignore_entry_id").isNotNull(), F.lit(IGNORED))
                       .when(F.col("beyond_tolerance"), F.lit(cp.beyond)).otherwise(F.lit(cp.within)))
            agg_metrics = (variances.groupBy(verdict.alias("outcome"))
                           .agg(F.count(F.lit(1)).alias("count"),
                                F.sum("difference").cast(MONEY_SUM).alias("amount"),
                                F.sum(F.when(F.col("beyond_tolerance"), F.col("difference"))).cast(MONEY_SUM)
                                .alias("exposure")).collect())
            metrics += [{"control_point_id": cp.id, "side": "AGGREGATE", "unpriced": 0, "keys": None, **r.asDict()}
                        for r in agg_metrics]
        _check_conservation(ruleset, metrics, totals)
        figures = {cp.id: _figures(cp, outcomes_of[cp.id]) for cp in ruleset.record_points() if cp.figures}
        _log_decided(cps, metrics)

    systems = {inp.table: inp.system for inp in ruleset.inputs.values()}
    with phase(spark, "cases", run_id):
        versions_for_evidence = dict(input_versions)
        case_parts = [record_cases(outcomes_of[cp.id], _policies(cp),
                                   ruleset.owners, opened_at, versions_for_evidence, systems,
                                   pair_outcomes=[o for o, p in cp.outcomes.items() if p.one_case_per_pair])
                      for cp in ruleset.record_points()]
        for cp, variances in zip(ruleset.aggregate_points(), variance_parts, strict=True):
            assert cp.beyond is not None
            tables_of = [ruleset.inputs[_aggregate_input(cps, a)].table
                         for a in (cp.aggregate_sides["LEFT"], cp.aggregate_sides["RIGHT"])]
            case_parts.append(aggregate_cases(variances.where(F.col("ignore_entry_id").isNull()),
                                              _policies(cp)[cp.beyond], ruleset.owners, opened_at,
                                              versions_for_evidence, systems, tables_of, case_type=cp.beyond))
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

    digest = _inputs_digest(ruleset, input_versions, conf, cycle_id, scope, ignores.fingerprint)
    if hooks.before_write is not None:
        hooks.before_write(run_id)
    with phase(spark, "write", run_id):
        record_outcome = outcomes.withColumnRenamed("exposure", "exposure_amount").drop(
            *[c for c in INTERNAL if c != "exposure"])
        write_run_slice(record_outcome, refs["record_outcome"], "record_outcome", cycle_id, run_id,
                        f"telco-ra:record_outcome:{run_id}:{digest}", bucket)
        write_run_slice(cases, refs["ra_case"], "ra_case", cycle_id, run_id, f"telco-ra:ra_case:{run_id}:{digest}",
                        bucket)
        variances_all = variance_parts[0] if variance_parts else spark.createDataFrame([], AGGREGATE_VARIANCE)
        for part in variance_parts[1:]:
            variances_all = variances_all.unionByName(part)
        write_run_slice(variances_all, refs["aggregate_variance"], "aggregate_variance", cycle_id, run_id,
                        f"telco-ra:aggregate_variance:{run_id}:{digest}", bucket)
        if reproduction_of is None:       # a reproduction is evidence about a run: it requests no correction
            write_run_slice(correction_requests(cases), refs["correction_request"], "correction_request", cycle_id,
                            run_id, f"telco-ra:correction_request:{run_id}:{digest}", bucket)
        for cp in ruleset.record_points():
            for rep in cp.reports:
                rows = outcomes_of[cp.id].where(F.col("side") == "LEFT")
                table = report_rows(rep, cp, rows.withColumnRenamed("exposure", "exposure_amount"),
                                    raw[ruleset.inputs[rep.input].table], cycle.close, bucket is not None)
                table = (table.withColumn("run_id", F.lit(run_id)).withColumn("control_point_id", F.lit(cp.id))
                         .withColumn("ruleset_version", F.lit(ruleset.version))
                         .withColumn("cycle_id", F.lit(cycle_id)))
                write_run_slice(table.select(*OUTPUT_SCHEMAS[rep.kind].fieldNames()), refs[rep.kind], rep.kind,
                                cycle_id, run_id, f"telco-ra:{rep.kind}:{run_id}:{digest}")

        if alerting:
            for a in alert_rows:
                LOG.warning("ALERT %s %s: %s", a["control_point_id"], a["metric"], a["message"])
            alert_frame = spark.createDataFrame(
                [{**{k: v for k, v in a.items()}, "run_id": run_id, "ruleset_version": ruleset.version,
                  "cycle_id": cycle_id} for a in alert_rows], RUN_ALERT)
            write_run_slice(alert_frame, refs["run_alert"], "run_alert", cycle_id, run_id,
                            f"telco-ra:run_alert:{run_id}:{digest}")

    if hooks.before_control_run is not None:
        hooks.before_control_run(run_id)
    close_run_id = _closed_by(spark, conf.output, cycle_id)
    completed_at = datetime.now(UTC)
    control_rows = []
    for cp in cps.values():
        cp_metrics = [m for m in metrics if m["control_point_id"] == cp.id]
        if cp.kind == "record":
            side_inputs = {s: cp.sides[s].input for s in cp.sides}
        else:
            side_inputs = {s: _aggregate_input(cps, a) for s, a in cp.aggregate_sides.items()}
        left_in, right_in = side_inputs.get("LEFT"), side_inputs.get("RIGHT")
        cp_counters = dict(counters[cp.id])
        for side_in in (left_in, right_in):
            if side_in:
                table_name = ruleset.inputs[side_in].table
                cp_counters[f"rows_read.{table_name}"] = totals[side_in]["n_read"]
                cp_counters[f"rows_out_of_scope.{table_name}"] = totals[side_in]["n_out"]
        cp_counters["records_unpriced"] = sum(int(m["unpriced"] or 0) for m in cp_metrics)
        control_rows.append({
            "run_id": run_id, "control_point_id": cp.id, "ruleset_version": ruleset.version, "cycle_id": cycle_id,
            "ruleset_name": ruleset.name, "ruleset_hash": ruleset.content_hash, "ruleset_text": ruleset.text,
            "partition_scope": scope,
            "input_tables": {n: t.ref for n, t in pinned.items()}, "input_versions": input_versions,
            "watermark": watermark, "cycle_close": cycle.close, "started_at": started_at,
            "completed_at": completed_at, "status": "COMMITTED", "conf_fingerprint": conf.fingerprint,
            "left_count": totals[left_in]["n"] if left_in else None,
            "right_count": totals[right_in]["n"] if right_in else None,
            "left_amount": totals[left_in]["amount"] if left_in else None,
            "right_amount": totals[right_in]["amount"] if right_in else None,
            "metrics": [{"side": m["side"], "outcome": m["outcome"], "count": m["count"],
                         "amount": m["amount"], "exposure": m["exposure"], "unpriced": m["unpriced"]}
                        for m in sorted(cp_metrics, key=lambda m: (m["side"], m["outcome"]))],
            "cases_opened": case_counts.get(cp.id, 0), "conservation_ok": True,
            "post_close": close_run_id is not None, "close_run_id": close_run_id,
            "counters": cp_counters, "reproduction_of": reproduction_of,
            "ignore_list_version": ignores.version, "ignore_as_of": ignores.as_of,
            "figures": figures.get(cp.id, []),
        })
    control_run = spark.createDataFrame(control_rows, CONTROL_RUN)
    write_run_slice(control_run, refs["control_run"], "control_run", cycle_id, run_id,
                    f"telco-ra:control_run:{run_id}:{digest}")
    spark.catalog.clearCache()
    result.committed, result.metrics, result.watermark = True, metrics, watermark
    result.alerts = alert_rows
    LOG.info("%s: committed in %.1f s", run_id, (completed_at - started_at).total_seconds())
    return result


def _figures(cp: ControlPoint, outcomes: DataFrame) -> list[dict[str, Any]]:
    """The control point's declared figures (spec.Figure) over its outcome rows (`outcomes`: its own) as the run
    writes them (after the ignore list): per group, the rows and the sum of the figure's column where it names one
    (null where it counts only), collected: one row per group of a small vocabulary."""
    out: list[dict[str, Any]] = []
    for fig in cp.figures:
        measures = [F.count(F.lit(1)).alias("_n")]
        if fig.sum is not None:
            column = "exposure" if fig.sum == "exposure_amount" else fig.sum      # its name before the write
            measures.append(F.sum(column).cast(MONEY_SUM).alias("_sum"))
        rows = (outcomes.where(F.col("side") == fig.side)
                .groupBy(*fig.by).agg(*measures).collect())
        for r in sorted(rows, key=lambda r: [(r[c] is None, r[c] or "") for c in fig.by]):
            total = None if fig.sum is None else r["_sum"] if r["_sum"] is not None else Decimal(0)
            out.append({"figure": fig.name, "side": fig.side, "group": [{"column": c, "value": r[c]} for c in fig.by],
                        "count": int(r["_n"]), "summed": fig.sum, "sum": total})
    return out


def _aggregate_input(cps: Mapping[str, ControlPoint], side: AggregateSide) -> str:
    """The input an aggregate side's rows come from: its own, or that of the record control point side it sums."""
    if side.input is not None:
        return side.input
    assert side.of is not None and side.side is not None
    return cps[side.of].sides[side.side].input


def _log_decided(cps: Mapping[str, ControlPoint], metrics: list[dict[str, Any]]) -> None:
    """'usage-to-rating: 3,031 left rows, 2,916 right rows decided': per control point, from the metrics collected."""
    for cp_id in cps:
        decided: dict[str, int] = {}
        for m in metrics:
            if m["control_point_id"] == cp_id:
                decided[m["side"]] = decided.get(m["side"], 0) + int(m["count"])
        LOG.info("%s: %s decided", cp_id, ", ".join(f"{n:,} {side.lower()} rows" for side, n in sorted(decided.items())))


def _finalized(build: Callable[[], DataFrame], finalize: Callable[[DataFrame], DataFrame]) -> DataFrame:
    rows = build()
    step(rows.sparkSession, "outcome rows")
    return rows.transform(finalize)


def _input_totals(inp: Input) -> list[Column]:
    """Aggregates over an input's candidates: rows read and out of scope, their amounts, and the watermark (the
    latest arrival among the rows in scope, as epoch micros)."""
    out = ~F.col(IN_SIDE)
    aggs = [F.count(F.lit(1)).alias("n_read"), F.count_if(out).alias("n_out")]
    if inp.arrival:
        aggs.append(F.max(F.when(F.col(IN_SIDE), instant_micros(inp.arrival))).alias("w"))
    if inp.amount:
        aggs += [F.sum(inp.amount).cast(MONEY_SUM).alias("amount_read"),
                 F.sum(F.when(out, F.col(inp.amount))).cast(MONEY_SUM).alias("amount_out")]
    return aggs


def _check_conservation(ruleset: Ruleset, metrics: list[dict[str, Any]],
                        totals: Mapping[str, Mapping[str, Any]]) -> None:
    """Per record-level control point and side: rows read = outcome rows + rows out of scope, the same for amounts,
    and every record key of the side carried exactly once; and every record decided by some rule.

    Count and sum alone pass a repeated row plus a lost one of the same amount. Record keys are unique within a
    side, so equal multiset fingerprints (the sum of a 64-bit hash per key, transforms/keys.py) mean the outcome
    rows carry exactly the side's keys, each once (up to a hash collision of 2^-64).
    """
    problems = []
    for cp in ruleset.record_points():
        for side, spec in cp.sides.items():
            inp = ruleset.inputs[spec.input]
            rows = [m for m in metrics if m["control_point_id"] == cp.id and m["side"] == side]
            undecided = sum(int(m["count"]) for m in rows if m["outcome"] is None)
            if undecided:
                problems.append(f"{cp.id} {side}: {undecided} {inp.table} rows no rule decides (the ruleset's rules "
                                "for this side end without a rule that always holds?)")
            t = totals[inp.name]
            count = sum(int(m["count"]) for m in rows)
            if count + t["n_out"] != t["n_read"]:
                problems.append(f"{cp.id} {side}: {count} outcome rows + {t['n_out']} out of scope for "
                                f"{t['n_read']} {inp.table} rows read")
            keys = sum(int(m["keys"] or 0) for m in rows)
            if keys != t["keys"]:
                problems.append(f"{cp.id} {side}: the outcome rows do not carry each {inp.table} record exactly "
                                "once (a record repeated and another lost?)")
            if inp.amount:
                got = sum((m["amount"] or Decimal(0) for m in rows), Decimal(0))
                want = t["amount"] or Decimal(0)
                if got != want:
                    problems.append(f"{cp.id} {side}: outcome amounts {got} != {inp.table} total {want} "
                                    f"(read {t['amount_read'] or 0}, out of scope {t['amount_out'] or 0})")
    if problems:
        raise ConservationError("conservation law broken, nothing committed: " + "; ".join(problems))
