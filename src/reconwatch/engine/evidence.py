"""The source events behind an alert, found through the engine, and their bounded summary."""

from __future__ import annotations

import ipaddress
import re
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

from reconwatch.alerts.document import plain
from reconwatch.ecs.network import is_internal
from reconwatch.engine import bisection, crossing
from reconwatch.engine.backend import QueryBackend
from reconwatch.engine.rewrite import (
    is_stats,
    literal,
    string,
    with_commands,
    with_filters,
    with_limit,
)
from reconwatch.engine.schedule import RunWindow
from reconwatch.errors import QueryError
from reconwatch.esql import ast
from reconwatch.esql.render import render_command, render_expr
from reconwatch.ingest.locate import Located, Wanted, locate
from reconwatch.plan.nodes import Column
from reconwatch.plan.values import as_list, format_datetime
from reconwatch.rules.model import Rule
from reconwatch.types import DataType as T

EVIDENCE_FIELDS = (
    "@timestamp",
    "event.ingested",
    "_id",
    "_index",
    "event.action",
    "process.executable",
    "process.name",
    "process.pid",
    "host.name",
    "agent.id",
    "user.name",
    "source.ip",
    "source.port",
    "destination.ip",
    "destination.port",
    "network.transport",
    "network.direction",
)
_Item = TypeVar("_Item")
# What every summary but the sample reads. Over plain files the pinned read keeps only these
# and fields of the JSON objects the rule reads anyway: DuckDB's reader pays per object, for
# every event (docs/performance.md); the sample's other fields come from its source lines.
SUMMARY_FIELDS = ("@timestamp", "destination.ip", "destination.port")
# Compared with a candidate source line besides the time (the rest may be computed or absent).
_NOT_IDENTITY = frozenset({"@timestamp", "event.ingested", "_id", "_index"})
# A sampled event's fields, and where its line is when it was read back from a file.
SAMPLE_FIELDS = (*EVIDENCE_FIELDS, "log.file.path", "log.offset")
MAX_EVENTS = 100_000
# ES|QL's own LIMIT cap: a page of alerts' source documents fetched in one query.
MAX_SOURCE_ROWS = 10_000
# The FROM of queries over a pinned result (any name reads it).
PINNED_SOURCE = "pinned"
SAMPLE_SIZE = 5
MAX_BLOCKS = 16
MAX_PORTS = 10
MAX_MINUTES = 120


