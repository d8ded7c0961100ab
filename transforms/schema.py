"""The CONTRACT's tables as Spark schemas: one place that knows column names, types and vocabularies.

Input schemas are what a caller must provide (extra columns are allowed and carried as evidence); output schemas are
what telco-ra writes. The ruleset loader validates column names against these, and the input validator checks
types against them, so a typo fails with exit 2 before any data is read.
"""

from __future__ import annotations

from pyspark.sql.types import (
    ArrayType,
    BooleanType,
    DataType,
    DecimalType,
    IntegerType,
    LongType,
    MapType,
    StringType,
    StructField,
    StructType,
    TimestampType,
)

MONEY = DecimalType(18, 6)
MONEY_SUM = DecimalType(38, 6)
RATE = DecimalType(18, 8)
CONFIDENCE = DecimalType(5, 4)


def _schema(*fields: tuple[str, DataType]) -> StructType:
    return StructType([StructField(name, dtype, True) for name, dtype in fields])


S, T, L = StringType(), TimestampType(), LongType()

INPUT_SCHEMAS: dict[str, StructType] = {
    "cdr": _schema(
        ("record_id", S), ("source_file", S), ("msisdn", S), ("account_id", S), ("service_type", S),
        ("direction", S), ("other_party", S), ("start_time", T), ("duration_s", L), ("volume_bytes", L),
        ("cycle_id", S), ("received_at", T),
    ),
    "rated_event": _schema(
        ("rated_event_id", S), ("source_record_id", S), ("msisdn", S), ("account_id", S), ("service_type", S),
        ("direction", S), ("other_party", S), ("start_time", T), ("cycle_id", S), ("quantity", L),
        ("tariff_id", S), ("tariff_version", S), ("amount", MONEY), ("currency", S), ("rated_at", T),
    ),
    "bill_charge": _schema(
        ("charge_id", S), ("source_rated_event_id", S), ("product_id", S), ("account_id", S), ("msisdn", S),
        ("cycle_id", S), ("invoice_id", S), ("charge_type", S), ("billing_product_code", S), ("quantity", L),
        ("amount", MONEY), ("currency", S), ("billed_at", T),
    ),
    "suspense": _schema(("record_id", S), ("reason", S), ("rejected_at", T), ("status", S)),
    "product_inventory": _schema(
        ("product_id", S), ("account_id", S), ("offering_id", S), ("billing_product_code", S), ("state", S),
        ("activation_date", T), ("termination_date", T), ("monthly_fee", MONEY), ("quantity", L),
        ("parent_product_id", S), ("exemption", S),
    ),
    # CONTRACT section 8: snapshots of a provisioning platform (switch, PBX) and of a billing platform.
    "provisioned_item": _schema(
        ("item_id", S), ("item_type", S), ("account_id", S), ("domain", S), ("user_kind", S), ("number", S),
        ("queue_id", S), ("role", S), ("state", S), ("created_at", T), ("deleted_at", T), ("snapshot_at", T),
    ),
    "billing_subscription": _schema(
        ("subscription_id", S), ("account_id", S), ("product_code", S), ("item_ref", S), ("quantity", L),
        ("unit_price", MONEY), ("currency", S), ("status", S), ("start_date", T), ("end_date", T),
    ),
    "tariff": _schema(
        ("tariff_id", S), ("tariff_version", S), ("service_type", S), ("valid_from", T), ("valid_to", T),
        ("rate_per_unit", RATE), ("rounding_increment", L), ("minimum_charge", MONEY), ("currency", S),
    ),
    # CONTRACT section 6: what `telco-ra ingest` appends (jobs/ingest/normalize.py writes these and more).
    "carrier_invoice_line": _schema(
        ("line_id", S), ("carrier", S), ("layout", S), ("invoice_id", S), ("start_time", T), ("start_time_alt", T),
        ("direction", S), ("source_number", S), ("destination_number", S), ("duration_s", L),
        ("billed_duration_s", L), ("cost", MONEY), ("currency", S), ("call_id", S), ("record_id", S),
        ("source_file", S), ("source_sha256", S), ("source_row", L), ("parse_error", S), ("ingested_at", T),
    ),
    # CONTRACT section 9: what `telco-ra ingest` appends from `kind: line_bill` layouts (one row per line of a
    # carrier's bill; phone E.164, usage_mb null where the bill has no usage column) ...
    "carrier_bill_line": _schema(
        ("line_id", S), ("carrier", S), ("layout", S), ("bill_id", S), ("bill_period", S), ("phone", S), ("iccid", S),
        ("usage_mb", MONEY), ("amount", MONEY), ("currency", S), ("source_file", S), ("source_sha256", S),
        ("source_row", L), ("parse_error", S), ("ingested_at", T),
    ),
    # ... the CRM's assets (phone in any format, status as typed) and the device platform's status per SIM.
    "crm_asset": _schema(
        ("asset_id", S), ("account_id", S), ("phone", S), ("iccid", S), ("status", S), ("supplier", S),
        ("updated_at", T),
    ),
    "device_status": _schema(
        ("device_id", S), ("iccid", S), ("serial", S), ("online", BooleanType()), ("last_seen_at", T),
    ),
    # The rate decks of the conf's carrier layouts (conf/carriers/*.yaml `rates`), one row per layout and destination
    # prefix ('' for the layout's default rate): built by the run from the layouts, never a Delta table (an input
    # declared with `layouts:`, jobs/layouts_input.py).
    "carrier_rate": _schema(
        ("layout", S), ("kind", S), ("carrier", S), ("prefix", S), ("rate_per_minute", RATE), ("increment_s", L),
        ("minimum_s", L), ("cost_places", L), ("currency", S),
    ),
}

