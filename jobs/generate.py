"""`telco-ra generate`: write a synthetic month (inputs + ground truth) as Delta tables, for one ruleset's controls.

Why: demos, benchmarks and end-to-end tests need a month whose right answer is known. The month itself is built by a
module of `jobs.synthetic` (one per ruleset's data; pure, lazy, scales with the cluster); this job picks the module
from `--ruleset` (the file's top-level `ruleset:` key, else its file stem, so a ruleset file that does not exist yet
still names its generator), sizes the id range, starts the session and writes each table as `<out>/<name>`
(overwrite), so re-running with the same arguments gives the same tables. Without `--ruleset` it writes the
usage-to-bill month.

    python -m jobs.generate --out lakehouse/input --rows 200000 --seed 42 --cycle 2026-06
    python -m jobs.generate --out lakehouse/input --scenario seed004    # 10M rows, exact counts (see SCENARIOS)
    python -m jobs.generate --ruleset rulesets/inventory_to_bill.yaml --scenario seed004-s30 --rows 12000 \
        --out lakehouse/inventory
    python -m jobs.generate --ruleset rulesets/carrier_invoice_vs_cdr.yaml --cycle 2026-10 --out lakehouse/carrier
        # an October usage month under <out>/usage (its outbound voice legs carried by the layouts' carriers), then
        # invoice files billing them, one per carrier layout, under <out>/invoices (then: telco-ra ingest), and
        # <out>/ground_truth (the calls the plants need are appended to <out>/usage/cdr)
    python -m jobs.generate --ruleset rulesets/line_inventory_audit.yaml --rows 400 --out lakehouse/lines
        # crm_asset, device_status and ground_truth, and the carriers' bills as files in the shipped line_bill
        # layouts under <out>/bills (then: telco-ra ingest, into carrier_bill_line); the carriers matched by ICCID,
        # the fallback amount and the leakage buckets are the ruleset's
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml
from pyspark.sql import DataFrame, SparkSession

from jobs.synthetic import inventory_to_bill, provisioning_to_bill, usage_to_bill
from jobs.synthetic.inventory_to_bill import SEED004_S30_ROWS, InventoryParams
from jobs.synthetic.provisioning_to_bill import ProvisioningParams
from jobs.synthetic.usage_to_bill import SEED004_ROWS, GeneratorParams, layout
from jobs.utc import NaiveInstant, parse_instant

LOG = logging.getLogger(__name__)

# Named scenarios per ruleset: a fault mix stated as exact outcome counts, and the size it is stated at (the default
# --rows).
SCENARIOS: dict[str, tuple[Callable[..., GeneratorParams], int]] = {"seed004": (GeneratorParams.seed004, SEED004_ROWS)}
INVENTORY_SCENARIOS: dict[str, tuple[Callable[..., InventoryParams], int]] = {
    "seed004-s30": (InventoryParams.seed004_s30, SEED004_S30_ROWS),
}
DEFAULT_RULESET = "usage_to_bill"
CARRIER_RULESET = "carrier_invoice_vs_cdr"      # files, not only tables: jobs/synthetic/carrier_invoice.py
CARRIER_CYCLE = "2026-10"                        # the carrier month's default: London and Berlin fall back in it
CARRIER_ROWS = 20_000                            # the usage month a carrier month bills, by default
LINE_RULESET = "line_inventory_audit"            # bill lines through a writer: jobs/synthetic/line_inventory_audit.py

ROWS_PER_PARTITION = 2_000_000
HUGE_METHOD_LIMIT = "spark.sql.codegen.hugeMethodLimit"


MonthParams = GeneratorParams | InventoryParams | ProvisioningParams


def generate(spark: SparkSession, out_dir: str, params: MonthParams) -> dict[str, str]:
    """Write the month `params` describes under `out_dir`; returns table name -> path.

    GeneratorParams: cdr, rated_event, bill_charge, suspense, tariff and ground_truth (usage-to-bill).
    InventoryParams: product_inventory, bill_charge and ground_truth (inventory-to-bill).
    ProvisioningParams: provisioned_item, billing_subscription, ground_truth and ignore_entries (the ignore-list
    entries its IGNORED labels assume; jobs/ignore.py adds them).

    Example::

        paths = generate(spark, "/tmp/month", GeneratorParams(rows=10_000))
        spark.read.format("delta").load(paths["ground_truth"])
    """
    partitions = max(spark.sparkContext.defaultParallelism, -(-params.rows // ROWS_PER_PARTITION))
    ids = spark.range(0, params.rows, 1, partitions)
    month: dict[str, DataFrame]
    if isinstance(params, ProvisioningParams):
        month = provisioning_to_bill.generate_month(ids, params)
        LOG.info("generating %s provisioning slots (seed %s, %s accounts), %s partitions", params.rows, params.seed,
                 params.account_count, partitions)
    elif isinstance(params, InventoryParams):
        month = inventory_to_bill.generate_month(ids, params)
        LOG.info("generating %s inventory slots (seed %s, cycle %s, cutoff %s, scenario counts %s), %s partitions",
                 params.rows, params.seed, params.cycle_id, params.cutoff_at.isoformat(),
                 None if params.scenario is None else dict(params.scenario.scaled(params.rows)), partitions)
    else:
        month = usage_to_bill.generate_month(ids, params)
        lay = layout(params)
        LOG.info("generating %s rows (seed %s, cycle %s): %s subscriber numbers (%s hot), %s accounts, %s partitions",
                 params.rows, params.seed, params.cycle_id, lay.subscribers, lay.hot_numbers, params.account_count,
                 partitions)
        if params.exact is not None:
            LOG.info("exact counts: %s rejected (IN_SUSPENSE + SUSPENSE_AGED), %s LATE_USAGE, %s DUPLICATE_USAGE, "
                     "%s TARIFF_MISMATCH", params.exact.rejected, params.exact.late, params.exact.duplicates,
                     params.exact.tariff_mismatches)
    return _write(spark, out_dir, month)


def _write(spark: SparkSession, out_dir: str, month: dict[str, DataFrame]) -> dict[str, str]:
    paths: dict[str, str] = {}
    # The generator's projections are wide: whole-stage codegen fuses them into methods beyond the JVM's 8 KB JIT
    # limit, which then run interpreted (measured 5-10x slower). This limit makes Spark fall back to per-operator
    # code for just those stages; the caller's setting is restored afterwards.
    previous = spark.conf.get(HUGE_METHOD_LIMIT, None)
    spark.conf.set(HUGE_METHOD_LIMIT, "8000")
    try:
        for name, frame in month.items():
            path = str(Path(out_dir) / name) if "://" not in out_dir else f"{out_dir.rstrip('/')}/{name}"
            started = time.monotonic()
            frame.write.format("delta").mode("overwrite").option("overwriteSchema", "true").save(path)
            LOG.info("wrote %s in %.1f s", path, time.monotonic() - started)
            paths[name] = path
    finally:
        if previous is None:
            spark.conf.unset(HUGE_METHOD_LIMIT)
        else:
            spark.conf.set(HUGE_METHOD_LIMIT, previous)
    return paths


def ruleset_name(path: str) -> str:
    """The ruleset a file names: its top-level `ruleset:` key; the file stem when the file does not exist or has no
    such key (`rulesets/inventory_to_bill.yaml` -> `inventory_to_bill`).

    Raises ValueError naming the file when it exists but is not YAML.
    """
    file = Path(path)
    if file.is_file():
        try:
            document = yaml.safe_load(file.read_text())
        except yaml.YAMLError as exc:
            raise ValueError(f"ruleset {path} is not readable YAML: {exc}") from exc
        if isinstance(document, dict) and isinstance(document.get("ruleset"), str):
            return document["ruleset"]
    return file.stem


def _usage_params(args: argparse.Namespace) -> GeneratorParams:
    if args.cutoff is not None:
        raise ValueError("--cutoff is an inventory-to-bill option; the usage-to-bill month has none")
    skew = GeneratorParams.skew_share if args.skew_share is None else args.skew_share
    options = {"seed": args.seed, "skew_share": skew, "accounts": args.accounts}
    if args.scenario is None:
        rows = GeneratorParams.rows if args.rows is None else args.rows
        params = GeneratorParams.for_cycle(args.cycle, rows=rows, **options)
    else:
        preset, preset_rows = _scenario(SCENARIOS, args.scenario, DEFAULT_RULESET)
        params = preset(rows=preset_rows if args.rows is None else args.rows, cycle_id=args.cycle, **options)
    layout(params)
    return params


def _inventory_params(args: argparse.Namespace) -> InventoryParams:
    if args.skew_share is not None:
        raise ValueError("--skew-share is a usage-to-bill option; the inventory-to-bill month has none")
    options = {"seed": args.seed, "accounts": args.accounts, "cutoff": _utc_instant(args.cutoff)}
    if args.scenario is None:
        rows = InventoryParams.rows if args.rows is None else args.rows
        return InventoryParams.for_cycle(args.cycle, rows=rows, **options)
    preset, preset_rows = _scenario(INVENTORY_SCENARIOS, args.scenario, "inventory_to_bill")
    return preset(rows=preset_rows if args.rows is None else args.rows, cycle_id=args.cycle, **options)


Preset = tuple[Callable[..., Any], int]


def _scenario(scenarios: dict[str, Preset], name: str, ruleset: str) -> Preset:
    if name not in scenarios:
        raise ValueError(f"scenario {name!r} is not one of ruleset {ruleset}'s: {', '.join(sorted(scenarios))}")
    return scenarios[name]


def _utc_instant(text: str | None) -> datetime | None:
    """An ISO 8601 instant with a zone (`2026-06-28T00:00:00Z`) as a UTC datetime; a naive one is refused."""
    if text is None:
        return None
    try:
        return parse_instant(text)
    except NaiveInstant as exc:
        raise ValueError(f"--cutoff must carry a zone (e.g. 2026-06-28T00:00:00Z), got {text!r}") from exc
    except ValueError as exc:
        raise ValueError(f"--cutoff must be an ISO 8601 instant, got {text!r}") from exc


def _provisioning_params(args: argparse.Namespace) -> ProvisioningParams:
    for option in ("skew_share", "cutoff", "scenario"):
        if getattr(args, option) is not None:
            raise ValueError(f"--{option.replace('_', '-')} is not an option of the provisioning_to_bill snapshots")
    return ProvisioningParams(rows=ProvisioningParams.rows if args.rows is None else args.rows, seed=args.seed,
                              cycle_id=args.cycle, accounts=args.accounts)


PARAMS: dict[str, Callable[[argparse.Namespace], MonthParams]] = {
    DEFAULT_RULESET: _usage_params,
    "inventory_to_bill": _inventory_params,
    "provisioning_to_bill": _provisioning_params,
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="telco-ra generate",
                                     description="write a synthetic month with planted faults and its ground truth")
    parser.add_argument("--ruleset", default=None,
                        help="the ruleset whose data to generate (its `ruleset:` key, else the file stem; "
                             f"generators: {', '.join(sorted(PARAMS))}; default {DEFAULT_RULESET})")
    parser.add_argument("--out", default="lakehouse/input", help="folder of the Delta tables (default %(default)s)")
    parser.add_argument("--rows", type=int, default=None,
                        help=f"usage_to_bill: usage slots, about one cdr each (default {GeneratorParams.rows}, or "
                             f"the scenario's size: seed004 {SEED004_ROWS}); inventory_to_bill: product slots, "
                             f"about one product each (default {InventoryParams.rows}; seed004-s30 "
                             f"{SEED004_S30_ROWS}); carrier_invoice_vs_cdr: the usage month's slots (default "
                             f"{CARRIER_ROWS})")
    parser.add_argument("--scenario", choices=sorted([*SCENARIOS, *INVENTORY_SCENARIOS]), default=None,
                        help="a named fault mix with exact outcome counts, scaled to --rows (usage_to_bill seed004: "
                             "50K rejected, 20K late, 5K duplicates, 3K tariff mismatches per 10M rows; "
                             "inventory_to_bill seed004-s30: 10K free trial, 2K billing hold, 1K test accounts, 2K "
                             "not billed per 1.2M active products)")
    parser.add_argument("--seed", type=int, default=GeneratorParams.seed)
    parser.add_argument("--cycle", default=GeneratorParams.cycle_id,
                        help="billing month YYYY-MM (usage_to_bill: close = end + 2 days)")
    parser.add_argument("--skew-share", type=float, default=None,
                        help=f"usage_to_bill: share of calls on the hot numbers (default {GeneratorParams.skew_share})")
    parser.add_argument("--accounts", type=int, default=None,
                        help="billing accounts (usage_to_bill: rows // 40, min 50; inventory_to_bill: rows // 4, "
                             "min 20)")
    parser.add_argument("--cutoff", default=None,
                        help="inventory_to_bill: the cycle's cutoff, an ISO 8601 instant (default the cycle end); "
                             "activations from it on are ACTIVATED_AFTER_CUTOFF")
    parser.add_argument("--carriers", default="conf/carriers",
                        help="carrier_invoice_vs_cdr: the folder of carrier layouts whose files to write "
                             "(default %(default)s)")
    parser.add_argument("--master", default="local[*]", help="Spark master (default %(default)s)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns 0 on success, 2 on bad arguments."""
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                            stream=sys.stderr)
    args = build_parser().parse_args(argv)
    try:
        name = DEFAULT_RULESET if args.ruleset is None else ruleset_name(args.ruleset)
        if name == CARRIER_RULESET:
            return _carrier_month(args)
        if name == LINE_RULESET:
            return _line_month(args)
        if name not in PARAMS:
            raise ValueError(f"no synthetic generator for ruleset {name!r} (from {args.ruleset}); generators exist "
                             f"for: {', '.join(sorted([*PARAMS, CARRIER_RULESET, LINE_RULESET]))}")
        params = PARAMS[name](args)
    except ValueError as exc:
        sys.stderr.write(f"telco-ra generate: {exc}\n")
        return 2
    from jobs.session import build_session

    spark = build_session({"master": args.master})
    started = time.monotonic()
    paths = generate(spark, args.out, params)
    LOG.info("generated %s tables under %s in %.1f s", len(paths), args.out, time.monotonic() - started)
    return 0


