"""rating-to-billing on the engine: both sides' outcomes, and how each side is moved to be linked.

The control point is the shipped ruleset's (rulesets/usage_to_bill.yaml), run by `jobs.run.record_outcomes` on
sides prepared as a run prepares them (scope, identity, phones, lineage bucket), without the other control points.
"""

from __future__ import annotations

import functools
import re
from collections import Counter
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml
from chispa import assert_df_equality
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from factories import CYCLE, CYCLE_BOUNDS, DEFAULTS, RULESET, TARIFFS, frame, session_conf
from jobs.config import Cycle
from jobs.inputs import conform
from jobs.ruleset import load_ruleset
from jobs.run import record_outcomes, scope_inputs
from jobs.spark_status import last_execution_id, sql_executions
from transforms.checkpoints import materialize
from transforms.engine.prepare import IN_SIDE, prepare
from transforms.engine.sql import params_of

CP = "rating-to-billing"
T = datetime(2026, 6, 20, tzinfo=UTC)
H = timedelta(hours=1)
# R3 has no amount: QUARANTINED ("null amount").
RATED = [{"rated_event_id": "R1", "amount": Decimal("10.000000")},
         {"rated_event_id": "R2", "amount": Decimal("5.000000")}, {"rated_event_id": "R3", "amount": None}]
# C1 and C3 both charge R1 (C3 billed later: a duplicate); C2 has no lineage; C4 names an unknown event; C5 charges
# R3, which is quarantined; C6 is itself quarantined (no amount).
CHARGES = [
    {"charge_id": "C1", "source_rated_event_id": "R1", "amount": Decimal("10.000000"), "billed_at": T + 1 * H},
    {"charge_id": "C2", "source_rated_event_id": None, "amount": Decimal("2.000000"), "billed_at": T + 2 * H},
    {"charge_id": "C3", "source_rated_event_id": "R1", "amount": Decimal("10.000000"), "billed_at": T + 3 * H},
    {"charge_id": "C4", "source_rated_event_id": "NOPE", "amount": Decimal("3.000000"), "billed_at": T + 4 * H},
    {"charge_id": "C5", "source_rated_event_id": "R3", "amount": Decimal("2.000000"), "billed_at": T + 5 * H},
    {"charge_id": "C6", "source_rated_event_id": "R2", "amount": None, "billed_at": T + 6 * H},
]


def _cycle() -> Cycle:
    def instant(text: str) -> datetime:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))

    return Cycle(CYCLE, instant(CYCLE_BOUNDS["start"]), instant(CYCLE_BOUNDS["end"]), instant(CYCLE_BOUNDS["close"]))


def _prepared(spark: SparkSession, rows: Mapping[str, list[dict[str, Any]]], ruleset_path: str = RULESET
              ) -> Callable[[], DataFrame]:
    """A builder of rating-to-billing's outcome rows (before the run's tags) over these input rows, as `jobs.run`
    computes them: each input read (conformed to its contract schema), scoped to the cycle and prepared once (here,
    already), then matched and decided when the builder is called."""
    ruleset = load_ruleset(ruleset_path)
    cycle = _cycle()
    raw = {t: conform(t, frame(spark, t, rows.get(t, TARIFFS if t == "tariff" else []))) for t in DEFAULTS}
    scoped = scope_inputs(raw, cycle, ruleset)
    prepared = {name: materialize(prepare(df.where(F.col(IN_SIDE)).drop(IN_SIDE), ruleset.inputs[name], "US"))
                for name, df in scoped.items()}
    cp = ruleset.control_points[CP]
    params = params_of(ruleset.params, cp.tolerance, cycle)
    return functools.partial(record_outcomes, ruleset, cp, prepared, raw, params, {})


