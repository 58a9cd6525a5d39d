"""NDJSON read by DuckDB itself: typed leaf columns from nested and dotted keys, scalars or arrays."""

from __future__ import annotations

import codecs
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field
from itertools import combinations, pairwise
from typing import TYPE_CHECKING

from reconwatch.records import record
from reconwatch.types import DataType as T

if TYPE_CHECKING:
    import duckdb

# Error texts raised from SQL (DuckDB's error()) that make the dataset change course and re-run:
# a file the fast path cannot read exactly goes through the validating Python reader, a field
# seen holding several values becomes multivalued, an inferred type that does not fit asks for
# the full scan that infers it from every event.
SLOW = "rw-slow-input:"
MULTI = "rw-multivalued:"
RETYPE = "rw-retype:"
JSON_LEAF = "rw-json-leaf:"
# Types a single-valued leaf can be read as text (declared VARCHAR, the cheapest for DuckDB).
TEXT_TYPES = frozenset({T.KEYWORD, T.TEXT, T.IP, T.DATETIME, T.DATE_NANOS})
# How DuckDB writes a JSON float it reads as text: Java would spell some differently, so such a
# value (or a string that looks like one) sends the leaf to the JSON path.
_FLOAT_TEXT = r"-?[0-9]+(\.[0-9]+([eE][-+]?[0-9]+)?|[eE][-+]?[0-9]+)"

# Types the SQL conversions below reproduce exactly; a query needing another one reads Python.
FAST_TYPES = frozenset(
    {T.KEYWORD, T.TEXT, T.IP, T.LONG, T.INTEGER, T.DOUBLE, T.BOOLEAN, T.DATETIME, T.DATE_NANOS}
)
_SQL_TYPES = {
    T.KEYWORD: "VARCHAR",
    T.TEXT: "VARCHAR",
    T.IP: "VARCHAR",
    T.LONG: "BIGINT",
    T.INTEGER: "INTEGER",
    T.DOUBLE: "DOUBLE",
    T.BOOLEAN: "BOOLEAN",
    T.DATETIME: "TIMESTAMP",
    T.DATE_NANOS: "TIMESTAMP",
}
# Dotted-quad IPv4 without leading zeros is already canonical; anything else goes to the UDF.
_OCTET = r"(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_V4 = rf"{_OCTET}\.{_OCTET}\.{_OCTET}\.{_OCTET}"
_ISO = r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,3})?Z?"


@record
class Leaf:
    """One field the scan produces: its dotted name, type, and how a misfit value is treated."""

    name: str
    type: T
    multivalued: bool
    # "slow": a value the type cannot take means the event is bad (ECS fields: Elasticsearch
    # rejects the document); "retype": the sample-inferred type was wrong; "drop": ignore it.
    misfit: str = "slow"
    # Declared VARCHAR (value as text); a value that text cannot represent exactly (an array, an
    # object, a float, several spellings) raises JSON_LEAF and the leaf is read as JSON instead.
    as_text: bool = False


@dataclass(slots=True)
class _Node:
    children: dict[str, _Node] = field(default_factory=dict)
    leaf: bool = False
    type: str = "JSON"


def spellings(name: str) -> list[tuple[str, ...]]:
    """Every way a dotted field can be written as nested keys: a.b.c, a -> b.c, a.b -> c, ..."""
    parts = name.split(".")
    out = []
    for k in range(len(parts)):
        for cuts in combinations(range(1, len(parts)), k):
            bounds = [0, *cuts, len(parts)]
            out.append(tuple(".".join(parts[a:b]) for a, b in pairwise(bounds)))
    return out


def _tree(names: Iterable[tuple[str, str, bool]]) -> _Node | None:
    """Declared keys (with the leaf's declared type) for read_json; None when one key would be
    both a leaf and an object or have two types."""
    root = _Node()
    for name, type_, every in names:
        for keys in spellings(name) if every else [tuple(name.split("."))]:
            node = root
            for key in keys:
                node = node.children.setdefault(key, _Node())
            if node.leaf and node.type != type_:
                return None
            node.leaf, node.type = True, type_
    return root if _consistent(root) else None


def _consistent(node: _Node) -> bool:
    return all(
        not (child.leaf and child.children) and _consistent(child)
        for child in node.children.values()
    )


def _struct_type(node: _Node) -> str:
    if node.leaf:
        return node.type
    inner = ", ".join(f"{_ident(k)} {_struct_type(c)}" for k, c in node.children.items())
    return f"STRUCT({inner})"


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _access(keys: Sequence[str]) -> str:
    return ".".join(_ident(k) for k in keys)


