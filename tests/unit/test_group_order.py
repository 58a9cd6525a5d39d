"""STATS output order without SORT, as Elasticsearch's block hash gives it, on every executor."""

from __future__ import annotations

from datetime import UTC, datetime

from conftest import run_rows
from reconwatch.plan.catalog import Result

NOW = datetime(2025, 1, 15, 12, tzinfo=UTC)


def run(backend: str, query: str) -> Result:
    return run_rows(backend, query, NOW)


def test_single_key_null_group_first_then_first_seen(backend: str) -> None:
    query = """ROW k = ["b", "a", "c", "a"] | MV_EXPAND k
    | EVAL k = CASE(k == "c", null, k) | STATS n = COUNT() BY k"""
    assert run(backend, query).rows == [(1, None), (1, "b"), (2, "a")]


def test_boolean_key_has_fixed_order_null_false_true(backend: str) -> None:
    query = """ROW k = [3, 1, 2] | MV_EXPAND k
    | EVAL b = CASE(k == 1, false, k == 3, true) | STATS n = COUNT() BY b"""
    assert run(backend, query).rows == [(1, None), (1, False), (1, True)]


def test_two_keys_first_seen_nulls_not_moved(backend: str) -> None:
    query = """ROW k = [3, 1, 2] | MV_EXPAND k
    | EVAL a = CASE(k == 1, null, "x"), b = k % 2 | STATS n = COUNT() BY a, b"""
    assert run(backend, query).rows == [(1, "x", 1), (1, None, 1), (1, "x", 0)]


def test_multivalued_key_values_in_row_order(backend: str) -> None:
    query = 'ROW k = ["z", "y", "z", "x"] | STATS n = COUNT() BY k'
    assert run(backend, query).rows == [(1, "z"), (1, "y"), (1, "x")]
