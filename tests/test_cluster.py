"""A real cluster: spark-submit to a standalone master with two workers gives exactly the local-mode outputs.

Both runs read the same generated month (one set of Delta tables) under the same explicit run id and write to
their own output folders; every output table must hold the same rows in both, compared as the sorted JSON of each
row, except for the columns listed in EXCLUDED, each of which is legitimately different between two runs.
The cluster run is submitted the way README's "Running on a cluster" says: project wheel through --py-files, Delta
jars through --jars, cluster/driver.py as the application, master taken from spark-submit (conf names none).
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from cluster_support import (
    QUICK_JVM,
    StandaloneCluster,
    Submission,
    build_code_zip,
    cluster_python,
    submit_command,
    tail,
)
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from factories import CYCLE, CYCLE_BOUNDS, RULESET
from jobs import jars
from jobs.config import load_conf
from jobs.generate import generate
from jobs.ruleset import load_ruleset
from jobs.run import execute
from jobs.synthetic.usage_to_bill import GeneratorParams

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

ROWS, SEED = 2_000, 11
RUN_ID = "cluster-equivalence-1"
APP_NAME = "telco-ra-cluster-test"
INPUTS = ("cdr", "rated_event", "bill_charge", "suspense", "tariff")
OUTPUTS = ("record_outcome", "ra_case", "aggregate_variance", "correction_request", "suspense_aging", "control_run")

# Columns that may differ between two correct runs over the same inputs, and why. Every other column (opened_at,
# due_at, requested_at, first_opened_at, watermark, ... are derived from the inputs' watermark and the cycle close,
# not the clock) must be equal.
EXCLUDED: dict[str, tuple[str, ...]] = {
    # recorded_at: when this run appended the case-history row, datetime.now() in jobs/run.py.
    "ra_case": ("recorded_at",),
    # started_at / completed_at: wall-clock start and end of the run (jobs/run.py). conf_fingerprint hashes the
    # conf's tables, output and cycles (jobs/config.py): the two runs write to different output folders by design,
    # so it differs; the test checks each run recorded the fingerprint of its own conf instead. ignore_as_of: the
    # instant the run applied the ignore list's entries at, its start (jobs/run.py; a rerun reads it back).
    "control_run": ("started_at", "completed_at", "conf_fingerprint", "ignore_as_of"),
}


def canonical(spark: SparkSession, path: str, table: str) -> list[str]:
    """Every row of one output table as JSON of all its columns (sorted by name, nulls kept), rows sorted."""
    df = spark.read.format("delta").load(path).where(F.col("run_id") == RUN_ID)
    cols = sorted(c for c in df.columns if c not in EXCLUDED.get(table, ()))
    rendered = df.select(F.to_json(F.struct(*cols), {"ignoreNullFields": "false"}).alias("row"))
    return sorted(r["row"] for r in rendered.collect())


def differences(spark: SparkSession, left_out: Path, right_out: Path) -> dict[str, str]:
    """Per output table that differs: row counts and a few rows found on one side only."""
    found = {}
    for table in OUTPUTS:
        left = canonical(spark, str(left_out / table), table)
        right = canonical(spark, str(right_out / table), table)
        if left != right:
            only_l, only_r = sorted(set(left) - set(right)), sorted(set(right) - set(left))
            found[table] = (f"{len(left)} rows vs {len(right)}; {len(only_l)} only in {left_out.name}, "
                            f"{len(only_r)} only in {right_out.name}; e.g. {only_l[:2]} / {only_r[:2]}")
    return found


def write_conf(path: Path, inputs: dict[str, str], output: Path, spark_block: dict[str, object]) -> Path:
    path.write_text(yaml.safe_dump({"tables": {k: inputs[k] for k in INPUTS}, "output": str(output),
                                    "cycles": {CYCLE: CYCLE_BOUNDS}, "spark": spark_block}), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def cluster_py(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return cluster_python(tmp_path_factory.mktemp("cluster-python") / "venv")


@pytest.fixture(scope="module")
def standalone(tmp_path_factory: pytest.TempPathFactory, cluster_py: Path) -> Iterator[StandaloneCluster]:
    """A master and two 1-core, 1 GB workers on 127.0.0.1, started without waiting (they come up while the test
    generates data and runs locally) and always stopped."""
    cluster = StandaloneCluster(tmp_path_factory.mktemp("standalone"), python=cluster_py)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


def test_spark_submit_on_standalone_cluster_equals_local_run(spark: SparkSession, standalone: StandaloneCluster,
                                                             cluster_py: Path, tmp_path: Path) -> None:
    # The cluster's Python knows the project only through --py-files.
    probe = subprocess.run([str(cluster_py), "-c", "import jobs"], capture_output=True, cwd=tmp_path, check=False)
    assert probe.returncode != 0, "the cluster's Python imports jobs without --py-files: the test would prove nothing"
    code_zip = build_code_zip(tmp_path / "dist")

    inputs = generate(spark, str(tmp_path / "input"), GeneratorParams(rows=ROWS, seed=SEED))
    local_out, cluster_out = tmp_path / "out-local", tmp_path / "out-cluster"
    local_conf = write_conf(tmp_path / "local.yaml", inputs, local_out, {"master": "local[2]"})
    # No master: spark-submit's --master decides (jobs/session.py). Delta comes from --jars: delta_provided.
    cluster_conf = write_conf(tmp_path / "cluster.yaml", inputs, cluster_out, {
        "delta_provided": True,
        "settings": {"spark.sql.shuffle.partitions": 2, "spark.locality.wait": "0s"}})
    ruleset = load_ruleset(RULESET)

    # The cluster run goes first, in the background; the local run uses the cores while it waits on scheduling.
    standalone.wait_ready()
    command = submit_command(standalone.master_url, code_zip, jars.ensure_jars(), cluster_py, name=APP_NAME,
                             conf=QUICK_JVM, app_args=["run", "--conf", str(cluster_conf), "--ruleset", RULESET,
                                                       "--cycle", CYCLE, "--run-id", RUN_ID])
    submission = Submission(command, {**standalone.env(), "PYSPARK_DRIVER_PYTHON": str(cluster_py)}, cwd=tmp_path,
                            log=tmp_path / "spark-submit.log")
    try:
        local = execute(spark, load_conf(local_conf), ruleset, CYCLE, RUN_ID)
        done = submission.wait(timeout_s=600)
    finally:
        submission.stop()
    assert local.committed
    assert done.returncode == 0, (f"spark-submit exited {done.returncode} after {done.seconds:.0f} s\n"
                                  f"{' '.join(command)}\n{tail(done.log, 60)}\n{standalone.logs()}")

    # It ran on the cluster, not in a local master inside the driver: the master saw the application finish, and
    # each worker's executor fetched the shipped code.
    apps = [a for a in standalone.state()["completedapps"] if a["name"] == APP_NAME]
    assert len(apps) == 1 and apps[0]["state"] == "FINISHED", (apps, tail(done.log))
    executors = standalone.executor_dirs(apps[0]["id"])
    assert len(executors) == 2 and all(list(e.glob("telco_ra-*.zip")) for e in executors), executors

    diff = differences(spark, local_out, cluster_out)
    assert not diff, "\n".join(f"{t}: {d}" for t, d in diff.items())
    case_ids = {
        out: {r["case_id"] for r in spark.read.format("delta").load(str(out / "ra_case")).select("case_id").collect()}
        for out in (local_out, cluster_out)}
    assert case_ids[local_out] and case_ids[local_out] == case_ids[cluster_out]
    for out, conf in ((local_out, local_conf), (cluster_out, cluster_conf)):
        rows = spark.read.format("delta").load(str(out / "control_run")).collect()
        assert {r["conf_fingerprint"] for r in rows} == {load_conf(conf).fingerprint}
        assert all(r["ignore_as_of"] == r["started_at"] for r in rows)     # no ignore list: as of its own start
