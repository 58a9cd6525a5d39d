"""The triage UI's pages as server-rendered HTML (every value escaped): queue, alert, rules,
query console, exceptions, login, not found."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from html import escape
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from reconwatch.plan.values import format_datetime
from reconwatch.service.ui import markdown, svg
from reconwatch.store.alerts import STATUSES, AlertFilter

if TYPE_CHECKING:
    from reconwatch.service.ui.context import Crossing

NAV = (("/", "Alerts"), ("/rules", "Rules"), ("/query", "Query"), ("/exceptions", "Exceptions"))
QUEUE_FILTERS = ("status", "rule_id", "severity", "host", "executable", "since", "until")
SEVERITIES = ("low", "medium", "high", "critical")


def e(value: object) -> str:
    """Any value as escaped HTML text (None as empty)."""
    if value is None:
        return ""
    if isinstance(value, list | dict):
        value = json.dumps(value, ensure_ascii=False)
    return escape(str(value), quote=True)


def page(title: str, body: str, active: str = "", *, status_line: str = "") -> str:
    links = "".join(
        f'<a href="{href}"{" aria-current=page" if href == active else ""}>{name}</a>'
        for href, name in NAV
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{e(title)} · reconwatch</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/ui/static/ui.css">
<script src="/ui/static/ui.js" defer></script>
</head><body>
<header><a class="brand" href="/">reconwatch</a><nav aria-label="Pages">{links}</nav>
<label class="who">Analyst <input id="analyst" name="analyst" autocomplete="username"
 size="10" value="analyst"></label></header>
<main id="main">
<div id="live" class="live" role="status" aria-live="polite">{e(status_line)}</div>
{body}
</main></body></html>"""


def not_found(what: str) -> str:
    return page(
        "Not found", f"<h1>Not found</h1><p>{e(what)}</p><p><a href='/'>Back to the alerts</a></p>"
    )


def error_page(message: str) -> str:
    return page("Error", f"<h1>Something went wrong</h1><p class='error'>{e(message)}</p>")


def login(message: str = "", next_path: str = "/") -> str:
    note = f'<p class="error" role="alert">{e(message)}</p>' if message else ""
    return page(
        "Sign in",
        f"""<h1>Sign in</h1>{note}
<form method="post" action="/login"><label for="key">API key</label>
<input id="key" name="key" type="password" required autocomplete="current-password">
<input type="hidden" name="next" value="{e(next_path)}">
<button type="submit">Sign in</button></form>""",
    )


# -- the queue -------------------------------------------------------------------------------------


def _query(params: Mapping[str, str], **change: object) -> str:
    kept = {k: v for k, v in params.items() if v and k in (*QUEUE_FILTERS, "from", "size")}
    for k, v in change.items():
        if v in (None, ""):
            kept.pop(k, None)
        else:
            kept[k] = str(v)
    return "?" + urlencode(kept) if kept else "?"


def queue_rows(alerts: Sequence[Mapping[str, Any]]) -> str:
    if not alerts:
        return '<tr><td colspan="8" class="muted">No alerts match.</td></tr>'
    rows = []
    for a in alerts:
        aid = str(a.get("kibana.alert.uuid"))
        status = str(a.get("kibana.alert.workflow_status", "open"))
        rows.append(
            f'<tr tabindex="0" data-id="{e(aid)}" data-href="/alerts/{e(aid)}">'
            f'<td><input type="checkbox" class="pick" aria-label="Select alert {e(aid[:12])}" '
            f'value="{e(aid)}"></td>'
            f"<td><time>{e(a.get('@timestamp'))}</time></td>"
            f'<td><a href="/alerts/{e(aid)}">{e(a.get("kibana.alert.rule.name"))}</a></td>'
            f'<td><span class="sev sev-{e(a.get("kibana.alert.severity"))}">'
            f"{e(a.get('kibana.alert.severity'))}</span></td>"
            f"<td>{e(a.get('host.name'))}</td>"
            f"<td><code>{e(a.get('process.executable'))}</code></td>"
            f"<td>{e(a.get('kibana.alert.reason'))}</td>"
            f'<td class="status status-{e(status)}">{e(status)}</td></tr>'
        )
    return "".join(rows)


