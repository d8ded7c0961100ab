"""What `telco-ra` writes to the console while it works: its own log lines at INFO, phone numbers masked.

The person reading is an RA analyst following a month-end run (jobs/progress.py), not a Spark developer: telco-ra's
lines go to stderr as `<time> <level> <logger>: <message>`, py4j's connection chatter stays out, and Spark's own
warnings are trimmed at session start (jobs/session.py). `--verbose` adds DEBUG lines and every Spark warning.

Every line goes through `MaskPhones`: a phone number in a message (an alert's scope, an ignore entry's key, a value
quoted in an error) is masked as the reports mask it (jobs/report/masking.py: `+15551234567` -> `+1555***4567`,
`(555) 200-0009` -> `***`), except bare digit runs: in a log line those are counts, sizes and ids (a run id's hash).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO

from jobs.report.masking import mask_phones_in_text_str

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# Loggers whose INFO lines say nothing to an analyst (py4j: "Closing down clientserver connection").
QUIET = ("py4j",)


class MaskPhones(logging.Filter):
    """Masks phone numbers in a record's message (and its exception text) before any handler formats it."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = mask_phones_in_text_str(message, bare_digits=False)
        if masked != message:
            record.msg, record.args = masked, None
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = mask_phones_in_text_str(logging.Formatter().formatException(record.exc_info),
                                                      bare_digits=False)
        return True


@contextmanager
def console_logging(stream: TextIO, verbose: bool = False) -> Iterator[logging.Handler]:
    """Log to `stream` for the length of the block (a command's), at INFO (DEBUG when `verbose`), phones masked.

    The handler is removed and the levels put back on the way out, so a command run in-process (tests, a notebook)
    leaves the caller's logging as it found it.

    Example::

        with console_logging(sys.stderr):
            run the command
    """
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter(FORMAT))
    handler.addFilter(MaskPhones())
    root = logging.getLogger()
    previous = root.level, {name: logging.getLogger(name).level for name in QUIET}
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    for name in QUIET:
        logging.getLogger(name).setLevel(logging.WARNING)      # at DEBUG, py4j logs every call to the JVM
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(previous[0])
        for name, level in previous[1].items():
            logging.getLogger(name).setLevel(level)