class EvidenceFinder:
    """Re-runs the rule's pre-STATS pipeline with the alert's group key fixed (aggregating rules),
    or fetches the source document by _id (non-aggregating), and summarises what it finds."""

    def __init__(
        self,
        rule: Rule,
        backend: QueryBackend,
        query: ast.Query,
        fields: Mapping[str, Column],
    ) -> None:
        self.rule = rule
        self.backend = backend
        self.query = query
        self.commands = list(query.commands)
        self.fields = fields
        self.groups = _group_keys(query)
        self.stats_at = next(
            (i for i, c in enumerate(self.commands) if is_stats(c)), len(self.commands)
        )
        self.key_types: dict[str, Column] = {}
        try:
            self.threshold: crossing.Threshold | str = crossing.threshold(query)
        except crossing.Unsupported as exc:
            self.threshold = str(exc)
        self._columns_cache: dict[ast.Query, tuple[Column, ...]] = {}
        # Set by pinned_query: the files to find the sample's lines in, when the pin is thin.
        self.files: list[Path] | None = None

    def _query(self, commands: Sequence[ast.Command]) -> ast.Query:
        return with_commands(self.query, commands)

    def _columns(self, query: ast.Query) -> tuple[Column, ...]:
        if query not in self._columns_cache:
            self._columns_cache[query] = self.backend.columns(query)
        return self._columns_cache[query]

    def source_documents(
        self, ids: Sequence[str], window: RunWindow
    ) -> dict[str, dict[str, object]]:
        """Kibana's fetch_source_documents: the events with these _ids, all their fields (the
        first event of an _id that occurs twice)."""
        listed = ast.In(ast.Field("_id"), tuple(string(i) for i in ids))
        query = self._query([self.commands[0], ast.Where(listed), ast.Limit(MAX_SOURCE_ROWS)])
        try:
            result = self.backend.run(query, now=window.run_at)
        except QueryError:
            return {}
        out: dict[str, dict[str, object]] = {}
        for doc in result.as_dicts():
            key = str(doc.get("_id"))
            if key not in out:
                out[key] = {k: v for k, v in doc.items() if v is not None}
        return out

    def pinned_query(
        self, conditions: list[ast.Expr], groups: ast.Expr | None = None
    ) -> ast.Query | None:
        """The pipeline before STATS with the run's filters, keeping what the rest of the rule
        and the evidence read; None when the rule has no STATS or the query does not analyse.
        `groups` (over that pipeline's rows, as the evidence's key filters are): only the rows
        it keeps, in the same order."""
        if self.stats_at >= len(self.commands):
            return None
        wide = self._pre(conditions)
        narrow = with_filters(self._query(self.commands[: self.stats_at]), conditions)
        try:
            kept = [c.name for c in self._columns(narrow)]
            present = {c.name for c in self._columns(wide)}
        except QueryError:
            return None
        files = self._source_files()
        objects = {_object(n) for n in kept}
        evidence = [f for f in EVIDENCE_FIELDS if f in present]
        cheap = [
            f for f in evidence if files is None or f in SUMMARY_FIELDS or _object(f) in objects
        ]
        self.files = files if len(cheap) < len(evidence) else None
        later = " ".join(render_command(c) for c in self.commands[self.stats_at :])
        # A METADATA column makes the read a Python one (docs/performance.md): pinned only when
        # the rest of the rule reads it, so the sample goes without _id and _index otherwise.
        names = [
            n
            for n in dict.fromkeys([*kept, *cheap])
            if not n.startswith("_") or re.search(rf"(?<![\w.@`]){re.escape(n)}(?![\w.`])", later)
        ]
        if not names:
            return None
        picked = [ast.Where(groups)] if groups is not None else []
        return with_commands(wide, [*wide.commands, *picked, ast.Keep(tuple(names))])

    def _source_files(self) -> list[Path] | None:
        finder = getattr(self.backend, "source_files", None)
        if finder is None:
            return None
        try:
            files: list[Path] | None = finder(self._query(self.commands[:1]))
        except QueryError:
            return None
        return files

    def after_pin(self) -> ast.Query:
        """The rule's query from STATS on, over the pinned result."""
        return self._query([ast.From((PINNED_SOURCE,)), *self.commands[self.stats_at :]])

    def _pre(self, conditions: list[ast.Expr]) -> ast.Query:
        pre = [c for c in self.commands[: self.stats_at] if not isinstance(c, ast.Keep | ast.Drop)]
        return with_filters(self._query(pre), conditions)

    def collect(
        self,
        row: Mapping[str, object],
        conditions: list[ast.Expr],
        window: RunWindow,
        aggregating: bool,
        pinned: QueryBackend | None = None,
    ) -> dict[str, object]:
        if not aggregating:
            return summarize([dict(row)], method="the alert's own event")
        filters = self.key_filters(row)
        if filters is None:
            return {"available": False, "reason": "the query's output does not carry its BY keys"}
        backend = self.backend
        if pinned is not None:
            # The pinned rows already passed the run's filters and the pipeline before STATS.
            backend = pinned
            base = with_filters(self._query([ast.From((PINNED_SOURCE,))]), filters)
        else:
            base = with_filters(self._pre([]), [*conditions, *filters])
        try:
            present = {c.name for c in backend.columns(base)}
            counted = (
                self.threshold.columns if isinstance(self.threshold, crossing.Threshold) else []
            )
            keep = tuple(f for f in dict.fromkeys([*EVIDENCE_FIELDS, *counted]) if f in present)
            query = with_commands(base, [*base.commands, ast.Keep(keep)]) if keep else base
            result = backend.run(with_limit(query, MAX_EVENTS), now=window.run_at)
        except QueryError as exc:
            return {"available": False, "reason": f"evidence query failed: {exc.one_line()}"}
        method = "the rule's pipeline before STATS, re-run with " + " and ".join(
            render_expr(f) for f in filters
        )
        complete = self._from_source_lines if pinned is not None and self.files else None
        rows = result.as_dicts()
        out = summarize(rows, method=method, complete=complete)
        if len(result.rows) >= MAX_EVENTS:
            out["truncated_at"] = MAX_EVENTS
        truncated = len(result.rows) >= MAX_EVENTS
        if truncated:
            out["crossing"] = {"at": None, "reason": f"the group has over {MAX_EVENTS} events"}
        elif not rows:
            out["crossing"] = {"at": None, "reason": "none of the group's events were found again"}
        elif isinstance(self.threshold, str):
            out["crossing"] = self._bisected(row, rows, conditions, filters, window, pinned)
        else:
            out["crossing"] = self._crossing(rows)
        return out

    def crossing_point(
        self, row: Mapping[str, object], conditions: list[ast.Expr], window: RunWindow
    ) -> dict[str, object] | None:
        """Only the crossing point of an aggregating alert's group (what `collect` puts under
        `crossing`), reading no more than @timestamp and the counted columns of the group's
        events: a real-time alert waits for it before the sinks take it. None when the rule
        has no one-pass count (`collect` bisects) or the alert carries no BY keys."""
        filters = self.key_filters(row)
        if filters is None or not isinstance(self.threshold, crossing.Threshold):
            return None
        base = with_filters(self._pre([]), [*conditions, *filters])
        try:
            present = {c.name for c in self.backend.columns(base)}
            keep = tuple(f for f in ("@timestamp", *self.threshold.columns) if f in present)
            query = with_commands(base, [*base.commands, ast.Keep(keep)])
            result = self.backend.run(with_limit(query, MAX_EVENTS), now=window.run_at)
        except QueryError as exc:
            return {"at": None, "reason": f"evidence query failed: {exc.one_line()}"}
        rows = result.as_dicts()
        if len(rows) >= MAX_EVENTS:
            return {"at": None, "reason": f"the group has over {MAX_EVENTS} events"}
        if not rows:
            return {"at": None, "reason": "none of the group's events were found again"}
        return self._crossing(rows)

    def _bisected(
        self,
        row: Mapping[str, object],
        rows: list[dict[str, object]],
        conditions: list[ast.Expr],
        filters: list[ast.Expr],
        window: RunWindow,
        pinned: QueryBackend | None,
    ) -> dict[str, object]:
        """The crossing of a rule whose shape has no one-pass count: the first event time
        whose prefix of the group's events, run through the whole rule, yields the group."""
        times = [t for r in rows if isinstance(t := r.get("@timestamp"), datetime)]
        if len(times) < len(rows):
            return {"at": None, "reason": f"{self.threshold}; some events have no @timestamp"}
        backend = pinned if pinned is not None else self.backend
        # As JSON: a stored (real-time) alert has its values so, a run's row as results.
        keys = {k: plain(v) for k, v in row.items() if k in _last_group_keys(self.query)}

        def holds(at: datetime) -> bool:
            until = ast.Binary(
                "<", ast.Field("@timestamp"), string(format_datetime(bisection.upper_bound(at)))
            )
            if pinned is not None:
                query = with_filters(self.after_pin(), [*filters, until])
            else:
                source = with_filters(self._query(self.commands[: self.stats_at]), conditions)
                source = with_filters(source, [until])
                rest = [ast.Where(f) for f in filters]
                query = self._query([*source.commands, *rest, *self.commands[self.stats_at :]])
            found = backend.run(query, now=window.run_at).as_dicts()
            return any(all(plain(r.get(k)) == v for k, v in keys.items()) for r in found)

        try:
            at, runs = bisection.first_holding(bisection.distinct_times(times), holds)
        except bisection.NotFound as exc:
            return {"at": None, "reason": f"{self.threshold}; by bisection: {exc}"}
        except QueryError as exc:
            return {"at": None, "reason": f"{self.threshold}; by bisection: {exc.one_line()}"}
        return {"at": format_datetime(at), "method": bisection.METHOD, "runs": runs}

    def _crossing(self, rows: list[dict[str, object]]) -> dict[str, object]:
        """When the group crossed the threshold, from the same rows (one pass, no rule run)."""
        assert isinstance(self.threshold, crossing.Threshold)
        try:
            at = crossing.first_crossing(self.threshold, rows)
        except crossing.Unsupported as exc:
            return {"at": None, "reason": str(exc)}
        if at is None:
            return {
                "at": None,
                "reason": "the group's events never meet the threshold on their own",
            }
        return {"at": format_datetime(at), "method": crossing.METHOD}

    def _from_source_lines(self, events: list[dict[str, object]]) -> list[dict[str, object]]:
        """The sample's events completed from their lines in the files (ingest.locate), with
        the line's place as ECS log.file.path and log.offset; an event not found stays as is."""
        assert self.files is not None
        wanted = [self._wanted(e) for e in events]
        found = iter(locate(self.files, [w for w in wanted if w is not None]))
        out = []
        for event, want in zip(events, wanted, strict=True):
            located = next(found) if want is not None else None
            out.append(
                event if located is None else completed_from_line(event, located, self._types)
            )
        return out

    def _wanted(self, event: Mapping[str, object]) -> Wanted | None:
        time = event.get("@timestamp")
        if not isinstance(time, datetime):
            return None
        identity = {k: v for k, v in event.items() if k not in _NOT_IDENTITY and k in self.fields}
        return Wanted(time, identity, {k: self._types[k] for k in identity})

    @property
    def _types(self) -> dict[str, T]:
        return {name: column.type for name, column in self.fields.items()}

    def key_filters(self, row: Mapping[str, object]) -> list[ast.Expr] | None:
        """The conditions that keep an alert's group's rows of the pipeline before STATS; None
        when the query's output does not carry its BY keys."""
        output = {c.name: c for c in self._columns(self.query)}
        filters: list[ast.Expr] = []
        for name, expr in self.groups:
            column = output.get(name)
            if column is None:
                return None
            value = row.get(name)
            if value is None:
                filters.append(ast.IsNull(expr))
            elif isinstance(value, list):
                # A later STATS gathered the first one's keys (values(host.name) of a campaign):
                # the events of any of them are the evidence.
                items = tuple(literal(v, column.type) for v in value)
                filters.append(ast.In(expr, items))
            else:
                filters.append(ast.Binary("==", expr, literal(value, column.type)))
        return filters


