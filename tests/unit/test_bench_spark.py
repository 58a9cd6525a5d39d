"""bench/bench_spark.py's Parquet from the exported template hour: the same rows, columns and footers as `reconwatch export` of generate_repeated's whole NDJSON."""

from __future__ import annotations

import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


@pytest.mark.slow
def test_parquet_from_the_template_hour_is_the_export_of_the_ndjson(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Four hours of a 300-host fleet (the template, two moved copies, the scan hour)."""
    monkeypatch.syspath_prepend(str(BENCH))
    import bench_spark
    import gen_events

    monkeypatch.setattr(gen_events, "HOSTS", 300)
    count = 65_000
    assert gen_events.plan(count) == (300, 4)
    ndjson = gen_events.generate_repeated(tmp_path / "events.ndjson", count)
    want = bench_spark.exported(ndjson, 30_000)
    got = bench_spark.exported_repeated(tmp_path / "fast.d", count, 30_000)
    days = sorted(p.name for p in want.iterdir())
    assert sorted(p.name for p in got.iterdir()) == days
    for day in days:
        a = pa.concat_tables([pq.read_table(f) for f in bench_spark.parquet_files(want / day)])
        b = pa.concat_tables([pq.read_table(f) for f in bench_spark.parquet_files(got / day)])
        assert b.num_rows == a.num_rows > 0
        assert b.equals(a), day
    footers = {
        k: v
        for f in bench_spark.parquet_files(got)
        for k, v in (pq.read_metadata(f).metadata or {}).items()
        if k.startswith(b"reconwatch.")
    }
    first = bench_spark.parquet_files(want)[0]
    assert footers == {
        k: v for k, v in (pq.read_metadata(first).metadata or {}).items() if k.startswith(b"rec")
    }
    sys.modules.pop("bench_spark", None)
    sys.modules.pop("gen_events", None)
