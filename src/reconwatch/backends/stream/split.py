"""A plan cut into what streams: row steps, the time filter that becomes the window, STATS, and after."""

from __future__ import annotations

from dataclasses import dataclass

from reconwatch.errors import Span, UnsupportedFeatureError
from reconwatch.plan import nodes as p

STREAMABLE_AGGREGATES = frozenset({"count", "count_distinct", "values", "min", "max", "sum", "avg"})
_ROW_STEPS = (p.Filter, p.Eval, p.Project, p.MvExpand)
_POST_STEPS = (p.Filter, p.Eval, p.Project, p.Sort, p.Limit)
_LOWER = {"gt": False, "gte": True}  # ts > now() - L excludes the boundary, >= keeps it
_FLIPPED = {"gt": "lt", "gte": "lte", "lt": "gt", "lte": "gte"}
DAY_MS = 86_400_000


@dataclass(frozen=True, slots=True)
class WindowSpec:
    """A sliding event-time window (T - length, T] (or [T - length, T] when `closed`) ending at T.

    `time_fields` are read in order, the first present one giving the event time (Kibana's
    timestamp_override with its @timestamp fallback); `origin` says where the window came from.
    """

    length_ms: int
    closed: bool
    time_fields: tuple[str, ...]
    origin: str

    def start_ms(self, end_ms: int) -> int:
        """The oldest event time still inside the window ending at `end_ms`."""
        return end_ms - self.length_ms if self.closed else end_ms - self.length_ms + 1


@dataclass(frozen=True, slots=True)
class StreamPlan:
    """`pre`: row-wise steps run per event (the time filter removed); `aggregate`: the STATS, if
    any; `post`: steps over the STATS output (threshold WHERE, EVAL, KEEP, SORT, LIMIT)."""

    plan: p.Plan
    source: p.Source
    pre: tuple[p.Step, ...]
    aggregate: p.Aggregate | None
    post: tuple[p.Step, ...]
    window: WindowSpec | None

    @property
    def pre_columns(self) -> tuple[p.Column, ...]:
        return self.pre[-1].columns if self.pre else self.source.columns


def split_plan(plan: p.Plan) -> StreamPlan:
    """Cut `plan` for streaming, or refuse the first step that cannot stream, by name."""
    source = plan.source
    if not isinstance(source, p.Source):
        raise _refuse("ROW as a streaming source", source.span, plan)
    pre: list[p.Step] = []
    aggregate: p.Aggregate | None = None
    post: list[p.Step] = []
    window: WindowSpec | None = None
    for step in plan.steps:
        if aggregate is not None:
            if not isinstance(step, _POST_STEPS):
                raise _refuse(f"{_name(step)} after STATS in streaming", step.span, plan)
            post.append(step)
        elif isinstance(step, p.Aggregate):
            _check_aggregate(step, plan)
            aggregate = step
        elif isinstance(step, p.Filter):
            found, rest = _time_bound(step.condition, plan)
            if found is not None:
                if window is not None:
                    raise _refuse("two time filters in streaming", step.span, plan)
                _check_time_column(found.time_fields[0], source, pre, step, plan)
                window = found
            if rest is not None:
                pre.append(p.Filter(rest, step.columns, step.span))
        elif isinstance(step, _ROW_STEPS):
            pre.append(step)
        elif isinstance(step, p.Limit) and _is_last(step, plan):
            post.append(step)  # the implicit LIMIT of a query without STATS
        else:
            raise _refuse(f"{_name(step)} before STATS in streaming", step.span, plan)
    for step in (*pre, *post):
        _check_no_now(step, plan)
    return StreamPlan(plan, source, tuple(pre), aggregate, tuple(post), window)


def _is_last(step: p.Step, plan: p.Plan) -> bool:
    return plan.steps[-1] is step


def _name(step: p.Step) -> str:
    names = {
        p.Extract: "DISSECT/GROK",
        p.MvExpand: "MV_EXPAND",
        p.Aggregate: "a second STATS",
        # Its result for an early event depends on events not yet seen.
        p.InlineAggregate: "INLINE STATS",
    }
    return names.get(type(step), type(step).__name__.upper())


def _refuse(feature: str, span: Span, plan: p.Plan) -> UnsupportedFeatureError:
    where = span if span != p.NO_SPAN else None
    return UnsupportedFeatureError(feature, where, plan.query or None)


