"""The plan's steps as Spark DataFrame operations, where Spark's answer is Elasticsearch's exactly.

A step is translated only when nothing in it can warn or differ: comparisons of single values
of one kind (strings by UTF-8 bytes, integers, datetimes as epoch microseconds, booleans),
AND/OR/NOT, IN, IS NULL, LIKE, CIDR_MATCH with constant blocks, CASE; STATS with COUNT,
COUNT_DISTINCT (exact), VALUES, MIN/MAX and integer SUM (checked for overflow on the driver).
The first step that is not translated, and every step after it, runs in the shared interpreter,
so the answer stays the reference executor's. Every decision has a reason (`--explain`).

The same handlers run twice: once over `_Anything` (no Spark session: what would translate,
for the plan and the explanation) and once over pyspark's functions (the DataFrame).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from reconwatch.evaluate.expressions import EvalContext, Warnings, compile_expr
from reconwatch.plan import nodes as p
from reconwatch.plan import values as v
from reconwatch.types import DataType as T

# Types a frame column can hold (datetimes as epoch microseconds in a long).
FRAME_TYPES = frozenset(
    {T.KEYWORD, T.TEXT, T.IP, T.VERSION, T.LONG, T.INTEGER, T.DOUBLE, T.BOOLEAN, T.DATETIME}
)
# Types whose single values Spark compares, orders and tells apart as Elasticsearch does.
_ORDERED = frozenset({T.KEYWORD, T.TEXT, T.LONG, T.INTEGER, T.DATETIME, T.BOOLEAN})
_EQUAL = _ORDERED | {T.IP}
_CONDITION = frozenset(
    {T.BOOLEAN, T.NULL}
)  # canonical IP spellings: equal strings, equal addresses
_KIND = {
    T.KEYWORD: "s",
    T.TEXT: "s",
    T.IP: "ip",
    T.LONG: "i",
    T.INTEGER: "i",
    T.DATETIME: "d",
    T.BOOLEAN: "b",
}
_COMPARE = {
    "eq": "__eq__",
    "neq": "__ne__",
    "lt": "__lt__",
    "lte": "__le__",
    "gt": "__gt__",
    "gte": "__ge__",
}
# MV_EXPAND levels the order columns can tell apart (positions below 2**21, MAX_VALUES).
_POS_BITS, _MAX_EXPANDS = 21, 2
ORD, SUB = "__ord", "__sub"


class Untranslatable(Exception):
    """Why a step stays with the interpreter."""


class _Anything:
    """Stands in for pyspark's functions and columns when only deciding what translates."""

    def __getattr__(self, name: str) -> _Anything:
        return self

    def __call__(self, *args: object, **kwargs: object) -> _Anything:
        return self

    def _op(self, *other: object) -> _Anything:
        return self

    __and__ = __or__ = __invert__ = __eq__ = __ne__ = __lt__ = __le__ = __gt__ = __ge__ = _op  # type: ignore[assignment]
    __add__ = __radd__ = __sub__ = __mul__ = __rmul__ = __getitem__ = _op
    __hash__ = object.__hash__


@dataclass(frozen=True, slots=True)
class Col:
    """A plan column in the frame: its Spark column name, type, whether a row may hold several values."""

    id: str
    type: T
    multi: bool


@dataclass
class Frame:
    """A DataFrame (or `_Anything`) and the plan's columns in it, after the steps so far."""

    df: Any
    scope: dict[str, Col]
    expands: int = 0
    sorted: bool = False
    ended: bool = False  # after a LIMIT (or SORT): the rest goes to the driver
    by: tuple[str, ...] = ()  # frame columns a STATS groups by before its keys (a run's number)
    counter: list[int] = field(default_factory=lambda: [0])

    def fresh(self) -> str:
        self.counter[0] += 1
        return f"e{self.counter[0]}"


