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
# Alert fields copied to columns of their own for the queue's filters: field -> column.
FILTER_FIELDS = {
    "kibana.alert.severity": "severity",
    "host.name": "host",
    "process.executable": "executable",
    "kibana.alert.rule.name": "rule_name",
}


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
    cur: duckdb.DuckDBPyConnection,
    alerts: Sequence[Mapping[str, object]],
    now: datetime,
    groups: Sequence[tuple[str, datetime]] | None = None,
    *,
    held: bool = False,
) -> list[str]:
    """Store the alerts not stored yet; the ids of those that were new, in order. `groups`:
    each real-time alert's group key and detection time; `held`: kept from the sinks until
    released (`release_alert`)."""
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
    for i, (alert_id, alert) in enumerate(zip(ids, alerts, strict=True)):
        if alert_id in known:
            continue
        known.add(alert_id)
        fresh.append(alert_id)
        body = msgspec.json.encode(alert).decode("utf-8")
        key, detected = groups[i] if groups is not None else (None, None)
        at = None if detected is None else naive_utc(detected)
        rows.append(
            (
                alert_id,
                str(alert.get(RULE_ID, "")),
                naive_utc(now),
                "open",
                None,
                None,
                body,
                *(_text(alert.get(f)) for f in FILTER_FIELDS),
                key,
                at,
                held,
            )
        )
    if rows:
        cur.executemany(
            "INSERT INTO alerts (id, rule_id, created, status, status_by, status_at, document, "
            f"{', '.join(FILTER_FIELDS.values())}, group_key, detected, held) "
            f"VALUES ({', '.join('?' * 14)})",
            rows,
        )
    return fresh


def _text(value: object) -> str | None:
    if isinstance(value, list):
        value = value[0] if value else None
    return None if value is None else str(value)


def group_key(doc: Mapping[str, object], by: Sequence[str]) -> str:
    """A group's identity across real-time and scheduled alerts: its BY values as JSON."""
    return msgspec.json.encode([doc.get(name) for name in by]).decode("utf-8")


def find_group_alert(
    cur: duckdb.DuckDBPyConnection, rule_id: str, key: str, start: datetime, end: datetime
) -> tuple[str, dict[str, object]] | None:
    """The latest real-time alert of the rule's group `key` detected in [start, end]."""
    row = cur.execute(
        "SELECT id, document FROM alerts WHERE rule_id = ? AND group_key = ? AND detected >= ?"
        " AND detected <= ? ORDER BY detected DESC LIMIT 1",
        [rule_id, key, naive_utc(start), naive_utc(end)],
    ).fetchone()
    return None if row is None else (str(row[0]), msgspec.json.decode(row[1]))


def run_alerted(
    cur: duckdb.DuckDBPyConnection, rule_id: str, by: Sequence[str], key: str, detected: datetime
) -> bool:
    """Whether a scheduled or manual run of the rule alerted on the group `key` over a window
    that holds `detected`."""
    rows = cur.execute(
        "SELECT document FROM alerts WHERE rule_id = ? AND group_key IS NULL"
        " AND try_cast(json_extract_string(document, '$.\"reconwatch.run.from\"') AS TIMESTAMP)"
        " <= ? AND try_cast(json_extract_string(document, '$.\"reconwatch.run.to\"')"
        " AS TIMESTAMP) >= ?",
        [rule_id, naive_utc(detected), naive_utc(detected)],
    ).fetchall()
    return any(group_key(msgspec.json.decode(row[0]), by) == key for row in rows)


def update_documents(
    cur: duckdb.DuckDBPyConnection,
    updates: Sequence[tuple[str, Mapping[str, object]]],
    *,
    revise: bool = True,
) -> list[str]:
    """Rewrite the documents; with `revise`, an alert whose document changed in more than its
    `kibana.alert.last_detected` gets the next revision (`reconwatch.alert.revision` in the
    document too), which the sinks take again. The ids revised."""
    revised: list[str] = []
    for alert_id, doc in updates:
        row = cur.execute(
            "SELECT document, revision FROM alerts WHERE id = ?", [alert_id]
        ).fetchone()
        if row is None:
            continue
        revision = int(row[1] or 0)
        if revise and _changed(msgspec.json.decode(row[0]), doc):
            revision += 1
            doc = {**doc, REVISION: revision}
            revised.append(alert_id)
        body = msgspec.json.encode(doc).decode("utf-8")
        cur.execute(
            "UPDATE alerts SET document = ?, revision = ? WHERE id = ?", [body, revision, alert_id]
        )
    return revised