# Optional contract columns: used when present, never required.
OPTIONAL_INPUT_COLUMNS: dict[str, StructType] = {
    "cdr": _schema(("carrier", S)),
    # which DST rule placed start_time (SPRING_FORWARD_SHIFTED, FALL_BACK_AMBIGUOUS), written by telco-ra ingest
    "carrier_invoice_line": _schema(("time_rule", S)),
}

SERVICE_TYPES = ("VOICE", "SMS", "DATA")
DIRECTIONS = ("MO", "MT")
EXPOSURE_CLASSES = ("UNDERBILLING", "OVERBILLING", "TIMING", "COST_LEAKAGE", "INVENTORY")
SEVERITIES = ("LOW", "MEDIUM", "HIGH", "CRITICAL")

# CONTRACT section 4: the outcome vocabulary of each control point and side.
OUTCOMES: dict[str, dict[str, tuple[str, ...]]] = {
    "usage-to-rating": {
        "LEFT": ("MATCHED", "IN_SUSPENSE", "SUSPENSE_AGED", "LATE_USAGE", "USAGE_NOT_RATED", "AMBIGUOUS_MATCH",
                 "DUPLICATE_USAGE", "QUARANTINED"),
        "RIGHT": ("MATCHED", "DUPLICATE_RATED_EVENT", "RATED_WITHOUT_USAGE", "AMBIGUOUS_MATCH", "QUARANTINED"),
    },
    "rating-accuracy": {"LEFT": ("MATCHED", "TARIFF_MISMATCH", "TARIFF_NOT_FOUND", "QUARANTINED")},
    "rating-to-billing": {
        "LEFT": ("MATCHED", "RATED_NOT_BILLED", "CHARGE_AMOUNT_MISMATCH", "QUARANTINED"),
        "RIGHT": ("MATCHED", "CHARGE_WITHOUT_RATED_EVENT", "DUPLICATE_CHARGE", "CHARGE_AMOUNT_MISMATCH",
                  "QUARANTINED"),
    },
    "usage-aggregate": {"AGGREGATE": ("MATCHED", "AGGREGATE_VARIANCE")},
}

COMMON_OUTPUT = (("run_id", S), ("control_point_id", S), ("ruleset_version", S), ("cycle_id", S))

RECORD_OUTCOME = _schema(
    *COMMON_OUTPUT,
    ("account_bucket", IntegerType()), ("side", S), ("source_table", S), ("record_id", S), ("record_key", S),
    ("payload_hash", S), ("counterpart_id", S), ("outcome", S), ("match_stage", S), ("confidence", CONFIDENCE),
    ("amount", MONEY), ("expected_amount", MONEY), ("amount_diff", MONEY), ("currency", S), ("reason", S),
    ("account_id", S), ("msisdn_e164", S), ("service_type", S), ("start_time", T), ("exemption", S),
    ("exposure_amount", MONEY), ("reason_code", S),
    # IGNORED rows: the ignore_list entry that made the gap IGNORED (its evidence); reason_code keeps the outcome
    ("ignore_entry_id", S),
    # Columns a control point sets through its `record:` overrides (null where it sets none): RECORD_EXTRAS.
    ("confidence_band", S), ("action", S), ("leakage", MONEY),
    # the ruleset's name of the decide rule that gave the outcome (an IGNORED row: the rule of the outcome it replaces)
    ("rule", S),
)
# The record_outcome columns beyond the v1 contract's that a ruleset's `record:` sets (CONTRACT section 9: the line
# audit's confidence badge, recommended action and leakage), with their SQL types; last, nullable, so tables written
# before them still take appends (outputs are written with mergeSchema).
RECORD_EXTRAS = {name: RECORD_OUTCOME[name].dataType.simpleString() for name in ("confidence_band", "action",
                                                                                   "leakage")}

