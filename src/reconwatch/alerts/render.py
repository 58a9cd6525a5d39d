"""Alert renderers: NDJSON, JSON, a terminal table, and a readable report with the rule's guide."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from rich import box
from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.markdown import Markdown
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from reconwatch.ecs.network import is_internal
from reconwatch.plan.values import parse_datetime
from reconwatch.rules.model import Rule

SEVERITY_STYLE = {
    "low": "bold blue",
    "medium": "bold yellow",
    "high": "bold red",
    "critical": "bold white on red",
}
# Columns shown elsewhere in the report (identity, run, evidence), not among the query's results.
_NOT_RESULTS = ("kibana.", "reconwatch.", "event.kind", "@timestamp", "_id", "_index", "_version")
# Below this width the evidence and the investigation guide are stacked instead of side by side.
SIDE_BY_SIDE_WIDTH = 170
MINUTES_SHOWN = 12
BAR_WIDTH = 24


def to_ndjson(alerts: Sequence[Mapping[str, object]]) -> str:
    return "".join(json.dumps(a, ensure_ascii=False, default=str) + "\n" for a in alerts)


def to_json(alerts: Sequence[Mapping[str, object]]) -> str:
    return json.dumps(list(alerts), ensure_ascii=False, indent=2, default=str) + "\n"


# -- small helpers --------------------------------------------------------------------------------


def _short(value: object, width: int = 60) -> str:
    if isinstance(value, list):
        text = ", ".join(map(str, value[:5])) + (f" (+{len(value) - 5})" if len(value) > 5 else "")
    else:
        text = str(value)
    return text if len(text) <= width else text[: width - 1] + "…"


def _evidence(alert: Mapping[str, object]) -> dict[str, Any]:
    ev = alert.get("reconwatch.evidence")
    return ev if isinstance(ev, dict) else {}


def _time(text: object) -> str:
    """An alert time as `YYYY-MM-DD HH:MM:SSZ` (milliseconds dropped: analysts read seconds)."""
    if not isinstance(text, str) or not text:
        return "?"
    try:
        moment = parse_datetime(text)
    except ValueError:
        return text
    return moment.strftime("%Y-%m-%d %H:%M:%SZ")


def _clock(text: object) -> str:
    return _time(text)[11:] if isinstance(text, str) and len(_time(text)) > 11 else _time(text)


def _duration(first: object, last: object) -> str:
    if not isinstance(first, str) or not isinstance(last, str):
        return ""
    try:
        seconds = int((parse_datetime(last) - parse_datetime(first)).total_seconds())
    except ValueError:
        return ""
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m {seconds % 60:02d}s"
    return f"{seconds // 3600}h {seconds % 3600 // 60:02d}m"


def _severity(alert: Mapping[str, object]) -> Text:
    sev = str(alert.get("kibana.alert.severity", "?"))
    text = Text(sev.upper(), style=SEVERITY_STYLE.get(sev, "bold"))
    text.append(f" (risk {alert.get('kibana.alert.risk_score', '?')})", style="default")
    return text


def _first_of(alert: Mapping[str, object], *keys: str) -> str:
    for key in keys:
        value = alert.get(key)
        if value not in (None, "", []):
            return _short(value, 80)
    return ""


def _host(alert: Mapping[str, object]) -> str:
    return _first_of(alert, "host.name", "Esql.host_name_values", "host.hostname")


def _agent(alert: Mapping[str, object]) -> str:
    return _first_of(alert, "agent.id", "Esql.agent_id_values")


def _process(alert: Mapping[str, object]) -> str:
    return _first_of(alert, "process.executable", "process.name", "Esql.process_executable_values")


def _results(alert: Mapping[str, object]) -> list[tuple[str, object]]:
    return [(k, v) for k, v in alert.items() if not k.startswith(_NOT_RESULTS)]


def _threat(alert: Mapping[str, object]) -> str:
    parts = []
    threats = alert.get("kibana.alert.rule.threat")
    for t in threats if isinstance(threats, list) else []:
        tactic = t.get("tactic", {}) if isinstance(t, dict) else {}
        techniques = t.get("technique", []) if isinstance(t, dict) else []
        names = ", ".join(f"{x.get('id')} {x.get('name')}" for x in techniques)
        parts.append(f"{tactic.get('id')} {tactic.get('name')}" + (f" / {names}" if names else ""))
    return "; ".join(parts)


def suppression_summary(alert: Mapping[str, object]) -> str | None:
    """Alert suppression in words: how many duplicates this alert stands for, and when."""
    count = alert.get("kibana.alert.suppression.docs_count")
    if not isinstance(count, int):
        return None
    start = _time(alert.get("kibana.alert.suppression.start"))
    end = _time(alert.get("kibana.alert.suppression.end"))
    noun = "alert" if count == 1 else "alerts"
    return f"suppressed {count} duplicate {noun} between {start} and {end}"


def suppression_terms(alert: Mapping[str, object]) -> str:
    terms = alert.get("kibana.alert.suppression.terms")
    parts = []
    for term in terms if isinstance(terms, list) else []:
        if isinstance(term, dict):
            value = term.get("value")
            parts.append(f"{term.get('field')}={'null' if value is None else _short(value, 40)}")
    return ", ".join(parts)


# -- the table -----------------------------------------------------------------------------------


def evidence_line(ev: Mapping[str, Any]) -> str:
    """The evidence in one cell: events over time, IPs and where, top blocks and ports, rate."""
    if not ev.get("available"):
        return str(ev.get("reason", "no evidence")) if ev else ""
    dest = ev.get("destination", {})
    blocks = ", ".join(f"{b['cidr']} ({b['distinct_ips']})" for b in dest.get("blocks", [])[:3])
    more = dest.get("blocks_total", 0) - min(3, len(dest.get("blocks", [])))
    ports = ev.get("destination_ports", {})
    top_ports = ", ".join(str(p["port"]) for p in ports.get("top", [])[:5])
    rate = ev.get("attempts_per_minute", {})
    span = _duration(ev.get("first_seen"), ev.get("last_seen"))
    return (
        f"{ev['event_count']} events {_clock(ev.get('first_seen'))}–{_clock(ev.get('last_seen'))}"
        f"{f' ({span})' if span else ''}\n"
        f"{dest.get('distinct_ips', 0)} IPs: {dest.get('internal', {}).get('distinct_ips', 0)} "
        f"internal, {dest.get('external', {}).get('distinct_ips', 0)} external\n"
        f"blocks {blocks}{f' +{more} more' if more > 0 else ''}\n"
        f"{ports.get('distinct', 0)} ports (top {top_ports or '-'})\n"
        f"peak {rate.get('peak', 0)}/min, mean {rate.get('mean', 0)}/min"
    )


def _results_cell(alert: Mapping[str, object], shown: set[str]) -> Text:
    """The query's columns not already shown as host / process / agent, one `name value` a line."""
    text = Text()
    for k, v in _results(alert):
        value = _short(v, 48)
        if value in shown:
            continue
        if text:
            text.append("\n")
        text.append(k.removeprefix("Esql."), style="cyan")
        text.append(f" {value}")
    return text