def group_keys(query: ast.Query) -> list[str]:
    """The output names of the rule's grouping keys (the first STATS's BY)."""
    return [name for name, _ in _group_keys(query)]


def _last_group_keys(query: ast.Query) -> set[str]:
    """The output names of the last STATS's BY keys: the alert's group in the rule's result."""
    stats = [c for c in query.commands if is_stats(c)]
    if not stats:
        return set()
    last = stats[-1]
    assert isinstance(last, ast.Stats)
    names = set()
    for assign in last.by:
        if assign.name is not None:
            names.add(assign.name)
        elif isinstance(assign.expr, ast.Field):
            names.add(assign.expr.name)
    return names


def _object(name: str) -> str:
    """The top-level JSON key a field lives under (its own name for a top-level leaf)."""
    return name.split(".", 1)[0]


def _group_keys(query: ast.Query) -> list[tuple[str, ast.Expr]]:
    """(output column name, expression) of the first STATS command's BY keys (INLINE STATS
    keeps every row, so its keys do not group the alerts)."""
    for cmd in query.commands:
        if is_stats(cmd):
            assert isinstance(cmd, ast.Stats)
            keys = []
            for assign in cmd.by:
                name = assign.name
                if name is None:
                    expr = assign.expr
                    text = expr.span.text(query.source) if expr.span.end else ""
                    name = expr.name if isinstance(expr, ast.Field) else text
                keys.append((name, assign.expr))
            return keys
    return []


