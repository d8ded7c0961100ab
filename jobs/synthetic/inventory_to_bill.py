"""A synthetic month for the inventory-to-bill control point (CONTRACT section 7), with its ground truth.

Why: the control can only be trusted against inventory and charges whose right answer is known record by record. This
module builds `product_inventory` and `bill_charge` in the contract's shapes, plants every outcome of section 7 on
both sides, and labels each record with the outcome its *planting* prescribes (labels are never derived by running a
matcher; tests/test_generate_inventory.py re-derives them independently in plain Python from the generated rows).

How it scales: everything is derived inside Spark from `spark.range(rows)` with built-in column functions; one id is a
*slot*, and its *role* (ROLES) decides the 0-2 products and 0-4 charges it emits and their labels. Pseudo-randomness
comes only from `xxhash64(seed, id, salt)` (jobs/synthetic/common.py), so the same seed gives the same month on any
cluster and partitioning: no UDFs, no `rand()`, no collects, no Python loops over rows. Roles are drawn from shares
(`InventoryParams.mix`), after pinned first ids that plant every role at least twice; a named scenario instead places
exact numbers of roles by rank in a fixed permutation of the ids (`ScenarioCounts`, `seed004-s30`).

Planted, per side (outcomes of section 7):

- LEFT (products active in the cycle: activation_date < end and (termination_date null or >= start)):
  QUARANTINED (null product_id, null activation_date, null monthly_fee); EXEMPT with reason FREE_TRIAL, BILLING_HOLD,
  TEST_ACCOUNT, ZERO_PRICE (the exemption column, or monthly_fee = 0 without one), CHILD_BUNDLE_CHARGED_AT_PARENT (a
  child product, not charged itself, whose parent has a RECURRING charge this cycle) and ACTIVATED_AFTER_CUTOFF (only
  when a cutoff earlier than the cycle end is configured: section 7 counts a product as active only when
  activation_date < end, so with the default cutoff = end no active product can be activated after it);
  EXEMPT_BUT_BILLED; MATCHED (full month, mid-cycle activation and/or termination with daily proration, multi-seat,
  sub-tolerance differences of 0.004 and differences equal to the tolerance, matched through (account_id,
  billing_product_code) without a product_id); PRODUCT_MAPPING_MISMATCH; QUANTITY_MISMATCH;
  RECURRING_AMOUNT_MISMATCH; ACTIVE_PRODUCT_NOT_BILLED (no charge; a child whose parent is not charged; the products
  of an (account_id, billing_product_code) pair two products share, whose product-less charge cannot be matched;
  products whose only charges are not RECURRING or of another cycle).
- RIGHT (RECURRING charges of the cycle): the outcome of its product; DUPLICATE_CHARGE; BILLED_WITHOUT_ACTIVE_PRODUCT
  (a product terminated before the cycle or activated at/after its end, a product id the inventory does not have, a
  product-less charge whose pair no product or two products have); QUARANTINED (null charge_id, null amount).
- Charges the control must ignore (ONE_TIME, ADJUSTMENT and USAGE charges of the cycle, RECURRING charges of the
  previous cycle) are written with no ground-truth row; so are products not active in the cycle.
- IGNORED (section 8's ignore list) is not planted: the ignore list is another issue's table, and no entry exists in
  a generated month, so every record keeps the outcome it would have without one.

Expected amount (`proration: daily`): monthly_fee * quantity * active days / days in the cycle, half-up to 6 places;
active days are the cycle's UTC calendar days from the activation day to the termination day, both counted (clipped
to the cycle). Amounts are computed in exact integer micro-units, fees being whole cents. Tolerance: max(0.01, 0.1% of
expected), a difference equal to it being within.

Readings where the contract leaves room (the ground truth follows these; none of the open combinations is planted
unless said so):

- LEFT precedence: QUARANTINED, IGNORED, EXEMPT (when not billed), EXEMPT_BUT_BILLED, MATCHED,
  PRODUCT_MAPPING_MISMATCH, QUANTITY_MISMATCH, RECURRING_AMOUNT_MISMATCH, ACTIVE_PRODUCT_NOT_BILLED; a billed product
  that is not exact takes the first mismatch in that order that holds (planted: a wrong SKU with a wrong quantity is
  PRODUCT_MAPPING_MISMATCH; a wrong quantity whose amount follows it is QUANTITY_MISMATCH).
- RIGHT precedence: QUARANTINED, BILLED_WITHOUT_ACTIVE_PRODUCT, DUPLICATE_CHARGE, then the outcome of its product.
  The original among a product's charges is the first by billed_at, then charge_id (planted: a later duplicate, a
  same-instant duplicate with the larger id, and a later duplicate with the smaller id). Quarantined charges take no
  part in matching, so they neither bill a product nor make another charge a duplicate (planted only next to a valid
  earlier charge of the same product, so either reading gives the same labels).
- An EXEMPT reason is taken in this order: the exemption column, monthly_fee = 0 (ZERO_PRICE),
  CHILD_BUNDLE_CHARGED_AT_PARENT, ACTIVATED_AFTER_CUTOFF. "Exempt" in EXEMPT_BUT_BILLED means any of these reasons;
  only products with an exemption value are planted billed (a billed child of a billed parent, or a billed product
  activated after the cutoff, is left open).
- A product-less charge is matched when exactly one row of the whole product_inventory table (active or not) has its
  (account_id, billing_product_code); planted pairs are either unique in the table or shared by two active products.
- A product that is billed only by charges the control ignores, or whose parent is billed only in another cycle, is
  ACTIVE_PRODUCT_NOT_BILLED (planted).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import LongType, StringType, StructField, StructType

from jobs.synthetic.common import (
    GROUND_TRUTH_SCHEMA,
    _below_sql,
    _case_sql,
    _emit,
    _epoch,
    _hash_sql,
    _sql_literal,
    _unit_sql,
)

CONTROL_POINT = "inventory-to-bill"
TABLES = ("product_inventory", "bill_charge", "ground_truth")
DAY_S = 86_400

INVENTORY_GROUND_TRUTH_SCHEMA = StructType([*GROUND_TRUTH_SCHEMA.fields,
                                            StructField("expected_reason_code", StringType())])
PRODUCT_COLUMNS = ("product_id", "account_id", "offering_id", "billing_product_code", "state", "activation_date",
                   "termination_date", "monthly_fee", "quantity", "parent_product_id", "exemption", "gen_row_id")
CHARGE_COLUMNS = ("charge_id", "source_rated_event_id", "product_id", "account_id", "msisdn", "cycle_id",
                  "invoice_id", "charge_type", "billing_product_code", "quantity", "amount", "currency", "billed_at",
                  "gen_row_id")

# Outcomes (CONTRACT section 7) and EXEMPT reasons.
QUARANTINED = "QUARANTINED"
EXEMPT = "EXEMPT"
EXEMPT_BUT_BILLED = "EXEMPT_BUT_BILLED"
MATCHED = "MATCHED"
PRODUCT_MAPPING_MISMATCH = "PRODUCT_MAPPING_MISMATCH"
QUANTITY_MISMATCH = "QUANTITY_MISMATCH"
RECURRING_AMOUNT_MISMATCH = "RECURRING_AMOUNT_MISMATCH"
ACTIVE_PRODUCT_NOT_BILLED = "ACTIVE_PRODUCT_NOT_BILLED"
DUPLICATE_CHARGE = "DUPLICATE_CHARGE"
BILLED_WITHOUT_ACTIVE_PRODUCT = "BILLED_WITHOUT_ACTIVE_PRODUCT"
FREE_TRIAL = "FREE_TRIAL"
BILLING_HOLD = "BILLING_HOLD"
TEST_ACCOUNT = "TEST_ACCOUNT"
ZERO_PRICE = "ZERO_PRICE"
CHILD_BUNDLE = "CHILD_BUNDLE_CHARGED_AT_PARENT"
AFTER_CUTOFF = "ACTIVATED_AFTER_CUTOFF"

# Product timing: when a product is activated and terminated relative to the cycle [start, end) and its cutoff.
FULL = "FULL"                  # activated before the cycle; not terminated, or terminated at/after the end
ACT_MID = "ACT_MID"            # activated on day 2 .. the last second before the cutoff; not terminated
ACT_TERM_MID = "ACT_TERM_MID"  # activated as ACT_MID and terminated later within the cycle
TERM_MID = "TERM_MID"          # activated before the cycle, terminated on its first .. last-but-one day
ENDED = "ENDED"                # terminated before the cycle start (the last second before it, or earlier)
FUTURE = "FUTURE"              # activated at or after the cycle end
LATE = "LATE"                  # activated at or after the cutoff, before the end (cutoff < end only)
NULL_ACT = "NULL_ACT"          # activation_date null
INACTIVE_TIMINGS = (ENDED, FUTURE)

# Catalog groups a product draws its offering from.
ANY, SEAT, ADDON, ZERO = "ANY", "SEAT", "ADDON", "ZERO"
# Account kinds: a shared pool (pairs may repeat), the slot's own (its (account, SKU) pairs are unique in the table),
# a test account of its own.
POOL, OWN, TEST = "POOL", "OWN", "TEST"
# Billed amounts (micro-units, from the expected amount of the billed product).
EXACT = "EXACT"
SUB_TOLERANCE = "SUB_TOLERANCE"    # expected +- 0.004: within max(0.01, 0.1%)
AT_TOLERANCE = "AT_TOLERANCE"      # expected + the tolerance rounded down to a micro-unit: within (not beyond)
HALF = "HALF"                      # half the expected (underbilling)
OVER = "OVER"                      # expected + 10% + 0.05 (overbilling)
JUST_BEYOND = "JUST_BEYOND"        # expected + the tolerance rounded up + 0.000001
BILLED_QUANTITY = "BILLED_QUANTITY"  # the expected amount of the billed quantity
FULL_FEE = "FULL_FEE"              # monthly_fee * quantity (a product with no active days)
FLAT = "FLAT"                      # 25.00 (a ONE_TIME or USAGE charge)
CREDIT = "CREDIT"                  # -5.00 (an ADJUSTMENT)
NULL_ID, NULL_AMOUNT = "NULL_ID", "NULL_AMOUNT"
SAME, OTHER = "SAME", "OTHER"


@dataclass(frozen=True)
class Offering:
    offering_id: str
    sku: str
    fee: str           # monthly fee, whole cents
    per_seat: bool
    mobile: bool       # its charges carry an msisdn


# Index ranges: plans 0-4 and per-seat offerings 5-7 (ANY = 0-7, SEAT = 5-7), child add-ons 8-10, zero-priced 11.
CATALOG = (
    Offering("OFF-MOBILE-20", "PLAN-MOBILE-20", "20.00", False, True),
    Offering("OFF-MOBILE-UNL", "PLAN-MOBILE-UNL", "65.00", False, True),
    Offering("OFF-FIBER-500", "PLAN-FIBER-500", "49.99", False, False),
    Offering("OFF-FIBER-1G", "PLAN-FIBER-1G", "79.99", False, False),
    Offering("OFF-STATIC-IP", "ADDON-STATIC-IP", "7.33", False, False),
    Offering("OFF-UC-SEAT", "SEAT-UC-PRO", "24.50", True, False),
    Offering("OFF-CC-AGENT", "SEAT-CC-AGENT", "45.00", True, False),
    Offering("OFF-SIP-TRUNK", "SIP-TRUNK-CHANNEL", "12.75", True, False),
    Offering("OFF-VOICEMAIL", "ADDON-VOICEMAIL", "3.99", False, True),
    Offering("OFF-ROAMING", "ADDON-ROAMING", "9.99", False, True),
    Offering("OFF-INTL-PACK", "ADDON-INTL-PACK", "14.95", False, True),
    Offering("OFF-CALLER-ID", "ADDON-CALLER-ID", "0.00", False, True),
)
_CATALOG_RANGE = {ANY: (0, 8), SEAT: (5, 3), ADDON: (8, 3), ZERO: (11, 1)}   # group -> (first index, size)
_BILLABLE_SKUS = 11       # a wrong SKU is drawn among indexes 0-10 (never the zero-priced one)


@dataclass(frozen=True)
class Product:
    """One product a role plants: its label and how it is drawn. Options in tuples are drawn per product."""

    outcome: str | None                 # LEFT label; None: not active in the cycle (no ground-truth row)
    reason: str | None = None           # EXEMPT's reason code
    timing: tuple[str, ...] = (FULL,)
    catalog: str = ANY
    exemption: tuple[str | None, ...] = (None,)
    account: str = POOL
    null_id: bool = False
    null_fee: bool = False
    child: bool = False                 # parent_product_id = the slot's product 0
    same_pair: bool = False             # the SKU of the slot's product 0 (with account OWN: the same pair)
    phantom: bool = False               # not written: only its charges exist (an id the inventory does not have)


@dataclass(frozen=True)
class Charge:
    """One charge a role plants, billing the slot's product `product`."""

    outcome: str | None                 # RIGHT label; None for a charge the control ignores
    product: int = 0
    by_pair: bool = False               # product_id null: matched on (account_id, billing_product_code)
    sku: str = SAME
    quantity: str = SAME
    amount: tuple[str, ...] = (EXACT,)
    charge_type: str = "RECURRING"
    other_cycle: bool = False           # cycle_id of the previous cycle
    quarantine: tuple[str, ...] = ()    # NULL_ID / NULL_AMOUNT, one drawn
    duplicate: bool = False             # a further charge for the product of the slot's charge 0
    delay_days: int = 0                 # billed this many days after the slot's bill run


