"""Inputs a cluster reads with --engine spark: NDJSON (plain, gzip) and day-partitioned Parquet from
`reconwatch export`, directories and globs, dt= days pruned by a rule's time range, bad events
reported from the workers; detect's alerts the same as on DuckDB."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from conftest import ROOT, run_cli
from reconwatch.cli.plain import expand_inputs
from reconwatch.ingest import Dataset
from reconwatch.ingest.dataset import SAMPLE_LINES
from reconwatch.ingest.export import export_parquet
from reconwatch.ingest.sparkread import partition_day
from reconwatch.query import run_query

SAMPLE = ROOT / "src" / "reconwatch" / "data" / "sample" / "defend-network-sample.ndjson.gz"
DAY = datetime(2025, 7, 14, tzinfo=UTC)
NOW = DAY + timedelta(days=3)
STATS = (
    "from logs-* | stats c = count(), d = count_distinct(destination.ip), "
    "v = values(destination.port) by host.name | sort host.name"
)


def _events() -> list[dict[str, object]]:
    out: list[dict[str, object]] = []
    for i in range(90):
        when = DAY + timedelta(hours=i * 0.75)
        out.append(
            {
                "@timestamp": when.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
                "host": {"name": f"h{i % 4}", "os": {"type": "linux"}},
                "destination": {"ip": f"10.0.{i % 3}.{i % 7}", "port": [22, 80][: 1 + i % 2]},
                "event": {"action": "connection_attempted"},
            }
        )
    return out


@pytest.fixture(scope="module")
def ndjson(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("events") / "events.ndjson"
    path.write_text("".join(json.dumps(e) + "\n" for e in _events()))
    return path


@pytest.fixture(scope="module")
def exported(ndjson: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("export") / "events"
    done = export_parquet(Dataset.from_files([ndjson]), out)
    assert done.events == 90
    return out


def _rows(query: str, files: list[str], backend: str, now: datetime = NOW) -> list[object]:
    return run_query(query, Dataset.from_files(files), now=now, backend=backend).rows


def test_export_writes_one_directory_per_day(
    ndjson: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "events"
    code, _, err = run_cli(["export", str(ndjson), "--parquet", str(out)], capsys)
    assert code == 0, err
    assert "90 event(s)" in err
    days = sorted(p.name for p in out.iterdir())
    assert days == ["dt=2025-07-14", "dt=2025-07-15", "dt=2025-07-16"]
    assert all(partition_day(p) is not None for p in out.rglob("*.parquet"))
    code, _, err = run_cli(["export", str(ndjson), "--parquet", str(out)], capsys)
    assert code == 2 and "not an empty directory" in err


def test_exported_parquet_on_spark_equals_ndjson_on_duckdb(ndjson: Path, exported: Path) -> None:
    files = expand_inputs([str(exported)], "spark")
    want = _rows(STATS, [str(ndjson)], "duckdb")
    assert _rows(STATS, files, "spark") == want
    assert _rows(STATS, files, "duckdb") == want
    # Without a SORT the groups come in first-seen order: the files are read in export order.
    unsorted = "from logs-* | stats c = count(), p = values(destination.ip) by destination.ip"
    assert _rows(unsorted, files, "spark") == _rows(unsorted, [str(ndjson)], "duckdb")


def test_a_directory_is_its_files_in_the_order_export_wrote_them(tmp_path: Path) -> None:
    for day, part in [("15", 10), ("15", 2), ("14", 3), ("15", 0)]:
        (tmp_path / f"dt=2025-07-{day}").mkdir(exist_ok=True)
        (tmp_path / f"dt=2025-07-{day}" / f"data_{part}.parquet").touch()
    (tmp_path / "_SUCCESS").touch()
    (tmp_path / "dt=2025-07-15" / ".data_0.parquet.crc").touch()
    names = [str(Path(p).relative_to(tmp_path)) for p in expand_inputs([str(tmp_path)], "spark")]
    assert names == [
        "dt=2025-07-14/data_3.parquet",
        "dt=2025-07-15/data_0.parquet",
        "dt=2025-07-15/data_2.parquet",
        "dt=2025-07-15/data_10.parquet",
    ]
    # DuckDB reads an export's directory too (its Parquet reader: ingest.parquet).
    assert expand_inputs([str(tmp_path)], "duckdb") == expand_inputs([str(tmp_path)], "spark")


def test_gzip_ndjson_read_on_the_workers(ndjson: Path, tmp_path: Path) -> None:
    packed = tmp_path / "events.ndjson.gz"
    packed.write_bytes(gzip.compress(ndjson.read_bytes()))
    assert _rows(STATS, [str(packed)], "spark") == _rows(STATS, [str(ndjson)], "duckdb")


def _with_late_day(exported: Path, tmp_path: Path) -> tuple[Path, Path]:
    """The export plus an NDJSON file in the first day's directory whose one broken line comes
    after the events the driver samples for field discovery: only a worker's read meets it."""
    root = tmp_path / "events"
    for src in exported.rglob("*.parquet"):
        dst = root / src.relative_to(exported)
        dst.parent.mkdir(parents=True, exist_ok=True)
        dst.write_bytes(src.read_bytes())
    late = root / "dt=2025-07-14" / "late.ndjson"
    event = json.dumps({"@timestamp": "2025-07-14T23:00:00.000Z", "host": {"name": "h9"}})
    late.write_text((event + "\n") * (SAMPLE_LINES + 1) + "not json\n")
    return root, late


