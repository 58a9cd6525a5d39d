"""The service's clock-driven thread: rule runs when due, retention once an hour."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime, timedelta

from reconwatch.errors import ReconwatchError
from reconwatch.service.delivery import Delivery
from reconwatch.service.scheduler import Clock, Scheduler
from reconwatch.store import Store, StoreError

RETENTION_EVERY = timedelta(hours=1)
# The longest wait between looks at the clock (a stop request is seen at once).
MAX_WAIT_SECONDS = 1.0


class Loop:
    """Runs `scheduler.tick()` whenever a rule is due by `clock` and the store's retention every
    hour, on a thread of its own; ingest never waits for either."""

    def __init__(
        self, scheduler: Scheduler, store: Store, clock: Clock, delivery: Delivery | None = None
    ) -> None:
        self.scheduler = scheduler
        self.delivery = delivery
        self._delivered_once = False
        self.store = store
        self.clock = clock
        self.errors: list[str] = []
        # Looks at the rule directories (service.rules.RuleReloader) before each step.
        self.reload: Callable[[], object] | None = None
        self._stop = threading.Event()
        self._next_retention: datetime | None = None
        self._thread = threading.Thread(target=self._run, name="reconwatch-schedule", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Finish the step under way (a run, its delivery), then stop; at once if never started."""
        self._stop.set()
        if self._thread.ident is not None:
            self._thread.join()

    def step(self) -> float:
        """Do what is due now; the seconds until something may be due."""
        if self.reload is not None:
            try:
                self.reload()
            except ReconwatchError as exc:
                self.errors.append(f"reloading the rules: {exc.one_line()}")
        now = self.clock()
        if self._next_retention is None or now >= self._next_retention:
            try:
                self.store.enforce_retention()
            except StoreError as exc:
                self.errors.append(str(exc))
            self._next_retention = now + RETENTION_EVERY
        due = self.scheduler.next_due()
        if due is not None and due <= now:
            self.scheduler.tick()
            self._deliver()
            return 0.0
        if not self._delivered_once:
            self._deliver()  # what an earlier process left undelivered
        wait = MAX_WAIT_SECONDS if due is None else (due - now).total_seconds()
        return max(0.0, min(wait, MAX_WAIT_SECONDS))

    def _deliver(self) -> None:
        self._delivered_once = True
        if self.delivery is not None:
            self.delivery.kick()

    def _run(self) -> None:
        while not self._stop.is_set():
            wait = self.step()
            if wait > 0:
                self._stop.wait(wait)
