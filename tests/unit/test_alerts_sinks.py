"""Alert sinks: formats by flag or extension, streaming JSON, CSV, the scheme registry, errors."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from reconwatch.alerts import sinks
from reconwatch.alerts.render import to_json, to_ndjson
from reconwatch.alerts.sinks import format_for, open_sink
from reconwatch.errors import OutputError, UsageError

ALERTS: list[dict[str, object]] = [
    {"kibana.alert.uuid": "a1", "host.name": "web-01", "Esql.count": 3, "b": [1, 2]},
    {"kibana.alert.uuid": "a2", "host.name": "db-02", "Esql.count": 4, "c": {"d": "é"}},
]


@pytest.mark.parametrize(
    ("target", "fmt", "terminal", "expected"),
    [
        (None, None, True, "table"),
        (None, None, False, "ndjson"),
        ("-", None, True, "table"),
        ("out/alerts.json", None, True, "json"),
        ("alerts.JSONL", None, False, "ndjson"),
        ("alerts.csv", None, False, "csv"),
        ("alerts.txt", None, False, "table"),
        ("alerts.ndjson.gz", None, False, "ndjson"),
        ("alerts", None, True, "ndjson"),
        ("alerts.json", "csv", False, "csv"),
    ],
)
def test_format_by_flag_then_extension_then_destination(
    target: str | None, fmt: str | None, terminal: bool, expected: str
) -> None:
    assert format_for(target, fmt, terminal=terminal) == expected


def test_unknown_format_lists_the_known_ones() -> None:
    with pytest.raises(UsageError, match="choose one of ndjson, json, csv, table, report"):
        format_for(None, "yaml", terminal=False)


def test_ndjson_and_csv_sinks(tmp_path: Path) -> None:
    target = tmp_path / "a.ndjson"
    sink = open_sink(str(target))
    sink.write(ALERTS)
    sink.close()
    assert target.read_text(encoding="utf-8") == to_ndjson(ALERTS)
    target = tmp_path / "a.csv"
    sink = open_sink(str(target))
    sink.write(ALERTS[:1])
    sink.write(ALERTS[1:])
    sink.close()
    rows = list(csv.DictReader(io.StringIO(target.read_text(encoding="utf-8"))))
    assert [r["kibana.alert.uuid"] for r in rows] == ["a1", "a2"]  # one header for two batches
    assert rows[0]["results"] == "host.name=web-01; Esql.count=3; b=[1, 2]"


def test_table_numbers_rows_across_batches(tmp_path: Path) -> None:
    target = tmp_path / "a.txt"
    sink = open_sink(str(target))
    sink.write(ALERTS[:1])
    sink.write(ALERTS[1:])
    sink.close()
    text = target.read_text(encoding="utf-8")
    assert "│ 1 │" in text and "│ 2 │" in text
    empty = tmp_path / "none.txt"
    sink = open_sink(str(empty))
    sink.close()
    assert empty.read_text() == "no alerts\n"


def test_write_error_is_an_output_error(tmp_path: Path) -> None:
    class Full(io.StringIO):
        def flush(self) -> None:
            raise OSError(28, "No space left on device")

    sink = sinks.StreamSink("full.ndjson", Full(), sinks.NdjsonFormat(), owned=False)
    with pytest.raises(
        OutputError, match=r"writing alerts to full\.ndjson: No space left on device"
    ):
        sink.write(ALERTS)
    sink.close()  # after a failure: nothing more, no second error


def test_json_sink_streams_one_array_across_batches(tmp_path: Path) -> None:
    alerts: list[dict[str, object]] = [{"a": 1, "b": [1, 2]}, {"a": 2, "c": {"d": "é"}}]
    target = tmp_path / "x.json"
    sink = open_sink(str(target))
    sink.write(alerts[:1])
    sink.write([])
    sink.write(alerts[1:])
    sink.close()
    assert target.read_text(encoding="utf-8") == to_json(alerts)
    empty = tmp_path / "empty.json"
    sink = open_sink(str(empty))
    sink.close()
    assert json.loads(empty.read_text()) == []


def test_registered_sink_receives_alert_documents(tmp_path: Path) -> None:
    got: list[object] = []

    class Memory:
        name = "memory"

        def __init__(self, target: str, formatter: object) -> None:
            self.target = target

        def write(self, alerts: sinks.Alerts) -> None:
            got.extend(alerts)

        def close(self) -> None:
            got.append("closed")

    sinks.register_sink("memory", Memory)
    try:
        sink = sinks.open_sink("memory://here")
        sink.write([{"x": 1}])
        sink.close()
    finally:
        del sinks.SINKS["memory"]
    assert got == [{"x": 1}, "closed"]
