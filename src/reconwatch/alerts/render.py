"""Alert renderers: NDJSON, JSON, a terminal table, and a readable report with the rule's guide."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.markdown import Markdown
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from reconwatch.rules.model import Rule

_SKIP_IN_TABLE = ("kibana.", "reconwatch.", "event.kind", "@timestamp", "_id", "_index", "_version")


def to_ndjson(alerts: Sequence[Mapping[str, object]]) -> str:
    return "".join(json.dumps(a, ensure_ascii=False, default=str) + "\n" for a in alerts)


def to_json(alerts: Sequence[Mapping[str, object]]) -> str:
    return json.dumps(list(alerts), ensure_ascii=False, indent=2, default=str) + "\n"


def _short(value: object, width: int = 60) -> str:
    if isinstance(value, list):
        text = ", ".join(map(str, value[:5])) + (f" (+{len(value) - 5})" if len(value) > 5 else "")
    else:
        text = str(value)
    return text if len(text) <= width else text[: width - 1] + "…"


def _evidence(alert: Mapping[str, object]) -> dict[str, Any]:
    ev = alert.get("reconwatch.evidence")
    return ev if isinstance(ev, dict) else {}


def evidence_line(ev: Mapping[str, Any]) -> str:
    if not ev.get("available"):
        return str(ev.get("reason", "no evidence")) if ev else ""
    dest = ev.get("destination", {})
    blocks = ", ".join(f"{b['cidr']}({b['distinct_ips']})" for b in dest.get("blocks", [])[:3])
    rate = ev.get("attempts_per_minute", {})
    return (
        f"{ev['event_count']} events {ev.get('first_seen') or '?'} → {ev.get('last_seen') or '?'}; "
        f"{dest.get('distinct_ips', 0)} IPs ({dest.get('internal', {}).get('distinct_ips', 0)} internal); "
        f"{blocks}; peak {rate.get('peak', 0)}/min"
    )


def table(alerts: Sequence[Mapping[str, object]]) -> Table:
    t = Table(title=f"{len(alerts)} alert(s)", show_lines=True, expand=False)
    for col in ("run at", "rule", "sev", "what", "evidence"):
        t.add_column(col, overflow="fold")
    for a in alerts:
        what = "\n".join(
            f"{k} = {_short(v)}" for k, v in a.items() if not k.startswith(_SKIP_IN_TABLE)
        )
        t.add_row(
            str(a.get("reconwatch.run.at", "")),
            str(a.get("kibana.alert.rule.name", "")),
            f"{a.get('kibana.alert.severity')}/{a.get('kibana.alert.risk_score')}",
            what,
            evidence_line(_evidence(a)),
        )
    return t


def report(alert: Mapping[str, object], rule: Rule | None) -> RenderableType:
    """One alert as a readable report: what fired, the evidence, then the investigation guide."""
    parts: list[RenderableType] = []
    head = Text()
    head.append(f"{alert.get('kibana.alert.rule.name')}\n", style="bold")
    head.append(f"{alert.get('kibana.alert.reason')}\n")
    head.append(
        f"severity {alert.get('kibana.alert.severity')}, risk {alert.get('kibana.alert.risk_score')}; "
        f"run at {alert.get('reconwatch.run.at')} over [{alert.get('reconwatch.run.from')}, "
        f"{alert.get('reconwatch.run.to')}]; alert {alert.get('kibana.alert.uuid')}\n"
    )
    parts.append(head)
    fields = Table(show_header=False, box=None)
    for k, v in alert.items():
        if not k.startswith(_SKIP_IN_TABLE):
            fields.add_row(k, _short(v, 100))
    parts.append(Panel(fields, title="query result"))
    parts.append(Panel(_evidence_view(_evidence(alert)), title="evidence (source events)"))
    if rule is not None and rule.note.strip():
        parts.append(Panel(Markdown(rule.note), title="investigation guide"))
    return Group(*parts)


def _evidence_view(ev: Mapping[str, Any]) -> RenderableType:
    if not ev.get("available"):
        return Text(str(ev.get("reason", "evidence not collected")))
    lines = [
        f"{ev['event_count']} source events, {ev.get('first_seen')} → {ev.get('last_seen')}",
        f"found by: {ev.get('method')}",
    ]
    dest = ev.get("destination", {})
    lines.append(
        f"destination IPs: {dest.get('distinct_ips', 0)} distinct; internal "
        f"{dest.get('internal', {}).get('distinct_ips', 0)} / external "
        f"{dest.get('external', {}).get('distinct_ips', 0)}"
    )
    for b in dest.get("blocks", []):
        lines.append(f"  {b['cidr']:<24} {b['distinct_ips']:>5} IPs {b['events']:>7} events")
    if dest.get("blocks_total", 0) > len(dest.get("blocks", [])):
        lines.append(f"  … {dest['blocks_total']} blocks in all")
    ports = ev.get("destination_ports", {})
    top = ", ".join(f"{p['port']}×{p['events']}" for p in ports.get("top", [])[:10])
    lines.append(f"destination ports: {ports.get('distinct', 0)} distinct; top {top}")
    rate = ev.get("attempts_per_minute", {})
    lines.append(
        f"attempts per minute: peak {rate.get('peak', 0)}, mean {rate.get('mean', 0)} over "
        f"{rate.get('active_minutes', 0)} active minutes"
    )
    lines.append("sample:")
    for s in ev.get("sample", [])[:5]:
        lines.append(
            f"  {s.get('@timestamp')} {s.get('host.name', '')} {s.get('process.executable', '')} "
            f"-> {s.get('destination.ip', '')}:{s.get('destination.port', '')}"
        )
    return Text("\n".join(lines))


def print_reports(
    console: Console, alerts: Sequence[Mapping[str, object]], rules: Mapping[str, Rule]
) -> None:
    if not alerts:
        console.print("no alerts")
    for i, a in enumerate(alerts, 1):
        console.rule(f"alert {i} of {len(alerts)}")
        console.print(report(a, rules.get(str(a.get("reconwatch.rule.source")))))
