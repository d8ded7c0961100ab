"""Where the controls cut lineage: compute an intermediate result once, keep it, and free what produced it.

The controls reuse intermediate results many times (originals, exact matches, outcomes); without a cut, every reuse
re-inlines the whole upstream plan, and Catalyst's plan for the run grows beyond the driver's heap. A cut also ends
the life of the shuffles that produced the result: nothing reads them again, but Spark keeps their files until the
driver's garbage collector notices (it did not, in a probe: the files of five dead shuffles stayed until the
session ended). At 10M usage records a run left 48 GB of such files in spark.local.dir; at 100M that is more than
the disk of a small box. So each cut releases the shuffles its own computation created, and only those.
"""

from __future__ import annotations

import itertools
import logging
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession

LOG = logging.getLogger(__name__)

# Session setting: how local checkpoints are kept. Unset: Spark's default (MEMORY_AND_DISK, deserialized). On a
# small driver holding large intermediates, DISK_ONLY (or MEMORY_AND_DISK_SER) keeps the heap flat and GC low.
STORAGE_LEVEL_KEY = "spark.telcora.materialize.storageLevel"
# Session setting: release the shuffle files a cut's computation created once the cut is stored (default true).
# Turn it off only when other threads share this SparkContext and re-execute a DataFrame object they hold: their
# shuffle would be recomputed (correct, slower).
RELEASE_SHUFFLES_KEY = "spark.telcora.materialize.releaseShuffles"

# Session setting: a directory (local path, or a shared filesystem's URI on a cluster) where cuts are written as
# Parquet instead of kept as checkpoint blocks. Columnar and compressed: later reads take only the columns they
# use, and a 100M-record run's intermediates fit a small disk. Each run writes under <dir>/<run scope>/ and
# deletes that folder when it ends.
CUT_DIR_KEY = "spark.telcora.materialize.dir"
_CUT_NUMBERS = itertools.count()
# A cut's jobs are described '<phase description> | <step> | cut at <file>:<line> (<function>)' (no step outside one).
STEP_MARK = " | "
_CUT_MARK = " | cut at "
# Local property jobs.phases.phase sets to the phase's name (a control point id, "prepare", ...): what `step` logs under.
PHASE_PROPERTY = "telcora.phase"


class _Runs(threading.local):
    """The cut scope of the run this thread is in (runs side by side in one process each have their own), the cuts
    made inside each open `materialize_freeing` block of this thread (innermost last), and whether the run is small
    (`small_run`)."""

    scope: str | None = None
    small: bool = False
    made: list[list[DataFrame]]

    def __init__(self) -> None:
        self.made = []


_THREAD = _Runs()
# How many runs (cut scopes) are open in this process, and the lock that makes "am I alone? then release" atomic
# with a neighbour's start: a run opens its scope before its first Spark job.
_OPEN_RUNS = 0
_RUNS_LOCK = threading.Lock()

_LEVELS = {"DISK_ONLY": StorageLevel.DISK_ONLY, "MEMORY_AND_DISK_SER": StorageLevel.MEMORY_AND_DISK,
           "MEMORY_AND_DISK": StorageLevel(True, True, False, True), "MEMORY_ONLY_SER": StorageLevel.MEMORY_ONLY}


def materialize(df: DataFrame, observed: bool = False) -> DataFrame:
    """Compute `df` once, cut its lineage, and release the shuffles that computing it created.

    A reliable checkpoint is used where a checkpoint directory is configured (clusters: survives executor loss),
    else a local checkpoint (executor storage, kept as `spark.telcora.materialize.storageLevel` says). In a small
    run (`small_run`) the cut is lazy: it shortens the plan at once (no job of its own) and keeps its rows when the
    first job that needs them computes them, in one partition (`few_partitions`); its shuffles are not looked for
    (tiny), and it is never released before the run ends (a release before that first job would lose its blocks).
    `observed`: the plan carries `DataFrame.observe` metrics, which only an action on the plan itself reports: it is
    computed here, small or not.
    """
    spark = df.sparkSession
    df = few_partitions(df)
    if _THREAD.small and not observed:
        with _described(spark, _caller()):
            lazy = df.localCheckpoint(eager=False)
        if _THREAD.made:
            _THREAD.made[-1].append(lazy)
        return lazy
    # A small run's shuffles are a few kilobytes: asking the driver which to free costs more than keeping them.
    free_shuffles = not _THREAD.small and (
        spark.conf.get(RELEASE_SHUFFLES_KEY, "true") or "true").strip().lower() == "true"
    before = registered_shuffles(spark) if free_shuffles else frozenset()
    cut_dir = spark.conf.get(CUT_DIR_KEY, None)
    with _described(spark, _caller()):
        if cut_dir:
            result = _parquet_cut(df, cut_dir)
        elif spark.sparkContext.getCheckpointDir():
            result = df.checkpoint(eager=True)
        else:
            level = spark.conf.get(STORAGE_LEVEL_KEY, None)
            result = (df.localCheckpoint(eager=True) if level is None
                      else df.localCheckpoint(eager=True, storageLevel=_storage_level(level)))
    if free_shuffles:
        with _RUNS_LOCK:
            if _OPEN_RUNS <= 1 and not _other_jobs_running(spark):
                release_shuffles(spark, settled_shuffles(spark, registered_shuffles(spark) - before))
    if _THREAD.made:
        _THREAD.made[-1].append(result)
    return result