def _scalars(expr: str, src: int, raising: bool = True) -> str:
    """A JSON value as the list of its scalar leaves (objects hold other fields; nulls none)."""
    nested = f"error({_quote(SLOW + str(src))})" if raising else "NULL"
    return (
        f"(CASE WHEN {expr} IS NULL THEN []::JSON[] "
        f"WHEN json_type({expr}) = 'ARRAY' THEN list_filter("
        f"list_transform(CAST({expr} AS JSON[]), lambda e: CASE WHEN json_type(e) = 'ARRAY' THEN {nested} "
        f"ELSE e END), lambda e: e IS NOT NULL AND json_type(e) NOT IN ('OBJECT', 'NULL')) "
        f"WHEN json_type({expr}) IN ('OBJECT', 'NULL') THEN []::JSON[] ELSE [{expr}] END)"
    )


def _let(value: str, name: str, body: str) -> str:
    """`body` with `name` bound to `value`, which is written (and computed) once: DuckDB hoists a
    repeated subexpression out of CASE branches and would compute it for every row."""
    return f"list_transform([{value}], lambda {name}: {body})[1]"


def _convert(v: str, leaf: Leaf, src: int) -> str:
    """One JSON scalar `v` as a value of the leaf's type, as plan.documents.convert_leaf would."""
    jt = f"json_type({v})"
    s = "rw_s"
    t = leaf.type
    string = f"json_extract_string({v}, '$')"
    if t in (T.KEYWORD, T.TEXT):
        return (
            f"CASE {jt} WHEN 'VARCHAR' THEN {string} WHEN 'BOOLEAN' THEN CAST({v} AS VARCHAR) "
            f"WHEN 'BIGINT' THEN CAST({v} AS VARCHAR) WHEN 'UBIGINT' THEN CAST({v} AS VARCHAR) "
            f"WHEN 'DOUBLE' THEN rw_double_text(CAST({v} AS DOUBLE)) END"
        )
    if t is T.IP:
        canon = f"CASE WHEN regexp_full_match({s}, '{_V4}') THEN {s} ELSE rw_ip_canon({s}) END"
        return f"CASE WHEN {jt} = 'VARCHAR' THEN {_let(string, s, canon)} END"
    if t in (T.DATETIME, T.DATE_NANOS):
        parsed = (
            f"CASE WHEN regexp_full_match({s}, '{_ISO}') THEN TRY_CAST({s} AS TIMESTAMP) "
            f"WHEN regexp_full_match({s}, '-?[0-9]+') THEN epoch_ms(TRY_CAST({s} AS BIGINT)) "
            f"ELSE rw_parse_date({s}) END"
        )
        return (
            f"CASE {jt} WHEN 'BIGINT' THEN epoch_ms(TRY_CAST({v} AS BIGINT)) "
            f"WHEN 'UBIGINT' THEN epoch_ms(TRY_CAST({v} AS BIGINT)) "
            f"WHEN 'VARCHAR' THEN {_let(string, s, parsed)} END"
        )
    if t in (T.LONG, T.INTEGER):
        return f"CASE WHEN {jt} IN ('BIGINT', 'UBIGINT') THEN TRY_CAST({v} AS {_SQL_TYPES[t]}) END"
    if t is T.DOUBLE:
        return f"CASE WHEN {jt} IN ('BIGINT', 'UBIGINT', 'DOUBLE') THEN CAST({v} AS DOUBLE) END"
    if t is T.BOOLEAN:
        return f"CASE {jt} WHEN 'BOOLEAN' THEN CAST({v} AS BOOLEAN) END"
    msg = f"no fast conversion to {t.value}"
    raise ValueError(msg)


def _misfit(leaf: Leaf, src: int) -> str:
    if leaf.misfit == "drop":
        return "NULL"
    signal = SLOW + str(src) if leaf.misfit == "slow" else RETYPE + leaf.name
    return f"error({_quote(signal)})"


def text_column(leaf: Leaf, src: int, raising: bool = True) -> str:
    """A single-valued leaf declared VARCHAR: DuckDB unescapes strings and spells numbers and
    booleans as JSON does; what text cannot say exactly (or a dotted spelling of the field,
    which may add values) asks for the JSON declaration. Not `raising`: such values are null
    (text_guard raised for them before)."""
    *others, v = [_access(keys) for keys in spellings(leaf.name)]
    redo = f"error({_quote(JSON_LEAF + leaf.name)})" if raising else "NULL"
    bad = _misfit(leaf, src) if raising else "NULL"
    if leaf.type is T.IP:
        conv = (
            f"CASE WHEN regexp_full_match({v}, '{_V4}') THEN {v} "
            f"ELSE coalesce(rw_ip_canon({v}), {bad}) END"
        )
    elif leaf.type in (T.DATETIME, T.DATE_NANOS):
        conv = (
            f"CASE WHEN regexp_full_match({v}, '{_ISO}') "
            f"THEN coalesce(TRY_CAST({v} AS TIMESTAMP), {bad}) "
            f"WHEN regexp_full_match({v}, '-?[0-9]+') "
            f"THEN coalesce(epoch_ms(TRY_CAST({v} AS BIGINT)), {bad}) "
            f"ELSE coalesce(rw_parse_date({v}), {bad}) END"
        )
    elif raising:
        conv = f"CASE WHEN {_floaty(v)} THEN {redo} ELSE {v} END"
    else:
        conv = v
    if not raising:
        return f"CASE WHEN {v} IS NULL THEN NULL ELSE {conv} END"
    dotted = "".join(f"WHEN {x} IS NOT NULL THEN {redo} " for x in others)
    return (
        f"CASE {dotted}WHEN {v} IS NULL THEN NULL "
        f"WHEN left({v}, 1) IN ('[', '{{') THEN {redo} ELSE {conv} END"
    )


