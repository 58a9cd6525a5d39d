"""The store on disk: one DuckDB file under the data directory, one writer, readers on cursors."""

from __future__ import annotations

import contextlib
import functools
import re
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Concatenate, ParamSpec, TypeVar

import duckdb
import msgspec
import pyarrow as pa

from reconwatch.backends.duckdb import udf
from reconwatch.errors import ReconwatchError
from reconwatch.plan.limits import DEFAULT_MEMORY
from reconwatch.rules.exceptions import ExceptionList
from reconwatch.store import alerts as alert_table
from reconwatch.store import context, exceptions, rulefields, schema, settings
from reconwatch.store.alerts import (
    AlertFilter,
    RunRecord,
    insert_alerts,
    insert_run,
    revision_of,
)
from reconwatch.store.events import NewEvent, Written, arrow_rows, naive_utc, plan_batch
from reconwatch.store.testhook import pause_point

DB_FILE = "reconwatch.duckdb"
DEFAULT_RETENTION = timedelta(days=7)
EXCEPTIONS_RECHECK = timedelta(minutes=1)
# The WAL size (bytes) past which the next commit checkpoints instead of writing to the WAL
# (DuckDB's default, set so it stays the bound): the WAL never holds more than this plus one
# commit (one batch of the writer), which is all a restart after a crash replays.
WAL_BOUND = 16 * 2**20
# DuckDB settings of the store's database. max_vacuum_tasks = 0: a checkpoint writes the rows
# committed since the last one as new row groups and rewrites nothing already on disk. With
# DuckDB's default (100) each checkpoint also merged the small row groups earlier checkpoints
# had written, in doubling steps up to a full row group (122,880 rows, every column
# recompressed), inside the commit that crossed WAL_BOUND: 2-14 s stalls of the writer at load
# 13-15 on 2 cores; a checkpoint run from another thread held the writer's commit as long.
# The cost: row groups of one checkpoint's rows (about 10,000 events at 16 MB); rows deleted
# by `index` replacing a document keep their space until retention drops their row group.
STORE_SETTINGS = (
    "SET enable_progress_bar = false",
    "SET max_vacuum_tasks = 0",
    f"SET checkpoint_threshold = '{WAL_BOUND // 2**20}MiB'",
)

Clock = Callable[[], datetime]
_P = ParamSpec("_P")
_R = TypeVar("_R")


class StoreError(ReconwatchError):
    """The store could not be opened or written (a locked or unreadable file, a full disk)."""


