"""The crossing point of rules without a one-pass count: the rule re-run over time prefixes."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from reconwatch.plan.values import format_datetime, to_utc_millis_precision

METHOD = "bisection"
# Rule runs per alert, all told: the search, the full prefix and the monotonicity probes.
MAX_RUNS = 20
# Probes of points the search did not visit, each side of the found time (within MAX_RUNS).
SPOTS = 2
_MS = timedelta(milliseconds=1)


class NotFound(Exception):
    """Bisection gives no crossing point (the reason)."""


def distinct_times(times: Sequence[datetime]) -> list[datetime]:
    """The events' times by millisecond (the stored precision), distinct, in order."""
    return sorted({to_utc_millis_precision(t) for t in times})


def upper_bound(at: datetime) -> datetime:
    """The first instant after `at`'s millisecond: `< upper_bound(at)` keeps the events up to
    and including `at` however fine their stamps are."""
    return to_utc_millis_precision(at) + _MS


def first_holding(
    times: Sequence[datetime], holds: Callable[[datetime], bool]
) -> tuple[datetime, int]:
    """The first of `times` (distinct, ascending) whose prefix makes `holds` true, and the
    number of `holds` calls. Bisection is exact when holds is monotone in the prefix; it is
    checked by probing times the search skipped (false before, true after), NotFound otherwise."""
    if not times:
        raise NotFound("none of the group's events have a time")
    needed = 1 + (len(times) - 1).bit_length()
    if needed > MAX_RUNS:
        raise NotFound(f"bisection would take {needed} rule runs, over {MAX_RUNS}")
    seen: dict[int, bool] = {}

    def probe(index: int) -> bool:
        if index not in seen:
            seen[index] = holds(times[index])
        return seen[index]

    last = len(times) - 1
    if not probe(last):
        raise NotFound("the rule over the group's events alone does not yield the alert")
    lo, hi = 0, last
    while lo < hi:  # invariant: hi holds; every index below lo does not
        mid = (lo + hi) // 2
        if probe(mid):
            hi = mid
        else:
            lo = mid + 1
    budget = MAX_RUNS - len(seen)
    before = _spots(range(0, lo), seen, min(SPOTS, budget))
    after = _spots(range(lo + 1, last), seen, min(SPOTS, budget - len(before)))
    for index in before:
        if probe(index):
            raise NotFound(_not_monotone(times[index], times[lo - 1]))
    for index in after:
        if not probe(index):
            raise NotFound(_not_monotone(times[lo], times[index]))
    return times[lo], len(seen)


def _spots(indices: range, seen: dict[int, bool], count: int) -> list[int]:
    """Up to `count` indices spread evenly over those the search did not visit."""
    free = [i for i in indices if i not in seen]
    if count <= 0 or not free:
        return []
    if len(free) <= count:
        return free
    step = len(free) / (count + 1)
    return list(dict.fromkeys(free[int(step * (k + 1))] for k in range(count)))


def _not_monotone(holding: datetime, failing: datetime) -> str:
    return (
        "the rule's result is not monotone in the group's events "
        f"(it yields the alert with the events up to {format_datetime(holding)}, "
        f"not with those up to {format_datetime(failing)})"
    )