def _floaty(v: str) -> str:
    # Only text starting like a number can be a float; most keywords never reach the regex.
    numeric = f"(left({v}, 1) IN ('-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9'))"
    return f"({numeric} AND regexp_full_match({v}, '{_FLOAT_TEXT}'))"


def text_guard(leaf: Leaf, src: int) -> str:
    """True for every event, or an error naming what text_column(raising=False) cannot read."""
    *others, v = [_access(keys) for keys in spellings(leaf.name)]
    redo = f"error({_quote(JSON_LEAF + leaf.name)})"
    bad = _misfit(leaf, src)
    fits = []
    if leaf.misfit == "drop":
        pass  # a misfit is null in the value too
    elif leaf.type is T.IP:
        fits = [f"regexp_full_match({v}, '{_V4}')", f"rw_ip_canon({v}) IS NOT NULL"]
    elif leaf.type in (T.DATETIME, T.DATE_NANOS):
        # The same branches as text_column's conversion, so a value fits exactly when it has one.
        fits = [
            (
                f"CASE WHEN regexp_full_match({v}, '{_ISO}') "
                f"THEN TRY_CAST({v} AS TIMESTAMP) IS NOT NULL "
                f"WHEN regexp_full_match({v}, '-?[0-9]+') "
                f"THEN epoch_ms(TRY_CAST({v} AS BIGINT)) IS NOT NULL "
                f"ELSE rw_parse_date({v}) IS NOT NULL END"
            )
        ]
    whens = [f"WHEN {x} IS NOT NULL THEN {redo}" for x in others]
    whens += [f"WHEN {v} IS NULL THEN true", f"WHEN left({v}, 1) IN ('[', '{{') THEN {redo}"]
    if leaf.type in (T.KEYWORD, T.TEXT):
        whens.append(f"WHEN {_floaty(v)} THEN {redo}")
    # One WHEN each: CASE evaluates a branch only for the rows the earlier ones left.
    whens += [f"WHEN {f} THEN true" for f in fits]
    last = bad if fits else "true"
    return f"CASE {' '.join(whens)} ELSE {last} END"


def _checked(v: str, leaf: Leaf, src: int, raising: bool = True) -> str:
    """The conversion, with a misfit either raised (to change course) or dropped."""
    conv = _convert(v, leaf, src)
    if leaf.misfit == "drop" or not raising:
        return conv
    signal = SLOW + str(src) if leaf.misfit == "slow" else RETYPE + leaf.name
    return f"coalesce({conv}, error({_quote(signal)}))"


def leaf_values(leaf: Leaf, src: int, raising: bool = True) -> str:
    """SQL for the typed list of all values of a leaf, from every spelling of its keys."""
    parts = [_scalars(_access(keys), src, raising) for keys in spellings(leaf.name)]
    raw = parts[0] if len(parts) == 1 else f"list_concat({', '.join(parts)})"
    checked = _checked("v", leaf, src, raising)
    typed = f"list_filter(list_transform({raw}, lambda v: {checked}), lambda v: v IS NOT NULL)"
    return f"CAST({typed} AS {_SQL_TYPES[leaf.type]}[])"


# How a field the query does not read is declared so that DuckDB's own conversion rejects what
# Elasticsearch would (a file with such a value goes to the validating reader); None: not checked.
_CHECK_TYPES = {T.LONG: "BIGINT", T.INTEGER: "BIGINT", T.DOUBLE: "DOUBLE", T.BOOLEAN: "BOOLEAN"}


def check_type(type_: T) -> str | None:
    return _CHECK_TYPES.get(type_)


def leaf_column(leaf: Leaf, vals: str, raising: bool = True) -> str:
    """The leaf from its value list `vals`: a sorted list when multivalued, else one value."""
    return _let(vals, "rw_l", _from_list(leaf, "rw_l", raising))