EVIDENCE = StructType([
    StructField("source_system", S), StructField("source_table", S), StructField("record_id", S),
    StructField("payload_hash", S), StructField("table_version", L),
])

# What one run finds about a case (transforms/cases.py) ...
CASE_FINDING = _schema(
    *COMMON_OUTPUT,
    ("account_bucket", IntegerType()), ("case_id", S), ("case_type", S), ("severity", S),
    ("business_key", StructType([StructField("account_id", S), StructField("msisdn", S),
                                 StructField("service_type", S), StructField("record_ids", ArrayType(S))])),
    ("exposure_amount", MONEY), ("exposure_class", S), ("currency", S), ("owner_team", S), ("status", S),
    ("opened_at", T), ("due_at", T), ("evidence", ArrayType(EVIDENCE)), ("reason", S), ("correction_action", S),
)
# ... and the case lifecycle (transforms/lifecycle.py, jobs/cases.py): ra_case is the append-only history of every
# case, one row per run that found or cleared it and per manual transition; a case's current state is its latest
# row by recorded_at. recorded_at (wall clock) is the only non-deterministic column: content hashes exclude it.
CASE_LIFECYCLE = _schema(
    ("recorded_at", T), ("first_opened_at", T), ("closed_by_run", S), ("actor", S), ("transition_reason", S),
    ("evidence_refs", ArrayType(S)), ("approved_by", S), ("requested_status", S),
)
RA_CASE = StructType(CASE_FINDING.fields + CASE_LIFECYCLE.fields)

AGGREGATE_VARIANCE = _schema(
    *COMMON_OUTPUT,
    ("account_bucket", IntegerType()), ("account_id", S), ("service_type", S), ("currency", S),
    ("left_count", L), ("left_amount", MONEY_SUM), ("right_count", L), ("right_amount", MONEY_SUM),
    ("difference", MONEY_SUM), ("tolerance", MONEY_SUM), ("beyond_tolerance", BooleanType()), ("case_id", S),
    # a row beyond tolerance of an account an ignore_list entry names: that entry (no case)
    ("ignore_entry_id", S),
)

METRIC = StructType([
    StructField("side", S), StructField("outcome", S), StructField("count", L), StructField("amount", MONEY_SUM),
    StructField("exposure", MONEY_SUM),
    # rows whose exposure is a price that could not be found (no tariff): shown as 0, counted here
    StructField("unpriced", L),
])

# A control point's `figures` (its ruleset declares them): per figure and group of its side's outcome rows (the
# group's values in the figure's `by` order, e.g. [{column: outcome, value: GHOST_DEVICE}, {column: confidence_band,
# value: high}]), the rows and the sum of a column of them (`summed`), computed from the outcome rows the run writes.
FIGURE_GROUP = StructType([StructField("column", S), StructField("value", S)])
FIGURE = StructType([
    StructField("figure", S), StructField("side", S), StructField("group", ArrayType(FIGURE_GROUP)),
    StructField("count", L), StructField("summed", S), StructField("sum", MONEY_SUM),
])

CONTROL_RUN = _schema(
    *COMMON_OUTPUT,
    ("ruleset_name", S), ("ruleset_hash", S), ("ruleset_text", S), ("partition_scope", S), ("input_tables", MapType(S, S)),
    ("input_versions", MapType(S, L)), ("watermark", T), ("cycle_close", T), ("started_at", T),
    ("completed_at", T), ("status", S), ("conf_fingerprint", S), ("left_count", L), ("right_count", L),
    ("left_amount", MONEY_SUM), ("right_amount", MONEY_SUM), ("metrics", ArrayType(METRIC)),
    ("cases_opened", L), ("conservation_ok", BooleanType()), ("post_close", BooleanType()), ("close_run_id", S),
    # rows_read.<table>, rows_out_of_scope.<table>, records_unpriced, fuzzy_rounds, fuzzy_unresolved, ...
    ("counters", MapType(S, L)),
    # the run this one reproduces (telco-ra rerun): evidence about it, never the current result
    ("reproduction_of", S),
    # the ignore_list version the run read (null: no ignore list yet) and the instant its entries were in force at
    ("ignore_list_version", L), ("ignore_as_of", T),
    # the control point's declared figures (FIGURE); empty where it declares none
    ("figures", ArrayType(FIGURE)),
)

