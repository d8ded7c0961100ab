"""`telco-ra explain` (jobs/explain): the committed pages are current, name every rule in order with its policy,
follow the ruleset's values, reference nothing outside themselves, mask numbers, and a bad ruleset exits 2.

No SparkSession: a ruleset loads and explains without one. Expectations about rules and policies are read from the
YAML with yaml.safe_load, not through the loader the page is built from.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass, fields, replace
from pathlib import Path

import pytest
import yaml

from jobs.cli import main
from jobs.explain import render_documents
from jobs.explain.document import document
from jobs.explain.render import markdown
from jobs.explain.words import Context, as_inline, condition_words, value_words
from jobs.ruleset import load_ruleset
from transforms.engine.spec import OutcomePolicy, Rule

ROOT = Path(__file__).resolve().parent.parent
RULESETS = sorted((ROOT / "rulesets").glob("*.yaml"))
DOCS = ROOT / "docs" / "rules"
E164 = re.compile(r"\+\d{8,15}")
REGENERATE = "telco-ra explain rulesets/*.yaml --out docs/rules (make explain)"


def _text(words: object) -> str:
    """Spans as plain text, code in backticks."""
    return "".join(s if isinstance(s, str) else f"`{s.text}`" for s in words)  # type: ignore[attr-defined]


# --------------------------------------------------------------------------------------------- committed pages
def test_every_shipped_ruleset_has_a_current_page() -> None:
    assert RULESETS, "no ruleset found under rulesets/"
    stale = []
    for path in RULESETS:
        texts = render_documents(path, ("md", "html"))
        for suffix, text in texts.items():
            committed = DOCS / f"{path.stem}.{suffix}"
            if not committed.is_file():
                stale.append(f"{committed.relative_to(ROOT)} is missing")
            elif committed.read_bytes() != text.encode("utf-8"):
                stale.append(f"{committed.relative_to(ROOT)} is out of date with rulesets/{path.name}")
    assert not stale, "; ".join(stale) + f": regenerate with {REGENERATE}"


def test_no_page_without_its_ruleset() -> None:
    stems = {p.stem for p in RULESETS}
    orphans = sorted(p.name for p in DOCS.glob("*") if p.suffix in (".md", ".html") and p.stem not in stems)
    assert not orphans, f"pages of no ruleset under docs/rules: {orphans} (remove them)"


def test_same_ruleset_same_bytes_wherever_it_is_read_from(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = render_documents(ROOT / "rulesets" / "usage_to_bill.yaml", ("md", "html"))
    copy = tmp_path / "elsewhere" / "usage_to_bill.yaml"
    copy.parent.mkdir()
    shutil.copy(ROOT / "rulesets" / "usage_to_bill.yaml", copy)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TZ", "America/New_York")
    assert render_documents("elsewhere/usage_to_bill.yaml", ("md", "html")) == first


# ------------------------------------------------------------------------------------------ rules in order
def _expected_rules(path: Path) -> list[tuple[str, str, str, str, dict[str, object]]]:
    """(control point, side, rule, outcome, policy) in the YAML's order, read without the loader."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    out = []
    for cp_id, cp in data["control_points"].items():
        if cp["kind"] != "record":
            continue
        for side, rules in cp["decide"].items():
            for rule in rules:
                out.append((cp_id, side, rule["rule"], rule["outcome"], {**cp["outcomes"][rule["outcome"]],
                                                                         "_rule": rule}))
    return out


def _rule_sections(markdown: str) -> list[tuple[str, str, str, str]]:
    """(number, rule, outcome, the section's text) of each rule heading of the page, in page order."""
    parts = re.split(r"^##### ", markdown, flags=re.M)[1:]
    out = []
    for part in parts:
        head = re.match(r"(\d+)\. `([^`]+)` gives \*\*([A-Z_\\]+)\*\*", part)
        assert head, part[:80]
        out.append((head.group(1), head.group(2), head.group(3).replace("\\", ""), part))
    return out