def _from_list(leaf: Leaf, vals: str, raising: bool = True) -> str:
    if leaf.multivalued:
        if leaf.type in (T.KEYWORD, T.TEXT):
            return f"CASE WHEN len({vals}) > 0 THEN list_sort(list_distinct({vals})) END"
        if leaf.type is T.IP:
            pairs = (
                f"list_transform(list_distinct({vals}), lambda x: {{'k': rw_ip_key(x), 'v': x}})"
            )
            return f"CASE WHEN len({vals}) > 0 THEN list_transform(list_sort({pairs}), lambda x: x.v) END"
        return f"CASE WHEN len({vals}) > 0 THEN list_sort({vals}) END"
    many = f"error({_quote(MULTI + leaf.name)})" if raising else "NULL"
    return f"CASE len({vals}) WHEN 0 THEN NULL WHEN 1 THEN {vals}[1] ELSE {many} END"


def _scalar_cases(leaf: Leaf) -> tuple[list[tuple[str, str]], str, str]:
    """For a single-valued JSON leaf: the (condition, value) pairs reading the usual cases
    straight from the JSON text, when nothing is there, and when only the nested spelling is."""
    xs = [_access(keys) for keys in spellings(leaf.name)]
    *others, v = xs
    r = f"CAST({v} AS VARCHAR)"
    # Minified JSON: a one-string array without escapes has no '","' (that would be two strings).
    one_string = (
        f"starts_with({r}, '[\"') AND ends_with({r}, '\"]') AND NOT contains({r}, '\\') "
        f"AND NOT contains({r}, '\",\"')"
    )
    shapes = [
        (f"starts_with({r}, '\"') AND NOT contains({r}, '\\')", f"{r}[2:-2]"),
        (one_string, f"{r}[3:-3]"),
    ]
    whens = []
    number = _plain_number(r, leaf)
    if number is not None:
        whens.append(number)
    for shape, text in shapes:
        quick = _plain_string(text, leaf)
        if quick is not None:
            whens.append((f"{shape} AND {quick[0]}", quick[1]))
    alone = " AND ".join([f"{v} IS NOT NULL", *(f"{x} IS NULL" for x in others)])
    nothing = " AND ".join(f"{x} IS NULL" for x in xs)
    return whens, nothing, alone


def scalar_column(leaf: Leaf, src: int, raising: bool = True) -> str:
    """A single-valued leaf declared JSON: straight from the JSON text in the usual cases (only
    the nested spelling present, holding a plain string, a one-string array as Defend writes
    event.type, an integer or a boolean); anything else takes the general list path."""
    whens, nothing, alone = _scalar_cases(leaf)
    general = leaf_column(leaf, leaf_values(leaf, src, raising), raising)
    cases = " ".join(f"WHEN {cond} THEN {value}" for cond, value in whens)
    fast = f"CASE {cases} ELSE {general} END" if whens else general
    return f"CASE WHEN {nothing} THEN NULL WHEN {alone} THEN {fast} ELSE {general} END"


def scalar_guard(leaf: Leaf, src: int) -> str:
    """True for every event, or the error the general path raises (the usual cases need none)."""
    whens, nothing, alone = _scalar_cases(leaf)
    general = leaf_column(leaf, leaf_values(leaf, src))
    usual = " OR ".join(f"({cond})" for cond, _value in whens)
    quick = f"WHEN {alone} AND ({usual}) THEN true " if whens else ""
    return f"CASE WHEN {nothing} THEN true {quick}ELSE {_evaluated(general)} END"


def list_guard(leaf: Leaf, src: int) -> str:
    """True for every event, or the error a multivalued leaf's conversion raises."""
    nothing = " AND ".join(f"{_access(keys)} IS NULL" for keys in spellings(leaf.name))
    return f"CASE WHEN {nothing} THEN true ELSE {_evaluated(leaf_values(leaf, src))} END"


def _evaluated(expr: str) -> str:
    # Always true, but DuckDB must compute `expr` (and raise its errors) to know it.
    return f"(({expr}) IS NULL OR ({expr}) IS NOT NULL)"


def _plain_number(r: str, leaf: Leaf) -> tuple[str, str] | None:
    """(condition, value) for a JSON integer or boolean in range, read from its text."""
    if leaf.type is T.LONG:
        return f"regexp_full_match({r}, '-?[0-9]{{1,18}}')", f"CAST({r} AS BIGINT)"
    if leaf.type is T.INTEGER:
        return f"regexp_full_match({r}, '-?[0-9]{{1,9}}')", f"TRY_CAST({r} AS INTEGER)"
    if leaf.type is T.BOOLEAN:
        return f"{r} IN ('true', 'false')", f"{r} = 'true'"
    return None


