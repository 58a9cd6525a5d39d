"""Alerts and rule runs in the store: insert-once by Kibana's alert id, workflow status, history."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import duckdb
import msgspec

from reconwatch.plan.values import format_datetime
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


@dataclass(frozen=True, slots=True)
class AlertFilter:
    """Which stored alerts a list returns: by rule, status, stored time [since, until)."""

    rule_id: str | None = None
    status: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    size: int = 100
    offset: int = 0


def _with_status(row: tuple[object, ...]) -> dict[str, object]:
    """The stored document with its current workflow fields (Kibana's names)."""
    doc: dict[str, object] = msgspec.json.decode(str(row[0]))
    doc["kibana.alert.workflow_status"] = row[1]
    if row[3] is not None:
        doc["kibana.alert.workflow_user"] = row[2]
        doc["kibana.alert.workflow_status_updated_at"] = format_datetime(
            row[3].replace(tzinfo=UTC)  # type: ignore[attr-defined]
        )
    return doc


_COLUMNS = "SELECT document, status, status_by, status_at FROM alerts"


def list_alerts(
    cur: duckdb.DuckDBPyConnection, f: AlertFilter
) -> tuple[int, list[dict[str, object]]]:
    """(how many match, one page of them, oldest first)."""
    where: list[str] = []
    args: list[object] = []
    for column, value in (("rule_id", f.rule_id), ("status", f.status)):
        if value is not None:
            where.append(f"{column} = ?")
            args.append(value)
    if f.since is not None:
        where.append("created >= ?")
        args.append(naive_utc(f.since))
    if f.until is not None:
        where.append("created < ?")
        args.append(naive_utc(f.until))
    clause = f" WHERE {' AND '.join(where)}" if where else ""
    total_row = cur.execute(f"SELECT count(*) FROM alerts{clause}", args).fetchone()
    rows = cur.execute(
        f"{_COLUMNS}{clause} ORDER BY created, rowid LIMIT ? OFFSET ?", [*args, f.size, f.offset]
    ).fetchall()
    return (int(total_row[0]) if total_row else 0), [_with_status(r) for r in rows]


def get_alert(cur: duckdb.DuckDBPyConnection, alert_id: str) -> dict[str, object] | None:
    row = cur.execute(f"{_COLUMNS} WHERE id = ?", [alert_id]).fetchone()
    return None if row is None else _with_status(row)


def set_status(
    cur: duckdb.DuckDBPyConnection, alert_id: str, status: str, user: str, when: datetime
) -> dict[str, object] | None:
    """Set an alert's workflow status (who, when); None when there is no such alert."""
    if status not in STATUSES:
        msg = f"unknown status [{status}]; one of {', '.join(STATUSES)}"
        raise ValueError(msg)
    cur.execute(
        "UPDATE alerts SET status = ?, status_by = ?, status_at = ? WHERE id = ?",
        [status, user, naive_utc(when), alert_id],
    )
    return get_alert(cur, alert_id)