def queue_caption(f: AlertFilter, total: int, shown: int) -> str:
    first = f"{f.offset + 1}-{f.offset + shown}" if shown else "0"
    return f"Alerts {first} of {total}, newest first"


def status_tabs(params: Mapping[str, str], counts: Mapping[str, int]) -> str:
    current = params.get("status", "")
    tabs = [
        (
            f'<a href="{_query(params, status="", **{"from": ""})}"'
            f"{' aria-current=true' if not current else ''}>all "
            f'<span class="count" data-status="all">{sum(counts.values())}</span></a>'
        )
    ]
    for s in STATUSES:
        tabs.append(
            f'<a href="{_query(params, status=s, **{"from": ""})}"'
            f"{' aria-current=true' if current == s else ''}>{s} "
            f'<span class="count" data-status="{s}">{counts.get(s, 0)}</span></a>'
        )
    return "".join(tabs)


def queue(
    params: Mapping[str, str],
    f: AlertFilter,
    total: int,
    counts: Mapping[str, int],
    alerts: Sequence[Mapping[str, Any]],
    facets: Mapping[str, Sequence[str]],
    rule_names: Mapping[str, str],
    error: str = "",
    state: str = "",
) -> str:
    def select(name: str, label: str, options: Sequence[tuple[str, str]]) -> str:
        chosen = params.get(name, "")
        opts = "".join(
            f'<option value="{e(v)}"{" selected" if v == chosen else ""}>{e(t)}</option>'
            for v, t in [("", "any"), *options]
        )
        return f'<label>{label} <select name="{name}" id="f-{name}">{opts}</select></label>'

    def text(name: str, label: str, placeholder: str = "") -> str:
        return (
            f'<label>{label} <input name="{name}" id="f-{name}" value="{e(params.get(name, ""))}" '
            f'placeholder="{e(placeholder)}"></label>'
        )

    rules = [(r, rule_names.get(r, r)) for r in facets.get("rule_id", [])]
    filters = "".join(
        [
            select("status", "Status", [(s, s) for s in STATUSES]),
            select("rule_id", "Rule", rules),
            select("severity", "Severity", [(s, s) for s in SEVERITIES]),
            text("host", "Host", "host.name"),
            text("executable", "Executable", "process.executable"),
            text("since", "Since", "2026-03-01T00:00:00Z"),
            text("until", "Until", "ISO-8601"),
        ]
    )
    # Past the end (a stale link, a typed number): "Newer" goes to the last page there is.
    last = ((total - 1) // f.size) * f.size if total and f.size else 0
    prev_from = max(min(f.offset - f.size, last), 0)
    pager = []
    if f.offset > 0:
        pager.append(f'<a rel="prev" href="{_query(params, **{"from": prev_from})}">Newer</a>')
    if f.offset + f.size < total:
        pager.append(
            f'<a rel="next" href="{_query(params, **{"from": f.offset + f.size})}">Older</a>'
        )
    shown = queue_caption(f, total, len(alerts))
    err = f'<p class="error" role="alert">{e(error)}</p>' if error else ""
    return page(
        "Alerts",
        f"""<h1>Alerts</h1>{err}
<form class="filters" method="get" action="/" aria-label="Filter alerts">{filters}
<button type="submit">Filter</button> <a href="/">Clear</a></form>
<nav class="tabs" aria-label="Alerts by status" id="counts">{status_tabs(params, counts)}</nav>
<div class="bulk" role="group" aria-label="Bulk actions">
<label><input type="checkbox" id="pick-all" aria-label="Select all alerts on this page"> all</label>
<button type="button" data-bulk="acknowledged">Acknowledge selected</button>
<button type="button" data-bulk="closed">Close selected</button>
<button type="button" data-bulk="open">Reopen selected</button>
<span class="keys">Keys: j/k or arrows move, Enter opens, x selects, a acknowledges, c closes, / filters</span>
</div>
<table id="queue" data-total="{total}" data-first="{f.offset}" data-state="{e(state)}" aria-describedby="shown">
<caption id="shown">{shown}</caption>
<thead><tr><th scope="col"><span class="sr">Select</span></th><th scope="col">Time</th>
<th scope="col">Rule</th><th scope="col">Severity</th><th scope="col">Host</th>
<th scope="col">Executable</th><th scope="col">Reason</th><th scope="col">Status</th></tr></thead>
<tbody id="rows">{queue_rows(alerts)}</tbody></table>
<nav class="pager" aria-label="Pages of alerts">{" ".join(pager)}</nav>""",
        "/",
    )


# -- one alert -------------------------------------------------------------------------------------

_HIDDEN_PREFIXES = ("kibana.", "reconwatch.", "event.kind")


def result_columns(alert: Mapping[str, Any]) -> dict[str, Any]:
    """The alert's own result columns (the rule's output), without Kibana's and our fields."""
    return {k: v for k, v in alert.items() if not k.startswith(_HIDDEN_PREFIXES)}


def _kv(rows: Mapping[str, Any]) -> str:
    return "".join(f"<tr><th scope='row'>{e(k)}</th><td>{e(v)}</td></tr>" for k, v in rows.items())


def _table(columns: Sequence[str], rows: Sequence[Sequence[Any]], caption: str) -> str:
    head = "".join(f"<th scope='col'>{e(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{e(v)}</td>" for v in r) + "</tr>" for r in rows)
    if not rows:
        body = f"<tr><td colspan='{max(len(columns), 1)}' class='muted'>none</td></tr>"
    return f"<table><caption>{e(caption)}</caption><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _mitre(threats: object) -> str:
    items = []
    for t in threats if isinstance(threats, list) else []:
        tactic = t.get("tactic", {}) if isinstance(t, dict) else {}
        techniques = t.get("technique", []) if isinstance(t, dict) else []
        tech = ", ".join(
            f'<a href="{e(x.get("reference"))}" rel="noreferrer">{e(x.get("id"))} {e(x.get("name"))}</a>'
            for x in techniques
            if isinstance(x, dict) and str(x.get("reference", "")).startswith("https://")
        )
        ref = str(tactic.get("reference", ""))
        name = f"{e(tactic.get('id'))} {e(tactic.get('name'))}"
        link = (
            f'<a href="{e(ref)}" rel="noreferrer">{name}</a>'
            if ref.startswith("https://")
            else name
        )
        items.append(f"<li>Tactic {link}; technique {tech}</li>")
    return f"<ul>{''.join(items)}</ul>" if items else "<p class='muted'>none</p>"


