"""Streaming equals batch: after every chunk of shuffled input, the groups the stream holds as
matching are what the DuckDB executor returns for the window ending at the latest event time."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconwatch.backends.stream.executor import StreamExecutor
from reconwatch.esql.analyze import compile_query
from reconwatch.ingest import Dataset
from reconwatch.plan import values as v
from reconwatch.plan.documents import flatten
from reconwatch.query import run_query

T0 = datetime(2025, 7, 16, 9, 0, tzinfo=UTC)

QUERIES = {
    "seed-like": """
        from logs-endpoint.events.network-*
        | where @timestamp > now() - 30 minutes and event.action == "connection_attempted"
        | stats n = count(), ips = count_distinct(destination.ip), agents = count_distinct(agent.id),
                hosts = values(host.name)
          by process.executable
        | where agents == 1 and ips > 2
        | sort n asc
        | limit 100""",
    "expand-eval-two-keys": """
        from logs-endpoint.events.network-*
        | mv_expand event.action
        | where @timestamp >= now() - 20 minutes and event.action != "dns"
        | eval port = destination.port + 0
        | stats c = count(destination.ip), lo = min(destination.ip), hi = max(port),
                s = sum(port), a = avg(port)
          by process.executable, agent.id
        | where c >= 2
        | eval per = s / c
        | keep process.executable, agent.id, c, lo, hi, s, a, per""",
    "residual-where-two-keys": """
        from logs-endpoint.events.network-*
        | where @timestamp >= now() - 20 minutes and host.name != "h2"
        | stats c = count(), lo = min(destination.ip), hi = max(agent.id),
                ips = values(destination.ip), d = count_distinct(destination.ip)
          by process.executable, agent.id
        | where c >= 2 and d < 4""",
    "no-by": """
        from logs-endpoint.events.network-*
        | where @timestamp > now() - 15 minutes
        | stats n = count(*), d = count_distinct(destination.ip), first = min(@timestamp)""",
}

EXES = ["/usr/bin/nmap", "/usr/bin/curl", "/tmp/x"]
IPS = ["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.1.7", "192.168.1.1", "::1", "fe80::1"]


@st.composite
def documents(draw: st.DrawFn) -> dict[str, object]:
    minute = draw(st.integers(0, 90))
    millis = draw(st.sampled_from([0, 1, 999, 30_000, 59_999]))
    ts = T0 + timedelta(minutes=minute, milliseconds=millis)
    action: object = draw(
        st.sampled_from(["connection_attempted", "dns", ["connection_attempted", "x"]])
    )
    exe: object = draw(st.sampled_from([*EXES, None, EXES[:2]]))
    doc: dict[str, object] = {
        "@timestamp": v.format_datetime(ts),
        "event": {"action": action},
        "destination": {"ip": draw(st.sampled_from(IPS)), "port": draw(st.integers(1, 3))},
        "agent": {"id": draw(st.sampled_from(["a1", "a2"]))},
        "host": {"name": draw(st.sampled_from(["h1", "h2"]))},
    }
    if exe is not None:
        doc["process"] = {"executable": exe}
    return doc


def _norm(value: object) -> object:
    if isinstance(value, list):
        return tuple(sorted((_norm(x) for x in value), key=repr))
    if isinstance(value, float):
        return round(value, 6) if math.isfinite(value) else value
    return value


def _rows(rows: list[tuple[object, ...]]) -> list[tuple[object, ...]]:
    return sorted((tuple(_norm(c) for c in r) for r in rows), key=repr)


# Queries the micro-batch fast path runs (the others use the general path for every event).
FAST = {"seed-like", "residual-where-two-keys"}


def _check(name: str, docs: list[dict[str, object]], chunks: list[int], lines: bool) -> None:
    text = QUERIES[name]
    plan = compile_query(text, Dataset.from_documents(docs))
    stream = StreamExecutor(plan)
    assert (stream.fast is not None) == (name in FAST)
    seen: list[dict[str, object]] = []
    position = 0
    for size in [*chunks, len(docs)]:
        chunk = docs[position : position + size]
        position += size
        if lines:  # NDJSON lines as a micro-batch: the fast path where the plan allows
            stream.push_lines([json.dumps(doc) for doc in chunk])
        else:
            for doc in chunk:
                stream.push(flatten(doc))
        seen.extend(chunk)
        if not seen:
            continue
        end = stream.end
        assert end is not None
        batch = run_query(text, Dataset.from_documents(seen), now=end)
        got = stream.snapshot()
        assert [c.name for c in got.columns] == [c.name for c in batch.columns]
        assert _rows(got.rows) == _rows(batch.rows), f"window ending {end}"


@pytest.mark.parametrize("lines", [False, True], ids=["push", "lines"])
@pytest.mark.parametrize("name", sorted(QUERIES))
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    docs=st.lists(documents(), min_size=1, max_size=40),
    chunks=st.lists(st.integers(1, 15), max_size=4),
    data=st.data(),
)
def test_stream_matches_batch_on_shuffled_chunked_input(
    name: str, lines: bool, docs: list[dict[str, object]], chunks: list[int], data: st.DataObject
) -> None:
    shuffled = data.draw(st.permutations(docs))
    _check(name, list(shuffled), chunks, lines)


def test_seed_rule_scan_split_across_the_hour() -> None:
    from reconwatch.rules.builtin import load_builtin

    rule = load_builtin("subnet-scanning-seed")
    docs = []
    for i in range(400):
        ts = T0 + timedelta(minutes=50, seconds=3 * i)
        docs.append(
            {
                "@timestamp": v.format_datetime(ts),
                "host": {"os": {"type": "linux"}, "name": "web-1"},
                "event": {"type": "start", "action": "connection_attempted"},
                "process": {"executable": "/usr/bin/nmap"},
                "destination": {"ip": f"10.0.{i // 200}.{i % 200 + 1}"},
                "agent": {"id": "agent-1"},
            }
        )
    plan = compile_query(rule.query, Dataset.from_documents(docs))
    stream = StreamExecutor(plan)
    fired = [(i, m) for i, d in enumerate(docs) for m in stream.push(flatten(d))]
    # The 251st distinct address fires, 12.5 minutes before the run at 11:00 would see it.
    assert [(i, m.row["Esql.destination_ip_count_distinct"]) for i, m in fired] == [(250, 251)]
    assert fired[0][1].end == T0 + timedelta(minutes=50, seconds=750)
