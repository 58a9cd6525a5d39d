"""Parquet read by DuckDB itself: a file's typed columns as the executors' columns, where each maps exactly."""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from reconwatch.ingest import fast
from reconwatch.plan import values
from reconwatch.types import DataType as T

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa

# The validating reader (ingest.read.read_parquet) turns each row into Python values
# (pyarrow's to_pylist), flattens it (struct children and dotted names meet in one dotted
# field, lists and nulls dropped into the leaf list) and converts every leaf with
# plan.documents.convert_leaf. This reader reproduces that in SQL for the column types below,
# each against the field types it converts to exactly (_CONVERSIONS); a file holding any other
# column type, or a value one of its columns' conversions does not take exactly, is read by the
# validating reader, which decides (and reports) as it always did.

# Physical kinds of leaf columns this reader maps (Arrow types, as pyarrow reads the file).
STRING, INT, UINT64, FLOAT, BOOL, TIMESTAMP = "string", "int", "uint64", "float", "bool", "ts"
# What a timestamp's Python value can hold (pyarrow's to_pylist fails the file outside it).
_FIRST = "TIMESTAMP '0001-01-01 00:00:00'"
_LAST = "TIMESTAMP '9999-12-31 23:59:59.999999'"
# Dotted-quad IPv4 without leading zeros, canonical as it is (fast._V4 in Python).
_V4 = re.compile(fast._V4)


@dataclass(frozen=True, slots=True)
class LeafColumn:
    """One leaf column of a file: the dotted field it holds values of, the SQL reaching it, its
    kind, and whether it is a list (each non-null element a value)."""

    field: str
    access: str
    kind: str
    is_list: bool
    arrow: str = ""  # its Arrow type: files alike in every column are read as one


def file_columns(path: Path) -> list[LeafColumn] | None:
    """The file's leaf columns in the order the validating reader meets them; None when it
    cannot be read here or holds a column this reader does not map (a map, a list of structs,
    binary, dates, decimals, nanosecond or zoned timestamps, ...)."""
    import pyarrow.parquet as pq

    try:
        schema = pq.read_schema(path)
    except Exception:  # pyarrow's own errors too (a type it does not implement ...)
        return None
    out: list[LeafColumn] = []
    if not _leaves(list(schema), "", None, out):
        return None
    return out


def _leaves(
    fields: Sequence[pa.Field], prefix: str, parent: str | None, out: list[LeafColumn]
) -> bool:
    # DuckDB binds names without regard to case: two such children would not be told apart.
    names = [f.name for f in fields]
    if len({n.lower() for n in names}) != len(names) or "" in names:
        return False
    import pyarrow as pa

    for f in fields:
        name = f"{prefix}.{f.name}" if prefix else f.name
        access = (
            fast._ident(f.name)
            if parent is None
            else f"struct_extract({parent}, {fast._quote(f.name)})"
        )
        t = f.type
        if pa.types.is_struct(t):
            if not _leaves(list(t), name, access, out):
                return False
            continue
        is_list = pa.types.is_list(t) or pa.types.is_large_list(t)
        kind = _kind(t.value_type if is_list else t)
        if kind is None:
            return False
        out.append(LeafColumn(name, access, kind, is_list, str(t)))
    return True


def _kind(t: pa.DataType) -> str | None:
    import pyarrow as pa

    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return STRING
    if pa.types.is_boolean(t):
        return BOOL
    if pa.types.is_uint64(t):
        return UINT64
    if pa.types.is_integer(t):
        return INT
    if pa.types.is_float32(t) or pa.types.is_float64(t):
        return FLOAT
    if pa.types.is_timestamp(t) and t.tz is None and t.unit in ("s", "ms", "us"):
        return TIMESTAMP
    return None


# (kind, field type) -> (the value as the field's type, the condition under which it is exactly
# what convert_leaf gives; a value outside it is one convert_leaf refuses or one this reader
# cannot tell, and sends the file to the validating reader). `x`: a non-null value.
Conversion = Callable[[str], tuple[str, str]]


def _text(x: str) -> tuple[str, str]:
    return x, "true"


def _int_text(x: str) -> tuple[str, str]:
    return f"CAST({x} AS VARCHAR)", "true"


def _bool_text(x: str) -> tuple[str, str]:
    return f"CASE WHEN {x} THEN 'true' ELSE 'false' END", "true"


