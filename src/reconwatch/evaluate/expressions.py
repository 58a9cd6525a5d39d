"""Plan expressions compiled once into Python closures, with Elasticsearch's null, MV and warning rules."""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from reconwatch.errors import Span
from reconwatch.esql.functions import CAST_TARGETS, CONVERSIONS, REGISTRY, FunctionDef
from reconwatch.esql.patterns import like_to_regex, rlike_to_regex
from reconwatch.plan import nodes as p
from reconwatch.plan import values as v
from reconwatch.types import DataType

Row = Mapping[str, object]
Compiled = Callable[[Row], object]

MV_FAILURE = "java.lang.IllegalArgumentException: single-value function encountered multi-value"
MAX_RECORDED = 20


class EvalFailure(Exception):
    """One value's evaluation failed: the result is null and a warning names the Java exception."""


class Warnings:
    """Elasticsearch response warnings: per failing expression a header then up to 20 reasons."""

    def __init__(self) -> None:
        self._entries: dict[tuple[int, int, str, str], list[str]] = {}

    def fail(self, span: Span, text: str, reason: str, result: str = "null") -> None:
        """`result`: what the failed value is taken as (null; false for a CASE condition)."""
        self.record((span.line, span.col, text, result), reason)

    def record(self, key: tuple[int, int, str, str], reason: str) -> None:
        """One failure at the site `key` (line, col, text, result)."""
        reasons = self._entries.setdefault(key, [])
        if reason not in reasons and len(reasons) < MAX_RECORDED:
            reasons.append(reason)

    def as_list(self) -> list[str]:
        out: list[str] = []
        for (line, col, text, result), reasons in self._entries.items():
            out.append(
                f"Line {line}:{col}: evaluation of [{text}] failed, treating result as {result}. "
                f"Only first {MAX_RECORDED} failures recorded."
            )
            out.extend(f"Line {line}:{col}: {reason}" for reason in reasons)
        return out


@dataclass
class EvalContext:
    """What evaluation needs beyond the row: the query time, the query text for warning
    messages, and where warnings go."""

    now: datetime | None = None
    source: str = ""
    warnings: Warnings = field(default_factory=Warnings)

    def fail(self, span: Span, reason: str, result: str = "null") -> None:
        text = span.text(self.source) if self.source and span.end > span.start else ""
        self.warnings.fail(span, text, reason, result)


# Filled by scalars.py: name -> implementation over evaluated single values (or whole MVs for
# MV-aware functions). Implementations raise EvalFailure for a null-with-warning result.
ScalarImpl = Callable[[list[object], p.Call, EvalContext], object]
SCALARS: dict[str, ScalarImpl] = {}


def scalar_impl(*names: str) -> Callable[[ScalarImpl], ScalarImpl]:
    def register(fn: ScalarImpl) -> ScalarImpl:
        for name in names:
            SCALARS[name] = fn
        return fn

    return register


def compile_expr(expr: p.Expr, ctx: EvalContext | None = None) -> Compiled:
    """A closure computing `expr` over a row (a mapping of column name to value)."""
    context = ctx if ctx is not None else EvalContext()
    if isinstance(expr, p.Const):
        value = _normalize(expr.value)
        return lambda _row: value
    if isinstance(expr, p.Ref):
        name = expr.name

        def ref(row: Row) -> object:
            value = row.get(name)  # _normalize, inline: a column is read at every row
            return v.from_list(value) if isinstance(value, list | tuple) else value

        return ref
    special = _SPECIAL.get(expr.fn)
    compiled = special(expr, context) if special is not None else _generic(expr, context)
    if _constant(expr):
        # Elasticsearch folds a constant expression while planning: it is evaluated (and warns)
        # once, whether or not any row reaches it.
        value = compiled({})
        return lambda _row: value
    return compiled


def _constant(expr: p.Expr) -> bool:
    if isinstance(expr, p.Const):
        return True
    return isinstance(expr, p.Call) and all(_constant(a) for a in expr.args)


