"""From an input table to a prepared side: its candidates for the cycle, identity, phones, derived columns, the
lineage account bucket, and per control point side the reason a row is quarantined.

Which rows a run reads, which a side reconciles and which are out of its scope (the conservation law is taken over
candidates: candidates = outcome rows + rows out of scope; transforms/scope.py has the reasoning):

- placed `by` a cycle column: candidates are rows of the cycle or with a null cycle column; a null one is in the
  side when its event `time` falls in the cycle, or is null too (it is quarantined: no cycle may silently drop it);
- placed by an `active` interval [from, to]: every row is a candidate; in the side when it overlaps the cycle (from
  before the cycle's end, to null or not before its start), or when `from` is null (quarantined by `required`);
- a `filter` keeps the rows of the table the input is; a row whose filter is null is kept (it may belong to the
  side) and is quarantined by the side's `required` columns rather than silently left out.

A filter and the derived columns may name the ruleset's parameters (`${active_statuses}`): `params` renders them.
A lookup reads its input's whole table (it is evidence, not a side: no cycle, no filter), with the E.164 phones and
derived columns its SQL names (`lookup_rows`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from transforms.engine.spec import Check, Input, SideSpec
from transforms.engine.sql import render
from transforms.keys import with_record_identity
from transforms.phone import PhoneMapping, normalize_phone_columns, phone_mapping
from transforms.quarantine import first_reason

IN_SIDE = "_in_side"
BUCKET_ACCOUNT = "_bucket_account"
ACCOUNT = "account_id"       # the contract's account column: outputs are laid out by its bucket


def candidates(inp: Input, cycle_id: str) -> Column | None:
    """Rows that could belong to the cycle (a partition-pruning predicate), None: every row."""
    if inp.cycle is None or inp.cycle.by is None:
        return None
    by = F.col(inp.cycle.by)
    return F.coalesce((by == cycle_id) | by.isNull(), F.lit(False))


def in_side(inp: Input, cycle_id: str, start: object, end: object, params: Mapping[str, object] | None = None
            ) -> Column:
    """Of the candidates, those the input's sides reconcile (see the module docstring); never null."""
    s, e = F.lit(start).cast("timestamp"), F.lit(end).cast("timestamp")
    placement = inp.cycle
    if placement is None:
        placed: Column = F.lit(True)
    elif placement.by is not None:
        by = F.col(placement.by)
        placed = by == cycle_id
        if placement.time:
            t = F.col(placement.time)
            placed = placed | (by.isNull() & (t.isNull() | ((t >= s) & (t < e))))
        else:
            placed = placed | by.isNull()
    else:
        assert placement.active is not None
        frm, to = F.col(placement.active[0]), F.col(placement.active[1])
        placed = frm.isNull() | ((frm < e) & (to.isNull() | (to >= s)))
    condition = F.coalesce(placed, F.lit(False))
    if inp.filter:
        condition = condition & F.coalesce(F.expr(render(inp.filter, params or {})), F.lit(True))
    return condition


def scoped(raw: DataFrame, inp: Input, cycle_id: str, start: object, end: object,
           params: Mapping[str, object] | None = None) -> DataFrame:
    """The input's candidates with `_in_side`."""
    cand = candidates(inp, cycle_id)
    df = raw if cand is None else raw.where(cand)
    return df.withColumn(IN_SIDE, in_side(inp, cycle_id, start, end, params))


def _first_account(df: DataFrame, id_column: str, order: Sequence[str]) -> DataFrame:
    """(`_lid`, `_lacc`): per id among the in-side rows, the bucket account of its first row in `order` (the
    account last, so rows equal in order still give one answer)."""
    rows = df.where(F.col(IN_SIDE) & F.col(id_column).isNotNull())
    first = F.min_by(F.col(BUCKET_ACCOUNT), F.struct(*[F.col(c) for c in order], F.col(BUCKET_ACCOUNT)))
    return rows.groupBy(F.col(id_column).alias("_lid")).agg(first.alias("_lacc"))