# ---------------------------------------------------------------------------------------------
# Summaries (pure functions over event rows)


def summarize(
    events: list[dict[str, object]],
    *,
    method: str,
    complete: Callable[[list[dict[str, object]]], list[dict[str, object]]] | None = None,
) -> dict[str, object]:
    """Bounded evidence: count, first/last time, sample, CIDR blocks, internal/external, ports,
    attempts per minute. `complete` fills in the sampled events' other fields."""
    times = sorted(t for e in events if isinstance(t := e.get("@timestamp"), datetime))
    dest_ips = [
        ip for e in events for ip in as_list(e.get("destination.ip")) if isinstance(ip, str)
    ]
    ports = [p for e in events for p in as_list(e.get("destination.port")) if isinstance(p, int)]
    out: dict[str, object] = {
        "available": True,
        "method": method,
        "event_count": len(events),
        "first_seen": format_datetime(times[0]) if times else None,
        "last_seen": format_datetime(times[-1]) if times else None,
        "destination": destinations(Counter(dest_ips)),
        "destination_ports": _ports(ports),
        "attempts_per_minute": per_minute(Counter(_minute(t) for t in times)),
        "sample": [sample_event(e) for e in _completed_sample(_spread(events, times), complete)],
    }
    return out


_NO_TIME = datetime.min.replace(tzinfo=UTC)


