"""What a ruleset declares, as typed frozen objects: the engine's only input besides the data.

A control point is data: its sides (which input, which columns must be there, which checks quarantine a row), its
lookups (tables joined as evidence), its match stages (duplicates, exact keys, fuzzy), its decision (ordered named
rules in Spark SQL, first match wins), its let-expressions and its outcome policies. Nothing in the engine names a
control point, an outcome, an input table or a column of one: it reads them from here. `jobs/ruleset.py` builds
these objects from YAML and validates them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal

SIDES = ("LEFT", "RIGHT")


@dataclass(frozen=True)
class Tolerance:
    """Beyond tolerance when |difference| > max(abs, rel * |reference|)."""

    abs: Decimal
    rel: Decimal


@dataclass(frozen=True)
class CyclePlacement:
    """How an input's rows are placed in a cycle: by a cycle column (and, for a null one, an event-time column), or
    by an activity interval [from, to] overlapping the cycle (to null: still active)."""

    by: str | None = None
    time: str | None = None
    active: tuple[str, str] | None = None


@dataclass(frozen=True)
class Lineage:
    """The column of an input naming its parent record's id (a rated event's source_record_id): the record is laid
    out in its parent's account bucket (transforms/engine/prepare.py, with_bucket_accounts)."""

    column: str
    parent: str


@dataclass(frozen=True)
class Input:
    """A table the ruleset reads, under the ruleset's name for it."""

    name: str
    table: str                               # the conf's `tables` key
    schema: str | None                       # contract schema it follows (transforms.schema.INPUT_SCHEMAS)
    system: str                              # source system named in case evidence
    id: str | None = None
    order: tuple[str, ...] = ()
    arrival: str | None = None
    cycle: CyclePlacement | None = None
    filter: str | None = None
    phones: tuple[str, ...] = ()
    columns: Mapping[str, str] = field(default_factory=dict)
    amount: str | None = None
    currency: str | None = None
    lineage: Lineage | None = None
    # Rows built by the run from the conf's layouts of this kind (their rate decks) instead of a Delta table.
    layouts: str | None = None
    # Only rows whose column's value is among another input's column values (column -> (input, its column)).
    within: Mapping[str, tuple[str, str]] = field(default_factory=dict)


@dataclass(frozen=True)
class Check:
    """A quarantine check of an input: `fails` (SQL) true means the row cannot take part, for `reason`. It runs on a
    side only where the side requires the column it `needs` (if any)."""

    reason: str
    fails: str
    needs: str | None = None


@dataclass(frozen=True)
class SideSpec:
    input: str
    required: tuple[str, ...] = ()
    unique_id: bool = False                  # a repeated id is QUARANTINED (else the duplicates stage sees it)
    describe: Mapping[str, str] = field(default_factory=dict)   # account_id, msisdn, service_type, start_time -> SQL


@dataclass(frozen=True)
class Lookup:
    """A table joined as evidence: `key` (equality, aggregated per key), `price` (a tariff by id valid at a time),
    `price_list` (the tariff of a class, e.g. service_type, valid at a time; `map` names one per class), `prefix`
    (the row whose `prefix` column is the longest leading part of the digits of the record's `by` column, among
    rows equal on `on`; '' is every number's prefix: a default). A lookup serves one `side`: its `on` names that
    side's columns, or a let of it (the lookup is then joined once that let is computed: a key found through
    another lookup, e.g. a device by the ICCID a CRM lookup gave)."""

    name: str
    input: str
    kind: str
    on: Mapping[str, str] = field(default_factory=dict)          # record column -> lookup column (key)
    where: str | None = None
    columns: Mapping[str, str] = field(default_factory=dict)     # name -> aggregate SQL (key)
    by: str | None = None                                        # record column (price, price_list)
    at: str | None = None
    quantity: str | None = None
    map: Mapping[str, str] = field(default_factory=dict)
    prefix: str | None = None                                    # lookup column of digit prefixes (prefix)
    side: str = "LEFT"                                           # the side whose records it is joined to


@dataclass(frozen=True)
class Duplicates:
    """Copies among the left side's records: same id (or same `key`, where declared: rows with a null in it share no
    key), or same `content`; the first in `order` is the original."""

    content: tuple[str, ...]
    order: tuple[str, ...]
    key: tuple[str, ...] = ()


@dataclass(frozen=True)
class ExactStage:
    """Right records whose `right` columns equal a left record's `left` columns; several right records of one left
    record are ranked by `order` (rank 1 is its match, later ones are further). `unique`: only left keys carried by
    exactly one left record link. `right_where`: the right rows this stage may link."""

    left: tuple[str, ...]
    right: tuple[str, ...]
    order: tuple[str, ...]
    unique: bool = False
    right_where: str | None = None


