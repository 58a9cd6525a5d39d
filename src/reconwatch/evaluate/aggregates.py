"""Aggregate functions as small state objects (add a row, read the result), reusable by streaming."""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, Protocol

from reconwatch.evaluate.expressions import (
    MV_FAILURE,
    Compiled,
    EvalContext,
    Row,
    compile_expr,
)
from reconwatch.plan import nodes as p
from reconwatch.plan import values as v
from reconwatch.types import DataType as T


class AggState(Protocol):
    """One group's running state of one aggregate."""

    def add(self, row: Row) -> None: ...

    def result(self) -> object: ...


class AggSpec:
    """A compiled aggregate: `new()` makes an empty state for a group."""

    def __init__(self, agg: p.AggCall, ctx: EvalContext) -> None:
        self.agg = agg
        self.ctx = ctx
        self.args: list[Compiled] = [compile_expr(a, ctx) for a in agg.args]
        self.filter: Compiled | None = (
            compile_expr(agg.filter, ctx) if agg.filter is not None else None
        )
        self.type = agg.args[0].type if agg.args else T.NULL
        self._factory: Callable[[AggSpec], _Base] = _STATES[agg.fn]

    def new(self) -> AggState:
        return self._factory(self)


def compile_agg(agg: p.AggCall, ctx: EvalContext | None = None) -> AggSpec:
    """An aggregate ready to make per-group states (init = `new()`, then add/result)."""
    return AggSpec(agg, ctx if ctx is not None else EvalContext())


class _Base(ABC):
    """Applies the per-aggregate WHERE and hands every non-null value to `take`."""

    def __init__(self, spec: AggSpec) -> None:
        self.spec = spec

    def add(self, row: Row) -> None:
        spec = self.spec
        if spec.filter is not None and spec.filter(row) is not True:
            return
        if spec.agg.star:
            self.take_row()
            return
        for item in v.as_list(spec.args[0](row)):
            self.take(item)

    def take_row(self) -> None:
        raise TypeError(f"{self.spec.agg.fn}(*) is not an aggregate")

    @abstractmethod
    def take(self, value: object) -> None: ...

    @abstractmethod
    def result(self) -> object: ...


class _Count(_Base):
    def __init__(self, spec: AggSpec) -> None:
        super().__init__(spec)
        self.n = 0

    def take_row(self) -> None:
        self.n += 1

    def take(self, value: object) -> None:
        self.n += 1

    def result(self) -> object:
        return self.n


class _CountDistinct(_Base):
    """Exact distinct count: Elasticsearch's HyperLogLog++ is exact below its precision
    threshold (default 3000), which covers detection thresholds."""

    def __init__(self, spec: AggSpec) -> None:
        super().__init__(spec)
        self.seen: set[object] = set()

    def take(self, value: object) -> None:
        self.seen.add(v.order_key(value, self.spec.type))

    def result(self) -> object:
        return len(self.seen)


class _Values(_Base):
    def __init__(self, spec: AggSpec) -> None:
        super().__init__(spec)
        self.seen: dict[Any, object] = {}

    def take(self, value: object) -> None:
        self.seen.setdefault(v.order_key(value, self.spec.type), value)

    def result(self) -> object:
        # Elasticsearch leaves the order unspecified; sorted makes results reproducible.
        return v.from_list(self.seen[k] for k in sorted(self.seen))


class _MinMax(_Base):
    def __init__(self, spec: AggSpec) -> None:
        super().__init__(spec)
        self.best: object = None
        self.best_key: object = None
        self.want_max = spec.agg.fn == "max"

    def take(self, value: object) -> None:
        key = v.order_key(value, self.spec.type)
        if self.best is None or (key > self.best_key if self.want_max else key < self.best_key):
            self.best, self.best_key = value, key

    def result(self) -> object:
        return self.best


class _Sum(_Base):
    def __init__(self, spec: AggSpec) -> None:
        super().__init__(spec)
        self.items: list[float] = []
        self.total = 0
        self.seen = False
        self.overflow = False

    def take(self, value: object) -> None:
        self.seen = True
        if self.spec.agg.type is T.DOUBLE:
            assert isinstance(value, int | float)
            self.items.append(float(value))
            return
        assert isinstance(value, int)
        self.total += value
        high = v.ULONG_MAX if self.spec.agg.type is T.UNSIGNED_LONG else v.LONG_MAX
        low = 0 if self.spec.agg.type is T.UNSIGNED_LONG else v.LONG_MIN
        if not low <= self.total <= high:
            self.overflow = True

    def result(self) -> object:
        if not self.seen:
            return None
        if self.overflow:
            self.spec.ctx.fail(self.spec.agg.span, "java.lang.ArithmeticException: long overflow")
            return None
        return math.fsum(self.items) if self.spec.agg.type is T.DOUBLE else self.total


