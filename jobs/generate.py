"""`telco-ra generate`: write a synthetic month (inputs + ground truth) as Delta tables.

Why: demos, benchmarks and end-to-end tests need a month whose right answer is known. The month itself is built by
`jobs.synthetic.usage_to_bill` (pure, lazy, scales with the cluster); this job only sizes the id range, starts the session
and writes each table as `<out>/<name>` (overwrite), so re-running with the same arguments gives the same tables.

    python -m jobs.generate --out lakehouse/input --rows 200000 --seed 42 --cycle 2026-06
    python -m jobs.generate --out lakehouse/input --scenario seed004    # 10M rows, exact counts (see SCENARIOS)
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from pyspark.sql import SparkSession

from jobs.synthetic.usage_to_bill import SEED004_ROWS, TABLES, GeneratorParams, generate_month, layout

LOG = logging.getLogger(__name__)

# Named scenarios: a fault mix stated as exact outcome counts, and the size it is stated at (the default --rows).
SCENARIOS = {"seed004": (GeneratorParams.seed004, SEED004_ROWS)}

ROWS_PER_PARTITION = 2_000_000
HUGE_METHOD_LIMIT = "spark.sql.codegen.hugeMethodLimit"


def generate(spark: SparkSession, out_dir: str, params: GeneratorParams) -> dict[str, str]:
    """Write cdr, rated_event, bill_charge, suspense, tariff and ground_truth under `out_dir`; returns name -> path.

    Example::

        paths = generate(spark, "/tmp/month", GeneratorParams(rows=10_000))
        spark.read.format("delta").load(paths["ground_truth"])
    """
    partitions = max(spark.sparkContext.defaultParallelism, -(-params.rows // ROWS_PER_PARTITION))
    ids = spark.range(0, params.rows, 1, partitions)
    month = generate_month(ids, params)
    lay = layout(params)
    LOG.info("generating %s rows (seed %s, cycle %s): %s subscriber numbers (%s hot), %s accounts, %s partitions",
             params.rows, params.seed, params.cycle_id, lay.subscribers, lay.hot_numbers, params.account_count,
             partitions)
    if params.exact is not None:
        LOG.info("exact counts: %s rejected (IN_SUSPENSE + SUSPENSE_AGED), %s LATE_USAGE, %s DUPLICATE_USAGE, "
                 "%s TARIFF_MISMATCH", params.exact.rejected, params.exact.late, params.exact.duplicates,
                 params.exact.tariff_mismatches)
    paths: dict[str, str] = {}
    # The generator's projections are wide: whole-stage codegen fuses them into methods beyond the JVM's 8 KB JIT
    # limit, which then run interpreted (measured 5-10x slower). This limit makes Spark fall back to per-operator
    # code for just those stages; the caller's setting is restored afterwards.
    previous = spark.conf.get(HUGE_METHOD_LIMIT, None)
    spark.conf.set(HUGE_METHOD_LIMIT, "8000")
    try:
        for name in TABLES:
            path = str(Path(out_dir) / name) if "://" not in out_dir else f"{out_dir.rstrip('/')}/{name}"
            started = time.monotonic()
            month[name].write.format("delta").mode("overwrite").option("overwriteSchema", "true").save(path)
            LOG.info("wrote %s in %.1f s", path, time.monotonic() - started)
            paths[name] = path
    finally:
        if previous is None:
            spark.conf.unset(HUGE_METHOD_LIMIT)
        else:
            spark.conf.set(HUGE_METHOD_LIMIT, previous)
    return paths


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="telco-ra generate",
                                     description="write a synthetic month with planted faults and its ground truth")
    parser.add_argument("--out", default="lakehouse/input", help="folder of the Delta tables (default %(default)s)")
    parser.add_argument("--rows", type=int, default=None,
                        help=f"usage slots, about one cdr each (default {GeneratorParams.rows}, or the scenario's "
                             f"size: seed004 {SEED004_ROWS})")
    parser.add_argument("--scenario", choices=sorted(SCENARIOS), default=None,
                        help="a named fault mix with exact outcome counts, scaled to --rows (seed004: 50K rejected, "
                             "20K late, 5K duplicates, 3K tariff mismatches per 10M rows)")
    parser.add_argument("--seed", type=int, default=GeneratorParams.seed)
    parser.add_argument("--cycle", default=GeneratorParams.cycle_id,
                        help="billing month YYYY-MM (close = end + 2 days)")
    parser.add_argument("--skew-share", type=float, default=GeneratorParams.skew_share,
                        help="share of calls on the hot numbers (default %(default)s)")
    parser.add_argument("--accounts", type=int, default=None, help="billing accounts (default rows // 40, min 50)")
    parser.add_argument("--master", default="local[*]", help="Spark master (default %(default)s)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns 0 on success, 2 on bad arguments."""
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                            stream=sys.stderr)
    args = build_parser().parse_args(argv)
    try:
        options = {"seed": args.seed, "skew_share": args.skew_share, "accounts": args.accounts}
        if args.scenario is None:
            rows = GeneratorParams.rows if args.rows is None else args.rows
            params = GeneratorParams.for_cycle(args.cycle, rows=rows, **options)
        else:
            preset, preset_rows = SCENARIOS[args.scenario]
            params = preset(rows=preset_rows if args.rows is None else args.rows, cycle_id=args.cycle, **options)
        layout(params)
    except ValueError as exc:
        sys.stderr.write(f"telco-ra generate: {exc}\n")
        return 2
    from jobs.session import build_session

    spark = build_session({"master": args.master})
    started = time.monotonic()
    paths = generate(spark, args.out, params)
    LOG.info("generated %s tables under %s in %.1f s", len(paths), args.out, time.monotonic() - started)
    return 0


if __name__ == "__main__":
    sys.exit(main())
