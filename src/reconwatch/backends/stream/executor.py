"""The streaming executor: events in, per-event pipeline, windowed STATS groups, matches out as they happen."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime

from reconwatch.backends.stream.cells import cell_value, iso_millis, metadata
from reconwatch.backends.stream.decode import PlanDecoder
from reconwatch.backends.stream.fastpath import FastPath
from reconwatch.backends.stream.fastpath import build as build_fast_path
from reconwatch.backends.stream.prefilter import PASS, REJECT, compile_verdict, leading_equalities
from reconwatch.backends.stream.rows import EventRow, row_pipeline
from reconwatch.backends.stream.split import StreamPlan, WindowSpec, split_plan
from reconwatch.backends.stream.window import (
    RealertPolicy,
    StreamMatch,
    StreamMetrics,
    WindowClock,
    WindowState,
)
from reconwatch.errors import UsageError
from reconwatch.evaluate import EvalContext, execute
from reconwatch.plan import limits
from reconwatch.plan import nodes as p
from reconwatch.plan import values as v
from reconwatch.plan.catalog import Result
from reconwatch.plan.documents import JSON_ERRORS
from reconwatch.types import DataType as T

__all__ = ["RealertPolicy", "StreamExecutor", "StreamMatch", "StreamMetrics"]


class StreamExecutor:
    """Runs an analysed plan incrementally over events in event-time order or not.

    Feed flattened events (dotted keys; a list is a multivalue) to `push`; it returns the
    matches that fire. The window ends at the latest event time seen; an event older than the
    window start can never count again and is dropped, as is one later than `lateness_ms`.
    Everything kept between events is `state` (a WindowState); `push` (the general path) and
    the fast path both change it through its methods.
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
        self.ctx = EvalContext(source=plan.query)
        self.state = WindowState(
            self.split, window, self.ctx, lateness_ms=self.lateness_ms, policy=self.policy
        )
        self.rearm_ms = self.state.rearm_ms
        self.fields = [(c.name, c.type) for c in self.split.source.fields]
        self.metadata = self.split.source.metadata
        # A KEEP that only narrows (no renames) changes nothing the later steps read; skipping it
        # lets the event row convert just the fields a failing WHERE looks at.
        pre = tuple(
            st
            for st in self.split.pre
            if not (isinstance(st, p.Project) and all(a == b for a, b in st.mapping))
        )
        # The time budget (limits.current() when built) holds for each event's own work.
        self._budget = limits.current()
        self._deadline = self._budget.deadline()
        check = None if self._budget.seconds is None else self._check_budget
        # Before STATS the rows are only read by name (group keys, aggregate arguments), so EVAL
        # and RENAME can lay their columns over the event row instead of copying it: a copy
        # converted every field the plan reads at each event, a third of an EVAL rule's time.
        lazy = self.split.aggregate is not None
        self._pre = row_pipeline(pre, self.ctx, check=check, lazy=lazy)
        tests, known = leading_equalities(pre, {n for n, _ in self.fields} - set(self.metadata))
        self._verdict = compile_verdict(tests) if tests else None
        self._pre_known = row_pipeline(known, self.ctx, check=check, lazy=lazy)
        self._types = dict(self.fields)
        self._decoder: PlanDecoder | None = None
        self.fast: FastPath | None = (
            build_fast_path(
                self.state, self.split, self.fields, self.metadata, self.ctx, self.push_line
            )
            if fast
            else None
        )

    @property
    def on_match(self) -> Callable[[StreamMatch], dict[str, object]] | None:
        """Called at each match, while the state is exactly the crossing's (the evidence)."""
        return self.state.on_match

    @on_match.setter
    def on_match(self, hook: Callable[[StreamMatch], dict[str, object]] | None) -> None:
        self.state.on_match = hook

    @property
    def metrics(self) -> StreamMetrics:
        return self.state.metrics

    @property
    def clock(self) -> WindowClock:
        return self.state.clock

    @property
    def decoder(self) -> PlanDecoder:
        """The plan's JSON decoder (only the fields it reads) for the general path."""
        if self._decoder is None:
            self._decoder = PlanDecoder(self.input_fields)
        return self._decoder

    def push_lines(
        self, lines: Sequence[bytes | str], errors: list[tuple[int, str]] | None = None
    ) -> list[StreamMatch]:
        """NDJSON lines in arrival order, as a micro-batch: the same matches, in the same
        order, as `push` on each decoded line. Lines that are not JSON objects are skipped and
        listed in `errors` as (index in `lines`, reason)."""
        errs = errors if errors is not None else []
        if self.fast is not None:
            return self.fast.run(lines, errs)
        fired: list[StreamMatch] = []
        for index, line in enumerate(lines):
            fired.extend(self.push_line(line, index, errs))
        return fired

    def push_line(
        self, line: bytes | str, index: int, errors: list[tuple[int, str]]
    ) -> list[StreamMatch]:
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
        names = [n for n, _ in self.fields] + list(self.window.time_fields)
        return list(dict.fromkeys([*names, *self.metadata]))

    # -- input -------------------------------------------------------------------------------

    def event_time(self, raw: Mapping[str, object]) -> int | None:
        for name in self.window.time_fields:
            got = raw.get(name)
            text = got[0] if type(got) is list and len(got) == 1 else got
            if type(text) is str:
                fast = iso_millis(text)
                if fast is not None:
                    return fast
            value = cell_value(got, T.DATETIME)
            if isinstance(value, list):
                value = value[0]
            if isinstance(value, datetime):
                return v.datetime_to_millis(value)
        return None

    def push(self, raw: Mapping[str, object]) -> list[StreamMatch]:
        """One event: advance the window to its time if later, add it, return what fires."""
        state = self.state
        metrics = state.metrics
        metrics.events += 1
        ms = self.event_time(raw)
        if ms is None:
            metrics.no_time += 1
            return []
        fired: list[StreamMatch] = []
        clock = state.clock
        if clock.end_ms is None or ms > clock.end_ms:
            state.advance(ms, fired)
        elif ms < clock.start_ms:
            metrics.outside_window += 1
            return fired
        elif ms < clock.end_ms - self.lateness_ms:
            metrics.too_late += 1
            return fired
        pipeline = self._pre
        if self._verdict is not None:
            verdict = self._verdict(raw)
            if verdict == REJECT:
                return fired
            if verdict == PASS:
                pipeline = self._pre_known  # the leading WHERE is known to hold
        row = EventRow(raw, self._types)
        if self._budget.seconds is not None:
            self._deadline = self._budget.deadline()
        for name in self.metadata:
            row.cache[name] = metadata(name, raw)
        for out in pipeline(row):  # type: ignore[arg-type]
            state.add(out, ms, fired)
        return fired

    def _check_budget(self) -> None:
        self._deadline.check()

    def advance(self, end_ms: int, fired: list[StreamMatch] | None = None) -> list[StreamMatch]:
        """Slide the window to end at `end_ms` (see WindowState.advance)."""
        return self.state.advance(end_ms, fired)

    # -- the answer for the window ending now --------------------------------------------------

    def snapshot(self) -> Result:
        """What the batch executor returns for the window ending at the latest event time."""
        now = v.datetime_from_millis(self.state.clock.end_ms or 0)
        return execute(self._post_plan(), self.state.rows(), now)

    def _post_plan(self) -> p.Plan:
        cols = self.split.aggregate.columns if self.split.aggregate else self.split.pre_columns
        source = p.Source((), (), cols, cols)
        return p.Plan(source, self.split.post, self.split.plan.query)

    def refresh_metrics(self) -> StreamMetrics:
        return self.state.refresh_metrics()

    @property
    def end(self) -> datetime | None:
        ms = self.state.clock.end_ms
        return None if ms is None else v.datetime_from_millis(ms)