def _spread(events: list[dict[str, object]], times: list[datetime]) -> list[dict[str, object]]:
    """Up to SAMPLE_SIZE events spread evenly over the list ordered by their times' text (first
    and last included; an event without a time first)."""
    if times and times[0].astimezone(UTC).year >= 1000:
        # Four-digit years: the text orders as the time to the millisecond, which is compared
        # instead of formatting every event's (ties keep their order either way).
        def key(e: dict[str, object]) -> tuple[int, datetime]:
            t = e.get("@timestamp")
            if not isinstance(t, datetime):
                return (0, _NO_TIME)
            return (1, t - timedelta(microseconds=t.microsecond % 1000))

        return evenly(sorted(events, key=key))

    def text(e: dict[str, object]) -> str:
        t = e.get("@timestamp")
        return format_datetime(t) if isinstance(t, datetime) else ""

    return evenly(sorted(events, key=text))


def evenly(ordered: Sequence[_Item]) -> list[_Item]:
    """Up to SAMPLE_SIZE items spread evenly over an ordered list, first and last included."""
    if len(ordered) <= SAMPLE_SIZE:
        return list(ordered)
    step = (len(ordered) - 1) / (SAMPLE_SIZE - 1)
    return [ordered[round(i * step)] for i in range(SAMPLE_SIZE)]


def completed_from_line(
    event: Mapping[str, object], located: Located, types: Mapping[str, T]
) -> dict[str, object]:
    """A sampled event with the evidence fields its source line adds (those `types` maps), and
    where that line is (log.file.path, log.offset); the event's own values win."""
    extra: dict[str, object] = {}
    for name in EVIDENCE_FIELDS:
        type_ = types.get(name)
        if name not in event and type_ is not None:
            value = located.value(name, type_)
            if value is not None:
                extra[name] = value
    extra["log.file.path"] = str(located.path)
    extra["log.offset"] = located.offset
    return {**extra, **event}


def _completed_sample(
    sample: list[dict[str, object]],
    complete: Callable[[list[dict[str, object]]], list[dict[str, object]]] | None,
) -> list[dict[str, object]]:
    return complete(sample) if complete is not None and sample else sample


def sample_event(event: Mapping[str, object]) -> dict[str, object]:
    return {k: plain(event[k]) for k in SAMPLE_FIELDS if event.get(k) is not None}


def _block(ip: str) -> str:
    addr = ipaddress.ip_address(ip)
    prefix = 24 if addr.version == 4 else 64
    return str(ipaddress.ip_network(f"{ip}/{prefix}", strict=False))


# A canonical dotted-quad IPv4 address (what the engine gives for IPv4): read as an integer here,
# not by ipaddress (a tenth of the cost), for the same blocks, ranges and internal test.
_DOTTED = re.compile(
    r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])(?:\.(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])){3}"
)
# ecs.network's internal IPv4 ranges (private, loopback, link-local) as (first address, prefix).
_INTERNAL_V4 = tuple(
    (int(net.network_address), net.prefixlen)
    for net in map(
        ipaddress.ip_network,
        ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "127.0.0.0/8", "169.254.0.0/16"),
    )
)


def _v4(ip: str) -> int | None:
    """A canonical dotted-quad address as its integer; None for anything else."""
    if _DOTTED.fullmatch(ip) is None:
        return None
    a, b, c, d = ip.split(".")
    return (int(a) << 24) | (int(b) << 16) | (int(c) << 8) | int(d)


def _v4_text(value: int) -> str:
    return f"{value >> 24}.{(value >> 16) & 255}.{(value >> 8) & 255}.{value & 255}"


def _internal_v4(value: int) -> bool:
    return any(value >> (32 - prefix) == first >> (32 - prefix) for first, prefix in _INTERNAL_V4)


