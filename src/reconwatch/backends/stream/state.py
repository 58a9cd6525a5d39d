"""Per-group aggregate state over a sliding window: only what each aggregate needs, expirable by time."""

from __future__ import annotations

import bisect
import heapq
import math
from collections import Counter, deque
from collections.abc import Callable, Sequence
from itertools import compress, islice, repeat, starmap
from operator import eq, itemgetter
from typing import Any

from reconwatch.backends.stream.cells import ipv4_key
from reconwatch.evaluate import EvalContext, compile_expr
from reconwatch.plan import nodes as p
from reconwatch.plan import values as v
from reconwatch.types import DataType as T

# Bytes one entry costs in CPython 3.11, measured with tracemalloc by bench/bench_stream.py
# (see docs/streaming.md): a (group, distinct value) entry holds a dict slot for value ->
# last-seen time plus one expiry-queue tuple; a time bucket one slot in each of three deques
# (time, count, sum) and its time's int.
DISTINCT_ENTRY_BYTES = 200
BUCKET_BYTES = 60
GROUP_BYTES = 900

Row = Any  # a Mapping[str, object]; Any keeps the hot path free of casts


_FIRST = itemgetter(0)
_SECOND = itemgetter(1)


class TimeCounter:
    """Counts (and sums) per event millisecond, oldest first: count, sum and avg over the window.

    Buckets are three parallel deques (times, counts, sums) rather than a list per bucket:
    about half the memory, nothing for the collector to walk, and batch appends and expiry
    with C-level calls.
    """

    __slots__ = ("counts", "n", "sums", "times", "total")

    def __init__(self) -> None:
        self.times: deque[int] = deque()
        self.counts: deque[int] = deque()
        self.sums: deque[int | float] = deque()
        self.n = 0
        self.total: int | float = 0

    def add(self, ms: int, n: int, total: int | float = 0) -> None:
        self.n += n
        self.total += total
        times = self.times
        if not times or times[-1] < ms:
            times.append(ms)
            self.counts.append(n)
            self.sums.append(total)
            return
        # Same millisecond as the newest bucket, or out of order (rare: a bisect and insert).
        index = len(times) - 1 if times[-1] == ms else bisect.bisect_left(times, ms)
        if times[index] == ms:
            self.counts[index] += n
            self.sums[index] += total
        else:
            times.insert(index, ms)
            self.counts.insert(index, n)
            self.sums.insert(index, total)

    def add_sorted(self, times: tuple[int, ...] | list[int]) -> None:
        """One row per time in `times` (ascending), as many `add(ms, 1)` calls would; a batch
        entirely after the newest bucket becomes new buckets with C-level calls."""
        per_ms = Counter(times)
        if self.times and self.times[-1] >= times[0]:
            for ms, n in per_ms.items():
                self.add(ms, n)
            return
        self.n += len(times)
        self.times.extend(per_ms)
        self.counts.extend(per_ms.values())
        self.sums.extend(repeat(0, len(per_ms)))

    def leaving(self, start_ms: int) -> int:
        """How many counted rows are older than `start_ms` (they leave by that window start)."""
        return sum(islice(self.counts, bisect.bisect_left(self.times, start_ms)))

    def expire(self, start_ms: int) -> None:
        times = self.times
        if not times or times[0] >= start_ms:
            return
        # The leaving buckets popped and summed with C-level calls (a window slide after a
        # micro-batch removes many at once). Integer totals stay exact; double sums are read
        # with fsum over the buckets, never from `total`.
        cut = bisect.bisect_left(times, start_ms)
        deque(starmap(times.popleft, repeat((), cut)), maxlen=0)  # consumed in C
        self.n -= sum(starmap(self.counts.popleft, repeat((), cut)))
        self.total -= sum(starmap(self.sums.popleft, repeat((), cut)))
        if not times:
            self.total = 0  # float sums start again from exact zero

    def oldest(self) -> int | None:
        return self.times[0] if self.times else None

    def newest(self) -> int | None:
        return self.times[-1] if self.times else None

    def float_sum(self) -> float:
        # Summing bucket totals afresh avoids the drift of adding and subtracting floats.
        return math.fsum(self.sums)

    def entries(self) -> int:
        return len(self.times)


