"""`make bench`: the usage-to-bill job against its floors and baselines, all in one Spark session.

Why ratios: the machine is shared and noisy, so lone seconds say little; the job measured against a scan of the
same inputs (scan floor), one exact-key join per input pair (join floor), a naive non-equi fuzzy join and
datacompy's Spark comparison, each run in the same session right before or after it, says how much work the job
does beyond the unavoidable. Stage figures (task time, shuffle bytes, spill) come from Spark's status store (the
data the REST API serves), attributed to control points by the job groups `jobs.phases` sets.

    python bench/run_bench.py --rows 1000000                  # generate (or reuse) 1M, bench, write JSON
    python bench/run_bench.py --rows 1000000 --rows 10000000  # both sizes in one process: linearity ratios
    python bench/run_bench.py --rows 10000000 --scenario seed004
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import resource
import shutil
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from pyspark.sql import SparkSession  # noqa: E402
from pyspark.sql import functions as F  # noqa: E402

from bench import baselines  # noqa: E402
from jobs import phases  # noqa: E402
from jobs.config import load_conf  # noqa: E402
from jobs.outputs import read_output  # noqa: E402
from jobs.ruleset import load_ruleset  # noqa: E402
from jobs.run import execute  # noqa: E402
from jobs.spark_status import HeapSampler, StageFigures, figures_by_description, stage_figures  # noqa: E402
from transforms.checkpoints import CUT_DIR_KEY, STORAGE_LEVEL_KEY  # noqa: E402

LOG = logging.getLogger("bench")
RULESET = ROOT / "rulesets" / "usage_to_bill.yaml"
CYCLE = "2026-06"
MIB = 1 << 20
# Phases of a run (jobs.run) and the input rows each one processes (for rows per second per core).
PHASE_ROWS = {
    "prepare": ("cdr", "rated_event", "bill_charge"),
    "usage-to-rating": ("cdr", "rated_event"),
    "rating-accuracy": ("rated_event",),
    "rating-to-billing": ("rated_event", "bill_charge"),
    "usage-aggregate": ("rated_event", "bill_charge"),
    "totals": ("cdr", "rated_event", "bill_charge"),
    "cases": ("cdr", "rated_event", "bill_charge"),
    "write": ("cdr", "rated_event", "bill_charge"),
}


@dataclass
class Step:
    """One measured piece of work: wall time, the rows it processed and Spark's stage figures for it."""

    name: str
    seconds: float
    rows: int
    figures: StageFigures
    extra: dict[str, Any] = field(default_factory=dict)

    def rows_per_core_s(self, cores: int) -> float:
        return self.rows / self.seconds / cores if self.seconds > 0 else 0.0


@dataclass
class SizeResult:
    rows: int
    scenario: str
    data_dir: str
    generate_s: float | None
    input_rows: dict[str, int]
    steps: list[Step]
    peak_heap_bytes: int
    peak_heap_after_gc_bytes: int
    ratios: dict[str, float | None]
    checks: dict[str, Any]

    def step(self, name: str) -> Step | None:
        return next((s for s in self.steps if s.name == name), None)


class DiskSampler:
    """Peak bytes under some folders (spark.local.dir: shuffle files, spilled blocks; the Parquet cut folder).

    What a run needs of the disk besides its inputs and outputs: on a small box, whether 100M fits.
    """

    def __init__(self, folders: list[Path], interval_s: float = 5.0) -> None:
        self.folders, self._interval = folders, interval_s
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="disk-sampler", daemon=True)

    @staticmethod
    def _size(folder: Path) -> int:
        total = 0
        for root, _dirs, files in os.walk(folder):
            for name in files:
                try:
                    total += os.lstat(os.path.join(root, name)).st_size
                except OSError:      # deleted while walking
                    pass
        return total

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self.peak = max(self.peak, sum(self._size(f) for f in self.folders))

    def start(self) -> DiskSampler:
        self._thread.start()
        return self

    def reset(self) -> None:
        self.peak = 0

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)


