"""Ingest: formats, nested and dotted keys, multivalues, timestamps, and bad input reported by file:line."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from reconwatch.ingest import Dataset
from reconwatch.types import DataType as T

ECS = ("logs-endpoint.events.network-*",)


def rows(ds: Dataset, names: list[str]) -> list[dict[str, object]]:
    out: list[dict[str, object]] = []
    for batch in ds.batches(names, ds.selected_inputs(ECS)):
        out.extend(batch.to_pylist())
    return out


def test_nested_and_dotted_keys_are_one_field() -> None:
    ds = Dataset.from_documents([{"host": {"os": {"type": "linux"}}}, {"host.os.type": "mac"}])
    assert [r["host.os.type"] for r in rows(ds, ["host.os.type"])] == ["linux", "mac"]


def test_scalar_in_one_document_array_in_another_is_multivalued() -> None:
    ds = Dataset.from_documents([{"x": 3}, {"x": [2, 1]}, {"x": [5]}])
    col = ds.fields(ECS)["x"]
    assert col.multivalued and col.type is T.LONG
    assert [r["x"] for r in rows(ds, ["x"])] == [[3], [1, 2], [5]]


def test_timestamps_iso_and_epoch_millis() -> None:
    ds = Dataset.from_documents(
        [{"@timestamp": "2024-01-02T03:04:05.678+01:00"}, {"@timestamp": 1704067200000}]
    )
    got = [r["@timestamp"].replace(tzinfo=UTC) for r in rows(ds, ["@timestamp"])]  # type: ignore[union-attr]
    assert got == [
        datetime(2024, 1, 2, 2, 4, 5, 678000, tzinfo=UTC),
        datetime(2024, 1, 1, tzinfo=UTC),
    ]
    assert ds.report.errors == []


def test_ecs_fields_known_and_ips_canonical() -> None:
    ds = Dataset.from_documents([{"destination": {"ip": "::FFFF:10.1.2.3"}}])
    fields = ds.fields(ECS)
    assert fields["source.ip"].type is T.IP  # mapped by the template although absent
    assert "source.ip" not in ds.fields(("employees",))
    assert rows(ds, ["destination.ip"])[0]["destination.ip"] == "10.1.2.3"


def test_formats_ndjson_gzip_array_parquet(tmp_path: Path) -> None:
    docs = [{"a": "x", "n": 1}, {"a": "y", "n": 2}]
    (tmp_path / "e.ndjson").write_text("\n".join(json.dumps(d) for d in docs) + "\n")
    with gzip.open(tmp_path / "e.ndjson.gz", "wt") as fh:
        fh.write("\n".join(json.dumps(d) for d in docs))
    (tmp_path / "e.json").write_text(json.dumps(docs))
    pq.write_table(pa.Table.from_pylist(docs), tmp_path / "e.parquet")
    for name in ("e.ndjson", "e.ndjson.gz", "e.json", "e.parquet"):
        ds = Dataset.from_files([tmp_path / name])
        assert [r["a"] for r in rows(ds, ["a"])] == ["x", "y"], name
        assert ds.report.errors == [], name


def test_bad_input_skipped_counted_and_reported_with_file_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.ndjson"
    lines = [
        b'{"a": "good1"}',
        b"not json",
        b"[1, 2]",
        b'{"destination": {"port": "http"}}',
        b"\x00\xff\xfe garbage",
        b'{"a": "good2"}',
    ]
    path.write_bytes(b"\n".join(lines) + b"\n")
    ds = Dataset.from_files([path])
    assert [r["a"] for r in rows(ds, ["a"])] == ["good1", "good2"]
    report = ds.scan()
    assert [e.line for e in report.errors] == [2, 3, 4, 5]
    assert report.lines()[1] == f"{path}:3: not a JSON object"
    assert "destination.port" in report.lines()[2]
    assert report.events == 2


def test_nesting_deeper_than_the_decoder_is_a_bad_line(tmp_path: Path) -> None:
    """Past MAX_DEPTH (msgspec would raise RecursionError further on): a bad line, not a crash."""
    path = tmp_path / "deep.ndjson"
    deep = b'{"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    path.write_bytes(b'{"a": "good1"}\n' + deep + b'\n{"a": "good2"}\n')
    ds = Dataset.from_files([path])
    assert [r["a"] for r in rows(ds, ["a"])] == ["good1", "good2"]
    report = ds.scan()
    assert [e.line for e in report.errors] == [2]
    assert "nested deeper than 500 levels" in report.lines()[0]


def test_bytes_that_are_not_utf8_read_with_replacement_characters(tmp_path: Path) -> None:
    """A valid JSON line with a stray byte in one string keeps its event (msgspec raises
    UnicodeDecodeError on it), in NDJSON and in a JSON array."""
    lines = [b'{"a": "good1"}', b'{"a": "bad\xff"}', b'{"a": "good2"}']
    ndjson = tmp_path / "u.ndjson"
    ndjson.write_bytes(b"\n".join(lines) + b"\n")
    array = tmp_path / "u.json"
    array.write_bytes(b"[" + b",".join(lines) + b"]")
    for path in (ndjson, array):
        ds = Dataset.from_files([path])
        assert [r["a"] for r in rows(ds, ["a"])] == ["good1", "bad\ufffd", "good2"], path
        assert ds.scan().errors == []


def test_truncated_gzip_keeps_complete_lines(tmp_path: Path) -> None:
    body = "\n".join(json.dumps({"i": i, "pad": "x" * 50}) for i in range(2000)).encode()
    data = gzip.compress(body)
    path = tmp_path / "t.ndjson.gz"
    path.write_bytes(data[: len(data) // 2])
    ds = Dataset.from_files([path])
    got = rows(ds, ["i"])
    assert 0 < len(got) < 2000
    assert [r["i"] for r in got] == list(range(len(got)))
    assert len(ds.report.errors) == 1 and "compressed" in ds.report.errors[0].reason


def test_index_mapping_selects_files(tmp_path: Path) -> None:
    (tmp_path / "net.ndjson").write_text('{"k": "net"}\n')
    (tmp_path / "proc.ndjson").write_text('{"k": "proc"}\n')
    ds = Dataset.from_files(
        [],
        [
            ("logs-endpoint.events.network-*", str(tmp_path / "net*.ndjson")),
            ("logs-endpoint.events.process-*", str(tmp_path / "proc*.ndjson")),
        ],
    )
    inputs = ds.selected_inputs(("logs-endpoint.events.network-*",))
    got = [r["k"] for b in ds.batches(["k"], inputs) for r in b.to_pylist()]
    assert got == ["net"]
    assert len(ds.selected_inputs(("logs-endpoint.events.*",))) == 2


def test_now_is_not_read_by_ingest() -> None:
    # Ingest needs no clock: the same documents give the same rows whenever they are read.
    ds = Dataset.from_documents([{"@timestamp": "2024-01-01"}])
    assert rows(ds, ["@timestamp"])[0]["@timestamp"] == datetime(2024, 1, 1, tzinfo=UTC).replace(
        tzinfo=None
    )


def test_metadata_source_is_the_event_as_json_and_ignored_is_null(tmp_path: Path) -> None:
    """METADATA _source on the DuckDB path: JSON_EXTRACT reads the event (nested or dotted)."""
    from reconwatch.query import run_query

    path = tmp_path / "sip.ndjson"
    docs = [
        {"@timestamp": "2025-07-16T09:00:00Z", "sip": {"method": "REGISTER"}, "_id": "given"},
        {"@timestamp": "2025-07-16T09:00:01Z", "sip.method": "INVITE"},
    ]
    path.write_text("\n".join(json.dumps(d) for d in docs) + "\n")
    query = (
        'FROM logs-* METADATA _source, _ignored, _id | EVAL m = JSON_EXTRACT(_source, "sip.method")'
        " | KEEP m, _ignored, _id | SORT m"
    )
    result = run_query(query, Dataset.from_files([path]), now=datetime(2025, 7, 17, tzinfo=UTC))
    rows = result.as_dicts()
    assert [r["m"] for r in rows] == ["INVITE", "REGISTER"]
    assert [r["_ignored"] for r in rows] == [None, None]
    assert rows[1]["_id"] == "given" and len(str(rows[0]["_id"])) == 30


def test_a_bad_value_met_again_is_reported_again_and_good_ones_stay_good(tmp_path: Path) -> None:
    # The leaf checks remember values: a repeated bad port is rejected each time with the same
    # reason, and the same text is judged by each field's own type.
    docs = [
        {"destination": {"port": "eighty"}, "host": {"name": "eighty"}},
        {"destination": {"port": 80, "ip": "10.0.0.1"}, "host": {"name": "80"}},
        {"destination": {"port": "eighty"}},
        {"destination": {"port": "80", "ip": "10.0.0.1"}, "source": {"ip": "eighty"}},
    ]
    path = tmp_path / "e.ndjson"
    path.write_text("".join(json.dumps(d) + "\n" for d in docs))
    report = Dataset.from_files([path]).scan()
    assert [e.line for e in report.errors] == [1, 3, 4]
    assert report.lines()[0] == report.lines()[1].replace(":3:", ":1:")
    assert "destination.port" in report.lines()[1] and "source.ip" in report.lines()[2]
    assert report.events == 1


def test_nan_and_infinity_in_documents_are_refused_like_a_line_that_is_not_json() -> None:
    """In-memory documents can hold floats JSON cannot (a file's line with NaN is not JSON):
    such a leaf of a mapped field is a bad event reported with its place, never a crash (the
    check took int(nan)); outside the mapping the value is null."""
    nan, inf = float("nan"), float("inf")
    docs: list[object] = [
        {"@timestamp": "2025-01-01T00:00:00Z", "destination": {"port": 80}},
        {"destination": {"port": nan}},
        {"@timestamp": -inf},
        {"process.pid": inf, "user.name": "u"},
        {"user": {"name": nan}},
        {"custom": {"x": nan}, "destination.port": 22},
    ]
    ds = Dataset.from_documents(docs)
    from reconwatch.query import run_query

    now = datetime(2025, 1, 2, tzinfo=UTC)
    result = run_query("from logs-* | keep destination.port, custom.x", ds, now=now)
    assert result.rows == [(80, None), (22, None)]
    assert ds.report.lines() == [
        "<documents>:2: field [destination.port] of type [long]: [NaN] is not a JSON number",
        "<documents>:3: field [@timestamp] of type [datetime]: [-Infinity] is not a JSON number",
        "<documents>:4: field [process.pid] of type [long]: [Infinity] is not a JSON number",
        "<documents>:5: field [user.name] of type [keyword]: [NaN] is not a JSON number",
    ]
