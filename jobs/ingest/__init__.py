"""`telco-ra ingest`: raw carrier invoice files (CSV, XLSX, HTML saved as .xls) into `carrier_invoice_line`.

CONTRACT section 6. The modules, in the order a file meets them:

- `layouts`: the carrier layouts, YAML files in `conf/carriers/` (data, not code), loaded and validated.
- `recognize`: which layout a file is, from its headers alone (case, spaces and punctuation ignored).
- `readers`: the file's rows as a DataFrame of strings (Spark's CSV reader; openpyxl for XLSX; lxml for HTML).
- `normalize`: strings to the contract's types: UTC instants (DST gap and overlap named), E.164 numbers,
  seconds, exact decimal money; a row that cannot be read keeps its place with `parse_error`.
- `write`: one Delta commit per file, skipped when the file's SHA-256 is already in the table.
- `cli`: the command; every file is recognised before Spark starts, so a bad file writes nothing.
"""

from __future__ import annotations
