"""The streaming executor: events in, per-event pipeline, windowed STATS groups, matches out as they happen."""

from __future__ import annotations

import heapq
import itertools
import re
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from reconwatch.backends.stream.decode import PlanDecoder
from reconwatch.backends.stream.fastpath import FastPath
from reconwatch.backends.stream.fastpath import build as build_fast_path
from reconwatch.backends.stream.prefilter import (
    PASS,
    REJECT,
    compile_verdict,
    count_thresholds,
    leading_equalities,
    only_count_terms,
)
from reconwatch.backends.stream.split import StreamPlan, WindowSpec, split_plan
from reconwatch.backends.stream.state import (
    BUCKET_BYTES,
    DISTINCT_ENTRY_BYTES,
    GROUP_BYTES,
    AggSpec,
    Group,
    ipv4_key,
    share_states,
)
from reconwatch.errors import UsageError
from reconwatch.evaluate import EvalContext, compile_expr, execute
from reconwatch.plan import nodes as p
from reconwatch.plan import values as v
from reconwatch.plan.catalog import Result
from reconwatch.plan.documents import JSON_ERRORS, convert_leaf
from reconwatch.types import DataType as T

Row = dict[str, object]
RowFn = Callable[[Row], list[Row]]


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
class Match:
    """A group (or, without STATS, an event) that satisfies the query over the window ending at
    `end`: `row` is its output row, as the batch executor would return it."""

    row: dict[str, object]
    end: datetime
    trigger_ms: int
    key: tuple[object, ...] = ()
    repeat: int = 0
    # What `StreamExecutor.on_match` made of the state at the crossing (the alert's evidence).
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
class _Memory:
    """What the re-alert policy remembers about a group that alerted."""

    value: float = 0.0
    unmatched_since: int | None = None
    repeat: int = 0


@dataclass(slots=True)
class _Clock:
    end_ms: int | None = None
    start_ms: int = 0
    prune_at: int = 0
    heap: list[tuple[int, int, tuple[object, ...]]] = field(default_factory=list)
    seq: Iterator[int] = field(default_factory=itertools.count)


