"""`reconwatch detect` over many scheduled runs of an exported Parquet input: DuckDB's Parquet reader vs the Python row reader (RECONWATCH_PARQUET=0), measured in one run.

The events are bench_parquet's: generate_repeated's fleet as `reconwatch export --parquet` writes
it (exported_repeated, cached under bench/out; `--dir` reads an export already made). One
`reconwatch detect --rule PACK DIR --from A --to B` process per measurement, where A is one hour
before the scan's end and B is `--hours` later: for the recon pack 121 runs an hour (ten rules
every 5 minutes, one hourly). Each reader is timed `--repeat` times, alternating, with the load
average before and after; the ratio is the median DuckDB-reader time over the median row-reader
time (below 1: the Parquet reader is faster). The two readers' alerts must be the same bytes.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

from bench_parquet import add_input_arguments, export_input
from bench_spark import EXE, _load
from gen_events import query_time


def detect_time(
    root: Path, first: str, last: str, rule: str, env: dict[str, str]
) -> tuple[float, str, str, list[float]]:
    """Seconds of a whole `reconwatch detect` process, its alerts, its summary line and the
    load average before and after."""
    load = os.getloadavg()[0]
    start = time.perf_counter()
    done = subprocess.run(
        [EXE, "detect", "--rule", rule, str(root), "--from", first, "--to", last, "-f", "ndjson"],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, **env},
    )
    took = time.perf_counter() - start
    summary = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else ""
    return took, done.stdout, summary, [load, os.getloadavg()[0]]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    add_input_arguments(ap)
    ap.add_argument("--hours", type=float, default=1.0, help="the --from/--to range")
    ap.add_argument("--rule", default="recon", help="pack or rule (default: the recon pack)")
    ap.add_argument("--repeat", type=int, default=1)
    args = ap.parse_args()
    root, files, events = export_input(args)
    begin = query_time(args.events) - timedelta(hours=1)
    first = begin.isoformat()
    last = (begin + timedelta(hours=args.hours)).isoformat()
    print(
        f"{events} events, {len(files)} Parquet file(s) under {root.name}; detect --rule "
        f"{args.rule} --from {first} --to {last}; load {os.getloadavg()[0]:.1f} on "
        f"{os.cpu_count()} cores",
        flush=True,
    )
    fast: list[tuple[float, str, str, list[float]]] = []
    rows: list[tuple[float, str, str, list[float]]] = []
    for _ in range(args.repeat):
        fast.append(detect_time(root, first, last, args.rule, {"RECONWATCH_PARQUET": "1"}))
        rows.append(detect_time(root, first, last, args.rule, {"RECONWATCH_PARQUET": "0"}))
    for label, runs in (("DuckDB's Parquet reader ", fast), ("Python row reader (=0)  ", rows)):
        times = ", ".join(f"{t:.1f} s ({_load(load)})" for t, _, _, load in runs)
        print(f"{label} {times}; {runs[0][2]}")
    same = {out for _, out, _, _ in fast} == {out for _, out, _, _ in rows}
    print(f"same alerts, byte for byte: {'yes' if same else 'NO'}")
    ratio = statistics.median(t for t, *_ in fast) / statistics.median(t for t, *_ in rows)
    print(f"DuckDB's Parquet reader / row reader: {ratio:.2f}x the time (medians, whole processes)")
    sys.stdout.flush()
    if not same:
        sys.exit(1)


if __name__ == "__main__":
    main()