def materialize_freeing(build: Callable[[], DataFrame]) -> DataFrame:
    """Cut what `build()` returns, then free every cut made while building and computing it.

    A control point cuts its intermediates as it goes (exact matches, fuzzy rounds, duplicate windows); once its
    outcome rows are cut, nothing reads them again, yet they would stay on disk (or in executor storage) until the
    run ends. Freeing them took a 1M-usage run's peak scratch disk from 1,618 to 1,233 MiB; at 100M that is tens of GB.
    The function must not return (or keep elsewhere) a DataFrame that reads one of its own cuts.
    """
    _THREAD.made.append([])
    try:
        result = materialize(build())
    finally:
        made = _THREAD.made.pop()
    for cut in made:
        if cut is not result:
            release(cut)
    if _THREAD.made:                  # the result is an intermediate of the enclosing block, if any
        _THREAD.made[-1].append(result)
    return result


def _caller() -> str:
    """file:line (function) of the code that asked for the cut, e.g. 'match.py:195 (match)':
    the first frame outside this module (materialize_freeing asks on its caller's behalf)."""
    frame = sys._getframe(1)
    while frame.f_code.co_filename == __file__ and frame.f_back is not None:
        frame = frame.f_back
    return f"{frame.f_code.co_filename.rsplit('/', 1)[-1]}:{frame.f_lineno} ({frame.f_code.co_name})"


@contextmanager
def _described(spark: SparkSession, site: str) -> Iterator[None]:
    """The cut's jobs carry '<phase description> | cut at <site>': in the Spark UI and in the bench's breakdown of
    a phase, each cut is told apart (else every one reads 'localCheckpoint at NativeMethodAccessorImpl.java:0')."""
    sc = spark.sparkContext
    previous = sc.getLocalProperty("spark.job.description")
    sc.setJobDescription(f"{(previous or 'telco-ra').split(_CUT_MARK)[0]}{_CUT_MARK}{site}")
    try:
        yield
    finally:
        sc.setLocalProperty("spark.job.description", previous)  # type: ignore[arg-type]


def step(spark: SparkSession, label: str) -> None:
    """Name what the run does next within its phase, e.g. 'matching, fuzzy stage': logged at INFO under the phase
    ('usage-to-rating: matching, fuzzy stage'), and the Spark jobs started from here are described '<phase
    description> | <label>' (a cut's ' | cut at ...' after it), so the Spark UI, the bench's profile and the run's
    progress lines (jobs/progress.py) name the step a job belongs to. It lasts until the next step or the end of the
    phase (which puts the phase's own description back). Outside a phase (a test calling the engine) it does nothing.

    A label, not a job: jobs run when an action or a cut asks for rows, so in a small run (lazy cuts) a job may
    compute several steps and carries the label of the step that asked for it.
    """
    sc = spark.sparkContext
    phase = sc.getLocalProperty(PHASE_PROPERTY)
    if not phase:
        return
    head = (sc.getLocalProperty("spark.job.description") or "telco-ra").split(STEP_MARK)[0]
    sc.setJobDescription(f"{head}{STEP_MARK}{label}")
    LOG.info("%s: %s", phase, label)


def _other_jobs_running(spark: SparkSession) -> bool:
    """Whether any job is running now (ours are done when the cut returns, so it is another thread's).

    Shuffles are registered per SparkContext, not per thread: a shuffle new since the cut began may belong to a
    neighbour. Unregistering one that a running stage, or the neighbour's next job, still uses stops the DAG
    scheduler (seen: "key not found" in registerMapOutput, SparkContext shut down). So a cut releases only when its
    run is the only one open in the process (checked under the lock a run takes to open) and no job runs; runs side
    by side keep their files, as Spark would. Threads that share the context outside runs should set
    spark.telcora.materialize.releaseShuffles=false.
    """
    return len(spark.sparkContext.statusTracker().getActiveJobsIds()) > 0


def _scope(spark: SparkSession) -> str:
    """The folder name of this thread's run's cuts (the application's, outside a run)."""
    return _THREAD.scope or spark.sparkContext.applicationId


