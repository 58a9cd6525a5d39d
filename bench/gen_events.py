"""Benchmark input from the package simulator: hour after hour of fleet traffic, a subnet scan in the last."""

from __future__ import annotations

import argparse
import math
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

from reconwatch.simulate import Simulation, write_events

START = datetime(2025, 7, 15, 0, tzinfo=UTC)
# Events a simulated host sends per hour, on average (fleet services, app traffic, scrapes).
PER_HOST_HOUR = 72
HOSTS = 1000


def plan(count: int) -> tuple[int, int]:
    """(hosts, hours) giving about `count` events; small files keep a fleet above 250 hosts."""
    hours = max(1, math.ceil(count / (HOSTS * PER_HOST_HOUR)))
    return max(300, round(count / (hours * PER_HOST_HOUR))), hours


def query_time(count: int) -> datetime:
    """The end of the simulated span: a rule run then, looking back one hour, sees the scan."""
    return START + timedelta(hours=plan(count)[1])


def _events(count: int, seed: int) -> Iterator[dict[str, object]]:
    hosts, hours = plan(count)
    fleet = None
    for hour in range(hours):
        last = hour == hours - 1
        sim = Simulation(
            hosts=hosts,
            hours=1,
            start=START + timedelta(hours=hour),
            scans=("subnet",) if last else (),
            seed=seed * 100_003 + hour,
        )
        # One fleet for every hour: the same machines keep their names, addresses and agent ids.
        fleet = fleet or sim.fleet
        sim.fleet = fleet
        yield from sim.events()


def generate(path: Path, count: int, seed: int = 7) -> Path:
    """Write about `count` events as NDJSON (cached: an existing file of that name is reused)."""
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    write_events(_events(count, seed), tmp)
    tmp.rename(path)
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--events", type=int, default=2_000_000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "out")
    args = ap.parse_args()
    print(generate(args.out / f"events-{args.events}-{args.seed}.ndjson", args.events, args.seed))


if __name__ == "__main__":
    main()
