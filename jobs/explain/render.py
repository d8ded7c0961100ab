"""The explained page as Markdown (to read on a forge) and as one self-contained HTML file (to read from disk).

The HTML has its style inline and forbids every script and fetch (a Content-Security-Policy): it opens offline and
references nothing outside itself. Both renderings mask any E.164 number a ruleset happens to hold (a literal in a
rule, an exemption value) as the rest of telco-ra does (`+1555***4567`), since people read these pages.
"""

from __future__ import annotations

import html
import re

from jobs.explain.blocks import Block, Box, Code, Heading, Inline, Items, Link, Para, Span, Sql, Table, Tag
from jobs.report.masking import PATTERNS

# the E.164 patterns of the report's masking (a '+' and 8 to 15 digits): in a ruleset's text nothing else is a
# phone number for sure (a bare run of digits there is more likely a threshold, which must stay readable)
_E164 = [(re.compile(p), r.replace("{", "\\g<").replace("}", ">")) for p, r in PATTERNS if p.startswith(r"\+")]


def mask(text: str) -> str:
    for pattern, replacement in _E164:
        text = pattern.sub(replacement, text)
    return text


# --------------------------------------------------------------------------------------------------- Markdown
_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>])")


def _md_text(text: str) -> str:
    return _MD_SPECIAL.sub(r"\\\1", mask(text))


def _md_code(text: str) -> str:
    text = mask(text).replace("\n", " ")
    fence = "`" * (max((len(m) for m in re.findall(r"`+", text)), default=0) + 1)
    pad = " " if text.startswith(("`", " ")) or text.endswith(("`", " ")) else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _md_span(span: Span) -> str:
    if isinstance(span, Code):
        return _md_code(span.text)
    if isinstance(span, Tag):
        return f"**{_md_text(span.text)}**" if span.text else ""
    if isinstance(span, Link):
        return f"[{_md_text(span.text)}](#{span.anchor})"
    return _md_text(span)


def _md_inline(text: Inline) -> str:
    return "".join(_md_span(s) for s in text)


def _md_block(block: Block) -> list[str]:
    if isinstance(block, Heading):
        out = [f'<a id="{block.anchor}"></a>', ""] if block.anchor else []
        return [*out, f"{'#' * block.level} {_md_inline(block.text)}"]
    if isinstance(block, Para):
        return [_md_inline(block.text)]
    if isinstance(block, Items):
        lines: list[str] = []
        for i, item in enumerate(block.items, start=1):
            marker = f"{i}. " if block.ordered else "- "
            lines.append(marker + _md_inline(item.text))
            for child in item.children:
                lines.append("")
                lines += [(" " * len(marker) + line) if line else "" for line in _md_block(child)]
        return lines
    if isinstance(block, Table):
        def row(cells: list[str]) -> str:
            return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"
        return [row([_md_text(h) for h in block.header]), row(["---"] * len(block.header)),
                *[row([_md_inline(c) for c in r]) for r in block.rows]]
    if isinstance(block, Sql):
        text = mask(block.text)
        fence = "`" * max(3, max((len(m) for m in re.findall(r"`+", text)), default=0) + 1)
        return [f"{fence}sql", *text.splitlines(), fence]
    assert isinstance(block, Box)
    lines = []
    for child in block.blocks:
        lines += [*_md_block(child), ""]
    return lines[:-1]


def markdown(blocks: tuple[Block, ...]) -> str:
    lines: list[str] = []
    for block in blocks:
        lines += [*_md_block(block), ""]
    return "\n".join(lines).rstrip("\n") + "\n"