class Store:
    """Events, alerts and rule runs in `data_dir`/reconwatch.duckdb.

    `write` is called from one thread at a time (the service's writer); it commits before it
    returns, so an acknowledged event is on disk. Reads and retention use their own cursors
    (DuckDB's MVCC): a retention pass deleting old rows never waits for, nor stops, an append."""

    def __init__(
        self,
        data_dir: Path,
        clock: Clock,
        retention: timedelta = DEFAULT_RETENTION,
        *,
        memory_limit: str = DEFAULT_MEMORY,
    ):
        self.data_dir = data_dir
        self.clock = clock
        self.retention = retention
        try:
            data_dir.mkdir(parents=True, exist_ok=True)
            self._con = duckdb.connect(str(data_dir / DB_FILE))
        except (OSError, duckdb.Error) as exc:
            msg = f"cannot open the store in {data_dir}: {str(exc).splitlines()[0]}"
            raise StoreError(msg) from None
        for setting in STORE_SETTINGS:
            self._con.execute(setting)
        # DuckDB's default is 80% of the host; queries on the store set it again (their limit).
        self._con.execute(f"SET memory_limit = '{memory_limit}'")
        version = self._version()
        if version is not None and version > schema.SCHEMA_VERSION:
            self._con.close()
            msg = (
                f"the store in {data_dir} has schema version {version}, newer than this "
                f"reconwatch reads ({schema.SCHEMA_VERSION}): use a newer reconwatch or "
                "another data directory"
            )
            raise StoreError(msg)
        for ddl in schema.ALL:
            self._con.execute(ddl)
        self._upgrade(version)
        self._fill_filter_columns()
        # Alerts an earlier process held back while completing their evidence (it stopped
        # before it finished): the sinks take them as they are rather than never.
        self._con.execute("UPDATE alerts SET held = false WHERE held")
        self._writer = self._con.cursor()
        row = self._writer.execute("SELECT coalesce(max(seq) + 1, 0) FROM events").fetchone()
        self._next_seq = int(row[0]) if row else 0
        self._indices = {r[0] for r in self._writer.execute("SELECT idx FROM indices").fetchall()}
        self._lock = threading.Lock()
        # rule_id -> (read again at, the lists), for real-time batches (cached_exceptions).
        self._exceptions_cache: dict[str, tuple[datetime, list[ExceptionList]]] = {}
        self._udf_lock = threading.Lock()
        self._udfs = False
        # Told of every committed batch, (index, JSON text, seq) in order, before write
        # returns: the real-time rules read the events as stored (service.realtime).
        self.on_commit: Callable[[list[tuple[str, bytes, int]]], None] | None = None

    def close(self) -> None:
        self._writer.close()
        self._con.close()

    def _version(self) -> int | None:
        """The schema version on disk: None for a new store, 1 for one made before versions."""
        tables = {
            r[0] for r in self._con.execute("SELECT table_name FROM duckdb_tables()").fetchall()
        }
        if "store_meta" in tables:
            row = self._con.execute(
                "SELECT value FROM store_meta WHERE key = 'schema_version'"
            ).fetchone()
            if row is not None:
                return int(row[0]) if str(row[0]).isdigit() else 1_000_000
        return 1 if "events" in tables else None

    def _upgrade(self, version: int | None) -> None:
        """Bring an older store to this schema (new columns only; its rows stay as they were)."""
        if version is not None and version < 2:
            for ddl in schema.UPGRADE_TO_2:
                self._con.execute(ddl)
        if version is not None and version < 3:
            for ddl in schema.UPGRADE_TO_3:
                self._con.execute(ddl)
        elif version == 3:
            for ddl in schema.UPGRADE_TO_4:
                self._con.execute(ddl)
        self._con.execute(
            "INSERT OR REPLACE INTO store_meta VALUES ('schema_version', ?)",
            [str(schema.SCHEMA_VERSION)],
        )

    def _fill_filter_columns(self) -> None:
        """Alerts stored before the queue's filter columns existed get them from their document."""
        sets = ", ".join(
            f"{column} = json_extract_string(document, '$.\"{name}\"')"
            for name, column in alert_table.FILTER_FIELDS.items()
        )
        self._con.execute(f"UPDATE alerts SET {sets} WHERE rule_name IS NULL")

    def _on_cursor(
        self,
        fn: Callable[Concatenate[duckdb.DuckDBPyConnection, _P], _R],
        *args: _P.args,
        **kwargs: _P.kwargs,
    ) -> _R:
        """`fn` on a cursor of its own, in one transaction (rolled back if it raises)."""
        cur = self.cursor()
        try:
            cur.execute("BEGIN TRANSACTION")
            try:
                out = fn(cur, *args, **kwargs)
            except BaseException:
                cur.execute("ROLLBACK")
                raise
            cur.execute("COMMIT")
            return out
        except duckdb.Error as exc:
            msg = f"the store failed: {str(exc).splitlines()[0]}"
            raise StoreError(msg) from None
        finally:
            cur.close()

    @contextlib.contextmanager
    def _transaction(self, what: str) -> Iterator[duckdb.DuckDBPyConnection]:
        """A cursor of its own in one transaction, committed when the block ends; a DuckDB error
        becomes a StoreError saying `what` failed (the cursor is closed either way)."""
        cur = self.cursor()
        try:
            cur.execute("BEGIN TRANSACTION")
            yield cur
            cur.execute("COMMIT")
        except duckdb.Error as exc:
            msg = f"{what} failed: {str(exc).splitlines()[0]}"
            raise StoreError(msg) from None
        finally:
            cur.close()

    def cursor(self) -> duckdb.DuckDBPyConnection:
        """A cursor of its own for a reader thread."""
        return self._con.cursor()

    def query_cursor(self) -> duckdb.DuckDBPyConnection:
        """A cursor the query engine runs on (its rw_* SQL helpers registered), so a rule run's
        SQL reads the events table where it is (store.window); the caller closes it."""
        with self._udf_lock:
            if not self._udfs:
                # Registered once per database: every cursor of it sees them.
                udf.register(self._con)
                self._udfs = True
        cur = self._con.cursor()
        cur.execute("SET enable_progress_bar = false")
        return cur

    # -- events --------------------------------------------------------------------------------

    def write(self, batch: Sequence[NewEvent]) -> list[Written]:
        """Store `batch` in one transaction, committed when this returns; one result per action."""
        with self._lock:
            now = self.clock()
            cur = self._writer
            known = self._known_ids(cur, batch)
            results, pending = plan_batch(batch, known, now, self._next_seq)
            table = arrow_rows(pending)
            try:
                cur.execute("BEGIN TRANSACTION")
                for idx, doc_id, ts in pending.replaced:
                    # ts narrows the delete to the row groups that can hold the old version.
                    cur.execute(
                        "DELETE FROM events WHERE idx = ? AND id = ? AND ts IS NOT DISTINCT FROM ?",
                        [idx, doc_id, ts],
                    )
                cur.register("rw_new_events", table)
                cur.execute(rulefields.insert_sql("rw_new_events"))
                self._remember_ids(cur, pending.chosen, pending.rows)
                self._remember_indices(cur, table, now)
                pause_point("events", [r[2] for r in pending.rows], self._next_seq)
                cur.execute("COMMIT")
            except duckdb.Error as exc:
                cur.execute("ROLLBACK")
                msg = f"writing events to the store failed: {str(exc).splitlines()[0]}"
                raise StoreError(msg) from None
            finally:
                cur.unregister("rw_new_events")
            self._next_seq += len(pending.rows)
            if self.on_commit is not None:
                self.on_commit([(r[1], r[6], r[0]) for r in pending.rows if r[1]])
            return results

    @staticmethod
    def _known_ids(
        cur: duckdb.DuckDBPyConnection, batch: Sequence[NewEvent]
    ) -> dict[tuple[str, str], tuple[int, datetime | None]]:
        keys = sorted({(e.index, e.id) for e in batch if e.id is not None})
        if not keys:
            return {}
        # executemany is row by row in DuckDB: hand the keys over as one Arrow table.
        table = pa.table({"idx": [k[0] for k in keys], "id": [k[1] for k in keys]})
        cur.register("rw_keys", table)
        try:
            rows = cur.execute(
                "SELECT d.idx, d.id, d.version, d.ts FROM doc_ids d JOIN rw_keys k USING (idx, id)"
            ).fetchall()
        finally:
            cur.unregister("rw_keys")
        return {(r[0], r[1]): (int(r[2]), r[3]) for r in rows}

    @staticmethod
    def _remember_ids(
        cur: duckdb.DuckDBPyConnection,
        chosen: dict[tuple[str, str], tuple[int, datetime | None, int | None]],
        rows: Sequence[tuple[int, str, str, int, datetime | None, datetime, bytes, datetime]],
    ) -> None:
        if not chosen:
            return
        entries = [
            (k[0], k[1], v[0], v[1], rows[v[2]][7]) for k, v in chosen.items() if v[2] is not None
        ]
        if not entries:
            return
        columns = list(zip(*entries, strict=True))
        table = pa.table(
            [
                pa.array(columns[0], pa.string()),
                pa.array(columns[1], pa.string()),
                pa.array(columns[2], pa.int32()),
                pa.array(columns[3], pa.timestamp("us")),
                pa.array(columns[4], pa.timestamp("us")),
            ],
            names=["idx", "id", "version", "ts", "arrived"],
        )
        cur.register("rw_ids", table)
        try:
            cur.execute("INSERT OR REPLACE INTO doc_ids SELECT * FROM rw_ids")
        finally:
            cur.unregister("rw_ids")

    def _remember_indices(
        self, cur: duckdb.DuckDBPyConnection, table: object, now: datetime
    ) -> None:
        names = {str(n) for n in table.column("idx").unique().to_pylist()}  # type: ignore[attr-defined]
        fresh = sorted(names - self._indices)
        if fresh:
            cur.executemany(
                "INSERT OR IGNORE INTO indices VALUES (?, ?)", [(n, naive_utc(now)) for n in fresh]
            )
            self._indices.update(fresh)

    def indices(self) -> list[str]:
        with self._lock:
            return sorted(self._indices)

    def matching_indices(self, patterns: Sequence[str]) -> list[str]:
        """The stored indices a FROM with these patterns reads (`*` wildcards, `-name` excludes)."""
        return [name for name in self.indices() if index_matches(patterns, name)]

    def documents(
        self,
        indices: Sequence[str],
        start: datetime | None,
        end: datetime | None,
        column: str | None = "ts",
        limit: int | None = None,
        *,
        ordered: bool = True,
    ) -> Iterator[tuple[str, str, dict[str, object]]]:
        """(index, _id, _source) of the events in `indices` with start <= time <= end (see
        window_sql), in arrival order (the first `limit`; any `limit` of them when not
        `ordered`, which reads no more than that); only row groups whose time range meets it
        are read."""
        if not indices:
            return
        sql, args = window_sql(indices, start, end, column)
        if ordered:
            sql += " ORDER BY seq"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        cur = self.cursor()
        try:
            cur.execute(sql, args)
            decoder = msgspec.json.Decoder(dict[str, object])
            while chunk := cur.fetchmany(4096):
                for idx, doc_id, source in chunk:
                    yield idx, doc_id, decoder.decode(source)
        finally:
            cur.close()

    def latest_time(self, indices: Sequence[str]) -> datetime | None:
        """The latest @timestamp stored in `indices` (UTC), None when they hold no timed event."""
        if not indices:
            return None
        cur = self.cursor()
        try:
            row = cur.execute(
                "SELECT max(ts) FROM events WHERE idx IN (SELECT unnest(?))", [list(indices)]
            ).fetchone()
        finally:
            cur.close()
        return row[0].replace(tzinfo=UTC) if row and row[0] is not None else None

    def texts(self, indices: Sequence[str], start: datetime) -> Iterator[bytes]:
        """The JSON text of the events in `indices` with @timestamp >= start, in arrival order."""
        if not indices:
            return
        sql, args = window_sql(indices, start, None, "ts")
        cur = self.cursor()
        try:
            cur.execute(
                sql.replace("SELECT idx, id, source", "SELECT source") + " ORDER BY seq", args
            )
            while chunk := cur.fetchmany(4096):
                for (source,) in chunk:
                    yield source.encode("utf-8")
        finally:
            cur.close()

    def last_seq(self) -> int:
        """The arrival number (`seq`) of the last event committed, -1 for none."""
        with self._lock:
            return self._next_seq - 1

    def texts_after(
        self, indices: Sequence[str], after: int, upto: int, contains: Sequence[str] = ()
    ) -> Iterator[tuple[int, bytes]]:
        """(seq, JSON text) of the events in `indices` that arrived after `after` up to `upto`
        (seq), in arrival order; with `contains`, only texts holding one of those strings
        (DuckDB tests them, no Python decoding for the others)."""
        if not indices or upto <= after:
            return
        sql = "SELECT seq, source FROM events WHERE idx IN (SELECT unnest(?)) AND seq > ? AND seq <= ?"
        args: list[object] = [list(indices), after, upto]
        if contains:
            sql += f" AND ({' OR '.join('contains(source, ?)' for _ in contains)})"
            args.extend(contains)
        cur = self.cursor()
        try:
            cur.execute(sql + " ORDER BY seq", args)
            while chunk := cur.fetchmany(4096):
                for seq, source in chunk:
                    yield int(seq), source.encode("utf-8")
        finally:
            cur.close()

    def detector_state(self, rule_id: str) -> tuple[bytes, int] | None:
        """A native rule's saved detector state and the last event seq it covers."""
        cur = self.cursor()
        try:
            row = cur.execute(
                "SELECT state, seq FROM detector_state WHERE rule_id = ?", [rule_id]
            ).fetchone()
        finally:
            cur.close()
        return None if row is None else (bytes(row[0]), int(row[1]))

    def save_detector_state(self, rule_id: str, state: bytes, seq: int) -> None:
        """Replace a native rule's saved state (one transaction: the state and its seq agree)."""
        with self._transaction(f"saving the state of {rule_id}") as cur:
            cur.execute(
                "INSERT OR REPLACE INTO detector_state VALUES (?, ?, ?, ?)",
                [rule_id, state, seq, naive_utc(self.clock())],
            )

    def follow_positions(self) -> dict[str, object]:
        """Each followed file's saved position (decoded JSON), by path."""
        cur = self.cursor()
        try:
            rows = cur.execute("SELECT path, position FROM follow_positions").fetchall()
        finally:
            cur.close()
        return {str(r[0]): msgspec.json.decode(r[1]) for r in rows}

    def save_follow_position(self, path: str, position: object) -> None:
        cur = self.cursor()
        try:
            cur.execute(
                "INSERT OR REPLACE INTO follow_positions VALUES (?, ?)",
                [path, msgspec.json.encode(position).decode("utf-8")],
            )
        finally:
            cur.close()

    def count(self, index: str | None = None) -> int:
        cur = self.cursor()
        try:
            if index is None:
                row = cur.execute("SELECT count(*) FROM events").fetchone()
            else:
                row = cur.execute("SELECT count(*) FROM events WHERE idx = ?", [index]).fetchone()
            return int(row[0]) if row else 0
        finally:
            cur.close()

    # -- alerts and runs ------------------------------------------------------------------------

    def add_run(
        self,
        run: RunRecord,
        alerts: Sequence[Mapping[str, object]],
        updates: Sequence[tuple[str, Mapping[str, object]]] = (),
    ) -> list[str]:
        """Record a run, store its alerts and rewrite the `updates` (id, document) of alerts it
        found again, in one transaction; the ids of the new alerts (an alert id already stored,
        from an earlier run of the same window, is not stored again)."""
        with self._transaction(f"storing the run of {run.rule_id}") as cur:
            fresh = insert_alerts(cur, alerts, self.clock())
            alert_table.update_documents(cur, updates)
            insert_run(cur, run)
            if fresh:
                pause_point("alerts", fresh)
        return fresh

    def add_group_alerts(
        self,
        alerts: Sequence[Mapping[str, object]],
        groups: Sequence[tuple[str, datetime]],
        *,
        held: bool = False,
    ) -> list[str]:
        """Store real-time alerts with their group keys and detection times; the new ids.
        `held`: the sinks do not take them until `release_alert`."""
        with self._transaction("storing real-time alerts") as cur:
            fresh = insert_alerts(cur, alerts, self.clock(), groups, held=held)
            if fresh:
                pause_point("alerts", fresh)
        return fresh

    def release_alert(self, alert_id: str, key: str | None = None, value: object = None) -> None:
        """Let the sinks take a held alert, with one key of its evidence set first when `key`
        is given (read and written in one transaction, so a run updating the alert meanwhile is
        not undone)."""
        with self._transaction(f"amending alert {alert_id}") as cur:
            row = cur.execute("SELECT document FROM alerts WHERE id = ?", [alert_id]).fetchone()
            if row is not None and key is not None:
                doc = msgspec.json.decode(row[0])
                evidence = doc.get("reconwatch.evidence")
                if isinstance(evidence, dict) and key not in evidence:
                    evidence[key] = value
                    alert_table.update_documents(cur, [(alert_id, doc)], revise=False)
            cur.execute("UPDATE alerts SET held = false WHERE id = ?", [alert_id])

    def group_alert(
        self, rule_id: str, key: str, start: datetime, end: datetime
    ) -> tuple[str, dict[str, object]] | None:
        """The latest real-time alert of a rule's group detected in [start, end]."""
        cur = self.cursor()
        try:
            return alert_table.find_group_alert(cur, rule_id, key, start, end)
        finally:
            cur.close()

    def run_alerted(self, rule_id: str, by: Sequence[str], key: str, detected: datetime) -> bool:
        """Whether a scheduled or manual run of the rule alerted on the group `key` (its BY
        columns `by`) over a window holding `detected`."""
        cur = self.cursor()
        try:
            return alert_table.run_alerted(cur, rule_id, by, key, detected)
        finally:
            cur.close()

    def last_run(self, rule_id: str) -> datetime | None:
        """When the rule's last scheduled run started (catch-up and manual runs do not count)."""
        cur = self.cursor()
        try:
            row = cur.execute(
                "SELECT max(run_at) FROM rule_runs WHERE rule_id = ? AND execution_type = 'scheduled'",
                [rule_id],
            ).fetchone()
        finally:
            cur.close()
        return row[0].replace(tzinfo=UTC) if row and row[0] is not None else None

    def runs(self, rule_id: str) -> list[RunRecord]:
        cur = self.cursor()
        try:
            rows = cur.execute(
                "SELECT * FROM rule_runs WHERE rule_id = ? ORDER BY run_at, window_start", [rule_id]
            ).fetchall()
        finally:
            cur.close()
        return [
            RunRecord(
                rule_id=r[0],
                run_at=r[1].replace(tzinfo=UTC),
                start=r[2].replace(tzinfo=UTC),
                end=r[3].replace(tzinfo=UTC),
                execution_type=r[4],
                alerts=r[5],
                gap_ms=r[6],
                error=r[7],
                warnings=tuple(msgspec.json.decode(r[8])),
            )
            for r in rows
        ]

    def alerts(self, rule_id: str | None = None) -> list[dict[str, object]]:
        """Stored alert documents, oldest first."""
        cur = self.cursor()
        try:
            sql = "SELECT document FROM alerts"
            args: list[object] = []
            if rule_id is not None:
                sql += " WHERE rule_id = ?"
                args.append(rule_id)
            rows = cur.execute(sql + " ORDER BY created, rowid", args).fetchall()
        finally:
            cur.close()
        return [msgspec.json.decode(r[0]) for r in rows]

    def list_alerts(self, f: AlertFilter) -> tuple[int, list[dict[str, object]]]:
        cur = self.cursor()
        try:
            return alert_table.list_alerts(cur, f)
        finally:
            cur.close()

    def get_alert(self, alert_id: str) -> dict[str, object] | None:
        cur = self.cursor()
        try:
            return alert_table.get_alert(cur, alert_id)
        finally:
            cur.close()

    def set_status(self, alert_id: str, status: str, user: str) -> dict[str, object] | None:
        """Set an alert's workflow status, by `user`, at the store's clock; None: no such alert."""
        cur = self.cursor()
        try:
            return alert_table.set_status(cur, alert_id, status, user, self.clock())
        finally:
            cur.close()

    def set_run_duration(self, run: RunRecord, seconds: float) -> None:
        """Note how long a recorded run took."""
        self._on_cursor(
            lambda cur: cur.execute(
                "UPDATE rule_runs SET duration_ms = ? WHERE rule_id = ? AND run_at = ? "
                "AND window_start = ? AND execution_type = ?",
                [
                    round(seconds * 1000),
                    run.rule_id,
                    naive_utc(run.run_at),
                    naive_utc(run.start),
                    run.execution_type,
                ],
            )
        )

    def run_durations(self, rule_id: str) -> list[int | None]:
        """Each run's duration (ms; None when not measured), in the order of `runs`."""
        cur = self.cursor()
        try:
            rows = cur.execute(
                "SELECT duration_ms FROM rule_runs WHERE rule_id = ? ORDER BY run_at, window_start",
                [rule_id],
            ).fetchall()
        finally:
            cur.close()
        return [r[0] for r in rows]

    def set_statuses(self, ids: list[str], status: str, user: str) -> list[str]:
        """Set the workflow status of many alerts at once; the ids that exist."""
        return self._on_cursor(alert_table.set_statuses, ids, status, user, self.clock())

    def status_counts(self, f: AlertFilter) -> dict[str, int]:
        return self._on_cursor(alert_table.status_counts, f)

    def alert_facets(self) -> dict[str, list[str]]:
        return self._on_cursor(alert_table.facets)

    def related_alerts(
        self, alert_id: str, host: str | None, executable: str | None
    ) -> list[dict[str, object]]:
        return self._on_cursor(alert_table.related, alert_id, host, executable)

    def host_activity(
        self, host: str, start: datetime, end: datetime
    ) -> list[tuple[str | None, str | None, int, int]]:
        return self._on_cursor(context.activity, host, start, end)

    def first_seen(self, host: str) -> list[tuple[str, datetime, int]]:
        return self._on_cursor(context.first_seen, host)

    # -- exceptions, rule settings, guide checklists ---------------------------------------------

    def exceptions(
        self,
        fn: Callable[Concatenate[duckdb.DuckDBPyConnection, _P], _R],
        *args: _P.args,
        **kwargs: _P.kwargs,
    ) -> _R:
        """One function of store.exceptions, in a transaction of its own."""
        self._exceptions_cache.clear()  # any change to the lists shows in the next batch
        return self._on_cursor(fn, *args, **kwargs)

    def cached_exceptions(self, rule_id: str, named: Sequence[str] = ()) -> list[ExceptionList]:
        """exceptions_for, read again only after the lists changed or a minute of the store's
        clock passed (an item may expire): what every real-time batch applies."""
        now = self.clock()
        found = self._exceptions_cache.get(rule_id)
        if found is None or now >= found[0]:
            found = (now + EXCEPTIONS_RECHECK, self.exceptions_for(rule_id, named))
            self._exceptions_cache[rule_id] = found
        return found[1]

    def exceptions_for(self, rule_id: str, named: Sequence[str] = ()) -> list[ExceptionList]:
        """The exception lists a run of the rule applies now (expired items left out)."""
        return self._on_cursor(exceptions.for_rule, rule_id, self.clock(), named)

    def rule_settings(self) -> dict[str, settings.RuleSetting]:
        return self._on_cursor(settings.rule_settings)

    def set_rule(
        self, rule_id: str, enabled: bool | None = None, realtime: bool | None = None
    ) -> settings.RuleSetting:
        return self._on_cursor(settings.set_rule, rule_id, enabled, realtime)

    def guide(self, alert_id: str) -> dict[int, dict[str, object]]:
        return self._on_cursor(settings.guide, alert_id)

    def set_guide_step(self, alert_id: str, step: int, done: bool, user: str) -> None:
        self._on_cursor(settings.set_step, alert_id, step, done, user, self.clock())

    def undelivered(self, sink: str, limit: int = 1000) -> list[tuple[str, dict[str, object]]]:
        """(id, document) of the alerts `sink` has not taken yet in their current revision
        (new ones, and ones a later run updated since), oldest first; held alerts wait."""
        cur = self.cursor()
        try:
            rows = cur.execute(
                "SELECT a.id, a.document FROM alerts a WHERE NOT coalesce(a.held, false) "
                "AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.alert_id = a.id AND "
                "d.sink = ? AND d.revision >= coalesce(a.revision, 0)) "
                "ORDER BY a.created, a.rowid LIMIT ?",
                [sink, limit],
            ).fetchall()
        finally:
            cur.close()
        return [(r[0], msgspec.json.decode(r[1])) for r in rows]

    def mark_delivered(self, sink: str, taken: Sequence[tuple[str, Mapping[str, object]]]) -> None:
        """The sink took these (id, document) pairs: each document's revision is recorded, so a
        later revision is delivered again."""
        cur = self.cursor()
        try:
            now = naive_utc(self.clock())
            table = pa.table(
                {
                    "alert_id": [alert_id for alert_id, _ in taken],
                    "sink": [sink] * len(taken),
                    "revision": pa.array([revision_of(doc) for _, doc in taken], pa.int32()),
                }
            )
            cur.register("rw_delivered", table)
            cur.execute(
                "INSERT INTO deliveries (alert_id, sink, delivered, revision) "
                "SELECT alert_id, sink, ?, revision FROM rw_delivered "
                "ON CONFLICT (alert_id, sink) DO UPDATE SET delivered = excluded.delivered, "
                "revision = greatest(deliveries.revision, excluded.revision)",
                [now],
            )
            cur.unregister("rw_delivered")
        finally:
            cur.close()

    def enforce_retention(self) -> int:
        """Delete the events that arrived longer than the retention ago; how many."""
        cutoff = naive_utc(self.clock() - self.retention)
        cur = self.cursor()
        try:
            cur.execute("BEGIN TRANSACTION")
            row = cur.execute("DELETE FROM events WHERE arrived < ?", [cutoff]).fetchone()
            cur.execute("DELETE FROM doc_ids WHERE arrived < ?", [cutoff])
            cur.execute("COMMIT")
        except duckdb.Error as exc:
            cur.execute("ROLLBACK")
            msg = f"retention failed: {str(exc).splitlines()[0]}"
            raise StoreError(msg) from None
        finally:
            cur.close()
        return int(row[0]) if row else 0


