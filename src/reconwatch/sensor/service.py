"""Picks and prepares the collector for a backend name, checking the host can run it."""

from __future__ import annotations

from pathlib import Path

from reconwatch.errors import UsageError
from reconwatch.sensor.runner import Collector


def build_collector(
    backend: str, *, audit_log: Path | None = None, tracer: str = "auto"
) -> Collector:
    if backend == "ebpf":
        from reconwatch.sensor.bpf import select_tracer

        return select_tracer(tracer)
    if backend == "auditd":
        from reconwatch.sensor.auditd_live import AuditCollector, check_audit_environment

        return AuditCollector(**check_audit_environment(audit_log))
    raise UsageError(f"unknown backend {backend!r}: use ebpf or auditd")
