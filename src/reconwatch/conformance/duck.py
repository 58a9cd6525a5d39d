"""The spec data sets as a DuckDB scan source: typed Arrow batches of the loaded indices."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime

import pyarrow as pa

from reconwatch.conformance.datasets import SpecData
from reconwatch.ingest.dataset import Dataset
from reconwatch.plan.nodes import Column
from reconwatch.plan.scan import ArrowScan
from reconwatch.types import DataType

Cell = object


def _arrow_cell(value: object, multivalued: bool) -> object:
    if isinstance(value, datetime):
        return value.replace(tzinfo=None)  # Arrow timestamps without a zone hold UTC
    if isinstance(value, list):
        return [_arrow_cell(v, False) for v in value]
    if multivalued and value is not None:
        return [_arrow_cell(value, False)]
    return value


class SpecScanSource(ArrowScan):
    """The scan source (plan.scan) over SpecData: one input per index."""

    def __init__(self, data: SpecData) -> None:
        self.data = data
        self.names = sorted(data.indices)
        self._columns: dict[str, Column] = {}
        for name in self.names:
            for col in data.indices[name].columns:
                seen = self._columns.get(col.name)
                if seen is not None and seen.type is not col.type:
                    col = Column(col.name, DataType.UNSUPPORTED)
                elif seen is not None and seen.multivalued:
                    col = seen
                self._columns[col.name] = col

    def selected_inputs(self, indices: Sequence[str]) -> list[int]:
        chosen = {index.name for index in self.data.resolve(tuple(indices))}
        return [i for i, name in enumerate(self.names) if name in chosen]

    def column(self, name: str) -> Column | None:
        return self._columns.get(name)

    def rows(
        self, names: Sequence[str], inputs: Sequence[int], metadata: Sequence[str] = ()
    ) -> list[dict[str, object]]:
        """Every field of the selected indices (a `_source` is built from all of them)."""
        return self.data.rows(tuple(self.names[i] for i in inputs))

    def arrow_schema(self, cols: Sequence[Column], metadata: Sequence[str]) -> pa.Schema:
        # The same layout ingest datasets give the executor (hidden source column first).
        return Dataset([]).arrow_schema(cols, metadata)

    def batches(
        self, names: Sequence[str], inputs: Sequence[int], metadata: Sequence[str] = ()
    ) -> Iterator[pa.RecordBatch]:
        cols = [self.column(n) or Column(n, DataType.KEYWORD) for n in names]
        schema = self.arrow_schema(cols, metadata)
        for i in inputs:
            index = self.names[i]
            rows = self.data.rows((index,))
            arrays: list[list[Cell]] = [[i] * len(rows)]
            for col in cols:
                arrays.append([_arrow_cell(r.get(col.name), col.multivalued) for r in rows])
            for meta in metadata:
                arrays.append([r.get(meta) for r in rows])
            yield pa.RecordBatch.from_arrays(
                [pa.array(a, type=f.type) for a, f in zip(arrays, schema, strict=True)],
                schema=schema,
            )