def with_bucket_accounts(scoped_inputs: Mapping[str, DataFrame], inputs: Mapping[str, Input]) -> dict[str, DataFrame]:
    """Each input with `_bucket_account`: its lineage root's account (so a record and its lineage parent share an account bucket and a partition run sees both): a
    record with `lineage` takes the bucket account of the parent record its lineage column names (the first
    in-side row carrying that id), else its own account."""
    out: dict[str, DataFrame] = {}
    pending = dict(scoped_inputs)
    while pending:
        progressed = False
        for name in list(pending):
            inp = inputs[name]
            df = pending[name]
            # An input without the contract's account column (carrier invoice lines) is laid out by a null account.
            own = F.col(ACCOUNT) if ACCOUNT in df.columns else F.lit(None).cast("string")
            if inp.lineage is None or inp.lineage.parent not in scoped_inputs:
                out[name] = df.withColumn(BUCKET_ACCOUNT, own)
            elif inp.lineage.parent in out:
                parent = inputs[inp.lineage.parent]
                assert parent.id is not None
                lookup = _first_account(out[parent.name], parent.id, parent.order)
                joined = df.join(lookup, F.col(inp.lineage.column) == F.col("_lid"), "left")
                out[name] = joined.withColumn(BUCKET_ACCOUNT, F.coalesce(F.col("_lacc"), own)).drop(
                    "_lid", "_lacc")
            else:
                continue
            del pending[name]
            progressed = True
        if not progressed:
            raise ValueError(f"lineage loops among inputs {sorted(pending)}")
    return out


def prepare(df: DataFrame, inp: Input, region: str, params: Mapping[str, object] | None = None,
            phones: PhoneMapping | None = None) -> DataFrame:
    """Identity (`_key`, `_hash`, `_rank`), E.164 phones (`<col>_e164`) and derived columns, in that order: the
    payload hash covers the record's own columns only. `phones`: the run's mapping of every input's phone columns
    (`phone_mappings`), this input's under its name; else one is made here from `df` (which then must not carry
    `DataFrame.observe` metrics: the mapping is cut first, and a cut of an observed plan reports them)."""
    if inp.phones and phones is None:
        phones = phone_mapping({inp.name: (df, list(inp.phones))}, region)
    if inp.id is not None:
        df = df.transform(with_record_identity(inp.id, inp.order))
    if inp.phones:
        df = df.transform(normalize_phone_columns(list(inp.phones), region, mapping=phones, label=inp.name))
    return _derived(df, inp, params)


def phone_mappings(candidates: Mapping[str, DataFrame], inputs: Mapping[str, Input], region: str
                   ) -> PhoneMapping | None:
    """One phone mapping for the phone columns of every input (`candidates`: each input's candidates with
    `_in_side`, by input name; only rows in a side are parsed), or None when no input has one."""
    sources = {name: (df.where(F.col(IN_SIDE)), list(inputs[name].phones))
               for name, df in candidates.items() if inputs[name].phones}
    return phone_mapping(sources, region) if sources else None


def _derived(df: DataFrame, inp: Input, params: Mapping[str, object] | None) -> DataFrame:
    for name, sql in inp.columns.items():
        df = df.withColumn(name, F.expr(render(sql, params or {})))
    return df


def _names(texts: Iterable[str]) -> set[str]:
    return set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", " ".join(texts)))


def lookup_rows(table: DataFrame, inp: Input, region: str, params: Mapping[str, object],
                texts: Iterable[str]) -> DataFrame:
    """The rows a lookup reads of input `inp`: its whole table, with the input's derived columns and E.164 phones
    where the lookup's SQL (`texts`: its join columns, where, columns) names any of them; else the table as it is
    (no phone is parsed for a lookup that reads none)."""
    named = _names(texts)
    phones = {f"{p}_e164": p for p in inp.phones}
    if not named & ({*inp.columns, *phones}):
        return table
    needed = named | _names(inp.columns.values())
    wanted = [p for e164, p in phones.items() if e164 in needed]
    if wanted:
        table = table.transform(normalize_phone_columns(wanted, region))
    return _derived(table, inp, params)


def quarantine_reason(inp: Input, side: SideSpec, checks: Sequence[Check], columns: Sequence[str]) -> Column:
    """Why a row cannot take part in this side, else null: a null cycle column, a null required column, a repeated
    id (where ids are unique), then the input's checks whose column the side requires (in declared order)."""
    tests: list[tuple[Column, str]] = []
    if inp.cycle is not None and inp.cycle.by is not None and inp.cycle.by in columns:
        tests.append((F.col(inp.cycle.by).isNull(), f"null {inp.cycle.by}"))
    for name in side.required:
        tests.append((F.col(name).isNull(), f"null {name}"))
    if side.unique_id:
        tests.append((F.col("_rank") > 1, f"repeated {inp.id}"))
    for check in checks:
        if check.needs is None or check.needs in side.required:
            tests.append((F.coalesce(F.expr(check.fails), F.lit(False)), check.reason))
    return first_reason(tests)
