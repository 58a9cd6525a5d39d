"""The fields rules read, stored as columns beside each document so a run does not parse it."""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator

import msgspec

from reconwatch.ecs.schema import ECS_FIELDS
from reconwatch.ingest import fast
from reconwatch.types import DataType as T

# The fields rules read most (the shipped rules, Elastic's network and process rules, the
# alerts' evidence) and the numeric ECS fields endpoint and network events carry: a run's reader
# also checks every numeric ECS field its sample saw (ingest.fast), so a window is read from
# these columns only when every field it reads or checks is one of them; else from the text.
# Each column costs ingest ~0.3 us of CPU per event (measured with 30 and 60): the list is short.
FIELDS: tuple[str, ...] = tuple(
    [
        "@timestamp",
        "agent.id",
        "data_stream.dataset",
        "data_stream.namespace",
        "event.action",
        "event.category",
        "event.type",
        "event.kind",
        "event.outcome",
        "event.module",
        "event.dataset",
        "event.ingested",
        "event.code",
        "event.sequence",
        "event.duration",
        "host.name",
        "host.id",
        "host.os.type",
        "process.executable",
        "process.name",
        "process.pid",
        "process.entity_id",
        "process.args",
        "process.args_count",
        "process.command_line",
        "process.parent.executable",
        "process.parent.name",
        "process.parent.entity_id",
        "process.parent.pid",
        "destination.ip",
        "destination.port",
        "destination.bytes",
        "destination.packets",
        "source.ip",
        "source.port",
        "source.bytes",
        "source.packets",
        "network.transport",
        "network.direction",
        "network.protocol",
        "network.bytes",
        "network.packets",
        "user.name",
        "user.id",
        "user.domain",
    ]
)


def column(name: str) -> str:
    """The events table's column holding field `name` (its JSON value; NULL when absent)."""
    return "f_" + "".join(c if c.isalnum() else "_" for c in name)


COLUMNS: dict[str, str] = {name: column(name) for name in FIELDS}
assert len(set(COLUMNS.values())) == len(COLUMNS), "two fields share a column name"

# The type each field's value is noted regular for (its ECS type; ingest.fast.regular_shape),
# and the field's bit in the events' `irregular` column: set when the value is not regular.
TYPES: dict[str, T] = {name: ECS_FIELDS[name] for name in FIELDS}
BITS: dict[str, int] = {name: 1 << i for i, name in enumerate(FIELDS)}
assert len(BITS) <= 63, "irregular is a BIGINT"
# Fields the events table also holds typed (the store's own reading of them): a value of one is
# regular only when DuckDB's cast of it is that column's value too, so a read of regular values
# takes the column (no parse, no cast). The store's stamp of event.ingested is written to the
# text and the column alike, to the millisecond (store.events).
TWINS: dict[str, str] = {"@timestamp": "ts", "event.ingested": "ingested"}

# A key spelled with a dot anywhere in the text (`"a.b":`, also escaped as \u002e): such a
# document can hold a field under several spellings, which the columns (read by the nested
# spelling) do not see, so it is read from its text. Any JSON string followed by a colon is
# tried, so a real key is never missed; a string value that looks like one only costs speed.
DOTTED_KEY = r'"(?:[^"\\]|\\.)*(?:\.|\\u002[eE])(?:[^"\\]|\\.)*"\s*:'


def _path(name: str) -> str:
    return "$." + ".".join('"' + part + '"' for part in name.split("."))


def insert_sql(table: str) -> str:
    """INSERT of `table`'s rows (the events' own columns) into `events` with the rule-field
    columns taken out of each source by DuckDB (one parse per document), `plain` and
    `irregular` set."""
    paths = "[" + ", ".join(_quote(_path(n)) for n in FIELDS) + "]"
    cols = ", ".join(f"rw_j[{i}] AS {c}" for i, c in enumerate(COLUMNS.values(), start=1))
    # try(): a text DuckDB's parser refuses (the store's own check passed it) is stored all
    # the same, not plain, and read from its text as before; it never fails the batch.
    return (
        f"INSERT INTO events BY NAME SELECT * EXCLUDE (rw_j), "
        f"rw_j IS NOT NULL AND NOT regexp_matches(source, {_quote(DOTTED_KEY)}) AS plain, "
        f"{cols}, {_irregular('rw_j')} AS irregular "
        f"FROM (SELECT *, try(json_extract(source, {paths})) AS rw_j FROM {table})"
    )


def _irregular(values: str) -> str:
    """SQL of the `irregular` bits of a row whose stored values are the list `values`."""
    bits = " + ".join(
        f"CASE WHEN {_regular(f'{values}[{i}]', name)} THEN 0 ELSE {BITS[name]} END"
        for i, name in enumerate(FIELDS, start=1)
    )
    return f"CASE WHEN {values} IS NULL THEN NULL ELSE {bits} END"


def _regular(value: str, name: str) -> str:
    shape = fast.regular_shape(value, TYPES[name])
    twin = TWINS.get(name)
    if twin is None:
        return shape
    return f"({shape} AND {fast.json_timestamp(value)} IS NOT DISTINCT FROM {twin})"


def regular_mask(fields: Iterable[tuple[str, T]]) -> int | None:
    """The `irregular` bits of these (field, type) pairs; None when one is not a stored field
    or is read as another type than the one its values are noted regular for."""
    mask = 0
    for name, type_ in fields:
        if TYPES.get(name) is not type_ or type_ not in fast.REGULAR_TYPES:
            return None
        mask |= BITS[name]
    return mask


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def covered(structure: str) -> dict[str, object] | None:
    """The json_transform `structure` (its JSON text) as a tree when every leaf of it is a
    stored field in some spelling, declared VARCHAR or JSON; None otherwise."""
    try:
        tree = msgspec.json.decode(structure)
    except msgspec.DecodeError:
        return None
    if not isinstance(tree, dict) or not tree:
        return None
    for name, type_ in _leaves(tree, ""):
        if name not in COLUMNS or type_ not in ("VARCHAR", "JSON"):
            return None
    return tree


def _leaves(node: dict[str, object], path: str) -> Iterator[tuple[str, object]]:
    for key, child in node.items():
        name = f"{path}.{key}" if path else key
        if isinstance(child, dict):
            yield from _leaves(child, name)
        else:
            yield name, child


def columns_select(tree: dict[str, object]) -> str:
    """SELECT items giving, for a plain document, each top-level key of the structure as
    json_transform gives it: the nested spelling from its column, every other spelling NULL
    (a plain document has no dotted key)."""
    return ", ".join(
        f"{_value(child, key, '.' in key)} AS {ident(key)}" for key, child in tree.items()
    )


def _value(node: object, name: str, dotted: bool) -> str:
    if isinstance(node, dict):
        inner = ", ".join(
            f"{ident(k)} := {_value(c, f'{name}.{k}', dotted or '.' in k)}" for k, c in node.items()
        )
        return f"struct_pack({inner})"
    if dotted:
        return f"CAST(NULL AS {node})"
    col = COLUMNS[name]
    if node == "JSON":
        # json_extract (the column) spells a JSON null 'null'; json_transform, which reads
        # the text, gives SQL NULL.
        return f"CASE WHEN CAST({col} AS VARCHAR) = 'null' THEN NULL ELSE {col} END"
    return f"json_transform({col}, '\"VARCHAR\"')"


@functools.cache
def ident(name: str) -> str:
    """`name` as an SQL identifier."""
    return '"' + name.replace('"', '""') + '"'
