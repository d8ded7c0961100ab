"""Why a row cannot take part in a control: the QUARANTINED reason, as one Column.

A bad row is never dropped: it gets the first failing reason here and, downstream, the QUARANTINED outcome with that
reason, so it is counted in the conservation law and visible to the data owner.
"""

from __future__ import annotations

from collections.abc import Sequence

from pyspark.sql import Column
from pyspark.sql import functions as F

from transforms.schema import DIRECTIONS, SERVICE_TYPES

QUANTITY_COLUMNS = ("duration_s", "volume_bytes", "quantity")


def first_reason(checks: Sequence[tuple[Column, str]]) -> Column:
    """The reason of the first check whose condition is true, else null."""
    expr: Column = F.lit(None).cast("string")
    for condition, reason in reversed(checks):
        expr = F.when(condition, F.lit(reason)).otherwise(expr)
    return expr


def quarantine_reason(
    required: Sequence[str],
    columns: Sequence[str],
    *,
    phone_column: str | None = None,
    repeated_id: str | None = None,
    null_cycle: bool = True,
) -> Column:
    """Reason a row cannot take part, or null.

    `required` columns must be non-null; service_type/direction, where present and required, must be in the
    contract's vocabulary; quantities must not be negative; `phone_column` (the raw msisdn) must normalize (its
    `<col>_e164` is non-null); `repeated_id` marks every copy of a unique id after the first (`_rank > 1`).
    """
    checks: list[tuple[Column, str]] = []
    if null_cycle and "cycle_id" in columns:
        checks.append((F.col("cycle_id").isNull(), "null cycle_id"))
    for name in required:
        checks.append((F.col(name).isNull(), f"null {name}"))
    if repeated_id:
        checks.append((F.col("_rank") > 1, f"repeated {repeated_id}"))
    if "service_type" in required:
        checks.append((~F.col("service_type").isin(*SERVICE_TYPES), "unknown service_type"))
    if "direction" in required:
        checks.append((~F.col("direction").isin(*DIRECTIONS), "unknown direction"))
    for name in QUANTITY_COLUMNS:
        if name in required:
            checks.append((F.col(name) < 0, f"negative {name}"))
    if phone_column:
        checks.append((F.col(f"{phone_column}_e164").isNull(), f"{phone_column} not a phone number"))
    return first_reason(checks)
