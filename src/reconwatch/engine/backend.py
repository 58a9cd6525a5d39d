"""What the rule engine needs from the query engine: run ES|QL text at a time, and know columns."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Protocol

from reconwatch.plan.catalog import Result
from reconwatch.plan.nodes import Column


class QueryBackend(Protocol):
    """ES|QL over one set of events. `now` is the query's now(); `columns` compiles without running."""

    def run(self, query: str, *, now: datetime) -> Result: ...

    def columns(self, query: str) -> tuple[Column, ...]: ...


def source_fields(backend: QueryBackend, from_command: str) -> Mapping[str, Column]:
    """The fields a FROM command exposes (by dotted name), read from the analyser."""
    return {c.name: c for c in backend.columns(from_command)}


class PinnableResult(QueryBackend, Protocol):
    """A query result kept in memory by a backend that offers `pin(query, now=...)`; it answers
    ES|QL (any FROM) over that result until closed."""

    def close(self) -> None: ...
