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
from pathlib import Path
from typing import Any

import phonenumbers
import yaml


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
    cutoff: datetime | None = None     # activations from this instant on belong to the next cycle (default: end)


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
    # `report: {clear_numbers_for: [team, ...]}`: owner teams whose case exports show phone numbers in clear
    # (jobs/report/exports.py). Not in the fingerprint: it changes no result, only what an export shows.
    report_clear_numbers_for: tuple[str, ...] = ()
    # `report: {after_run: false}`: `telco-ra run`, `close` and `demo` write no report unless `--report` asks
    # (jobs/report/after_run.py). Not in the fingerprint either.
    report_after_run: bool = True
    carriers: str = "conf/carriers"       # folder of carrier layouts (telco-ra ingest, CONTRACT section 6)

    def cycle(self, cycle_id: str) -> Cycle:
        if cycle_id not in self.cycles:
            raise ConfigError(self.path, "cycles", f"no cycle {cycle_id!r} (known: {', '.join(sorted(self.cycles))})")
        return self.cycles[cycle_id]


CONF_KEYS = {"tables", "output", "cycles", "spark", "phone_region", "suspense_sla_days", "report", "carriers"}
REPORT_KEYS = {"clear_numbers_for", "after_run"}
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
    # Any table name: the ruleset names the tables it reads (its inputs' `table`), and a run refuses a missing one.
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
        _unknown(path, f"{key}.", bounds, {"start", "end", "close", "cutoff"})
        for b in ("start", "end", "close"):
            if b not in bounds:
                raise ConfigError(path, f"{key}.{b}", "missing (required)")
        start, end, close = (_timestamp(path, f"{key}.{b}", bounds[b]) for b in ("start", "end", "close"))
        if not start < end <= close:
            raise ConfigError(path, key, f"expected start < end <= close, got {start} / {end} / {close}")
        cutoff = _timestamp(path, f"{key}.cutoff", bounds["cutoff"]) if bounds.get("cutoff") is not None else None
        if cutoff is not None and not start < cutoff <= end:
            raise ConfigError(path, f"{key}.cutoff", f"expected start < cutoff <= end, got {cutoff}")
        cycles[str(cid)] = Cycle(str(cid), start, end, close, cutoff)
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
                + ([str(v.cutoff)] if v.cutoff else []) for k, v in cycles.items()}, "phone_region": region,
                "suspense_sla_days": sla}
    fingerprint = hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()[:16]
    report = data.get("report") or {}
    if not isinstance(report, dict):
        raise ConfigError(path, "report", f"expected a mapping, got {report!r}")
    _unknown(path, "report.", report, REPORT_KEYS)
    clear = report.get("clear_numbers_for") or []
    if not isinstance(clear, list) or not all(isinstance(t, str) and t.strip() for t in clear):
        raise ConfigError(path, "report.clear_numbers_for", f"{clear!r} is not a list of owner team names")
    after_run = report.get("after_run", True)
    if not isinstance(after_run, bool):
        raise ConfigError(path, "report.after_run", f"{after_run!r} is not true or false")
    carriers = data.get("carriers", "conf/carriers")
    if not isinstance(carriers, str) or not carriers.strip():
        raise ConfigError(path, "carriers", f"{carriers!r} is not a folder of carrier layouts")
    del text
    return EnvConf(str(path), dict(tables), data["output"], cycles, dict(spark), region, sla, fingerprint,
                   report_clear_numbers_for=tuple(t.strip() for t in clear), report_after_run=after_run,
                   carriers=carriers)
