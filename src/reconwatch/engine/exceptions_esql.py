"""Exception items compiled into an ES|QL condition (AST) over source fields: the one matcher of
every path (a scheduled run's filter, real-time events, the alerts an exception closes)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

from reconwatch.engine.rewrite import FALSE, all_of, any_of, call, literal, or_false
from reconwatch.esql import ast
from reconwatch.ingest.dataset import Dataset
from reconwatch.plan.nodes import Column
from reconwatch.plan.values import ConversionError, convert
from reconwatch.rules.exceptions import Entry, ExceptionItem, ExceptionList
from reconwatch.types import DataType


def keep_condition(lists: Sequence[ExceptionList], fields: Mapping[str, Column]) -> ast.Expr | None:
    """`not (item1 or item2 ...)` over every list's items, or None when there are none.

    Each part is null-safe (coalesce to false) so an event missing a field is kept, as the
    Elasticsearch bool/must_not filter Kibana builds would keep it.
    """
    items = [item for lst in lists for item in lst.items]
    if not items:
        return None
    return ast.Not(any_of([_item(item, fields) for item in items]))


def _item(item: ExceptionItem, fields: Mapping[str, Column]) -> ast.Expr:
    return all_of([_entry(e, fields) for e in item.entries])


def _entry(entry: Entry, fields: Mapping[str, Column]) -> ast.Expr:
    column = fields.get(entry.field)
    positive: ast.Expr = FALSE if column is None else _positive(entry, column)
    if entry.type == "exists":
        positive = FALSE if column is None else ast.IsNull(ast.Field(entry.field), negated=True)
    return positive if entry.operator == "included" else ast.Not(positive)


def _positive(entry: Entry, column: Column) -> ast.Expr:
    """The `included` form of a match/match_any/wildcard entry: true iff any value matches."""
    ref = ast.Field(entry.field)
    if entry.type == "exists":
        return ast.IsNull(ref, negated=True)
    if entry.type == "wildcard":
        if column.type not in (DataType.KEYWORD, DataType.TEXT):
            # Kibana offers "matches" on strings only; an imported one on another type never
            # matches (on every path alike) rather than failing the run.
            return FALSE
        return or_false(ast.Like(ref, (entry.value[0],)))
    blocks = [v for v in entry.value if column.type is DataType.IP and "/" in v]
    values = [
        t for v in entry.value if v not in blocks and (t := _typed(v, column.type)) is not None
    ]
    # A term query on an ip field takes a CIDR block as its value (Kibana's "is 10.0.0.0/8").
    in_block = [or_false(call("cidr_match", ref, literal(b, DataType.KEYWORD))) for b in blocks]
    if not values:
        return any_of(in_block) if in_block else FALSE
    if in_block:
        return any_of([*in_block, _equals(ref, column, values)])
    return _equals(ref, column, values)


def _equals(ref: ast.Field, column: Column, values: list[ast.Expr]) -> ast.Expr:
    if column.multivalued:
        # A term query matches when any value of a multivalued field equals; `==` would be null.
        return any_of([or_false(call("mv_contains", ref, v)) for v in values])
    if len(values) == 1:
        return or_false(ast.Binary("==", ref, values[0]))
    return or_false(ast.In(ref, tuple(values)))


def _typed(value: str, type_: DataType) -> ast.Expr | None:
    """The value as a literal of the field's type, or None if it can never equal such a value."""
    try:
        converted = convert(value, type_)
    except ConversionError:
        return None
    return literal(converted, type_)


# The index name documents are matched under (any name: the query reads only them), and how
# many go in one query (ES|QL's LIMIT cap).
_MATCHED = "matched"
_CHUNK = 10_000
# The scheduled run's executor (its events are filtered by the same condition in DuckDB).
_BACKEND = "duckdb"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def matching(items: Sequence[ExceptionItem], sources: Sequence[object]) -> list[bool]:
    """Which documents (event sources, nested or dotted, or stored alerts) an item matches: the
    same condition a scheduled run filters its events with, typed by the documents' own fields
    (ECS types first), run by the engine over them."""
    out: list[bool] = []
    for at in range(0, len(sources), _CHUNK):
        out.extend(_matching(items, sources[at : at + _CHUNK]))
    return out


def _matching(items: Sequence[ExceptionItem], sources: Sequence[object]) -> list[bool]:
    from reconwatch.query import compile_on, run_query

    if not items or not sources:
        return [False] * len(sources)
    ids = [str(i) for i in range(len(sources))]
    # Only the fields the items read, flattened: the engine types and reads nothing else.
    read = sorted({entry.field for item in items for entry in item.entries})
    docs = [_projected(source, read) for source in sources]
    dataset = Dataset.from_stored([(_MATCHED, ids, docs)])
    source = ast.From((_MATCHED,), metadata=("_id",))
    fields = {c.name: c for c in compile_on(ast.Query((source,)), dataset).columns}
    condition = any_of([_item(item, fields) for item in items])
    query = ast.Query((source, ast.Where(condition), ast.Keep(("_id",)), ast.Limit(len(ids))))
    # The condition reads no clock; `now` is only the query's required time.
    result = run_query(query, dataset, now=_EPOCH, backend=_BACKEND)
    hit = {str(row.get("_id")) for row in result.as_dicts()}
    return [i in hit for i in ids]


def _projected(source: object, fields: Sequence[str]) -> dict[str, object]:
    """The document's values of `fields` under their dotted names (shipped nested, dotted or
    mixed; values under lists of objects gathered, as Elasticsearch indexes them)."""
    out: dict[str, object] = {}
    if not isinstance(source, Mapping):
        return out
    for name in fields:
        found = _values(source, name.split("."))
        if found:
            out[name] = found[0] if len(found) == 1 else found
    return out


def _values(node: object, parts: list[str]) -> list[object]:
    if isinstance(node, list):
        return [v for item in node for v in _values(item, parts)]
    if not parts:
        return [] if node is None or isinstance(node, Mapping) else [node]
    if not isinstance(node, Mapping):
        return []
    out: list[object] = []
    # A key may hold several parts at once ("process.executable" inside {"process": ...}).
    for i in range(len(parts), 0, -1):
        key = ".".join(parts[:i])
        if key in node:
            out.extend(_values(node[key], parts[i:]))
    return out
