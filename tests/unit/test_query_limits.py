"""A query's resource limits: DuckDB's memory limit and a time budget end a heavy query with one
clear error on every executor, instead of taking the host's memory or running without end."""

from __future__ import annotations

import itertools
import resource
import subprocess
import sys
from datetime import UTC, datetime

import pytest

from conftest import run_cli
from reconwatch.backends import duckdb as duck
from reconwatch.backends import reference as ref
from reconwatch.backends.duckdb.execute import connect
from reconwatch.backends.stream.executor import StreamExecutor
from reconwatch.errors import QueryLimitError
from reconwatch.esql.analyze import compile_query
from reconwatch.plan import nodes as p
from reconwatch.plan.catalog import StaticCatalog
from reconwatch.plan.limits import QueryLimits, current, limited
from reconwatch.types import DataType as T

NOW = datetime(2025, 1, 15, 12, tzinfo=UTC)
# Two MV_EXPANDs of 100,001 values each: 10^10 rows to count, far more than any budget allows.
HEAVY = (
    'ROW s = repeat("a,", 100000) | EVAL v = split(s, ","), w = v '
    "| MV_EXPAND v | MV_EXPAND w | STATS c = count(*)"
)
# Twelve doublings of a 1 MiB string: 4 GiB in 4,096 values before MV_APPEND was bounded by bytes.
DOUBLING = 'ROW a = repeat("x", 1048576) ' + "| EVAL a = mv_append(a, a) " * 12 + "| KEEP a"


def _jumping_clock() -> itertools.count[float]:
    """A clock that moves one second each time it is read: any budget under that is spent at
    the second look, whatever the machine's speed."""
    return itertools.count(0.0, 1.0)


def test_duckdb_query_over_its_budget_is_interrupted() -> None:
    plan = compile_query(HEAVY, StaticCatalog({}))
    with limited(QueryLimits(seconds=0.05)), pytest.raises(QueryLimitError) as err:
        duck.execute(plan, None, NOW)
    assert str(err.value) == "query cancelled: it ran past its time budget of 0.05 s (--timeout)"


def test_reference_query_over_its_budget_is_cancelled() -> None:
    plan = compile_query(HEAVY, StaticCatalog({}))
    clock = _jumping_clock()
    limits = QueryLimits(seconds=0.5, clock=lambda: next(clock))
    with limited(limits), pytest.raises(QueryLimitError, match=r"time budget of 0\.5 s"):
        ref.execute(plan, [], NOW)


def test_a_query_within_its_budget_runs() -> None:
    plan = compile_query("ROW a = 1 | EVAL b = a + 1", StaticCatalog({}))
    with limited(QueryLimits(seconds=600)):
        assert duck.execute(plan, None, NOW).rows == [(1, 2)]
        assert ref.execute(plan, [], NOW).rows == [(1, 2)]


def test_stream_event_over_its_budget_is_cancelled() -> None:
    fields = {
        "@timestamp": p.Column("@timestamp", T.DATETIME),
        "v": p.Column("v", T.KEYWORD, True),
    }
    query = (
        "FROM logs | WHERE @timestamp > now() - 1 hour | MV_EXPAND v | EVAL w = v "
        "| MV_EXPAND w | STATS c = count(*) BY v"
    )
    plan = compile_query(query, StaticCatalog(fields))
    clock = _jumping_clock()
    with limited(QueryLimits(seconds=0.5, clock=lambda: next(clock))):
        ex = StreamExecutor(plan, fast=False)
    event = {"@timestamp": "2025-01-15T11:00:00Z", "v": [str(i) for i in range(1000)]}
    with pytest.raises(QueryLimitError, match="time budget"):
        ex.push(event)


def test_limits_apply_only_inside_their_block() -> None:
    with limited(QueryLimits(memory="64MB", seconds=1)):
        assert current().memory == "64MB"
    assert current().seconds is None


def test_duckdb_connection_takes_the_memory_limit() -> None:
    with limited(QueryLimits(memory="100MB")):
        con = connect()
    try:
        (limit,) = con.execute("SELECT current_setting('memory_limit')").fetchone() or ("",)
    finally:
        con.close()
    assert str(limit).replace(" ", "") in ("95.3MiB", "100.0MB", "100MB")


def test_query_cli_timeout_exits_1_with_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(["query", HEAVY, "--timeout", "0.05"], capsys)
    assert code == 1
    assert err.strip() == (
        "error: query cancelled: it ran past its time budget of 0.05 s (--timeout)"
    )
    assert out == ""


def test_query_cli_memory_limit_stops_a_hungry_query(capsys: pytest.CaptureFixture[str]) -> None:
    # Five doublings stay under the multivalue bound (8 MiB) but not under 16 MB of DuckDB memory.
    query = 'ROW a = repeat("x", 262144) ' + "| EVAL a = mv_append(a, a) " * 5 + "| KEEP a"
    code, _, err = run_cli(["query", query, "--memory-limit", "16MB"], capsys)
    assert code == 1
    assert err.strip() == (
        "error: query stopped: it needs more than its memory limit of 16MB (--memory-limit)"
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--memory-limit", "lots"], "--memory-limit lots: expected a size such as 512MB or 2GB"),
        (["--timeout", "-1"], "--timeout -1: expected a number of seconds above 0"),
    ],
)
def test_query_cli_refuses_a_bad_limit(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_cli(["query", "ROW a = 1", *args], capsys)
    assert code == 2
    assert message in err


# VmHWM is this address space's own peak (KiB); ru_maxrss would carry over the peak of the process
# that spawned this one (Linux keeps it across exec), i.e. pytest's after a long suite.
_PEAK = """
import sys
from reconwatch.cli.main import main
try:
    main(["query", sys.argv[1], "--format", "ndjson"])
except SystemExit as exc:
    assert not exc.code, exc.code
status = open("/proc/self/status").read().split("VmHWM:")[1]
print(int(status.split()[0]), file=sys.stderr)
"""


@pytest.mark.slow
def test_doubling_a_big_string_stays_small() -> None:
    """The query that reached 4.2 GB now answers null with a warning, in a few hundred MiB."""
    done = subprocess.run(
        [sys.executable, "-c", _PEAK, DOUBLING],
        capture_output=True,
        text=True,
        check=False,
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30)),
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == '{"a": null}'
    assert "Creating multivalues of more than [8388608] bytes is not supported" in done.stderr
    peak_kib = int(done.stderr.strip().splitlines()[-1])
    assert peak_kib < 1024 * 1024