# ------------------------------------------------------------------------------------------------------- HTML
CSS = """
:root { --ink: #1d2430; --muted: #5b6575; --line: #d8dde6; --bg: #f6f7f9; --card: #fff; --accent: #1f5fbf; }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--ink);
       background: var(--bg); }
main { max-width: 1100px; margin: 0 auto; padding: 24px 28px 64px; }
h1 { font-size: 1.8em; margin: 0.2em 0 0.4em; }
h2 { font-size: 1.4em; margin: 2em 0 0.5em; padding-top: 0.6em; border-top: 2px solid var(--line); }
h3 { font-size: 1.15em; margin: 1.6em 0 0.4em; }
h4 { font-size: 1.02em; margin: 1.3em 0 0.3em; color: var(--muted); }
h5 { font-size: 1em; margin: 0 0 0.4em; }
p { margin: 0.4em 0; }
a { color: var(--accent); text-decoration: none; }
a:hover { text-decoration: underline; }
code { font: 0.88em/1.4 ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; background: #eef1f5;
       padding: 0.05em 0.3em; border-radius: 3px; overflow-wrap: break-word; }
pre.sql { background: #1e2430; color: #e8ecf2; padding: 10px 12px; border-radius: 6px; overflow-x: auto;
          margin: 0.4em 0 0.8em; }
pre.sql code { background: none; color: inherit; padding: 0; white-space: pre-wrap; overflow-wrap: anywhere; }
ul, ol { margin: 0.3em 0 0.6em; padding-left: 1.4em; }
li { margin: 0.15em 0; }
.table { overflow-x: auto; margin: 0.5em 0 1em; }
table { border-collapse: collapse; background: var(--card); font-size: 0.93em; }
th, td { border: 1px solid var(--line); padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #eceff4; font-weight: 600; }
section.rule { background: var(--card); border: 1px solid var(--line); border-left: 4px solid var(--accent);
               border-radius: 6px; padding: 10px 14px; margin: 0.8em 0; }
.tag { display: inline-block; font-size: 0.8em; font-weight: 600; padding: 0 0.45em; border-radius: 9px;
       background: #e4ebf7; color: #1b3f7a; letter-spacing: 0.01em; }
.tag-CRITICAL { background: #7a1010; color: #fff; }
.tag-HIGH { background: #fde2e1; color: #9b1c1c; }
.tag-MEDIUM { background: #fff1d6; color: #8a5a00; }
.tag-LOW { background: #e8ecef; color: #44505c; }
"""


def _h(text: str) -> str:
    return html.escape(mask(text), quote=True)


def _html_span(span: Span) -> str:
    if isinstance(span, Code):
        return f"<code>{_h(span.text)}</code>"
    if isinstance(span, Tag):
        kind = re.sub(r"[^A-Za-z0-9_-]", "", span.kind)
        return f'<span class="tag tag-{kind}">{_h(span.text)}</span>' if span.text else ""
    if isinstance(span, Link):
        return f'<a href="#{_h(span.anchor)}">{_h(span.text)}</a>'
    return _h(span)


def _html_inline(text: Inline) -> str:
    return "".join(_html_span(s) for s in text)


def _html_block(block: Block) -> str:
    if isinstance(block, Heading):
        ident = f' id="{_h(block.anchor)}"' if block.anchor else ""
        return f"<h{block.level}{ident}>{_html_inline(block.text)}</h{block.level}>"
    if isinstance(block, Para):
        return f"<p>{_html_inline(block.text)}</p>"
    if isinstance(block, Items):
        tag = "ol" if block.ordered else "ul"
        items = "".join(f"<li>{_html_inline(i.text)}{''.join(_html_block(c) for c in i.children)}</li>"
                        for i in block.items)
        return f"<{tag}>{items}</{tag}>"
    if isinstance(block, Table):
        head = "".join(f"<th>{_h(h)}</th>" for h in block.header)
        body = "".join("<tr>" + "".join(f"<td>{_html_inline(c)}</td>" for c in r) + "</tr>" for r in block.rows)
        return f'<div class="table"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'
    if isinstance(block, Sql):
        return f'<pre class="sql"><code>{_h(block.text)}</code></pre>'
    assert isinstance(block, Box)
    return f'<section class="{_h(block.kind)}">' + "\n".join(_html_block(b) for b in block.blocks) + "</section>"


def page(blocks: tuple[Block, ...]) -> str:
    title = next(("".join(s if isinstance(s, str) else s.text for s in b.text) for b in blocks
                  if isinstance(b, Heading) and b.level == 1), "telco-ra ruleset")
    body = "\n".join(_html_block(b) for b in blocks)
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">\n"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
            f"<title>{_h(title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n<main>\n{body}\n</main>\n"
            "</body>\n</html>\n")