class LastSeen:
    """Distinct values with the last event time each was seen: count_distinct, values, min, max.

    A value leaves the window when its last sighting does; the expiry queue holds (ms, key)
    sorted by time, and entries made stale by a later sighting are skipped and compacted away.
    `values` (key -> value) is kept only when keys are not the values themselves (IP order keys).

    min and max read the keys through two heaps (`low`, `high`), built at the first read and
    kept from then on: a key is pushed when it enters and popped lazily once it has left. A
    threshold that reads min/max (the slow-scan rule's `date_diff` of first and last seen) is
    judged at every event of a group; scanning every key held each time made each event cost
    as much as the group's distinct times (a 24-hour window: tens of thousands).
    """

    __slots__ = ("high", "keep_values", "last", "low", "queue", "stale", "values")

    def __init__(self, keep_values: bool) -> None:
        self.last: dict[Any, int] = {}
        self.values: dict[Any, object] = {}
        self.keep_values = keep_values
        self.queue: deque[tuple[int, Any]] = deque()
        self.stale = 0
        self.low: list[Any] | None = None
        self.high: list[_Descending] | None = None

    def touch(self, key: object, value: object, ms: int) -> None:
        seen = self.last.get(key)
        if seen is not None and seen >= ms:
            return
        self.last[key] = ms
        if self.keep_values:
            self.values[key] = value
        if seen is not None:
            self.stale += 1
        elif self.low is not None:
            self._entered((key,))
        queue = self.queue
        if not queue or queue[-1][0] <= ms:
            queue.append((ms, key))
        else:
            queue.insert(bisect.bisect_right(queue, ms, key=lambda e: e[0]), (ms, key))
        if self.stale > 64 and self.stale > 2 * len(self.last):
            self._compact()

    def touch_many(
        self, latest: dict[Any, int], values: dict[Any, object] | None, newer: bool = False
    ) -> None:
        """`touch` for many keys at once: `latest` maps each key to its newest time in the batch
        (it is consumed); `values` maps key to value, None when they are the same. `newer`:
        every time in `latest` is later than any time already held."""
        last = self.last
        if not latest:
            return
        if self.low is not None:
            self._entered([k for k in latest if k not in last])
        if newer:
            # Every key already held is re-sighted later: counted from the sizes, no set built.
            before = len(last)
            last.update(latest)
            self.stale += len(latest) - (len(last) - before)
        else:
            for key in latest.keys() & last.keys():
                if last[key] >= latest[key]:
                    del latest[key]  # seen as late or later already: touch changes nothing
                else:
                    self.stale += 1
            if not latest:
                return
            last.update(latest)
        if self.keep_values:
            if values is None:
                self.values.update(zip(latest, latest, strict=True))
            else:
                self.values.update({k: values[k] for k in latest})
        entries = sorted(zip(latest.values(), latest, strict=True), key=_FIRST)
        queue = self.queue
        if queue and queue[-1][0] > entries[0][0]:
            # Older than the newest queued entry: merge with the tail (after equal times, as
            # touch's bisect_right would put it).
            tail: list[tuple[int, Any]] = []
            while queue and queue[-1][0] > entries[0][0]:
                tail.append(queue.pop())
            tail.reverse()
            entries = sorted(tail + entries, key=_FIRST)
        queue.extend(entries)
        if self.stale > 64 and self.stale > 2 * len(last):
            self._compact()

    def _entered(self, keys: Sequence[Any]) -> None:
        """Keys new to the window, into the min/max heaps (once those exist)."""
        low, high = self.low, self.high
        assert low is not None and high is not None
        for key in keys:
            heapq.heappush(low, key)
            heapq.heappush(high, _Descending(key))
        if len(low) > 2 * len(self.last) + 64:
            self._heaps()  # mostly keys that left: start again from those held

    def _heaps(self) -> None:
        self.low = list(self.last)
        heapq.heapify(self.low)
        self.high = [_Descending(k) for k in self.last]
        heapq.heapify(self.high)

    def extreme(self, largest: bool) -> Any:
        """The least (or greatest) key held, None when empty; keys that left are dropped from
        the heap's top as they surface."""
        if not self.last:
            return None
        if self.low is None:
            self._heaps()
        last = self.last
        if largest:
            high = self.high
            assert high is not None
            while high[0].key not in last:
                heapq.heappop(high)
            return high[0].key
        low = self.low
        assert low is not None
        while low[0] not in last:
            heapq.heappop(low)
        return low[0]

    def leaving(self, start_ms: int) -> int:
        """At most how many distinct values leave by window start `start_ms` (queue entries
        older than it, stale ones included)."""
        return bisect.bisect_left(self.queue, start_ms, key=_FIRST)

    def _compact(self) -> None:
        # Keep the live entries in queue order: a set of (time, key) filters in C, no sort.
        live = set(zip(self.last.values(), self.last, strict=True))
        self.queue = deque(filter(live.__contains__, self.queue))
        self.stale = 0

    def expire(self, start_ms: int) -> None:
        queue, last = self.queue, self.last
        if not queue or queue[0][0] >= start_ms:
            return
        # Leaving entries popped and checked against their last sighting with C-level calls;
        # only the values that really leave are deleted one by one.
        cut = bisect.bisect_left(queue, start_ms, key=_FIRST)
        gone = list(starmap(queue.popleft, repeat((), cut)))
        keys = list(map(_SECOND, gone))
        leaving = list(compress(keys, map(eq, map(last.get, keys), map(_FIRST, gone))))
        for key in leaving:
            last.pop(key, None)
        if self.values:
            for key in leaving:
                self.values.pop(key, None)
        self.stale -= cut - len(leaving)

    def entries(self) -> int:
        return len(self.last)


