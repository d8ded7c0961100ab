"""A synthetic month for the line-inventory audit (CONTRACT section 9): CRM assets, device status and the carriers'
bill lines, with every branch of the decision tree planted and the ground truth of every record of both sides.

Why planted by role: the audit can only be trusted against a month whose right answer is known line by line and
asset by asset. Each slot of the month draws a *role* (ROLES) that emits the CRM assets, device records and bill
lines one branch needs and labels them with the outcome (and SIM_SWAP reason) that branch prescribes; labels are
never derived by running a matcher. The first slots plant every role PINNED times, so a small month has them all; the
rest draw a role by WEIGHTS from `random.Random(seed)`: the same seed gives the same month.

What is planted: CRM statuses in a messy vocabulary ("Active", " deployed ", "Cancelled ", "canceled",
"DISCONNECTED", ...; ACTIVE_WORDS, CANCELLED_WORDS, OTHER_WORDS), CRM phones in any format, ICCIDs with spaces,
lines of a carrier matched by ICCID (`LineParams.iccid_carriers`, the ruleset's `match_by_iccid`: their bills carry
no phone and no usage column), bills with no usage (0 or blank) and blank amounts (the leakage falls back to the
ruleset's amount), unreadable lines (no phone, no ICCID), assets on no bill, assets with no phone and no ICCID, and
cancelled assets on no bill (out of the reverse audit's scope: no label).

Why the bills go through `write_bills`: the audit's input is what `telco-ra ingest` makes of the carriers' files, so
the lines are handed, in order, to a writer that puts them where the run reads them and returns each line's id:
`bills_table` writes the carrier_bill_line Delta table directly (ids as ingest makes them: sha256 of a file's
SHA-256 and its data row); a writer of the shipped `kind: line_bill` layouts' files (jobs/synthetic/bill_files.py:
`write_bill_file`, `bill_line_id`) returns the ids ingest will give them. The labels do not depend on which.

Devices are dated from the cycle's end ("offline N days" = cycle end - last_seen_at); thresholds are the shipped
ruleset's (30 and 60 days), and planted ages keep a day away from them.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from pyspark.sql import SparkSession
from pyspark.sql.types import StringType, StructField, StructType

from jobs.synthetic.carrier_invoice import line_id
from transforms.schema import INPUT_SCHEMAS

CONTROL_POINT = "line-audit"
BILL_TABLE, CRM_TABLE, DEVICE_TABLE = "carrier_bill_line", "crm_asset", "device_status"
TRUTH_SCHEMA = StructType([StructField(n, StringType(), True) for n in (
    "control_point_id", "side", "record_id", "expected_outcome", "expected_reason_code", "expected_leakage",
    "table_name")])

ACTIVE_WORDS = ("Active", " deployed ", "ACTIVE", "Deployed", "active ")
CANCELLED_WORDS = ("Cancelled ", "canceled", "DISCONNECTED", "Suspended", " terminated", "Decommissioned",
                   "Inactive")
OTHER_WORDS = ("Pending", "Spare", "On order")
PHONE_FORMATS: tuple[Callable[[str, str, str], str], ...] = (
    lambda a, b, c: f"({a}) {b}-{c}", lambda a, b, c: f"+1 {a}-{b}-{c}", lambda a, b, c: f"1{a}{b}{c}",
    lambda a, b, c: f"{a}.{b}.{c} x100", lambda a, b, c: f"tel:+1{a}{b}{c}", lambda a, b, c: f"{a}{b}{c}")

# role -> (what it plants, its labels): see `_plant`.
ROLES = ("QUARANTINED_LINE", "GHOST_CANCELLED", "ADD_TO_CRM", "NOT_IN_CRM_NO_ICCID", "NOT_IN_CRM_NO_DEVICE",
         "NOT_IN_CRM_OFFLINE", "NOT_IN_CRM_OTHER_STATUS", "MANUAL_UNMATCHED", "WORKING_USAGE",
         "WORKING_NO_BILL_ICCID", "WORKING_BY_ICCID", "MISSING_ICCID", "SWAP", "GHOST_OFFLINE", "FAILOVER",
         "WORKING_ONLINE", "NO_DEVICE", "MANUAL_MATCHED", "UNBILLED", "UNBILLED_BY_ICCID", "QUARANTINED_ASSET",
         "CANCELLED_UNBILLED", "ACTIVE_AND_CANCELLED")
WEIGHTS = {"QUARANTINED_LINE": 1, "GHOST_CANCELLED": 4, "ADD_TO_CRM": 3, "NOT_IN_CRM_NO_ICCID": 2,
           "NOT_IN_CRM_NO_DEVICE": 2, "NOT_IN_CRM_OFFLINE": 2, "NOT_IN_CRM_OTHER_STATUS": 1, "MANUAL_UNMATCHED": 1,
           "WORKING_USAGE": 40, "WORKING_NO_BILL_ICCID": 8, "WORKING_BY_ICCID": 6, "MISSING_ICCID": 3, "SWAP": 2,
           "GHOST_OFFLINE": 4, "FAILOVER": 2, "WORKING_ONLINE": 6, "NO_DEVICE": 2, "MANUAL_MATCHED": 1,
           "UNBILLED": 5, "UNBILLED_BY_ICCID": 1, "QUARANTINED_ASSET": 1, "CANCELLED_UNBILLED": 2,
           "ACTIVE_AND_CANCELLED": 1}
PINNED = 2
AREAS = ("212", "312", "415", "617", "713", "206", "303", "404", "503", "602")


@dataclass(frozen=True)
class BillLine:
    """One line of a carrier's bill, as the line-bill file writer takes it (jobs/synthetic/bill_files.py has the
    same fields): `carrier` the provider, `phone` E.164 or None, `usage_mb` None where the bill has no usage,
    `amount` None for a blank cell, `phone_text` the exact cell text where it is not a rendering of `phone`."""

    carrier: str
    bill_id: str
    bill_period: str
    phone: str | None
    iccid: str | None
    usage_mb: Decimal | None
    amount: Decimal | None
    phone_text: str | None = None


# Writes the lines, in order, where the run reads them; returns each line's line_id (the same order).
WriteBills = Callable[[Sequence[BillLine]], list[str]]


@dataclass(frozen=True)
class LineParams:
    rows: int = 400                      # slots: about one bill line or asset each
    seed: int = 42
    cycle_id: str = "2026-06"
    carriers: tuple[str, ...] = ("Tidewater Wireless", "Cobalt Mobile", "Harbor Telecom")   # matched by phone
    iccid_carriers: tuple[str, ...] = ("Frontera",)                                          # matched by ICCID
    fallback_amount: Decimal = Decimal("25.00")       # the ruleset's fallback_monthly_amount (expected leakage)
    leakage_buckets: tuple[str, ...] = ("GHOST_DEVICE", "ADD_TO_CRM", "NOT_IN_CRM")
    blank_amount_share: float = 0.2      # of lines whose amount cell is blank

    @property
    def end(self) -> datetime:
        year, month = (int(p) for p in self.cycle_id.split("-"))
        return datetime(year + month // 12, month % 12 + 1, 1, tzinfo=UTC)


@dataclass
class LineMonth:
    """The month's rows (crm_asset and device_status as dicts of their contract columns), its bill lines in order,
    and the labels: per line (outcome, reason code, leakage), per active asset its outcome."""

    assets: list[dict[str, Any]] = field(default_factory=list)
    devices: list[dict[str, Any]] = field(default_factory=list)
    lines: list[BillLine] = field(default_factory=list)
    line_truth: list[tuple[str, str | None, Decimal]] = field(default_factory=list)
    asset_truth: list[tuple[str, str]] = field(default_factory=list)     # (asset_id, outcome)


def _roles(params: LineParams, rng: random.Random) -> list[str]:
    pinned = [ROLES[i % len(ROLES)] for i in range(min(params.rows, len(ROLES) * PINNED))]
    names = list(WEIGHTS)
    drawn = rng.choices(names, weights=[WEIGHTS[n] for n in names], k=max(0, params.rows - len(pinned)))
    return pinned + drawn


class _Slot:
    """What one slot plants: its phone, ICCIDs and carrier, and helpers that append rows and labels to the month."""

    def __init__(self, month: LineMonth, params: LineParams, rng: random.Random, slot: int) -> None:
        self.month, self.params, self.rng, self.slot = month, params, rng, slot
        # a number of its own per slot (fictional 555 exchange: unique for the first 100,000 slots)
        self.parts = (AREAS[slot // 10_000 % len(AREAS)], "555", f"{slot % 10_000:04d}")
        self.phone = "+1" + "".join(self.parts)
        self.iccid_a = f"8910300{slot:012d}"
        self.iccid_b = f"8910390{slot:012d}"
        self.carrier = rng.choice(params.carriers)
        self.asset_n = 0

    def crm_phone(self) -> str:
        return self.rng.choice(PHONE_FORMATS)(*self.parts)

    def asset(self, status: str, iccid: str | None, *, phone: str | None = "", supplier: str | None = None,
              label: str | None = None) -> str:
        """A CRM asset (phone "" = the slot's phone in some format); `label`: its reverse-audit outcome."""
        self.asset_n += 1
        asset_id = f"SF-{self.slot:05d}-{self.asset_n}"
        spaced = None if iccid is None else (f"{iccid[:4]} {iccid[4:10]} {iccid[10:]}" if self.rng.random() < 0.3
                                             else iccid)
        self.month.assets.append({
            "asset_id": asset_id, "account_id": f"ACC-{self.slot % 37:03d}",
            "phone": self.crm_phone() if phone == "" else phone, "iccid": spaced, "status": status,
            "supplier": supplier or self.carrier, "updated_at": self.params.end - timedelta(days=40 + self.slot % 50)})
        if label is not None:
            self.month.asset_truth.append((asset_id, label))
        return asset_id

    def device(self, iccid: str, online: bool, days: int | None) -> None:
        seen = None if days is None else self.params.end - timedelta(days=days, hours=self.rng.randint(0, 20))
        self.month.devices.append({"device_id": f"DEV-{iccid[-8:]}", "iccid": iccid,
                                   "serial": f"SN{self.slot:07d}{len(self.month.devices) % 10}",
                                   "online": online, "last_seen_at": seen})

    def line(self, outcome: str, *, iccid: str | None, usage: Decimal | None, by_iccid: bool = False,
             phone: str | None = "", code: str | None = None) -> None:
        """A bill line (phone "" = the slot's phone; a carrier matched by ICCID bills no phone and no usage)."""
        carrier = self.rng.choice(self.params.iccid_carriers) if by_iccid else self.carrier
        amount = (None if self.rng.random() < self.params.blank_amount_share
                  else Decimal(self.rng.randint(500, 6000)) / 100)
        line = BillLine(carrier=carrier, bill_id=f"{carrier.split()[0][:4].upper()}-{self.params.cycle_id}",
                        bill_period=self.params.cycle_id, phone=None if by_iccid else (
                            self.phone if phone == "" else phone),
                        iccid=iccid, usage_mb=None if by_iccid else usage, amount=amount)
        leak = Decimal(0)
        if outcome in self.params.leakage_buckets:
            leak = amount if amount is not None else self.params.fallback_amount
        self.month.lines.append(line)
        self.month.line_truth.append((outcome, code, leak))

    def used(self) -> Decimal:
        return Decimal(self.rng.randint(1, 500_000)) / 1000

    def idle(self) -> Decimal | None:
        """No usage: zero, or a blank cell."""
        return self.rng.choice((Decimal(0), None))


def _plant(s: _Slot, role: str) -> None:
    """The rows and labels of one role (CONTRACT section 9's tree; ages a day away from the 30/60-day thresholds)."""
    rng = s.rng
    word = rng.choice(ACTIVE_WORDS)          # the status word of the role's active asset, if it has one
    if role == "QUARANTINED_LINE":
        s.line("QUARANTINED", iccid=None, usage=s.used(), phone=None)
    elif role == "GHOST_CANCELLED":
        s.asset(rng.choice(CANCELLED_WORDS), s.iccid_a)
        s.line("GHOST_DEVICE", iccid=rng.choice((s.iccid_a, None)), usage=rng.choice((s.used(), Decimal(0))))
    elif role == "ADD_TO_CRM":
        by_iccid = rng.random() < 0.3
        s.device(s.iccid_a, True, rng.randint(0, 2))
        s.line("ADD_TO_CRM", iccid=s.iccid_a, usage=s.idle(), by_iccid=by_iccid)
    elif role == "NOT_IN_CRM_NO_ICCID":
        s.line("NOT_IN_CRM", iccid=None, usage=s.used())
    elif role == "NOT_IN_CRM_NO_DEVICE":
        s.line("NOT_IN_CRM", iccid=s.iccid_a, usage=s.idle(), by_iccid=rng.random() < 0.3)
    elif role == "NOT_IN_CRM_OFFLINE":
        s.device(s.iccid_a, False, rng.randint(62, 400))
        s.line("NOT_IN_CRM", iccid=s.iccid_a, usage=s.idle(), by_iccid=rng.random() < 0.3)
    elif role == "NOT_IN_CRM_OTHER_STATUS":
        s.asset(rng.choice(OTHER_WORDS), None)
        s.line("NOT_IN_CRM", iccid=None, usage=s.used())
    elif role == "MANUAL_UNMATCHED":
        s.device(s.iccid_a, False, rng.randint(1, 58))
        s.line("MANUAL_AUDIT", iccid=s.iccid_a, usage=s.idle())
    elif role == "WORKING_USAGE":
        s.asset(word, s.iccid_a, label="ON_BILL")
        if rng.random() < 0.5:
            s.device(s.iccid_a, rng.random() < 0.8, rng.randint(0, 90))      # usage decides, whatever the device
        s.line("WORKING", iccid=s.iccid_a, usage=s.used())
    elif role == "WORKING_NO_BILL_ICCID":
        s.asset(word, rng.choice((s.iccid_a, None)), label="ON_BILL")
        s.line("WORKING", iccid=None, usage=s.used())
    elif role == "WORKING_BY_ICCID":
        s.asset(word, s.iccid_a, phone=rng.choice((None, "")), supplier=rng.choice(s.params.iccid_carriers),
                label="ON_BILL")
        s.device(s.iccid_a, True, rng.randint(0, 3))
        s.line("WORKING", iccid=s.iccid_a, usage=None, by_iccid=True)
    elif role == "MISSING_ICCID":
        s.asset(word, None, label="ON_BILL")
        s.line("SIM_SWAP", iccid=s.iccid_a, usage=s.used(), code="MISSING_ICCID")
    elif role == "SWAP":
        s.asset(word, s.iccid_a, label="ON_BILL")
        s.line("SIM_SWAP", iccid=s.iccid_b, usage=s.used(), code="SWAP")
    elif role == "GHOST_OFFLINE":
        by_iccid = rng.random() < 0.3
        s.asset(word, s.iccid_a, label="ON_BILL", **({"supplier": s.params.iccid_carriers[0]} if by_iccid else {}))
        s.device(s.iccid_a, False, rng.randint(32, 400))
        s.line("GHOST_DEVICE", iccid=s.iccid_a if by_iccid else rng.choice((s.iccid_a, None)), usage=s.idle(),
               by_iccid=by_iccid)
    elif role == "FAILOVER":
        s.asset(word, s.iccid_a, label="ON_BILL")
        s.device(s.iccid_b, True, rng.randint(0, 2))
        s.line("SIM_SWAP", iccid=s.iccid_b, usage=s.idle(), code="FAILOVER")
    elif role == "WORKING_ONLINE":
        s.asset(word, s.iccid_a, label="ON_BILL")
        s.device(s.iccid_a, True, rng.randint(0, 2))
        s.line("WORKING", iccid=rng.choice((s.iccid_a, None)), usage=s.idle())
    elif role == "NO_DEVICE":
        s.asset(word, rng.choice((s.iccid_a, None)), label="ON_BILL")
        s.line("NO_DEVICE_ATTACHED", iccid=rng.choice((s.iccid_a, None)), usage=s.idle())
    elif role == "MANUAL_MATCHED":
        s.asset(word, s.iccid_a, label="ON_BILL")
        s.device(s.iccid_a, False, rng.randint(1, 28))
        s.line("MANUAL_AUDIT", iccid=s.iccid_a, usage=s.idle())
    elif role == "UNBILLED":
        s.asset(word, rng.choice((s.iccid_a, None)), label="UNBILLED_ASSET")
    elif role == "UNBILLED_BY_ICCID":
        s.asset(word, s.iccid_a, phone=None, supplier=rng.choice(s.params.iccid_carriers), label="UNBILLED_ASSET")
    elif role == "QUARANTINED_ASSET":
        s.asset(word, None, phone=rng.choice(("n/a", None, "unknown")), label="QUARANTINED")
    elif role == "CANCELLED_UNBILLED":
        s.asset(rng.choice(CANCELLED_WORDS), s.iccid_a)                    # out of the reverse audit's scope
    elif role == "ACTIVE_AND_CANCELLED":
        s.asset(rng.choice(CANCELLED_WORDS), None)                         # an old record of the number
        s.asset(word, s.iccid_a, label="ON_BILL")
        s.line("WORKING", iccid=s.iccid_a, usage=s.used())
    else:
        raise ValueError(f"unknown role {role!r}")


def generate_line_month(params: LineParams) -> LineMonth:
    """The month's rows and labels (see the module docstring); pure Python, deterministic in `params`."""
    if not params.carriers or not params.iccid_carriers:
        raise ValueError("the line month needs at least one carrier matched by phone and one matched by ICCID")
    rng = random.Random(params.seed)
    month = LineMonth()
    for slot, role in enumerate(_roles(params, rng)):
        _plant(_Slot(month, params, rng, slot), role)
    return month


def bills_table(spark: SparkSession, path: str, ingested_at: datetime) -> WriteBills:
    """A WriteBills that writes the lines as the Delta table carrier_bill_line at `path` (overwrite), one pseudo
    file per (carrier, bill id), ids as ingest makes them (sha256 of the file's SHA-256 and its 1-based row)."""
    schema = INPUT_SCHEMAS[BILL_TABLE]

    def write(lines: Sequence[BillLine]) -> list[str]:
        files: dict[tuple[str, str], list[int]] = {}
        for i, ln in enumerate(lines):
            files.setdefault((ln.carrier, ln.bill_id), []).append(i)
        ids: list[str] = [""] * len(lines)
        rows: list[tuple[Any, ...]] = []
        for (carrier, bill_id), members in files.items():
            name = f"{bill_id}.table"
            sha = hashlib.sha256(repr([lines[i] for i in members]).encode()).hexdigest()
            for row, i in enumerate(members, start=1):
                ln, ids[i] = lines[i], line_id(sha, row)
                values = {"line_id": ids[i], "carrier": carrier, "layout": "synthetic-table", "bill_id": bill_id,
                          "bill_period": ln.bill_period, "phone": ln.phone, "iccid": ln.iccid,
                          "usage_mb": ln.usage_mb, "amount": ln.amount, "currency": "USD", "source_file": name,
                          "source_sha256": sha, "source_row": row, "parse_error": None, "ingested_at": ingested_at}
                rows.append(tuple(values[f.name] for f in schema.fields))
        spark.createDataFrame(rows, schema).write.format("delta").mode("overwrite").save(path)
        return ids

    return write


def write_line_month(spark: SparkSession, out_dir: str | Path, params: LineParams,
                     write_bills: WriteBills | None = None) -> dict[str, str]:
    """Generate the month and write crm_asset, device_status and ground_truth as Delta tables under `out_dir`, and
    the bill lines through `write_bills` (default: the carrier_bill_line table under `out_dir`); returns name ->
    path (carrier_bill_line only where the default writer wrote it).

    Example::

        paths = write_line_month(spark, "/tmp/lines", LineParams(rows=300))
        # tables: {carrier_bill_line: paths["carrier_bill_line"], crm_asset: ..., device_status: ...}
    """
    out = Path(out_dir)
    month = generate_line_month(params)
    paths = {name: str(out / name) for name in (CRM_TABLE, DEVICE_TABLE, "ground_truth")}
    if write_bills is None:
        paths[BILL_TABLE] = str(out / BILL_TABLE)
        write_bills = bills_table(spark, paths[BILL_TABLE], params.end + timedelta(days=2))
    ids = write_bills(month.lines)
    for table, rows in ((CRM_TABLE, month.assets), (DEVICE_TABLE, month.devices)):
        schema = INPUT_SCHEMAS[table]
        (spark.createDataFrame([tuple(r[f.name] for f in schema.fields) for r in rows], schema)
         .write.format("delta").mode("overwrite").save(paths[table]))
    truth = [(CONTROL_POINT, "LEFT", rid, outcome, code, str(leak), BILL_TABLE)
             for rid, (outcome, code, leak) in zip(ids, month.line_truth, strict=True)]
    truth += [(CONTROL_POINT, "RIGHT", aid, outcome, None, "0", CRM_TABLE) for aid, outcome in month.asset_truth]
    (spark.createDataFrame(truth, TRUTH_SCHEMA).write.format("delta").mode("overwrite")
     .option("overwriteSchema", "true").save(paths["ground_truth"]))
    return paths


# Lines of these carriers are billed through a reseller's layout (its rows name the provider): the month's bills then
# come in every shipped shape (CSV, XLSX, a reseller's CSV, ICCIDs in Service_TN).
VIA_RESELLER = {"Harbor Telecom": "relay2go-csv"}


def bill_files(folder: Path, carriers: Path, seed: int) -> WriteBills:
    """A WriteBills that writes the lines as carrier files in the shipped `kind: line_bill` layouts of `carriers`
    under `folder` (then `telco-ra ingest` makes carrier_bill_line of them, with the ids returned here)."""
    from jobs.synthetic.bill_files import files_writer, line_bill_layouts

    return files_writer(folder, line_bill_layouts(carriers), seed, via=VIA_RESELLER)
