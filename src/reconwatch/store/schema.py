"""The store's tables (DuckDB DDL), created on open; `ts` columns are naive UTC timestamps."""

from __future__ import annotations

from reconwatch.store.rulefields import COLUMNS

# Version 2 added the rule-field columns (`plain`, `f_*`) to events, version 3 `irregular`,
# version 4 its dates' condition (a regular @timestamp or event.ingested equals the ts or
# ingested column). A store written by a newer reconwatch is refused; an older one is upgraded
# when opened (Store._upgrade).
SCHEMA_VERSION = 4

META = """
CREATE TABLE IF NOT EXISTS store_meta (
    key VARCHAR PRIMARY KEY,
    value VARCHAR NOT NULL
)
"""

# The fields rules read (store.rulefields.FIELDS), each as its JSON value in the nested
# spelling as json_extract reads it (NULL when absent, 'null' for a JSON null), taken out of the source at ingest (store.rulefields): a run reads
# these narrow columns instead of parsing every document. `plain`: the document has no dotted
# key, so the columns hold every spelling of its fields; other rows are read from `source`.
# NULL (rows stored before version 2): not read from the columns.
_RULE_COLUMNS = (
    ("plain", "BOOLEAN"),
    *((c, "JSON") for c in COLUMNS.values()),
)

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
    -- zstd: a sixth of the size of DuckDB's default for Defend-sized JSON, and written in
    -- half the time (bench/bench_serve.py); a run's read pays a little more to decompress
    source VARCHAR NOT NULL USING COMPRESSION zstd,
    -- when the store took it: retention deletes by this, as Elastic's ILM deletes an index
    -- by its age and not by its events' @timestamp (a replayed old sample stays its 7 days)
    arrived TIMESTAMP NOT NULL,
    {rule_columns},
    -- bit i (store.rulefields.BITS) set: rule field i's value is not regular for its type
    -- (ingest.fast.regular_shape), so a read of it must check it; 0: no field of the row
    -- needs a check. NULL: rows stored before version 3 (always checked).
    irregular BIGINT
)
""".format(rule_columns=",\n    ".join(f"{c} {t}" for c, t in _RULE_COLUMNS))

# A version 1 store gets the columns (metadata only: its rows keep NULL and are read as before).
UPGRADE_TO_2 = tuple(
    f"ALTER TABLE events ADD COLUMN IF NOT EXISTS {c} {t}" for c, t in _RULE_COLUMNS
)
# Likewise `irregular` for a version 2 store: its rows keep NULL and are read with the checks.
UPGRADE_TO_3 = ("ALTER TABLE events ADD COLUMN IF NOT EXISTS irregular BIGINT",)
# A version 3 store's bits were noted without the dates' condition: dropped (NULL, read with
# the checks), which DuckDB does without rewriting the other columns.
UPGRADE_TO_4 = (
    "ALTER TABLE events DROP COLUMN IF EXISTS irregular",
    "ALTER TABLE events ADD COLUMN irregular BIGINT",
)

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
    document VARCHAR NOT NULL,
    -- a real-time alert's group (its BY values as JSON) and when it fired: the next scheduled
    -- run finding that group updates this alert instead of adding one
    group_key VARCHAR,
    detected TIMESTAMP
)
"""

# Stores made before real-time alerts had no group columns.
ALERT_GROUPS = (
    "ALTER TABLE alerts ADD COLUMN IF NOT EXISTS group_key VARCHAR",
    "ALTER TABLE alerts ADD COLUMN IF NOT EXISTS detected TIMESTAMP",
)

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

# An alert's revision: 0 as first stored, one more each time a later run changes its document
# (Kibana-style updates in place); `held`: a real-time alert whose evidence is still being
# completed (its crossing point), kept from the sinks until then. A delivery records the
# revision the sink took, so an updated alert is delivered again under the same id.
ALERT_REVISIONS = (
    "ALTER TABLE alerts ADD COLUMN IF NOT EXISTS revision INTEGER DEFAULT 0",
    "ALTER TABLE alerts ADD COLUMN IF NOT EXISTS held BOOLEAN DEFAULT false",
    "ALTER TABLE deliveries ADD COLUMN IF NOT EXISTS revision INTEGER DEFAULT 0",
)