def _scope_folder(cut_dir: str, scope: str) -> str:
    return f"{cut_dir.rstrip('/')}/{scope}"


def _parquet_cut(df: DataFrame, cut_dir: str) -> DataFrame:
    spark = df.sparkSession
    path = f"{_scope_folder(cut_dir, _scope(spark))}/cut-{next(_CUT_NUMBERS):06d}"
    df.write.mode("overwrite").parquet(path)
    return spark.read.schema(df.schema).parquet(path)


# Session setting: a run whose input tables hold fewer bytes than this (Delta's sizeInBytes of their current
# versions) runs as a small run; 0: never. 16 MiB of Parquet is some 100,000 usage records with their ratings
# and charges: a notebook's month, a test's, a demo's. Measured on a 1,000-event usage-to-bill month (warm
# runs, this 2-core box): 297 Spark jobs / 61 s as a big run, 69 jobs / ~50 s as a small one.
SMALL_RUN_BYTES_KEY = "spark.telcora.smallRun.maxBytes"
SMALL_RUN_BYTES_DEFAULT = 16 * 1024 * 1024
# A small run's rows are few enough for one task per stage: past that, every task is overhead (the driver
# schedules it, the executor deserialises its plan, a write makes one more file). So a small run shuffles into
# one partition, and its cuts and writes take their rows into one (`few_partitions`): unions of sides and scans
# of many small files had made stages of 12 and 32 tasks. Measured on tests/scenario.py's month, warm runs in the
# suite's settings: ~1,100 tasks and 19.6-23.6 s a run with 4 shuffle partitions and no coalescing; ~280 tasks and
# 14.5-18.6 s with one.
SMALL_RUN_PARTITIONS = 1
# A small run's settings: one Spark job per action (adaptive execution submits every exchange as a job of its own,
# and every broadcast is one), and one shuffle partition (above).
SMALL_RUN_SETTINGS = {"spark.sql.adaptive.enabled": "false", "spark.sql.autoBroadcastJoinThreshold": "-1",
                      "spark.sql.shuffle.partitions": str(SMALL_RUN_PARTITIONS)}


def small_mode() -> bool:
    """Whether this thread's run is a small run (see `small_run`)."""
    return _THREAD.small


def few_partitions(df: DataFrame) -> DataFrame:
    """In a small run, `df`'s rows in SMALL_RUN_PARTITIONS partitions (no shuffle: partitions are merged); else
    `df` as it is. For what a small run computes once and keeps (cuts) or writes."""
    return df.coalesce(SMALL_RUN_PARTITIONS) if _THREAD.small else df


@contextmanager
def small_run(spark: SparkSession) -> Iterator[None]:
    """Run the block as a small run: a notebook's month, a test's, a partition rerun of a small bucket.

    What makes a big run scale makes a small run slow: each cut is a job that computes an intermediate of a few
    hundred rows, each broadcast decision counts rows, and adaptive execution turns every exchange into a job of its
    own: a 1,000-event month started 270 Spark jobs. In a small run nothing is counted to decide a broadcast, no
    shuffle is looked for to free, and the session runs without adaptive execution and broadcasts
    (SMALL_RUN_SETTINGS), so a Spark job is an action of the run (a cut is one). Cuts still compute: a plan that
    is not cut grows with every reuse of an intermediate (Catalyst took minutes over a run's uncut plans, and
    persisted results that are not cuts do not shorten them). Results are the same: the run's
    outputs do not depend on how Spark plans it (tested across partitionings and adaptive settings).
    """
    previous: dict[str, str | None] = {key: spark.conf.get(key, None) for key in SMALL_RUN_SETTINGS}
    was = _THREAD.small
    _THREAD.small = True
    for key, value in SMALL_RUN_SETTINGS.items():
        spark.conf.set(key, value)
    try:
        yield
    finally:
        _THREAD.small = was
        for key, old in previous.items():
            if old is None:
                spark.conf.unset(key)
            else:
                spark.conf.set(key, old)


def release(df: DataFrame) -> None:
    """Free a cut that nothing will read again (its files or kept blocks) before the run ends.

    A run holds its prepared inputs until the last control point that reads them is done (jobs/ruleset.py
    `done_after`); on a long run they are the largest intermediates, so they are freed then rather than at the end.
    A DataFrame that is not a cut is left alone.
    """
    if _THREAD.small:
        return            # a small run's cuts live until it ends (see `materialize`)
    spark = df.sparkSession
    plan = df._jdf.queryExecution().analyzed()
    if plan.getClass().getSimpleName() == "LogicalRDD":          # a checkpoint: unpersist its blocks
        plan.rdd().unpersist(True)
        return
    if not spark.conf.get(CUT_DIR_KEY, None):
        return
    marker = f"/{_scope(spark)}/cut-"      # input file URIs may spell the cut folder as file:/..., file:///..., s3a://...
    for folder in {f.rsplit("/", 1)[0] for f in df.inputFiles()}:
        if marker in folder and "/" not in folder.split(marker, 1)[1]:
            _delete(spark, folder)


