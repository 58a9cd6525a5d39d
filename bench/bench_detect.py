"""`reconwatch detect` vs `reconwatch query` with the same query on one generated file: the ratio."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from reconwatch.rules.builtin import load_builtin
from reconwatch.simulate import Simulation, write_events

RUN_AT = "2025-07-16T10:00:00Z"


def _time(argv: list[str], repeats: int = 3) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    hosts = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    exe = str(Path(sys.executable).with_name("reconwatch"))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "events.ndjson"
        sim = Simulation(
            hosts=hosts,
            hours=1,
            start=datetime(2025, 7, 16, 9, tzinfo=UTC),
            scans=("subnet",),
            seed=1,
        )
        count = write_events(sim.events(), path)
        query = load_builtin("subnet-scanning-seed").query
        base = _time([exe, "query", query, str(path), "--now", RUN_AT, "--format", "ndjson"])
        rules = _time(
            [exe, "detect", str(path), "--now", RUN_AT, "--format", "ndjson", "--no-evidence"]
        )
        full = _time([exe, "detect", str(path), "--now", RUN_AT, "--format", "ndjson"])
    print(
        f"{count} events: query {base:.2f}s, detect {rules:.2f}s (ratio {rules / base:.2f}), "
        f"detect with evidence {full:.2f}s (ratio {full / base:.2f})"
    )


if __name__ == "__main__":
    main()
