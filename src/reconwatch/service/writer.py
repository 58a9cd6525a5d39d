"""The one writer thread: batches from HTTP requests, a bounded queue, commits in arrival order."""

from __future__ import annotations

import queue
import threading
from collections.abc import Sequence
from concurrent.futures import Future

from reconwatch.store import NewEvent, Store, Written

_STOP = None


class QueueFull(Exception):
    """The write queue holds its maximum of batches: the client is told to retry (429)."""


class Writer:
    """Commits batches to the store one at a time; `submit` never waits for room."""

    def __init__(self, store: Store, max_batches: int) -> None:
        self.store = store
        self._queue: queue.Queue[tuple[Sequence[NewEvent], Future[list[Written]]] | None] = (
            queue.Queue(maxsize=max_batches)
        )
        self._thread = threading.Thread(target=self._run, name="reconwatch-writer", daemon=True)
        self._thread.start()

    def depth(self) -> int:
        return self._queue.qsize()

    def submit(self, batch: Sequence[NewEvent]) -> Future[list[Written]]:
        done: Future[list[Written]] = Future()
        try:
            self._queue.put_nowait((batch, done))
        except queue.Full:
            raise QueueFull from None
        return done

    def close(self) -> None:
        """Commit what is queued, then stop."""
        self._queue.put(_STOP)
        self._thread.join()

    def _run(self) -> None:
        while (job := self._queue.get()) is not _STOP:
            batch, done = job
            if not done.set_running_or_notify_cancel():
                continue
            try:
                done.set_result(self.store.write(batch))
            except Exception as exc:  # reported to the request that sent the batch
                done.set_exception(exc)