def _plain_string(text: str, leaf: Leaf) -> tuple[str, str] | None:
    """(condition, value) for a plain string `text` of the leaf's type; None: no shortcut."""
    if leaf.type in (T.KEYWORD, T.TEXT):
        return "true", text
    if leaf.type is T.IP:
        return f"regexp_full_match({text}, '{_V4}')", text
    if leaf.type in (T.DATETIME, T.DATE_NANOS):
        cond = f"regexp_full_match({text}, '{_ISO}') AND TRY_CAST({text} AS TIMESTAMP) IS NOT NULL"
        return cond, f"TRY_CAST({text} AS TIMESTAMP)"
    return None


def source_select(
    path: str,
    src: int,
    leaves: Sequence[Leaf],
    checks: Sequence[Leaf],
    guarded: Collection[str] | None = None,
) -> str | None:
    """SELECT __src and each leaf from one NDJSON file; `checks` are fields only validated.
    None when the keys cannot be declared (a key used both as a value and as an object).

    A leaf in `guarded` (all when None: the query's filters read them) is checked for every
    event by an error-raising condition in the WHERE and converted without raising: DuckDB
    pushes no filter below a conversion that can raise, so the query's own filters then run
    first and the other leaves are converted (and checked) only for the events they keep."""
    declared = [(leaf.name, "VARCHAR" if leaf.as_text else "JSON", True) for leaf in leaves]
    # Checked in the nested spelling only, the one Elastic's agents write.
    declared += [(c.name, _CHECK_TYPES[c.type], False) for c in checks]
    tree = _tree(declared)
    if tree is None:
        return None
    # read_json needs a column, and reads one declared column several times slower than two.
    for spare in ("@timestamp", "message"):
        if len(tree.children) < 2 and spare not in tree.children:
            tree.children[spare] = _Node(leaf=True)
    columns = ", ".join(f"{_quote(k)}: {_quote(_struct_type(c))}" for k, c in tree.children.items())
    # DuckDB's default object size limit (16 MB) also sizes its read buffers; a longer line
    # fails the read and the file goes to the Python reader.
    reader = f"read_json({_quote(path)}, format='newline_delimited', columns={{{columns}}})"
    # Referenced, so DuckDB converts (and checks) them; the condition itself is always true.
    conds = [
        f"({x} IS NULL OR {x} IS NOT NULL)"
        for x in (_access(tuple(c.name.split("."))) for c in checks)
    ]
    return _leaf_select(reader, src, leaves, conds, guarded)


# JSON types a stored value of a checked type may have without the exact reader's look.
_JSON_FITS = {
    T.LONG: "'BIGINT', 'UBIGINT'",
    T.INTEGER: "'BIGINT', 'UBIGINT'",
    T.DOUBLE: "'BIGINT', 'UBIGINT', 'DOUBLE'",
    T.BOOLEAN: "'BOOLEAN'",
}


def json_column_select(
    relation: Callable[[str], str],
    src: int,
    leaves: Sequence[Leaf],
    checks: Sequence[Leaf],
    guarded: Collection[str] | None = None,
    extra: Sequence[str] = (),
) -> str | None:
    """source_select over JSON documents held in a table column: `relation(structure)` (an SQL
    string literal) is the SQL relation whose columns are the documents' top-level keys as
    json_transform reads them with `structure`; `extra`: more items of the SELECT. A checked field holding a
    JSON type its ECS type may not take raises SLOW: the validating reader decides exactly."""
    declared = [(leaf.name, "VARCHAR" if leaf.as_text else "JSON", True) for leaf in leaves]
    declared += [(c.name, "JSON", False) for c in checks]
    tree = _tree(declared)
    if tree is None:
        return None
    if not tree.children:  # json_transform needs a key to read
        tree.children["@timestamp"] = _Node(leaf=True)
    structure = (
        "{" + ", ".join(f"{_json_key(k)}: {_structure(c)}" for k, c in tree.children.items()) + "}"
    )
    conds = []
    for c in checks:
        x = _access(tuple(c.name.split(".")))
        slow = f"error({_quote(SLOW + str(src))})"
        conds.append(
            f"CASE WHEN {x} IS NULL OR json_type({x}) IN ({_JSON_FITS[c.type]}) "
            f"THEN true ELSE {slow} END"
        )
    return _leaf_select(relation(_quote(structure)), src, leaves, conds, guarded, extra)


def _json_key(key: str) -> str:
    return '"' + key.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _structure(node: _Node) -> str:
    """json_transform's structure for a node: a type name in quotes, or an object of them."""
    if node.leaf:
        return f'"{node.type}"'
    inner = ", ".join(f"{_json_key(k)}: {_structure(c)}" for k, c in node.children.items())
    return "{" + inner + "}"


