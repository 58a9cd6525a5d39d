"""The logical plan every executor consumes: resolved, typed expressions and a linear pipeline of steps.

The analyser (esql/analyze.py) builds it; executors (backends/duckdb, backends/reference,
backends/stream) only read it. All ES|QL semantics that can be decided before execution are
decided here: names are resolved, types known, unnamed columns named, KEEP/DROP/RENAME reduced to
one projection, aggregates separated from the scalar expressions over them.

Value conventions shared by every executor (inputs and results):
  keyword/text/version -> str; integer/long/unsigned_long -> int; double -> float; boolean -> bool;
  datetime -> datetime (tz-aware, UTC, millisecond precision); ip -> str in canonical form
  (IPv4 dotted quad, IPv6 compressed lower-case, IPv4-mapped IPv6 as IPv4);
  date_period/time_duration -> TemporalAmount; a multivalue -> list of those (length >= 2; a
  one-element list is the single value); null -> None.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import field

from reconwatch.errors import Span
from reconwatch.records import record
from reconwatch.types import DataType

NO_SPAN = Span(0, 0, 0, 0)


def _span() -> Span:
    return field(default=NO_SPAN, compare=False, repr=False)


@record
class TemporalAmount:
    """A time span constant: calendar part (months, days) and exact part (milliseconds)."""

    months: int = 0
    days: int = 0
    millis: int = 0


@record
class Column:
    """A column of a step's output: its name, type, and whether a row may hold a multivalue."""

    name: str
    type: DataType
    multivalued: bool = False


# ---------------------------------------------------------------------------------------------
# Expressions: three node kinds only, so each executor has one table of functions to implement.


@record
class Const:
    """A constant (see the module docstring for value conventions)."""

    value: object
    type: DataType
    span: Span = _span()

    @property
    def multivalued(self) -> bool:
        return isinstance(self.value, list)


@record
class Ref:
    """A reference to a column of the previous step's output."""

    name: str
    type: DataType
    multivalued: bool = False
    span: Span = _span()


@record
class Call:
    """A scalar function or operator application.

    `fn` names an entry of the function registry (esql/functions.py): ES|QL functions by their
    lower-case name ("to_lower", "cidr_match", "mv_count", ...) and operators by these names:
      add sub mul div mod neg; eq neq lt lte gt gte eq_ci (=~); and or not;
      in (args: value, item, item...); like / rlike (args: value, Const pattern, ...);
      is_null is_not_null; cast_<type> for `::type` and implicit casts (e.g. cast_ip, cast_datetime).
    `type` is the result type; `multivalued` whether the result may be a multivalue (only for
    MV-producing functions such as split, mv_slice, mv_dedupe).
    """

    fn: str
    args: tuple[Expr, ...]
    type: DataType
    multivalued: bool = False
    span: Span = _span()


Expr = Const | Ref | Call


def balanced(fn: str, args: Sequence[Expr], span: Span = NO_SPAN) -> Expr:
    """`and`/`or` over any number of boolean operands as a balanced tree of two-argument calls:
    both are associative, and a rule's thousands of OR-ed terms then nest only log2(n) deep,
    which every recursive executor walks without trouble."""
    if not args:
        msg = f"{fn} needs an operand"
        raise ValueError(msg)
    level = list(args)
    while len(level) > 1:
        pairs: list[Expr] = [
            Call(fn, (level[i], level[i + 1]), DataType.BOOLEAN, False, span)
            for i in range(0, len(level) - 1, 2)
        ]
        if len(level) % 2:
            pairs.append(level[-1])
        level = pairs
    return level[0]


def flatten(fn: str, expr: Expr) -> list[Expr]:
    """The operands of a tree of `fn` (`and`/`or`) calls, in order (iterative: any depth)."""
    out: list[Expr] = []
    stack = [expr]
    while stack:
        node = stack.pop()
        if isinstance(node, Call) and node.fn == fn and len(node.args) == 2:
            stack.extend(reversed(node.args))
        else:
            out.append(node)
    return out


def refs(expr: Expr) -> set[str]:
    """The names of the columns `expr` reads."""
    if isinstance(expr, Ref):
        return {expr.name}
    if isinstance(expr, Call):
        return set().union(*(refs(a) for a in expr.args))
    return set()


@record
class AggCall:
    """An aggregate function inside STATS: count, count_distinct, values, min, max, sum, avg, ...

    `args` are scalar expressions over the STATS input; `star` for count(*)/count();
    `filter` is the per-aggregate WHERE (rows for which it is not true do not feed this aggregate).
    """

    fn: str
    args: tuple[Expr, ...]
    type: DataType
    star: bool = False
    filter: Expr | None = None
    multivalued: bool = False
    span: Span = _span()


# ---------------------------------------------------------------------------------------------
# Steps. Each knows its output columns, in order.


@record
class Source:
    """FROM: the indices (patterns as written), METADATA columns, and the source fields the rest of
    the plan reads (projection pushdown: an executor loads only these)."""

    indices: tuple[str, ...]
    metadata: tuple[str, ...]
    fields: tuple[Column, ...]
    columns: tuple[Column, ...]
    span: Span = _span()