def _normalize(value: object) -> object:
    if isinstance(value, list | tuple):
        return v.from_list(value)
    return value


def _generic(call: p.Call, ctx: EvalContext) -> Compiled:
    fdef: FunctionDef = REGISTRY[call.fn]
    impl = SCALARS[fdef.name]
    args = [compile_expr(a, ctx) for a in call.args]
    check_mv = not fdef.mv_aware
    propagate = fdef.null_propagating
    span = call.span
    grows = call.fn in v.GROWING_STRINGS

    if fdef.maps_values:
        return _map_values(call, impl, args, ctx)

    def apply(vals: list[object]) -> object:
        try:
            result = impl(vals, call, ctx)
            # Each argument is at most 1 MiB, so building this cost a few MiB at most.
            if grows and isinstance(result, str) and _too_long(result):
                raise EvalFailure(v.STRING_TOO_LONG)
            return result
        except EvalFailure as exc:
            ctx.fail(span, str(exc))
            return None
        except (ArithmeticError, ValueError) as exc:
            # A value Python cannot hold (a date past year 9999, a huge exponent): null and a
            # warning, as every other failed evaluation, never an exception out of the query.
            ctx.fail(span, _python_failure(exc))
            return None

    direct = _direct_comparison(call)
    if direct is not None and check_mv and propagate and len(args) == 2:
        return _compare2(args[0], args[1], direct, apply, span, ctx)
    if check_mv and propagate and len(args) in (1, 2, 3):
        # The common shapes without building generators for the null and MV tests (the
        # stream's general path evaluates every EVAL at every event).
        return _ARITY[len(args)](args, apply, span, ctx)

    def run(row: Row) -> object:
        vals = [a(row) for a in args]
        if check_mv and any(isinstance(x, list) for x in vals):
            ctx.fail(span, MV_FAILURE)
            return None
        if propagate and any(x is None for x in vals):
            return None
        return apply(vals)

    return run


_ORDERED_KEYS = (DataType.IP, DataType.VERSION)  # compared through v.order_key, not as is
_OPERATORS: dict[str, Callable[[Any, Any], object]] = {
    "eq": operator.eq,
    "neq": operator.ne,
    "lt": operator.lt,
    "lte": operator.le,
    "gt": operator.gt,
    "gte": operator.ge,
}


def _direct_comparison(call: p.Call) -> Callable[[Any, Any], object] | None:
    """The operator for a comparison whose operands compare as they are (scalars.compare_key
    is the identity for every type but IP and version)."""
    op = _OPERATORS.get(call.fn)
    if op is None or len(call.args) != 2:
        return None
    if any(a.type in _ORDERED_KEYS for a in call.args):
        return None
    return op


def _compare2(
    left: Compiled,
    right: Compiled,
    op: Callable[[Any, Any], object],
    apply: Callable[[list[object]], object],
    span: Span,
    ctx: EvalContext,
) -> Compiled:
    def run(row: Row) -> object:
        x, y = left(row), right(row)
        if isinstance(x, list) or isinstance(y, list):
            ctx.fail(span, MV_FAILURE)
            return None
        if x is None or y is None:
            return None
        if type(x) is type(y):
            return op(x, y)
        return apply([x, y])  # mixed types: the implementation decides (and raises) as before

    return run


def _arity1(
    args: list[Compiled], apply: Callable[[list[object]], object], span: Span, ctx: EvalContext
) -> Compiled:
    (a0,) = args

    def run(row: Row) -> object:
        x0 = a0(row)
        if isinstance(x0, list):
            ctx.fail(span, MV_FAILURE)
            return None
        return None if x0 is None else apply([x0])

    return run


def _arity2(
    args: list[Compiled], apply: Callable[[list[object]], object], span: Span, ctx: EvalContext
) -> Compiled:
    a0, a1 = args

    def run(row: Row) -> object:
        x0, x1 = a0(row), a1(row)
        if isinstance(x0, list) or isinstance(x1, list):
            ctx.fail(span, MV_FAILURE)
            return None
        return None if x0 is None or x1 is None else apply([x0, x1])

    return run


