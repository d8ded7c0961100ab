"""The rows a flagged record's outcome depends on, read at the Delta versions its run read.

An outcome is decided from the record and what the engine set beside it (transforms/engine: match, then decide).
What must travel with the record so the same outcome follows, level by level:

- level 0 (`narrow`), always:
  - `record`, `record-id`: the record, and every row of its input carrying its id (the first in the input's order
    is the original, a later one a copy; with unique ids a repeated id is quarantined: the whole id group decides
    which row is which);
  - `counterpart`, `counterpart-id`: the counterpart (the first row of its id in its input's order: the one a match
    or a copy leads to) and every row carrying its id, in the other side's input (a match) or in its own (the
    original of a copy); where a control point names a lookup table as the counterpart (rating-accuracy: the tariff
    version that priced it), the lookup row the engine's own lookup finds for the record;
  - `sibling`: the other records of the control point that share its counterpart (a further charge is further
    because the first is there) and the other side's records whose counterpart it is;
  - `lookup:<name>`: for every lookup either side uses, the rows that could answer it for the rows above (the key
    lookup's rows of their keys, the price lookup's versions of their tariff ids, the price list's tariffs of their
    service types and the tariffs a price list `map` names); lookups built from the conf's carrier layouts travel
    as the layout files instead (fixture.py);
  - `within`: one row of another input carrying a value a side input is limited to (`within`).
- level 1 (`wide`), when level 0 does not give the same outcome: the matching neighbourhood of the record and its
  counterpart: the rows of either side with equal fuzzy keys within twice the fuzzy window (a competitor for a
  candidate is within one window of it), the rows with the record's content (content copies), the rows carrying its
  exact keys (a key shared by two records links neither where the stage wants it unique), and their id groups.

Every step is a Spark query over the pinned tables whose result (payload hashes: text, a few rows) is collected;
rows are kept whole, so identical copies keep their multiplicity.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs.config import EnvConf
from jobs.flag.source import HASH, RAW, FlaggedRun, as_json
from jobs.outputs import read_output, table_ref
from jobs.report.masking import mask_phones_in_text_str
from jobs.utc import instant_micros
from transforms.engine.decide import lookups_used
from transforms.engine.lookups import apply_lookup
from transforms.engine.prepare import prepare
from transforms.engine.spec import ControlPoint, Input, Lookup
from transforms.engine.sql import params_of
from transforms.keys import with_record_identity

MAX_PART_ROWS = 500           # rows one step may add: beyond it the context is no longer a fixture
PRICE_KINDS = ("price", "price_list")


class ContextError(RuntimeError):
    """The context cannot be gathered (more rows than a fixture holds, or the flagged row is not in its table at the
    run's version): exit 1, the flag is not recorded."""


@dataclass(frozen=True)
class ContextRow:
    roles: tuple[str, ...]
    table: str
    version: int
    record_id: str | None
    payload_hash: str
    json: str


@dataclass
class Context:
    """The rows (per conf table) a flagged record's outcome depends on, each with the roles it plays."""

    level: int
    rows: dict[str, list[ContextRow]]
    schemas: dict[str, str]                      # conf table -> Spark schema JSON of the stored rows

    def of_role(self, role: str) -> list[ContextRow]:
        return [r for rows in self.rows.values() for r in rows if role in r.roles]

    def count(self) -> int:
        return sum(len(rows) for rows in self.rows.values())


@dataclass
class _Gather:
    """The state of one gathering: which payload hashes of which table play which role."""

    spark: SparkSession
    conf: EnvConf
    run: FlaggedRun
    row: Mapping[str, Any]
    parts: dict[str, dict[str, set[str]]] = field(default_factory=dict)     # table -> role -> hashes
    _tables: dict[str, DataFrame] = field(default_factory=dict)

    @property
    def cp(self) -> ControlPoint:
        return self.run.ruleset.control_points[self.row["control_point_id"]]

    def table(self, name: str) -> DataFrame:
        if name not in self._tables:
            self._tables[name] = self.run.read(self.spark, name)
        return self._tables[name]

    def add(self, role: str, table: str, selected: DataFrame) -> set[str]:
        """Keep the rows of `selected` (rows of `table`, with `_ph`) under `role`; returns their hashes."""
        found = [r[HASH] for r in selected.select(HASH).distinct().limit(MAX_PART_ROWS + 1).collect()]
        if len(found) > MAX_PART_ROWS:
            raise ContextError(f"table {table}: more than {MAX_PART_ROWS} rows are {role} rows of the flagged "
                                  "record: too many for a fixture")
        self.parts.setdefault(table, {}).setdefault(role, set()).update(found)
        return set(found)

    def ids(self, inp: Input, role: str, ids: Iterable[str | None]) -> None:
        """Every row of `inp`'s table carrying one of `ids` (whole id groups)."""
        wanted = sorted({i for i in ids if i is not None})
        if wanted and inp.id is not None:
            self.add(role, inp.table, self.table(inp.table).where(F.col(inp.id).cast("string").isin(wanted)))

    def kept(self, table: str) -> DataFrame:
        hashes = sorted({h for hs in self.parts.get(table, {}).values() for h in hs})
        return self.table(table).where(F.col(HASH).isin(hashes))

    def prepared(self, inp: Input) -> DataFrame:
        """The kept rows of `inp`'s table as a side sees them: identity, E.164 phones and derived columns."""
        return prepare(self.kept(inp.table), inp, self.conf.phone_region)


def gather(spark: SparkSession, conf: EnvConf, run: FlaggedRun, row: Mapping[str, Any], level: int) -> Context:
    """The context of the flagged outcome `row` (source.outcome_row) of `run` at `level` (0 or 1)."""
    g = _Gather(spark, conf, run, row)
    cp = g.cp
    inputs = run.ruleset.inputs
    side = str(row["side"])
    own = inputs[cp.sides[side].input]
    other_side = "RIGHT" if side == "LEFT" else "LEFT"
    other = inputs[cp.sides[other_side].input] if other_side in cp.sides else None
    assert own.id is not None
    record = g.table(own.table).where((F.col(own.id).cast("string") == row["record_id"])
                                      & (F.col(HASH) == row["payload_hash"]))
    if not g.add("record", own.table, record):
        raise ContextError(mask_phones_in_text_str(
            f"record {row['record_id']}: no row of table {own.table} at version {run.input_versions[own.table]} has "
            "the payload hash the run recorded for it") or "")
    g.ids(own, "record-id", [row["record_id"]])
    _counterpart(g, own, other)
    _siblings(g)
    if level >= 1:
        _neighbourhood(g)
    _lookups(g)
    _within(g)
    return _collect(g, level)


def _counterpart(g: _Gather, own: Input, other: Input | None) -> None:
    """The counterpart's id group: in its own input for a copy (no match, an original named), else the other
    side's. A lookup named as counterpart (`record.counterpart_table`) is found by `_lookups`."""
    cp_id = g.row["counterpart_id"]
    if cp_id is None or "counterpart_table" in g.cp.record.get(str(g.row["side"]), {}):
        return
    inp = own if g.row["match_stage"] == "NONE" or other is None else other
    g.ids(inp, "counterpart-id", [cp_id])
    if inp.id is not None:            # the row a match (or a copy) leads to: the first of its id in the input's order
        group = g.table(inp.table).where(F.col(inp.id).cast("string") == cp_id)
        g.add("counterpart", inp.table, group.transform(with_record_identity(inp.id, inp.order))
              .where(F.col("_rank") == 1))


def _siblings(g: _Gather) -> None:
    """Records of the control point sharing the counterpart record (same side), or whose counterpart the record is."""
    outcomes = (read_output(g.spark, table_ref(g.conf.output, "record_outcome"))
                .where((F.col("cycle_id") == g.run.cycle_id) & (F.col("run_id") == g.run.run_id)
                       & (F.col("control_point_id") == g.cp.id)))
    side, cp_id = g.row["side"], g.row["counterpart_id"]
    pointing = F.col("counterpart_id") == g.row["record_id"]
    # a lookup row named as counterpart (a tariff version) is shared by every record it priced: not a sibling
    shared = cp_id is not None and "counterpart_table" not in g.cp.record.get(str(side), {})
    sharing = (F.col("side") == side) & (F.col("counterpart_id") == cp_id) if shared else F.lit(False)
    rows = (outcomes.where(sharing | pointing).select("side", "record_id").distinct()
            .limit(MAX_PART_ROWS + 1).collect())
    if len(rows) > MAX_PART_ROWS:
        raise ContextError(f"more than {MAX_PART_ROWS} records of {g.cp.id} share the flagged record's "
                              "counterpart: too many for a fixture")
    for s, inp in _side_inputs(g).items():
        g.ids(inp, "sibling", [r["record_id"] for r in rows if r["side"] == s])


def _side_inputs(g: _Gather) -> dict[str, Input]:
    return {s: g.run.ruleset.inputs[spec.input] for s, spec in g.cp.sides.items()}


def _lookups(g: _Gather) -> None:
    """For each lookup each side uses, the rows that could answer it for the side rows kept; the lookup row a
    control point names as the flagged record's counterpart; the tariffs every price list `map` names (the run
    refuses a map naming a tariff its table lacks)."""
    ruleset = g.run.ruleset
    for side, inp in _side_inputs(g).items():
        names = lookups_used(g.cp, side)
        if not names or inp.table not in g.parts:
            continue
        rows = g.prepared(inp)
        for name in names:
            lookup = g.cp.lookups[name]
            source = ruleset.inputs[lookup.input]
            if source.layouts is None:
                g.add(f"lookup:{name}", source.table, _answers(g.table(source.table), lookup, rows))
        if side == g.row["side"]:
            _lookup_counterpart(g, inp, rows, names)
    for cp in ruleset.record_points():
        for lookup in cp.lookups.values():
            source = ruleset.inputs[lookup.input]
            if lookup.kind == "price_list" and lookup.map and source.layouts is None:
                g.add(f"lookup:{lookup.name}", source.table,
                      g.table(source.table).where(F.col("tariff_id").isin(sorted(set(lookup.map.values())))))


def _semi(table: DataFrame, rows: DataFrame, pairs: Mapping[str, str]) -> DataFrame:
    """The rows of `table` whose columns equal those of some row of `rows` (`pairs`: rows' column -> table's)."""
    keys = rows.select(*[F.col(c).alias(f"_k{i}") for i, c in enumerate(pairs)]).distinct()
    cond: Column | None = None
    for i, column in enumerate(pairs.values()):
        c = F.col(column) == keys[f"_k{i}"]
        cond = c if cond is None else cond & c
    return table.join(keys, cond, "left_semi")


def _answers(table: DataFrame, lookup: Lookup, rows: DataFrame) -> DataFrame:
    """The rows of a lookup's table that could answer it for `rows` (transforms/engine/lookups.py's kinds)."""
    if lookup.kind == "price":
        assert lookup.by is not None
        return _semi(table, rows, {lookup.by: "tariff_id"})
    if lookup.kind == "price_list":
        assert lookup.by is not None
        return _semi(table, rows, {lookup.by: "service_type"})
    return _semi(table, rows, dict(lookup.on))           # key, prefix: every row of the record's keys


def _lookup_counterpart(g: _Gather, inp: Input, rows: DataFrame, names: list[str]) -> None:
    """Where the control point names a lookup table as the counterpart, the version a price lookup gave the
    flagged record (the engine's own lookup over the kept rows)."""
    table = g.cp.record.get(str(g.row["side"]), {}).get("counterpart_table")
    if table is None:
        return
    for name in names:
        lookup = g.cp.lookups[name]
        if lookup.kind not in PRICE_KINDS or g.run.ruleset.inputs[lookup.input].table != table:
            continue
        assert inp.id is not None
        mine = rows.where((F.col(inp.id).cast("string") == g.row["record_id"])
                          & (F.col(HASH) == g.row["payload_hash"]))
        cycle = g.conf.cycle(g.run.cycle_id)
        prices = g.table(table).drop(RAW, HASH)
        priced = apply_lookup(mine, lookup, prices, params_of(g.run.ruleset.params, g.cp.tolerance, cycle))
        used = priced.select(F.col(f"{name}.tariff_id").alias("_t"), F.col(f"{name}.tariff_version").alias("_v"))
        g.add("counterpart", table, _semi(g.table(table), used, {"_t": "tariff_id", "_v": "tariff_version"}))
        return


def _within(g: _Gather) -> None:
    """For a side input limited to rows whose column value another input carries (`within`), one row of that input
    per value the kept rows carry (the smallest payload hash: any one will do, and this one is fixed)."""
    for inp in _side_inputs(g).values():
        if not inp.within or inp.table not in g.parts:
            continue
        rows = g.prepared(inp)
        for column, (name, other_column) in inp.within.items():
            source = g.run.ruleset.inputs[name]
            if source.layouts is not None:
                continue
            carriers = _semi(g.table(source.table), rows, {column: other_column})
            first = carriers.groupBy(other_column).agg(F.min(HASH).alias(HASH))
            g.add("within", source.table, first)


def _neighbourhood(g: _Gather) -> None:
    """Level 1: the rows the match stages compare the record and its counterpart with (see the module docstring)."""
    stages = g.cp.stages
    sides = _side_inputs(g)
    anchors = {s: g.prepared(inp).where(F.col(HASH).isin(sorted(
        g.parts[inp.table].get("record", set()) | g.parts[inp.table].get("counterpart", set()))))
        for s, inp in sides.items() if inp.table in g.parts}
    found: dict[str, set[str]] = {}

    def near(inp: Input, selected: DataFrame) -> None:
        found.setdefault(inp.table, set()).update(g.add("neighbour", inp.table, selected))

    if stages.fuzzy is not None:
        fz = stages.fuzzy
        window = 2 * fz.window_s * 1_000_000
        times = [fz.time, *([fz.alt_time] if fz.alt_time else [])]
        instants = [int(v) for a in anchors.values() for t in times if t in a.columns
                    for v in [r[0] for r in a.select(instant_micros(t)).collect()] if v is not None]
        for inp in sides.values():
            base = g.table(inp.table)
            if fz.time in base.columns and instants:
                at = instant_micros(fz.time)
                base = base.where(functools.reduce(operator.or_, [F.abs(at - F.lit(i)) <= window for i in instants]))
            prepared = prepare(base, inp, g.conf.phone_region)
            for a in anchors.values():
                near(inp, _semi(prepared, a, {k: k for k in fz.keys}))
    if stages.duplicates is not None and "LEFT" in anchors:
        left = sides["LEFT"]
        content = list(stages.duplicates.content)
        raw = [c for c in content if c in g.table(left.table).columns]
        base = _semi(g.table(left.table), anchors["LEFT"], {c: c for c in raw}) if raw else g.table(left.table)
        near(left, _semi(prepare(base, left, g.conf.phone_region), anchors["LEFT"], {c: c for c in content}))
    for stage in stages.exact:
        for s, cols in (("LEFT", stage.left), ("RIGHT", stage.right)):
            if s not in anchors:
                continue
            for target, t_cols in (("LEFT", stage.left), ("RIGHT", stage.right)):
                if target in sides:
                    inp = sides[target]
                    near(inp, _semi(prepare(g.table(inp.table), inp, g.conf.phone_region), anchors[s],
                                    dict(zip(cols, t_cols, strict=True))))
    for table, hashes in found.items():         # and the neighbours' id groups
        for inp in {i.name: i for i in sides.values() if i.table == table}.values():
            if inp.id is not None and hashes:
                ids = [r[0] for r in g.table(table).where(F.col(HASH).isin(sorted(hashes)))
                       .select(F.col(inp.id).cast("string")).distinct().limit(MAX_PART_ROWS + 1).collect()]
                g.ids(inp, "neighbour", ids)


def _collect(g: _Gather, level: int) -> Context:
    """The kept rows of every table the ruleset reads (empty tables included), with their roles."""
    rows: dict[str, list[ContextRow]] = {}
    schemas: dict[str, str] = {}
    id_of: dict[str, str] = {}
    for inp in g.run.ruleset.inputs.values():
        if inp.id is not None and inp.layouts is None:
            id_of.setdefault(inp.table, inp.id)
    for table in sorted(g.run.ruleset.tables()):
        schemas[table] = g.run.raw_schema(g.spark, table)
        parts = g.parts.get(table, {})
        if not parts:
            rows[table] = []
            continue
        roles = F.array_compact(F.array(*[F.when(F.col(HASH).isin(sorted(h)), F.lit(role))
                                          for role, h in sorted(parts.items())]))
        ident = F.col(id_of[table]).cast("string") if table in id_of else F.lit(None).cast("string")
        got = (g.kept(table).select(roles.alias("roles"), ident.alias("id"), F.col(HASH), as_json(RAW).alias("j"))
               .collect())                                          # bounded: MAX_PART_ROWS per role
        version = g.run.input_versions[table]
        rows[table] = sorted((ContextRow(tuple(r["roles"]), table, version, r["id"], r[HASH], r["j"]) for r in got),
                             key=lambda c: (c.json, c.payload_hash))
    return Context(level, rows, schemas)
