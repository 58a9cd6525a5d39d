"""Many runs of one STATS query in one Spark job: each row tagged with the runs that keep it, grouped by (run, keys).

A rule's runs over --from/--to differ only in constants: the run filter's window bounds and
what `now()` is. Where every such difference is a comparison of a row's datetime with a
constant that moves by the same step from one run to the next (`t >= start`, `t <= end`,
`@timestamp > now() - 1 hour`), the runs a row passes form an interval of run numbers, found by
integer arithmetic on the row's time. The rows are read once, every other step up to the STATS
runs once per row, each row is exploded into its runs, and the STATS groups by (run, keys): one
Spark job for every run. The steps after the STATS run per run on the driver, with that run's
`now()`. Only what translates to Spark SQL exactly (translate.py) takes this way, so nothing in
it can warn; any other query returns None and the caller runs each plan on its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from reconwatch.backends.spark import frames
from reconwatch.backends.spark import translate as tr
from reconwatch.backends.spark.execute import (
    SparkExecutionError,
    _finish,
    _one_line,
    pruned_days,
    source_reader,
)
from reconwatch.errors import ReconwatchError
from reconwatch.evaluate.expressions import EvalContext, Warnings, compile_expr
from reconwatch.evaluate.pipeline import execute as interpret
from reconwatch.evaluate.pipeline import prune_evals
from reconwatch.plan import limits
from reconwatch.plan import nodes as p
from reconwatch.plan.catalog import Result
from reconwatch.plan.scan import ScanSource
from reconwatch.types import DataType as T

# Frame columns: the first and last run number a row can still be in, and the run it is in.
LO, HI, RUN = "__lo", "__hi", "__run"
_ROW_LOCAL = (p.Filter, p.Eval, p.Project, p.MvExpand)
_MIRROR = {"gt": "lt", "gte": "lte", "lt": "gt", "lte": "gte"}


@dataclass(frozen=True, slots=True)
class Moving:
    """A WHERE term `value <op> c(k)` whose constant c moves by `stride` microseconds a run:
    c(k) = first + k * stride."""

    value: p.Expr
    op: str
    first: int
    stride: int


@dataclass(frozen=True, slots=True)
class Shape:
    """What the runs share: run 0's steps, the STATS's position, the moving terms by step."""

    steps: tuple[p.Step, ...]
    stats: int
    moving: dict[int, dict[int, Moving]]


def execute_runs(
    plans: Sequence[p.Plan], source: ScanSource | None, nows: Sequence[datetime]
) -> list[Result] | None:
    """Each plan's result at its `now`, from one grouped pass over the source; None when the
    plans cannot be run that way (the caller then runs each alone: the same results)."""
    if len(plans) < 2 or source is None or limits.current().seconds is not None:
        return None  # a time budget is each run's own: the runs keep their own jobs
    shape = plan_shape(plans, nows)
    if shape is None:
        return None
    plan = plans[0]
    # Refusals and compile-time errors by name before any job, as execute does.
    interpret(p.Plan(plan.source, plan.steps, plan.query), [], nows[0])
    try:
        records = _grouped(plan, shape, source, _days(plans, nows), nows)
    except tr.Untranslatable as exc:
        frames.LOG.debug("spark: the runs are not grouped: %s", exc)
        return None
    except ReconwatchError:
        raise
    except Exception as exc:
        raise SparkExecutionError(_one_line(exc)) from exc
    finally:
        assert isinstance(plan.source, p.Source)
        source.counted_later(source.selected_inputs(plan.source.indices))
    step = shape.steps[shape.stats]
    assert isinstance(step, p.Aggregate)
    per_run: list[list[Any]] = [[] for _ in plans]
    for record in records:
        per_run[record[RUN]].append(record)
    deadline = limits.current().deadline()
    out = []
    for k, (run_plan, now) in enumerate(zip(plans, nows, strict=True)):
        try:
            rows = frames.group_rows(step, per_run[k])
        except tr.Overflow:
            return None  # an integer SUM out of range: each run alone says where (it warns)
        rest = list(prune_evals(run_plan))[shape.stats + 1 :]
        out.append(_finish(run_plan, rest, rows, [], now, deadline))
    frames.LOG.debug("spark: %d runs in one grouped pass", len(plans))
    return out


def plan_shape(plans: Sequence[p.Plan], nows: Sequence[datetime]) -> Shape | None:
    """The runs' common shape, or None: row-local steps then a STATS, the same in every run but
    for WHERE terms comparing a datetime with a constant that moves evenly from run to run."""
    if not isinstance(plans[0].source, p.Source):
        return None
    all_steps = [tuple(prune_evals(plan)) for plan in plans]
    steps = all_steps[0]
    if any(
        plan.source != plans[0].source or len(s) != len(steps)
        for plan, s in zip(plans, all_steps, strict=True)
    ):
        return None
    stats = next((i for i, s in enumerate(steps) if not isinstance(s, _ROW_LOCAL)), len(steps))
    if stats == len(steps) or not isinstance(steps[stats], p.Aggregate):
        return None
    if any(s[stats:] != steps[stats:] for s in all_steps) or _uses_now(steps[stats]):
        return None  # the steps after the STATS run per run on the driver, with its now()
    moving: dict[int, dict[int, Moving]] = {}
    for i in range(stats):
        versions = [s[i] for s in all_steps]
        if all(v == steps[i] for v in versions) and not _uses_now(steps[i]):
            continue
        terms = _moving_terms(versions, nows)
        if terms is None:
            return None
        moving[i] = terms
    return Shape(steps, stats, moving)


def _moving_terms(versions: Sequence[p.Step], nows: Sequence[datetime]) -> dict[int, Moving] | None:
    """A WHERE's AND terms that differ between runs (or read now()), each as Moving."""
    if not all(isinstance(v, p.Filter) for v in versions):
        return None
    per_run = [p.flatten("and", v.condition) for v in versions if isinstance(v, p.Filter)]
    if any(len(terms) != len(per_run[0]) for terms in per_run):
        return None
    out: dict[int, Moving] = {}
    for j, term in enumerate(per_run[0]):
        same = [terms[j] for terms in per_run]
        if all(t == term for t in same) and not _uses_now(term):
            continue
        found = _moving(same, nows)
        if found is None:
            return None
        out[j] = found
    return out


