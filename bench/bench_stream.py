"""Streaming executor vs the DuckDB executor on the same file: throughput per core, paced alert latency, state memory."""

from __future__ import annotations

import argparse
import itertools
import os
import time
import tracemalloc
from datetime import UTC, datetime, timedelta
from pathlib import Path

from gen_events import generate, query_time
from reconwatch.backends.stream.executor import StreamExecutor
from reconwatch.backends.stream.fastpath import compiled_scan_enabled
from reconwatch.backends.stream.lines import split_lines
from reconwatch.backends.stream.state import BUCKET_BYTES, DISTINCT_ENTRY_BYTES
from reconwatch.engine.watch import RuleWatch
from reconwatch.ingest import Dataset
from reconwatch.ingest.follow import read_batches
from reconwatch.plan.documents import flatten
from reconwatch.query import run_query
from reconwatch.rules.builtin import DEFAULT_RULE, load_builtin

HERE = Path(__file__).resolve().parent
TARGET = 300_000  # events/s per core
RULE = DEFAULT_RULE  # --rule: a built-in rule name
BATCH = 8192  # lines per micro-batch, as `reconwatch watch` reads a fast input


def stream_pass(
    lines: list[bytes], fast: bool = True, python_scan: bool = False
) -> tuple[float, int, dict[str, int]]:
    """CPU seconds to run every line through a fresh watch in micro-batches; alerts; path stats.
    `python_scan`: the fast path with its generated Python loop instead of the compiled scan."""
    watch = RuleWatch.create(load_builtin(RULE))
    if not fast:
        watch.executor.fast = None
    elif python_scan and watch.executor.fast is not None:
        watch.executor.fast.use_python_scan()
    alerts = 0
    start = time.process_time()
    for i in range(0, len(lines), BATCH):
        alerts += len(watch.push_lines(lines[i : i + BATCH]))
    cpu = time.process_time() - start
    stats = watch.executor.fast.stats if watch.executor.fast else {}
    return cpu, alerts, stats


def file_pass(path: Path) -> tuple[float, int]:
    """CPU seconds to read the file as `reconwatch watch` does (16 MiB reads into one reused
    buffer, lines scanned where they are) and run it through a fresh watch; alerts."""
    watch = RuleWatch.create(load_builtin(RULE))
    alerts = 0
    start = time.process_time()
    fd = os.open(path, os.O_RDONLY)
    try:
        for batch in read_batches(fd, split_lines):
            alerts += len(watch.push_lines(batch))
    finally:
        os.close(fd)
    return time.process_time() - start, alerts


def duckdb_pass(path: Path, count: int) -> tuple[float, float, int]:
    """(wall, CPU) seconds of one `run_query` over the file; rows returned."""
    rule = load_builtin(RULE)
    wall, cpu = time.perf_counter(), time.process_time()
    result = run_query(rule.query, Dataset.from_files([path]), now=query_time(count))
    return time.perf_counter() - wall, time.process_time() - cpu, len(result.rows)


def paced(lines: list[bytes], rate: float) -> tuple[list[float], list[float], float]:
    """Replay at `rate` events/s: line i arrives at i / rate. The reader takes every line that
    has arrived (at most BATCH) as one micro-batch, as `watch` does with a pipe. Per-event
    latency: arrival to the end of its batch. Alert latency: arrival of the first line of the
    batch holding the crossing event to the alert (an upper bound for the crossing event)."""
    watch = RuleWatch.create(load_builtin(RULE))
    clock = time.perf_counter
    per_event: list[float] = []
    per_alert: list[float] = []
    t0 = clock()
    i, n = 0, len(lines)
    while i < n:
        now = clock()
        arrived = min(n, int((now - t0) * rate) + 1)
        if arrived <= i:
            continue  # busy-wait: sleep() cannot pace microsecond gaps
        stop = min(arrived, i + BATCH)
        fired = watch.push_lines(lines[i:stop])
        done = clock() - t0
        per_event.extend(done - k / rate for k in range(i, stop))
        per_alert.extend(done - i / rate for _ in fired)
        i = stop
    achieved = n / (clock() - t0)
    return per_event, per_alert, achieved


