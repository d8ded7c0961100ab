"""Control point usage-to-rating: every usage record (cdr) against what rating made of it (rated_event).

Order of work, as docs/usage_to_bill.md spells out: duplicates among usage records, exact match on lineage, fuzzy
match (bucketed range join, one-to-one) on what is left, a duplicate probe for rated events whose lineage was lost,
then suspense, lateness and tariff pricing for usage that was never rated. Matching works on *originals* (usage
units); a duplicate copy's lineage counts as its original's, so a second rating of one call is a
DUPLICATE_RATED_EVENT whichever copy it points at.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from transforms.checkpoints import materialize
from transforms.fuzzy import QuantityTolerance, candidate_pairs, confidence, quantity_tolerance, resolve_one_to_one
from transforms.outcomes import outcome_frame
from transforms.sizing import is_small, small_side
from transforms.tariff import TariffJoin, service_price_list

# LEFT outcomes whose exposure is the usage priced from the tariff (CONTRACT section 2).
PRICED_OUTCOMES = ("IN_SUSPENSE", "SUSPENSE_AGED", "LATE_USAGE", "USAGE_NOT_RATED")

# Ruleset column names that are compared after normalization.
NORMALIZED = {"msisdn": "msisdn_e164", "other_party": "_other_party_n"}


@dataclass(frozen=True)
class UsageToRatingParams:
    fuzzy_keys: Sequence[str]
    window_s: int
    tolerances: Mapping[str, QuantityTolerance]
    content_columns: Sequence[str]
    order_columns: Sequence[str]
    cycle_close: datetime
    suspense_sla_days: int
    unrated_tariff: Mapping[str, str]


def usage_quantity(prefix: str = "") -> Column:
    """The cdr's comparable quantity: seconds (VOICE), 1 event (SMS), bytes (DATA)."""
    st = F.col(prefix + "service_type")
    return (F.when(st == "VOICE", F.col(prefix + "duration_s"))
            .when(st == "SMS", F.lit(1).cast("bigint"))
            .when(st == "DATA", F.col(prefix + "volume_bytes"))).cast("bigint")


def other_party_key(e164: Column, raw: Column) -> Column:
    """E.164 when the other party is a number, else `RAW:<alphanumerics>` (an SMS sender id), null when empty."""
    cleaned = F.upper(F.regexp_replace(raw, "[^A-Za-z0-9]", ""))
    return F.coalesce(e164, F.when(cleaned != "", F.concat(F.lit("RAW:"), cleaned)))


def _normalized(columns: Sequence[str]) -> list[str]:
    return [NORMALIZED.get(c, c) for c in columns]


def prepare_cdr(cdr: DataFrame) -> DataFrame:
    """cdr rows (identity, phones and `_q` already added) with `_t`, `_qty` and the normalized other party."""
    return (cdr.withColumn("_other_party_n", other_party_key(F.col("other_party_e164"), F.col("other_party")))
            .withColumn("_t", F.col("start_time")).withColumn("_qty", usage_quantity()))


def prepare_rated(rated: DataFrame) -> DataFrame:
    return (rated.withColumn("_other_party_n", other_party_key(F.col("other_party_e164"), F.col("other_party")))
            .withColumn("_t", F.col("start_time")).withColumn("_qty", F.col("quantity")))


