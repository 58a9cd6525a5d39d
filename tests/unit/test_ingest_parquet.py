"""DuckDB's own Parquet reading (ingest.parquet) gives what the validating row reader gives: the same
columns, types, rows, warnings and bad-event reports, over generated files with awkward types,
nested and dotted spellings, lists, nulls, misfits and corruption; `detect` over an export alerts
as over its NDJSON."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import run_cli
from reconwatch.ecs.schema import ECS_FIELDS
from reconwatch.errors import ReconwatchError
from reconwatch.ingest import Dataset, parquet
from reconwatch.ingest.sparkread import FIELDS_KEY, WRITER, WRITER_KEY
from reconwatch.plan.nodes import Column
from reconwatch.query import run_query
from reconwatch.types import DataType as T

NOW = datetime(2024, 1, 2, tzinfo=UTC)
T0 = datetime(2024, 1, 1, tzinfo=UTC)


def _naive(*parts: int) -> datetime:
    """A time as a Parquet timestamp without a zone holds it (UTC)."""
    return datetime(*parts, tzinfo=UTC).replace(tzinfo=None)


@pytest.fixture
def row_reads(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The files the validating reader reads (pyarrow's read_table), in order."""
    seen: list[str] = []
    real = pq.read_table

    def spy(source: Any, *args: Any, **kwargs: Any) -> pa.Table:
        seen.append(str(source))
        return real(source, *args, **kwargs)

    monkeypatch.setattr(pq, "read_table", spy)
    yield seen


