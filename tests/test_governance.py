"""Run governance: reproduction as of an old run, vacuumed inputs, a driver killed mid-write, idempotent retry."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from delta.tables import DeltaTable
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from factories import RULESET, frame, run_cli, session_conf, write_inputs
from jobs.config import load_conf
from jobs.inputs import InputError
from jobs.outputs import content_hash, read_output
from jobs.rerun import rerun
from jobs.ruleset import load_ruleset
from jobs.run import RunHooks, RunResult, execute
from scenario import CDR, CHARGES, RATED, SUSPENSE
from transforms.checkpoints import CUT_DIR_KEY, SMALL_RUN_BYTES_KEY
from transforms.engine.prepare import IN_SIDE

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def committed(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, RunResult]]:
    root = tmp_path_factory.mktemp("governance")
    conf_path = write_inputs(spark, root, {"cdr": CDR, "rated_event": RATED, "bill_charge": CHARGES,
                                            "suspense": SUSPENSE})
    result = execute(spark, load_conf(conf_path), load_ruleset(RULESET), "2026-06")
    yield conf_path, result


def _bucket_of(spark: SparkSession, full: RunResult, account_id: str) -> int:
    """The account bucket the full run gave an account's records."""
    row = read_output(spark, full.output_refs["record_outcome"]).where(
        (F.col("run_id") == full.run_id) & (F.col("account_id") == account_id)).first()
    assert row is not None, account_id
    return int(row["account_bucket"])


def _hashes(spark: SparkSession, result: RunResult, run_id: str) -> dict[str, str]:
    return {t: content_hash(read_output(spark, result.output_refs[t]).where(F.col("run_id") == run_id),
                            exclude=("run_id", "recorded_at")) for t in ("record_outcome", "ra_case", "aggregate_variance")}


@pytest.mark.slow
def test_rerun_reproduces_an_old_run_after_inputs_changed(spark: SparkSession, committed: Any) -> None:
    conf_path, original = committed
    cdr_path = load_conf(conf_path).tables["cdr"]
    # Late usage lands after the run: today's cdr table is not the one the run saw.
    frame(spark, "cdr", [{"record_id": "C-LATE-1", "msisdn": "+15552009999"}]).write.format("delta").mode(
        "append").save(cdr_path)
    # As an operator types it: the verdict, then the reproduction's own report (a committed run like any other).
    code, out, err = run_cli(spark, "rerun", "--conf", str(conf_path), "--run-id", original.run_id, "--report")
    assert code == 0, err
    verdict = re.search(rf"run {re.escape(original.run_id)} reproduced exactly by (\S+)", out)
    assert verdict is not None, out
    again = verdict.group(1)
    report = re.search(r"^report: (.+)$", out, re.M)
    assert report is not None and Path(report.group(1)).name == f"report-{again}.html", out
    assert again in Path(report.group(1)).read_text(encoding="utf-8")
    seen = (read_output(spark, original.output_refs["control_run"]).where(F.col("run_id") == again)
            .select("input_versions", "reproduction_of").first())
    assert seen is not None and seen["reproduction_of"] == original.run_id
    assert seen["input_versions"]["cdr"] == original.input_versions["cdr"]
    assert _hashes(spark, original, again) == _hashes(spark, original, original.run_id)


@pytest.mark.slow
def test_rerun_names_a_vacuumed_input_version(spark: SparkSession, tmp_path: Path) -> None:
    conf_path = write_inputs(spark, tmp_path, {"cdr": CDR[:3], "rated_event": RATED[:2]})
    result = execute(spark, load_conf(conf_path), load_ruleset(RULESET), "2026-06")
    cdr_path = load_conf(conf_path).tables["cdr"]
    frame(spark, "cdr", CDR[3:5]).write.format("delta").mode("overwrite").save(cdr_path)
    spark.conf.set("spark.databricks.delta.retentionDurationCheck.enabled", "false")
    try:
        DeltaTable.forPath(spark, cdr_path).vacuum(0)
    finally:
        spark.conf.set("spark.databricks.delta.retentionDurationCheck.enabled", "true")
    with pytest.raises(InputError, match=r"table cdr: version 0 of .* is gone: its data file .* was removed"):
        rerun(spark, load_conf(conf_path), result.run_id)


