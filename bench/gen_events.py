"""Benchmark input from the package simulator: hour after hour of fleet traffic, a subnet scan in the last.

`generate` simulates every hour (one seed each). `generate_repeated` simulates two hours, the
fleet's ordinary traffic and the last hour with the scan, and writes the first again shifted by
an hour for each earlier hour (its time stamps moved, its event ids made unique): minutes instead
of an hour of Python for 20M events, for benchmarks that measure reading, not variety."""

from __future__ import annotations

import argparse
import math
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import msgspec

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


def _shifted(template: bytes, base: datetime, hours: int, copy: int) -> bytes:
    """The template hour (events stamped in `base`'s hour, their ingest times perhaps in the
    next) moved `hours` later, each event id prefixed with the copy's number."""
    out = template
    # The later hour first: moved by one hour or more, the earlier one cannot turn into it.
    for step in (1, 0):
        old = _hour_prefix(base + timedelta(hours=step))
        out = out.replace(old, _hour_prefix(base + timedelta(hours=hours + step)))
    tag = f"{copy:04X}".encode()
    for key in _EVENT_ID_KEYS:
        out = out.replace(key, key + tag)
    return out


# How an event's id starts in the simulator's events: nested (after the dataset, which is
# written just before it) or dotted.
_EVENT_ID_KEYS = (b'"dataset":"endpoint.events.network","id":"', b'"event.id":"')


def _hour_prefix(when: datetime) -> bytes:
    return when.strftime("%Y-%m-%dT%H:").encode()


def _one_hour(hosts: int, start: datetime, seed: int, scans: tuple[str, ...]) -> bytes:
    sim = Simulation(hosts=hosts, hours=1, start=start, scans=scans, seed=seed)
    encoder = msgspec.json.Encoder()
    return b"".join(encoder.encode(e) + b"\n" for e in sim.stream())


def generate_repeated(path: Path, count: int, seed: int = 7) -> Path:
    """About `count` events as NDJSON, hours 0..H-2 one simulated hour repeated (shifted), the
    last hour simulated with a subnet scan (same seed: the same fleet). Cached by name."""
    if path.exists():
        return path
    hosts, hours = plan(count)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    template = _one_hour(hosts, START, seed, ())
    with tmp.open("wb") as out:
        for hour in range(hours - 1):
            out.write(_shifted(template, START, hour, hour))
        last = START + timedelta(hours=hours - 1)
        out.write(_one_hour(hosts, last, seed, ("subnet",)))
    tmp.rename(path)
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--events", type=int, default=2_000_000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "out")
    ap.add_argument(
        "--repeat", action="store_true", help="one simulated hour repeated (generate_repeated)"
    )
    args = ap.parse_args()
    if args.repeat:
        name = f"events-{args.events}-{args.seed}-repeated.ndjson"
        print(generate_repeated(args.out / name, args.events, args.seed))
    else:
        name = f"events-{args.events}-{args.seed}.ndjson"
        print(generate(args.out / name, args.events, args.seed))


if __name__ == "__main__":
    main()
