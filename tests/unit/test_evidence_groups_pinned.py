"""A run over the store as it runs now (the values the store vouches for read with no check, only
the alerting groups' rows pinned for their evidence) gives the same alerts, ids, evidence and
warnings as the old path (every value checked, every row of the window pinned), on random
stores and windows."""

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
from reconwatch.store.window import StoredWindow, window_dataset

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
    rng: random.Random,
    at: datetime,
    exe: str,
    host: str,
    ip: str,
    port: int | None = None,
    odd: float = 0.01,
) -> NewEvent:
    # Now and then a value the rule's filters or keys see otherwise: another OS, another
    # action, two event types, no executable; with probability `odd` each, a dotted key (read
    # from the text) and a value the store does not vouch for (read with the checks).
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
    if rng.random() < odd:
        source["source.ip"] = "10.0.0.1"
    if rng.random() < odd:
        source["user"] = {"name": rng.choice((7, "::1", ["a", 1]))}
    return NewEvent("create", NET, None, source)


def _store(tmp_path: Path, seed: int, odd: float = 0.01) -> tuple[Store, list[datetime]]:
    """Three hours of random sweeps of addresses or of one address's ports (some over the rules'
    thresholds, some under; the same executable from two hosts now and then) and noise; the
    times a run's window holds a sweep. `odd`: how often an event has a dotted key or a value
    the store does not vouch for (each)."""
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
                _event(rng, start + timedelta(seconds=i), exe, "db-2", f"10.3.0.{i + 1}", None, odd)
                for i in range(rng.randrange(45, 90))
            )
        targets = rng.choice((120, 300, 320, 400))
        ports = rng.random() < 0.3
        for i in range(targets):
            at = start + timedelta(seconds=rng.randrange(600))
            if ports:
                events.append(_event(rng, at, exe, host, "10.9.9.9", 1 + i, odd))
            else:
                ip = f"10.{rng.randrange(2)}.{i // 250}.{i % 250 + 1}"
                events.append(_event(rng, at, exe, host, ip, None, odd))
    for _ in range(400):
        at = T0 + timedelta(seconds=rng.randrange(3 * 3600))
        ip = f"192.168.{rng.randrange(4)}.{rng.randrange(1, 255)}"
        events.append(_event(rng, at, rng.choice(NOISE), rng.choice(HOSTS), ip, None, odd))
    rng.shuffle(events)
    store.write(events)
    return store, ends


def _run(store: Store, rule: Rule, window: RunWindow, backend: type[StoreBackend]) -> RunResult:
    dataset = window_dataset(
        store, source_patterns(rule), window.start, window.end, rule.timestamp_override
    )
    return RuleExecutor(rule, backend(store, dataset)).run(window)


def _checked(store: Store, rule: Rule, window: RunWindow, backend: type[StoreBackend]) -> RunResult:
    """The run with every value read with the checks (the store vouching for none)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(StoredWindow, "regular", lambda self, fields: None)
        return _run(store, rule, window, backend)


@pytest.mark.slow
@pytest.mark.parametrize(("seed", "odd"), [(1, 0.01), (5, 0.0), (6, 0.0), (4, 0.0005)])
def test_alerts_and_evidence_match_the_old_path(tmp_path: Path, seed: int, odd: float) -> None:
    store, ends = _store(tmp_path, seed, odd)
    rng = random.Random(seed)
    alerted: dict[str, int] = {}
    regular: list[bool] = []
    real = StoredWindow.regular

    def noted(self: StoredWindow, fields: list[tuple[str, object]]) -> str | None:
        out = real(self, fields)  # type: ignore[arg-type]
        regular.append(out is not None)
        return out

    try:
        for name in RULES:
            rule = load_builtin(name)
            for at in [*rng.sample(ends, 2), T0 + timedelta(minutes=rng.randrange(20, 240))]:
                window = window_at(rule, at)
                with pytest.MonkeyPatch.context() as mp:
                    mp.setattr(StoredWindow, "regular", noted)
                    new = _run(store, rule, window, StoreBackend)
                # The path before the store vouched for values: every value checked.
                old = _checked(store, rule, window, StoreBackend)
                assert json.dumps(new.alerts, default=str) == json.dumps(old.alerts, default=str)
                assert (new.rows, new.query, new.warnings) == (old.rows, old.query, old.warnings)
                # And before the alerting groups alone were pinned (its warnings are the
                # pinned read's, which are not the run's: not compared).
                older = _checked(store, rule, window, WholeWindowPinned)
                assert json.dumps(new.alerts, default=str) == json.dumps(older.alerts, default=str)
                assert (new.rows, new.query) == (older.rows, older.query)
                alerted[name] = alerted.get(name, 0) + len(new.alerts)
    finally:
        store.close()
    # The comparison saw evidence, not only empty runs; with no odd event, the new path read
    # the values the store vouches for, and with some, the checks too.
    assert sum(alerted.values()) > 0, alerted
    if odd == 0.0:
        assert regular and all(regular)
    else:
        assert not all(regular)


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
