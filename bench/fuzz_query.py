"""Fuzz campaign over the ES|QL query parser and analyser and the JSON event readers.

    python bench/fuzz_query.py                      # 1,000,000 inputs per target
    python bench/fuzz_query.py --runs 20000 --targets query json

Targets (checks in tests/query_fuzz.py, also run briefly in CI by tests/unit/test_query_fuzz.py):
  query   parse, render round trip, analyse: a valid query or a QueryError inside the text
  json    the validating reader's path for one NDJSON line: depth check, decode, flatten
  stream  `reconwatch watch`'s micro-batches (fast path, compiled scan) of up to 8 lines
Inputs come from hypothesis strategies (random token sequences, mutated shipped rules, raw text;
event-like JSON damaged by cuts, byte flips, splices and deep nesting; raw bytes): with the default
engine, 2,000 of those then random edits of them (spans cut, repeated, replaced by language tokens
or pieces of other inputs, bytes changed, deep bracket nesting); with --engine hypothesis, every
input from the strategies (slower by far). Any exception
escaping a check is a crash: counted, kept under the work directory, and the campaign goes on.
Each target runs in its own process. Prints inputs per second and the outcome counts; exit 1 if
any target crashed.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGETS = ("query", "json", "stream")
CHUNK = 10_000  # examples per hypothesis run (each with its own seed)
SEEDS = 2_000  # hypothesis examples the mutation engine starts from
SAVE_EVERY = 5_000  # inputs between two writes of the counts


def child(target: str, runs: int, workdir: Path, engine: str) -> None:
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
        if sum(counts.values()) % SAVE_EVERY == 0:  # a campaign stopped early still reports
            _save(workdir, target, counts, crashes, started)

    if engine == "mutate":
        corpus: list[object] = []
        seeds = min(SEEDS, runs)

        @seed(0)
        @settings(
            max_examples=seeds,
            database=None,
            deadline=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(strategy)
        def collect(example: object) -> None:
            corpus.append(example)
            one(example)

        collect()
        rng = random.Random(target)
        for _ in range(runs - sum(counts.values())):
            one(mutate(rng, rng.choice(corpus), corpus, fuzz.TOKENS))
        _save(workdir, target, counts, crashes, started)
        return

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
    _save(workdir, target, counts, crashes, started)


def _save(
    workdir: Path, target: str, counts: Counter[str], crashes: list[str], started: float
) -> None:
    stats = {
        "target": target,
        "inputs": sum(counts.values()),
        "counts": dict(counts),
        "crashes": crashes[:20],
        "seconds": round(time.monotonic() - started, 1),
    }
    (workdir / f"{target}.json").write_text(json.dumps(stats))


def mutate(rng: random.Random, example: object, corpus: list[object], tokens: list[str]) -> object:
    """One to three random edits of a corpus entry: a span cut, repeated or replaced by a
    language token or another entry's piece, a character or byte changed."""
    if isinstance(example, list):  # a stream batch: mutate one line, or drop or add one
        lines = list(example) or [b"{}"]
        at = rng.randrange(len(lines))
        lines[at] = mutate(rng, lines[at], corpus, tokens)  # type: ignore[assignment]
        if rng.random() < 0.2:
            lines.append(rng.choice(lines))
        return lines
    text = example if isinstance(example, bytes) else str(example).encode("utf-8", "surrogatepass")
    for _ in range(rng.randint(1, 3)):
        start = rng.randint(0, len(text))
        end = min(len(text), start + rng.randint(0, 24))
        edit = rng.randrange(6)
        if edit == 0:
            text = text[:start] + text[end:]
        elif edit == 1:
            text = text[:end] + text[start:end] * rng.randint(1, 50) + text[end:]
        elif edit == 2:
            text = text[:start] + rng.choice(tokens).encode() + text[end:]
        elif edit == 3 and text:
            text = text[:start] + bytes([rng.randrange(256)]) + text[start + 1 :]
        elif edit == 4:
            other = rng.choice(corpus)
            piece = other if isinstance(other, bytes) else str(other).encode("utf-8", "replace")
            a = rng.randint(0, len(piece))
            text = text[:start] + piece[a : a + rng.randint(0, 40)] + text[end:]
        else:
            depth = rng.randint(1, 400)
            text = text[:start] + b"(" * depth + text[start:end] + b")" * depth + text[end:]
    if isinstance(example, bytes):
        return text
    return text.decode("utf-8", "replace")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1_000_000, help="inputs per target")
    parser.add_argument("--targets", nargs="+", choices=TARGETS, default=list(TARGETS))
    parser.add_argument(
        "--engine",
        choices=("mutate", "hypothesis"),
        default="mutate",
        help="mutate: random edits of hypothesis examples (fast); hypothesis: every input generated",
    )
    parser.add_argument("--child", choices=TARGETS, help=argparse.SUPPRESS)
    parser.add_argument("--workdir", type=Path, help="where crashes and counts go")
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="fuzz-query-"))
    workdir.mkdir(parents=True, exist_ok=True)
    if args.child:
        child(args.child, args.runs, workdir, args.engine)
        return 0
    crashed = False
    for target in args.targets:
        argv = [sys.executable, __file__, "--child", target, "--runs", str(args.runs)]
        argv += ["--engine", args.engine]
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