class _Descending:
    """A key in the max-heap: ordered the other way round."""

    __slots__ = ("key",)

    def __init__(self, key: Any) -> None:
        self.key = key

    def __lt__(self, other: _Descending) -> bool:
        return bool(other.key < self.key)


class WindowedAgg:
    """One aggregate of one group: feeds rows in, expires by time, reads the ES|QL result."""

    __slots__ = ("spec", "state")

    def __init__(
        self, spec: StreamAggSpec, rows: TimeCounter | None = None, shared: LastSeen | None = None
    ) -> None:
        self.spec = spec
        self.state: TimeCounter | LastSeen
        if shared is not None:
            self.state = shared  # another aggregate of the same column keeps the values
        elif spec.distinct:
            self.state = LastSeen(spec.keeps_values)
        else:
            self.state = TimeCounter()
        if spec.row_count and rows is not None:
            self.state = rows  # count(*) is the group's own row counter: nothing to feed

    def result(self) -> object:
        return self.spec.read(self.state)


class StreamAggSpec:
    """A compiled aggregate: its argument and filter closures and how to read its state."""

    def __init__(self, agg: p.AggCall, ctx: EvalContext) -> None:
        self.agg = agg
        self.fn = agg.fn
        self.star = agg.star or not agg.args
        self.arg = compile_expr(agg.args[0], ctx) if agg.args else None
        self.filter = compile_expr(agg.filter, ctx) if agg.filter is not None else None
        self.type = agg.args[0].type if agg.args else T.NULL
        self.distinct = agg.fn in ("count_distinct", "values", "min", "max")
        self.is_double = agg.type is T.DOUBLE or self.type is T.DOUBLE
        self.ip_like = self.type in (T.IP, T.VERSION)
        # A plain column argument is read straight from the row: its cells are already converted
        # (None, one value, or a list of values), so the closure's normalising adds nothing.
        first = agg.args[0] if agg.args else None
        self.column = first.name if isinstance(first, p.Ref) else None
        self.row_count = self.fn == "count" and self.star and self.filter is None
        # The common shape Group.add handles inline: a distinct aggregate of a plain column.
        self.plain_distinct = (
            self.distinct and self.filter is None and self.column is not None and not self.ip_like
        )
        # Values differ from their keys only for IP/version order keys; otherwise the last-seen
        # map's keys are the values.
        self.keeps_values = agg.fn != "count_distinct" and self.ip_like
        # Index of an earlier aggregate over the same column whose distinct state this one reads
        # (count_distinct(x) and values(x) keep one value -> last-seen map); see share_states.
        self.share: int | None = None

    @property
    def sharable(self) -> bool:
        return self.distinct and self.filter is None and self.column is not None

    def feed(self, state: TimeCounter | LastSeen, row: Row, ms: int) -> None:
        if self.filter is not None and self.filter(row) is not True:
            return
        if self.star:
            assert isinstance(state, TimeCounter)
            state.add(ms, 1)
            return
        assert self.arg is not None
        value = row.get(self.column) if self.column is not None else self.arg(row)
        if value is None:
            return
        if type(value) is list:
            items: list[Any] | tuple[Any, ...] = [x for x in value if x is not None]
        else:
            items = (value,)
        if isinstance(state, LastSeen):
            if self.ip_like:
                for item in items:
                    key = ipv4_key(item) if self.type is T.IP else None
                    state.touch(key or v.order_key(item, self.type), item, ms)
            else:
                for item in items:
                    state.touch(item, item, ms)
        elif self.fn == "count":
            state.add(ms, len(items))
        else:
            total: int | float = (
                math.fsum(float(x) for x in items) if self.is_double else sum(items)
            )
            state.add(ms, len(items), total)

    def read(self, state: TimeCounter | LastSeen) -> object:
        return _READERS[self.fn](self, state)


