"""What the analyser needs to know about data: the fields FROM's index patterns expose, and results."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from reconwatch.plan.nodes import Column
from reconwatch.records import record


class Catalog(Protocol):
    """Known source fields for a FROM clause, by flattened dotted name.

    A field that no selected input maps is unknown ("Unknown column [x]"); a field that is mapped
    (for example an ECS field of an Elastic Defend index) but absent from every event is known and
    null. Implementations: datasets in ingest/, in-memory documents for tests and streaming.
    """

    def fields(self, indices: tuple[str, ...]) -> Mapping[str, Column]: ...


@record
class StaticCatalog:
    """A catalog with one fixed field set for every index pattern (tests, ROW-only queries)."""

    known: Mapping[str, Column] = field(default_factory=dict)

    def fields(self, indices: tuple[str, ...]) -> Mapping[str, Column]:
        return self.known


@dataclass(slots=True)
class Result:
    """A query's answer: columns in ES|QL order and rows of Python values (plan/nodes.py conventions).

    `warnings` are Elasticsearch-style response warnings, e.g.
    "Line 1:23: evaluation of [x == 1] failed, treating result as null. Only first 20 failures recorded."
    """

    columns: tuple[Column, ...]
    rows: list[tuple[object, ...]]
    warnings: list[str] = field(default_factory=list)

    def as_dicts(self) -> list[dict[str, object]]:
        names = [c.name for c in self.columns]
        return [dict(zip(names, row, strict=True)) for row in self.rows]
