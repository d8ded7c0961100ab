"""A deterministic synthetic billing month with planted faults, and the ground truth the controls must reproduce.

Why: the controls can only be trusted (and benchmarked) against data whose right answer is known record by record.
This module builds a month of cdr, rated_event, bill_charge, suspense and tariff rows in the CONTRACT's shapes,
plants every outcome of CONTRACT section 4 on distinct records, and labels each record with the outcome that
docs/usage_to_bill.md prescribes *as the fault is planted* (labels are never derived by re-running matching).

How it scales: everything is derived inside Spark from `spark.range(rows)` with built-in column functions. Each id is
a *slot*: one (subscriber number, time) cell of a per-number time grid. Pseudo-randomness comes only from
`xxhash64(seed, id[, sub-record], salt)`, each hash split into three 21-bit draws, so the same seed gives the same
month on any cluster and any partitioning; there are no UDFs, no `rand()`, no collects and no Python loops over
rows. A slot's role (matched, in suspense, duplicate, ...) decides which records it emits; each table is one
`explode` over the slots, so memory never grows with `rows`. Exact outcome counts (`ExactCounts`, the seed-004
scenario) are placed the same way: by rank in a fixed permutation of the ids, not by sorting or numbering rows.
Expressions are kept compact on purpose (integer thresholds, lookup arrays, one regexp per phone format): whole-stage
codegen then stays within the JVM's JIT limit.

Why a grid: the ground truth is only exact if unrelated records never become fuzzy candidates of each other. Call k
of a number starts at `cycle_start + k * slot + offset` with `12 <= offset <= slot - 12` and `slot >= 40 s`, so two
slots of one number are at least 24 s apart; planted clock skew is at most 3 s and ambiguous clusters spread 2 s,
which keeps every cross-slot pair further apart than the 10 s fuzzy window.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import (
    DecimalType,
    LongType,
    StringType,
    StructField,
    StructType,
    TimestampType,
)

from jobs.synthetic.common import (
    GROUND_TRUTH_SCHEMA,
    MONEY,
    _apportion,
    _below,
    _code,
    _const_array,
    _emit,
    _epoch,
    _hash,
    _money,
    _row_key,
    _unit,
)

RATE = DecimalType(18, 8)

TABLES = ("cdr", "rated_event", "bill_charge", "suspense", "tariff", "ground_truth")
TEST_ACCOUNT = "ACC-TEST-0001"
MIN_SLOT_S = 40          # per-number grid cell; see the module docstring
EDGE_S = 12              # a call starts at least this far from its cell's edges
SUBSCRIBER_SPACE = 8_000_000   # subscriber numbers are (555) NXX-XXXX with NXX 200..999
_NUMBER_STRIDE = 7919    # coprime with SUBSCRIBER_SPACE: j -> (j * stride + offset) mod space is a bijection
_OTHER_PARTY_NPAS = ("212", "213", "305", "312", "415", "617", "702", "713", "206", "404")  # x 555-01xx: fiction
_ALPHA_SENDERS = ("BANKALERT", "MYCARRIER", "PARCELSVC")
_SUSPENSE_REASONS = ("UNKNOWN_SUBSCRIBER", "NO_RATING_PLAN", "INVALID_OTHER_PARTY", "MISSING_CELL_ID")

TARIFF_SCHEMA = StructType([
    StructField("tariff_id", StringType()), StructField("tariff_version", StringType()),
    StructField("service_type", StringType()), StructField("valid_from", TimestampType()),
    StructField("valid_to", TimestampType()), StructField("rate_per_unit", RATE),
    StructField("rounding_increment", LongType()), StructField("minimum_charge", MONEY),
    StructField("currency", StringType()),
])

# Usage-to-rating roles of a slot: which cdr / rated_event rows it emits (docstring of `_slots`).
MATCH = "MATCH"
FUZZY = "FUZZY"
RESOLVED = "RESOLVED"
IN_SUSPENSE = "IN_SUSPENSE"
AGED = "AGED"
LATE = "LATE"
NOT_RATED = "NOT_RATED"
AMBIG_CDR = "AMBIG_CDR"
AMBIG_RATED = "AMBIG_RATED"
DUP_RESENT = "DUP_RESENT"
DUP_RESENT_RERATED = "DUP_RESENT_RERATED"
DUP_CONTENT = "DUP_CONTENT"
DUP_CONTENT_RERATED = "DUP_CONTENT_RERATED"
DUP_RATED = "DUP_RATED"
DUP_RATED_LOST = "DUP_RATED_LOST"
RWU = "RWU"
Q_CDR = "Q_CDR"
Q_RE_NULL_ID = "Q_RE_NULL_ID"
Q_RE_NULL_AMOUNT = "Q_RE_NULL_AMOUNT"
Q_RE_REPEAT = "Q_RE_REPEAT"

NO_RATED = (IN_SUSPENSE, AGED, LATE, NOT_RATED, Q_CDR)
NO_CDR = (RWU, Q_RE_NULL_ID)
TWO_CDR = (AMBIG_CDR, DUP_RESENT, DUP_RESENT_RERATED, DUP_CONTENT, DUP_CONTENT_RERATED)
TWO_RATED = (AMBIG_RATED, DUP_RESENT_RERATED, DUP_CONTENT_RERATED, DUP_RATED, DUP_RATED_LOST, Q_RE_REPEAT)
RERATED = (DUP_RESENT_RERATED, DUP_CONTENT_RERATED, DUP_RATED, DUP_RATED_LOST)

# Rating-accuracy roles of a rated event, and rating-to-billing roles.
A_OK, A_HIGH, A_LOW, A_WRONG_VERSION, A_NOT_FOUND = "OK", "HIGH", "LOW", "WRONG_VERSION", "NOT_FOUND"
B_OK, B_NOT_BILLED, B_MISMATCH, B_DUP = "OK", "NOT_BILLED", "MISMATCH", "DUP"
X_ORPHAN, X_QCHARGE = "ORPHAN", "QCHARGE"

# Charge kinds emitted per rated event, and per slot.
CH_MAIN, CH_DUP, CH_QUARANTINED, CH_ORPHAN, CH_RECURRING = 0, 1, 2, 3, 4


def _forced_rows() -> list[tuple[str, str | None, str | None, str | None]]:
    """(usage role, accuracy role of r0, billing role of r0, extra) for the first ids: every outcome at least twice.

    Hash-drawn roles alone could miss a rare outcome at small `rows`; the first ids are therefore pinned.
    """
    u_roles = [FUZZY, RESOLVED, IN_SUSPENSE, AGED, LATE, NOT_RATED, AMBIG_CDR, AMBIG_RATED, DUP_RESENT,
               DUP_RESENT_RERATED, DUP_CONTENT, DUP_CONTENT_RERATED, DUP_RATED, DUP_RATED_LOST, RWU, Q_CDR, Q_CDR,
               Q_CDR, Q_RE_NULL_ID, Q_RE_NULL_AMOUNT, Q_RE_REPEAT]
    rows: list[tuple[str, str | None, str | None, str | None]] = []
    for _ in range(2):
        rows += [(u, None, None, None) for u in u_roles]
        rows += [(MATCH, a, B_OK, None) for a in (A_HIGH, A_LOW, A_NOT_FOUND)]
        rows += [(MATCH, A_OK, b, None) for b in (B_NOT_BILLED, B_MISMATCH, B_DUP)]
        rows += [(MATCH, A_OK, B_OK, x) for x in (X_ORPHAN, X_QCHARGE)]
    return rows


FORCED = _forced_rows()

# What exact counts pin (ExactCounts): usage roles whose only LEFT outcome is one of the counted ones, and the accuracy
# roles that make a rated event a TARIFF_MISMATCH. In exact mode none of them is drawn from a rate or pinned by FORCED.
EXACT_USAGE_ROLES = (IN_SUSPENSE, AGED, LATE, DUP_RESENT, DUP_RESENT_RERATED, DUP_CONTENT, DUP_CONTENT_RERATED)
EXACT_ACCURACY_ROLES = (A_HIGH, A_LOW, A_WRONG_VERSION)


def _utc(year: int, month: int, day: int = 1) -> datetime:
    return datetime(year, month, day, tzinfo=UTC)


@dataclass(frozen=True)
class ExactCounts:
    """Exact numbers of four outcomes, instead of shares drawn from their rates.

    Why: a scenario such as seed-004 (10M usage records with 50K rejected, 20K late, 5K duplicates and 3K tariff
    mismatches) is stated in counts, and the engine's report is checked against them to the record; hash draws only
    come near a rate. Each count is what the run reports in `record_outcome`:

    - rejected: usage-to-rating LEFT IN_SUSPENSE + SUSPENSE_AGED (rejected to suspense, still OPEN; RESOLVED suspense
      is matched usage and not counted here),
    - late: usage-to-rating LEFT LATE_USAGE,
    - duplicates: usage-to-rating LEFT DUPLICATE_USAGE (one copy per duplicated usage record),
    - tariff_mismatches: rating-accuracy LEFT TARIFF_MISMATCH.
    """

    rejected: int = 0
    late: int = 0
    duplicates: int = 0
    tariff_mismatches: int = 0

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"exact count {f.name} must be a non-negative int, got {value!r}")

    @property
    def total(self) -> int:
        """Slots the counts take: one per counted outcome."""
        return self.rejected + self.late + self.duplicates + self.tariff_mismatches

    def scaled(self, rows: int, at_rows: int) -> ExactCounts:
        """These counts (stated for `at_rows` usage records) scaled to `rows`, each rounded half up.

        Lets a scenario stated at 10M records be generated, and checked, at test size with the same mix.
        """
        if rows < 1 or at_rows < 1:
            raise ValueError(f"rows and at_rows must be positive, got {rows} and {at_rows}")

        def scale(count: int) -> int:
            return (2 * count * rows + at_rows) // (2 * at_rows)

        return ExactCounts(scale(self.rejected), scale(self.late), scale(self.duplicates),
                           scale(self.tariff_mismatches))


SEED004_ROWS = 10_000_000
SEED004 = ExactCounts(rejected=50_000, late=20_000, duplicates=5_000, tariff_mismatches=3_000)
MAX_EXACT_ROWS = 3_000_000_000   # the rank permutation multiplies two ids below rows in a signed 64-bit long


@dataclass(frozen=True)
class TariffVersion:
    """One tariff row; the pricing expressions (`_tariff_terms`) and the tariff table are both built from these."""

    tariff_id: str
    version: str
    service_type: str
    valid_from: datetime
    valid_to: datetime | None
    rate: Decimal
    increment: int
    minimum: Decimal


@dataclass(frozen=True)
class GeneratorParams:
    """What month to generate, how big, and how often each fault is planted.

    Rates are shares of slots (one slot is about one usage record). Defaults give 0.2-3 % per fault at 200k rows;
    the first ids are pinned so every outcome appears at least twice whatever the size.

    With `exact` set (ExactCounts), rejected (IN_SUSPENSE + SUSPENSE_AGED), late, duplicate-usage and tariff-mismatch
    outcomes come out in exactly those numbers: they are placed on that many slots instead of drawn. Their rates then
    only split a count between the roles producing it (in_suspense vs suspense_aged, resent vs content duplicates);
    late_usage_rate, tariff_mismatch_rate and wrong_version_rate (a wrong version is a tariff mismatch too) are not
    used, and the pinned first ids leave these outcomes out. Every other fault keeps its rate.

    Example::

        params = GeneratorParams.for_cycle("2026-06", rows=1_000_000, seed=7)
        seed004 = GeneratorParams.seed004(rows=200_000)   # 1000 rejected, 400 late, 100 duplicates, 60 mismatches
    """

    rows: int = 200_000
    seed: int = 42
    cycle_id: str = "2026-06"
    cycle_start: datetime = field(default_factory=lambda: _utc(2026, 6))
    cycle_end: datetime = field(default_factory=lambda: _utc(2026, 7))
    cycle_close: datetime = field(default_factory=lambda: _utc(2026, 7, 3))
    accounts: int | None = None          # None: rows // 40, at least 50
    skew_share: float = 0.30             # share of calls on the hot numbers (PBX trunks, call centres)
    skew_numbers_share: float = 0.001    # share of numbers that are hot (at least 3)
    suspense_sla_days: int = 5           # rulesets/usage_to_bill.yaml suspense.sla_days
    currency: str = "USD"
    # interconnect carriers that carry the legs, with their shares of slots (the last takes the rest): a carrier
    # month (jobs/synthetic/carrier_invoice.py) names the carriers of its invoice layouts here, so its invoices bill
    # this month's outbound voice legs
    carriers: tuple[tuple[str, float], ...] = (("CARRIER-A", 0.55), ("CARRIER-B", 0.45))
    # usage-to-rating
    clock_skew_rate: float = 0.20        # rated events whose start_time is off by -3..+3 s
    lost_lineage_rate: float = 0.03      # matched by fuzzy: lineage null (or to a missing record)
    resolved_suspense_rate: float = 0.004
    in_suspense_rate: float = 0.008
    suspense_aged_rate: float = 0.008
    late_usage_rate: float = 0.008
    not_rated_rate: float = 0.01
    ambiguous_rate: float = 0.002        # clusters (half 2 cdr + 1 rated, half 1 cdr + 2 rated)
    resent_duplicate_rate: float = 0.01
    content_duplicate_rate: float = 0.01
    rerated_duplicate_share: float = 0.4  # of duplicated usage that rating rated again
    duplicate_rated_rate: float = 0.008  # a second rated event for one usage (half with lineage lost)
    rated_without_usage_rate: float = 0.005
    quarantined_cdr_rate: float = 0.004
    quarantined_rated_rate: float = 0.006  # null id, null amount, repeated id (a third each)
    # cross-account lineage: matched usage rated (and billed) to another account; outcomes unchanged (`_rated_labeled`)
    cross_account_rate: float = 0.005
    # rating-accuracy
    tariff_mismatch_rate: float = 0.01
    wrong_version_rate: float = 0.10     # of VOICE events within a day of the tariff change
    tariff_not_found_rate: float = 0.004
    # rating-to-billing
    not_billed_rate: float = 0.01
    charge_mismatch_rate: float = 0.008
    duplicate_charge_rate: float = 0.008
    orphan_charge_rate: float = 0.004
    quarantined_charge_rate: float = 0.004
    # exact counts of four outcomes instead of their rates (ExactCounts); None: every fault drawn from its rate
    exact: ExactCounts | None = None

    def __post_init__(self) -> None:
        if self.rows < 1000:
            raise ValueError(f"rows must be at least 1000, got {self.rows}")
        for name in ("cycle_start", "cycle_end", "cycle_close"):
            value = getattr(self, name)
            if value.tzinfo is None or value.utcoffset() != timedelta(0):
                raise ValueError(f"{name} must be a UTC datetime, got {value!r}")
        if not self.cycle_start < self.cycle_end:
            raise ValueError("need cycle_start < cycle_end")
        # Normal usage arrives up to ~8 h after the cycle end; it must arrive before close to be what it claims.
        if self.cycle_close < self.cycle_end + timedelta(days=1):
            raise ValueError("cycle_close must be at least one day after cycle_end")
        if self.suspense_sla_days < 3:
            raise ValueError(f"suspense_sla_days must be at least 3 (recent rejections are planted 2 days before "
                             f"close), got {self.suspense_sla_days}")
        if not self.carriers or any(not isinstance(name, str) or not name or not 0.0 < share <= 1.0
                                    for name, share in self.carriers):
            raise ValueError(f"carriers must be (name, share) pairs with shares in (0, 1], got {self.carriers!r}")
        if abs(sum(share for _, share in self.carriers) - 1.0) > 1e-9:
            raise ValueError(f"carrier shares must add up to 1, got {self.carriers!r}")
        if len({name for name, _ in self.carriers}) != len(self.carriers):
            raise ValueError(f"carrier names must be distinct, got {self.carriers!r}")
        if self.accounts is not None and self.accounts < 20:
            raise ValueError(f"accounts must be at least 20, got {self.accounts}")
        rates = [f.name for f in fields(self) if f.name.endswith(("_rate", "_share"))]
        for name in rates:
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be within [0, 1], got {value}")
        if not 0.0 < self.skew_numbers_share < 1.0:
            raise ValueError(f"skew_numbers_share must be within (0, 1), got {self.skew_numbers_share}")
        exact_share = 0.0
        if self.exact is not None:
            if not isinstance(self.exact, ExactCounts):
                raise ValueError(f"exact must be ExactCounts or None, got {self.exact!r}")
            if self.rows > MAX_EXACT_ROWS:
                raise ValueError(f"exact counts support at most {MAX_EXACT_ROWS} rows, got {self.rows}")
            free = self.rows - len(self.pinned_rows())
            if self.exact.total > free:
                raise ValueError(f"exact counts need {self.exact.total} slots, only {free} of {self.rows} rows are "
                                 f"free (the first {len(self.pinned_rows())} are pinned)")
            exact_share = (self.exact.rejected + self.exact.late + self.exact.duplicates) / self.rows
        if sum(rate for _, rate in self.usage_roles()) + exact_share > 0.5:
            raise ValueError("usage fault rates (and exact usage counts) add up to more than 0.5 of all slots")

    @classmethod
    def for_cycle(cls, cycle_id: str, **overrides: Any) -> GeneratorParams:
        """Params for the month `YYYY-MM`: start on the 1st, end on the 1st of the next month, close 2 days later."""
        try:
            start = datetime.strptime(cycle_id, "%Y-%m").replace(tzinfo=UTC)
        except ValueError as exc:
            raise ValueError(f"cycle must be YYYY-MM, got {cycle_id!r}") from exc
        end = _utc(start.year + start.month // 12, start.month % 12 + 1)
        return cls(cycle_id=cycle_id, cycle_start=start, cycle_end=end, cycle_close=end + timedelta(days=2),
                   **overrides)

    @classmethod
    def seed004(cls, rows: int = SEED004_ROWS, cycle_id: str = "2026-06", **overrides: Any) -> GeneratorParams:
        """The seed-004 scenario: exactly 50K rejected, 20K late, 5K duplicate and 3K tariff-mismatch outcomes at 10M
        usage records (scaled in proportion, rounded, at other sizes), every other fault at its default rate.

        Example::

            GeneratorParams.seed004(rows=200_000).exact   # ExactCounts(1000, 400, 100, 60)
        """
        return cls.for_cycle(cycle_id, rows=rows, exact=SEED004.scaled(rows, SEED004_ROWS), **overrides)

    @property
    def account_count(self) -> int:
        return self.accounts if self.accounts is not None else max(50, self.rows // 40)

    @property
    def tariff_change_at(self) -> datetime:
        """When VOICE-STD v2 replaces v1: the 15th of the cycle's month."""
        return self.cycle_start.replace(day=15, hour=0, minute=0, second=0, microsecond=0)

    @property
    def drawn_tariff_mismatch_rate(self) -> float:
        """The share of rated events drawn HIGH or LOW: 0 when exact counts place the tariff mismatches."""
        return self.tariff_mismatch_rate if self.exact is None else 0.0

    @property
    def drawn_wrong_version_rate(self) -> float:
        """The share of VOICE events near the tariff change drawn WRONG_VERSION (a TARIFF_MISMATCH too): 0 in exact
        mode."""
        return self.wrong_version_rate if self.exact is None else 0.0

    def pinned_rows(self) -> list[tuple[str, str | None, str | None, str | None]]:
        """Roles pinned on the first ids (FORCED); in exact mode without those that plant a counted outcome."""
        if self.exact is None:
            return FORCED
        return [row for row in FORCED if row[0] not in EXACT_USAGE_ROLES and row[1] not in EXACT_ACCURACY_ROLES]

    def exact_roles(self) -> list[tuple[str, str | None, int]]:
        """(usage role, accuracy role of r0, slots) placed by exact counts, in rank order (`_exact_rank`).

        A count is split over the roles that produce its outcome in proportion to their rates; tariff mismatches are
        MATCH slots whose one rated event is priced too high or too low, half each.
        """
        if self.exact is None:
            return []
        rerated = self.rerated_duplicate_share
        resent, content = self.resent_duplicate_rate, self.content_duplicate_rate
        rejected = _apportion(self.exact.rejected, [self.in_suspense_rate, self.suspense_aged_rate])
        duplicates = _apportion(self.exact.duplicates, [resent * (1 - rerated), resent * rerated,
                                                        content * (1 - rerated), content * rerated])
        mismatches = _apportion(self.exact.tariff_mismatches, [1.0, 1.0])
        return [
            (IN_SUSPENSE, None, rejected[0]), (AGED, None, rejected[1]), (LATE, None, self.exact.late),
            (DUP_RESENT, None, duplicates[0]), (DUP_RESENT_RERATED, None, duplicates[1]),
            (DUP_CONTENT, None, duplicates[2]), (DUP_CONTENT_RERATED, None, duplicates[3]),
            (MATCH, A_HIGH, mismatches[0]), (MATCH, A_LOW, mismatches[1]),
        ]

    def exact_permutation(self) -> tuple[int, int, int]:
        """(A, B, n) of the rank `((id - pinned) * A + B) mod n` over the n ids after the pinned ones.

        A is coprime with n, so the map is a bijection of [0, n): ranks [0, exact.total) are exactly that many slots.
        A near n / golden ratio spreads consecutive ranks evenly over the id range (so over the month, and over hot
        and cold numbers alike); B moves the choice with the seed.
        """
        n = self.rows - len(self.pinned_rows())
        a = max(1, round(n * (math.sqrt(5) - 1) / 2))
        while math.gcd(a, n) != 1:
            a += 1
        return a, (self.seed * 2_654_435_761) % n, n

    def usage_roles(self) -> list[tuple[str, float]]:
        """Hash-drawn usage-to-rating roles and their shares of slots (the rest is MATCH by lineage).

        In exact mode the roles of EXACT_USAGE_ROLES are not drawn (their slots are placed by rank instead).
        """
        roles = self._usage_roles_by_rate()
        if self.exact is None:
            return roles
        return [(role, share) for role, share in roles if role not in EXACT_USAGE_ROLES]

    def _usage_roles_by_rate(self) -> list[tuple[str, float]]:
        resent, content, rerated = self.resent_duplicate_rate, self.content_duplicate_rate, self.rerated_duplicate_share
        q_rated = self.quarantined_rated_rate / 3
        return [
            (FUZZY, self.lost_lineage_rate), (RESOLVED, self.resolved_suspense_rate),
            (IN_SUSPENSE, self.in_suspense_rate), (AGED, self.suspense_aged_rate), (LATE, self.late_usage_rate),
            (NOT_RATED, self.not_rated_rate), (AMBIG_CDR, self.ambiguous_rate / 2),
            (AMBIG_RATED, self.ambiguous_rate / 2), (DUP_RESENT, resent * (1 - rerated)),
            (DUP_RESENT_RERATED, resent * rerated), (DUP_CONTENT, content * (1 - rerated)),
            (DUP_CONTENT_RERATED, content * rerated), (DUP_RATED, self.duplicate_rated_rate / 2),
            (DUP_RATED_LOST, self.duplicate_rated_rate / 2), (RWU, self.rated_without_usage_rate),
            (Q_CDR, self.quarantined_cdr_rate), (Q_RE_NULL_ID, q_rated), (Q_RE_NULL_AMOUNT, q_rated),
            (Q_RE_REPEAT, q_rated),
        ]

    def tariffs(self) -> list[TariffVersion]:
        """VOICE-STD in two versions (change on the 15th), SMS-STD, DATA-STD. Every expected amount is >= 0.05."""
        start, change = self.cycle_start, self.tariff_change_at
        return [
            TariffVersion("VOICE-STD", "v1", "VOICE", start, change, Decimal("0.00150000"), 60, Decimal("0.050000")),
            TariffVersion("VOICE-STD", "v2", "VOICE", change, None, Decimal("0.00116667"), 60, Decimal("0.050000")),
            TariffVersion("SMS-STD", "v1", "SMS", start, None, Decimal("0.05000000"), 1, Decimal("0.000000")),
            TariffVersion("DATA-STD", "v1", "DATA", start, None, Decimal("0.00000001"), 1_048_576,
                          Decimal("0.050000")),
        ]


