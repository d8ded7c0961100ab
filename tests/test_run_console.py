"""What a person sees while a run works and when it ends (issue 15, points 1 and 6): progress by control point and
step with rows, no Spark noise on the console, no phone number in clear, and the run's report at the end.

The run is the hand-built scenario month (tests/scenario.py: numbers in E.164 and in national formats, a suspense
reason quoting one), through the command line as an operator types it. What it writes to the console is read from
both places it goes: Python's stderr (telco-ra's lines) and the JVM's log4j console.
"""

from __future__ import annotations

import io
import logging
import re
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from factories import CYCLE, RULESET, Cli, jobs_started, run_cli, session_conf, write_inputs
from jobs.config import ConfigError, load_conf
from jobs.console import console_logging
from jobs.outputs import read_output, table_ref
from jobs.phases import phase
from jobs.progress import PROGRESS_SECONDS_KEY, Progress, progress_seconds, running
from jobs.report.job import default_dir
from jobs.ruleset import load_ruleset
from jobs.run import execute
from jobs.session import SPARK_NOISE, set_spark_log, spark_log_level
from scenario import CDR, CHARGES, RATED, SUSPENSE
from transforms.checkpoints import step

E164 = re.compile(r"\+\d{8,15}")
SUSPENSE_REASON = "unknown subscriber +15552000008, caller (555) 200-0008"
# One realistic message per noise filter, as Spark writes it, by a logger under the filter's name.
NOISE_EXAMPLES = {
    "org.apache.spark.rdd.MapPartitionsRDD": "RDD 709 was locally checkpointed, its lineage has been truncated and "
                                             "cannot be recomputed after unpersisting",
    "org.apache.spark.sql.catalyst.util.SparkStringUtils": "Truncated the string representation of a plan since it "
                                                           "was too large. This behavior can be adjusted by setting "
                                                           "'spark.sql.debug.maxToStringFields'.",
    "org.apache.spark.sql.execution.window.WindowExec": "No Partition Defined for Window operation! Moving all data "
                                                        "to a single partition, this can cause serious performance "
                                                        "degradation.",
    "org.apache.spark.scheduler.DAGScheduler": "Broadcasting large task binary with size 1473.7 KiB",
    "org.apache.spark.sql.catalyst.analysis.HintErrorLogger": "A join hint (strategy=broadcast) is specified but it "
                                                              "is not part of a join relation.",
    "org.apache.spark.sql.classic.SparkSession": "Using an existing Spark session; only runtime SQL configurations "
                                                 "will take effect.",
}


@contextmanager
def jvm_console(spark: SparkSession) -> Iterator[Callable[[], str]]:
    """What the JVM's log4j console shows during the block, as '<level> <logger>: <message>' lines (a function that
    reads it so far).

    The JVM is another process: its console is the stderr it inherited at launch, which neither capfd nor a dup2 in
    this process reaches. So a second appender, beside the console on the root logger, sees every event the console
    sees (the same loggers, levels and filters) and writes it to a buffer this test reads.
    """
    jvm = spark.sparkContext._jvm
    assert jvm is not None
    core = jvm.org.apache.logging.log4j.core
    context = jvm.org.apache.logging.log4j.LogManager.getContext(False)
    config = context.getConfiguration()
    writer = jvm.java.io.StringWriter()
    layout = core.layout.PatternLayout.newBuilder().withPattern("%p %c{1}: %m%n").withConfiguration(config).build()
    name = f"telco-ra-test-console-{id(writer)}"
    appender = core.appender.WriterAppender.createAppender(layout, None, writer, name, False, True)
    appender.start()
    root = config.getRootLogger()
    root.addAppender(appender, None, None)
    context.updateLoggers()
    try:
        yield lambda: str(writer.toString())
    finally:
        root.removeAppender(name)
        appender.stop()
        context.updateLoggers()


@dataclass(frozen=True)
class Seen:
    """A command and all it wrote: stdout, Python's stderr, and the JVM's console."""

    cli: Cli
    jvm: str

    @property
    def console(self) -> str:
        return self.cli.err + self.jvm


def command(spark: SparkSession, *argv: str) -> Seen:
    with jvm_console(spark) as console:
        cli = run_cli(spark, *argv)
        return Seen(cli, console())


@dataclass(frozen=True)
class Story:
    conf_path: Path
    output: str
    run_id: str
    first: Seen               # telco-ra run (report by default)
    no_report: Seen           # the same command again (already committed) with --no-report, reports folder gone
    blocked: Seen             # again, the reports folder a file: the report cannot be written
    blocked_asked: Seen       # the same with --report
    reports_after_no_report: bool


