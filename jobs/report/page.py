"""The run report as one self-contained HTML page: inline CSS, inline SVG charts, no script, nothing fetched.

`render(data)` is pure: it takes the figures jobs/report/figures.py and scorecard.py collected (JSON-able, amounts as
exact decimal text) and returns the page. Every figure that comes from control_run is also written, exactly, in
`data-*` attributes of its element, and the whole of `data` is embedded as `<script type="application/json"
id="report-data">` (a data block: browsers never execute it), so a test or an auditor reads the figures back without
parsing formatted text. A Content-Security-Policy forbids every script and every fetch: the page works from disk,
offline, and cannot leak a request.

Amounts are shown to two decimals (half-up), signed: positive exposure is revenue short (underbilling), negative is
revenue in excess (overbilling); they are shown apart and never added together.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from decimal import ROUND_HALF_UP, Decimal
from html import escape
from typing import Any

from jobs.report import svg
from jobs.report.scorecard import KPI_NAMES

CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'"
CLASS_CSS = {"UNDERBILLING": "under", "OVERBILLING": "over", "TIMING": "timing", "COST_LEAKAGE": "cost",
             "INVENTORY": "inventory"}
# How a page shows a null currency: cases whose records carry no amount and were not priced (not "zero").
NO_CURRENCY = "no currency"
# Their exposure: ra_case holds 0 for them, which is not a measured zero.
UNKNOWN_EXPOSURE = "unknown"
SLA_CSS = {"open": "ok", "due": "due", "overdue": "overdue", "resolved": "resolved", "closed": "closed"}

STYLE = """
:root { --fg: #1d2430; --muted: #5b6575; --line: #d9dee6; --bg: #ffffff; --panel: #f6f8fb;
  --under: #c0392b; --over: #d68910; --timing: #2e86c1; --cost: #7d3c98; --inventory: #148f77; --ok: #27ae60;
  --due: #f1c40f; --overdue: #c0392b; --resolved: #85c1e9; --closed: #aab7b8; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; color: var(--fg);
  background: var(--bg); margin: 0; padding: 0 28px 40px; max-width: 1280px; }
header { border-bottom: 3px solid var(--fg); padding: 18px 0 10px; margin-bottom: 8px; }
h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 18px; margin: 28px 0 8px; border-bottom: 1px solid var(--line);
  padding-bottom: 4px; } h3 { font-size: 15px; margin: 18px 0 6px; }
