"""Null arguments: every function-coverage case with each of its inputs a typed null agrees on every executor."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from test_function_coverage import CASES, NOW

from conftest import LOCAL_BACKENDS, run_rows
from reconwatch.esql.analyze import compile_query
from reconwatch.plan.catalog import StaticCatalog

# A typed null of each type a ROW input can have.
NULL_OF = {
    "keyword": "TO_STRING(null)",
    "integer": "TO_INTEGER(null)",
    "long": "TO_LONG(null)",
    "unsigned_long": "TO_UNSIGNED_LONG(null)",
    "double": "TO_DOUBLE(null)",
    "boolean": "TO_BOOLEAN(null)",
    "datetime": "TO_DATETIME(null)",
    "ip": "TO_IP(null)",
    "version": "TO_VERSION(null)",
}
_SCALAR = re.compile(r"ROW (.*) \| EVAL r = (.*) \| KEEP r$")


def _nulled() -> Iterator[str]:
    """Each scalar case's query once per ROW input, that input replaced by a typed null."""
    seen: set[str] = set()
    for case in CASES:
        found = _SCALAR.match(case.query)
        if found is None or case.unsupported:
            continue
        row, expr = found.groups()
        for column in compile_query(f"ROW {row}", StaticCatalog({})).columns:
            null = NULL_OF.get(column.type.value)
            query = f"ROW {row} | EVAL {column.name} = {null} | EVAL r = {expr} | KEEP r"
            if null is not None and query not in seen:
                seen.add(query)
                yield query


QUERIES = sorted(_nulled())
OTHERS = [b for b in LOCAL_BACKENDS if b != "reference"]


@pytest.mark.slow
@pytest.mark.parametrize("query", QUERIES)
def test_null_input_agrees_with_the_reference(query: str) -> None:
    """Rows and warnings: a null argument of a null-propagating function is null without a
    warning (DuckDB's LEFT(null, 0) was '', SPACE(null) a MiB of spaces, x / 0 with x null
    warned)."""
    want = run_rows("reference", query, NOW)
    for backend in OTHERS:
        got = run_rows(backend, query, NOW)
        assert (got.rows, got.warnings) == (want.rows, want.warnings), backend


def test_the_cases_cover_the_guarded_functions() -> None:
    """The property above reaches every function DuckDB needs a null guard for."""
    from reconwatch.backends.duckdb.expr import NULL_GUARDED

    reached = {name for name in NULL_GUARDED if any(f"{name}(" in q.lower() for q in QUERIES)}
    operators = {"div": " / ", "mod": " % "}
    reached |= {n for n, op in operators.items() if any(op in q for q in QUERIES)}
    assert reached == NULL_GUARDED


NULLS_ON_ROWS = {
    # Constant folding must not warn either: DuckDB folds every CASE branch while planning.
    "substring_of_null_with_a_negative_length": "ROW s = TO_STRING(null) | EVAL r = SUBSTRING(s, 1, -1)",
    "log_of_a_null": "ROW b = 1, x = TO_DOUBLE(null) | EVAL r = LOG(b, x)",
    "repeat_null_times": 'ROW s = "ab", n = TO_INTEGER(null) | EVAL r = REPEAT(s, n)',
    "scalb_of_zero_by_null": "ROW x = 0.0, n = TO_LONG(null) | EVAL r = SCALB(x, n)",
    "left_of_null": "ROW s = TO_STRING(null) | EVAL r = LEFT(s, 0)",
}


@pytest.mark.parametrize("name", sorted(NULLS_ON_ROWS))
def test_null_argument_is_null_without_warning(backend: str, name: str) -> None:
    result = run_rows(backend, NULLS_ON_ROWS[name], NOW)
    assert result.rows[0][-1] is None
    assert result.warnings == []
