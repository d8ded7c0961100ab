"""`telco-ra`: the command line of CONTRACT section 1.

Exit codes: 0 the run committed (or was already committed), 2 bad input or configuration (nothing written),
1 anything else (nothing half-visible: a run exists only through its control_run row).
"""

from __future__ import annotations

import argparse
import getpass
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from jobs.cases import CaseError, approve, list_cases, render_list, transition
from jobs.config import ConfigError, EnvConf, load_conf
from jobs.console import console_logging
from jobs.flag.context import ContextError
from jobs.flag.source import FlagError
from jobs.ignore import IgnoreError
from jobs.ingest.write import ConcurrentIngestError
from jobs.inputs import InputError
from jobs.jars import JarsUnavailable
from jobs.outputs import ConcurrentRunError
from jobs.report.figures import ReportError
from jobs.ruleset import load_ruleset
from jobs.run import ConservationError
from transforms.engine.decide import RuleError

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

LOG = logging.getLogger("telco_ra")


def _session(conf: EnvConf, args: argparse.Namespace) -> SparkSession:
    """The conf's session; `--verbose` shows every Spark warning (jobs/session.py)."""
    from jobs.session import build_session

    return build_session(conf.spark, spark_log="WARN" if getattr(args, "verbose", False) else None)


def _report_after(spark: SparkSession, conf: EnvConf, run_id: str, args: argparse.Namespace) -> int:
    """The run's report unless `--no-report` (jobs/report/after_run.py): its path on stdout, and the exit code."""
    from jobs.report.after_run import report_after_run

    done = report_after_run(spark, conf, run_id, args.report)
    sys.stdout.write("".join(f"{line}\n" for line in done.lines()))
    return done.exit_code


def _run(args: argparse.Namespace) -> int:
    conf = load_conf(args.conf)               # conf, ruleset and arguments all validated before Spark starts
    ruleset = load_ruleset(args.ruleset)
    conf.cycle(args.cycle)
    bucket = _bucket(args.partition, args.cycle, ruleset.account_buckets)
    from jobs.run import execute
    from jobs.summary import render

    spark = _session(conf, args)
    result = execute(spark, conf, ruleset, args.cycle, args.run_id, bucket=bucket)
    sys.stdout.write(render(spark, result))
    return _report_after(spark, conf, result.run_id, args)


def _bucket(partitions: list[str], cycle: str, buckets: int) -> int | None:
    """The account bucket `--partition` asks for, checked against the ruleset's `buckets` here: execute() would
    find a bucket out of range only after reading the inputs (Spark jobs over the month's tables)."""
    bucket = None
    for item in partitions:
        key, _, value = item.partition("=")
        if key == "account_bucket" and value.isascii() and value.isdigit():
            bucket = int(value)
            if bucket >= buckets:
                raise ConfigError("--partition", key, f"{bucket} is not a bucket of this ruleset "
                                  f"(0..{buckets - 1}: account_buckets is {buckets})")
        elif key == "cycle_id" and value == cycle:
            continue
        else:
            raise ConfigError("--partition", key or item, f"{item!r}: expected account_bucket=N or cycle_id={cycle}")
    return bucket


def _rerun(args: argparse.Namespace) -> int:
    conf = load_conf(args.conf)
    from jobs.rerun import rerun

    spark = _session(conf, args)
    repro = rerun(spark, conf, args.run_id)
    for table, (original, again) in repro.hashes.items():
        sys.stdout.write(f"{table:<19} {'identical' if original == again else 'DIFFERENT'}  {original}  {again}\n")
    verdict = "reproduced exactly" if repro.identical else "NOT reproduced"
    sys.stdout.write(f"run {repro.original} {verdict} by {repro.rerun.run_id}\n")
    # The reproduction is a committed run of its own: its report, like any run's (an auditor compares the two
    # pages); a report failure never hides the verdict, which decides the exit code first.
    report_code = _report_after(spark, conf, repro.rerun.run_id, args)
    return report_code if repro.identical else 1


def _close(args: argparse.Namespace) -> int:
    conf, ruleset = load_conf(args.conf), load_ruleset(args.ruleset)
    conf.cycle(args.cycle)
    from jobs.close import CloseRefused, close_cycle, render

    spark = _session(conf, args)
    try:
        closed = close_cycle(spark, conf, ruleset, args.cycle)
    except CloseRefused as exc:
        sys.stderr.write(f"telco-ra: close refused: {exc}\n")
        return 1
    sys.stdout.write(render(closed))
    return _report_after(spark, conf, closed.run.run_id, args)


