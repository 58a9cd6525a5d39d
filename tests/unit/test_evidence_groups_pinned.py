"""A run over the store pins only its alerting groups' rows for their evidence: the same alerts,
ids and evidence as pinning every row of the window, on random stores and windows."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from conftest import Clock, iso_ms
from reconwatch.engine.run import RuleExecutor, RunResult
from reconwatch.engine.schedule import RunWindow, window_at
from reconwatch.rules.builtin import load_builtin
from reconwatch.rules.model import Rule
from reconwatch.service.scheduler import source_patterns
from reconwatch.service.storequery import StoreBackend
from reconwatch.store import NewEvent, Store
from reconwatch.store.window import window_dataset

T0 = datetime(2026, 3, 1, 0, 0, tzinfo=UTC)
NET = "logs-endpoint.events.network-default"
RULES = ("subnet-scanning-seed", "subnet-scanning")
EXES = ("/tmp/scanner", "/usr/bin/nmap", "/bin/few")
# The background traffic's, on every host (so never one agent's alone).
NOISE = ("/usr/sbin/sshd", "/usr/bin/curl")
HOSTS = ("web-1", "web-2", "db-1")


class WholeWindowPinned(StoreBackend):
    """The store backend as runs read it before: every row of the window pinned up front."""

    pins_alerting_groups = False


def _event(
    rng: random.Random, at: datetime, exe: str, host: str, ip: str, port: int | None = None
) -> NewEvent:
    # Now and then a value the rule's filters or keys see otherwise: another OS, another
    # action, two event types, no executable, a dotted key (read from the text).
    types: list[str] = ["start"] if rng.random() > 0.05 else ["start", "connection"]
    source: dict[str, object] = {
        "@timestamp": iso_ms(at),
        "event": {
            "type": types,
            "action": "connection_attempted" if rng.random() > 0.05 else "disconnect_received",
            "ingested": iso_ms(at + timedelta(seconds=rng.randrange(3))),
        },
        "host": {"os": {"type": "linux" if rng.random() > 0.03 else "windows"}, "name": host},
        "agent": {"id": "agent-" + host},
        "network": {"direction": "egress", "transport": "tcp"},
        "destination": {
            "ip": ip,
            "port": port or rng.choice((22, 80, 443, rng.randrange(1, 9999))),
        },
    }
    if rng.random() > 0.02:
        source["process"] = {"executable": exe}
    if rng.random() < 0.01:
        source["source.ip"] = "10.0.0.1"
    return NewEvent("create", NET, None, source)


def _store(tmp_path: Path, seed: int) -> tuple[Store, list[datetime]]:
    """Three hours of random sweeps of addresses or of one address's ports (some over the rules'
    thresholds, some under; the same executable from two hosts now and then) and noise; the
    times a run's window holds a sweep."""
    rng = random.Random(seed)
    store = Store(tmp_path, Clock(T0 + timedelta(hours=4)))
    events: list[NewEvent] = []
    ends: list[datetime] = []
    for k in range(rng.randrange(4, 8)):
        start = T0 + timedelta(minutes=rng.randrange(170))
        ends.append(start + timedelta(minutes=rng.randrange(11, 40)))
        exe, host = f"{rng.choice(EXES)}-{k}", rng.choice(HOSTS)
        if rng.random() < 0.3:
            ends.append(ends[-1])
            events.extend(
                _event(rng, start + timedelta(seconds=i), exe, "db-2", f"10.3.0.{i + 1}")
                for i in range(rng.randrange(45, 90))
            )
        targets = rng.choice((120, 300, 320, 400))
        ports = rng.random() < 0.3
        for i in range(targets):
            at = start + timedelta(seconds=rng.randrange(600))
            if ports:
                events.append(_event(rng, at, exe, host, "10.9.9.9", 1 + i))
            else:
                ip = f"10.{rng.randrange(2)}.{i // 250}.{i % 250 + 1}"
                events.append(_event(rng, at, exe, host, ip))
    for _ in range(400):
        at = T0 + timedelta(seconds=rng.randrange(3 * 3600))
        ip = f"192.168.{rng.randrange(4)}.{rng.randrange(1, 255)}"
        events.append(_event(rng, at, rng.choice(NOISE), rng.choice(HOSTS), ip))
    rng.shuffle(events)
    store.write(events)
    return store, ends


def _run(store: Store, rule: Rule, window: RunWindow, backend: type[StoreBackend]) -> RunResult:
    dataset = window_dataset(
        store, source_patterns(rule), window.start, window.end, rule.timestamp_override
    )
    return RuleExecutor(rule, backend(store, dataset)).run(window)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2])
def test_alerts_and_evidence_match_the_whole_window_pinned(tmp_path: Path, seed: int) -> None:
    store, ends = _store(tmp_path, seed)
    rng = random.Random(seed)
    alerted: dict[str, int] = {}
    try:
        for name in RULES:
            rule = load_builtin(name)
            for at in [*rng.sample(ends, 2), T0 + timedelta(minutes=rng.randrange(20, 240))]:
                window = window_at(rule, at)
                new = _run(store, rule, window, StoreBackend)
                old = _run(store, rule, window, WholeWindowPinned)
                assert json.dumps(new.alerts, default=str) == json.dumps(old.alerts, default=str)
                assert (new.rows, new.query) == (old.rows, old.query)
                alerted[name] = alerted.get(name, 0) + len(new.alerts)
    finally:
        store.close()
    # The comparison saw evidence, not only empty runs.
    assert sum(alerted.values()) > 0, alerted


def test_a_run_with_no_alert_pins_nothing(tmp_path: Path) -> None:
    """Evidence is read for the groups that alert only: a quiet run reads the window once."""
    store, _ends = _store(tmp_path, 3)
    rule = load_builtin("subnet-scanning-seed")
    window = window_at(rule, T0 + timedelta(hours=12))  # after every event
    pins: list[object] = []

    class Counting(StoreBackend):
        def pin(self, *args: object, **kwargs: object) -> object:  # type: ignore[override]
            pins.append(args)
            return super().pin(*args, **kwargs)  # type: ignore[arg-type]

    try:
        assert _run(store, rule, window, Counting).alerts == []
        assert pins == []
        _run(store, rule, window, type("Old", (Counting,), {"pins_alerting_groups": False}))
        assert len(pins) == 1
    finally:
        store.close()
