"""What the alert page computes beyond the stored evidence: the crossing point, the host's
context from the store, and the console query of the alert's source events."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from reconwatch.engine.evidence import group_keys
from reconwatch.engine.rewrite import is_stats
from reconwatch.errors import ReconwatchError
from reconwatch.esql.parser import parse
from reconwatch.esql.render import render_command
from reconwatch.plan.values import format_datetime, parse_datetime
from reconwatch.rules.model import Rule

if TYPE_CHECKING:
    from reconwatch.service.app import Service


@dataclass(frozen=True, slots=True)
class Crossing:
    """The crossing point (None when not known) and how it was found, or why not."""

    at: datetime | None
    how: str


# Host context reads this long on each side of the alert's evidence.
AROUND = timedelta(minutes=30)
_PLAIN_FIELD = re.compile(r"^[A-Za-z_@][\w.@]*$")


def _time(doc: Mapping[str, Any], key: str) -> datetime | None:
    raw = doc.get(key)
    try:
        return parse_datetime(str(raw)) if raw is not None else None
    except ValueError:
        return None


def _field(name: str) -> str:
    return name if _PLAIN_FIELD.match(name) else "`" + name.replace("`", "``") + "`"


def _literal(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return json.dumps(str(value))


def source_query(rule: Rule, alert: Mapping[str, Any]) -> str | None:
    """The rule's pipeline before STATS with the alert's group values: the ES|QL that lists
    every source event of the alert (None for a rule without STATS)."""
    try:
        query = parse(rule.query)
    except ReconwatchError:
        return None
    commands = list(query.commands)
    at = next((i for i, c in enumerate(commands) if is_stats(c)), None)
    if at is None:
        return None
    lines = [render_command(c) for c in commands[:at]]
    # The run's window right after FROM: later commands may drop the time field.
    start, end = _time(alert, "reconwatch.run.from"), _time(alert, "reconwatch.run.to")
    time_field = rule.timestamp_override or "@timestamp"
    if start is not None and end is not None:
        lines.insert(
            1,
            f'WHERE {_field(time_field)} >= "{format_datetime(start)}" AND '
            f'{_field(time_field)} <= "{format_datetime(end)}"',
        )
    for key in group_keys(query):
        value = alert.get(key)
        if isinstance(value, list):
            value = value[0] if len(value) == 1 else None
        lines.append(
            f"WHERE {_field(key)} IS NULL"
            if value is None
            else f"WHERE {_field(key)} == {_literal(value)}"
        )
    lines.append("LIMIT 1000")
    return "\n| ".join(lines)


def stored_crossing(alert: Mapping[str, Any]) -> Crossing:
    """When the alert's group crossed the rule's threshold, as the alert stores it: the
    evidence's `crossing` (found with the evidence: one pass over the group's events, or the
    rule re-run over prefixes of them by bisection); otherwise why it is not known."""
    evidence = alert.get("reconwatch.evidence")
    found = evidence.get("crossing") if isinstance(evidence, dict) else None
    if isinstance(found, dict):
        at = _time(found, "at")
        if at is not None:
            method = str(found.get("method", ""))
            runs = found.get("runs")
            if isinstance(runs, int):  # bisection: how many times the rule was re-run
                method = f"{method}, {runs} rule runs"
            return Crossing(at, method)
        return Crossing(None, str(found.get("reason") or "not known"))
    if alert.get("reconwatch.detection.path") == "stream":
        # Found right after a real-time alert is stored; if that failed (the errors in health),
        # the next scheduled run's evidence brings it. The stream's trigger time is no stand-in:
        # it is the batch's, not the crossing event's.
        return Crossing(None, "a real-time alert without it yet: the next scheduled run finds it")
    return Crossing(None, "the alert was stored without it")


def host_context(service: Service, alert: Mapping[str, Any]) -> dict[str, Any]:
    """The host's other network activity around the alert, executables first seen on the host
    in the stored (retention) period, other alerts of the same host or executable."""
    host = alert.get("host.name")
    executable = alert.get("process.executable")
    evidence = alert.get("reconwatch.evidence")
    first = _time(evidence, "first_seen") if isinstance(evidence, dict) else None
    last = _time(evidence, "last_seen") if isinstance(evidence, dict) else None
    out: dict[str, Any] = {"host": host, "activity": None, "first_seen": None}
    alert_id = str(alert.get("kibana.alert.uuid"))
    out["related"] = service.store.related_alerts(
        alert_id,
        None if host is None else str(host),
        None if executable is None else str(executable),
    )
    if not isinstance(host, str):
        return out
    if first is not None and last is not None:
        rows = service.store.host_activity(host, first - AROUND, last + AROUND)
        out["activity"] = {
            "columns": ["process.executable", "event.action", "events", "destinations"],
            "rows": [list(r) for r in rows],
        }
    seen = service.store.first_seen(host)
    out["first_seen"] = {
        "columns": ["process.executable", "first seen", "events"],
        "rows": [[exe, format_datetime(t), n] for exe, t, n in seen],
    }
    return out