class Bench:
    """Holds the session, the heap and disk samplers and the list of steps of the size being measured."""

    def __init__(self, spark: SparkSession, tag: str, scratch: list[Path]) -> None:
        self.spark = spark
        self.tag = tag
        self.cores = spark.sparkContext.defaultParallelism
        self.heap = HeapSampler(spark).start()
        self.disk = DiskSampler(scratch).start()
        self.steps: list[Step] = []

    @contextmanager
    def step(self, name: str, rows: int) -> Iterator[dict[str, Any]]:
        """Time the block under its own job group; yields a dict for extra figures."""
        group = f"bench:{self.tag}:{name}"
        self.spark.sparkContext.setJobGroup(group, f"bench {name}")
        extra: dict[str, Any] = {}
        started = time.monotonic()
        try:
            yield extra
        finally:
            seconds = time.monotonic() - started
            self.spark.sparkContext.setLocalProperty("spark.jobGroup.id", None)  # type: ignore[arg-type]
            figures = stage_figures(self.spark, lambda g: g == group)
            self.steps.append(Step(name, seconds, rows, figures, extra))
            LOG.info("%s: %.1f s", name, seconds)


# ------------------------------------------------------------------------------------------------------ data


def dataset(spark: SparkSession, data_root: Path, rows: int, scenario: str, seed: int) -> tuple[Path, float | None]:
    """The generated month for (scenario, rows, seed): reused when already there, else generated now."""
    from jobs.generate import generate
    from jobs.synthetic.usage_to_bill import GeneratorParams

    folder = data_root / f"{scenario}-{rows}-s{seed}"
    if (folder / "ground_truth" / "_delta_log").is_dir():
        LOG.info("reusing %s", folder)
        return folder, None
    if scenario == "seed004":
        preset = getattr(GeneratorParams, "seed004", None)
        if preset is None:
            raise SystemExit("bench: this generator has no seed004 preset")
        params = preset(rows=rows, seed=seed)
    else:
        params = GeneratorParams.for_cycle(CYCLE, rows=rows, seed=seed)
    started = time.monotonic()
    generate(spark, str(folder), params)
    return folder, time.monotonic() - started


def write_conf(folder: Path, output: Path) -> Path:
    tables = {name: str(folder / name) for name in ("cdr", "rated_event", "bill_charge", "suspense", "tariff")}
    lines = ["tables:"] + [f"  {k}: {v}" for k, v in tables.items()]
    lines += [f"output: {output}", "cycles:",
              f'  "{CYCLE}": {{start: "2026-06-01T00:00:00Z", end: "2026-07-01T00:00:00Z", '
              f'close: "2026-07-03T00:00:00Z"}}', "phone_region: US"]
    path = folder / "bench-conf.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


# ------------------------------------------------------------------------------------------------------ steps


