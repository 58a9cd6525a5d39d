"""The one writer thread: batches from HTTP requests, a bounded queue, commits in arrival order."""

from __future__ import annotations

import queue
import threading
from collections.abc import Sequence
from concurrent.futures import Future

from reconwatch.store import NewEvent, Store, Written

_STOP = None
# Batches taken into one commit until they hold this many events.
MAX_COMMIT_EVENTS = 50_000


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
        stopping = False
        while not stopping:
            jobs: list[tuple[Sequence[NewEvent], Future[list[Written]]]] = []
            job = self._queue.get()
            size = 0
            # Batches that wait together are committed together: one transaction (and one
            # disk sync) for many requests when ingest is heavy, one each when it is light.
            while job is not _STOP:
                batch, done = job
                if done.set_running_or_notify_cancel():
                    jobs.append(job)
                    size += len(batch)
                if size >= MAX_COMMIT_EVENTS:
                    break
                try:
                    job = self._queue.get_nowait()
                except queue.Empty:
                    break
            stopping = job is _STOP
            if jobs:
                self._commit(jobs)

    def _commit(self, jobs: list[tuple[Sequence[NewEvent], Future[list[Written]]]]) -> None:
        events = [ev for batch, _ in jobs for ev in batch]
        try:
            written = self.store.write(events)
        except Exception as exc:  # reported to every request whose batch it held
            for _, done in jobs:
                done.set_exception(exc)
            return
        at = 0
        for batch, done in jobs:
            done.set_result(written[at : at + len(batch)])
            at += len(batch)