def _arity3(
    args: list[Compiled], apply: Callable[[list[object]], object], span: Span, ctx: EvalContext
) -> Compiled:
    a0, a1, a2 = args

    def run(row: Row) -> object:
        x0, x1, x2 = a0(row), a1(row), a2(row)
        if isinstance(x0, list) or isinstance(x1, list) or isinstance(x2, list):
            ctx.fail(span, MV_FAILURE)
            return None
        if x0 is None or x1 is None or x2 is None:
            return None
        return apply([x0, x1, x2])

    return run


_ARITY = {1: _arity1, 2: _arity2, 3: _arity3}


def _too_long(text: str) -> bool:
    return len(text) > v.MAX_STRING_BYTES // 4 and len(text.encode()) > v.MAX_STRING_BYTES


def _python_failure(exc: Exception) -> str:
    if isinstance(exc, ValueError | OverflowError) and "out of range" in str(exc):
        return v.DATE_OUT_OF_RANGE
    return f"java.lang.ArithmeticException: {exc}"


def _map_values(call: p.Call, impl: ScalarImpl, args: list[Compiled], ctx: EvalContext) -> Compiled:
    """A function applied to each value of its multivalued first argument."""

    def run(row: Row) -> object:
        first, *rest = [a(row) for a in args]
        if any(isinstance(x, list) for x in rest):
            ctx.fail(call.span, MV_FAILURE)
            return None
        if first is None or any(x is None for x in rest):
            return None
        try:
            return v.from_list(impl([x, *rest], call, ctx) for x in v.as_list(first))
        except EvalFailure as exc:
            ctx.fail(call.span, str(exc))
            return None
        except (ArithmeticError, ValueError) as exc:
            ctx.fail(call.span, _python_failure(exc))
            return None

    return run


# ---------------------------------------------------------------------------------------------
# Operators and functions with their own evaluation order


def _and(call: p.Call, ctx: EvalContext) -> Compiled:
    return _connective(call, ctx, decisive=False)


def _or(call: p.Call, ctx: EvalContext) -> Compiled:
    return _connective(call, ctx, decisive=True)


def _connective(call: p.Call, ctx: EvalContext, decisive: bool) -> Compiled:
    """AND (`decisive` False) or OR (True): either operand being `decisive` decides, else a
    null operand makes null."""
    left, right = (_boolean_operand(a, ctx) for a in call.args)
    undecided = not decisive

    def run(row: Row) -> object:
        # Elasticsearch evaluates both operands on every row (a failing one warns even where
        # the other decides the result).
        a, b = left(row), right(row)
        if a is decisive or b is decisive:
            return decisive
        return None if a is None or b is None else undecided

    return run


def _not(call: p.Call, ctx: EvalContext) -> Compiled:
    operand = _boolean_operand(call.args[0], ctx, call.span)
    return lambda row: None if (x := operand(row)) is None else not x


def _boolean_operand(expr: p.Expr, ctx: EvalContext, span: Span | None = None) -> Compiled:
    inner = compile_expr(expr, ctx)
    where = span if span is not None else expr.span

    def run(row: Row) -> object:
        x = inner(row)
        if isinstance(x, list):
            ctx.fail(where, MV_FAILURE)
            return None
        return x

    return run


def _is_null(call: p.Call, ctx: EvalContext) -> Compiled:
    inner = compile_expr(call.args[0], ctx)
    want_null = call.fn == "is_null"
    return lambda row: (inner(row) is None) == want_null


def _now(call: p.Call, ctx: EvalContext) -> Compiled:
    if ctx.now is None:
        msg = "now() needs the query time: pass EvalContext(now=...)"
        raise ValueError(msg)
    now = v.to_utc_millis_precision(ctx.now)
    return lambda _row: now