def _with_roots(valid: DataFrame, p: UsageToRatingParams) -> DataFrame:
    """Mark duplicates and give every valid usage row its original (`_root`, a struct with _key/_hash/_rid).

    A row's earlier copy (its parent, `_dup_of`) is the minimum, in the ruleset's order, over rows sharing its
    record_id or its content; a row that is its own minimum is an original. A parent may itself be a copy (resends
    of resends, or a chain A(id1,X) <- B(id1,Y) <- C(id2,Y) <- D(id2,Z) <- E(id3,Z) that alternates shared ids and
    shared contents), so parents are followed to a fixed point: every copy's `_root` is an original. Adds `_is_dup`,
    `_dup_by` ('record_id' | 'content', how the row met its parent), `_first_of_id` (the row is the first carrying
    its record_id: the one its lineage leads to) and `_root`.

    Only suspects go through the windows: rows whose record_id or content hash is shared. Every row of a window
    group of two or more is a suspect, so the windows over the suspects alone give the same result, and a month's
    suspects are a few thousand rows where the windows over all rows shuffled every usage record twice (6.8 GB at
    10M). A hash collision only adds rows to the suspects (the windows compare the values themselves).
    """
    content = _normalized(p.content_columns)
    keyed = valid.withColumn("_ik", F.xxhash64("record_id")).withColumn("_ck", F.xxhash64(*content))
    shared_ids = small_side(materialize(
        keyed.groupBy("_ik").count().where(F.col("count") > 1).select("_ik", F.lit(True).alias("_shared_id"))))
    shared_contents = small_side(materialize(
        keyed.groupBy("_ck").count().where(F.col("count") > 1).select("_ck", F.lit(True).alias("_shared_content"))))
    flagged = keyed.join(shared_ids, "_ik", "left").join(shared_contents, "_ck", "left")
    suspect = F.coalesce(F.col("_shared_id"), F.lit(False)) | F.coalesce(F.col("_shared_content"), F.lit(False))
    flagged = flagged.withColumn("_suspect", suspect).drop("_ik", "_ck", "_shared_id", "_shared_content")

    alone = (flagged.where(~F.col("_suspect"))
             .withColumn("_is_dup", F.lit(False)).withColumn("_first_of_id", F.lit(True))
             .withColumn("_dup_by", F.lit("content"))
             .withColumn("_root", F.struct(F.col("_key").alias("_key"), F.col("_hash").alias("_hash"),
                                           F.col("record_id").alias("_rid"))))
    suspects = flagged.where(F.col("_suspect"))
    ord_struct = F.struct(*[F.col(c) for c in p.order_columns], F.col("_hash"), F.col("_key"),
                          F.col("record_id").alias("_rid"))
    with_ord = suspects.withColumn("_ord", ord_struct)
    by_id = Window.partitionBy("record_id")
    by_content = Window.partitionBy(*content)
    marked = (
        with_ord.withColumn("_first_by_id", F.min("_ord").over(by_id))
        .withColumn("_first_by_content", F.min("_ord").over(by_content))
        .withColumn("_dup_of", F.least("_first_by_id", "_first_by_content"))
        .withColumn("_is_dup", F.col("_dup_of._key") != F.col("_key"))
        .withColumn("_first_of_id", F.col("_first_by_id._key") == F.col("_key"))
        .withColumn("_dup_by", F.when(~F.col("_first_of_id"), F.lit("record_id")).otherwise(F.lit("content")))
        .drop("_first_by_id", "_first_by_content")
    )
    marked = materialize(marked)
    dups = marked.where(F.col("_is_dup")).join(_resolve_roots(marked), "_key")
    originals = marked.where(~F.col("_is_dup")).withColumn("_root", F.col("_ord"))
    narrow_root = F.struct(F.col("_root._key").alias("_key"), F.col("_root._hash").alias("_hash"),
                           F.col("_root._rid").alias("_rid"))
    windowed = originals.unionByName(dups).withColumn("_root", narrow_root).drop("_ord", "_dup_of")
    return alone.unionByName(windowed).drop("_suspect")


