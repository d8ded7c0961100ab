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


def build_session(spark_conf: Mapping[str, Any] | None = None, app_name: str = "telco-ra") -> SparkSession:
    """Build (or return the running) SparkSession for telco-ra.

    Example::

        spark = build_session({"master": "local[2]", "settings": {"spark.sql.shuffle.partitions": 4}})
    """
    # Python workers must run this interpreter (the venv's), not the system python3 without pandas/pyarrow.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
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
    spark.sparkContext.setLogLevel("WARN")
    # getOrCreate may hand back a running session: re-assert the settings that results depend on.
    for key, value in PINNED.items():
        if not key.startswith("spark.sql.extensions") and not key.startswith("spark.sql.catalog"):
            spark.conf.set(key, value)
    return spark
