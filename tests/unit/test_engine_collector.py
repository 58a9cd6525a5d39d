"""The collector policy of `watch`: each batch's garbage collected, the rules' long-lived state frozen, and that state never cyclic garbage."""

from __future__ import annotations

import gc
import json
import weakref
from datetime import UTC, datetime
from pathlib import Path

import pytest

from reconwatch.cli.main import main
from reconwatch.engine.collector import settle
from reconwatch.engine.native.watch import NativeWatch
from reconwatch.engine.watch import RuleWatch
from reconwatch.rules.builtin import PACKS, SCHEDULED_ONLY, load_builtin
from reconwatch.simulate import Simulation

START = datetime(2026, 1, 1, tzinfo=UTC)


class _Node:
    def __init__(self) -> None:
        self.other: object = self


def test_settle_collects_the_batchs_cycles_and_freezes_the_survivors() -> None:
    kept = _Node()
    dropped = _Node()
    gone = weakref.ref(dropped)
    del dropped
    before = gc.get_freeze_count()
    settle()
    assert gone() is None  # a cycle dropped before the freeze is collected, not pinned
    assert gc.get_freeze_count() > before
    assert kept.other is kept


def _pack() -> list[RuleWatch | NativeWatch]:
    watches: list[RuleWatch | NativeWatch] = []
    for name in PACKS["recon"][0]:
        if name in SCHEDULED_ONLY or name.startswith("recon-net-"):
            continue
        rule = load_builtin(name)
        watches.append(
            NativeWatch.create(rule) if rule.native else RuleWatch.create(rule, evidence=False)
        )
    return watches


def test_the_packs_window_state_never_becomes_cyclic_garbage() -> None:
    """What the freeze relies on: over two and a half hours of a fleet with scans (every
    65-minute window filled, expired and refilled, groups created and dropped), no object
    alive at a freeze later becomes a garbage cycle, which the collector would never free."""
    sim = Simulation(hosts=6, hours=2.5, start=START, scans=("subnet", "targeted"), seed=3)
    lines = [json.dumps(e).encode() for e in sim.stream()]
    watches = _pack()
    for watch in watches:  # set-up garbage (types, closures) made before the stream
        watch.push_lines(lines[:256])
    gc.collect()
    gc.freeze()
    alerts = 0
    for i in range(256, len(lines), 512):
        for watch in watches:
            alerts += len(watch.push_lines(lines[i : i + 512]))
        settle()
    gc.unfreeze()
    assert alerts  # the stream did what a stream does: groups crossed and alerted
    assert gc.collect() == 0


def test_watch_settles_after_each_batch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from reconwatch.engine import feed

    calls: list[int] = []
    monkeypatch.setattr(feed, "settle", lambda: calls.append(1))
    events = tmp_path / "events.ndjson"
    sim = Simulation(hosts=3, hours=0.2, start=START, seed=5)
    events.write_text("".join(json.dumps(e) + "\n" for e in sim.stream()))
    with pytest.raises(SystemExit) as done:
        main(["watch", "--rule", "recon-sweep", str(events), "-f", "ndjson"])
    assert not done.value.code
    assert calls
