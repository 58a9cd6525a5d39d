"""ES|QL abstract syntax tree: what the text says, with source spans, before any name or type is resolved.

Equality ignores spans (compare=False) so that parse(render(q)) == parse(q) holds structurally.
Every node's `span` covers its whole source text; the default name of an unnamed expression is
`span.text(query)` as Elasticsearch does.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import field
from typing import Literal as Lit

from reconwatch.errors import Span
from reconwatch.records import record

NO_SPAN = Span(0, 0, 0, 0)


def _span() -> Span:
    return field(default=NO_SPAN, compare=False, repr=False)


# ---------------------------------------------------------------------------------------------
# Expressions

LiteralKind = Lit["null", "integer", "decimal", "string", "boolean", "param"]
TimeUnit = Lit[
    "year",
    "quarter",
    "month",
    "week",
    "day",
    "hour",
    "minute",
    "second",
    "millisecond",
    "nanosecond",
]


@record
class Literal:
    """null, 42, 4.2, "text" (value already unescaped), true/false, or a ?param (value = its name)."""

    kind: LiteralKind
    value: object
    span: Span = _span()


@record
class TimeSpan:
    """`1 hour`, `61 minutes`, `1h`: amount and the normalised unit; unit_text keeps the spelling."""

    amount: int
    unit: TimeUnit
    unit_text: str = field(default="", compare=False)
    span: Span = _span()


@record
class ListLiteral:
    """`[1, 2, 3]`: a multivalue constant."""

    items: tuple[Expr, ...]
    span: Span = _span()


@record
class MapLiteral:
    """`{"fuzziness": 1, "boost": 2.0}`: named options, only as a function's last argument."""

    entries: tuple[tuple[str, Expr], ...]
    span: Span = _span()


@record
class Field:
    """A (possibly dotted, possibly back-quoted) column name: `host.os.type`, `` `AVG(x)` ``."""

    name: str
    span: Span = _span()


@record
class Call:
    """A function call; `name` lower-cased. `count(*)` has star=True and no args."""

    name: str
    args: tuple[Expr, ...]
    star: bool = False
    span: Span = _span()


@record
class Unary:
    """Arithmetic negation or plus: `-x`, `+x`."""

    op: Lit["-", "+"]
    operand: Expr
    span: Span = _span()


BinaryOp = Lit["+", "-", "*", "/", "%", "==", "!=", "<", "<=", ">", ">=", "=~"]


@record
class Binary:
    """Arithmetic or comparison."""

    op: BinaryOp
    left: Expr
    right: Expr
    span: Span = _span()


@record
class And:
    """`a AND b AND c`: one node for the whole chain (at least two operands), so that a rule with
    thousands of terms is a wide node, not a deep tree. A parenthesised chain stays its own node."""

    operands: tuple[Expr, ...]
    span: Span = _span()


@record
class Or:
    """`a OR b OR c`: one node for the whole chain, like And."""

    operands: tuple[Expr, ...]
    span: Span = _span()


@record
class Not:
    operand: Expr
    span: Span = _span()


@record
class In:
    """`x [NOT] IN (a, b, ...)`."""

    value: Expr
    items: tuple[Expr, ...]
    negated: bool = False
    span: Span = _span()


@record
class Like:
    """`x [NOT] LIKE "p"`, `x LIKE ("p1", "p2")`, and RLIKE (regex=True). Patterns are unescaped
    string values; pattern-level escapes (`\\*`) are still in them."""

    value: Expr
    patterns: tuple[str, ...]
    regex: bool = False
    negated: bool = False
    listed: bool = False  # written as a parenthesised list (kept for rendering)
    span: Span = _span()


@record
class IsNull:
    """`x IS [NOT] NULL`."""

    value: Expr
    negated: bool = False
    span: Span = _span()


@record
class Cast:
    """`x::type` (type name lower-cased as written, e.g. "ip", "long", "datetime")."""

    value: Expr
    type_name: str
    span: Span = _span()


@record
class Match:
    """`field : "query"` full-text match operator (parsed so rules load; executors refuse it)."""

    field: Expr
    query: Expr
    span: Span = _span()


Expr = (
    Literal
    | TimeSpan
    | ListLiteral
    | MapLiteral
    | Field
    | Call
    | Unary
    | Binary
    | And
    | Or
    | Not
    | In
    | Like
    | IsNull
    | Cast
    | Match
)


