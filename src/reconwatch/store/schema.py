"""The store's tables (DuckDB DDL), created on open; `ts` columns are naive UTC timestamps."""

from __future__ import annotations

# Events keep the index they were shipped to and their _source as JSON text. Rows are appended
# in arrival order, so DuckDB's per-row-group min/max of `ts` (zone maps) lets a rule run's time
# filter skip the row groups outside its window instead of reading the whole history.
EVENTS = """
CREATE TABLE IF NOT EXISTS events (
    seq BIGINT NOT NULL,
    idx VARCHAR NOT NULL,
    id VARCHAR NOT NULL,
    version INTEGER NOT NULL,
    ts TIMESTAMP,
    ingested TIMESTAMP NOT NULL,
    source VARCHAR NOT NULL
)
"""

# Ids a client chose (the `_id` of an action): `create` must find them to answer 409 and `index`
# to replace the old version. Generated ids are random 120-bit values and are not listed.
DOC_IDS = """
CREATE TABLE IF NOT EXISTS doc_ids (
    idx VARCHAR NOT NULL,
    id VARCHAR NOT NULL,
    version INTEGER NOT NULL,
    ts TIMESTAMP,
    ingested TIMESTAMP NOT NULL,
    PRIMARY KEY (idx, id)
)
"""

INDICES = """
CREATE TABLE IF NOT EXISTS indices (
    idx VARCHAR PRIMARY KEY,
    created TIMESTAMP NOT NULL
)
"""

ALL = (EVENTS, DOC_IDS, INDICES)