def window_sql(
    indices: Sequence[str], start: datetime | None, end: datetime | None, column: str | None = "ts"
) -> tuple[str, list[object]]:
    """The query of the events in [start, end] on `column` ("ts": @timestamp, "ingested":
    event.ingested, None: every time), a superset of a rule window the engine then filters
    exactly; the bounds on the column are what the zone maps prune by."""
    sql = "SELECT idx, id, source FROM events WHERE idx IN (SELECT unnest(?))"
    args: list[object] = [list(indices)]
    for op, bound in window_bounds(start, end, column):
        sql += f" AND {column} {op} ?"
        args.append(naive_utc(bound))
    return sql, args


def window_bounds(
    start: datetime | None, end: datetime | None, column: str | None
) -> list[tuple[str, datetime]]:
    """The comparisons on `column` that bound a window ([start, end], inclusive both ends)."""
    if column not in (None, "ts", "ingested"):
        raise ValueError(column)
    if column is None:
        return []
    out: list[tuple[str, datetime]] = []
    if start is not None:
        out.append((">=", start))
    if end is not None:
        out.append(("<=", end))
    return out


def index_matches(patterns: Sequence[str], name: str) -> bool:
    """Whether a FROM with these patterns reads index `name` (`*` wildcards, `-name` excludes)."""
    hit = False
    for pattern in patterns:
        for part in pattern.split(","):
            part = part.strip()
            exclude = part.startswith("-")
            if _pattern(part.lstrip("-")).fullmatch(name):
                hit = not exclude
    return hit


@functools.lru_cache(maxsize=1024)
def _pattern(text: str) -> re.Pattern[str]:
    return re.compile(".*".join(re.escape(p) for p in text.split("*")))
