"""What Spark's Python workers run: the plan's row-local steps over one partition, one group's aggregates.

Both run the shared interpreter (reconwatch.evaluate), so values, nulls, multivalues and
warnings are the reference executor's. Every row carries its input order (`ord`); every warning
is tagged with the order it would have happened in a one-pass run, so the driver can merge the
partitions' warnings into exactly the sequence one pass would record (warnings.merge).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from reconwatch.evaluate.aggregates import AggSpec
from reconwatch.evaluate.expressions import MAX_RECORDED, EvalContext, Warnings, compile_expr
from reconwatch.evaluate.pipeline import run_step, source_rows
from reconwatch.plan import nodes as p
from reconwatch.plan import values as v
from reconwatch.types import DataType as T

# Tags order warnings: (input order, phase, group key combination, sequence in the worker).
# Phases: 0 the row-local steps and group keys, 1 aggregate inputs, 2 steps on the driver.
Tag = tuple[float, int, int, int]
Key = tuple[int, int, str, str]
# A warning as workers report it: (tag, site, reason).
Failure = tuple[Tag, Key, str]
# Records a stage yields: ("r", ord, row) a row; ("w", failure); ("g", ident, member).
WARNING, ROW, GROUP = "w", "r", "g"
BEFORE_ROWS = -1
AFTER_ROWS = float("inf")


class TaggedWarnings(Warnings):
    """Warnings that remember when each first happened: per site the 20 distinct reasons that
    happened first (by tag, in whatever order this worker met them). Any reason among the
    global first 20 is among its worker's first 20, so the driver's merge is exact."""

    def __init__(self, phase: int, ord_: float = BEFORE_ROWS) -> None:
        super().__init__()
        self.phase = phase
        self.ord = ord_
        self.combo = 0
        self.seq = 0
        self.log: dict[Key, dict[str, Tag]] = {}

    def record(self, key: Key, reason: str) -> None:
        self.seq += 1
        tag: Tag = (self.ord, self.phase, self.combo, self.seq)
        got = self.log.setdefault(key, {})
        seen = got.get(reason)
        if seen is not None and seen <= tag:
            return
        got[reason] = tag
        if len(got) > MAX_RECORDED:
            del got[max(got, key=got.__getitem__)]

    def failures(self) -> list[Failure]:
        return [(tag, key, reason) for key, got in self.log.items() for reason, tag in got.items()]


@dataclass(frozen=True, slots=True)
class RowStage:
    """The plan's leading row-local steps over one partition of (ord, raw row) pairs.

    `keys`: the STATS that follows, whose group keys are computed here (a row joins every
    distinct combination of its key values, as the interpreter does); `needed` the fields its
    aggregates read. `limit`: a LIMIT that follows (a partition stops after that many rows:
    the first rows of all partitions hold the first rows overall). `top`: a SORT + LIMIT that
    follows, run per partition (the driver sorts the partitions' top rows again). `fed`: the
    rows are those of Spark's translated steps, not the source's."""

    source: p.Source | p.RowSource
    steps: tuple[p.Step, ...]
    query: str
    now: datetime
    keys: tuple[tuple[str, p.Expr], ...] | None = None
    needed: tuple[str, ...] = ()
    limit: int | None = None
    top: tuple[p.Sort, p.Limit] | None = None
    fed: bool = False  # rows come from Spark's translated steps: no source typing before `steps`

    def run(self, chunks: Iterable[Any]) -> Iterator[tuple[Any, ...]]:
        """Chunks of (ord, row) pairs in input order -> stage records (see ROW, GROUP, WARNING)."""
        start = 0 if isinstance(self.source, p.RowSource) else BEFORE_ROWS
        tw = TaggedWarnings(0, start)
        ctx = EvalContext(now=self.now, source=self.query, warnings=tw)

        def feed() -> Iterator[Mapping[str, object]]:
            for chunk in chunks:
                for ord_, raw in chunk:
                    tw.ord = ord_
                    yield raw

        stream: Iterator[dict[str, object]] = (
            (dict(row) for row in feed()) if self.fed else source_rows(self.source, feed(), ctx)
        )
        for step in self.steps:
            stream = run_step(step, stream, ctx)
        if self.keys is not None:
            yield from self._groups(stream, tw, ctx)
        elif self.top is not None:
            yield from self._top(stream, tw, ctx)
        else:
            taken = stream if self.limit is None else itertools.islice(stream, self.limit)
            for row in taken:
                yield (ROW, tw.ord, row)
        for failure in tw.failures():
            yield (WARNING, failure)
        # Read what a LIMIT (or ROW, which reads no input) left: PySpark ends a Python worker
        # whose input was not read to its end instead of reusing it, and the next task then
        # waits for a new one to start and import reconwatch (seconds under load).
        for _ in chunks:
            pass

    def _groups(
        self, stream: Iterator[dict[str, object]], tw: TaggedWarnings, ctx: EvalContext
    ) -> Iterator[tuple[Any, ...]]:
        assert self.keys is not None
        keys = [(compile_expr(expr, ctx), expr.type) for _, expr in self.keys]
        # Rows of one input row (an MV_EXPAND's, here or translated before this stage) share its
        # order and come in their own order: their group memberships are numbered on from the
        # previous row's, so that the first member of a group is the one a one-pass run meets
        # first (a tie on the input order alone left the groups' order to Spark's shuffle).
        last_ord: object = None
        base = 0
        for row in stream:
            if tw.ord != last_ord:
                last_ord, base = tw.ord, 0
            per_key = [v.as_list(fn(row)) or [None] for fn, _ in keys]
            seen: set[tuple[object, ...]] = set()
            kept = {name: row.get(name) for name in self.needed}
            for combo in itertools.product(*per_key):
                ident = tuple(v.order_key(x, t) for x, (_, t) in zip(combo, keys, strict=True))
                if ident in seen:
                    continue
                yield (GROUP, ident, (tw.ord, base + len(seen), combo, kept))
                seen.add(ident)
            base += len(seen)

    def _top(
        self, stream: Iterator[dict[str, object]], tw: TaggedWarnings, ctx: EvalContext
    ) -> Iterator[tuple[Any, ...]]:
        assert self.top is not None
        rows: list[dict[str, object]] = []
        orders: dict[int, float] = {}
        for row in stream:
            rows.append(row)
            orders[id(row)] = tw.ord
        sort, limit = self.top
        for row in run_step(limit, run_step(sort, iter(rows), ctx), ctx):
            yield (ROW, orders[id(row)], row)


@dataclass(frozen=True, slots=True)
class GroupStage:
    """A STATS's aggregates over the members of each group a partition holds."""

    aggregates: tuple[tuple[str, p.AggCall], ...]
    query: str
    now: datetime

    def run(self, groups: Iterable[tuple[Any, Iterable[Any]]]) -> Iterator[tuple[Any, ...]]:
        """(ident, members) -> ("g", first (ord, combo), combo, results, ident); warnings after."""
        tw = TaggedWarnings(1)
        ctx = EvalContext(now=self.now, source=self.query, warnings=tw)
        specs = [AggSpec(agg, ctx) for _, agg in self.aggregates]
        for ident, members in groups:
            ordered = sorted(members, key=_member_order)
            states = [spec.new() for spec in specs]
            for ord_, combo_index, _combo, row in ordered:
                tw.ord, tw.combo = ord_, combo_index
                for state in states:
                    state.add(row)
            first = ordered[0]
            yield (GROUP, (first[0], first[1]), first[2], [s.result() for s in states], ident)
        for failure in tw.failures():
            yield (WARNING, failure)


def _member_order(member: tuple[float, int, object, object]) -> tuple[float, int]:
    return (member[0], member[1])


def key_types(step: p.Aggregate) -> list[T]:
    return [expr.type for _, expr in step.groups]
