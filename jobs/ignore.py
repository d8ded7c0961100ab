"""`telco-ra ignore add|list|remove`: the ignore list (CONTRACT section 8), and what a run reads of it.

The list is the append-only Delta table `ignore_list` under the conf's `output` (transforms/ignore.py has its rows
and how a run applies them). `add` appends an entry with who, when and why (and an optional expiry); `remove` appends
a removal row naming the entry, who and why; neither edits a row, so `list` shows the whole history. A run reads the
table at one version (recorded in control_run as `ignore_list_version`, with the instant its entries were in force
at) so a rerun sees what its run saw.

    telco-ra ignore add --conf C --control-point item-audit --scope ITEM --key PI-17-0 --reason "test line" --actor ana
    telco-ra ignore list --conf C
    telco-ra ignore remove --conf C --entry-id IGN-... --actor ana --why "billed from July"
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from delta.tables import DeltaTable
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs.config import ConfigError
from jobs.inputs import is_path
from jobs.outputs import exists, read_output, table_ref
from jobs.utc import utc_text
from transforms.checkpoints import materialize
from transforms.ignore import ADD, REMOVE, SCOPES, fingerprint, in_force
from transforms.schema import IGNORE_LIST

LOG = logging.getLogger(__name__)
TABLE = "ignore_list"
# The rulesets shipped with telco-ra (absent from a wheel installed without the repository: then none).
SHIPPED_RULESETS = Path(__file__).resolve().parent.parent / "rulesets"


class IgnoreError(ValueError):
    """A bad ignore command (unknown entry, one already removed, a bad scope or expiry): exit 2, nothing written."""


@dataclass(frozen=True)
class Ignores:
    """What a run read of the ignore list: the version (None: no list yet), the instant entries were in force at,
    the entries in force (None when there are none: nothing to apply) and their fingerprint ('' for none)."""

    version: int | None
    as_of: datetime
    entries: DataFrame | None
    fingerprint: str


def _read(spark: SparkSession, ref: str, version: int | None = None) -> DataFrame:
    reader = spark.read.format("delta")
    if version is not None:
        reader = reader.option("versionAsOf", version)
    return reader.load(ref) if is_path(ref) else reader.table(ref)


def _latest(spark: SparkSession, ref: str) -> int:
    delta = DeltaTable.forPath(spark, ref) if is_path(ref) else DeltaTable.forName(spark, ref)
    row = delta.history(1).select("version").first()
    assert row is not None
    return int(row["version"])


def read_ignores(spark: SparkSession, output: str, version: int | None, as_of: datetime,
                 control_points: Collection[str] | None = None) -> Ignores:
    """The entries in force at `as_of` of the ignore list at `version` (default: its latest); with
    `control_points`, only those naming one of them: an entry for another ruleset's control point is not part of
    this run (its fingerprint, hence its default run id, does not move when another ruleset's entries do)."""
    ref = table_ref(output, TABLE)
    if not exists(spark, ref):
        if version is not None:
            raise ConfigError("ignore_list", "version", f"the run read ignore_list version {version}, but there is "
                              f"no ignore list under {output} now")
        return Ignores(None, as_of, None, "")
    pinned = _latest(spark, ref) if version is None else version
    entries = in_force(_read(spark, ref, pinned), as_of)
    if control_points is not None:
        entries = entries.where(F.col("control_point_id").isin(sorted(control_points)))
    entries = materialize(entries)
    row = entries.agg(F.count(F.lit(1)).alias("n"), fingerprint(entries).alias("fp")).first()  # one row
    assert row is not None
    LOG.info("ignore_list v%s: %s entries in force at %s", pinned, row["n"], utc_text(as_of))
    return Ignores(pinned, as_of, entries if int(row["n"]) else None, str(row["fp"] or ""))


def known_control_points(spark: SparkSession, output: str, rulesets: Sequence[str | Path] = (),
                         shipped: Path = SHIPPED_RULESETS) -> set[str]:
    """The control point ids an entry may name: those of the shipped rulesets, of the `rulesets` files given
    (`--ruleset`, for a ruleset of one's own) and of every run committed under `output` (control_run). An entry
    naming none of them would never apply: a typo would leave the gap raising cases while the operator believes it
    ignored."""
    from jobs.ruleset import load_ruleset

    known: set[str] = set()
    for path in [*sorted(shipped.glob("*.yaml")), *rulesets]:
        known.update(load_ruleset(path).control_points)
    ref = table_ref(output, "control_run")
    if exists(spark, ref):
        rows = read_output(spark, ref).select("control_point_id").distinct().collect()   # bounded: ids ever run here
        known.update(str(r["control_point_id"]) for r in rows)
    return known


def _append(spark: SparkSession, output: str, rows: list[dict[str, Any]]) -> None:
    df = spark.createDataFrame(rows, IGNORE_LIST)
    ref = table_ref(output, TABLE)
    writer = df.write.format("delta").mode("append")
    if is_path(ref):
        writer.save(ref)
    else:
        writer.saveAsTable(ref)


def add(spark: SparkSession, output: str, control_point_id: str, scope: str, key: str, reason: str, actor: str,
        expires_at: datetime | None = None, now: datetime | None = None,
        known: Collection[str] | None = None) -> str:
    """Append an entry; returns its id (`IGN-` + 16 hex of sha256 of what it says, who and when). With `known`
    (`known_control_points`, what the command line passes), a control point outside it is refused."""
    for name, value in (("--control-point", control_point_id), ("--key", key), ("--reason", reason),
                        ("--actor", actor)):
        if not value or not value.strip():
            raise IgnoreError(f"{name} is empty")
    if known is not None and control_point_id not in known:
        raise IgnoreError(
            f"--control-point {control_point_id!r} is not a control point of the shipped rulesets, of a --ruleset "
            f"given or of a run under {output}: the entry would never apply. Known: {', '.join(sorted(known))}. "
            "For a ruleset of your own, name its file with --ruleset")
    if scope not in SCOPES:
        raise IgnoreError(f"--scope {scope!r} is not one of {', '.join(SCOPES)}")
    created = now or datetime.now(UTC)
    if expires_at is not None and expires_at <= created:
        LOG.warning("entry expires at %s, not after its creation: it is never in force", utc_text(expires_at))
    material = "|".join((control_point_id, scope, key, actor, created.isoformat()))
    entry_id = "IGN-" + hashlib.sha256(material.encode()).hexdigest()[:16]
    _append(spark, output, [{"entry_id": entry_id, "action": ADD, "control_point_id": control_point_id,
                             "scope": scope, "key": key, "reason": reason, "actor": actor, "created_at": created,
                             "expires_at": expires_at}])
    return entry_id


def remove(spark: SparkSession, output: str, entry_id: str, actor: str, why: str, now: datetime | None = None) -> None:
    """Append the removal of an entry (refused for an unknown entry or one already removed)."""
    if not actor.strip() or not why.strip():
        raise IgnoreError("--actor and --why are required")
    ref = table_ref(output, TABLE)
    rows = (_read(spark, ref).where(F.col("entry_id") == entry_id).select("action").collect()
            if exists(spark, ref) else [])                       # bounded: one entry's rows
    actions = {r["action"] for r in rows}
    if ADD not in actions:
        raise IgnoreError(f"no ignore entry {entry_id!r} under {output}")
    if REMOVE in actions:
        raise IgnoreError(f"ignore entry {entry_id!r} is already removed")
    _append(spark, output, [{"entry_id": entry_id, "action": REMOVE, "removed_by": actor,
                             "removed_at": now or datetime.now(UTC), "why": why}])


def history(spark: SparkSession, output: str, as_of: datetime | None = None) -> DataFrame:
    """Every entry with its state at `as_of` (IN_FORCE, EXPIRED, REMOVED) and its removal, oldest first."""
    ref = table_ref(output, TABLE)
    if not exists(spark, ref):
        return spark.createDataFrame([], IGNORE_LIST).withColumn("state", F.lit(None).cast("string"))
    t = F.lit(as_of or datetime.now(UTC)).cast("timestamp")
    rows = _read(spark, ref)
    removals = rows.where(F.col("action") == REMOVE).select("entry_id", F.col("removed_by").alias("_rb"),
                                                            F.col("removed_at").alias("_ra"), F.col("why").alias("_w"))
    adds = rows.where(F.col("action") == ADD).drop("removed_by", "removed_at", "why")
    joined = adds.join(removals, "entry_id", "left").withColumnsRenamed(
        {"_rb": "removed_by", "_ra": "removed_at", "_w": "why"})
    state = (F.when(F.col("removed_at").isNotNull() & (F.col("removed_at") <= t), F.lit("REMOVED"))
             .when(F.col("expires_at").isNotNull() & (F.col("expires_at") <= t), F.lit("EXPIRED"))
             .otherwise(F.lit("IN_FORCE")))
    return joined.withColumn("state", state).orderBy("created_at", "entry_id")


def render(rows: list[Any]) -> str:
    lines = [f"{'entry_id':<21} {'state':<9} {'control point':<16} {'scope':<8} {'key':<22} {'actor':<12} "
             f"{'created':<20} {'expires':<20} reason / removal"]
    for r in rows:
        removal = (f"; removed by {r['removed_by']} at {utc_text(r['removed_at'])}: {r['why']}"
                   if r["removed_at"] is not None else "")
        lines.append(f"{r['entry_id']:<21} {r['state']:<9} {r['control_point_id']:<16} {r['scope']:<8} "
                     f"{r['key']:<22} {r['actor']:<12} {utc_text(r['created_at']):<20} "
                     f"{utc_text(r['expires_at']) if r['expires_at'] else '-':<20} {r['reason']}{removal}")
    return "\n".join(lines) + "\n"