def _leaf_select(
    reader: str,
    src: int,
    leaves: Sequence[Leaf],
    conds: list[str],
    guarded: Collection[str] | None,
    extra: Sequence[str] = (),
) -> str:
    items = [f"CAST({src} AS INTEGER) AS __src"]
    for leaf in leaves:
        # A retyped field changes every event's value: its misfits count wherever they are.
        guard = guarded is None or leaf.name in guarded or leaf.misfit == "retype"
        if leaf.as_text:
            sql = text_column(leaf, src, raising=not guard)
            check = text_guard(leaf, src)
        elif leaf.multivalued:
            sql = leaf_column(leaf, leaf_values(leaf, src, not guard), not guard)
            check = list_guard(leaf, src)
        else:
            sql = scalar_column(leaf, src, raising=not guard)
            check = scalar_guard(leaf, src)
        if guard:
            conds.append(check)
        items.append(f"CAST({sql} AS {_sql_type(leaf)}) AS {_ident(leaf.name)}")
    items.extend(extra)
    where = f" WHERE {' AND '.join(conds)}" if conds else ""
    return f"SELECT {', '.join(items)} FROM {reader}{where}"


def _sql_type(leaf: Leaf) -> str:
    base = _SQL_TYPES[leaf.type]
    return f"{base}[]" if leaf.multivalued else base


def deep_line_candidates(con: duckdb.DuckDBPyConnection, path: str, depth: int) -> list[str] | None:
    """The lines of an NDJSON file holding more than `depth` opening brackets (only they can nest
    deeper than `depth`), read by DuckDB as raw text; None when DuckDB cannot read it so (the
    file then goes to the Python reader, which decides line by line)."""
    # One text column per line: no quoting, and a separator (US, 0x1f) that JSON text cannot hold
    # outside a string, where it would be escaped; lines as long as read_json takes (16 MB).
    sql = (
        "SELECT l FROM read_csv(?, columns={'l': 'VARCHAR'}, header=false, delim='\x1f', "
        "quote='', escape='', auto_detect=false, max_line_size=17000000) "
        "WHERE strlen(l) > ? AND strlen(l) - strlen(replace(replace(l, '[', ''), '{', '')) > ?"
    )
    try:
        rows = con.execute(sql, [path, 2 * depth, depth]).fetchall()
    except _duckdb_error():
        return None
    return [str(r[0]) for r in rows]


# What the pre-check below reads at a time, and the longest line it vouches for (read_csv's
# max_line_size above, less a margin).
_CHUNK = 1 << 20
_LONGEST_LINE = 16_000_000
# Every byte but the opening brackets and the newline, deleted by bytes.translate (C speed).
_NOT_OPENING = bytes(b for b in range(256) if b not in b"{[\n")


def _translated_count(chunk: bytes, carried: int, depth: int) -> int:
    """-1 if a line of `chunk` (the first continuing one with `carried` opening brackets) has
    more than `depth` of them, else those of its last line: bytes.translate keeps only the
    brackets and newlines, at C speed."""
    counts = chunk.translate(None, _NOT_OPENING).split(b"\n")
    if carried + len(counts[0]) > depth or max(map(len, counts[1:]), default=0) > depth:
        return -1
    return carried + len(counts[0]) if len(counts) == 1 else len(counts[-1])


def _compiled_count() -> Callable[[bytes | memoryview, int, int], int] | None:
    """The compiled count (_brackets.c), None where the install could not build it."""
    try:
        from reconwatch.ingest._brackets import opening_brackets
    except ImportError:
        return None
    return opening_brackets


_compiled = _compiled_count()
# What the compiled count returns for a chunk with a CR, a US byte or non-ASCII text.
_ODD = -2
# Names DuckDB's readers decompress by their extension.
_COMPRESSED_NAMES = (".gz", ".gzip", ".zst", ".zstd", ".bz2", ".xz", ".lz4", ".snappy")


def no_deep_line(path: str, depth: int) -> bool:
    """True when `deep_line_candidates` would find nothing in this plain file: no line holds
    more than `depth` opening brackets. Counted in C (_brackets.c, else bytes.translate): about
    a third (a half) of the CPU of DuckDB's raw-line read. False ("ask DuckDB") also wherever that read could fail or differ:
    a compressed name, bytes that are not UTF-8, a CR or a US byte (0x1f), a line near its size
    limit; the caller then runs it, so what it finds, or its failure, decides as before."""
    if path.lower().endswith(_COMPRESSED_NAMES):
        return False
    utf8 = codecs.getincrementaldecoder("utf-8")()
    pending = False  # a UTF-8 sequence continues into the next chunk
    line = 0  # bytes of the line in progress
    opening = 0  # its opening brackets
    # One buffer, refilled: it stays in the CPU's cache, where a new 16 MB bytes object per
    # read cost its page faults (0.30 -> 0.23 CPU s for the 753 MB bench file).
    buffer = bytearray(_CHUNK)
    view = memoryview(buffer)
    try:
        with open(path, "rb", buffering=0) as fh:
            while size := fh.readinto(buffer):
                # The compiled count also finds a CR, a US byte or text that is not ASCII (-2);
                # such a chunk, and every chunk without it, is looked at here as bytes.
                counted = (
                    _ODD if pending or _compiled is None else _compiled(view[:size], opening, depth)
                )
                if counted == _ODD:
                    chunk = bytes(view[:size])
                    if b"\r" in chunk or b"\x1f" in chunk:
                        return False
                    if pending or not chunk.isascii():
                        utf8.decode(chunk)
                        pending = bool(utf8.getstate()[0])
                    counted = _translated_count(chunk, opening, depth)
                if counted < 0:
                    return False
                opening = counted
                first, last = buffer.find(b"\n", 0, size), buffer.rfind(b"\n", 0, size)
                if line + (size if first < 0 else first) > _LONGEST_LINE:
                    return False
                line = line + size if first < 0 else size - last - 1
            utf8.decode(b"", final=True)
    except (OSError, UnicodeDecodeError):
        return False
    return True


