"""Memory per group of the native detectors, measured (tracemalloc) against their own estimate (state_bytes), for small and large groups."""

from __future__ import annotations

import argparse
import tracemalloc
from datetime import timedelta

from reconwatch.engine.native.baseline import BaselineDetector
from reconwatch.engine.native.contact import Contact
from reconwatch.engine.native.detector import Detector, make_detector
from reconwatch.rules.builtin import load_builtin

T0 = 1_767_225_600_000
HOUR = 3_600_000


def contact(ms: int, group: int, dest: int, *, result: bool = False) -> Contact:
    ip = f"10.{dest // 65536 % 256}.{dest // 256 % 256}.{dest % 256}"
    host = f"host-{group:05d}"
    return Contact(
        ms, host, host, f"/usr/bin/tool{group % 7}", "tool", f"e{group}", ip, 443, "tcp",
        result, False if result else None, "timeout" if result else None,
    )  # fmt: skip


def feed(detector: Detector, groups: int, peers: int, new: int) -> None:
    """Each group learns `peers` destinations (history), then reaches `new` new ones with
    failed outcomes, spread over two hours."""
    for g in range(groups):
        for d in range(peers):
            detector.push(contact(T0 + d, g, d), learn=True)
    for g in range(groups):
        for d in range(new):
            ms = T0 + 13 * HOUR + d * (2 * HOUR // max(1, new))
            detector.push(contact(ms, g, 10_000_000 + d))
            detector.push(contact(ms, g, 10_000_000 + d, result=True))


def measure(name: str, groups: int, peers: int, new: int) -> tuple[float, float]:
    rule = load_builtin(name)
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    detector = make_detector(rule)
    if isinstance(detector, BaselineDetector):
        detector.learning_ms = int(timedelta(hours=12).total_seconds() * 1000)
    feed(detector, groups, peers, new)
    used = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    return used / groups, detector.state_bytes() / groups


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--groups", type=int, default=200)
    args = parser.parse_args()
    print("| detector | group | measured bytes/group | state_bytes/group |")
    print("|---|---|---|---|")
    for name in ("recon-trw", "recon-baseline"):
        for label, peers, new in (
            ("client: 5 peers, 0 new", 5, 0),
            ("scraper: 300 peers, 0 new", 300, 0),
            ("scanner: 5 peers, 1,000 new", 5, 1000),
            ("huge: 5,000 peers, 5,000 new", 5000, 5000),
        ):
            groups = args.groups if peers + new < 2000 else max(1, args.groups // 20)
            measured, estimate = measure(name, groups, peers, new)
            print(f"| {name} | {label} | {measured:,.0f} | {estimate:,.0f} |")


if __name__ == "__main__":
    main()