def bench_size(bench: Bench, rows: int, folder: Path, args: argparse.Namespace,
               generate_s: float | None) -> SizeResult:
    spark = bench.spark
    conf_path = write_conf(folder, folder / "output")
    if not args.by_bucket:        # by bucket, committed partition runs of an earlier launch are kept (and skipped)
        shutil.rmtree(folder / "output", ignore_errors=True)
    shutil.rmtree(folder / "floor", ignore_errors=True)
    conf, ruleset = load_conf(conf_path), load_ruleset(RULESET)
    cycle = conf.cycle(CYCLE)
    inputs = baselines.cycle_inputs(spark, conf, cycle)
    input_rows = {name: int(df.count()) for name, df in inputs.items()}
    all_rows = sum(input_rows[t] for t in ("cdr", "rated_event", "bill_charge"))

    if not args.skip_scan_floor:
        with bench.step("scan floor", all_rows):
            baselines.scan_floor(inputs)
    if not args.skip_join_floor:
        with bench.step("join floor", all_rows):
            baselines.join_floor(inputs, folder / "floor")
        shutil.rmtree(folder / "floor", ignore_errors=True)    # measured; its disk is the job's now

    if args.by_bucket:
        return bench_by_bucket(bench, rows, folder, args, generate_s, input_rows)

    run_id = ""
    heap_job = heap_job_gc = 0
    hotspots: list[dict[str, Any]] = []
    for index, level in enumerate(args.storage_level or ["default"]):
        # Each variant is a separate run (own run id) of the same job over the same inputs, in this session.
        spark.conf.unset(STORAGE_LEVEL_KEY)
        spark.conf.unset(CUT_DIR_KEY)
        if level == "PARQUET":
            spark.conf.set(CUT_DIR_KEY, str(cut_dir(args)))
        elif level != "default":
            spark.conf.set(STORAGE_LEVEL_KEY, level)
        suffix = "" if index == 0 else f" [{level}]"
        variant_run = f"bench-{bench.tag}-{int(time.time())}-{index}"
        phases.RECORDED.clear()
        bench.heap.reset()
        bench.disk.reset()
        # Its own step name per variant: a step's jobs are found by the step's job group, and a name used twice
        # counted the first variant's jobs outside phases again in the second's (the 1,000-slot bench's "93 jobs").
        with bench.step(f"job (other){suffix}", all_rows):
            started = time.monotonic()
            execute(spark, conf, ruleset, CYCLE, variant_run)
            job_s = time.monotonic() - started
        other = bench.steps.pop()
        phase_steps = []
        for timing in phases.RECORDED:
            figures = stage_figures(spark, timing.group.__eq__)
            phase_rows = sum(input_rows[t] for t in PHASE_ROWS.get(timing.name, ("cdr", "rated_event", "bill_charge")))
            phase_steps.append(Step(f"  {timing.name}", timing.seconds, phase_rows, figures))
        total = other.figures
        for s in phase_steps:
            total = total.add(s.figures)
        bench.steps.append(Step("job" + suffix, job_s, all_rows, total,
                                {"storage_level": level, "run_id": variant_run,
                                 "peak_heap_bytes": bench.heap.peak_bytes,
                                 "peak_heap_after_gc_bytes": bench.heap.peak_after_gc_bytes,
                                 "peak_scratch_disk_bytes": bench.disk.peak}))
        if index == 0:
            run_id, heap_job, heap_job_gc = variant_run, bench.heap.peak_bytes, bench.heap.peak_after_gc_bytes
            hotspots = top_descriptions(spark, variant_run)
            bench.steps.extend(phase_steps)
            bench.steps.append(Step("  outside phases", job_s - sum(s.seconds for s in phase_steps), all_rows,
                                    other.figures))
    spark.conf.unset(STORAGE_LEVEL_KEY)
    spark.conf.unset(CUT_DIR_KEY)

    checks: dict[str, Any] = {"run_id": run_id, "outcomes": outcome_counts(spark, conf.output, run_id),
                              "hotspots": hotspots}
    if args.scenario == "seed004":
        checks["seed004"] = seed004_counts(rows, checks["outcomes"])
    if not args.skip_exact and rows == max(args.rows or [rows]):   # the issue measures it on the largest size
        with bench.step("exact stage (ours)", input_rows["rated_event"] + input_rows["bill_charge"]) as extra:
            extra.update(baselines.exact_stage_ours(inputs, ruleset, cycle, conf.phone_region))
        if baselines.datacompy_available():
            with bench.step("exact stage (datacompy)", input_rows["rated_event"] + input_rows["bill_charge"]) as extra:
                extra.update(baselines.exact_stage_datacompy(spark, inputs))
        else:
            LOG.warning("datacompy is not installed: `pip install -e .[bench]` (make bench does)")
    if args.rows_naive >= input_rows["cdr"]:
        prepared = baselines.fuzzy_inputs(spark, inputs, conf, cycle, ruleset, folder / "floor" / "fuzzy")
        fuzzy_rows = prepared.left_rows + prepared.right_rows
        with bench.step("fuzzy (ours)", fuzzy_rows) as extra:
            ours = baselines.fuzzy_ours(prepared)
            extra.update(ours.figures)
        with bench.step("fuzzy (naive)", fuzzy_rows) as extra:
            naive = baselines.fuzzy_naive(prepared)
            extra.update(naive.figures)
        checks["fuzzy_same_matches"] = baselines.same_matches(ours, naive)
        checks["fuzzy_candidates"] = ours.figures.get("join_output_rows")
        checks["fuzzy_matched"] = ours.figures.get("matched")
        checks["fuzzy_plan"] = ours.figures.get("join_plan")
    return SizeResult(rows=rows, scenario=args.scenario, data_dir=str(folder), generate_s=generate_s,
                      input_rows=input_rows, steps=list(bench.steps), peak_heap_bytes=heap_job,
                      peak_heap_after_gc_bytes=heap_job_gc, ratios=ratios(bench.steps, checks), checks=checks)


