"""New alerts to the configured sinks (the alert-sink registry), at least once, never blocking runs."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Mapping, Sequence

from reconwatch.alerts.sinks import AlertSink, open_sink
from reconwatch.errors import ReconwatchError
from reconwatch.rules.model import Rule
from reconwatch.store import Store


class Delivery:
    """Each sink takes the alerts it has not taken yet, oldest first; a sink that fails keeps
    them for the next attempt (the next run, or the next start) and the others go on. An alert
    is marked taken after its sink's write returned, so a crash between the two delivers it
    again (at least once)."""

    def __init__(self, store: Store, sinks: Mapping[str, AlertSink]) -> None:
        self.store = store
        self.sinks = dict(sinks)
        self.failures: dict[str, int] = {name: 0 for name in self.sinks}
        self.last_error: dict[str, str] = {}
        self.on_failure: Callable[[str], None] | None = None
        # The schedule thread and manual runs both deliver: one at a time.
        self._lock = threading.Lock()

    @classmethod
    def open(cls, store: Store, targets: Sequence[str], rules: Mapping[str, Rule]) -> Delivery:
        """The sinks for `targets` (a path, `-` for stdout, or a registered scheme's URL); a
        target that cannot be opened stops the start (UsageError naming it)."""
        sinks: dict[str, AlertSink] = {}
        try:
            for target in targets:
                sinks[target] = open_sink(target, rules=rules, append=True)
        except BaseException:
            for sink in sinks.values():
                sink.close()
            raise
        return cls(store, sinks)

    def deliver(self) -> int:
        """Hand every sink what it has not taken; how many alert deliveries succeeded."""
        with self._lock:
            return self._deliver()

    def _deliver(self) -> int:
        done = 0
        for name, sink in self.sinks.items():
            while pending := self.store.undelivered(name):
                try:
                    sink.write([doc for _, doc in pending])
                except ReconwatchError as exc:
                    self.failures[name] += 1
                    self.last_error[name] = exc.one_line()
                    if self.on_failure is not None:
                        self.on_failure(name)
                    break
                self.last_error.pop(name, None)
                self.store.mark_delivered(name, [alert_id for alert_id, _ in pending])
                done += len(pending)
        return done

    def close(self) -> None:
        for sink in self.sinks.values():
            # Nothing more can be written to a failed one; its alerts stay undelivered.
            with contextlib.suppress(ReconwatchError):
                sink.close()