def _check_aggregate(step: p.Aggregate, plan: p.Plan) -> None:
    for _, agg in step.aggregates:
        if agg.fn not in STREAMABLE_AGGREGATES:
            raise _refuse(f"aggregate {agg.fn.upper()} in streaming", agg.span, plan)
        for expr in (*agg.args, *((agg.filter,) if agg.filter is not None else ())):
            _check_expr_no_now(expr, plan)
    for _, expr in step.groups:
        _check_expr_no_now(expr, plan)


# ---------------------------------------------------------------------------------------------
# The time filter: `ts > now() - L` (or >=, or mirrored) in a WHERE before STATS.


def _conjuncts(expr: p.Expr) -> list[p.Expr]:
    return p.flatten("and", expr)


def _time_bound(cond: p.Expr, plan: p.Plan) -> tuple[WindowSpec | None, p.Expr | None]:
    """The window a condition's time conjuncts define, and the condition left without them."""
    window: WindowSpec | None = None
    rest: list[p.Expr] = []
    for part in _conjuncts(cond):
        lower = _lower_bound(part)
        if lower is not None:
            if window is not None:
                raise _refuse("two time filters in streaming", part.span, plan)
            window = lower
        elif not _is_upper_now(part):
            rest.append(part)
    if window is None:
        return None, cond
    return window, (p.balanced("and", rest) if rest else None)


def _oriented(part: p.Expr) -> tuple[str, p.Expr, p.Expr] | None:
    """(operator, time side, bound side) for a comparison with a column on one side."""
    if not isinstance(part, p.Call) or part.fn not in _FLIPPED or len(part.args) != 2:
        return None
    left, right = part.args
    if isinstance(left, p.Ref):
        return part.fn, left, right
    if isinstance(right, p.Ref):
        return _FLIPPED[part.fn], right, left
    return None


def _lower_bound(part: p.Expr) -> WindowSpec | None:
    oriented = _oriented(part)
    if oriented is None or oriented[0] not in _LOWER:
        return None
    op, ref, bound = oriented
    if not (isinstance(bound, p.Call) and bound.fn == "sub" and len(bound.args) == 2):
        return None
    now, amount = bound.args
    if not (isinstance(now, p.Call) and now.fn == "now") or not isinstance(amount, p.Const):
        return None
    span = amount.value
    if not isinstance(span, p.TemporalAmount) or span.months:
        return None  # a calendar month has no fixed length; refused below as now() elsewhere
    length = span.days * DAY_MS + span.millis
    if length <= 0:
        return None
    assert isinstance(ref, p.Ref)
    return WindowSpec(length, _LOWER[op], (ref.name,), "query")


def _is_upper_now(part: p.Expr) -> bool:
    """`ts <= now()`: every event already seen is at or before the window end."""
    oriented = _oriented(part)
    if oriented is None:
        return False
    op, _ref, bound = oriented
    return op == "lte" and isinstance(bound, p.Call) and bound.fn == "now"


def _check_time_column(
    name: str, source: p.Source, pre: list[p.Step], step: p.Filter, plan: p.Plan
) -> None:
    """The window runs on event time: the filtered column must still be the source field."""
    if name not in {c.name for c in source.fields}:
        raise _refuse(f"time filter on computed column [{name}] in streaming", step.span, plan)
    for earlier in pre:
        changed = (
            (isinstance(earlier, p.Eval) and any(n == name for n, _ in earlier.assignments))
            or (isinstance(earlier, p.Project) and (name, name) not in earlier.mapping)
            or (isinstance(earlier, p.MvExpand) and earlier.column == name)
        )
        if changed:
            raise _refuse(f"time filter on computed column [{name}] in streaming", step.span, plan)


def _check_no_now(step: p.Step, plan: p.Plan) -> None:
    exprs: list[p.Expr] = []
    if isinstance(step, p.Filter):
        exprs.append(step.condition)
    elif isinstance(step, p.Eval):
        exprs.extend(e for _, e in step.assignments)
    elif isinstance(step, p.Sort):
        exprs.extend(k.expr for k in step.keys)
    for expr in exprs:
        _check_expr_no_now(expr, plan)


def _check_expr_no_now(expr: p.Expr, plan: p.Plan) -> None:
    """now() anywhere but the window's time filter would change with the clock, not the data."""
    if isinstance(expr, p.Call):
        if expr.fn == "now":
            raise _refuse("now() outside the window's time filter in streaming", expr.span, plan)
        for arg in expr.args:
            _check_expr_no_now(arg, plan)
