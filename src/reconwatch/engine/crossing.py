"""When an alert's group crossed its rule's threshold: one pass over the group's events by time."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from reconwatch.engine.rewrite import is_stats
from reconwatch.esql import ast
from reconwatch.plan.values import as_list

# Commands after the threshold's WHERE that change no group's membership in the result.
_NEUTRAL = (ast.Eval, ast.Sort, ast.Keep, ast.Drop, ast.Rename, ast.Limit)
_COMPARE: dict[str, Callable[[float, float], bool]] = {
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}
METHOD = "the counts of the group's events in time order, against the rule's WHERE"
_ARITH: dict[str, Callable[[float, float], float]] = {
    "+": lambda a, b: a + b,
    "-": lambda a, b: a - b,
    "*": lambda a, b: a * b,
}


class Unsupported(Exception):
    """The rule's shape does not allow a one-pass crossing point (the reason)."""


@dataclass(frozen=True, slots=True)
class Counter:
    """One COUNT / COUNT_DISTINCT aggregate of the rule's STATS: its function and column
    (None for COUNT(*) and COUNT())."""

    fn: str
    column: str | None


@dataclass(frozen=True, slots=True)
class Threshold:
    """The rule's counting aggregates by output name and the condition over them."""

    counters: Mapping[str, Counter]
    condition: ast.Expr
    # EVAL'd names over the counts, by name (evaluated as the rule evaluates them).
    derived: Mapping[str, ast.Expr]

    @property
    def columns(self) -> list[str]:
        """The pre-STATS columns the running counts read."""
        return list(dict.fromkeys(c.column for c in self.counters.values() if c.column))


def threshold(query: ast.Query) -> Threshold:
    """The threshold of a rule that aggregates once (STATS ... BY) and filters the groups with
    WHERE over COUNT / COUNT_DISTINCT results and numbers; Unsupported saying why otherwise."""
    commands = list(query.commands)
    at = [i for i, c in enumerate(commands) if is_stats(c)]
    if not at:
        raise Unsupported("the rule does not aggregate")
    if len(at) > 1:
        raise Unsupported("the rule aggregates more than once")
    stats = commands[at[0]]
    assert isinstance(stats, ast.Stats)
    counters: dict[str, Counter] = {}
    for agg in stats.aggs:
        counter = _counter(agg)
        if counter is not None and agg.name is not None:
            counters[agg.name] = counter
    derived: dict[str, ast.Expr] = {}
    conditions: list[ast.Expr] = []
    later = commands[at[0] + 1 :]
    # EVALs and WHEREs after the STATS: counts combined (`distinct - answered`) and tested.
    while later and isinstance(later[0], ast.Eval | ast.Where):
        command = later.pop(0)
        if isinstance(command, ast.Where):
            _check(command.condition, counters, derived)
            conditions.append(command.condition)
            continue
        assert isinstance(command, ast.Eval)
        for assign in command.fields:
            if assign.name is None:
                continue
            try:
                _check(assign.expr, counters, derived)
            except Unsupported:
                counters.pop(assign.name, None)  # shadowed by something that is not a count
                derived.pop(assign.name, None)
                continue
            derived[assign.name] = assign.expr
    if not conditions:
        raise Unsupported("no WHERE follows the rule's STATS")
    if any(not isinstance(c, _NEUTRAL) for c in later):
        raise Unsupported("the rule filters its groups again after computing more")
    condition = conditions[0] if len(conditions) == 1 else ast.And(tuple(conditions))
    return Threshold(counters, condition, derived)


def _counter(agg: ast.AggField) -> Counter | None:
    expr = agg.expr
    if agg.where is not None or not isinstance(expr, ast.Call):
        return None
    name = expr.name.lower()
    if name not in ("count", "count_distinct"):
        return None
    if expr.star or not expr.args:
        return Counter("count", None) if name == "count" else None
    arg = expr.args[0]
    if isinstance(arg, ast.Field):
        return Counter(name, arg.name)
    return None


def _check(
    expr: ast.Expr, counters: Mapping[str, Counter], derived: Mapping[str, ast.Expr]
) -> None:
    """Unsupported unless the expression reads only counters (or EVAL'd sums of them) and numbers."""
    if isinstance(expr, ast.Field):
        if expr.name not in counters and expr.name not in derived:
            raise Unsupported(f"the threshold reads [{expr.name}], not a COUNT or COUNT_DISTINCT")
    elif isinstance(expr, ast.Literal):
        if not isinstance(expr.value, int | float) or isinstance(expr.value, bool):
            raise Unsupported("the threshold compares with something other than a number")
    elif isinstance(expr, ast.Binary):
        if expr.op not in _COMPARE and expr.op not in _ARITH:
            raise Unsupported(f"the threshold uses [{expr.op}]")
        _check(expr.left, counters, derived)
        _check(expr.right, counters, derived)
    elif isinstance(expr, ast.And | ast.Or):
        for operand in expr.operands:
            _check(operand, counters, derived)
    elif isinstance(expr, ast.Not):
        _check(expr.operand, counters, derived)
    else:
        raise Unsupported("the threshold is not a comparison of counts")


def _value(
    expr: ast.Expr, counts: Mapping[str, int], derived: Mapping[str, ast.Expr]
) -> float | bool:
    if isinstance(expr, ast.Field):
        if expr.name in derived:
            return _value(derived[expr.name], counts, derived)
        return counts[expr.name]
    if isinstance(expr, ast.Literal):
        assert isinstance(expr.value, int | float)
        return expr.value
    if isinstance(expr, ast.Binary):
        left, right = _value(expr.left, counts, derived), _value(expr.right, counts, derived)
        if expr.op in _COMPARE:
            return _COMPARE[expr.op](left, right)
        return _ARITH[expr.op](left, right)
    if isinstance(expr, ast.And):
        return all(_value(o, counts, derived) for o in expr.operands)
    if isinstance(expr, ast.Or):
        return any(_value(o, counts, derived) for o in expr.operands)
    assert isinstance(expr, ast.Not)
    return not _value(expr.operand, counts, derived)


def first_crossing(found: Threshold, rows: Sequence[Mapping[str, object]]) -> datetime | None:
    """The @timestamp of the first row (by time) after which the counts over the rows so far
    meet the condition; None when they never do. Rows are what enters the rule's STATS."""
    timed = [(t, r) for r in rows if isinstance(t := r.get("@timestamp"), datetime)]
    if len(timed) < len(rows):
        raise Unsupported("some of the group's events have no @timestamp")
    timed.sort(key=lambda tr: tr[0])
    counts = dict.fromkeys(found.counters, 0)
    seen: dict[str, set[object]] = {name: set() for name in found.counters}
    for at, row in timed:
        for name, counter in found.counters.items():
            if counter.column is None:
                counts[name] += 1
                continue
            values = [v for v in as_list(row.get(counter.column)) if v is not None]
            if counter.fn == "count":
                counts[name] += len(values)
            else:
                seen[name].update(_hashable(v) for v in values)
                counts[name] = len(seen[name])
        if _value(found.condition, counts, found.derived):
            return at
    return None


def _hashable(value: object) -> object:
    return tuple(value) if isinstance(value, list) else value
