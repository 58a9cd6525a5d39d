"""Fuzz campaign over the ES|QL query parser and analyser and the JSON event readers.

    python bench/fuzz_query.py                      # 1,000,000 inputs per target
    python bench/fuzz_query.py --runs 20000 --targets query json

Targets (checks in tests/query_fuzz.py, also run briefly in CI by tests/unit/test_query_fuzz.py):
  query   parse, render round trip, analyse: a valid query or a QueryError inside the text
  json    the validating reader's path for one NDJSON line: depth check, decode, flatten
  stream  `reconwatch watch`'s micro-batches (fast path, compiled scan) of up to 8 lines
Inputs come from hypothesis strategies (random token sequences, mutated shipped rules, raw text;
event-like JSON damaged by cuts, byte flips, splices and deep nesting; raw bytes). Any exception
escaping a check is a crash: counted, kept under the work directory, and the campaign goes on.
Each target runs in its own process. Prints inputs per second and the outcome counts; exit 1 if
any target crashed.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGETS = ("query", "json", "stream")
CHUNK = 10_000  # examples per hypothesis run (each with its own seed)


def child(target: str, runs: int, workdir: Path) -> None:
    sys.path.insert(0, str(ROOT / "tests"))
    from hypothesis import HealthCheck, given, seed, settings
    from hypothesis import strategies as st

    import query_fuzz as fuzz

    strategy, check = {
        "query": (fuzz.QUERIES, fuzz.check_query),
        "json": (fuzz.JSON_LINES, fuzz.check_json_line),
        "stream": (st.lists(fuzz.JSON_LINES, max_size=8), fuzz.check_stream_lines),
    }[target]
    counts: Counter[str] = Counter()
    crashes: list[str] = []
    started = time.monotonic()

    def one(example: object) -> None:
        try:
            counts[check(example)] += 1  # type: ignore[operator]
        except Exception as exc:  # a crash: kept, and the campaign goes on
            counts["crash"] += 1
            path = workdir / f"crash-{target}-{len(crashes)}.json"
            path.write_text(json.dumps({"input": repr(example), "error": repr(exc)}))
            crashes.append(f"{type(exc).__name__}: {str(exc)[:200]} ({path})")

    for number in range(0, runs, CHUNK):

        @seed(number)
        @settings(
            max_examples=min(CHUNK, runs - number),
            database=None,
            deadline=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(strategy)
        def batch(example: object) -> None:
            one(example)

        batch()
    stats = {
        "target": target,
        "inputs": sum(counts.values()),
        "counts": dict(counts),
        "crashes": crashes[:20],
        "seconds": round(time.monotonic() - started, 1),
    }
    (workdir / f"{target}.json").write_text(json.dumps(stats))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1_000_000, help="inputs per target")
    parser.add_argument("--targets", nargs="+", choices=TARGETS, default=list(TARGETS))
    parser.add_argument("--child", choices=TARGETS, help=argparse.SUPPRESS)
    parser.add_argument("--workdir", type=Path, help="where crashes and counts go")
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="fuzz-query-"))
    workdir.mkdir(parents=True, exist_ok=True)
    if args.child:
        child(args.child, args.runs, workdir)
        return 0
    crashed = False
    for target in args.targets:
        argv = [sys.executable, __file__, "--child", target, "--runs", str(args.runs)]
        done = subprocess.run([*argv, "--workdir", str(workdir)], check=False)
        stats_file = workdir / f"{target}.json"
        if done.returncode != 0 or not stats_file.exists():
            print(f"{target}: the fuzzing process died (exit {done.returncode})")
            crashed = True
            continue
        stats = json.loads(stats_file.read_text())
        rate = stats["inputs"] / max(stats["seconds"], 0.001)
        print(
            f"{target}: {stats['inputs']} inputs in {stats['seconds']} s ({rate:.0f}/s), "
            f"outcomes {stats['counts']}"
        )
        for crash in stats["crashes"]:
            print(f"  crash: {crash}")
        crashed = crashed or bool(stats["crashes"])
    print(f"work directory: {workdir}")
    return 1 if crashed else 0


if __name__ == "__main__":
    sys.exit(main())