def crossing_text(crossing: Crossing) -> str:
    if crossing.at is None:
        return f"not known: {crossing.how}"
    return f"{format_datetime(crossing.at)} ({crossing.how})"


def timeline_html(alert: Mapping[str, Any], crossing: Crossing) -> str:
    """Attempts per minute with the run window and the stored crossing point."""
    ev = alert.get("reconwatch.evidence")
    apm = ev.get("attempts_per_minute", {}) if isinstance(ev, dict) else {}
    window = (_dt(alert.get("reconwatch.run.from")), _dt(alert.get("reconwatch.run.to")))
    where = "(" + e(crossing_text(crossing)) + ")"
    return f"""{svg.per_minute(apm.get("by_minute", []), window, crossing.at)}
<p class="muted">Shaded: the rule's run window. Line: where the rule's condition was first met
{where}. Peak {e(apm.get("peak"))}/min over {e(apm.get("active_minutes"))} active minutes.</p>"""


def evidence_html(alert: Mapping[str, Any], crossing: Crossing, console: str | None) -> str:
    ev = alert.get("reconwatch.evidence")
    if not isinstance(ev, dict) or not ev.get("available"):
        reason = ev.get("reason") if isinstance(ev, dict) else "the alert carries no evidence"
        return f"<p class='muted'>Evidence not available: {e(reason)}</p>"
    dest = ev.get("destination", {})
    probed = dest.get("probed", {})
    internal: list[str] = []
    external: list[str] = []
    v6: list[dict[str, Any]] = []
    for block in dest.get("blocks", []):
        cidr = str(block["cidr"])
        if ":" in cidr:
            v6.append(block)
            continue
        fig = (
            f'<figure class="block">{svg.address_map(cidr, str(probed.get(cidr, "")), svg.is_internal_block(cidr))}'
            f"<figcaption>{e(cidr)}: {e(block.get('distinct_ips'))} addresses</figcaption></figure>"
        )
        (internal if svg.is_internal_block(cidr) else external).append(fig)
    maps = ""
    if internal:
        maps += f"<h4>Internal blocks</h4><div class='maps'>{''.join(internal)}</div>"
    if external:
        maps += f"<h4>External blocks</h4><div class='maps'>{''.join(external)}</div>"
    if v6:
        maps += "<h4>IPv6 by /64</h4>" + _table(
            ["/64", "addresses", "events"],
            [[b["cidr"], b.get("distinct_ips"), b.get("events", "")] for b in v6],
            "IPv6 destinations grouped by /64",
        )
    more = int(dest.get("blocks_total", 0)) - len(dest.get("blocks", []))
    if more > 0:
        maps += f"<p class='muted'>{more} more blocks not drawn.</p>"
    ports = ev.get("destination_ports", {})
    sample = ev.get("sample", [])
    cols = list(dict.fromkeys(k for s in sample for k in s))
    link = (
        f'<p><a id="console-link" href="/query?{urlencode({"q": console})}">Open all source events '
        "in the query console</a></p>"
        if console
        else ""
    )
    inside, outside = dest.get("internal", {}), dest.get("external", {})
    return f"""<p>{e(ev.get("event_count"))} events from {e(ev.get("first_seen"))} to
{e(ev.get("last_seen"))}; {e(dest.get("distinct_ips"))} distinct destinations
({e(inside.get("distinct_ips"))} internal, {e(outside.get("distinct_ips"))} external).</p>
<section aria-labelledby="h-map"><h3 id="h-map">Address map</h3>{maps or "<p class='muted'>No destination addresses.</p>"}</section>
<section aria-labelledby="h-time"><h3 id="h-time">Attempts per minute</h3>
<div id="timeline">{timeline_html(alert, crossing)}</div></section>
<section aria-labelledby="h-ports"><h3 id="h-ports">Destination ports ({e(ports.get("distinct"))} distinct)</h3>
{svg.ports(ports.get("top", []), int(ports.get("distinct", 0) or 0))}</section>
<section aria-labelledby="h-sample"><h3 id="h-sample">Sampled source events</h3>
{_table(cols, [[s.get(c) for c in cols] for s in sample], "sampled source events")}{link}</section>"""


