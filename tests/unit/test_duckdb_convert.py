"""Result cells converted column by column are what the per-cell conversion gives."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from reconwatch.backends.duckdb.execute import _converted, _converter
from reconwatch.types import DataType as T

_CELLS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=4),
    st.datetimes(),
    # Hypothesis takes naive bounds; from 1970 an aware value converts to UTC without overflow.
    st.datetimes(
        min_value=datetime(1970, 1, 2),  # noqa: DTZ001
        timezones=st.just(timezone(timedelta(hours=2))),
    ),
    st.dates(),
    st.decimals(allow_nan=False, places=2),
    st.lists(
        st.one_of(
            st.none(),
            st.integers(),
            st.floats(allow_nan=False, allow_infinity=False),
            st.datetimes(),
        ),
        max_size=3,
    ),
)
_TYPES = st.sampled_from([T.KEYWORD, T.INTEGER, T.LONG, T.DOUBLE, T.BOOLEAN, T.DATETIME, T.IP])


def _per_cell(rows: list[tuple[object, ...]], types: list[T]) -> list[tuple[object, ...]]:
    convert = [_converter(t) for t in types]
    return [tuple(f(v) for f, v in zip(convert, row, strict=False)) for row in rows]


@settings(max_examples=200, deadline=None)
@given(st.data(), st.lists(_TYPES, max_size=4), st.integers(0, 6), st.integers(0, 2))
def test_columns_convert_as_cells_do(
    data: st.DataObject, types: list[T], n: int, extra: int
) -> None:
    rows = [tuple(data.draw(_CELLS) for _ in range(len(types) + extra)) for _ in range(n)]
    got = _converted(rows, types)
    want = _per_cell(rows, types) if types else [() for _ in rows]
    assert got == want
    # Same values of the same Python types (1 == 1.0 == True would hide a missed conversion).
    assert [[type(v) for v in r] for r in got] == [[type(v) for v in r] for r in want]


def test_each_conversion_still_happens() -> None:
    naive = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC).replace(tzinfo=None)  # as DuckDB gives it
    rows = [("a", 1.0, 1, naive, [None, 2.0], Decimal("1.5"), date(2026, 1, 2))]
    types = [T.KEYWORD, T.LONG, T.BOOLEAN, T.DATETIME, T.INTEGER, T.DOUBLE, T.DATE_NANOS]
    (got,) = _converted(rows, types)
    assert got == ("a", 1, True, naive.replace(tzinfo=UTC), 2, Decimal("1.5"), date(2026, 1, 2))
    assert type(got[1]) is int and got[2] is True and got[4] == 2 and type(got[4]) is int
