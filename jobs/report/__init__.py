"""The run report (issue 15): one self-contained HTML page, the RA scorecard and per-team exports of open cases.

- `job.py`: `write_report`, the entry point (`telco-ra report`, and the end of a run or of the demo);
- `figures.py`: what the page shows, read from the output tables with small Spark aggregations;
- `scorecard.py`: the TM Forum-style RA KPIs per cycle, and the `ra_scorecard` Delta table;
- `exports.py`: each owner team's open cases as CSV and Parquet;
- `page.py` and `svg.py`: the HTML and its inline charts (pure Python);
- `masking.py`: phone numbers inside free text, masked as `transforms.phone.mask_phone` masks a number.
"""

from __future__ import annotations

from jobs.report.figures import ReportError
from jobs.report.job import ReportFiles, write_report

__all__ = ["ReportError", "ReportFiles", "write_report"]
