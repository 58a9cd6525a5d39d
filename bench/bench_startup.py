"""Start-up cost: `reconwatch query` over a 1,000-event file vs `python -c "import duckdb"`, whole processes."""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path

from gen_events import generate, query_time
from procs import compile_package, timed

HERE = Path(__file__).resolve().parent
EVENTS = 1000
QUERY = (
    'FROM logs-endpoint.events.* | WHERE event.action == "connection_attempted" '
    "| STATS attempts = COUNT(*) BY host.name | SORT attempts DESC | LIMIT 5"
)


def first_lines(source: Path, count: int) -> Path:
    """The first `count` events of a generated file, as a file of their own (cached)."""
    path = source.with_name(f"first-{count}-{source.name}")
    if not path.exists():
        with source.open("rb") as src, path.open("wb") as out:
            for _, line in zip(range(count), src, strict=False):
                out.write(line)
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeats", type=int, default=10, help="runs of each side, alternating")
    args = ap.parse_args()
    path = first_lines(generate(HERE / "out" / "events-1000-7.ndjson", EVENTS), EVENTS)
    now = query_time(EVENTS).isoformat()
    ours = [
        str(Path(sys.executable).parent / "reconwatch"),
        "query",
        QUERY,
        str(path),
        "--now",
        now,
        "--format",
        "json",
    ]
    base = [sys.executable, "-c", "import duckdb"]
    compile_package()
    load = os.getloadavg()[0]
    runs: dict[str, list[tuple[float, float]]] = {"duckdb-import": [], "reconwatch-query": []}
    timed(ours)  # warm the file cache
    for _ in range(args.repeats):
        runs["duckdb-import"].append(timed(base)[:2])
        runs["reconwatch-query"].append(timed(ours)[:2])
    print(
        f"{EVENTS} events ({path.stat().st_size / 1e3:.0f} kB), {args.repeats} runs each, sides alternating"
    )
    for name, got in runs.items():
        walls, cpus = [w for w, _ in got], [c for _, c in got]
        print(
            f"{name:17s} wall min {min(walls):.3f}s median {statistics.median(walls):.3f}s  "
            f"CPU min {min(cpus):.3f}s median {statistics.median(cpus):.3f}s"
        )
    cpu = {name: statistics.median(c for _, c in got) for name, got in runs.items()}
    wall = {name: statistics.median(w for w, _ in got) for name, got in runs.items()}
    lowest = {name: min(c for _, c in got) for name, got in runs.items()}
    print(
        "CPU ratio (reconwatch query / import duckdb, user+sys of each whole process, medians): "
        f"{cpu['reconwatch-query'] / cpu['duckdb-import']:.2f} (target <= 2.0)"
    )
    print(
        f"CPU ratio of the lowest runs: {lowest['reconwatch-query'] / lowest['duckdb-import']:.2f}"
    )
    print(
        f"wall ratio (medians; inflated by other work on a loaded machine): "
        f"{wall['reconwatch-query'] / wall['duckdb-import']:.2f}"
    )
    print(
        f"load average (1 min) before {load:.2f}, after {os.getloadavg()[0]:.2f}; {os.cpu_count()} cores"
    )


if __name__ == "__main__":
    main()