def _dt(raw: object) -> datetime | None:
    from reconwatch.plan.values import parse_datetime

    try:
        return parse_datetime(str(raw)) if raw else None
    except ValueError:
        return None


def context_html(ctx: Mapping[str, Any]) -> str:
    parts = []
    activity = ctx.get("activity")
    if activity:
        parts.append(
            _table(
                activity["columns"],
                activity["rows"],
                "network activity of the host around the alert (30 minutes each side)",
            )
        )
    seen = ctx.get("first_seen")
    if seen:
        parts.append(
            _table(
                seen["columns"],
                seen["rows"],
                "executables by when the host first ran them (stored period)",
            )
        )
    related = ctx.get("related", [])
    rows = [
        [
            a.get("@timestamp"),
            a.get("kibana.alert.rule.name"),
            a.get("host.name"),
            a.get("process.executable"),
            a.get("kibana.alert.workflow_status"),
        ]
        for a in related
    ]
    links = "".join(
        f'<li><a href="/alerts/{e(a.get("kibana.alert.uuid"))}">{e(a.get("@timestamp"))} '
        f"{e(a.get('kibana.alert.rule.name'))} ({e(a.get('process.executable'))}, "
        f"{e(a.get('kibana.alert.workflow_status'))})</a></li>"
        for a in related
    )
    parts.append(
        "<h4>Other alerts for this host or executable</h4>"
        + (f"<ul>{links}</ul>" if rows else "<p class='muted'>none</p>")
    )
    return "".join(parts)


