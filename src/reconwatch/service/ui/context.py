"""What the alert page computes beyond the stored evidence: the crossing point, the host's
context from the store, and the console query of the alert's source events."""

from __future__ import annotations

import bisect
import json
import re
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from reconwatch.engine.evidence import group_keys
from reconwatch.engine.rewrite import is_stats
from reconwatch.errors import ReconwatchError
from reconwatch.esql import ast
from reconwatch.esql.parser import parse
from reconwatch.esql.render import render_command
from reconwatch.ingest import Dataset
from reconwatch.plan.values import format_datetime, parse_datetime
from reconwatch.query import run_query
from reconwatch.rules.model import Rule
from reconwatch.store.window import time_column

if TYPE_CHECKING:
    from reconwatch.service.app import Service

# Host context reads this long on each side of the alert's evidence.
AROUND = timedelta(minutes=30)
# The crossing point is searched over at most this many events (each step runs the rule).
MAX_CROSSING_EVENTS = 200_000
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


def crossing(service: Service, rule: Rule, alert: Mapping[str, Any]) -> datetime | None:
    """When the rule's condition was first met for the alert's group: the earliest minute
    such that the rule over the window's events up to it finds the group (binary search over
    the minutes with attempts). None when it cannot be found again (exceptions since, data
    gone by retention)."""
    evidence = alert.get("reconwatch.evidence")
    start, end = _time(alert, "reconwatch.run.from"), _time(alert, "reconwatch.run.to")
    run_at = _time(alert, "reconwatch.run.at") or end
    if not isinstance(evidence, dict) or start is None or end is None or run_at is None:
        return None
    minutes = [
        parse_datetime(str(m["minute"]))
        for m in evidence.get("attempts_per_minute", {}).get("by_minute", [])
    ]
    if not minutes:
        return None
    try:
        query = parse(rule.query)
    except ReconwatchError:
        return None
    keys = group_keys(query)
    first_command = query.commands[0]
    patterns = tuple(first_command.sources) if isinstance(first_command, ast.From) else ()
    column = time_column(rule.timestamp_override)
    docs = list(
        service.store.documents(service.store.matching_indices(patterns), start, end, column)
    )
    everything = sorted(
        ((t, d) for d in docs if (t := _time(d[2], "@timestamp")) is not None),
        key=lambda td: td[0],
    )
    # A group's STATS row depends only on the group's events: search those (a key the events
    # do not carry as such, computed by the rule, does not narrow), all of them if that fails.
    mine = [td for td in everything if _in_group(td[1][2], keys, alert)]
    for timed in (mine, everything) if len(mine) < len(everything) else (everything,):
        if len(timed) > MAX_CROSSING_EVENTS:
            return None
        found_at = _first_crossing(rule, alert, keys, minutes, timed, run_at)
        if found_at is not None:
            return found_at
    return None


def _lookup(source: Mapping[str, Any], path: str) -> tuple[bool, object]:
    """(present, value) of a dotted field in a _source shipped nested or dotted."""
    if path in source:
        return True, source[path]
    node: object = source
    for part in path.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return False, None
        node = node[part]
    return True, node


def _in_group(source: Mapping[str, Any], keys: list[str], alert: Mapping[str, Any]) -> bool:
    for key in keys:
        present, value = _lookup(source, key)
        if not present:
            continue
        wanted = alert.get(key)
        values = value if isinstance(value, list) else [value]
        if wanted is not None and wanted not in values:
            return False
    return True


def _first_crossing(
    rule: Rule,
    alert: Mapping[str, Any],
    keys: list[str],
    minutes: list[datetime],
    timed: list[tuple[datetime, tuple[str, str, dict[str, object]]]],
    run_at: datetime,
) -> datetime | None:
    """Binary search for the first event after which the rule finds the alert's group."""

    def found(count: int) -> bool:
        """Whether the rule finds the group in the first `count` events by time."""
        groups: dict[str, tuple[list[str], list[object]]] = {}
        for _, (idx, doc_id, source) in timed[:count]:
            ids, sources = groups.setdefault(idx, ([], []))
            ids.append(doc_id)
            sources.append(source)
        dataset = Dataset.from_stored([(i, a, b) for i, (a, b) in groups.items()])
        try:
            result = run_query(rule.query, dataset, now=run_at)
        except ReconwatchError:
            return False
        return any(all(row.get(k) == alert.get(k) for k in keys) for row in result.as_dicts())

    # First the minute (few runs over whole minutes), then the event within it.
    times = [t for t, _ in timed]
    upto = [bisect.bisect_left(times, m + timedelta(minutes=1)) for m in minutes]
    if not timed or not found(upto[-1]):
        return None
    lo, hi = 0, len(upto) - 1
    while lo < hi:
        mid = (lo + hi) // 2
        if found(upto[mid]):
            hi = mid
        else:
            lo = mid + 1
    first, last = (upto[lo - 1] if lo else 0) + 1, upto[lo]
    while first < last:
        mid = (first + last) // 2
        if found(mid):
            last = mid
        else:
            first = mid + 1
    return times[last - 1]


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