def bench_by_bucket(bench: Bench, rows: int, folder: Path, args: argparse.Namespace, generate_s: float | None,
                    input_rows: dict[str, int]) -> SizeResult:
    """The month as one partition run per account bucket (`telco-ra run --partition account_bucket=N`), in turn.

    What an operator does with a month whose single run needs more scratch disk than the box has: each partition
    run reads the whole inputs but keeps only its bucket's intermediates and writes its slice of the outputs. Every
    run is committed on its own and has a deterministic run id, so launching the bench again skips the buckets
    already committed (a month spread over several sittings). Each committed bucket's figures are appended to
    <results-dir>/<dataset>-by-bucket.jsonl as it ends, so a stopped launch keeps what it measured.
    """
    spark = bench.spark
    conf, ruleset = load_conf(folder / "bench-conf.yaml"), load_ruleset(RULESET)
    if ruleset.account_buckets < 2:
        raise SystemExit("bench --by-bucket: the ruleset has a single account bucket")
    spark.conf.unset(STORAGE_LEVEL_KEY)
    spark.conf.unset(CUT_DIR_KEY)
    level = (args.storage_level or ["default"])[0]
    if level == "PARQUET":
        spark.conf.set(CUT_DIR_KEY, str(cut_dir(args)))
    elif level != "default":
        spark.conf.set(STORAGE_LEVEL_KEY, level)
    progress = Path(args.results_dir) / f"{folder.name}-by-bucket.jsonl"
    progress.parent.mkdir(parents=True, exist_ok=True)
    all_rows = sum(input_rows[t] for t in ("cdr", "rated_event", "bill_charge"))
    buckets = args.buckets if args.buckets is not None else list(range(ruleset.account_buckets))
    outside = [b for b in buckets if not 0 <= b < ruleset.account_buckets]
    if outside:
        raise SystemExit(f"bench --buckets: {outside} not in 0..{ruleset.account_buckets - 1}")
    for bucket in buckets:
        phases.RECORDED.clear()
        bench.heap.reset()
        bench.disk.reset()
        with bench.step(f"bucket {bucket}", all_rows):
            result = execute(spark, conf, ruleset, CYCLE, bucket=bucket)
        step = bench.steps[-1]
        for timing in phases.RECORDED:      # the run's jobs carry its phases' groups, not the bench step's
            step.figures = step.figures.add(stage_figures(spark, timing.group.__eq__))
        step.extra.update({"run_id": result.run_id, "already_committed": result.already_committed,
                           "peak_heap_bytes": bench.heap.peak_bytes,
                           "peak_heap_after_gc_bytes": bench.heap.peak_after_gc_bytes,
                           "peak_scratch_disk_bytes": bench.disk.peak,
                           "phases": {t.name: round(t.seconds, 1) for t in phases.RECORDED}})
        if not result.already_committed:
            figures = step.figures
            step.extra["outcomes"] = outcome_counts(spark, conf.output, result.run_id)
            with progress.open("a") as out:
                out.write(json.dumps({"at": datetime.now(UTC).isoformat(), "bucket": bucket, "seconds": step.seconds,
                                      "task_s": figures.run_time_ms / 1000,
                                      "shuffle_write_mb": figures.shuffle_write_bytes / MIB,
                                      "spill_mb": figures.disk_spilled_bytes / MIB, **step.extra}, default=str) + "\n")
        LOG.info("bucket %d: %s in %.1f s", bucket, "already committed" if result.already_committed else "committed",
                 step.seconds)
    spark.conf.unset(STORAGE_LEVEL_KEY)
    spark.conf.unset(CUT_DIR_KEY)
    ran = [s for s in bench.steps if s.name.startswith("bucket ") and not s.extra["already_committed"]]
    if ran:        # the month's job: the buckets run in this launch (all of them unless a launch before did some)
        total = ran[0].figures
        for s in ran[1:]:
            total = total.add(s.figures)
        name = "job" if len(ran) == ruleset.account_buckets else f"job ({len(ran)} of {ruleset.account_buckets} buckets)"
        bench.steps.append(Step(name, sum(s.seconds for s in ran), all_rows, total, {"by_bucket": True}))
    checks: dict[str, Any] = {"outcomes": outcome_counts_by_bucket(spark, conf.output)}
    if args.scenario == "seed004":
        checks["seed004"] = seed004_counts(rows, checks["outcomes"])
    heap = max((s.extra["peak_heap_bytes"] for s in ran), default=0)
    heap_gc = max((s.extra["peak_heap_after_gc_bytes"] for s in ran), default=0)
    return SizeResult(rows=rows, scenario=args.scenario, data_dir=str(folder), generate_s=generate_s,
                      input_rows=input_rows, steps=list(bench.steps), peak_heap_bytes=heap,
                      peak_heap_after_gc_bytes=heap_gc, ratios=ratios(bench.steps, checks), checks=checks)


