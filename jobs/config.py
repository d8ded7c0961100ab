"""Environment conf and rulesets: YAML in, typed frozen objects out, validated before any data is read.

Every error names the file, the key path and the offending value, because the person reading it is an RA analyst
editing YAML at month-end, not the author of this module. Loading never touches Spark.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import phonenumbers
import yaml

from transforms.schema import EXPOSURE_CLASSES, INPUT_SCHEMAS, OUTCOMES, SERVICE_TYPES, SEVERITIES


class ConfigError(ValueError):
    """Bad configuration or ruleset: exit code 2. The message names file, key and value."""

    def __init__(self, path: str | Path, key: str, message: str) -> None:
        super().__init__(f"{path}: {key}: {message}")
        self.path, self.key = str(path), key


# ---------------------------------------------------------------------------------------------------------- conf
@dataclass(frozen=True)
class Cycle:
    cycle_id: str
    start: datetime
    end: datetime
    close: datetime


@dataclass(frozen=True)
class EnvConf:
    path: str
    tables: Mapping[str, str]
    output: str
    cycles: Mapping[str, Cycle]
    spark: Mapping[str, Any] = field(default_factory=dict)
    phone_region: str = "US"
    suspense_sla_days: int | None = None
    fingerprint: str = ""
    carriers: str = "conf/carriers"       # folder of carrier layouts (telco-ra ingest, CONTRACT section 6)

    def cycle(self, cycle_id: str) -> Cycle:
        if cycle_id not in self.cycles:
            raise ConfigError(self.path, "cycles", f"no cycle {cycle_id!r} (known: {', '.join(sorted(self.cycles))})")
        return self.cycles[cycle_id]


CONF_KEYS = {"tables", "output", "cycles", "spark", "phone_region", "suspense_sla_days", "carriers"}
SPARK_KEYS = {"master", "settings", "delta_provided"}


def _read_yaml(path: str | Path, text: str | None = None) -> tuple[dict[str, Any], str]:
    p = Path(path)
    if text is None:
        if not p.is_file():
            raise ConfigError(p, "(file)", "no such file")
        text = p.read_text(encoding="utf-8")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(p, "(yaml)", f"not valid YAML: {str(exc).splitlines()[0]}") from exc
    if not isinstance(data, dict):
        raise ConfigError(p, "(top level)", f"expected a mapping, got {type(data).__name__}")
    return data, text


def _unknown(path: str | Path, where: str, data: Mapping[str, Any], allowed: set[str]) -> None:
    extra = sorted(set(map(str, data)) - allowed)
    if extra:
        raise ConfigError(path, f"{where}{extra[0]}", f"unknown key (allowed: {', '.join(sorted(allowed))})")


def _timestamp(path: str | Path, key: str, value: Any) -> datetime:
    if isinstance(value, datetime):
        ts = value
    else:
        try:
            ts = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except ValueError as exc:
            raise ConfigError(path, key, f"{value!r} is not an ISO-8601 timestamp") from exc
    if ts.tzinfo is None:
        raise ConfigError(path, key, f"{value!r} has no time zone: write it in UTC, e.g. 2026-06-01T00:00:00Z")
    return ts.astimezone(UTC)


def load_conf(path: str | Path) -> EnvConf:
    data, text = _read_yaml(path)
    _unknown(path, "", data, CONF_KEYS)
    for required in ("tables", "output", "cycles"):
        if required not in data:
            raise ConfigError(path, required, "missing (required)")
    tables = data["tables"]
    if not isinstance(tables, dict) or not tables:
        raise ConfigError(path, "tables", f"expected a mapping of table name to path, got {tables!r}")
    _unknown(path, "tables.", tables, set(INPUT_SCHEMAS) | {"product_inventory", "carrier_invoice_line"})
    for name, ref in tables.items():
        if not isinstance(ref, str) or not ref.strip():
            raise ConfigError(path, f"tables.{name}", f"{ref!r} is not a path or catalog.schema.table name")
    if not isinstance(data["output"], str) or not data["output"].strip():
        raise ConfigError(path, "output", f"{data['output']!r} is not a path or schema")
    cycles_raw = data["cycles"]
    if not isinstance(cycles_raw, dict) or not cycles_raw:
        raise ConfigError(path, "cycles", f"expected a mapping of cycle id to bounds, got {cycles_raw!r}")
    cycles: dict[str, Cycle] = {}
    for cid, bounds in cycles_raw.items():
        key = f"cycles.{cid}"
        if not isinstance(bounds, dict):
            raise ConfigError(path, key, f"expected {{start, end, close}}, got {bounds!r}")
        _unknown(path, f"{key}.", bounds, {"start", "end", "close"})
        for b in ("start", "end", "close"):
            if b not in bounds:
                raise ConfigError(path, f"{key}.{b}", "missing (required)")
        start, end, close = (_timestamp(path, f"{key}.{b}", bounds[b]) for b in ("start", "end", "close"))
        if not start < end <= close:
            raise ConfigError(path, key, f"expected start < end <= close, got {start} / {end} / {close}")
        cycles[str(cid)] = Cycle(str(cid), start, end, close)
    spark = data.get("spark") or {}
    if not isinstance(spark, dict):
        raise ConfigError(path, "spark", f"expected a mapping, got {spark!r}")
    _unknown(path, "spark.", spark, SPARK_KEYS)
    if not isinstance(spark.get("settings") or {}, dict):
        raise ConfigError(path, "spark.settings", f"expected a mapping of Spark settings, got {spark['settings']!r}")
    region = data.get("phone_region", "US")
    if not (isinstance(region, str) and len(region) == 2 and region.isalpha() and region.isupper()):
        raise ConfigError(path, "phone_region", f"{region!r} is not a two-letter upper-case region code like US")
    # A region phonenumbers does not know fails only when the first phone is normalized, after Spark has read the
    # month: refuse it here, while nothing has run.
    if region not in phonenumbers.SUPPORTED_REGIONS:
        raise ConfigError(path, "phone_region", f"{region!r} is not a region phonenumbers knows (ISO 3166 codes "
                          "such as US, GB, DE)")
    sla = data.get("suspense_sla_days")
    if sla is not None and (not isinstance(sla, int) or isinstance(sla, bool) or sla < 0):
        raise ConfigError(path, "suspense_sla_days", f"{sla!r} is not a non-negative whole number of days")
    # The fingerprint covers what changes results, not Spark tuning: the same data under other settings is the
    # same run (determinism across shuffle partitions / AQE is a guarantee, tested).
    material = {"tables": tables, "output": data["output"], "cycles": {k: [str(v.start), str(v.end), str(v.close)]
                for k, v in cycles.items()}, "phone_region": region, "suspense_sla_days": sla}
    fingerprint = hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()[:16]
    carriers = data.get("carriers", "conf/carriers")
    if not isinstance(carriers, str) or not carriers.strip():
        raise ConfigError(path, "carriers", f"{carriers!r} is not a folder of carrier layouts")
    del text
    return EnvConf(str(path), dict(tables), data["output"], cycles, dict(spark), region, sla, fingerprint,
                   carriers=carriers)


# ------------------------------------------------------------------------------------------------------ ruleset
@dataclass(frozen=True)
class Tolerance:
    """Beyond tolerance when |difference| > max(abs, rel * |reference|)."""

    abs: Decimal
    rel: Decimal


@dataclass(frozen=True)
class OutcomePolicy:
    case: bool
    exposure_class: str | None = None   # one of EXPOSURE_CLASSES, or BY_SIGN
    owner: str | None = None
    severity: str | None = None
    correction: str | None = None


@dataclass(frozen=True)
class Side:
    table: str
    id: str | None = None
    required: tuple[str, ...] = ()
    filter: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Fuzzy:
    """Fuzzy pairing settings. No bound on selection rounds: selection loops until a round resolves nothing."""

    keys: tuple[str, ...]
    time_window_s: int
    quantity_tolerance: Mapping[str, Tolerance]


@dataclass(frozen=True)
class Exemption:
    id: str
    column: str
    values: tuple[str, ...]
    outcomes: tuple[str, ...]


@dataclass(frozen=True)
class ControlPoint:
    id: str
    kind: str
    left: Side
    right: Side | None
    outcomes: Mapping[str, OutcomePolicy]
    exact: Mapping[str, str] | None = None
    fuzzy: Fuzzy | None = None
    duplicates: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    tolerance: Tolerance | None = None
    exemptions: tuple[Exemption, ...] = ()
    group_by: tuple[str, ...] = ()


@dataclass(frozen=True)
class Ruleset:
    path: str
    name: str
    version: str
    content_hash: str
    text: str
    account_buckets: int
    owners: Mapping[str, int]
    suspense_sla_days: int
    unrated_tariff: Mapping[str, str]
    control_points: Mapping[str, ControlPoint]
    # WAIVED / WRITTEN_OFF of a case with |exposure_amount| above this needs a second actor's approval (jobs/cases.py).
    maker_checker_above: Decimal = Decimal(0)

    def tables(self) -> set[str]:
        names = {"tariff", "suspense"}
        for cp in self.control_points.values():
            names.add(cp.left.table)
            if cp.right:
                names.add(cp.right.table)
        return names


RULESET_KEYS = {"ruleset", "version", "contract", "account_buckets", "owners", "suspense", "unrated_tariff",
                "maker_checker_above", "control_points"}
CP_KEYS = {"kind", "left", "right", "exact", "fuzzy", "duplicates", "tolerance", "outcomes", "exemptions", "group_by"}


class _Reader:
    """Typed access to one YAML mapping with errors that carry the file and dotted key."""

    def __init__(self, path: str | Path) -> None:
        self.path = path

    def fail(self, key: str, message: str) -> ConfigError:
        return ConfigError(self.path, key, message)

    def mapping(self, key: str, value: Any) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(key, f"expected a mapping, got {value!r}")
        return value

    def positive_int(self, key: str, value: Any, zero_ok: bool = False) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < (0 if zero_ok else 1):
            raise self.fail(key, f"{value!r} is not a {'non-negative' if zero_ok else 'positive'} whole number")
        return value

    def decimal(self, key: str, value: Any) -> Decimal:
        try:
            number = Decimal(str(value))
        except InvalidOperation as exc:
            raise self.fail(key, f"{value!r} is not a number") from exc
        if isinstance(value, bool) or not number.is_finite() or number < 0:
            raise self.fail(key, f"{value!r} is not a non-negative number")
        return number

    def columns(self, key: str, value: Any, table: str) -> tuple[str, ...]:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.fail(key, f"expected a list of column names, got {value!r}")
        known = INPUT_SCHEMAS[table].fieldNames()
        for name in value:
            if name not in known:
                raise self.fail(key, f"unknown column {name!r} of table {table} (columns: {', '.join(known)})")
        return tuple(value)

    def tolerance(self, key: str, value: Any) -> Tolerance:
        m = self.mapping(key, value)
        _unknown(self.path, f"{key}.", m, {"abs", "rel"})
        return Tolerance(self.decimal(f"{key}.abs", m.get("abs", 0)), self.decimal(f"{key}.rel", m.get("rel", 0)))


def _side(r: _Reader, key: str, value: Any) -> Side:
    m = r.mapping(key, value)
    _unknown(r.path, f"{key}.", m, {"table", "id", "required", "filter"})
    table = m.get("table")
    if table not in INPUT_SCHEMAS:
        raise r.fail(f"{key}.table", f"{table!r} is not an input table ({', '.join(INPUT_SCHEMAS)})")
    ident = m.get("id")
    if ident is not None:
        r.columns(f"{key}.id", [ident], table)
    required = r.columns(f"{key}.required", m.get("required", []), table)
    filt = r.mapping(f"{key}.filter", m.get("filter") or {})
    r.columns(f"{key}.filter", list(filt), table)
    return Side(table, ident, required, {str(k): str(v) for k, v in filt.items()})


def _control_point(r: _Reader, cp_id: str, value: Any, owners: Mapping[str, int]) -> ControlPoint:
    key = f"control_points.{cp_id}"
    if cp_id not in OUTCOMES:
        raise r.fail(key, f"unknown control point (contract v1 knows: {', '.join(OUTCOMES)})")
    m = r.mapping(key, value)
    _unknown(r.path, f"{key}.", m, CP_KEYS)
    kind = m.get("kind")
    if kind not in ("record", "aggregate"):
        raise r.fail(f"{key}.kind", f"{kind!r} is not one of record, aggregate")
    left = _side(r, f"{key}.left", m.get("left"))
    right = _side(r, f"{key}.right", m["right"]) if m.get("right") is not None else None
    _fit_sides(r, key, cp_id, kind, left, right)
    vocab = {o for outcomes in OUTCOMES[cp_id].values() for o in outcomes}
    outcomes: dict[str, OutcomePolicy] = {}
    for name, pol in r.mapping(f"{key}.outcomes", m.get("outcomes")).items():
        okey = f"{key}.outcomes.{name}"
        if name not in vocab:
            raise r.fail(okey, f"{name!r} is not an outcome of {cp_id} (contract: {', '.join(sorted(vocab))})")
        p = r.mapping(okey, pol)
        _unknown(r.path, f"{okey}.", p, {"case", "exposure_class", "owner", "severity", "correction"})
        case = p.get("case")
        if not isinstance(case, bool):
            raise r.fail(f"{okey}.case", f"{case!r} is not true or false")
        if case:
            if p.get("exposure_class") not in (*EXPOSURE_CLASSES, "BY_SIGN"):
                raise r.fail(f"{okey}.exposure_class", f"{p.get('exposure_class')!r} is not one of "
                             f"{', '.join(EXPOSURE_CLASSES)}, BY_SIGN")
            if p.get("owner") not in owners:
                raise r.fail(f"{okey}.owner", f"{p.get('owner')!r} is not a team under owners")
            if p.get("severity") not in SEVERITIES:
                raise r.fail(f"{okey}.severity", f"{p.get('severity')!r} is not one of {', '.join(SEVERITIES)}")
        outcomes[name] = OutcomePolicy(case, p.get("exposure_class"), p.get("owner"), p.get("severity"),
                                       p.get("correction"))
    missing = vocab - set(outcomes)
    if missing:
        raise r.fail(f"{key}.outcomes", f"no policy for {', '.join(sorted(missing))}")
    exact = None
    if m.get("exact") is not None:
        e = r.mapping(f"{key}.exact", m["exact"])
        _unknown(r.path, f"{key}.exact.", e, {"left", "right"})
        if right is None:
            raise r.fail(f"{key}.exact", "needs a right side")
        r.columns(f"{key}.exact.left", [e.get("left")], left.table)
        r.columns(f"{key}.exact.right", [e.get("right")], right.table)
        exact = {"left": str(e["left"]), "right": str(e["right"])}
    fuzzy = None
    if m.get("fuzzy") is not None:
        f = r.mapping(f"{key}.fuzzy", m["fuzzy"])
        fkey = f"{key}.fuzzy"
        _unknown(r.path, f"{fkey}.", f, {"keys", "time_window_s", "quantity_tolerance"})
        if right is None:
            raise r.fail(fkey, "needs a right side")
        keys = r.columns(f"{fkey}.keys", f.get("keys"), left.table)
        r.columns(f"{fkey}.keys", list(keys), right.table)
        qt = r.mapping(f"{fkey}.quantity_tolerance", f.get("quantity_tolerance"))
        for st in qt:
            if st not in SERVICE_TYPES:
                raise r.fail(f"{fkey}.quantity_tolerance.{st}", f"unknown service_type (known: {', '.join(SERVICE_TYPES)})")
        fuzzy = Fuzzy(keys, r.positive_int(f"{fkey}.time_window_s", f.get("time_window_s")),
                      {st: r.tolerance(f"{fkey}.quantity_tolerance.{st}", v) for st, v in qt.items()})
    duplicates: dict[str, tuple[str, ...]] = {}
    if m.get("duplicates") is not None:
        d = r.mapping(f"{key}.duplicates", m["duplicates"])
        _unknown(r.path, f"{key}.duplicates.", d, {"content", "order"})
        dup_table = left.table if cp_id == "usage-to-rating" else (right.table if right else left.table)
        for part, cols in d.items():
            duplicates[part] = r.columns(f"{key}.duplicates.{part}", cols, dup_table)
    tolerance = r.tolerance(f"{key}.tolerance", m["tolerance"]) if m.get("tolerance") is not None else None
    exemptions = []
    for i, ex in enumerate(m.get("exemptions") or []):
        ekey = f"{key}.exemptions[{i}]"
        x = r.mapping(ekey, ex)
        _unknown(r.path, f"{ekey}.", x, {"id", "column", "values", "outcomes"})
        r.columns(f"{ekey}.column", [x.get("column")], left.table)
        values = x.get("values")
        if not isinstance(values, list) or not values:
            raise r.fail(f"{ekey}.values", f"expected a non-empty list, got {values!r}")
        for o in x.get("outcomes") or []:
            if o not in vocab:
                raise r.fail(f"{ekey}.outcomes", f"{o!r} is not an outcome of {cp_id}")
        exemptions.append(Exemption(str(x.get("id")), str(x["column"]), tuple(map(str, values)),
                                    tuple(x.get("outcomes") or [])))
    if kind == "record" and m.get("group_by") is not None:
        # Dropped below, so _engine_fit could not see it: a record control point never groups.
        raise r.fail(f"{key}.group_by", f"not read by this engine: {cp_id} is a record control point (remove it)")
    group_by = r.columns(f"{key}.group_by", m.get("group_by", []), left.table) if kind == "aggregate" else ()
    if kind == "aggregate" and tolerance is None:
        raise r.fail(f"{key}.tolerance", "missing (required for an aggregate control point)")
    return ControlPoint(cp_id, kind, left, right, outcomes, exact, fuzzy, duplicates, tolerance,
                        tuple(exemptions), group_by)


# ------------------------------------------------------------------------------------------- what the engine runs
# jobs/run.py is wired to the usage-to-bill controls: it runs these four control points in every run, each on fixed
# tables, links them by fixed lineage columns, identifies records by fixed id columns and groups the aggregate by a
# fixed key. Until rulesets drive those choices (the engine issue), a ruleset is held to exactly what the code does:
# a missing piece ended in a KeyError or an assert after Spark had read the month (exit 1), and another value for a
# key the code does not read changed the run id and nothing else. Keep these in step with jobs/run.py.
@dataclass(frozen=True)
class _Wiring:
    """How jobs/run.py runs one control point: what it needs of the ruleset and what it reads when present."""

    kind: str
    left: str                                  # table of the left side
    right: str | None                          # table of the right side; None: the code reads no right side
    exact: Mapping[str, str] | None            # lineage columns the code links by; None: no exact stage
    needs: tuple[str, ...] = ()                # keys the code cannot run without
    reads: tuple[str, ...] = ()                # further keys the code reads when present


ENGINE: dict[str, _Wiring] = {
    "usage-to-rating": _Wiring("record", "cdr", "rated_event", {"left": "record_id", "right": "source_record_id"},
                               needs=("fuzzy", "duplicates.content"),
                               reads=("left.required", "right.required", "duplicates.order", "exemptions")),
    "rating-accuracy": _Wiring("record", "rated_event", None, None, needs=("tolerance",),
                               reads=("left.required", "exemptions")),
    "rating-to-billing": _Wiring("record", "rated_event", "bill_charge",
                                 {"left": "rated_event_id", "right": "source_rated_event_id"}, needs=("tolerance",),
                                 reads=("left.required", "right.required", "right.filter", "duplicates.order",
                                        "exemptions")),
    # Quarantines with rating-to-billing's required columns and scopes bill_charge with its right.filter.
    "usage-aggregate": _Wiring("aggregate", "rated_event", "bill_charge", None, needs=("tolerance", "group_by"),
                               reads=("right.filter",)),
}
# The id column each input's records are identified by (jobs/run.py IDENTITY): a side's `id` may only name it.
IDENTITY_COLUMN = {"cdr": "record_id", "rated_event": "rated_event_id", "bill_charge": "charge_id"}
# usage_aggregate groups by these, always.
AGGREGATE_GROUP_BY = ("account_id", "service_type", "currency")
# Keys a control point may carry that only some control points' code reads (the others are checked one by one).
OPTIONAL_KEYS = ("fuzzy", "tolerance", "duplicates.content", "duplicates.order", "exemptions", "group_by",
                 "left.required", "right.required")


def _not_read(r: _Reader, key: str) -> ConfigError:
    return r.fail(key, "not read by this engine: remove it (it would change the run id and nothing else)")


def _only(r: _Reader, key: str, value: Any, expected: Any, why: str = "") -> None:
    """A key the code does not read: accept only the value the code uses in its place."""
    if value != expected:
        raise r.fail(key, f"{value!r}: this engine uses {expected!r}{why}, whatever this key says; until rulesets "
                     "drive the run only that value is accepted")


def _fit_sides(r: _Reader, key: str, cp_id: str, kind: str, left: Side, right: Side | None) -> None:
    """Kind and side tables as jobs/run.py runs them; checked before the keys that hang off a side."""
    w = ENGINE[cp_id]
    if kind != w.kind:
        raise r.fail(f"{key}.kind", f"{kind!r}: this engine runs {cp_id} as a{'n' if w.kind[0] == 'a' else ''} "
                     f"{w.kind} control point")
    if left.table != w.left:
        raise r.fail(f"{key}.left.table", f"{left.table!r}: this engine reads {w.left} here")
    if w.right is None:
        if right is not None:
            raise _not_read(r, f"{key}.right")
        return
    if right is None:
        raise r.fail(f"{key}.right", f"missing (required: this engine reconciles {cp_id} against {w.right})")
    if right.table != w.right:
        raise r.fail(f"{key}.right.table", f"{right.table!r}: this engine reads {w.right} here")


def _optional(cp: ControlPoint, what: str) -> Any:
    """The value of an optional key of `cp`, None where absent (an empty list does nothing: absent)."""
    values: dict[str, Any] = {
        "fuzzy": cp.fuzzy, "tolerance": cp.tolerance, "exemptions": cp.exemptions or None,
        "duplicates.content": cp.duplicates.get("content") or None,
        "duplicates.order": cp.duplicates.get("order") or None, "group_by": cp.group_by or None,
        "left.required": cp.left.required or None,
        "right.required": (cp.right.required or None) if cp.right else None,
    }
    return values[what]


def _engine_fit(r: _Reader, cps: Mapping[str, ControlPoint]) -> None:
    """Everything jobs/run.py takes from the ruleset is there and means what the code does (see ENGINE)."""
    for cp_id in ENGINE:
        if cp_id not in cps:
            raise r.fail("control_points", f"no control point {cp_id!r} (this engine runs {', '.join(ENGINE)} in "
                         "every run)")
    r2b_right = cps["rating-to-billing"].right
    scoped_by = dict(r2b_right.filter) if r2b_right else {}
    for cp_id, w in ENGINE.items():
        cp, key = cps[cp_id], f"control_points.{cp_id}"
        for name, side in (("left", cp.left), ("right", cp.right)):
            if side is None:
                continue
            if side.id is not None:
                _only(r, f"{key}.{name}.id", side.id, IDENTITY_COLUMN[side.table],
                      f" to identify {side.table} records")
            if cp_id == "rating-to-billing" and name == "right":
                continue                    # the one filter the code reads: it scopes bill_charge
            if cp_id == "usage-aggregate" and name == "right":
                _only(r, f"{key}.right.filter", dict(side.filter), scoped_by,
                      " (rating-to-billing's right.filter: bill_charge is scoped once, for both)")
            else:
                _only(r, f"{key}.{name}.filter", dict(side.filter), {})
        if w.exact is None and cp.exact is not None:
            raise _not_read(r, f"{key}.exact")
        if w.exact is not None:
            if cp.exact is None:
                raise r.fail(f"{key}.exact", f"missing (required: this engine links {cp_id} by "
                             f"{w.exact['left']} = {w.exact['right']})")
            for part in ("left", "right"):
                _only(r, f"{key}.exact.{part}", cp.exact[part], w.exact[part])
        for what in w.needs:
            if _optional(cp, what) is None:
                raise r.fail(f"{key}.{what}", f"missing (required: this engine runs {cp_id} with it)")
        for what in OPTIONAL_KEYS:
            if what not in w.needs + w.reads and _optional(cp, what) is not None:
                raise _not_read(r, f"{key}.{what}")
        if cp_id == "usage-aggregate":
            _only(r, f"{key}.group_by", list(cp.group_by), list(AGGREGATE_GROUP_BY))


def load_ruleset(path: str | Path, text: str | None = None) -> Ruleset:
    """Load and validate a ruleset file; with `text`, validate that content (a past run's) under the name `path`."""
    data, text = _read_yaml(path, text)
    r = _Reader(path)
    _unknown(path, "", data, RULESET_KEYS)
    version = data.get("version")
    if not isinstance(version, str) or not version.strip():
        raise r.fail("version", f"{version!r} is not a version string (quote it: version: \"2026.11.0\")")
    if data.get("contract") != 1:
        raise r.fail("contract", f"{data.get('contract')!r}: this telco-ra implements contract 1")
    owners_raw = r.mapping("owners", data.get("owners"))
    owners: dict[str, int] = {}
    for team, spec in owners_raw.items():
        s = r.mapping(f"owners.{team}", spec)
        _unknown(path, f"owners.{team}.", s, {"sla_days"})
        owners[str(team)] = r.positive_int(f"owners.{team}.sla_days", s.get("sla_days"), zero_ok=True)
    suspense = r.mapping("suspense", data.get("suspense") or {"sla_days": 5})
    _unknown(path, "suspense.", suspense, {"sla_days"})
    unrated = r.mapping("unrated_tariff", data.get("unrated_tariff") or {})
    for st in unrated:
        if st not in SERVICE_TYPES:
            raise r.fail(f"unrated_tariff.{st}", f"unknown service_type (known: {', '.join(SERVICE_TYPES)})")
    cps_raw = r.mapping("control_points", data.get("control_points"))
    cps = {str(cp_id): _control_point(r, str(cp_id), spec, owners) for cp_id, spec in cps_raw.items()}
    _engine_fit(r, cps)
    return Ruleset(
        path=str(path),
        name=str(data.get("ruleset") or Path(path).stem),
        version=version,
        content_hash=hashlib.sha256(text.encode("utf-8")).hexdigest(),
        text=text,
        account_buckets=r.positive_int("account_buckets", data.get("account_buckets", 16)),
        owners=owners,
        suspense_sla_days=r.positive_int("suspense.sla_days", suspense.get("sla_days", 5), zero_ok=True),
        unrated_tariff={str(k): str(v) for k, v in unrated.items()},
        control_points=cps,
        # Optional so that the ruleset text stored by runs made before the key existed still loads (rerun); absent
        # means every non-zero waiver or write-off needs approval.
        maker_checker_above=r.decimal("maker_checker_above", data.get("maker_checker_above", 0)),
    )
