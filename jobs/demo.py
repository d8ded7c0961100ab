"""`telco-ra demo`: synthetic months into a local lakehouse, every control of each shipped ruleset, summaries and
the HTML report of each run (its path after its summary, and all of them again at the end).

Usage-to-bill runs on a generated usage month; inventory-to-bill on a generated inventory month (its own input
folder: its bill_charge holds RECURRING charges); carrier-invoice-vs-cdr on an October usage month (a DST change in
the carriers' zones; its own folder, made by the same usage generator) whose outbound voice legs the carriers'
invoice files (one per shipped carrier layout) bill, through `telco-ra ingest` first; provisioning-to-bill on
generated PBX and billing snapshots with a few ignore-list entries; the line-inventory audit on generated CRM assets,
device status and carrier bill lines (its summary shows the buckets, their confidence and the leakage). All write to
the same output tables.

The embedded default a newcomer sees first; it uses exactly the code paths of `telco-ra generate` and
`telco-ra run`, with conf written next to the data so the run can be repeated by hand.
"""

from __future__ import annotations

import logging
import shutil
import sys
from pathlib import Path
from typing import Any

import yaml
from pyspark.sql import SparkSession

from jobs.config import EnvConf, load_conf
from jobs.report.after_run import AfterRun
from jobs.ruleset import load_ruleset
from jobs.run import RunResult

LOG = logging.getLogger(__name__)
REPO = Path(__file__).resolve().parent.parent
RULESET = REPO / "rulesets" / "usage_to_bill.yaml"
INVENTORY_RULESET = REPO / "rulesets" / "inventory_to_bill.yaml"
CARRIER_RULESET = REPO / "rulesets" / "carrier_invoice_vs_cdr.yaml"
CARRIERS = REPO / "conf" / "carriers"
# The carrier month: October, when London and Berlin fall back (the fall-back hour's lines are in it).
CARRIER_CYCLE_ID = "2026-10"
CARRIER_CYCLE = {CARRIER_CYCLE_ID: {"start": "2026-10-01T00:00:00Z", "end": "2026-11-01T00:00:00Z",
                             "close": "2026-11-03T00:00:00Z"}}
PROVISIONING_RULESET = REPO / "rulesets" / "provisioning_to_bill.yaml"
LINE_RULESET = REPO / "rulesets" / "line_inventory_audit.yaml"
LOCAL_CONF = REPO / "conf" / "local.yaml"


