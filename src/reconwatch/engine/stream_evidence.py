"""A stream alert's evidence: its group's window state, and its sampled events' lines in files."""

from __future__ import annotations

import socket
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path

from reconwatch.backends.stream.executor import StreamExecutor, StreamMatch
from reconwatch.backends.stream.state import Group, LastSeen
from reconwatch.ecs.schema import ECS_FIELDS
from reconwatch.engine.evidence import (
    MAX_PORTS,
    completed_from_line,
    destinations,
    evenly,
    per_minute,
    sample_event,
    summarize,
)
from reconwatch.ingest.locate import Wanted, locate
from reconwatch.plan import nodes as p
from reconwatch.plan.values import datetime_from_millis, format_datetime
from reconwatch.types import DataType as T

_V4_MAPPED = b"\x00" * 10 + b"\xff\xff"
_DISTINCT = ("count_distinct", "values", "min", "max")


def stream_evidence(
    executor: StreamExecutor, match: StreamMatch, files: Sequence[Path] = ()
) -> dict[str, object]:
    """Bounded evidence like `detect`'s, from what the executor holds for the group when the
    alert is written (the end of the micro-batch it fired in)."""
    aggregate = executor.split.aggregate
    if aggregate is None:
        return summarize([dict(match.row)], method="the alert's own event")
    group = executor.state.groups.get(match.key)
    if group is None:
        return {"available": False, "reason": "the group left the window before the alert"}
    ip_column, ips = _distinct_ips(group)
    ports = _distinct(group, "destination.port")
    keys = _key_fields(aggregate, match.key, executor)
    # The sample spreads over the wider of the two: addresses for a sweep, ports for a port scan.
    spread = ip_column
    if ports is not None and len(ports.last) > len(ips or ()):
        spread = "destination.port"
    sample = _sample(group, spread, keys, executor, files)
    times = group.rows.times
    out: dict[str, object] = {
        "available": True,
        "method": "the stream's window state of the group"
        + (" and the sampled events' lines" if any("log.offset" in s for s in sample) else ""),
        "event_count": group.rows.n,
        "first_seen": format_datetime(datetime_from_millis(times[0])) if times else None,
        "last_seen": format_datetime(datetime_from_millis(times[-1])) if times else None,
    }
    if ips is not None:
        # Distinct addresses only: the state keeps when each was last seen, not how often.
        out["destination"] = destinations(Counter(ips), counted=False)
    if ports is not None:
        seen = sorted(p for p in ports.last if isinstance(p, int))
        out["destination_ports"] = {
            "distinct": len(ports.last),
            "top": [{"port": p} for p in seen[:MAX_PORTS]],  # the lowest: no counts kept
        }
    out["attempts_per_minute"] = per_minute(_minutes(group))
    out["sample"] = [sample_event(e) for e in sample]
    return out


def _distinct_ips(group: Group) -> tuple[str | None, list[str] | None]:
    """The addresses of the group's distinct aggregate over an IP column (destination.ip first)."""
    found = [
        a
        for a in group.aggs
        if a.spec.fn in _DISTINCT and a.spec.type is T.IP and isinstance(a.state, LastSeen)
    ]
    found.sort(key=lambda a: a.spec.column != "destination.ip")
    if not found:
        return None, None
    state = found[0].state
    assert isinstance(state, LastSeen)
    return found[0].spec.column, [_ip_text(k, state) for k in state.last]


def _distinct(group: Group, column: str) -> LastSeen | None:
    """The last-seen map of the group's distinct aggregate over `column`."""
    for agg in group.aggs:
        state = agg.state
        if agg.spec.fn in _DISTINCT and agg.spec.column == column and isinstance(state, LastSeen):
            return state
    return None


def _ip_text(key: object, state: LastSeen) -> str:
    if key in state.values:
        return str(state.values[key])
    if isinstance(key, bytes) and len(key) == 16:
        if key.startswith(_V4_MAPPED):
            return socket.inet_ntop(socket.AF_INET, key[12:])
        return socket.inet_ntop(socket.AF_INET6, key)
    return str(key)


def _key_fields(
    aggregate: p.Aggregate, key: tuple[object, ...], executor: StreamExecutor
) -> dict[str, object]:
    """BY keys that are source fields read as they are: they identify the group's events."""
    source = {c.name for c in executor.split.source.fields}
    out: dict[str, object] = {}
    for (name, expr), value in zip(aggregate.groups, key, strict=False):
        if isinstance(expr, p.Ref) and expr.name in source and value is not None:
            out[expr.name if expr.name == name else name] = value
    return out


def _minutes(group: Group) -> Counter[datetime]:
    minutes: Counter[int] = Counter()
    for ms, n in zip(group.rows.times, group.rows.counts, strict=True):
        minutes[ms - ms % 60_000] += n
    return Counter({datetime_from_millis(m): n for m, n in minutes.items()})


def _sample(
    group: Group,
    column: str | None,
    keys: Mapping[str, object],
    executor: StreamExecutor,
    files: Sequence[Path],
) -> list[dict[str, object]]:
    """Up to SAMPLE_SIZE distinct values of `column` spread over their last-seen times, as events
    (time, value, keys), completed from their lines when the input files hold them."""
    state = _distinct(group, column) if column is not None else None
    if column is None or state is None:
        return []
    seen = evenly(
        sorted(
            (ms, _ip_text(k, state) if isinstance(k, bytes) else k) for k, ms in state.last.items()
        )
    )
    when = executor.window.time_fields[0]  # the event time the state keeps
    events: list[dict[str, object]] = [
        {when: datetime_from_millis(ms), column: value, **keys} for ms, value in seen
    ]
    if not files:
        return events
    types = {**ECS_FIELDS, **{c.name: c.type for c in executor.split.source.fields}}
    wanted = [
        Wanted(
            e[when],  # type: ignore[arg-type]
            {k: v for k, v in e.items() if k != when},
            {k: types.get(k, T.KEYWORD) for k in e},
            when,
        )
        for e in events
    ]
    lines = locate(files, wanted)
    return [
        e if f is None else completed_from_line(e, f, types)
        for e, f in zip(events, lines, strict=True)
    ]