def parse_buckets(text: str) -> list[int]:
    """'9-15' or '3,5,7-9' -> the bucket numbers, in order (a launch's share of the month)."""
    out: list[int] = []
    try:
        for part in text.split(","):
            lo, _, hi = part.partition("-")
            out.extend(range(int(lo), int(hi or lo) + 1))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: want bucket numbers and ranges, e.g. 9-15 or 0,3,5-7") from None
    return out


def outcome_counts_by_bucket(spark: SparkSession, output: str) -> dict[str, int]:
    """control point/side/outcome -> count over every committed partition run of the month (one per bucket)."""
    rows = (read_output(spark, f"{output}/control_run").where(F.col("partition_scope").startswith("account_bucket="))
            .select("control_point_id", F.explode("metrics").alias("m"))
            .groupBy("control_point_id", "m.side", "m.outcome").agg(F.sum("m.count").alias("n")).collect())
    return dict(sorted((f"{r['control_point_id']}/{r['side']}/{r['outcome']}", int(r["n"])) for r in rows))


def top_descriptions(spark: SparkSession, run_id: str, top: int = 15) -> list[dict[str, Any]]:
    """The job's most expensive pieces by task time: each cut (named by where the code asks for it) and the
    phases' other jobs. This is the profile the ratios are explained from. `cpu_s` against `task_s` says whether a
    piece computes or waits (a cut written while executor storage is full waits on eviction)."""
    parts = figures_by_description(spark, lambda g: g.endswith(f":{run_id}"))
    ranked = sorted(parts.items(), key=lambda kv: -kv[1].run_time_ms)[:top]
    return [{"what": d.replace(f" ({run_id})", ""), "task_s": round(f.run_time_ms / 1000, 1),
             "cpu_s": round(f.cpu_time_ms / 1000, 1), "shuffle_write_mb": round(f.shuffle_write_bytes / MIB, 1),
             "input_mb": round(f.input_bytes / MIB, 1), "output_mb": round(f.output_bytes / MIB, 1), "jobs": f.jobs}
            for d, f in ranked]


