"""One exception matcher for every path: a scheduled run's filter, real-time events and "close
matching open alerts" decide alike for the same items (Kibana's semantics: typed values,
wildcards with only * and ?, CIDR blocks for ip fields, nested entries)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
import pytest

from conftest import Clock, iso_ms
from reconwatch.engine.exceptions_esql import matching
from reconwatch.rules.builtin import load_builtin
from reconwatch.rules.exceptions import Entry, ExceptionItem
from reconwatch.service.realtime import RealTime
from reconwatch.service.scheduler import Scheduler
from reconwatch.service.triage import _exception_from_alert
from reconwatch.store import NewEvent, Store
from reconwatch.store import exceptions as exc_store
from reconwatch.store.exceptions import Who

T0 = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
NET = "logs-endpoint.events.network-default"
# Shell patterns would read [x] as a class matching "x"; Kibana's wildcard reads it literally.
LITERAL = "/opt/[x]/scan"
LOOKALIKE = "/opt/x/scan"
OTHER = "/usr/bin/nmap"
# Each scanner's own /16 of destinations: one item excepts the third's by CIDR.
NETS = {LITERAL: 7, LOOKALIKE: 8, OTHER: 9}
ITEMS: list[list[dict[str, Any]]] = [
    [
        {"field": "process.executable", "type": "wildcard", "operator": "included"}
        | {"value": "/opt/[x]/*"},
        # Nested, as Kibana's export writes an object field's entries.
        {
            "field": "agent",
            "type": "nested",
            "entries": [{"field": "id", "type": "match", "operator": "included", "value": "a-1"}],
        },
    ],
]
CIDR_ITEM = [
    {"field": "destination.ip", "type": "match", "operator": "included"} | {"value": "10.9.0.0/16"}
]


def _scan(exe: str) -> list[NewEvent]:
    out = []
    for i in range(260):
        doc = {
            "@timestamp": iso_ms(T0 + timedelta(milliseconds=100 * i)),
            "event": {"type": ["start"], "action": "connection_attempted"},
            "host": {"os": {"type": "linux"}, "name": "web-1"},
            "agent": {"id": "a-1"},
            "process": {"executable": exe},
            "destination": {"ip": f"10.{NETS[exe]}.{i // 250}.{i % 250 + 1}", "port": 22},
        }
        out.append(NewEvent("create", NET, None, msgspec.json.encode(doc)))
    return out


@dataclass
class _Service:
    store: Store


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = Store(tmp_path, Clock(T0 + timedelta(minutes=5)))
    yield opened
    opened.close()


def _except(store: Store, rule_id: str, items: list[list[dict[str, Any]]]) -> None:
    who = Who("ann", store.clock())
    store.exceptions(exc_store.create_list, {"list_id": "l", "name": "l", "type": "detection"}, who)
    for entries in items:
        store.exceptions(exc_store.create_item, "l", {"name": "i", "entries": entries}, who)
    store.exceptions(exc_store.link, rule_id, ["l"])


def _alerted(store: Store, rule_id: str) -> set[str]:
    return {str(a["process.executable"]) for a in store.alerts(rule_id)}


def test_scheduled_and_real_time_runs_except_the_same_events(store: Store) -> None:
    rule = load_builtin("subnet-scanning")
    _except(store, rule.rule_id, [*ITEMS, CIDR_ITEM])
    realtime = RealTime(store, {rule.rule_id: rule})
    realtime.enable(rule.rule_id)
    realtime.start()
    store.on_commit = realtime.offer
    for exe in NETS:
        store.write(_scan(exe))
    realtime.drain()
    realtime.close()
    live = _alerted(store, rule.rule_id)
    # A scheduled run over the same stored events (no real-time groups: alerts of its own).
    scheduler = Scheduler(store, [rule], store.clock, evidence=False)
    run = scheduler.run_manual(rule.rule_id, T0 - timedelta(minutes=1), T0 + timedelta(minutes=5))
    scheduled = {str(a["process.executable"]) for o in run for a in o.created}
    assert live == scheduled == {LOOKALIKE}


def test_close_matching_decides_as_the_runs_do(store: Store) -> None:
    rule = load_builtin("subnet-scanning")
    scheduler = Scheduler(store, [rule], store.clock, evidence=False)
    for exe in NETS:
        store.write(_scan(exe))
    scheduler.run_manual(rule.rule_id, T0 - timedelta(minutes=1), T0 + timedelta(minutes=5))
    assert _alerted(store, rule.rule_id) == set(NETS)
    alert = next(a for a in store.alerts(rule.rule_id) if a["process.executable"] == OTHER)
    doc = {"user": "ann", "entries": ITEMS[0], "close_matching": True}
    answer = _exception_from_alert(_Service(store), alert, doc)  # type: ignore[arg-type]
    closed = {str(store.get_alert(i)["process.executable"]) for i in answer["closed"]}  # type: ignore[index]
    assert closed == {LITERAL}


def test_the_matcher_types_values_by_field() -> None:
    """Alert documents as stored (flat, dotted): a port given as text equals the number, an
    IPv4 address falls in a CIDR block, a wildcard's [ is literal."""
    docs = [
        {"destination.ip": "10.9.3.4", "destination.port": 22, "process.executable": LITERAL},
        {"destination.ip": "192.0.2.1", "destination.port": 80, "process.executable": LOOKALIKE},
    ]

    def item(*entries: Entry) -> list[ExceptionItem]:
        return [ExceptionItem("i", entries)]

    assert matching(item(Entry("destination.ip", "match", "included", ("10.9.0.0/16",))), docs) == [
        True,
        False,
    ]
    assert matching(item(Entry("destination.port", "match_any", "included", ("80",))), docs) == [
        False,
        True,
    ]
    assert matching(
        item(Entry("process.executable", "wildcard", "included", (LITERAL,))), docs
    ) == [
        True,
        False,
    ]
    assert matching(item(Entry("host.name", "exists", "excluded", ())), docs) == [True, True]


