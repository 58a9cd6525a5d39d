"""The rule-field columns: a plain document's columns read as its text reads, and runs agree."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import Clock, query_outcome
from reconwatch.query import run_query
from reconwatch.service.storequery import run_on_store
from reconwatch.store import NewEvent, Store, StoreError, rulefields, schema
from reconwatch.store.window import StoredWindow, window_dataset

NOW = datetime(2026, 1, 2, 12, 0, tzinfo=UTC)
START = datetime(2026, 1, 2, 11, 0, tzinfo=UTC)
NET = "logs-endpoint.events.network-default"
PATTERNS = ("logs-endpoint.events.network-*",)


def _raw(text: bytes | str, id_: str | None = None) -> NewEvent:
    return NewEvent("create", NET, id_, text.encode() if isinstance(text, str) else text)


# Texts as clients send them, including the shapes the columns must not misread: arrays,
# nulls, numbers where text is expected, escapes, dotted keys (plain, nested, escaped), a key
# repeated, an object where a value is expected, a string that looks like a dotted key.
TEXTS = [
    (
        '{"@timestamp":"2026-01-02T11:01:00.000Z","host":{"name":"a","os":{"type":"linux"}},'
        '"event":{"action":"connection_attempted","type":["start"]},"process":{"executable":"/x",'
        '"pid":12},"destination":{"ip":"10.0.0.1","port":22},"agent":{"id":"g1"}}'
    ),
    (
        '{"@timestamp":"2026-01-02T11:02:00.000Z","host":{"name":["b","a"],"os":{"type":"linux"}},'
        '"event":{"action":"connection_attempted","type":"start"},"destination":{"ip":"::ffff:10.0.0.2",'
        '"port":"23"},"agent":{"id":null}}'
    ),
    (
        '{"@timestamp":1767351780000,"host":{"name":"c\\u00e9","os":{"type":null}},'
        '"event":{"action":"x\\"y","type":["start","connection"]},"destination":{"ip":"10.0.0.3",'
        '"port":24.0},"process":{"executable":5,"pid":"13"}}'
    ),
    (
        '{"@timestamp":"2026-01-02T11:04:00.000Z","host.name":"dotted","host":{"os.type":"linux"},'
        '"event":{"action":"connection_attempted"},"destination":{"ip":"10.0.0.4"}}'
    ),
    (
        '{"@timestamp":"2026-01-02T11:05:00.000Z","process":{"parent.name":"p","executable":"/y"},'
        '"destination":{"ip":"10.0.0.5"}}'
    ),
    (
        '{"@timestamp":"2026-01-02T11:06:00.000Z","host\\u002ename":"escaped-dot",'
        '"destination":{"ip":"10.0.0.6"}}'
    ),
    (
        '{"@timestamp":"2026-01-02T11:07:00.000Z","host":{"name":"first","name":"second"},'
        '"destination":{"ip":"10.0.0.7","ip":"10.0.0.77"}}'
    ),
    (
        '{"@timestamp":"2026-01-02T11:08:00.000Z","host":"not-an-object","destination":'
        '[{"ip":"10.0.0.8"}],"event":{"type":[["start"]],"action":{"a":1}}}'
    ),
    (
        '{"@timestamp":"2026-01-02T11:09:00.000Z","message":"see \\"host.name\\": x",'
        '"host":{"name":"looks-dotted"},"destination":{"ip":"10.0.0.9","port":1}}'
    ),
    '{ "@timestamp" : "2026-01-02T11:10:00.000Z" , "host" : { "name" : "spaced" } }',
    '{"@timestamp":"2026-01-02T11:11:00.000Z","destination":{"port":true},"source":{"port":[1,2]}}',
]

# Queries over fields the columns hold (and one that is not among them: the text path).
QUERIES = [
    "FROM logs-endpoint.events.network-* | STATS n = count(*) BY host.name | SORT host.name",
    (
        "FROM logs-endpoint.events.network-* | KEEP @timestamp, host.name, destination.ip,"
        " destination.port, event.action | SORT @timestamp"
    ),
    (
        'FROM logs-endpoint.events.network-* | WHERE event.type == "start"'
        " | STATS ips = count_distinct(destination.ip) BY host.os.type"
    ),
    (
        "FROM logs-endpoint.events.network-* | MV_EXPAND event.type | STATS c = count(*) BY event.type"
        " | SORT event.type"
    ),
    (
        "FROM logs-endpoint.events.network-* | KEEP process.executable, process.pid, agent.id"
        " | SORT process.pid"
    ),
    "FROM logs-endpoint.events.network-* | KEEP custom.field, host.name | SORT host.name",
]


def _store(tmp_path: Path, texts: list[str]) -> Store:
    store = Store(tmp_path / "data", Clock(NOW))
    store.write([_raw(t, f"e{i}") for i, t in enumerate(texts)])
    return store


@pytest.mark.parametrize("query", QUERIES)
def test_columns_read_what_the_text_reads(
    tmp_path: Path, query: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = _store(tmp_path, TEXTS)
    try:

        def run() -> object:
            return run_on_store(store, query, window_dataset(store, PATTERNS, START, NOW), NOW)

        got = query_outcome(run, sort_rows=True)
        documents = query_outcome(
            lambda: run_query(query, window_dataset(store, PATTERNS, START, NOW), now=NOW),
            sort_rows=True,
        )
        monkeypatch.setattr(rulefields, "covered", lambda structure: None)
        text = query_outcome(run, sort_rows=True)
    finally:
        store.close()
    assert got == text
    assert got == documents


def test_plain_marks_only_documents_without_dotted_keys(tmp_path: Path) -> None:
    store = _store(tmp_path, TEXTS)
    try:
        cur = store.cursor()
        rows = cur.execute("SELECT id, plain FROM events ORDER BY seq").fetchall()
        cur.close()
    finally:
        store.close()
    plain = {doc_id: flag for doc_id, flag in rows}
    # Dotted keys, nested or escaped, are never plain; the string that looks like one costs
    # only speed (read from its text).
    assert not plain["e3"] and not plain["e4"] and not plain["e5"]
    assert plain["e0"] and plain["e1"] and plain["e2"] and plain["e6"] and plain["e7"]


_KEYS = st.sampled_from(["host", "name", "os", "type", "event", "action", "ip", "a.b", "x"])
_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**64),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=6),
)
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_KEYS, inner, max_size=3),
    max_leaves=8,
)


@settings(max_examples=25, deadline=None)
@given(st.lists(st.dictionaries(_KEYS, _VALUES, max_size=4), min_size=1, max_size=5))
def test_columns_equal_json_transform_for_plain_documents(docs: list[dict[str, object]]) -> None:
    # The claim the run relies on, in SQL: for every plain row, each leaf of a structure over
    # stored fields reads the same from the columns as json_transform reads from the text.
    con = duckdb.connect()
    con.execute(schema.EVENTS)
    texts = [
        msgspec.json.encode({"@timestamp": "2026-01-02T11:00:00Z", **d}).decode() for d in docs
    ]
    con.execute(
        "CREATE TEMP TABLE batch AS SELECT i AS seq, 'x' AS idx, i::VARCHAR AS id, 1 AS version,"
        " NULL::TIMESTAMP AS ts, TIMESTAMP '2026-01-01' AS ingested, t AS source,"
        " TIMESTAMP '2026-01-01' AS arrived FROM (SELECT unnest(?) AS t, generate_subscripts(?, 1) AS i)",
        [texts, texts],
    )
    con.execute(rulefields.insert_sql("batch"))
    structure = (
        '{"host": {"name": "VARCHAR", "os": {"type": "JSON"}, "os.type": "VARCHAR"},'
        ' "host.name": "JSON", "event": {"action": "VARCHAR", "type": "JSON"},'
        ' "destination": {"ip": "VARCHAR"}, "@timestamp": "VARCHAR"}'
    )
    tree = rulefields.covered(structure)
    assert tree is not None
    cols = con.execute(
        f"SELECT {rulefields.columns_select(tree)} FROM events WHERE plain ORDER BY seq"
    ).fetchall()
    text = con.execute(
        f"SELECT unnest(json_transform(source, '{structure}')) FROM events WHERE plain ORDER BY seq"
    ).fetchall()
    # The engine reads leaves only; an absent object is a NULL struct in the text's reading
    # and a struct of NULLs from the columns, which reads the same at every leaf.
    assert [_leaf_values(r, tree) for r in cols] == [_leaf_values(r, tree) for r in text]


def _leaf_values(row: tuple[object, ...], tree: dict[str, object]) -> list[object]:
    out: list[object] = []

    def walk(value: object, node: object) -> None:
        if isinstance(node, dict):
            for key, child in node.items():
                walk(value.get(key) if isinstance(value, dict) else None, child)
        else:
            out.append(value)

    for value, node in zip(row, tree.values(), strict=True):
        walk(value, node)
    return out


def test_fields_outside_the_columns_are_read_from_the_text() -> None:
    assert rulefields.covered('{"host": {"name": "VARCHAR"}}') is not None
    assert rulefields.covered('{"custom": {"score": "JSON"}}') is None
    assert rulefields.covered('{"host": "JSON"}') is None  # a whole object
    assert rulefields.covered("not json") is None


def test_an_old_store_is_upgraded_and_read_as_before(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    con = duckdb.connect(str(data / "reconwatch.duckdb"))
    old = schema.EVENTS.split("arrived TIMESTAMP NOT NULL,")[0] + "arrived TIMESTAMP NOT NULL)"
    con.execute(old)
    con.execute(
        "INSERT INTO events VALUES (0, ?, 'old', 1, TIMESTAMP '2026-01-02 11:30:00',"
        " TIMESTAMP '2026-01-02 11:30:00', ?, TIMESTAMP '2026-01-02 11:30:00')",
        [NET, '{"@timestamp":"2026-01-02T11:30:00Z","host":{"name":"old"}}'],
    )
    con.execute("CREATE TABLE indices (idx VARCHAR PRIMARY KEY, created TIMESTAMP NOT NULL)")
    con.execute("INSERT INTO indices VALUES (?, TIMESTAMP '2026-01-02')", [NET])
    con.close()
    store = Store(data, Clock(NOW))
    try:
        store.write([_raw(TEXTS[0], "new")])
        query = (
            "FROM logs-endpoint.events.network-* | STATS n = count(*) BY host.name | SORT host.name"
        )
        result = run_on_store(store, query, window_dataset(store, PATTERNS, START, NOW), NOW)
        cur = store.cursor()
        version = cur.execute("SELECT value FROM store_meta").fetchall()
        cur.close()
    finally:
        store.close()
    assert result.rows == [(1, "a"), (1, "old")]
    assert version == [(str(schema.SCHEMA_VERSION),)]


def test_a_store_from_a_newer_reconwatch_is_refused(tmp_path: Path) -> None:
    store = Store(tmp_path / "data", Clock(NOW))
    cur = store.cursor()
    cur.execute("UPDATE store_meta SET value = '99' WHERE key = 'schema_version'")
    cur.close()
    store.close()
    with pytest.raises(StoreError, match="schema version 99, newer than this reconwatch"):
        Store(tmp_path / "data", Clock(NOW))


def test_a_text_the_column_parser_refuses_is_stored_and_not_plain() -> None:
    # The store's own check comes first; should DuckDB's parser still refuse a text, that row
    # is stored (read from its text later) and the rest of the batch with it.
    con = duckdb.connect()
    con.execute(schema.EVENTS)
    texts = ['{"host":{"name":"\\ud800"}}', '{"host":{"name":"a"}}']
    con.execute(
        "CREATE TEMP TABLE batch AS SELECT i AS seq, 'x' AS idx, i::VARCHAR AS id, 1 AS version,"
        " NULL::TIMESTAMP AS ts, TIMESTAMP '2026-01-01' AS ingested, t AS source,"
        " TIMESTAMP '2026-01-01' AS arrived"
        " FROM (SELECT unnest(?) AS t, generate_subscripts(?, 1) AS i)",
        [texts, texts],
    )
    con.execute(rulefields.insert_sql("batch"))
    rows = con.execute("SELECT seq, plain, f_host_name FROM events ORDER BY seq").fetchall()
    assert rows == [(1, False, None), (2, True, '"a"')]


PLAIN = [0, 1, 2, 6, 7, 9, 10]  # the TEXTS without a dotted key (or a string like one)


@pytest.mark.parametrize("with_dotted", [False, True])
def test_a_window_of_plain_rows_is_one_scan_in_arrival_order(
    tmp_path: Path, with_dotted: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Only plain rows in the window: the columns are read by one scan, without the union and
    # sort that put plain and other rows back in arrival order; a window holding one other row
    # takes the union. Both give what the text gives, rows in arrival order (no SORT here).
    texts = [TEXTS[i] for i in PLAIN] + ([TEXTS[3]] if with_dotted else [])
    store = _store(tmp_path, texts)
    query = "FROM logs-endpoint.events.network-* METADATA _id | KEEP _id, host.name, destination.ip"
    try:
        structure = '\'{"host": {"name": "VARCHAR"}, "destination": {"ip": "VARCHAR"}}\''
        stored = StoredWindow(store, NET, START, NOW, "ts")
        assert ("UNION ALL" in stored.relation(structure)) is with_dotted

        def run() -> object:
            return run_on_store(store, query, window_dataset(store, PATTERNS, START, NOW), NOW)

        got = run()
        monkeypatch.setattr(rulefields, "covered", lambda structure: None)
        text = run()
    finally:
        store.close()
    assert got.rows == text.rows  # type: ignore[attr-defined]
    assert [r[0] for r in got.rows] == [f"e{i}" for i in range(len(texts))]  # type: ignore[attr-defined]


@pytest.mark.parametrize("with_dotted", [False, True])
def test_a_rule_window_read_skips_row_groups_outside_its_range(
    tmp_path: Path, with_dotted: bool
) -> None:
    # The relation a run reads (columns; with a dotted row in the window, the union of columns
    # and text) scans only the row groups its time range meets, as the bare window query does
    # (tests/unit/test_store.py): a run's cost does not grow with the history. Rows made in SQL.
    store = Store(tmp_path / "data", Clock(NOW))
    cur = store.cursor()
    host = rulefields.COLUMNS["host.name"]
    cur.execute(
        f"INSERT INTO events (seq, idx, id, version, ts, ingested, source, arrived, plain, {host}) "
        "SELECT i, ?, i::VARCHAR, 1, TIMESTAMP '2026-01-01' + to_seconds(i), "
        'TIMESTAMP \'2026-01-01\' + to_seconds(i), \'{"host":{"name":"h"}}\', '
        "TIMESTAMP '2026-01-01', true, '\"h\"' FROM range(500000) t(i)",
        [NET],
    )
    if with_dotted:
        cur.execute(
            "UPDATE events SET plain = false, "
            'source = \'{"host":{"name":"h"},"a.b":1}\' WHERE seq = 349200'
        )
    cur.execute("INSERT INTO indices VALUES (?, TIMESTAMP '2026-01-01')", [NET])
    start, end = datetime(2026, 1, 5, tzinfo=UTC), datetime(2026, 1, 5, 1, tzinfo=UTC)
    structure = '\'{"host": {"name": "VARCHAR"}}\''
    profiles = []
    for column in ("ts", "ingested"):
        relation = StoredWindow(store, NET, start, end, column).relation(structure)
        assert ("UNION ALL" in relation) is with_dotted
        cur.execute("PRAGMA enable_profiling = 'json'")
        profiles.append(
            json.loads(
                cur.execute(f"EXPLAIN ANALYZE SELECT count(*) FROM {relation}").fetchall()[0][1]
            )["query"]
        )
        cur.execute("PRAGMA disable_profiling")
        count = cur.execute(f"SELECT count(*), count(host) FROM {relation}").fetchone()
        assert count == (3601, 3601)
    cur.close()
    store.close()
    scans = 2 if with_dotted else 1  # the union scans the table once per branch
    for query in profiles:
        assert query["total_row_groups_to_scan"] >= 4 * scans
        assert query["total_row_groups_scanned"] <= 2 * scans
        assert query["total_rows_scanned"] < 500000 * scans // 2
