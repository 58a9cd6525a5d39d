"""The plan run row by row over dict rows: each step is a generator over the previous one."""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import datetime
from typing import Any, TypeVar

from reconwatch.esql.extract import extract_texts, output_groups
from reconwatch.evaluate import scalars as _scalars  # noqa: F401 - registers functions
from reconwatch.evaluate.aggregates import AggSpec, AggState
from reconwatch.evaluate.expressions import Compiled, EvalContext, compile_expr
from reconwatch.plan import limits
from reconwatch.plan import nodes as p
from reconwatch.plan import values as v
from reconwatch.plan.catalog import Result
from reconwatch.plan.documents import document_json
from reconwatch.types import DataType as T

Rows = Iterator[dict[str, object]]
_G = TypeVar("_G")


def execute(plan: p.Plan, rows: Iterable[Mapping[str, object]], now: datetime) -> Result:
    """Run `plan` over flattened input rows (dotted keys; a list is a multivalue) at query time `now`."""
    ctx = EvalContext(now=now, source=plan.query)
    deadline = limits.current().deadline()
    stream: Rows = budgeted(_source(plan.source, rows, ctx), deadline)
    for step in prune_evals(plan):
        stream = budgeted(_STEPS[type(step)](step, stream, ctx), deadline)
    names = [c.name for c in plan.columns]
    out = [tuple(row.get(n) for n in names) for row in stream]
    return Result(plan.columns, out, [*plan.warnings, *ctx.warnings.as_list()])


# Rows between two looks at the clock: a look costs about as much as evaluating a simple row.
CHECK_EVERY = 64


def budgeted(rows: Rows, deadline: limits.Deadline) -> Rows:
    """`rows` as they come, raising QueryLimitError once `deadline` has passed. Every step's
    output is watched, so a step that makes rows (MV_EXPAND) or swallows them (SORT, STATS) is
    stopped by its own output or by its input's. Without a budget, `rows` itself: no generator
    layer for each step and row."""
    if deadline.at is None:
        return rows
    return _watched(rows, deadline)


def _watched(rows: Rows, deadline: limits.Deadline) -> Rows:
    deadline.check()
    for count, row in enumerate(rows, 1):
        if count % CHECK_EVERY == 0:
            deadline.check()
        yield row


def source_rows(
    source: p.Source | p.RowSource, rows: Iterable[Mapping[str, object]], ctx: EvalContext
) -> Rows:
    """The source's rows as the steps see them (fields typed, `_source` built when asked)."""
    return _source(source, rows, ctx)


def run_step(step: p.Step, rows: Rows, ctx: EvalContext) -> Rows:
    """One step over a row stream (a distributed executor runs the steps piecewise)."""
    return _STEPS[type(step)](step, rows, ctx)


def hash_order(groups: dict[tuple[object, ...], _G], key_types: list[T]) -> Iterable[_G]:
    """`groups` (first-seen order) in Elasticsearch's output order (see _hash_order)."""
    return _hash_order(groups, [("", _no_expr, t) for t in key_types])


def _no_expr(row: Mapping[str, object]) -> object:
    return None


def prune_evals(plan: p.Plan) -> list[p.Step]:
    """The steps with EVAL assignments nothing later reads removed, as Elasticsearch's optimizer
    prunes them: an unread expression is never evaluated, so it cannot warn."""
    needed = {c.name for c in plan.columns}
    out: list[p.Step] = []
    for step in reversed(plan.steps):
        if isinstance(step, p.Eval):
            kept: list[tuple[str, p.Expr]] = []
            for name, expr in reversed(step.assignments):
                if name in needed:
                    needed.discard(name)
                    needed |= p.refs(expr)
                    kept.append((name, expr))
            step = p.Eval(tuple(reversed(kept)), step.columns, step.span)
        elif isinstance(step, p.Project):
            needed = {src for name, src in step.mapping if name in needed}
        elif isinstance(step, p.Aggregate):
            needed = set().union(
                *(p.refs(e) for _, e in step.groups),
                *(p.refs(a) for _, agg in step.aggregates for a in (*agg.args, agg.filter) if a),
            )
        elif isinstance(step, p.InlineAggregate):
            made = {n for n, _ in (*step.outputs, *step.groups)}
            needed = (needed - made).union(
                *(p.refs(e) for _, e in step.groups),
                *(p.refs(a) for _, agg in step.aggregates for a in (*agg.args, agg.filter) if a),
            )
        else:
            needed |= set().union(*(p.refs(e) for e in _step_exprs(step)))
        out.append(step)
    return out[::-1]


