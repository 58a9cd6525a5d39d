"""Event input: files and documents read into datasets the query engine scans."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from reconwatch.ingest.dataset import Dataset
    from reconwatch.ingest.report import IngestReport

__all__ = ["Dataset", "IngestReport"]


def __getattr__(name: str) -> Any:
    # Lazy: the CLI reads ingest.formats at start-up without loading DuckDB (ingest.dataset).
    if name == "Dataset":
        from reconwatch.ingest.dataset import Dataset

        return Dataset
    if name == "IngestReport":
        from reconwatch.ingest.report import IngestReport

        return IngestReport
    msg = f"module {__name__!r} has no attribute {name!r}"
    raise AttributeError(msg)
