"""Notebooks are stored without outputs: `make strip-notebooks` (python -m jobs.notebook.strip FILE...) strips them.

Why: an output is data from whoever ran the cell last (their lakehouse, their run ids, whatever a cell printed), it
makes every diff noise, and it can carry what must not be committed. tests/test_notebooks.py fails while a stored
notebook differs from its stripped form. Works on the notebook JSON as it is (nbformat 4), so it needs nothing
installed beyond the standard library.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

# Cell metadata a front end writes while running a notebook (timings, scroll and collapse state); tags stay.
VOLATILE_CELL_METADATA = ("execution", "collapsed", "scrolled", "jupyter", "ExecuteTime")


def stripped(notebook: dict[str, Any]) -> dict[str, Any]:
    """`notebook` with no outputs, no execution counts and no run-time metadata."""
    out = json.loads(json.dumps(notebook))
    for cell in out.get("cells", []):
        meta = cell.get("metadata", {})
        for key in VOLATILE_CELL_METADATA:
            meta.pop(key, None)
        if cell.get("cell_type") == "code":
            cell["outputs"] = []
            cell["execution_count"] = None
    meta = out.get("metadata", {})
    meta.pop("widgets", None)
    if "language_info" in meta:
        meta["language_info"] = {"name": meta["language_info"].get("name", "python")}
    return out


def text(notebook: dict[str, Any]) -> str:
    """A notebook as stored: indented JSON, keys sorted, a newline at the end (what Jupyter writes)."""
    return json.dumps(notebook, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    paths = [Path(p) for p in (sys.argv[1:] if argv is None else argv)]
    for path in paths:
        before = path.read_text(encoding="utf-8")
        after = text(stripped(json.loads(before)))
        if after != before:
            path.write_text(after, encoding="utf-8")
            sys.stdout.write(f"stripped {path}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
