"""`telco-ra explain`: what a ruleset decides, in words, as Markdown and self-contained HTML (CONTRACT section 10).

The page is generated from the ruleset as loaded and validated (jobs/ruleset.py), so it cannot describe a rule the
engine would not run, and it is deterministic (same ruleset, same bytes) so the shipped rulesets' pages are
committed under docs/rules/ and tests/test_explain.py fails when one is out of date.

Example::

    write_documents("rulesets/usage_to_bill.yaml", Path("docs/rules"), ("md", "html"))
    # [PosixPath('docs/rules/usage_to_bill.md'), PosixPath('docs/rules/usage_to_bill.html')]
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from jobs.explain.document import document
from jobs.explain.render import markdown, page
from jobs.ruleset import load_ruleset

FORMATS = {"md": ("md",), "html": ("html",), "both": ("md", "html")}
DEFAULT_OUT = Path("docs/rules")


def render_documents(path: str | Path, formats: Sequence[str]) -> dict[str, str]:
    """{suffix: text} of a ruleset's page in each format ('md', 'html'); ConfigError (exit 2) for a bad ruleset."""
    blocks = document(load_ruleset(path))
    renderers = {"md": markdown, "html": page}
    return {fmt: renderers[fmt](blocks) for fmt in formats}


def write_texts(path: str | Path, texts: dict[str, str], out: Path) -> list[Path]:
    """Write `<out>/<ruleset file stem>.<format>` for each rendered text; the files written."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for suffix, text in texts.items():
        target = out / f"{Path(path).stem}.{suffix}"
        target.write_text(text, encoding="utf-8", newline="\n")
        written.append(target)
    return written


def write_documents(path: str | Path, out: Path, formats: Sequence[str]) -> list[Path]:
    """A ruleset's pages rendered and written (see the module docstring)."""
    return write_texts(path, render_documents(path, formats), out)
