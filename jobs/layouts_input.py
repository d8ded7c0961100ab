"""Inputs built from the conf's carrier layouts (`layouts:` in a ruleset's inputs): their rate decks as a small
reference DataFrame (transforms/schema.py `carrier_rate`), one row per layout and destination prefix.

Why the run reads the layouts rather than ingest writing the decks to a table: a layout is the one place a carrier's
agreement is written (CONTRACT section 6 puts `rates` in it), and a deck corrected in the layout must price the next
run without re-ingesting a month of files; the lines carry their `layout`, so each is priced by its own layout's
deck. A run records the decks' content fingerprint among its counters (`rate_decks_fingerprint`), so a reader can
tell which decks priced it. Layout errors exit 2 naming the layout file and key (jobs/ingest/layouts.py).
"""

from __future__ import annotations

import hashlib
import json

from pyspark.sql import DataFrame, SparkSession

from jobs.config import EnvConf
from jobs.ingest.layouts import load_layouts
from jobs.ruleset import Ruleset
from transforms.schema import INPUT_SCHEMAS

DEFAULT_PREFIX = ""          # the `default` rate: every number starts with the empty prefix


def rate_rows(folder: str, kind: str) -> list[tuple[object, ...]]:
    """The rate-deck rows of every layout of `kind` in `folder` (a few per layout: config, not data)."""
    rows: list[tuple[object, ...]] = []
    for name, layout in sorted(load_layouts(folder).items()):
        if layout.kind != kind:
            continue
        rates = layout.deck
        for prefix, rate in sorted(rates.per_minute.items()):
            rows.append((name, layout.kind, layout.carrier, DEFAULT_PREFIX if prefix == "default" else prefix, rate,
                         rates.increment_s, rates.minimum_s, rates.cost_places, layout.currency))
    return rows


def fingerprint(rows: list[tuple[object, ...]]) -> int:
    """A 48-bit fingerprint of the decks' content (fits control_run's counters)."""
    return int(hashlib.sha256(json.dumps([list(map(str, r)) for r in rows]).encode()).hexdigest()[:12], 16)


def layout_tables(spark: SparkSession, conf: EnvConf, ruleset: Ruleset) -> tuple[dict[str, DataFrame], dict[str, int]]:
    """(table name -> DataFrame, counters) for the ruleset's inputs declared with `layouts:`."""
    frames: dict[str, DataFrame] = {}
    counters: dict[str, int] = {}
    for inp in ruleset.layout_inputs():
        assert inp.layouts is not None
        rows = rate_rows(conf.carriers, inp.layouts)
        frames[inp.table] = spark.createDataFrame(rows, INPUT_SCHEMAS["carrier_rate"])
        counters["rate_decks_fingerprint"] = fingerprint(rows)
    return frames, counters
