"""Elastic's csv-spec cases (shared/esql-spec: specs/ and specs-wave2/) on every backend: skipped
ones name why, the rest pass."""

from __future__ import annotations

import pytest

from conftest import SHARED
from reconwatch.conformance.datasets import SpecData, load_spec_data
from reconwatch.conformance.runner import BACKENDS, Outcome, run_case, spec_files
from reconwatch.conformance.specfile import SpecCase, SpecFile, parse_spec_file

SPEC_DIR = SHARED / "esql-spec"
FILES: list[SpecFile] = (
    [parse_spec_file(p) for p in spec_files(SPEC_DIR)] if SPEC_DIR.is_dir() else []
)
CASES: list[SpecCase] = [case for spec in FILES for case in spec.cases]
# DuckDB opens a connection per case and Spark runs a job or two: the whole file takes seconds
# (minutes on Spark) there.
PARAMS = [
    pytest.param(
        case,
        backend,
        id=f"{case.id}-{backend}",
        # A runaway case fails alone instead of stalling the suite.
        marks=[
            pytest.mark.timeout(120),
            *([pytest.mark.slow] if backend in ("duckdb", "spark") else []),
        ],
    )
    for case in CASES
    for backend in BACKENDS
]

pytestmark = pytest.mark.skipif(not SPEC_DIR.is_dir(), reason=f"no spec directory at {SPEC_DIR}")


@pytest.fixture(scope="module")
def data() -> SpecData:
    return load_spec_data(SPEC_DIR)


def test_spec_files_and_data_load_cleanly(data: SpecData) -> None:
    assert FILES, "no *.csv-spec files found"
    assert [p.one_line() for spec in FILES for p in spec.problems] == []
    assert [p.one_line() for p in data.problems] == []
    assert set(data.indices) == {"employees", "hosts", "sample_data"}


@pytest.mark.parametrize(("case", "backend"), PARAMS)
def test_case(case: SpecCase, backend: str, data: SpecData) -> None:
    result = run_case(case, data, backend)
    if result.outcome is Outcome.SKIPPED:
        pytest.skip(result.reason)
    assert result.outcome is Outcome.PASSED, "\n".join(
        [f"{case.where}: {result.reason}", *result.diff, "query:", case.query]
    )


def test_every_outdated_case_exists_and_is_skipped_with_its_reason(data: SpecData) -> None:
    """runner.OUTDATED_CASES, the one record of expectations Elasticsearch no longer gives
    (conditional#nullValue: the warning of the unmerged warn_null_misuse change), names cases
    that exist, and the runner skips each saying why."""
    from reconwatch.conformance.runner import OUTDATED_CASES

    by_id = {case.id: case for case in CASES}
    assert set(OUTDATED_CASES) <= set(by_id)
    assert "conditional.csv-spec#nullValue" in OUTDATED_CASES
    for case_id, why in OUTDATED_CASES.items():
        result = run_case(by_id[case_id], data, "reference")
        assert (result.outcome, result.reason) == (
            Outcome.SKIPPED,
            f"outdated expectation: {why}",
        )