def outcome_counts(spark: SparkSession, output: str, run_id: str) -> dict[str, int]:
    """control point/side/outcome -> count, from the committed control_run (bounded by the vocabulary)."""
    row = read_output(spark, f"{output}/control_run").where(F.col("run_id") == run_id).select(
        F.collect_list(F.struct("control_point_id", "metrics")).alias("m")).first()
    out: dict[str, int] = {}
    for cp in (row["m"] if row else []):
        for m in cp["metrics"]:
            out[f"{cp['control_point_id']}/{m['side']}/{m['outcome']}"] = int(m["count"])
    return dict(sorted(out.items()))


def ratios(steps: list[Step], checks: dict[str, Any]) -> dict[str, float | None]:
    by = {s.name: s.seconds for s in steps}

    def ratio(a: str, b: str) -> float | None:
        return round(by[a] / by[b], 2) if a in by and b in by and by[b] > 0 else None

    cand, matched = checks.get("fuzzy_candidates"), checks.get("fuzzy_matched")
    return {
        "job / scan floor (goal <= 5)": ratio("job", "scan floor"),
        "job / join floor (goal <= 2)": ratio("job", "join floor"),
        "naive fuzzy / ours (goal >= 20)": ratio("fuzzy (naive)", "fuzzy (ours)"),
        "datacompy / our exact stage (goal >= 3)": ratio("exact stage (datacompy)", "exact stage (ours)"),
        "candidate / matched pairs (goal <= 3)": round(cand / matched, 3) if cand and matched else None,
    }


# ------------------------------------------------------------------------------------------------------ report


def render(results: list[SizeResult], cores: int, cross: dict[str, float | None]) -> str:
    lines = []
    for r in results:
        lines.append(f"\n== {r.scenario} {r.rows:,} usage slots: inputs " +
                     ", ".join(f"{k} {v:,}" for k, v in r.input_rows.items()) +
                     (f"; generated in {r.generate_s:.1f} s" if r.generate_s else "; dataset reused"))
        head = (f"{'step':<28}{'wall s':>9}{'rows':>13}{'rows/s/core':>13}{'task s':>9}{'shuffle MB':>12}"
                f"{'spill MB':>10}{'jobs':>6}{'stages':>7}")
        lines += [head, "-" * len(head)]
        for s in r.steps:
            f = s.figures
            lines.append(f"{s.name:<28}{s.seconds:>9.1f}{s.rows:>13,}{s.rows_per_core_s(cores):>13,.0f}"
                         f"{f.run_time_ms / 1000:>9.1f}{f.shuffle_write_bytes / MIB:>12.1f}"
                         f"{(f.memory_spilled_bytes + f.disk_spilled_bytes) / MIB:>10.1f}{f.jobs:>6}{f.stages:>7}")
        lines.append(f"peak driver heap during the job: {r.peak_heap_bytes / MIB:,.0f} MiB "
                     f"(after GC: {r.peak_heap_after_gc_bytes / MIB:,.0f} MiB); "
                     f"python driver max RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:,.0f} MiB")
        for s in r.steps:
            if s.name.startswith("job") and "peak_scratch_disk_bytes" in s.extra:
                lines.append(f"peak scratch disk ({s.name}): {s.extra['peak_scratch_disk_bytes'] / MIB:,.0f} MiB "
                             "(spark.local.dir + Parquet cuts, sampled every 5 s)")
        for name, value in r.ratios.items():
            lines.append(f"{name:<44}{'n/a' if value is None else value}")
        if r.checks.get("hotspots"):
            lines.append("where the job's task time goes (top pieces; a cut is named by the line that asks for it):")
            lines.append(f"  {'task s':>8}{'CPU s':>8}{'shuffle MB':>12}{'read MB':>10}{'written MB':>12}  what")
            for h in r.checks["hotspots"]:
                lines.append(f"  {h['task_s']:>8.1f}{h['cpu_s']:>8.1f}{h['shuffle_write_mb']:>12.1f}"
                             f"{h['input_mb']:>10.1f}{h['output_mb']:>12.1f}  {h['what']}")
        if "seed004" in r.checks:
            lines.append("seed-004 counts reported (planted): " + ", ".join(
                f"{k} {v['reported']:,} ({v['planted']:,})" for k, v in r.checks["seed004"].items()))
        if "fuzzy_same_matches" in r.checks:
            lines.append(f"{'fuzzy: same matches as naive':<44}{r.checks['fuzzy_same_matches']}")
    for name, value in cross.items():
        lines.append(f"{name:<44}{'n/a' if value is None else value}")
    return "\n".join(lines)