def test_outcomes_of_both_sides(spark: SparkSession) -> None:
    out = materialize(_prepared(spark, {"rated_event": RATED, "bill_charge": CHARGES})())
    expected = spark.createDataFrame([
        ("LEFT", "R1", "MATCHED", "EXACT", "C1"), ("LEFT", "R2", "RATED_NOT_BILLED", "NONE", None),
        ("LEFT", "R3", "QUARANTINED", "NONE", None),
        ("RIGHT", "C1", "MATCHED", "EXACT", "R1"), ("RIGHT", "C2", "CHARGE_WITHOUT_RATED_EVENT", "NONE", None),
        ("RIGHT", "C3", "DUPLICATE_CHARGE", "EXACT", "R1"), ("RIGHT", "C4", "CHARGE_WITHOUT_RATED_EVENT", "NONE", None),
        ("RIGHT", "C5", "CHARGE_WITHOUT_RATED_EVENT", "NONE", None), ("RIGHT", "C6", "QUARANTINED", "NONE", None),
    ], "side string, record_id string, outcome string, match_stage string, counterpart_id string")
    assert_df_equality(out.select(*expected.columns), expected, ignore_row_order=True, ignore_nullable=True)
    rows = {r["record_id"]: r for r in out.collect()}
    assert rows["C3"]["exposure"] == Decimal("-10.000000") and rows["R2"]["exposure"] == Decimal("5.000000")
    assert rows["C3"]["reason"] == "further charge for rated event R1"
    assert rows["C5"]["reason"] == "lineage to R3 not found among valid rated events"
    assert rows["C6"]["reason"] == "null amount" and rows["R3"]["reason"] == "null amount"


# Which side's records an exchange moves: it carries that side's own id column (a key-only exchange, e.g. a lookup of
# counterparts or the lineage index, carries renamed keys and a few figures).
SIDE_IDS = {"charge_id": "bill_charge", "rated_event_id": "rated_event"}


def _shuffles(plan: str) -> list[tuple[str, str | None, int]]:
    """(partitioning, the side whose records it moves or None, how many columns) of every shuffle exchange a
    formatted plan ran: its final adaptive plan where there is one (a reused exchange moves nothing again)."""
    tree, _, details = plan.partition("\n\n\n")
    if "== Final Plan ==" in tree:
        tree = tree.split("== Final Plan ==", 1)[1].split("== Initial Plan ==", 1)[0]
    out = []
    for node in re.findall(r"[-\s]Exchange \((\d+)\)", tree):
        block = re.search(rf"\n\({node}\) Exchange\nInput \[(\d+)\]: \[([^\n]*)\]\nArguments: (\w+)(\(([^,]+),)?",
                          "\n" + details)
        assert block, (node, plan)
        columns = {re.sub(r"#\d+L?$", "", c.strip()) for c in block.group(2).split(",")}
        key = re.sub(r"#\d+L?", "", block.group(5)) if block.group(5) else block.group(3)
        side = next((table for column, table in SIDE_IDS.items() if column in columns), None)
        out.append((key, side, int(block.group(1))))
    return out


# What moves each side's records. The rated events go to their id once, where they meet what they find (the first
# charge of each lineage key, the further count). The charges go to their lineage key twice on the same partitioning:
# once with their own rows, linked to the lineage index and ranked (match._exact_in_place), and once narrow (the
# key, the rank's order, id, key, hash and the figures a rated event reads of its charge) for the rated events'
# findings. Spark prunes each use's columns below its exchange, so the two uses cannot share one; the narrow one is
# what replaced a cut that wrote and read every charge once more (at 10M a version that moved the charges twice wide
# and the rated events twice shuffled 7.9 GB).
RECORD_SHUFFLES = Counter({
    ("bill_charge", "source_rated_event_id"): 2,
    ("rated_event", "rated_event_id"): 1,
})
# The narrow move of the charges: source_rated_event_id, billed_at, charge_id, _id, _key, _hash, amount, currency.
NARROW_CHARGES = 8


def test_each_side_is_moved_on_its_link_key(spark: SparkSession) -> None:
    """How often each side's records cross the network in rating-to-billing, and on which key (RECORD_SHUFFLES): the
    rated events once, the charges once wide and once narrow; the rated events' side of the link is a narrow key
    index, every other exchange moves keys and a few figures only, and nothing is gathered into one partition."""
    with session_conf(spark, {"spark.sql.autoBroadcastJoinThreshold": "-1"}):     # the shape of a big month
        build = _prepared(spark, {"rated_event": RATED, "bill_charge": CHARGES})
        before = last_execution_id(spark)
        build().write.format("noop").mode("overwrite").save()     # every column, as the run keeps them
        executions = sql_executions(spark, before, with_metrics=False)
    shuffles = [s for e in executions for s in _shuffles(e.plan)]
    moved = Counter((side, key) for key, side, _ in shuffles if side is not None)
    assert moved == RECORD_SHUFFLES, (sorted(moved.items()), [(e.description, _shuffles(e.plan))
                                                                   for e in executions])
    # the lineage index: (rated_event_id, its original, whether it is its own original, the figures a charge reads
    # of it as its counterpart, whether its original is shared by a resend under another id: match._exact_on_key
    # ranks those by original), no payload
    assert ("_xk0", None, 5) in shuffles
    charges = sorted(width for key, side, width in shuffles if side == "bill_charge")
    assert charges[0] <= NARROW_CHARGES, shuffles
    others = [(key, width) for key, side, width in shuffles if side is None]
    assert all(width <= 5 for _, width in others), others
    assert all(key != "SinglePartition" for key, side, _ in shuffles if side is not None), shuffles