def test_a_rule_window_skips_other_days_and_a_full_read_reports_bad_lines(
    exported: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root, late = _with_late_day(exported, tmp_path)
    window = (
        'from logs-* | where @timestamp >= "2025-07-16T00:00:00Z" '
        "| stats c = count() by host.name | sort host.name"
    )
    args = ["--engine", "spark", "--now", NOW.isoformat(), "--format", "ndjson"]
    code, out, err = run_cli(["query", window, str(root), *args], capsys)
    assert code == 0, err
    assert "not JSON" not in err  # dt=2025-07-14 was never read to its end
    parquet = [str(p) for p in exported.rglob("*.parquet")]
    duck = run_query(window, Dataset.from_files(parquet), now=NOW)
    assert [json.loads(line) for line in out.splitlines()] == duck.as_dicts()
    code, out, err = run_cli(["query", "from logs-* | stats c = count()", str(root), *args], capsys)
    assert code == 0, err
    assert json.loads(out) == {"c": 90 + SAMPLE_LINES + 1}
    assert f"{late}:{SAMPLE_LINES + 2}: not JSON" in err


def test_a_glob_selects_days(exported: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pattern = str(exported / "dt=2025-07-1[56]" / "*.parquet")
    code, out, err = run_cli(
        ["query", "from logs-* | stats c = count()", pattern, "--engine", "spark"], capsys
    )
    assert code == 0, err
    assert json.loads(out) == {"c": 90 - 32}  # 32 events fall on the first day


def test_detect_on_spark_gives_duckdbs_alerts(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["detect", str(SAMPLE), "--now", "2025-07-16T10:00:00Z", "-f", "ndjson"]
    code, duck, err = run_cli(argv, capsys)
    assert code == 0, err
    code, spark, err = run_cli([*argv, "--engine", "spark"], capsys)
    assert code == 0, err
    want = [json.loads(line) for line in duck.splitlines()]
    assert want, "the sample raises the seed rule's alert"
    assert [json.loads(line) for line in spark.splitlines()] == want


def test_missing_java_is_one_line_naming_the_package(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("JAVA_HOME", str(tmp_path))
    code, _, err = run_cli(["query", "row a = 1", "--engine", "spark"], capsys)
    assert code == 2
    assert "openjdk-17-jre-headless" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_detect_over_many_runs_reads_each_exported_file_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Four hourly runs across midnight over the export (a file a day, each needed by two runs
    or more): every exported file read by Spark once (by the runs' grouped pass, with the
    fields the evidence reads, which the alerting runs' evidence then takes from the kept
    read); the alerts (ids, documents) are DuckDB's."""
    from reconwatch.engine.detect import DatasetBackend, Schedule, detect
    from reconwatch.ingest import sparkread
    from reconwatch.rules.builtin import DEFAULT_RULE, builtin_text
    from reconwatch.rules.load import load_rule_text
    from reconwatch.simulate import Simulation

    start = datetime(2025, 7, 15, 21, tzinfo=UTC)
    sim = Simulation(hosts=6, hours=5, start=start, scans=("subnet",), seed=5)
    ndjson = tmp_path / "fleet.ndjson"
    ndjson.write_text("".join(json.dumps(e) + "\n" for e in sim.events()))
    out = tmp_path / "export"
    export_parquet(Dataset.from_files([ndjson]), out)
    files = expand_inputs([str(out)], "spark")
    assert len(files) == 2  # a file per day (DuckDB writes at least 2,048 rows a file)
    text = builtin_text(DEFAULT_RULE).replace(
        "destination_ip_count_distinct > 250", "destination_ip_count_distinct > 2"
    )
    rule = load_rule_text(text, "low.toml")
    runs = Schedule(first=start + timedelta(hours=1), last=start + timedelta(hours=5))
    read: list[str] = []
    real = sparkread.read_part
    real_chunks = sparkread.chunks

    def counted(reader: object, picked: object, index: int, path: str) -> object:
        read.append(path)
        return real(reader, picked, index, path)  # type: ignore[arg-type]

    def counted_chunks(spark: object, tasks: list[sparkread.FileTask], args: object) -> object:
        read.extend(t.path for t in tasks)
        return real_chunks(spark, tasks, args)  # type: ignore[arg-type]

    monkeypatch.setattr(sparkread, "read_part", counted)
    # Rule runs read METADATA (_id, _index): the workers' readers decode the files.
    monkeypatch.setattr(sparkread, "chunks", counted_chunks)
    duck = detect([rule], DatasetBackend(Dataset.from_files(files)), runs)
    on_spark = Dataset.from_files(files)
    on_spark.keep_spark_reads()
    spark = detect([rule], DatasetBackend(on_spark, engine="spark"), runs)
    assert len(duck.runs) == len(spark.runs) == 4  # runs at 23:00, 00:00, 01:00, 02:00
    assert duck.alerts, "the low threshold raises alerts"
    for got, want in zip(spark.alerts, duck.alerts, strict=True):
        assert {k: v for k, v in got.items() if got.get(k) != want.get(k)} == {}
    assert spark.alerts == duck.alerts
    assert sorted(read) == sorted(set(read)), "a file read twice"
    assert len(set(read)) == len(files)