def file_texts(path: str) -> str:
    """SQL of an NDJSON file's lines as JSON texts, one column."""
    return f"SELECT json FROM read_ndjson_objects({_quote(path)})"


def leaf_names(con: duckdb.DuckDBPyConnection, texts: str) -> set[str] | None:
    """Every field (dotted leaf path holding a value) some event has, listed by DuckDB from the
    merged structure of all of them: `texts` is SQL of the events' JSON texts (file_texts, a
    store's). None when DuckDB cannot read them or the structure hides leaves (a key holding
    objects in some events and values in others, or values of several JSON kinds: DuckDB merges
    those into one JSON type)."""
    sql = f"SELECT json_group_structure(CAST(t AS JSON)) FROM ({texts}) AS r(t)"
    try:
        rows = con.execute(sql).fetchall()  # all: fetchone leaves the result open
    except _duckdb_error():
        return None
    row = rows[0] if rows else None
    if row is None or row[0] is None:
        return set()  # no line at all
    import json

    out: set[str] = set()
    return out if _structure_leaves(json.loads(str(row[0])), "", out) else None


def _structure_leaves(node: object, prefix: str, out: set[str]) -> bool:
    """Add the leaf paths of a json_structure to `out`; False where it cannot tell them."""
    if isinstance(node, dict):
        return all(
            _structure_leaves(v, f"{prefix}.{k}" if prefix else str(k), out)
            for k, v in node.items()
        )
    if isinstance(node, list):
        return all(_structure_leaves(v, prefix, out) for v in node)
    if node == "NULL":
        return True  # only nulls (or empty arrays): no value, not a field
    if node == "JSON" or not prefix:
        return False  # mixed kinds, maybe objects among them; or a line that is not an object
    out.add(prefix)
    return True


def _duckdb_error() -> type[Exception]:
    """duckdb.Error, imported when a read through DuckDB fails (not by every command)."""
    import duckdb

    return duckdb.Error


# -- values a store vouches for ------------------------------------------------------------------
#
# A store that keeps a field's JSON value in a column of its own (as json_extract writes it:
# minified, strings quoted) notes at ingest whether that value is "regular" for the field's
# type: of a shape every check above lets through, read by the check's own branch for it. A
# read of rows whose values are all regular (regular_select) converts them with no check and
# gets the values the checked read gets.
#
#   keyword, text: absent, null, a string, or an array of strings only;
#   ip: absent, null, or a string holding a canonical dotted-quad IPv4 address (_V4);
#   date: absent, null, or a string _ISO matches that DuckDB casts to a timestamp;
#   long (integer): absent, null, or an integer of at most 18 (9) digits.
#
# Anything else (a number or boolean where text is expected, IPv6, an epoch date, a float, a
# nested array, an object) is irregular: such rows are read with the checks, as before.
REGULAR_TYPES = frozenset({T.KEYWORD, T.TEXT, T.IP, T.DATETIME, T.DATE_NANOS, T.LONG, T.INTEGER})
_STRING_ARRAY = _quote(r'\[("([^"\\]|\\.)*"(,"([^"\\]|\\.)*")*)?\]')
_QUOTED_V4 = _quote(f'"{_V4}"')
_QUOTED_ISO = _quote(f'"{_ISO}"')
_DIGITS = {T.LONG: 18, T.INTEGER: 9}


def json_timestamp(j: str) -> str:
    """SQL: the JSON string `j` cast to a timestamp (NULL when it is none): how a regular date
    is read, and what a stored typed twin of it must equal."""
    return f"TRY_CAST(json_extract_string({j}, '$') AS TIMESTAMP)"


