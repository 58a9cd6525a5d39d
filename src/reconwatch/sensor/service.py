"""Picks and prepares the collector for a backend name, checking the host can run it."""

from __future__ import annotations

from pathlib import Path

from reconwatch.errors import UsageError
from reconwatch.sensor.runner import Collector

# How long the core tracer keeps a raw probe waiting for its answer: matched within one to two
# such periods (the loader's filter and table; see docs/sensor.md).
ANSWER_SECONDS = 30


def build_collector(
    backend: str,
    *,
    audit_log: Path | None = None,
    tracer: str = "auto",
    answer_seconds: int = ANSWER_SECONDS,
) -> Collector:
    if backend == "ebpf":
        from reconwatch.sensor.bpf import select_tracer

        return select_tracer(tracer, answer_seconds=answer_seconds)
    if backend == "auditd":
        from reconwatch.sensor.auditd_live import AuditCollector, check_audit_environment

        return AuditCollector(**check_audit_environment(audit_log))
    raise UsageError(f"unknown backend {backend!r}: use ebpf or auditd")