# A driver built as `telco-ra run` builds it, whose run kills it (SIGKILL, as a node failure would) at the point a
# RunHooks names: every output is written, control_run is not. The kill is injected by the caller: product code
# holds no fault point.
KILLED_DRIVER = """\
import os
import signal
import sys
from pathlib import Path

from jobs.config import load_conf
from jobs.ruleset import load_ruleset
from jobs.run import RunHooks, execute
from jobs.session import build_session

conf_path, ruleset_path, cycle, run_id, marker = sys.argv[1:]
conf = load_conf(conf_path)
ruleset = load_ruleset(ruleset_path)
conf.cycle(cycle)
spark = build_session(conf.spark)


def killed(reached: str) -> None:
    Path(marker).write_text(reached)
    os.kill(os.getpid(), signal.SIGKILL)


execute(spark, conf, ruleset, cycle, run_id, hooks=RunHooks(before_control_run=killed))
sys.exit("the run committed: the kill point was never reached")
"""


@pytest.mark.slow
def test_driver_killed_before_commit_leaves_no_run_and_rerun_is_clean(spark: SparkSession, tmp_path: Path,
                                                                      committed: Any) -> None:
    _, clean = committed
    conf_path = write_inputs(spark, tmp_path, {"cdr": CDR, "rated_event": RATED, "bill_charge": CHARGES,
                                                "suspense": SUSPENSE})
    marker = tmp_path / "killed.marker"
    driver = tmp_path / "killed_driver.py"
    driver.write_text(KILLED_DRIVER)
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable,
           "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)}
    cmd = [sys.executable, str(driver), str(conf_path), RULESET, "2026-06", "killed-run", str(marker)]
    log = tmp_path / "killed_driver.log"
    with log.open("w") as output:
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=output, stderr=subprocess.STDOUT,
                                start_new_session=True)
        try:
            proc.wait(timeout=600)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)      # what the killed driver leaves of its session: its JVM
            proc.wait()
    tail = log.read_text()[-3000:]
    assert marker.exists(), f"the driver ended (exit {proc.returncode}) before the kill point:\n{tail}"
    assert marker.read_text() == "killed-run"
    assert proc.returncode == -signal.SIGKILL, (proc.returncode, tail)
    out = tmp_path / "output"
    half = read_output(spark, str(out / "record_outcome")).where(F.col("run_id") == "killed-run").count()
    assert half > 0, "the crash was meant to hit after the outcome write"
    assert not DeltaTable.isDeltaTable(spark, str(out / "control_run")), "a killed run must not be visible"

    again = execute(spark, load_conf(conf_path), load_ruleset(RULESET), "2026-06", "killed-run")
    assert again.committed
    assert _hashes(spark, again, "killed-run") == _hashes(spark, clean, clean.run_id)
    # retrying the committed run adds nothing
    before = {t: DeltaTable.forPath(spark, r).history(1).collect()[0]["version"] for t, r in again.output_refs.items()}
    assert execute(spark, load_conf(conf_path), load_ruleset(RULESET), "2026-06", "killed-run").already_committed
    after = {t: DeltaTable.forPath(spark, r).history(1).collect()[0]["version"] for t, r in again.output_refs.items()}
    assert before == after


@pytest.mark.slow
def test_partition_rerun_touches_only_its_slice(spark: SparkSession, committed: Any) -> None:
    conf_path, full = committed
    conf, ruleset = load_conf(conf_path), load_ruleset(RULESET)
    bucket = _bucket_of(spark, full, "ACC-2")
    before = _hashes(spark, full, full.run_id)
    part = execute(spark, conf, ruleset, "2026-06", bucket=bucket)
    assert part.run_id.startswith(f"usage_to_bill-2026-06-b{bucket}-")
    assert _hashes(spark, full, full.run_id) == before                      # the other run's rows are untouched
    ro = read_output(spark, full.output_refs["record_outcome"])
    slice_rows = ro.where(F.col("run_id") == part.run_id)
    assert slice_rows.select("account_bucket").distinct().collect() == [(bucket,)]
    same_slice = ro.where((F.col("run_id") == full.run_id) & (F.col("account_bucket") == bucket))
    assert content_hash(slice_rows, exclude=("run_id",)) == content_hash(same_slice, exclude=("run_id",))
    scope = read_output(spark, full.output_refs["control_run"]).where(F.col("run_id") == part.run_id).select(
        "partition_scope").distinct().collect()
    assert scope == [(f"account_bucket={bucket}",)]
    from jobs.outputs import current

    view = current(spark, conf.output, "record_outcome", "2026-06", ruleset.account_buckets)
    assert view.where(F.col("account_bucket") == bucket).select("run_id").distinct().collect() == [(part.run_id,)]
    assert view.count() == ro.where(F.col("run_id") == full.run_id).count()


