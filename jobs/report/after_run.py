"""The report at the end of a run: `telco-ra run`, `close`, `rerun` and `demo` write the committed run's report and say where.

A report is a view of a committed run, never part of it: a run whose report fails keeps its committed outputs, and
the error names the command that writes the report again (`telco-ra report --conf C --run-id R`). Whether the
command then fails depends on who wanted the report:

- by default (the conf's `report: {after_run: true}`, the default) the error is logged and the command exits 0: the
  run's result is its committed outputs, and a scheduler must not run a committed month again because a page could
  not be written;
- `--report` on the command line makes the report part of what was asked: its failure exits 1 (the run stays
  committed);
- `--no-report` (or `after_run: false` without `--report`) writes none: tests and the bench, a loop of partition
  runs that reports once at the end.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from pyspark.sql import SparkSession

from jobs.config import EnvConf
from jobs.report.job import write_report

LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class AfterRun:
    """What the end of a run did about its report."""

    run_id: str
    html: Path | None = None        # the page, when one was written
    failed: bool = False            # asked for (by default or explicitly) and not written
    asked: bool = False             # `--report` on the command line

    @property
    def exit_code(self) -> int:
        """1 when an explicitly asked report failed, else 0 (see the module docstring)."""
        return 1 if self.failed and self.asked else 0

    def lines(self) -> list[str]:
        """What the command prints on stdout: 'report: <path>', or nothing."""
        return [f"report: {self.html}"] if self.html is not None else []


def report_after_run(spark: SparkSession, conf: EnvConf, run_id: str, asked: bool | None = None) -> AfterRun:
    """Write the report of committed run `run_id` if wanted: `asked` is `--report` (True), `--no-report` (False) or
    neither (None: the conf's `report.after_run`, default true). Never raises for the report's own failure.

    Example::

        done = report_after_run(spark, conf, result.run_id, args.report)
        print(*done.lines(), sep="\\n")
        return done.exit_code
    """
    wanted = conf.report_after_run if asked is None else asked
    if not wanted:
        return AfterRun(run_id)
    try:
        files = write_report(spark, conf, run_id)
    except Exception as exc:  # noqa: BLE001 - a committed run stays committed whatever its report does
        LOG.error("run %s is committed, but its report was not written (%s). Write it with: telco-ra report --conf %s "
                  "--run-id %s", run_id, _reason(exc), conf.path, run_id)
        LOG.debug("the report's failure", exc_info=True)
        return AfterRun(run_id, failed=True, asked=bool(asked))
    return AfterRun(run_id, html=files.html, asked=bool(asked))


def _reason(exc: BaseException) -> str:
    """The first line of the error (a JVM error's message, not its stack)."""
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0] if lines else ''}".rstrip(": ")