def _carrier_month(args: argparse.Namespace) -> int:
    """The usage month (`<out>/usage/`: cdr, rated_event, ... and its ground truth), in October unless --cycle says
    otherwise (a month London and Berlin fall back in), its outbound voice legs carried by the layouts' carriers;
    then the carrier month billing them (`<out>/invoices/`, `<out>/ground_truth`; its calls appended to the cdr)."""
    from jobs.session import build_session
    from jobs.synthetic.carrier_invoice import CarrierParams, generate_carrier_month, usage_params

    cycle = CARRIER_CYCLE if args.cycle == GeneratorParams.cycle_id else args.cycle
    try:
        usage = usage_params(args.carriers, cycle, rows=CARRIER_ROWS if args.rows is None else args.rows,
                             seed=args.seed, accounts=args.accounts)
    except ValueError as exc:
        sys.stderr.write(f"telco-ra generate: {exc}\n")
        return 2
    spark = build_session({"master": args.master})
    month = generate(spark, str(Path(args.out) / "usage"), usage)
    paths = generate_carrier_month(spark, args.carriers, args.out, month["cdr"], CarrierParams(cycle, seed=args.seed))
    LOG.info("carrier month %s: invoice files under %s (ingest them), cdr %s (the usage month's, calls appended), "
             "ground truth %s", cycle, paths["invoices"], paths["cdr"], paths["ground_truth"])
    return 0