def guide_html(note: str, state: Mapping[int, Mapping[str, Any]], alert_id: str) -> str:
    if not note.strip():
        return "<p class='muted'>The rule has no investigation guide.</p>"
    guide = markdown.render(note)
    html = guide.html
    for step, info in state.items():
        if info.get("done"):
            html = html.replace(
                f'data-step="{step}" id="step-{step}">',
                f'data-step="{step}" id="step-{step}" checked '
                f'title="ticked by {e(info.get("by"))} at {e(info.get("at"))}">',
            )
    # Only the guide's steps count (a tick stored under an older numbering of the guide is not).
    done = sum(1 for step, i in state.items() if i.get("done") and step < len(guide.steps))
    return (
        f'<p class="progress" id="guide-progress">{done} of {len(guide.steps)} steps done</p>'
        f'<div class="guide" data-alert="{e(alert_id)}">{html}</div>'
    )


def exception_form(alert: Mapping[str, Any], shared: Sequence[Mapping[str, Any]] = ()) -> str:
    """Kibana's "Add rule exception" form, pre-filled from the alert; `shared`: the detection
    lists it can go on instead of the rule's own."""
    options = "".join(
        f'<option value="{e(x["list_id"])}">{e(x["name"])}</option>'
        for x in shared
        if x.get("type") == "detection"
    )
    rows = []
    for i, field in enumerate(("process.executable", "agent.id")):
        value = alert.get(field)
        rows.append(
            f"""<fieldset class="entry"><legend>Condition {i + 1}</legend>
<label>Field <input name="field" id="ex-field-{i}" value="{e(field)}"></label>
<label>Operator <select name="op" id="ex-op-{i}"><option value="is">is</option>
<option value="is not">is not</option><option value="matches">matches</option></select></label>
<label>Value <input name="value" id="ex-value-{i}" value="{e(value)}"></label>
<label><input type="checkbox" name="use" id="ex-use-{i}" checked> use this condition</label>
</fieldset>"""
        )
    return f"""<form id="exception-form" aria-label="Add rule exception">
<label>Name <input id="ex-name" name="name" value="{e("Exception for " + str(alert.get("process.executable", "")))}"></label>
{"".join(rows)}
<label>Add to <select id="ex-list" name="list_id"><option value="">this rule's exceptions</option>
{options}</select></label>
<label>Comment <input id="ex-comment" name="comment"></label>
<label>Expires <input id="ex-expire" name="expire_time" placeholder="ISO-8601, empty: never"></label>
<label><input type="checkbox" id="ex-close-alert" name="close_alert" checked> Close this alert</label>
<label><input type="checkbox" id="ex-close-matching" name="close_matching" checked> Close all
alerts that match this exception and were generated by this rule</label>
<button type="submit">Add rule exception</button>
<p id="ex-result" role="status"></p></form>"""


