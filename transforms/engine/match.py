"""Match stages: duplicates among the left records, exact keys, then the bucketed fuzzy match with its one-to-one
selection, and the further-match probe. Stages give every record its match columns; they decide no outcome.

Each record comes out with
- `dup` (left side): `copy` (it is a copy of an earlier record), `of_id`/`of_key`/`of_hash` (its original), `by`
  ('id' or 'content': how it met its parent);
- `match`: `stage` (EXACT, FUZZY or null), `rank` (1: the record's match; 2 and on: a further right record for
  one left record), `id`/`key`/`hash` of the counterpart, `confidence`, `ambiguous` (why the best candidates tie),
  `further` (left: how many further right records it has) and `further_ties` (right: how many matched left records
  a leftover right record fits equally well; its counterpart is then unnamed: ids never break a tie).

Matching works on originals: a copy's `match` is its original's, and a right record linked by exact key to a copy
is linked to the copy's original (the first record carrying that id leads to its original). Among the right
records linked to one original, the one linked through the original's own id comes first, then the stage's order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from transforms.checkpoints import materialize, small_mode, step
from transforms.engine.spec import Duplicates, ExactStage, FuzzyStage, Stages
from transforms.fuzzy import QuantityTolerance, candidate_pairs, confidence, quantity_tolerance, resolve_one_to_one
from transforms.sizing import broadcast_hint, is_small, small_side

Q = "quarantine"


@dataclass
class Matched:
    left: DataFrame
    right: DataFrame | None
    counters: dict[str, int]


def _no_dup(df: DataFrame, id_column: str | None) -> DataFrame:
    rid = F.col(id_column) if id_column else F.lit(None).cast("string")
    return (df.withColumn("_is_dup", F.lit(False)).withColumn("_first_of_id", F.lit(True))
            .withColumn("_dup_by", F.lit("content"))
            .withColumn("_root", F.struct(F.col("_key").alias("_key"), F.col("_hash").alias("_hash"),
                                          rid.alias("_rid"))))


def with_roots(valid: DataFrame, id_column: str, dups: Duplicates) -> DataFrame:
    """Mark copies and give every valid left record its original (`_root`: _key, _hash, _rid).

    A record's earlier copy (its parent, `_dup_of`) is the minimum, in `order`, over records sharing its id or its
    content; a record that is its own minimum is an original. A parent may itself be a copy (resends of resends, or
    chains alternating shared ids and shared contents), so parents are followed to a fixed point. Adds `_is_dup`,
    `_dup_by`, `_first_of_id` (the first record carrying its id: the one its lineage leads to) and `_root`.

    Only suspects go through the windows: records whose id or content hash is shared (a month's suspects are a
    few thousand rows where windows over all records shuffled every record twice). A hash collision only adds
    suspects: the windows compare the values themselves.
    """
    content = list(dups.content)
    # The column copies share "by id": the input id, or the declared key (a row with a null in the key shares it
    # with no other row: its own record key stands in).
    if dups.key:
        whole = F.greatest(*[F.col(c).isNull() for c in dups.key]) if len(dups.key) > 1 else F.col(dups.key[0]).isNull()
        valid = valid.withColumn("_dk", F.when(~whole, F.to_json(F.struct(*[F.col(c) for c in dups.key])))
                                 .otherwise(F.concat(F.lit("\u0000"), F.col("_key"))))
        by_column, by_label = "_dk", ", ".join(dups.key)
    else:
        by_column, by_label = id_column, id_column
    keyed = valid.withColumn("_ik", F.xxhash64(by_column)).withColumn("_ck", F.xxhash64(*content))
    shared_ids = small_side(materialize(
        keyed.groupBy("_ik").count().where(F.col("count") > 1).select("_ik", F.lit(True).alias("_shared_id"))))
    shared_contents = small_side(materialize(
        keyed.groupBy("_ck").count().where(F.col("count") > 1).select("_ck", F.lit(True).alias("_shared_content"))))
    flagged = keyed.join(shared_ids, "_ik", "left").join(shared_contents, "_ck", "left")
    suspect = F.coalesce(F.col("_shared_id"), F.lit(False)) | F.coalesce(F.col("_shared_content"), F.lit(False))
    flagged = flagged.withColumn("_suspect", suspect).drop("_ik", "_ck", "_shared_id", "_shared_content")

    alone = _no_dup(flagged.where(~F.col("_suspect")), id_column)
    suspects = flagged.where(F.col("_suspect"))
    ord_struct = F.struct(*[F.col(c) for c in dups.order], F.col("_hash"), F.col("_key"),
                          F.col(id_column).alias("_rid"))
    with_ord = suspects.withColumn("_ord", ord_struct)
    by_id = Window.partitionBy(by_column)
    by_content = Window.partitionBy(*content)
    marked = (
        with_ord.withColumn("_first_by_id", F.min("_ord").over(by_id))
        .withColumn("_first_by_content", F.min("_ord").over(by_content))
        .withColumn("_dup_of", F.least("_first_by_id", "_first_by_content"))
        .withColumn("_is_dup", F.col("_dup_of._key") != F.col("_key"))
        .withColumn("_first_of_id", F.col("_first_by_id._key") == F.col("_key"))
        .withColumn("_dup_by", F.when(~F.col("_first_of_id"), F.lit(by_label)).otherwise(F.lit("content")))
        .drop("_first_by_id", "_first_by_content")
    )
    if dups.key:        # first of its input id (exact stages' lineage), not of the declared key
        marked = marked.withColumn("_first_of_id", F.min("_ord").over(Window.partitionBy(id_column)).getField("_key")
                                   == F.col("_key")).drop("_dk")
    marked = materialize(marked)
    copies = marked.where(F.col("_is_dup")).join(_resolve_roots(marked), "_key")
    originals = marked.where(~F.col("_is_dup")).withColumn("_root", F.col("_ord"))
    narrow_root = F.struct(F.col("_root._key").alias("_key"), F.col("_root._hash").alias("_hash"),
                           F.col("_root._rid").alias("_rid"))
    windowed = originals.unionByName(copies).withColumn("_root", narrow_root).drop("_ord", "_dup_of")
    return alone.drop(*(["_dk"] if dups.key else [])).unionByName(windowed).drop("_suspect")


def _resolve_roots(marked: DataFrame) -> DataFrame:
    """(`_key`, `_root`) for every copy: its parent followed until it is an original, by pointer jumping (root :=
    root's root), so a chain of n copies settles in about log2(n) steps; the first step that moves no root ends it.
    A parent comes strictly earlier in the order (ties broken by the unique `_key`), so no chain loops."""
    links = materialize(marked.where(F.col("_is_dup")).select("_key", F.col("_dup_of").alias("_root")))
    broadcast = is_small(links)
    while True:
        parents = links.select(F.col("_key").alias("_pk"), F.col("_root").alias("_proot"))
        step = materialize(
            links.join(broadcast_hint(parents) if broadcast else parents, F.col("_root._key") == F.col("_pk"), "left")
            .select("_key", F.coalesce(F.col("_proot"), F.col("_root")).alias("_root"),
                    F.col("_pk").isNotNull().alias("_moved")))
        links = step.drop("_moved")
        if step.where(F.col("_moved")).limit(1).count() == 0:
            return links


def _eq(left_cols: Sequence[str], right_cols: Sequence[str]) -> Column:
    cond: Column | None = None
    for i, rc in enumerate(right_cols):
        c = F.col(rc) == F.col(f"_xk{i}")
        cond = c if cond is None else cond & c
    assert cond is not None
    return cond


def _lineage(valid_left: DataFrame, stage: ExactStage, roots_cp: DataFrame | None,
             first_in: tuple[str, ...] | None = None) -> DataFrame:
    """(`_xk<i>`, `_lroot`, `_own`, `_lcp`): per left key value, the original its first record leads to, and the
    original's columns a right record reads as its counterpart. `roots_cp` (`_rk`, `_lcp` per original) where a
    first record may be a copy; None where every record is its own original. `first_in`: where several records may
    carry one key value (`first_pick`), the order that picks the one record a value leads to (the first; the record
    key only orders records equal in it)."""
    firsts = valid_left.where(F.col("_first_of_id"))
    for c in stage.left:
        firsts = firsts.where(F.col(c).isNotNull())
    if first_in is not None:
        w = Window.partitionBy(*stage.left).orderBy(*[F.col(c).asc_nulls_last() for c in first_in], F.col("_key"))
        firsts = firsts.withColumn("_xfirst", F.row_number().over(w)).where(F.col("_xfirst") == 1).drop("_xfirst")
    keyed = firsts.select(*[F.col(c).alias(f"_xk{i}") for i, c in enumerate(stage.left)],
                          F.col("_root").alias("_lroot"), (F.col("_root._key") == F.col("_key")).alias("_own"),
                          *([] if roots_cp is not None else [F.col("_lcp")]))
    if roots_cp is not None:
        keyed = keyed.join(roots_cp, F.col("_lroot._key") == F.col("_rk"), "left").drop("_rk")
    if stage.unique:
        counts = keyed.groupBy(*[f"_xk{i}" for i in range(len(stage.left))]).agg(F.count(F.lit(1)).alias("_n"))
        keyed = keyed.join(counts.where(F.col("_n") == 1).drop("_n"), [f"_xk{i}" for i in range(len(stage.left))])
    return keyed


def _unlinked(df: DataFrame, cp_type: str) -> DataFrame:
    return (df.withColumn("_lroot", F.lit(None).cast("struct<_key:string,_hash:string,_rid:string>"))
            .withColumn("_own", F.lit(None).cast("boolean")).withColumn("_lcp", F.lit(None).cast(cp_type))
            .withColumn("_xstage", F.lit(None).cast("int")).withColumn("_exact_rank", F.lit(None).cast("int")))


def _keyed(valid_right: DataFrame, stage: ExactStage) -> tuple[DataFrame, DataFrame]:
    """(the right records with every key column of `stage` set, the others: they link to nothing)."""
    keyed = valid_right
    for c in stage.right:
        keyed = keyed.where(F.col(c).isNotNull())
    unkeyed = valid_right.where(F.greatest(*[F.col(c).isNull() for c in stage.right]) if len(stage.right) > 1
                                else F.col(stage.right[0]).isNull())
    return keyed, unkeyed


def _exact_on_key(valid_left: DataFrame, valid_right: DataFrame, stage: ExactStage, cp_type: str,
                  roots_cp: DataFrame | None = None, first_in: tuple[str, ...] | None = None,
                  copies: bool = False) -> DataFrame:
    """One exact stage with no `right_where`: the right records of one original are, but for a few, those of one
    key value, so they are ranked on the join's own partitioning (no second shuffle of the right side).

    The few: where a duplicates stage made a copy the first record of its own key value (a resend under a new
    id), two key values lead to one original, and that original's right records are ranked together, by the
    original (a shuffle of those records only). Every root some record other than itself leads to is in that set
    (a superset of the roots two values share: ranking one of those by its root gives the same ranks). Right
    records with a null key link to nothing and stay out of the join (they would all hash to one task)."""
    keyed, unkeyed = _keyed(valid_right, stage)
    lineage = _lineage(valid_left, stage, roots_cp, first_in)
    if not copies:      # no duplicates stage: every record is its own original, no two key values share one
        lineage = lineage.withColumn("_shared", F.lit(False))
        return _ranked(keyed.join(lineage, _eq(stage.left, stage.right), "left"), stage).unionByName(
            _unlinked(unkeyed, cp_type))
    shared = (lineage.where(~F.col("_own")).select(F.col("_lroot._key").alias("_sk")).distinct()
              .withColumn("_shared", F.lit(True)))
    lineage = (lineage.join(broadcast_hint(shared), F.col("_lroot._key") == F.col("_sk"), "left")
               .withColumn("_shared", F.coalesce(F.col("_shared"), F.lit(False))).drop("_sk"))
    return _ranked(keyed.join(lineage, _eq(stage.left, stage.right), "left"), stage).unionByName(
        _unlinked(unkeyed, cp_type))


def _ranked(joined: DataFrame, stage: ExactStage) -> DataFrame:
    """`_exact_rank` and `_xstage` of the right records of one exact stage joined to its lineage (see
    _exact_on_key): by key value, or by original where `_shared`."""
    joined = joined.drop(*[f"_xk{j}" for j in range(len(stage.left))])
    order = (F.col("_own").desc_nulls_last(), *[F.col(c).asc_nulls_last() for c in stage.order], F.col("_key"))
    linked = F.col("_lroot").isNotNull()
    by_key = joined.where(~F.coalesce(F.col("_shared"), F.lit(False)))
    by_root = joined.where(F.coalesce(F.col("_shared"), F.lit(False)))
    ranked = (by_key.withColumn("_exact_rank", F.when(linked, F.row_number().over(
        Window.partitionBy(*stage.right).orderBy(*order))))
        .unionByName(by_root.withColumn("_exact_rank", F.row_number().over(
            Window.partitionBy(F.col("_lroot._key")).orderBy(*order)))))
    return ranked.withColumn("_xstage", F.when(linked, F.lit(0))).drop("_shared")


def one_pass(stages: Stages, left_id: str | None, left_unique: bool) -> bool:
    """Whether the match is one exact stage from the left side's id, unique among its valid records, over the whole
    right side, and nothing else (no duplicates, no fuzzy stage). Then a key value leads to one left record, which
    is its own original, and nothing reads the stage's result but the two sides' outcome rows: `_exact_in_place`."""
    return (len(stages.exact) == 1 and stages.exact[0].right_where is None and stages.fuzzy is None
            and stages.duplicates is None and left_unique and left_id is not None
            and stages.exact[0].left == (left_id,))


def _exact_in_place(valid_left: DataFrame, valid_right: DataFrame, stage: ExactStage, cp_type: str,
                    left_wants: Sequence[str]) -> tuple[DataFrame, DataFrame]:
    """The exact stage of a `one_pass` match, uncut: (the valid right records with their links and ranks, as
    `_exact` gives them; what the left records find, by key value: `_xj0`, the first right record's `_re_*` and
    how many more the value links, `_further`).

    The right records' ranks depend on their key value alone, so the left's findings are ranked from the right
    records' keys and the few columns a left record reads, without the lineage index: a left record meets them on
    its id (`_Findings.exact_on`), and a value no valid left record has finds nothing. The right records themselves
    are linked and ranked by `_exact_on_key`. A cut of the ranked right side, which both readers shared, wrote and
    read every right record once more (6.1 s of a 1M month's 20 s rating-to-billing)."""
    keyed, _ = _keyed(valid_right, stage)
    by_value = Window.partitionBy(*stage.right)
    first = F.row_number().over(by_value.orderBy(*[F.col(c).asc_nulls_last() for c in stage.order], F.col("_key")))
    found = (keyed.withColumn("_first", first).withColumn("_n", F.count(F.lit(1)).over(by_value))
             .where(F.col("_first") == 1)
             .select(*[F.col(c).alias(f"_xj{i}") for i, c in enumerate(stage.right)],
                     F.col(right_id_col(keyed)).alias("_re_id"), F.col("_hash").alias("_re_hash"),
                     F.col("_key").alias("_re_key"), _cp_struct(keyed, left_wants).alias("_re_cp"),
                     (F.col("_n") - 1).alias("_further")))
    return _exact_on_key(valid_left, valid_right, stage, cp_type), found


def first_pick(stage: ExactStage, left_id: str | None, own_originals: bool, left_unique: bool,
              left_order: tuple[str, ...]) -> tuple[str, ...] | None:
    """The order that picks the one left record a key value of `stage` leads to, or None where a value is carried by
    one valid left record at most: the left id, once copies are marked (a duplicates stage: the first record of an
    id) or repeats quarantined (`unique_id`), or a stage that links only values one record carries (`unique`). Any
    other key may be shared (two items provisioned with one number): without the pick, a right record would be
    linked to each of them and come out once per record, which the conservation law refuses. jobs/explain says
    the same in words."""
    by_id = left_id is not None and stage.left == (left_id,)
    if stage.unique or (by_id and (left_unique or not own_originals)):
        return None
    return left_order


def _exact(valid_left: DataFrame, valid_right: DataFrame, stages: Sequence[ExactStage], roots_cp: DataFrame | None,
           cp_type: str, own_originals: bool, left_id: str | None = None, left_order: tuple[str, ...] = (),
           left_unique: bool = False) -> DataFrame:
    """Valid right records with `_lroot`/`_own`/`_lcp` where an exact stage links them, and their `_exact_rank`.
    `own_originals`: every left record is its own original (no duplicates stage); `left_order`: the order that picks
    the first of the left records sharing a key value (`first_pick`)."""
    if len(stages) == 1 and stages[0].right_where is None:
        stage = stages[0]
        return _exact_on_key(valid_left, valid_right, stage, cp_type, roots_cp,
                             first_pick(stage, left_id, own_originals, left_unique, left_order),
                             copies=not own_originals)
    linked_parts: list[DataFrame] = []
    rest = valid_right
    order_of: list[tuple[str, ...]] = []
    for i, stage in enumerate(stages):
        lineage = _lineage(valid_left, stage, roots_cp, first_pick(stage, left_id, own_originals, left_unique,
                                                                  left_order))
        eligible = rest if stage.right_where is None else rest.where(F.coalesce(F.expr(stage.right_where),
                                                                                F.lit(False)))
        held = None if stage.right_where is None else rest.where(~F.coalesce(F.expr(stage.right_where), F.lit(False)))
        joined = eligible.join(lineage, _eq(stage.left, stage.right), "left").drop(
            *[f"_xk{j}" for j in range(len(stage.left))])
        linked_parts.append(joined.where(F.col("_lroot").isNotNull()).withColumn("_xstage", F.lit(i)))
        rest = joined.where(F.col("_lroot").isNull()).drop("_lroot", "_own", "_lcp")
        if held is not None:
            rest = rest.unionByName(held)
        order_of.append(stage.order)
    unlinked = _unlinked(rest, cp_type).drop("_exact_rank")
    linked = linked_parts[0]
    for part in linked_parts[1:]:
        linked = linked.unionByName(part)
    order = order_of[0]
    rank_w = Window.partitionBy(F.col("_lroot._key")).orderBy(
        F.col("_own").desc_nulls_last(), *[F.col(c).asc_nulls_last() for c in order], F.col("_key"))
    linked = linked.withColumn("_exact_rank", F.row_number().over(rank_w))
    return linked.unionByName(unlinked.withColumn("_exact_rank", F.lit(None).cast("int")))


CLASS = "_fz_class"       # the pair's quantity-tolerance class where a fuzzy stage declares none


def _staged(df: DataFrame, fz: FuzzyStage, quantity: str | None) -> DataFrame:
    """`_t`, `_qty` (0 where the stage compares no quantity) and the tolerance class column."""
    out = df.withColumn("_t", F.col(fz.time)).withColumn(
        "_qty", F.col(quantity).cast("bigint") if quantity is not None else F.lit(0).cast("bigint"))
    return out if fz.tolerance_by is not None else out.withColumn(CLASS, F.lit(""))


def _tolerances(fz: FuzzyStage) -> dict[str, QuantityTolerance]:
    if fz.quantity_left is None:
        return {"": QuantityTolerance("0", "0")}
    return {k: QuantityTolerance(str(v.abs), str(v.rel)) for k, v in fz.tolerances.items()}


def _fuzzy_pairs(left: DataFrame, right: DataFrame, fz: FuzzyStage, tolerances: dict[str, QuantityTolerance],
                 broadcast_right: bool = False) -> DataFrame:
    """Candidate pairs of the stage; with `alt_time`, a left record with another instant is a candidate through
    either, and a pair is kept once, at its better (dt, dq)."""
    by = fz.tolerance_by or CLASS
    pairs = candidate_pairs(left, right, fz.keys, fz.window_s, tolerances, broadcast_right=broadcast_right,
                            class_column=by)
    if fz.alt_time is None:
        return pairs
    alt = left.where(F.col(fz.alt_time).isNotNull()).withColumn("_t", F.col(fz.alt_time))
    both = pairs.unionByName(candidate_pairs(alt, right, fz.keys, fz.window_s, tolerances,
                                             broadcast_right=broadcast_right, class_column=by))
    best = F.min(F.struct("dt", "dq"))
    return both.groupBy("l_key", "r_key").agg(best.alias("_b")).select("l_key", "r_key", "_b.dt", "_b.dq")


def _cp_struct(df: DataFrame, wanted: Sequence[str]) -> Column:
    """The columns of `df` a record of the other side reads as `counterpart.<column>` (a placeholder field where it
    reads none: the struct travels with the match either way)."""
    present = [c for c in wanted if c in df.columns]
    if not present:
        return F.struct(F.lit(None).cast("string").alias("_none"))
    return F.struct(*[F.col(c) for c in present])


def match(left: DataFrame, right: DataFrame | None, stages: Stages, left_id: str | None,
          left_columns: Sequence[str], right_columns: Sequence[str], left_wants: Sequence[str] = (),
          right_wants: Sequence[str] = (), left_unique: bool = False, left_order: Sequence[str] = ()) -> Matched:
    """Both sides with their `match` (and the left's `dup`) columns; see the module docstring.

    `left`/`right` carry `_key`, `_hash`, `quarantine` and the columns the stages read. `left_columns` and
    `right_columns` are the columns the caller keeps (the rest of the stage's intermediates is dropped).
    `left_wants` (right columns a left record reads) and `right_wants` (left columns a right record reads) come out
    as each side's `counterpart` struct: the record `match.key` names, carried through the match rather than joined
    back by key afterwards (each join back shuffled a whole side again). `left_unique`: a repeated left id is
    quarantined (the side's `unique_id`), so a valid left record is the only one of its id. `left_order`: the left
    input's `order`, which picks the first of the left records sharing an exact stage's key value where there is
    no duplicates stage (its own `order` does where there is).
    """
    counters: dict[str, int] = {}
    valid_left = left.where(F.col(Q).isNull())
    if stages.duplicates is not None:
        assert left_id is not None
        step(left.sparkSession, "matching, duplicates")
        valid_left = materialize(with_roots(valid_left, left_id, stages.duplicates))
    else:
        valid_left = _no_dup(valid_left, left_id)
    quarantined_left = _no_dup(left.where(F.col(Q).isNotNull()), left_id)
    dup = F.struct(F.col("_is_dup").alias("copy"), F.col("_root._rid").alias("of_id"),
                   F.col("_root._key").alias("of_key"), F.col("_root._hash").alias("of_hash"),
                   F.col("_dup_by").alias("by"))
    if right is None or not (stages.exact or stages.fuzzy):
        none = F.lit(None).cast(MATCH_TYPE)
        out_left = valid_left.unionByName(quarantined_left).withColumn("dup", dup).withColumn("match", none)
        out_right = None if right is None else right.withColumn("match", none)
        if right is not None and left_wants:
            out_left = out_left.withColumn("counterpart", F.lit(None).cast(
                right.select(_cp_struct(right, left_wants).alias("c")).schema["c"].dataType))
        if out_right is not None and right_wants:
            out_right = out_right.withColumn("counterpart", F.lit(None).cast(
                left.select(_cp_struct(left, right_wants).alias("c")).schema["c"].dataType))
        cp_col = ["counterpart"] if "counterpart" in out_left.columns else []
        return Matched(out_left.select(*left_columns, "dup", "match", *cp_col),
                       None if out_right is None else out_right.select(
                           *right_columns, "match", *(["counterpart"] if right_wants else [])), counters)

    valid_right = right.where(F.col(Q).isNull())
    valid_left = valid_left.withColumn("_lcp", _cp_struct(valid_left, right_wants))
    cp_type = valid_left.schema["_lcp"].dataType.simpleString()
    originals = valid_left.where(~F.col("_is_dup"))
    in_place: DataFrame | None = None
    if stages.exact:
        step(left.sparkSession, "matching, exact stage")
        # A first record of an id may be a copy: its original's columns are joined to the lineage index, but only
        # where the right side reads any (else every record carries the same empty placeholder).
        roots_cp = (None if stages.duplicates is None or not right_wants
                    else originals.select(F.col("_key").alias("_rk"), "_lcp"))
        if one_pass(stages, left_id, left_unique):
            exact, in_place = _exact_in_place(valid_left, valid_right, stages.exact[0], cp_type, left_wants)
        else:
            exact = materialize(_exact(valid_left.drop("_lcp") if roots_cp is not None else valid_left, valid_right,
                                       stages.exact, roots_cp, cp_type, stages.duplicates is None, left_id,
                                       stages.duplicates.order if stages.duplicates is not None else tuple(left_order),
                                       left_unique))
    else:
        exact = _unlinked(valid_right, cp_type)
    exact_matched = exact.where(F.col("_exact_rank") == 1).select(
        F.col("_lroot._key").alias("_key"), F.col(right_id_col(exact)).alias("_re_id"),
        F.col("_hash").alias("_re_hash"), F.col("_key").alias("_re_key"),
        _cp_struct(exact, left_wants).alias("_re_cp"))
    exact_further = exact.where(F.col("_exact_rank") > 1).groupBy(F.col("_lroot._key").alias("_fk")).agg(
        F.count(F.lit(1)).alias("_n"))

    right_fuzzy: DataFrame | None = None
    left_fuzzy: DataFrame | None = None
    amb_left = amb_right = probe_best = further_probe = None
    fz = stages.fuzzy
    if fz is not None:
        step(left.sparkSession, "matching, fuzzy stage")
        tolerances = _tolerances(fz)
        fuzzy_left = _staged(originals.join(exact_matched.select("_key"), "_key", "left_anti"), fz, fz.quantity_left)
        fuzzy_right = _staged(exact.where(F.col("_lroot").isNull()), fz, fz.quantity_right)
        pairs = _fuzzy_pairs(fuzzy_left, fuzzy_right, fz, tolerances)
        resolution = resolve_one_to_one(pairs)
        counters.update(fuzzy_rounds=resolution.rounds, fuzzy_unresolved=resolution.unresolved)
        fuzzy_matched = resolution.matched
        ambiguous = small_side(materialize(resolution.ambiguous))
        amb_left = ambiguous.where(F.col("side") == "l").select("_key", F.col("reason").alias("_amb_reason"))
        amb_right = ambiguous.where(F.col("side") == "r").select("_key", F.col("reason").alias("_amb_reason"))
        left_of_pairs = materialize(
            originals.select(F.col("_key").alias("l_key"), F.col("_root._rid").alias("_l_id"),
                             F.col("_hash").alias("_l_hash"),
                             (F.col(fz.tolerance_by) if fz.tolerance_by else F.lit("")).alias("_fclass"),
                             (F.col(fz.quantity_left).cast("bigint") if fz.quantity_left else F.lit(0).cast("bigint"))
                             .alias("_fqty"), F.col("_lcp").alias("_l_cp"),
                             (F.col(fz.alt_time).isNotNull() if fz.alt_time else F.lit(False)).alias("_falt"))
            .join(small_side(fuzzy_matched), "l_key"))
        r_info = right.select(F.col("_key").alias("r_key"), F.col(right_id_col(right)).alias("_r_id"),
                              F.col("_hash").alias("_r_hash"), _cp_struct(right, left_wants).alias("_r_cp"))
        pair_conf = confidence(F.col("dt"), F.col("dq"), fz.window_s,
                               quantity_tolerance(F.col("_fclass"), F.col("_fqty"), tolerances))
        if fz.alt_time is not None:      # a record with two possible instants matches with less confidence
            lowered = F.round(pair_conf * F.lit(fz.alt_confidence).cast("decimal(5,4)"), 4).cast("decimal(5,4)")
            pair_conf = F.when(F.col("_falt"), lowered).otherwise(pair_conf)
        fuzzy_pairs = small_side(materialize(r_info.join(small_side(left_of_pairs), "r_key").withColumn(
            "_conf", pair_conf)))
        right_fuzzy = fuzzy_pairs.select("r_key", F.col("_l_id").alias("_fz_id"), F.col("_l_hash").alias("_fz_hash"),
                                         F.col("l_key").alias("_fz_root"), F.col("_conf").alias("_fz_conf"),
                                         F.col("_l_cp").alias("_fz_cp"))
        left_fuzzy = fuzzy_pairs.select(F.col("l_key").alias("_key"), F.col("_r_id").alias("_lf_id"),
                                        F.col("_r_hash").alias("_lf_hash"), F.col("r_key").alias("_lf_key"),
                                        F.col("_conf").alias("_lf_conf"), F.col("_r_cp").alias("_lf_cp"))
        if fz.further:
            step(left.sparkSession, "matching, further matches")
            probe_best = _probe(originals, fuzzy_right, fuzzy_matched, amb_right, exact_matched, fz, tolerances)
            further_probe = probe_best.where(F.col("_probe_n") == 1).groupBy(
                F.col("_probe_root").alias("_fk")).agg(F.count(F.lit(1)).alias("_n"))

    # ---------------------------------------------------------------------------------------------- right side
    right_all = exact.unionByName(right.where(F.col(Q).isNotNull()), allowMissingColumns=True)
    if right_fuzzy is not None:
        right_all = right_all.join(right_fuzzy.withColumnRenamed("r_key", "_key"), "_key", "left")
    else:
        right_all = (right_all.withColumn("_fz_id", F.lit(None).cast("string"))
                     .withColumn("_fz_hash", F.lit(None).cast("string"))
                     .withColumn("_fz_root", F.lit(None).cast("string"))
                     .withColumn("_fz_conf", F.lit(None).cast("decimal(5,4)"))
                     .withColumn("_fz_cp", F.lit(None).cast(cp_type)))
    if amb_right is not None:
        right_all = right_all.join(amb_right, "_key", "left")
    else:
        right_all = right_all.withColumn("_amb_reason", F.lit(None).cast("string"))
    if probe_best is not None:
        right_all = right_all.join(probe_best, "_key", "left")
    else:
        right_all = (right_all.withColumn("_probe_n", F.lit(None).cast("bigint"))
                     .withColumn("_probe_id", F.lit(None).cast("string"))
                     .withColumn("_probe_hash", F.lit(None).cast("string"))
                     .withColumn("_probe_root", F.lit(None).cast("string"))
                     .withColumn("_probe_cp", F.lit(None).cast(cp_type)))
    exact_in = F.col("_exact_rank").isNotNull()
    fuzzy_in = F.col("_fz_id").isNotNull()
    probe_in = F.col("_probe_n").isNotNull()
    r_match = F.when(exact_in | fuzzy_in | probe_in | F.col("_amb_reason").isNotNull(), F.struct(
        F.when(exact_in, F.lit("EXACT")).when(fuzzy_in | probe_in, F.lit("FUZZY")).alias("stage"),
        F.when(exact_in, F.col("_exact_rank")).when(fuzzy_in, F.lit(1)).when(probe_in, F.lit(2)).cast("int")
        .alias("rank"),
        F.coalesce(F.col("_lroot._rid"), F.col("_fz_id"), F.col("_probe_id")).alias("id"),
        F.coalesce(F.col("_lroot._key"), F.col("_fz_root"), F.col("_probe_root")).alias("key"),
        F.coalesce(F.col("_lroot._hash"), F.col("_fz_hash"), F.col("_probe_hash")).alias("hash"),
        F.when(exact_in, F.lit(1)).when(fuzzy_in, F.col("_fz_conf")).otherwise(F.lit(0)).cast("decimal(5,4)")
        .alias("confidence"),
        F.col("_amb_reason").alias("ambiguous"),
        F.lit(None).cast("bigint").alias("further"),
        F.col("_probe_n").cast("bigint").alias("further_ties"),
    )).otherwise(F.lit(None).cast(MATCH_TYPE))
    r_cp = (F.when(exact_in, F.col("_lcp")).when(fuzzy_in, F.col("_fz_cp")).when(probe_in, F.col("_probe_cp")))
    out_right = right_all.withColumn("match", r_match.cast(MATCH_TYPE)).withColumn("counterpart", r_cp).select(
        *right_columns, "match", *(["counterpart"] if right_wants else []))

    # ----------------------------------------------------------------------------------------------- left side
    step(left.sparkSession, "matching, joining matches to records")
    if in_place is not None:     # one pass: the findings carry the further count, and meet the left on the key
        found = _Findings(in_place, None, None, None, exact_on=stages.exact[0].left)
    else:
        further = exact_further if further_probe is None else exact_further.unionByName(further_probe)
        further = small_side(materialize(further.groupBy("_fk").agg(F.sum("_n").alias("_further"))))
        found = _Findings(exact_matched, left_fuzzy, amb_left, further.withColumnRenamed("_fk", "_key"))
    # At scale the originals' matches are attached lazily: the join moves the left side once, inside the cut that
    # decides it (a cut of its own here wrote and read the whole left side once more: 19-30 task seconds a control
    # point at 1M), and a copy's original's match is found for the copies' roots alone (a few keys: the exact
    # matches are filtered to them before any shuffle). A small run cuts here: its cost is planning, and the cut
    # (lazy, no job of its own) keeps the plans of both uses short.
    originals_m = found.attach(originals).withColumn("dup", dup).select(*left_columns, "dup", "match", "counterpart")
    kept = [*left_columns, "dup", "match", *(["counterpart"] if left_wants else [])]
    small = small_mode()
    if small:
        originals_m = materialize(originals_m)
    out_left = originals_m.select(*kept)
    if stages.duplicates is not None:
        if small:
            roots = originals_m
        else:
            roots = found.attach(small_side(materialize(valid_left.where(F.col("_is_dup")).select(
                F.col("_root._key").alias("_key")).distinct())), roots_only=True)
        root_match = roots.select(F.col("_key").alias("_mk"), F.col("match").alias("_root_match"),
                                  F.col("counterpart").alias("_root_cp"))
        copies = (valid_left.where(F.col("_is_dup")).withColumn("dup", dup)
                  .join(root_match, F.col("_root._key") == F.col("_mk"), "left")
                  .withColumn("match", F.col("_root_match")).withColumn("counterpart", F.col("_root_cp")))
        out_left = out_left.unionByName(copies.select(*kept))
    out_left = (out_left
                .unionByName(quarantined_left.withColumn("dup", dup).withColumn("match", F.lit(None).cast(MATCH_TYPE))
                             .withColumn("counterpart", F.lit(None).cast(originals_m.schema["counterpart"].dataType))
                             .select(*kept)))
    return Matched(out_left, out_right, counters)


@dataclass
class _Findings:
    """What the stages found for left originals, by original (`_key`): the exact stage's first right record
    (`_re_*`), the fuzzy stage's (`_lf_*`; None without a fuzzy stage), why the best candidates tie (`_amb_reason`)
    and how many further right records it has (`_further`)."""

    exact: DataFrame
    fuzzy: DataFrame | None
    ambiguous: DataFrame | None
    further: DataFrame | None
    # The left columns of a one-pass exact stage, whose findings (`_exact_in_place`: `_xj<i>`, `_further`) are
    # joined on its key value rather than on the original (empty: on `_key`).
    exact_on: tuple[str, ...] = ()

    def attach(self, df: DataFrame, roots_only: bool = False) -> DataFrame:
        """`df` (rows with `_key`) with its `match` and `counterpart`. `roots_only`: `df` is a small set of keys
        (a broadcast cut), and the exact matches are filtered to it before they are joined."""
        exact = self.exact.join(df.select("_key"), "_key", "left_semi") if roots_only else self.exact
        if self.exact_on:
            # on the key value: the findings keep the partitioning they were ranked on, and only `df` moves
            on = None
            for i, c in enumerate(self.exact_on):
                eq = F.col(c) == F.col(f"_xj{i}")
                on = eq if on is None else on & eq
            out = df.join(exact, on, "left").drop(*[f"_xj{i}" for i in range(len(self.exact_on))])
        else:
            out = df.join(exact, "_key", "left")
        if self.fuzzy is not None:
            out = out.join(self.fuzzy, "_key", "left")
        else:
            out = (out.withColumn("_lf_id", F.lit(None).cast("string"))
                   .withColumn("_lf_hash", F.lit(None).cast("string")).withColumn("_lf_key", F.lit(None).cast("string"))
                   .withColumn("_lf_conf", F.lit(None).cast("decimal(5,4)"))
                   .withColumn("_lf_cp", F.lit(None).cast(self.exact.schema["_re_cp"].dataType)))
        out = out.join(self.ambiguous, "_key", "left") if self.ambiguous is not None else out.withColumn(
            "_amb_reason", F.lit(None).cast("string"))
        if self.further is not None:
            out = out.join(self.further, "_key", "left")
        re_in, lf_in = F.col("_re_id").isNotNull(), F.col("_lf_id").isNotNull()
        found = F.struct(
            F.when(re_in, F.lit("EXACT")).when(lf_in, F.lit("FUZZY")).alias("stage"),
            F.when(re_in | lf_in, F.lit(1)).cast("int").alias("rank"),
            F.coalesce(F.col("_re_id"), F.col("_lf_id")).alias("id"),
            F.coalesce(F.col("_re_key"), F.col("_lf_key")).alias("key"),
            F.coalesce(F.col("_re_hash"), F.col("_lf_hash")).alias("hash"),
            F.when(re_in, F.lit(1)).when(lf_in, F.col("_lf_conf")).otherwise(F.lit(0)).cast("decimal(5,4)")
            .alias("confidence"),
            F.col("_amb_reason").alias("ambiguous"),
            F.coalesce(F.col("_further"), F.lit(0)).cast("bigint").alias("further"),
            F.lit(None).cast("bigint").alias("further_ties"),
        ).cast(MATCH_TYPE)
        return (out.withColumn("match", found)
                .withColumn("counterpart", F.when(re_in, F.col("_re_cp")).when(lf_in, F.col("_lf_cp"))))


MATCH_TYPE = ("struct<stage:string,rank:int,id:string,key:string,hash:string,confidence:decimal(5,4),"
              "ambiguous:string,further:bigint,further_ties:bigint>")


def right_id_col(df: DataFrame) -> str:
    """The right side's id column, as the caller named it (`_id`)."""
    return "_id"


def _probe(originals: DataFrame, fuzzy_right: DataFrame, fuzzy_matched: DataFrame, amb_right: DataFrame,
           exact_matched: DataFrame, fz: FuzzyStage, tolerances: dict[str, QuantityTolerance]) -> DataFrame:
    """A still-unmatched right record that fits an already matched original is a further match of it. Its
    counterpart is the original with the best (dt, dq); where two or more matched originals reach that best, ids
    never break the tie: `_probe_n` says how many, and no original is named."""
    leftover = materialize(
        fuzzy_right.join(fuzzy_matched.select(F.col("r_key").alias("_key")), "_key", "left_anti")
        .join(amb_right.select("_key"), "_key", "left_anti"))
    matched_keys = exact_matched.select(F.col("_key").alias("l_key")).unionByName(fuzzy_matched.select("l_key"))
    staged = _staged(originals, fz, fz.quantity_left)
    probe = materialize(_fuzzy_pairs(staged, leftover, fz, tolerances, broadcast_right=is_small(leftover)))
    probe = small_side(materialize(matched_keys.join(broadcast_hint(probe), "l_key") if is_small(probe)
                                   else probe.join(matched_keys, "l_key", "left_semi")))
    orig_info = originals.select(F.col("_key").alias("l_key"), F.col("_root._rid").alias("_l_id"),
                                 F.col("_hash").alias("_l_hash"), F.col("_lcp").alias("_l_cp"))
    score = F.struct("dt", "dq")
    unique = F.col("_probe_n") == 1
    return small_side(materialize(
        orig_info.join(probe, "l_key")
        .withColumn("_best", F.min(score).over(Window.partitionBy("r_key"))).where(score == F.col("_best"))
        .groupBy("r_key").agg(F.count(F.lit(1)).alias("_probe_n"),
                              F.min(F.struct("_l_id", "_l_hash", "l_key", "_l_cp")).alias("_b"))
        .select(F.col("r_key").alias("_key"), "_probe_n", F.when(unique, F.col("_b._l_id")).alias("_probe_id"),
                F.when(unique, F.col("_b._l_hash")).alias("_probe_hash"),
                F.when(unique, F.col("_b.l_key")).alias("_probe_root"),
                F.when(unique, F.col("_b._l_cp")).alias("_probe_cp"))))
