"""The stream's state as one object: the groups inside the sliding window, their expiry queue, the re-alert memory, rows held without STATS, the window's clock and counters; every path changes it through these methods."""

from __future__ import annotations

import heapq
import itertools
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from reconwatch.backends.stream.prefilter import (
    count_thresholds,
    linear_count_terms,
    only_count_terms,
)
from reconwatch.backends.stream.rows import GroupView, Row, row_pipeline
from reconwatch.backends.stream.split import StreamPlan, WindowSpec
from reconwatch.backends.stream.state import (
    BUCKET_BYTES,
    DISTINCT_ENTRY_BYTES,
    GROUP_BYTES,
    Group,
    LastSeen,
    StreamAggSpec,
    TimeCounter,
    share_states,
)
from reconwatch.evaluate import EvalContext, compile_expr
from reconwatch.plan import nodes as p
from reconwatch.plan import values as v

Key = tuple[object, ...]


@dataclass(frozen=True, slots=True)
class RealertPolicy:
    """When a group that already alerted may alert again.

    Never while it keeps matching, except: after it stopped matching for `rearm_after_ms`
    (None: one window length), or, with `growth_factor`, when `growth_column` (default: the
    first count_distinct or count column) reaches that many times its value at the last alert.
    """

    rearm_after_ms: int | None = None
    growth_factor: float | None = None
    growth_column: str | None = None


@dataclass(slots=True)
class StreamMatch:
    """A group (or, without STATS, an event) that satisfies the query over the window ending at
    `end`: `row` is its output row, as the batch executor would return it."""

    row: dict[str, object]
    end: datetime
    trigger_ms: int
    key: Key = ()
    repeat: int = 0
    # What `WindowState.on_match` made of the state at the crossing (the alert's evidence).
    detail: dict[str, object] | None = None


@dataclass(slots=True)
class StreamMetrics:
    events: int = 0
    rows: int = 0
    no_time: int = 0
    too_late: int = 0
    outside_window: int = 0
    matches: int = 0
    groups: int = 0
    distinct_entries: int = 0
    time_buckets: int = 0
    held_rows: int = 0

    @property
    def state_bytes(self) -> int:
        """Estimated memory of the window state (per-entry costs in state.py, docs/streaming.md)."""
        return (
            self.groups * GROUP_BYTES
            + self.distinct_entries * DISTINCT_ENTRY_BYTES
            + self.time_buckets * BUCKET_BYTES
        )

    def as_dict(self) -> dict[str, int]:
        out = {k: getattr(self, k) for k in self.__slots__}
        out["state_bytes"] = self.state_bytes
        return out


@dataclass(slots=True)
class AlertMemory:
    """What the re-alert policy remembers about a group that alerted."""

    value: float = 0.0
    unmatched_since: int | None = None
    repeat: int = 0


@dataclass(slots=True)
class WindowClock:
    """Where the window is: its end and start, when re-armed memory is next pruned, and the
    expiry queue of (oldest row time, sequence, group key)."""

    end_ms: int | None = None
    start_ms: int = 0
    prune_at: int = 0
    heap: list[tuple[int, int, Key]] = field(default_factory=list)
    seq: Iterator[int] = field(default_factory=itertools.count)