def table(alerts: Sequence[Mapping[str, object]], first: int = 1) -> Table:
    """One row per alert: which run, which rule and how bad, who did it, what the query counted,
    and what the source events show. Rows are numbered from `first` (a stream prints batches)."""
    t = Table(
        title=f"{len(alerts)} alert(s)",
        show_lines=True,
        box=box.ROUNDED,
        header_style="bold",
        title_style="bold",
    )
    t.add_column("#", justify="right", style="dim")
    t.add_column("run / rule", ratio=3, overflow="fold")
    t.add_column("host / process", ratio=2, overflow="fold")
    t.add_column("query result", ratio=3, overflow="fold")
    t.add_column("evidence (source events)", ratio=3, overflow="fold")
    for i, a in enumerate(alerts, first):
        rule = Text(_time(a.get("reconwatch.run.at")), style="dim")
        rule.append(f" run {a.get('reconwatch.run.index', 0)}\n", style="dim")
        rule.append(str(a.get("kibana.alert.rule.name", "")) + "\n")
        rule.append_text(_severity(a))
        if (suppressed := suppression_summary(a)) is not None:
            rule.append(f"\n{suppressed} (by {suppression_terms(a)})", style="magenta")
        who = Text(_host(a) or "?", style="bold")
        shown = {_host(a), _process(a), _agent(a)}
        if _process(a):
            who.append("\n" + _process(a))
        if user := _first_of(a, "user.name"):
            who.append(f"\nuser {user}")
            shown.add(user)
        t.add_row(str(i), rule, who, _results_cell(a, shown), Text(evidence_line(_evidence(a))))
    return t


# -- the report ----------------------------------------------------------------------------------


