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

import traceback
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
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
# themselves, and indices we lack skip naming the index. Every capability in the copied specs is
# covered that way today (e.g. aggregate_metric_double_v0 -> function [to_aggregate_metric_double],
# optional_fields_nullify_tech_preview -> command [SET], load_constant_keyword -> index
# [event_alerts]), so the list is empty: listing them would also hide runnable cases such as
# `FROM employees, sample_data` under load_constant_keyword.
UNSUPPORTED_CAPABILITIES: dict[str, str] = {}
# Single cases that test behaviour reconwatch deliberately does not reproduce, with the reason.
UNSUPPORTED_CASES: dict[str, str] = {
    "stats_count_distinct.csv-spec#countDistinctOfIpPrecision": (
        "COUNT_DISTINCT approximation: Elasticsearch's HyperLogLog++ over-counts above a low "
        "precision_threshold (expects 9 of 8 distinct ips); reconwatch counts exactly"
    ),
}
# Directives about Elasticsearch's own test infrastructure, not about results.
_IGNORED_DIRECTIVES = frozenset({"skip_flattened_rewrite", "request_stored", "pragma"})

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
    reason = _spec_skip(case)
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
# Whole directories


def spec_files(root: Path) -> list[Path]:
    """The *.csv-spec files of a spec directory (its specs/ folder, or itself)."""
    folder = root / "specs" if (root / "specs").is_dir() else root
    return sorted(folder.glob("*.csv-spec"))


def load_cases(root: Path) -> tuple[list[SpecFile], SpecData]:
    return [parse_spec_file(p) for p in spec_files(root)], load_spec_data(root)


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
) -> Summary:
    """Run every case of a spec directory on the given backends."""
    files, data = load_cases(root)
    summary = Summary(problems=[*data.problems])
    for spec in files:
        summary.problems.extend(spec.problems)
        for case in select(spec.cases, name):
            for backend in backends:
                summary.results.append(run_case(case, data, backend, now))
    return summary