def alert_page(
    alert: Mapping[str, Any],
    note: str,
    false_positives: Sequence[str],
    guide_state: Mapping[int, Mapping[str, Any]],
    crossing: Crossing,
    console: str | None,
    ctx: Mapping[str, Any],
    *,
    shared: Sequence[Mapping[str, Any]] = (),
    state: str = "",
) -> str:
    aid = str(alert.get("kibana.alert.uuid"))
    status = alert.get("kibana.alert.workflow_status", "open")
    by = alert.get("kibana.alert.workflow_user")
    when = alert.get("kibana.alert.workflow_status_updated_at")
    status_text = f"{e(status)}" + (f" (by {e(by)} at {e(when)})" if by else "")
    advice = list(false_positives) or list(markdown.section_items(note, "false positive"))
    fps = (
        "<ul>" + "".join(f"<li>{markdown.inline(fp)}</li>" for fp in advice) + "</ul>"
        if advice
        else "<p class='muted'>The rule gives no false-positive advice.</p>"
    )
    summary = {
        "Reason": alert.get("kibana.alert.reason"),
        "Severity": alert.get("kibana.alert.severity"),
        "Risk score": alert.get("kibana.alert.risk_score"),
        "Rule": alert.get("kibana.alert.rule.name"),
        "Run window": f"{alert.get('reconwatch.run.from')} to {alert.get('reconwatch.run.to')}",
        "Run at": alert.get("reconwatch.run.at"),
        "Alert id": aid,
    }
    return page(
        f"Alert {aid[:12]}",
        f"""<p><a href="/">&larr; Alerts</a></p>
<h1>{e(alert.get("kibana.alert.rule.name"))}</h1>
<p>Status: <strong id="status">{status_text}</strong></p>
<div class="actions" role="group" aria-label="Alert actions" data-alert="{e(aid)}" data-state="{e(state)}">
<button type="button" data-status="acknowledged">Acknowledge</button>
<button type="button" data-status="closed">Close</button>
<button type="button" data-status="open">Reopen</button>
<a href="/alerts/{e(aid)}/report.md">Export Markdown</a>
<a href="/alerts/{e(aid)}/report.html">Export HTML</a></div>
<div class="cols"><section aria-labelledby="h-sum"><h2 id="h-sum">Summary</h2>
<table><tbody>{_kv(summary)}</tbody></table>
<h3>MITRE ATT&amp;CK</h3>{_mitre(alert.get("kibana.alert.rule.threat"))}
<h3>Result columns</h3><table><tbody>{_kv(result_columns(alert))}</tbody></table></section>
<section aria-labelledby="h-ev" class="wide"><h2 id="h-ev">Evidence</h2>
{evidence_html(alert, crossing, console)}</section></div>
<div class="cols"><section aria-labelledby="h-guide"><h2 id="h-guide">Investigation guide</h2>
{guide_html(note, guide_state, aid)}</section>
<aside aria-labelledby="h-fp"><h2 id="h-fp">False positives</h2>{fps}
<h2 id="h-ex">Add rule exception</h2>{exception_form(alert, shared)}</aside></div>
<section aria-labelledby="h-ctx"><h2 id="h-ctx">Host context: {e(ctx.get("host"))}</h2>{context_html(ctx)}</section>""",
        "/",
    )


def report_markdown(alert: Mapping[str, Any], crossing: Crossing, console: str | None) -> str:
    """The alert as a Markdown report: summary, result columns, evidence, the console query."""
    ev = (
        alert.get("reconwatch.evidence")
        if isinstance(alert.get("reconwatch.evidence"), dict)
        else {}
    )
    assert isinstance(ev, dict)
    lines = [
        f"# {alert.get('kibana.alert.rule.name')}",
        "",
        f"- Alert: `{alert.get('kibana.alert.uuid')}`",
        f"- Reason: {alert.get('kibana.alert.reason')}",
        f"- Severity: {alert.get('kibana.alert.severity')} (risk {alert.get('kibana.alert.risk_score')})",
        f"- Status: {alert.get('kibana.alert.workflow_status')}",
        f"- Run window: {alert.get('reconwatch.run.from')} to {alert.get('reconwatch.run.to')}",
        f"- Condition first met: {crossing_text(crossing)}",
        "",
        "## Result columns",
        "",
        "| field | value |",
        "|---|---|",
        *(f"| {k} | {_md_cell(v)} |" for k, v in result_columns(alert).items()),
        "",
        "## Evidence",
        "",
        f"- Events: {ev.get('event_count')} from {ev.get('first_seen')} to {ev.get('last_seen')}",
    ]
    dest = ev.get("destination", {}) if isinstance(ev.get("destination"), dict) else {}
    for block in dest.get("blocks", []):
        lines.append(f"- Block {block['cidr']}: {block.get('distinct_ips')} addresses")
    ports = ev.get("destination_ports", {}) if isinstance(ev.get("destination_ports"), dict) else {}
    top = ", ".join(
        f"{p.get('port')} ({p['events']})" if "events" in p else str(p.get("port"))
        for p in ports.get("top", [])
    )
    lines.append(f"- Ports: {ports.get('distinct')} distinct; top {top}")
    if console:
        lines += ["", "## Source events (ES|QL)", "", "```esql", console, "```"]
    return "\n".join(lines) + "\n"