def _ip(x: str) -> tuple[str, str]:
    value = f"CASE WHEN regexp_full_match({x}, '{fast._V4}') THEN {x} ELSE rw_ip_canon({x}) END"
    return value, f"({value}) IS NOT NULL"


def _ranged(sql_type: str, low: int, high: int) -> Conversion:
    def convert(x: str) -> tuple[str, str]:
        return f"CAST({x} AS {sql_type})", f"({x} BETWEEN {low} AND {high})"

    return convert


def _double(x: str) -> tuple[str, str]:
    return f"CAST({x} AS DOUBLE)", "true"


def _finite(x: str) -> tuple[str, str]:
    # NaN and the infinities are not JSON numbers: convert_leaf refuses them.
    return f"CAST({x} AS DOUBLE)", f"isfinite({x})"


def _bool(x: str) -> tuple[str, str]:
    return x, "true"


def _stamp(x: str) -> tuple[str, str]:
    # Python's datetime holds years 1-9999; the reader keeps milliseconds (floored).
    return (
        f"date_trunc('millisecond', CAST({x} AS TIMESTAMP))",
        f"({x} BETWEEN {_FIRST} AND {_LAST})",
    )


def _iso(x: str) -> tuple[str, str]:
    value = f"TRY_CAST({x} AS TIMESTAMP)"
    return value, f"(regexp_full_match({x}, '{fast._ISO}') AND {value} IS NOT NULL)"


_CONVERSIONS: dict[tuple[str, T], Conversion] = {
    **{(STRING, t): _text for t in (T.KEYWORD, T.TEXT)},
    **{(INT, t): _int_text for t in (T.KEYWORD, T.TEXT)},
    **{(UINT64, t): _int_text for t in (T.KEYWORD, T.TEXT)},
    **{(BOOL, t): _bool_text for t in (T.KEYWORD, T.TEXT)},
    (STRING, T.IP): _ip,
    (INT, T.LONG): _ranged("BIGINT", values.LONG_MIN, values.LONG_MAX),
    (UINT64, T.LONG): _ranged("BIGINT", values.LONG_MIN, values.LONG_MAX),
    (INT, T.INTEGER): _ranged("INTEGER", values.INT_MIN, values.INT_MAX),
    (UINT64, T.INTEGER): _ranged("INTEGER", values.INT_MIN, values.INT_MAX),
    (INT, T.DOUBLE): _double,
    (UINT64, T.DOUBLE): _double,
    (FLOAT, T.DOUBLE): _finite,
    (BOOL, T.BOOLEAN): _bool,
    **{(TIMESTAMP, t): _stamp for t in (T.DATETIME, T.DATE_NANOS)},
    **{(STRING, t): _iso for t in (T.DATETIME, T.DATE_NANOS)},
}


def mapped(columns: Sequence[LeafColumn], types: Mapping[str, T]) -> bool:
    """Whether every column holding a field of a known type converts to it here."""
    return all((c.kind, types[c.field]) in _CONVERSIONS for c in columns if c.field in types)


@dataclass(frozen=True, slots=True)
class Check:
    """What check_sql asks of a file: its SQL (one row), and the columns whose values may need
    no conversion: the single timestamp columns (whole milliseconds?) and the IP columns
    (already canonical?), in the row's order after its first value."""

    sql: str
    stamps: tuple[LeafColumn, ...]
    ips: tuple[LeafColumn, ...]

    def verdict(
        self, row: Sequence[object], canonical: dict[str, str | None]
    ) -> frozenset[LeafColumn] | None:
        """None when a value does not convert exactly (the validating reader reads the file);
        else the columns read as they are. `canonical`: addresses' canonical forms (None: not
        an address), filled and shared across files (addresses recur)."""
        if not row or not row[0]:
            return None
        wholes = row[1 : 1 + len(self.stamps)]
        as_is = {c for c, whole in zip(self.stamps, wholes, strict=True) if whole}
        for c, found in zip(self.ips, row[1 + len(self.stamps) :], strict=True):
            texts = _texts(found, c.is_list)
            forms = [_canonical(t, canonical) for t in texts]
            if any(f is None for f in forms):
                return None  # Elasticsearch would reject the event
            if all(f == t for f, t in zip(forms, texts, strict=True)):
                as_is.add(c)
        return frozenset(as_is)


