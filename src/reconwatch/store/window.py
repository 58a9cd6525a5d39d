"""A rule run's events from the store: the indices its FROM names, read by the run's time range."""

from __future__ import annotations

from datetime import datetime

from reconwatch.ingest import Dataset
from reconwatch.store import rulefields
from reconwatch.store.db import Store, window_bounds
from reconwatch.store.events import naive_utc

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
        if not self._has_other_rows(where):
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

    def _has_other_rows(self, where: str) -> bool:
        """Whether the window holds a row the columns cannot be read for (a dotted key, or
        stored before the columns): a look at the `plain` column of the window's row groups."""
        cur = self.store.cursor()
        try:
            row = cur.execute(
                f"SELECT EXISTS (SELECT 1 FROM events WHERE {where} AND plain IS NOT TRUE)"
            ).fetchone()
        finally:
            cur.close()
        return bool(row and row[0])

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
