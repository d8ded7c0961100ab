"""A small demo lakehouse for the notebooks and the browser test: the demo's usage month, two runs of its cycle.

Laid out as `telco-ra demo` lays it out (`<root>/demo.yaml`, `<root>/input/<table>`, `<root>/output`), so a notebook
opens it exactly as it opens `make demo`'s, but with only what they read: the usage-to-bill month of the synthetic
generator (no inventory, carrier or provisioning months: they are minutes more and no notebook reads them), run
twice. Between the runs the month goes on: the rating team withdraws the duplicate rated events run 1 found, and a
rating rollback loses two rated events that had matched. Run 2 then clears the duplicates' cases and finds the two
usages unrated: a comparison has cases new and cleared.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import yaml
from delta.tables import DeltaTable
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from jobs.config import load_conf
from jobs.generate import generate
from jobs.outputs import read_output, table_ref
from jobs.ruleset import load_ruleset
from jobs.run import execute
from jobs.synthetic.usage_to_bill import GeneratorParams

REPO = Path(__file__).resolve().parent.parent
RULESET = REPO / "rulesets" / "usage_to_bill.yaml"
LOST = 2            # matched rated events the rollback loses


@dataclass(frozen=True)
class SmallLakehouse:
    root: Path
    conf_path: Path
    output: str
    cycle_id: str
    runs: tuple[str, str]           # (first, second) run ids of the cycle
    seconds: float                  # how long building it took
    timings: str                    # and each step


def build(spark: SparkSession, root: Path, rows: int = 2_000, seed: int = 42) -> SmallLakehouse:
    """Generate the month under `root`, run usage_to_bill, change rated_event, run it again."""
    started = time.monotonic()
    steps: list[str] = []

    def step(name: str, since: float) -> float:
        now = time.monotonic()
        steps.append(f"{name} {now - since:.0f} s")
        return now

    base = yaml.safe_load((REPO / "conf" / "local.yaml").read_text())
    base["tables"] = {name: str(root / "input" / name) for name in base["tables"]}
    base["output"] = str(root / "output")
    conf_path = root / "demo.yaml"
    conf_path.write_text(yaml.safe_dump(base, sort_keys=False))
    params = GeneratorParams(rows=rows, seed=seed)
    generate(spark, str(root / "input"), params)
    at = step("generate", started)
    conf, ruleset = load_conf(conf_path), load_ruleset(RULESET)
    first = execute(spark, conf, ruleset, params.cycle_id)
    at = step("run 1", at)
    _withdraw(spark, conf.output, first.run_id, conf.tables["rated_event"])
    second = execute(spark, conf, ruleset, params.cycle_id)
    step("run 2", at)
    assert first.committed and second.committed and first.run_id != second.run_id
    return SmallLakehouse(root, conf_path, conf.output, params.cycle_id, (first.run_id, second.run_id),
                          time.monotonic() - started, ", ".join(steps))


def _withdraw(spark: SparkSession, output: str, run_id: str, rated_event: str) -> None:
    """Delete from rated_event the duplicates run `run_id` found and the first LOST rated events it matched
    (by record id; a few rows, collected)."""
    right = (read_output(spark, table_ref(output, "record_outcome"))
             .where((F.col("run_id") == run_id) & (F.col("control_point_id") == "usage-to-rating")
                    & (F.col("side") == "RIGHT")))
    duplicates = [r["record_id"] for r in right.where(F.col("outcome") == "DUPLICATE_RATED_EVENT")
                  .select("record_id").distinct().collect()]
    matched = [r["record_id"] for r in right.where(F.col("outcome") == "MATCHED").select("record_id")
               .orderBy("record_id").limit(LOST).collect()]
    assert duplicates and len(matched) == LOST, (duplicates, matched)
    DeltaTable.forPath(spark, rated_event).delete(F.col("rated_event_id").isin(*duplicates, *matched))