def _mixed_month() -> dict[str, list[dict[str, Any]]]:
    """Rated events and charges in every relation a charge can have to its rated event, made by rule rather than by
    the generator: one to five charges per event, billed at equal or null instants (the charge id then orders them),
    amounts off by a cent or a currency, lineage lost or to an unknown or repeated (quarantined) id."""
    rated, charges = [], []
    for i in range(40):
        rid = f"E{i:03d}"
        rated.append({"rated_event_id": rid, "amount": Decimal(f"{i % 7}.{i:02d}0000"),
                      "currency": "USD" if i % 9 else "EUR"})
        for j in range(i % 5 if i % 6 else 0):                       # every sixth event is never billed
            billed = None if (i + j) % 4 == 0 else T + ((i * j) % 3) * H    # ties and nulls among one event's charges
            amount = Decimal(f"{i % 7}.{i:02d}0000") + (Decimal("0.010000") if (i + j) % 5 == 0 else 0)
            charges.append({"charge_id": f"C{(i * 37 + j * 11) % 1000:03d}-{j}", "source_rated_event_id": rid,
                            "amount": amount, "currency": "USD", "billed_at": billed})
    rated += [{"rated_event_id": "E001", "amount": Decimal("1.000000")},       # a repeated id: both quarantined
              {"rated_event_id": "EQ", "amount": None}]                       # quarantined: no amount
    charges += [{"charge_id": "X1", "source_rated_event_id": None, "amount": Decimal("1.000000"), "billed_at": T},
                {"charge_id": "X2", "source_rated_event_id": "UNKNOWN", "amount": Decimal("1.000000"), "billed_at": T},
                {"charge_id": "X3", "source_rated_event_id": "EQ", "amount": Decimal("1.000000"), "billed_at": T},
                {"charge_id": "X4", "source_rated_event_id": "E002", "amount": None, "billed_at": T},
                {"charge_id": "X5", "source_rated_event_id": "E001", "amount": Decimal("1.000000"), "billed_at": T}]
    return {"rated_event": rated, "bill_charge": charges}


def test_one_pass_exact_stage_decides_as_the_staged_one(spark: SparkSession, tmp_path: Path) -> None:
    """rating-to-billing's single exact stage from the rated event's unique id is matched in one pass (match.
    _exact_in_place: no cut, the rated events meet their findings on their id). A copy of the ruleset whose stage
    says `right_where: "true"` (every charge) takes the staged path (match._exact, cut, joined back by record key):
    both give the same outcome rows, every column, on a month of every relation a charge can have to its event."""
    data = yaml.safe_load(Path(RULESET).read_text())
    stage = data["control_points"][CP]["stages"]["exact"][0]
    data["control_points"][CP]["stages"]["exact"][0] = {**stage, "right_where": "true"}
    staged_path = tmp_path / "usage_to_bill.yaml"
    staged_path.write_text(yaml.safe_dump(data, sort_keys=False))
    month = _mixed_month()
    one_pass = materialize(_prepared(spark, month)())
    staged = materialize(_prepared(spark, month, str(staged_path))())
    counts = {r["outcome"]: r["count"] for r in one_pass.groupBy("outcome").count().collect()}
    assert set(counts) == {"MATCHED", "RATED_NOT_BILLED", "CHARGE_AMOUNT_MISMATCH", "DUPLICATE_CHARGE",
                           "CHARGE_WITHOUT_RATED_EVENT", "QUARANTINED"}, counts
    assert_df_equality(one_pass, staged, ignore_row_order=True, ignore_nullable=True)