@pytest.mark.parametrize("path", RULESETS, ids=lambda p: p.stem)
def test_the_words_name_every_rule_in_order_with_its_policy(path: Path) -> None:
    expected = _expected_rules(path)
    sections = _rule_sections(render_documents(path, ("md",))["md"])
    assert [(name, outcome) for _, name, outcome, _ in sections] == [(r, o) for _, _, r, o, _ in expected]
    numbers = iter(sections)
    for cp_id, side, rule, _, policy in expected:
        number, _, _, text = next(numbers)
        first_of_side = [e for e in expected if e[0] == cp_id and e[1] == side][0][2] == rule
        assert (number == "1") == first_of_side, f"{cp_id} {side} {rule}: numbered {number}"
        sentence = text.split("Outcome: ", 1)[1].split("\n", 1)[0]
        if policy["case"]:
            assert f"severity **{policy['severity']}**" in sentence, (rule, sentence)
            assert f"owned by `{policy['owner']}`" in sentence, (rule, sentence)
            assert f"exposure class `{policy['exposure_class']}`" in sentence, (rule, sentence)
            if policy.get("correction"):
                assert f"correction `{policy['correction']}`" in sentence, (rule, sentence)
        else:
            assert "raises no case" in sentence, (rule, sentence)
        raw = policy["_rule"]
        assert isinstance(raw, dict)
        assert f"```sql\n{raw['when']}\n```" in text, (rule, "condition SQL")
        if raw.get("exposure") is not None:
            assert f"```sql\n{raw['exposure']}\n```" in text, (rule, "exposure SQL")
        elif raw.get("priced_by") is not None:
            assert f"lookup prices the record at (`{raw['priced_by']}.amount`)" in text, rule
        else:
            assert "Exposure: 0." in text, rule


def test_rule_table_rows_follow_the_rules(tmp_path: Path) -> None:
    """The summary table of a side lists its rules in order with outcome, severity and owner (HTML reading)."""
    html = render_documents(ROOT / "rulesets" / "inventory_to_bill.yaml", ("html",))["html"]
    table = html.split('id="cp-inventory-to-bill-decide-right"', 1)[1].split("</table>", 1)[0]
    rows = re.findall(r'<tr><td>(\d+)</td><td><a href="#[^"]+">([^<]+)</a></td><td><span class="tag tag-outcome">'
                      r"([A-Z_]+)</span>", table)
    assert [(n, r, o) for n, r, o in rows] == [
        ("1", "quarantined", "QUARANTINED"), ("2", "further", "DUPLICATE_CHARGE"),
        ("3", "no-product", "BILLED_WITHOUT_ACTIVE_PRODUCT"), ("4", "exempt-but-billed", "EXEMPT_BUT_BILLED"),
        ("5", "sku-mismatch", "PRODUCT_MAPPING_MISMATCH"), ("6", "quantity-mismatch", "QUANTITY_MISMATCH"),
        ("7", "amount-mismatch", "RECURRING_AMOUNT_MISMATCH"), ("8", "matched", "MATCHED")]


# ------------------------------------------------------------------------------------- the ruleset's values
def _edited(tmp_path: Path, name: str, *replacements: tuple[str, str]) -> Path:
    text = (ROOT / "rulesets" / name).read_text(encoding="utf-8")
    for old, new in replacements:
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_a_changed_threshold_changes_the_page(tmp_path: Path) -> None:
    shipped = render_documents(ROOT / "rulesets" / "usage_to_bill.yaml", ("md", "html"))
    edited = render_documents(_edited(tmp_path, "usage_to_bill.yaml", ("window_s: 10", "window_s: 17"),
                                      ("suspense_sla_days: 5", "suspense_sla_days: 9"),
                                      ("DATA: {rel: 0.01}", "DATA: {rel: 0.025}")), ("md", "html"))
    for fmt in ("md", "html"):
        assert edited[fmt] != shipped[fmt]
    md = edited["md"]
    assert "are at most 17 s apart" in md and "are at most 10 s apart" not in md
    assert "the ruleset's `suspense_sla_days` (9) days" in md
    assert "| `DATA` | 0 | 2.5 % |" in md
    assert "| `suspense_sla_days` | `9`" in md


def test_a_changed_alert_rate_and_tolerance_change_the_page(tmp_path: Path) -> None:
    md = render_documents(_edited(tmp_path, "carrier_invoice_vs_cdr.yaml", ("alert_rate: 0.02", "alert_rate: 0.05"),
                                  ("tolerance: {abs: 0.01, rel: 0.001}", "tolerance: {abs: 0.05, rel: 0.002}")),
                          ("md",))["md"]
    assert "above 0.05 (5 %) (the ruleset's `alert_rate`)" in md
    assert "| `alert_rate` | `0.05` | `control_points.carrier-invoice-vs-cdr.alerts[0].above` |" in md
    assert "exceeds the greater of 0.05 (absolute) and 0.2 % of the reference's absolute value" in md


