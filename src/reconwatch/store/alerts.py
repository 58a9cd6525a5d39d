"""Alerts and rule runs in the store: insert-once by Kibana's alert id, workflow status, history."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

import duckdb
import msgspec

from reconwatch.store.events import naive_utc

STATUSES = ("open", "acknowledged", "closed")
ALERT_ID = "kibana.alert.uuid"
RULE_ID = "kibana.alert.rule.rule_id"


@dataclass(frozen=True, slots=True)
class RunRecord:
    """One rule run as the history keeps it."""

    rule_id: str
    run_at: datetime
    start: datetime
    end: datetime
    execution_type: str
    alerts: int
    gap_ms: int = 0
    error: str | None = None
    warnings: tuple[str, ...] = ()


def insert_alerts(
    cur: duckdb.DuckDBPyConnection, alerts: Sequence[Mapping[str, object]], now: datetime
) -> list[str]:
    """Store the alerts not stored yet; the ids of those that were new, in order."""
    ids = [str(a[ALERT_ID]) for a in alerts]
    if not ids:
        return []
    known = {
        r[0]
        for r in cur.execute(
            "SELECT id FROM alerts WHERE id IN (SELECT unnest(?))", [ids]
        ).fetchall()
    }
    fresh: list[str] = []
    rows = []
    for alert_id, alert in zip(ids, alerts, strict=True):
        if alert_id in known:
            continue
        known.add(alert_id)
        fresh.append(alert_id)
        body = msgspec.json.encode(alert).decode("utf-8")
        rows.append(
            (alert_id, str(alert.get(RULE_ID, "")), naive_utc(now), "open", None, None, body)
        )
    if rows:
        cur.executemany("INSERT INTO alerts VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
    return fresh


def insert_run(cur: duckdb.DuckDBPyConnection, run: RunRecord) -> None:
    cur.execute(
        "INSERT INTO rule_runs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            run.rule_id,
            naive_utc(run.run_at),
            naive_utc(run.start),
            naive_utc(run.end),
            run.execution_type,
            run.alerts,
            run.gap_ms,
            run.error,
            msgspec.json.encode(list(run.warnings)).decode("utf-8"),
        ],
    )