@pytest.mark.slow
def test_a_partition_run_frees_its_bucket_rows_once_its_sides_are_prepared(spark: SparkSession, committed: Any,
                                                                         tmp_path: Path) -> None:
    """A partition run keeps each input's bucket rows (one read of the month each) only while prepare cuts its
    sides from them: at write time none of its cuts holds candidate rows (they carry the `_in_side` column, which a
    prepared side drops). Parquet cuts, so what a run holds is a folder to look into."""
    conf_path, full = committed
    bucket = _bucket_of(spark, full, "ACC-2")
    cuts = tmp_path / "cuts"
    held: dict[str, list[str]] = {}

    def look(_run_id: str) -> None:         # the run deletes its cut folder when it ends: look before the write
        folders = sorted(cuts.glob("*/cut-*"))
        held["all"] = [f.name for f in folders]
        held["bucket rows"] = [f.name for f in folders if IN_SIDE in spark.read.parquet(str(f)).columns]

    with session_conf(spark, {CUT_DIR_KEY: str(cuts), SMALL_RUN_BYTES_KEY: "0"}):
        part = execute(spark, load_conf(conf_path), load_ruleset(RULESET), "2026-06", "bucket-rows-freed",
                       bucket=bucket, hooks=RunHooks(before_write=look))
    assert part.committed
    assert held["all"], "the run held no cut at write time: the probe sees nothing"
    assert held["bucket rows"] == [], f"cuts of bucket rows still held at write time: {held}"


@pytest.mark.slow
def test_concurrent_partition_reruns(spark: SparkSession, tmp_path: Path) -> None:
    import threading

    from jobs.outputs import ConcurrentRunError

    conf_path = write_inputs(spark, tmp_path, {"cdr": CDR, "rated_event": RATED, "bill_charge": CHARGES,
                                                "suspense": SUSPENSE})
    conf, ruleset = load_conf(conf_path), load_ruleset(RULESET)
    execute(spark, conf, ruleset, "2026-06")          # the output tables exist before the reruns race

    def race(buckets: list[int]) -> list[Any]:
        barrier = threading.Barrier(len(buckets), timeout=600)
        results: list[Any] = [None] * len(buckets)
        hooks = RunHooks(before_write=lambda _run_id: barrier.wait())

        def one(i: int, b: int) -> None:
            try:
                results[i] = execute(spark, conf, ruleset, "2026-06", bucket=b, hooks=hooks)
            except ConcurrentRunError as exc:
                results[i] = exc

        threads = [threading.Thread(target=one, args=(i, b)) for i, b in enumerate(buckets)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return results

    disjoint = race([3, 7])
    assert all(isinstance(r, RunResult) and r.committed for r in disjoint), disjoint
    same = race([5, 5])
    winners = [r for r in same if isinstance(r, RunResult)]
    losers = [r for r in same if isinstance(r, ConcurrentRunError)]
    assert len(winners) == 1 and len(losers) == 1, same
    assert "is not committed (no control_run row): run it again" in str(losers[0])
    ro = read_output(spark, winners[0].output_refs["record_outcome"]).where(F.col("run_id") == winners[0].run_id)
    assert ro.count() == ro.select("control_point_id", "side", "record_key").distinct().count()
    runs = read_output(spark, winners[0].output_refs["control_run"]).where(F.col("run_id") == winners[0].run_id)
    assert runs.count() == 4