def demo(rows: int, seed: int, lakehouse: Path, report: bool | None = None, spark_log: str | None = None) -> int:
    """Every shipped ruleset on its synthetic month; each run's summary and report path, then the reports again at
    the very end. `report`: `--report`/`--no-report` (None: the conf's default, a report per run). Exit code 0, or 1
    when a report asked for with `--report` failed (jobs/report/after_run.py)."""
    from jobs.generate import generate
    from jobs.run import execute
    from jobs.session import build_session
    from jobs.synthetic.usage_to_bill import GeneratorParams

    base = yaml.safe_load(LOCAL_CONF.read_text())
    lakehouse = lakehouse.resolve()
    base["tables"] = {name: str(lakehouse / "input" / name) for name in base["tables"]}
    base["output"] = str(lakehouse / "output")
    lakehouse.mkdir(parents=True, exist_ok=True)
    conf_path = lakehouse / "demo.yaml"
    conf_path.write_text(yaml.safe_dump(base, sort_keys=False))
    conf, ruleset = load_conf(conf_path), load_ruleset(RULESET)
    spark = build_session(conf.spark, app_name="telco-ra-demo", spark_log=spark_log)
    params = GeneratorParams(rows=rows, seed=seed)
    LOG.info("generating a synthetic month of %d usage records into %s", rows, lakehouse / "input")
    generate(spark, str(lakehouse / "input"), params)
    cycle_id = params.cycle_id
    result = execute(spark, conf, ruleset, cycle_id)
    reports = [_summary(spark, conf, result, report, first=True)]
    sys.stdout.write(f"\nconf used: {conf_path}\nrepeat: telco-ra run --conf {conf_path} --ruleset {RULESET} "
                     f"--cycle {cycle_id}\n")

    from jobs.synthetic.inventory_to_bill import InventoryParams

    products = max(1_000, rows // 20)
    inventory = InventoryParams.for_cycle(cycle_id, rows=products, seed=seed)
    LOG.info("generating an inventory month of %d product slots into %s", products, lakehouse / "inventory")
    paths = generate(spark, str(lakehouse / "inventory"), inventory)
    inv_conf = dict(base)
    inv_conf["tables"] = {name: paths[name] for name in ("product_inventory", "bill_charge")}
    inv_conf_path = lakehouse / "demo_inventory.yaml"
    inv_conf_path.write_text(yaml.safe_dump(inv_conf, sort_keys=False))
    inv_env = load_conf(inv_conf_path)
    inv_result = execute(spark, inv_env, load_ruleset(INVENTORY_RULESET), cycle_id)
    reports.append(_summary(spark, inv_env, inv_result, report))
    sys.stdout.write(f"\nrepeat: telco-ra run --conf {inv_conf_path} --ruleset {INVENTORY_RULESET} "
                     f"--cycle {cycle_id}\n")
    reports.append(_carrier_demo(spark, base, lakehouse, rows, seed, report))
    reports.append(_provisioning(spark, base, lakehouse, rows, seed, cycle_id, report))
    reports.append(_line_audit(spark, base, lakehouse, rows, seed, cycle_id, report))
    lines = [line for done in reports for line in done.lines()]
    sys.stdout.write("\n" + "".join(f"{line}\n" for line in lines) if lines else "")
    return max(done.exit_code for done in reports)


def _summary(spark: SparkSession, conf: EnvConf, result: RunResult, report: bool | None,
             first: bool = False) -> AfterRun:
    """A run's summary on stdout, then its report (its path right after the summary)."""
    from jobs.report.after_run import report_after_run
    from jobs.summary import render

    sys.stdout.write(("" if first else "\n") + render(spark, result))
    done = report_after_run(spark, conf, result.run_id, report)
    sys.stdout.write("".join(f"{line}\n" for line in done.lines()))
    return done


def _carrier_demo(spark: Any, base: dict[str, Any], lakehouse: Path, rows: int, seed: int,
                  report: bool | None) -> AfterRun:
    """An October usage month whose outbound voice legs the shipped carriers carry, the carriers' invoice files
    billing them, through `telco-ra ingest`, then carrier-invoice-vs-cdr on that month's cdr.

    Why a second usage month, and in October: the carrier month must cross a DST change in the layouts' zones (London
    and Berlin fall back on October's last Sunday), while the demo's first month stays June, the cycle conf/local.yaml,
    the README's repeat commands and the inventory and provisioning months are written for. The October month is made
    by the same usage generator (`telco-ra generate --ruleset rulesets/carrier_invoice_vs_cdr.yaml` does the same)."""
    from jobs.generate import generate
    from jobs.ingest.cli import run as ingest
    from jobs.run import execute
    from jobs.synthetic.carrier_invoice import CarrierParams, generate_carrier_month, usage_params

    params = CarrierParams(CARRIER_CYCLE_ID, seed=seed, clean={"kestrel-csv": 300})
    usage = usage_params(CARRIERS, CARRIER_CYCLE_ID, rows=max(20_000, rows // 10), seed=seed)
    LOG.info("generating an October usage month of %d slots into %s, carried by the layouts' carriers", usage.rows,
             lakehouse / "carrier" / "usage")
    month = generate(spark, str(lakehouse / "carrier" / "usage"), usage)
    LOG.info("generating the carriers' invoice files billing its outbound voice legs into %s", lakehouse / "carrier")
    paths = generate_carrier_month(spark, CARRIERS, lakehouse / "carrier", month["cdr"], params)
    conf = dict(base)
    conf["tables"] = {"cdr": paths["cdr"], "carrier_invoice_line": str(lakehouse / "carrier" / "carrier_invoice_line")}
    conf["cycles"] = CARRIER_CYCLE
    conf["carriers"] = str(CARRIERS)
    conf_path = lakehouse / "demo_carrier.yaml"
    conf_path.write_text(yaml.safe_dump(conf, sort_keys=False))
    sys.stdout.write(f"\ntelco-ra ingest --conf {conf_path} {paths['invoices']}\n")
    ingest(str(conf_path), [paths["invoices"]], out=sys.stdout)
    env = load_conf(conf_path)
    result = execute(spark, env, load_ruleset(CARRIER_RULESET), params.cycle_id)
    done = _summary(spark, env, result, report)
    sys.stdout.write(f"\nrepeat: telco-ra run --conf {conf_path} --ruleset {CARRIER_RULESET} "
                     f"--cycle {params.cycle_id}\n")
    return done


def _provisioning(spark: SparkSession, base: dict[str, Any], lakehouse: Path, rows: int, seed: int,
                  cycle_id: str, report: bool | None) -> AfterRun:
    """Provisioning audits: PBX and billing snapshots, the generator's ignore entries (added once: the ignore list
    is the operators' history, a second demo over the same lakehouse keeps it), item-audit and seat-audit."""
    from jobs import ignore
    from jobs.generate import generate
    from jobs.outputs import exists, table_ref
    from jobs.run import execute
    from jobs.synthetic.provisioning_to_bill import ProvisioningParams

    slots = max(500, rows // 100)
    LOG.info("generating provisioning snapshots of %d slots into %s", slots, lakehouse / "provisioning")
    paths = generate(spark, str(lakehouse / "provisioning"), ProvisioningParams(rows=slots, seed=seed,
                                                                                cycle_id=cycle_id))
    conf = dict(base)
    conf["tables"] = {name: paths[name] for name in ("provisioned_item", "billing_subscription")}
    conf_path = lakehouse / "demo_provisioning.yaml"
    conf_path.write_text(yaml.safe_dump(conf, sort_keys=False))
    env = load_conf(conf_path)
    if not exists(spark, table_ref(env.output, ignore.TABLE)):
        entries = spark.read.format("delta").load(paths["ignore_entries"]).collect()   # a few generated entries
        for e in entries:
            ignore.add(spark, env.output, e["control_point_id"], e["scope"], e["key"], e["reason"], "demo")
        LOG.info("added %d ignore entries (telco-ra ignore list --conf %s)", len(entries), conf_path)
    result = execute(spark, env, load_ruleset(PROVISIONING_RULESET), cycle_id)
    done = _summary(spark, env, result, report)
    sys.stdout.write(f"\nrepeat: telco-ra run --conf {conf_path} --ruleset {PROVISIONING_RULESET} "
                     f"--cycle {cycle_id}\nignore list: telco-ra ignore list --conf {conf_path}\n")
    return done


def _line_audit(spark: SparkSession, base: dict[str, Any], lakehouse: Path, rows: int, seed: int,
                cycle_id: str, report: bool | None) -> AfterRun:
    """The line-inventory audit: CRM assets, device status and the carriers' bill lines of a generated line month
    (the ICCID carriers, fallback amount and leakage buckets of the shipped ruleset), then line-audit; its summary
    shows per bucket and confidence band the lines and their leakage."""
    from jobs.generate import line_params
    from jobs.ingest.cli import run as ingest_run
    from jobs.run import execute
    from jobs.synthetic.line_inventory_audit import bill_files, write_line_month

    slots = max(400, rows // 100)
    folder = lakehouse / "lines"
    bills = folder / "bills"
    LOG.info("generating a line month of %d slots into %s (bills as carrier files in %s)", slots, folder, bills)
    shutil.rmtree(bills, ignore_errors=True)
    paths = write_line_month(spark, folder, line_params(str(LINE_RULESET), rows=slots, seed=seed, cycle_id=cycle_id),
                             write_bills=bill_files(bills, CARRIERS, seed))
    conf = dict(base)
    conf["tables"] = {"carrier_bill_line": str(folder / "carrier_bill_line"),
                      **{name: paths[name] for name in ("crm_asset", "device_status")}}
    conf["carriers"] = str(CARRIERS)
    conf_path = lakehouse / "demo_lines.yaml"
    conf_path.write_text(yaml.safe_dump(conf, sort_keys=False))
    shutil.rmtree(folder / "carrier_bill_line", ignore_errors=True)
    if ingest_run(str(conf_path), [str(bills)]) != 0:
        raise RuntimeError(f"the demo's bill files in {bills} did not ingest (telco-ra ingest --conf {conf_path} {bills})")
    sys.stdout.write(f"ingest again: telco-ra ingest --conf {conf_path} {bills}\n")
    env = load_conf(conf_path)
    result = execute(spark, env, load_ruleset(LINE_RULESET), cycle_id)
    done = _summary(spark, env, result, report)
    sys.stdout.write(f"\nrepeat: telco-ra run --conf {conf_path} --ruleset {LINE_RULESET} --cycle {cycle_id}\n")
    return done
