"""A host's stored activity for the triage UI, read in SQL over the events table: the activity
around an alert (its time range only, pruned by the zone maps) and when each executable was
first seen on the host (every stored event: the retention period)."""

from __future__ import annotations

from datetime import UTC, datetime

import duckdb

from reconwatch.store import rulefields
from reconwatch.store.events import naive_utc


def text_field(path: str) -> str:
    """A field of the stored _source as text, whether shipped nested ({"host": {"name"}}) or
    dotted ({"host.name"}): the nested spelling first."""
    nested = "$." + path
    return f"coalesce(json_extract_string(source, '{nested}'), json_extract_string(source, '$.\"{path}\"'))"


def column_field(path: str) -> str:
    """`text_field` as a plain row (no dotted key, so only the nested spelling) holds it in its
    rule-field column (`->> '$'` gives the text json_extract_string gives); `text_field` for a
    field without a column."""
    column = rulefields.COLUMNS.get(path)
    return text_field(path) if column is None else f"{column} ->> '$'"


def _host_events(fields: dict[str, str], where: str) -> str:
    """The host's events matching `where` (ts and `fields`, alias -> field path): plain rows read
    from the rule-field columns, the others (dotted keys; stored before the columns) from their
    text. Every stored event is a row of the history scan (first_seen): the plain rows' branch
    never reads the text column. Parameters: the host, twice, after each branch's `where`."""
    parts = []
    for rows, read in (("plain", column_field), ("plain IS NOT TRUE", text_field)):
        picked = ", ".join(f"{read(path)} AS {alias}" for alias, path in fields.items())
        parts.append(
            f"SELECT ts, {picked} FROM events WHERE {where} AND {rows} AND {read('host.name')} = ?"
        )
    return " UNION ALL ".join(parts)


def activity(
    cur: duckdb.DuckDBPyConnection, host: str, start: datetime, end: datetime, limit: int = 15
) -> list[tuple[str | None, str | None, int, int]]:
    """(executable, event.action, events, distinct destinations) of the host in [start, end],
    most events first."""
    fields = {"exe": "process.executable", "action": "event.action", "dip": "destination.ip"}
    bounds = [naive_utc(start), naive_utc(end)]
    rows = cur.execute(
        "SELECT exe, action, count(*) AS n, count(DISTINCT dip) AS d FROM ("
        f"{_host_events(fields, 'ts >= ? AND ts <= ?')}) "
        "GROUP BY exe, action ORDER BY n DESC, exe, action LIMIT ?",
        [*bounds, host, *bounds, host, limit],
    ).fetchall()
    return [(r[0], r[1], int(r[2]), int(r[3])) for r in rows]


def first_seen(
    cur: duckdb.DuckDBPyConnection, host: str, limit: int = 15
) -> list[tuple[str, datetime, int]]:
    """(executable, first seen, events) of the host over every stored event, newest first."""
    rows = cur.execute(
        "SELECT exe, min(ts) AS first, count(*) AS n FROM ("
        f"{_host_events({'exe': 'process.executable'}, 'true')}) WHERE exe IS NOT NULL "
        "GROUP BY exe ORDER BY first DESC NULLS LAST, exe LIMIT ?",
        [host, host, limit],
    ).fetchall()
    return [(r[0], r[1].replace(tzinfo=UTC), int(r[2])) for r in rows if r[1] is not None]