class StreamExecutor:
    """Runs an analysed plan incrementally over events in event-time order or not.

    Feed flattened events (dotted keys; a list is a multivalue) to `push`; it returns the
    matches that fire. The window ends at the latest event time seen; an event older than the
    window start can never count again and is dropped, as is one later than `lateness_ms`.
    """

    def __init__(
        self,
        plan: p.Plan,
        *,
        lookback: WindowSpec | None = None,
        lateness_ms: int | None = None,
        policy: RealertPolicy | None = None,
        fast: bool = True,
    ) -> None:
        self.split: StreamPlan = split_plan(plan)
        window = self.split.window or lookback
        if window is None:
            msg = "the query has no time filter (ts > now() - N): give the rule's lookback window"
            raise UsageError(msg)
        self.window = window
        self.lateness_ms = window.length_ms if lateness_ms is None else lateness_ms
        self.policy = policy or RealertPolicy()
        self.rearm_ms = (
            window.length_ms if self.policy.rearm_after_ms is None else self.policy.rearm_after_ms
        )
        self.ctx = EvalContext(source=plan.query)
        self.metrics = StreamMetrics()
        # Called at each match, while the state is exactly the crossing's (mid-batch included).
        self.on_match: Callable[[Match], dict[str, object]] | None = None
        self._fields = [(c.name, c.type) for c in self.split.source.fields]
        self._metadata = self.split.source.metadata
        # A KEEP that only narrows (no renames) changes nothing the later steps read; skipping it
        # lets the event row convert just the fields a failing WHERE looks at.
        pre = tuple(
            st
            for st in self.split.pre
            if not (isinstance(st, p.Project) and all(a == b for a, b in st.mapping))
        )
        self._pre = _row_pipeline(pre, self.ctx)
        tests, known = leading_equalities(pre, {n for n, _ in self._fields} - set(self._metadata))
        self._verdict = compile_verdict(tests) if tests else None
        self._pre_known = _row_pipeline(known, self.ctx)
        self._types = dict(self._fields)
        agg = self.split.aggregate
        self._specs = [AggSpec(a, self.ctx) for _, a in agg.aggregates] if agg else []
        share_states(self._specs)
        self._agg_names = [n for n, _ in agg.aggregates] if agg else []
        self._keys = [(n, compile_expr(e, self.ctx), e.type) for n, e in agg.groups] if agg else []
        self._post_rows = _row_pipeline(
            tuple(s for s in self.split.post if not isinstance(s, p.Sort | p.Limit)),
            self.ctx,
            lazy=True,
        )
        self._out_names = [c.name for c in plan.columns]
        self._agg_index = {n: i for i, n in enumerate(self._agg_names)}
        by = agg.groups if agg else ()
        first = by[0][1] if len(by) == 1 else None
        self._key_column = first.name if isinstance(first, p.Ref) else None
        self._key_index = {n: i for i, (n, _f, _t) in enumerate(self._keys)}
        self._growth = self._growth_column()
        counts = {
            n: i
            for i, (n, spec) in enumerate(zip(self._agg_names, self._specs, strict=True))
            if spec.fn in ("count", "count_distinct") and n not in self._key_index
        }
        self._thresholds = count_thresholds(self.split.post, counts)
        # The count terms are the whole test when the post-STATS steps filter nothing else.
        self._terms_decide = only_count_terms(self.split.post, counts)
        self.groups: dict[tuple[object, ...], Group] = {}
        self.memory: dict[tuple[object, ...], _Memory] = {}
        self.held: deque[tuple[int, Row]] = deque()  # rows of a query without STATS
        self.clock = _Clock()
        self._decoder: PlanDecoder | None = None
        self.fast: FastPath | None = build_fast_path(self) if fast else None

    @property
    def decoder(self) -> PlanDecoder:
        """The plan's JSON decoder (only the fields it reads) for the general path."""
        if self._decoder is None:
            self._decoder = PlanDecoder(self.input_fields)
        return self._decoder

    def push_lines(
        self, lines: Sequence[bytes | str], errors: list[tuple[int, str]] | None = None
    ) -> list[Match]:
        """NDJSON lines in arrival order, as a micro-batch: the same matches, in the same
        order, as `push` on each decoded line. Lines that are not JSON objects are skipped and
        listed in `errors` as (index in `lines`, reason)."""
        errs = errors if errors is not None else []
        if self.fast is not None:
            return self.fast.run(lines, errs)
        fired: list[Match] = []
        for index, line in enumerate(lines):
            fired.extend(self.push_line(line, index, errs))
        return fired

    def push_line(
        self, line: bytes | str, index: int, errors: list[tuple[int, str]]
    ) -> list[Match]:
        """One NDJSON line through the general path; a blank line is nothing, a line that is
        not a JSON object goes to `errors`. Bytes that are not UTF-8 are read with
        replacement characters, as a text reader would."""
        if not line.strip():
            return []
        try:
            event = self.decoder.decode(line)
        except JSON_ERRORS as exc:
            if isinstance(line, bytes):
                return self.push_line(line.decode("utf-8", "replace"), index, errors)
            errors.append((index, f"not a JSON object: {exc}"))
            return []
        return self.push(event)

    @property
    def input_fields(self) -> list[str]:
        """Every event field the executor reads: the plan's source fields, time, METADATA."""
        names = [n for n, _ in self._fields] + list(self.window.time_fields)
        return list(dict.fromkeys([*names, *self._metadata]))

    # -- input -------------------------------------------------------------------------------

    def event_time(self, raw: Mapping[str, object]) -> int | None:
        for name in self.window.time_fields:
            got = raw.get(name)
            text = got[0] if type(got) is list and len(got) == 1 else got
            if type(text) is str:
                fast = _iso_millis(text)
                if fast is not None:
                    return fast
            value = _cell(got, T.DATETIME)
            if isinstance(value, list):
                value = value[0]
            if isinstance(value, datetime):
                return v.datetime_to_millis(value)
        return None

    def push(self, raw: Mapping[str, object]) -> list[Match]:
        """One event: advance the window to its time if later, add it, return what fires."""
        self.metrics.events += 1
        ms = self.event_time(raw)
        if ms is None:
            self.metrics.no_time += 1
            return []
        fired: list[Match] = []
        clock = self.clock
        if clock.end_ms is None or ms > clock.end_ms:
            self.advance(ms, fired)
        elif ms < clock.start_ms:
            self.metrics.outside_window += 1
            return fired
        elif ms < clock.end_ms - self.lateness_ms:
            self.metrics.too_late += 1
            return fired
        pipeline = self._pre
        if self._verdict is not None:
            verdict = self._verdict(raw)
            if verdict == REJECT:
                return fired
            if verdict == PASS:
                pipeline = self._pre_known  # the leading WHERE is known to hold
        row = _EventRow(raw, self._types)
        for name in self._metadata:
            row.cache[name] = _metadata(name, raw)
        for out in pipeline(row):  # type: ignore[arg-type]
            self.metrics.rows += 1
            if self._specs or self._keys:
                self._add_to_groups(out, ms, fired)
            else:
                self._hold(out, ms, fired)
        return fired

    def advance(self, end_ms: int, fired: list[Match] | None = None) -> list[Match]:
        """Slide the window to end at `end_ms`. State leaves in time order, each group re-checked
        at the moment its oldest row left (so a group stops, or starts, matching when it did)."""
        out = fired if fired is not None else []
        clock = self.clock
        if clock.end_ms is not None and end_ms <= clock.end_ms:
            return out
        if end_ms >= clock.prune_at:
            self._prune_memory(end_ms)
        start = self.window.start_ms(end_ms)
        # The first window end at which a row of time `ms` is no longer inside.
        leave = self.window.length_ms + (1 if self.window.closed else 0)
        heap = clock.heap
        while heap and heap[0][0] < start:
            ms, _seq, key = heapq.heappop(heap)
            group = self.groups.get(key)
            if group is None or group.heap_ms != ms:
                continue  # stale: the group was re-queued at an older time or removed
            clock.end_ms = max(ms + leave, clock.end_ms or 0)
            clock.start_ms = self.window.start_ms(clock.end_ms)
            group.expire(clock.start_ms)
            if group.empty:
                del self.groups[key]
                self._judge(key, None, out)
                continue
            self._queue(group, group.rows.times[0])
            self._judge(key, group, out)
        clock.end_ms = end_ms
        clock.start_ms = start
        while self.held and self.held[0][0] < start:
            self.held.popleft()
        return out

    def _prune_memory(self, end_ms: int) -> None:
        """Forget groups re-armed by time, so memory stays bounded by the groups still tracked."""
        expired = [
            key
            for key, m in self.memory.items()
            if m.unmatched_since is not None and end_ms - m.unmatched_since >= self.rearm_ms
        ]
        for key in expired:
            del self.memory[key]
        self.clock.prune_at = end_ms + max(1, self.rearm_ms // 4)

    # -- STATS -------------------------------------------------------------------------------

    def _group_keys(self, row: Row) -> list[tuple[object, ...]]:
        if not self._keys:
            return [()]
        if self._key_column is not None:
            value = row.get(self._key_column)
            if type(value) is not list:
                return [(value,)]  # one plain single-valued key column: the common BY
        per_key = []
        for _name, fn, _type in self._keys:
            value = fn(row)
            per_key.append(value if isinstance(value, list) else [value])
        if len(per_key) == 1:
            return [(x,) for x in dict.fromkeys(per_key[0])]
        return list(dict.fromkeys(itertools.product(*per_key)))

    def _add_to_groups(self, row: Row, ms: int, fired: list[Match]) -> None:
        for key in self._group_keys(row):
            group = self.groups.get(key)
            if group is None:
                group = self.groups[key] = Group(key, self._specs)
            group.add(row, ms)
            if group.heap_ms is None or ms < group.heap_ms:
                self._queue(group, ms)
            self._judge(key, group, fired, ms)

    def _queue(self, group: Group, ms: int) -> None:
        group.heap_ms = ms
        heapq.heappush(self.clock.heap, (ms, next(self.clock.seq), group.key))

    def group_row(self, group: Group | None, key: tuple[object, ...] = ()) -> Row:
        """The STATS output row of a group: aggregates in order, then keys."""
        row: Row = {}
        for name, spec, agg in zip(
            self._agg_names,
            self._specs,
            group.aggs if group else [None] * len(self._specs),
            strict=True,
        ):
            row[name] = agg.result() if agg is not None else spec.read(_empty_state(spec))
        keys = group.key if group is not None else key
        for (name, _fn, _type), value in zip(self._keys, keys, strict=True):
            row[name] = value
        return row

    def _matching_row(self, group: Group | None, key: tuple[object, ...]) -> Row | None:
        """The group's output row if it passes the post-STATS steps; aggregates are read only as
        the threshold needs them (a VALUES list is built only for a match)."""
        if group is None and self._keys:
            return None
        if group is None:
            view: Mapping[str, object] = self.group_row(None, key)
        else:
            aggs = group.aggs
            for index, compare, bound in self._thresholds:
                if not compare(aggs[index].result(), bound):  # type: ignore[arg-type]
                    return None  # most events leave their group short of the threshold
            view = _GroupView(group, self._agg_index, self._key_index)
        rows = self._post_rows(view)  # type: ignore[arg-type]
        if not rows:
            return None
        return {name: rows[0].get(name) for name in self._out_names}

    def _judge(
        self, key: tuple[object, ...], group: Group | None, fired: list[Match], trigger: int = -1
    ) -> None:
        """Whether the group matches now, and whether that fires under the re-alert policy."""
        end = self.clock.end_ms
        assert end is not None
        memory = self.memory.get(key)
        since = memory.unmatched_since if memory is not None else None
        if since is not None and end - since >= self.rearm_ms:
            del self.memory[key]
            memory = None
        if self._terms_decide and group is not None and memory is not None and self._growth is None:
            # Matching or not is all a group that already alerted needs: no output row.
            aggs = group.aggs
            if all(compare(aggs[i].result(), b) for i, compare, b in self._thresholds):  # type: ignore[arg-type]
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
            self.memory[key] = _Memory(level)
            fired.append(self._match(row, key, trigger, 0))
            return
        memory.unmatched_since = None
        factor = self.policy.growth_factor
        if factor is not None and memory.value > 0 and level >= factor * memory.value:
            memory.value = level
            memory.repeat += 1
            fired.append(self._match(row, key, trigger, memory.repeat))

    def _match(self, row: Row, key: tuple[object, ...], trigger: int, repeat: int) -> Match:
        end = self.clock.end_ms
        assert end is not None
        self.metrics.matches += 1
        match = Match(
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
            zip(self._agg_names, self._specs, strict=True),
            key=lambda ns: ns[1].fn != "count_distinct",
        )
        return next((n for n, s in ranked if s.fn in ("count_distinct", "count")), None)

    def _level(self, row: Row) -> float:
        if self._growth is None:
            return 0.0
        value = row.get(self._growth)
        return float(value) if isinstance(value, int | float) else 0.0

    # -- without STATS: each surviving event is a match --------------------------------------

    def _hold(self, row: Row, ms: int, fired: list[Match]) -> None:
        held = self.held
        if not held or held[-1][0] <= ms:
            held.append((ms, row))
        else:
            held.insert(sum(1 for t, _ in held if t <= ms), (ms, row))
        for out in self._post_rows(row):
            fired.append(self._match({n: out.get(n) for n in self._out_names}, (), ms, 0))

    # -- the answer for the window ending now --------------------------------------------------

    def snapshot(self) -> Result:
        """What the batch executor returns for the window ending at the latest event time."""
        post_plan = self._post_plan()
        if self.split.aggregate is None:
            rows: list[Row] = [r for _, r in self.held]
        else:
            rows = [self.group_row(g) for g in self.groups.values()]
            if not self._keys and not self.groups:
                rows = [self.group_row(None)]
        now = v.datetime_from_millis(self.clock.end_ms or 0)
        return execute(post_plan, rows, now)

    def _post_plan(self) -> p.Plan:
        cols = self.split.aggregate.columns if self.split.aggregate else self.split.pre_columns
        source = p.Source((), (), cols, cols)
        return p.Plan(source, self.split.post, self.split.plan.query)

    def refresh_metrics(self) -> StreamMetrics:
        m = self.metrics
        m.groups = len(self.groups)
        m.distinct_entries = sum(g.distinct_entries() for g in self.groups.values())
        m.time_buckets = sum(g.buckets() for g in self.groups.values())
        m.held_rows = len(self.held)
        return m

    @property
    def end(self) -> datetime | None:
        ms = self.clock.end_ms
        return None if ms is None else v.datetime_from_millis(ms)


def _empty_state(spec: AggSpec) -> Any:
    from reconwatch.backends.stream.state import LastSeen, TimeCounter

    return LastSeen(True) if spec.distinct else TimeCounter()


_MISSING = object()
_ISO_MS = re.compile(r"(\d{4}-\d\d-\d\d)T(\d\d):(\d\d):(\d\d)\.(\d{3})Z")
_DAY_MS: dict[str, int | None] = {}
_DAY_CACHE_MAX = 10_000


def _iso_millis(text: str) -> int | None:
    """Epoch millis of the usual `2025-07-15T00:00:00.351Z` spelling without building a
    datetime (the generic parser costs microseconds per event); None for any other spelling or
    an invalid date or time, which the generic parser then handles or rejects."""
    m = _ISO_MS.fullmatch(text)
    if m is None:
        return None
    day_text, hh, mm, ss, fff = m.groups()
    day = _DAY_MS.get(day_text, _MISSING)
    if day is _MISSING:
        if len(_DAY_MS) >= _DAY_CACHE_MAX:
            _DAY_MS.clear()
        try:
            day = _DAY_MS[day_text] = v.datetime_to_millis(
                datetime.fromisoformat(day_text).replace(tzinfo=UTC)
            )
        except ValueError:
            day = _DAY_MS[day_text] = None
    h, mi, sec = int(hh), int(mm), int(ss)
    if day is None or h > 23 or mi > 59 or sec > 59:
        return None
    return day + ((h * 60 + mi) * 60 + sec) * 1000 + int(fff)  # type: ignore[operator]


_IP_CACHE: dict[str, object] = {}
_IP_CACHE_MAX = 200_000


def _cell(raw: object, type_: T) -> object:
    """An input value (or list of values) converted as ingest indexes it; bad values dropped."""
    if raw is None:
        return None
    if type(raw) is list and len(raw) == 1:
        raw = raw[0]  # decoders give every field as a list; most hold one value
    if isinstance(raw, str):
        if type_ is T.KEYWORD:
            return raw
        if type_ is T.IP:
            # Scans repeat addresses; parsing one with ipaddress costs microseconds.
            hit = _IP_CACHE.get(raw, _MISSING)
            if hit is _MISSING:
                if len(_IP_CACHE) >= _IP_CACHE_MAX:
                    _IP_CACHE.clear()
                # A canonical dotted quad converts to itself; only other spellings need parsing.
                canonical = ipv4_key(raw) is not None
                hit = _IP_CACHE[raw] = raw if canonical else _convert_items((raw,), type_)
            return hit
    return _convert_items(raw if isinstance(raw, list) else (raw,), type_)


def _convert_items(items: list[object] | tuple[object, ...], type_: T) -> object:
    out: list[object] = []
    for item in items:
        if item is None or isinstance(item, dict | list):
            continue
        try:
            out.append(convert_leaf(item, type_))
        except v.ConversionError:
            continue
    if not out:
        return None
    return out[0] if len(out) == 1 else out


def _metadata(name: str, raw: Mapping[str, object]) -> object:
    if name == "_version":
        return 1
    value = raw.get(name)
    if isinstance(value, list):
        value = value[0] if value else None
    return None if value is None else str(value)


# ---------------------------------------------------------------------------------------------
# Row-wise steps compiled once into one function per step: row -> rows.


def _row_pipeline(steps: tuple[p.Step, ...], ctx: EvalContext, *, lazy: bool = False) -> RowFn:
    table = _LAZY_STEPS if lazy else _ROW_STEPS
    fns = [table.get(type(s), _ROW_STEPS[type(s)])(s, ctx) for s in steps]

    def run(row: Row) -> list[Row]:
        rows = [row]
        for fn in fns:
            nxt: list[Row] = []
            for r in rows:
                nxt.extend(fn(r))
            if not nxt:
                return nxt
            rows = nxt
        return rows

    return run


def _filter(step: p.Step, ctx: EvalContext) -> RowFn:
    assert isinstance(step, p.Filter)
    cond = compile_expr(step.condition, ctx)
    return lambda row: [row] if cond(row) is True else []


def _eval(step: p.Step, ctx: EvalContext) -> RowFn:
    assert isinstance(step, p.Eval)
    compiled = [(name, compile_expr(expr, ctx)) for name, expr in step.assignments]

    def run(row: Row) -> list[Row]:
        out = dict(row)
        for name, fn in compiled:
            value = fn(out)
            out.pop(name, None)  # a reassigned name moves to the end, as in Elasticsearch
            out[name] = value
        return [out]

    return run


def _project(step: p.Step, ctx: EvalContext) -> RowFn:
    assert isinstance(step, p.Project)
    mapping = step.mapping
    return lambda row: [{out: row.get(src) for out, src in mapping}]


def _mv_expand(step: p.Step, ctx: EvalContext) -> RowFn:
    assert isinstance(step, p.MvExpand)
    name = step.column

    def run(row: Row) -> list[Row]:
        value = row.get(name)
        if not isinstance(value, list):
            return [row]
        return [{**row, name: item} for item in value]

    return run


_ROW_STEPS: dict[type, Callable[[p.Step, EvalContext], RowFn]] = {
    p.Filter: _filter,
    p.Eval: _eval,
    p.Project: _project,
    p.MvExpand: _mv_expand,
}


# ---------------------------------------------------------------------------------------------
# Lazy rows after STATS: a threshold reads one or two aggregates, so the rest stay unread.


class _GroupView(Mapping[str, object]):
    """A group's STATS output row, each aggregate computed when first read."""

    __slots__ = ("agg_index", "cache", "group", "key_index")

    def __init__(self, group: Group, agg_index: dict[str, int], key_index: dict[str, int]) -> None:
        self.group = group
        self.agg_index = agg_index
        self.key_index = key_index
        self.cache: dict[str, object] = {}

    def get(self, name: str, default: object = None) -> object:
        if name in self.cache:
            return self.cache[name]
        index = self.agg_index.get(name)
        if index is not None:
            value = self.cache[name] = self.group.aggs[index].result()
            return value
        index = self.key_index.get(name)
        return self.group.key[index] if index is not None else default

    def __getitem__(self, name: str) -> object:
        if name not in self.agg_index and name not in self.key_index:
            raise KeyError(name)
        return self.get(name)

    def __iter__(self) -> Iterator[str]:
        return iter([*self.agg_index, *self.key_index])

    def __len__(self) -> int:
        return len(self.agg_index) + len(self.key_index)


class _Overlay(Mapping[str, object]):
    """EVAL over a lazy row: new values on top, the rest read through."""

    __slots__ = ("base", "top")

    def __init__(self, base: Mapping[str, object]) -> None:
        self.base = base
        self.top: dict[str, object] = {}

    def get(self, name: str, default: object = None) -> object:
        if name in self.top:
            return self.top[name]
        return self.base.get(name, default)

    def __getitem__(self, name: str) -> object:
        return self.top[name] if name in self.top else self.base[name]

    def __iter__(self) -> Iterator[str]:
        return iter([*(k for k in self.base if k not in self.top), *self.top])

    def __len__(self) -> int:
        return len(list(iter(self)))


class _Renamed(Mapping[str, object]):
    """KEEP/DROP/RENAME over a lazy row: output names read through to input names."""

    __slots__ = ("base", "sources")

    def __init__(self, base: Mapping[str, object], sources: dict[str, str]) -> None:
        self.base = base
        self.sources = sources

    def get(self, name: str, default: object = None) -> object:
        src = self.sources.get(name)
        return self.base.get(src) if src is not None else default

    def __getitem__(self, name: str) -> object:
        return self.base[self.sources[name]]

    def __iter__(self) -> Iterator[str]:
        return iter(self.sources)

    def __len__(self) -> int:
        return len(self.sources)


def _lazy_eval(step: p.Step, ctx: EvalContext) -> RowFn:
    assert isinstance(step, p.Eval)
    compiled = [(name, compile_expr(expr, ctx)) for name, expr in step.assignments]

    def run(row: Any) -> list[Any]:
        out = _Overlay(row)
        for name, fn in compiled:
            out.top[name] = fn(out)
        return [out]

    return run


def _lazy_project(step: p.Step, ctx: EvalContext) -> RowFn:
    assert isinstance(step, p.Project)
    sources = dict(step.mapping)

    def run(row: Any) -> list[Any]:
        return [_Renamed(row, sources)]

    return run


_LAZY_STEPS: dict[type, Callable[[p.Step, EvalContext], RowFn]] = {
    p.Eval: _lazy_eval,
    p.Project: _lazy_project,
}


class _EventRow(Mapping[str, object]):
    """An event's source fields, each converted to its plan type when first read."""

    __slots__ = ("cache", "raw", "types")

    def __init__(self, raw: Mapping[str, object], types: dict[str, T]) -> None:
        self.raw = raw
        self.types = types
        self.cache: dict[str, object] = {}

    def get(self, name: str, default: object = None) -> object:
        cache = self.cache
        if name in cache:
            return cache[name]
        type_ = self.types.get(name)
        if type_ is None:
            return default
        value = cache[name] = _cell(self.raw.get(name), type_)
        return value

    def __getitem__(self, name: str) -> object:
        if name not in self.types and name not in self.cache:
            raise KeyError(name)
        return self.get(name)

    def __iter__(self) -> Iterator[str]:
        return iter([*self.types, *(k for k in self.cache if k not in self.types)])

    def __len__(self) -> int:
        return len(list(iter(self)))
