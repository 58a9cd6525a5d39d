"""Prometheus metrics of one service: ingest, refusals, queue depth, rule runs and gaps."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest


class Metrics:
    """A registry of its own per service (tests run several services in one process)."""

    def __init__(self, queue_depth: Callable[[], float]) -> None:
        self.registry = CollectorRegistry()
        self.ingested = Counter(
            "reconwatch_events_ingested", "Events stored through _bulk", registry=self.registry
        )
        self.rejected = Counter(
            "reconwatch_events_rejected",
            "Bulk actions that failed (bad line, conflict, bad @timestamp)",
            registry=self.registry,
        )
        self.refused = Counter(
            "reconwatch_bulk_requests_refused",
            "Bulk requests refused whole",
            ["reason"],
            registry=self.registry,
        )
        self.queue = Gauge(
            "reconwatch_write_queue_depth", "Batches waiting for the writer", registry=self.registry
        )
        self.queue.set_function(queue_depth)
        self.runs = Histogram(
            "reconwatch_rule_run_duration_seconds",
            "Duration of one rule run",
            ["rule_id", "execution_type"],
            registry=self.registry,
        )
        self.run_errors = Counter(
            "reconwatch_rule_run_errors",
            "Rule runs that failed",
            ["rule_id"],
            registry=self.registry,
        )
        self.gaps = Counter(
            "reconwatch_rule_gaps",
            "Scheduled runs that left a gap",
            ["rule_id"],
            registry=self.registry,
        )
        self.alerts = Counter(
            "reconwatch_alerts_created", "Alerts stored", ["rule_id"], registry=self.registry
        )

        self.realtime_alerts = Counter(
            "reconwatch_realtime_alerts_created",
            "Alerts stored by the real-time rules",
            registry=self.registry,
        )
        self.realtime_held = Histogram(
            "reconwatch_realtime_alert_held_seconds",
            "How long a real-time alert was held from the sinks while its crossing point was found",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
            registry=self.registry,
        )
        self.sink_failures = Counter(
            "reconwatch_sink_failures",
            "Deliveries to a sink that failed (retried later)",
            ["sink"],
            registry=self.registry,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
