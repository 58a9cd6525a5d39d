"""The engine behind conformance runs: the query facade when present, else the reference
interpreter over the same Dataset catalog (both are the project's own ES|QL engine)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime

from reconwatch.engine.backend import QueryBackend
from reconwatch.esql import ast
from reconwatch.esql.analyze import analyze
from reconwatch.ingest import Dataset
from reconwatch.plan import nodes as p
from reconwatch.plan.catalog import Result
from reconwatch.plan.documents import flatten
from reconwatch.plan.values import coerce_cell, from_list


class ReferenceBackend:
    def __init__(self, docs: Sequence[dict[str, object]]) -> None:
        self.dataset = Dataset.from_documents(docs)
        self.rows: list[dict[str, object]] = []
        for i, doc in enumerate(docs, 1):
            row: dict[str, object] = {k: from_list(v) for k, v in flatten(doc).items()}
            row.setdefault("_id", hashlib.sha1(f"doc:{i}".encode()).hexdigest()[:20])
            row["_version"] = 1
            row["_index"] = "logs-endpoint.events.network-default"
            self.rows.append(row)

    def columns(self, query: ast.Query) -> tuple[p.Column, ...]:
        return analyze(query, self.dataset).columns

    def run(self, query: ast.Query, *, now: datetime) -> Result:
        from reconwatch.evaluate.pipeline import execute

        plan = analyze(query, self.dataset)
        types = {c.name: c.type for c in getattr(plan.source, "fields", ())}
        rows = [
            {k: coerce_cell(v, types[k]) if k in types else v for k, v in r.items()}
            for r in self.rows
        ]
        return execute(plan, rows, now)


def backend_for(docs: Sequence[dict[str, object]]) -> QueryBackend:
    try:
        import reconwatch.query  # noqa: F401
    except ImportError:
        return ReferenceBackend(docs)
    from reconwatch.engine.detect import DatasetBackend

    return DatasetBackend(Dataset.from_documents(docs))