.sub { color: var(--muted); } nav a { margin-right: 12px; color: var(--timing); }
table { border-collapse: collapse; margin: 6px 0 10px; } th, td { padding: 3px 10px; border-bottom: 1px solid var(--line);
  text-align: left; vertical-align: top; } th { background: var(--panel); font-weight: 600; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.pos { color: var(--under); } .neg { color: var(--over); } .muted { color: var(--muted); }
.tiles { display: flex; flex-wrap: wrap; gap: 10px; margin: 8px 0; }
.tile { background: var(--panel); border: 1px solid var(--line); border-radius: 6px; padding: 8px 12px; min-width: 190px; }
.tile .k { font-size: 12px; color: var(--muted); } .tile .v { font-size: 20px; font-weight: 600; }
.badge { display: inline-block; padding: 0 6px; border-radius: 4px; background: var(--panel); border: 1px solid var(--line);
  font-size: 12px; }
.warn { background: #fdebd0; border: 1px solid var(--over); padding: 6px 10px; border-radius: 4px; }
dl.identity { display: grid; grid-template-columns: max-content 1fr; gap: 2px 16px; margin: 6px 0; }
dl.identity dt { color: var(--muted); } dl.identity dd { margin: 0; word-break: break-all; }
svg.chart { display: block; margin: 6px 0 12px; overflow: visible; } svg text { font-size: 12px; fill: var(--fg); }
svg .tick { font-size: 11px; fill: var(--muted); } svg .in-bar { font-size: 11px; fill: #fff; font-weight: 600; }
svg .under, svg .overdue { fill: var(--under); } svg .over { fill: var(--over); } svg .timing { fill: var(--timing); }
svg .cost { fill: var(--cost); } svg .inventory { fill: var(--inventory); } svg .other { fill: var(--muted); }
svg .ok { fill: var(--ok); } svg .due { fill: var(--due); } svg .resolved { fill: var(--resolved); }
svg .closed { fill: var(--closed); }
svg .stage { fill: var(--panel); stroke: var(--fg); } svg .stage-title { font-weight: 600; }
svg .flow { stroke: var(--fg); stroke-width: 2; } svg .flow-head { fill: var(--fg); }
svg .leak { stroke: var(--under); stroke-width: 2; stroke-dasharray: 4 3; }
svg .leak-text { fill: var(--under); font-weight: 600; } svg .excess-text { fill: var(--over); font-weight: 600; }
svg .other-text { fill: var(--timing); } svg .axis { stroke: var(--muted); }
svg polyline.line { fill: none; stroke-width: 2; } svg polyline.under { stroke: var(--under); }
svg polyline.over { stroke: var(--over); } svg polyline.open { stroke: var(--timing); } svg .open { fill: var(--timing); }
footer { margin-top: 30px; color: var(--muted); font-size: 12px; }
"""


def money(text: str | None) -> str:
    """Exact decimal text -> '1,234.57' (half-up); None -> '–'."""
    if text is None:
        return "–"
    return f"{Decimal(text).quantize(Decimal('0.01'), rounding=ROUND_HALF_UP):,}"


def _currency(code: str | None) -> str:
    """A currency code as the page shows it; a null one (records never priced) named as such."""
    return code or NO_CURRENCY


def count(value: int | None) -> str:
    return "–" if value is None else f"{value:,}"


def _sign_css(text: str | None) -> str:
    if text is None:
        return "num"
    d = Decimal(text)
    return "num pos" if d > 0 else "num neg" if d < 0 else "num"


def _attrs(**values: Any) -> str:
    """data-* attributes (underscores become dashes); None values are left out."""
    return "".join(f' data-{k.replace("_", "-")}="{escape(str(v))}"' for k, v in values.items() if v is not None)


def _table(head: Sequence[str], rows: Iterable[str], numeric: Sequence[bool] | None = None, css: str = "") -> str:
    numeric = numeric or [False] * len(head)
    ths = "".join(f'<th class="num">{escape(h)}</th>' if n else f"<th>{escape(h)}</th>" for h, n in zip(head, numeric,
                                                                                                   strict=True))
    return f'<table class="{css}"><thead><tr>{ths}</tr></thead><tbody>{"".join(rows)}</tbody></table>'


def _td(text: str, css: str = "", figure: str | None = None) -> str:
    """A cell; `figure` names the figure it shows (`data-figure`), for a reader of the rendered page (the browser
    test reads what a person sees in these cells)."""
    attrs = (f' class="{css}"' if css else "") + _attrs(figure=figure)
    return f"<td{attrs}>{escape(text)}</td>"


def _identity(d: Mapping[str, Any], report: Mapping[str, Any]) -> str:
    rulesets = ", ".join(f"{r['name']} {r['version']} (sha256 {r['hash'][:12]}…)" for r in d["rulesets"])
    inputs = ", ".join(f"{k}@v{v}" for k, v in d["input_versions"].items())
    items = [("run", d["run_id"]), ("cycle", d["cycle_id"]), ("ruleset", rulesets), ("status", d["status"]),
             ("partition scope", d["partition_scope"]), ("input versions", inputs),
             ("watermark (max received_at read)", d["watermark"] or "–"), ("cycle close", d["cycle_close"] or "–"),
             ("started / completed", f"{d['started_at']} / {d['completed_at']}"),
             ("control points", ", ".join(d["control_points"])), ("conf fingerprint", d["conf_fingerprint"] or "–"),
             ("SLA status as of", f"{report['as_of']} ({report['as_of_basis']})")]
    tables = "".join(f"<li><code>{escape(k)}</code>: {escape(v)}</li>" for k, v in d["input_tables"].items())
    notes = []
    if d["post_close"]:
        notes.append(f'<p class="warn">Post-close adjustment: cycle {escape(d["cycle_id"])} was closed by run '
                     f'{escape(d["close_run_id"] or "?")}; its closed figures are unchanged.</p>')
    if d["reproduction_of"]:
        notes.append(f'<p class="warn">This run reproduces run {escape(d["reproduction_of"])} (telco-ra rerun): '
                     "evidence about that run, not a result of the cycle.</p>")
    dl = "".join(f"<dt>{escape(k)}</dt><dd>{escape(str(v))}</dd>" for k, v in items)
    return (f'<section id="identity"{_attrs(run_id=d["run_id"], cycle_id=d["cycle_id"])}><h2>Run identity</h2>'
            f'{"".join(notes)}<dl class="identity">{dl}</dl><details><summary>input tables</summary><ul>{tables}'
            "</ul></details></section>")


def _scorecard(rows: Sequence[Mapping[str, Any]]) -> str:
    if not rows:
        return '<section id="scorecard"><h2>RA scorecard</h2><p class="muted">No cases and no billed side.</p></section>'
    parts = ['<section id="scorecard"><h2>RA scorecard</h2><p class="sub">TM Forum revenue-assurance KPIs for the '
             "cycle as of this run: cases found by the committed runs of this ruleset up to this one, at their current "
             "status; percentages of the billed revenue the controls covered.</p>"]
    for r in rows:
        cur = _currency(r["currency"])
        tiles = []
        for key in ("revenue_covered", "leakage_underbilling", "leakage_overbilling", "recoverable", "recovered",
                    "pct_revenue_recovered", "pct_recoverable", "days_per_recovery_case"):
            value = r[key]
            shown = (f"{money(value)} %" if key.startswith("pct_") and value is not None else
                     money(value) if key != "days_per_recovery_case" else (f"{value} days" if value else "–"))
            tiles.append(f'<div class="tile kpi"{_attrs(kpi=key, currency=cur, value=value)}><div class="k">'
                         f'{escape(KPI_NAMES[key])}</div><div class="v">{escape(shown)}</div></div>')
        rest = [f'<tr class="kpi-row"{_attrs(kpi=k, currency=cur, value=r[k])}><td>{escape(KPI_NAMES[k])}</td>'
                f'<td class="num">{escape(money(r[k]) if not k.startswith("pct_") and k != "days_per_recovery_case" else (r[k] or "–"))}'
                "</td></tr>"
                for k in KPI_NAMES]
        parts.append(f"<h3>{escape(cur)} <span class='badge'>as of {escape(r['as_of'] or '–')}</span> "
                     f"<span class='badge'>{r['cases']:,} cases, {r['recovery_cases']:,} recovered</span></h3>"
                     f'<div class="tiles">{"".join(tiles)}</div><details><summary>all scorecard figures</summary>'
                     f'{_table(["KPI", "value"], rest, [False, True])}</details>')
    parts.append("</section>")
    return "".join(parts)


def _exposure(rows: Sequence[Mapping[str, Any]]) -> str:
    body = []
    bars = []
    for r in rows:
        cls = r["exposure_class"] or "(none)"
        shown = money(r["exposure"]) if r["currency"] is not None else UNKNOWN_EXPOSURE
        body.append(f'<tr class="exposure-class"{_attrs(exposure_class=cls, currency=r["currency"], cases=r["cases"], exposure=r["exposure"], positive=r["positive"], negative=r["negative"])}>'
                    f'{_td(cls)}{_td(_currency(r["currency"]))}{_td(count(r["cases"]), "num", "cases")}'
                    f'{_td(shown, _sign_css(r["exposure"]), "exposure")}</tr>')
        bars.append(svg.Bar(f"{cls} ({_currency(r['currency'])})", abs(Decimal(r["exposure"] or "0")),
                            f"{shown} · {r['cases']:,} cases", CLASS_CSS.get(cls, "other")))
    chart = svg.bars(bars, "exposure by class, each class its own bar") if bars else ""
    table = (_table(["class", "currency", "cases", "exposure"], body, [False, False, True, True])
             if body else '<p class="muted">This run found no case.</p>')
    unvalued = sum(int(r["cases"] or 0) for r in rows if r["currency"] is None)
    note = (f'<p class="muted unvalued">{unvalued:,} cases have {NO_CURRENCY}: their records carry no amount and '
            "were not priced: quarantined records (their fields cannot be trusted) or records no tariff prices. "
            "Their exposure is unknown, which is not the same as zero.</p>" if unvalued else "")
    return ('<section id="exposure"><h2>Exposure by class</h2><p class="sub">The cases this run found (ra_case), '
            "summed per class: underbilling (+, revenue not billed) and overbilling (−, billed in excess) are "
            f"separate rows and never netted against each other.</p>{chart}{table}{note}</section>")


def _funnel(f: Mapping[str, Any] | None) -> str:
    if not f:
        return ""
    stages = [svg.Stage(s["stage"] + (f" ({s['table']})" if s["table"] else ""), f"{count(s['count'])} records",
                        "amount " + money(s["amount"]) if s["amount"] is not None else "(no amount on usage)")
              for s in f["stages"]]
    edges = [svg.Edge(f"leak +{money(e['leak'])} ({e['leak_records']:,} records)",
                      f"excess {money(e['excess'])} ({e['excess_records']:,} records)",
                      "; ".join(f"{k.lower()} {money(v)}" for k, v in e["other"].items()))
             for e in f["edges"]]
    rows = []
    for e in f["edges"]:
        for o in e["outcomes"]:
            rows.append(f'<tr class="funnel-outcome"{_attrs(cp=e["control_point_id"], side=o["side"], outcome=o["outcome"])}>'
                        f'{_td(e["control_point_id"])}{_td(o["side"])}{_td(o["outcome"])}{_td(o["exposure_class"])}'
                        f'{_td(count(o["count"]), "num")}{_td(money(o["exposure_positive"]), "num pos")}'
                        f'{_td(money(o["exposure_negative"]), "num neg")}</tr>')
    edge_rows = "".join(
        f'<tr class="funnel-edge"{_attrs(cp=e["control_point_id"], leak=e["leak"], excess=e["excess"])}>'
        f'{_td(e["control_point_id"])}{_td(money(e["leak"]), "num pos")}{_td(count(e["leak_records"]), "num")}'
        f'{_td(money(e["excess"]), "num neg")}{_td(count(e["excess_records"]), "num")}</tr>' for e in f["edges"])
    return ('<section id="funnel"><h2>Usage funnel</h2><p class="sub">usage → rated → billed, from the '
            "usage-to-rating and rating-to-billing control points: at each edge the revenue that did not flow on (leak,"
            " positive exposure of underbilling outcomes) and what flowed on in excess (negative exposure of "
            f"overbilling outcomes), apart.</p>{svg.funnel(stages, edges, 'usage to rated to billed')}"
            f'{_table(["edge", "leak", "records", "excess", "records"], [edge_rows], [False, True, True, True, True])}'
            f"<details><summary>outcomes at each edge</summary>"
            f'{_table(["control point", "side", "outcome", "class", "records", "exposure +", "exposure −"], rows, [False, False, False, False, True, True, True])}'
            "</details></section>")


def _counter_notes(counters: Mapping[str, int]) -> str:
    notes = []
    if counters.get("records_unpriced"):
        notes.append(f"NOT PRICED: {counters['records_unpriced']:,} record(s) have no tariff valid at start_time; "
                     "their exposure shows as 0.00")
    out = {k.split(".", 1)[1]: v for k, v in counters.items() if k.startswith("rows_out_of_scope.") and v}
    if out:
        notes.append("rows read but out of this control's scope: " + ", ".join(f"{t} {n:,}" for t, n in out.items()))
    if counters.get("fuzzy_unresolved"):
        notes.append(f"fuzzy selection left {counters['fuzzy_unresolved']:,} candidate pair(s) unresolved")
    return "".join(f'<p class="warn">{escape(n)}</p>' for n in notes)


def _control_point(cp: Mapping[str, Any]) -> str:
    rows = []
    for m in cp["metrics"]:
        rows.append(
            f'<tr class="metric"{_attrs(cp=cp["control_point_id"], side=m["side"], outcome=m["outcome"], count=m["count"], amount=m["amount"], exposure=m["exposure"], unpriced=m["unpriced"])}>'
            f'{_td(m["side"])}{_td(m["outcome"])}{_td(m["exposure_class"] or "–", "muted" if not m["exposure_class"] else "")}'
            f'{_td(count(m["count"]), "num", "count")}{_td(money(m["amount"]), "num", "amount")}'
            f'{_td(money(m["exposure"]), _sign_css(m["exposure"]), "exposure")}{_td(money(m["exposure_positive"]), "num pos")}'
            f'{_td(money(m["exposure_negative"]), "num neg")}{_td(money(m["exposure_exempt"]), "num")}'
            f'{_td(count(m["unpriced"]), "num")}</tr>')
    sides = []
    for side, table in (("left", cp["left_table"]), ("right", cp["right_table"])):
        if cp[f"{side}_count"] is not None or table:
            sides.append(f'<span class="badge side"{_attrs(side=side.upper())}>{side} {escape(table or "?")}: '
                         f'{count(cp[side + "_count"])} records, amount {escape(money(cp[side + "_amount"]))}</span> ')
    bars = [svg.Bar(f"{m['side']} {m['outcome']}", Decimal(m["count"]), f"{m['count']:,}",
                    "ok" if m["outcome"] == "MATCHED" else CLASS_CSS.get(m["exposure_class"] or "", "other"))
            for m in cp["metrics"]]
    head = ["side", "outcome", "class", "count", "amount", "exposure (control_run)", "exposure +", "exposure −",
            "exempt", "unpriced"]
    attrs = _attrs(cp=cp["control_point_id"], left_count=cp["left_count"], right_count=cp["right_count"],
                   left_amount=cp["left_amount"], right_amount=cp["right_amount"], cases_opened=cp["cases_opened"])
    return (f'<section class="control-point"{attrs}><h3>{escape(cp["control_point_id"])} '
            f'<span class="badge">{escape(cp["kind"] or "?")}</span> <span class="badge">cases opened '
            f'{count(cp["cases_opened"])}</span> <span class="badge">conservation '
            f'{"ok" if cp["conservation_ok"] else "NOT OK"}</span></h3><p>{"".join(sides)}</p>'
            f'{_counter_notes(cp["counters"])}{svg.bars(bars, cp["control_point_id"] + " outcome counts")}'
            f'{_table(head, rows, [False, False, False, True, True, True, True, True, True, True], "metrics")}</section>')


def _control_points(cps: Sequence[Mapping[str, Any]]) -> str:
    return ('<section id="control-points"><h2>Control points</h2><p class="sub">Counts, amounts and exposure per side '
            "and outcome exactly as control_run records them. Beside control_run's exposure, what it is made of "
            "(record_outcome / aggregate_variance): the positive and the negative exposures summed apart, and that of "
            "exempt records (they keep their outcome and raise no case); the three add up to control_run's figure."
            f"</p>{''.join(_control_point(cp) for cp in cps)}</section>")


def _top(accounts: Sequence[Mapping[str, Any]], types: Sequence[Mapping[str, Any]]) -> str:
    head = ["cases", "underbilling (+)", "overbilling (−)", "|exposure|"]

    def cells(r: Mapping[str, Any]) -> str:
        return (f'{_td(count(r["cases"]), "num")}{_td(money(r["positive"]), "num pos")}'
                f'{_td(money(r["negative"]), "num neg")}{_td(money(r["gross"]), "num")}')

    acc = [f'<tr class="top-account"{_attrs(account=r["account_id"], gross=r["gross"])}>{_td(r["account_id"] or "(none)")}'
           f'{_td(_currency(r["currency"]))}{cells(r)}</tr>' for r in accounts]
    typ = [f'<tr class="top-case-type"{_attrs(cp=r["control_point_id"], case_type=r["case_type"], gross=r["gross"])}>'
           f'{_td(r["control_point_id"])}{_td(r["case_type"])}{_td(_currency(r["currency"]))}{cells(r)}</tr>' for r in types]
    bars = [svg.Bar(r["account_id"] or "(none)", Decimal(r["gross"] or "0"), money(r["gross"]),
                    "under" if Decimal(r["positive"] or "0") >= -Decimal(r["negative"] or "0") else "over")
            for r in accounts]
    return ('<section id="top"><h2>Top accounts and case types by |exposure|</h2>'
            + (svg.bars(bars, "top accounts by gross exposure") if bars else "")
            + _table(["account", "currency", *head], acc, [False, False, True, True, True, True])
            + _table(["control point", "case type", "currency", *head], typ,
                     [False, False, False, True, True, True, True])
            + "</section>")


def _owners(rows: Sequence[Mapping[str, Any]], report: Mapping[str, Any]) -> str:
    body = []
    for r in rows:
        chart = svg.stacked([(s, r[s], SLA_CSS[s]) for s in ("overdue", "due", "open", "resolved", "closed")],
                            f"{r['owner_team']} cases by SLA status")
        body.append(f'<tr class="owner"{_attrs(owner=r["owner_team"], open=r["open"], due=r["due"], overdue=r["overdue"], resolved=r["resolved"], closed=r["closed"])}>'
                    f'{_td(r["owner_team"])}{_td(count(r["open"]), "num")}{_td(count(r["due"]), "num")}'
                    f'{_td(count(r["overdue"]), "num pos")}{_td(count(r["resolved"]), "num")}'
                    f'{_td(count(r["closed"]), "num")}{_td(money(r["active_positive"]), "num pos")}'
                    f'{_td(money(r["active_negative"]), "num neg")}<td>{chart}</td></tr>')
    return ('<section id="owners"><h2>Cases by owner team</h2><p class="sub">The current status of the cases this run '
            f"found or cleared, by SLA as of {escape(report['as_of'])} ({escape(report['as_of_basis'])}): overdue "
            "(due date passed), due (within two days), open (within SLA), resolved (awaiting a run's confirmation), "
            "closed (auto-cleared, waived, written off).</p>"
            + _table(["owner team", "open", "due", "overdue", "resolved", "closed", "active +", "active −",
                      "SLA status"], body, [False, True, True, True, True, True, True, True, False])
            + "</section>")


def _trend(rows: Sequence[Mapping[str, Any]]) -> str:
    if not rows:
        return ""
    labels = [f"{i + 1}" + ("*" if r["this_run"] else "") for i, r in enumerate(rows)]
    parts = ['<section id="trend"><h2>Trend across runs of the cycle</h2><p class="sub">Each committed run of this '
             "cycle and ruleset up to this one (* this run): its open cases, and the exposure of the cases it found "
             "(underbilling and |overbilling| apart) per currency.</p>",
             svg.lines(labels, [svg.Series("open cases", "open", [Decimal(r["open_cases"]) for r in rows])],
                       "open cases per run")]
    currencies = sorted({_currency(x["currency"]) for r in rows for x in r["exposure"]})
    for currency in currencies:
        per_run = [next((x for x in r["exposure"] if _currency(x["currency"]) == currency), None) for r in rows]
        parts.append(f"<h3>exposure, {escape(currency)}</h3>" + svg.lines(labels, [
            svg.Series("underbilling", "under", [Decimal(x["underbilling"]) if x and x["underbilling"] else None
                                                 for x in per_run]),
            svg.Series("|overbilling|", "over", [abs(Decimal(x["overbilling"])) if x and x["overbilling"] else None
                                                for x in per_run]),
        ], f"exposure per run, {currency}"))
    body = []
    for label, r in zip(labels, rows, strict=True):
        first = True
        for x in r["exposure"] or [{"currency": None, "underbilling": None, "overbilling": None, "other": None}]:
            run_cells = (f'{_td(label)}{_td(r["run_id"] + (" (this run)" if r["this_run"] else ""))}'
                         f'{_td(r["completed_at"] or "–")}{_td(r["partition_scope"] or "all")}'
                         f'{_td(count(r["open_cases"]), "num")}{_td(count(r["cleared"]), "num")}'
                         if first else '<td colspan="6"></td>')
            body.append(f'<tr class="trend-run"{_attrs(run_id=r["run_id"], currency=x["currency"], open_cases=r["open_cases"], underbilling=x["underbilling"], overbilling=x["overbilling"])}>'
                        f'{run_cells}{_td(_currency(x["currency"]))}{_td(money(x["underbilling"]), "num pos")}'
                        f'{_td(money(x["overbilling"]), "num neg")}{_td(money(x["other"]), "num")}</tr>')
            first = False
    parts.append(_table(["#", "run", "completed", "scope", "open cases", "auto-cleared", "currency", "underbilling",
                         "overbilling", "other |exposure|"], body,
                        [False, False, False, False, True, True, False, True, True, True]))
    parts.append("</section>")
    return "".join(parts)


def _accounts(rows: Sequence[Mapping[str, Any]]) -> str:
    if not rows:
        return ""
    parts = ['<section id="accounts"><h2>Accounts GOOD / VARIANCE</h2><p class="sub">Per aggregate control point: an '
             "account is GOOD when every one of its rows (service type, currency) is within tolerance, VARIANCE "
             "otherwise.</p>"]
    for r in rows:
        parts.append(f'<h3{_attrs(cp=r["control_point_id"], good=r["good"], variance=r["variance"])} class="accounts">'
                     f'{escape(r["control_point_id"])}: <span class="badge">GOOD {r["good"]:,}</span> '
                     f'<span class="badge">VARIANCE {r["variance"]:,}</span></h3>')
        parts.append(svg.stacked([("GOOD", r["good"], "ok"), ("VARIANCE", r["variance"], "under")],
                                 f"{r['control_point_id']} accounts GOOD and VARIANCE", width=480))
        body = [f'<tr>{_td(t["account_id"] or "(none)")}{_td(t["service_type"] or "–")}{_td(_currency(t["currency"]))}'
                f'{_td(count(t["left_count"]), "num")}{_td(money(t["left_amount"]), "num")}'
                f'{_td(count(t["right_count"]), "num")}{_td(money(t["right_amount"]), "num")}'
                f'{_td(money(t["difference"]), _sign_css(t["difference"]))}{_td(money(t["tolerance"]), "num")}</tr>'
                for t in r["top"]]
        if body:
            parts.append(_table(["account", "service", "currency", "left n", "left amount", "right n",
                                 "right amount", "difference", "tolerance"], body,
                                [False, False, False, True, True, True, True, True, True]))
    parts.append("</section>")
    return "".join(parts)


def _amount_cell(value: str | None, summed: str | None) -> str:
    """A declared figure's amount cell: none at all where the figure counts only."""
    return _td(money(value), "num") if summed else ""


def _declared(figures: Sequence[Mapping[str, Any]], alerts: Sequence[Mapping[str, Any]]) -> str:
    """Each ruleset's own view: the figures its control points declare (control_run `figures`, e.g. the line audit's
    buckets by confidence band with their leakage) and the run's alerts (run_alert, e.g. a carrier's share of lines
    not matched)."""
    if not figures and not alerts:
        return ""
    parts = ['<section id="rulesets"><h2>Per ruleset: declared figures and alerts</h2><p class="sub">What each '
             "control point's ruleset declares beside its outcomes (control_run figures), and the run's alerts "
             "(run_alert).</p>"]
    for f in figures:
        summed = f["summed"]
        totals = "; ".join(f'{escape(summed)} {money(t["sum"])}' + (f' {escape(t["currency"])}' if t["currency"] else "")
                           for t in f["totals"]) if summed else ""
        parts.append(f'<h3{_attrs(cp=f["control_point_id"], figure=f["figure"], count=f["count"])} class="figure">'
                     f'{escape(f["control_point_id"])}: {escape(f["figure"])} ({escape(f["side"])}, '
                     f'{f["count"]:,} rows{", " + totals if totals else ""})</h3>')
        body = [f'<tr{_attrs(cp=f["control_point_id"], figure=f["figure"], group="|".join(v or "" for v in g["values"]), count=g["count"], sum=g["sum"])}>'
                + "".join(_td(v or "–") for v in g["values"]) + _td(count(g["count"]), "num") + _amount_cell(g["sum"], summed)
                + "</tr>" for g in f["rows"]]
        for t in f["totals"]:      # one per currency where the figure is grouped by currency: never added up
            cells = ["total" if i == 0 else t["currency"] if c == "currency" else ""
                     for i, c in enumerate(f["columns"])]
            body.append(f'<tr{_attrs(cp=f["control_point_id"], figure=f["figure"], total=t["currency"] or "all", count=t["count"], sum=t["sum"])}>'
                        + "".join(_td(v or "") for v in cells) + _td(count(t["count"]), "num") + _amount_cell(t["sum"], summed)
                        + "</tr>")
        parts.append(_table([*f["columns"], "rows", *([summed] if summed else [])], body,
                            [False] * len(f["columns"]) + [True] + ([True] if summed else [])))
    if alerts:
        body = [f'<tr class="alert"{_attrs(cp=a["control_point_id"], metric=a["metric"])}>{_td(a["control_point_id"])}'
                f'{_td(a["scope"])}{_td(a["metric"])}{_td(a["value"], "num")}{_td(a["threshold"], "num")}'
                f'{_td(a["message"])}</tr>' for a in alerts]
        parts.append("<h3>Alerts</h3>" + _table(["control point", "scope", "metric", "value", "threshold", "message"],
                                                body, [False, False, False, True, True, False]))
    parts.append("</section>")
    return "".join(parts)


def _exports(rows: Sequence[Mapping[str, Any]]) -> str:
    if not rows:
        return ""
    body = [f'<tr class="export"{_attrs(owner=r["owner_team"], rows=r["rows"])}>{_td(r["owner_team"])}'
            f'{_td(count(r["rows"]), "num")}<td><a href="{escape(r["csv"])}">{escape(r["csv"])}</a></td>'
            f'<td><a href="{escape(r["parquet"])}">{escape(r["parquet"])}</a></td>'
            f'{_td("clear" if r["clear_numbers"] else "masked")}</tr>' for r in rows]
    return ('<section id="exports"><h2>Open cases per owner team</h2><p class="sub">Next to this file: each team\'s '
            "open cases with their evidence, as CSV and Parquet.</p>"
            + _table(["owner team", "open cases", "CSV", "Parquet", "phone numbers"], body,
                     [False, True, False, False, False]) + "</section>")


def _data_block(data: Mapping[str, Any]) -> str:
    text = json.dumps(data, sort_keys=True, ensure_ascii=True)
    # A data block ends at the first "</script": escape every "<" so no value can end it (JSON reads \u003c as <).
    return f'<script type="application/json" id="report-data">{text.replace("<", chr(92) + "u003c")}</script>'


def render(data: Mapping[str, Any]) -> str:
    """The report page for `data` (jobs/report/job.py builds it)."""
    ident, report = data["identity"], data["report"]
    nav = "".join(f'<a href="#{k}">{escape(v)}</a>' for k, v in (
        ("identity", "identity"), ("scorecard", "scorecard"), ("exposure", "exposure"), ("funnel", "funnel"),
        ("control-points", "control points"), ("top", "top"), ("owners", "owners"), ("trend", "trend"),
        ("accounts", "accounts"), ("rulesets", "per ruleset"), ("exports", "exports")))
    body = "".join([
        _identity(ident, report), _scorecard(data["scorecard"]), _exposure(data["exposure_by_class"]),
        _funnel(data["funnel"]), _control_points(data["control_points"]),
        _top(data["top_accounts"], data["top_case_types"]), _owners(data["owners"], report), _trend(data["trend"]),
        _accounts(data["account_variance"]), _declared(data.get("declared_figures", []), data.get("alerts", [])),
        _exports(data["exports"]),
    ])
    title = f"telco-ra run report: {ident['run_id']} (cycle {ident['cycle_id']})"
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
            f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1"><title>{escape(title)}</title>'
            f"<style>{STYLE}</style></head><body><header><h1>{escape(title)}</h1><div class='sub'>"
            f"{escape(', '.join(r['name'] + ' ' + r['version'] for r in ident['rulesets']))} · completed "
            f"{escape(ident['completed_at'])} · phone numbers masked</div><nav>{nav}</nav></header>{body}"
            f"<footer>Written by telco-ra report from the output tables only (control_run, ra_case, record_outcome, "
            f"aggregate_variance). Figures per control point are control_run's.</footer>{_data_block(data)}"
            "</body></html>\n")