def _cases(args: argparse.Namespace) -> int:
    """`telco-ra cases transition|approve|list` (jobs/cases.py)."""
    conf = load_conf(args.conf)
    ruleset = load_ruleset(args.ruleset) if getattr(args, "ruleset", None) else None
    if args.cycle is not None:
        conf.cycle(args.cycle)
    spark = _session(conf, args)
    if args.action == "list":
        rows, total = list_cases(spark, conf, args.cycle, args.status)
        sys.stdout.write(render_list(rows, total))
        return 0
    if args.action == "transition":
        done = transition(spark, conf, args.case_id, args.to, args.actor, args.reason, args.evidence,
                          cycle_id=args.cycle, ruleset=ruleset)
    else:
        done = approve(spark, conf, args.case_id, args.actor, cycle_id=args.cycle)
    pending = f" (requested {done.requested_status}: needs approval by another actor)" if done.requested_status else ""
    approved = f", approved by {done.approved_by}" if done.approved_by else ""
    sys.stdout.write(f"case {done.case_id} (cycle {done.cycle_id}): {done.previous_status} -> {done.status}{pending} "
                     f"by {done.actor}{approved}; recorded as {done.run_id}\n")
    return 0


def _report(args: argparse.Namespace) -> int:
    """`telco-ra report` (jobs/report/job.py): the run's HTML page, scorecard and per-team exports."""
    conf = load_conf(args.conf)
    from jobs.report.job import main_lines, write_report

    spark = _session(conf, args)
    files = write_report(spark, conf, args.run_id, args.out, args.as_of)
    sys.stdout.write("\n".join(main_lines(files)) + "\n")
    return 0


def _explain(args: argparse.Namespace) -> int:
    """`telco-ra explain` (jobs/explain): what each ruleset decides, in words, as Markdown and self-contained HTML.
    Every ruleset is loaded (and validated) before any file is written."""
    from jobs.explain import FORMATS, render_documents, write_texts

    pages = [(path, render_documents(path, FORMATS[args.format])) for path in args.rulesets]
    for path, texts in pages:
        for written in write_texts(path, texts, Path(args.out)):
            sys.stdout.write(f"{written}\n")
    return 0


def _ignore(args: argparse.Namespace) -> int:
    """`telco-ra ignore add|list|remove` (jobs/ignore.py): each change appended with who, when and why."""
    conf = load_conf(args.conf)
    expires = None
    if getattr(args, "expires", None):
        from jobs.utc import NaiveInstant, parse_instant

        try:
            expires = parse_instant(args.expires)
        except NaiveInstant as exc:
            raise IgnoreError(f"--expires must carry a zone (e.g. 2026-12-31T00:00:00Z), got {args.expires!r}") from exc
        except ValueError as exc:
            raise IgnoreError(f"--expires must be an ISO 8601 instant, got {args.expires!r}") from exc
    from jobs import ignore

    spark = _session(conf, args)
    if args.action == "add":
        known = ignore.known_control_points(spark, conf.output, args.ruleset)
        entry = ignore.add(spark, conf.output, args.control_point, args.scope, args.key, args.reason, args.actor,
                           expires, known=known)
        sys.stdout.write(f"ignore entry {entry} added: {args.control_point} {args.scope} {args.key}\n")
    elif args.action == "remove":
        ignore.remove(spark, conf.output, args.entry_id, args.actor, args.why)
        sys.stdout.write(f"ignore entry {args.entry_id} removed by {args.actor}\n")
    else:
        sys.stdout.write(ignore.render(ignore.history(spark, conf.output).collect()))   # operator entries
    return 0


def _flag(args: argparse.Namespace) -> int:
    """`telco-ra flag` (jobs/flag/): a wrong row's context to flagged_row and a regression fixture."""
    conf = load_conf(args.conf)
    from jobs.flag.job import flag, lines
    from jobs.session import build_session

    spark = build_session(conf.spark)
    done = flag(spark, conf, args.run_id, args.record_id, args.why, args.by or getpass.getuser(),
                control_point=args.control_point, side=args.side, record_key=args.record_key,
                fixtures=Path(args.fixtures), scratch=args.scratch)
    sys.stdout.write("\n".join(lines(done)) + "\n")
    return 1 if done.reproduced is False else 0