def _step_exprs(step: p.Step) -> list[p.Expr]:
    if isinstance(step, p.Filter):
        return [step.condition]
    if isinstance(step, p.Sort):
        return [k.expr for k in step.keys]
    if isinstance(step, p.Extract):
        return [step.value]
    if isinstance(step, p.MvExpand):
        return [p.Ref(step.column, T.KEYWORD)]
    return []


def _source(
    source: p.Source | p.RowSource, rows: Iterable[Mapping[str, object]], ctx: EvalContext
) -> Rows:
    if isinstance(source, p.RowSource):
        row: dict[str, object] = {}
        for name, expr in source.assignments:
            row[name] = compile_expr(expr, ctx)(row)
        yield row
        return
    wanted = [*source.fields, *(c for c in source.columns if c.name in source.metadata)]
    with_source = "_source" in source.metadata
    for raw in rows:
        row = {c.name: v.coerce_cell(raw.get(c.name), c.type) for c in wanted}
        if with_source and raw.get("_source") is None:
            row["_source"] = document_json(raw)
        yield row


def _filter(step: p.Filter, rows: Rows, ctx: EvalContext) -> Rows:
    cond = compile_expr(step.condition, ctx)
    return (row for row in rows if cond(row) is True)


def _eval(step: p.Eval, rows: Rows, ctx: EvalContext) -> Rows:
    compiled = [(name, compile_expr(expr, ctx)) for name, expr in step.assignments]
    for row in rows:
        out = dict(row)
        for name, fn in compiled:
            out[name] = fn(out)
        yield out


def _project(step: p.Project, rows: Rows, ctx: EvalContext) -> Rows:
    mapping = step.mapping
    return ({out: row.get(src) for out, src in mapping} for row in rows)


def _limit(step: p.Limit, rows: Rows, ctx: EvalContext) -> Rows:
    return itertools.islice(rows, step.count)


def _mv_expand(step: p.MvExpand, rows: Rows, ctx: EvalContext) -> Rows:
    name = step.column
    for row in rows:
        items = v.as_list(row.get(name))
        if len(items) <= 1:
            yield {**row, name: items[0] if items else None}
            continue
        for item in items:
            yield {**row, name: item}


def _sort(step: p.Sort, rows: Rows, ctx: EvalContext) -> Rows:
    data = list(rows)
    # Stable sorts from the least to the most significant key give the combined order.
    for key in reversed(step.keys):
        fn = compile_expr(key.expr, ctx)
        type_ = key.expr.type
        pick = max if key.descending else min
        keyed: list[tuple[Any, dict[str, object]]] = []
        nulls: list[dict[str, object]] = []
        for row in data:
            items = v.as_list(fn(row))
            if not items:
                nulls.append(row)
            else:
                keyed.append((pick(v.order_key(i, type_) for i in items), row))
        keyed.sort(key=lambda kr: kr[0], reverse=key.descending)
        ordered = [r for _, r in keyed]
        data = nulls + ordered if key.nulls_first else ordered + nulls
    return iter(data)


def _aggregate(step: p.Aggregate, rows: Rows, ctx: EvalContext) -> Rows:
    specs = [(name, AggSpec(agg, ctx)) for name, agg in step.aggregates]
    keys = [(name, compile_expr(expr, ctx), expr.type) for name, expr in step.groups]
    groups: dict[tuple[object, ...], tuple[tuple[object, ...], list[AggState]]] = {}
    for row in rows:
        # A multivalued key puts the whole row into every combination of its values.
        per_key = [v.as_list(fn(row)) or [None] for _, fn, _ in keys]
        seen: set[tuple[object, ...]] = set()
        for combo in itertools.product(*per_key):
            ident = tuple(v.order_key(x, t) for x, (_, _, t) in zip(combo, keys, strict=True))
            if ident in seen:
                continue
            seen.add(ident)
            entry = groups.get(ident)
            if entry is None:
                entry = (combo, [spec.new() for _, spec in specs])
                groups[ident] = entry
            for state in entry[1]:
                state.add(row)
    if not keys and not groups:
        groups[()] = ((), [spec.new() for _, spec in specs])
    for combo, states in _hash_order(groups, keys):
        out: dict[str, object] = {}
        for (name, _), state in zip(specs, states, strict=True):
            out[name] = state.result()
        for (name, _, _), value in zip(keys, combo, strict=True):
            out[name] = value
        yield out


