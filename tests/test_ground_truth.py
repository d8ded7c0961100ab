"""End to end against the synthetic generator: every outcome scored with precision and recall 1.0.

The generator labels each record as it plants the fault (it does not re-implement matching), so this compares two
independent readings of docs/usage_to_bill.md: the generator's and the engine's.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from factories import CYCLE_BOUNDS, RULESET
from jobs.config import load_conf, load_ruleset
from jobs.generate import generate
from jobs.run import execute
from jobs.score import render, score
from jobs.utc import instant_micros
from transforms.schema import OUTCOMES
from transforms.synthetic import GeneratorParams
from transforms.usage_to_rating import PRICED_OUTCOMES


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


@pytest.mark.slow
def test_never_rated_usage_is_priced_on_a_tariff_table_with_its_own_ids(spark: SparkSession, tmp_path: Path) -> None:
    """Issue 10 point 1, on a month made another way: the generator's month with every tariff id renamed (in tariff
    and rated_event alike). The shipped ruleset names no tariff id, so every never-rated record must carry the
    exposure its service type's tariff valid at its start_time gives, computed here independently in Python."""
    paths = generate(spark, str(tmp_path / "input"), GeneratorParams(rows=3_000, seed=11))
    renamed = F.concat(F.lit("OP/"), F.upper(F.substring(F.sha2(F.col("tariff_id"), 256), 1, 6)))
    for table in ("tariff", "rated_event"):
        out = str(tmp_path / "renamed" / table)
        (spark.read.format("delta").load(paths[table]).withColumn("tariff_id", renamed)
         .write.format("delta").save(out))
        paths[table] = out
    conf_path = tmp_path / "conf.yaml"
    conf_path.write_text(yaml.safe_dump({
        "tables": {k: paths[k] for k in ("cdr", "rated_event", "bill_charge", "suspense", "tariff")},
        "output": str(tmp_path / "output"), "cycles": {"2026-06": CYCLE_BOUNDS}}))
    result = execute(spark, load_conf(conf_path), load_ruleset(RULESET), "2026-06")

    tariffs = [r.asDict() for r in spark.read.format("delta").load(paths["tariff"]).select(
        "tariff_id", "tariff_version", "service_type", instant_micros("valid_from").alias("since"),
        instant_micros("valid_to").alias("until"), "rate_per_unit", "rounding_increment", "minimum_charge").collect()]
    assert not [t for t in tariffs if not t["tariff_id"].startswith("OP/")]
    cdr = spark.read.format("delta").load(paths["cdr"]).select(
        "record_id", "duration_s", "volume_bytes", instant_micros("start_time").alias("t")).dropDuplicates(["record_id"])
    never_rated = (spark.read.format("delta").load(result.output_refs["record_outcome"])
                   .where((F.col("run_id") == result.run_id) & (F.col("control_point_id") == "usage-to-rating")
                          & (F.col("side") == "LEFT") & F.col("outcome").isin(*PRICED_OUTCOMES))
                   .join(cdr, "record_id").select("record_id", "outcome", "service_type", "t", "duration_s",
                                                  "volume_bytes", "exposure_amount").collect())
    assert {r["outcome"] for r in never_rated} == set(PRICED_OUTCOMES)

    def price(row: Any) -> Decimal:
        valid = sorted((t for t in tariffs if t["service_type"] == row["service_type"] and t["since"] <= row["t"]
                        and (t["until"] is None or row["t"] < t["until"])), key=lambda t: t["tariff_id"])
        assert valid, f"no tariff valid for {row['record_id']}"
        tariff = valid[0]
        quantity = {"VOICE": row["duration_s"], "SMS": 1, "DATA": row["volume_bytes"]}[row["service_type"]]
        increment = max(int(tariff["rounding_increment"]), 1)
        units = -(-quantity // increment) * increment
        priced = (units * tariff["rate_per_unit"]).quantize(Decimal("0.000001"), rounding=ROUND_HALF_UP)
        return max(tariff["minimum_charge"] or Decimal(0), priced)

    wrong = [(r["record_id"], r["outcome"], r["exposure_amount"], price(r)) for r in never_rated
             if r["exposure_amount"] != price(r) or r["exposure_amount"] <= 0]
    assert not wrong, wrong[:10]