# The fields the triage queue filters by, copied out of each alert document so that filtering
# 100,000 alerts reads four narrow columns instead of every document (added to older stores).
ALERT_FILTER_COLUMNS = tuple(
    f"ALTER TABLE alerts ADD COLUMN IF NOT EXISTS {name} VARCHAR"
    for name in ("severity", "host", "executable", "rule_name")
)

# How long each run took (ms, measured): the rules page's last runs with durations.
RUN_DURATION = "ALTER TABLE rule_runs ADD COLUMN IF NOT EXISTS duration_ms BIGINT"

# Kibana's exception lists (detection, or a rule's default list) and their items; entries and
# comments as Kibana's JSON.
EXCEPTION_LISTS = """
CREATE TABLE IF NOT EXISTS exception_lists (
    list_id VARCHAR PRIMARY KEY,
    name VARCHAR NOT NULL,
    description VARCHAR NOT NULL,
    type VARCHAR NOT NULL,
    created TIMESTAMP NOT NULL,
    created_by VARCHAR NOT NULL,
    updated TIMESTAMP NOT NULL,
    updated_by VARCHAR NOT NULL
)
"""

EXCEPTION_ITEMS = """
CREATE TABLE IF NOT EXISTS exception_items (
    item_id VARCHAR PRIMARY KEY,
    list_id VARCHAR NOT NULL,
    name VARCHAR NOT NULL,
    description VARCHAR NOT NULL,
    entries VARCHAR NOT NULL,
    comments VARCHAR NOT NULL,
    expire_time TIMESTAMP,
    created TIMESTAMP NOT NULL,
    created_by VARCHAR NOT NULL,
    updated TIMESTAMP NOT NULL,
    updated_by VARCHAR NOT NULL
)
"""

# Which lists a rule applies (Kibana's rule.exceptions_list).
RULE_EXCEPTION_LISTS = """
CREATE TABLE IF NOT EXISTS rule_exception_lists (
    rule_id VARCHAR NOT NULL,
    list_id VARCHAR NOT NULL,
    PRIMARY KEY (rule_id, list_id)
)
"""

# What an operator set per rule (NULL: the rule's default).
RULE_SETTINGS = """
CREATE TABLE IF NOT EXISTS rule_settings (
    rule_id VARCHAR PRIMARY KEY,
    enabled BOOLEAN,
    realtime BOOLEAN
)
"""

# Where each followed file was read to (`serve --follow`), as ingest.follow.Position's JSON.
FOLLOW_POSITIONS = """
CREATE TABLE IF NOT EXISTS follow_positions (
    path VARCHAR PRIMARY KEY,
    position VARCHAR NOT NULL
)
"""

# The investigation guide's checklist of each alert: which step is ticked, by whom, when.
GUIDE_STEPS = """
CREATE TABLE IF NOT EXISTS guide_steps (
    alert_id VARCHAR NOT NULL,
    step INTEGER NOT NULL,
    done BOOLEAN NOT NULL,
    done_by VARCHAR NOT NULL,
    done_at TIMESTAMP NOT NULL,
    PRIMARY KEY (alert_id, step)
)
"""

# A native detector rule's learned state (engine.native.state's blob) and the last event (`seq`)
# it has seen: a restart loads it and hands the detector the events stored after that one.
DETECTOR_STATE = """
CREATE TABLE IF NOT EXISTS detector_state (
    rule_id VARCHAR PRIMARY KEY,
    state BLOB NOT NULL,
    seq BIGINT NOT NULL,
    saved TIMESTAMP NOT NULL
)
"""

ALL = (
    META,
    EVENTS,
    DOC_IDS,
    INDICES,
    ALERTS,
    *ALERT_GROUPS,
    RUNS,
    DELIVERIES,
    *ALERT_REVISIONS,
    *ALERT_FILTER_COLUMNS,
    RUN_DURATION,
    EXCEPTION_LISTS,
    EXCEPTION_ITEMS,
    RULE_EXCEPTION_LISTS,
    RULE_SETTINGS,
    FOLLOW_POSITIONS,
    GUIDE_STEPS,
    DETECTOR_STATE,
)