def state_bytes_per_distinct(count: int = 50_000, fast: bool = False) -> float:
    """tracemalloc: bytes one (group, distinct destination) costs in the seed rule's state, every
    event a new address in its own millisecond (one time bucket each)."""
    rule = load_builtin(RULE)
    watch = RuleWatch.create(rule)
    base = datetime(2025, 7, 16, 9, tzinfo=UTC)
    docs = [
        {
            "@timestamp": (base + timedelta(milliseconds=i))
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "host": {"os": {"type": "linux"}, "name": "h"},
            "event": {"type": "start", "action": "connection_attempted"},
            "process": {"executable": "/usr/bin/nmap"},
            "destination": {"ip": f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}"},
            "agent": {"id": "a"},
        }
        for i in range(count)
    ]
    import json

    executor: StreamExecutor = watch.executor
    events = [flatten(d) for d in docs]
    lines = [json.dumps(d).encode() for d in docs]
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    if fast:
        for i in range(0, count, BATCH):
            executor.push_lines(lines[i : i + BATCH])
    else:
        for e in events:
            executor.push(e)
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return (after - before) / count


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--events", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=3, help="runs per measurement (least CPU kept)")
    ap.add_argument("--rate", type=float, default=100_000.0, help="paced ingest rate, events/s")
    ap.add_argument("--seconds", type=float, default=5.0, help="paced run length")
    ap.add_argument("--paced-events", type=int, default=500_000, help="file the paced run reads")
    ap.add_argument("--rule", default=DEFAULT_RULE, help="built-in rule (reconwatch rules list)")
    args = ap.parse_args()
    global RULE
    RULE = args.rule
    load = os.getloadavg()[0]
    path = generate(HERE / "out" / f"events-{args.events}-7.ndjson", args.events)
    lines = path.read_bytes().splitlines()
    size = sum(len(x) for x in lines) / len(lines)
    print(f"file: {path.name}: {len(lines)} events, {size:.0f} bytes each on average; rule {RULE}")

    runs = [stream_pass(lines) for _ in range(args.repeat)]
    s_cpu, s_alerts, stats = min(runs, key=lambda r: r[0])
    f_cpu, f_alerts = min(file_pass(path) for _ in range(args.repeat))
    p_cpu, p_alerts, _ = min(stream_pass(lines, python_scan=True) for _ in range(args.repeat))
    g_cpu, g_alerts, _ = min(stream_pass(lines, fast=False) for _ in range(args.repeat))
    d_runs = [duckdb_pass(path, args.events) for _ in range(args.repeat)]
    d_wall, d_cpu = min(r[0] for r in d_runs), min(r[1] for r in d_runs)
    s_rate, g_rate = len(lines) / s_cpu, len(lines) / g_cpu
    d_rate, d_cpu_rate = len(lines) / d_wall, len(lines) / d_cpu
    compiled = (
        "compiled scan" if compiled_scan_enabled() else "Python scan: _scan.c not built or off"
    )
    p_rate = len(lines) / p_cpu
    print(
        f"stream  : {s_rate:>10,.0f} events/s per core (CPU time, {compiled}; {s_alerts} alert(s) "
        f"as they fired; {stats})"
    )
    f_rate = len(lines) / f_cpu
    print(
        f"+ read  : {f_rate:>10,.0f} events/s per core (the file read as `reconwatch watch` reads "
        f"it, lines scanned in its buffer; {f_alerts} alert(s))"
    )
    print(
        f"py scan : {p_rate:>10,.0f} events/s per core (the fast path's Python loop; {p_alerts} alert(s))"
    )
    print(f"general : {g_rate:>10,.0f} events/s per core (the per-event path; {g_alerts} alert(s))")
    print(
        f"duckdb  : {d_rate:>10,.0f} events/s wall, {d_cpu_rate:,.0f} events/s per CPU second "
        f"(one run over the file: {d_runs[0][2]} row(s))"
    )
    print(
        f"ratio stream / 300k events/s target: {s_rate / TARGET:.2f}; with the file read: "
        f"{f_rate / TARGET:.2f}"
    )
    print(
        f"ratio stream / duckdb (per CPU second): {s_rate / d_cpu_rate:.2f}; / duckdb wall: {s_rate / d_rate:.2f}"
    )
    print(f"ratio stream fast path / general path: {s_rate / g_rate:.2f}")
    print(f"ratio compiled scan / Python scan: {s_rate / p_rate:.2f}")

    paced_path = generate(HERE / "out" / f"events-{args.paced_events}-7.ndjson", args.paced_events)
    wanted = int(args.rate * args.seconds)
    with paced_path.open("rb") as handle:
        paced_lines = [line.rstrip(b"\n") for line in itertools.islice(handle, wanted)]
    events, alerts, achieved = paced(paced_lines, args.rate)
    seconds = len(paced_lines) / args.rate
    print(
        f"paced at {args.rate:,.0f}/s for {seconds:.1f} s (achieved {achieved:,.0f}/s): per-event "
        f"latency p50 {pct(events, 0.5) * 1e3:.2f} ms, p99 {pct(events, 0.99) * 1e3:.2f} ms, "
        f"max {max(events) * 1e3:.2f} ms; alert latency max "
        f"{max(alerts, default=float('nan')) * 1e3:.2f} ms over {len(alerts)} alert(s); "
        f"p99 / 1 s = {pct(events, 0.99):.3f}"
    )
    if achieved < 0.95 * args.rate:
        print(
            f"  input outruns the executor: the backlog grows with the run ({seconds:.1f} s here)"
        )
    last_second = events[-int(args.rate) :]
    print(
        f"  p99 over the last second: {pct(last_second, 0.99) * 1e3:.2f} ms (a growing backlog shows here)"
    )

    general = state_bytes_per_distinct()
    fast = state_bytes_per_distinct(fast=True)
    print(
        f"state: {general:.0f} bytes per (group, distinct value) fed event by event, {fast:.0f} fed "
        f"in micro-batches (tracemalloc; every event a new address in its own millisecond, its "
        f"time bucket included); documented estimate {DISTINCT_ENTRY_BYTES} + {BUCKET_BYTES}"
    )
    print(f"load average (1 min) before {load:.2f}, after {os.getloadavg()[0]:.2f}; 2 cores")


if __name__ == "__main__":
    main()
