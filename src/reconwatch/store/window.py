"""A rule run's events from the store: the indices its FROM names, read by the run's time range."""

from __future__ import annotations

from datetime import datetime

from reconwatch.ingest import Dataset
from reconwatch.store.db import Store


def time_column(timestamp_override: str | None) -> str | None:
    """The stored column a rule's time range can be read by: @timestamp, event.ingested (the
    override Elastic's prebuilt rules use), or none (another override: every event is read)."""
    if timestamp_override in (None, "@timestamp"):
        return "ts"
    if timestamp_override == "event.ingested":
        return "ingested"
    return None


def window_dataset(
    store: Store,
    patterns: tuple[str, ...],
    start: datetime | None,
    end: datetime | None,
    timestamp_override: str | None = None,
) -> Dataset:
    """The events a run over [start, end] can see, as a Dataset the engine runs the rule on
    (one input per index, with the stored _index and _id)."""
    groups: dict[str, tuple[list[str], list[object]]] = {}
    column = time_column(timestamp_override)
    for index, doc_id, source in store.documents(
        store.matching_indices(patterns), start, end, column
    ):
        ids, docs = groups.setdefault(index, ([], []))
        ids.append(doc_id)
        docs.append(source)
    return Dataset.from_stored([(index, ids, docs) for index, (ids, docs) in groups.items()])
