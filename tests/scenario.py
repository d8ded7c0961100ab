"""The hand-built scenario month: records whose outcome in every control is known in advance (EXPECTED).

Each group of records uses its own subscriber number and account, so groups cannot interfere.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from factories import T0

CLOSE = datetime(2026, 7, 3, tzinfo=UTC)
H = timedelta(hours=1)


def n(i: int) -> str:
    """A distinct subscriber number per scenario group, in E.164."""
    return f"+1555200{i:04d}"


def cdr(rid: str | None, i: int, **kw: Any) -> dict[str, Any]:
    return {"record_id": rid, "msisdn": n(i), "account_id": f"ACC-{i}", **kw}


def rated(reid: str | None, src: str | None, i: int, **kw: Any) -> dict[str, Any]:
    return {"rated_event_id": reid, "source_record_id": src, "msisdn": n(i), "account_id": f"ACC-{i}", **kw}


def charge(cid: str | None, reid: str | None, i: int, **kw: Any) -> dict[str, Any]:
    return {"charge_id": cid, "source_rated_event_id": reid, "msisdn": n(i), "account_id": f"ACC-{i}", **kw}


DST_GAP = datetime(2026, 3, 8, 7, 30, tzinfo=UTC)        # 02:30 America/New_York: a local time that never existed
FALL_BACK_1 = datetime(2026, 11, 1, 5, 30, tzinfo=UTC)   # 01:30 EDT
FALL_BACK_2 = datetime(2026, 11, 1, 6, 30, tzinfo=UTC)   # 01:30 EST: same wall clock, one hour later

CDR = [
    cdr("C-A", 1),
    cdr("C-A", 1, source_file="F2", received_at=T0 + 5 * H),                     # re-sent copy, rated again
    cdr("C-B", 2, msisdn="+1 555-200-0002", other_party="(555) 987-0001", start_time=T0),
    cdr("C-E10", 3), cdr("C-E11", 4),
    cdr("C-D", 5, service_type="DATA", other_party=None, duration_s=0, volume_bytes=1_000_000),
    cdr("C-T1", 6, start_time=T0 - timedelta(seconds=2)), cdr("C-T2", 6, start_time=T0 + timedelta(seconds=2)),
    cdr("C-S1", 7), cdr("C-S2", 8), cdr("C-S3", 9),
    cdr("C-L", 10, received_at=CLOSE + 2 * H),
    cdr("C-N", 11),
    cdr("C-TA", 12, account_id="ACC-TEST-0001"),
    cdr("C-X", 13), cdr("C-X2", 13, source_file="F3", received_at=T0 + 6 * H),    # content copy, new id
    cdr("C-P", 14),
    cdr(None, 15), cdr("C-Q2", 16, msisdn="N/A"), cdr("C-Q3", 17, start_time=None),
    cdr("C-M", 18), cdr("C-M2", 19), cdr("C-NF", 20), cdr("C-NA", 21),
    cdr("C-DST", 22, start_time=DST_GAP, received_at=DST_GAP + H),
    cdr("C-FB1", 23, start_time=FALL_BACK_1, received_at=FALL_BACK_1 + H),
    cdr("C-FB2", 23, start_time=FALL_BACK_2, received_at=FALL_BACK_2 + H),
    cdr("C-SMS", 24, service_type="SMS", duration_s=0, other_party="BANK"),
]
RATED = [
    rated("R-A", "C-A", 1), rated("R-A2", "C-A", 1, rated_at=T0 + 9 * H),
    rated("R-A", "C-A", 1, rated_at=T0 + 30 * H),                                  # repeated rated_event_id
    rated("R-B", None, 2, msisdn="(555) 200-0002", other_party="+1 555 987 0001",
          start_time=T0 + timedelta(seconds=3), quantity=61, amount=Decimal("1.200000")),
    rated("R-E10", None, 3, start_time=T0 + timedelta(seconds=10)),
    rated("R-E11", None, 4, start_time=T0 + timedelta(seconds=11)),
    rated("R-D", None, 5, service_type="DATA", other_party=None, quantity=1_009_000, tariff_id="DATA-STD",
          amount=Decimal("0.010000")),
    rated("R-T", None, 6),
    rated("R-S3", "C-S3", 9),
    rated("R-X", "C-X", 13),
    rated("R-P", "C-P", 14), rated("R-P2", None, 14, start_time=T0 + timedelta(seconds=1)),
    rated("R-W", "C-NOPE", 30, start_time=T0 + 100 * H),
    rated(None, None, 31),
    rated("R-M", "C-M", 18, amount=Decimal("0.900000")), rated("R-M2", "C-M2", 19, amount=Decimal("0.300000")),
    rated("R-NF", "C-NF", 20, tariff_id="VOICE-PROMO-X"),
    rated("R-NA", "C-NA", 21, amount=None),
    rated("R-DST", None, 22, start_time=DST_GAP + timedelta(seconds=4)),
    rated("R-FB1", "C-FB1", 23, start_time=FALL_BACK_1), rated("R-FB2", "C-FB2", 23, start_time=FALL_BACK_2),
    rated("R-SMS", None, 24, service_type="SMS", quantity=1, other_party="bank", tariff_id="SMS-STD",
          amount=Decimal("0.050000")),
]
CHARGES = [
    charge("B-A", "R-A", 1), charge("B-A2", "R-A", 1, billed_at=T0 + 30 * 24 * H),
    charge("B-A3", "R-A2", 1),
    charge("B-B", "R-B", 2, amount=Decimal("1.000000")),
    charge("B-D", "R-D", 5, amount=Decimal("0.010000")),
    charge("B-S3", "R-S3", 9), charge("B-X", "R-X", 13), charge("B-P", "R-P", 14), charge("B-P2", "R-P2", 14),
    charge("B-W", "R-W", 30),
    charge("B-M", "R-M", 18, amount=Decimal("0.900000")), charge("B-M2", "R-M2", 19, amount=Decimal("0.300000")),
    charge("B-NF", "R-NF", 20),
    charge("B-NL", None, 40), charge("B-NX", "R-NOPE", 41),
    charge(None, "R-X", 13), charge("B-NAMT", "R-S3", 9, amount=None),
    charge("B-REC", None, 42, charge_type="RECURRING", product_id="P-1"),
    charge("B-DST", "R-DST", 22), charge("B-FB1", "R-FB1", 23), charge("B-FB2", "R-FB2", 23),
    charge("B-SMS", "R-SMS", 24, amount=Decimal("0.050000")),
]
SUSPENSE = [
    {"record_id": "C-S1", "rejected_at": CLOSE - timedelta(days=2), "status": "OPEN"},
    {"record_id": "C-S2", "rejected_at": CLOSE - timedelta(days=10), "status": "OPEN"},
    {"record_id": "C-S3", "rejected_at": T0, "status": "RESOLVED"},
]

EXPECTED = {
    ("usage-to-rating", "LEFT"): {
        "C-A": ["MATCHED", "DUPLICATE_USAGE"], "C-B": ["MATCHED"], "C-E10": ["MATCHED"], "C-E11": ["USAGE_NOT_RATED"],
        "C-D": ["MATCHED"], "C-T1": ["AMBIGUOUS_MATCH"], "C-T2": ["AMBIGUOUS_MATCH"], "C-S1": ["IN_SUSPENSE"],
        "C-S2": ["SUSPENSE_AGED"], "C-S3": ["MATCHED"], "C-L": ["LATE_USAGE"], "C-N": ["USAGE_NOT_RATED"],
        "C-TA": ["USAGE_NOT_RATED"], "C-X": ["MATCHED"], "C-X2": ["DUPLICATE_USAGE"], "C-P": ["MATCHED"],
        None: ["QUARANTINED"], "C-Q2": ["QUARANTINED"], "C-Q3": ["QUARANTINED"], "C-M": ["MATCHED"],
        "C-M2": ["MATCHED"], "C-NF": ["MATCHED"], "C-NA": ["MATCHED"], "C-DST": ["MATCHED"], "C-FB1": ["MATCHED"],
        "C-FB2": ["MATCHED"], "C-SMS": ["MATCHED"],
    },
    ("usage-to-rating", "RIGHT"): {
        "R-A": ["MATCHED", "QUARANTINED"], "R-A2": ["DUPLICATE_RATED_EVENT"], "R-B": ["MATCHED"],
        "R-E10": ["MATCHED"], "R-E11": ["RATED_WITHOUT_USAGE"], "R-D": ["MATCHED"], "R-T": ["AMBIGUOUS_MATCH"],
        "R-S3": ["MATCHED"], "R-X": ["MATCHED"], "R-P": ["MATCHED"], "R-P2": ["DUPLICATE_RATED_EVENT"],
        "R-W": ["RATED_WITHOUT_USAGE"], None: ["QUARANTINED"], "R-M": ["MATCHED"], "R-M2": ["MATCHED"],
        "R-NF": ["MATCHED"], "R-NA": ["MATCHED"], "R-DST": ["MATCHED"], "R-FB1": ["MATCHED"], "R-FB2": ["MATCHED"],
        "R-SMS": ["MATCHED"],
    },
    ("rating-accuracy", "LEFT"): {
        "R-A": ["MATCHED", "QUARANTINED"], "R-A2": ["MATCHED"], "R-B": ["MATCHED"], "R-E10": ["MATCHED"],
        "R-E11": ["MATCHED"], "R-D": ["MATCHED"], "R-T": ["MATCHED"], "R-S3": ["MATCHED"], "R-X": ["MATCHED"],
        "R-P": ["MATCHED"], "R-P2": ["MATCHED"], "R-W": ["MATCHED"], None: ["QUARANTINED"],
        "R-M": ["TARIFF_MISMATCH"], "R-M2": ["TARIFF_MISMATCH"], "R-NF": ["TARIFF_NOT_FOUND"],
        "R-NA": ["QUARANTINED"], "R-DST": ["MATCHED"], "R-FB1": ["MATCHED"], "R-FB2": ["MATCHED"],
        "R-SMS": ["MATCHED"],
    },
    ("rating-to-billing", "LEFT"): {
        "R-A": ["MATCHED", "QUARANTINED"], "R-A2": ["MATCHED"], "R-B": ["CHARGE_AMOUNT_MISMATCH"],
        "R-E10": ["RATED_NOT_BILLED"], "R-E11": ["RATED_NOT_BILLED"], "R-D": ["MATCHED"], "R-T": ["RATED_NOT_BILLED"],
        "R-S3": ["MATCHED"], "R-X": ["MATCHED"], "R-P": ["MATCHED"], "R-P2": ["MATCHED"], "R-W": ["MATCHED"],
        None: ["QUARANTINED"], "R-M": ["MATCHED"], "R-M2": ["MATCHED"], "R-NF": ["MATCHED"], "R-NA": ["QUARANTINED"],
        "R-DST": ["MATCHED"], "R-FB1": ["MATCHED"], "R-FB2": ["MATCHED"], "R-SMS": ["MATCHED"],
    },
    ("rating-to-billing", "RIGHT"): {
        "B-A": ["MATCHED"], "B-A2": ["DUPLICATE_CHARGE"], "B-A3": ["MATCHED"], "B-B": ["CHARGE_AMOUNT_MISMATCH"],
        "B-D": ["MATCHED"], "B-S3": ["MATCHED"], "B-X": ["MATCHED"], "B-P": ["MATCHED"], "B-P2": ["MATCHED"],
        "B-W": ["MATCHED"], "B-M": ["MATCHED"], "B-M2": ["MATCHED"], "B-NF": ["MATCHED"],
        "B-NL": ["CHARGE_WITHOUT_RATED_EVENT"], "B-NX": ["CHARGE_WITHOUT_RATED_EVENT"], None: ["QUARANTINED"],
        "B-NAMT": ["QUARANTINED"], "B-DST": ["MATCHED"], "B-FB1": ["MATCHED"], "B-FB2": ["MATCHED"],
        "B-SMS": ["MATCHED"],
    },
}