# ------------------------------------------------------------------------------------ HTML and numbers
@pytest.mark.parametrize("path", RULESETS, ids=lambda p: p.stem)
def test_html_references_nothing_outside_itself(path: Path) -> None:
    html = render_documents(path, ("html",))["html"]
    assert re.findall(r"""(?:src|href|action)\s*=\s*["']?\s*(?!#)[^"'\s>]""", html, flags=re.I) == []
    assert not re.search(r"https?://|<script|<link|<iframe|<img|@import|url\(", html, flags=re.I)
    assert "default-src 'none'" in html
    assert E164.findall(html) == []


def test_a_number_written_in_a_ruleset_is_masked(tmp_path: Path) -> None:
    path = _edited(tmp_path, "usage_to_bill.yaml",
                   ('{rule: ambiguous, when: "match.ambiguous IS NOT NULL", outcome: AMBIGUOUS_MATCH,\n'
                    "           reason: \"concat_ws('; ', match.ambiguous, further_note)\"}",
                    '{rule: ambiguous, when: "match.ambiguous IS NOT NULL OR msisdn_e164 = \'+15552000008\'", '
                    "outcome: AMBIGUOUS_MATCH,\n           reason: \"concat_ws('; ', match.ambiguous, further_note)\"}"))
    texts = render_documents(path, ("md", "html"))
    for fmt, text in texts.items():
        assert E164.findall(text) == [], fmt
        assert "+1555***0008" in text, fmt


# ---------------------------------------------------------------------------------------- any valid ruleset
MINIMAL = """\
ruleset: tiny
version: "1"
contract: 2
owners: {ops: {sla_days: 1}}
params: {limit: 250}
inputs:
  reading: {table: meter_reading, schema: null, id: reading_id, system: meters}
control_points:
  reading-check:
    kind: record
    left: {input: reading, required: [reading_id, kwh]}
    decide:
      LEFT:
        - {rule: broken, when: "quarantine IS NOT NULL", outcome: BROKEN}
        - {rule: too-high, when: "kwh > ${limit} AND NOT (site IN ('LAB', 'TEST'))", outcome: TOO_HIGH,
           exposure: "kwh - ${limit}"}
        - {rule: fine, when: "true", outcome: FINE}
    outcomes:
      BROKEN: {case: true, exposure_class: INVENTORY, owner: ops, severity: LOW, correction: fix-meter}
      TOO_HIGH: {case: true, exposure_class: UNDERBILLING, owner: ops, severity: CRITICAL, correction: rebill}
      FINE: {case: false}
"""


def test_a_one_sided_ruleset_of_another_domain_explains(tmp_path: Path) -> None:
    path = tmp_path / "tiny.yaml"
    path.write_text(MINIMAL, encoding="utf-8")
    md = render_documents(path, ("md",))["md"]
    assert "Checks each record of [reading](#input-reading) on its own (one side, LEFT)." in md
    assert [(n, r, o) for n, r, o, _ in _rule_sections(md)] == [
        ("1", "broken", "BROKEN"), ("2", "too-high", "TOO_HIGH"), ("3", "fine", "FINE")]
    assert "- `kwh` is more than the ruleset's `limit` (250)\n- `site` is not one of `'LAB'` or `'TEST'`" in md
    assert "In words: `kwh` minus the ruleset's `limit` (250)" in md
    assert "When: always: every record no earlier rule decided" in md
    assert "Match stages" not in md and "Lookups" not in md


@dataclass(frozen=True)
class BandedRule(Rule):
    """A rule with a key the page does not explain yet (as a ruleset key added to the spec later would be)."""

    confidence_band: str | None = None


@dataclass(frozen=True)
class BandedPolicy(OutcomePolicy):
    action: str | None = None


def test_a_spec_field_the_page_does_not_know_yet_is_still_shown(tmp_path: Path) -> None:
    path = tmp_path / "tiny.yaml"
    path.write_text(MINIMAL, encoding="utf-8")
    rs = load_ruleset(path)
    cp = rs.control_points["reading-check"]
    rules = tuple(BandedRule(**{f.name: getattr(r, f.name) for f in fields(r)}, confidence_band="high")
                  if r.name == "too-high" else r for r in cp.decide["LEFT"])
    outcomes = {**cp.outcomes, "FINE": BandedPolicy(case=False, action="Leave it alone.")}
    changed = replace(rs, control_points={"reading-check": replace(cp, decide={"LEFT": rules}, outcomes=outcomes)})
    md = markdown(document(changed))
    assert "Also declared for this rule: `confidence_band: high`" in md
    assert "**FINE** raises no case; also declared: `action: Leave it alone.`" in md
    assert "also declared" not in markdown(document(rs)).lower()