def children(node: Expr) -> tuple[Expr, ...]:
    """The expressions directly inside `node`, in source order."""
    if isinstance(node, Call):
        return node.args
    if isinstance(node, ListLiteral):
        return node.items
    if isinstance(node, Unary | Not):
        return (node.operand,)
    if isinstance(node, Binary):
        return (node.left, node.right)
    if isinstance(node, And | Or):
        return node.operands
    if isinstance(node, In):
        return (node.value, *node.items)
    if isinstance(node, Like | IsNull | Cast):
        return (node.value,)
    if isinstance(node, Match):
        return (node.field, node.query)
    if isinstance(node, MapLiteral):
        return tuple(v for _, v in node.entries)
    return ()


def walk(node: Expr) -> Iterator[Expr]:
    """Every expression in `node`, itself first, in source order (iterative: any depth)."""
    stack = [node]
    while stack:
        current = stack.pop()
        yield current
        stack.extend(reversed(children(current)))


# ---------------------------------------------------------------------------------------------
# Command parts


@record
class Assign:
    """`name = expr` or a bare `expr` (name None: the column is named by the expression's text)."""

    name: str | None
    expr: Expr
    span: Span = _span()


@record
class AggField:
    """One STATS aggregate: `[name =] expr [WHERE cond]`."""

    name: str | None
    expr: Expr
    where: Expr | None = None
    span: Span = _span()


@record
class SortItem:
    expr: Expr
    descending: bool = False
    nulls_first: bool | None = None  # None: the default (nulls last ASC, first DESC)
    span: Span = _span()


# ---------------------------------------------------------------------------------------------
# Commands


@record
class From:
    """`FROM idx1, idx-*, "quoted" [METADATA _id, _index]`."""

    sources: tuple[str, ...]
    metadata: tuple[str, ...] = ()
    span: Span = _span()


@record
class Row:
    fields: tuple[Assign, ...]
    span: Span = _span()


@record
class Where:
    condition: Expr
    span: Span = _span()


@record
class Eval:
    fields: tuple[Assign, ...]
    span: Span = _span()


@record
class Keep:
    """Name patterns (`*` wildcards allowed), in order."""

    patterns: tuple[str, ...]
    span: Span = _span()


@record
class Drop:
    patterns: tuple[str, ...]
    span: Span = _span()


@record
class Rename:
    """Pairs (old, new); both `old AS new` and `new = old` parse to the same pair."""

    pairs: tuple[tuple[str, str], ...]
    span: Span = _span()


@record
class Stats:
    """`STATS aggs [BY groups]`; inline=True for `INLINE STATS` (parsed; not executed)."""

    aggs: tuple[AggField, ...]
    by: tuple[Assign, ...] = ()
    inline: bool = False
    span: Span = _span()


@record
class Sort:
    items: tuple[SortItem, ...]
    span: Span = _span()


@record
class Limit:
    count: int
    span: Span = _span()


@record
class MvExpand:
    field: str
    span: Span = _span()


@record
class Dissect:
    """`DISSECT expr "pattern" [APPEND_SEPARATOR = "sep"]`."""

    value: Expr
    pattern: str
    append_separator: str | None = None
    span: Span = _span()


@record
class Grok:
    value: Expr
    pattern: str
    span: Span = _span()


@record
class Unsupported:
    """A command that parses but that reconwatch does not run (ENRICH, LOOKUP JOIN, COMPLETION,
    FORK, ...). `name` is its keyword(s) upper-cased; `text` its source text, kept for rendering."""

    name: str
    text: str
    span: Span = _span()


Command = (
    From
    | Row
    | Where
    | Eval
    | Keep
    | Drop
    | Rename
    | Stats
    | Sort
    | Limit
    | MvExpand
    | Dissect
    | Grok
    | Unsupported
)


@record
class Query:
    """A whole query: a source command then processing commands. `source` is the original text."""

    commands: tuple[Command, ...]
    source: str = field(default="", compare=False, repr=False)


def command_expressions(command: Command) -> Iterator[Expr]:
    """The top-level expressions a command holds."""
    match command:
        case Row(fields) | Eval(fields):
            yield from (a.expr for a in fields)
        case Where(condition):
            yield condition
        case Stats(aggs, by):
            for agg in aggs:
                yield agg.expr
                if agg.where is not None:
                    yield agg.where
            yield from (a.expr for a in by)
        case Sort(items):
            yield from (i.expr for i in items)
        case Dissect(value) | Grok(value):
            yield value
