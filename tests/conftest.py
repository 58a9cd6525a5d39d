"""Shared test paths and helpers: the checkout, the read-only shared material beside it, the `backend` fixture over every in-process executor."""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

import pytest

from reconwatch.backends import EXECUTORS, executor
from reconwatch.cli.main import main
from reconwatch.esql.analyze import compile_query
from reconwatch.plan.catalog import Result, StaticCatalog

# The checkout's root, and the shared data set (rules, esql-spec, real logs) that lives next to
# it, as ../shared. Tests that need it skip with a reason without it.
ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
# Every batch executor, by registry name.
BATCH_BACKENDS = sorted(EXECUTORS)
# Executors that start a cluster engine (a JVM, a job per query): they are proven by their own
# suites (the whole csv-spec conformance suite, the differential test, the registry agreement
# test), not by every test that takes `backend`, which would cost minutes for no new coverage.
CLUSTER_BACKENDS = frozenset({"spark"})
# The in-process executors: a new one joins every test that takes `backend`.
LOCAL_BACKENDS = [name for name in BATCH_BACKENDS if name not in CLUSTER_BACKENDS]


# Tests that hold something machine-wide (the kernel's tracing and audit rules, network
# namespaces, a sweep of 127.0.1.0/24 another sensor test would count, a Spark cluster's cores,
# a machine quiet enough for the raw-socket sweeps' pacing): `make test` runs them in a second,
# serial pass after the rest ran on pytest-xdist workers. Root tests are serial without saying so.
@pytest.hookimpl(tryfirst=True)  # before -m selects by the marker
@pytest.fixture(autouse=True)
def _unfrozen() -> Iterator[None]:
    """`watch` freezes the objects alive after each batch (engine.collector.settle); in a test
    process they are the other tests' too, so each test leaves the collector as it found it."""
    yield
    gc.unfreeze()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.get_closest_marker("root") and not item.get_closest_marker("serial"):
            item.add_marker(pytest.mark.serial)


@pytest.fixture(params=LOCAL_BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """The name of one in-process batch executor (reconwatch.backends.executor runs it)."""
    name: str = request.param
    return name


def run_rows(backend: str, query: str, now: datetime) -> Result:
    """A query over no data (ROW ...) on one batch executor, by name."""
    plan = compile_query(query, StaticCatalog({}))
    return executor(backend)(plan, None, now)


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """`reconwatch ARGV` in this process: its exit code, standard output and standard error."""
    try:
        main(argv)
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


class Clock:
    """A clock a test sets by hand (`clock.now = ...`): the engine's injected time source."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def iso_ms(t: datetime) -> str:
    """`t` as Elasticsearch's millisecond UTC timestamp text, 2026-03-01T00:00:00.000Z."""
    return t.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def query_outcome(run: Callable[[], Result], *, sort_rows: bool = False) -> tuple[object, ...]:
    """A query's columns, rows (as reprs; sorted where two paths may order ties apart) and
    warnings, or the refusal it raised: two ways of running it must give the same outcome."""
    try:
        result = run()
    except Exception as exc:  # the same refusal either way
        return ("error", type(exc).__name__, str(exc))
    rows = [repr(r) for r in result.rows]
    return (
        [(c.name, c.type) for c in result.columns],
        sorted(rows) if sort_rows else rows,
        result.warnings,
    )
