"""The crossing point: the first event (by time) after which the group's running counts meet
the rule's WHERE, in one pass; rule shapes that do not allow it say why."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from reconwatch.engine.crossing import Unsupported, first_crossing, threshold
from reconwatch.esql.parser import parse

T0 = datetime(2026, 3, 1, tzinfo=UTC)


def _rows(values: list[tuple[int, str, str | None]]) -> list[dict[str, object]]:
    """(second, destination, answered destination or None) per event, deliberately unordered."""
    return [
        {"@timestamp": T0 + timedelta(seconds=s), "d": d, "a": a}
        for s, d, a in sorted(values, key=lambda v: -v[0])
    ]


def test_count_distinct_over_a_threshold_crosses_at_the_event_that_makes_it() -> None:
    query = parse(
        "FROM x | STATS n = COUNT(*), c = COUNT_DISTINCT(d) BY h | WHERE c > 2 AND n >= 3"
    )
    rows = _rows([(0, "1", None), (1, "1", None), (2, "2", None), (5, "3", None), (9, "4", None)])
    assert first_crossing(threshold(query), rows) == T0 + timedelta(seconds=5)
    early = [r for r in rows if r["@timestamp"] < T0 + timedelta(seconds=5)]  # type: ignore[operator]
    assert first_crossing(threshold(query), early) is None  # never three distinct


def test_an_evald_difference_of_counts_is_followed() -> None:
    """The shape of the pack's network scan rules: distinct probed minus distinct answered."""
    query = parse(
        "FROM x | STATS p = COUNT_DISTINCT(d), a = COUNT_DISTINCT(a), v = VALUES(d) BY h"
        " | EVAL failed = p - a | WHERE failed >= 2 | SORT failed DESC | LIMIT 100"
    )
    rows = _rows([(0, "1", "1"), (1, "2", None), (2, "3", "3"), (4, "4", None)])
    assert first_crossing(threshold(query), rows) == T0 + timedelta(seconds=4)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("FROM x | WHERE d == 1", "does not aggregate"),
        ("FROM x | STATS c = COUNT(*) BY h | STATS n = COUNT(*)", "aggregates more than once"),
        ("FROM x | STATS c = COUNT(*) BY h | SORT c", "no WHERE follows"),
        ("FROM x | STATS m = MAX(d) BY h | WHERE m > 3", "reads [m]"),
        ("FROM x | STATS c = COUNT(*) BY h | WHERE c > 3 | EVAL z = 1 | WHERE h == 2", "reads [h]"),
    ],
)
def test_shapes_without_a_one_pass_crossing_say_why(text: str, reason: str) -> None:
    with pytest.raises(Unsupported, match=reason.replace("[", r"\[").replace("]", r"\]")):
        threshold(parse(text))
