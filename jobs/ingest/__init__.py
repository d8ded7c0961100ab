"""`telco-ra ingest`: raw carrier files (CSV, XLSX, HTML saved as .xls) into `carrier_invoice_line` (call invoices,
CONTRACT section 6) or `carrier_bill_line` (line bills, section 9), as the file's layout's kind says.

The modules, in the order a file meets them:

- `layouts`: the carrier layouts of both kinds, YAML files in `conf/carriers/` (data, not code), loaded and
  validated.
- `recognize`: which layout a file is, from its headers alone (case, spaces and punctuation ignored).
- `readers`: the file's rows as a DataFrame of strings (Spark's CSV reader; openpyxl for XLSX; lxml for HTML).
- `normalize`: strings to the contract's types: UTC instants (DST gap and overlap named), E.164 numbers,
  seconds, exact decimal money; a row that cannot be read keeps its place with `parse_error`.
- `bill_lines`: the same for line bills: E.164 phones, ICCIDs, usage in MB, amounts, periods.
- `write`: one Delta commit per file into its kind's table, skipped when the file's SHA-256 is already there.
- `cli`: the command; every file is recognised before Spark starts, so a bad file writes nothing.
"""

from __future__ import annotations