@pytest.fixture(scope="module")
def story(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> Story:
    root = tmp_path_factory.mktemp("console")
    suspense = [{**s, "reason": SUSPENSE_REASON} for s in SUSPENSE]
    conf_path = write_inputs(spark, root, {"cdr": CDR, "rated_event": RATED, "bill_charge": CHARGES,
                                           "suspense": suspense})
    c = str(conf_path)
    argv = ("run", "--conf", c, "--ruleset", RULESET, "--cycle", CYCLE)
    with session_conf(spark, {PROGRESS_SECONDS_KEY: "0.5"}):
        first = command(spark, *argv)
    assert first.cli.code == 0, first.console[-3000:]
    run_id = re.search(r"^telco-ra run (\S+)", first.cli.out, re.MULTILINE).group(1)  # type: ignore[union-attr]
    conf = load_conf(conf_path)
    reports = default_dir(conf, run_id).parent
    shutil.move(reports, root / "reports-first")
    no_report = command(spark, *argv, "--no-report")
    made = reports.exists()
    reports.write_text("a file where the reports folder goes: the report cannot be written\n")
    blocked = command(spark, *argv)
    blocked_asked = command(spark, *argv, "--report")
    return Story(conf_path, conf.output, run_id, first, no_report, blocked, blocked_asked, made)


def test_a_run_says_where_it_is_by_control_point_and_step(story: Story) -> None:
    err = story.first.cli.err
    for line in ("prepare: started", "prepare: cdr", "usage-to-rating: started", "usage-to-rating: matching, "
                 "duplicates", "usage-to-rating: matching, exact stage", "usage-to-rating: matching, fuzzy stage",
                 "usage-to-rating: deciding, left side", "rating-to-billing: matching, exact stage",
                 "rating-to-billing: deciding, right side", "usage-aggregate: started", "write: started"):
        assert f"INFO transforms.checkpoints: {line}\n" in err or f"INFO jobs.phases: {line}\n" in err, line
    assert re.search(r"usage-to-rating: done in \d+\.\d s", err)
    # rows read per input, from the counts prepare observes anyway (CDR: 29 records, a rated event, ... of the month)
    assert re.search(r"prepare: cdr: \d[\d,]* rows read \(\d[\d,]* out of this run's scope\)", err), err[-3000:]
    assert re.search(r"usage-to-rating: \d[\d,]* left rows, \d[\d,]* right rows decided", err)
    assert f"{story.run_id}: committed in" in err
    # the order a person reads them in
    at = [err.index(s) for s in ("prepare: started", "usage-to-rating: started", "rating-to-billing: started",
                                 "totals: started", "write: started", "committed in")]
    assert at == sorted(at)


def test_no_spark_warning_noise_on_the_console(story: Story) -> None:
    warnings = [line for line in story.first.jvm.splitlines() if line.startswith("WARN ")]
    assert warnings == [], warnings[:20]


def test_no_clear_phone_number_in_what_a_run_prints(story: Story) -> None:
    for seen in (story.first, story.no_report, story.blocked, story.blocked_asked):
        for text in (seen.cli.out, seen.cli.err, seen.jvm):
            assert E164.findall(text) == [], text[-2000:]
            assert "(555) 200-0008" not in text


def test_the_report_is_written_at_the_end_of_a_run_and_its_path_printed(story: Story) -> None:
    printed = re.findall(r"^report: (.+)$", story.first.cli.out, re.MULTILINE)
    assert len(printed) == 1
    page = Path(printed[0])
    assert page.name == f"report-{story.run_id}.html"
    moved = page.parent.parent.parent / "reports-first" / story.run_id / page.name   # the fixture moved it aside
    assert moved.is_file() and story.run_id in moved.read_text(encoding="utf-8")


def test_no_report_writes_none(story: Story) -> None:
    assert story.no_report.cli.code == 0, story.no_report.console[-2000:]
    assert "already committed" in story.no_report.cli.out
    assert "report:" not in story.no_report.cli.out
    assert not story.reports_after_no_report


def test_a_report_that_fails_keeps_the_run_and_names_the_command_that_writes_it(spark: SparkSession,
                                                                                 story: Story) -> None:
    retry = f"telco-ra report --conf {story.conf_path} --run-id {story.run_id}"
    assert story.blocked.cli.code == 0, story.blocked.console[-2000:]      # the report was not asked for
    assert story.blocked_asked.cli.code == 1, story.blocked_asked.console[-2000:]   # --report: it was
    for seen in (story.blocked, story.blocked_asked):
        assert "report:" not in seen.cli.out
        errors = [line for line in seen.cli.err.splitlines() if " ERROR " in line]
        assert len(errors) == 1 and retry in errors[0] and "is committed" in errors[0], seen.cli.err[-2000:]
    runs = read_output(spark, table_ref(story.output, "control_run")).where(F.col("run_id") == story.run_id)
    assert runs.count() == len(load_ruleset(RULESET).control_points)


# --------------------------------------------------------------------------------------- progress from the status store
def test_the_poller_shows_rows_so_far_of_a_running_stage(spark: SparkSession, tmp_path: Path,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    """A job of two tasks reading 50 rows each: the first ends, the second waits for a file the test writes once the
    first is counted. The job is then running with 1 of 2 tasks done and at least the first task's rows read, and
    both `running` and the poller's thread say so under the phase and step the job was started in."""
    data, release = tmp_path / "rows", tmp_path / "release"
    spark.range(100).repartition(2).write.parquet(str(data))

    def wait_in_second_task(batches: Iterator[object]) -> Iterator[object]:
        from pyspark import TaskContext

        context = TaskContext.get()
        if context is not None and context.partitionId() == 1:
            while not release.exists():
                time.sleep(0.05)
        yield from batches

    failures: list[BaseException] = []

    def job() -> None:
        try:
            with phase(spark, "probe", "run-p"):
                step(spark, "waiting for the test")
                rows.mapInPandas(wait_in_second_task, "id long").collect()  # type: ignore[arg-type]
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread
            failures.append(exc)

    caplog.set_level(logging.INFO, logger="jobs.progress")
    with session_conf(spark, {"spark.sql.files.maxPartitionBytes": "1k"}):    # a partition per file
        rows = spark.read.parquet(str(data))
        assert rows.rdd.getNumPartitions() == 2
        poller = Progress(spark, "run-p", interval_s=0.05).start()
        worker = threading.Thread(target=job, daemon=True)
        worker.start()
    try:
        seen = []
        for _ in range(6000):                     # a fail-safe, not a timing: the job waits for us
            seen = [j for j in running(spark, "run-p") if j.tasks_done >= 1]
            if seen or failures:
                break
            time.sleep(0.1)
        assert not failures, failures
        assert len(seen) == 1, running(spark, "run-p")
        # The finished task's 50 rows; the waiting task's 50 too once an executor heartbeat has reported them.
        assert (seen[0].phase, seen[0].step, seen[0].tasks_done, seen[0].tasks) == ("probe", "waiting for the test", 1, 2)
        assert seen[0].rows in (50, 100), seen[0]
        line = re.compile(r"^probe: waiting for the test: (50|100) rows so far \(Spark stage \d+: 1 of 2 tasks done\)$")
        assert line.match(seen[0].line()), seen[0].line()
        for _ in range(6000):
            if any(line.match(r.getMessage()) for r in caplog.records):
                break
            time.sleep(0.1)
        assert any(line.match(r.getMessage()) for r in caplog.records), [r.getMessage() for r in caplog.records]
        assert running(spark, "another-run") == []          # a run sees its own jobs only
    finally:
        release.touch()
        worker.join(timeout=600)
        poller.stop()
    assert not failures, failures


def test_the_progress_setting_is_checked(spark: SparkSession) -> None:
    with session_conf(spark, {PROGRESS_SECONDS_KEY: "often"}), pytest.raises(ConfigError, match=PROGRESS_SECONDS_KEY):
        progress_seconds(spark)
    with session_conf(spark, {PROGRESS_SECONDS_KEY: "0"}):
        assert progress_seconds(spark) == 0


def test_following_a_run_starts_no_spark_job(spark: SparkSession, tmp_path: Path) -> None:
    """The same small run, once with the poller looking every 10 ms and once without: as many Spark jobs (counted as
    tests/test_ground_truth.py counts a small run's)."""
    counts = {}
    for seconds in ("0.01", "0"):
        conf_path = write_inputs(spark, tmp_path / f"every-{seconds}", {"cdr": CDR, "rated_event": RATED,
                                                                         "bill_charge": CHARGES, "suspense": SUSPENSE})
        with session_conf(spark, {PROGRESS_SECONDS_KEY: seconds}):
            before = jobs_started(spark)
            result = execute(spark, load_conf(conf_path), load_ruleset(RULESET), CYCLE)
            counts[seconds] = jobs_started(spark) - before
        assert result.committed
    assert counts["0.01"] == counts["0"], counts


# ------------------------------------------------------------------------------------------------- Spark's console
def test_spark_noise_is_filtered_and_nothing_else(spark: SparkSession) -> None:
    """Each noise message by its logger at WARN stays off the console; another warning by the same logger, and the
    noise message logged as an error, show; asked for (TELCO_RA_SPARK_LOG=WARN, --verbose), the noise shows too."""
    assert {name.rsplit(".", 1)[0] for name in NOISE_EXAMPLES} >= {n for n, _ in SPARK_NOISE} - set(NOISE_EXAMPLES)
    manager = spark.sparkContext._jvm.org.apache.logging.log4j.LogManager  # type: ignore[union-attr]

    def log_all() -> str:
        with jvm_console(spark) as console:
            for name, message in NOISE_EXAMPLES.items():
                logger = manager.getLogger(name)
                logger.warn(message)
                logger.warn(f"a real warning of {name}")
                logger.error(f"{message} (as an error of {name})")
            return console()

    set_spark_log(spark, None)
    quiet = log_all()
    try:
        set_spark_log(spark, "WARN")
        loud = log_all()
    finally:
        set_spark_log(spark, None)
    for name, message in NOISE_EXAMPLES.items():
        short = name.rsplit(".", 1)[1]
        assert f"WARN {short}: {message}\n" not in quiet, name
        assert f"WARN {short}: a real warning of {name}\n" in quiet, name
        assert f"ERROR {short}: {message} (as an error of {name})\n" in quiet, name
        assert f"WARN {short}: {message}\n" in loud, name


def test_the_spark_log_level_asked_for(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TELCO_RA_SPARK_LOG", raising=False)
    assert spark_log_level() is None
    assert spark_log_level("WARN") == "WARN"
    monkeypatch.setenv("TELCO_RA_SPARK_LOG", " info ")
    assert spark_log_level() == "INFO"
    monkeypatch.setenv("TELCO_RA_SPARK_LOG", "LOUD")
    with pytest.raises(ConfigError, match="TELCO_RA_SPARK_LOG: level: 'LOUD' is not a log level"):
        spark_log_level()


def test_console_lines_mask_phone_numbers() -> None:
    stream = io.StringIO()
    log = logging.getLogger("jobs.test_console")
    with console_logging(stream):
        log.info("ALERT carrier-check %s: +15552000017 and (555) 200-0009 over threshold", "rate")
        try:
            raise ValueError("bad number +15552000018")
        except ValueError:
            log.exception("failed for tel:+15552000019")
    text = stream.getvalue()
    assert "+1555***0017" in text and "+1555***0019" in text and "+1555***0018" in text, text
    assert E164.findall(text) == [] and "(555) 200-0009" not in text, text
    log.info("after the block: %s", "+15552000020")
    assert "+15552000020" not in stream.getvalue()        # the handler left with the block


# ------------------------------------------------------------------------------------------------- the command line
def test_the_report_switches_and_verbose_parse_where_documented() -> None:
    from jobs.cli import build_parser

    parser = build_parser()
    common = ["--conf", "c.yaml"]
    run = ["run", *common, "--ruleset", "r.yaml", "--cycle", "2026-06"]
    close = ["close", *common, "--ruleset", "r.yaml", "--cycle", "2026-06"]
    for argv, report in ((run, None), ([*run, "--report"], True), ([*run, "--no-report"], False),
                         ([*close, "--no-report"], False), (["demo", "--report"], True), (["demo"], None),
                         (["rerun", *common, "--run-id", "R"], None),
                         (["rerun", *common, "--run-id", "R", "--no-report"], False)):
        assert parser.parse_args(argv).report is report, argv
    for argv in (run, close, ["demo"], ["rerun", *common, "--run-id", "R"], ["report", *common, "--run-id", "R"],
                 ["cases", "list", *common], ["ignore", "list", *common], ["ingest", *common, "f.csv"]):
        assert parser.parse_args([*argv, "--verbose"]).verbose is True, argv
        assert parser.parse_args(argv).verbose is False, argv
    with pytest.raises(SystemExit):
        parser.parse_args(["report", *common, "--run-id", "R", "--no-report"])    # a report command is the report


def test_the_conf_can_turn_the_report_after_a_run_off(tmp_path: Path) -> None:
    base = "tables: {cdr: x}\noutput: out\ncycles: {\"2026-06\": {start: 2026-06-01T00:00:00Z, " \
           "end: 2026-07-01T00:00:00Z, close: 2026-07-03T00:00:00Z}}\n"
    conf = tmp_path / "conf.yaml"
    conf.write_text(base)
    assert load_conf(conf).report_after_run is True
    conf.write_text(base + "report: {after_run: false}\n")
    assert load_conf(conf).report_after_run is False
    conf.write_text(base + "report: {after_run: sometimes}\n")
    with pytest.raises(ConfigError, match="report.after_run: 'sometimes' is not true or false"):
        load_conf(conf)
