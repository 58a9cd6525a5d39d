"""Values the store vouches for (`irregular` noted at ingest) are read with no check, and every
query reads from them exactly what the checked read gives: rows, types, warnings, errors."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import Clock, query_outcome
from reconwatch.ingest import fast
from reconwatch.service.storequery import run_on_store
from reconwatch.store import NewEvent, Store, rulefields, schema
from reconwatch.store.window import StoredWindow, window_dataset
from reconwatch.types import DataType as T

NOW = datetime(2026, 1, 2, 12, 0, tzinfo=UTC)
START = datetime(2026, 1, 2, 11, 0, tzinfo=UTC)
NET = "logs-endpoint.events.network-default"
PATTERNS = ("logs-endpoint.events.network-*",)

QUERIES = [
    (
        'FROM logs-endpoint.events.network-* | WHERE host.os.type == "linux" AND '
        'event.type == "start" | STATS n = count(*), ips = count_distinct(destination.ip), '
        "hosts = values(host.name) BY process.executable | SORT process.executable"
    ),
    (
        "FROM logs-endpoint.events.network-* METADATA _id, _index, _version | KEEP _id, _index,"
        " _version, @timestamp, event.ingested, host.name, event.type, destination.ip,"
        " destination.port, process.pid | SORT _id"
    ),
    (
        "FROM logs-endpoint.events.network-* | MV_EXPAND event.category | WHERE @timestamp >"
        " now() - 1 hour | EVAL p = destination.port + 1 | KEEP event.category, p, process.args,"
        " process.args_count, source.ip, user.name | SORT event.category, p, source.ip, user.name"
    ),
]

# Values of each shape the store notes regular, and a few it does not.
_TEXT = st.text(alphabet=st.sampled_from('ab"\\\u00e9\u0000/. [{1-'), max_size=5)
_REGULAR = {
    T.KEYWORD: st.one_of(st.none(), _TEXT, st.lists(_TEXT, max_size=3)),
    T.IP: st.one_of(
        st.none(), st.sampled_from(["10.0.0.1", "10.0.0.2", "192.168.1.255", "0.0.0.0"])
    ),
    T.DATETIME: st.one_of(
        st.none(),
        st.sampled_from(
            [
                "2026-01-02T11:30:00.000Z",
                "2026-01-02T11:45:01Z",
                "2026-01-02T11:59:59.5",
                "2026-01-02T11:10:00.12Z",
            ]
        ),
    ),
    T.LONG: st.one_of(st.none(), st.integers(-(10**17), 10**17)),
    T.INTEGER: st.one_of(st.none(), st.integers(-(10**8), 10**8)),
}
_IRREGULAR = {
    T.KEYWORD: st.one_of(
        st.integers(), st.booleans(), st.floats(allow_nan=False), st.just([["a"]])
    ),
    T.IP: st.sampled_from(["::1", "010.0.0.1", "x", "::ffff:10.0.0.1"]),
    T.DATETIME: st.sampled_from([1767351780000, "2026-01-02", "2026-01-02T11:30:00+01:00"]),
    T.LONG: st.one_of(st.just(10**19), st.just("7"), st.just(1.5)),
    T.INTEGER: st.one_of(st.just(10**10), st.just([1, 2])),
}
# The fields the queries read, with their ECS types.
FIELDS = {
    "@timestamp": T.DATETIME,
    "event.ingested": T.DATETIME,
    "host.name": T.KEYWORD,
    "host.os.type": T.KEYWORD,
    "event.type": T.KEYWORD,
    "event.category": T.KEYWORD,
    "process.executable": T.KEYWORD,
    "process.args": T.KEYWORD,
    "process.args_count": T.INTEGER,
    "process.pid": T.LONG,
    "destination.ip": T.IP,
    "destination.port": T.LONG,
    "source.ip": T.IP,
    "user.name": T.KEYWORD,
}


def _nested(flat: dict[str, object]) -> dict[str, object]:
    doc: dict[str, object] = {}
    for name, value in flat.items():
        node = doc
        *parents, leaf = name.split(".")
        for part in parents:
            node = node.setdefault(part, {})  # type: ignore[assignment]
        node[leaf] = value
    return doc


@st.composite
def _documents(draw: st.DrawFn, irregular: bool) -> list[dict[str, object]]:
    docs = []
    for _ in range(draw(st.integers(1, 12))):
        flat: dict[str, object] = {"@timestamp": "2026-01-02T11:20:00.000Z"}
        for name, type_ in FIELDS.items():
            if draw(st.booleans()):
                odd = irregular and draw(st.integers(0, 9)) == 0
                flat[name] = draw(_IRREGULAR[type_] if odd else _REGULAR[type_])
        docs.append(_nested(flat))
    return docs


def _compare(tmp_path: Path, docs: list[dict[str, object]]) -> list[bool]:
    """Each query's outcome read with the store's regular values and with the checks; whether
    each read took the regular path."""
    store = Store(tmp_path / "data", Clock(NOW))
    taken: list[bool] = []
    real = StoredWindow.regular

    def regular(self: StoredWindow, fields: list[tuple[str, T]]) -> str | None:
        out = real(self, fields)
        taken.append(out is not None)
        return out

    try:
        store.write(
            [NewEvent("create", NET, f"e{i}", msgspec.json.encode(d)) for i, d in enumerate(docs)]
        )
        for query in QUERIES:

            def run(q: str = query) -> object:
                return run_on_store(store, q, window_dataset(store, PATTERNS, START, NOW), NOW)

            with pytest.MonkeyPatch.context() as mp:
                mp.setattr(StoredWindow, "regular", regular)
                got = query_outcome(run)
            with pytest.MonkeyPatch.context() as mp:
                mp.setattr(StoredWindow, "regular", lambda self, fields: None)
                checked = query_outcome(run)
            assert got == checked, query
    finally:
        store.close()
        shutil.rmtree(tmp_path / "data")
    return taken


@pytest.mark.slow
@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(docs=_documents(irregular=False))
def test_regular_values_read_as_the_checks_read_them(
    tmp_path: Path, docs: list[dict[str, object]]
) -> None:
    taken = _compare(tmp_path, docs)
    # Documents of regular values only: every read but the validating reader's took it.
    assert any(taken)


@pytest.mark.slow
@settings(
    max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(docs=_documents(irregular=True))
def test_a_window_with_an_irregular_value_reads_as_the_checks_read_it(
    tmp_path: Path, docs: list[dict[str, object]]
) -> None:
    _compare(tmp_path, docs)


def test_an_irregular_value_sends_the_read_to_the_checks(tmp_path: Path) -> None:
    regular = {"@timestamp": "2026-01-02T11:20:00.000Z", "destination": {"ip": "10.0.0.1"}}
    odd = {"@timestamp": "2026-01-02T11:21:00.000Z", "destination": {"ip": "::1"}}
    store = Store(tmp_path / "data", Clock(NOW))
    try:
        store.write([NewEvent("create", NET, None, msgspec.json.encode(d)) for d in (regular, odd)])
        window = StoredWindow(store, NET, START, NOW, "ts")
        assert window.regular([("@timestamp", T.DATETIME)]) is not None
        assert window.regular([("destination.ip", T.IP)]) is None
        # Asked as another type than its ECS one, or a field the store does not keep: no.
        assert window.regular([("host.name", T.IP)]) is None
        assert window.regular([("custom.score", T.LONG)]) is None
        result = run_on_store(
            store,
            "FROM logs-endpoint.events.network-* | KEEP destination.ip | SORT destination.ip",
            window_dataset(store, PATTERNS, START, NOW),
            NOW,
        )
    finally:
        store.close()
    # Sorted as ES|QL sorts addresses (IPv6 order, ::1 first), read by the checked path.
    assert result.rows == [("::1",), ("10.0.0.1",)]


@pytest.mark.parametrize(
    ("value", "type_", "regular"),
    [
        ('"a\\"b"', T.KEYWORD, True),
        ('["a","b"]', T.KEYWORD, True),
        ("[]", T.KEYWORD, True),
        ('["a",1]', T.KEYWORD, False),
        ('[["a"]]', T.KEYWORD, False),
        ("1", T.KEYWORD, False),
        ("null", T.KEYWORD, True),
        (None, T.IP, True),
        ('"10.0.0.1"', T.IP, True),
        ('"010.0.0.1"', T.IP, False),
        ('"::1"', T.IP, False),
        ('"2026-01-02T11:00:00.000Z"', T.DATETIME, True),
        ('"2026-13-02T11:00:00Z"', T.DATETIME, False),
        ("1767351780000", T.DATETIME, False),
        ("123456789012345678", T.LONG, True),
        ("1234567890123456789", T.LONG, False),
        ("1234567890", T.INTEGER, False),
        ("1.5", T.LONG, False),
        ('"1"', T.LONG, False),
        ("true", T.BOOLEAN, False),
    ],
)
def test_regular_shapes(value: str | None, type_: T, regular: bool) -> None:
    con = duckdb.connect()
    row = con.execute(
        f"SELECT {fast.regular_shape('j', type_)} FROM (SELECT ?::JSON AS j)", [value]
    ).fetchone()
    assert row == (regular,)


def test_a_version_2_store_is_upgraded_and_its_rows_read_with_the_checks(tmp_path: Path) -> None:
    data = tmp_path / "data"
    store = Store(data, Clock(NOW))
    store.write(
        [
            NewEvent(
                "create", NET, "old", b'{"@timestamp":"2026-01-02T11:30:00Z","host":{"name":"old"}}'
            )
        ]
    )
    cur = store.cursor()
    # As version 2 left it: no `irregular` column.
    cur.execute("ALTER TABLE events DROP COLUMN irregular")
    cur.execute("UPDATE store_meta SET value = '2' WHERE key = 'schema_version'")
    cur.close()
    store.close()
    store = Store(data, Clock(NOW))
    try:
        cur = store.cursor()
        version = cur.execute(
            "SELECT value FROM store_meta WHERE key = 'schema_version'"
        ).fetchall()
        cur.close()
        fields = [("host.name", T.KEYWORD)]
        assert StoredWindow(store, NET, START, NOW, "ts").regular(fields) is None
        store.write(
            [
                NewEvent(
                    "create",
                    NET,
                    "new",
                    b'{"@timestamp":"2026-01-02T11:40:00Z","host":{"name":"new"}}',
                )
            ]
        )
        # A window holding an old row is read with the checks; one of new rows only is not.
        assert StoredWindow(store, NET, START, NOW, "ts").regular(fields) is None
        later = datetime(2026, 1, 2, 11, 35, tzinfo=UTC)
        assert StoredWindow(store, NET, later, NOW, "ts").regular(fields) is not None
        query = (
            "FROM logs-endpoint.events.network-* | STATS n = count(*) BY host.name | SORT host.name"
        )
        result = run_on_store(store, query, window_dataset(store, PATTERNS, START, NOW), NOW)
    finally:
        store.close()
    assert version == [(str(schema.SCHEMA_VERSION),)] == [("4",)]
    assert result.rows == [(1, "new"), (1, "old")]


def test_every_stored_field_has_a_bit() -> None:
    assert set(rulefields.BITS) == set(rulefields.FIELDS)
    assert len(set(rulefields.BITS.values())) == len(rulefields.FIELDS)
    # Each stored field's ECS type is one its values can be regular for: none always checked.
    assert all(t in fast.REGULAR_TYPES for t in rulefields.TYPES.values())


def test_a_date_is_regular_only_when_its_typed_column_holds_its_cast() -> None:
    # @timestamp and event.ingested are read from the store's ts and ingested columns when
    # regular: a text whose cast is not that column's value (whatever made it so) is irregular.
    con = duckdb.connect()
    con.execute(schema.EVENTS)
    text = '{"@timestamp":"2026-01-02T11:00:00.000Z","event":{"ingested":"2026-01-02T11:00:01Z"}}'
    con.execute(
        "CREATE TEMP TABLE batch AS SELECT * FROM (VALUES"
        " (1, 'x', 'a', 1, TIMESTAMP '2026-01-02 11:00:00', TIMESTAMP '2026-01-02 11:00:01', ?,"
        "  TIMESTAMP '2026-01-02'),"
        " (2, 'x', 'b', 1, TIMESTAMP '2026-01-02 11:00:00.5', TIMESTAMP '2026-01-02 11:00:01', ?,"
        "  TIMESTAMP '2026-01-02'),"
        " (3, 'x', 'c', 1, TIMESTAMP '2026-01-02 11:00:00', TIMESTAMP '2026-01-02 11:00:02', ?,"
        "  TIMESTAMP '2026-01-02'))"
        " AS t(seq, idx, id, version, ts, ingested, source, arrived)",
        [text, text, text],
    )
    con.execute(rulefields.insert_sql("batch"))
    rows = con.execute("SELECT seq, irregular FROM events ORDER BY seq").fetchall()
    stamp, ingested = rulefields.BITS["@timestamp"], rulefields.BITS["event.ingested"]
    assert rows == [(1, 0), (2, stamp), (3, ingested)]


def test_events_the_store_stamps_are_regular(tmp_path: Path) -> None:
    # A client's events (no event.ingested: the store stamps it, at a clock with microseconds,
    # into the text and the ingested column alike) are read without the checks by a rule over
    # event.ingested, as the seed rule is.
    store = Store(tmp_path / "data", Clock(NOW - timedelta(microseconds=123_457)))
    doc = {
        "@timestamp": "2026-01-02T11:30:00.125Z",
        "event": {"type": ["start"], "action": "connection_attempted"},
        "host": {"name": "h", "os": {"type": "linux"}},
        "destination": {"ip": "10.0.0.1", "port": 22},
        "process": {"executable": "/x", "pid": 7},
    }
    try:
        store.write([NewEvent("create", NET, None, msgspec.json.encode(doc))])
        store.write([NewEvent("create", NET, None, doc)])  # a decoded document, too
        window = StoredWindow(store, NET, START, NOW, "ingested")
        fields = [(n, FIELDS[n]) for n in ("@timestamp", "event.ingested", "host.name")]
        assert window.regular(fields) is not None
        cur = store.cursor()
        rows = cur.execute("SELECT ingested FROM events").fetchall()
        cur.close()
    finally:
        store.close()
    stamp = (NOW - timedelta(microseconds=123_457)).replace(tzinfo=None, microsecond=876_000)
    assert rows == [(stamp,), (stamp,)]


def test_a_version_3_store_has_its_bits_dropped(tmp_path: Path) -> None:
    # Version 3 noted dates regular without comparing them to ts and ingested: its bits are
    # dropped on upgrade (its rows read with the checks), new rows get the new ones.
    data = tmp_path / "data"
    store = Store(data, Clock(NOW))
    store.write([NewEvent("create", NET, "old", b'{"@timestamp":"2026-01-02T11:30:00Z"}')])
    cur = store.cursor()
    cur.execute("UPDATE store_meta SET value = '3' WHERE key = 'schema_version'")
    cur.close()
    store.close()
    store = Store(data, Clock(NOW))
    try:
        fields = [("@timestamp", T.DATETIME)]
        assert StoredWindow(store, NET, START, NOW, "ts").regular(fields) is None
        store.write([NewEvent("create", NET, "new", b'{"@timestamp":"2026-01-02T11:40:00Z"}')])
        later = datetime(2026, 1, 2, 11, 35, tzinfo=UTC)
        assert StoredWindow(store, NET, later, NOW, "ts").regular(fields) is not None
        cur = store.cursor()
        rows = cur.execute("SELECT id, irregular FROM events ORDER BY seq").fetchall()
        cur.close()
    finally:
        store.close()
    assert rows == [("old", None), ("new", 0)]
