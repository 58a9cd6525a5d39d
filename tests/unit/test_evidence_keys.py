"""Which STATS the evidence groups alerts by: the first grouping STATS, never an INLINE STATS."""

from __future__ import annotations

from reconwatch.engine import evidence
from reconwatch.esql.parser import parse
from reconwatch.esql.render import render_expr


def _group_keys(query: str) -> list[tuple[str, str]]:
    """The evidence's BY keys as (column name, expression text)."""
    return [(name, render_expr(expr)) for name, expr in evidence._group_keys(parse(query))]


def test_group_keys_come_from_the_first_stats() -> None:
    query = "FROM logs-* | STATS n = COUNT(*) BY host.name, agent.id"
    assert _group_keys(query) == [("host.name", "host.name"), ("agent.id", "agent.id")]


def test_inline_stats_is_skipped_for_the_later_stats() -> None:
    query = "FROM logs-* | INLINE STATS m = COUNT(*) BY source.ip | STATS n = COUNT(*) BY host.name"
    assert _group_keys(query) == [("host.name", "host.name")]


def test_only_inline_stats_groups_nothing() -> None:
    assert _group_keys("FROM logs-* | INLINE STATS m = COUNT(*) BY source.ip") == []