# ---------------------------------------------------------------------------------------------------- CLI
def test_cli_writes_both_pages_and_names_them(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "pages"
    code = main(["explain", str(ROOT / "rulesets" / "provisioning_to_bill.yaml"), "--out", str(out)])
    assert code == 0
    assert sorted(p.name for p in out.iterdir()) == ["provisioning_to_bill.html", "provisioning_to_bill.md"]
    assert capsys.readouterr().out.splitlines() == [str(out / "provisioning_to_bill.md"),
                                                    str(out / "provisioning_to_bill.html")]
    assert main(["explain", str(ROOT / "rulesets" / "provisioning_to_bill.yaml"), "--out", str(out / "md"),
                 "--format", "md"]) == 0
    assert [p.name for p in (out / "md").iterdir()] == ["provisioning_to_bill.md"]


@pytest.mark.parametrize("text, message", [
    (MINIMAL.replace("left: {input: reading", "left: {input: readings"),
     "control_points.reading-check.left.input: 'readings' is not an input (inputs: reading)"),
    (MINIMAL.replace("severity: CRITICAL", "severity: URGENT"),
     "control_points.reading-check.outcomes.TOO_HIGH.severity: 'URGENT' is not one of LOW, MEDIUM, HIGH, CRITICAL"),
    (MINIMAL.replace("kwh > ${limit}", "kwh > ${limits}"), "unknown parameter ${limits}"),
])
def test_cli_exits_2_on_an_invalid_ruleset_writing_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                            text: str, message: str) -> None:
    good = tmp_path / "good.yaml"
    good.write_text(MINIMAL, encoding="utf-8")
    bad = tmp_path / "bad.yaml"
    bad.write_text(text, encoding="utf-8")
    out = tmp_path / "pages"
    assert main(["explain", str(good), str(bad), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"{bad}: " in err and message in err, err
    assert not out.exists()


def test_cli_exits_2_on_a_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["explain", str(tmp_path / "nope.yaml"), "--out", str(tmp_path / "pages")]) == 2
    assert f"{tmp_path / 'nope.yaml'}: (file): no such file" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------------- words
CTX = Context({"rate": 0.5, "kinds": ("A", "B")}, lookups=frozenset({"tariff"}), rule=True)


@pytest.mark.parametrize("sql, words", [
    ("x IS NULL", "`x` is missing"),
    ("NOT (x IS NULL)", "`x` is present"),
    ("quarantine IS NULL", "the record is not quarantined"),
    ("counterpart.amount >= ${rate}", "the counterpart's `amount` is at least the ruleset's `rate` (0.5)"),
    ("NOT (a = 1 AND b <> 'X')", "either `a` is not 1 or `b` is `'X'`"),
    ("NOT (a <=> b)", "`a` is not the same as `b` (a missing value counts as a value)"),
    ("t < ${cycle.end} - INTERVAL 1 DAY", "`t` is before the cycle end minus 1 day"),
    ("array_contains(${kinds}, k) OR NOT tariff.found",
     "either the ruleset's `kinds` (`['A', 'B']`) contains `k` or the `tariff` lookup finds no row"),
    ("coalesce(match.rank = 1, false)", "the match rank is 1 (false where it cannot be told)"),
    ("match.rank > 1 AND (dup.copy OR s NOT IN ('A', 'B'))",
     "the match rank is more than 1 and (either the record is a copy of an earlier record or `s` is not one of "
     "`'A'` or `'B'`)"),
    ("amount_due > 100 AND coalesce(CASE WHEN a THEN b END, c) = 1",
     "`amount_due` is more than 100 and `CASE WHEN a THEN b END` (or `c` where it is missing) is 1"),
    ("true", "always: every record no earlier rule decided"),
])
def test_condition_words(sql: str, words: str) -> None:
    got = condition_words(sql, CTX)
    assert got is not None
    assert _text(as_inline(got)) == words


def test_unreadable_or_unexplained_sql_gets_no_words() -> None:
    assert condition_words("a = = b", CTX) is None                    # not an expression: the SQL alone
    assert condition_words("CASE WHEN a THEN b END", CTX) is None      # the words would only repeat it
    assert condition_words("CASE WHEN a THEN b END = 2", CTX) is None  # ... or hardly add to it
    assert value_words("concat(a, b)", CTX) is None
    assert _text(value_words("-(a - b) * 2", CTX) or ()) == "minus (`a` minus `b`) times 2"


def test_the_loader_keeps_the_alert_parameter() -> None:
    alert = load_ruleset(ROOT / "rulesets" / "carrier_invoice_vs_cdr.yaml").control_points[
        "carrier-invoice-vs-cdr"].alerts[0]
    assert (alert.threshold_param, str(alert.threshold)) == ("alert_rate", "0.02")
