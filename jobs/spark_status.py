"""Spark's own figures for what a run did: stage metrics per job group, executed SQL plans, driver heap.

Why here and not only in the Spark UI: the bench attributes run time and shuffle bytes to control points from the
same status store the UI and the REST API (`/api/v1/applications/.../stages`) are served from, and the plan checks
(no Cartesian product, no row-at-a-time Python) are asserted on the plans Spark actually executed. The status store
exists with the UI disabled, so this works in tests and in batch jobs alike. Everything read here is bounded by
Spark's retention settings (`spark.ui.retainedJobs`, `spark.ui.retainedStages`, `spark.sql.ui.retainedExecutions`),
never by the data.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pyspark.sql import SparkSession

# Plan operators that must never appear: a pair explosion, or Python called once per row.
FORBIDDEN_OPERATORS = ("CartesianProduct", "BroadcastNestedLoopJoin", "BatchEvalPython")
HEAP_POOLS = ("Eden", "Survivor", "Old", "Tenured")     # heap pools of G1, Parallel and Serial collectors
JOIN_OPERATORS = ("SortMergeJoin", "ShuffledHashJoin", "BroadcastHashJoin", "BroadcastNestedLoopJoin",
                  "CartesianProduct")


@dataclass
class StageFigures:
    """Sums over the stages of some jobs (the same fields as the REST API's StageData)."""

    jobs: int = 0
    stages: int = 0
    tasks: int = 0
    run_time_ms: int = 0
    cpu_time_ms: int = 0
    input_bytes: int = 0
    input_records: int = 0
    output_bytes: int = 0
    shuffle_read_bytes: int = 0
    shuffle_write_bytes: int = 0
    memory_spilled_bytes: int = 0
    disk_spilled_bytes: int = 0

    def add(self, other: StageFigures) -> StageFigures:
        return StageFigures(**{k: getattr(self, k) + getattr(other, k) for k in self.__dataclass_fields__})


@dataclass(frozen=True)
class SqlNode:
    name: str
    metrics: dict[str, str]


@dataclass(frozen=True)
class SqlExecution:
    execution_id: int
    description: str
    plan: str                      # the physical plan description as first planned
    nodes: list[SqlNode] = field(default_factory=list)   # the final (adaptive) plan graph, with metric values

    def operators(self) -> set[str]:
        return {n.name for n in self.nodes}


def _seq(scala_seq: Any) -> list[Any]:
    return [scala_seq.apply(i) for i in range(scala_seq.size())]


def _option(scala_option: Any) -> Any:
    return scala_option.get() if scala_option.isDefined() else None


def stage_figures(spark: SparkSession, group: Callable[[str], bool]) -> StageFigures:
    """Stage metrics summed over the jobs whose job group satisfies `group` (see jobs.phases for the names)."""
    total = StageFigures()
    for figures in figures_by_description(spark, group).values():
        total = total.add(figures)
    return total


def figures_by_description(spark: SparkSession, group: Callable[[str], bool]) -> dict[str, StageFigures]:
    """`stage_figures` split by job description (a cut's jobs are described by where it was asked for, see
    transforms.checkpoints): which cut of a phase costs what. A stage shared by jobs counts once, for the first."""
    store = spark.sparkContext._jsc.sc().statusStore()  # type: ignore[union-attr]
    stages_of: dict[str, set[int]] = {}
    jobs: dict[str, int] = {}
    seen: set[int] = set()
    for job in sorted(_seq(store.jobsList(None)), key=lambda j: int(j.jobId())):
        name = _option(job.jobGroup())
        if name is None or not group(str(name)):
            continue
        description = str(_option(job.description()) or job.name())
        stages = {int(s) for s in _seq(job.stageIds())} - seen
        seen |= stages
        stages_of.setdefault(description, set()).update(stages)
        jobs[description] = jobs.get(description, 0) + 1
    out: dict[str, StageFigures] = {}
    for description, stage_ids in stages_of.items():
        figures = StageFigures(jobs=jobs[description])
        for stage_id in sorted(stage_ids):
            figures = figures.add(_stage(store, stage_id))
        out[description] = figures
    return out


def _stage(store: Any, stage_id: int) -> StageFigures:
    try:
        stage = store.lastStageAttempt(stage_id)
    except Exception:  # noqa: BLE001 - a stage evicted by spark.ui.retainedStages: not counted
        return StageFigures()
    return StageFigures(
        stages=1, tasks=int(stage.numCompleteTasks()), run_time_ms=int(stage.executorRunTime()),
        cpu_time_ms=int(stage.executorCpuTime()) // 1_000_000, input_bytes=int(stage.inputBytes()),
        input_records=int(stage.inputRecords()), output_bytes=int(stage.outputBytes()),
        shuffle_read_bytes=int(stage.shuffleReadBytes()), shuffle_write_bytes=int(stage.shuffleWriteBytes()),
        memory_spilled_bytes=int(stage.memoryBytesSpilled()), disk_spilled_bytes=int(stage.diskBytesSpilled()))


@dataclass(frozen=True)
class ActiveJob:
    """A running Spark job as the status store has it now, with the sums over its running stages."""

    job_id: int
    group: str | None
    description: str | None
    stages: tuple[int, ...]     # its running stages (none between two stages)
    records: int                # records its running stages have read so far: input plus shuffle records
    tasks_done: int
    tasks: int


def active_jobs(spark: SparkSession) -> list[ActiveJob]:
    """The running jobs, oldest first (a few status-store calls per running job, never a Spark job). Stage figures
    reach the store as tasks end and with each executor heartbeat (`spark.executor.heartbeatInterval`)."""
    sc = spark.sparkContext
    store = sc._jsc.sc().statusStore()  # type: ignore[union-attr]
    out = []
    for job_id in sorted(sc.statusTracker().getActiveJobsIds()):
        try:
            job = store.job(int(job_id))
        except Exception:  # noqa: BLE001 - ended and evicted between the two calls: nothing to show
            continue
        stages, records, done, tasks = [], 0, 0, 0
        for stage_id in _seq(job.stageIds()):
            try:
                stage = store.lastStageAttempt(int(stage_id))
            except Exception:  # noqa: BLE001 - not in the store (yet, or any more)
                continue
            if str(stage.status()) != "ACTIVE":
                continue
            stages.append(int(stage_id))
            records += int(stage.inputRecords()) + int(stage.shuffleReadRecords())
            done += int(stage.numCompleteTasks())
            tasks += int(stage.numTasks())
        group, description = _option(job.jobGroup()), _option(job.description())
        out.append(ActiveJob(int(job_id), None if group is None else str(group),
                             None if description is None else str(description), tuple(sorted(stages)), records,
                             done, tasks))
    return out


def last_execution_id(spark: SparkSession) -> int:
    """Id of the newest SQL execution so far (-1 if none): pass it to `sql_executions` to see only later ones."""
    store = spark._jsparkSession.sharedState().statusStore()  # type: ignore[attr-defined]
    ids = [int(e.executionId()) for e in _seq(store.executionsList())]
    return max(ids, default=-1)


def sql_executions(spark: SparkSession, after: int = -1, with_metrics: bool = True) -> list[SqlExecution]:
    """SQL executions with id > `after`: their plans and (final) plan graphs with metric values."""
    store = spark._jsparkSession.sharedState().statusStore()  # type: ignore[attr-defined]
    out = []
    for e in _seq(store.executionsList()):
        eid = int(e.executionId())
        if eid <= after:
            continue
        nodes: list[SqlNode] = []
        if with_metrics:
            values = store.executionMetrics(eid)
            for node in _seq(store.planGraph(eid).allNodes()):
                metrics = {}
                for m in _seq(node.metrics()):
                    value = values.get(m.accumulatorId())
                    if value.isDefined():
                        metrics[str(m.name())] = str(value.get())
                nodes.append(SqlNode(str(node.name()), metrics))
        out.append(SqlExecution(eid, str(e.description()), str(e.physicalPlanDescription()), nodes))
    return out


def metric_count(value: str | None) -> int:
    """A count metric as Spark renders it ('1,234' or 'total (min, med, max ...)\\n1,234 (...)') as an int."""
    if not value:
        return 0
    text = value.split("\n")[-1].split(" ")[0]
    return int(text.replace(",", ""))


class HeapSampler:
    """Peak JVM heap used by the driver while running (in local mode the driver is also the only executor).

    Samples `MemoryMXBean.getHeapMemoryUsage()` every `interval_s` on a daemon thread; `reset()` starts a new peak.
    """

    def __init__(self, spark: SparkSession, interval_s: float = 0.5) -> None:
        management = spark.sparkContext._jvm.java.lang.management.ManagementFactory  # type: ignore[union-attr]
        self._bean = management.getMemoryMXBean()
        # Heap used right after the latest collection: what the heap retains (cached blocks included), unlike
        # heap used, which mostly says how lazily the collector runs.
        self._collectors = list(management.getGarbageCollectorMXBeans())
        self._interval = interval_s
        self._peak = 0
        self._peak_after_gc = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="heap-sampler", daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                used = int(self._bean.getHeapMemoryUsage().getUsed())
                after_gc = self._after_last_gc()
            except Exception:  # noqa: BLE001 - the gateway closes at shutdown; sampling just stops
                return
            self._peak = max(self._peak, used)
            self._peak_after_gc = max(self._peak_after_gc, after_gc)

    def _after_last_gc(self) -> int:
        latest, used = -1, 0
        for collector in self._collectors:
            info = collector.getLastGcInfo()
            if info is not None and int(info.getEndTime()) > latest:
                latest = int(info.getEndTime())
                after = info.getMemoryUsageAfterGc()   # every pool: keep the heap's (not metaspace, code cache)
                used = sum(int(after[name].getUsed()) for name in after.keySet()
                           if any(part in str(name) for part in HEAP_POOLS))
        return used

    def start(self) -> HeapSampler:
        self._thread.start()
        return self

    def reset(self) -> None:
        self._peak = int(self._bean.getHeapMemoryUsage().getUsed())
        self._peak_after_gc = 0

    @property
    def peak_after_gc_bytes(self) -> int:
        return self._peak_after_gc

    @property
    def peak_bytes(self) -> int:
        return self._peak

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