@dataclass(frozen=True)
class FuzzyStage:
    """Pairs on equal `keys` within `window_s` of `time` (and, where declared, within a quantity tolerance by class).
    `alt_time`: a left column holding another instant the record may have happened at (a local time of a fall-back
    hour): it is a candidate too, and a match of a record that has one carries its confidence times
    `alt_confidence`."""

    keys: tuple[str, ...]
    time: str
    window_s: int
    quantity_left: str | None
    quantity_right: str | None
    tolerance_by: str | None
    tolerances: Mapping[str, Tolerance]
    further: bool = False
    alt_time: str | None = None
    alt_confidence: Decimal = Decimal(1)


@dataclass(frozen=True)
class Stages:
    duplicates: Duplicates | None = None
    exact: tuple[ExactStage, ...] = ()
    fuzzy: FuzzyStage | None = None


@dataclass(frozen=True)
class Rule:
    name: str
    when: str
    outcome: str
    reason: str | None = None
    reason_code: str | None = None
    exposure: str | None = None
    priced_by: str | None = None


@dataclass(frozen=True)
class OutcomePolicy:
    case: bool
    exposure_class: str | None = None   # one of EXPOSURE_CLASSES, or BY_SIGN
    owner: str | None = None
    severity: str | None = None
    correction: str | None = None
    one_case_per_pair: bool = False     # an outcome both rows of a pair get: one case, raised from the LEFT row


@dataclass(frozen=True)
class Exemption:
    id: str
    column: str
    values: tuple[str, ...]
    outcomes: tuple[str, ...]


@dataclass(frozen=True)
class Report:
    """An extra output a control point feeds (transforms/engine/reports.py knows the kinds)."""

    kind: str
    input: str
    outcomes: tuple[str, ...]
    owner_of: str


@dataclass(frozen=True)
class Alert:
    """Per value of `scope` (SQL over a side's records), the share of its records whose outcome row satisfies
    `counts` (SQL over outcome rows: outcome, reason_code, ...); above `threshold`, one run_alert row, printed."""

    metric: str
    side: str
    scope: str
    counts: str
    threshold: Decimal
    message: str | None = None
    threshold_param: str | None = None      # the `params` name the threshold was given as (`above: ${name}`)


@dataclass(frozen=True)
class Figure:
    """A figure the run summary shows beside the outcome counts: per group of a side's outcome rows (`by`: outcome-
    row columns of a small vocabulary), the rows and, where the figure names one, the sum of `sum` (an outcome-row
    amount column; a figure of a side whose amounts say nothing, e.g. the line audit's inventory side, counts only),
    computed from the outcome rows the run writes and kept in control_run (`figures`). Totals of a figure grouped by
    `currency` are per currency: amounts in two currencies are never added."""

    name: str
    side: str
    by: tuple[str, ...]
    sum: str | None = None


@dataclass(frozen=True)
class AggregateSide:
    """What one side of an aggregate sums: the outcome rows of a record control point's side (`of`, `side`), or the
    rows of an input in the cycle (`input`, those `where` holds: SQL with `${}` parameters)."""

    of: str | None = None                    # a record control point
    side: str | None = None                  # its LEFT or RIGHT
    input: str | None = None                 # an input
    where: str | None = None


@dataclass(frozen=True)
class ControlPoint:
    id: str
    kind: str                                # record | aggregate
    sides: Mapping[str, SideSpec] = field(default_factory=dict)          # LEFT/RIGHT -> side
    lookups: Mapping[str, Lookup] = field(default_factory=dict)
    stages: Stages = field(default_factory=Stages)
    let: Mapping[str, Mapping[str, str]] = field(default_factory=dict)   # side -> name -> SQL
    decide: Mapping[str, tuple[Rule, ...]] = field(default_factory=dict)  # side -> rules
    record: Mapping[str, Mapping[str, str]] = field(default_factory=dict)  # side -> output column -> SQL
    tolerance: Tolerance | None = None
    outcomes: Mapping[str, OutcomePolicy] = field(default_factory=dict)
    exemptions: tuple[Exemption, ...] = ()
    reports: tuple[Report, ...] = ()
    alerts: tuple[Alert, ...] = ()
    figures: tuple[Figure, ...] = ()
    # aggregate control points
    aggregate_sides: Mapping[str, AggregateSide] = field(default_factory=dict)
    group_by: Mapping[str, Mapping[str, str]] = field(default_factory=dict)   # output column -> side -> column
    measure: str = "amount"                  # amount: sum of the rows' amounts; count: `count` SQL per side
    count: Mapping[str, str] = field(default_factory=dict)    # side -> aggregate SQL (measure count)
    price: str | None = None                 # SQL: the value of one unit of the count difference (measure count)
    beyond: str | None = None                # outcome of a group beyond tolerance
    within: str | None = None                # outcome of a group within it

    @property
    def left(self) -> SideSpec:
        return self.sides["LEFT"]

    @property
    def right(self) -> SideSpec | None:
        return self.sides.get("RIGHT")
