"""Every benchmark in bench/ in turn (`make bench`): each prints its own ratios against a baseline measured in the same run."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
# Benchmarks that take the event count of the generated file (bench/gen_events.py).
TAKES_EVENTS = {"bench_detect", "bench_query", "bench_stream"}
# Benchmarks that load the kernel sensor: root only, skipped with the reason otherwise.
NEEDS_ROOT = {"bench_sensor", "bench_raw", "bench_overhead", "bench_bpf_time"}


def benchmarks() -> list[Path]:
    return sorted(HERE.glob("bench_*.py"))


def command(path: Path, events: int | None) -> list[str]:
    args = [sys.executable, str(path)]
    if events is not None and path.stem in TAKES_EVENTS:
        args += ["--events", str(events)]
    return args


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--events", type=int, help="event count for the file-based benchmarks")
    ap.add_argument("--only", nargs="*", default=[], help="benchmark names (default: all)")
    args = ap.parse_args()
    failed: list[str] = []
    for path in benchmarks():
        name = path.stem
        if args.only and name not in args.only and name.removeprefix("bench_") not in args.only:
            continue
        if name in NEEDS_ROOT and os.geteuid() != 0:
            print(f"== {name}: skipped, needs root (sudo make bench)", flush=True)
            continue
        print(f"== {name}", flush=True)
        if subprocess.run(command(path, args.events), check=False).returncode != 0:
            failed.append(name)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
