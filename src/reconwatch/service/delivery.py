"""New alerts to the configured sinks (the alert-sink registry), at least once, never blocking runs."""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import msgspec

from reconwatch.alerts.sinks import AlertSink, open_sink
from reconwatch.errors import ReconwatchError
from reconwatch.rules.model import Rule
from reconwatch.service import sinks as _network_sinks  # registers webhook, syslog, _bulk
from reconwatch.store import Store

_ = _network_sinks
# Waits after consecutive failures: 1 s, 2 s, 4 s ... at most a minute.
FIRST_BACKOFF_SECONDS = 1.0
MAX_BACKOFF_SECONDS = 60.0
# Alerts handed to a sink per write.
BATCH = 100


@dataclass(frozen=True, slots=True)
class SinkSpec:
    """One configured destination: where, and what happens when it keeps failing (after
    `max_attempts` failed writes in a row, the alerts it could not take go to `dead_letter`,
    an NDJSON file, and count as delivered; without one they wait for it for ever)."""

    target: str
    max_attempts: int | None = None
    dead_letter: Path | None = None


@dataclass(slots=True)
class _SinkState:
    sink: AlertSink
    spec: SinkSpec
    failures_in_row: int = 0
    retry_at: float = 0.0
    dead_lettered: int = 0
    wake: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)


class Delivery:
    """Each sink takes the alerts it has not taken yet, oldest first; a sink that fails keeps
    them for the next attempt (after its backoff, or the next start) and the others go on. An
    alert is marked taken after its sink's write returned, so a crash between the two delivers
    it again (at least once). Started, each sink has a thread of its own: a slow or hanging sink
    holds nothing but itself; `kick` wakes them."""

    def __init__(
        self,
        store: Store,
        sinks: Mapping[str, AlertSink],
        specs: Mapping[str, SinkSpec] | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.sinks = dict(sinks)
        self._states = {
            name: _SinkState(sink, (specs or {}).get(name, SinkSpec(name)))
            for name, sink in self.sinks.items()
        }
        self.failures: dict[str, int] = {name: 0 for name in self.sinks}
        self.last_error: dict[str, str] = {}
        self.on_failure: Callable[[str], None] | None = None
        self._monotonic = monotonic
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    @classmethod
    def open(
        cls,
        store: Store,
        targets: Sequence[str | SinkSpec],
        rules: Mapping[str, Rule],
    ) -> Delivery:
        """The sinks for `targets` (a path, `-` for stdout, or a registered scheme's URL); a
        target that cannot be opened stops the start (UsageError naming it)."""
        sinks: dict[str, AlertSink] = {}
        specs: dict[str, SinkSpec] = {}
        try:
            for target in targets:
                spec = target if isinstance(target, SinkSpec) else SinkSpec(target)
                sinks[spec.target] = open_sink(spec.target, rules=rules, append=True)
                specs[spec.target] = spec
        except BaseException:
            for sink in sinks.values():
                sink.close()
            raise
        return cls(store, sinks, specs)

    def dead_lettered(self, name: str) -> int:
        return self._states[name].dead_lettered

    # -- synchronous (tests, start-up) and threaded delivery ----------------------------------------

    def deliver(self) -> int:
        """Hand every sink what it has not taken, now (backoffs ignored); how many alert
        deliveries succeeded."""
        return sum(self._deliver_one(name, force=True) for name in self._states)

    def start(self) -> None:
        """A thread per sink, delivering when kicked and after each backoff."""
        for name in self._states:
            thread = threading.Thread(
                target=self._run, args=(name,), name=f"reconwatch-sink-{name}", daemon=True
            )
            thread.start()
            self._threads.append(thread)

    def kick(self) -> None:
        """New alerts are stored: wake the sinks' threads (delivering at once when not started)."""
        if not self._threads:
            self.deliver()
            return
        for state in self._states.values():
            state.wake.set()

    def _run(self, name: str) -> None:
        state = self._states[name]
        state.wake.set()  # what an earlier process left undelivered
        while not self._stop.is_set():
            wait = max(0.0, state.retry_at - self._monotonic())
            if wait > 0:
                state.wake.wait(min(wait, MAX_BACKOFF_SECONDS))
                state.wake.clear()
                continue
            state.wake.wait(1.0)
            state.wake.clear()
            if not self._stop.is_set():
                self._deliver_one(name, force=False)

    def _deliver_one(self, name: str, *, force: bool) -> int:
        state = self._states[name]
        with state.lock:
            if not force and self._monotonic() < state.retry_at:
                return 0
            done = 0
            while pending := self.store.undelivered(name, BATCH):
                try:
                    state.sink.write([doc for _, doc in pending])
                except ReconwatchError as exc:
                    if not self._failed(name, state, exc, pending):
                        break
                    continue  # dead-lettered: the next alerts
                state.failures_in_row = 0
                state.retry_at = 0.0
                self.last_error.pop(name, None)
                self.store.mark_delivered(name, pending)
                done += len(pending)
            return done

    def _failed(
        self,
        name: str,
        state: _SinkState,
        exc: ReconwatchError,
        pending: list[tuple[str, dict[str, object]]],
    ) -> bool:
        """Count a failed write and set the backoff; True when the alerts were dead-lettered."""
        self.failures[name] += 1
        self.last_error[name] = exc.one_line()
        if self.on_failure is not None:
            self.on_failure(name)
        state.failures_in_row += 1
        spec = state.spec
        exhausted = spec.max_attempts is not None and state.failures_in_row >= spec.max_attempts
        if exhausted and spec.dead_letter is not None and _dead_letter(spec.dead_letter, pending):
            self.store.mark_delivered(name, pending)
            state.dead_lettered += len(pending)
            state.failures_in_row = 0
            return True
        backoff = FIRST_BACKOFF_SECONDS * 2 ** (state.failures_in_row - 1)
        state.retry_at = self._monotonic() + min(backoff, MAX_BACKOFF_SECONDS)
        return False

    def close(self) -> None:
        self._stop.set()
        for state in self._states.values():
            state.wake.set()
        for thread in self._threads:
            thread.join(timeout=2 * MAX_BACKOFF_SECONDS)
        if self._threads:
            # A clean stop hands each working sink what is left (a failing one waits for the
            # next start, as after a crash).
            for name in self._states:
                self._deliver_one(name, force=False)
        for state in self._states.values():
            # Nothing more can be written to a failed one; its alerts stay undelivered.
            with state.lock, contextlib.suppress(ReconwatchError):
                state.sink.close()


def _dead_letter(path: Path, pending: list[tuple[str, dict[str, object]]]) -> bool:
    """Append the alerts to the dead-letter file, on disk before they count as delivered."""
    try:
        with path.open("ab") as out:
            for _, doc in pending:
                out.write(msgspec.json.encode(doc) + b"\n")
            out.flush()
            os.fsync(out.fileno())
    except OSError:
        return False
    return True