@pytest.fixture
def duck_reads(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The files DuckDB's Parquet reader read rows of (a SELECT made for them)."""
    seen: list[str] = []
    real = parquet.select_sql

    def spy(files: list[tuple[str, int]], *args: Any, **kwargs: Any) -> str | None:
        sql = real(files, *args, **kwargs)
        if sql is not None:
            seen.extend(path for path, _ in files)
        return sql

    monkeypatch.setattr(parquet, "select_sql", spy)
    yield seen


def _outcome(query: str, paths: list[Path], fast: bool) -> tuple[object, ...]:
    """Everything a user sees of a query: columns with types, rows, warnings, the report."""
    ds = Dataset.from_files(paths)
    ds.duckdb_parquet = fast
    try:
        result = run_query(query, ds, now=NOW)
    except ReconwatchError as exc:
        return ("error", str(exc), ds.report.lines())
    columns = [(c.name, c.type, c.multivalued) for c in result.columns]
    return (columns, result.rows, result.warnings, ds.report.lines(), ds.report.events)


def _same(query: str, paths: list[Path], row_reads: list[str] | None = None) -> tuple[object, ...]:
    """The outcome, the same with DuckDB's Parquet reader as with the row reader only;
    `row_reads` (the fixture's list): the row reader read nothing in the first run."""
    fast = _outcome(query, paths, fast=True)
    if row_reads is not None:
        assert row_reads == []
    assert fast == _outcome(query, paths, fast=False)
    return fast


def _unordered(outcome: tuple[object, ...]) -> tuple[object, ...]:
    if outcome[0] == "error":
        return outcome
    rows = outcome[1]
    assert isinstance(rows, list)
    return (outcome[0], sorted(map(repr, rows)), *outcome[2:])


def _write(
    path: Path, columns: dict[str, tuple[pa.DataType, list[object]]], declared: object = None
) -> Path:
    table = pa.table({n: pa.array(v, type=t) for n, (t, v) in columns.items()})
    if declared is not None:
        meta = {WRITER_KEY.encode(): WRITER.encode(), FIELDS_KEY.encode(): json.dumps(declared)}
        table = table.replace_schema_metadata(meta)
    pq.write_table(table, path)
    return path


# -- table-driven: what each kind of column gives, and that DuckDB read it ------------------------

KEEP = (
    "from logs-* | keep @timestamp, destination.ip, destination.port, host.ip, event.type, "
    "user.name, event.risk_score, process.args_count"
)


def test_clean_file_is_read_by_duckdb_with_the_row_readers_values(
    tmp_path: Path, duck_reads: list[str], row_reads: list[str]
) -> None:
    stamps = [T0 + timedelta(microseconds=1500), None, T0 - timedelta(microseconds=1)]
    path = _write(
        tmp_path / "clean.parquet",
        {
            "@timestamp": (pa.timestamp("us"), [s and s.replace(tzinfo=None) for s in stamps]),
            "destination": (
                pa.struct([("ip", pa.string()), ("port", pa.int32())]),
                [{"ip": "::ffff:10.0.0.1", "port": 22}, None, {"ip": "10.0.0.2", "port": None}],
            ),
            "host.ip": (pa.list_(pa.string()), [["10.0.0.9", "10.0.0.1", None], [], None]),
            "event.type": (pa.list_(pa.string()), [["start"], ["end", "start"], None]),
            "user.name": (pa.int64(), [7, None, -1]),
            "event.risk_score": (pa.float32(), [1.5, -0.0, None]),
            "process.args_count": (pa.uint64(), [2, None, 2**31 - 1]),
        },
    )
    out = _same(KEEP, [path], row_reads)
    assert set(duck_reads) == {str(path)}
    rows = out[1]
    assert rows[0][:3] == (T0 + timedelta(milliseconds=1), "10.0.0.1", 22)
    assert rows[0][3] == ["10.0.0.1", "10.0.0.9"]  # a multivalue, in doc-values order
    assert rows[2][0] == T0 - timedelta(milliseconds=1)  # floored, as Python's datetime is
    assert rows[1][4] == ["end", "start"] and rows[2][4] is None
    assert rows[0][5] == "7" and rows[2][6] is None


@pytest.mark.parametrize(
    ("name", "column", "bad"),
    [
        ("destination.ip", (pa.string(), ["10.0.0.1", "010.0.0.1", None]), 2),
        ("destination.port", (pa.uint64(), [1, 2**63, 3]), 2),
        ("process.args_count", (pa.int64(), [1, 2**31, 3]), 2),
        ("event.risk_score", (pa.float64(), [1.0, math.nan, 2.5]), 2),
        ("@timestamp", (pa.string(), ["2024-01-01T00:00:00Z", "yesterday", None]), 2),
        ("host.ip", (pa.list_(pa.string()), [["10.0.0.1"], ["10.0.0.2", "x"], []]), 2),
    ],
)
@pytest.mark.parametrize("declared", [False, True])
def test_a_misfit_sends_the_file_to_the_row_reader_which_reports_it(
    tmp_path: Path,
    duck_reads: list[str],
    name: str,
    column: tuple[pa.DataType, list[object]],
    bad: int,
    declared: bool,
) -> None:
    # Declared in the footer (an export's): no Python read learns the fields, so only the
    # check of every value in SQL finds the misfit.
    fields = [[name, ECS_FIELDS[name].value, name == "host.ip"], ["k", "keyword", False]]
    cols = {name: column, "k": (pa.string(), ["a", "b", "c"])}
    path = _write(tmp_path / "bad.parquet", cols, fields if declared else None)
    out = _same("from logs-* | stats c = count(*), v = values(k)", [path])
    assert duck_reads == []
    if not declared:
        assert out[3][0].startswith(f"{path}:{bad}: field [{name}]")
        assert out[1] == [(2, ["a", "c"])]


@pytest.mark.parametrize(
    "column",
    [
        (pa.date32(), [_naive(2024, 1, 1).date()]),
        (pa.binary(), [b"\x00"]),
        (pa.timestamp("ns"), [_naive(2024, 1, 1)]),
        (pa.timestamp("us", tz="UTC"), [T0]),
        (pa.list_(pa.struct([("a", pa.int64())])), [[{"a": 1}]]),
        (pa.float64(), [22.0]),  # a double where an ECS long is expected
    ],
)
def test_an_unmapped_column_type_sends_the_file_to_the_row_reader(
    tmp_path: Path, duck_reads: list[str], column: tuple[pa.DataType, list[object]]
) -> None:
    cols = {"destination.port": column, "k": (pa.string(), ["a"])}
    declared = [["destination.port", "long", False], ["k", "keyword", False]]
    for path in (
        _write(tmp_path / "odd.parquet", cols),
        _write(tmp_path / "x.parquet", cols, declared),
    ):
        _same("from logs-* | keep k, destination.port", [path])
    assert duck_reads == []


def test_dotted_and_nested_spellings_meet_in_one_field(
    tmp_path: Path, duck_reads: list[str], row_reads: list[str]
) -> None:
    path = _write(
        tmp_path / "both.parquet",
        {
            "host": (
                pa.struct([("ip", pa.list_(pa.string())), ("name", pa.string())]),
                [
                    {"ip": ["10.0.0.3"], "name": "a"},
                    {"ip": None, "name": None},
                ],
            ),
            "host.ip": (pa.string(), ["10.0.0.2", "10.0.0.3"]),
            "host.name": (pa.string(), [None, "b"]),
        },
    )
    out = _same("from logs-* | keep host.ip, host.name", [path], row_reads)
    assert set(duck_reads) == {str(path)}
    assert out[1] == [(["10.0.0.2", "10.0.0.3"], "a"), ("10.0.0.3", "b")]


def test_warnings_and_fields_outside_the_schema(
    tmp_path: Path, duck_reads: list[str], row_reads: list[str]
) -> None:
    path = _write(
        tmp_path / "custom.parquet",
        {
            "custom.s": (pa.string(), ["12", "x", None]),
            "custom.n": (pa.int64(), [1, 2**40, None]),
            "custom.f": (pa.float64(), [0.5, 2.0, None]),
            "custom.t": (pa.timestamp("ms"), [_naive(2024, 1, 1), None, _naive(1, 1, 1)]),
            "custom.b": (pa.bool_(), [True, None, False]),
        },
    )
    out = _same(
        "from logs-* | eval i = to_integer(custom.s), j = to_integer(custom.n) "
        "| keep custom.*, i, j",
        [path],
        row_reads,
    )
    assert set(duck_reads) == {str(path)}
    assert out[2]  # the conversions' warnings, as the row reader's run gives them


def test_exported_file_declares_its_fields_and_is_never_read_in_python(
    tmp_path: Path, row_reads: list[str]
) -> None:
    declared = [["@timestamp", "datetime", False], ["destination.ip", "ip", False]]
    path = _write(
        tmp_path / "data_0.parquet",
        {
            "@timestamp": (pa.timestamp("us"), [_naive(2024, 1, 1), _naive(2024, 1, 1, 1)]),
            "destination.ip": (pa.string(), ["10.0.0.1", "10.0.0.2"]),
        },
        declared,
    )
    out = _same(
        "from logs-* | stats d = count_distinct(destination.ip), m = max(@timestamp)",
        [path],
        row_reads,
    )
    assert out[1] == [(2, datetime(2024, 1, 1, 1, tzinfo=UTC))] and out[4] == 2


def test_exported_single_valued_field_holding_several_values_is_null(
    tmp_path: Path, row_reads: list[str]
) -> None:
    # The footer says single-valued; a row holds two: the row reader's cell is null (no
    # "multivalued" signal turns the field into a list, as one would for NDJSON).
    declared = [["host.ip", "ip", False], ["@timestamp", "datetime", False]]
    stamps = [_naive(2024, 1, 1, 0, 0, 0, 1500), _naive(2024, 1, 1, 0, 0, 0, 1200), None]
    path = _write(
        tmp_path / "data_0.parquet",
        {
            "host.ip": (pa.list_(pa.string()), [["10.0.0.2", "10.0.0.1"], ["10.0.0.3"], []]),
            "@timestamp": (pa.timestamp("us"), stamps),
        },
        declared,
    )
    out = _same("from logs-* | keep host.ip", [path], row_reads)
    assert out[1] == [(None,), ("10.0.0.3",), (None,)]
    # Microseconds are dropped as the row reader drops them: one distinct time, not two.
    out = _same("from logs-* | stats d = count_distinct(@timestamp)", [path])
    assert out[1] == [(1,)]


def test_corrupt_and_truncated_files_are_reported_as_the_row_reader_does(tmp_path: Path) -> None:
    good = _write(tmp_path / "good.parquet", {"k": (pa.string(), ["a", "b"] * 50)})
    data = good.read_bytes()
    truncated = tmp_path / "truncated.parquet"
    truncated.write_bytes(data[: len(data) // 2])
    flipped = tmp_path / "flipped.parquet"
    middle = len(data) // 3
    flipped.write_bytes(data[:middle] + bytes(16) + data[middle + 16 :])
    empty = tmp_path / "empty.parquet"
    _write(empty, {"k": (pa.string(), [])})
    for paths in ([good, truncated], [flipped], [empty, good]):
        _same("from logs-* | stats c = count(*), v = values(k)", paths)


@pytest.mark.parametrize(
    ("texts", "type_", "duckdb_rows"),
    [
        (["2024-01-01T00:00:00Z", None, "2024-01-02T10:00:00.5Z"], T.DATETIME, True),
        # A date without a time: DuckDB's cast is not trusted with it, the row reader reads.
        (["2024-01-01T00:00:00Z", "2024-01-02"], T.DATETIME, False),
        (["2024-01-01T00:00:00Z", "2024-13-01"], T.KEYWORD, True),  # a 13th month
        (["\uff12\uff10\uff12\uff14-01-01"], T.DATETIME, False),  # Python reads other digits
        ([None, None], None, True),  # only nulls: no field
    ],
)
def test_a_files_fields_are_learnt_without_reading_its_rows_in_python(
    tmp_path: Path, row_reads: list[str], texts: list[object], type_: T | None, duckdb_rows: bool
) -> None:
    path = _write(
        tmp_path / "f.parquet",
        {
            "custom.when": (pa.string(), texts),
            "custom.n": (pa.list_(pa.int64()), [[1, 2], *([None] * (len(texts) - 1))]),
            "host.name": (pa.string(), ["a", *([None] * (len(texts) - 1))]),
        },
    )
    ds = Dataset.from_files([path])
    columns = {c.name: (c.type, c.multivalued) for c in ds.present_fields()}
    assert row_reads == []  # the fields, learnt by DuckDB
    assert columns.get("custom.when", (None,))[0] == type_
    assert columns["custom.n"] == (T.LONG, True)
    out = _same("from logs-*", [path], row_reads if duckdb_rows else None)
    assert out[4] == len(texts)


# -- generated files: the fast reader against the row reader --------------------------------------

# (field, Arrow type, values it may hold): ECS fields of each type, fields outside the schema,
# and column types the fast reader does not map.
_STAMPS = st.datetimes(_naive(1969, 12, 31), _naive(2030, 1, 1))
_IPS = st.sampled_from(["10.0.0.1", "10.0.0.2", "::ffff:10.0.0.3", "2001:DB8::1", "010.1.1.1", "x"])
_TEXT = st.text(max_size=4) | st.sampled_from(["2024-01-01T00:00:00Z", "12", "1.5"])
_ISO = st.sampled_from(
    ["2024-01-01T00:00:00Z", "2024-01-01T00:00:00.123Z", "2024-01-01", "1704067200000", "x"]
)
_INTS = st.integers(-(2**63), 2**63 - 1) | st.sampled_from([0, 80, 2**31, -1])
_FLOATS = st.floats(allow_nan=True, allow_infinity=True, width=64)
_COLUMNS: list[tuple[str, pa.DataType, st.SearchStrategy[Any]]] = [
    ("@timestamp", pa.timestamp("us"), _STAMPS),
    ("@timestamp", pa.timestamp("ms"), _STAMPS.map(lambda d: d.replace(microsecond=0))),
    ("@timestamp", pa.string(), _ISO),
    ("destination.ip", pa.string(), _IPS),
    ("destination.port", pa.int64(), _INTS),
    ("destination.port", pa.uint64(), st.integers(0, 2**64 - 1)),
    ("destination.port", pa.float64(), _FLOATS),
    ("host.ip", pa.list_(pa.string()), st.lists(_IPS | st.none(), max_size=3)),
    ("event.type", pa.list_(pa.string()), st.lists(_TEXT | st.none(), max_size=3)),
    ("event.type", pa.string(), _TEXT),
    ("user.name", pa.int32(), st.integers(-(2**31), 2**31 - 1)),
    ("user.name", pa.bool_(), st.booleans()),
    ("process.args_count", pa.int64(), _INTS),
    ("event.risk_score", pa.float64(), _FLOATS),
    ("event.risk_score", pa.int16(), st.integers(-(2**15), 2**15 - 1)),
    ("custom.n", pa.int64(), _INTS),
    ("custom.s", pa.string(), _TEXT),
    ("custom.f", pa.float32(), st.floats(width=32)),
    ("custom.t", pa.timestamp("us"), _STAMPS),
    ("custom.l", pa.list_(pa.int64()), st.lists(_INTS | st.none(), max_size=3)),
    ("custom.d", pa.date32(), st.dates()),
]
_NESTED = [
    ("destination", "ip", pa.string(), _IPS),
    ("destination", "port", pa.int32(), st.integers(0, 65535)),
    ("host", "ip", pa.list_(pa.string()), st.lists(_IPS, max_size=2)),
    ("custom", "s", pa.string(), _TEXT),
]


@st.composite
def _files(draw: st.DrawFn) -> tuple[dict[str, tuple[pa.DataType, list[object]]], object]:
    rows = draw(st.integers(0, 5))
    chosen = draw(
        st.lists(st.sampled_from(_COLUMNS), min_size=1, max_size=6, unique_by=lambda c: c[0])
    )
    columns: dict[str, tuple[pa.DataType, list[object]]] = {}
    for name, type_, values in chosen:
        columns[name] = (type_, draw(st.lists(values | st.none(), min_size=rows, max_size=rows)))
    nested = draw(st.lists(st.sampled_from(_NESTED), max_size=3, unique_by=lambda c: (c[0], c[1])))
    structs: dict[str, list[tuple[str, pa.DataType, st.SearchStrategy[Any]]]] = {}
    for parent, child, type_, values in nested:
        structs.setdefault(parent, []).append((child, type_, values))
    for parent, children in structs.items():
        struct = pa.struct([(c, t) for c, t, _ in children])
        cells = [
            draw(st.none() | st.fixed_dictionaries({c: v | st.none() for c, _, v in children}))
            for _ in range(rows)
        ]
        columns[parent] = (struct, cells)
    declared = None
    if draw(st.booleans()):  # as `reconwatch export` writes it: the fields in the footer
        names = [n for n, _, _ in chosen] + [f"{p}.{c}" for p, c, _, _ in nested]
        declared = [
            [n, (ECS_FIELDS.get(n) or _guess(n)).value, draw(st.booleans())]
            for n in dict.fromkeys(names)
        ]
    return columns, declared


def _guess(name: str) -> T:
    return _CUSTOM_TYPES.get(name, T.KEYWORD)


_CUSTOM_TYPES = {
    "custom.n": T.LONG,
    "custom.f": T.DOUBLE,
    "custom.t": T.DATETIME,
    "custom.l": T.LONG,
}


_QUERIES = [
    (
        "from logs-* | keep @timestamp, destination.ip, destination.port, host.ip, event.type, "
        "user.name, process.args_count, event.risk_score"
    ),
    (
        "from logs-* | stats c = count(*), d = count_distinct(destination.ip), "
        "m = max(@timestamp), v = values(event.type) by user.name | sort user.name"
    ),
    "from logs-* | keep custom.*",
    "from logs-* | eval p = to_integer(destination.port) | keep p",
    "from logs-* | stats t = count_distinct(@timestamp), n = count_distinct(custom.t)",
    "from logs-* | limit 20",
]


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(files=st.lists(_files(), min_size=1, max_size=2), query=st.sampled_from(_QUERIES))
def test_generated_files_read_alike(
    tmp_path_factory: pytest.TempPathFactory,
    files: list[tuple[dict[str, tuple[pa.DataType, list[object]]], object]],
    query: str,
) -> None:
    where = tmp_path_factory.mktemp("gen")
    paths = [
        _write(where / f"f{i}.parquet", cols, declared) for i, (cols, declared) in enumerate(files)
    ]
    if len(paths) == 1:
        _same(query, paths)
        return
    # Rows of the files DuckDB reads come before those the row reader reads (as for NDJSON):
    # across files, the same rows in any order.
    fast, slow = (_outcome(query, paths, fast=f) for f in (True, False))
    assert _unordered(fast) == _unordered(slow)


def test_an_exports_files_are_read_in_order(tmp_path: Path, duck_reads: list[str]) -> None:
    # Without a SORT, STATS groups come in first-seen order: the files' rows in input order.
    stamps = [_naive(2025, 7, 14 + i // 40, i % 24) for i in range(120)]
    paths = []
    for part in range(3):
        rows = range(part * 40, part * 40 + 40)
        cols = {
            "@timestamp": (pa.timestamp("us"), [stamps[i] for i in rows]),
            "destination.ip": (pa.string(), [f"10.0.{i % 7}.{i % 5}" for i in rows]),
        }
        paths.append(_write(tmp_path / f"data_{part}.parquet", cols))
    query = "from logs-* | stats c = count(), t = max(@timestamp) by destination.ip"
    out = _same(query, paths)
    assert len(out[1]) == 35 and set(duck_reads) == {str(p) for p in paths}


def test_alike_files_are_checked_together_and_each_judged_alone(
    tmp_path: Path, duck_reads: list[str]
) -> None:
    # An export's files share their columns: one statement checks them all; the one holding
    # an address Elasticsearch would reject is read by the row reader, the others by DuckDB.
    declared = [["destination.ip", "ip", False], ["k", "keyword", False]]
    paths = []
    for part, bad in enumerate([None, "10.0.0.01", None, "fe80::1%eth0", "::1::"]):
        ips = ["10.0.0.1", "::FFFF:10.0.0.2", bad or "2001:db8::1"]
        cols = {"destination.ip": (pa.string(), ips), "k": (pa.string(), [f"p{part}"] * 3)}
        paths.append(_write(tmp_path / f"data_{part}.parquet", cols, declared))
    query = "from logs-* | stats c = count(*), d = count_distinct(destination.ip) by k | sort k"
    out = _same(query, paths)
    assert set(duck_reads) == {str(paths[0]), str(paths[2]), str(paths[3])}  # a zone is fine
    assert out[1] == [(3, 3, "p0"), (2, 2, "p1"), (3, 3, "p2"), (3, 3, "p3"), (2, 2, "p4")]


def test_alike_files_fields_are_learnt_together_and_a_bad_one_read_alone(
    tmp_path: Path, row_reads: list[str]
) -> None:
    # No footer: DuckDB learns the fields of alike files in one statement; the file holding
    # a port Elasticsearch would reject is read (and its bad event reported) by the row reader.
    paths = []
    for part, port in enumerate([22, 2**31, 80]):
        cols = {
            "destination.port": (pa.uint64(), [port, 443]),
            "process.args_count": (pa.int64(), [port, 1]),
            "custom.tag": (pa.list_(pa.string()), [[f"t{part}", "x"], None]),
        }
        paths.append(_write(tmp_path / f"data_{part}.parquet", cols))
    query = "from logs-* | stats c = count(*), t = values(custom.tag) by destination.port"
    ds = Dataset.from_files(paths)
    assert ds.column("custom.tag") == Column("custom.tag", T.KEYWORD, True)
    assert row_reads == [str(paths[1])]
    out = _unordered(_outcome(query, paths, fast=True))
    assert out == _unordered(_outcome(query, paths, fast=False))
    assert out[3] == [
        f"{paths[1]}:1: field [process.args_count] of type [integer]: [2147483648] out of [integer] range"
    ]


@pytest.mark.parametrize("name", ["k", "RW_FILE"])
def test_alike_files_read_as_one_keep_their_order(
    tmp_path: Path, duck_reads: list[str], name: str
) -> None:
    # One read_parquet of several files names each row's file in a column of its own; a file
    # holding a column of that name is read alone.
    paths = [
        _write(
            tmp_path / f"data_{n}.parquet", {name: (pa.string(), [f"{n}-{i}" for i in range(3)])}
        )
        for n in (2, 0, 1)
    ]
    out = _same(f"from logs-* | keep {name.lower() if name == 'k' else name}", paths)
    assert [r[0] for r in out[1]] == [f"{n}-{i}" for n in (2, 0, 1) for i in range(3)]
    assert duck_reads == [str(p) for p in paths]


def test_reconwatch_parquet_0_reads_every_row_in_python(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, row_reads: list[str], duck_reads: list[str]
) -> None:
    path = _write(tmp_path / "f.parquet", {"k": (pa.string(), ["a", "b"])})
    monkeypatch.setenv("RECONWATCH_PARQUET", "0")
    ds = Dataset.from_files([path])
    assert run_query("from logs-* | stats c = count(*)", ds, now=NOW).rows == [(2,)]
    assert row_reads == [str(path)] and duck_reads == []


# -- end to end: detect over an export ------------------------------------------------------------

RUN_AT = "2025-07-16T10:00:00Z"


def _event(at: datetime, ip: str, host: str = "web-01") -> str:
    return json.dumps(
        {
            "@timestamp": at.isoformat().replace("+00:00", "Z"),
            "event": {"action": "connection_attempted", "type": ["start"]},
            "host": {"name": host, "os": {"type": "linux"}, "ip": ["10.0.0.5", "fe80::1"]},
            "agent": {"id": f"agent-{host}"},
            "process": {"executable": "/tmp/.x/nmap", "name": "nmap", "pid": 31337},
            "destination": {"ip": ip, "port": 22},
            "network": {"transport": "tcp"},
        }
    )


def test_detect_over_an_export_alerts_as_over_its_ndjson(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], row_reads: list[str]
) -> None:
    start = datetime(2025, 7, 16, 9, 30, tzinfo=UTC)
    lines = [
        _event(start + timedelta(seconds=i), f"10.9.{i // 200}.{i % 200 + 1}") for i in range(260)
    ]
    lines += [_event(start - timedelta(days=1, seconds=i), "10.1.1.1", "db-01") for i in range(30)]
    ndjson = tmp_path / "events.ndjson"
    ndjson.write_text("\n".join(lines) + "\n")
    out = tmp_path / "exported"
    code, _, err = run_cli(["export", str(ndjson), "--parquet", str(out)], capsys)
    assert code == 0, err
    files = sorted(str(p) for p in out.rglob("*.parquet"))
    assert len(files) == 2  # two days
    args = ["--now", RUN_AT, "--no-evidence", "-f", "ndjson"]
    code, want, err = run_cli(["detect", str(ndjson), *args], capsys)
    assert code == 0, err
    assert len(want.splitlines()) == 1
    row_reads.clear()
    code, got, err = run_cli(["detect", str(out), *args], capsys)  # the directory: its files
    assert code == 0, err
    assert got == want
    assert not row_reads  # DuckDB read the Parquet itself