@dataclass(frozen=True)
class Layout:
    """How slots map onto subscriber numbers, accounts and the time grid (derived from params, no data)."""

    hot_calls: int        # slots on hot numbers
    cold_calls: int
    subscribers: int      # distinct subscriber numbers
    hot_numbers: int      # numbers 0 .. hot_numbers-1 are hot
    hot_accounts: int     # accounts 0 .. hot_accounts-1 hold the hot numbers
    hot_slot_s: int       # grid cell of a hot number
    cold_slot_s: int
    recurring_charges: int
    share_ppm: int


def layout(params: GeneratorParams) -> Layout:
    """Size numbers so that every number's calls fit into the month on a grid of at least MIN_SLOT_S seconds."""
    share_ppm = round(params.skew_share * 1_000_000)
    hot_calls = params.rows * share_ppm // 1_000_000
    cold_calls = params.rows - hot_calls
    month_s = int((params.cycle_end - params.cycle_start).total_seconds())
    per_number = month_s // MIN_SLOT_S
    hot_fit = max(3, math.ceil(hot_calls / per_number))
    cold_fit = max(1, math.ceil(cold_calls / per_number))
    # Two numbers per account (as many as the number space holds); the hot ones are skew_numbers_share of them but
    # at least 3, and at least as many as it takes to fit the hot calls into the month (likewise for the cold ones).
    subscribers = max(min(2 * params.account_count, SUBSCRIBER_SPACE), hot_fit + cold_fit + 1)
    hot = max(hot_fit, round(subscribers * params.skew_numbers_share))
    subscribers = max(subscribers, hot + cold_fit + 1)
    if subscribers > SUBSCRIBER_SPACE:
        raise ValueError(f"{subscribers} subscriber numbers needed, more than the {SUBSCRIBER_SPACE} available")
    cold = subscribers - hot
    hot_accounts = min(max(1, math.ceil(hot / 20)), max(1, params.account_count // 10))
    return Layout(
        hot_calls=hot_calls, cold_calls=cold_calls, subscribers=subscribers, hot_numbers=hot,
        hot_accounts=hot_accounts,
        hot_slot_s=month_s // max(1, math.ceil(hot_calls / hot)),
        cold_slot_s=month_s // max(1, math.ceil(cold_calls / cold)),
        recurring_charges=max(3, params.account_count // 100), share_ppm=share_ppm,
    )


# ---------------------------------------------------------------------------------------------------------- helpers


_FIELD_BITS = 21
_DRAWS = ("d_offset", "d_service", "d_role", "d_fmt_c0", "d_fmt_c1", "d_fmt_r", "d_fmt_op_c", "d_fmt_op_r",
          "d_duration", "d_other_party", "d_direction", "d_volume", "d_carrier", "d_received", "d_reject", "d_skew",
          "d_skew_s", "d_skew1", "d_ext", "d_written_off", "d_q_variant", "d_ghost", "d_qdelta", "d_alpha", "d_sender",
          "d_resend", "d_late", "d_rated", "d_rated1")
_DRAW_HASHES = -(-len(_DRAWS) // 3)


def _field(h: Column, index: int) -> Column:
    """Bits [21 * index, 21 * index + 21) of a 64-bit hash: one of three independent draws in [0, 2**21)."""
    return F.shiftright(h, _FIELD_BITS * index).bitwiseAND(F.lit((1 << _FIELD_BITS) - 1))


def _idiv(col: Column, divisor: int) -> Column:
    """Integer division (SQL `div`) of a long by a positive constant."""
    return F.call_function("div", col, F.lit(divisor).cast("long"))


def _scaled(share: float) -> int:
    """A share of [0, 1) as a threshold on a 21-bit draw."""
    return round(share * (1 << _FIELD_BITS))


def _choose(draw: Column, options: Sequence[tuple[str, float]], default: str) -> Column:
    """The first option whose cumulative share exceeds the 21-bit draw, else the default.

    Integer thresholds, not doubles: the comparisons generate far less code (see `_field`).
    """
    expr: Column | None = None
    cumulative = 0.0
    for value, share in options:
        cumulative += share
        cut = _scaled(cumulative)
        expr = F.when(draw < cut, F.lit(value)) if expr is None else expr.when(draw < cut, F.lit(value))
    return F.lit(default) if expr is None else expr.otherwise(F.lit(default))


def _by_rank(rank: Column, cuts: Sequence[tuple[int, str | None]]) -> Column:
    """The value of the first (cut, value) with rank < cut (cuts ascending), else null (also for a null rank)."""
    expr: Column | None = None
    for cut, value in cuts:
        literal = F.lit(value).cast("string")
        expr = F.when(rank < cut, literal) if expr is None else expr.when(rank < cut, literal)
    return F.lit(None).cast("string") if expr is None else expr


def _weighted_int(draw: Column, weights: Sequence[float]) -> Column:
    """Index i with probability weights[i] (resolved to 1/1024) from a 21-bit draw: a lookup in a constant array,
    not a CASE chain, to keep generated code small."""
    total = sum(weights)
    table: list[int] = []
    for index, weight in enumerate(weights):
        table += [index] * round(1024 * weight / total)
    table = (table + [len(weights) - 1] * 1024)[:1024]
    return F.element_at(_const_array(table), (F.shiftright(draw, _FIELD_BITS - 10) + 1).cast("int"))


def _ts(epoch: Column) -> Column:
    return F.timestamp_seconds(epoch)


_MSISDN_WEIGHTS = (0.30, 0.20, 0.15, 0.12, 0.12, 0.08, 0.03)   # format codes 0..6 of `_format_phone`
_OTHER_PARTY_WEIGHTS = (0.35, 0.20, 0.15, 0.15, 0.10, 0.05)


_PHONE_TEMPLATES = ("+1$1$2$3", "($1) $2-$3", "1$1$2$3", "$1.$2.$3", "+1 $1-$2-$3", "tel:+1$1$2$3", "$1.$2.$3")


def _format_phone(national: Column, fmt: Column, ext: Column) -> Column:
    """A US number (10 national digits) in one of the formats real feeds use; format 6 adds a PBX extension.

    One regexp_replace with a per-row template keeps the generated code small (a CASE per format, repeated for
    every phone column, pushes whole-stage codegen past the JVM's JIT limit).
    """
    template = F.element_at(_const_array(_PHONE_TEMPLATES), (fmt + 1).cast("int"))
    formatted = F.regexp_replace(national, r"^(\d{3})(\d{3})(\d{4})$", template)
    return F.when(fmt == 6, F.concat(formatted, F.lit(" x"), ext.cast("string"))).otherwise(formatted)


def _other_format(first: Column, drawn: Column) -> Column:
    """A format code different from `first` (never the extension format when it has to move)."""
    return F.when(drawn == first, F.pmod(first + 1, F.lit(6))).otherwise(drawn)


def _tariff_terms(params: GeneratorParams, service: Column, version: Column) -> dict[str, Column]:
    """Increment, rate and minimum of the standard tariff of `service` at `version` (v1/v2 matter for VOICE)."""
    by_key = {(t.service_type, t.version): t for t in params.tariffs()}
    keys = [(service == "VOICE") & (version == "v1"), service == "VOICE", service == "SMS"]
    order = [by_key[("VOICE", "v1")], by_key[("VOICE", "v2")], by_key[("SMS", "v1")], by_key[("DATA", "v1")]]

    def pick(values: list[Column]) -> Column:
        expr = F.when(keys[0], values[0]).when(keys[1], values[1]).when(keys[2], values[2])
        return expr.otherwise(values[3])

    return {
        "increment": pick([F.lit(t.increment).cast("long") for t in order]),
        "rate": pick([F.lit(t.rate).cast(RATE) for t in order]),
        "minimum": pick([F.lit(t.minimum).cast(MONEY) for t in order]),
    }


def _price(quantity: Column, increment: Column, rate: Column, minimum: Column) -> Column:
    """max(minimum, ceil(q / increment) * increment * rate), half-up to 6 places, in exact decimal arithmetic."""
    units = quantity + F.pmod(-quantity, increment)
    raw = units.cast(DecimalType(12, 0)) * rate      # decimal(12,0) x decimal(18,8) = decimal(31,8): no precision loss
    return F.round(F.greatest(raw, minimum), 6).cast(MONEY)


# ------------------------------------------------------------------------------------------------------------ slots


def _slots(ids: DataFrame, params: GeneratorParams) -> DataFrame:
    """One row per id: where and when the slot's call is, what it is, and the role that decides its records.

    Roles (usage-to-rating): MATCH (cdr + rated event by lineage), FUZZY (lineage lost, found by fuzzy), RESOLVED
    (matched, with a RESOLVED suspense row), IN_SUSPENSE / AGED (not rated, OPEN suspense), LATE (received after
    close), NOT_RATED, AMBIG_CDR (2 cdr at t-2/t+2 + 1 lineage-less rated event at t), AMBIG_RATED (1 cdr + 2
    lineage-less rated events at t-2/t+2), DUP_RESENT[_RERATED] (same record_id re-sent), DUP_CONTENT[_RERATED]
    (same content, new record_id), DUP_RATED[_LOST] (a second rated event, by lineage / lineage lost), RWU (rated
    event without usage), Q_CDR (bad cdr), Q_RE_NULL_ID / Q_RE_NULL_AMOUNT / Q_RE_REPEAT (bad rated events).

    Built in stages: every expression used more than once is a named column first, so Spark's optimizer keeps
    it computed once instead of inlining copies (which would also overflow Java's 64 KB method limit in codegen).
    """
    lay = layout(params)
    seed = params.seed
    start, close = _epoch(params.cycle_start), _epoch(params.cycle_close)
    idc, col = F.col("id"), F.col
    cold_numbers = lay.subscribers - lay.hot_numbers
    cold_accounts = params.account_count - lay.hot_accounts
    number_offset = (seed * 104_729) % SUBSCRIBER_SPACE
    pinned = params.pinned_rows()
    forced = len(pinned)
    forced_index = (F.least(idc, F.lit(forced - 1)) + 1).cast("int")

    def forced_col(position: int) -> Column:
        values = _const_array([row[position] for row in pinned])
        return F.when(idc < forced, F.element_at(values, forced_index))

    # Exact counts: the slots of rank [0, exact.total) in a permutation of the ids after the pinned ones take the
    # counted roles, in `exact_roles` order (a bijection, so each count is met exactly on any partitioning).
    exact = params.exact is not None and params.exact.total > 0
    exact_rank: list[Column] = []
    exact_roles: list[Column] = []
    if exact:
        mult, shift, n = params.exact_permutation()
        exact_rank = [F.when(idc >= forced, F.pmod((idc - forced) * mult + shift, F.lit(n).cast("long")))
                      .alias("exact_rank")]
        roles = params.exact_roles()
        cuts = itertools.accumulate(count for _, _, count in roles)
        placed = [(cut, usage, accuracy) for cut, (usage, accuracy, count) in zip(cuts, roles, strict=True) if count]
        exact_roles = [_by_rank(col("exact_rank"), [(cut, usage) for cut, usage, _ in placed]).alias("exact_usage"),
                       _by_rank(col("exact_rank"), [(cut, accuracy) for cut, _, accuracy in placed])
                       .alias("exact_accuracy")]

    # Where the slot sits: hot or cold number, which number, which cell of that number's grid.
    df = ids.select(
        idc,
        _idiv(idc * lay.share_ppm, 1_000_000).alias("hot_before"),
        _idiv((idc + 1) * lay.share_ppm, 1_000_000).alias("hot_through"),
        *[_hash(seed, f"draw-{n}", idc).alias(f"h{n}") for n in range(_DRAW_HASHES)],
        *exact_rank,
    )
    df = df.select(
        "*",
        (col("hot_through") > col("hot_before")).alias("hot"),
        F.when(col("hot_through") > col("hot_before"), col("hot_before")).otherwise(idc - col("hot_before"))
        .alias("ordinal"),
        # three 21-bit draws per hash: one hash per draw made the generated code too big for the JIT
        *[_field(col(f"h{n // 3}"), n % 3).alias(name) for n, name in enumerate(_DRAWS)],
        *exact_roles,
    ).drop("hot_before", "hot_through", "exact_rank", *[f"h{n}" for n in range(_DRAW_HASHES)])
    df = df.select(
        "*",
        F.when(col("hot"), F.pmod(col("ordinal"), F.lit(lay.hot_numbers).cast("long")))
        .otherwise(F.pmod(col("ordinal"), F.lit(cold_numbers).cast("long")) + lay.hot_numbers).alias("num"),
        F.when(col("hot"), _idiv(col("ordinal"), lay.hot_numbers))
        .otherwise(_idiv(col("ordinal"), cold_numbers)).alias("k"),
        F.when(col("hot"), F.lit(lay.hot_slot_s)).otherwise(F.lit(lay.cold_slot_s)).cast("long").alias("cell"),
    ).drop("ordinal")
    u = {name: col(name).cast("double") * (1.0 / (1 << _FIELD_BITS)) for name in _DRAWS}
    df = df.select(
        "*",
        # offset in [0, cell - 2 * EDGE_S]: the 21-bit draw scaled to the cell (a modulo would not cover long cells)
        (F.lit(start + EDGE_S) + col("k") * col("cell")
         + F.shiftright(col("d_offset") * (col("cell") - (2 * EDGE_S - 1)), _FIELD_BITS)).alias("t"),
        F.when(col("num") == lay.subscribers - 1, F.lit(TEST_ACCOUNT)).otherwise(_code(
            "ACC-",
            F.when(col("hot"), F.pmod(col("num"), F.lit(lay.hot_accounts).cast("long")))
            .otherwise(F.pmod(_hash(seed, "account", col("num")), F.lit(cold_accounts).cast("long"))
                       + lay.hot_accounts), 7)).alias("account_id"),
        F.concat(F.lit("555"), (F.pmod(col("num") * _NUMBER_STRIDE + number_offset,
                                       F.lit(SUBSCRIBER_SPACE).cast("long")) + 2_000_000).cast("string"))
        .alias("nat"),
        F.when(col("d_service") < _scaled(0.60), "VOICE").when(col("d_service") < _scaled(0.85), "SMS")
        .otherwise("DATA").alias("svc"),
        ((col("num") == lay.subscribers - 1) & col("k").between(1, 3)).alias("test_call"),
        _choose(col("d_role"), params.usage_roles(), MATCH).alias("role_drawn"),
    ).drop("hot", "num", "k", "cell", "d_offset", "d_service", "d_role")
    svc = col("svc")
    role_pinned = F.when(idc < forced, forced_col(0))
    op_index = F.pmod(col("d_other_party"), F.lit(100 * len(_OTHER_PARTY_NPAS)).cast("long"))
    alpha = F.element_at(_const_array(_ALPHA_SENDERS),
                         (F.pmod(col("d_sender"), F.lit(len(_ALPHA_SENDERS)).cast("long")) + 1).cast("int"))
    df = df.select(
        "*",
        F.when(svc == "DATA", "MO").when(col("d_direction") < _scaled(0.6), "MO").otherwise("MT").alias("dir"),
        F.when(svc != "DATA", F.concat(
            F.element_at(_const_array(_OTHER_PARTY_NPAS), (_idiv(op_index, 100) + 1).cast("int")),
            F.lit("55501"), F.lpad(F.pmod(op_index, F.lit(100).cast("long")).cast("string"), 2, "0"))).alias("op_nat"),
        F.when(svc == "VOICE", F.least(F.lit(7200).cast("long"),
                                      (F.lit(1) + F.floor(-F.log(F.lit(1.0) - u["d_duration"]) * 150)).cast("long")))
        .otherwise(F.lit(0).cast("long")).alias("dur"),
        F.when(svc == "DATA", F.floor(F.lit(1024.0) * F.pow(F.lit(2.0), u["d_volume"] * 19)).cast("long"))
        .otherwise(F.lit(0).cast("long")).alias("vol"),
        _choose(col("d_carrier"), params.carriers[:-1], params.carriers[-1][0]).alias("carrier"),
        (F.lit(60) + F.pmod(col("d_received"), F.lit(6 * 3600).cast("long"))).alias("recv_delay"),
        (F.lit(600) + F.pmod(col("d_reject"), F.lit(3 * 3600).cast("long"))).alias("reject_delay"),
        F.when(col("d_skew") < _scaled(params.clock_skew_rate), F.pmod(col("d_skew_s"), F.lit(7).cast("long")) - 3)
        .otherwise(F.lit(0).cast("long")).alias("skew"),
        (F.pmod(col("d_skew1"), F.lit(7).cast("long")) - 3).alias("skew1"),
        (F.lit(100) + F.pmod(col("d_ext"), F.lit(900).cast("long"))).alias("ext"),
        _weighted_int(col("d_fmt_c0"), _MSISDN_WEIGHTS).alias("fmt_c0"),
        _weighted_int(col("d_fmt_c1"), _MSISDN_WEIGHTS).alias("fmt_c1_draw"),
        _weighted_int(col("d_fmt_r"), _MSISDN_WEIGHTS).alias("fmt_r_draw"),
        _weighted_int(col("d_fmt_op_c"), _OTHER_PARTY_WEIGHTS).alias("fmt_op_c"),
        _weighted_int(col("d_fmt_op_r"), _OTHER_PARTY_WEIGHTS).alias("fmt_op_r_draw"),
        # a tariff mismatch placed by exact counts rides on forced_a: both are the accuracy role of r0
        (F.coalesce(col("exact_accuracy"), forced_col(1)) if exact else forced_col(1)).alias("forced_a"),
        forced_col(2).alias("forced_b"),
        forced_col(3).alias("forced_x"),
        # pinned for the first ids; then placed by exact counts (before the test account's override, which would
        # take a counted slot away); the test account's calls 1..3 are never rated; else drawn from the rates
        (role_pinned.when(col("exact_usage").isNotNull(), col("exact_usage")) if exact else role_pinned)
        .when(col("test_call"), F.lit(NOT_RATED)).otherwise(col("role_drawn")).alias("role_pinned"),
        (col("d_written_off") < _scaled(0.2)).alias("written_off"),
        F.pmod(col("d_q_variant"), F.lit(7).cast("long")).alias("q_variant"),
        col("d_ghost"),
        col("d_qdelta"),
        (F.lit(3_600) + F.pmod(col("d_resend"), F.lit(11 * 3600).cast("long"))).alias("resend_delay"),
        (F.lit(3_600) + F.pmod(col("d_late"), F.lit(4 * 86_400).cast("long"))).alias("late_delay"),
        (F.lit(120) + F.pmod(col("d_rated"), F.lit(3 * 3600).cast("long"))).alias("rated_delay"),
        (F.lit(3_600) + F.pmod(col("d_rated1"), F.lit(20 * 3600).cast("long"))).alias("rerated_delay"),
        (col("d_alpha") < _scaled(0.10)).alias("alpha_draw"),
        alpha.alias("alpha"),
    ).drop("test_call", "role_drawn", "exact_usage", "exact_accuracy",
           *[d for d in _DRAWS if d not in ("d_offset", "d_service", "d_role", "d_ghost", "d_qdelta")])
    # AGED needs a rejection more than the SLA before close; a call too late in the month is IN_SUSPENSE instead.
    aged_limit = close - params.suspense_sla_days * 86_400 - 3_600
    received = col("t") + col("dur") + col("recv_delay")
    df = df.select(
        "*",
        F.when((svc == "SMS") & (col("dir") == "MT") & col("alpha_draw"), col("alpha")).alias("op_alpha"),
        _other_format(col("fmt_c0"), col("fmt_c1_draw")).alias("fmt_c1"),
        _other_format(col("fmt_c0"), col("fmt_r_draw")).alias("fmt_r"),
        _other_format(col("fmt_op_c"), col("fmt_op_r_draw")).alias("fmt_op_r"),
        received.alias("received"),
        F.when((col("role_pinned") == AGED) & (received + col("reject_delay") >= aged_limit), F.lit(IN_SUSPENSE))
        .otherwise(col("role_pinned")).alias("role"),
    )
    return df.drop("alpha_draw", "alpha", "fmt_c1_draw", "fmt_r_draw", "fmt_op_r_draw", "role_pinned")


def _other_party(fmt: Column) -> Column:
    return F.coalesce(F.col("op_alpha"), _format_phone(F.col("op_nat"), fmt, F.col("ext")))


def _role_in(roles: Sequence[str]) -> Column:
    return F.col("role").isin(*roles)


# -------------------------------------------------------------------------------------------------------------- cdr


def _cdr_labeled(slots: DataFrame, params: GeneratorParams) -> DataFrame:
    """cdr rows (c0: the slot's record; c1: an ambiguous twin or a duplicate copy) with their usage-to-rating label."""
    col, idc, role = F.col, F.col("id"), F.col("role")
    df = _emit(slots, "j", [(0, ~_role_in(NO_CDR)), (1, _role_in(TWO_CDR))])
    df = df.withColumns({
        "j1": col("j") == 1,
        "resent": _role_in((DUP_RESENT, DUP_RESENT_RERATED)),
        "q": role == Q_CDR,
    })
    j1, resent, q, qv = col("j1"), col("resent"), col("q"), col("q_variant")
    df = df.withColumns({
        "rec_received": F.when(j1 & (role != AMBIG_CDR), col("received") + col("resend_delay"))
        .when(role == LATE, F.lit(_epoch(params.cycle_close)) + col("late_delay"))
        .otherwise(col("received")),
        "node": F.when(col("carrier") == params.carriers[0][0], "MSC1").otherwise("MSC2"),
    })
    hour = F.date_format(_ts(col("rec_received")), "yyyyMMdd_HH")
    record_id = (
        F.when(j1 & resent, _code("CDR", idc * 2, 11))
        .when(q & ((qv == 0) | ((qv == 6) & (col("svc") == "SMS"))), F.lit(None).cast("string"))
        .otherwise(_code("CDR", idc * 2 + col("j"), 11))
    )
    start = (
        F.when((role == AMBIG_CDR) & ~j1, col("t") - 2)
        .when(role == AMBIG_CDR, col("t") + 2)
        .otherwise(col("t"))
    )
    source_file = (
        F.when(j1 & resent, F.concat(col("node"), F.lit("_"), hour, F.lit("_RESEND.cdr")))
        .when(j1, F.concat(F.lit("MSC3_"), hour, F.lit(".cdr")))
        .otherwise(F.concat(col("node"), F.lit("_"), hour, F.lit(".cdr")))
    )
    msisdn = (
        F.when(q & (qv == 1), F.lit("N/A"))
        .when(q & (qv == 2), F.lit("abc"))
        .otherwise(_format_phone(col("nat"), F.when(j1 & ~resent, col("fmt_c1")).otherwise(col("fmt_c0")),
                                 col("ext")))
    )
    label = (
        F.when(q, F.lit("QUARANTINED"))
        .when(_role_in((AMBIG_CDR, AMBIG_RATED)), F.lit("AMBIGUOUS_MATCH"))
        .when(j1, F.lit("DUPLICATE_USAGE"))
        .when(role == IN_SUSPENSE, F.lit("IN_SUSPENSE"))
        .when(role == AGED, F.lit("SUSPENSE_AGED"))
        .when(role == LATE, F.lit("LATE_USAGE"))
        .when(role == NOT_RATED, F.lit("USAGE_NOT_RATED"))
        .otherwise(F.lit("MATCHED"))
    )
    return df.select(
        record_id.alias("record_id"),
        source_file.alias("source_file"),
        msisdn.alias("msisdn"),
        col("account_id"),
        F.when(q & (qv == 5), F.lit("MMS")).otherwise(col("svc")).alias("service_type"),
        col("dir").alias("direction"),
        _other_party(F.when(j1 & ~resent, col("fmt_op_r")).otherwise(col("fmt_op_c"))).alias("other_party"),
        F.when(q & (qv == 3), F.lit(None).cast("timestamp")).otherwise(_ts(start)).alias("start_time"),
        F.when(q & (qv == 6) & (col("svc") == "VOICE"), -col("dur")).otherwise(col("dur")).alias("duration_s"),
        F.when(q & (qv == 6) & (col("svc") == "DATA"), -col("vol")).otherwise(col("vol")).alias("volume_bytes"),
        F.when(q & (qv == 4), F.lit(None).cast("string")).otherwise(F.lit(params.cycle_id)).alias("cycle_id"),
        _ts(col("rec_received")).alias("received_at"),
        col("carrier"),
        _row_key("c", idc, col("j")).alias("gen_row_id"),
        label.alias("_u2r"),
    )


def _suspense(slots: DataFrame, params: GeneratorParams) -> DataFrame:
    """Suspense rows: OPEN (recent or aged) for unrated usage, RESOLVED for usage rated later, some WRITTEN_OFF."""
    seed = params.seed
    close = _epoch(params.cycle_close)
    role = F.col("role")
    written_off = (role == NOT_RATED) & F.col("written_off") & (F.col("account_id") != TEST_ACCOUNT)
    rejected = (
        F.when(role == IN_SUSPENSE,
               F.greatest(F.col("received") + 600,
                          F.lit(close - 2 * 86_400) + _below(seed, "recent-reject", 12 * 3600, F.col("id"))))
        .otherwise(F.col("received") + F.col("reject_delay"))
    )
    reasons = _const_array(_SUSPENSE_REASONS)
    emitted = _emit(slots, "j", [(0, role.isin(IN_SUSPENSE, AGED, RESOLVED) | written_off)])
    return emitted.select(
        _code("CDR", F.col("id") * 2, 11).alias("record_id"),
        F.element_at(reasons, (_below(seed, "reason", len(_SUSPENSE_REASONS), F.col("id")) + 1).cast("int"))
        .alias("reason"),
        _ts(rejected).alias("rejected_at"),
        F.when(role == RESOLVED, "RESOLVED").when(role == NOT_RATED, "WRITTEN_OFF").otherwise("OPEN").alias("status"),
    )


# ------------------------------------------------------------------------------------------------------ rated_event


def _rated_labeled(slots: DataFrame, params: GeneratorParams) -> DataFrame:
    """Rated events (r0: the slot's rating; r1: an ambiguous twin, a re-rating or a repeated-id copy), labeled for
    usage-to-rating, rating-accuracy and rating-to-billing, plus what billing needs (`_quarantined`, `_b`)."""
    seed = params.seed
    change = _epoch(params.tariff_change_at)
    mismatch_rate = params.drawn_tariff_mismatch_rate
    col, idc, role, svc = F.col, F.col("id"), F.col("role"), F.col("svc")
    df = _emit(slots, "j", [(0, ~_role_in(NO_RATED)), (1, _role_in(TWO_RATED))])
    # A repeated-id copy is r0 again: it is derived as jj = 0, then only rated_at moves.
    df = df.withColumns({"repeat_copy": (col("j") == 1) & (role == Q_RE_REPEAT)})
    df = df.withColumns({"jj": F.when(col("repeat_copy"), F.lit(0)).otherwise(col("j"))})
    jj = col("jj")
    df = df.withColumns({
        "r_start": F.when(role == AMBIG_RATED, F.when(jj == 0, col("t") - 2).otherwise(col("t") + 2))
        .when(role == AMBIG_CDR, col("t"))
        .when((role == DUP_RATED_LOST) & (jj == 1), col("t") + col("skew1"))
        .otherwise(col("t") + col("skew")),
        "base_quantity": F.when(svc == "VOICE", col("dur")).when(svc == "SMS", F.lit(1)).otherwise(col("vol"))
        .cast("long"),
        "first_rated": col("received") + col("rated_delay"),
        "h_rated": _hash(seed, "rated-draws", idc, jj),
    })
    df = df.withColumns({"d_a": _field(col("h_rated"), 0), "d_b": _field(col("h_rated"), 1),
                         "d_version": _field(col("h_rated"), 2)})
    df = df.withColumns({
        "quantity": F.when((role == FUZZY) & (svc == "VOICE") & (col("d_qdelta") < _scaled(0.3)),
                           col("base_quantity") + 1)
        .when((role == FUZZY) & (svc == "DATA") & (col("d_qdelta") < _scaled(0.5)),
              col("base_quantity") - _idiv(col("base_quantity"), 400))
        .otherwise(col("base_quantity")),
        "_version": F.when(svc != "VOICE", "v1").when(col("r_start") < change, "v1").otherwise("v2"),
        "_a": F.when((jj == 0) & col("forced_a").isNotNull(), col("forced_a"))
        .when(col("d_a") < _scaled(params.tariff_not_found_rate), F.lit(A_NOT_FOUND))
        .when(col("d_a") < _scaled(params.tariff_not_found_rate + mismatch_rate / 2), F.lit(A_HIGH))
        .when(col("d_a") < _scaled(params.tariff_not_found_rate + mismatch_rate), F.lit(A_LOW))
        .when((svc == "VOICE") & (F.abs(col("r_start") - F.lit(change)) < 86_400)
              & (col("d_version") < _scaled(params.drawn_wrong_version_rate)), F.lit(A_WRONG_VERSION))
        .otherwise(F.lit(A_OK)),
        "_u2r": F.when(col("repeat_copy") | ((role == Q_RE_NULL_ID) & (jj == 0)), F.lit("QUARANTINED"))
        .when(role.isin(AMBIG_CDR, AMBIG_RATED), F.lit("AMBIGUOUS_MATCH"))
        .when(role == RWU, F.lit("RATED_WITHOUT_USAGE"))
        .when((col("j") == 1) & role.isin(*RERATED), F.lit("DUPLICATE_RATED_EVENT"))
        .otherwise(F.lit("MATCHED")),
        "_quarantined": col("repeat_copy") | (role.isin(Q_RE_NULL_ID, Q_RE_NULL_AMOUNT) & (jj == 0)),
    })
    # Priced once: with the version valid at start_time, or with the other one where the wrong version is planted.
    df = df.withColumns({
        "_wrong_version": F.when(col("_version") == "v1", "v2").otherwise("v1"),
        "_priced_version": F.when((col("_a") == A_WRONG_VERSION) & (col("_version") == "v1"), "v2")
        .when(col("_a") == A_WRONG_VERSION, "v1").otherwise(col("_version")),
    })
    terms = _tariff_terms(params, svc, col("_priced_version"))
    df = df.withColumns({
        "_priced": _price(col("quantity"), terms["increment"], terms["rate"], terms["minimum"]),
        # duplicate ratings and ratings without usage are billed: that is the overbilling they cause
        "_b": F.when(col("_u2r").isin("DUPLICATE_RATED_EVENT", "RATED_WITHOUT_USAGE"), F.lit(B_OK))
        .when((jj == 0) & col("forced_b").isNotNull(), col("forced_b"))
        .when(col("d_b") < _scaled(params.not_billed_rate), F.lit(B_NOT_BILLED))
        .when(col("d_b") < _scaled(params.not_billed_rate + params.charge_mismatch_rate), F.lit(B_MISMATCH))
        .when(col("d_b") < _scaled(params.not_billed_rate + params.charge_mismatch_rate
                                   + params.duplicate_charge_rate), F.lit(B_DUP))
        .otherwise(F.lit(B_OK)),
    })
    # Cross-account lineage (issue 10 point 19): a share of MATCH slots, rated with intact lineage and billed, is
    # rated (and so billed) to another account than its usage record's, as when a corporate account pays for a
    # subscriber's usage. No outcome changes; what changes is where the records belong: each is bucketed, and
    # aggregated, by its lineage root's account, the cdr's (`_root_account`, the slot's account for every rated
    # event: one with lineage names its slot's cdr, one without keeps its own account, which is the slot's). The
    # pinned MATCH slots with a duplicate charge or an orphan charge are cross-account too, so every month has some.
    h_cross = _hash(seed, "cross-account", idc)
    pinned_cross = F.coalesce((col("forced_b") == B_DUP) | (col("forced_x") == X_ORPHAN), F.lit(False))
    accounts = F.lit(params.account_count).cast("long")
    df = df.withColumns({
        "_root_account": col("account_id"),
        "_cross": (role == MATCH) & (jj == 0) & (col("account_id") != TEST_ACCOUNT) & (col("_b") != B_NOT_BILLED)
        & (pinned_cross | (_field(h_cross, 0) < _scaled(params.cross_account_rate))),
        "_other": F.pmod(F.shiftright(h_cross, _FIELD_BITS), accounts),
    })
    df = df.withColumns({"_other_account": _code("ACC-", col("_other"), 7)})
    df = df.withColumns({
        "account_id": F.when(~col("_cross"), col("account_id"))
        .when(col("_other_account") != col("account_id"), col("_other_account"))
        .otherwise(_code("ACC-", F.pmod(col("_other") + 1, accounts), 7)),
    })
    a, priced = col("_a"), col("_priced")
    amount = (
        F.when(a == A_HIGH, F.round(priced * Decimal("1.25"), 6) + _money("0.02"))
        .when(a == A_LOW, F.round(priced * Decimal("0.5"), 6))
        .when(a == A_NOT_FOUND, F.round(priced * Decimal("0.8"), 6))
        .otherwise(priced)
    ).cast(MONEY)
    c0_id = _code("CDR", idc * 2, 11)
    ghost = _code("CDRX", idc, 10)
    lineage = (
        F.when(jj == 0, F.when(role.isin(AMBIG_CDR, AMBIG_RATED, Q_RE_NULL_ID), F.lit(None).cast("string"))
               .when(role == FUZZY, F.when(col("d_ghost") < _scaled(0.2), ghost))
               .when(role == RWU, F.when(col("d_ghost") < _scaled(0.5), ghost))
               .otherwise(c0_id))
        .when(role == DUP_CONTENT_RERATED, _code("CDR", idc * 2 + 1, 11))
        .when(role.isin(DUP_RESENT_RERATED, DUP_RATED), c0_id)
    )
    resend_received = col("received") + col("resend_delay")
    rated_at = (
        F.when(col("j") == 0, col("first_rated"))
        .otherwise(F.greatest(col("first_rated"), resend_received) + col("rerated_delay"))
    )
    tariff_id = F.when(a != A_NOT_FOUND, F.concat(svc, F.lit("-STD"))) \
        .when(col("d_ghost") < _scaled(0.8), F.concat(svc, F.lit("-PROMO-X")))
    tariff_version = F.when(a == A_WRONG_VERSION, col("_wrong_version")) \
        .when(a != A_NOT_FOUND, col("_version")).when(col("d_ghost") < _scaled(0.8), F.lit("p1"))
    acc_label = (
        F.when(col("_quarantined"), F.lit("QUARANTINED"))
        .when(a == A_NOT_FOUND, F.lit("TARIFF_NOT_FOUND"))
        .when(a != A_OK, F.lit("TARIFF_MISMATCH"))
        .otherwise(F.lit("MATCHED"))
    )
    r2b_label = (
        F.when(col("_quarantined"), F.lit("QUARANTINED"))
        .when(col("_b") == B_NOT_BILLED, F.lit("RATED_NOT_BILLED"))
        .when(col("_b") == B_MISMATCH, F.lit("CHARGE_AMOUNT_MISMATCH"))
        .otherwise(F.lit("MATCHED"))
    )
    return df.select(
        F.when((role == Q_RE_NULL_ID) & (jj == 0), F.lit(None).cast("string"))
        .otherwise(_code("RE", idc * 2 + jj, 12)).alias("rated_event_id"),
        lineage.alias("source_record_id"),
        _format_phone(col("nat"), col("fmt_r"), col("ext")).alias("msisdn"),
        col("account_id"),
        col("_root_account"),
        svc.alias("service_type"),
        col("dir").alias("direction"),
        _other_party(col("fmt_op_r")).alias("other_party"),
        _ts(col("r_start")).alias("start_time"),
        F.lit(params.cycle_id).alias("cycle_id"),
        col("quantity"),
        tariff_id.alias("tariff_id"),
        tariff_version.alias("tariff_version"),
        F.when((role == Q_RE_NULL_AMOUNT) & (jj == 0), F.lit(None).cast(MONEY)).otherwise(amount).alias("amount"),
        F.lit(params.currency).alias("currency"),
        _ts(rated_at).alias("rated_at"),
        _row_key("r", idc, col("j")).alias("gen_row_id"),
        col("_u2r"),
        acc_label.alias("_acc"),
        r2b_label.alias("_r2b"),
        col("_quarantined"),
        col("_b"),
        # what billing copies from the slot
        idc.alias("_id"), col("j").alias("_j"), col("nat").alias("_nat"), col("forced_x").alias("_forced_x"),
    )


# ------------------------------------------------------------------------------------------------------ bill_charge


def _charge_row(params: GeneratorParams, *, charge_id: Column, lineage: Column, product_id: Column,
                charge_type: Column, code: Column, quantity: Column, amount: Column, billed_at: Column,
                gen_row_id: Column, label: Column, agg_service: Column, quarantined: Column,
                root_account: Column) -> list[Column]:
    """The bill_charge columns (and the labels riding along) from the pieces that differ between charge kinds.

    `root_account` is the account of the charge's lineage root (the usage record behind its rated event), else its
    own: the account the ground truth files it under (`_ground_truth`)."""
    return [
        charge_id.alias("charge_id"),
        lineage.alias("source_rated_event_id"),
        product_id.alias("product_id"),
        F.col("account_id"),
        _format_phone(F.col("_nat"), F.lit(0), F.lit(0)).alias("msisdn"),
        F.lit(params.cycle_id).alias("cycle_id"),
        F.concat(F.lit(f"INV-{params.cycle_id.replace('-', '')}-"), F.col("account_id")).alias("invoice_id"),
        charge_type.alias("charge_type"),
        code.alias("billing_product_code"),
        quantity.cast("long").alias("quantity"),
        amount.cast(MONEY).alias("amount"),
        F.lit(params.currency).alias("currency"),
        _ts(billed_at).alias("billed_at"),
        gen_row_id.alias("gen_row_id"),
        label.alias("_r2b"),
        agg_service.alias("_agg_service"),
        quarantined.alias("_quarantined"),
        root_account.alias("_root_account"),
    ]


def _charges_labeled(rated: DataFrame, slots: DataFrame, params: GeneratorParams) -> DataFrame:
    """USAGE charges per billable rated event (main, duplicate, quarantined extra), orphan charges and a few
    RECURRING charges, each USAGE charge labeled for rating-to-billing."""
    seed = params.seed
    lay = layout(params)
    bill_run = _epoch(params.cycle_close) + 6 * 3600
    col = F.col
    billable, b = ~col("_quarantined"), col("_b")
    idc, j = col("_id"), col("_j")
    wants_q = F.when(col("_forced_x").isNotNull(), col("_forced_x") == X_QCHARGE) \
        .otherwise(_unit(seed, "q-charge", idc) < params.quarantined_charge_rate)
    df = _emit(rated, "kind", [
        (CH_MAIN, billable & (b != B_NOT_BILLED)),
        (CH_DUP, billable & (b == B_DUP)),
        (CH_QUARANTINED, (j == 0) & billable & (b == B_OK) & wants_q),
    ])
    # quarantined extra charge: 0 null charge_id, 1 null amount, 2 a repeated charge_id (a copy billed later)
    df = df.withColumns({
        "q_variant": F.when(idc < len(params.pinned_rows()), F.pmod(idc, F.lit(3).cast("long")))
        .otherwise(_below(seed, "q-charge-variant", 3, idc)),
        "main_billed": F.lit(bill_run) + _below(seed, "billed", 6 * 3600, idc, j),
    })
    kind, q_variant, amount = col("kind"), col("q_variant"), col("amount")
    charge_id = (
        F.when((kind == CH_QUARANTINED) & (q_variant == 0), F.lit(None).cast("string"))
        .when((kind == CH_QUARANTINED) & (q_variant == 2), _code("CH", (idc * 2 + j) * 4 + CH_MAIN, 13))
        .otherwise(_code("CH", (idc * 2 + j) * 4 + kind, 13))
    )
    mismatched = (
        F.when((amount >= _money("0.10")) & (_unit(seed, "mismatch-down", idc, j) < 0.5),
               F.round(amount * Decimal("0.5"), 6))
        .otherwise(F.round(amount * Decimal("1.10"), 6) + _money("0.05"))
    )
    charge_amount = (
        F.when((kind == CH_QUARANTINED) & (q_variant == 1), F.lit(None).cast(MONEY))
        .when((kind == CH_MAIN) & (b == B_MISMATCH), mismatched)
        .otherwise(amount)
    )
    billed_at = col("main_billed") + F.when(kind == CH_DUP, 86_400).when(kind == CH_QUARANTINED, 2 * 86_400) \
        .otherwise(0)
    label = (
        F.when(kind == CH_QUARANTINED, F.lit("QUARANTINED"))
        .when(kind == CH_DUP, F.lit("DUPLICATE_CHARGE"))
        .when(b == B_MISMATCH, F.lit("CHARGE_AMOUNT_MISMATCH"))
        .otherwise(F.lit("MATCHED"))
    )
    from_rated = df.select(*_charge_row(
        params, charge_id=charge_id, lineage=col("rated_event_id"), product_id=F.lit(None).cast("string"),
        charge_type=F.lit("USAGE"), code=F.concat(F.lit("USG-"), col("service_type")), quantity=col("quantity"),
        amount=charge_amount, billed_at=billed_at, gen_row_id=_row_key("b", idc, j, kind),
        label=label, agg_service=col("service_type"), quarantined=kind == CH_QUARANTINED,
        root_account=col("_root_account"),
    ))
    # Per slot: an orphan USAGE charge (no lineage, or lineage to a rated event that does not exist) and the
    # RECURRING charges, which are out of scope of the usage controls (no label).
    sid = col("id")
    orphan = F.when(col("forced_x").isNotNull(), col("forced_x") == X_ORPHAN) \
        .otherwise(_unit(seed, "orphan", sid) < params.orphan_charge_rate)
    extras = _emit(slots.withColumns({"_nat": col("nat")}), "kind",
                   [(CH_ORPHAN, orphan), (CH_RECURRING, sid < lay.recurring_charges)])
    recurring = kind == CH_RECURRING
    orphan_amount = (F.lit(5) + _below(seed, "orphan-amount", 500, sid)).cast(DecimalType(12, 0)) \
        * F.lit(Decimal("0.01")).cast(MONEY)
    slot_quantity = F.when(col("svc") == "VOICE", col("dur")).when(col("svc") == "SMS", F.lit(1)) \
        .otherwise(col("vol"))
    from_slots = extras.select(*_charge_row(
        params,
        charge_id=_code("CH", (sid * 2 + 1) * 4 + kind, 13),
        lineage=F.when(~recurring & (_unit(seed, "orphan-ghost", sid) < 0.4), _code("REX", sid, 11)),
        product_id=F.when(recurring, _code("PRD-", sid, 9)),
        charge_type=F.when(recurring, F.lit("RECURRING")).otherwise(F.lit("USAGE")),
        code=F.when(recurring, F.lit("PLAN-BUSINESS-50")).otherwise(F.concat(F.lit("USG-"), col("svc"))),
        quantity=F.when(recurring, F.lit(1)).otherwise(slot_quantity),
        amount=F.when(recurring, _money("50.000000")).otherwise(orphan_amount),
        billed_at=F.lit(bill_run) + _below(seed, "billed-extra", 6 * 3600, sid),
        gen_row_id=_row_key("b", sid, "s", kind),
        label=F.when(~recurring, F.lit("CHARGE_WITHOUT_RATED_EVENT")),
        agg_service=F.lit(None).cast("string"),
        quarantined=F.lit(False),
        # no lineage, or lineage to a rated event that does not exist: the charge is its own root
        root_account=col("account_id"),
    ))
    return from_rated.unionByName(from_slots)


# ----------------------------------------------------------------------------------------------------- ground truth


def _ground_truth(cdr: DataFrame, rated: DataFrame, charges: DataFrame) -> DataFrame:
    """One row per record and control side it takes part in, plus one per (account, service_type) aggregate group.

    `account_id` is the account of the record's lineage root, as the engine buckets records (transforms/
    engine/prepare.py, with_bucket_accounts): a cdr's own, a rated event's cdr's, a charge's rated event's root's; without lineage (or
    with lineage to a record that does not exist) the record's own. For a cross-account pair (`_rated_labeled`) that
    is the cdr's account, not the one on the rated event and charge. The usage-aggregate groups are per lineage
    root's account too. They are not split by currency: the month has one currency (params.currency) in every table,
    so each (account, service_type) group is one (account, service_type, currency) group of the engine's.
    """
    gt_cols = GROUND_TRUTH_SCHEMA.fieldNames()
    from_cdr = cdr.select(
        "gen_row_id", F.lit("cdr").alias("table_name"), F.lit("usage-to-rating").alias("control_point_id"),
        F.lit("LEFT").alias("side"), F.col("_u2r").alias("expected_outcome"), "account_id", "service_type",
    )
    sides = F.array(
        F.struct(F.lit("usage-to-rating").alias("cp"), F.lit("RIGHT").alias("side"), F.col("_u2r").alias("o")),
        F.struct(F.lit("rating-accuracy").alias("cp"), F.lit("LEFT").alias("side"), F.col("_acc").alias("o")),
        F.struct(F.lit("rating-to-billing").alias("cp"), F.lit("LEFT").alias("side"), F.col("_r2b").alias("o")),
    )
    root = F.col("_root_account").alias("account_id")
    from_rated = rated.select("gen_row_id", root, "service_type", F.explode(sides).alias("s")).select(
        "gen_row_id", F.lit("rated_event").alias("table_name"), F.col("s.cp").alias("control_point_id"),
        F.col("s.side").alias("side"), F.col("s.o").alias("expected_outcome"), "account_id", "service_type",
    )
    usage_charges = charges.where(F.col("charge_type") == "USAGE")
    from_charges = usage_charges.select(
        "gen_row_id", F.lit("bill_charge").alias("table_name"), F.lit("rating-to-billing").alias("control_point_id"),
        F.lit("RIGHT").alias("side"), F.col("_r2b").alias("expected_outcome"), root,
        F.col("_agg_service").alias("service_type"),
    )
    # usage-aggregate: totals of non-quarantined rows per (lineage root's account, service_type of the charge's
    # rated event).
    zero = F.lit(0).cast(MONEY)
    totals = rated.where(~F.col("_quarantined")).select(
        root, "service_type", F.col("amount").alias("rated"), zero.alias("billed"),
    ).unionByName(usage_charges.where(~F.col("_quarantined")).select(
        root, F.col("_agg_service").alias("service_type"), zero.alias("rated"), F.col("amount").alias("billed"),
    )).groupBy("account_id", "service_type").agg(F.sum("rated").alias("rated"), F.sum("billed").alias("billed"))
    tolerance = F.greatest(F.lit(Decimal("0.01")).cast(MONEY), F.abs(F.col("rated")) * Decimal("0.001"))
    aggregate = totals.select(
        F.lit(None).cast("string").alias("gen_row_id"), F.lit(None).cast("string").alias("table_name"),
        F.lit("usage-aggregate").alias("control_point_id"), F.lit(None).cast("string").alias("side"),
        F.when(F.abs(F.col("rated") - F.col("billed")) > tolerance, "AGGREGATE_VARIANCE").otherwise("MATCHED")
        .alias("expected_outcome"),
        "account_id", "service_type",
    )
    out = from_cdr.unionByName(from_rated).unionByName(from_charges).unionByName(aggregate)
    return out.select(*[F.col(c).cast("string") for c in gt_cols])


# ----------------------------------------------------------------------------------------------------------- public


CDR_COLUMNS = ("record_id", "source_file", "msisdn", "account_id", "service_type", "direction", "other_party",
               "start_time", "duration_s", "volume_bytes", "cycle_id", "received_at", "carrier", "gen_row_id")
RATED_COLUMNS = ("rated_event_id", "source_record_id", "msisdn", "account_id", "service_type", "direction",
                 "other_party", "start_time", "cycle_id", "quantity", "tariff_id", "tariff_version", "amount",
                 "currency", "rated_at", "gen_row_id")
CHARGE_COLUMNS = ("charge_id", "source_rated_event_id", "product_id", "account_id", "msisdn", "cycle_id",
                  "invoice_id", "charge_type", "billing_product_code", "quantity", "amount", "currency", "billed_at",
                  "gen_row_id")


def tariff_frame(ids: DataFrame, params: GeneratorParams) -> DataFrame:
    """The tariff table (a handful of rows) on the session of `ids`."""
    rows = [(t.tariff_id, t.version, t.service_type, t.valid_from, t.valid_to, t.rate, t.increment, t.minimum,
             params.currency) for t in params.tariffs()]
    return ids.sparkSession.createDataFrame(rows, TARIFF_SCHEMA)


def generate_month(ids: DataFrame, params: GeneratorParams) -> dict[str, DataFrame]:
    """The synthetic month: DataFrames for cdr, rated_event, bill_charge, suspense, tariff and ground_truth.

    `ids` must be `spark.range(params.rows)` (one long column `id`, values 0 .. rows-1): each id is one slot of the
    time grid, so other ids would break the layout. Nothing is computed here; every frame is a lazy plan derived
    from `ids`, and the same params always give the same rows. The plans are wide: at scale, run them with
    `spark.sql.codegen.hugeMethodLimit=8000` (as `jobs.generate` does), else whole-stage codegen builds methods
    too big for the JVM's JIT and generation runs several times slower.

    Example::

        month = generate_month(spark.range(10_000), GeneratorParams(rows=10_000, seed=7))
        month["ground_truth"].groupBy("control_point_id", "side", "expected_outcome").count().show()
    """
    if ids.columns != ["id"] or ids.schema["id"].dataType != LongType():
        raise ValueError(f"ids must be spark.range(rows) with one bigint column 'id', got {ids.schema.simpleString()}")
    slots = _slots(ids, params)
    cdr = _cdr_labeled(slots, params)
    rated = _rated_labeled(slots, params)
    charges = _charges_labeled(rated, slots, params)
    return {
        "cdr": cdr.select(*CDR_COLUMNS),
        "rated_event": rated.select(*RATED_COLUMNS),
        "bill_charge": charges.select(*CHARGE_COLUMNS),
        "suspense": _suspense(slots, params),
        "tariff": tariff_frame(ids, params),
        "ground_truth": _ground_truth(cdr, rated, charges),
    }
