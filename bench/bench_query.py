"""reconwatch query (in-process and CLI) vs hand-written DuckDB SQL on the same file: time, rate, peak RSS."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from gen_events import generate

HERE = Path(__file__).resolve().parent
RULE = "discovery_subnet_scanning_activity_from_compromised_host.toml"
BASELINE_SQL = """
SELECT count(*) AS n, count(DISTINCT destination.ip) AS d, count(DISTINCT agent.id) AS a,
       list(DISTINCT host.name), process.executable
FROM read_ndjson_auto('{path}')
WHERE host.os.type = 'linux' AND len(event.type) = 1 AND event.type[1] = 'start'
  AND event.action = 'connection_attempted'
  AND process.executable NOT IN ('/usr/local/bin/prometheus', '/app/extra/chrome', '/usr/lib/virtualbox/VBoxHeadless', '/usr/bin/prometheus')
GROUP BY process.executable
HAVING count(DISTINCT agent.id) = 1 AND count(DISTINCT destination.ip) > 250
ORDER BY n
"""

CHILD_RECONWATCH = """
import resource, sys, time, tomllib
from datetime import UTC, datetime
from importlib import resources
from reconwatch.ingest import Dataset
from reconwatch.query import run_query
text = tomllib.loads((resources.files("reconwatch") / "data/rules" / sys.argv[2]).read_text())["rule"]["query"]
t = time.perf_counter()
r = run_query(text, Dataset.from_files([sys.argv[1]]), now=datetime(2024, 1, 2, tzinfo=UTC))
print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, len(r.rows))
"""

CHILD_DUCKDB = """
import resource, sys, time, duckdb
t = time.perf_counter()
rows = duckdb.connect().execute(sys.argv[2].replace("{path}", sys.argv[1])).fetchall()
print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, len(rows))
"""


def child(code: str, *args: str) -> tuple[float, int, int]:
    out = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, check=True
    )
    secs, rss, rows = out.stdout.splitlines()[-1].split()
    return float(secs), int(rss) * 1024, int(rows)


def cli(path: Path, text: str) -> float:
    t = time.perf_counter()
    subprocess.run(
        [
            str(Path(sys.executable).parent / "reconwatch"),
            "query",
            text,
            str(path),
            "--now",
            "2024-01-02T00:00:00Z",
            "--format",
            "json",
        ],
        capture_output=True,
        check=True,
    )
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--events", type=int, default=2_000_000)
    args = ap.parse_args()
    path = generate(HERE / "out" / f"events-{args.events}-7.ndjson.gz", args.events)
    size = path.stat().st_size
    raw = sum(1 for _ in __import__("gzip").open(path, "rb"))
    base = child(CHILD_DUCKDB, str(path), BASELINE_SQL)
    ours = child(CHILD_RECONWATCH, str(path), RULE)
    import tomllib
    from importlib import resources

    text = tomllib.loads((resources.files("reconwatch") / "data/rules" / RULE).read_text())["rule"][
        "query"
    ]
    cli_secs = cli(path, text)
    report = {}
    for name, secs, rss in (
        ("duckdb-sql", base[0], base[1]),
        ("reconwatch", ours[0], ours[1]),
        ("reconwatch-cli", cli_secs, 0),
    ):
        report[name] = {
            "seconds": round(secs, 2),
            "events_per_s": round(raw / secs),
            "MB_per_s_gz": round(size / secs / 1e6, 1),
            "peak_rss_MB": round(rss / 1e6),
        }
        print(
            f"{name:15s} {secs:8.2f}s {raw / secs:12,.0f} ev/s {size / secs / 1e6:7.1f} MB/s(gz) peak {rss / 1e6:7.0f} MB"
        )
    print(f"rows: duckdb {base[2]} reconwatch {ours[2]}")
    print(f"speed ratio (duckdb time / reconwatch time): {base[0] / ours[0]:.2f} (target >= 1.0)")
    print(f"memory ratio (reconwatch / duckdb peak RSS): {ours[1] / base[1]:.2f} (target <= 1.5)")
    print(json.dumps(report))


if __name__ == "__main__":
    main()
