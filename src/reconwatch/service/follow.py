"""`serve --follow PATH`: files tailed by name into the store, resumed after a restart."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

import msgspec

from reconwatch.backends.stream.lines import split_lines
from reconwatch.engine.feed import follow_format
from reconwatch.ingest.follow import Batch, Follower, LineDecoderSource, Position
from reconwatch.ingest.report import IngestReport
from reconwatch.service.writer import QueueFull, Writer
from reconwatch.store import NewEvent, Store, Written

POLL_SECONDS = 0.5
# A full write queue: wait this long and offer the batch again (ingest over HTTP goes first).
RETRY_SECONDS = 0.2
FOLLOW_INDEX = "logs-endpoint.events.network-default"


class FileFeed:
    """Each path followed like `tail -F` (ingest.follow.Follower: waits for the file, survives
    rotation and truncation), the input-format registry deciding what it is (an NDJSON line is
    stored as it is, an audit log's records become the events its format decodes). Events are
    `create`d through the writer with ids made from the file's fingerprint and line number, and
    the position after each committed batch is kept in the store: a restart resumes there, and a
    line read twice (a crash between the commit and the position) is refused as a duplicate."""

    def __init__(
        self,
        store: Store,
        writer: Writer,
        paths: Sequence[Path],
        *,
        index: str = FOLLOW_INDEX,
        notice: Callable[[str], None] = lambda _line: None,
    ) -> None:
        self.store = store
        self.writer = writer
        self.index = index
        self.notice = notice
        self.errors: list[str] = []
        self.stored = 0
        self._report = IngestReport()
        self._feeds: list[tuple[Follower, LineDecoderSource | None]] = []
        saved = store.follow_positions()
        for path in paths:
            fmt = follow_format(path, None)
            decoder = (
                LineDecoderSource(fmt.line_decoder(path, self._report))
                if fmt.line_decoder is not None
                else None
            )
            start = Position.from_json(saved.get(str(path)))
            where = f"after line {start.line}" if start is not None else "from its start"
            notice(f"following {path} as {fmt.name}, {where}")
            self._feeds.append(
                (Follower(path, split=split_lines, start=start, notice=notice), decoder)
            )
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="reconwatch-follow", daemon=True)

    def start(self) -> None:
        if self._feeds:
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.ident is not None:
            self._thread.join()
        for follower, _ in self._feeds:
            follower.close()

    def poll(self) -> int:
        """Read and store what every file has now; how many events were stored."""
        done = 0
        for follower, decoder in self._feeds:
            for batch in follower.poll():
                done += self._store(follower, decoder, batch)
                if self._stop.is_set():
                    return done
        return done

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.poll()
            except Exception as exc:  # reported in /api/health, the feed goes on
                self.errors.append(f"--follow: {type(exc).__name__}: {exc}")
                del self.errors[:-20]
            self._stop.wait(POLL_SECONDS)

    def _store(self, follower: Follower, decoder: LineDecoderSource | None, batch: Batch) -> int:
        position = follower.position
        identity = position.fingerprint[:16] if position is not None else ""
        name = batch.name or follower.name
        events: list[NewEvent] = []
        if decoder is None:
            for offset, line in enumerate(batch.lines):
                if bytes(line).strip():
                    doc_id = _id(name, identity, batch.first + offset)
                    events.append(NewEvent("create", self.index, doc_id, bytes(line)))
        else:
            for line_no, event in decoder.feed(batch.first, batch.lines):
                doc_id = _id(name, identity, line_no)
                index = _data_stream(event) or self.index
                events.append(NewEvent("create", index, doc_id, msgspec.json.encode(event)))
        written = self._write(events) if events else []
        if written is None:
            return 0  # stopping with the queue full: not stored, the position not moved
        if position is not None:
            self.store.save_follow_position(str(follower.path), position.to_json())
        stored = sum(1 for w in written if w.error_type is None)
        for w in written:
            if w.error_type is not None and w.status != 409:  # 409: read twice, stored once
                self.errors.append(f"{name}: {w.reason}")
        del self.errors[:-20]
        self.stored += stored
        return stored

    def _write(self, events: list[NewEvent]) -> list[Written] | None:
        while True:
            try:
                return self.writer.submit(events).result()
            except QueueFull:
                if self._stop.wait(RETRY_SECONDS):
                    return None


def _data_stream(event: object) -> str | None:
    """The data stream a decoded network-level event names (Zeek's logs-zeek.connection-default,
    a firewall log's logs-iptables.log-default, ...): the indices the network-level rules read.
    An event with a process (Sysmon, osquery, audit) goes where the process-level rules read."""
    if not isinstance(event, dict) or "process" in event:
        return None
    stream = event.get("data_stream")
    if not isinstance(stream, dict):
        return None
    parts = [stream.get(k) for k in ("type", "dataset", "namespace")]
    if not all(isinstance(p, str) and p for p in parts):
        return None
    return "-".join(str(p) for p in parts)


def _id(name: str, identity: str, line: int) -> str:
    """A followed line's _id: the same line read again after a crash has the same one."""
    return hashlib.sha1(f"{name}\0{identity}\0{line}".encode(), usedforsecurity=False).hexdigest()[
        :20
    ]