# CONTRACT section 8: the ignore list (under `output`, append-only; transforms/ignore.py, jobs/ignore.py). An ADD
# row per entry, a REMOVE row per removal (entry_id of the entry removed).
IGNORE_LIST = _schema(
    ("entry_id", S), ("action", S), ("control_point_id", S), ("scope", S), ("key", S), ("reason", S), ("actor", S),
    ("created_at", T), ("expires_at", T), ("removed_by", S), ("removed_at", T), ("why", S),
)

# Issue 15 point 8: a row a person reported as wrong (`telco-ra flag`, jobs/flag/), with its whole context, appended
# to `flagged_row` under `output`. Input rows are JSON text (`row`, `record`, `counterpart`): one table holds rows of
# every input table, each as its table stored it at the version the run read.
CONTEXT_ROW = StructType([
    StructField("roles", ArrayType(S)), StructField("source_table", S), StructField("table_version", L),
    StructField("record_id", S), StructField("payload_hash", S), StructField("row", S),
])
FLAGGED_ROW = _schema(
    ("flag_id", S), ("flagged_at", T), ("flagged_by", S), ("why", S),
    *COMMON_OUTPUT, ("ruleset_name", S), ("ruleset_hash", S), ("input_versions", MapType(S, L)),
    ("side", S), ("record_id", S), ("record_key", S), ("payload_hash", S), ("account_id", S),
    ("outcome", S), ("reason_code", S), ("reason", S), ("match_stage", S), ("counterpart_id", S),
    ("amount", MONEY), ("expected_amount", MONEY), ("exposure_amount", MONEY),
    # the decide rule that gave the outcome, its condition (SQL) and where the name comes from: `recorded` in
    # record_outcome, or `replayed` (a run written before record_outcome carried it: the fixture's replay names it)
    ("rule", S), ("rule_when", S), ("rule_source", S),
    # what the run recommended for the outcome (its policy in the ruleset; none for an outcome that raises no case)
    ("severity", S), ("owner_team", S), ("correction_action", S),
    ("outcome_row", S),                       # the record_outcome row, every column, as JSON
    ("record_table", S), ("record_version", L), ("record", S),
    ("counterpart_table", S), ("counterpart_version", L), ("counterpart", S),
    ("evidence", ArrayType(EVIDENCE)),        # the record and its counterpart, as ra_case names evidence
    ("context", ArrayType(CONTEXT_ROW)),      # every input row the outcome depends on (jobs/flag/context.py)
    ("context_level", IntegerType()), ("fixture_id", S), ("fixture", S), ("fixture_reproduced", BooleanType()),
)

# CONTRACT section 6: a control point's `alerts` (a rate of its records per scope above a threshold), one row per
# scope value beyond it.
RUN_ALERT = _schema(
    *COMMON_OUTPUT,
    ("scope", S), ("metric", S), ("value", DecimalType(18, 6)), ("threshold", DecimalType(18, 6)), ("message", S),
    ("records", L), ("counted", L),
)

CORRECTION_REQUEST = _schema(
    *COMMON_OUTPUT,
    ("account_bucket", IntegerType()), ("request_id", S), ("case_id", S), ("case_type", S), ("action", S),
    ("target_system", S), ("owner_team", S), ("exposure_amount", MONEY), ("exposure_class", S), ("currency", S),
    ("business_key", RA_CASE["business_key"].dataType), ("evidence", ArrayType(EVIDENCE)), ("status", S),
    ("requested_at", T), ("due_at", T),
)

SUSPENSE_AGING = _schema(
    *COMMON_OUTPUT,
    ("age_bucket", S), ("owner_team", S), ("records", L), ("records_with_usage", L), ("exposure", MONEY_SUM),
)

CLOSE_EXPOSURE = StructType([
    StructField("exposure_class", S), StructField("cases", L), StructField("underbilling", MONEY_SUM),
    StructField("overbilling", MONEY_SUM),
])

CYCLE_CLOSE = _schema(
    *COMMON_OUTPUT,
    ("close_run_id", S), ("closed_at", T), ("ruleset_hash", S), ("input_versions", MapType(S, L)), ("watermark", T),
    ("metrics", ArrayType(METRIC)), ("exposure", ArrayType(CLOSE_EXPOSURE)), ("output_hashes", MapType(S, S)),
)

OUTPUT_SCHEMAS: dict[str, StructType] = {
    "record_outcome": RECORD_OUTCOME,
    "ra_case": RA_CASE,
    "aggregate_variance": AGGREGATE_VARIANCE,
    "correction_request": CORRECTION_REQUEST,
    "suspense_aging": SUSPENSE_AGING,
    "run_alert": RUN_ALERT,
    "control_run": CONTROL_RUN,
    "cycle_close": CYCLE_CLOSE,
}
