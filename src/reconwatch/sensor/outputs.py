"""Where events go: NDJSON files with size rotation, stdout, or Elasticsearch `_bulk` over HTTP."""

from __future__ import annotations

import contextlib
import json
import os
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import IO, Protocol

import msgspec

from reconwatch.ecs.network import INDEX

_encoder = msgspec.json.Encoder()
_FILE_BUFFER = 1 << 20


def encode(doc: dict[str, object]) -> bytes:
    return _encoder.encode(doc)


class Sink(Protocol):
    def write(self, doc: dict[str, object]) -> None: ...

    def write_encoded(self, data: bytes) -> None:
        """One document already encoded as JSON, without the newline."""
        ...

    def flush(self) -> None: ...

    def close(self) -> None: ...

    def report(self) -> str: ...


class StreamSink:
    """NDJSON to an open binary stream (stdout)."""

    def __init__(self, stream: IO[bytes] | None = None) -> None:
        self.stream = stream or sys.stdout.buffer
        self.count = 0

    def write(self, doc: dict[str, object]) -> None:
        self.write_encoded(encode(doc))

    def write_encoded(self, data: bytes) -> None:
        self.stream.write(data + b"\n")
        self.count += 1

    def flush(self) -> None:
        with contextlib.suppress(BrokenPipeError):
            self.stream.flush()

    def close(self) -> None:
        self.flush()

    def report(self) -> str:
        return f"{self.count} events to stdout"


class FileSink:
    """NDJSON file; at max_bytes it becomes FILE.1 (older ones shift up to FILE.<keep>)."""

    def __init__(self, path: Path, *, max_bytes: int = 100 * 1024 * 1024, keep: int = 5) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.keep = keep
        self.count = 0
        self.rotations = 0
        path.parent.mkdir(parents=True, exist_ok=True)
        self.handle = self._open()
        self.size = self.handle.tell()

    def _open(self) -> IO[bytes]:
        # A large buffer: one write() per ~1000 events; the runner flushes every second anyway.
        return self.path.open("ab", buffering=_FILE_BUFFER)

    def write(self, doc: dict[str, object]) -> None:
        self.write_encoded(encode(doc))

    def write_encoded(self, data: bytes) -> None:
        line = data + b"\n"
        if self.size and self.size + len(line) > self.max_bytes:
            self._rotate()
        self.handle.write(line)
        self.size += len(line)
        self.count += 1

    def _rotate(self) -> None:
        self.handle.close()
        for index in range(self.keep - 1, 0, -1):
            older = self.path.with_name(f"{self.path.name}.{index}")
            if older.exists():
                older.replace(self.path.with_name(f"{self.path.name}.{index + 1}"))
        if self.keep > 0:
            self.path.replace(self.path.with_name(f"{self.path.name}.1"))
        else:
            self.path.unlink()
        self.handle = self._open()
        self.size = 0
        self.rotations += 1

    def flush(self) -> None:
        self.handle.flush()

    def close(self) -> None:
        self.handle.flush()
        os.fsync(self.handle.fileno())
        self.handle.close()

    def report(self) -> str:
        return f"{self.count} events to {self.path} ({self.rotations} rotations)"


def bulk_body(docs: list[bytes], index: str = INDEX) -> bytes:
    """Elasticsearch `_bulk` NDJSON: a `create` action per document (data streams need create)."""
    action = json.dumps({"create": {"_index": index}}).encode()
    return b"".join(action + b"\n" + doc + b"\n" for doc in docs)


