"""A host's activity and first sightings read from the rule-field columns, as from the text."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import duckdb
import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reconwatch.store import context, rulefields, schema

T0 = datetime(2026, 1, 2, 11, 0, tzinfo=UTC)

# One host ("h") in every shape a client may send it, and its look-alikes: nested, dotted,
# partly dotted, escaped dots, multi-valued, numbers where text is expected, JSON nulls, keys
# repeated, objects where a value is expected; the last two rows stand for events stored before
# the columns existed (schema version 1: `plain` NULL).
DOCS = [
    '{"host":{"name":"h"},"process":{"executable":"/a"},"event":{"action":"x"},"destination":{"ip":"10.0.0.1"}}',
    '{"host":{"name":"h"},"process":{"executable":"/a"},"event":{"action":"x"},"destination":{"ip":"10.0.0.2"}}',
    '{"host.name":"h","process.executable":"/b","event.action":"y","destination.ip":"10.0.0.3"}',
    '{"host":{"name":"h"},"process.executable":"/c","event":{"action":"x"},"destination":{"ip":"10.0.0.1"}}',
    '{"host":{"name":"h"},"process":{"executable":"/d"},"event.action":"z","destination":{"ip":1234}}',
    '{"host\\u002ename":"h","process":{"executable":"/e"}}',
    '{"host":{"name":["h","g"]},"process":{"executable":"/f"}}',
    '{"host":{"name":"h"},"process":{"executable":["/g","/h"]},"destination":{"ip":["10.0.0.1","10.0.0.9"]}}',
    '{"host":{"name":"h"},"process":{"executable":null},"event":{"action":null}}',
    '{"host":{"name":"h","name":"h2"},"process":{"executable":"/i"}}',
    '{"host":{"name":"h"},"process":{"executable":{"path":"/j"}},"event":{"action":"x"}}',
    '{"host":{"name":"h"},"process":{"executable":7},"event":{"action":1.5e3}}',
    '{"host":{"name":"h"},"process":{"executable":"caf\\u00e9 \\"q\\""},"event":{"action":"x"}}',
    '{"host":{"name":"h"},"message":"\\"host.name\\": not a key","process":{"executable":"/k"}}',
    '{"host":{"name":"g"},"process":{"executable":"/a"},"event":{"action":"x"}}',
    '{"host":"h","process":{"executable":"/l"}}',
    '{"host":{"name":"h"},"process":{"executable":"/old"},"event":{"action":"x"}}',
    '{"host.name":"h","process":{"executable":"/old2"}}',
]
OLD_ROWS = 2


def _events(docs: list[str], old_rows: int = 0) -> duckdb.DuckDBPyConnection:
    """An events table holding `docs` a minute apart, written as the store writes them; the
    last `old_rows` as a version 1 store left them (no columns, `plain` NULL)."""
    con = duckdb.connect()
    con.execute(schema.EVENTS)
    con.execute(
        "CREATE TEMP TABLE batch AS SELECT i AS seq, 'x' AS idx, i::VARCHAR AS id, 1 AS version,"
        " ? + to_minutes(i) AS ts, ? AS ingested, t AS source, ? AS arrived"
        " FROM (SELECT unnest(?) AS t, generate_subscripts(?, 1) AS i)",
        [*(T0.replace(tzinfo=None),) * 3, docs, docs],
    )
    con.execute(rulefields.insert_sql("batch"))
    if old_rows:
        nulls = ", ".join(f"{c} = NULL" for c in rulefields.COLUMNS.values())
        con.execute(
            f"UPDATE events SET plain = NULL, {nulls} WHERE seq > ?", [len(docs) - old_rows]
        )
    return con


def _activity_from_text(
    con: duckdb.DuckDBPyConnection, host: str, start: datetime, end: datetime
) -> list[tuple[object, ...]]:
    """The activity query as it read every field from the text (before the columns)."""
    f = context.text_field
    rows = con.execute(
        f"SELECT {f('process.executable')} AS exe, {f('event.action')} AS action, count(*) AS n, "
        f"count(DISTINCT {f('destination.ip')}) AS d FROM events WHERE ts >= ? AND ts <= ? AND "
        f"{f('host.name')} = ? GROUP BY exe, action ORDER BY n DESC, exe, action LIMIT 15",
        [start.replace(tzinfo=None), end.replace(tzinfo=None), host],
    ).fetchall()
    return [(r[0], r[1], int(r[2]), int(r[3])) for r in rows]


def _first_seen_from_text(con: duckdb.DuckDBPyConnection, host: str) -> list[tuple[object, ...]]:
    f = context.text_field
    rows = con.execute(
        f"SELECT {f('process.executable')} AS exe, min(ts) AS first, count(*) AS n FROM events "
        f"WHERE {f('host.name')} = ? AND exe IS NOT NULL "
        "GROUP BY exe ORDER BY first DESC NULLS LAST, exe LIMIT 15",
        [host],
    ).fetchall()
    return [(r[0], r[1].replace(tzinfo=UTC), int(r[2])) for r in rows]


def _hosts() -> list[str]:
    return ["h", "g", "h2", '["h","g"]', "nobody"]


def test_the_columns_are_read_for_plain_rows_and_the_text_for_the_others() -> None:
    con = _events(DOCS, OLD_ROWS)
    plain = [r[0] for r in con.execute("SELECT plain FROM events ORDER BY seq").fetchall()]
    # The fixture covers every kind of row: plain, dotted (read from the text), version 1.
    assert True in plain and False in plain and plain[-OLD_ROWS:] == [None] * OLD_ROWS
    end = T0 + timedelta(hours=1)
    for host in _hosts():
        assert context.activity(con, host, T0, end) == _activity_from_text(con, host, T0, end)
        assert context.first_seen(con, host) == _first_seen_from_text(con, host)
    # Pinned by hand, so the two readings cannot agree by being wrong the same way: the nested
    # spelling first (`/c` rows read process.executable from its dotted key), a multi-valued
    # field as its JSON text, a number as its text, JSON null as NULL.
    got = context.activity(con, "h", T0, end, limit=100)
    assert ("/a", "x", 2, 2) in got
    assert ("/b", "y", 1, 1) in got
    assert ("/c", "x", 1, 1) in got
    assert ("/d", "z", 1, 1) in got
    assert ("/e", None, 1, 0) in got
    assert ('["/g","/h"]', None, 1, 1) in got
    assert (None, None, 1, 0) in got
    assert ('{"path":"/j"}', "x", 1, 0) in got
    assert ("7", "1500.0", 1, 0) in got or ("7", "1.5e3", 1, 0) in got
    assert ("/old", "x", 1, 0) in got and ("/old2", None, 1, 0) in got
    assert all(row[0] not in ("/f", "/l") for row in got)  # host.name is not "h" there
    seen = dict((exe, n) for exe, _first, n in context.first_seen(con, "h", limit=100))
    assert seen["/a"] == 2 and "/old2" in seen and None not in seen


def test_a_window_reads_only_its_time_range() -> None:
    con = _events(DOCS)
    # DOCS[i] is at T0 + i + 1 minutes: [3, 4] holds the third and fourth documents.
    got = context.activity(con, "h", T0 + timedelta(minutes=3), T0 + timedelta(minutes=4))
    assert sorted(r[0] for r in got) == ["/b", "/c"]


_NAMES = st.sampled_from(["h", "g", ["h"], ["h", "g"], None, 3])
_EXES = st.sampled_from(["/a", "/b", ["/a", "/b"], None, 1.25, {"x": 1}])
_LEAF = st.sampled_from(["x", "y", None, 0, ["x"]])


@st.composite
def _document(draw: st.DrawFn) -> str:
    doc: dict[str, object] = {}
    for path, values in (
        ("host.name", _NAMES),
        ("process.executable", _EXES),
        ("event.action", _LEAF),
        ("destination.ip", _LEAF),
    ):
        spelling = draw(st.sampled_from(["nested", "dotted", "both", "absent"]))
        head, tail = path.split(".")
        if spelling in ("nested", "both"):
            inner = doc.setdefault(head, {})
            if isinstance(inner, dict):
                inner[tail] = draw(values)
        if spelling in ("dotted", "both"):
            doc[path] = draw(values)
    return msgspec.json.encode(doc).decode()


@pytest.mark.slow
@settings(max_examples=30, deadline=None)
@given(st.lists(_document(), min_size=1, max_size=8), st.integers(0, 2))
def test_any_documents_read_the_same_from_the_columns(docs: list[str], old_rows: int) -> None:
    con = _events(docs, min(old_rows, len(docs)))
    end = T0 + timedelta(days=1)
    for host in _hosts():
        assert context.activity(con, host, T0, end) == _activity_from_text(con, host, T0, end)
        assert context.first_seen(con, host) == _first_seen_from_text(con, host)