class _Floats(_Base):
    """Shared state of the aggregates that need every numeric value of the group."""

    def __init__(self, spec: AggSpec) -> None:
        super().__init__(spec)
        self.items: list[float] = []

    def take(self, value: object) -> None:
        assert isinstance(value, int | float)
        self.items.append(float(value))


class _Avg(_Floats):
    def result(self) -> object:
        return math.fsum(self.items) / len(self.items) if self.items else None


class _Spread(_Floats):
    """Population variance (STD_VAR) and its square root (STD_DEV)."""

    def result(self) -> object:
        if not self.items:
            return None
        mean = math.fsum(self.items) / len(self.items)
        variance = math.fsum((x - mean) ** 2 for x in self.items) / len(self.items)
        return math.sqrt(variance) if self.spec.agg.fn == "std_dev" else variance


class _Median(_Floats):
    """Exact median, interpolated between the middle values (Elasticsearch's t-digest gives the
    same on small inputs; on large ones it approximates)."""

    def result(self) -> object:
        if not self.items:
            return None
        items = sorted(self.items)
        mid = len(items) // 2
        return items[mid] if len(items) % 2 else (items[mid - 1] + items[mid]) / 2


class _WeightedAvg(_Base):
    """sum(value * weight) / sum(weight); a multivalue, overflow or zero weight nulls the group."""

    def __init__(self, spec: AggSpec) -> None:
        super().__init__(spec)
        self.products: list[float] = []
        self.weights: list[float] = []
        self.integral = all(a.type in (T.INTEGER, T.LONG) for a in spec.agg.args)
        self.failure: str | None = None
        weight = spec.agg.args[1]
        self.constant_weight = isinstance(weight, p.Const) and not isinstance(weight.value, list)

    def add(self, row: Row) -> None:
        spec = self.spec
        if spec.filter is not None and spec.filter(row) is not True:
            return
        value, weight = spec.args[0](row), spec.args[1](row)
        if self.constant_weight and isinstance(value, list) and weight is not None:
            # Elasticsearch folds a constant weight into a plain average over every value.
            for item in value:
                assert isinstance(item, int | float) and isinstance(weight, int | float)
                self.products.append(item * weight)
                self.weights.append(weight)
            return
        if isinstance(value, list) or isinstance(weight, list):
            self.failure = MV_FAILURE
            return
        if value is None or weight is None:
            return
        assert isinstance(value, int | float) and isinstance(weight, int | float)
        self.products.append(value * weight)
        self.weights.append(weight)

    def take(self, value: object) -> None:
        raise TypeError("weighted_avg reads whole rows")

    def result(self) -> object:
        total = sum(self.products) if self.integral else math.fsum(self.products)
        weights = sum(self.weights) if self.integral else math.fsum(self.weights)
        if self.failure is None and self.integral and not v.LONG_MIN <= total <= v.LONG_MAX:
            self.failure = "java.lang.ArithmeticException: long overflow"
        if self.failure is None and self.weights and weights == 0:
            self.failure = "java.lang.ArithmeticException: / by zero"
        if self.failure is not None:
            self.spec.ctx.fail(self.spec.agg.span, self.failure)
            return None
        return float(total) / float(weights) if self.weights else None


class _Top(_Base):
    def __init__(self, spec: AggSpec) -> None:
        super().__init__(spec)
        self.items: list[object] = []
        limit = spec.agg.args[1]
        order = spec.agg.args[2] if len(spec.agg.args) > 2 else None
        self.limit = (
            int(limit.value) if isinstance(limit, p.Const) and isinstance(limit.value, int) else 0
        )
        text = order.value if isinstance(order, p.Const) and isinstance(order.value, str) else "asc"
        self.descending = text.lower() == "desc"

    def take(self, value: object) -> None:
        self.items.append(value)

    def result(self) -> object:
        ordered = sorted(
            self.items, key=lambda x: v.order_key(x, self.spec.type), reverse=self.descending
        )
        return v.from_list(ordered[: self.limit])


_STATES: dict[str, Callable[[AggSpec], _Base]] = {
    "count": _Count,
    "count_distinct": _CountDistinct,
    "values": _Values,
    "min": _MinMax,
    "max": _MinMax,
    "sum": _Sum,
    "avg": _Avg,
    "top": _Top,
    "std_dev": _Spread,
    "std_var": _Spread,
    "median": _Median,
    "weighted_avg": _WeightedAvg,
}