@dataclass(frozen=True)
class Role:
    name: str
    products: tuple[Product, ...]
    charges: tuple[Charge, ...] = ()


ROLES = (
    Role("M_FULL", (Product(MATCHED),), (Charge(MATCHED),)),
    Role("M_ACT_MID", (Product(MATCHED, timing=(ACT_MID, ACT_MID, ACT_TERM_MID)),), (Charge(MATCHED),)),
    Role("M_TERM_MID", (Product(MATCHED, timing=(TERM_MID,)),), (Charge(MATCHED),)),
    Role("M_SUB_TOLERANCE", (Product(MATCHED, timing=(FULL, ACT_MID, TERM_MID)),),
         (Charge(MATCHED, amount=(SUB_TOLERANCE,)),)),
    Role("M_AT_TOLERANCE", (Product(MATCHED),), (Charge(MATCHED, amount=(AT_TOLERANCE,)),)),
    Role("M_BY_PAIR", (Product(MATCHED, account=OWN),), (Charge(MATCHED, by_pair=True),)),
    Role("M_DUPLICATE", (Product(MATCHED),), (Charge(MATCHED), Charge(DUPLICATE_CHARGE, duplicate=True))),
    Role("M_QUARANTINED_CHARGE", (Product(MATCHED),),
         (Charge(MATCHED), Charge(QUARANTINED, quarantine=(NULL_ID, NULL_AMOUNT), delay_days=2))),
    Role("M_NOISE", (Product(MATCHED),),
         (Charge(MATCHED), Charge(None, charge_type="ONE_TIME", amount=(FLAT,)),
          Charge(None, other_cycle=True, amount=(FULL_FEE,)),
          Charge(None, charge_type="ADJUSTMENT", amount=(CREDIT,)))),
    Role("EX_CHILD", (Product(MATCHED), Product(EXEMPT, CHILD_BUNDLE, catalog=ADDON, child=True)),
         (Charge(MATCHED),)),
    Role("Q_NULL_ID", (Product(QUARANTINED, null_id=True, account=OWN),)),
    Role("Q_NULL_ACTIVATION", (Product(QUARANTINED, timing=(NULL_ACT,), account=OWN),)),
    Role("Q_NULL_FEE", (Product(QUARANTINED, null_fee=True, account=OWN),)),
    Role("EX_FREE_TRIAL", (Product(EXEMPT, FREE_TRIAL, timing=(FULL, ACT_MID), exemption=(FREE_TRIAL,)),)),
    Role("EX_BILLING_HOLD", (Product(EXEMPT, BILLING_HOLD, exemption=(BILLING_HOLD,)),)),
    Role("EX_TEST_ACCOUNT", (Product(EXEMPT, TEST_ACCOUNT, exemption=(TEST_ACCOUNT,), account=TEST),)),
    Role("EX_ZERO_PRICE", (Product(EXEMPT, ZERO_PRICE, catalog=ZERO, exemption=(ZERO_PRICE, None)),)),
    Role("EX_AFTER_CUTOFF", (Product(EXEMPT, AFTER_CUTOFF, timing=(LATE,)),)),
    Role("EXEMPT_BUT_BILLED", (Product(EXEMPT_BUT_BILLED, exemption=(FREE_TRIAL, BILLING_HOLD, TEST_ACCOUNT)),),
         (Charge(EXEMPT_BUT_BILLED),)),
    Role("MAPPING", (Product(PRODUCT_MAPPING_MISMATCH, timing=(FULL, ACT_MID, TERM_MID)),),
         (Charge(PRODUCT_MAPPING_MISMATCH, sku=OTHER),)),
    Role("MAPPING_AND_QUANTITY", (Product(PRODUCT_MAPPING_MISMATCH, catalog=SEAT),),
         (Charge(PRODUCT_MAPPING_MISMATCH, sku=OTHER, quantity=OTHER, amount=(BILLED_QUANTITY,)),)),
    Role("QUANTITY", (Product(QUANTITY_MISMATCH, catalog=SEAT, timing=(FULL, ACT_MID)),),
         (Charge(QUANTITY_MISMATCH, quantity=OTHER, amount=(EXACT, BILLED_QUANTITY)),)),
    Role("AMOUNT", (Product(RECURRING_AMOUNT_MISMATCH, timing=(FULL, ACT_MID, TERM_MID)),),
         (Charge(RECURRING_AMOUNT_MISMATCH, amount=(HALF, OVER, JUST_BEYOND)),)),
    Role("NOT_BILLED", (Product(ACTIVE_PRODUCT_NOT_BILLED, timing=(FULL, ACT_MID, TERM_MID)),)),
    Role("NOT_BILLED_NOISE", (Product(ACTIVE_PRODUCT_NOT_BILLED),),
         (Charge(None, charge_type="ONE_TIME", amount=(FLAT,)), Charge(None, other_cycle=True, amount=(FULL_FEE,)),
          Charge(None, charge_type="USAGE", amount=(FLAT,)))),
    Role("NOT_BILLED_CHILD", (Product(ACTIVE_PRODUCT_NOT_BILLED),
                              Product(ACTIVE_PRODUCT_NOT_BILLED, catalog=ADDON, child=True)),
         (Charge(None, other_cycle=True, amount=(FULL_FEE,)),)),
    Role("PAIR_AMBIGUOUS", (Product(ACTIVE_PRODUCT_NOT_BILLED, account=OWN),
                            Product(ACTIVE_PRODUCT_NOT_BILLED, account=OWN, same_pair=True)),
         (Charge(BILLED_WITHOUT_ACTIVE_PRODUCT, by_pair=True),)),
    Role("PAIR_AMBIGUOUS_ONE_BILLED", (Product(ACTIVE_PRODUCT_NOT_BILLED, account=OWN),
                                       Product(MATCHED, account=OWN, same_pair=True)),
         (Charge(BILLED_WITHOUT_ACTIVE_PRODUCT, by_pair=True), Charge(MATCHED, product=1))),
    Role("BILLED_ENDED", (Product(None, timing=(ENDED,)),),
         (Charge(BILLED_WITHOUT_ACTIVE_PRODUCT, amount=(FULL_FEE,)),)),
    Role("BILLED_FUTURE", (Product(None, timing=(FUTURE,)),),
         (Charge(BILLED_WITHOUT_ACTIVE_PRODUCT, amount=(FULL_FEE,)),)),
    Role("BILLED_UNKNOWN", (Product(None, phantom=True),),
         (Charge(BILLED_WITHOUT_ACTIVE_PRODUCT, amount=(FULL_FEE,)),)),
    Role("BILLED_NO_PAIR", (Product(None, phantom=True, account=OWN),),
         (Charge(BILLED_WITHOUT_ACTIVE_PRODUCT, by_pair=True, amount=(FULL_FEE,)),)),
    Role("INACTIVE", (Product(None, timing=(ENDED, FUTURE)),)),
)
ROLE_BY_NAME = {role.name: role for role in ROLES}
MAX_PRODUCTS = max(len(r.products) for r in ROLES)
MAX_CHARGES = max(len(r.charges) for r in ROLES)
MATCHED_ROLES = ("M_FULL", "M_ACT_MID", "M_TERM_MID")

