"""`reconwatch export` read by DuckDB: the same Parquet (schema, rows, order, footer) and the same bad-event reports as the Python reader's export, for files whose sample misleads (fields, multivalues, types, spellings first seen later) and for bad lines."""

from __future__ import annotations

import copy
import gzip
import json
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import run_cli
from reconwatch.backends.duckdb import udf
from reconwatch.ingest import Dataset, dataset
from reconwatch.ingest.export import export_parquet
from reconwatch.simulate import Simulation

# Each export here takes seconds (DuckDB's reader declares every spelling of every field).
pytestmark = pytest.mark.slow
# Sampled lines per file in these tests: what a file shows after them, the sample misses.
SAMPLE = 20


@pytest.fixture(autouse=True)
def short_sample(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dataset, "SAMPLE_LINES", SAMPLE)


@pytest.fixture(scope="module")
def events() -> list[dict[str, object]]:
    """Defend network events across midnight, some of the planted sweep's with dotted keys."""
    sim = Simulation(
        hosts=5, hours=1, start=datetime(2025, 7, 15, 23, 30, tzinfo=UTC), scans=("dotted",), seed=3
    )
    every = sim.events()
    return every[:100] + every[210:260] + every[-50:]  # nested, dotted (from 214), next day


def _write(path: Path, lines: list[str]) -> Path:
    data = "".join(line + "\n" for line in lines).encode()
    path.write_bytes(gzip.compress(data, mtime=0) if path.name.endswith(".gz") else data)
    return path


def _variant(event: dict[str, object], **changes: object) -> str:
    out = copy.deepcopy(event)
    out.update(changes)
    return json.dumps(out)


def _later(events: list[dict[str, object]], *lines: str) -> list[str]:
    """The events with `lines` after the sample (and the clean events after them again)."""
    text = [json.dumps(e) for e in events]
    return [*text[: SAMPLE + 10], *lines, *text[SAMPLE + 10 :]]


def _export(files: list[Path], out: Path, duckdb_reader: bool) -> tuple[object, Dataset]:
    ds = Dataset.from_files(files)
    done = export_parquet(ds, out, 60, functions=udf.register if duckdb_reader else None)
    return done, ds


def _days(root: Path) -> dict[str, tuple[pa.Table, list[object]]]:
    """Each day's rows (its files data_0, data_1, ... in order) and its files' footers. Where a
    day's rows are cut into files may differ: DuckDB starts a row group per input it reads."""
    out = {}
    for day in sorted(root.glob("dt=*")):
        files = sorted(day.glob("data_*.parquet"), key=lambda p: int(p.stem.split("_")[1]))
        rows = pa.concat_tables([pq.read_table(p) for p in files])
        out[day.name] = (rows, [pq.read_metadata(p).metadata for p in files])
    return out


def _same_both_ways(files: list[Path], tmp_path: Path) -> Dataset:
    fast_done, fast = _export(files, tmp_path / "duckdb", True)
    slow_done, slow = _export(files, tmp_path / "python", False)
    assert fast_done == slow_done
    a, b = _days(tmp_path / "duckdb"), _days(tmp_path / "python")
    assert list(a) == list(b)
    for name, (table, footers) in a.items():
        assert table.schema == b[name][0].schema, name
        assert table.equals(b[name][0]), name
        assert all(f == footers[0] for f in [*footers, *b[name][1]]), name
    assert [e.one_line() for e in fast.report.errors] == [e.one_line() for e in slow.report.errors]
    return fast