def _resolve_roots(marked: DataFrame) -> DataFrame:
    """(`_key`, `_root`) for every copy among `marked`: its parent (`_dup_of`) followed until it is an original.

    Pointer jumping over the copies alone: each step replaces a root that is itself a copy by that copy's root
    (root := root's root), so a chain of n copies settles in about log2(n) steps; the first step that moves no root
    ends it. A parent comes strictly earlier in the ruleset's order (ties there are broken by the unique `_key`), so
    no chain loops and the steps end. The copies are a month's few thousand duplicate suspects: one count a step.
    """
    links = materialize(marked.where(F.col("_is_dup")).select("_key", F.col("_dup_of").alias("_root")))
    broadcast = is_small(links)            # the same rows every step: sized once
    while True:
        parents = links.select(F.col("_key").alias("_pk"), F.col("_root").alias("_proot"))
        step = materialize(
            links.join(F.broadcast(parents) if broadcast else parents, F.col("_root._key") == F.col("_pk"), "left")
            .select("_key", F.coalesce(F.col("_proot"), F.col("_root")).alias("_root"),
                    F.col("_pk").isNotNull().alias("_moved")))
        links = step.drop("_moved")
        if step.where(F.col("_moved")).limit(1).count() == 0:
            return links


def _needed(*groups: Sequence[str]) -> list[str]:
    """Columns in first-seen order, once each."""
    return list(dict.fromkeys(c for group in groups for c in group))


# What the control reads of each side besides the ruleset's key, content and order columns: the matching works on
# these only, so no shuffle carries a column nothing reads (raw phone strings, other control points' reasons).
LEFT_COLUMNS = ("_key", "_hash", "_q", "record_id", "account_id", "_bucket_account", "msisdn_e164", "service_type",
                "start_time", "received_at", "_t", "_qty")
RIGHT_COLUMNS = ("_key", "_hash", "_q", "rated_event_id", "source_record_id", "rated_at", "amount", "currency",
                 "account_id", "_bucket_account", "msisdn_e164", "service_type", "start_time", "_t", "_qty")


