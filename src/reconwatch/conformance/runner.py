"""Running csv-spec cases on an executor and classifying each: passed, failed (with a diff) or skipped.

A skip always names what is missing: an index whose data is not here, a capability listed in
UNSUPPORTED_CAPABILITIES, a command/function/type the analyser or a backend refuses by name, or a
marker in the spec itself (`-Ignore`, `#[skip:...]` covering the emulated version). Anything else
that goes wrong, including a syntax or semantic error on an Elastic test query, is a failure.
Warnings are in scope: they are part of ES|QL's answer (a multivalue turned into null is only
visible through them), so a case's warnings are compared and an executor that emits none fails
every case that lists some.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import resource
import traceback
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path

from reconwatch.backends import EXECUTORS, executor
from reconwatch.conformance.compare import compare
from reconwatch.conformance.datasets import MissingIndexError, SpecCatalog, SpecData, load_spec_data
from reconwatch.conformance.duck import SpecScanSource
from reconwatch.conformance.specfile import SpecCase, SpecFile, parse_spec_file
from reconwatch.errors import (
    IngestError,
    QuerySemanticError,
    QuerySyntaxError,
    UnsupportedFeatureError,
)
from reconwatch.esql import ast
from reconwatch.esql.analyze import analyze
from reconwatch.esql.parser import parse
from reconwatch.plan.nodes import Plan

# The Elasticsearch version these cases are judged as: `#[skip:LOW-HIGH]` markers covering it skip.
EMULATED_VERSION = (9, 2, 0)
# The query time every case runs at (cases are written not to depend on it).
FIXED_NOW = datetime(2025, 1, 15, 12, 0, 0, tzinfo=UTC)

# Capabilities (required_capability: lines) whose cases reconwatch deliberately does not run, with
# the reason. Every other capability is assumed: its cases run, and a wrong answer is a failure.
# List a capability here only when the feature it announces is out of scope AND the analyser would
# not refuse it by name: commands, functions, casts and query settings (SET) already skip naming
# themselves, and indices we lack skip naming the index (e.g. aggregate_metric_double_v0 ->
# function [to_aggregate_metric_double], optional_fields_nullify_tech_preview -> command [SET],
# load_constant_keyword -> index [event_alerts]); listing those would also hide runnable cases
# such as `FROM employees, sample_data` under load_constant_keyword.
UNSUPPORTED_CAPABILITIES: dict[str, str] = {
    "warn_null_misuse": (
        "the lint warning `Expression [...] always evaluates to NULL.` for NULL literals, from "
        "an Elasticsearch change that was not merged (the other spec files' NULL-literal cases "
        "expect no such warning; see OUTDATED_CASES)"
    ),
}
# Single cases that test behaviour reconwatch deliberately does not reproduce, with the reason.
UNSUPPORTED_CASES: dict[str, str] = {
    "stats_count_distinct.csv-spec#countDistinctOfIpPrecision": (
        "COUNT_DISTINCT approximation: Elasticsearch's HyperLogLog++ over-counts above a low "
        "precision_threshold (expects 9 of 8 distinct ips); reconwatch counts exactly"
    ),
    "mv_expand.csv-spec#expandAfterSort1": (
        "two rows tie on every SORT key (job_positions null): their order is whatever "
        "Elasticsearch's TopN heap gives, which no SORT pins; reconwatch keeps input order"
    ),
}
# Cases whose expectation an older Elasticsearch release wrote and today's Elasticsearch no longer
# gives (specs-wave2 was taken from the largest stored version of each file, some 8.13-8.16): the
# one place that says why each is not run. reconwatch follows the current behaviour.
OUTDATED_CASES: dict[str, str] = {
    "floats.csv-spec#autoBucket": (
        "AUTO_BUCKET was renamed BUCKET in 8.14; Elasticsearch now answers Unknown function "
        "[auto_bucket] (the BUCKET form of the case runs in other files)"
    ),
    # Its capability, warn_null_misuse, stays refused by name (UNSUPPORTED_CAPABILITIES) for
    # cases of other files that require it.
    "conditional.csv-spec#nullValue": (
        "expects `Line 3:32: Expression [1 + null] always evaluates to NULL.`, a warning of an "
        "Elasticsearch change that was not merged (capability warn_null_misuse); released "
        "Elasticsearch answers the same rows without it, as the NULL-literal cases of "
        "null.csv-spec and eval.csv-spec expect"
    ),
}
# Cases one executor does not run, with the reason; the other executors run them.
UNSUPPORTED_ON: dict[tuple[str, str], str] = {
    ("mv_expand.csv-spec#explosionStats", "reference"): (
        "five MV_EXPANDs make 24.3 million rows, over a minute in the row-by-row reference "
        "interpreter; DuckDB runs the case"
    ),
    ("mv_expand.csv-spec#explosionStats", "spark"): (
        "five MV_EXPANDs make 24.3 million rows; the Spark executor runs MV_EXPAND and what "
        "follows it on the driver through the row-by-row interpreter (over two minutes); "
        "DuckDB runs the case"
    ),
}
# Directives about Elasticsearch's own test infrastructure, not about results.
_IGNORED_DIRECTIVES = frozenset(
    {"skip_flattened_rewrite", "request_stored", "pragma", "skip_columnar"}
)

BACKENDS = tuple(EXECUTORS)


class Outcome(StrEnum):
    PASSED = "passed"
    FAILED = "failed"
    SKIPPED = "skipped"


@dataclass(frozen=True, slots=True)
class CaseResult:
    """One case on one backend: the outcome and, unless it passed, why."""

    case: SpecCase
    backend: str
    outcome: Outcome
    reason: str = ""
    diff: tuple[str, ...] = ()


@dataclass(slots=True)
class Summary:
    results: list[CaseResult] = field(default_factory=list)
    problems: list[IngestError] = field(default_factory=list)

    def count(self, outcome: Outcome, file: str | None = None) -> int:
        return sum(
            1
            for r in self.results
            if r.outcome is outcome and (file is None or r.case.file == file)
        )

    @property
    def files(self) -> list[str]:
        return sorted({r.case.file for r in self.results})

    @property
    def ok(self) -> bool:
        return not self.problems and self.count(Outcome.FAILED) == 0


# ---------------------------------------------------------------------------------------------
# Classification


def _version(text: str) -> tuple[int, ...] | None:
    try:
        return tuple(int(part) for part in text.split("."))
    except ValueError:
        return None


def _spec_skip(case: SpecCase) -> str | None:
    """Why the spec itself says not to run this case here, or None."""
    if case.ignored:
        return "-Ignore in the spec"
    if case.swallowed_by is not None:
        return (
            f"never run by Elasticsearch: its reader takes this case as the expected table of "
            f"{case.swallowed_by}, whose query lacks ';' (expectations unverified upstream)"
        )
    if case.id in UNSUPPORTED_CASES:
        return UNSUPPORTED_CASES[case.id]
    if case.id in OUTDATED_CASES:
        return f"outdated expectation: {OUTDATED_CASES[case.id]}"
    if case.skip is not None:
        low = _version(case.skip.low) if case.skip.low else (0,)
        high = _version(case.skip.high) if case.skip.high else (999,)
        if low is not None and high is not None and low <= EMULATED_VERSION <= high:
            return f"#[skip:{case.skip.low}-{case.skip.high}] {case.skip.reason}".rstrip()
    for cap in case.capabilities:
        if cap in UNSUPPORTED_CAPABILITIES:
            return f"required_capability {cap}: {UNSUPPORTED_CAPABILITIES[cap]} unsupported"
    for key, value in case.directives:
        if key == "required_capability_coordinator" and value in UNSUPPORTED_CAPABILITIES:
            return f"required_capability {value}: {UNSUPPORTED_CAPABILITIES[value]} unsupported"
        if key.startswith("missing_capability") and value not in UNSUPPORTED_CAPABILITIES:
            return f"{key} {value}: the case is for engines without it"
    unknown = [c for c in case.columns if c.type is None]
    if unknown:
        return f"result type [{unknown[0].type_text}] unsupported"
    return None


def _sources(query: ast.Query) -> tuple[str, ...]:
    first = query.commands[0] if query.commands else None
    return first.sources if isinstance(first, ast.From) else ()


def _compile(case: SpecCase, data: SpecData) -> Plan:
    """The case's plan; MissingIndexError is raised before the analyser judges features so that a
    case on an index we do not have is reported as such."""
    query = parse(case.query)
    sources = _sources(query)
    if sources:
        data.resolve(sources)
    return analyze(query, SpecCatalog(data))


def _failure(case: SpecCase, backend: str, reason: str, diff: Iterable[str] = ()) -> CaseResult:
    return CaseResult(case, backend, Outcome.FAILED, reason, tuple(diff))


def _skip(case: SpecCase, backend: str, reason: str) -> CaseResult:
    return CaseResult(case, backend, Outcome.SKIPPED, reason)


def run_case(case: SpecCase, data: SpecData, backend: str, now: datetime = FIXED_NOW) -> CaseResult:
    """Run one case on one backend and classify the outcome."""
    reason = _spec_skip(case) or UNSUPPORTED_ON.get((case.id, backend))
    if reason is not None:
        return _skip(case, backend, reason)
    try:
        plan = _compile(case, data)
    except MissingIndexError as exc:
        return _skip(case, backend, str(exc))
    except UnsupportedFeatureError as exc:
        return _skip(case, backend, exc.message)
    except QuerySyntaxError as exc:
        return _failure(case, backend, f"syntax error: {exc.one_line()}")
    except QuerySemanticError as exc:
        return _failure(case, backend, f"semantic error: {exc.one_line()}")
    try:
        result = executor(backend)(plan, SpecScanSource(data), now)
    except UnsupportedFeatureError as exc:
        return _skip(case, backend, f"{backend}: {exc.message}")
    except Exception as exc:  # an engine crash is a failure of this case, not of the run
        where = traceback.extract_tb(exc.__traceback__)[-1]
        origin = f"{Path(where.filename).name}:{where.lineno}"
        return _failure(case, backend, f"{type(exc).__name__}: {exc} ({origin})")
    diff = compare(case, result)
    if diff:
        return _failure(case, backend, diff[0], diff)
    return CaseResult(case, backend, Outcome.PASSED)


# ---------------------------------------------------------------------------------------------
# Limits: one runaway case must not take the run down


@dataclass(frozen=True, slots=True)
class Limits:
    """What one case may take: seconds of wall time and bytes of address space of its worker."""

    seconds: float = 60.0
    memory_bytes: int = 4 << 30


DEFAULT_LIMITS = Limits()


def _worker(conn: Connection, data: SpecData, now: datetime, limits: Limits) -> None:
    """Child process: run the cases the parent sends, answer with their results."""
    # A hard limit already lower than ours stays in force.
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_AS, (limits.memory_bytes, limits.memory_bytes))
    while True:
        try:
            job = conn.recv()
        except EOFError:
            return
        case, backend = job
        try:
            result = run_case(case, data, backend, now)
        except Exception as exc:  # e.g. MemoryError or RecursionError while compiling
            result = _failure(case, backend, f"{type(exc).__name__}: {exc}")
        conn.send((result.outcome.value, result.reason, result.diff))


class _Isolated:
    """A worker process that runs cases under Limits, replaced when a case kills or hangs it."""

    def __init__(self, data: SpecData, now: datetime, limits: Limits) -> None:
        self.data = data
        self.now = now
        self.limits = limits
        # fork: the child shares the loaded data instead of pickling it.
        self.context = multiprocessing.get_context("fork")
        self.process: BaseProcess | None = None
        self.conn: Connection | None = None

    def __enter__(self) -> _Isolated:
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop()

    def _start(self) -> Connection:
        parent, child = self.context.Pipe()
        process = self.context.Process(
            target=_worker, args=(child, self.data, self.now, self.limits), daemon=True
        )
        process.start()
        child.close()
        self.process, self.conn = process, parent
        return parent

    def _stop(self) -> None:
        if self.conn is not None:
            self.conn.close()
        if self.process is not None:
            self.process.kill()
            self.process.join()
        self.process = self.conn = None

    def run(self, case: SpecCase, backend: str) -> CaseResult:
        conn = self.conn or self._start()
        try:
            conn.send((case, backend))
            if not conn.poll(self.limits.seconds):
                self._stop()
                return _failure(
                    case, backend, f"no result within {self.limits.seconds:g}s: stopped"
                )
            outcome, reason, diff = conn.recv()
        except (EOFError, OSError):
            code = None
            if self.process is not None:
                self.process.join(5.0)  # it is gone or going: collect its exit status
                code = self.process.exitcode
            self._stop()
            how = f"signal {-code}" if code is not None and code < 0 else f"exit code {code}"
            return _failure(case, backend, f"the case ended its worker process ({how})")
        return CaseResult(case, backend, Outcome(outcome), reason, tuple(diff))


# ---------------------------------------------------------------------------------------------
# Whole directories


def spec_files(root: Path) -> list[Path]:
    """The *.csv-spec files of a spec directory: those of its specs/ and specs-*/ folders (wave
    after wave), or its own when it has none."""
    folders = sorted(p for p in root.glob("specs*") if p.is_dir()) if root.is_dir() else []
    if not folders:
        folders = [root]
    return [path for folder in folders for path in sorted(folder.glob("*.csv-spec"))]


def data_root(root: Path) -> Path:
    """Where a spec directory's data/ and mappings/ are: in it, or (for a folder of spec files
    such as specs-wave2/) in its parent."""
    if not (root / "data").is_dir() and (root.parent / "data").is_dir():
        return root.parent
    return root


def load_cases(root: Path) -> tuple[list[SpecFile], SpecData]:
    return [parse_spec_file(p) for p in spec_files(root)], load_spec_data(data_root(root))


def select(cases: Iterable[SpecCase], name: str | None) -> Iterator[SpecCase]:
    """Cases named `name`, `file#name` or all of them."""
    for case in cases:
        if name is None or name in (case.name, case.id):
            yield case


def run_all(
    root: Path,
    backends: Sequence[str] = ("duckdb",),
    name: str | None = None,
    now: datetime = FIXED_NOW,
    limits: Limits | None = DEFAULT_LIMITS,
) -> Summary:
    """Run every case of a spec directory on the given backends. With `limits`, each case runs in
    a worker process under them: a case that runs away or kills its process fails, naming why,
    and the run goes on with a fresh worker."""
    files, data = load_cases(root)
    summary = Summary(problems=[*data.problems])
    jobs: list[tuple[SpecCase, str]] = []
    for spec in files:
        summary.problems.extend(spec.problems)
        jobs.extend((case, backend) for case in select(spec.cases, name) for backend in backends)
    if limits is None:
        summary.results.extend(run_case(case, data, backend, now) for case, backend in jobs)
    else:
        with _Isolated(data, now, limits) as worker:
            summary.results.extend(worker.run(case, backend) for case, backend in jobs)
    return summary
