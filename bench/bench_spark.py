"""The seed rule on Spark over day-partitioned Parquet: local[1] vs local[2] (scaling), DuckDB on the same data for reference.

Each Spark measurement runs in a fresh process that starts its session, analyses the queries
(timed apart: the catalog, from the export's footers), runs the first once untimed (JVM start,
Python workers), then times each: the ratio is of query work, not of start-up. DuckDB runs the same
events from the NDJSON file they were exported from (its fast reader; whole process timed). Two queries: the rule as written (its one-hour window: dt=
pruning reads one day) and the rule without its time condition (every event read: the
per-core throughput a sizing model needs).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from gen_events import generate, query_time
from reconwatch.cli.plain import expand_inputs
from reconwatch.rules.builtin import DEFAULT_RULE, load_builtin

HERE = Path(__file__).resolve().parent
EXE = str(Path(sys.executable).with_name("reconwatch"))


def exported(ndjson: Path, rows_per_file: int) -> Path:
    """The events as `reconwatch export --parquet` writes them (cached beside the NDJSON)."""
    out = ndjson.with_suffix(".export.d")  # footers mark the export: Spark reads them itself
    if not out.exists():
        tmp = out.with_name(out.name + ".tmp")
        if tmp.exists():
            subprocess.run(["rm", "-rf", str(tmp)], check=True)
        rows = ["--rows-per-file", str(rows_per_file)]
        subprocess.run([EXE, "export", str(ndjson), "--parquet", str(tmp), *rows], check=True)
        tmp.rename(out)
    return out


def full_scan(query: str) -> str:
    """The rule's query without its `@timestamp > now() - ...` condition: every event read."""
    lines = [ln for ln in query.splitlines() if "@timestamp" not in ln or "now()" not in ln]
    text = "\n".join(lines)
    return text.replace("| where and", "| where").replace("|  where and", "| where")


_CHILD = """
import json, sys, time
from reconwatch.backends import executor
from reconwatch.backends.spark import session
from reconwatch.ingest import Dataset
from reconwatch.plan import values
from reconwatch.query import compile_on
master, now, queries, paths = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), sys.argv[4:]
session.configure(master)
when = values.parse_datetime(now)
dataset = Dataset.from_files(paths)
start = time.perf_counter()
plans = [compile_on(q, dataset) for q in queries]
analysis = time.perf_counter() - start
run = executor("spark")
out = {"analysis": analysis, "runs": []}
run(plans[0], dataset, when)  # untimed: the JVM's start, Python workers, first reads
for plan in plans:
    start = time.perf_counter()
    result = run(plan, dataset, when)
    out["runs"].append({"seconds": time.perf_counter() - start, "rows": len(result.rows)})
print(json.dumps(out))
"""


def spark_times(master: str, queries: list[str], now: str, files: list[str]) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, master, now, json.dumps(queries), *files],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    found: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return found


def duckdb_time(query: str, now: str, files: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(
        [EXE, "query", query, *files, "--now", now, "--format", "ndjson"],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return time.perf_counter() - start


def parquet_files(root: Path) -> list[str]:
    return expand_inputs([str(root)], "spark")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--events", type=int, default=2_000_000)
    # Files are tasks: several per core, or local[2] waits on one big file (the scaling ratio
    # measures the file layout, not Spark).
    ap.add_argument("--rows-per-file", type=int, default=40_000)
    args = ap.parse_args()
    ndjson = generate(HERE / "out" / f"events-{args.events}-7.ndjson", args.events)
    root = exported(ndjson, args.rows_per_file)
    files = parquet_files(root)
    now = query_time(args.events).isoformat()
    rule = load_builtin(DEFAULT_RULE).query
    print(
        f"{args.events} events, {len(files)} Parquet file(s) in "
        f"{len(list(root.glob('dt=*')))} day(s); rule {DEFAULT_RULE} at {now}; "
        f"load {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
    )
    queries = {"rule (1h window)": rule, "rule, full scan": full_scan(rule)}
    one = spark_times("local[1]", list(queries.values()), now, files)
    two = spark_times("local[2]", list(queries.values()), now, files)
    print(
        f"driver analysis (the catalog from the export's footers): "
        f"{one['analysis']:.1f} s / {two['analysis']:.1f} s (not in the times below)"
    )
    for i, (label, query) in enumerate(queries.items()):
        a, b = one["runs"][i], two["runs"][i]
        duck_ndjson = duckdb_time(query, now, [str(ndjson)])
        print(f"-- {label}: {a['rows']} row(s)")
        print(f"spark local[1]     {a['seconds']:8.2f} s  {args.events / a['seconds']:10.0f} ev/s")
        print(f"spark local[2]     {b['seconds']:8.2f} s  {args.events / b['seconds']:10.0f} ev/s")
        print(f"scaling local[2]/local[1]: {a['seconds'] / b['seconds']:.2f} (target >= 1.7)")
        print(f"duckdb, the NDJSON file    {duck_ndjson:8.2f} s (whole process)")
        print(f"spark local[2] / duckdb (NDJSON): {b['seconds'] / duck_ndjson:.1f}x the time")


if __name__ == "__main__":
    main()