def test_a_clean_file_is_read_by_duckdb_alone(
    events: list[dict[str, object]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _write(tmp_path / "plain.ndjson", [json.dumps(e) for e in events])
    _same_both_ways([path], tmp_path / "both")

    def no_python(*_args: object) -> None:
        raise AssertionError("the Python reader read events for the export")

    monkeypatch.setattr(Dataset, "_input_batches", no_python)
    done, _ = _export([path], tmp_path / "fast-only", True)
    assert done.events == 200  # type: ignore[attr-defined]
    assert len(list((tmp_path / "fast-only").glob("dt=*"))) == 2


@pytest.mark.parametrize(
    "late",
    [
        "ecs-field",  # a schema field no sampled event has
        "multivalue",  # a field the sample saw single-valued holds two values
        "custom-field",  # a field outside the schema: its type needs every value
        "wider-type",  # a custom field sampled as long holds a double later
    ],
)
def test_what_the_sample_did_not_show(
    late: str, events: list[dict[str, object]], tmp_path: Path
) -> None:
    base = events[3]
    head = [json.dumps(base)]
    if late == "ecs-field":
        lines = [_variant(base, url={"full": "http://10.0.0.1/x"})]
    elif late == "multivalue":
        source = {**base["source"], "port": [1, 2]}  # type: ignore[dict-item]
        lines = [_variant(base, source=source)]
    elif late == "custom-field":
        lines = [_variant(base, custom={"n": 5})]
    else:
        head = [_variant(base, custom={"n": 1})]
        lines = [_variant(base, custom={"n": 2.5})]
    path = _write(tmp_path / "late.ndjson.gz", head + _later(events, *lines))
    _same_both_ways([path], tmp_path)


def test_bad_lines_are_reported_and_good_ones_kept_in_order(
    events: list[dict[str, object]], tmp_path: Path
) -> None:
    base = events[3]
    dest = base["destination"]
    bad = [
        '{"broken',
        _variant(base, destination={**dest, "port": "http"}),  # type: ignore[dict]
        # A field only a bad event has: not a column of the export.
        _variant(base, destination={**dest, "port": "nope"}, url={"full": "x"}),  # type: ignore[dict]
    ]
    clean = _write(tmp_path / "a.ndjson", [json.dumps(e) for e in events[:40]])
    broken = _write(tmp_path / "b.ndjson", _later(events, *bad))
    other = _write(tmp_path / "c.ndjson", [json.dumps(e) for e in events[40:]])
    found = _same_both_ways([clean, broken, other], tmp_path)
    assert [e.one_line() for e in found.report.errors] == [
        f"{broken}:31: not JSON: Input data was truncated",
        f"{broken}:32: field [destination.port] of type [long]: Cannot parse number [http]",
        f"{broken}:33: field [destination.port] of type [long]: Cannot parse number [nope]",
    ]


def test_the_command_reports_bad_lines_and_counts_them(
    events: list[dict[str, object]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(tmp_path / "e.ndjson", _later(events, "[1, 2]", "not json"))
    out = tmp_path / "out"
    code, _, err = run_cli(["export", str(path), "--parquet", str(out)], capsys)
    assert code == 0, err
    assert f"warning: skipped {path}:31: not a JSON object" in err
    assert f"warning: skipped {path}:32: not JSON" in err
    assert "warning: 2 bad event(s) skipped" in err
    assert "200 event(s)" in err


def _store(events: list[dict[str, object]], data: Path) -> dict[str, list[dict[str, object]]]:
    """Two indices in the service's store (nested and dotted documents, sent as dicts and as
    JSON text); the documents by index."""
    from reconwatch.store.db import Store
    from reconwatch.store.events import NewEvent

    now = datetime(2025, 7, 17, tzinfo=UTC)
    dns = "logs-endpoint.events.dns-default"
    net = "logs-endpoint.events.network-default"
    docs = {dns: events[:60], net: events[60:]}  # the store lists its indices by name
    store = Store(data, lambda: now)
    try:
        for index, group in docs.items():
            batch = [
                NewEvent("create", index, None, json.dumps(e).encode() if i % 2 else e)
                for i, e in enumerate(group)
            ]
            assert all(w.status == 201 for w in store.write(batch))
    finally:
        store.close()
    return docs


def test_the_store_exports_as_its_events_written_to_a_file_do(
    events: list[dict[str, object]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Each index of the store exports, under its own directory in the store's order, the rows,
    order and footer an export of the same documents from a file gives, plus the stored
    `_index`, `_id` and `_version` of every row and the index named in every footer."""
    from reconwatch.ingest.sparkread import INDEX_KEY, STORED_METADATA
    from reconwatch.store.db import Store

    data = tmp_path / "data"
    docs = _store(events, data)
    out = tmp_path / "from-store"
    code, _, err = run_cli(["export", "--from-store", str(data), "--parquet", str(out)], capsys)
    assert code == 0, err
    assert "200 event(s)" in err
    store = Store(data, lambda: datetime(2025, 7, 17, tzinfo=UTC))
    try:
        ids = {i: [d[1] for d in store.documents([i], None, None, None)] for i in docs}
    finally:
        store.close()
    assert sorted(p.name for p in out.iterdir()) == [f"{n:04d}-{i}" for n, i in enumerate(docs, 1)]
    for n, (index, group) in enumerate(docs.items(), start=1):
        flat = _write(tmp_path / f"{n}.ndjson", [json.dumps(e) for e in group])
        _export([flat], tmp_path / f"file{n}", False)
        a, b = _days(out / f"{n:04d}-{index}"), _days(tmp_path / f"file{n}")
        assert list(a) == list(b)
        stored_ids: list[object] = []
        for name, (table, footers) in a.items():
            assert table.drop_columns(list(STORED_METADATA)).equals(b[name][0]), name
            assert table.column("_index").to_pylist() == [index] * table.num_rows
            assert table.column("_version").to_pylist() == [1] * table.num_rows
            stored_ids.extend(table.column("_id").to_pylist())
            for footer in footers:
                assert footer.pop(INDEX_KEY.encode()) == index.encode()
            assert footers[0] == b[name][1][0], name
        assert stored_ids == ids[index]  # each day's rows in arrival order, days in order


def test_a_from_over_the_stores_export_reads_what_it_reads_in_the_store(
    events: list[dict[str, object]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`FROM logs-endpoint.events.network-*` over the export selects that index's files, with the
    stored _index, _id and _version, as over the store: on DuckDB and on Spark."""
    from reconwatch.cli.plain import expand_inputs
    from reconwatch.query import run_query
    from reconwatch.store.db import Store
    from reconwatch.store.window import window_dataset

    data = tmp_path / "data"
    _store(events, data)
    out = tmp_path / "from-store"
    code, _, err = run_cli(["export", "--from-store", str(data), "--parquet", str(out)], capsys)
    assert code == 0, err
    files = expand_inputs([str(out)], "spark")
    now = datetime(2025, 7, 17, tzinfo=UTC)
    queries = [
        (
            "from logs-endpoint.events.network-* metadata _id, _index, _version "
            "| keep _id, _index, _version, @timestamp, destination.ip | limit 1000"
        ),
        (
            "from logs-endpoint.events.dns-* metadata _index, _id "
            "| keep _index, _id, host.name, event.action | limit 1000"
        ),
        "from logs-* metadata _index | stats c = count(*), t = max(@timestamp) by _index",
        # No METADATA: Spark's own Parquet reader, over the selected index's files only.
        "from logs-endpoint.events.network-* | stats c = count(*), d = count_distinct(destination.ip)",
    ]
    store = Store(data, lambda: now)
    try:
        for query in queries:
            patterns = (query.split()[1],)
            want = run_query(query, window_dataset(store, patterns, None, None), now=now)
            assert want.rows, query
            for backend in ("duckdb", "spark"):
                got = run_query(query, Dataset.from_files(files), now=now, backend=backend)
                assert got.rows == want.rows, (backend, query)
    finally:
        store.close()


def test_from_store_refuses_files_and_a_missing_store(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = str(tmp_path / "out")
    code, _, err = run_cli(["export", "--from-store", str(tmp_path), "--parquet", out], capsys)
    assert code == 2
    assert "no store there" in err
    code, _, err = run_cli(
        ["export", "x.ndjson", "--from-store", str(tmp_path), "--parquet", out], capsys
    )
    assert code == 2
    assert "give no FILES" in err
    code, _, err = run_cli(["export", "--parquet", out], capsys)
    assert code == 2
    assert "give event files to export, or --from-store DATA_DIR" in err
