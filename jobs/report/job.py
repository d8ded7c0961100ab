"""`telco-ra report`: one committed run -> one self-contained HTML page, the RA scorecard, and per-team exports.

Extract (the run's rows of the output tables) -> figures (small Spark aggregations, bounded collects) -> load (the
page and the exports next to each other on the driver's disk, and the scorecard as the Delta table `ra_scorecard`).
Only the output tables are read: a report of a run needs none of its inputs, so it can be written long after them.

    telco-ra report --conf conf/local.yaml --run-id R [--out DIR] [--as-of now|close|2026-07-05T00:00:00Z]

`write_report` is the one function a caller (the end of `telco-ra run`, `telco-ra demo`) needs.
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pyspark.sql import SparkSession

from jobs.config import EnvConf
from jobs.inputs import is_path
from jobs.report import page
from jobs.report.exports import TeamExport, write_exports
from jobs.report.figures import (
    ReportError,
    Run,
    account_variance,
    cases_by_owner,
    control_points,
    current_cases_of_run,
    cycle_history,
    declared_figures,
    exposure_by_class,
    exposure_by_sign,
    funnel,
    identity,
    ruleset_owners,
    run_alerts,
    run_cases,
    run_layout,
    run_rows,
    top_accounts,
    top_case_types,
    trend,
)
from jobs.report.scorecard import as_json, scorecard, write_scorecard
from jobs.utc import NaiveInstant, parse_instant, utc_text

LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReportFiles:
    """What `write_report` wrote."""

    html: Path
    exports: list[TeamExport] = field(default_factory=list)
    scorecard: list[dict[str, Any]] = field(default_factory=list)
    scorecard_table: str | None = None          # None: not written (a reproduction, or asked not to)


def default_dir(conf: EnvConf, run_id: str) -> Path:
    """`<output>/../reports/<run_id>` for a local output path, else `./reports/<run_id>`."""
    output = conf.output.rstrip("/")
    if is_path(output) and "://" not in output:
        return Path(output).parent / "reports" / run_id
    return Path("reports") / run_id


def sla_reference(as_of: str | datetime | None, run: Run) -> tuple[datetime, str]:
    """(the instant SLA status is judged at, how it was chosen): `now` (the default), `close` (the cycle close the
    run used) or an ISO-8601 instant with a zone."""
    if isinstance(as_of, datetime):
        if as_of.tzinfo is None:
            raise ReportError(f"--as-of: {as_of!r} has no time zone")
        return as_of.astimezone(UTC), "given"
    text = (as_of or "now").strip()
    if text == "now":
        return datetime.now(UTC), "now"
    if text == "close":
        if run.cycle_close is None:
            raise ReportError(f"--as-of close: run {run.run_id} recorded no cycle close")
        return run.cycle_close, "cycle close"
    try:
        return parse_instant(text), "given"
    except NaiveInstant as exc:
        raise ReportError(f"--as-of: {text!r} has no time zone: write it in UTC, e.g. 2026-07-05T00:00:00Z") from exc
    except ValueError as exc:
        raise ReportError(f"--as-of: {text!r} is not now, close or an ISO-8601 instant") from exc


def _write_text(path: Path, text: str) -> None:
    """Write via a temporary file in the same folder and rename: a reader never sees half a page."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)          # mkstemp makes it private; the page is as readable as any file
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_report(spark: SparkSession, conf: EnvConf, run_id: str, out_dir: str | Path | None = None,
                 as_of: str | datetime | None = None, *, write_table: bool = True) -> ReportFiles:
    """Write the report of committed run `run_id`: `report-<run_id>.html` and `open-cases-<team>.csv/.parquet`
    under `out_dir` (default `default_dir`), and the run's `ra_scorecard` rows. ReportError (exit 2) when the run
    is not committed under `conf.output`.

    Example::

        files = write_report(spark, conf, result.run_id)
        print(files.html)
    """
    run, rows = run_rows(spark, conf.output, run_id)
    out = Path(out_dir) if out_dir is not None else default_dir(conf, run_id)
    when, basis = sla_reference(as_of, run)
    layout = run_layout(rows)
    cps = control_points(rows, layout, exposure_by_sign(spark, conf.output, run))
    cases = run_cases(spark, conf.output, run).cache()
    history = cycle_history(spark, conf.output, run).cache()
    current = current_cases_of_run(history, cases).cache()
    try:
        score = scorecard(spark, conf.output, run, layout, history)
        table = None
        if write_table and run.reproduction_of is None:
            table = write_scorecard(spark, conf.output, run, score)
        exports = write_exports(current, out, when, conf.report_clear_numbers_for, ruleset_owners(rows))
        data = {
            "report": {"as_of": utc_text(when), "as_of_basis": basis, "format": 1},
            "identity": identity(run, rows),
            "scorecard": as_json(score),
            "control_points": cps,
            "exposure_by_class": exposure_by_class(cases),
            "funnel": funnel(cps),
            "top_accounts": top_accounts(cases),
            "top_case_types": top_case_types(cases),
            "owners": cases_by_owner(current, when),
            "trend": trend(spark, conf.output, run),
            "account_variance": account_variance(spark, conf.output, run),
            "declared_figures": declared_figures(rows),
            "alerts": run_alerts(spark, conf.output, run),
            "exports": [{"owner_team": e.owner_team, "rows": e.rows, "csv": e.csv.name, "parquet": e.parquet.name,
                         "clear_numbers": e.clear_numbers} for e in exports],
        }
    finally:
        for df in (current, history, cases):
            df.unpersist()
    html = out / f"report-{_file_safe(run_id)}.html"
    _write_text(html, page.render(data))
    LOG.info("report of run %s: %s", run_id, html)
    return ReportFiles(html, exports, score, table)


def _file_safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", text)


def main_lines(files: ReportFiles) -> Sequence[str]:
    """What `telco-ra report` prints: where everything went."""
    lines = [f"report: {files.html}"]
    lines += [f"open cases of {e.owner_team}: {e.rows:,} ({e.csv.name}, {e.parquet.name})" for e in files.exports]
    if files.scorecard_table:
        lines.append(f"scorecard: {len(files.scorecard)} row(s) in {files.scorecard_table}")
    return lines
