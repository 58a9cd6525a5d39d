"""reconwatch's DuckDB executor over exported Parquet vs the same query written by hand in DuckDB SQL over the same files, measured in one run.

The events are bench_spark's: generate_repeated's fleet as `reconwatch export --parquet` writes
it (exported_repeated, cached under bench/out; `--dir` reads an export already made). Two
queries, as bench_spark runs them: the seed rule as written (its one-hour window) and the rule
without its time condition (every event read). Each is timed as a whole process: `reconwatch
query RULE DIR` (DuckDB reading the Parquet itself, ingest.parquet) and `python -c` running
bench_spark.PARQUET_SQL, the rule by hand with the day directories pruned; the ratio is
reconwatch's time over the hand-written SQL's, median of `--repeat` runs each, with the load
average before and after. `--row-reader` also times reconwatch with DuckDB's Parquet reader
turned off (RECONWATCH_PARQUET=0: every row through the validating Python reader, as before).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench_spark import (
    EXE,
    HERE,
    _load,
    duckdb_sql_time,
    exported_repeated,
    full_scan,
    parquet_files,
)
from gen_events import query_time
from reconwatch.rules.builtin import DEFAULT_RULE, load_builtin


def reconwatch_time(
    query: str, now: str, root: Path, env: dict[str, str] | None = None
) -> tuple[float, int, list[float]]:
    """Seconds of a whole `reconwatch query` process over the export's directory, its rows, and
    the load average before and after."""
    load = os.getloadavg()[0]
    start = time.perf_counter()
    out = subprocess.run(
        [EXE, "query", query, str(root), "--now", now, "--format", "ndjson"],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
    ).stdout
    return time.perf_counter() - start, len(out.splitlines()), [load, os.getloadavg()[0]]


def add_input_arguments(ap: argparse.ArgumentParser) -> None:
    """--events, --rows-per-file and --dir: the export a Parquet bench reads."""
    ap.add_argument("--events", type=int, default=100_000)
    ap.add_argument("--rows-per-file", type=int, default=40_000)
    ap.add_argument(
        "--dir",
        type=Path,
        help="an export (dt=YYYY-MM-DD/ days) to read; default: made in bench/out",
    )


def export_input(args: argparse.Namespace) -> tuple[Path, list[Path], int]:
    """The export's directory (made and cached under bench/out unless --dir), its Parquet
    files and how many events they hold (from their footers)."""
    root: Path = args.dir or HERE / "out" / f"events-{args.events}-7-repeated.parquet.d"
    if args.dir is None:
        exported_repeated(root, args.events, args.rows_per_file)
    files = parquet_files(root)
    import pyarrow.parquet as pq

    return root, files, sum(pq.read_metadata(f).num_rows for f in files)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    add_input_arguments(ap)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--row-reader", action="store_true", help="also time the Python row reader")
    args = ap.parse_args()
    root, files, events = export_input(args)
    now = query_time(events).isoformat()
    rule = load_builtin(DEFAULT_RULE).query
    print(
        f"{events} events, {len(files)} Parquet file(s) under {root.name}; rule {DEFAULT_RULE} "
        f"at {now}; load {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
    )
    for window, (label, query) in enumerate(
        (("rule (1h window)", rule), ("every event", full_scan(rule)))
    ):
        ours = [reconwatch_time(query, now, root) for _ in range(args.repeat)]
        hand = [duckdb_sql_time(files, now, window=window == 0) for _ in range(args.repeat)]
        rw = statistics.median(t for t, _, _ in ours)
        sql = statistics.median(t for t, _, _ in hand)
        rows = {r for _, r, _ in ours}, {r for _, r, _ in hand}
        print(f"-- {label}: reconwatch {sorted(rows[0])} row(s), SQL {sorted(rows[1])}")
        print(
            f"reconwatch query, Parquet dir  {rw:7.2f} s  {_load(ours[0][2])}..{_load(ours[-1][2])}"
        )
        print(
            f"DuckDB SQL by hand, same files {sql:7.2f} s  {_load(hand[0][2])}..{_load(hand[-1][2])}"
        )
        print(f"reconwatch / hand-written SQL: {rw / sql:.1f}x the time (whole processes)")
        if args.row_reader:
            slow, _, slow_load = reconwatch_time(query, now, root, {"RECONWATCH_PARQUET": "0"})
            print(
                f"reconwatch, Python row reader  {slow:7.2f} s  {_load(slow_load)}: "
                f"{slow / rw:.1f}x DuckDB's Parquet reader"
            )
    sys.stdout.flush()


if __name__ == "__main__":
    main()
