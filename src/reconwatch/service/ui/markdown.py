"""A small Markdown renderer for rules' investigation guides: everything escaped, the
investigation section's list items as checklist steps; headings, lists, quotes, paragraphs,
code, bold, italics and http(s) links only."""

from __future__ import annotations

import re
from dataclasses import dataclass
from html import escape

_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_ITEM = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s+(.*)$")
_LINK = re.compile(r"\[([^\]]+)\]\((https?://[^\s)]+)\)")
_BOLD = re.compile(r"\*\*(.+?)\*\*|__(.+?)__")
# The heading of a guide's investigation steps ("Possible investigation steps", "Triage steps");
# the false-positive, response and setup sections' lists stay text.
_STEPS_HEADING = re.compile(r"investigat\w* steps|triage steps|investigation checklist", re.I)
_EM = re.compile(r"(?<![\w*])\*(?!\s)(.+?)(?<!\s)\*(?![\w*])|(?<![\w])_(?!\s)(.+?)(?<!\s)_(?![\w])")


@dataclass(frozen=True, slots=True)
class Guide:
    """The guide as HTML, and its steps (the text of each list item, in order)."""

    html: str
    steps: tuple[str, ...]


def inline(text: str) -> str:
    """One line of Markdown as escaped HTML: `code`, **bold**, *italics*, [links](https://...)."""
    out: list[str] = []
    for i, part in enumerate(re.split(r"`([^`]*)`", text)):
        if i % 2:
            out.append(f"<code>{escape(part)}</code>")
            continue
        html = escape(part, quote=True)
        html = _LINK.sub(lambda m: f'<a href="{m[2]}" rel="noreferrer">{m[1]}</a>', html)
        html = _BOLD.sub(lambda m: f"<strong>{m[1] or m[2]}</strong>", html)
        html = _EM.sub(lambda m: f"<em>{m[1] or m[2]}</em>", html)
        out.append(html)
    return "".join(out)


def render(text: str, *, checklist: bool = True, step_prefix: str = "step") -> Guide:
    """The guide's HTML; with `checklist` each list item of the investigation steps section
    (every list item when the guide has no such heading) is a labelled checkbox whose
    `data-step` is its number (the checklist state is stored by that number)."""
    sectioned = any(
        (h := _HEADING.match(line.strip())) and _STEPS_HEADING.search(h[2])
        for line in text.splitlines()
    )
    in_steps = not sectioned
    html: list[str] = []
    steps: list[str] = []
    para: list[str] = []
    in_list = False
    in_code = False

    def flush() -> None:
        nonlocal in_list
        if para:
            html.append(f"<p>{inline(' '.join(para))}</p>")
            para.clear()
        if in_list:
            html.append("</ul>")
            in_list = False

    for raw in text.splitlines():
        line = raw.rstrip()
        if line.strip().startswith("```"):
            flush()
            html.append("</code></pre>" if in_code else "<pre><code>")
            in_code = not in_code
            continue
        if in_code:
            html.append(escape(raw) + "\n")
            continue
        if not line.strip():
            flush()
            continue
        heading = _HEADING.match(line.strip())
        item = _ITEM.match(line)
        if heading:
            flush()
            in_steps = not sectioned or bool(_STEPS_HEADING.search(heading[2]))
            level = min(len(heading[1]) + 1, 6)  # the page has its own h1
            html.append(f"<h{level}>{inline(heading[2])}</h{level}>")
        elif line.lstrip().startswith(">"):
            flush()
            html.append(f"<blockquote>{inline(line.lstrip()[1:].strip())}</blockquote>")
        elif item:
            if para:
                flush()
            step = checklist and in_steps
            if not in_list:
                html.append('<ul class="steps">' if step else "<ul>")
                in_list = True
            if step:
                n = len(steps)
                steps.append(item[1])
                html.append(
                    f'<li><label><input type="checkbox" data-step="{n}" '
                    f'id="{step_prefix}-{n}"> {inline(item[1])}</label></li>'
                )
            else:
                html.append(f"<li>{inline(item[1])}</li>")
        elif in_list and raw.startswith(("  ", "\t")):
            more = f" {inline(line.strip())}"
            tail = "</label></li>" if html[-1].endswith("</label></li>") else "</li>"
            html[-1] = html[-1][: -len(tail)] + more + tail
        else:
            if in_list:
                flush()
            para.append(line.strip())
    flush()
    if in_code:
        html.append("</code></pre>")
    return Guide("\n".join(html), tuple(steps))


def section_items(text: str, heading: str) -> list[str]:
    """The list items under the first heading that contains `heading` (case-insensitive), up
    to the next heading: a rule guide's "False positive analysis" advice."""
    out: list[str] = []
    inside = False
    for line in text.splitlines():
        found = _HEADING.match(line.strip())
        if found:
            if inside:
                break
            inside = heading.lower() in found[2].lower()
            continue
        item = _ITEM.match(line)
        if inside and item:
            out.append(item[1])
    return out
