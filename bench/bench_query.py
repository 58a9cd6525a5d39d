"""reconwatch query (in-process and CLI) vs hand-written DuckDB SQL on the same file: time, rate, peak RSS."""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

from gen_events import generate, query_time
from procs import compile_package, timed
from reconwatch.rules.builtin import load_builtin

HERE = Path(__file__).resolve().parent
RULE = "subnet-scanning-seed"
# The seed rule by hand, as an expert writes it: read_json declaring only the fields the query
# reads, typed (read_ndjson_auto would infer every field of every event). event.type is an array
# in Defend documents, and ES|QL's `==` on it is true only when it holds the one value "start".
BASELINE_SQL = """
SELECT count(*) AS n, count(DISTINCT destination.ip) AS d, count(DISTINCT agent.id) AS a,
       list(DISTINCT host.name), list(DISTINCT agent.id), process.executable
FROM read_json('{path}', format = 'newline_delimited', columns = {{
    '@timestamp': 'TIMESTAMPTZ',
    'host': 'STRUCT(name VARCHAR, os STRUCT(type VARCHAR))',
    'event': 'STRUCT(type VARCHAR[], action VARCHAR)',
    'process': 'STRUCT(executable VARCHAR)',
    'destination': 'STRUCT(ip VARCHAR)',
    'agent': 'STRUCT(id VARCHAR)'
}})
WHERE "@timestamp" > TIMESTAMPTZ '{now}' - INTERVAL 1 HOUR
  AND host.os.type = 'linux' AND len(event.type) = 1 AND event.type[1] = 'start'
  AND event.action = 'connection_attempted'
GROUP BY process.executable
HAVING count(DISTINCT agent.id) = 1 AND count(DISTINCT destination.ip) > 250
ORDER BY n
LIMIT 100
"""

CHILD_RECONWATCH = """
import resource, sys, time
from datetime import datetime
from reconwatch.ingest import Dataset
from reconwatch.query import run_query
t = time.perf_counter()
r = run_query(sys.argv[2], Dataset.from_files([sys.argv[1]]), now=datetime.fromisoformat(sys.argv[3]))
u = resource.getrusage(resource.RUSAGE_SELF)
# The scan route reads half of a large file in a forked child: its CPU counts too.
c = resource.getrusage(resource.RUSAGE_CHILDREN)
cpu = u.ru_utime + u.ru_stime + c.ru_utime + c.ru_stime
print(cpu, time.perf_counter() - t, max(u.ru_maxrss, c.ru_maxrss), len(r.rows))
"""

CHILD_DUCKDB = """
import resource, sys, time, duckdb
t = time.perf_counter()
con = duckdb.connect()
con.execute("SET enable_progress_bar = false")
rows = con.execute(sys.argv[2]).fetchall()
u = resource.getrusage(resource.RUSAGE_SELF)
print(u.ru_utime + u.ru_stime, time.perf_counter() - t, u.ru_maxrss, len(rows))
"""


def child(code: str, *args: str) -> tuple[float, int, int, float]:
    """Run in a fresh interpreter so each side's peak RSS is its own."""
    out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(out.stderr)
    cpu, secs, rss, rows = out.stdout.split()[-4:]
    return float(secs), int(rss) * 1024, int(rows), float(cpu)


def cli_command(path: Path, text: str, now: str) -> list[str]:
    """One whole `reconwatch query` process, as a user runs it."""
    exe = str(Path(sys.executable).parent / "reconwatch")
    return [exe, "query", text, str(path), "--now", now, "--format", "json"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--events", type=int, default=2_000_000)
    ap.add_argument("--repeats", type=int, default=3, help="runs of each side, alternating")
    args = ap.parse_args()
    path = generate(HERE / "out" / f"events-{args.events}-7.ndjson", args.events)
    now = query_time(args.events).isoformat()
    size = path.stat().st_size
    with path.open("rb") as fh:
        raw = sum(1 for _ in fh)
    text = load_builtin(RULE).query
    sql = BASELINE_SQL.format(path=path, now=now)
    compile_package()
    load = os.getloadavg()[0]
    runs_base, runs_ours = [], []
    whole_sql: list[tuple[float, float]] = []
    whole_cli: list[tuple[float, float]] = []
    outputs: set[str] = set()
    for _ in range(args.repeats):
        runs_base.append(child(CHILD_DUCKDB, str(path), sql))
        runs_ours.append(child(CHILD_RECONWATCH, str(path), text, now))
        wall, cpu, _out = timed([sys.executable, "-c", CHILD_DUCKDB, str(path), sql])
        whole_sql.append((wall, cpu))
        wall, cpu, out = timed(cli_command(path, text, now), capture=True)
        whole_cli.append((wall, cpu))
        outputs.add(out)
    base, ours = _best(runs_base), _best(runs_ours)
    report = {}
    print(
        f"{raw:,} events, {size / 1e6:,.0f} MB ({size / raw:,.0f} bytes per event), query time {now}"
    )
    for name, secs, rss in (("duckdb-sql", base[0], base[1]), ("reconwatch", ours[0], ours[1])):
        report[name] = {
            "seconds": round(secs, 2),
            "events_per_s": round(raw / secs),
            "MB_per_s": round(size / secs / 1e6, 1),
            "peak_rss_MB": round(rss / 1e6),
        }
        print(
            f"{name:15s} {secs:8.2f}s {raw / secs:12,.0f} ev/s {size / secs / 1e6:7.1f} MB/s "
            f"peak {rss / 1e6:7.0f} MB"
        )
    print(f"rows: duckdb {base[2]} reconwatch {ours[2]} (CLI gave {len(outputs)} distinct output)")
    print(
        f"in-process CPU seconds (least of {args.repeats}): duckdb {base[3]:.2f}, "
        f"reconwatch {ours[3]:.2f}, ratio {base[3] / ours[3]:.2f}"
    )
    print(f"speed ratio (duckdb time / reconwatch time): {base[0] / ours[0]:.2f} (target >= 1.0)")
    print(f"memory ratio (reconwatch / duckdb peak RSS): {ours[1] / base[1]:.2f} (target <= 1.5)")
    cpu_cli = statistics.median(c for _, c in whole_cli)
    cpu_sql = statistics.median(c for _, c in whole_sql)
    each = ", ".join(f"{a[1]:.2f}/{b[1]:.2f}" for a, b in zip(whole_cli, whole_sql, strict=True))
    print(
        "whole process CPU seconds (user+sys), reconwatch query CLI / python -c + the SQL: "
        f"{cpu_cli:.2f} / {cpu_sql:.2f} = {cpu_cli / cpu_sql:.2f} (medians; target <= 1.0); "
        f"each run {each}"
    )
    walls = statistics.median(w for w, _ in whole_cli) / statistics.median(w for w, _ in whole_sql)
    print(f"whole process wall ratio (medians; inflated on a loaded machine): {walls:.2f}")
    print(f"load average (1 min) before {load:.2f}, after {os.getloadavg()[0]:.2f}; 2 cores")
    report["whole_process_cpu_ratio"] = {"value": round(cpu_cli / cpu_sql, 2)}
    print(json.dumps(report))


def _best(runs: list[tuple[float, int, int, float]]) -> tuple[float, int, int, float]:
    """Fastest wall time; the least CPU seconds of any run (the steadier figure under load)."""
    fastest = min(runs)
    return fastest[0], fastest[1], fastest[2], min(r[3] for r in runs)


if __name__ == "__main__":
    main()
