"""`telco-ra rerun --run-id R`: reproduce a committed run as of its own inputs and ruleset, and compare.

The original run's control_run rows name every input's Delta version and carry the ruleset's exact text, so a
rerun reads the same snapshots (time travel) under the same rules, whatever has changed since. It writes a new
run (`<R>.rerun-<n>`) and compares content hashes table by table; if an input version has been vacuumed it says
which one instead of silently reading today's data.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from jobs.config import ConfigError, EnvConf
from jobs.inputs import PinnedTable, check_available
from jobs.outputs import content_hash, exists, read_output, table_ref
from jobs.ruleset import load_ruleset
from jobs.run import RunResult, execute
from jobs.utc import as_utc

LOG = logging.getLogger(__name__)
COMPARED = ("record_outcome", "ra_case", "aggregate_variance")
# Not part of a run's content: its id, and the wall-clock time ra_case rows were recorded (transforms/lifecycle.py).
UNCOMPARED = ("run_id", "recorded_at")
# Columns a run written before they existed does not carry (null in its rows): compared only where the original
# carries them. `rule` (record_outcome) is the name of the rule whose outcome the row has: a run written before it
# is compared on everything else.
ADDED_LATER = {"record_outcome": ("rule",)}


@dataclass(frozen=True)
class Reproduction:
    original: str
    rerun: RunResult
    hashes: dict[str, tuple[str, str]]      # table -> (original, rerun)

    @property
    def identical(self) -> bool:
        return all(a == b for a, b in self.hashes.values())


def rerun(spark: SparkSession, conf: EnvConf, run_id: str) -> Reproduction:
    ref = table_ref(conf.output, "control_run")
    rows = (read_output(spark, ref).where(F.col("run_id") == run_id)
            .select("cycle_id", "input_tables", "input_versions", "ruleset_text", "ruleset_name", "partition_scope",
                    "started_at", *[c for c in ("ignore_list_version", "ignore_as_of")
                                    if c in read_output(spark, ref).columns])
            .limit(1).collect()) if exists(spark, ref) else []
    if not rows:
        raise ConfigError("--run-id", "run_id", f"{run_id!r}: no committed run under {conf.output}")
    row = rows[0]
    versions = dict(row["input_versions"])
    for name, version in sorted(versions.items()):
        check_available(spark, PinnedTable(name, row["input_tables"][name], version))
    ruleset = load_ruleset(f"control_run[{run_id}]:{row['ruleset_name']}", text=row["ruleset_text"])
    tables = dict(conf.tables)
    tables.update(row["input_tables"])
    as_of = EnvConf(conf.path, tables, conf.output, conf.cycles, conf.spark, conf.phone_region,
                    conf.suspense_sla_days, conf.fingerprint)
    attempt = 1
    existing = read_output(spark, ref).select("run_id").distinct()
    while existing.where(F.col("run_id") == f"{run_id}.rerun-{attempt}").limit(1).count():
        attempt += 1
    new_id = f"{run_id}.rerun-{attempt}"
    bucket = None
    if row["partition_scope"].startswith("account_bucket="):
        bucket = int(row["partition_scope"].split("=", 1)[1])
    started = as_utc(row["started_at"])
    # the ignore list as the original run read it: its version, and the entries in force when it started
    fields = row.asDict()
    result = execute(spark, as_of, ruleset, row["cycle_id"], new_id, versions=versions, bucket=bucket,
                     history_before=started, reproduction_of=run_id,
                     ignore_version=fields.get("ignore_list_version"),
                     ignore_as_of=as_utc(fields.get("ignore_as_of")) or started)
    hashes = {}
    for table in COMPARED:
        out = read_output(spark, table_ref(conf.output, table))
        original = out.where(F.col("run_id") == run_id)
        absent = tuple(c for c in ADDED_LATER.get(table, ()) if c in out.columns
                       and not original.where(F.col(c).isNotNull()).limit(1).count())
        hashes[table] = (content_hash(original, exclude=UNCOMPARED + absent),
                         content_hash(out.where(F.col("run_id") == new_id), exclude=UNCOMPARED + absent))
    return Reproduction(run_id, result, hashes)
