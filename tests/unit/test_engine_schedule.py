"""Run windows and the query text Kibana sends for a run."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from reconwatch.engine.query_text import (
    append_limit,
    command_name,
    insert_after_source,
    split_commands,
    time_range_condition,
)
from reconwatch.engine.schedule import runs_between, window_at
from reconwatch.errors import UsageError
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


def test_split_commands_respects_strings_and_comments() -> None:
    q = 'from a | where x == "a|b" // c|d\n| eval `y|z` = 1 /* | */ | keep x'
    parts = split_commands(q)
    assert [command_name(p) for p in parts] == ["from", "where", "eval", "keep"]
    assert parts[1].strip() == 'where x == "a|b" // c|d'


def test_insert_after_source_and_limit() -> None:
    q = "from logs-* metadata _id\n| where a == 1\n| stats c = count()"
    out = append_limit(insert_after_source(q, ["b > 2"]), 100)
    assert [command_name(p) for p in split_commands(out)] == [
        "from",
        "where",
        "where",
        "stats",
        "limit",
    ]
    assert split_commands(out)[1].strip() == "where b > 2"
    assert out.endswith("| limit 100")


def test_time_range_condition_falls_back_to_timestamp() -> None:
    cond = time_range_condition("event.ingested", T - timedelta(minutes=61), T, fallback=True)
    assert cond == (
        'coalesce(event.ingested, @timestamp) >= "2025-07-16T08:59:00.000Z" and '
        'coalesce(event.ingested, @timestamp) <= "2025-07-16T10:00:00.000Z"'
    )
    assert time_range_condition(None, T, T, fallback=True).startswith("@timestamp >= ")