def _moving(terms: Sequence[p.Expr], nows: Sequence[datetime]) -> Moving | None:
    """`value <op> constant` in every run (either way round), the value the same in all, each
    run's constant a datetime, moving by one positive stride."""
    first = terms[0]
    if not isinstance(first, p.Call) or first.fn not in _MIRROR or len(first.args) != 2:
        return None
    side = 0 if p.refs(first.args[0]) else 1
    value = first.args[side]
    op = first.fn if side == 0 else _MIRROR[first.fn]
    if value.type is not T.DATETIME or _uses_now(value) or p.refs(first.args[1 - side]):
        return None
    constants: list[int] = []
    for term, now in zip(terms, nows, strict=True):
        if not isinstance(term, p.Call) or term.fn != first.fn or term.args[side] != value:
            return None
        const = term.args[1 - side]
        if p.refs(const):
            return None
        warnings = Warnings()
        got = compile_expr(const, EvalContext(now=now, warnings=warnings))({})
        if not isinstance(got, datetime) or warnings.as_list():
            return None
        constants.append(tr.micros(got))
    stride = constants[1] - constants[0]
    if stride <= 0 or any(c != constants[0] + k * stride for k, c in enumerate(constants)):
        return None
    return Moving(value, op, constants[0], stride)


def _uses_now(node: object) -> bool:
    """Whether a step or expression reads now() anywhere."""
    if isinstance(node, p.Call):
        return node.fn == "now" or any(_uses_now(a) for a in node.args)
    if isinstance(node, p.Filter):
        return _uses_now(node.condition)
    if isinstance(node, p.Eval):
        return any(_uses_now(e) for _, e in node.assignments)
    if isinstance(node, p.Aggregate):
        exprs = [e for _, e in node.groups]
        exprs += [a for _, agg in node.aggregates for a in (*agg.args, agg.filter) if a]
        return any(_uses_now(e) for e in exprs)
    return False


def _days(plans: Sequence[p.Plan], nows: Sequence[datetime]) -> Any:
    """The dt= days any run reads (pruned_days of each, joined), None for every day."""
    found = [pruned_days(plan, now) for plan, now in zip(plans, nows, strict=True)]
    if any(d is None for d in found):
        return None
    lows = [d[0] for d in found if d is not None]
    highs = [d[1] for d in found if d is not None]
    low = None if any(x is None for x in lows) else min(x for x in lows if x is not None)
    high = None if any(x is None for x in highs) else max(x for x in highs if x is not None)
    return (low, high)