def seed004_counts(rows: int, outcomes: dict[str, int]) -> dict[str, dict[str, int]]:
    """The four counts seed 004 states, as the job reported them, against what the generator planted."""
    from jobs.synthetic.usage_to_bill import GeneratorParams

    want = GeneratorParams.seed004(rows=rows).exact
    assert want is not None
    u2r = "usage-to-rating/LEFT/"
    reported = {
        "rejected": outcomes.get(u2r + "IN_SUSPENSE", 0) + outcomes.get(u2r + "SUSPENSE_AGED", 0),
        "late": outcomes.get(u2r + "LATE_USAGE", 0),
        "duplicates": outcomes.get(u2r + "DUPLICATE_USAGE", 0),
        "tariff mismatches": outcomes.get("rating-accuracy/LEFT/TARIFF_MISMATCH", 0),
    }
    planted = {"rejected": want.rejected, "late": want.late, "duplicates": want.duplicates,
               "tariff mismatches": want.tariff_mismatches}
    return {k: {"reported": reported[k], "planted": planted[k]} for k in reported}


def cross_ratios(results: list[SizeResult]) -> dict[str, float | None]:
    if len(results) < 2:
        return {}
    small, large = results[0], results[-1]
    s_job, l_job = small.step("job"), large.step("job")
    scale = large.rows / small.rows
    return {
        f"time({large.rows:,}) / time({small.rows:,}) (x{scale:g} rows, goal <= {1.2 * scale:g})":
            round(l_job.seconds / s_job.seconds, 2) if s_job and l_job else None,
        f"peak heap({large.rows:,}) / peak heap({small.rows:,}) (goal <= 1.3)":
            round(large.peak_heap_bytes / small.peak_heap_bytes, 2) if small.peak_heap_bytes else None,
        f"heap after GC({large.rows:,}) / heap after GC({small.rows:,})":
            round(large.peak_heap_after_gc_bytes / small.peak_heap_after_gc_bytes, 2)
            if small.peak_heap_after_gc_bytes else None,
    }


def local_dir(args: argparse.Namespace) -> Path:
    return Path(args.local_dir) if args.local_dir else ROOT / "bench" / "data" / "spark-local"


def cut_dir(args: argparse.Namespace) -> Path:
    return Path(args.data_dir) / "cuts"