def _texts(found: object, is_list: bool) -> list[str]:
    """The distinct addresses a check row holds for an IP column (lists of lists for a list)."""
    if not isinstance(found, list):
        return []
    items = [t for x in found if isinstance(x, list) for t in x] if is_list else found
    return [t for t in dict.fromkeys(items) if isinstance(t, str) and _V4.fullmatch(t) is None]


def _canonical(text: str, memo: dict[str, str | None]) -> str | None:
    if text not in memo:
        try:
            memo[text] = values.canonical_ip(text)
        except values.ConversionError:
            memo[text] = None
    return memo[text]


def check_sql(path: str, columns: Sequence[LeafColumn], types: Mapping[str, T]) -> Check:
    """One scan of the file: whether every value converts exactly (true; false or an error: the
    validating reader reads it), whether each single timestamp column holds whole milliseconds
    only, and each IP column's distinct values that are not plain IPv4 (checked in Python, once
    per address: its canonical form is Python's). `types`: the fields' types (ECS, else the
    dataset's); a column of another field (one the dataset does not know) is checked only for
    what makes the validating reader fail on the whole file (a timestamp Python cannot hold)."""
    conds: list[str] = []
    stamps: list[LeafColumn] = []
    ips: list[LeafColumn] = []
    for c in columns:
        type_ = types.get(c.field)
        if type_ is T.IP:
            ips.append(c)
            continue
        if type_ is not None:
            convert = _CONVERSIONS[(c.kind, type_)]
        elif c.kind == TIMESTAMP:
            convert = _stamp
        else:
            continue
        if c.kind == TIMESTAMP and not c.is_list:
            stamps.append(c)
        if convert("rw_e")[1] == "true":
            continue
        if c.is_list:
            ok = convert("rw_e")[1]
            every = f"list_bool_and(list_transform({c.access}, lambda rw_e: rw_e IS NULL OR {ok}))"
            conds.append(f"coalesce({every}, true)")
        else:
            conds.append(f"({c.access} IS NULL OR {convert(c.access)[1]})")
    cond = " AND ".join(conds) if conds else "true"
    items = [f"coalesce(bool_and({cond}), true)"]
    for c in stamps:
        whole = f"epoch_us(CAST({c.access} AS TIMESTAMP)) % 1000 = 0"
        items.append(f"coalesce(bool_and({c.access} IS NULL OR {whole}), true)")
    for c in ips:
        if c.is_list:  # the distinct lists (a host's addresses recur with it)
            keep = f"len(list_filter({c.access}, lambda rw_e: NOT {_plain_v4('rw_e')})) > 0"
        else:
            keep = f"NOT {_plain_v4(c.access)}"
        items.append(f"list(DISTINCT {c.access}) FILTER (WHERE {keep})")
    sql = f"SELECT {', '.join(items)} FROM read_parquet({fast._quote(path)})"
    return Check(sql, tuple(stamps), tuple(ips))


def _plain_v4(x: str) -> str:
    # Null is plain too: nothing to check.
    return f"coalesce(regexp_full_match({x}, '{fast._V4}'), true)"


# The column a read of several files names each row's file in (files holding a column of that
# name are read one by one).
_FILE = "rw_file"


def select_sql(
    files: Sequence[tuple[str, int]],
    columns: Sequence[LeafColumn],
    leaves: Sequence[fast.Leaf],
    as_is: Collection[LeafColumn] = (),
) -> str | None:
    """SELECT __src and each leaf (typed, lists where multivalued) from (path, input number)
    files alike in every column (one file, or several read by one read_parquet: one file's
    footer bound, not each's), whose values check_sql found all convertible (`as_is`: the
    columns whose values need no conversion); None when a leaf's type or a column's
    conversion to it is not one this reader maps."""
    if len(files) == 1:
        (path, src), *_ = files
        items = [f"CAST({src} AS INTEGER) AS __src"]
        reader = f"read_parquet({fast._quote(path)})"
    else:
        which = " ".join(f"WHEN {fast._quote(path)} THEN {src}" for path, src in files)
        items = [f"CAST(CASE {_FILE} {which} END AS INTEGER) AS __src"]
        paths = ", ".join(fast._quote(path) for path, _ in files)
        reader = f"read_parquet([{paths}], filename = '{_FILE}')"
    for leaf in leaves:
        if leaf.type not in fast.FAST_TYPES:
            return None
        found = [c for c in columns if c.field == leaf.name]
        if any((c.kind, leaf.type) not in _CONVERSIONS for c in found):
            return None
        value = _column(leaf, found, as_is)
        items.append(f"CAST({value} AS {fast._sql_type(leaf)}) AS {fast._ident(leaf.name)}")
    return f"SELECT {', '.join(items)} FROM {reader}"