class WindowState:
    """Groups, alert memory, held rows, clock and metrics of one streamed plan, with the rules
    that change them: rows added to groups, groups queued for expiry, judged against the
    post-STATS steps and the re-alert policy, the window slid.

    The plan's compiled STATS (`specs`, `keys`, count terms) are read-only attributes; the
    general path (StreamExecutor.push) and the fast path (FastPath) both change the state only
    through the methods below.
    """

    def __init__(
        self,
        split: StreamPlan,
        window: WindowSpec,
        ctx: EvalContext,
        *,
        lateness_ms: int,
        policy: RealertPolicy,
    ) -> None:
        self.window = window
        self.lateness_ms = lateness_ms
        self.policy = policy
        self.rearm_ms = window.length_ms if policy.rearm_after_ms is None else policy.rearm_after_ms
        agg = split.aggregate
        self.specs = [StreamAggSpec(a, ctx) for _, a in agg.aggregates] if agg else []
        share_states(self.specs)
        self.agg_names = [n for n, _ in agg.aggregates] if agg else []
        self.keys = [(n, compile_expr(e, ctx), e.type) for n, e in agg.groups] if agg else []
        self.post_rows = row_pipeline(
            tuple(s for s in split.post if not isinstance(s, p.Sort | p.Limit)), ctx, lazy=True
        )
        self.out_names = [c.name for c in split.plan.columns]
        self.agg_index = {n: i for i, n in enumerate(self.agg_names)}
        by = agg.groups if agg else ()
        first = by[0][1] if len(by) == 1 else None
        self.key_column = first.name if isinstance(first, p.Ref) else None
        self.key_index = {n: i for i, (n, _f, _t) in enumerate(self.keys)}
        self.growth = self._growth_column()
        # Count aggregates (not also a BY column) by output name: what count terms compare.
        self.count_columns = {
            n: i
            for i, (n, spec) in enumerate(zip(self.agg_names, self.specs, strict=True))
            if spec.fn in ("count", "count_distinct") and n not in self.key_index
        }
        self.thresholds = count_thresholds(split.post, self.count_columns)
        # Terms comparing two counts (`slots * 4 < ips * 5`): tested as integers before the
        # general threshold, which a group past the count thresholds (a scraper polling
        # hundreds of hosts) would otherwise run at each of its events.
        self.linear = linear_count_terms(split.post, self.count_columns)
        # The count terms are the whole test when the post-STATS steps filter nothing else.
        self.terms_decide = only_count_terms(split.post, self.count_columns)
        self.aggregating = bool(self.specs or self.keys)
        self.has_stats = agg is not None
        self.groups: dict[Key, Group] = {}
        self.memory: dict[Key, AlertMemory] = {}
        self.held: deque[tuple[int, Row]] = deque()  # rows of a query without STATS
        self.clock = WindowClock()
        self.metrics = StreamMetrics()
        # Called at each match, while the state is exactly the crossing's (mid-batch included).
        self.on_match: Callable[[StreamMatch], dict[str, object]] | None = None

    # -- the clock -----------------------------------------------------------------------------

    def move_to(self, end_ms: int, start_ms: int | None = None) -> None:
        """Set the window end (and start) without sliding: the caller has expired what left."""
        self.clock.end_ms = end_ms
        if start_ms is not None:
            self.clock.start_ms = start_ms

    def prune_due(self, end_ms: int) -> int:
        """When memory is next pruned after a prune at window end `end_ms`. Pruning only
        forgets early what `judge` would forget anyway, so its pace is a memory bound, not a
        result: at least a quarter window apart even when groups re-arm at once (rearm 0, the
        watch default), where a prune at every event end cost a fifth of the fast path."""
        return end_ms + max(1, max(self.rearm_ms, self.window.length_ms) // 4)

    def rearmed(self, memory: AlertMemory, end_ms: int) -> bool:
        """Whether a group that alerted has been re-armed by window end `end_ms` (it stopped
        matching at least rearm_ms before): from then on it is as if it never alerted."""
        since = memory.unmatched_since
        return since is not None and end_ms - since >= self.rearm_ms

    def set_prune_at(self, due_ms: int) -> None:
        self.clock.prune_at = due_ms

    def advance(self, end_ms: int, fired: list[StreamMatch] | None = None) -> list[StreamMatch]:
        """Slide the window to end at `end_ms`. State leaves in time order, each group re-checked
        at the moment its oldest row left (so a group stops, or starts, matching when it did)."""
        out = fired if fired is not None else []
        clock = self.clock
        if clock.end_ms is not None and end_ms <= clock.end_ms:
            return out
        if end_ms >= clock.prune_at:
            self._prune_memory(end_ms)
        window = self.window
        start = window.start_ms(end_ms)
        # The first window end at which a row of time `ms` is no longer inside.
        leave = window.length_ms + (1 if window.closed else 0)
        for ms, key, group in self.due(start):
            clock.end_ms = max(ms + leave, clock.end_ms or 0)
            clock.start_ms = window.start_ms(clock.end_ms)
            group.expire(clock.start_ms)
            if group.empty:
                self.drop_group(key)
                self.judge(key, None, out)
                continue
            self.queue(group, group.rows.times[0])
            self.judge(key, group, out)
        clock.end_ms = end_ms
        clock.start_ms = start
        held = self.held
        while held and held[0][0] < start:
            held.popleft()
        return out

    def due(self, start_ms: int) -> Iterator[tuple[int, Key, Group]]:
        """(queued time, key, group) of each group whose oldest row is older than `start_ms`,
        oldest first, taken off the expiry queue (stale entries skipped). The caller expires
        and re-queues it; entries it queues meanwhile are seen too."""
        heap = self.clock.heap
        groups = self.groups
        while heap and heap[0][0] < start_ms:
            ms, _seq, key = heapq.heappop(heap)
            group = groups.get(key)
            if group is None or group.heap_ms != ms:
                continue  # stale: the group was re-queued at an older time or removed
            yield ms, key, group

    def _prune_memory(self, end_ms: int) -> None:
        """Forget groups re-armed by time, so memory stays bounded by the groups still tracked."""
        expired = [key for key, m in self.memory.items() if self.rearmed(m, end_ms)]
        for key in expired:
            del self.memory[key]
        self.clock.prune_at = self.prune_due(end_ms)

    def forget_if_rearmed(self, key: Key, end_ms: int) -> None:
        """The memory prune at window end `end_ms`, for one group."""
        got = self.memory.get(key)
        if got is not None and self.rearmed(got, end_ms):
            del self.memory[key]

    # -- groups --------------------------------------------------------------------------------

    def group_keys(self, row: Row) -> list[Key]:
        if not self.keys:
            return [()]
        if self.key_column is not None:
            value = row.get(self.key_column)
            if type(value) is not list:
                return [(value,)]  # one plain single-valued key column: the common BY
        per_key = []
        for _name, fn, _type in self.keys:
            value = fn(row)
            per_key.append(value if isinstance(value, list) else [value])
        if len(per_key) == 1:
            return [(x,) for x in dict.fromkeys(per_key[0])]
        return list(dict.fromkeys(itertools.product(*per_key)))

    def add(self, row: Row, ms: int, fired: list[StreamMatch]) -> None:
        """One row of the event at `ms` into its groups (or held, without STATS), judged."""
        self.metrics.rows += 1
        if not self.aggregating:
            self._hold(row, ms, fired)
            return
        groups = self.groups
        for key in self.group_keys(row):
            group = groups.get(key)
            if group is None:
                group = self.new_group(key)
            group.add(row, ms)
            if group.heap_ms is None or ms < group.heap_ms:
                self.queue(group, ms)
            self.judge(key, group, fired, ms)

    def new_group(self, key: Key) -> Group:
        group = self.groups[key] = Group(key, self.specs)
        return group

    def drop_group(self, key: Key) -> None:
        del self.groups[key]

    def queue(self, group: Group, ms: int) -> None:
        """Queue the group to expire when its oldest row, at `ms`, leaves the window."""
        group.heap_ms = ms
        heapq.heappush(self.clock.heap, (ms, next(self.clock.seq), group.key))

    def group_row(self, group: Group | None, key: Key = ()) -> Row:
        """The STATS output row of a group: aggregates in order, then keys."""
        row: Row = {}
        for name, spec, agg in zip(
            self.agg_names,
            self.specs,
            group.aggs if group else [None] * len(self.specs),
            strict=True,
        ):
            row[name] = agg.result() if agg is not None else spec.read(_empty_state(spec))
        keys = group.key if group is not None else key
        for (name, _fn, _type), value in zip(self.keys, keys, strict=True):
            row[name] = value
        return row

    def _matching_row(self, group: Group | None, key: Key) -> Row | None:
        """The group's output row if it passes the post-STATS steps; aggregates are read only as
        the threshold needs them (a VALUES list is built only for a match)."""
        if group is None and self.keys:
            return None
        if group is None:
            view: Mapping[str, object] = self.group_row(None, key)
        else:
            aggs = group.aggs
            for index, compare, bound in self.thresholds:
                if not compare(aggs[index].result(), bound):  # type: ignore[arg-type]
                    return None  # most events leave their group short of the threshold
            for a, ka, b, kb, compare in self.linear:
                if not compare(aggs[a].result() * ka, aggs[b].result() * kb):  # type: ignore[operator]
                    return None
            view = GroupView(group, self.agg_index, self.key_index)
        rows = self.post_rows(view)  # type: ignore[arg-type]
        if not rows:
            return None
        return {name: rows[0].get(name) for name in self.out_names}

    def judge(
        self, key: Key, group: Group | None, fired: list[StreamMatch], trigger: int = -1
    ) -> None:
        """Whether the group matches now, and whether that fires under the re-alert policy."""
        end = self.clock.end_ms
        assert end is not None
        memory = self.memory.get(key)
        if memory is not None and self.rearmed(memory, end):
            del self.memory[key]
            memory = None
        if self.terms_decide and group is not None and memory is not None and self.growth is None:
            # Matching or not is all a group that already alerted needs: no output row.
            aggs = group.aggs
            if all(compare(aggs[i].result(), b) for i, compare, b in self.thresholds):  # type: ignore[arg-type]
                memory.unmatched_since = None
            elif memory.unmatched_since is None:
                memory.unmatched_since = end
            return
        row = self._matching_row(group, key)
        if row is None:
            if memory is not None and memory.unmatched_since is None:
                memory.unmatched_since = end
            return
        level = self._level(row)
        if memory is None:
            self.memory[key] = AlertMemory(level)
            fired.append(self._match(row, key, trigger, 0))
            return
        memory.unmatched_since = None
        factor = self.policy.growth_factor
        if factor is not None and memory.value > 0 and level >= factor * memory.value:
            memory.value = level
            memory.repeat += 1
            fired.append(self._match(row, key, trigger, memory.repeat))

    def _match(self, row: Row, key: Key, trigger: int, repeat: int) -> StreamMatch:
        end = self.clock.end_ms
        assert end is not None
        self.metrics.matches += 1
        match = StreamMatch(
            row, v.datetime_from_millis(end), trigger if trigger >= 0 else end, key, repeat
        )
        if self.on_match is not None:
            match.detail = self.on_match(match)
        return match

    def _growth_column(self) -> str | None:
        if self.policy.growth_factor is None:
            return None
        if self.policy.growth_column is not None:
            return self.policy.growth_column
        ranked = sorted(
            zip(self.agg_names, self.specs, strict=True),
            key=lambda ns: ns[1].fn != "count_distinct",
        )
        return next((n for n, s in ranked if s.fn in ("count_distinct", "count")), None)

    def _level(self, row: Row) -> float:
        if self.growth is None:
            return 0.0
        value = row.get(self.growth)
        return float(value) if isinstance(value, int | float) else 0.0

    # -- without STATS: each surviving event is a match --------------------------------------

    def _hold(self, row: Row, ms: int, fired: list[StreamMatch]) -> None:
        held = self.held
        if not held or held[-1][0] <= ms:
            held.append((ms, row))
        else:
            held.insert(sum(1 for t, _ in held if t <= ms), (ms, row))
        for out in self.post_rows(row):
            fired.append(self._match({n: out.get(n) for n in self.out_names}, (), ms, 0))

    # -- the answer for the window ending now --------------------------------------------------

    def rows(self) -> list[Row]:
        """The rows the post-STATS steps read for the window ending now: each group's STATS
        row (one row of empty aggregates for a STATS without BY and no group), or the held rows."""
        if not self.has_stats:
            return [r for _, r in self.held]
        rows = [self.group_row(g) for g in self.groups.values()]
        if not self.keys and not self.groups:
            rows = [self.group_row(None)]
        return rows

    def refresh_metrics(self) -> StreamMetrics:
        m = self.metrics
        m.groups = len(self.groups)
        m.distinct_entries = sum(g.distinct_entries() for g in self.groups.values())
        m.time_buckets = sum(g.buckets() for g in self.groups.values())
        m.held_rows = len(self.held)
        return m


def _empty_state(spec: StreamAggSpec) -> Any:
    return LastSeen(True) if spec.distinct else TimeCounter()