def build_spark(args: argparse.Namespace, rows: int) -> SparkSession:
    from jobs.session import build_session

    partitions = args.shuffle_partitions or max(8, rows // 250_000)
    return build_session({"master": args.master, "settings": {
        "spark.driver.memory": args.driver_memory,
        "spark.sql.shuffle.partitions": partitions,
        "spark.ui.retainedJobs": 100_000, "spark.ui.retainedStages": 100_000,
        "spark.sql.ui.retainedExecutions": 100_000, "spark.ui.retainedTasks": 1_000,
        "spark.local.dir": str(local_dir(args)),
        **dict(kv.split("=", 1) for kv in args.spark_conf or []),
    }}, app_name="telco-ra-bench")


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr)
    parser = argparse.ArgumentParser(prog="bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, action="append", help="usage slots (repeat for a linearity pair)")
    parser.add_argument("--scenario", choices=("default", "seed004"), default="default")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--data-dir", default=str(ROOT / "bench" / "data"))
    parser.add_argument("--results-dir", default=str(ROOT / "bench" / "results"))
    parser.add_argument("--master", default="local[*]")
    parser.add_argument("--driver-memory", default="8g")
    parser.add_argument("--shuffle-partitions", type=int, default=None, help="default max(8, rows / 250k)")
    parser.add_argument("--spark-conf", action="append", metavar="KEY=VALUE",
                        help="a Spark setting for the bench's session (repeatable), e.g. spark.io.compression.codec=zstd")
    parser.add_argument("--local-dir", default=None, help="spark.local.dir (spill, shuffle, checkpoints)")
    parser.add_argument("--rows-naive", type=int, default=1_100_000,
                        help="run the naive fuzzy baseline when the cdr input has at most this many rows")
    parser.add_argument("--storage-level", action="append",
                        help="run the job once per value (default, DISK_ONLY, MEMORY_AND_DISK_SER, ..., or PARQUET: "
                             "files under <data-dir>/cuts): how its intermediate results are kept; the first one is "
                             "the job the ratios use")
    parser.add_argument("--skip-exact", action="store_true", help="skip the exact-stage vs datacompy comparison")
    parser.add_argument("--skip-join-floor", action="store_true",
                        help="skip the join floor (at 100M it is half an hour of its own; the job/join ratio is "
                             "then n/a)")
    parser.add_argument("--by-bucket", action="store_true",
                        help="run the month as one committed partition run per account bucket instead of one run; "
                             "a relaunch skips the buckets already committed (for a month whose one run needs more "
                             "scratch disk than the box has)")
    parser.add_argument("--buckets", type=parse_buckets, default=None, metavar="LIST",
                        help="with --by-bucket: only these buckets (e.g. 9-15), for a month spread over launches")
    parser.add_argument("--skip-scan-floor", action="store_true",
                        help="skip the scan floor (a launch that only finishes a month's buckets; job/scan is then n/a)")
    parser.add_argument("--generate-only", action="store_true",
                        help="generate (or find) the datasets and stop: a long generation need not share a session "
                             "with the measurements")
    args = parser.parse_args(argv)
    sizes = sorted(args.rows or [1_000_000])
    spark = build_spark(args, sizes[-1])
    results: list[SizeResult] = []
    cores = spark.sparkContext.defaultParallelism
    stamp = datetime.now(UTC)
    label = "+".join(_size_label(r) for r in sizes)
    out = Path(args.results_dir) / f"{stamp:%Y-%m-%d}-{args.scenario}-{label}.json"
    for rows in sizes:
        folder, generate_s = dataset(spark, Path(args.data_dir), rows, args.scenario, args.seed)
        if args.generate_only:
            print(f"{folder}: " + ("reused" if generate_s is None else f"generated in {generate_s:.1f} s"), flush=True)
            continue
        bench = Bench(spark, f"{rows}", [local_dir(args), cut_dir(args)])
        try:
            results.append(bench_size(bench, rows, folder, args, generate_s))
        finally:
            bench.heap.stop()
            bench.disk.stop()
        # Written after every size, so a long run that is stopped keeps what it measured.
        cross = cross_ratios(results)
        print(render(results[-1:], cores, cross), flush=True)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({
            "at": stamp.isoformat(), "host": platform.node(), "cores": cores, "master": args.master,
            "driver_memory": args.driver_memory, "spark": spark.version, "spark_conf": args.spark_conf or [],
            "shuffle_partitions": spark.conf.get("spark.sql.shuffle.partitions"),
            "sizes": [{**asdict(r), "steps": [{**asdict(s), "rows_per_core_s": s.rows_per_core_s(cores)}
                                              for s in r.steps]} for r in results],
            "cross_ratios": cross,
        }, indent=2, default=str) + "\n")
        print(f"\nfigures written to {out}", flush=True)
    spark.stop()
    return 0


def _size_label(rows: int) -> str:
    for unit, scale in (("B", 1_000_000_000), ("M", 1_000_000), ("k", 1_000)):
        if rows >= scale and rows % scale == 0:
            return f"{rows // scale}{unit}"
    return str(rows)


if __name__ == "__main__":
    sys.exit(main())