def test_a_wildcard_on_a_number_never_matches_instead_of_failing() -> None:
    docs = [{"destination": {"port": 22}}]
    wild = [ExceptionItem("i", (Entry("destination.port", "wildcard", "included", ("2*",)),))]
    assert matching(wild, docs) == [False]


def test_wildcards_escape_as_kibana_documents() -> None:
    """`\\*` is a literal asterisk and `\\\\` a backslash (Kibana's exception docs); case counts."""
    docs = [
        {"process.executable": "/opt/a*b"},
        {"process.executable": "/opt/axb"},
        {"process.executable": "C:\\Windows\\explorer.exe"},
    ]

    def hits(pattern: str) -> list[bool]:
        entry = Entry("process.executable", "wildcard", "included", (pattern,))
        return matching([ExceptionItem("i", (entry,))], docs)

    assert hits("/opt/a\\*b") == [True, False, False]
    assert hits("/opt/a*b") == [True, True, False]
    assert hits("C:\\\\Windows\\\\*.exe") == [False, False, True]
    assert hits("/OPT/*") == [False, False, False]


def test_fields_are_found_nested_dotted_or_under_lists_of_objects() -> None:
    docs = [
        {"process": {"parent.executable": "/x"}},
        {"dns": {"answers": [{"data": "a.example"}, {"data": "b.example"}]}},
        {"process.parent": {"executable": "/y"}},
    ]

    def hits(field: str, value: str) -> list[bool]:
        return matching([ExceptionItem("i", (Entry(field, "match", "included", (value,)),))], docs)

    assert hits("process.parent.executable", "/x") == [True, False, False]
    assert hits("process.parent.executable", "/y") == [False, False, True]
    assert hits("dns.answers.data", "b.example") == [False, True, False]