def _summary(alert: Mapping[str, object]) -> Table:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column(overflow="fold")
    grid.add_row("severity", _severity(alert))
    if host := _host(alert):
        agent = _agent(alert)
        grid.add_row("host", Text(host + (f"  (agent {agent})" if agent else "")))
    if process := _process(alert):
        grid.add_row("process", Text(process))
    if user := _first_of(alert, "user.name"):
        grid.add_row("user", Text(user))
    if dest := _first_of(alert, "destination.ip"):
        port = _first_of(alert, "destination.port")
        grid.add_row("destination", Text(dest + (f":{port}" if port else "")))
    ev = _evidence(alert)
    if ev.get("available"):
        dest_ev = ev.get("destination", {})
        span = _duration(ev.get("first_seen"), ev.get("last_seen"))
        if ev.get("event_count") == 1:
            activity = f"1 event at {_time(ev.get('first_seen'))}"
        else:
            activity = (
                f"{ev.get('event_count')} connection attempts to {dest_ev.get('distinct_ips', 0)} "
                f"IPs, {_time(ev.get('first_seen'))} → {_time(ev.get('last_seen'))}"
                + (f" ({span})" if span else "")
            )
        grid.add_row("activity", Text(activity))
    grid.add_row(
        "rule run",
        Text(
            f"{_time(alert.get('reconwatch.run.at'))} "
            f"({alert.get('kibana.alert.rule.execution.type', 'scheduled')} run "
            f"{alert.get('reconwatch.run.index', 0)}), window {_time(alert.get('reconwatch.run.from'))}"
            f" → {_time(alert.get('reconwatch.run.to'))}"
        ),
    )
    if threat := _threat(alert):
        grid.add_row("MITRE ATT&CK", Text(threat))
    if (suppressed := suppression_summary(alert)) is not None:
        detail = f"{suppressed}; by {suppression_terms(alert)}"
        detail += f"; last detected {_time(alert.get('kibana.alert.last_detected'))}"
        grid.add_row("suppression", Text(detail, style="magenta"))
        grid.add_row("instance id", Text(str(alert.get("kibana.alert.instance.id")), style="dim"))
    grid.add_row("reason", Text(str(alert.get("kibana.alert.reason", ""))))
    grid.add_row("rule", Text(f"{alert.get('reconwatch.rule.source', '')}", style="dim"))
    grid.add_row("alert id", Text(str(alert.get("kibana.alert.uuid", "")), style="dim"))
    return grid


def _results_table(alert: Mapping[str, object]) -> Table:
    t = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    t.add_column("column", style="cyan", no_wrap=True)
    t.add_column("value", overflow="fold")
    for k, v in _results(alert):
        t.add_row(k, Text(_short(v, 200)))
    return t


def _blocks_table(dest: Mapping[str, Any]) -> Table:
    t = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, title_justify="left")
    t.add_column("destination block")
    t.add_column("IPs", justify="right")
    t.add_column("events", justify="right")
    t.add_column("where")
    for b in dest.get("blocks", []):
        network = str(b["cidr"]).split("/", 1)[0]
        where = "internal" if is_internal(network) else "external"
        t.add_row(
            b["cidr"],
            str(b["distinct_ips"]),
            str(b["events"]),
            Text(where, style="green" if where == "internal" else "red"),
        )
    shown = len(dest.get("blocks", []))
    if dest.get("blocks_total", 0) > shown:
        t.add_row(Text(f"… {dest['blocks_total'] - shown} more blocks", style="dim"), "", "", "")
    return t


def _ports_table(ports: Mapping[str, Any]) -> Table:
    t = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    t.add_column("port", justify="right")
    t.add_column("events", justify="right")
    for p in ports.get("top", []):
        t.add_row(str(p["port"]), str(p["events"]))
    return t


def _minutes_table(rate: Mapping[str, Any]) -> Table:
    rows = rate.get("by_minute", [])
    days = {_time(r["minute"])[:10] for r in rows}
    t = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    t.add_column("minute" if len(days) > 1 else f"{next(iter(days), '')} UTC", no_wrap=True)
    t.add_column("attempts", justify="right")
    t.add_column("", no_wrap=True)
    peak = max((r["attempts"] for r in rows), default=1) or 1
    for r in rows[:MINUTES_SHOWN]:
        width = max(1, round(BAR_WIDTH * r["attempts"] / peak))
        shown = _time(r["minute"])
        t.add_row(
            shown[:-4] + "Z" if len(days) > 1 else shown[11:16],
            str(r["attempts"]),
            Text("█" * width, "magenta"),
        )
    if len(rows) > MINUTES_SHOWN:
        t.add_row(Text(f"… {len(rows) - MINUTES_SHOWN} more minutes", style="dim"), "", "")
    return t


# file and offset: where the event's line is (log.file.path, log.offset in bytes).
_SAMPLE_COLUMNS = (
    "time",
    "host",
    "process",
    "pid",
    "user",
    "destination",
    "action",
    "file",
    "offset",
)