# Fields a later run's update sets every time: on their own they are no news for a sink.
_HEARTBEAT = (
    "kibana.alert.last_detected",
    "reconwatch.detection.updated_by",
    "reconwatch.alert.revision",
)
REVISION = "reconwatch.alert.revision"


def revision_of(doc: Mapping[str, object]) -> int:
    """The revision a stored document carries (0 before any update)."""
    value = doc.get(REVISION, 0)
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _changed(before: Mapping[str, object], after: Mapping[str, object]) -> bool:
    keys = (set(before) | set(after)) - set(_HEARTBEAT)
    return any(before.get(k) != after.get(k) for k in keys)


def insert_run(cur: duckdb.DuckDBPyConnection, run: RunRecord) -> None:
    cur.execute(
        "INSERT INTO rule_runs (rule_id, run_at, window_start, window_end, execution_type, "
        "alerts, gap_ms, error, warnings) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
    severity: str | None = None
    host: str | None = None
    executable: str | None = None
    newest_first: bool = False


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


def _where(f: AlertFilter, *, status: bool = True) -> tuple[str, list[object]]:
    """The WHERE clause of a filter (without its status when `status` is false)."""
    where: list[str] = []
    args: list[object] = []
    for column, value in (
        ("rule_id", f.rule_id),
        ("status", f.status if status else None),
        ("severity", f.severity),
        ("host", f.host),
        ("executable", f.executable),
    ):
        if value is not None:
            where.append(f"{column} = ?")
            args.append(value)
    if f.since is not None:
        where.append("created >= ?")
        args.append(naive_utc(f.since))
    if f.until is not None:
        where.append("created < ?")
        args.append(naive_utc(f.until))
    return (f" WHERE {' AND '.join(where)}" if where else ""), args


def list_alerts(
    cur: duckdb.DuckDBPyConnection, f: AlertFilter
) -> tuple[int, list[dict[str, object]]]:
    """(how many match, one page of them, oldest first or newest first)."""
    clause, args = _where(f)
    total_row = cur.execute(f"SELECT count(*) FROM alerts{clause}", args).fetchone()
    order = "created DESC, rowid DESC" if f.newest_first else "created, rowid"
    rows = cur.execute(
        f"{_COLUMNS}{clause} ORDER BY {order} LIMIT ? OFFSET ?", [*args, f.size, f.offset]
    ).fetchall()
    return (int(total_row[0]) if total_row else 0), [_with_status(r) for r in rows]


def status_counts(cur: duckdb.DuckDBPyConnection, f: AlertFilter) -> dict[str, int]:
    """How many alerts the filter (without its status) finds in each workflow status."""
    clause, args = _where(f, status=False)
    rows = cur.execute(f"SELECT status, count(*) FROM alerts{clause} GROUP BY status", args)
    found = dict(rows.fetchall())
    return {s: int(found.get(s, 0)) for s in STATUSES}


def facets(cur: duckdb.DuckDBPyConnection) -> dict[str, list[str]]:
    """The values the queue's filters can take (rules, severities), for its menus."""
    out: dict[str, list[str]] = {}
    for column in ("rule_id", "severity"):
        rows = cur.execute(
            f"SELECT DISTINCT {column} FROM alerts WHERE {column} IS NOT NULL ORDER BY 1"
        ).fetchall()
        out[column] = [r[0] for r in rows]
    return out


def related(
    cur: duckdb.DuckDBPyConnection, alert_id: str, host: str | None, executable: str | None
) -> list[dict[str, object]]:
    """Other alerts of the same host or executable, newest first (at most 20)."""
    rows = cur.execute(
        f"{_COLUMNS} WHERE id <> ? AND (host = ? OR executable = ?) "
        "ORDER BY created DESC, rowid DESC LIMIT 20",
        [alert_id, host, executable],
    ).fetchall()
    return [_with_status(r) for r in rows]


def set_statuses(
    cur: duckdb.DuckDBPyConnection, ids: list[str], status: str, user: str, when: datetime
) -> list[str]:
    """Set the status of every alert of `ids` (one statement); the ids that exist."""
    if status not in STATUSES:
        msg = f"unknown status [{status}]; one of {', '.join(STATUSES)}"
        raise ValueError(msg)
    found = [
        r[0]
        for r in cur.execute(
            "SELECT id FROM alerts WHERE id IN (SELECT unnest(?)) ORDER BY created, rowid", [ids]
        ).fetchall()
    ]
    if found:
        cur.execute(
            "UPDATE alerts SET status = ?, status_by = ?, status_at = ? "
            "WHERE id IN (SELECT unnest(?))",
            [status, user, naive_utc(when), found],
        )
    return found


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
