"""The one place a SparkSession is built.

Local defaults are sized for a small box (2 cores, a few GB for the driver); every setting can be overridden from
the `spark:` block of `conf/*.yaml` so the same job runs on a cluster. Three settings are not negotiable because
results depend on them: the session time zone is UTC (inputs are UTC instants and cycle bounds are compared as
such), ANSI mode is on (an overflow or bad cast fails loudly instead of turning money into NULL), and Delta's
extension and catalog are installed.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping
from typing import Any

from pyspark.sql import SparkSession

from jobs import jars
from jobs.config import ConfigError

LOG = logging.getLogger(__name__)

PINNED: dict[str, str] = {
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.ansi.enabled": "true",
    "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
    "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
}

LOCAL_DEFAULTS: dict[str, str] = {
    "spark.driver.memory": "4g",
    "spark.sql.shuffle.partitions": "8",
    "spark.sql.adaptive.enabled": "true",
    "spark.sql.adaptive.coalescePartitions.enabled": "true",
    "spark.sql.adaptive.skewJoin.enabled": "true",
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    "spark.driver.extraJavaOptions": "-Duser.timezone=UTC",
    "spark.executor.extraJavaOptions": "-Duser.timezone=UTC",
    "spark.databricks.delta.snapshotPartitions": "2",
    "spark.sql.sources.parallelPartitionDiscovery.parallelism": "2",
    # Outputs carry sha256 hex fingerprints (record, counterpart, case): zstd's entropy coding stores them at about
    # half of snappy's size (measured on a 1M-usage run's record_outcome: 1.1 GB -> 566 MB, and 20% faster to
    # write). Every Parquet reader of note, delta-rs included, reads zstd.
    "spark.sql.parquet.compression.codec": "zstd",
    # Kept intermediates (checkpoints at serialized or disk levels, and blocks evicted to disk) are compressed too:
    # they are the other thing that fills spark.local.dir on a long run.
    "spark.rdd.compress": "true",
    # Shuffle files, spills and cut blocks in zstd instead of lz4: about half the bytes on disk and on the wire
    # (seed-004 1M, phases whose code did not change between the two runs: prepare's shuffle 457 -> 250 MB,
    # usage-to-rating's 782 -> 450 MB) for no measurable CPU (job task time 316 -> 311 s).
    "spark.io.compression.codec": "zstd",
    # PySpark 4 wraps every DataFrame and Column call to record its Python call site in the JVM (for error
    # messages): several py4j round trips per call. A run builds its plans from thousands of such calls; on a
    # 1,000-event run those round trips were most of the wall time (cProfile: 75,000 py4j calls, 66 of 84 s waiting
    # on the socket). Rule SQL errors are named by the engine (transforms/engine/analyse.py), not by call sites.
    "spark.python.sql.dataFrameDebugging.enabled": "false",
}


# Spark's warnings that say nothing a person running telco-ra can act on, kept off the console (set_spark_log):
# (logger, the message's start). Each is a filter on that one logger's one message: its other warnings and every
# error still show. Set TELCO_RA_SPARK_LOG=WARN (or `telco-ra --verbose ...`) to see them.
SPARK_NOISE: tuple[tuple[str, str], ...] = (
    # unpersisting a local checkpoint (a cut released: transforms/checkpoints.py)
    ("org.apache.spark.rdd", "RDD \\d+ was locally checkpointed, its lineage has been truncated"),
    ("org.apache.spark.sql.catalyst.util.SparkStringUtils", "Truncated the string representation of a plan"),
    ("org.apache.spark.sql.execution.window", "No Partition Defined for Window operation"),
    ("org.apache.spark.scheduler.DAGScheduler", "Broadcasting large task binary"),
    # the engine's broadcast hints on a side Catalyst then plans without a join (transforms/sizing.py)
    ("org.apache.spark.sql.catalyst.analysis.HintErrorLogger", "A join hint \\(strategy=broadcast\\) is specified"),
    ("org.apache.spark.sql.classic.SparkSession", "Using an existing Spark session"),
)
SPARK_LOG_ENV = "TELCO_RA_SPARK_LOG"
SPARK_LOG_LEVELS = ("OFF", "FATAL", "ERROR", "WARN", "INFO", "DEBUG", "TRACE", "ALL")


def spark_log_level(asked: str | None = None) -> str | None:
    """The Spark log level asked for: `asked` (e.g. 'WARN' from --verbose), else TELCO_RA_SPARK_LOG, else None (WARN
    with SPARK_NOISE kept out). A level log4j does not know exits 2 before Spark starts."""
    value = asked if asked is not None else os.environ.get(SPARK_LOG_ENV)
    if value is None or not value.strip():
        return None
    level = value.strip().upper()
    if level not in SPARK_LOG_LEVELS:
        raise ConfigError(SPARK_LOG_ENV, "level", f"{value!r} is not a log level ({', '.join(SPARK_LOG_LEVELS)})")
    return level


def set_spark_log(spark: SparkSession, level: str | None) -> None:
    """Spark's console at WARN without SPARK_NOISE (level None), or at `level` with everything.

    Done on log4j2's own configuration of this JVM (the logger configs named in SPARK_NOISE are telco-ra's: replaced
    on each call, removed when asked for everything), so it holds whatever log4j2 file the JVM was started with, and
    applies again to a running session (getOrCreate). Errors are never filtered.
    """
    spark.sparkContext.setLogLevel(level or "WARN")
    jvm = spark.sparkContext._jvm
    assert jvm is not None
    core = jvm.org.apache.logging.log4j.core
    context = jvm.org.apache.logging.log4j.LogManager.getContext(False)
    config = context.getConfiguration()
    for logger, message in SPARK_NOISE:
        config.removeLogger(logger)
        if level is None:
            result = core.Filter.Result
            errors = core.filter.ThresholdFilter.createFilter(jvm.org.apache.logging.log4j.Level.ERROR, result.ACCEPT,
                                                              result.NEUTRAL)     # an error shows, whatever it says
            noise = core.filter.RegexFilter.createFilter(f"(?s){message}.*", None, False, result.DENY,
                                                         result.NEUTRAL)
            quiet = core.config.LoggerConfig(logger, None, True)        # level: its parent's
            quiet.addFilter(errors)
            quiet.addFilter(noise)
            config.addLogger(logger, quiet)
    context.updateLoggers()


def _as_str(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def launcher_settings() -> dict[str, str]:
    """What spark-submit was told (--master, --conf, --jars, ...) when it started this interpreter, else {}.

    Under spark-submit the driver JVM exists before this code runs and holds the launcher's settings; a builder
    setting silently overrides them (observed: `.master("local[*]")` beat `--master spark://...` and the whole job
    ran in the driver), so build_session must know them.
    """
    if "PYSPARK_GATEWAY_PORT" not in os.environ:     # set only when a JVM (spark-submit) started this interpreter
        return {}
    from pyspark import SparkConf, SparkContext

    SparkContext._ensure_initialized()
    return {str(k): str(v) for k, v in SparkConf().getAll()}


def session_settings(spark_conf: Mapping[str, Any] | None,
                     launcher: Mapping[str, str] | None = None) -> tuple[str, dict[str, str], bool]:
    """Resolve (master, settings, delta_provided) from a conf `spark:` block.

    Settings, lowest precedence first: LOCAL_DEFAULTS, spark-submit's (`launcher`), the conf's, the pins. The
    master is spark-submit's when there is one: it has already placed the driver, and a `master` left in the conf
    must not turn a cluster job into a local one.
    """
    block = dict(spark_conf or {})
    launcher = dict(launcher or {})
    master = launcher.get("spark.master") or str(block.get("master", "local[*]"))
    if launcher and block.get("master") not in (None, master):
        LOG.warning("spark.master %r of the conf ignored: spark-submit said %r", block.get("master"), master)
    settings = dict(LOCAL_DEFAULTS)
    settings.update(launcher)
    settings.update({str(k): _as_str(v) for k, v in (block.get("settings") or {}).items()})
    settings.update(PINNED)
    return master, settings, bool(block.get("delta_provided", False))


def build_session(spark_conf: Mapping[str, Any] | None = None, app_name: str = "telco-ra",
                  spark_log: str | None = None) -> SparkSession:
    """Build (or return the running) SparkSession for telco-ra.

    `spark_log`: Spark's console log level ('WARN' for `--verbose`); default TELCO_RA_SPARK_LOG, else WARN without
    the warnings in SPARK_NOISE (`set_spark_log`).

    Example::

        spark = build_session({"master": "local[2]", "settings": {"spark.sql.shuffle.partitions": 4}})
    """
    # Python workers must run this interpreter (the venv's), not the system python3 without pandas/pyarrow.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    log_level = spark_log_level(spark_log)
    # No TZ is set for the process: a host's TZ must not change a run (jobs/utc.py; the JVM runs in UTC).
    master, settings, delta_provided = session_settings(spark_conf, launcher_settings())
    builder = SparkSession.builder.master(master).appName(app_name)
    if not delta_provided and "spark.jars.packages" not in settings:
        jar_paths = [str(p) for p in jars.ensure_jars()]
        extra = [j for j in settings.get("spark.jars", "").split(",") if j]
        settings["spark.jars"] = ",".join(jar_paths + extra)
    for key, value in settings.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    set_spark_log(spark, log_level)
    # getOrCreate may hand back a running session: re-assert the settings that results depend on.
    for key, value in PINNED.items():
        if not key.startswith("spark.sql.extensions") and not key.startswith("spark.sql.catalog"):
            spark.conf.set(key, value)
    return spark