def _case(call: p.Call, ctx: EvalContext) -> Compiled:
    args = [compile_expr(a, ctx) for a in call.args]
    pairs = [(args[i], args[i + 1]) for i in range(0, len(args) - 1, 2)]
    default = args[-1] if len(args) % 2 == 1 else None
    span = call.span

    def run(row: Row) -> object:
        for cond, value in pairs:
            c = cond(row)
            if isinstance(c, list):
                # Elasticsearch names the whole CASE and takes the condition as false.
                ctx.fail(span, MV_FAILURE, "false")
                continue
            if c is True:
                return value(row)
        return default(row) if default is not None else None

    return run


def _coalesce(call: p.Call, ctx: EvalContext) -> Compiled:
    args = [compile_expr(a, ctx) for a in call.args]

    def run(row: Row) -> object:
        for a in args:
            x = a(row)
            if x is not None:
                return x
        return None

    return run


def _in(call: p.Call, ctx: EvalContext) -> Compiled:
    value = compile_expr(call.args[0], ctx)
    items = [compile_expr(a, ctx) for a in call.args[1:]]
    span = call.span

    def run(row: Row) -> object:
        x = value(row)
        if isinstance(x, list):
            ctx.fail(span, MV_FAILURE)
            return None
        if x is None:
            return None
        saw_null = False
        for item in items:
            y = item(row)
            if isinstance(y, list):
                ctx.fail(span, MV_FAILURE)
                saw_null = True
            elif y is None:
                saw_null = True
            elif x == y:
                return True
        return None if saw_null else False

    return run


def _like(call: p.Call, ctx: EvalContext) -> Compiled:
    value = compile_expr(call.args[0], ctx)
    translate = rlike_to_regex if call.fn == "rlike" else like_to_regex
    patterns = [
        re.compile(translate(str(c.value)), re.DOTALL)
        for c in call.args[1:]
        if isinstance(c, p.Const)
    ]
    span = call.span

    def run(row: Row) -> object:
        x = value(row)
        if isinstance(x, list):
            ctx.fail(span, MV_FAILURE)
            return None
        if x is None:
            return None
        return any(pat.fullmatch(str(x)) for pat in patterns)

    return run


def _convert(call: p.Call, ctx: EvalContext) -> Compiled:
    """TO_<type> and `::type`: every value of a multivalue converted; failures dropped, warned."""
    inner = compile_expr(call.args[0], ctx)
    target = call.type
    source_type = call.args[0].type
    span = call.span

    def one(x: object) -> object:
        if target is DataType.KEYWORD or target is DataType.TEXT:
            return v.to_text(x, source_type)
        if target is DataType.IP and source_type is DataType.IP:
            return x
        try:
            return v.convert(x, target, strict=True)
        except v.ConversionError as exc:
            ctx.fail(span, _conversion_reason(target, exc))
            return None

    def run(row: Row) -> object:
        value = inner(row)
        if value is None:
            return None
        if not isinstance(value, list | tuple):
            return one(value)  # what from_list makes of the one converted value
        return v.from_list(one(x) for x in v.as_list(value))

    return run


def _conversion_reason(target: DataType, exc: v.ConversionError) -> str:
    if exc.java is not None:
        return f"{exc.java}: {exc}"
    if target in (DataType.IP, DataType.DATETIME, DataType.BOOLEAN):
        return f"java.lang.IllegalArgumentException: {exc}"
    return f"org.elasticsearch.xpack.esql.core.InvalidArgumentException: {exc}"


_SPECIAL: dict[str, Callable[[p.Call, EvalContext], Compiled]] = {
    "and": _and,
    "or": _or,
    "not": _not,
    "is_null": _is_null,
    "is_not_null": _is_null,
    "now": _now,
    "case": _case,
    "coalesce": _coalesce,
    "in": _in,
    "like": _like,
    "rlike": _like,
}
for _name, _fn in REGISTRY.items():
    if _fn.name in CONVERSIONS or _fn.name in CAST_TARGETS:
        _SPECIAL[_name] = _convert
