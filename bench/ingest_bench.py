"""`telco-ra ingest` throughput: CSV lines per second per core at 1M lines (issue 12).

The CSV (Kestrel's layout, conf/carriers/kestrel.yaml) is generated before anything is timed and kept for reuse.
Then, in one Spark session: a warm-up ingest of a small file (JIT and code generation are not the ingest's cost at
scale), a scan floor (Spark parsing every column of the same file once, nothing else), and the ingest itself
(recognition and hashing without Spark, then read, normalise, phone numbers, one Delta commit). The machine is
shared, so the floor and the load average are recorded next to the seconds; the ratio to the floor says more than
the seconds alone.

    python bench/ingest_bench.py                     # 1M lines, local[*], JSON under bench/results/
    python bench/ingest_bench.py --lines 5000000     # the issue's "a 5M-line invoice must ingest"
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import os
import platform
import random
import shutil
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from pyspark.sql import SparkSession  # noqa: E402
from pyspark.sql import functions as F  # noqa: E402

from jobs.config import load_conf  # noqa: E402
from jobs.ingest.cli import ingest_files, plan  # noqa: E402
from jobs.ingest.layouts import load_layouts  # noqa: E402
from jobs.session import build_session  # noqa: E402
from jobs.spark_status import stage_figures  # noqa: E402

LOG = logging.getLogger("bench")
HEADER = ["Call Date", "Call Time (ET)", "Orig TN", "Term TN", "Dir", "DURATION_SEC", "Billed Mins", "Charge USD",
          "Ref", "CALL_ID"]


def generate(path: Path, lines: int, seed: int = 42) -> float:
    """A month of Kestrel lines: 2,000 of our numbers calling 200,000 others (a tenth abroad, dialled with 011),
    each column spelled one way throughout, as a carrier's export does; half the lines echo our record id.
    Returns the seconds it took."""
    started = time.monotonic()
    rng = random.Random(seed)
    ours = [f"(212) 555-{n:04d}" for n in range(2000)]
    month = datetime(2026, 3, 1)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        out = csv.writer(f)
        out.writerow(HEADER)
        for i in range(lines):
            start = month + timedelta(seconds=rng.randrange(31 * 86400))
            other = rng.randrange(200_000)
            dialled = f"011 44 20 79{other:06d}" if other % 10 == 0 else f"1-646-5{other // 10000:02d}-{other % 10000:04d}"
            seconds = rng.randrange(1, 1800)
            minutes = max(1, -(-seconds // 60))
            out.writerow([f"{start:%m/%d/%Y}", f"{start:%H:%M:%S}", rng.choice(ours), dialled, "OUT", seconds,
                          minutes, f"{minutes * 0.012:.4f}", f"K-{i:08d}", f"MED-{i:09d}" if i % 2 else ""])
    return time.monotonic() - started


def _conf(work: Path) -> Path:
    conf = work / "conf.yaml"
    conf.write_text(f"tables: {{carrier_invoice_line: {work / 'lake' / 'carrier_invoice_line'}}}\n"
                    f"output: {work / 'lake' / 'output'}\n"
                    "cycles: {\"2026-03\": {start: 2026-03-01T00:00:00Z, end: 2026-04-01T00:00:00Z, "
                    "close: 2026-04-03T00:00:00Z}}\n"
                    f"carriers: {ROOT / 'conf' / 'carriers'}\n")
    return conf


def _ingest(spark: SparkSession, work: Path, csv_path: Path) -> dict[str, Any]:
    shutil.rmtree(work / "lake", ignore_errors=True)
    conf = load_conf(_conf(work))
    layouts = load_layouts(conf.carriers)
    started = time.monotonic()
    planned = [plan(csv_path, layouts)]
    plan_s = time.monotonic() - started
    started = time.monotonic()
    results = ingest_files(spark, conf, planned)
    spark_s = time.monotonic() - started
    return {"plan_s": plan_s, "spark_s": spark_s, "lines": results[0].lines, "parse_errors": results[0].parse_errors}


def _scan_floor(spark: SparkSession, csv_path: Path) -> float:
    started = time.monotonic()
    df = spark.read.option("header", "true").csv(str(csv_path))
    df.select(F.max(F.length(F.concat_ws("|", *df.columns)))).collect()
    return time.monotonic() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--data", default="/tmp/telco-ra-ingest-bench", help="where the CSV and the table go")
    parser.add_argument("--master", default="local[*]")
    parser.add_argument("--driver-memory", default="4g")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results"))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    work = Path(args.data)
    big = work / f"kestrel-{args.lines}.csv"
    generate_s = None
    if not big.exists():
        generate_s = generate(big, args.lines)
    small = work / "kestrel-1000.csv"
    if not small.exists():
        generate(small, 1000, seed=7)
    spark = build_session({"master": args.master, "settings": {"spark.driver.memory": args.driver_memory,
                                                                "spark.sql.shuffle.partitions": 8}},
                          app_name="telco-ra-ingest-bench")
    cores = spark.sparkContext.defaultParallelism
    load_before = os.getloadavg()
    warm = _ingest(spark, work, small)
    floor_s = _scan_floor(spark, big)
    measured = _ingest(spark, work, big)
    figures = stage_figures(spark, lambda group: group.startswith("telco-ra:ingest"))
    seconds = measured["plan_s"] + measured["spark_s"]
    result = {
        "at": datetime.now(UTC).isoformat(), "host": platform.node(), "cores": cores, "master": args.master,
        "spark": spark.version, "lines": args.lines, "file_bytes": big.stat().st_size, "generate_s": generate_s,
        "load_average_before": load_before, "load_average_after": os.getloadavg(),
        "warm_up_1000_lines_s": warm["plan_s"] + warm["spark_s"], "scan_floor_s": floor_s,
        "plan_s": measured["plan_s"], "spark_s": measured["spark_s"], "ingest_s": seconds,
        "lines_written": measured["lines"], "parse_errors": measured["parse_errors"],
        "lines_per_s": args.lines / seconds, "lines_per_s_per_core": args.lines / seconds / cores,
        "ratio_to_scan_floor": seconds / floor_s,
        "figures_of_all_ingest_jobs": figures.__dict__,
    }
    out = Path(args.out) / f"{datetime.now(UTC):%Y-%m-%d}-ingest-{args.lines // 1_000_000 or args.lines}" \
                           f"{'M' if args.lines >= 1_000_000 else ''}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    print(f"wrote {out}")
    spark.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
