"""Run windows and the query text Kibana sends for a run."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from reconwatch.engine.rewrite import time_range, with_filters, with_limit
from reconwatch.engine.schedule import runs_between, window_at
from reconwatch.errors import UsageError
from reconwatch.esql import ast
from reconwatch.esql.parser import parse
from reconwatch.esql.render import render, render_command, render_expr
from reconwatch.rules.builtin import load_builtin

T = datetime(2025, 7, 16, 10, 0, tzinfo=UTC)


def test_window_is_now_minus_61m_to_now() -> None:
    w = window_at(load_builtin("subnet-scanning-seed"), T)
    assert (w.start, w.end, w.run_at) == (T - timedelta(minutes=61), T, T)
    assert w.run_id == "2025-07-16T08:59:00.000Z2025-07-16T10:00:00.000Z"


def test_runs_between_step_one_interval() -> None:
    rule = load_builtin("subnet-scanning-seed")
    runs = runs_between(rule, T, T + timedelta(hours=3))
    assert [r.run_at for r in runs] == [T + timedelta(hours=h) for h in (1, 2, 3)]
    assert [r.index for r in runs] == [0, 1, 2]
    assert all(r.execution_type == "manual" for r in runs)
    short = runs_between(rule, T, T + timedelta(minutes=10))
    assert [r.run_at for r in short] == [T + timedelta(minutes=10)]
    with pytest.raises(UsageError):
        runs_between(rule, T, T)


def kinds(query: ast.Query) -> list[str]:
    return [render_command(c).split()[0].lower() for c in query.commands]


def test_rewrites_start_from_the_parse_strings_and_comments_kept() -> None:
    q = parse('from a | where x == "a|b" // c|d\n| eval `y|z` = 1 /* | */ | keep x')
    out = with_limit(with_filters(q, []), 10)
    assert kinds(out) == ["from", "where", "eval", "keep", "limit"]
    assert render_command(out.commands[1]) == 'WHERE x == "a|b"'


def test_filters_after_source_and_limit_keep_the_rule_s_own_positions() -> None:
    q = parse("from logs-* metadata _id\n| where a == 1\n| stats c = count()")
    out = with_limit(with_filters(q, [ast.Binary(">", ast.Field("b"), _int(2))]), 100)
    assert kinds(out) == ["from", "where", "where", "stats", "limit"]
    assert render_command(out.commands[1]) == "WHERE b > 2"
    assert render(out).endswith("| LIMIT 100")
    # The rule's own commands keep their spans (line 2 is `| where a == 1`).
    assert out.commands[2].span == q.commands[1].span
    assert (out.commands[2].span.line, out.commands[2].span.col) == (2, 3)
    assert out.source == q.source


def _int(value: int) -> ast.Literal:
    return ast.Literal("integer", value)


def test_time_range_condition_falls_back_to_timestamp() -> None:
    cond = render_expr(time_range("event.ingested", T - timedelta(minutes=61), T))
    assert cond == (
        'coalesce(event.ingested, @timestamp) >= "2025-07-16T08:59:00.000Z" AND '
        'coalesce(event.ingested, @timestamp) <= "2025-07-16T10:00:00.000Z"'
    )
    assert render_expr(time_range(None, T, T)).startswith("@timestamp >= ")