@dataclass
class Translator:
    F: Any  # pyspark.sql.functions, or _Anything
    now: datetime

    # -- expressions ---------------------------------------------------------------------------

    def expr(self, e: p.Expr, scope: dict[str, Col]) -> Any:
        if isinstance(e, p.Const):
            return self.const(e.value, e.type)
        if isinstance(e, p.Ref):
            col = scope.get(e.name)
            if col is None:
                raise Untranslatable(f"[{e.name}] is not in the frame")
            if col.multi:
                raise Untranslatable(f"[{e.name}] may hold several values")
            return self.F.col(col.id)
        if not p.refs(e):
            return self.const(self.fold(e), e.type)
        handler = _CALLS.get(e.fn)
        if handler is None:
            raise Untranslatable(f"function [{e.fn}] is not translated")
        if e.multivalued:
            raise Untranslatable(f"[{e.fn}] may give several values")
        return handler(self, e, scope)

    def fold(self, e: p.Call) -> object:
        """A call without column references, computed once by the interpreter (`now() - 1 hour`)."""
        warnings = Warnings()
        value = compile_expr(e, EvalContext(now=self.now, warnings=warnings))({})
        if warnings.as_list():
            raise Untranslatable(f"[{e.fn}] of constants warns")
        return value

    def const(self, value: object, type_: T) -> Any:
        if isinstance(value, list):
            raise Untranslatable("a multivalued constant")
        if type_ not in FRAME_TYPES and value is not None:
            raise Untranslatable(f"a constant of type [{type_.value}]")
        if value is None:
            return self.F.lit(None)
        if isinstance(value, datetime):
            return self.F.lit(micros(value))
        if type_ is T.IP and isinstance(value, str):
            try:
                value = v.canonical_ip(value)  # the frame holds canonical spellings
            except v.ConversionError:
                raise Untranslatable(f"[{value}] is not an IP") from None
        return self.F.lit(value)

    def condition(self, e: p.Expr, scope: dict[str, Col]) -> Any:
        """A boolean operand (a NULL constant typed boolean: Spark wants a boolean filter)."""
        return self.single(e, scope, _CONDITION).cast("boolean")

    def single(self, e: p.Expr, scope: dict[str, Col], kinds: frozenset[T]) -> Any:
        if e.type not in kinds:
            raise Untranslatable(f"an operand of type [{e.type.value}]")
        return self.expr(e, scope)

    # -- steps ---------------------------------------------------------------------------------

    def step(self, step: p.Step, frame: Frame) -> Frame:
        handler = _STEPS.get(type(step))
        if handler is None:
            raise Untranslatable(f"{type(step).__name__} is not translated")
        if frame.ended:
            raise Untranslatable("after a STATS, SORT or LIMIT the driver runs the few rows left")
        for c in step.columns:
            if c.type not in FRAME_TYPES and not isinstance(step, p.Aggregate):
                raise Untranslatable(f"column [{c.name}] of type [{c.type.value}]")
        return handler(self, step, frame)

    def _filter(self, step: p.Filter, frame: Frame) -> Frame:
        cond = self.condition(step.condition, frame.scope)
        return replace(frame, df=frame.df.where(cond))

    def _eval(self, step: p.Eval, frame: Frame) -> Frame:
        scope = dict(frame.scope)
        df = frame.df
        for name, e in step.assignments:
            if e.type not in FRAME_TYPES and e.type is not T.NULL:
                raise Untranslatable(f"[{name}] of type [{e.type.value}]")
            ident = frame.fresh()
            value = self.expr(e, scope)
            df = df.withColumn(ident, value if e.type is not T.NULL else value.cast("string"))
            scope[name] = Col(ident, e.type if e.type is not T.NULL else T.KEYWORD, False)
        return replace(frame, df=df, scope=scope)

    def _project(self, step: p.Project, frame: Frame) -> Frame:
        scope = {out: frame.scope[src] for out, src in step.mapping if src in frame.scope}
        return replace(frame, scope=scope)

    def _mv_expand(self, step: p.MvExpand, frame: Frame) -> Frame:
        col = frame.scope.get(step.column)
        if col is None:
            raise Untranslatable(f"[{step.column}] is not in the frame")
        if not col.multi:
            return frame  # at most one value a row: MV_EXPAND keeps every row as it is
        if frame.expands >= _MAX_EXPANDS:
            raise Untranslatable("a third MV_EXPAND")
        F = self.F
        ident, pos = frame.fresh(), frame.fresh()
        df = frame.df.select("*", F.posexplode_outer(F.col(col.id)).alias(pos, ident))
        sub = F.col(SUB) * F.lit(1 << _POS_BITS) + F.coalesce(F.col(pos), F.lit(0))
        df = df.withColumn(SUB, sub)
        scope = {**frame.scope, step.column: Col(ident, col.type, False)}
        return replace(frame, df=df, scope=scope, expands=frame.expands + 1)

    def _sort(self, step: p.Sort, frame: Frame) -> Frame:
        F = self.F
        keys = []
        for key in step.keys:
            col = self.single(key.expr, frame.scope, _ORDERED)
            if key.descending:
                keys.append(col.desc_nulls_first() if key.nulls_first else col.desc_nulls_last())
            else:
                keys.append(col.asc_nulls_first() if key.nulls_first else col.asc_nulls_last())
        # Ties keep input order, as the interpreter's stable sort does.
        df = frame.df.orderBy(*keys, F.col(ORD), F.col(SUB))
        return replace(frame, df=df, sorted=True)

    def _limit(self, step: p.Limit, frame: Frame) -> Frame:
        F = self.F
        df = frame.df if frame.sorted else frame.df.orderBy(F.col(ORD), F.col(SUB))
        return replace(frame, df=df.limit(step.count), sorted=True, ended=True)

    def _aggregate(self, step: p.Aggregate, frame: Frame) -> Frame:
        F = self.F
        keys: list[Any] = []
        for name, e in step.groups:
            if e.type not in _EQUAL:
                raise Untranslatable(f"group key [{name}] of type [{e.type.value}]")
            keys.append(self.expr(e, frame.scope).alias(f"k{len(keys)}"))
        aggs: list[Any] = []
        for i, (name, agg) in enumerate(step.aggregates):
            aggs.extend(
                a.alias(f"a{i}_{j}") for j, a in enumerate(self.agg(name, agg, frame.scope))
            )
        first = F.min(F.struct(F.col(ORD), F.col(SUB))).alias("first")
        df = frame.df.groupBy(*[F.col(c) for c in frame.by], *keys).agg(first, *aggs)
        return replace(frame, df=df, ended=True)

    def agg(self, name: str, agg: p.AggCall, scope: dict[str, Col]) -> list[Any]:
        """The Spark aggregates computing `agg` (the driver finishes them: AGG_RESULTS)."""
        F = self.F
        keep = None if agg.filter is None else self.condition(agg.filter, scope)

        def arg(kinds: frozenset[T]) -> Any:
            if len(agg.args) != 1:
                raise Untranslatable(f"[{agg.fn}] with {len(agg.args)} arguments")
            value = self.single(agg.args[0], scope, kinds)
            return value if keep is None else F.when(keep, value)

        if agg.fn == "count" and (agg.star or not agg.args):
            return [F.count(F.lit(1) if keep is None else F.when(keep, F.lit(1)))]
        if agg.fn == "count":
            return [F.count(arg(FRAME_TYPES))]
        if agg.fn == "count_distinct":
            return [F.countDistinct(arg(_EQUAL))]
        if agg.fn == "values":
            return [F.collect_set(arg(_EQUAL))]
        if agg.fn in ("min", "max"):
            value = arg(_ORDERED)
            return [F.min(value) if agg.fn == "min" else F.max(value)]
        if agg.fn == "sum" and agg.type is T.LONG:
            value = arg(frozenset({T.LONG, T.INTEGER})).cast("decimal(38,0)")
            return [
                F.count(value),
                F.sum(value),
                F.sum(F.when(value > 0, value)),
                F.sum(F.when(value < 0, value)),
            ]
        raise Untranslatable(f"aggregate [{agg.fn}] of type [{agg.type.value}] is not translated")


