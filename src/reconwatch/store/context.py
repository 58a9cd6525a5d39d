"""A host's stored activity for the triage UI, read in SQL over the events table: the activity
around an alert (its time range only, pruned by the zone maps) and when each executable was
first seen on the host (every stored event: the retention period)."""

from __future__ import annotations

from datetime import UTC, datetime

import duckdb

from reconwatch.store.events import naive_utc


def _field(path: str) -> str:
    """A field of the stored _source whether shipped nested ({"host": {"name"}}) or dotted."""
    nested = "$." + path
    return f"coalesce(json_extract_string(source, '{nested}'), json_extract_string(source, '$.\"{path}\"'))"


def activity(
    cur: duckdb.DuckDBPyConnection, host: str, start: datetime, end: datetime, limit: int = 15
) -> list[tuple[str | None, str | None, int, int]]:
    """(executable, event.action, events, distinct destinations) of the host in [start, end],
    most events first."""
    rows = cur.execute(
        f"SELECT {_field('process.executable')} AS exe, {_field('event.action')} AS action, "
        f"count(*) AS n, count(DISTINCT {_field('destination.ip')}) AS d FROM events "
        f"WHERE ts >= ? AND ts <= ? AND {_field('host.name')} = ? "
        "GROUP BY exe, action ORDER BY n DESC, exe LIMIT ?",
        [naive_utc(start), naive_utc(end), host, limit],
    ).fetchall()
    return [(r[0], r[1], int(r[2]), int(r[3])) for r in rows]


def first_seen(
    cur: duckdb.DuckDBPyConnection, host: str, limit: int = 15
) -> list[tuple[str, datetime, int]]:
    """(executable, first seen, events) of the host over every stored event, newest first."""
    rows = cur.execute(
        f"SELECT {_field('process.executable')} AS exe, min(ts) AS first, count(*) AS n "
        f"FROM events WHERE {_field('host.name')} = ? AND exe IS NOT NULL "
        "GROUP BY exe ORDER BY first DESC NULLS LAST, exe LIMIT ?",
        [host, limit],
    ).fetchall()
    return [(r[0], r[1].replace(tzinfo=UTC), int(r[2])) for r in rows if r[1] is not None]
