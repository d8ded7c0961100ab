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
}


def _as_str(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def session_settings(spark_conf: Mapping[str, Any] | None) -> tuple[str, dict[str, str], bool]:
    """Resolve (master, settings, delta_provided) from a conf `spark:` block, defaults filled in, pins last."""
    block = dict(spark_conf or {})
    master = str(block.get("master", "local[*]"))
    settings = dict(LOCAL_DEFAULTS)
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
    os.environ.setdefault("TZ", "UTC")
    master, settings, delta_provided = session_settings(spark_conf)
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
