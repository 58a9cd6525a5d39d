"""The service's store at scale: one scheduled run of the seed rule over the last 61 minutes of a
10M-event store (evidence built, as the service runs it) vs the same run with every value
checked (as before the store vouched for regular values) and the same query hand-written in
DuckDB SQL over the same table; the rows each window read scans; retention deleting a day while ingest
goes on, next to the same ingest with no retention running, with the store's DuckDB settings and
with DuckDB's default vacuum (the baseline), the batches whose commit checkpointed apart."""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb

from gen_events import generate, query_time

HERE = Path(__file__).resolve().parent
INDEX = "logs-endpoint.events.network-default"
# Simulated fleet traffic per hour (bench/gen_events.py): the fresh hours at the end of the store.
PER_HOUR = 72_000


# -- the store ------------------------------------------------------------------------------------


def build(data: Path, fresh: Path, events: int, now: datetime) -> int:
    """A store of about `events` events: the fresh hours as generated (a subnet scan in the
    last), preceded by copies of them shifted back by their span each, oldest first (rows land
    in arrival order, as the service appends them) over about `events / PER_HOUR` hours. Written
    straight into the store's table in DuckDB: the rule-field columns are taken out of each
    fresh document once (store.rulefields.insert_sql, as ingest takes them) and each copy
    shifts @timestamp and event.ingested in the text and in their columns alike."""
    from reconwatch.store import Store, rulefields

    Store(data, lambda: now, retention=timedelta(days=3650)).close()
    con = duckdb.connect(str(data / "reconwatch.duckdb"))
    try:
        con.execute(
            "CREATE TEMP TABLE raw AS SELECT row_number() OVER () AS seq, ? AS idx, "
            "'' AS id, 1 AS version, "
            "CAST(json_extract_string(json, '$.\"@timestamp\"') AS TIMESTAMP) AS ts, "
            "CAST(json_extract_string(json, '$.event.ingested') AS TIMESTAMP) AS ingested, "
            "json AS source, "
            "CAST(json_extract_string(json, '$.event.ingested') AS TIMESTAMP) AS arrived "
            "FROM read_ndjson_objects(?)",
            [INDEX, str(fresh)],
        )
        con.execute("CREATE TEMP TABLE tmpl AS SELECT * FROM events LIMIT 0")
        con.execute(
            rulefields.insert_sql("raw").replace("INSERT INTO events", "INSERT INTO tmpl", 1)
        )
        row = con.execute("SELECT count(*), min(ts), max(ts) FROM tmpl").fetchone()
        assert row is not None
        base, first, last = int(row[0]), row[1], row[2]
        span = max(1, round((last - first).total_seconds() / 3600))
        copies = max(0, -(-(events - base) // base))
        for k in range(copies, -1, -1):
            _copy(con, k * span, (copies - k) * base)
        con.execute("INSERT OR IGNORE INTO indices VALUES (?, now()::TIMESTAMP)", [INDEX])
        con.execute("CHECKPOINT")
        row = con.execute("SELECT count(*) FROM events").fetchone()
        assert row is not None
        return int(row[0])
    finally:
        con.close()


def _copy(con: duckdb.DuckDBPyConnection, hours: int, seq_from: int) -> None:
    """The fresh rows shifted `hours` back, appended with seq numbers after `seq_from`."""
    from reconwatch.store import rulefields

    shifted = {
        "seq": f"seq + {seq_from}",
        "id": "substr(replace(uuid()::VARCHAR, '-', ''), 1, 20)",
        "ts": f"ts - to_hours({hours})",
        "ingested": f"ingested - to_hours({hours})",
        "arrived": f"arrived - to_hours({hours})",
        "source": (
            "replace(replace(source, '\"@timestamp\":' || f__timestamp::VARCHAR, "
            f"'\"@timestamp\":' || to_json(strftime(ts - to_hours({hours}), '%Y-%m-%dT%H:%M:%S.%gZ'))"
            "::VARCHAR), '\"ingested\":' || f_event_ingested::VARCHAR, '\"ingested\":' || "
            f"to_json(strftime(ingested - to_hours({hours}), '%Y-%m-%dT%H:%M:%S.%gZ'))::VARCHAR)"
        ),
        rulefields.COLUMNS["@timestamp"]: (
            f"to_json(strftime(ts - to_hours({hours}), '%Y-%m-%dT%H:%M:%S.%gZ'))"
        ),
        rulefields.COLUMNS["event.ingested"]: (
            f"to_json(strftime(ingested - to_hours({hours}), '%Y-%m-%dT%H:%M:%S.%gZ'))"
        ),
    }
    names = [r[0] for r in con.execute("DESCRIBE tmpl").fetchall()]
    select = ", ".join(f"{shifted.get(n, n)} AS {n}" for n in names)
    con.execute(f"INSERT INTO events SELECT {select} FROM tmpl ORDER BY seq")


def _opened(data: Path, now: datetime) -> tuple[object, int, int]:
    """The store, its event count and its row groups."""
    from reconwatch.store import Store

    store = Store(data, lambda: now, retention=timedelta(days=3650))
    cur = store.cursor()
    try:
        row = cur.execute("SELECT count(*) FROM events").fetchone()
        groups = cur.execute(
            "SELECT count(DISTINCT row_group_id) FROM pragma_storage_info('events')"
        ).fetchone()
    finally:
        cur.close()
    assert row is not None and groups is not None
    return store, int(row[0]), int(groups[0])


def _load() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


# -- one scheduled run vs the hand-written SQL -------------------------------------------------------


def _rule_run(
    store: object, rule: object, now: datetime, evidence: bool, checked: bool = False
) -> tuple[float, float, int]:
    """One first scheduled run of the rule as the service makes it (Scheduler.tick: the window
    read, the query, alert documents with their evidence, the run and alerts stored); the
    store's earlier runs and alerts cleared first, so each is the same first run. `checked`:
    every value read with the checks, as before the store vouched for regular values (the
    baseline). (wall, CPU s of every thread, alerts)."""
    from reconwatch.service.scheduler import Scheduler
    from reconwatch.store.window import StoredWindow

    if checked:
        real = StoredWindow.regular
        StoredWindow.regular = lambda self, fields: None  # type: ignore[assignment,method-assign]
        try:
            return _rule_run(store, rule, now, evidence)
        finally:
            StoredWindow.regular = real  # type: ignore[method-assign]

    cur = store.cursor()  # type: ignore[attr-defined]
    cur.execute("DELETE FROM rule_runs")
    cur.execute("DELETE FROM alerts")
    cur.close()
    scheduler = Scheduler(store, [rule], lambda: now, evidence=evidence)  # type: ignore[arg-type,list-item]
    started, cpu = time.perf_counter(), time.process_time()
    outcomes = scheduler.tick()
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    record = outcomes[-1].record
    assert record.error is None, record.error
    return wall, cpu, record.alerts


# The seed rule's fields, from the store's rule-field columns or parsed out of the JSON text.
_FROM_COLUMNS = {
    "t": "CAST(f__timestamp->>'$' AS TIMESTAMP)",
    "os": "f_host_os_type->>'$'",
    "action": "f_event_action->>'$'",
    "types": "CAST(f_event_type AS VARCHAR[])",
    "exe": "f_process_executable->>'$'",
    "dip": "f_destination_ip->>'$'",
    "agent_id": "f_agent_id->>'$'",
    "host_name": "f_host_name->>'$'",
}
_FROM_TEXT = {
    "t": "CAST(json_extract_string(source, '$.\"@timestamp\"') AS TIMESTAMP)",
    "os": "json_extract_string(source, '$.host.os.type')",
    "action": "json_extract_string(source, '$.event.action')",
    "types": "CAST(json_extract(source, '$.event.type') AS VARCHAR[])",
    "exe": "json_extract_string(source, '$.process.executable')",
    "dip": "json_extract_string(source, '$.destination.ip')",
    "agent_id": "json_extract_string(source, '$.agent.id')",
    "host_name": "json_extract_string(source, '$.host.name')",
}


def _hand_written(store: object, now: datetime, fields: dict[str, str]) -> int:
    """The seed rule's query as an expert writes it in DuckDB SQL over the same table: its
    window on the event.ingested column (the rule's timestamp_override), then its WHERE and
    STATS; the groups found."""
    start = (now - timedelta(minutes=61)).replace(tzinfo=None)
    end = now.replace(tzinfo=None)
    picked = ", ".join(f"{expr} AS {name}" for name, expr in fields.items())
    con = store.cursor()  # type: ignore[attr-defined]
    try:
        row = con.execute(
            f"""
            WITH e AS (SELECT {picked} FROM events
                       WHERE idx = ? AND ingested >= ? AND ingested <= ?)
            SELECT count(*) FROM (
              SELECT exe, count(*) AS n, count(DISTINCT dip) AS ips,
                     count(DISTINCT agent_id) AS agents, list_distinct(list(host_name)),
                     list_distinct(list(agent_id))
              FROM e
              WHERE t > ? AND os = 'linux' AND action = 'connection_attempted'
                AND list_contains(types, 'start')
              GROUP BY exe HAVING agents = 1 AND ips > 250 ORDER BY n LIMIT 100)
            """,
            [INDEX, start, end, end - timedelta(hours=1)],
        ).fetchone()
    finally:
        con.close()
    return int(row[0]) if row else 0


def _timed(fn: Callable[[], int]) -> tuple[float, float, int]:
    started, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return time.perf_counter() - started, time.process_time() - cpu, out


def bench_run(store: object, now: datetime, repeats: int) -> None:
    from reconwatch.rules.builtin import DEFAULT_RULE, load_builtin

    rule = load_builtin(DEFAULT_RULE)
    # The same rule with its threshold out of reach: a run that alerts nothing (most runs).
    quiet = replace(rule, query=rule.query.replace("> 250", "> 100000000"))
    assert quiet.query != rule.query
    sides: dict[str, Callable[[], tuple[float, float, int]]] = {
        "rule": lambda: _rule_run(store, rule, now, evidence=True),
        "rule, checked": lambda: _rule_run(store, rule, now, evidence=True, checked=True),
        "rule, no evidence": lambda: _rule_run(store, rule, now, evidence=False),
        "rule, quiet": lambda: _rule_run(store, quiet, now, evidence=True),
        "sql/columns": lambda: _timed(lambda: _hand_written(store, now, _FROM_COLUMNS)),
        "sql/text": lambda: _timed(lambda: _hand_written(store, now, _FROM_TEXT)),
    }
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in sides}
    found: dict[str, int] = {}
    loads = [_load()]
    for side in sides.values():  # warm: the first read of a cold file is the disk's
        side()
    for _ in range(repeats):
        for name, side in sides.items():
            wall, cpu, found[name] = side()
            times[name].append((wall, cpu))
    loads.append(_load())
    labels = {
        "rule": f"scheduled run of the seed rule, as the service runs it ({found['rule']} alerts)",
        "rule, checked": "the same run with every value checked (before: the baseline)",
        "rule, no evidence": "the same run without the alerts' evidence",
        "rule, quiet": f"the same run with the threshold out of reach ({found['rule, quiet']} alerts)",
        "sql/columns": f"hand-written DuckDB SQL over the rule-field columns ({found['sql/columns']} groups)",
        "sql/text": "hand-written DuckDB SQL over the JSON text (json_extract)",
    }
    print(
        f"load average (1/5/15 min) before / after the runs: {loads[0]} / {loads[1]} on {os.cpu_count()} CPUs"
    )
    for name, label in labels.items():
        walls = [w for w, _ in times[name]]
        cpus = [c for _, c in times[name]]
        print(
            f"{label}: wall median {statistics.median(walls):.3f} s, best {min(walls):.3f} s; "
            f"CPU median {statistics.median(cpus):.3f} s ({repeats} runs)"
        )
    print("target: one scheduled run <= 0.5 s")
    rule_wall = statistics.median(w for w, _ in times["rule"])
    rule_cpu = statistics.median(c for _, c in times["rule"])
    for name in ("rule, checked", "sql/columns", "sql/text"):
        wall = statistics.median(w for w, _ in times[name])
        cpu = statistics.median(c for _, c in times[name])
        print(
            f"ratio scheduled run / {name} (medians): {rule_wall / wall:.2f} wall, {rule_cpu / cpu:.2f} CPU"
        )


# -- what a window read scans -------------------------------------------------------------------------


def _scanned(cur: duckdb.DuckDBPyConnection, sql: str) -> tuple[int, int, int]:
    """(row groups to scan, row groups scanned, rows scanned) of `sql` (DuckDB's profile)."""
    cur.execute("PRAGMA enable_profiling = 'json'")
    cur.execute("PRAGMA profiling_mode = 'detailed'")
    try:
        profile = json.loads(cur.execute("EXPLAIN ANALYZE " + sql).fetchall()[0][1])
    finally:
        cur.execute("PRAGMA disable_profiling")
    query = profile["query"]
    return (
        int(query["total_row_groups_to_scan"]),
        int(query["total_row_groups_scanned"]),
        int(query["total_rows_scanned"]),
    )


def bench_pruning(store: object, now: datetime, total: int) -> None:
    """The rule's window read (the store's SQL for it) and the hand-written query's, profiled."""
    from reconwatch.store.window import StoredWindow

    window = StoredWindow(store, INDEX, now - timedelta(minutes=61), now, "ingested")  # type: ignore[arg-type]
    structure = '\'{"host": {"name": "VARCHAR", "os": {"type": "VARCHAR"}}, "event": {"action": "VARCHAR"}}\''
    cur = store.query_cursor()  # type: ignore[attr-defined]
    try:
        for label, sql in (
            (
                "the rule's window read (columns)",
                f"SELECT count(*) FROM {window.relation(structure)}",
            ),
            (
                "the time filter alone",
                (
                    f"SELECT count(*) FROM events WHERE ingested >= TIMESTAMP '{(now - timedelta(minutes=61)).replace(tzinfo=None)}' "
                    f"AND ingested <= TIMESTAMP '{now.replace(tzinfo=None)}'"
                ),
            ),
        ):
            to_scan, scanned, rows = _scanned(cur, sql)
            print(
                f"{label}: {scanned} of {to_scan} row groups scanned, {rows:,} rows read by the "
                f"scans of {total:,} stored"
            )
    finally:
        cur.close()


# -- retention while ingest goes on ---------------------------------------------------------------


def _batches(fresh: Path, count: int, size: int) -> list[list[object]]:
    """`count` batches of `size` events as the service's writer hands them to the store (the
    JSON text of each as a client sent it)."""
    from reconwatch.store import NewEvent

    out: list[list[object]] = []
    with fresh.open("rb") as f:
        for _ in range(count):
            out.append(
                [NewEvent("create", INDEX, None, f.readline().rstrip(b"\n")) for _ in range(size)]
            )
    return out


def _wal_size(store: object) -> int:
    wal = store.data_dir / "reconwatch.duckdb.wal"  # type: ignore[attr-defined]
    return wal.stat().st_size if wal.exists() else 0


def _ingest(
    store: object, batches: list[list[object]], until: threading.Event | None
) -> tuple[list[float], list[bool]]:
    """Write the batches in turn (all of them, and on while `until` is not set); each one's
    seconds from the call to its commit, and whether its commit checkpointed (the WAL shrank)."""
    took: list[float] = []
    checkpointed: list[bool] = []
    i = 0
    while i < len(batches) or (until is not None and not until.is_set()):
        wal = _wal_size(store)
        started = time.perf_counter()
        store.write(batches[i % len(batches)])  # type: ignore[attr-defined]
        took.append(time.perf_counter() - started)
        checkpointed.append(_wal_size(store) < wal)
        i += 1
    return took, checkpointed


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _retained(
    data: Path, now: datetime, work: list[list[object]], settings: tuple[str, ...]
) -> dict[str, object]:
    """On a copy of the store with DuckDB `settings` set after it opens: the batches appended
    alone, then again while retention deletes the oldest day; each batch's seconds, what
    retention deleted and how long it took, the load average at each phase."""
    import shutil

    from reconwatch.store import Store

    with tempfile.TemporaryDirectory(prefix="rw-bench-retention-", dir=data.parent) as tmp:
        copy = Path(tmp)
        shutil.copy(data / "reconwatch.duckdb", copy / "reconwatch.duckdb")
        probe = Store(copy, lambda: now, retention=timedelta(days=3650))
        cur = probe.cursor()
        row = cur.execute("SELECT min(arrived), count(*) FROM events").fetchone()
        cur.close()
        probe.close()
        assert row is not None
        oldest, before = row[0].replace(tzinfo=UTC), int(row[1])
        # What arrived in the first day (or half, for a store spanning less than two) is past
        # the retention.
        retention = now - (oldest + min(timedelta(days=1), (now - oldest) / 2))
        store = Store(copy, lambda: now, retention=retention)
        try:
            cur = store.cursor()
            for setting in settings:
                cur.execute(setting)
            cur.close()
            load_alone = _load()
            alone, alone_ck = _ingest(store, work, None)
            done = threading.Event()
            deleted: list[int] = []
            seconds: list[float] = []

            def retain() -> None:
                started = time.perf_counter()
                deleted.append(store.enforce_retention())
                seconds.append(time.perf_counter() - started)
                done.set()

            load_during = _load()
            worker = threading.Thread(target=retain)
            worker.start()
            during, during_ck = _ingest(store, work, done)
            worker.join()
            after = store.count()
        finally:
            store.close()
    written = (len(alone) + len(during)) * len(work[0])
    assert after == before - deleted[0] + written, (after, before, deleted, written)
    return {
        "alone": alone,
        "during": during,
        "alone_ck": alone_ck,
        "during_ck": during_ck,
        "deleted": deleted[0],
        "seconds": seconds[0],
        "hours": (now - oldest - retention).total_seconds() / 3600,
        "before": before,
        "loads": (load_alone, load_during),
    }


def _split(took: list[float], checkpointed: list[bool]) -> str:
    """The batches whose commit checkpointed next to the others."""
    parts = []
    for label, flag in (("checkpointed", True), ("did not", False)):
        mine = [t for t, c in zip(took, checkpointed, strict=True) if c is flag]
        if mine:
            parts.append(
                f"{len(mine)} {label}: median {statistics.median(mine) * 1000:.0f} ms, "
                f"max {max(mine) * 1000:.0f} ms"
            )
    return "; ".join(parts)


def bench_retention(
    data: Path, now: datetime, fresh: Path, batches: int, size: int, baseline_first: bool = False
) -> None:
    """Retention deleting the oldest day of a copy of the store while the writer appends, next
    to the same appends with no retention running; the store's DuckDB settings, then DuckDB's
    default vacuum (each checkpoint merging the row groups earlier ones wrote: the baseline)."""
    work = _batches(fresh, batches, size)
    runs = {
        "the store's settings (no vacuum)": (),
        "DuckDB's default vacuum (baseline)": ("SET max_vacuum_tasks = 100",),
    }
    # Which side runs first is swapped by --baseline-first: the load of a shared machine drifts.
    order = list(runs)[::-1] if baseline_first else list(runs)
    done = {name: _retained(data, now, work, runs[name]) for name in order}
    sides = {name: done[name] for name in runs}
    for name, side in sides.items():
        alone, during = side["alone"], side["during"]
        assert isinstance(alone, list) and isinstance(during, list)
        loads = side["loads"]
        assert isinstance(loads, tuple)
        print(
            f"{name}: retention deleted {side['deleted']:,} events (what arrived in the oldest "
            f"{side['hours']:.0f} h, of {side['before']:,}) in {side['seconds']:.2f} s while "
            f"the writer appended {len(during) * size:,} in {len(during)} batches of {size:,}"
        )
        for label, key, load in (
            ("no retention running", "alone", loads[0]),
            ("retention running", "during", loads[1]),
        ):
            took, ck = side[key], side[f"{key}_ck"]
            assert isinstance(took, list) and isinstance(ck, list)
            print(
                f"  ingest batches, {label} (load {load}): median "
                f"{statistics.median(took) * 1000:.0f} ms, p99 {_pct(took, 0.99) * 1000:.0f} ms, "
                f"max {max(took) * 1000:.0f} ms ({size * len(took) / sum(took):,.0f} events/s, "
                f"{len(took)} batches); {_split(took, ck)}"
            )
    ours, base = sides.values()
    for label, key in (("no retention", "alone"), ("retention running", "during")):
        mine, theirs = ours[key], base[key]
        assert isinstance(mine, list) and isinstance(theirs, list)
        print(
            f"ratio store's / baseline, {label}: max {max(mine) / max(theirs):.2f}, "
            f"p99 {_pct(mine, 0.99) / _pct(theirs, 0.99):.2f}, "
            f"median {statistics.median(mine) / statistics.median(theirs):.2f}"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--events", type=int, default=10_000_000)
    ap.add_argument("--fresh-hours", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--keep", help="a directory the store is kept in (and reused from)")
    ap.add_argument("--build-only", action="store_true")
    ap.add_argument("--no-retention", action="store_true", help="skip the retention pass")
    ap.add_argument(
        "--retention-only", action="store_true", help="only the ingest and retention pass"
    )
    ap.add_argument("--baseline-first", action="store_true", help="the baseline's ingest first")
    ap.add_argument("--batches", type=int, default=20, help="ingest batches with no retention")
    ap.add_argument("--batch", type=int, default=5000, help="events per ingest batch")
    args = ap.parse_args()
    fresh = generate(
        HERE / "out" / f"events-{args.fresh_hours * PER_HOUR}-7.ndjson",
        args.fresh_hours * PER_HOUR,
    )
    now = query_time(args.fresh_hours * PER_HOUR)
    with tempfile.TemporaryDirectory(prefix="rw-bench-store-") as tmp:
        data = Path(args.keep or tmp)
        if not (data / "reconwatch.duckdb").exists():
            started = time.perf_counter()
            n = build(data, fresh, args.events, now)
            print(f"built a store of {n:,} events in {time.perf_counter() - started:.0f} s")
        if args.build_only:
            return
        if args.retention_only:
            bench_retention(data, now, fresh, args.batches, args.batch, args.baseline_first)
            return
        store, total, groups = _opened(data, now)
        print(
            f"store: {total:,} events in {groups:,} row groups, {args.fresh_hours} h simulated "
            "at the end (a subnet scan in the last) and older hours as shifted copies"
        )
        try:
            bench_pruning(store, now, total)
            bench_run(store, now, args.repeats)
        finally:
            store.close()  # type: ignore[attr-defined]
        if not args.no_retention:
            bench_retention(data, now, fresh, args.batches, args.batch)


if __name__ == "__main__":
    main()
