"""A rule run's events from the store: the indices its FROM names, read by the run's time range."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from reconwatch.ingest import Dataset
from reconwatch.store import rulefields
from reconwatch.store.db import Store, window_bounds
from reconwatch.store.events import naive_utc
from reconwatch.types import DataType as T

# METADATA fields the events table holds as columns (the relation's names for them).
_METADATA = {"_id": "__rw_id", "_index": "__rw_index", "_version": "__rw_version"}


def time_column(timestamp_override: str | None) -> str | None:
    """The stored column a rule's time range can be read by: @timestamp, event.ingested (the
    override Elastic's prebuilt rules use), or none (another override: every event is read)."""
    if timestamp_override in (None, "@timestamp"):
        return "ts"
    if timestamp_override == "event.ingested":
        return "ingested"
    return None


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _unquote(literal: str) -> str:
    """The text of an SQL string literal."""
    return literal[1:-1].replace("''", "'") if literal[:1] == literal[-1:] == "'" else ""


class StoredWindow:
    """One index's events in [start, end] on a time column (Dataset.StoredEvents): SQL over the
    store's `events` table for DuckDB, run on one of the store's own connections, so only the
    row groups the bounds meet are read and no event is decoded in Python; the documents for
    the validating reader when that SQL cannot read them exactly."""

    def __init__(
        self,
        store: Store,
        index: str,
        start: datetime | None,
        end: datetime | None,
        column: str | None,
    ) -> None:
        self.store = store
        self.index = index
        self.start = start
        self.end = end
        self.column = column
        # The window's one look at its rows (_look), taken when a read first needs it.
        self._looked: tuple[bool, int | None] | None = None

    def _where(self) -> str:
        conds = [f"idx = {_literal(self.index)}"]
        for op, bound in window_bounds(self.start, self.end, self.column):
            stamp = naive_utc(bound).isoformat(sep=" ")
            conds.append(f"{self.column} {op} TIMESTAMP {_literal(stamp)}")
        return " AND ".join(conds)

    def relation(self, structure: str) -> str:
        meta = ", ".join(f"{column} AS {alias}" for column, alias in _columns())
        text = f"unnest(json_transform(source, {structure}))"
        tree = rulefields.covered(_unquote(structure))
        if tree is None:
            return f"(SELECT {meta}, {text} FROM events WHERE {self._where()})"
        where = self._where()
        plain = f"(SELECT {meta}, {rulefields.columns_select(tree)} FROM events WHERE {where} AND plain)"
        if self._look()[0]:
            # Every row of the window is plain (the usual case): one scan of the columns, in
            # arrival order as a scan gives them, with no sort (a fifth of a run's SQL at 74k).
            # A row committed after this look is as if it had arrived after the run's read.
            return plain
        # Plain rows from the rule-field columns, the others parsed from their text, in
        # arrival order as the one scan above gives them.
        return (
            f"(SELECT * EXCLUDE (__rw_seq) FROM ("
            f"SELECT seq AS __rw_seq, {meta}, {rulefields.columns_select(tree)} "
            f"FROM events WHERE {where} AND plain "
            f"UNION ALL SELECT seq AS __rw_seq, {meta}, {text} "
            f"FROM events WHERE {where} AND plain IS NOT TRUE) ORDER BY __rw_seq)"
        )

    def regular(self, fields: Sequence[tuple[str, T]]) -> tuple[str, frozenset[str]] | None:
        mask = rulefields.regular_mask(fields)
        if mask is None:
            return None
        plain, irregular = self._look()
        if not plain or irregular is None or irregular & mask:
            return None
        meta = ", ".join(f"{column} AS {alias}" for column, alias in _columns())
        names = dict.fromkeys(name for name, _ in fields)
        # A date with a typed twin is read from it: a regular value's cast is the twin's value.
        values = ", ".join(
            f"{rulefields.TWINS.get(n) or rulefields.COLUMNS[n]} AS {rulefields.ident(n)}"
            for n in names
        )
        # The look's verdict holds for the rows it saw; a row committed after it is read only
        # if it holds too (else as if it had arrived after the run's read).
        sql = (
            f"(SELECT {meta}, {values} FROM events WHERE {self._where()} "
            f"AND plain AND irregular & {mask} = 0)"
        )
        return sql, frozenset(n for n in names if n in rulefields.TWINS)

    def _look(self) -> tuple[bool, int | None]:
        """Whether every row of the window is plain (none has a dotted key or was stored before
        the columns), and the `irregular` bits of its rows together (None when a row has none:
        stored before the bits were noted, or in a version 3 store): one look at two narrow
        columns of the window's row groups, kept for the window's later reads."""
        if self._looked is None:
            cur = self.store.cursor()
            try:
                row = cur.execute(
                    "SELECT coalesce(bool_and(plain IS TRUE), true), "
                    "CASE WHEN count(*) = count(irregular) THEN coalesce(bit_or(irregular), 0) END "
                    f"FROM events WHERE {self._where()}"
                ).fetchone()
            finally:
                cur.close()
            assert row is not None
            self._looked = (bool(row[0]), None if row[1] is None else int(row[1]))
        return self._looked

    def sources(self) -> str:
        return f"SELECT source FROM events WHERE {self._where()}"

    def metadata(self, name: str) -> str | None:
        return _METADATA.get(name)

    def head(self, limit: int) -> list[object]:
        docs = self.store.documents(
            [self.index], self.start, self.end, self.column, limit, ordered=False
        )
        return [source for _idx, _id, source in docs]

    def load(self) -> tuple[list[str], list[object]]:
        ids: list[str] = []
        docs: list[object] = []
        for _idx, doc_id, source in self.store.documents(
            [self.index], self.start, self.end, self.column
        ):
            ids.append(doc_id)
            docs.append(source)
        return ids, docs


def _columns() -> list[tuple[str, str]]:
    return [("id", "__rw_id"), ("idx", "__rw_index"), ("CAST(version AS BIGINT)", "__rw_version")]


def window_dataset(
    store: Store,
    patterns: tuple[str, ...],
    start: datetime | None,
    end: datetime | None,
    timestamp_override: str | None = None,
) -> Dataset:
    """The events a run over [start, end] can see, as a Dataset the engine runs the rule on (one
    input per index, with the stored _index and _id). Run on a store cursor
    (`Store.query_cursor`), DuckDB reads them where they are stored; elsewhere, or when that
    read cannot be exact, they are loaded as documents."""
    column = time_column(timestamp_override)
    return Dataset.from_store(
        [
            (index, StoredWindow(store, index, start, end, column))
            for index in store.matching_indices(patterns)
        ]
    )