# Shares of slots per role in a generated month (the rest is M_FULL): a few percent of each fault.
DEFAULT_MIX: tuple[tuple[str, float], ...] = (
    ("M_ACT_MID", 0.06), ("M_TERM_MID", 0.05), ("M_SUB_TOLERANCE", 0.02), ("M_AT_TOLERANCE", 0.01),
    ("M_BY_PAIR", 0.02), ("M_DUPLICATE", 0.01), ("M_QUARANTINED_CHARGE", 0.01), ("M_NOISE", 0.02),
    ("EX_CHILD", 0.03), ("Q_NULL_ID", 0.003), ("Q_NULL_ACTIVATION", 0.003), ("Q_NULL_FEE", 0.003),
    ("EX_FREE_TRIAL", 0.02), ("EX_BILLING_HOLD", 0.005), ("EX_TEST_ACCOUNT", 0.005), ("EX_ZERO_PRICE", 0.01),
    ("EX_AFTER_CUTOFF", 0.01), ("EXEMPT_BUT_BILLED", 0.01), ("MAPPING", 0.01), ("MAPPING_AND_QUANTITY", 0.005),
    ("QUANTITY", 0.01), ("AMOUNT", 0.02), ("NOT_BILLED", 0.02), ("NOT_BILLED_NOISE", 0.005),
    ("NOT_BILLED_CHILD", 0.005), ("PAIR_AMBIGUOUS", 0.005), ("PAIR_AMBIGUOUS_ONE_BILLED", 0.005),
    ("BILLED_ENDED", 0.005), ("BILLED_FUTURE", 0.005), ("BILLED_UNKNOWN", 0.005), ("BILLED_NO_PAIR", 0.005),
    ("INACTIVE", 0.03),
)
PINNED_COPIES = 2


