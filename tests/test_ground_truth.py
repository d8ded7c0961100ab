"""End to end against the synthetic generator: every outcome scored with precision and recall 1.0.

The generator labels each record as it plants the fault (it does not re-implement matching), so this compares two
independent readings of docs/usage_to_bill.md: the generator's and the engine's.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from pyspark.sql import SparkSession

from factories import CYCLE_BOUNDS, RULESET
from jobs.config import load_conf, load_ruleset
from jobs.generate import generate
from jobs.run import execute
from jobs.score import render, score
from transforms.schema import OUTCOMES
from transforms.synthetic import GeneratorParams


@pytest.mark.slow
def test_generated_month_scores_precision_and_recall_one(spark: SparkSession, tmp_path: Path) -> None:
    paths = generate(spark, str(tmp_path / "input"), GeneratorParams(rows=6_000, seed=7))
    conf_path = tmp_path / "conf.yaml"
    conf_path.write_text(yaml.safe_dump({
        "tables": {k: paths[k] for k in ("cdr", "rated_event", "bill_charge", "suspense", "tariff")},
        "output": str(tmp_path / "output"), "cycles": {"2026-06": CYCLE_BOUNDS}}))
    conf, ruleset = load_conf(conf_path), load_ruleset(RULESET)
    result = execute(spark, conf, ruleset, "2026-06")
    scores = score(spark, conf, ruleset, result.run_id, spark.read.format("delta").load(paths["ground_truth"]))
    table = render(scores)
    imperfect = [s for s in scores if s.precision != 1.0 or s.recall != 1.0]
    assert not imperfect, table
    seen = {(s.control_point_id, s.side, s.outcome) for s in scores if s.expected > 0}
    vocabulary = {(cp, side, o) for cp, sides in OUTCOMES.items() for side, outs in sides.items() for o in outs}
    assert vocabulary <= seen, f"outcomes the generator did not plant: {sorted(vocabulary - seen)}\n{table}"