@record
class RowSource:
    """ROW a = 1, b = "x": one row of constants (expressions already folded where possible)."""

    assignments: tuple[tuple[str, Expr], ...]
    columns: tuple[Column, ...]
    span: Span = _span()


@record
class Filter:
    """WHERE: keeps rows whose condition is true (false and null drop the row)."""

    condition: Expr
    columns: tuple[Column, ...]
    span: Span = _span()


@record
class Eval:
    """EVAL: assignments applied left to right, each seeing the ones before it. A name that already
    exists is replaced and moves to the end, as in Elasticsearch; `columns` is the result order."""

    assignments: tuple[tuple[str, Expr], ...]
    columns: tuple[Column, ...]
    span: Span = _span()


@record
class Project:
    """KEEP / DROP / RENAME reduced to one projection: (output name, input column name) pairs."""

    mapping: tuple[tuple[str, str], ...]
    columns: tuple[Column, ...]
    span: Span = _span()


@record
class Aggregate:
    """STATS ... BY: one output row per distinct combination of group keys (a multivalued key puts
    the row into every group; null is a key). Output columns: aggregates in order, then keys.

    Scalar expressions over aggregates (`round(avg(x), 2)`) are lowered by the analyser into an
    Aggregate with internal aggregate names followed by an Eval and a Project.
    """

    aggregates: tuple[tuple[str, AggCall], ...]
    groups: tuple[tuple[str, Expr], ...]
    columns: tuple[Column, ...]
    span: Span = _span()


@record
class InlineAggregate:
    """INLINE STATS ... BY: STATS's groups computed over the input, attached to every input row
    instead of collapsing them (the row count does not change).

    `aggregates` are computed per group; `outputs` are then evaluated once per group, over the
    aggregates and the groups by name (`round(avg(x), 2)` is `round($agg1, 2)`). A row belongs to
    every distinct combination of its key values (a null key is a group of its own; first key
    outermost, values in the row's order); each output column gets the results of those groups
    one after the other, nulls dropped: one group gives its value as is, several a multivalue.
    A grouping column holds the row's own value of its expression, not the group's.
    Output columns: the input columns not named like an output or a grouping, in order, then the
    outputs, then the groupings.
    """

    aggregates: tuple[tuple[str, AggCall], ...]
    groups: tuple[tuple[str, Expr], ...]
    outputs: tuple[tuple[str, Expr], ...]
    columns: tuple[Column, ...]
    span: Span = _span()


@record
class SortKey:
    expr: Expr
    descending: bool = False
    nulls_first: bool = False  # already defaulted by the analyser: False for ASC, True for DESC


@record
class Sort:
    """SORT: multivalued keys sort by their minimum ascending and their maximum descending."""

    keys: tuple[SortKey, ...]
    columns: tuple[Column, ...]
    span: Span = _span()


@record
class Limit:
    count: int
    columns: tuple[Column, ...]
    span: Span = _span()


@record
class MvExpand:
    """MV_EXPAND: one row per value of `column` (null and single values pass through unchanged)."""

    column: str
    columns: tuple[Column, ...]
    span: Span = _span()


@record
class Extract:
    """DISSECT and GROK: match `value` against a compiled regular expression whose named groups
    become new keyword (or typed, for GROK's :int/:float) columns; no match gives nulls.
    `kind` is "dissect" or "grok"; `regex` is a Python `re` pattern with named groups `g0, g1, ...`
    in the order of `outputs`; `append` maps an output to the separator joining repeated keys.
    A key captured more than once uses `g{i}`, `g{i}_1`, `g{i}_2`, ... in text order (joined with
    its `append` separator, or a multivalue for GROK). Executors apply `re.search` with re.DOTALL
    (DISSECT regexes are anchored with \\A...\\Z); builders are in esql/extract.py."""

    kind: str
    value: Expr
    regex: str
    outputs: tuple[Column, ...]
    append: tuple[tuple[str, str], ...]
    columns: tuple[Column, ...]
    span: Span = _span()


Step = Filter | Eval | Project | Aggregate | InlineAggregate | Sort | Limit | MvExpand | Extract


@record
class Plan:
    """A whole query: a source then steps. `columns` is the final output; `now` is not here: the
    executors take the query time as an argument so one plan serves every scheduled run."""

    source: Source | RowSource
    steps: tuple[Step, ...]
    query: str = field(default="", compare=False, repr=False)
    # Analysis-time warnings every executor puts first in Result.warnings, e.g. Elasticsearch's
    # "Line 1:24: Field 'h' shadowed by field at line 1:41" for STATS name collisions.
    warnings: tuple[str, ...] = field(default=(), compare=False, repr=False)

    @property
    def columns(self) -> tuple[Column, ...]:
        return self.steps[-1].columns if self.steps else self.source.columns

    @property
    def is_aggregating(self) -> bool:
        return any(isinstance(s, Aggregate) for s in self.steps)