def _md_cell(value: object) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def report_html(alert: Mapping[str, Any], crossing: Crossing, console: str | None) -> str:
    body = markdown.render(report_markdown(alert, crossing, console), checklist=False).html
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'><title>"
        f"{e(alert.get('kibana.alert.rule.name'))}</title></head><body>{body}"
        f"<h2>Evidence pictures</h2>{evidence_html(alert, crossing, None)}</body></html>"
    )


# -- rules, console, exceptions --------------------------------------------------------------------


def rules_page(
    rules: Sequence[Mapping[str, Any]],
    failures: Sequence[str],
    runs: Mapping[str, Sequence[Mapping[str, Any]]],
) -> str:
    rows = []
    for r in rules:
        rid = str(r["rule_id"])
        last = r.get("last_run") or {}
        history = "".join(
            f"<tr><td>{e(x['run_at'])}</td><td>{e(x['execution_type'])}</td>"
            f"<td>{e(x['start'])} to {e(x['end'])}</td><td>{e(x['alerts'])}</td>"
            f"<td>{e(x.get('duration_ms'))}</td><td>{e(x['gap_ms'] or '')}</td>"
            f"<td>{e(x.get('error') or '')}</td></tr>"
            for x in runs.get(rid, [])
        )
        rows.append(
            f"""<section class="rule" aria-labelledby="r-{e(rid)}"><h2 id="r-{e(rid)}">{e(r["name"])}</h2>
<p><code>{e(rid)}</code> from {e(r["source"])}; every {e(r["interval"])} over {e(r["from"])} to
{e(r["to"])}; next run {e(r["next_run"])}; {e(r["gaps"])} runs with a gap; last run
{e(last.get("run_at", "never"))}.</p>
<div role="group" aria-label="Settings of {e(r["name"])}" data-rule="{e(rid)}">
<label><input type="checkbox" data-setting="enabled"{" checked" if r.get("enabled") else ""}> Enabled</label>
<label><input type="checkbox" data-setting="realtime"{" checked" if r.get("realtime") else ""}> Real time</label>
</div>
<form class="run-now" data-rule="{e(rid)}" aria-label="Run {e(r["name"])} now over a range">
<label>Start <input name="start" id="start-{e(rid)}" required placeholder="2026-03-01T00:00:00Z"></label>
<label>End <input name="end" id="end-{e(rid)}" required placeholder="2026-03-01T03:00:00Z"></label>
<button type="submit">Run now</button> <span role="status" class="run-result"></span></form>
<details><summary>Last runs</summary><table><caption>runs of {e(r["name"])}, newest first</caption>
<thead><tr><th scope="col">run at</th><th scope="col">type</th><th scope="col">window</th>
<th scope="col">alerts</th><th scope="col">ms</th><th scope="col">gap ms</th><th scope="col">error</th></tr></thead>
<tbody>{history}</tbody></table></details></section>"""
        )
    fails = "".join(f"<li>{e(f)}</li>" for f in failures)
    return page(
        "Rules",
        f"<h1>Rules</h1>{''.join(rows)}"
        + (f"<h2>Rule files not loaded</h2><ul class='error'>{fails}</ul>" if fails else ""),
        "/rules",
    )


def console_page(
    query: str,
    result: Mapping[str, Any] | None,
    error: str,
    caret: str,
    warnings: Sequence[str] = (),
) -> str:
    out = ""
    if error:
        out = (
            f'<div class="error" role="alert"><p>{e(error)}</p>'
            + (f"<pre class='caret'>{e(caret)}</pre>" if caret else "")
            + "</div>"
        )
    elif result is not None:
        cols = [c["name"] for c in result["columns"]]
        # The engine's warnings (a division by zero, a value that did not convert: null in the
        # table) as Elasticsearch sends them in its Warning header.
        warned = "".join(f"<li>{e(w)}</li>" for w in warnings)
        out = (
            f'<ul class="warnings" role="status" aria-label="Query warnings">{warned}</ul>'
            if warned
            else ""
        ) + _table(cols, result["values"], f"{len(result['values'])} rows")
    return page(
        "Query",
        f"""<h1>Query console</h1>
<form method="get" action="/query"><label for="q">ES|QL query</label>
<textarea id="q" name="q" rows="8" spellcheck="false">{e(query)}</textarea>
<button type="submit">Run</button></form>{out}""",
        "/query",
    )