def _inline_aggregate(step: p.InlineAggregate, rows: Rows, ctx: EvalContext) -> Rows:
    """STATS's groups, each row then given the outputs of the groups it belongs to."""
    data = list(rows)
    specs = [AggSpec(agg, ctx) for _, agg in step.aggregates]
    keys = [(name, compile_expr(expr, ctx), expr.type) for name, expr in step.groups]
    groups: dict[tuple[object, ...], tuple[tuple[object, ...], list[AggState]]] = {}
    memberships: list[list[tuple[object, ...]]] = []
    for row in data:
        member: list[tuple[object, ...]] = []
        per_key = [v.as_list(fn(row)) or [None] for _, fn, _ in keys]
        for combo in itertools.product(*per_key):
            ident = tuple(v.order_key(x, t) for x, (_, _, t) in zip(combo, keys, strict=True))
            if ident in member:
                continue
            member.append(ident)
            entry = groups.get(ident)
            if entry is None:
                entry = (combo, [spec.new() for spec in specs])
                groups[ident] = entry
            for state in entry[1]:
                state.add(row)
        memberships.append(member)
    outputs = [compile_expr(expr, ctx) for _, expr in step.outputs]
    results = {
        ident: _group_outputs(step, outputs, combo, states)
        for ident, (combo, states) in groups.items()
    }
    kept = [c.name for c in step.columns[: len(step.columns) - len(step.outputs) - len(keys)]]
    for row, member in zip(data, memberships, strict=True):
        out = {name: row.get(name) for name in kept}
        for i, (name, _) in enumerate(step.outputs):
            found = [results[ident][i] for ident in member]
            out[name] = (
                found[0]
                if len(found) == 1
                else v.from_list(x for value in found for x in v.as_list(value))
            )
        for name, fn, _ in keys:
            out[name] = fn(row)
        yield out


def _group_outputs(
    step: p.InlineAggregate,
    outputs: list[Compiled],
    combo: tuple[object, ...],
    states: list[AggState],
) -> list[object]:
    """One group's outputs, evaluated over its aggregate results and key values by name."""
    env: dict[str, object] = {
        name: state.result() for (name, _), state in zip(step.aggregates, states, strict=True)
    }
    env.update((name, value) for (name, _), value in zip(step.groups, combo, strict=True))
    return [fn(env) for fn in outputs]


def _hash_order(
    groups: dict[tuple[object, ...], _G], keys: list[tuple[str, Compiled, T]]
) -> Iterable[_G]:
    """Groups in Elasticsearch's output order: first seen, except that a single key's block hash
    gives null ordinal 0 and booleans the fixed ordinals null, false, true."""
    if len(keys) != 1:
        return groups.values()
    if keys[0][2] is T.BOOLEAN:
        return [groups[k] for k in ((None,), (False,), (True,)) if k in groups]
    null = groups.get((None,))
    if null is None:
        return groups.values()
    return [null, *(g for k, g in groups.items() if k != (None,))]


def _extract(step: p.Extract, rows: Rows, ctx: EvalContext) -> Rows:
    value = compile_expr(step.value, ctx)
    regex = re.compile(step.regex, re.DOTALL)
    append = dict(step.append)
    groups = output_groups(regex, len(step.outputs))
    separators = [append.get(col.name) for col in step.outputs]
    for row in rows:
        out = dict(row)
        texts = [t for t in v.as_list(value(row)) if isinstance(t, str)]
        found = extract_texts(regex, groups, separators, texts)
        for i, col in enumerate(step.outputs):
            out[col.name] = _typed(found[i], col.type) if found is not None else None
        yield out


def _typed(texts: list[str], type_: T) -> object:
    """GROK's :int/:float/... outputs; texts that do not convert are dropped."""
    converted: list[object] = []
    for text in texts:
        try:
            converted.append(text if type_ is T.KEYWORD else v.convert(text, type_))
        except v.ConversionError:
            continue
    return v.from_list(converted)


_STEPS: dict[type[p.Step], Callable[[Any, Rows, EvalContext], Rows]] = {
    p.Filter: _filter,
    p.Eval: _eval,
    p.Project: _project,
    p.Limit: _limit,
    p.MvExpand: _mv_expand,
    p.Sort: _sort,
    p.Aggregate: _aggregate,
    p.InlineAggregate: _inline_aggregate,
    p.Extract: _extract,
}
