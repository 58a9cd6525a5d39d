"""The one writer: batches waiting together are committed together, each request its own results."""

from __future__ import annotations

import threading
from collections.abc import Sequence

import pytest

from reconwatch.service.writer import QueueFull, Writer
from reconwatch.store import NewEvent, Written


class _Store:
    """Records each write; the first one waits until released (the writer is busy)."""

    def __init__(self) -> None:
        self.writes: list[list[str]] = []
        self.release = threading.Event()
        self.fail = False

    def write(self, batch: Sequence[NewEvent]) -> list[Written]:
        if not self.writes:
            self.release.wait(10)
        self.writes.append([str(e.id) for e in batch])
        if self.fail:
            raise RuntimeError("disk full")
        return [Written(e.index, str(e.id), 201, "created", 1, 0) for e in batch]


def _batch(*ids: str) -> list[NewEvent]:
    return [NewEvent("create", "i", i, b"{}") for i in ids]


def test_waiting_batches_share_one_commit_and_keep_their_results() -> None:
    store = _Store()
    writer = Writer(store, 8)  # type: ignore[arg-type]
    first = writer.submit(_batch("a"))
    while writer.depth():  # the writer took the first batch and waits in its write
        threading.Event().wait(0.001)
    second, third = writer.submit(_batch("b", "c")), writer.submit(_batch("d"))
    store.release.set()
    assert [w.id for w in first.result(10)] == ["a"]
    assert [w.id for w in second.result(10)] == ["b", "c"]
    assert [w.id for w in third.result(10)] == ["d"]
    writer.close()
    assert store.writes == [["a"], ["b", "c", "d"]]


def test_a_failed_commit_fails_every_request_in_it_and_the_queue_is_bounded() -> None:
    store = _Store()
    writer = Writer(store, 2)  # type: ignore[arg-type]
    first = writer.submit(_batch("a"))
    while writer.depth():
        threading.Event().wait(0.001)
    second, third = writer.submit(_batch("b")), writer.submit(_batch("c"))
    with pytest.raises(QueueFull):
        writer.submit(_batch("d"))
    store.fail = True
    store.release.set()
    for future in (first, second, third):
        with pytest.raises(RuntimeError, match="disk full"):
            future.result(10)
    writer.close()
