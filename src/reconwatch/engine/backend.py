"""What the rule engine needs from the query engine: run a parsed ES|QL query at a time, and know columns."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Protocol

from reconwatch.esql import ast
from reconwatch.plan.catalog import Result
from reconwatch.plan.nodes import Column


class QueryBackend(Protocol):
    """ES|QL over one set of events. `now` is the query's now(); `columns` compiles without running.
    Queries come parsed (rule runs rewrite the tree): an error points into `query.source`."""

    def run(self, query: ast.Query, *, now: datetime) -> Result: ...

    def columns(self, query: ast.Query) -> tuple[Column, ...]: ...


def source_fields(backend: QueryBackend, from_query: ast.Query) -> Mapping[str, Column]:
    """The fields a FROM command exposes (by dotted name), read from the analyser."""
    return {c.name: c for c in backend.columns(from_query)}


class PinnableResult(QueryBackend, Protocol):
    """A query result kept in memory by a backend that offers `pin(query, now=...)`; it answers
    ES|QL (any FROM) over that result until closed."""

    def close(self) -> None: ...