def _collapsed_v4(values: list[int]) -> list[str]:
    """ipaddress.collapse_addresses of these single addresses, as text: each run of consecutive
    addresses as the fewest aligned CIDR blocks covering it, in address order."""
    out: list[str] = []
    ordered = sorted(set(values))
    i = 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and ordered[j + 1] == ordered[j] + 1:
            j += 1
        first, last = ordered[i], ordered[j]
        while first <= last:
            size = first & -first if first else 1 << 32
            while size > last - first + 1:
                size >>= 1
            out.append(f"{_v4_text(first)}/{33 - size.bit_length()}")
            first += size
        i = j + 1
    return out


def destinations(events_per_ip: Counter[str], *, counted: bool = True) -> dict[str, object]:
    """Addresses in /24 (/64) blocks, exact collapsed ranges, internal vs external; with
    `counted` false the counts are not events (only distinct addresses are known)."""
    v4 = {ip: value for ip in events_per_ip if (value := _v4(ip)) is not None}
    blocks: dict[str, Counter[str]] = {}
    for ip, n in events_per_ip.items():
        value = v4.get(ip)
        block = _block(ip) if value is None else f"{_v4_text(value >> 8 << 8)}/24"
        blocks.setdefault(block, Counter())[ip] += n
    ranked = sorted(blocks.items(), key=lambda kv: (-len(kv[1]), kv[0]))
    internal = [
        ip
        for ip in events_per_ip
        if (is_internal(ip) if (value := v4.get(ip)) is None else _internal_v4(value))
    ]
    internal_events = sum(events_per_ip[ip] for ip in internal)
    others4 = [ip for ip in events_per_ip if ":" not in ip and ip not in v4]
    if others4:
        collapsed4 = [
            str(n)
            for n in ipaddress.collapse_addresses(
                ipaddress.IPv4Network(ip) for ip in events_per_ip if ":" not in ip
            )
        ]
    else:
        collapsed4 = _collapsed_v4(list(v4.values()))
    collapsed6 = ipaddress.collapse_addresses(
        ipaddress.IPv6Network(ip) for ip in events_per_ip if ":" in ip
    )
    exact = collapsed4 + [str(n) for n in collapsed6]
    total = sum(events_per_ip.values())
    counts: list[dict[str, object]] = [
        {"cidr": cidr, "distinct_ips": len(c), "events": sum(c.values())}
        for cidr, c in ranked[:MAX_BLOCKS]
    ]
    inside: dict[str, object] = {"distinct_ips": len(internal), "events": internal_events}
    outside: dict[str, object] = {
        "distinct_ips": len(events_per_ip) - len(internal),
        "events": total - internal_events,
    }
    if not counted:
        for part in [*counts, inside, outside]:
            del part["events"]
    return {
        "distinct_ips": len(events_per_ip),
        "blocks": counts,
        "probed": {cidr: probed_bitmap(c) for cidr, c in ranked[:MAX_BLOCKS] if ":" not in cidr},
        "blocks_total": len(blocks),
        "exact_ranges": exact[:MAX_BLOCKS],
        "exact_ranges_total": len(exact),
        "internal": inside,
        "external": outside,
    }


def probed_bitmap(addresses: Counter[str]) -> str:
    """Which of a /24's 256 addresses were probed, as 64 hex digits (bit i: address .i), so an
    alert carries the picture of the block in 64 bytes whatever the count."""
    bits = 0
    for ip in addresses:
        bits |= 1 << int(ip.rsplit(".", 1)[1])
    return f"{bits:064x}"


def _ports(ports: list[int]) -> dict[str, object]:
    counts = Counter(ports)
    top = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:MAX_PORTS]
    return {
        "distinct": len(counts),
        "top": [{"port": p, "events": n} for p, n in top],
    }


def _minute(t: datetime) -> datetime:
    return t.replace(second=0, microsecond=0)


def per_minute(buckets: Counter[datetime]) -> dict[str, object]:
    """Attempts per minute from events counted by their minute."""
    if not buckets:
        return {"active_minutes": 0, "peak": 0, "mean": 0.0, "by_minute": []}
    ordered = sorted(buckets.items())
    return {
        "active_minutes": len(buckets),
        "peak": max(buckets.values()),
        "mean": round(sum(buckets.values()) / len(buckets), 2),
        "by_minute": [
            {"minute": format_datetime(m), "attempts": n} for m, n in ordered[:MAX_MINUTES]
        ],
    }