def _sample_cells(s: Mapping[str, Any]) -> list[str]:
    return [
        _time(s.get("@timestamp")),
        str(s.get("host.name", "")),
        str(s.get("process.executable", s.get("process.name", ""))),
        str(s.get("process.pid", "")),
        str(s.get("user.name", "")),
        _endpoint(s),
        str(s.get("event.action", "")),
        str(s.get("log.file.path", "")),
        str(s.get("log.offset", "")),
    ]


def _endpoint(s: Mapping[str, Any]) -> str:
    dest = str(s.get("destination.ip", ""))
    if ":" in dest:
        dest = f"[{dest}]"
    if s.get("destination.port") is not None:
        dest += f":{s['destination.port']}"
    if s.get("network.transport"):
        dest += f"/{s['network.transport']}"
    return dest


def _sample_table(sample: Sequence[Mapping[str, Any]]) -> RenderableType:
    """The sampled events. What every sampled event shares (host, process, user, action) is said
    once above the table; columns left empty are left out."""
    cells = [_sample_cells(s) for s in sample]
    if not cells:
        return Text("no events", style="dim")
    if len(cells) == 1:
        one = Table.grid(padding=(0, 2))
        one.add_column(style="bold", no_wrap=True)
        one.add_column(overflow="fold")
        for name, value in zip(_SAMPLE_COLUMNS, cells[0], strict=True):
            if value:
                one.add_row(name, Text(value))
        return one
    columns = range(len(_SAMPLE_COLUMNS))
    same = [i for i in columns if len(cells) > 1 and len({row[i] for row in cells}) == 1]
    shared = [
        f"{_SAMPLE_COLUMNS[i]} {cells[0][i]}"
        for i in same
        if cells[0][i] and _SAMPLE_COLUMNS[i] not in ("time", "destination")
    ]
    keep = [
        i
        for i in columns
        if any(row[i] for row in cells)
        and (i not in same or _SAMPLE_COLUMNS[i] in ("time", "destination"))
    ]
    t = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    for i in keep:
        name = _SAMPLE_COLUMNS[i]
        t.add_column(name, no_wrap=name in ("time", "destination"), overflow="fold")
    for row in cells:
        t.add_row(*(Text(row[i]) for i in keep))
    if not shared:
        return t
    return Group(Text("all of them: " + ", ".join(shared), style="dim"), t)


class _SideBySide:
    """Two renderables side by side when there is room, one above the other when not."""

    def __init__(self, left: RenderableType, right: RenderableType, min_width: int) -> None:
        self.left, self.right, self.min_width = left, right, min_width

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        if options.max_width >= self.min_width:
            grid = Table.grid(padding=(0, 4))
            grid.add_column()
            grid.add_column()
            grid.add_row(self.left, self.right)
            yield grid
        else:
            yield self.left
            yield Text("")
            yield self.right


def _evidence_view(ev: Mapping[str, Any]) -> RenderableType:
    if not ev:
        return Text("evidence not collected (--no-evidence)", style="dim")
    if not ev.get("available"):
        return Text(str(ev.get("reason", "evidence not available")))
    dest = ev.get("destination", {})
    internal, external = dest.get("internal", {}), dest.get("external", {})
    span = _duration(ev.get("first_seen"), ev.get("last_seen"))
    head = Text()
    head.append(f"{ev['event_count']} source events", style="bold")
    head.append(f", {_time(ev.get('first_seen'))} → {_time(ev.get('last_seen'))}")
    head.append(f" ({span})\n" if span else "\n")
    head.append("destination IPs: ", style="bold")
    head.append(f"{dest.get('distinct_ips', 0)} distinct — ")
    head.append(
        f"internal {internal.get('distinct_ips', 0)} IPs / {internal.get('events', 0)} events",
        style="green",
    )
    head.append(", ")
    head.append(
        f"external {external.get('distinct_ips', 0)} IPs / {external.get('events', 0)} events",
        style="red" if external.get("distinct_ips") else "default",
    )
    ranges = dest.get("exact_ranges", [])
    if ranges:
        more = dest.get("exact_ranges_total", len(ranges)) - len(ranges)
        head.append("\nexact ranges: ", style="bold")
        head.append(
            ", ".join(ranges[:8])
            + (f" … +{more + len(ranges[8:])}" if more > 0 or len(ranges) > 8 else "")
        )
    ports = ev.get("destination_ports", {})
    rate = ev.get("attempts_per_minute", {})
    side = _SideBySide(
        Group(
            Text(f"destination ports: {ports.get('distinct', 0)} distinct", style="bold"),
            _ports_table(ports),
        ),
        Group(
            Text(
                f"attempts/minute: peak {rate.get('peak', 0)}, mean {rate.get('mean', 0)}, "
                f"{rate.get('active_minutes', 0)} active",
                style="bold",
            ),
            _minutes_table(rate),
        ),
        min_width=96,
    )
    method = Text(f"found by: {ev.get('method', '')}", style="dim")
    if ev.get("truncated_at"):
        method.append(f" (first {ev['truncated_at']} events)", style="dim")
    return Group(
        head,
        Text(""),
        _blocks_table(dest),
        Text(""),
        side,
        Text(""),
        Text(
            "the event"
            if len(ev.get("sample", [])) == 1
            else f"sample ({len(ev.get('sample', []))} events spread over the activity)",
            style="bold",
        ),
        _sample_table(ev.get("sample", [])),
        method,
    )