class Overflow(Exception):
    """An integer SUM that leaves the long range somewhere: the interpreter says where (it warns)."""


def agg_result(agg: p.AggCall, cells: Sequence[Any]) -> object:
    """A translated aggregate's value on the driver, in the plan's conventions."""
    if agg.fn in ("count", "count_distinct"):
        return int(cells[0])
    if agg.fn == "values":
        items = [plan_value(x, agg.args[0].type) for x in (cells[0] or [])]
        return v.from_list(sorted(items, key=lambda x: v.order_key(x, agg.args[0].type)))
    if agg.fn in ("min", "max"):
        return plan_value(cells[0], agg.args[0].type)
    # sum: the value, then positive and negative parts, none of which may leave the long range
    # (every order of the additions then stays inside it, so no partial sum overflowed)
    count, total, up, down = cells
    if not count:
        return None
    for part in (total, up or 0, down or 0):
        if not v.LONG_MIN <= int(part) <= v.LONG_MAX:
            raise Overflow
    return int(total)


def plan_value(value: object, type_: T) -> object:
    """A frame cell as the interpreter holds it (datetimes from epoch microseconds)."""
    if value is None:
        return None
    if isinstance(value, list):
        return v.from_list(plan_value(x, type_) for x in value)
    if type_ is T.DATETIME and isinstance(value, int):
        return v.datetime_from_millis(value // 1000)
    return value


def frame_value(value: object, type_: T) -> object:
    """An interpreter value as a frame cell (the inverse of plan_value)."""
    if isinstance(value, list):
        return [frame_value(x, type_) for x in value]
    if isinstance(value, datetime):
        return micros(value)
    if type_ is T.DOUBLE and isinstance(value, int):
        return float(value)
    return value


def micros(when: datetime) -> int:
    return v.datetime_to_millis(when) * 1000


# -- functions -------------------------------------------------------------------------------


def _compare(t: Translator, call: p.Call, scope: dict[str, Col]) -> Any:
    a, b = call.args
    kinds = _ORDERED if call.fn not in ("eq", "neq") else _EQUAL
    left, right = t.single(a, scope, kinds), t.single(b, scope, kinds)
    if _KIND[a.type] != _KIND[b.type]:
        raise Untranslatable(f"[{call.fn}] of [{a.type.value}] and [{b.type.value}]")
    return getattr(left, _COMPARE[call.fn])(right)


def _logic(t: Translator, call: p.Call, scope: dict[str, Col]) -> Any:
    args = [t.condition(a, scope) for a in call.args]
    if call.fn == "not":
        return ~args[0]
    out = args[0]
    for x in args[1:]:
        out = (out & x) if call.fn == "and" else (out | x)
    return out


def _is_null(t: Translator, call: p.Call, scope: dict[str, Col]) -> Any:
    value = t.expr(call.args[0], scope)
    return value.isNull() if call.fn == "is_null" else value.isNotNull()


def _in(t: Translator, call: p.Call, scope: dict[str, Col]) -> Any:
    F = t.F
    value = t.single(call.args[0], scope, _EQUAL)
    items = call.args[1:]
    if not all(isinstance(x, p.Const) and not isinstance(x.value, list) for x in items):
        raise Untranslatable("IN with a list that is not constants")
    known = [x for x in items if isinstance(x, p.Const) and x.value is not None]
    if any(_KIND.get(x.type) != _KIND[call.args[0].type] for x in known):
        raise Untranslatable("IN with items of another type")
    saw_null = len(known) < len(items)
    hit = value.isin([t.const(x.value, x.type) for x in known]) if known else F.lit(False)
    miss = F.lit(None) if saw_null else F.lit(False)
    return F.when(value.isNull(), F.lit(None)).when(hit, F.lit(True)).otherwise(miss)


def _like(t: Translator, call: p.Call, scope: dict[str, Col]) -> Any:
    from reconwatch.esql.patterns import like_to_regex

    if call.fn != "like":
        raise Untranslatable("RLIKE: Lucene's regular expressions are not Java's")
    value = t.single(call.args[0], scope, frozenset({T.KEYWORD, T.TEXT}))
    patterns = call.args[1:]
    if not patterns or not all(
        isinstance(x, p.Const) and isinstance(x.value, str) for x in patterns
    ):
        raise Untranslatable("LIKE with a pattern that is not a constant string")
    # like_to_regex writes literals escaped with a backslash, `.*` and `.`: Java reads them alike.
    body = "|".join(
        f"(?:{like_to_regex(str(x.value))})" for x in patterns if isinstance(x, p.Const)
    )
    return value.rlike(f"(?s)\\A(?:{body})\\z")


def _cidr_match(t: Translator, call: p.Call, scope: dict[str, Col]) -> Any:
    F = t.F
    ip = t.single(call.args[0], scope, frozenset({T.IP}))
    ranges = []
    for block in call.args[1:]:
        texts = [block.value] if isinstance(block, p.Const) else None
        if isinstance(block, p.Const) and isinstance(block.value, list):
            texts = list(block.value)
        if texts is None or not all(isinstance(x, str) for x in texts):
            raise Untranslatable("CIDR_MATCH with a block that is not a constant string")
        for text in texts:
            try:
                net = ipaddress.ip_network(str(text).strip(), strict=False)
            except ValueError:
                raise Untranslatable(f"CIDR_MATCH block [{text}] warns on every row") from None
            if isinstance(net, ipaddress.IPv4Network):
                net = ipaddress.IPv6Network(f"::ffff:{net.network_address}/{96 + net.prefixlen}")
            low, high = net.network_address.packed.hex(), net.broadcast_address.packed.hex()
            ranges.append((low, high))
    key = hex_key(F, ip)
    out = F.lit(False)
    for low, high in ranges:
        out = out | key.between(F.lit(low), F.lit(high))
    return F.when(ip.isNull(), F.lit(None)).otherwise(out)


def hex_key(F: Any, ip: Any) -> Any:
    """A canonical IP spelling as the 32 hex digits of its 16 bytes (IPv4 mapped into
    ::ffff:0:0/96): its string order is Elasticsearch's address order."""
    octets = F.split(ip, r"\.")
    v4 = F.concat(
        F.lit("00000000000000000000ffff"),
        *[F.lpad(F.lower(F.hex(F.element_at(octets, i).cast("int"))), 2, "0") for i in range(1, 5)],
    )
    halves = F.split(ip, "::", 2)
    head = F.when(F.element_at(halves, 1) == "", F.array()).otherwise(
        F.split(F.element_at(halves, 1), ":")
    )
    tail = F.when((F.size(halves) < 2) | (F.element_at(halves, -1) == ""), F.array()).otherwise(
        F.split(F.element_at(halves, -1), ":")
    )
    gap = F.array_repeat(F.lit("0"), F.lit(8) - F.size(head) - F.size(tail))
    groups = F.when(F.size(halves) < 2, F.split(ip, ":")).otherwise(F.concat(head, gap, tail))
    v6 = F.concat_ws("", F.transform(groups, lambda g: F.lpad(F.lower(g), 4, "0")))
    return F.when(F.instr(ip, ":") > 0, v6).otherwise(v4)


def _case(t: Translator, call: p.Call, scope: dict[str, Col]) -> Any:
    F = t.F
    args = call.args
    if call.type not in FRAME_TYPES and call.type is not T.NULL:
        raise Untranslatable(f"CASE of type [{call.type.value}]")
    out = None
    for i in range(0, len(args) - 1, 2):
        cond = t.condition(args[i], scope)
        value = t.expr(args[i + 1], scope)
        out = F.when(cond, value) if out is None else out.when(cond, value)
    if out is None:
        return t.expr(args[-1], scope)
    return out.otherwise(t.expr(args[-1], scope)) if len(args) % 2 == 1 else out


def _coalesce(t: Translator, call: p.Call, scope: dict[str, Col]) -> Any:
    # Single values of the call's own type (the analyser makes every argument that type).
    kinds = frozenset({call.type}) & FRAME_TYPES
    return t.F.coalesce(*[t.single(a, scope, kinds) for a in call.args])


_Handler = Callable[[Translator, p.Call, dict[str, Col]], Any]
_CALLS: dict[str, _Handler] = {
    **dict.fromkeys(_COMPARE, _compare),
    "and": _logic,
    "or": _logic,
    "not": _logic,
    "is_null": _is_null,
    "is_not_null": _is_null,
    "in": _in,
    "like": _like,
    "rlike": _like,
    "cidr_match": _cidr_match,
    "case": _case,
    "coalesce": _coalesce,
}
_STEPS: dict[type, Callable[[Translator, Any, Frame], Frame]] = {
    p.Filter: Translator._filter,
    p.Eval: Translator._eval,
    p.Project: Translator._project,
    p.MvExpand: Translator._mv_expand,
    p.Sort: Translator._sort,
    p.Limit: Translator._limit,
    p.Aggregate: Translator._aggregate,
}


# -- the plan ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Decision:
    """How many of the steps translate, and why the next one does not (None: all do)."""

    count: int
    reason: str | None
    source: tuple[p.Column, ...]  # the source columns the frame holds


def decide(plan: p.Plan, steps: Sequence[p.Step], now: datetime, lists_single: bool) -> Decision:
    """The leading steps that translate over the plan's source, decided without Spark.
    `lists_single`: the data's list columns hold at most one value a row (checked first)."""
    if not isinstance(plan.source, p.Source):
        return Decision(0, "ROW has no data to read on Spark", ())
    cols = frame_columns(plan, steps)
    odd = [c for c in cols if c.type not in FRAME_TYPES]
    if odd:
        return Decision(0, f"source column [{odd[0].name}] of type [{odd[0].type.value}]", cols)
    frame = start(_Anything(), cols, lists_single)
    translator = Translator(_Anything(), now)
    for i, step in enumerate(steps):
        try:
            frame = translator.step(step, frame)
        except Untranslatable as exc:
            return Decision(i, str(exc), cols)
    return Decision(len(steps), None, cols)


def start(df: Any, cols: Sequence[p.Column], lists_single: bool, F: Any = None) -> Frame:
    """The frame over source columns c0, c1, ...: list columns as their one value when
    `lists_single`."""
    scope: dict[str, Col] = {}
    if F is not None:
        df = df.withColumn(SUB, F.lit(0).cast("long"))
    for i, c in enumerate(cols):
        ident = f"c{i}"
        if c.multivalued and lists_single:
            if F is not None:
                df = df.withColumn(ident, F.get(F.col(ident), 0))
            scope[c.name] = Col(ident, c.type, False)
        else:
            scope[c.name] = Col(ident, c.type, c.multivalued)
    return Frame(df, scope)


def frame_columns(plan: p.Plan, steps: Sequence[p.Step]) -> tuple[p.Column, ...]:
    """The source columns the steps read or return (the frame reads only these)."""
    assert isinstance(plan.source, p.Source)
    needed = {c.name for c in plan.columns}
    for step in reversed(steps):
        if isinstance(step, p.Project):
            needed = {src for out, src in step.mapping if out in needed}
        elif isinstance(step, p.Aggregate):
            needed = set().union(
                *(p.refs(e) for _, e in step.groups),
                *(p.refs(a) for _, agg in step.aggregates for a in (*agg.args, agg.filter) if a),
            )
        elif isinstance(step, p.Eval):
            made = {n for n, _ in step.assignments}
            needed = (needed - made).union(*(p.refs(e) for _, e in step.assignments))
        elif isinstance(step, p.Filter):
            needed |= p.refs(step.condition)
        elif isinstance(step, p.Sort):
            needed = needed.union(*(p.refs(k.expr) for k in step.keys))
        elif isinstance(step, p.MvExpand):
            needed.add(step.column)
        elif isinstance(step, p.Limit):
            pass
        else:  # anything else: every column it was given
            needed = {c.name for c in _before(plan, steps, step)}
    return tuple(c for c in plan.source.columns if c.name in needed)


def _before(plan: p.Plan, steps: Sequence[p.Step], step: p.Step) -> tuple[p.Column, ...]:
    at = list(steps).index(step)
    return steps[at - 1].columns if at else plan.source.columns


def describe(plan: p.Plan, steps: Sequence[p.Step], now: datetime) -> list[str]:
    """Where each step runs on Spark, and why a step is not translated (for --explain)."""
    if not isinstance(plan.source, p.Source):
        return ["every step: the interpreter on the driver (ROW has no data to read)"]
    decision = decide(plan, steps, now, lists_single=True)
    ended = any(isinstance(s, p.Aggregate | p.Sort | p.Limit) for s in steps[: decision.count])
    lines = [_where(i, step, decision.count, ended) for i, step in enumerate(steps)]
    if decision.reason is not None:
        lines.append(f"-- not translated from step {decision.count + 1}: {decision.reason}")
    lists = [c.name for c in decision.source if c.multivalued]
    if lists and decision.count:
        worse = decide(plan, steps, now, lists_single=False)
        if worse.count < decision.count:
            lines.append(
                f"-- checked first (one job): a row with several values of "
                f"[{', '.join(lists)}] runs the interpreter from step {worse.count + 1} "
                f"({worse.reason})"
            )
    return lines


def _where(i: int, step: p.Step, translated: int, ended: bool) -> str:
    name = type(step).__name__
    if i < translated:
        return f"step {i + 1} {name}: Spark SQL"
    if ended:
        return f"step {i + 1} {name}: the interpreter on the driver, over the few rows left"
    return (
        f"step {i + 1} {name}: the interpreter (on the workers while row-local and for a STATS "
        "after them, then on the driver)"
    )
