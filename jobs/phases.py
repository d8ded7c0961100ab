"""Named phases of a run: every Spark job a phase starts carries its name (job group and description).

Why: the Spark UI, the REST status API and event logs then show "usage-to-rating" instead of "localCheckpoint at
NativeMethodAccessorImpl.java:0", so an operator can tell which control point is slow on a real cluster, and
`bench/` attributes stage metrics (run time, shuffle bytes) to control points from Spark's own figures. Wall time
per phase is kept too (bounded: one entry per phase per run) for the run log and the bench.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from pyspark.sql import SparkSession

from transforms.checkpoints import PHASE_PROPERTY

LOG = logging.getLogger(__name__)

GROUP_PREFIX = "telco-ra:"


@dataclass(frozen=True)
class PhaseTiming:
    name: str
    group: str
    seconds: float


# Phases completed in this process, oldest first; `bench/` reads and clears it.
RECORDED: list[PhaseTiming] = []


@contextmanager
def phase(spark: SparkSession, name: str, run_id: str = "") -> Iterator[str]:
    """Tag the Spark jobs started inside the block with `name`; yields the job group id. Its start and end are logged
    at INFO ('usage-to-rating: started', '... done in 23.1 s'), and the engine's steps inside it under its name
    (transforms.checkpoints.step).

    Example::

        with phase(spark, cp.id, run_id):            # e.g. "usage-to-rating"
            outcomes = materialize(record_outcomes(ruleset, cp, ...))
    """
    sc = spark.sparkContext
    group = f"{GROUP_PREFIX}{name}" + (f":{run_id}" if run_id else "")
    previous_group = sc.getLocalProperty("spark.jobGroup.id")
    previous_description = sc.getLocalProperty("spark.job.description")
    previous_phase = sc.getLocalProperty(PHASE_PROPERTY)
    sc.setJobGroup(group, f"telco-ra {name}" + (f" ({run_id})" if run_id else ""))
    sc.setLocalProperty(PHASE_PROPERTY, name)
    LOG.info("%s: started", name)
    started = time.monotonic()
    try:
        yield group
    finally:
        seconds = time.monotonic() - started
        RECORDED.append(PhaseTiming(name, group, seconds))
        LOG.info("%s: done in %.1f s", name, seconds)
        sc.setLocalProperty("spark.jobGroup.id", previous_group)  # type: ignore[arg-type]
        sc.setLocalProperty("spark.job.description", previous_description)  # type: ignore[arg-type]
        sc.setLocalProperty(PHASE_PROPERTY, previous_phase)  # type: ignore[arg-type]