def read_together(columns: Sequence[LeafColumn]) -> bool:
    """Whether files of these columns may be read with others (none is named like the column
    naming each row's file)."""
    return not any(f'"{_FILE}"' in c.access.lower() for c in columns)


def _column(leaf: fast.Leaf, found: Sequence[LeafColumn], as_is: Collection[LeafColumn]) -> str:
    """The leaf's value from its columns: one value when single-valued (NULL for none or for
    several: the validating reader's _values), else the sorted list (doc-values order)."""
    if not found:
        return "NULL"
    if len(found) == 1 and not found[0].is_list and not leaf.multivalued:
        c = found[0]
        if c in as_is:
            return c.access  # nothing to floor or canonicalise
        value = _CONVERSIONS[(c.kind, leaf.type)](c.access)[0]
        if value == c.access:
            return value
        return f"CASE WHEN {c.access} IS NULL THEN NULL ELSE {value} END"
    parts = []
    for c in found:
        convert = _CONVERSIONS[(c.kind, leaf.type)]
        if c.is_list and c in as_is:
            parts.append(f"list_filter({c.access}, lambda rw_e: rw_e IS NOT NULL)")
        elif c.is_list:
            parts.append(
                f"list_filter(list_transform({c.access}, lambda rw_e: "
                f"CASE WHEN rw_e IS NULL THEN NULL ELSE {convert('rw_e')[0]} END), "
                "lambda rw_e: rw_e IS NOT NULL)"
            )
        else:
            value = c.access if c in as_is else convert(c.access)[0]
            parts.append(f"CASE WHEN {c.access} IS NULL THEN [] ELSE [{value}] END")
    vals = parts[0] if len(parts) == 1 else f"list_concat({', '.join(parts)})"
    typed = f"CAST({vals} AS {fast._SQL_TYPES[leaf.type]}[])"
    return fast.leaf_column(leaf, typed, raising=False)


# -- converted rows kept between queries ----------------------------------------------------------

# A read of more rows than this (its files' footers) is read again by every query, as before.
KEPT_ROWS = 200_000
# The kept reads together hold at most this many bytes of Arrow; the least recently used go first.
KEPT_BYTES = 256 * 2**20
# Names the kept tables are registered under on a query's connection (unique in the process).
_KEPT_NAMES = itertools.count()


def present(leaves: Sequence[fast.Leaf], columns: Sequence[LeafColumn]) -> list[fast.Leaf]:
    """The leaves some column of the files holds (the others are NULL in every row)."""
    fields = {c.field for c in columns}
    return [leaf for leaf in leaves if leaf.name in fields]


def kept_select(name: str, leaves: Sequence[fast.Leaf], held: Collection[str]) -> str:
    """SELECT __src and each leaf (typed as select_sql types it) from the kept rows registered
    as `name`, which hold the leaves named in `held`; the others are NULL."""
    items = ["__src"]
    for leaf in leaves:
        ident = fast._ident(leaf.name)
        value = ident if leaf.name in held else "NULL"
        items.append(f"CAST({value} AS {fast._sql_type(leaf)}) AS {ident}")
    return f"SELECT {', '.join(items)} FROM {name}"


class KeptReads:
    """The rows of select_sql statements kept in memory as Arrow tables between queries, keyed
    by the statement (its files, columns, conversions and types: the same text reads the same
    rows), so a rule's many runs read and convert the files once, not once per run. A
    statement whose files hold more than `rows` rows, or whose rows take more than `nbytes`,
    or that fails, is not kept: each query reads the files itself, as without this."""

    def __init__(self, rows: int | None = None, nbytes: int | None = None) -> None:
        self.rows = KEPT_ROWS if rows is None else rows
        self.nbytes = KEPT_BYTES if nbytes is None else nbytes
        self._tables: dict[str, tuple[str, pa.Table]] = {}  # least recently used first
        self._refused: set[str] = set()

    def relation(
        self, con: duckdb.DuckDBPyConnection, sql: str, rows: Callable[[], int]
    ) -> str | None:
        """The name under which `sql`'s rows are registered on `con` (read now if not kept
        yet); None when they are not kept. `rows`: how many rows the files hold."""
        kept = self._tables.pop(sql, None)
        if kept is None:
            table = None if sql in self._refused else self._read(con, sql, rows)
            if table is None:
                self._refused.add(sql)
                return None
            kept = (f"rw_parquet_kept_{next(_KEPT_NAMES)}", table)
        self._tables[sql] = kept
        while sum(t.nbytes for _, t in self._tables.values()) > self.nbytes:
            del self._tables[next(iter(self._tables))]  # never the one just read: it fits alone
        name, table = kept
        con.register(name, table)
        return name

    def _read(
        self, con: duckdb.DuckDBPyConnection, sql: str, rows: Callable[[], int]
    ) -> pa.Table | None:
        if rows() > self.rows:
            return None
        import duckdb

        try:
            table = con.sql(sql).to_arrow_table()
        except (duckdb.CatalogException, duckdb.InterruptException):
            raise  # a helper not registered yet (the caller registers it), or a spent budget
        except duckdb.Error:
            return None  # out of memory, say: the query reads the files itself
        return table if table.nbytes <= self.nbytes else None