def exceptions_page(lists: Sequence[Mapping[str, Any]], rules: Sequence[Mapping[str, Any]]) -> str:
    rows = "".join(
        f'<tr><td><a href="/exceptions/{e(x["list_id"])}">{e(x["name"])}</a></td>'
        f"<td><code>{e(x['list_id'])}</code></td><td>{e(x['type'])}</td>"
        f"<td>{e(x['item_count'])}</td><td>{e(x['updated_at'])} by {e(x['updated_by'])}</td></tr>"
        for x in lists
    )
    options = "".join(f'<option value="{e(r["rule_id"])}">{e(r["name"])}</option>' for r in rules)
    return page(
        "Exceptions",
        f"""<h1>Exception lists</h1>
<table><caption>exception lists</caption><thead><tr><th scope="col">name</th><th scope="col">list id</th>
<th scope="col">type</th><th scope="col">items</th><th scope="col">updated</th></tr></thead>
<tbody>{rows or "<tr><td colspan=5 class='muted'>none</td></tr>"}</tbody></table>
<h2>New list</h2><form id="new-list"><label>Name <input name="name" id="nl-name" required></label>
<label>Description <input name="description" id="nl-desc"></label>
<button type="submit">Create list</button> <span role="status"></span></form>
<h2>Import Kibana's exception-list export</h2>
<form id="import-form"><label>NDJSON file <input type="file" id="import-file" accept=".ndjson,.json,application/x-ndjson" required></label>
<label>Apply to rule <select id="import-rule"><option value="">no rule</option>{options}</select></label>
<label><input type="checkbox" id="import-overwrite"> Overwrite existing lists</label>
<button type="submit">Import</button><pre id="import-result" role="status"></pre></form>""",
        "/exceptions",
    )


def exception_list_page(lst: Mapping[str, Any], items: Sequence[Mapping[str, Any]]) -> str:
    blocks = []
    for it in items:
        blocks.append(
            f"""<form class="item" data-list="{e(lst["list_id"])}" data-item="{e(it["item_id"])}"
 aria-label="Exception item {e(it["name"])}"><h3>{e(it["name"])}</h3>
<label>Name <input name="name" id="n-{e(it["item_id"])}" value="{e(it["name"])}"></label>
<label>Entries (JSON) <textarea name="entries" id="en-{e(it["item_id"])}" rows="4">{e(json.dumps(it["entries"], indent=1, ensure_ascii=False))}</textarea></label>
<label>Expires <input name="expire_time" id="ex-{e(it["item_id"])}" value="{e(it.get("expire_time") or "")}" placeholder="ISO-8601, empty: never"></label>
<button type="submit">Save</button> <button type="button" data-delete="1">Delete</button>
<span role="status"></span></form>"""
        )
    return page(
        lst["name"],
        f"""<p><a href="/exceptions">&larr; Exception lists</a></p><h1>{e(lst["name"])}</h1>
<p><code>{e(lst["list_id"])}</code>, {e(lst["type"])}; {e(lst["description"])}</p>
{"".join(blocks) or "<p class='muted'>No items.</p>"}
<h2>New item</h2><form class="item" data-list="{e(lst["list_id"])}" data-item="" aria-label="New exception item">
<label>Name <input name="name" id="new-name" required></label>
<label>Entries (JSON) <textarea name="entries" id="new-entries" rows="4">[{{"field": "process.executable", "type": "match", "operator": "included", "value": ""}}]</textarea></label>
<label>Expires <input name="expire_time" id="new-expire" placeholder="ISO-8601, empty: never"></label>
<button type="submit">Add item</button> <span role="status"></span></form>""",
        "/exceptions",
    )