@contextmanager
def cut_scope(spark: SparkSession, scope: str) -> Iterator[None]:
    """Cuts written inside the block go under <spark.telcora.materialize.dir>/<scope>/, deleted on the way out.

    The scope is the thread's, not the session's: runs side by side in one session each write and delete their own
    folder. Only for Parquet cuts; checkpoint blocks live as long as Spark keeps them. The caller must not use a cut
    DataFrame after the block (its files are gone).
    """
    global _OPEN_RUNS
    previous = _THREAD.scope
    with _RUNS_LOCK:
        _OPEN_RUNS += 1
    _THREAD.scope = scope
    try:
        yield
    finally:
        _THREAD.scope = previous
        with _RUNS_LOCK:
            _OPEN_RUNS -= 1
        cut_dir = spark.conf.get(CUT_DIR_KEY, None)
        if cut_dir:
            _delete(spark, _scope_folder(cut_dir, scope))


def _delete(spark: SparkSession, path: str) -> None:
    """Recursive delete through Hadoop's FileSystem: the same code for a local path, HDFS, S3 or DBFS."""
    jvm = spark.sparkContext._jvm
    assert jvm is not None
    hadoop_path = jvm.org.apache.hadoop.fs.Path(path)
    fs = hadoop_path.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())  # type: ignore[union-attr]
    if fs.exists(hadoop_path):
        fs.delete(hadoop_path, True)


def _map_output_tracker(spark: SparkSession) -> Any:
    """The driver's MapOutputTrackerMaster (a py4j handle): where shuffles are registered and their outputs kept."""
    jvm = spark.sparkContext._jvm
    assert jvm is not None
    return jvm.org.apache.spark.SparkEnv.get().mapOutputTracker()


def registered_shuffles(spark: SparkSession) -> frozenset[int]:
    """Ids of the shuffles whose outputs the driver's MapOutputTracker knows of (empty when it cannot be asked)."""
    try:
        jvm = spark.sparkContext._jvm
        assert jvm is not None
        keys = jvm.scala.jdk.javaapi.CollectionConverters.asJava(_map_output_tracker(spark).shuffleStatuses().keySet())
        return frozenset(int(k) for k in keys)
    except Exception as err:  # noqa: BLE001 - a driver without the tracker (Spark Connect) keeps Spark's own cleanup
        LOG.debug("shuffle ids unavailable: %s", err)
        return frozenset()


def settled_shuffles(spark: SparkSession, shuffle_ids: frozenset[int]) -> frozenset[int]:
    """Those of `shuffle_ids` that no stage of the DAG scheduler holds and whose every map output is in.

    Only such a shuffle can be unregistered without a map task registering its output into a shuffle that is gone,
    which stops the DAG scheduler and with it the SparkContext. The status tracker behind _other_jobs_running hears
    of jobs through the listener bus, after the fact; the scheduler's own stage map does not lag. A shuffle whose
    stage still runs (a neighbour's, or one a finished query left running or cancelled) is left to Spark's cleaner.
    """
    if not shuffle_ids:
        return frozenset()
    tracker = _map_output_tracker(spark)
    held = spark.sparkContext._jsc.sc().dagScheduler().shuffleIdToMapStage()   # type: ignore[union-attr]
    settled = set()
    for shuffle_id in shuffle_ids:
        missing = tracker.findMissingPartitions(shuffle_id)
        if missing.isDefined() and missing.get().isEmpty() and not held.contains(shuffle_id):
            settled.add(shuffle_id)
    return frozenset(settled)


def release_shuffles(spark: SparkSession, shuffle_ids: frozenset[int]) -> None:
    """Unregister the shuffles and delete their files on every executor (blocking: the disk is free on return)."""
    if not shuffle_ids:
        return
    cleaner = spark.sparkContext._jsc.sc().cleaner()   # type: ignore[union-attr]
    if cleaner.isEmpty():                               # spark.cleaner.referenceTracking=false: nothing to ask
        return
    for shuffle_id in sorted(shuffle_ids):
        cleaner.get().doCleanupShuffle(shuffle_id, True)


def _storage_level(name: str) -> StorageLevel:
    try:
        return _LEVELS[name.upper()]
    except KeyError:
        raise ValueError(f"{STORAGE_LEVEL_KEY}={name!r}: expected one of {sorted(_LEVELS)}") from None
