"""Month-end close: refusal on a broken conservation law, the close record, and late data after close."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from factories import RULESET, frame, write_inputs
from jobs.close import CloseRefused, close_cycle, close_record
from jobs.config import load_conf
from jobs.outputs import content_hash, read_output, table_ref
from jobs.ruleset import load_ruleset
from jobs.run import RunHooks, execute
from jobs.summary import render
from scenario import CDR, CHARGES, RATED, SUSPENSE

CLOSE = datetime(2026, 7, 3, tzinfo=UTC)


@pytest.mark.slow
def test_close_refuses_when_conservation_fails_then_closes(spark: SparkSession, tmp_path: Path) -> None:
    conf_path = write_inputs(spark, tmp_path, {"cdr": CDR, "rated_event": RATED, "bill_charge": CHARGES,
                                                "suspense": SUSPENSE})
    conf, ruleset = load_conf(conf_path), load_ruleset(RULESET)

    def lose_a_row(outcomes: DataFrame) -> DataFrame:       # a bug that drops one record's outcome
        lost = F.coalesce(F.col("record_id") == "C-N", F.lit(False)) & (F.col("control_point_id") == "usage-to-rating")
        return outcomes.where(~lost)

    with pytest.raises(CloseRefused, match=r"usage-to-rating LEFT: 27 outcome rows \+ 0 out of scope for 28 cdr rows"):
        close_cycle(spark, conf, ruleset, "2026-06", hooks=RunHooks(outcome_fault=lose_a_row))
    assert close_record(spark, conf.output, "2026-06") is None
    assert not Path(table_ref(conf.output, "control_run")).exists()    # nothing committed either

    closed = close_cycle(spark, conf, ruleset, "2026-06")
    record = close_record(spark, conf.output, "2026-06")
    assert record is not None and record.count() == 4
    u2r = record.where(F.col("control_point_id") == "usage-to-rating").first()
    assert u2r is not None and u2r["close_run_id"] == closed.run.run_id
    classes = {e["exposure_class"]: e for e in u2r["exposure"]}
    assert classes["OVERBILLING"]["overbilling"] < 0 and classes["OVERBILLING"]["underbilling"] == 0
    assert classes["UNDERBILLING"]["underbilling"] > 0
    ro = read_output(spark, table_ref(conf.output, "record_outcome")).where(F.col("run_id") == closed.run.run_id)
    assert u2r["output_hashes"]["record_outcome"] == content_hash(ro, exclude=("run_id", "recorded_at"))
    with pytest.raises(CloseRefused, match="already closed"):
        close_cycle(spark, conf, ruleset, "2026-06")

    # Late usage for the closed cycle: picked up by the next run as a post-close adjustment.
    before = content_hash(record)
    frame(spark, "cdr", [{"record_id": "C-LATE", "msisdn": "+15552008888", "account_id": "ACC-LATE",
                          "received_at": CLOSE + timedelta(days=4)}]).write.format("delta").mode("append").save(
        conf.tables["cdr"])
    later = execute(spark, conf, ruleset, "2026-06")
    runs = read_output(spark, table_ref(conf.output, "control_run")).where(F.col("run_id") == later.run_id)
    assert {(r["post_close"], r["close_run_id"]) for r in runs.collect()} == {(True, closed.run.run_id)}
    late = read_output(spark, table_ref(conf.output, "record_outcome")).where(
        (F.col("run_id") == later.run_id) & (F.col("record_id") == "C-LATE")).first()
    assert late is not None and late["outcome"] == "LATE_USAGE"
    assert content_hash(close_record(spark, conf.output, "2026-06")) == before     # closed figures unchanged
    summary = render(spark, later)
    assert "POST-CLOSE ADJUSTMENT" in summary
    adjustment = summary.split("the changes since close are below")[1].split("\n\n")[0]
    assert "usage-to-rating    LEFT      LATE_USAGE" in adjustment and "+1 records" in adjustment