class _EvidenceBesideGuide:
    """Evidence and investigation guide side by side on wide terminals, stacked otherwise."""

    def __init__(self, evidence: RenderableType, guide: RenderableType | None) -> None:
        self.evidence = Panel(evidence, title="evidence (source events)", border_style="cyan")
        self.guide = (
            None
            if guide is None
            else Panel(guide, title="investigation guide", border_style="green")
        )

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        if self.guide is None:
            yield self.evidence
        elif options.max_width >= SIDE_BY_SIDE_WIDTH:
            grid = Table.grid(expand=True, padding=(0, 1))
            grid.add_column(ratio=1)
            grid.add_column(ratio=1)
            grid.add_row(self.evidence, self.guide)
            yield grid
        else:
            yield self.evidence
            yield self.guide


def _source_event_id(alert: Mapping[str, object]) -> str:
    """The source event's _id of a non-aggregating alert ('' for an aggregating one)."""
    ancestors = alert.get("kibana.alert.ancestors")
    if isinstance(ancestors, list) and ancestors and isinstance(ancestors[0], dict):
        return str(ancestors[0].get("id") or "")
    return ""


def report(alert: Mapping[str, object], rule: Rule | None) -> RenderableType:
    """One alert as a readable report: who and what, the query's result, the evidence, and the
    rule's investigation guide beside it."""
    sev = str(alert.get("kibana.alert.severity", ""))
    header = Panel(
        _summary(alert),
        title=Text(str(alert.get("kibana.alert.rule.name", "alert")), style="bold"),
        border_style=SEVERITY_STYLE.get(sev, "bold").replace("bold ", "").split(" on ")[-1],
    )
    title = (
        "source event with the query's columns"
        if _source_event_id(alert)
        else "query result (the rule's ES|QL columns)"
    )
    results = Panel(_results_table(alert), title=title)
    guide = Markdown(rule.note) if rule is not None and rule.note.strip() else None
    return Group(header, results, _EvidenceBesideGuide(_evidence_view(_evidence(alert)), guide))


def print_reports(
    console: Console,
    alerts: Sequence[Mapping[str, object]],
    rules: Mapping[str, Rule],
    first: int = 1,
) -> None:
    """A report per alert, numbered from `first`; `no alerts` for none at all."""
    if not alerts and first == 1:
        console.print("no alerts")
    for i, a in enumerate(alerts, first):
        console.rule(f"alert {i}")
        console.print(report(a, rules.get(str(a.get("reconwatch.rule.source")))))


# -- CSV: one row per alert, the table's columns as plain text -------------------------------

CSV_COLUMNS = (
    "kibana.alert.uuid",
    "reconwatch.run.at",
    "kibana.alert.rule.name",
    "kibana.alert.severity",
    "kibana.alert.risk_score",
    "host.name",
    "process.executable",
    "user.name",
    "results",
    "evidence",
    "kibana.alert.reason",
)


def csv_row(alert: Mapping[str, object]) -> list[str]:
    """The CSV_COLUMNS of one alert: identity, who, the query's columns as `name=value; ...`
    and the evidence line (rows keep one shape whatever the rule's columns are)."""
    results = "; ".join(
        f"{k}={json.dumps(v, ensure_ascii=False, default=str) if isinstance(v, list | dict) else v}"
        for k, v in _results(alert)
    )
    cells = {
        "host.name": _host(alert),
        "process.executable": _process(alert),
        "user.name": _first_of(alert, "user.name"),
        "results": results,
        "evidence": evidence_line(_evidence(alert)).replace("\n", "; "),
    }
    return [
        cells[c] if c in cells else ("" if alert.get(c) is None else str(alert.get(c)))
        for c in CSV_COLUMNS
    ]
