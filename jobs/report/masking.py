"""Phone numbers inside free text (reasons, account ids, record ids), masked as transforms/phone.py masks a number.

`transforms.phone.mask_phone` masks a column that *is* a number (`+15551234567` -> `+1555***4567`). What a report or
an export shows beside it is text an input system wrote (a suspense reason such as "unknown subscriber +1 555 200
0008"), or an id that may be a number (some operators key accounts by MSISDN). `mask_phones_in_text` finds what
looks like a phone number in such text and masks it in place, in Spark (Java regular expressions, no Python UDF):

- E.164 (`+` and 8 to 15 digits): exactly as `mask_phone` (first five characters and last four kept, `***` between;
  nine characters or fewer: `***` and the last two);
- a bare run of 10 to 15 digits (`15552000008`): as `mask_phone` too;
- a formatted number (`+1 555-200-0009`, `(555) 200-0009`, `555.200.0009`): `***` in its place (its parts cannot be
  re-assembled by a regular expression, so none is kept).

Dates (`2026-06-10`), amounts (`1.200000`, `1234567.123456`) and ids with letters in them (`C-A`, `RA-3f...`) are
left alone. Longer digit runs (16 or more, e.g. a mediation record id) are not phone numbers and are kept.

`mask_phones_in_text_str` is the same in Python, for text that never goes through Spark (file names, log lines).
"""

from __future__ import annotations

import re

from pyspark.sql import Column
from pyspark.sql import functions as F

# (pattern, replacement) in the order they apply; Java and Python read these patterns alike. A number ends where no
# digit (nor a dot and a digit: an amount) follows.
_END = r"(?!\d)(?!\.\d)"
_E164 = (r"\+(\d{4})\d{1,7}(\d{4})" + _END, "+{1}***{2}")
_E164_SHORT = (r"\+\d{6}(\d{2})" + _END, "***{1}")
_BARE = (r"(?<![\w.])(\d{5})\d{1,6}(\d{4})" + _END, "{1}***{2}")
# Groups of 2-4 digits joined by one separator, at least three groups (or a `+country` and two) and seven digits,
# optionally an extension. Not inside a word, an amount, a date or a time: a date (dddd-dd-dd) and an amount (digits, a dot, six
# digits) are excluded by the lookaheads, and a run that starts after '-' or '/' is the rest of a date.
_FORMATTED = (
    r"(?<![\w.+\-/])(?!\d{4}-\d{2}-\d{2})(?!\d+\.\d{6}(?!\d))(?=(?:[ .\-()+]{0,3}\d){7})"
    r"(?:\+\d{1,3}[ .\-]?)?\(?\d{2,4}\)?(?:[ .\-]\(?\d{2,4}\)?){2,4}(?:\s*(?:x|ext\.?)\s*\d{1,6})?(?!\w)(?!\.\d)",
    "***",
)
PATTERNS = (_E164, _E164_SHORT, _BARE, _FORMATTED)


def mask_phones_in_text(col: Column) -> Column:
    """`col` (a string column) with every phone number in it masked; null stays null.

    Example::

        df.select(mask_phones_in_text(F.col("reason")))   # 'unknown +15552000008' -> 'unknown +1555***0008'
    """
    out = col.cast("string")
    for pattern, replacement in PATTERNS:
        out = F.regexp_replace(out, pattern, replacement.replace("{", "$").replace("}", ""))
    return out


def mask_phones_in_text_str(text: str | None, bare_digits: bool = True) -> str | None:
    """`mask_phones_in_text` in plain Python: 'call +15552000008' -> 'call +1555***0008'; None stays None.

    `bare_digits=False` leaves bare digit runs alone (log lines: there a run of 10 to 15 digits is a count, a size or
    an id far more often than a number, and a run id's hex hash can be all digits)."""
    if text is None:
        return None
    for pattern, replacement in PATTERNS if bare_digits else tuple(p for p in PATTERNS if p is not _BARE):
        text = re.sub(pattern, replacement.replace("{", "\\g<").replace("}", ">"), text)
    return text