def _grouped(
    plan: p.Plan, shape: Shape, source: ScanSource, days: Any, nows: Sequence[datetime]
) -> list[Any]:
    """The STATS's groups of every run (records with RUN); Untranslatable when a step does not
    translate (with a list column holding several values, where that is so)."""
    steps = shape.steps[: shape.stats + 1]
    cols = tr.frame_columns(plan, shape.steps)
    odd = [c for c in cols if c.type not in tr.FRAME_TYPES]
    if odd:
        raise tr.Untranslatable(f"source column [{odd[0].name}] of type [{odd[0].type.value}]")
    # Decided without Spark first: nothing is read for a query that does not translate.
    _translate(tr._Anything(), tr._Anything(), cols, steps, shape, nows, single=True)
    df, single = frames.source_frame(
        plan, cols, source, days, lambda: source_reader(plan, source, days)
    )
    from pyspark.sql import functions as F

    lists = [f"c{i}" for i, c in enumerate(cols) if c.multivalued]
    if single is None:
        single = not lists or frames.lists_single(df, lists, F)
    frame = _translate(F, df, cols, steps, shape, nows, single)
    return list(frame.df.collect())


def _translate(
    F: Any,
    df: Any,
    cols: Sequence[p.Column],
    steps: Sequence[p.Step],
    shape: Shape,
    nows: Sequence[datetime],
    single: bool,
) -> tr.Frame:
    """The steps on the frame, the moving terms narrowing each row's runs, the STATS by run."""
    real = not isinstance(F, tr._Anything)
    frame = tr.start(df, cols, single, F if real else None)
    frame = replace(
        frame,
        df=frame.df.withColumn(LO, F.lit(0).cast("long")).withColumn(
            HI, F.lit(len(nows) - 1).cast("long")
        ),
    )
    # Only steps that do not read now() are translated as they are: any run's now will do.
    translator = tr.Translator(F, nows[0])
    for i, step in enumerate(steps):
        if isinstance(step, p.Aggregate):
            exploded = frame.df.where(F.col(LO) <= F.col(HI)).select(
                "*", F.explode(F.sequence(F.col(LO), F.col(HI))).alias(RUN)
            )
            frame = replace(frame, df=exploded, by=(RUN,))
        moving = shape.moving.get(i)
        if moving is None:
            frame = translator.step(step, frame)
            continue
        assert isinstance(step, p.Filter)
        terms = p.flatten("and", step.condition)
        kept = [t for j, t in enumerate(terms) if j not in moving]
        condition = p.balanced("and", kept) if kept else p.Const(True, T.BOOLEAN)
        frame = translator.step(replace(step, condition=condition), frame)
        for term in moving.values():
            frame = _narrow(translator, frame, term)
    return frame


def _narrow(translator: tr.Translator, frame: tr.Frame, term: Moving) -> tr.Frame:
    """The runs a row passes `value <op> first + k * stride` in, as bounds on k (exact integer
    arithmetic on epoch microseconds); a null value passes no run."""
    F = translator.F
    value = translator.single(term.value, frame.scope, frozenset({T.DATETIME}))
    d = frame.fresh()
    df = frame.df.withColumn(d, value - F.lit(term.first)).where(F.col(d).isNotNull())
    s = term.stride

    def floor_div(num: str) -> Any:  # floor(num / s) for s > 0, exactly, in longs
        return F.expr(f"(({num}) - pmod(({num}), {s}L)) div {s}L")

    if term.op == "gte":  # d >= k*s
        df = df.withColumn(HI, F.least(F.col(HI), floor_div(f"`{d}`")))
    elif term.op == "gt":  # d > k*s, d - 1 >= k*s
        df = df.withColumn(HI, F.least(F.col(HI), floor_div(f"`{d}` - 1")))
    elif term.op == "lte":  # k*s >= d: k >= ceil(d / s)
        df = df.withColumn(LO, F.greatest(F.col(LO), floor_div(f"`{d}` + {s - 1}")))
    else:  # lt: k*s > d: k >= floor(d / s) + 1
        df = df.withColumn(LO, F.greatest(F.col(LO), floor_div(f"`{d}`") + F.lit(1)))
    return replace(frame, df=df)
