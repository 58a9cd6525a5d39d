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
    -- event.ingested (stamped at ingest where missing): the time rules with
    -- timestamp_override = event.ingested filter on; in arrival order, so it prunes too.
    ingested TIMESTAMP NOT NULL,
    source VARCHAR NOT NULL,
    -- when the store took it: retention deletes by this, as Elastic's ILM deletes an index
    -- by its age and not by its events' @timestamp (a replayed old sample stays its 7 days)
    arrived TIMESTAMP NOT NULL
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
    arrived TIMESTAMP NOT NULL,
    PRIMARY KEY (idx, id)
)
"""

INDICES = """
CREATE TABLE IF NOT EXISTS indices (
    idx VARCHAR PRIMARY KEY,
    created TIMESTAMP NOT NULL
)
"""

# Alerts keyed by Kibana's alert id (kibana.alert.uuid): a repeated run inserts nothing new.
ALERTS = """
CREATE TABLE IF NOT EXISTS alerts (
    id VARCHAR PRIMARY KEY,
    rule_id VARCHAR NOT NULL,
    created TIMESTAMP NOT NULL,
    status VARCHAR NOT NULL,
    status_by VARCHAR,
    status_at TIMESTAMP,
    document VARCHAR NOT NULL
)
"""

# One row per rule run (scheduled, catch-up or manual), with the gap it found, if any.
RUNS = """
CREATE TABLE IF NOT EXISTS rule_runs (
    rule_id VARCHAR NOT NULL,
    run_at TIMESTAMP NOT NULL,
    window_start TIMESTAMP NOT NULL,
    window_end TIMESTAMP NOT NULL,
    execution_type VARCHAR NOT NULL,
    alerts INTEGER NOT NULL,
    gap_ms BIGINT NOT NULL,
    error VARCHAR,
    warnings VARCHAR NOT NULL
)
"""

# Which alerts each sink has taken: an alert not listed for a sink is delivered to it again
# (after a failure, after a restart).
DELIVERIES = """
CREATE TABLE IF NOT EXISTS deliveries (
    alert_id VARCHAR NOT NULL,
    sink VARCHAR NOT NULL,
    delivered TIMESTAMP NOT NULL,
    PRIMARY KEY (alert_id, sink)
)
"""

ALL = (EVENTS, DOC_IDS, INDICES, ALERTS, RUNS, DELIVERIES)
