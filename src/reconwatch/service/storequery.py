"""Queries over the store on the store's own DuckDB connection, so rule runs read its table."""

from __future__ import annotations

from datetime import datetime

from reconwatch.backends.duckdb.execute import ExecutionError, execute
from reconwatch.engine.detect import PINNED_TABLE, DatasetBackend, PinnedBackend
from reconwatch.esql import ast
from reconwatch.ingest import Dataset
from reconwatch.plan.catalog import Result
from reconwatch.plan.scan import RetryScan
from reconwatch.query import MAX_RETRIES, compile_on, pin
from reconwatch.store import Store


def run_on_store(store: Store, query: str | ast.Query, dataset: Dataset, now: datetime) -> Result:
    """run_query on a store cursor: the dataset's stored events are read by DuckDB in the store
    (store.window), the rest as query.run_query reads it."""
    con = store.query_cursor()
    try:
        for _attempt in range(MAX_RETRIES):
            plan = compile_on(query, dataset)
            try:
                return execute(plan, dataset, now, con)
            except RetryScan:
                continue
    finally:
        con.close()
    msg = f"reading the events did not settle after {MAX_RETRIES} attempts"
    raise ExecutionError(msg)


class StoreBackend(DatasetBackend):
    """The engine's query backend over a store window (store.window.window_dataset)."""

    # A window read scans only the row groups the run's range meets, from the rule-field
    # columns: an aggregating run reads it again for its alerting groups' evidence rather
    # than pin every row of the window (engine.run).
    pins_alerting_groups = True

    def __init__(self, store: Store, dataset: Dataset) -> None:
        super().__init__(dataset)
        self.store = store

    def run(self, query: ast.Query, *, now: datetime) -> Result:
        return run_on_store(self.store, query, self.dataset, now)

    def pin(self, query: ast.Query, *, now: datetime) -> PinnedBackend:
        con = self.store.query_cursor()
        try:
            columns = pin(query, self.dataset, now=now, con=con, table=PINNED_TABLE)
        except BaseException:
            con.close()
            raise
        return PinnedBackend(con, columns)
