"""`serve --demo`: the shipped sample stored once, and every rule run over its hour."""

from __future__ import annotations

import gzip
from datetime import UTC, datetime
from importlib import resources

from reconwatch.service.scheduler import Scheduler
from reconwatch.store import NewEvent, Store

SAMPLE = ("data", "sample", "defend-network-sample.ndjson.gz")
SAMPLE_INDEX = "logs-endpoint.events.network-default"
# The sample covers this hour (its README); the demo runs each rule over it.
SAMPLE_START = datetime(2025, 7, 16, 9, 0, tzinfo=UTC)
SAMPLE_END = datetime(2025, 7, 16, 10, 0, tzinfo=UTC)
BATCH = 1000


def load_demo(store: Store, scheduler: Scheduler | None) -> tuple[int, int]:
    """Store the sample (ids demo-<line>: a restart stores nothing twice) and run every rule
    over its hour; (events stored now, alerts created now)."""
    stored = 0
    batch: list[NewEvent] = []
    raw = resources.files("reconwatch").joinpath(*SAMPLE).read_bytes()
    for number, line in enumerate(gzip.decompress(raw).splitlines(), start=1):
        if line.strip():
            batch.append(NewEvent("create", SAMPLE_INDEX, f"demo-{number}", line))
        if len(batch) >= BATCH:
            stored += _write(store, batch)
            batch = []
    if batch:
        stored += _write(store, batch)
    created = 0
    if scheduler is not None:
        for rule_id in scheduler.states:
            outcomes = scheduler.run_manual(rule_id, SAMPLE_START, SAMPLE_END)
            created += sum(len(o.created) for o in outcomes)
    return stored, created


def _write(store: Store, batch: list[NewEvent]) -> int:
    return sum(1 for w in store.write(batch) if w.error_type is None)