def _count(spec: StreamAggSpec, state: TimeCounter | LastSeen) -> object:
    assert isinstance(state, TimeCounter)
    return state.n


def _count_distinct(spec: StreamAggSpec, state: TimeCounter | LastSeen) -> object:
    return len(state.last) if isinstance(state, LastSeen) else 0


def _values(spec: StreamAggSpec, state: TimeCounter | LastSeen) -> object:
    assert isinstance(state, LastSeen)
    # Elasticsearch leaves the order unspecified; sorted (as the reference does) is reproducible.
    if not state.keep_values:
        return v.from_list(sorted(state.last))
    return v.from_list(state.values[k] for k in sorted(state.values))


def _extreme(spec: StreamAggSpec, state: TimeCounter | LastSeen) -> object:
    assert isinstance(state, LastSeen)
    key = state.extreme(spec.fn == "max")
    if key is None:
        return None
    return state.values[key] if state.keep_values else key


def _sum(spec: StreamAggSpec, state: TimeCounter | LastSeen) -> object:
    assert isinstance(state, TimeCounter)
    if state.n == 0:
        return None
    if spec.agg.type is T.DOUBLE:
        return state.float_sum()
    total = int(state.total)
    low, high = (0, v.ULONG_MAX) if spec.agg.type is T.UNSIGNED_LONG else (v.LONG_MIN, v.LONG_MAX)
    return total if low <= total <= high else None


def _avg(spec: StreamAggSpec, state: TimeCounter | LastSeen) -> object:
    assert isinstance(state, TimeCounter)
    if state.n == 0:
        return None
    total = state.float_sum() if spec.is_double else float(int(state.total))
    return total / state.n


_READERS: dict[str, Callable[[StreamAggSpec, TimeCounter | LastSeen], object]] = {
    "count": _count,
    "count_distinct": _count_distinct,
    "values": _values,
    "min": _extreme,
    "max": _extreme,
    "sum": _sum,
    "avg": _avg,
}


def share_states(specs: list[StreamAggSpec]) -> None:
    """Let distinct aggregates of the same plain column share one state (the first keeps
    values if any of them needs them): one map and queue per column instead of per aggregate."""
    first: dict[str, int] = {}
    for index, spec in enumerate(specs):
        if not spec.sharable:
            continue
        assert spec.column is not None
        owner = first.setdefault(spec.column, index)
        if owner != index:
            spec.share = owner
            specs[owner].keeps_values = specs[owner].keeps_values or spec.keeps_values


class Group:
    """One STATS group inside the window: its key values, a row counter, and its aggregates.

    `rows` counts input rows per millisecond: a group exists (as in the batch answer) while it
    has a row in the window, and its oldest row is when it next needs expiring.
    """

    __slots__ = ("aggs", "heap_ms", "key", "rows")

    def __init__(self, key: tuple[object, ...], specs: list[StreamAggSpec]) -> None:
        self.key = key
        self.rows = TimeCounter()
        aggs: list[WindowedAgg] = []
        for spec in specs:
            shared = aggs[spec.share].state if spec.share is not None else None
            aggs.append(WindowedAgg(spec, self.rows, shared))  # type: ignore[arg-type]
        self.aggs = aggs
        self.heap_ms: int | None = None

    def add(self, row: Row, ms: int) -> None:
        self.rows.add(ms, 1)
        for agg in self.aggs:
            spec = agg.spec
            if spec.row_count or spec.share is not None:
                continue
            if spec.plain_distinct:
                value = row.get(spec.column)
                if value is None:
                    continue
                if type(value) is not list:
                    agg.state.touch(value, value, ms)  # type: ignore[union-attr]
                    continue
            spec.feed(agg.state, row, ms)

    def expire(self, start_ms: int) -> None:
        self.rows.expire(start_ms)
        for agg in self.aggs:
            if agg.state is not self.rows and agg.spec.share is None:
                agg.state.expire(start_ms)

    @property
    def empty(self) -> bool:
        return not self.rows.times

    def distinct_entries(self) -> int:
        return sum(
            a.state.entries()
            for a in self.aggs
            if isinstance(a.state, LastSeen) and a.spec.share is None
        )

    def buckets(self) -> int:
        return self.rows.entries() + sum(
            a.state.entries()
            for a in self.aggs
            if isinstance(a.state, TimeCounter) and a.state is not self.rows
        )
