"""Rows through the stream's row-wise steps: each step compiled once into row -> rows, lazy rows over a group's STATS output, an event's fields converted when first read."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

from reconwatch.backends.stream.cells import cell_value
from reconwatch.backends.stream.state import Group
from reconwatch.evaluate import EvalContext, compile_expr
from reconwatch.plan import nodes as p
from reconwatch.types import DataType as T

Row = dict[str, object]
RowFn = Callable[[Row], list[Row]]


# ---------------------------------------------------------------------------------------------
# Row-wise steps compiled once into one function per step: row -> rows.


def row_pipeline(
    steps: tuple[p.Step, ...],
    ctx: EvalContext,
    *,
    lazy: bool = False,
    check: Callable[[], None] | None = None,
) -> RowFn:
    """The steps as one row -> rows function; `check` (the time budget's) is called before each
    step's work on each row, so one event whose MV_EXPANDs multiply its rows is stopped."""
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

    if check is None:
        return run
    tick = check

    def checked(row: Row) -> list[Row]:
        rows = [row]
        for fn in fns:
            nxt: list[Row] = []
            for r in rows:
                tick()
                nxt.extend(fn(r))
            if not nxt:
                return nxt
            rows = nxt
        return rows

    return checked


def _filter(step: p.Filter, ctx: EvalContext) -> RowFn:
    cond = compile_expr(step.condition, ctx)
    return lambda row: [row] if cond(row) is True else []


def _eval(step: p.Eval, ctx: EvalContext) -> RowFn:
    compiled = [(name, compile_expr(expr, ctx)) for name, expr in step.assignments]

    def run(row: Row) -> list[Row]:
        out = dict(row)
        for name, fn in compiled:
            value = fn(out)
            out.pop(name, None)  # a reassigned name moves to the end, as in Elasticsearch
            out[name] = value
        return [out]

    return run


def _project(step: p.Project, ctx: EvalContext) -> RowFn:
    mapping = step.mapping
    return lambda row: [{out: row.get(src) for out, src in mapping}]


def _mv_expand(step: p.MvExpand, ctx: EvalContext) -> RowFn:
    name = step.column

    def run(row: Row) -> list[Row]:
        value = row.get(name)
        if not isinstance(value, list):
            return [row]
        return [{**row, name: item} for item in value]

    return run


_ROW_STEPS: dict[type[p.Step], Callable[[Any, EvalContext], RowFn]] = {
    p.Filter: _filter,
    p.Eval: _eval,
    p.Project: _project,
    p.MvExpand: _mv_expand,
}


# ---------------------------------------------------------------------------------------------
# Lazy rows after STATS: a threshold reads one or two aggregates, so the rest stay unread.


class GroupView(Mapping[str, object]):
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


def _lazy_eval(step: p.Eval, ctx: EvalContext) -> RowFn:
    compiled = [(name, compile_expr(expr, ctx)) for name, expr in step.assignments]

    def run(row: Any) -> list[Any]:
        out = _Overlay(row)
        for name, fn in compiled:
            out.top[name] = fn(out)
        return [out]

    return run


def _lazy_project(step: p.Project, ctx: EvalContext) -> RowFn:
    sources = dict(step.mapping)

    def run(row: Any) -> list[Any]:
        return [_Renamed(row, sources)]

    return run


_LAZY_STEPS: dict[type[p.Step], Callable[[Any, EvalContext], RowFn]] = {
    p.Eval: _lazy_eval,
    p.Project: _lazy_project,
}


class EventRow(Mapping[str, object]):
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
        value = cache[name] = cell_value(self.raw.get(name), type_)
        return value

    def __getitem__(self, name: str) -> object:
        if name not in self.types and name not in self.cache:
            raise KeyError(name)
        return self.get(name)

    def __iter__(self) -> Iterator[str]:
        return iter([*self.types, *(k for k in self.cache if k not in self.types)])

    def __len__(self) -> int:
        return len(list(iter(self)))
