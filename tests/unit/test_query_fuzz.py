"""A short run of the query and JSON fuzz campaign (bench/fuzz_query.py runs a million inputs per
target): every input is accepted or cleanly rejected."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from query_fuzz import (
    JSON_LINES,
    QUERIES,
    check_json_line,
    check_query,
    check_stream_lines,
)

pytestmark = pytest.mark.slow

FAST = settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))


@FAST
@given(QUERIES)
def test_query_text_is_accepted_or_a_positioned_query_error(text: str) -> None:
    check_query(text)


@FAST
@given(JSON_LINES)
def test_json_line_is_an_event_or_a_bad_line(line: bytes) -> None:
    check_json_line(line)


@FAST
@given(st.lists(JSON_LINES, max_size=8))
def test_stream_batch_never_raises(lines: list[bytes]) -> None:
    check_stream_lines(lines)


def test_timestamps_outside_the_datetime_range_are_bad_values_not_crashes() -> None:
    # Found by the campaign: epoch milliseconds past year 9999 raised OverflowError in `watch`.
    lines = [b'{"@timestamp": 253402300800000.0}', b'{"@timestamp": "9999-12-31T23:59:59-05:00"}']
    assert check_stream_lines(lines) == "batch"


def test_numbers_no_double_holds_are_refused_where_written() -> None:
    # Found by the campaign: 1e999 parsed to inf, which rendered as the column name `inf`.
    assert check_query("ROW 1e999") == "syntax error"
    assert check_query("ROW x = " + "9" * 5000) == "syntax error"
    assert check_query("ROW x = 123456789012345678901234567890") == "accepted"
