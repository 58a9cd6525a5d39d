"""`reconwatch detect` vs `reconwatch query` with the same (seed) rule on the engine benchmark's file."""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

from gen_events import generate, query_time
from reconwatch.rules.builtin import DEFAULT_RULE, load_builtin

HERE = Path(__file__).resolve().parent


def _time(argv: list[str], repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        best = min(best, time.perf_counter() - start)
    return best


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
    base = _time([exe, "query", query, *common], args.repeats)
    rules = _time([exe, "detect", *common, "--no-evidence"], args.repeats)
    full = _time([exe, "detect", *common], args.repeats)
    alerts = subprocess.run(
        [exe, "detect", *common], check=True, capture_output=True, text=True
    ).stdout.count('"kibana.alert.uuid"')
    print(f"{path.name}: rule {DEFAULT_RULE}, run at {now}, {alerts} alert(s)")
    print(f"query {base:.2f}s, detect --no-evidence {rules:.2f}s (ratio {rules / base:.2f})")
    print(f"detect with evidence {full:.2f}s (ratio {full / base:.2f}; target <= 1.10)")


if __name__ == "__main__":
    main()