def _utc(year: int, month: int, day: int = 1) -> datetime:
    return datetime(year, month, day, tzinfo=UTC)


def _check_roles() -> None:
    """A role whose labels contradict its records would make the ground truth lie: checked once at import."""
    for role in ROLES:
        for p in role.products:
            inactive = p.phantom or all(t in INACTIVE_TIMINGS for t in p.timing)
            if inactive != (p.outcome is None) or (p.outcome == EXEMPT) != (p.reason is not None):
                raise AssertionError(f"role {role.name}: product label {p.outcome}/{p.reason} contradicts it")
        for c in role.charges:
            ignored = c.charge_type != "RECURRING" or c.other_cycle
            if ignored != (c.outcome is None) or c.product >= len(role.products):
                raise AssertionError(f"role {role.name}: charge label {c.outcome} contradicts it")


_check_roles()


@dataclass(frozen=True)
class ScenarioCounts:
    """Exact numbers of slots per role, stated at `at_rows` slots; the other slots draw from `fill`.

    Why: a scenario such as seed-004 section 30 is stated in counts (2,000 ACTIVE_PRODUCT_NOT_BILLED among 1.2M
    products) and checked to the record; shares drawn from hashes only come near a count.
    """

    counts: tuple[tuple[str, int], ...]
    at_rows: int
    fill: tuple[tuple[str, float], ...]

    def scaled(self, rows: int) -> tuple[tuple[str, int], ...]:
        """The counts at `rows` slots, each rounded half up (12,000 slots = 1/100 of 1.2M: 10,000 -> 100)."""
        return tuple((name, (2 * count * rows + self.at_rows) // (2 * self.at_rows)) for name, count in self.counts)


SEED004_S30_ROWS = 1_200_000
SEED004_S30 = ScenarioCounts(
    counts=(("EX_FREE_TRIAL", 10_000), ("EX_BILLING_HOLD", 2_000), ("EX_TEST_ACCOUNT", 1_000), ("NOT_BILLED", 2_000)),
    at_rows=SEED004_S30_ROWS,
    fill=(("M_FULL", 0.90), ("M_ACT_MID", 0.05), ("M_TERM_MID", 0.05)),
)
MAX_EXACT_ROWS = 3_000_000_000   # the rank permutation multiplies two ids below rows in a signed 64-bit long


@dataclass(frozen=True)
class InventoryParams:
    """What month to generate and how: slots (`rows`), seed, cycle bounds (UTC midnights), cutoff, role mix.

    `cutoff` (None: the cycle end) is the instant from which an activation is ACTIVATED_AFTER_CUTOFF; such products
    are planted only when it is earlier than the end. The first 2 x (roles) ids are pinned to every role twice, so
    any month of at least that many rows (66, or 64 without a cutoff) plants every outcome; the other slots draw
    their role from `mix`. With `scenario` set, its counts are placed exactly and the rest of the slots draw from
    its fill; `mix` and the pinned first ids are then not used.

    Example::

        params = InventoryParams.for_cycle("2026-07", rows=50_000, seed=7)
        s30 = InventoryParams.seed004_s30(rows=12_000)      # 100 free trials, 20 holds, 10 test, 20 not billed
    """

    rows: int = 20_000
    seed: int = 42
    cycle_id: str = "2026-06"
    cycle_start: datetime = field(default_factory=lambda: _utc(2026, 6))
    cycle_end: datetime = field(default_factory=lambda: _utc(2026, 7))
    cutoff: datetime | None = None
    accounts: int | None = None          # shared accounts; None: rows // 4, at least 20
    currency: str = "USD"
    mix: tuple[tuple[str, float], ...] = DEFAULT_MIX
    scenario: ScenarioCounts | None = None

    def __post_init__(self) -> None:
        if self.rows < 1:
            raise ValueError(f"rows must be positive, got {self.rows}")
        for name in ("cycle_start", "cycle_end", "cutoff"):
            value = getattr(self, name)
            if value is not None and (value.tzinfo is None or value.utcoffset() != timedelta(0)):
                raise ValueError(f"{name} must be a UTC datetime, got {value!r}")
        for name in ("cycle_start", "cycle_end"):
            if getattr(self, name) != getattr(self, name).replace(hour=0, minute=0, second=0, microsecond=0):
                raise ValueError(f"{name} must be a UTC midnight (daily proration counts calendar days)")
        if self.cycle_end - self.cycle_start < timedelta(days=2):
            raise ValueError("the cycle must last at least 2 days")
        if not self.cycle_start + timedelta(days=2) <= self.cutoff_at <= self.cycle_end:
            raise ValueError(f"cutoff must be within [cycle start + 2 days, cycle end], got {self.cutoff_at}")
        if self.accounts is not None and self.accounts < 1:
            raise ValueError(f"accounts must be positive, got {self.accounts}")
        for name, share in self.mix:
            if name not in ROLE_BY_NAME or not 0.0 <= share <= 1.0:
                raise ValueError(f"mix entry {name}: {share} is not a role with a share in [0, 1]")
        if sum(share for _, share in self.mix) > 1.0:
            raise ValueError("the shares of mix add up to more than 1")
        if self.scenario is not None:
            self._check_scenario(self.scenario)

    def _check_scenario(self, scenario: ScenarioCounts) -> None:
        if self.rows > MAX_EXACT_ROWS:
            raise ValueError(f"a scenario supports at most {MAX_EXACT_ROWS} rows, got {self.rows}")
        for name, _ in (*scenario.counts, *scenario.fill):
            if name not in ROLE_BY_NAME:
                raise ValueError(f"scenario role {name!r} is not one of ROLES")
        placed = sum(count for _, count in scenario.scaled(self.rows))
        if placed > self.rows:
            raise ValueError(f"the scenario places {placed} slots, more than the {self.rows} rows")

    @classmethod
    def for_cycle(cls, cycle_id: str, **overrides: Any) -> InventoryParams:
        """Params for the month `YYYY-MM`: start on the 1st, end on the 1st of the next month (UTC)."""
        try:
            start = datetime.strptime(cycle_id, "%Y-%m").replace(tzinfo=UTC)
        except ValueError as exc:
            raise ValueError(f"cycle must be YYYY-MM, got {cycle_id!r}") from exc
        end = _utc(start.year + start.month // 12, start.month % 12 + 1)
        return cls(cycle_id=cycle_id, cycle_start=start, cycle_end=end, **overrides)

    @classmethod
    def seed004_s30(cls, rows: int = SEED004_S30_ROWS, cycle_id: str = "2026-06", **overrides: Any) -> InventoryParams:
        """Seed 004 section 30, "Active Product Not Billed": 1.2M active products, 1,185,000 charged and MATCHED,
        10,000 free trial, 2,000 billing hold, 1,000 test accounts and 2,000 with no explanation (exactly 2,000
        ACTIVE_PRODUCT_NOT_BILLED); scaled to `rows` products, each count rounded half up. Plants only that mix.

        Example::

            InventoryParams.seed004_s30(rows=12_000).scenario.scaled(12_000)   # 100, 20, 10, 20 (11,850 MATCHED)
        """
        return cls.for_cycle(cycle_id, rows=rows, scenario=SEED004_S30, **overrides)

    @property
    def cutoff_at(self) -> datetime:
        return self.cycle_end if self.cutoff is None else self.cutoff

    @property
    def days(self) -> int:
        """Calendar days in the cycle (30 for June, 31 for July)."""
        return (self.cycle_end - self.cycle_start).days

    @property
    def previous_cycle_id(self) -> str:
        return (self.cycle_start - timedelta(days=1)).strftime("%Y-%m")

    @property
    def account_count(self) -> int:
        return self.accounts if self.accounts is not None else max(20, self.rows // 4)

    def roles(self) -> list[Role]:
        """The roles this month can plant: ACTIVATED_AFTER_CUTOFF only when the cutoff is before the end."""
        late_possible = self.cutoff_at < self.cycle_end
        return [r for r in ROLES if late_possible or r.name != "EX_AFTER_CUTOFF"]

    def drawn_mix(self) -> list[tuple[str, float]]:
        """(role, share) drawn by hash: the scenario's fill, else `mix` without roles this month cannot plant."""
        if self.scenario is not None:
            return list(self.scenario.fill)
        names = {r.name for r in self.roles()}
        return [(name, share) for name, share in self.mix if name in names]

    def pinned(self) -> list[str]:
        """Roles of the first ids (every plantable role PINNED_COPIES times); none in a scenario."""
        if self.scenario is not None:
            return []
        return [r.name for _ in range(PINNED_COPIES) for r in self.roles()]

    def rank_permutation(self) -> tuple[int, int, int]:
        """(A, B, n) of the rank `(id * A + B) mod n`: A coprime with n, so ranks are a bijection of the ids."""
        n = self.rows
        a = max(1, round(n * (math.sqrt(5) - 1) / 2))
        while math.gcd(a, n) != 1:
            a += 1
        return a, (self.seed * 2_654_435_761) % n, n


# ---------------------------------------------------------------------------------------------------------- helpers
#
# Expressions are SQL text, one `F.expr` per column, over columns named in earlier stages: building them from column
# functions took some 10,000 JVM calls per month (seconds of driver time per plan); this way a plan takes a few
# dozen. Only constants of this module and column names are pasted into the text (`_sql_literal` quotes them).


def _product(role: Role, j: int) -> Product | None:
    return role.products[j] if j < len(role.products) else None


def _charge(role: Role, k: int) -> Charge | None:
    return role.charges[k] if k < len(role.charges) else None


def _product_values(roles: Sequence[Role], j: int, name: str, default: Any) -> dict[str, Any]:
    """Role name -> attribute `name` of its product j (`default` where it has none)."""
    return {r.name: getattr(_product(r, j), name, default) for r in roles}


def _charge_values(roles: Sequence[Role], name: str, default: Any) -> dict[str, Any]:
    """`role:k` -> attribute `name` of the role's charge k (`default` where it has none)."""
    return {f"{r.name}:{k}": getattr(_charge(r, k), name, default) for r in roles for k in range(MAX_CHARGES)}


def _pick_sql(options: str, draw: str) -> str:
    """One element of an array of options (a role's variants), chosen by `draw` (a 64-bit hash)."""
    return f"element_at({options}, CAST(pmod({draw}, size({options})) AS INT) + 1)"


def _catalog_sql(index: str, attribute: str) -> str:
    """An attribute of the offering at `index`; `fee` in whole cents (a bigint)."""
    if attribute == "fee":
        cents = tuple(int(Decimal(o.fee) * 100) for o in CATALOG)
        return f"CAST(element_at({_sql_literal(cents)}, CAST({index} AS INT) + 1) AS BIGINT)"
    values = tuple(getattr(o, attribute) for o in CATALOG)
    return f"element_at({_sql_literal(values)}, CAST({index} AS INT) + 1)"


def _money_sql(micros: str) -> str:
    """Whole micro-units as decimal(18,6), exactly (decimal(20,0) x 0.000001)."""
    return f"CAST(CAST({micros} AS DECIMAL(20,0)) * 0.000001 AS DECIMAL(18,6))"


def _stage(df: DataFrame, columns: dict[str, str]) -> DataFrame:
    """`df` plus named SQL columns. A stage of its own keeps an expression computed once where later stages read it
    several times (the optimizer does not inline a non-trivial expression into several places)."""
    return df.select("*", *[F.expr(sql).alias(name) for name, sql in columns.items()])


def _expected_sql(params: InventoryParams, fee_cents: str, quantity: str, days: str) -> str:
    """fee x quantity x active days / days in the cycle, in micro-units, half up (all terms positive integers)."""
    d = params.days
    return f"div({fee_cents} * 10000 * {quantity} * {days} * 2 + {d}, CAST({2 * d} AS BIGINT))"


# ------------------------------------------------------------------------------------------------------------ slots


def _role_sql(params: InventoryParams) -> str:
    """The slot's role: pinned (first ids), placed by rank (scenario counts) or drawn from the shares (`d_role`)."""
    branches: list[str] = []
    pinned = params.pinned()
    if pinned:
        branches.append(f"WHEN id < {len(pinned)} THEN element_at({_sql_literal(tuple(pinned))}, CAST(id AS INT) + 1)")
    if params.scenario is not None:
        cut = 0
        for name, count in params.scenario.scaled(params.rows):
            cut += count
            branches.append(f"WHEN `rank` < {cut} THEN {_sql_literal(name)}")
    cumulative = 0.0
    for name, share in params.drawn_mix():
        cumulative += share
        branches.append(f"WHEN d_role < {cumulative!r}D THEN {_sql_literal(name)}")
    return f"CASE {' '.join(branches)} ELSE 'M_FULL' END"


def _kind_columns(params: InventoryParams, roles: Sequence[Role], j: int) -> dict[str, str]:
    """Product j of every slot, stage 1: what its role makes it (timing, offering, exemption, flags)."""
    seed = params.seed

    def attr(name: str, default: object) -> str:
        return _case_sql("role", _product_values(roles, j, name, default))

    def offering(k: int) -> str:
        ranges = {r.name: _CATALOG_RANGE[p.catalog if (p := _product(r, k)) else ANY] for r in roles}
        first = _case_sql("role", {name: start for name, (start, _) in ranges.items()})
        size = _case_sql("role", {name: n for name, (_, n) in ranges.items()})
        return f"({first}) + pmod({_hash_sql(seed, f'offering-{k}', 'id')}, CAST({size} AS BIGINT))"

    index = offering(j) if j == 0 else f"CASE WHEN {attr('same_pair', False)} THEN {offering(0)} ELSE {offering(j)} END"
    return {
        f"p{j}_timing": _pick_sql(attr("timing", (FULL,)), _hash_sql(seed, f"timing-{j}", "id")),
        f"p{j}_cat": index,
        f"p{j}_group": attr("catalog", ANY),
        f"p{j}_exemption": _pick_sql(attr("exemption", (None,)), _hash_sql(seed, f"exemption-{j}", "id")),
        f"p{j}_account_kind": attr("account", POOL),
        f"p{j}_null_id": attr("null_id", False),
        f"p{j}_null_fee": attr("null_fee", False),
        f"p{j}_child": attr("child", False),
        f"p{j}_phantom": attr("phantom", False),
    }


def _activation_columns(params: InventoryParams, j: int) -> dict[str, str]:
    """Stage 2: seats, fee and activation (epoch seconds) of product j; boundary instants on 1 draw in 8."""
    seed = params.seed
    s, e, c = _epoch(params.cycle_start), _epoch(params.cycle_end), _epoch(params.cutoff_at)

    def below(salt: str, modulus: int) -> str:
        return _below_sql(seed, f"{salt}-{j}", modulus, "id")

    edge = f"{below('edge', 8)} = 0"
    before = f"{s} - (1 + {below('age', 700)}) * {DAY_S} + {below('tod', DAY_S)}"
    timing = f"p{j}_timing"
    return {
        f"p{j}_qty": f"CASE WHEN p{j}_group = '{SEAT}' THEN 2 + {below('seats', 39)} "
                     f"WHEN {_catalog_sql(f'p{j}_cat', 'per_seat')} THEN 1 + {below('seats', 40)} "
                     f"ELSE CAST(1 AS BIGINT) END",
        f"p{j}_fee": f"CASE WHEN p{j}_null_fee THEN CAST(NULL AS BIGINT) ELSE {_catalog_sql(f'p{j}_cat', 'fee')} END",
        f"p{j}_edge": edge,
        f"p{j}_act": f"""CASE
            WHEN {timing} IN ('{FULL}', '{TERM_MID}') THEN {before}
            WHEN {timing} IN ('{ACT_MID}', '{ACT_TERM_MID}') THEN
                CASE WHEN {edge} THEN {c - 1} ELSE {s + DAY_S} + {below('act', c - 1 - s - DAY_S)} END
            WHEN {timing} = '{ENDED}' THEN {before} - {400 * DAY_S}
            WHEN {timing} = '{FUTURE}' THEN {e} + CASE WHEN {edge} THEN 0 ELSE {below('future', 20 * DAY_S)} END
            WHEN {timing} = '{LATE}' THEN {c} + CASE WHEN {edge} THEN 0 ELSE {below('late', max(1, e - c))} END
            END""",
    }


def _termination_columns(params: InventoryParams, j: int) -> dict[str, str]:
    """Stage 3: termination (epoch seconds) of product j, which may depend on its activation."""
    seed = params.seed
    s, e = _epoch(params.cycle_start), _epoch(params.cycle_end)
    later = _below_sql(seed, f"term-{j}", 1 << 40, "id")
    timing, edge, act = f"p{j}_timing", f"p{j}_edge", f"p{j}_act"
    return {
        f"p{j}_term": f"""CASE
            WHEN {timing} = '{FULL}' AND {_below_sql(seed, f'ends-{j}', 10, 'id')} < 3 THEN
                CASE WHEN {edge} THEN {e} ELSE {e} + pmod({later}, {365 * DAY_S}) END
            WHEN {timing} = '{TERM_MID}' THEN CASE WHEN {edge} THEN {s} ELSE {s} + pmod({later}, {e - s - DAY_S}) END
            WHEN {timing} = '{ACT_TERM_MID}' THEN {act} + pmod({later}, {e} - {act})
            WHEN {timing} = '{ENDED}' THEN CASE WHEN {edge} THEN {s - 1} ELSE {s - 1} - pmod({later}, {200 * DAY_S}) END
            END""",
    }


def _active_days_sql(params: InventoryParams, activation: str, termination: str) -> str:
    """Calendar days of the cycle from the activation day to the termination day, both counted (clipped)."""
    s, last = _epoch(params.cycle_start), params.days - 1
    first_day = f"greatest(CAST(0 AS BIGINT), floor(({activation} - {s}) / {DAY_S}))"
    last_day = (f"CASE WHEN {termination} IS NULL THEN CAST({last} AS BIGINT) "
                f"ELSE least(CAST({last} AS BIGINT), floor(({termination} - {s}) / {DAY_S})) END")
    return f"{last_day} - {first_day} + 1"


def _slots(ids: DataFrame, params: InventoryParams) -> DataFrame:
    """One row per slot: its role and everything about its (up to two) products, in stages so each expression is
    computed once."""
    roles = params.roles()
    seed = params.seed
    a, b, n = params.rank_permutation()
    df = _stage(ids, {"rank": f"pmod(id * {a} + {b}, CAST({n} AS BIGINT))", "d_role": _unit_sql(seed, "role", "id")})
    df = _stage(df.select("id", "rank", "d_role"), {"role": _role_sql(params)}).select("id", "role")
    df = _stage(df, {**_kind_columns(params, roles, 0), **_kind_columns(params, roles, 1)})
    df = _stage(df, {**_activation_columns(params, 0), **_activation_columns(params, 1)})
    df = _stage(df, {**_termination_columns(params, 0), **_termination_columns(params, 1)})
    pool = f"concat('ACC-', lpad(CAST({_below_sql(seed, 'account', params.account_count, 'id')} AS STRING), 7, '0'))"
    df = _stage(df, {
        "p0_id": "CASE WHEN p0_phantom THEN concat('PRD-X', lpad(CAST(id AS STRING), 11, '0')) "
                 "ELSE concat('PRD-', lpad(CAST(id * 2 AS STRING), 11, '0')) END",
        "p1_id": "concat('PRD-', lpad(CAST(id * 2 + 1 AS STRING), 11, '0'))",
        # a child or a pair partner lives on product 0's account
        "account": f"CASE WHEN p0_account_kind = '{OWN}' THEN concat('ACC-U', lpad(CAST(id AS STRING), 10, '0')) "
                   f"WHEN p0_account_kind = '{TEST}' THEN concat('ACC-TEST-', lpad(CAST(id AS STRING), 10, '0')) "
                   f"ELSE {pool} END",
        "msisdn": f"concat('+1', CAST(2000000000 + {_below_sql(seed, 'msisdn', 7_999_999_999, 'id')} AS STRING))",
        "bill_run": f"{_epoch(params.cycle_end) + DAY_S} + {_below_sql(seed, 'billed', 6 * 3600, 'id')}",
        **{f"p{j}_days": _active_days_sql(params, f"p{j}_act", f"p{j}_term") for j in range(MAX_PRODUCTS)},
    })
    return _stage(df, {f"p{j}_expected": _expected_sql(params, f"p{j}_fee", f"p{j}_qty", f"p{j}_days")
                       for j in range(MAX_PRODUCTS)})


# ----------------------------------------------------------------------------------------------- product_inventory


def _products_labeled(slots: DataFrame, params: InventoryParams) -> DataFrame:
    roles = params.roles()
    kinds = [(j, F.col("role").isin(*[r.name for r in roles if (p := _product(r, j)) is not None and not p.phantom]))
             for j in range(MAX_PRODUCTS)]
    df = _emit(slots, "j", kinds)
    names = ("id", "null_id", "cat", "exemption", "act", "term", "fee", "qty", "child")
    df = _stage(df, {
        "rj": "concat(role, ':', CAST(j AS STRING))",
        **{f"x_{name}": f"CASE WHEN j = 0 THEN p0_{name} ELSE p1_{name} END" for name in names},
    })

    def label(attribute: str) -> str:
        return _case_sql("rj", {f"{r.name}:{j}": getattr(_product(r, j), attribute, None)
                                for r in roles for j in range(MAX_PRODUCTS)})

    end = _epoch(params.cycle_end)
    columns = {
        "product_id": "CASE WHEN x_null_id THEN CAST(NULL AS STRING) ELSE x_id END",
        "account_id": "account",
        "offering_id": _catalog_sql("x_cat", "offering_id"),
        "billing_product_code": _catalog_sql("x_cat", "sku"),
        "state": f"CASE WHEN x_exemption = '{BILLING_HOLD}' THEN 'SUSPENDED' "
                 f"WHEN x_term IS NOT NULL AND x_term < {end} THEN 'TERMINATED' ELSE 'ACTIVE' END",
        "activation_date": "timestamp_seconds(x_act)",
        "termination_date": "timestamp_seconds(x_term)",
        "monthly_fee": "CAST(CAST(x_fee AS DECIMAL(20,0)) * 0.01 AS DECIMAL(18,6))",
        "quantity": "CAST(x_qty AS BIGINT)",
        "parent_product_id": "CASE WHEN x_child THEN p0_id ELSE CAST(NULL AS STRING) END",
        "exemption": "CAST(x_exemption AS STRING)",
        "gen_row_id": "concat_ws('-', 'p', CAST(id AS STRING), CAST(j AS STRING))",
        "_outcome": label("outcome"),
        "_reason": label("reason"),
    }
    return df.select(*[F.expr(sql).alias(name) for name, sql in columns.items()])


# ------------------------------------------------------------------------------------------------------ bill_charge


def _charges_labeled(slots: DataFrame, params: InventoryParams) -> DataFrame:
    roles = params.roles()
    seed = params.seed
    kinds = [(k, F.col("role").isin(*[r.name for r in roles if k < len(r.charges)])) for k in range(MAX_CHARGES)]
    df = _stage(_emit(slots, "k", kinds), {"rk": "concat(role, ':', CAST(k AS STRING))"})

    def attr(name: str, default: object) -> str:
        return _case_sql("rk", _charge_values(roles, name, default))

    def pick(name: str, salt: str) -> str:
        options = {key: value or (None,) for key, value in _charge_values(roles, name, ()).items()}
        return _pick_sql(_case_sql("rk", options), _hash_sql(seed, salt, "id", "k"))

    df = _stage(df, {
        "c_target": attr("product", 0), "c_outcome": attr("outcome", None), "c_by_pair": attr("by_pair", False),
        "c_sku": attr("sku", SAME), "c_qty_kind": attr("quantity", SAME), "c_amount_kind": pick("amount", "amount"),
        "c_type": attr("charge_type", "RECURRING"), "c_other_cycle": attr("other_cycle", False),
        "c_quarantine": pick("quarantine", "quarantine"), "c_duplicate": attr("duplicate", False),
        "c_delay": attr("delay_days", 0),
        # duplicates: 0 a day later with the larger id, 1 at the same instant with the larger id, 2 a day later
        # with the smaller id (the original is the first by billed_at, then charge_id)
        "dup_variant": _below_sql(seed, "dup-variant", 3, "id"),
        "has_dup": _case_sql("role", {r.name: any(c.duplicate for c in r.charges) for r in roles}),
        **{f"t_{name}": f"CASE WHEN {attr('product', 0)} = 0 THEN p0_{name} ELSE p1_{name} END"
           for name in ("id", "cat", "qty", "fee", "days", "expected")},
    })
    other_qty = (f"CASE WHEN {_below_sql(seed, 'qty-down', 2, 'id')} = 0 AND t_qty >= 2 THEN t_qty - 1 "
                 f"ELSE t_qty + 1 + {_below_sql(seed, 'qty-up', 3, 'id')} END")
    df = _stage(df, {"billed_qty": f"CASE WHEN c_qty_kind = '{OTHER}' THEN {other_qty} ELSE t_qty END"})
    sign = f"CASE WHEN {_below_sql(seed, 'sub-sign', 2, 'id')} = 0 THEN 1 ELSE -1 END"
    micros = f"""CASE c_amount_kind
        WHEN '{EXACT}' THEN t_expected
        WHEN '{SUB_TOLERANCE}' THEN t_expected + ({sign}) * 4000
        WHEN '{AT_TOLERANCE}' THEN t_expected + greatest(CAST(10000 AS BIGINT), div(t_expected, 1000))
        WHEN '{HALF}' THEN div(t_expected, 2)
        WHEN '{OVER}' THEN t_expected + div(t_expected, 10) + 50000
        WHEN '{JUST_BEYOND}' THEN t_expected + greatest(CAST(10000 AS BIGINT), div(t_expected + 999, 1000)) + 1
        WHEN '{BILLED_QUANTITY}' THEN {_expected_sql(params, 't_fee', 'billed_qty', 't_days')}
        WHEN '{FULL_FEE}' THEN t_fee * 10000 * t_qty
        WHEN '{FLAT}' THEN CAST(25000000 AS BIGINT)
        WHEN '{CREDIT}' THEN CAST(-5000000 AS BIGINT)
        END"""
    sku_index = (f"CASE WHEN c_sku = '{OTHER}' THEN pmod(t_cat + 1 + "
                 f"{_below_sql(seed, 'other-sku', _BILLABLE_SKUS - 1, 'id')}, {_BILLABLE_SKUS}) ELSE t_cat END")
    number = "CASE WHEN has_dup AND dup_variant = 2 AND k <= 1 THEN 1 - k ELSE k END"
    billed_at = (f"CASE WHEN c_other_cycle THEN {_epoch(params.cycle_start) + DAY_S} + "
                 f"{_below_sql(seed, 'previous-bill-run', 6 * 3600, 'id')} "
                 f"ELSE bill_run + c_delay * {DAY_S} + CASE WHEN c_duplicate AND dup_variant != 1 THEN {DAY_S} "
                 f"ELSE 0 END END")
    previous, current = _sql_literal(params.previous_cycle_id), _sql_literal(params.cycle_id)
    cycle = f"CASE WHEN c_other_cycle THEN {previous} ELSE {current} END"
    columns = {
        "charge_id": f"CASE WHEN c_quarantine = '{NULL_ID}' THEN CAST(NULL AS STRING) "
                     f"ELSE concat('CH-', lpad(CAST(id * 8 + {number} AS STRING), 12, '0')) END",
        "source_rated_event_id": "CASE WHEN c_type = 'USAGE' THEN concat('RE-', lpad(CAST(id * 8 + k AS STRING), 12, "
                                 "'0')) ELSE CAST(NULL AS STRING) END",
        "product_id": "CASE WHEN c_by_pair THEN CAST(NULL AS STRING) ELSE t_id END",
        "account_id": "account",
        "msisdn": f"CASE WHEN {_catalog_sql('t_cat', 'mobile')} THEN msisdn ELSE CAST(NULL AS STRING) END",
        "cycle_id": cycle,
        "invoice_id": f"concat('INV-', replace({cycle}, '-', ''), '-', account)",
        "charge_type": "c_type",
        "billing_product_code": _catalog_sql(sku_index, "sku"),
        "quantity": "CAST(CASE WHEN c_type = 'RECURRING' THEN billed_qty ELSE 1 END AS BIGINT)",
        "amount": f"CASE WHEN c_quarantine = '{NULL_AMOUNT}' THEN CAST(NULL AS DECIMAL(18,6)) "
                  f"ELSE {_money_sql(micros)} END",
        "currency": _sql_literal(params.currency),
        "billed_at": f"timestamp_seconds({billed_at})",
        "gen_row_id": "concat_ws('-', 'b', CAST(id AS STRING), CAST(k AS STRING))",
        "_outcome": "c_outcome",
    }
    return df.select(*[F.expr(sql).alias(name) for name, sql in columns.items()])


# ----------------------------------------------------------------------------------------------------- ground truth


def _ground_truth(products: DataFrame, charges: DataFrame) -> DataFrame:
    """One row per product active in the cycle (LEFT) and per RECURRING charge of the cycle (RIGHT), quarantined
    rows included; `account_id` is the record's own (a charge always carries its product's account here)."""
    def rows(df: DataFrame, table: str, side: str, reason: str) -> DataFrame:
        return df.where(F.col("_outcome").isNotNull()).select(
            "gen_row_id", F.lit(table).alias("table_name"), F.lit(CONTROL_POINT).alias("control_point_id"),
            F.lit(side).alias("side"), F.col("_outcome").alias("expected_outcome"), "account_id",
            F.lit(None).cast("string").alias("service_type"), F.expr(reason).alias("expected_reason_code"),
        )

    left = rows(products, "product_inventory", "LEFT", "_reason")
    right = rows(charges, "bill_charge", "RIGHT", "CAST(NULL AS STRING)")
    out = left.unionByName(right)
    return out.select(*[F.col(f.name).cast(f.dataType) for f in INVENTORY_GROUND_TRUTH_SCHEMA.fields])


# ----------------------------------------------------------------------------------------------------------- public


def generate_month(ids: DataFrame, params: InventoryParams) -> dict[str, DataFrame]:
    """The synthetic month: DataFrames for product_inventory, bill_charge and ground_truth.

    `ids` must be `spark.range(params.rows)` (one bigint column `id`, values 0 .. rows-1): each id is one slot.
    Nothing is computed here; every frame is a lazy plan derived from `ids`, and the same params give the same rows.

    Example::

        month = generate_month(spark.range(12_000), InventoryParams.seed004_s30(rows=12_000))
        month["ground_truth"].groupBy("side", "expected_outcome", "expected_reason_code").count().show()
    """
    if ids.columns != ["id"] or ids.schema["id"].dataType != LongType():
        raise ValueError(f"ids must be spark.range(rows) with one bigint column 'id', got {ids.schema.simpleString()}")
    slots = _slots(ids, params)
    products = _products_labeled(slots, params)
    charges = _charges_labeled(slots, params)
    return {
        "product_inventory": products.select(*PRODUCT_COLUMNS),
        "bill_charge": charges.select(*CHARGE_COLUMNS),
        "ground_truth": _ground_truth(products, charges),
    }