def usage_to_rating(
    cdr: DataFrame, rated: DataFrame, suspense: DataFrame, tariff: DataFrame, p: UsageToRatingParams,
    counters: dict[str, int] | None = None,
) -> DataFrame:
    """Outcome rows (see transforms.outcomes.outcome_frame) for both sides of usage-to-rating.

    `cdr` carries `_key`, `_hash`, `_q` (quarantine reason), `msisdn_e164`, `other_party_e164`; `rated` the same
    with `_q` for this control point. `counters`, when given, receives the fuzzy selection's `fuzzy_rounds` and
    `fuzzy_unresolved` (for control_run).
    """
    fuzzy_keys = _normalized(p.fuzzy_keys)
    left = prepare_cdr(cdr).select(*_needed(LEFT_COLUMNS, fuzzy_keys, _normalized(p.content_columns),
                                            p.order_columns))
    right = prepare_rated(rated).select(*_needed(RIGHT_COLUMNS, fuzzy_keys))

    valid_left = materialize(_with_roots(left.where(F.col("_q").isNull()), p))

    # Lineage: each record_id (of an original or a copy) leads to the original of the first row carrying it.
    lineage = valid_left.where(F.col("_first_of_id")).select(
        F.col("record_id").alias("_lineage_id"),
        F.col("_root").alias("_lroot"),
        (F.col("_root._key") == F.col("_key")).alias("_own"),
    )
    valid_right = right.where(F.col("_q").isNull())
    exact = valid_right.join(lineage, valid_right["source_record_id"] == lineage["_lineage_id"], "left")
    rank_w = Window.partitionBy(F.coalesce(F.col("_lroot._key"), F.col("_key"))).orderBy(
        F.col("_own").desc_nulls_last(), F.col("rated_at").asc_nulls_last(), F.col("rated_event_id"), F.col("_key"))
    exact = materialize(
        exact.withColumn("_exact_rank", F.when(F.col("_lroot").isNotNull(), F.row_number().over(rank_w))))

    exact_matched = exact.where(F.col("_exact_rank") == 1).select(
        F.col("_lroot._key").alias("_key"), F.col("rated_event_id").alias("_re_id"), F.col("_hash").alias("_re_hash"),
        F.col("_key").alias("_re_key"))

    originals = valid_left.where(~F.col("_is_dup"))
    fuzzy_left = originals.join(exact_matched.select("_key"), "_key", "left_anti")
    fuzzy_right = exact.where(F.col("_lroot").isNull()).drop("_lineage_id", "_lroot", "_own", "_exact_rank")

    pairs = candidate_pairs(fuzzy_left, fuzzy_right, fuzzy_keys, p.window_s, p.tolerances)
    resolution = resolve_one_to_one(pairs)
    if counters is not None:
        counters.update(fuzzy_rounds=resolution.rounds, fuzzy_unresolved=resolution.unresolved)
    fuzzy_matched = resolution.matched
    ambiguous = small_side(materialize(resolution.ambiguous))
    amb_left = ambiguous.where(F.col("side") == "l").select("_key", F.col("reason").alias("_amb_reason"))
    amb_right = ambiguous.where(F.col("side") == "r").select("_key", F.col("reason").alias("_amb_reason"))

    # Duplicate probe: a still-unmatched rated event that fits an already matched original is a second rating.
    # Its counterpart is the original with the best (dt, dq); where two or more matched originals reach that best,
    # ids never break the tie: `_probe_n` says how many, and no original is named (`_probe_id` etc. stay null).
    # The sets met here are small on a healthy month and are joined to the full inputs by broadcast when they are
    # (transforms.sizing): the originals and rated events are then read where they lie instead of shuffled.
    leftover_right = materialize(
        fuzzy_right.join(fuzzy_matched.select(F.col("r_key").alias("_key")), "_key", "left_anti")
        .join(amb_right.select("_key"), "_key", "left_anti"))
    matched_keys = exact_matched.select(F.col("_key").alias("l_key")).unionByName(fuzzy_matched.select("l_key"))
    probe = materialize(candidate_pairs(originals, leftover_right, fuzzy_keys, p.window_s, p.tolerances,
                                        broadcast_right=is_small(leftover_right)))
    # matched keys are unique (exact roots, then fuzzy left keys outside them): the inner join is the semi join
    probe = small_side(materialize(matched_keys.join(F.broadcast(probe), "l_key") if is_small(probe)
                                   else probe.join(matched_keys, "l_key", "left_semi")))
    orig_info = originals.select(F.col("_key").alias("l_key"), F.col("record_id").alias("_l_id"),
                                 F.col("_hash").alias("_l_hash"))
    probe_score = F.struct("dt", "dq")
    probe_unique = F.col("_probe_n") == 1
    probe_best = small_side(materialize(
        orig_info.join(probe, "l_key")
        .withColumn("_best", F.min(probe_score).over(Window.partitionBy("r_key"))).where(probe_score == F.col("_best"))
        .groupBy("r_key").agg(F.count(F.lit(1)).alias("_probe_n"),
                              F.min(F.struct("_l_id", "_l_hash", "l_key")).alias("_b"))    # the one, when unique
        .select(F.col("r_key").alias("_key"), "_probe_n", F.when(probe_unique, F.col("_b._l_id")).alias("_probe_id"),
                F.when(probe_unique, F.col("_b._l_hash")).alias("_probe_hash"),
                F.when(probe_unique, F.col("_b.l_key")).alias("_probe_root"))))

    # ------------------------------------------------------------------------------------------- RIGHT side
    re_info = right.select(F.col("_key").alias("r_key"), F.col("rated_event_id").alias("_r_id"),
                           F.col("_hash").alias("_r_hash"))
    left_of_pairs = materialize(
        originals.select(F.col("_key").alias("l_key"), F.col("record_id").alias("_l_id"),
                         F.col("_hash").alias("_l_hash"), F.col("service_type").alias("_fst"),
                         F.col("_qty").alias("_fqty"))
        .join(small_side(fuzzy_matched), "l_key"))
    fuzzy_pairs = small_side(materialize(re_info.join(small_side(left_of_pairs), "r_key").withColumn(
        "_conf", confidence(F.col("dt"), F.col("dq"), p.window_s, quantity_tolerance(F.col("_fst"), F.col("_fqty"),
                                                                              p.tolerances)))))
    right_fuzzy = fuzzy_pairs.select(F.col("r_key").alias("_key"), F.col("_l_id").alias("_fz_id"),
                                     F.col("_l_hash").alias("_fz_hash"), F.col("l_key").alias("_fz_root"),
                                     F.col("_conf").alias("_fz_conf"))
    quarantined_right = right.where(F.col("_q").isNotNull())
    right_all = (exact.unionByName(quarantined_right, allowMissingColumns=True)
                 .join(right_fuzzy, "_key", "left").join(amb_right, "_key", "left").join(probe_best, "_key", "left"))
    lineage_note = F.when(F.col("source_record_id").isNull(), F.lit("lineage lost")).otherwise(
        F.concat(F.lit("lineage to "), F.col("source_record_id"), F.lit(" not found among valid usage records")))
    r_outcome = (
        F.when(F.col("_q").isNotNull(), F.lit("QUARANTINED"))
        .when(F.col("_exact_rank") == 1, F.lit("MATCHED"))
        .when(F.col("_exact_rank") > 1, F.lit("DUPLICATE_RATED_EVENT"))
        .when(F.col("_fz_id").isNotNull(), F.lit("MATCHED"))
        .when(F.col("_amb_reason").isNotNull(), F.lit("AMBIGUOUS_MATCH"))
        .when(F.col("_probe_n").isNotNull(), F.lit("DUPLICATE_RATED_EVENT"))
        .otherwise(F.lit("RATED_WITHOUT_USAGE"))
    )
    right_decided = materialize(right_all.withColumn("_outcome", r_outcome))
    r_stage = (F.when(F.col("_exact_rank").isNotNull(), F.lit("EXACT"))
               .when(F.col("_fz_id").isNotNull() | F.col("_probe_n").isNotNull(), F.lit("FUZZY"))
               .otherwise(F.lit("NONE")))
    r_counterpart = F.coalesce(F.col("_lroot._rid"), F.col("_fz_id"), F.col("_probe_id"))
    r_reason = (
        F.when(F.col("_outcome") == "QUARANTINED", F.col("_q"))
        .when((F.col("_outcome") == "DUPLICATE_RATED_EVENT") & (F.col("_exact_rank") > 1),
              F.concat(F.lit("further rated event for usage "), F.col("_lroot._rid"), F.lit(" (lineage)")))
        .when((F.col("_outcome") == "DUPLICATE_RATED_EVENT") & (F.col("_probe_n") > 1),
              F.concat(F.lit("further rated event for a matched usage ("), lineage_note, F.lit("; fits "),
                       F.col("_probe_n").cast("string"), F.lit(" matched usage records equally well: a tie, which "
                                                               "ids never break, so no counterpart)")))
        .when(F.col("_outcome") == "DUPLICATE_RATED_EVENT",
              F.concat(F.lit("further rated event for usage "), F.col("_probe_id"), F.lit(" ("), lineage_note,
                       F.lit("; fits a matched usage record)")))
        .when(F.col("_outcome") == "MATCHED", F.when(F.col("_fz_id").isNotNull(), lineage_note))
        .when(F.col("_outcome") == "AMBIGUOUS_MATCH", F.col("_amb_reason"))
        .when(F.col("_outcome") == "RATED_WITHOUT_USAGE", F.concat(lineage_note, F.lit("; no usage record fits")))
    )
    right_rows = outcome_frame(
        right_decided, side="RIGHT", table="rated_event", record_id=F.col("rated_event_id"),
        outcome=F.col("_outcome"), match_stage=r_stage,
        confidence=F.when(F.col("_exact_rank").isNotNull(), F.lit(1)).when(F.col("_outcome") == "MATCHED",
                                                                            F.col("_fz_conf")).otherwise(F.lit(0)),
        counterpart_id=r_counterpart,
        counterpart_key=F.coalesce(F.col("_lroot._key"), F.col("_fz_root"), F.col("_probe_root")),
        counterpart_hash=F.coalesce(F.col("_lroot._hash"), F.col("_fz_hash"), F.col("_probe_hash")),
        counterpart_table="cdr",
        amount=F.col("amount"), currency=F.col("currency"), reason=r_reason,
        exposure=F.when(F.col("_outcome").isin("DUPLICATE_RATED_EVENT", "RATED_WITHOUT_USAGE"), -F.col("amount")),
        account_id=F.col("account_id"), msisdn=F.col("msisdn_e164"), service_type=F.col("service_type"),
        start_time=F.col("start_time"),
    )

    # -------------------------------------------------------------------------------------------- LEFT side
    further = small_side(materialize(
        right_decided.where(F.col("_outcome") == "DUPLICATE_RATED_EVENT")
        .select(F.coalesce(F.col("_lroot._key"), F.col("_probe_root")).alias("_rk"))
        .groupBy("_rk").agg(F.count(F.lit(1)).alias("_further"))))
    left_fuzzy = fuzzy_pairs.select(F.col("l_key").alias("_key"), F.col("_r_id").alias("_lf_id"),
                                    F.col("_r_hash").alias("_lf_hash"), F.col("r_key").alias("_lf_key"),
                                    F.col("_conf").alias("_lf_conf"))
    # An OPEN suspense row whose rejected_at is null has an unknown age: it cannot be shown to be within the SLA,
    # so it counts as aged here and in the oldest bucket of suspense_aging (transforms/suspense.py), alike.
    open_suspense = small_side(materialize(
        suspense.where(F.col("status") == "OPEN").where(F.col("record_id").isNotNull())
        .groupBy("record_id").agg(F.min("rejected_at").alias("_rejected_at"), F.min("reason").alias("_suspense_reason"),
                                  F.lit(True).alias("_in_suspense"))))
    aged_before = p.cycle_close - timedelta(days=p.suspense_sla_days)
    priced_originals = (
        originals.join(exact_matched, "_key", "left").join(left_fuzzy, "_key", "left")
        .join(amb_left, "_key", "left").join(open_suspense, "record_id", "left")
        .join(further.select(F.col("_rk").alias("_key"), "_further"), "_key", "left")
    )
    priced_originals = TariffJoin(service_price_list(tariff, p.unrated_tariff), F.col("service_type"), "t_",
                                  key="_price_service").apply(priced_originals)
    close = F.lit(p.cycle_close).cast("timestamp")
    l_outcome = (
        F.when(F.col("_re_id").isNotNull() | F.col("_lf_id").isNotNull(), F.lit("MATCHED"))
        .when(F.col("_in_suspense") & (F.col("_rejected_at") >= F.lit(aged_before).cast("timestamp")),
              F.lit("IN_SUSPENSE"))
        .when(F.col("_in_suspense"), F.lit("SUSPENSE_AGED"))
        .when(F.col("received_at") > close, F.lit("LATE_USAGE"))
        .when(F.col("_amb_reason").isNotNull(), F.lit("AMBIGUOUS_MATCH"))
        .otherwise(F.lit("USAGE_NOT_RATED"))
    )
    originals_decided = priced_originals.withColumn("_outcome", l_outcome)
    unrated = F.col("_outcome") != "MATCHED"
    priced = F.col("_outcome").isin(*PRICED_OUTCOMES)
    unpriced = priced & ~F.col("t_found")
    no_tariff = F.when(~F.col("t_found"), F.concat(
        F.lit("; not priced: no tariff of service_type "), F.coalesce(F.col("service_type"), F.lit("(null)")),
        F.lit(" valid at start_time, exposure 0"))).otherwise(F.lit(""))
    l_reason = (
        F.when(F.col("_outcome") == "MATCHED",
               F.when(F.col("_lf_id").isNotNull(), F.lit("matched by content (no lineage)")))
        .when(F.col("_outcome").isin("IN_SUSPENSE", "SUSPENSE_AGED"),
              F.concat(F.coalesce(F.concat(F.lit("in suspense since "),
                                           F.date_format("_rejected_at", "yyyy-MM-dd'T'HH:mm:ss'Z'")),
                                  F.lit("in suspense, rejected_at unknown (counted as aged past the SLA)")),
                       F.lit(": "), F.coalesce(F.col("_suspense_reason"), F.lit("no reason given")), no_tariff))
        .when(F.col("_outcome") == "LATE_USAGE",
              F.concat(F.lit("received after cycle close, carry forward"), no_tariff))
        .when(F.col("_outcome") == "AMBIGUOUS_MATCH", F.col("_amb_reason"))
        .otherwise(F.concat(F.lit("no rated event, no suspense"), no_tariff))
    )
    further_note = F.when(F.col("_further") > 0, F.concat(F.col("_further").cast("string"),
                                                          F.lit(" further rated event(s) for this usage")))
    left_originals = outcome_frame(
        originals_decided, side="LEFT", table="cdr", record_id=F.col("record_id"), outcome=F.col("_outcome"),
        match_stage=F.when(F.col("_re_id").isNotNull(), F.lit("EXACT")).when(F.col("_lf_id").isNotNull(),
                                                                              F.lit("FUZZY")).otherwise(F.lit("NONE")),
        confidence=F.when(F.col("_re_id").isNotNull(), F.lit(1)).when(F.col("_lf_id").isNotNull(),
                                                                       F.col("_lf_conf")).otherwise(F.lit(0)),
        counterpart_id=F.coalesce(F.col("_re_id"), F.col("_lf_id")),
        counterpart_key=F.coalesce(F.col("_re_key"), F.col("_lf_key")),
        counterpart_hash=F.coalesce(F.col("_re_hash"), F.col("_lf_hash")), counterpart_table="rated_event",
        expected_amount=F.when(unrated, F.col("expected_amount")),
        currency=F.when(unrated, F.col("t_currency")),
        reason=F.concat_ws("; ", l_reason, further_note),
        exposure=F.when(priced, F.col("expected_amount")),
        unpriced=unpriced,
        account_id=F.col("account_id"), msisdn=F.col("msisdn_e164"), service_type=F.col("service_type"),
        start_time=F.col("start_time"),
    )
    dup_rows = valid_left.where(F.col("_is_dup")).join(
        further.select(F.col("_rk").alias("_root_key"), "_further"), F.col("_root._key") == F.col("_root_key"), "left")
    dup_reason = F.concat(
        F.lit("copy of "), F.col("_root._rid"), F.lit(" (same "), F.col("_dup_by"), F.lit(")"),
        F.when(F.col("_further") > 0, F.concat(F.lit("; rated again: "), F.col("_further").cast("string"),
                                               F.lit(" further rated event(s), see DUPLICATE_RATED_EVENT")))
        .otherwise(F.lit("; not rated again (informational)")),
    )
    left_dups = outcome_frame(
        dup_rows, side="LEFT", table="cdr", record_id=F.col("record_id"), outcome=F.lit("DUPLICATE_USAGE"),
        match_stage=F.lit("NONE"), confidence=F.lit(0), counterpart_id=F.col("_root._rid"),
        counterpart_key=F.col("_root._key"), counterpart_hash=F.col("_root._hash"), counterpart_table="cdr",
        reason=dup_reason, account_id=F.col("account_id"), msisdn=F.col("msisdn_e164"),
        service_type=F.col("service_type"), start_time=F.col("start_time"),
    )
    left_quarantined = outcome_frame(
        left.where(F.col("_q").isNotNull()), side="LEFT", table="cdr", record_id=F.col("record_id"),
        outcome=F.lit("QUARANTINED"), match_stage=F.lit("NONE"), confidence=F.lit(0), reason=F.col("_q"),
        account_id=F.col("account_id"), msisdn=F.col("msisdn_e164"), service_type=F.col("service_type"),
        start_time=F.col("start_time"),
    )
    return left_originals.unionByName(left_dups).unionByName(left_quarantined).unionByName(right_rows)