def regular_shape(j: str, type_: T) -> str:
    """SQL, true when the JSON text `j` (a JSON value as json_extract writes it; NULL when the
    field is absent) is regular for `type_`, false otherwise (also for a type not in
    REGULAR_TYPES)."""
    if type_ not in REGULAR_TYPES:
        return "false"
    text = f"CAST({j} AS VARCHAR)"
    whens = [f"WHEN {j} IS NULL THEN true", f"WHEN {text} = 'null' THEN true"]
    if type_ in (T.KEYWORD, T.TEXT):
        whens.append(f"WHEN left({text}, 1) = '\"' THEN true")
        whens.append(f"WHEN left({text}, 1) = '[' THEN regexp_full_match({text}, {_STRING_ARRAY})")
    elif type_ is T.IP:
        whens.append(f"WHEN regexp_full_match({text}, {_QUOTED_V4}) THEN true")
    elif type_ in (T.DATETIME, T.DATE_NANOS):
        cast = json_timestamp(j)
        whens.append(f"WHEN regexp_full_match({text}, {_QUOTED_ISO}) THEN {cast} IS NOT NULL")
    else:
        whens.append(f"WHEN regexp_full_match({text}, '-?[0-9]{{1,{_DIGITS[type_]}}}') THEN true")
    return f"(CASE {' '.join(whens)} ELSE false END)"


def regular_select(
    relation: str,
    src: int,
    leaves: Sequence[Leaf],
    guarded: Collection[str] | None = None,
    extra: Sequence[str] = (),
    typed: Collection[str] = (),
) -> str:
    """What json_column_select reads, over rows whose every value of `leaves` is regular for the
    leaf's type: `relation` is SQL of those rows with each leaf's stored JSON value in a column
    named by the field (for a field in `typed`, the value already as the regular value reads,
    a date's timestamp). No value is checked; the one thing a regular value can still ask for is
    a single-valued leaf holding an array of several strings (MULTI), raised where the checked
    read raises it: for every row when the query's filters read the leaf (`guarded`), else for
    the rows they keep."""
    items = [f"CAST({src} AS INTEGER) AS __src"]
    conds = []
    for leaf in leaves:
        if leaf.type not in REGULAR_TYPES:
            msg = f"no regular reading of {leaf.type.value}"
            raise ValueError(msg)
        guard = guarded is None or leaf.name in guarded or leaf.misfit == "retype"
        c = _ident(leaf.name)
        if guard and not leaf.multivalued and leaf.type in (T.KEYWORD, T.TEXT):
            many = f"error({_quote(MULTI + leaf.name)})"
            conds.append(f"CASE WHEN {_several(c)} THEN {many} ELSE true END")
        value = _regular_value(leaf, c, raising=not guard, typed=leaf.name in typed)
        items.append(f"CAST({value} AS {_sql_type(leaf)}) AS {c}")
    items.extend(extra)
    where = f" WHERE {' AND '.join(conds)}" if conds else ""
    return f"SELECT {', '.join(items)} FROM {relation}{where}"


def _several(c: str) -> str:
    return f"(left(CAST({c} AS VARCHAR), 1) = '[' AND json_array_length({c}) > 1)"


def _regular_value(leaf: Leaf, c: str, raising: bool, typed: bool = False) -> str:
    """A regular JSON value `c` as the leaf's value, by the branch the checked read takes
    (`typed`: `c` is that value already, for a date)."""
    text = f"CAST({c} AS VARCHAR)"
    string = f"json_extract_string({c}, '$')"
    t = leaf.type
    if typed and t not in (T.DATETIME, T.DATE_NANOS):
        msg = f"no typed reading of {t.value}"
        raise ValueError(msg)
    if typed:
        value = c
    elif t in (T.KEYWORD, T.TEXT):
        array = f"left({text}, 1) = '['"
        if leaf.multivalued:
            vals = f"CASE WHEN {array} THEN CAST({c} AS VARCHAR[]) ELSE [{string}] END"
            absent = f"{c} IS NULL OR {text} = 'null'"
            return f"CASE WHEN {absent} THEN NULL ELSE {leaf_column(leaf, vals)} END"
        many = f"error({_quote(MULTI + leaf.name)})" if raising else "NULL"
        one = (
            f"CASE json_array_length({c}) WHEN 0 THEN NULL "
            f"WHEN 1 THEN json_extract_string({c}, '$[0]') ELSE {many} END"
        )
        return f"CASE WHEN {array} THEN {one} ELSE {string} END"
    elif t is T.IP:
        value = string
    elif t in (T.DATETIME, T.DATE_NANOS):
        value = json_timestamp(c)
    else:  # a regular integer's text is its digits ('null' is no number: NULL)
        value = f"TRY_CAST({text} AS {_SQL_TYPES[t]})"
    if not leaf.multivalued:
        return value
    return f"CASE WHEN {value} IS NULL THEN NULL ELSE {leaf_column(leaf, f'[{value}]')} END"
