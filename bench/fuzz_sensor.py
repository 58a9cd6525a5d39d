"""Fuzz campaign over the parsers other users feed: the tracer's lines, audit records, audit log files.

    python bench/fuzz_sensor.py                       # 1,000,000 inputs per target
    python bench/fuzz_sensor.py --runs 20000 --targets tracer

Targets (checks in tests/sensor_fuzz.py, also run briefly in CI by tests/unit/test_sensor_fuzz.py):
  tracer  BpfCollector.handle_line (one collector for the whole run, as in the sensor)
  audit   ecs.auditd.AuditParser over the lines of one input (the sensor's auditd backend)
  ingest  ingest.auditd.AuditLines over one input as a file (`reconwatch query` on audit logs)
Each input must be accepted (a well-formed Connection whose document encodes) or rejected cleanly
(an unparsable-line count, or an IngestError with its path and line); any other exception is a
crash, saved under the work directory. Engine: atheris (coverage-guided, `pip install atheris`),
seeded with hypothesis examples and real audit records; without atheris, hypothesis generation
(much slower). Each target runs in its own process. Exit 1 if any target crashed.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TESTS = ROOT / "tests"
REAL_AUDIT = ROOT.parent / "shared" / "data" / "real" / "auditd"
TARGETS = ("tracer", "audit", "ingest")
MAX_LEN = {"tracer": 1024, "audit": 4096, "ingest": 4096}
SEEDS_PER_TARGET = 300
_STATS_EVERY = 1000


# --- the child: one target, one engine ----------------------------------------------------------


class Harness:
    """Runs one target on one input at a time and keeps the counts (and every crash) on disk."""

    def __init__(self, target: str, runs: int, workdir: Path) -> None:
        import sensor_fuzz as fuzz  # imported here, after atheris set up its instrumentation

        self.fuzz = fuzz
        self.target, self.runs, self.workdir = target, runs, workdir
        self.counts: Counter[str] = Counter()
        self.crashes: list[str] = []
        self.collector = fuzz.tracer_collector()
        self.started = time.monotonic()

    def run_bytes(self, data: bytes) -> None:
        """One atheris input, as the target reads it."""
        if self.target == "tracer":
            self.one(lambda: self.fuzz.check_tracer_line(self.collector, data), data)
        elif self.target == "audit":
            lines = data.decode("utf-8", "replace").split("\n")
            self.one(lambda: self.fuzz.check_audit_records(lines), data)
        else:
            self.one(lambda: self.fuzz.check_audit_file(data), data)

    def one(self, check: object, data: bytes) -> None:
        assert callable(check)
        try:
            self.counts[check()] += 1
        except Exception as exc:  # a crash: counted and kept, and the campaign goes on
            self.counts["crash"] += 1
            path = self.workdir / "crashes" / f"{self.target}-{len(self.crashes)}"
            path.parent.mkdir(exist_ok=True)
            path.write_bytes(data)
            self.crashes.append(f"{type(exc).__name__}: {exc} (input {path})")
            self.save()
        total = sum(self.counts.values())
        if total % _STATS_EVERY == 0 or total == self.runs:
            self.save()

    def save(self) -> None:
        stats = {
            "target": self.target,
            "inputs": sum(self.counts.values()),
            "counts": dict(self.counts),
            "crashes": self.crashes[:20],
            "seconds": time.monotonic() - self.started,
        }
        (self.workdir / f"{self.target}.json").write_text(json.dumps(stats))


def seeds(target: str) -> list[bytes]:
    """Starting inputs: examples of the hypothesis strategies, plus real audit records."""
    from hypothesis import HealthCheck, given, settings

    from sensor_fuzz import audit_files, audit_records, tracer_lines

    found: list[bytes] = []
    strategy = {"tracer": tracer_lines(), "audit": audit_records, "ingest": audit_files}[target]

    @settings(
        max_examples=SEEDS_PER_TARGET,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(strategy)
    def collect(example: object) -> None:
        if isinstance(example, list):
            found.append("\n".join(example).encode("utf-8", "surrogatepass"))
        else:
            assert isinstance(example, bytes)
            found.append(example)

    collect()
    if target != "tracer" and REAL_AUDIT.is_dir():
        for log in sorted(REAL_AUDIT.iterdir()):
            lines = log.read_bytes().split(b"\n")
            found += [b"\n".join(lines[i : i + 8]) for i in range(0, min(len(lines), 400), 8)]
    return [seed[: MAX_LEN[target]] for seed in found]


def child_atheris(target: str, runs: int, workdir: Path) -> None:
    import atheris

    # coverage comes from the modules imported inside this block: nothing before it imports them
    with atheris.instrument_imports(include=["reconwatch", "sensor_fuzz"]):
        harness = Harness(target, runs, workdir)
    corpus = workdir / f"corpus-{target}"
    corpus.mkdir(parents=True, exist_ok=True)
    for index, seed in enumerate(seeds(target)):
        (corpus / f"seed-{index}").write_bytes(seed)
    argv = [sys.argv[0], f"-runs={runs}", f"-max_len={MAX_LEN[target]}", str(corpus)]
    atheris.Setup(argv, harness.run_bytes)
    atheris.Fuzz()  # exits the process after `runs` inputs


def child_hypothesis(target: str, runs: int, workdir: Path) -> None:
    from hypothesis import HealthCheck, given, seed, settings

    from sensor_fuzz import audit_files, audit_records, tracer_lines

    workdir.mkdir(parents=True, exist_ok=True)
    harness = Harness(target, runs, workdir)
    chunk = 10_000
    for number in range(0, runs, chunk):
        strategy = {"tracer": tracer_lines(), "audit": audit_records, "ingest": audit_files}

        @seed(number)
        @settings(
            max_examples=min(chunk, runs - number),
            database=None,
            deadline=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(strategy[target])
        def one(example: object) -> None:
            if isinstance(example, list):
                example = "\n".join(example).encode("utf-8", "surrogatepass")
            assert isinstance(example, bytes)
            harness.run_bytes(example)

        one()
    harness.save()


# --- the parent: one process per target, then the table ---------------------------------------


def run_target(target: str, runs: int, engine: str, workdir: Path) -> dict[str, object]:
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])
    )
    command = [sys.executable, __file__, "--child", target, "--runs", str(runs), "--engine", engine]
    started = time.monotonic()
    result = subprocess.run(
        [*command, "--workdir", str(workdir)], env=env, capture_output=True, text=True, check=False
    )
    stats_file = workdir / f"{target}.json"
    stats: dict[str, object] = json.loads(stats_file.read_text()) if stats_file.exists() else {}
    done = re.findall(r"Done (\d+) runs", result.stderr)
    stats["engine_runs"] = int(done[-1]) if done else None
    stats["wall"] = time.monotonic() - started
    stats["exit"] = result.returncode
    if result.returncode != 0:
        stats["stderr_tail"] = result.stderr[-2000:]
    return stats


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1_000_000, help="inputs per target")
    parser.add_argument("--targets", default=",".join(TARGETS))
    parser.add_argument("--engine", choices=["auto", "atheris", "hypothesis"], default="auto")
    parser.add_argument("--child", choices=TARGETS, help=argparse.SUPPRESS)
    parser.add_argument("--workdir", type=Path, help="keep corpora and crashes here")
    args = parser.parse_args()
    if args.child:
        sys.path.insert(0, str(TESTS))
        runner = child_atheris if args.engine == "atheris" else child_hypothesis
        runner(args.child, args.runs, args.workdir)
        return 0
    engine = args.engine
    if engine == "auto":
        try:
            import atheris  # noqa: F401
        except ImportError:
            print("atheris is not installed (pip install atheris): using hypothesis, much slower")
            engine = "hypothesis"
        else:
            engine = "atheris"
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="fuzz-sensor-"))
    workdir.mkdir(parents=True, exist_ok=True)
    print(f"engine {engine}, {args.runs:,} inputs per target, work directory {workdir}")
    crashed = False
    for target in args.targets.split(","):
        stats = run_target(target, args.runs, engine, workdir)
        counts = stats.get("counts", {})
        assert isinstance(counts, dict)
        inputs = stats.get("inputs", 0)
        crashes = counts.get("crash", 0)
        other = counts.get("ignored", 0) + counts.get("message", 0)  # blank, padding, bpftrace text
        crashed |= bool(crashes) or stats["exit"] != 0 or inputs != args.runs
        print(
            f"{target:7} inputs {inputs:>9,}  accepted {counts.get('accepted', 0):>9,}  "
            f"rejected {counts.get('rejected', 0):>9,}  other {other:>9,}  "
            f"crashes {crashes}  ({stats['wall']:.0f} s, {engine} runs {stats['engine_runs']})"
        )
        for crash in stats.get("crashes", []) or []:
            print(f"    crash: {crash}")
        if stats["exit"] != 0:
            print(f"    exit {stats['exit']}: {stats.get('stderr_tail', '')}")
    return 1 if crashed else 0


if __name__ == "__main__":
    sys.exit(main())
