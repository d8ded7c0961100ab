"""A synthetic snapshot pair for the provisioning audits (CONTRACT section 8), with its ground truth.

Why: item-audit and seat-audit can only be trusted against snapshots whose right answer is known record by record
and account by account. This module builds `provisioned_item` (the PBX's snapshot) and `billing_subscription` (the
billing platform's) in the contract's shapes, plants every outcome of both control points, and labels each record
(and each seat account) with the outcome its planting prescribes; labels are never derived by running a matcher.

How it scales: everything is derived inside Spark from `spark.range(rows)`; one id is a *slot* and its *role*
(ITEM_ROLES, SEAT_ROLES) decides the items and subscriptions it emits and their labels. The first ids plant every
role twice (so a small month has them all); the rest draw a role from `xxhash64(seed, id)` (jobs/synthetic/common.py):
the same seed gives the same snapshots on any cluster, with no UDF, no `rand()` and no collect.

Planted (labels in the ground truth):
- item-audit LEFT (ACTIVE extensions and numbers): MATCHED (extension numbers; phone numbers written in another
  format on each side: `+1 555-...`, `(555) ...`, `1555...`, `555.xxx.xxxx`, `tel:+1...`), NON_BILLABLE (system
  users of every never-billed kind, not billed), PRODUCT_MAPPING_MISMATCH (an extension billed under a number product,
  a number under a product the ruleset does not know), UNBILLED_ITEM (no subscription; one cancelled; one on another
  account), QUARANTINED (a number with no digits, a null account).
- item-audit RIGHT (ACTIVE subscriptions with an item_ref): MATCHED, PRODUCT_MAPPING_MISMATCH,
  DUPLICATE_SUBSCRIPTION (a later second subscription of a billed item), ORPHANED_BILLING (the item was deleted or
  ported out, never existed, or is on another account), QUARANTINED (an item_ref with no digits, a null quantity).
- seat-audit per account (accounts `CC-<slot>` of their own): MATCHED (agents and supervisors = seats; seats split
  over two subscriptions; an office manager and a deleted agent that need no seat), QUANTITY_MISMATCH (fewer seats,
  more seats, no seat subscription, seats with no billable agent).
- Out of scope and unlabelled: DELETED items, QUEUE_AGENT items (for item-audit), CANCELLED subscriptions.
- IGNORED: slots of role IGNORED_ITEM / IGNORED_ACCOUNT plant an unbilled extension (and, for the account, an orphaned
  subscription) labelled IGNORED, and `ignore_entries` (a small frame of ignore-list entries the caller adds with
  jobs/ignore.py) names them; a run without those entries finds UNBILLED_ITEM / ORPHANED_BILLING there instead.

Products used are the shipped ruleset's: EXT-STD (EXTENSION), DID-LOCAL (PHONE_NUMBER), CC-AGENT (QUEUE_AGENT);
`LEGACY-PBX` is a product code the ruleset does not map.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from jobs.synthetic.common import GROUND_TRUTH_SCHEMA, MONEY, _below, _code

ITEM_AUDIT, SEAT_AUDIT = "item-audit", "seat-audit"
TABLES = ("provisioned_item", "billing_subscription", "ground_truth", "ignore_entries")
NON_BILLABLE_KINDS = ("VOICEMAIL", "AUTO_ATTENDANT", "ROUTING", "CONFERENCE", "SYSTEM")

# Item roles: what a slot emits (see `_items`, `_subs`) and its labels.
ITEM_ROLES = ("MATCHED_EXT", "MATCHED_DID", "NON_BILLABLE", "UNBILLED_EXT", "UNBILLED_DID", "UNBILLED_CANCELLED",
              "MAPPING_EXT_AS_DID", "MAPPING_UNKNOWN_PRODUCT", "DUPLICATE", "ORPHAN_DELETED", "ORPHAN_PORTED",
              "ORPHAN_UNKNOWN", "OTHER_ACCOUNT", "QUARANTINED_ITEM", "QUARANTINED_SUB", "IGNORED_ITEM",
              "IGNORED_ACCOUNT")
SEAT_ROLES = ("SEATS_MATCH", "SEATS_SPLIT", "SEATS_FEWER", "SEATS_MORE", "SEATS_NONE_BILLED", "SEATS_NO_AGENTS")
ROLES = ITEM_ROLES + SEAT_ROLES
# Shares of the slots after the pinned ones (per 1000): most items are billed right.
WEIGHTS = {"MATCHED_EXT": 380, "MATCHED_DID": 250, "NON_BILLABLE": 80, "UNBILLED_EXT": 30, "UNBILLED_DID": 15,
           "UNBILLED_CANCELLED": 5, "MAPPING_EXT_AS_DID": 10, "MAPPING_UNKNOWN_PRODUCT": 5, "DUPLICATE": 10,
           "ORPHAN_DELETED": 15, "ORPHAN_PORTED": 10, "ORPHAN_UNKNOWN": 5, "OTHER_ACCOUNT": 5, "QUARANTINED_ITEM": 3,
           "QUARANTINED_SUB": 2, "IGNORED_ITEM": 0, "IGNORED_ACCOUNT": 0, "SEATS_MATCH": 120, "SEATS_SPLIT": 20,
           "SEATS_FEWER": 15, "SEATS_MORE": 5, "SEATS_NONE_BILLED": 3, "SEATS_NO_AGENTS": 2}
PINNED = 2          # every role planted this many times first

T_SNAPSHOT = datetime(2026, 6, 30, 23, 45, tzinfo=UTC)


@dataclass(frozen=True)
class ProvisioningParams:
    rows: int = 2_000            # slots: about one item each (seat slots a few agents)
    seed: int = 42
    cycle_id: str = "2026-06"
    accounts: int | None = None  # item accounts (default rows // 10, min 5)

    @property
    def account_count(self) -> int:
        return self.accounts or max(5, self.rows // 10)


def _pick_role(ids: DataFrame, params: ProvisioningParams) -> DataFrame:
    """`role` per slot: the first len(ROLES) * PINNED ids plant each role in turn, the rest draw by WEIGHTS."""
    pinned = len(ROLES) * PINNED
    draw = _below(params.seed, "role", sum(WEIGHTS.values()), F.col("id"))
    role: Column = F.lit(ROLES[-1])
    upper = sum(WEIGHTS.values())
    for name in reversed(ROLES):
        upper -= WEIGHTS[name]
        role = F.when(draw >= upper, F.lit(name)).otherwise(role) if WEIGHTS[name] else role
    by_pin = F.element_at(F.array(*[F.lit(r) for r in ROLES]), (F.col("id") % len(ROLES) + 1).cast("int"))
    return ids.withColumn("role", F.when(F.col("id") < pinned, by_pin).otherwise(role))


def _slot_columns(df: DataFrame, params: ProvisioningParams) -> DataFrame:
    s = params.seed
    slot = F.col("id")
    # an account-scope ignore entry must name an account of its own (the pool's accounts carry other slots' gaps)
    account = F.when(F.col("role") == "IGNORED_ACCOUNT", _code("IGN-", slot, 7)).otherwise(
        _code("ACC-", F.pmod(slot, F.lit(params.account_count)), 5))
    # the extension: 6 digits (never a possible phone number); the DID: +1 555 and 7 digits of the slot
    ext = F.concat(F.lit("7"), F.lpad(slot.cast("string"), 5, "0"))
    line = F.lpad(slot.cast("string"), 7, "0")
    e164 = F.concat(F.lit("+1555"), line)
    fmt = _below(s, "fmt", 5, slot)
    formats = [F.concat(F.lit("+1 555-"), F.substring(line, 1, 3), F.lit("-"), F.substring(line, 4, 4)),
               F.concat(F.lit("(555) "), F.substring(line, 1, 3), F.lit("-"), F.substring(line, 4, 4)),
               F.concat(F.lit("1555"), line),
               F.concat(F.lit("555."), F.substring(line, 1, 3), F.lit("."), F.substring(line, 4, 4)),
               F.concat(F.lit("tel:"), e164)]

    def pick(offset: int) -> Column:
        col: Column = formats[0]
        for i in range(len(formats) - 1, -1, -1):
            col = F.when(F.pmod(fmt + offset, F.lit(len(formats))) == i, formats[i]).otherwise(col)
        return col

    kinds = F.array(*[F.lit(k) for k in NON_BILLABLE_KINDS])
    return df.select(
        "id", "role", account.alias("account"), ext.alias("ext"), pick(0).alias("did_a"), pick(2).alias("did_b"),
        F.element_at(kinds, (F.pmod(slot, F.lit(len(NON_BILLABLE_KINDS))) + 1).cast("int")).alias("system_kind"),
        (F.lit(2) + _below(s, "agents", 5, slot)).alias("agents"),      # 2..6 billable agents
        _code("CC-", slot, 7).alias("cc_account"),
    )


def _item(df: DataFrame, sub: int, item_type: str | Column, number: Column, *, account: Column | None = None,
          user_kind: Column | str | None = None, state: str = "ACTIVE", role: str | None = None,
          queue: bool = False) -> DataFrame:
    """One provisioned_item per slot of `df` (sub-record `sub`)."""
    kind = F.lit(user_kind) if isinstance(user_kind, str) or user_kind is None else user_kind
    acc = F.col("cc_account") if queue else (F.col("account") if account is None else account)
    return df.select(
        F.concat_ws("-", F.lit("PI"), F.col("id").cast("string"), F.lit(str(sub))).alias("item_id"),
        (F.lit(item_type) if isinstance(item_type, str) else item_type).alias("item_type"),
        acc.alias("account_id"),
        F.concat(F.lower(F.coalesce(acc, F.lit("none"))), F.lit(".pbx.example")).alias("domain"),
        kind.cast("string").alias("user_kind"), number.alias("number"),
        (F.concat(F.lit("Q-"), F.col("id").cast("string")) if queue else F.lit(None)).cast("string").alias("queue_id"),
        F.lit(role).cast("string").alias("role"), F.lit(state).alias("state"),
        F.lit(datetime(2026, 1, 5, tzinfo=UTC)).cast("timestamp").alias("created_at"),
        (F.lit(datetime(2026, 5, 20, tzinfo=UTC)) if state == "DELETED" else F.lit(None)).cast("timestamp")
        .alias("deleted_at"),
        F.lit(T_SNAPSHOT).cast("timestamp").alias("snapshot_at"),
        F.concat_ws("-", F.lit("i"), F.col("id").cast("string"), F.lit(str(sub))).alias("gen_row_id"),
    )


def _sub(df: DataFrame, sub: int, product: str, ref: Column | None, *, account: Column | None = None,
         quantity: Column | int | None = 1, price: str = "20.00", status: str = "ACTIVE", start_day: int = 1,
         seat: bool = False) -> DataFrame:
    acc = F.col("cc_account") if seat else (F.col("account") if account is None else account)
    qty = quantity if isinstance(quantity, Column) else F.lit(quantity)
    return df.select(
        F.concat_ws("-", F.lit("BS"), F.col("id").cast("string"), F.lit(str(sub))).alias("subscription_id"),
        acc.alias("account_id"), F.lit(product).alias("product_code"),
        (ref if ref is not None else F.lit(None)).cast("string").alias("item_ref"),
        qty.cast("bigint").alias("quantity"), F.lit(price).cast(MONEY).alias("unit_price"),
        F.lit("USD").alias("currency"), F.lit(status).alias("status"),
        F.lit(datetime(2026, 1, start_day, tzinfo=UTC)).cast("timestamp").alias("start_date"),
        (F.lit(datetime(2026, 4, 1, tzinfo=UTC)) if status == "CANCELLED" else F.lit(None)).cast("timestamp")
        .alias("end_date"),
        F.concat_ws("-", F.lit("s"), F.col("id").cast("string"), F.lit(str(sub))).alias("gen_row_id"),
    )


def _truth(df: DataFrame, prefix: str, sub: int, table: str, side: str, outcome: str,
           account: Column | None = None) -> DataFrame:
    return df.select(
        F.concat_ws("-", F.lit(prefix), F.col("id").cast("string"), F.lit(str(sub))).alias("gen_row_id"),
        F.lit(table).alias("table_name"), F.lit(ITEM_AUDIT).alias("control_point_id"), F.lit(side).alias("side"),
        F.lit(outcome).alias("expected_outcome"), (F.col("account") if account is None else account)
        .alias("account_id"), F.lit(None).cast("string").alias("service_type"))


def _union(parts: list[DataFrame]) -> DataFrame:
    out = parts[0]
    for p in parts[1:]:
        out = out.unionByName(p)
    return out


def generate_month(ids: DataFrame, params: ProvisioningParams) -> dict[str, DataFrame]:
    """provisioned_item, billing_subscription, ground_truth and ignore_entries (see the module docstring)."""
    slots = _slot_columns(_pick_role(ids, params), params)

    def of(*roles: str) -> DataFrame:
        return slots.where(F.col("role").isin(*roles))

    ext, did_a, did_b = F.col("ext"), F.col("did_a"), F.col("did_b")
    other = F.concat(F.col("account"), F.lit("-X"))
    items = [
        _item(of("MATCHED_EXT", "UNBILLED_EXT", "UNBILLED_CANCELLED", "MAPPING_EXT_AS_DID", "DUPLICATE",
                 "OTHER_ACCOUNT", "IGNORED_ITEM", "IGNORED_ACCOUNT"), 0, "EXTENSION", ext, user_kind="USER"),
        _item(of("MATCHED_DID", "UNBILLED_DID", "MAPPING_UNKNOWN_PRODUCT"), 0, "PHONE_NUMBER", did_a),
        _item(of("NON_BILLABLE"), 0, "EXTENSION", ext, user_kind=F.col("system_kind")),
        _item(of("ORPHAN_DELETED"), 0, "EXTENSION", ext, user_kind="USER", state="DELETED"),
        _item(of("ORPHAN_PORTED"), 0, "PHONE_NUMBER", did_a, state="DELETED"),
        _item(of("QUARANTINED_ITEM"), 0, "PHONE_NUMBER", F.lit("n/a")),
        _item(of("QUARANTINED_ITEM"), 1, "EXTENSION", ext, user_kind="USER", account=F.lit(None).cast("string")),
    ]
    subs = [
        _sub(of("MATCHED_EXT", "DUPLICATE", "IGNORED_ACCOUNT"), 0, "EXT-STD", ext),
        _sub(of("DUPLICATE"), 1, "EXT-STD", ext, start_day=20),
        _sub(of("MATCHED_DID"), 0, "DID-LOCAL", did_b, price="2.00"),
        _sub(of("UNBILLED_CANCELLED"), 0, "EXT-STD", ext, status="CANCELLED"),
        _sub(of("MAPPING_EXT_AS_DID"), 0, "DID-LOCAL", ext, price="2.00"),
        _sub(of("MAPPING_UNKNOWN_PRODUCT"), 0, "LEGACY-PBX", did_b, price="3.50"),
        _sub(of("ORPHAN_DELETED"), 0, "EXT-STD", ext),
        _sub(of("ORPHAN_PORTED"), 0, "DID-LOCAL", did_b, price="2.00"),
        _sub(of("ORPHAN_UNKNOWN"), 0, "DID-LOCAL", did_b, price="2.00"),
        _sub(of("OTHER_ACCOUNT"), 0, "EXT-STD", ext, account=other),
        _sub(of("QUARANTINED_SUB"), 0, "EXT-STD", F.lit("none")),
        _sub(of("QUARANTINED_SUB"), 1, "EXT-STD", ext, quantity=None),
        _sub(of("IGNORED_ACCOUNT"), 1, "DID-LOCAL", did_b, price="2.00"),        # orphaned, on an ignored account
    ]
    truth = [
        _truth(of("MATCHED_EXT", "MATCHED_DID", "DUPLICATE", "IGNORED_ACCOUNT"), "i", 0, "provisioned_item", "LEFT",
               "MATCHED"),
        _truth(of("MATCHED_EXT", "MATCHED_DID", "DUPLICATE", "IGNORED_ACCOUNT"), "s", 0, "billing_subscription",
               "RIGHT", "MATCHED"),
        _truth(of("DUPLICATE"), "s", 1, "billing_subscription", "RIGHT", "DUPLICATE_SUBSCRIPTION"),
        _truth(of("NON_BILLABLE"), "i", 0, "provisioned_item", "LEFT", "NON_BILLABLE"),
        _truth(of("UNBILLED_EXT", "UNBILLED_DID", "UNBILLED_CANCELLED", "OTHER_ACCOUNT"), "i", 0, "provisioned_item",
               "LEFT", "UNBILLED_ITEM"),
        _truth(of("MAPPING_EXT_AS_DID", "MAPPING_UNKNOWN_PRODUCT"), "i", 0, "provisioned_item", "LEFT",
               "PRODUCT_MAPPING_MISMATCH"),
        _truth(of("MAPPING_EXT_AS_DID", "MAPPING_UNKNOWN_PRODUCT"), "s", 0, "billing_subscription", "RIGHT",
               "PRODUCT_MAPPING_MISMATCH"),
        _truth(of("ORPHAN_DELETED", "ORPHAN_PORTED", "ORPHAN_UNKNOWN"), "s", 0, "billing_subscription", "RIGHT",
               "ORPHANED_BILLING"),
        _truth(of("OTHER_ACCOUNT"), "s", 0, "billing_subscription", "RIGHT", "ORPHANED_BILLING", account=other),
        _truth(of("QUARANTINED_ITEM"), "i", 0, "provisioned_item", "LEFT", "QUARANTINED"),
        _truth(of("QUARANTINED_ITEM"), "i", 1, "provisioned_item", "LEFT", "QUARANTINED",
               account=F.lit(None).cast("string")),
        _truth(of("QUARANTINED_SUB"), "s", 0, "billing_subscription", "RIGHT", "QUARANTINED"),
        _truth(of("QUARANTINED_SUB"), "s", 1, "billing_subscription", "RIGHT", "QUARANTINED"),
        _truth(of("IGNORED_ITEM"), "i", 0, "provisioned_item", "LEFT", "IGNORED"),
        _truth(of("IGNORED_ACCOUNT"), "s", 1, "billing_subscription", "RIGHT", "IGNORED"),
    ]
    # seat accounts: `agents` billable agents (AGENT and SUPERVISOR), one OFFICE_MANAGER and one DELETED agent
    seat_slots = of(*SEAT_ROLES).withColumn("n", F.explode(F.sequence(F.lit(1), F.col("agents"))))
    billable = seat_slots.where(F.col("role") != "SEATS_NO_AGENTS")
    for sub, (role, state) in enumerate((("AGENT", "ACTIVE"), ("SUPERVISOR", "ACTIVE"))):
        rows = billable.where(F.pmod(F.col("n"), F.lit(2)) == sub)
        items.append(_item(rows.withColumn("id", F.concat_ws("q", F.col("id").cast("string"), F.col("n"))),
                           10 + sub, "QUEUE_AGENT", F.col("n").cast("string"), role=role, state=state, queue=True))
    seat_all = of(*SEAT_ROLES)
    items.append(_item(seat_all, 20, "QUEUE_AGENT", F.lit("900"), role="OFFICE_MANAGER", queue=True))
    items.append(_item(seat_all, 21, "QUEUE_AGENT", F.lit("901"), role="AGENT", state="DELETED", queue=True))
    agents = F.col("agents")
    subs += [
        _sub(of("SEATS_MATCH"), 10, "CC-AGENT", None, quantity=agents, price="45.00", seat=True),
        _sub(of("SEATS_SPLIT"), 10, "CC-AGENT", None, quantity=F.lit(1), price="45.00", seat=True),
        _sub(of("SEATS_SPLIT"), 11, "CC-AGENT", None, quantity=agents - 1, price="45.00", seat=True),
        _sub(of("SEATS_FEWER"), 10, "CC-AGENT", None, quantity=agents - 1, price="45.00", seat=True),
        _sub(of("SEATS_MORE"), 10, "CC-AGENT", None, quantity=agents + 2, price="45.00", seat=True),
        _sub(of("SEATS_NO_AGENTS"), 10, "CC-AGENT", None, quantity=F.lit(1), price="45.00", seat=True),
        _sub(of(*SEAT_ROLES), 12, "CC-AGENT", None, quantity=F.lit(4), price="45.00", status="CANCELLED",
             seat=True),
    ]
    seat_truth = of(*SEAT_ROLES).select(
        F.lit(None).cast("string").alias("gen_row_id"), F.lit(None).cast("string").alias("table_name"),
        F.lit(SEAT_AUDIT).alias("control_point_id"), F.lit(None).cast("string").alias("side"),
        F.when(F.col("role").isin("SEATS_MATCH", "SEATS_SPLIT"), F.lit("MATCHED"))
        .otherwise(F.lit("QUANTITY_MISMATCH")).alias("expected_outcome"),
        F.col("cc_account").alias("account_id"), F.lit(None).cast("string").alias("service_type"))
    truth_df = _union(truth).unionByName(seat_truth)
    ignore_entries = _union([
        of("IGNORED_ITEM").select(F.lit(ITEM_AUDIT).alias("control_point_id"), F.lit("ITEM").alias("scope"),
                                  F.concat_ws("-", F.lit("PI"), F.col("id").cast("string"), F.lit("0")).alias("key"),
                                  F.lit("test extension, never billed").alias("reason")),
        of("IGNORED_ACCOUNT").select(F.lit(ITEM_AUDIT).alias("control_point_id"), F.lit("ACCOUNT").alias("scope"),
                                     F.col("account").alias("key"),
                                     F.lit("internal account: its numbers are not billed").alias("reason")),
    ])
    return {"provisioned_item": _union(items), "billing_subscription": _union(subs),
            "ground_truth": truth_df.select(*GROUND_TRUTH_SCHEMA.fieldNames()), "ignore_entries": ignore_entries}