def _generate(argv: list[str]) -> int:
    from jobs.generate import main as generate_main

    return generate_main(argv)


def _ingest(args: argparse.Namespace) -> int:
    from jobs.ingest.cli import run as ingest

    return ingest(args.conf, args.paths, args.period)


def _demo(args: argparse.Namespace) -> int:
    from jobs.demo import demo

    return demo(rows=args.rows, seed=args.seed, lakehouse=Path(args.lakehouse), report=args.report,
                spark_log="WARN" if args.verbose else None)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="telco-ra", description="Revenue-assurance reconciliation on Spark + Delta")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run every control point of a ruleset for one cycle")
    run.add_argument("--conf", required=True)
    run.add_argument("--ruleset", required=True)
    run.add_argument("--cycle", required=True)
    run.add_argument("--run-id")
    run.add_argument("--partition", action="append", default=[], metavar="KEY=VALUE",
                     help="recompute one slice: account_bucket=N (the cycle is --cycle)")
    close = sub.add_parser("close", help="month-end close: run every control, check, write the close record")
    close.add_argument("--conf", required=True)
    close.add_argument("--ruleset", required=True)
    close.add_argument("--cycle", required=True)
    rerun = sub.add_parser("rerun", help="reproduce a committed run as of its input versions and ruleset")
    rerun.add_argument("--conf", required=True)
    rerun.add_argument("--run-id", required=True)
    cases = sub.add_parser("cases", help="case lifecycle: list current cases, manual transitions, maker-checker")
    actions = cases.add_subparsers(dest="action", required=True)
    tr = actions.add_parser("transition", help="move a case to ACKNOWLEDGED, IN_CORRECTION, RESOLVED, WAIVED, "
                            "WRITTEN_OFF")
    tr.add_argument("--to", required=True, metavar="STATUS")
    tr.add_argument("--reason", required=True)
    tr.add_argument("--evidence", action="append", default=[], metavar="REF", help="evidence reference (repeatable)")
    tr.add_argument("--ruleset", help="ruleset for maker_checker_above (default: the one of the run that found it)")
    ap = actions.add_parser("approve", help="approve a PENDING_APPROVAL waiver/write-off (a different actor)")
    for action in (tr, ap):
        action.add_argument("--conf", required=True)
        action.add_argument("--case-id", required=True)
        action.add_argument("--actor", required=True)
        action.add_argument("--cycle", help="the case's cycle, when its id exists in several")
    ls = actions.add_parser("list", help="current cases (phone numbers masked)")
    ls.add_argument("--conf", required=True)
    ls.add_argument("--cycle")
    ls.add_argument("--status")
    report = sub.add_parser("report", help="one committed run -> a self-contained HTML report, the RA scorecard and "
                            "per-team CSV/Parquet exports of open cases")
    report.add_argument("--conf", required=True)
    report.add_argument("--run-id", required=True)
    report.add_argument("--out", help="folder for the report and exports (default: reports/<run-id> beside output)")
    report.add_argument("--as-of", default="now", help="SLA status as of: now (default), close (the cycle close), "
                        "or an ISO-8601 instant")
    explain = sub.add_parser("explain", help="what a ruleset decides, in words: Markdown and self-contained HTML "
                             "generated from the loaded ruleset")
    explain.add_argument("rulesets", nargs="+", metavar="RULESET", help="a ruleset file, e.g. rulesets/usage_to_bill.yaml")
    explain.add_argument("--out", default="docs/rules", help="folder for <ruleset>.md / .html (default: docs/rules)")
    explain.add_argument("--format", choices=["md", "html", "both"], default="both")
    ingest = sub.add_parser("ingest", help="append carrier invoice and bill files (CSV, XLSX, HTML .xls) to "
                            "carrier_invoice_line and carrier_bill_line")
    ingest.add_argument("--conf", required=True)
    ingest.add_argument("--period", metavar="YYYY-MM", help="the invoice or bill period, for files that carry none")
    ingest.add_argument("paths", nargs="+", metavar="FILE_OR_DIR")
    ign = sub.add_parser("ignore", help="ignore lists: entries that make a known gap IGNORED (append-only history)")
    ign_actions = ign.add_subparsers(dest="action", required=True)
    ign_add = ign_actions.add_parser("add", help="add an entry (who, when, why; optional expiry)")
    ign_add.add_argument("--control-point", required=True)
    ign_add.add_argument("--scope", required=True, choices=["ITEM", "ACCOUNT", "DOMAIN"])
    ign_add.add_argument("--key", required=True, help="the record id (ITEM), account_id (ACCOUNT) or domain (DOMAIN)")
    ign_add.add_argument("--reason", required=True)
    ign_add.add_argument("--actor", required=True)
    ign_add.add_argument("--expires", help="an ISO 8601 instant with a zone; the entry no longer applies from it")
    ign_add.add_argument("--ruleset", action="append", default=[], metavar="FILE",
                         help="a ruleset of your own whose control points the entry may name (besides the shipped "
                         "rulesets' and those of the runs under the conf's output); may be repeated")
    ign_ls = ign_actions.add_parser("list", help="every entry with its state and removal")
    ign_rm = ign_actions.add_parser("remove", help="remove an entry (its gap comes back, same case id)")
    ign_rm.add_argument("--entry-id", required=True)
    ign_rm.add_argument("--actor", required=True)
    ign_rm.add_argument("--why", required=True)
    for action in (ign_add, ign_ls, ign_rm):
        action.add_argument("--conf", required=True)
    fl = sub.add_parser("flag", help="report a wrong record_outcome row: its context to flagged_row and a regression "
                        "fixture under tests/fixtures/flagged/")
    fl.add_argument("--conf", required=True)
    fl.add_argument("--run-id", required=True)
    fl.add_argument("--record-id", required=True)
    fl.add_argument("--control-point", help="the row's control point, where the record has rows in several")
    fl.add_argument("--side", choices=["LEFT", "RIGHT"], help="the row's side, where the record is on both")
    fl.add_argument("--record-key", help="the row's record_key, where copies share the record id")
    fl.add_argument("--why", required=True, help="what is wrong with the row")
    fl.add_argument("--by", help="who flags it (default: the login name)")
    fl.add_argument("--fixtures", default="tests/fixtures/flagged", help="folder the fixture is written under")
    fl.add_argument("--scratch", help="folder for the replay's Delta tables (default: the system's temp folder)")
    sub.add_parser("generate", help="write a synthetic month with planted faults and ground truth", add_help=False)
    sub.add_parser("score", help="precision/recall of a run against the generator's ground truth", add_help=False)
    demo = sub.add_parser("demo", help="synthetic months -> local lakehouse -> every control -> summaries and reports")
    demo.add_argument("--rows", type=int, default=200_000)
    demo.add_argument("--seed", type=int, default=42)
    demo.add_argument("--lakehouse", default="lakehouse")
    for command in (run, close, rerun, demo):
        command.add_argument("--report", action=argparse.BooleanOptionalAction, default=None,
                             help="write the run's HTML report and team exports when it commits (default: the "
                             "conf's report.after_run, true); a report asked for with --report that fails exits 1, "
                             "the run staying committed")
    for command in (run, close, rerun, tr, ap, ls, report, ingest, ign_add, ign_ls, ign_rm, demo):
        command.add_argument("--verbose", action="store_true", help="DEBUG lines and every Spark warning "
                             "(TELCO_RA_SPARK_LOG=WARN shows the warnings only)")
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    with console_logging(sys.stderr, verbose="--verbose" in argv):
        return _main(argv)


def _main(argv: list[str]) -> int:
    if argv[:1] == ["generate"]:
        return _generate(argv[1:])
    if argv[:1] == ["score"]:
        from jobs.score import main as score_main

        return score_main(argv[1:])
    args = build_parser().parse_args(argv)
    try:
        if args.command == "run":
            return _run(args)
        if args.command == "rerun":
            return _rerun(args)
        if args.command == "close":
            return _close(args)
        if args.command == "cases":
            return _cases(args)
        if args.command == "report":
            return _report(args)
        if args.command == "explain":
            return _explain(args)
        if args.command == "ingest":
            return _ingest(args)
        if args.command == "ignore":
            return _ignore(args)
        if args.command == "flag":
            return _flag(args)
        return _demo(args)
    except (ConfigError, InputError, RuleError, JarsUnavailable, CaseError, ReportError, IgnoreError,
            FlagError) as exc:
        sys.stderr.write(f"telco-ra: {exc}\n")
        return 2
    except (ConservationError, ConcurrentRunError, ConcurrentIngestError, ContextError) as exc:
        sys.stderr.write(f"telco-ra: {exc}\n")
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
