"""One local SparkSession for the whole suite, tuned for tiny data, with Delta tables in temp dirs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from jobs.session import build_session
from small_lakehouse import SmallLakehouse, build

# Spark's own console layout, plus every ERROR the driver logs copied to a file: when something stops the
# SparkContext (an Error in the DAG scheduler, the listener bus or the cleaner), each later test fails on "Cannot
# call methods on a stopped SparkContext", and the one line that says why is in some earlier test's captured output,
# which CI's tail does not show. The suite then stops at once and names it (see _clean_catalog).
LOG4J2 = """\
rootLogger.level = warn
rootLogger.appenderRef.stdout.ref = console
rootLogger.appenderRef.errors.ref = errors
appender.console.type = Console
appender.console.name = console
appender.console.target = SYSTEM_ERR
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = %d{{yy/MM/dd HH:mm:ss}} %p %c{{1}}: %m%n%ex
appender.errors.type = File
appender.errors.name = errors
appender.errors.fileName = {errors}
appender.errors.filter.threshold.type = ThresholdFilter
appender.errors.filter.threshold.level = error
appender.errors.layout.type = PatternLayout
appender.errors.layout.pattern = %d{{HH:mm:ss}} %p %c{{1}} [%t]: %m%n%ex
logger.parquet.name = org.apache.parquet.CorruptStatistics
logger.parquet.level = error
"""


MASTER = "local[2]"
# The suite's Spark settings for tiny data; a notebook kernel (tests/test_notebooks.py) starts its own Spark with them.
SETTINGS = {
    "spark.sql.shuffle.partitions": 2,
    "spark.default.parallelism": 2,
    "spark.databricks.delta.snapshotPartitions": 1,
    # The suite runs the same job some thirty times on tiny inputs, where compiling each plan's
    # generated code is much of a run's time: a codegen cache big enough to keep a run's classes
    # (Spark's default keeps 100) took a repeated run from 43 to 33 s here. Same code paths as a job.
    "spark.sql.codegen.cache.maxEntries": 5000,
}


@pytest.fixture(scope="session")
def spark_error_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("spark-logs") / "errors.log"


@pytest.fixture(scope="session")
def spark(tmp_path_factory: pytest.TempPathFactory, spark_error_log: Path) -> Iterator[SparkSession]:
    warehouse = tmp_path_factory.mktemp("warehouse")
    log4j = spark_error_log.with_name("log4j2.properties")
    log4j.write_text(LOG4J2.format(errors=spark_error_log))
    session = build_session(
        {
            "master": MASTER,
            "settings": {
                **SETTINGS,
                "spark.sql.warehouse.dir": str(warehouse),
                # 4g, the product's local default. At 2g the suite's driver ran with G1 preventive collections
                # and up to ~1 GB live after mixed GCs through test_generate (GC log of a local run); the tests
                # check results, not a small heap.
                "spark.driver.memory": "4g",
                "spark.driver.extraJavaOptions": f"-Duser.timezone=UTC -Dlog4j2.configurationFile=file:{log4j}",
            },
        },
        app_name="telco-ra-tests",
    )
    yield session
    session.stop()


@pytest.fixture(scope="session")
def small_lakehouse(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> SmallLakehouse:
    """The demo's usage month at 2,000 rows, run twice (tests/small_lakehouse.py): built once for the notebooks and
    the browser test."""
    lakehouse = build(spark, tmp_path_factory.mktemp("small-lakehouse"))
    print(f"small lakehouse built in {lakehouse.seconds:.0f} s ({lakehouse.timings})")
    return lakehouse


def _stop_if_context_died(session: SparkSession, error_log: Path, test: str) -> None:
    """End the suite with the reason when the shared SparkContext has been stopped under it."""
    if not session.sparkContext._jsc.sc().isStopped():
        return
    kept, frames = [], 0
    for line in error_log.read_text().splitlines() if error_log.exists() else []:
        frames = frames + 1 if line.startswith("\tat ") else 0
        if frames <= 3 and not line.startswith("\t... "):     # each trace's message and its first frames
            kept.append(line)
    tail = "\n".join(kept[-60:]) or "(the driver logged no ERROR)"
    pytest.exit(f"the shared SparkContext was stopped during or before {test}; the driver's last ERROR lines:\n"
                f"{tail}", returncode=3)


@pytest.fixture(autouse=True)
def _clean_catalog(request: pytest.FixtureRequest) -> Iterator[None]:
    """Drop cached data and temp views between tests so one test never sees another's state."""
    yield
    if "spark" in request.fixturenames:
        session = request.getfixturevalue("spark")
        _stop_if_context_died(session, request.getfixturevalue("spark_error_log"), request.node.nodeid)
        session.catalog.clearCache()
        for view in session.catalog.listTables():
            if view.isTemporary:
                session.catalog.dropTempView(view.name)