def line_params(ruleset: str | None, **options: Any) -> Any:
    """The line month's parameters, with the carriers matched by ICCID, the fallback amount and the leakage buckets
    of the ruleset file (when it exists), so its labels are that ruleset's."""
    from jobs.ruleset import load_ruleset
    from jobs.synthetic.line_inventory_audit import LineParams

    if ruleset is None or not Path(ruleset).is_file():
        return LineParams(**options)
    params = load_ruleset(ruleset).params
    for key, name in (("iccid_carriers", "match_by_iccid"), ("leakage_buckets", "leakage_buckets")):
        value = params.get(name)
        if isinstance(value, tuple):
            options[key] = tuple(str(v) for v in value)
    if params.get("fallback_monthly_amount") is not None:
        options["fallback_amount"] = Decimal(str(params["fallback_monthly_amount"]))
    return LineParams(**options)


def _line_month(args: argparse.Namespace) -> int:
    """CRM assets, device status, the carriers' bill lines and the ground truth of a line month under --out."""
    from jobs.session import build_session
    from jobs.synthetic.line_inventory_audit import bill_files, write_line_month

    try:
        for option in ("skew_share", "cutoff", "scenario", "accounts"):
            if getattr(args, option) is not None:
                raise ValueError(f"--{option.replace('_', '-')} is not an option of the line_inventory_audit month")
        options: dict[str, Any] = {"seed": args.seed, "cycle_id": args.cycle}
        if args.rows is not None:
            options["rows"] = args.rows
        params = line_params(args.ruleset, **options)
    except ValueError as exc:
        sys.stderr.write(f"telco-ra generate: {exc}\n")
        return 2
    spark = build_session({"master": args.master})
    bills = Path(args.out) / "bills"
    paths = write_line_month(spark, args.out, params, write_bills=bill_files(bills, Path(args.carriers), params.seed))
    LOG.info("line month %s (%s slots): %s; the carriers' bill files in %s (then: telco-ra ingest --conf C %s)",
             params.cycle_id, params.rows, ", ".join(f"{name} {path}" for name, path in sorted(paths.items())),
             bills, bills)
    return 0


if __name__ == "__main__":
    sys.exit(main())