def _stderr(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


class HttpSink:
    """Batches documents into an on-disk spool and POSTs them to a `_bulk` URL from a thread.

    The spool survives receiver outages and restarts; when it would exceed max_spool_bytes the
    oldest batch not being sent is dropped and counted. Retries back off exponentially up to
    max_backoff. The sender thread outlives any failure of its own (a batch that vanished from
    the spool, a disk error, a bug): each is counted, reported through on_error (stderr by
    default) and in report(), and delivery goes on with the next batch.
    """

    def __init__(
        self,
        url: str,
        spool: Path,
        *,
        batch_size: int = 1000,
        flush_interval: float = 1.0,
        max_spool_bytes: int = 256 * 1024 * 1024,
        max_backoff: float = 30.0,
        timeout: float = 10.0,
        headers: dict[str, str] | None = None,
        on_error: Callable[[str], None] = _stderr,
    ) -> None:
        self.url = url
        self.spool = spool
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.max_spool_bytes = max_spool_bytes
        self.max_backoff = max_backoff
        self.timeout = timeout
        self.headers = {"Content-Type": "application/x-ndjson", **(headers or {})}
        self.on_error = on_error
        self.sent = self.dropped = self.rejected = self.retries = 0
        self.spool_errors = self.sender_errors = 0
        self.last_error = self.last_failure = ""
        # Set after each failed delivery attempt: what a caller (or a test) waits on instead of
        # guessing how long the sender takes to try.
        self.attempt_failed = threading.Event()
        self._close_by = 0.0  # set by close(): until when the sender keeps retrying
        self._pending: list[bytes] = []
        self._pending_since = time.monotonic()
        self._seq = int(time.time() * 1000)
        self._lock = threading.Lock()
        # Spool files are changed by two threads (the bound drops, the sender rewrites and
        # deletes): every change, and the choice of the batch being sent, happens under this lock.
        self._spool_lock = threading.Lock()
        self._inflight: Path | None = None
        self._wake = threading.Event()
        self._closing = threading.Event()
        spool.mkdir(parents=True, exist_ok=True)
        self._thread = threading.Thread(target=self._run, name="bulk-sender", daemon=True)
        self._thread.start()

    def write(self, doc: dict[str, object]) -> None:
        self.write_encoded(encode(doc))

    def write_encoded(self, data: bytes) -> None:
        with self._lock:
            if not self._pending:
                self._pending_since = time.monotonic()
            self._pending.append(data)
            full = len(self._pending) >= self.batch_size
        if full:
            self.flush()

    def flush(self) -> None:
        """Seal the pending documents into a spool batch (durable) and wake the sender."""
        with self._lock:
            docs, self._pending = self._pending, []
            if docs:
                self._seq += 1
                name = f"batch-{self._seq:016d}.ndjson"
                tmp = self.spool / f".{name}"
                tmp.write_bytes(bulk_body(docs))
                tmp.replace(self.spool / name)
        if docs:
            self._enforce_bound()
        self._wake.set()

    def _batches(self) -> list[Path]:
        return sorted(self.spool.glob("batch-*.ndjson"))

    def _enforce_bound(self) -> None:
        with self._spool_lock:
            sizes = {}
            for batch in self._batches():
                with contextlib.suppress(FileNotFoundError):  # removed by someone else
                    sizes[batch] = batch.stat().st_size
            total = sum(sizes.values())
            for oldest, size in sizes.items():
                if total <= self.max_spool_bytes:
                    break
                if oldest == self._inflight:
                    continue  # being sent: dropping it would count it lost and then sent
                total -= size
                with contextlib.suppress(FileNotFoundError):
                    self.dropped += _documents(oldest.read_bytes())
                    oldest.unlink()

    def _failure(self, counter: str, text: str) -> None:
        setattr(self, counter, getattr(self, counter) + 1)
        self.last_failure = text
        with contextlib.suppress(Exception):  # reporting must not be what stops the sender
            self.on_error(f"_bulk output: {text}")

    def _run(self) -> None:
        backoff = 0.5
        while True:
            if self._past_close_deadline():
                return  # the spool keeps the rest for next time; close() waits for this return
            try:
                outcome = self._cycle()
            except Exception as exc:  # the thread is the only way events leave: it must go on
                self._failure("sender_errors", f"sender error {type(exc).__name__}: {exc}")
                outcome = "failed"
            if outcome == "sent":
                backoff = 0.5
                continue
            if outcome == "idle":
                if self._closing.is_set():
                    return
                self._wake.wait(self.flush_interval / 2)
                self._wake.clear()
                continue
            if self._past_close_deadline():
                return  # the receiver is down at shutdown: the spool keeps the rest for next time
            self.retries += 1
            self.attempt_failed.set()
            # Closing: retry until close()'s deadline (a send in flight as the receiver came
            # back must not end the sender with the spool full), never waiting past it.
            wait = backoff
            if self._closing.is_set():
                wait = max(0.0, min(backoff, self._close_by - time.monotonic()))
            self._wake.wait(wait)
            self._wake.clear()
            backoff = min(backoff * 2, self.max_backoff)

    def _past_close_deadline(self) -> bool:
        return self._closing.is_set() and time.monotonic() >= self._close_by

    def _cycle(self) -> str:
        """One step of the sender: 'sent', 'failed' (back off) or 'idle' (nothing spooled)."""
        with self._lock:
            stale = self._pending and time.monotonic() - self._pending_since >= self.flush_interval
        if stale:
            self.flush()
        claimed = self._claim()
        if claimed is None:
            return "idle"
        batch, body = claimed
        try:
            return "sent" if self._send(batch, body) else "failed"
        finally:
            with self._spool_lock:
                self._inflight = None

    def _claim(self) -> tuple[Path, bytes] | None:
        """The oldest batch and its body, marked in flight so that the bound leaves it alone."""
        with self._spool_lock:
            for batch in self._batches():
                try:
                    body = batch.read_bytes()
                except FileNotFoundError:
                    # listed, then gone: removed by someone else; the others still go out
                    self._failure(
                        "spool_errors", f"spool batch {batch.name} vanished before it was sent"
                    )
                    continue
                self._inflight = batch
                return batch, body
        return None

    def _send(self, batch: Path, body: bytes) -> bool:
        request = urllib.request.Request(self.url, data=body, headers=self.headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                reply = json.loads(response.read() or b"{}")
        except (urllib.error.URLError, OSError, ValueError) as exc:
            self.last_error = str(exc)
            return False
        retry = self._retryable_items(body, reply)
        with self._spool_lock:
            try:
                if retry:
                    tmp = batch.with_name(f".{batch.name}")
                    tmp.write_bytes(retry)
                    tmp.replace(batch)
                else:
                    batch.unlink(missing_ok=True)
            except OSError as exc:
                self._failure("spool_errors", f"cannot update spool batch {batch.name}: {exc}")
        return not retry

    def _retryable_items(self, body: bytes, reply: object) -> bytes:
        """Keep the items worth retrying (429, 5xx); count permanent rejections; 409 is done."""
        lines = body.split(b"\n")
        pairs = len(lines) // 2
        items = reply.get("items") if isinstance(reply, dict) and reply.get("errors") else None
        if not isinstance(items, list):
            self.sent += pairs
            return b""
        keep: list[bytes] = []
        for index, item in enumerate(items[:pairs]):
            status = _item_status(item)
            if status == 429 or status >= 500:
                keep += [lines[2 * index], lines[2 * index + 1]]
            elif status >= 400 and status != 409:
                self.rejected += 1
            else:
                self.sent += 1
        return b"".join(line + b"\n" for line in keep)

    def close(self, deadline: float = 10.0) -> None:
        """Flush, then give the sender until the deadline to empty the spool.

        Returns only once the sender has stopped: at the deadline it starts no new send, so the
        wait is bounded by the deadline plus one request's timeout. Returning earlier would leave a
        sender that could still deliver a batch that the next sink over the same spool sends again.
        """
        self.flush()
        self._close_by = time.monotonic() + deadline
        self._closing.set()
        self._wake.set()
        self._thread.join(timeout=deadline + self.timeout + 1.0)

    @property
    def sending(self) -> bool:
        """Whether the sender thread still runs (False once close() has returned)."""
        return self._thread.is_alive()

    def _waiting(self) -> int:
        waiting = 0
        for batch in self._batches():
            with contextlib.suppress(FileNotFoundError):
                waiting += _documents(batch.read_bytes())
        return waiting

    def report(self) -> str:
        waiting = self._waiting()
        text = f"{self.sent} events sent to {self.url}, {waiting} waiting in {self.spool}"
        if self.dropped or self.rejected:
            text += f", {self.dropped} dropped (spool full), {self.rejected} rejected"
        if self.spool_errors or self.sender_errors:
            text += (
                f"; {self.spool_errors} spool errors, {self.sender_errors} sender errors "
                f"(last: {self.last_failure})"
            )
        if self.last_error and waiting:
            text += f"; last error: {self.last_error}"
        return text


def _documents(body: bytes) -> int:
    """Documents in a `_bulk` body: an action line and a source line each."""
    return body.count(b"\n") // 2


def _item_status(item: object) -> int:
    """The HTTP status of one `_bulk` response item, `{"create": {"status": 201, ...}}`."""
    if isinstance(item, dict):
        for result in item.values():
            if isinstance(result, dict) and isinstance(result.get("status"), int):
                return int(result["status"])
    return 200
