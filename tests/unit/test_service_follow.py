"""`serve --follow`: files tailed into the store, through rotation, resumed after a restart, and a
line read twice after a crash stored once."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from conftest import Clock
from reconwatch.service.follow import FileFeed
from reconwatch.service.writer import Writer
from reconwatch.store import Store

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _lines(path: Path, first: int, count: int) -> None:
    with path.open("a") as out:
        for n in range(first, first + count):
            out.write(json.dumps({"@timestamp": "2026-03-01T11:00:00Z", "n": n}) + "\n")


def _ns(store: Store) -> list[int]:
    return sorted(int(d[2]["n"]) for d in store.documents(store.indices(), None, None))  # type: ignore[call-overload]


def test_followed_file_survives_rotation_and_restart(tmp_path: Path) -> None:
    store = Store(tmp_path / "data", Clock(NOW))
    writer = Writer(store, 4)
    log = tmp_path / "events.ndjson"
    _lines(log, 0, 5)
    feed = FileFeed(store, writer, [log])
    assert feed.poll() == 5
    _lines(log, 5, 2)
    log.rename(tmp_path / "events.ndjson.1")  # rotated by rename, a new file after it
    _lines(log, 7, 3)
    feed.poll()
    assert _ns(store) == list(range(10))
    feed.stop()
    # A restart resumes after the saved position: nothing read twice, new lines stored.
    _lines(log, 10, 1)
    again = FileFeed(store, writer, [log])
    assert again.poll() == 1
    assert _ns(store) == list(range(11))
    again.stop()
    writer.close()
    store.close()


def test_a_crash_before_the_position_is_saved_stores_nothing_twice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = Store(tmp_path / "data", Clock(NOW))
    writer = Writer(store, 4)
    log = tmp_path / "events.ndjson"
    _lines(log, 0, 3)
    feed = FileFeed(store, writer, [log])
    feed.poll()
    _lines(log, 3, 3)
    # The events of the next batch are committed, then the process dies before its position.
    monkeypatch.setattr(store, "save_follow_position", lambda *_a: None)
    feed.poll()
    monkeypatch.undo()
    assert _ns(store) == list(range(6))
    restarted = FileFeed(store, writer, [log])  # resumes after line 3: reads 3..5 again
    assert restarted.poll() == 0  # the same ids: refused as already stored
    assert _ns(store) == list(range(6)) and restarted.errors == []
    restarted.stop()
    feed.stop()
    writer.close()
    store.close()
