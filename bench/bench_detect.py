"""`reconwatch detect` vs `reconwatch query` with the same (seed) rule on the engine benchmark's file."""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

from gen_events import generate, query_time
from reconwatch.rules.builtin import DEFAULT_RULE, load_builtin

HERE = Path(__file__).resolve().parent


def _time(argv: list[str], repeats: int) -> tuple[float, float]:
    """Best wall time and least CPU seconds (user+sys of the child) over `repeats` runs."""
    best, cpu = float("inf"), float("inf")
    for _ in range(repeats):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        best = min(best, time.perf_counter() - start)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        used = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
        cpu = min(cpu, used)
    return best, cpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--events", type=int, default=2_000_000)
    ap.add_argument("--repeats", type=int, default=1)
    args = ap.parse_args()
    path = generate(HERE / "out" / f"events-{args.events}-7.ndjson", args.events)
    now = query_time(args.events).isoformat()
    exe = str(Path(sys.executable).with_name("reconwatch"))
    common = [str(path), "--now", now, "--format", "ndjson"]
    query = load_builtin(DEFAULT_RULE).query
    load = os.getloadavg()[0]
    base, base_cpu = _time([exe, "query", query, *common], args.repeats)
    rules, rules_cpu = _time([exe, "detect", *common, "--no-evidence"], args.repeats)
    full, full_cpu = _time([exe, "detect", *common], args.repeats)
    alerts = subprocess.run(
        [exe, "detect", *common], check=True, capture_output=True, text=True
    ).stdout.count('"kibana.alert.uuid"')
    print(f"{path.name}: rule {DEFAULT_RULE}, run at {now}, {alerts} alert(s)")
    print(f"query {base:.2f}s, detect --no-evidence {rules:.2f}s (ratio {rules / base:.2f})")
    print(f"detect with evidence {full:.2f}s (ratio {full / base:.2f}; target <= 1.10)")
    print(
        f"CPU seconds: query {base_cpu:.2f}, detect --no-evidence {rules_cpu:.2f} "
        f"(ratio {rules_cpu / base_cpu:.2f}), detect {full_cpu:.2f} (ratio {full_cpu / base_cpu:.2f})"
    )
    print(f"load average (1 min) before {load:.2f}, after {os.getloadavg()[0]:.2f}; 2 cores")


if __name__ == "__main__":
    main()