# -- a file's fields, learnt by DuckDB -------------------------------------------------------------

# Physical kinds as flatten.kind_of names their Python values (type inference's input).
KIND_NAMES = {STRING: "string", INT: "long", UINT64: "long", FLOAT: "double", BOOL: "boolean"}
KIND_NAMES[TIMESTAMP] = "datetime"
# Distinct texts of one column looked at in Python for date detection, at most.
DATE_TEXTS = 50_000


@dataclass(frozen=True, slots=True)
class Fields:
    """What fields_sql asks of a file: its SQL (one row) and what each value of the row is
    about: the rows, then per field its most values in one row, then per column of a field
    outside the schema whether it holds a value, then per text column among those whether
    every text could be a date (None: no text)."""

    sql: str
    fields: tuple[str, ...]
    columns: tuple[LeafColumn, ...]
    texts: tuple[LeafColumn, ...]


def fields_sql(path: str, columns: Sequence[LeafColumn], known: Collection[str]) -> Fields:
    """One scan for the dataset's field discovery (what reading every row in Python learns):
    the fields with values and whether one row holds several, and for fields not in `known`
    (the schema's) the kinds of their values and whether their texts may all be dates."""
    by_field: dict[str, list[LeafColumn]] = {}
    for c in columns:
        by_field.setdefault(c.field, []).append(c)
    items = ["count(*)"]
    for cols in by_field.values():
        counts = " + ".join(_count(c) for c in cols)
        items.append(f"coalesce(max({counts}), 0)")
    others = [c for c in columns if c.field not in known]
    items += [f"coalesce(max({_count(c)}), 0) > 0" for c in others]
    texts = [c for c in others if c.kind == STRING]
    for c in texts:
        # Elasticsearch's date detection needs at least YYYY-MM-DD: a quick no for most texts.
        # Not ASCII: Python decides (its digits are not only ASCII ones).
        shaped = (
            "NOT regexp_full_match(rw_e, '[\\x00-\\x7f]*') "
            "OR (strlen(rw_e) >= 10 AND substr(rw_e, 5, 1) = '-' AND substr(rw_e, 8, 1) = '-')"
        )
        if c.is_list:
            every = f"list_bool_and(list_transform({c.access}, lambda rw_e: rw_e IS NULL OR ({shaped})))"
        else:
            every = f"{c.access} IS NULL OR ({shaped.replace('rw_e', c.access)})"
        items.append(f"bool_and({every})")
    sql = f"SELECT {', '.join(items)} FROM read_parquet({fast._quote(path)})"
    return Fields(sql, tuple(by_field), tuple(others), tuple(texts))


def _count(c: LeafColumn) -> str:
    """SQL: how many values a row holds in the column."""
    if c.is_list:
        return f"coalesce(len(list_filter({c.access}, lambda rw_e: rw_e IS NOT NULL)), 0)"
    return f"CASE WHEN {c.access} IS NULL THEN 0 ELSE 1 END"


def distinct_texts_sql(path: str, c: LeafColumn) -> str:
    """SQL: the distinct texts of a column (at most DATE_TEXTS + 1 of them)."""
    value = f"unnest({c.access})" if c.is_list else c.access
    inner = f"SELECT DISTINCT {value} AS rw_v FROM read_parquet({fast._quote(path)})"
    return f"SELECT rw_v FROM ({inner}) WHERE rw_v IS NOT NULL LIMIT {DATE_TEXTS + 1}"
