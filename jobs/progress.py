"""A run a person can follow: where it is (control point, step) and how many rows so far, at INFO.

What a run logs while it works (this module's lines are the ones with "so far"; a 3,000-record month):

    usage_to_bill-2026-06-2a51d0c65b53: ruleset usage_to_bill 2026.12.1, cycle 2026-06, control points ...
    prepare: started
    prepare: cdr
    prepare: cdr: 3,031 rows read (0 out of this run's scope)
    usage-to-rating: started
    usage-to-rating: matching, exact stage
    usage-to-rating: matching, fuzzy stage
    usage-to-rating: matching, fuzzy stage: 2,229 rows so far (2 Spark stages: 7 of 24 tasks done)
    usage-to-rating: done in 65.6 s

Phases log their start and end (jobs.phases), the engine logs each step as it enters it (transforms.checkpoints.step),
and the rows come from what the run computes anyway: the counts a phase observes as it cuts (prepare's rows read per
input, DataFrame.observe), and Spark's status store (the data behind its UI and REST API), polled by a daemon thread
every `spark.telcora.progress.seconds` (default 15; 0: off): for each running Spark job of this run, the phase and step
it belongs to (its job group and description) and, over its running stages, the records read so far (input records
plus shuffle records read) and the tasks done. Nothing here starts a Spark job or reads a row: a run starts as many
Spark jobs with the poller on as off (tests/test_run_console.py). Stage figures reach the status store as tasks end and
with each executor heartbeat (`spark.executor.heartbeatInterval`, 10 s), so on a long stage the count moves at that
pace. A job's line is logged again only when its figures changed.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from pyspark.sql import SparkSession

from jobs.config import ConfigError
from jobs.phases import GROUP_PREFIX
from jobs.spark_status import active_jobs
from transforms.checkpoints import STEP_MARK

LOG = logging.getLogger(__name__)

# Session setting: seconds between two looks at the status store while a run works; 0 turns the poller off.
PROGRESS_SECONDS_KEY = "spark.telcora.progress.seconds"
PROGRESS_SECONDS_DEFAULT = 15.0
_CUT = "cut at "


@dataclass(frozen=True)
class JobProgress:
    """One running Spark job of a run, as the status store has it now."""

    job_id: int
    phase: str
    step: str                   # "" when the job was started outside a step
    stages: tuple[int, ...]     # its running stages
    rows: int                   # records its running stages have read so far (input + shuffle)
    tasks_done: int
    tasks: int

    def line(self) -> str:
        """'usage-to-rating: matching, fuzzy stage: 182,311 rows so far (Spark stage 57: 3 of 8 tasks done)', or
        '(3 Spark stages: 5 of 24 tasks done)' where stages run side by side."""
        where = f"{self.phase}: {self.step}" if self.step else self.phase
        stages = f"Spark stage {self.stages[0]}" if len(self.stages) == 1 else f"{len(self.stages)} Spark stages"
        return f"{where}: {self.rows:,} rows so far ({stages}: {self.tasks_done:,} of {self.tasks:,} tasks done)"


def phase_of(group: str | None, run_id: str) -> str | None:
    """The phase a job of run `run_id` belongs to, from its job group ('telco-ra:<phase>:<run_id>', jobs.phases);
    None for another run's job or one outside any phase."""
    suffix = f":{run_id}"
    if not group or not group.startswith(GROUP_PREFIX) or not group.endswith(suffix):
        return None
    return group[len(GROUP_PREFIX):-len(suffix)] or None


def step_of(description: str | None) -> str:
    """The step in a job description '<phase description> | <step> | cut at <site>' ('' where there is none)."""
    parts = (description or "").split(STEP_MARK)[1:]
    return STEP_MARK.join(p for p in parts if not p.startswith(_CUT))


def running(spark: SparkSession, run_id: str) -> list[JobProgress]:
    """The running Spark jobs of run `run_id` that have a running stage, oldest first, from the status store."""
    out = []
    for job in active_jobs(spark):
        phase = phase_of(job.group, run_id)
        if phase is not None and job.stages:
            out.append(JobProgress(job.job_id, phase, step_of(job.description), job.stages, job.records,
                                   job.tasks_done, job.tasks))
    return out


class Progress:
    """Logs the run's running jobs (`running`) every `interval_s` seconds on a daemon thread, each job again only
    when its figures changed. `poll()` is one look, for a caller that wants one now."""

    def __init__(self, spark: SparkSession, run_id: str, interval_s: float, log: logging.Logger = LOG) -> None:
        self._spark, self._run_id, self._interval, self._log = spark, run_id, interval_s, log
        self._last: dict[int, tuple[tuple[int, ...], int, int]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"progress-{run_id}", daemon=True)

    def poll(self) -> list[str]:
        """Log (and return) the lines of the jobs whose figures changed since their last line."""
        lines = []
        now = running(self._spark, self._run_id)
        for job in now:
            figures = (job.stages, job.rows, job.tasks_done)
            if self._last.get(job.job_id) != figures:
                self._last[job.job_id] = figures
                lines.append(job.line())
        self._last = {job.job_id: self._last[job.job_id] for job in now}      # only running jobs: bounded
        for line in lines:
            self._log.info("%s", line)
        return lines

    def _loop(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self.poll()
            except Exception as exc:  # noqa: BLE001 - progress is a courtesy: it never fails a run
                LOG.debug("progress: status store not readable: %s", exc)

    def start(self) -> Progress:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


def progress_seconds(spark: SparkSession) -> float:
    """`spark.telcora.progress.seconds` (default 15; 0: no poller); a value that is not a number exits 2."""
    text = spark.conf.get(PROGRESS_SECONDS_KEY, None) or str(PROGRESS_SECONDS_DEFAULT)
    try:
        seconds = float(text)
    except ValueError:
        raise ConfigError("spark settings", PROGRESS_SECONDS_KEY, f"{text!r} is not a number of seconds") from None
    if seconds < 0:
        raise ConfigError("spark settings", PROGRESS_SECONDS_KEY, f"{text!r}: expected 0 (off) or more seconds")
    return seconds


@contextmanager
def following(spark: SparkSession, run_id: str) -> Iterator[Progress | None]:
    """Poll the progress of run `run_id` for the length of the block (nothing when the setting is 0).

    Example::

        with following(spark, run_id):
            ...                          # the run's phases
    """
    seconds = progress_seconds(spark)
    if seconds <= 0:
        yield None
        return
    progress = Progress(spark, run_id, seconds).start()
    try:
        yield progress
    finally:
        progress.stop()
