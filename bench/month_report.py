"""The figures of a month benched as partition runs (`run_bench.py --by-bucket`), from its progress file.

Why a file and not the process: a month bigger than one sitting is run over several launches (each skips or is
told the buckets already done), so no single process saw every bucket. Each committed bucket appended one line to
`<results-dir>/<dataset>-by-bucket.jsonl`; this sums them into the month's figures: wall and task time, shuffle,
spill, the peaks (heap, scratch disk), each phase's time, and the outcome counts where the lines carry them.

    python bench/month_report.py bench/results/seed004-100000000-s42-by-bucket.jsonl --buckets 16 --input-rows N
    python bench/month_report.py ... --truth bench/data/seed004-100000000-s42/ground_truth   # planted vs reported

With `--truth`, a local Spark session counts the generator's ground truth per account bucket (the same hash the
job partitions its outputs by), so each committed bucket's reported outcome counts are checked against what was
planted in that bucket: a month run over several sittings is checked slice by slice, not only timed.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

MIB = 1 << 20


def latest_by_bucket(lines: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    """bucket -> its last committed line (a bucket benched twice counts once, as its latest run)."""
    out: dict[int, dict[str, Any]] = {}
    for line in lines:
        if not line.get("already_committed"):
            out[int(line["bucket"])] = line
    return dict(sorted(out.items()))


def render(by_bucket: dict[int, dict[str, Any]], buckets: int, input_rows: int | None, cores: int) -> str:
    phases: Counter[str] = Counter()
    head = (f"{'bucket':<8}{'at (UTC)':<21}{'wall s':>9}{'task s':>9}{'shuffle MB':>12}{'spill MB':>10}"
            f"{'heap MiB':>10}{'after GC':>10}{'scratch MiB':>13}")
    lines = [head, "-" * len(head)]
    for b, r in by_bucket.items():
        phases.update({k: float(v) for k, v in r.get("phases", {}).items()})
        lines.append(f"{b:<8}{r['at'][:19]:<21}{r['seconds']:>9.1f}{r['task_s']:>9.1f}{r['shuffle_write_mb']:>12.1f}"
                     f"{r['spill_mb']:>10.1f}{r['peak_heap_bytes'] / MIB:>10,.0f}"
                     f"{r['peak_heap_after_gc_bytes'] / MIB:>10,.0f}{r['peak_scratch_disk_bytes'] / MIB:>13,.0f}")
    rows = list(by_bucket.values())
    wall = sum(r["seconds"] for r in rows)
    lines.append("-" * len(head))
    lines.append(f"{'month':<29}{wall:>9.1f}{sum(r['task_s'] for r in rows):>9.1f}"
                 f"{sum(r['shuffle_write_mb'] for r in rows):>12.1f}{sum(r['spill_mb'] for r in rows):>10.1f}"
                 f"{max(r['peak_heap_bytes'] for r in rows) / MIB:>10,.0f}"
                 f"{max(r['peak_heap_after_gc_bytes'] for r in rows) / MIB:>10,.0f}"
                 f"{max(r['peak_scratch_disk_bytes'] for r in rows) / MIB:>13,.0f}   (sums; peaks are maxima)")
    missing = sorted(set(range(buckets)) - set(by_bucket))
    lines.append(f"buckets committed: {len(by_bucket)} of {buckets}" + (f"; missing {missing}" if missing else ""))
    if input_rows:
        lines.append(f"input rows {input_rows:,}: {input_rows / wall / cores:,.0f} rows/s/core over the month's wall time")
    lines.append("phases (s, summed over buckets): " + ", ".join(f"{k} {v:,.1f}" for k, v in phases.items()))
    counted = [r["outcomes"] for r in rows if "outcomes" in r]
    if counted:
        total: Counter[str] = Counter()
        for c in counted:
            total.update(c)
        lines.append(f"outcome counts over the {len(counted)} bucket(s) whose lines carry them:")
        lines += [f"  {k:<58}{v:>14,}" for k, v in sorted(total.items())]
    return "\n".join(lines)


def planted_by_bucket(truth_path: str, buckets: int) -> dict[int, Counter[str]]:
    """bucket -> 'control point/side/outcome' -> planted count for every bucket, from one scan of the generator's
    ground truth (Spark)."""
    from pyspark.sql import functions as F

    from jobs.session import build_session
    from transforms.keys import account_bucket

    spark = build_session({"master": "local[*]", "settings": {"spark.driver.memory": "4g"}},
                          app_name="telco-ra-month-report")
    truth = spark.read.format("delta").load(truth_path)
    side = F.coalesce(F.col("side"), F.lit("AGGREGATE"))
    rows = (truth.withColumn("_b", account_bucket(F.col("account_id"), buckets))
            .groupBy("_b", "control_point_id", side.alias("side"), "expected_outcome").count()
            .collect())                # bounded: buckets x the outcome vocabulary
    out: dict[int, Counter[str]] = {b: Counter() for b in range(buckets)}
    for r in rows:
        out[int(r["_b"])][f"{r['control_point_id']}/{r['side']}/{r['expected_outcome']}"] += int(r["count"])
    spark.stop()
    return out


def compare(by_bucket: dict[int, dict[str, Any]], planted: dict[int, Counter[str]]) -> tuple[str, bool]:
    """Per outcome, reported vs planted over the buckets checked, and every bucket/outcome that differs."""
    reported: Counter[str] = Counter()
    want: Counter[str] = Counter()
    differ = []
    for b, counts in planted.items():
        got = Counter(by_bucket[b]["outcomes"])
        reported.update(got)
        want.update(counts)
        differ += [f"  bucket {b} {k}: reported {got.get(k, 0):,}, planted {counts.get(k, 0):,}"
                   for k in sorted(set(got) | set(counts)) if got.get(k, 0) != counts.get(k, 0)]
    lines = [f"reported vs planted (ground truth) over buckets {sorted(planted)}:",
             f"  {'control point/side/outcome':<58}{'reported':>14}{'planted':>14}"]
    lines += [f"  {k:<58}{reported.get(k, 0):>14,}{want.get(k, 0):>14,}" for k in sorted(set(reported) | set(want))]
    lines.append("every bucket's counts equal its planted counts" if not differ else
                 f"{len(differ)} bucket/outcome counts differ:")
    return "\n".join(lines + differ), not differ


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="month_report", description=__doc__.split("\n\n")[0])
    parser.add_argument("progress", type=Path, help="<dataset>-by-bucket.jsonl written by run_bench.py --by-bucket")
    parser.add_argument("--buckets", type=int, default=16, help="the ruleset's account_buckets")
    parser.add_argument("--input-rows", type=int, default=None, help="cdr + rated_event + bill_charge rows")
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--truth", help="the generator's ground_truth Delta table: check each bucket's counts")
    parser.add_argument("--planted", type=Path,
                        help="JSON of every bucket's planted counts: read if it exists, else counted from --truth "
                             "(one scan for all buckets) and written, so a later check of new buckets is instant")
    args = parser.parse_args(argv)
    try:
        lines = [json.loads(t) for t in args.progress.read_text().splitlines() if t.strip()]
    except (OSError, json.JSONDecodeError) as e:
        raise SystemExit(f"month_report: {args.progress}: {e}") from None
    by_bucket = latest_by_bucket(lines)
    if not by_bucket:
        raise SystemExit(f"month_report: {args.progress}: no committed bucket")
    print(render(by_bucket, args.buckets, args.input_rows, args.cores), flush=True)
    if args.truth or args.planted:
        checkable = [b for b, r in by_bucket.items() if "outcomes" in r]
        if not checkable:
            raise SystemExit("month_report: no committed bucket's line carries outcome counts to check")
        if args.planted and args.planted.exists():
            planted = {int(b): Counter(c) for b, c in json.loads(args.planted.read_text()).items()}
        elif args.truth:
            planted = planted_by_bucket(args.truth, args.buckets)
            if args.planted:
                args.planted.write_text(json.dumps(planted, indent=1, sort_keys=True) + "\n")
        else:
            raise SystemExit(f"month_report: {args.planted} does not exist and no --truth to count it from")
        report, equal = compare(by_bucket, {b: planted[b] for b in checkable})
        print(report)
        return 0 if equal else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
