"""The seed rule on Spark over day-partitioned Parquet: local[1] vs local[2] (scaling), DuckDB on the same data for reference.

Events: gen_events.generate_repeated (one simulated hour repeated, the last with a subnet sweep),
as `reconwatch export --parquet` writes them, made by exporting the template hour and the scan
hour and moving the template's Parquet to every other hour (exported_repeated: the same files'
rows as an export of the whole NDJSON, in minutes for 20M events where that export took hours;
timed when not cached). DuckDB runs the rule written by hand in SQL over the same Parquet, and
reconwatch's DuckDB executor over the NDJSON (`--no-duckdb`: the NDJSON not written, not run).
Each Spark measurement runs in a fresh process (local[N] confined to N CPUs: `--no-pin` lets
local[1]'s JVM threads use the other core) that starts its session, analyses the queries
(timed apart: the catalog, from the export's footers), runs the first once untimed (JVM start,
Python workers), then times each: the ratio is of query work, not of start-up; the load average is printed at
the start and end of each measurement (the machine is shared), and the CPU seconds the Spark
process and its JVM used (events per CPU second: the per-core figure, less bent by other work
than the wall time). DuckDB runs the same
events from the NDJSON file they were exported from (its fast reader; whole process timed). Two queries: the rule as written (its one-hour window: dt=
pruning reads one day) and the rule without its time condition (every event read: the
per-core throughput a sizing model needs).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from gen_events import generate_repeated, query_time
from reconwatch.cli.plain import expand_inputs
from reconwatch.rules.builtin import DEFAULT_RULE, load_builtin

HERE = Path(__file__).resolve().parent
EXE = str(Path(sys.executable).with_name("reconwatch"))


def exported(ndjson: Path, rows_per_file: int) -> Path:
    """The events as `reconwatch export --parquet` writes them (cached beside the NDJSON)."""
    out = ndjson.with_suffix(".export.d")  # footers mark the export: Spark reads them itself
    if not out.exists():
        tmp = out.with_name(out.name + ".tmp")
        if tmp.exists():
            subprocess.run(["rm", "-rf", str(tmp)], check=True)
        rows = ["--rows-per-file", str(rows_per_file)]
        subprocess.run([EXE, "export", str(ndjson), "--parquet", str(tmp), *rows], check=True)
        tmp.rename(out)
    return out


def exported_repeated(out: Path, count: int, rows_per_file: int, seed: int = 7) -> Path:
    """generate_repeated's events as `reconwatch export --parquet` writes them, without writing
    or exporting them all: the template hour and the scan hour are exported (two small
    `reconwatch export` runs), then every other hour is the template's Parquet with its datetime
    columns moved and its event ids tagged, as generate_repeated moves and tags the text.
    Seconds per million events where the export of the NDJSON took minutes (26 min for 2M).
    Cached by name."""
    import shutil
    from datetime import timedelta

    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from gen_events import START, _one_hour, _shifted, plan

    if out.exists():
        return out
    hosts, hours = plan(count)
    work = out.with_name(out.name + ".tmp")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    template = _one_hour(hosts, START, seed, ())
    last = START + timedelta(hours=hours - 1)
    parts = {"hour0": _shifted(template, START, 0, 0)}
    parts["last"] = _one_hour(hosts, last, seed, ("subnet",))
    files: dict[str, list[str]] = {}
    for name, text in parts.items():
        (work / f"{name}.ndjson").write_bytes(text)
        rows = ["--rows-per-file", str(rows_per_file)]
        cmd = [EXE, "export", str(work / f"{name}.ndjson"), "--parquet", str(work / name), *rows]
        subprocess.run(cmd, check=True, stderr=subprocess.DEVNULL)
        files[name] = parquet_files(work / name)
    final = work / "export"
    numbers: dict[str, int] = {}

    def put(table: pa.Table, day: str, kv: dict[bytes, bytes]) -> None:
        n = numbers.get(day, 0)
        numbers[day] = n + 1
        (final / f"dt={day}").mkdir(parents=True, exist_ok=True)
        path = final / f"dt={day}" / f"data_{n}.parquet"
        pq.write_table(table.replace_schema_metadata(kv), path, row_group_size=100_000)

    stamps = None
    for hour in range(hours - 1):
        moved = pa.scalar(timedelta(hours=hour), pa.duration("us"))
        tag = pa.scalar(f"{hour:04X}")
        day = (START + timedelta(hours=hour)).date().isoformat()
        for path in files["hour0"]:
            table = pq.read_table(path)
            kv = dict(pq.read_metadata(path).metadata or {})
            stamps = stamps or [f.name for f in table.schema if pa.types.is_timestamp(f.type)]
            for name in stamps:
                at = table.schema.get_field_index(name)
                table = table.set_column(at, name, pc.add(table.column(name), moved))
            at = table.schema.get_field_index("event.id")
            ids = pc.binary_join_element_wise(tag, pc.utf8_slice_codeunits(table.column(at), 4), "")
            table = table.set_column(at, "event.id", ids)
            put(table, day, kv)
    for path in files["last"]:
        day = path.split("dt=")[1].split("/")[0]
        put(pq.read_table(path), day, dict(pq.read_metadata(path).metadata or {}))
    final.rename(out)
    shutil.rmtree(work)
    return out


def full_scan(query: str) -> str:
    """The rule's query without its `@timestamp > now() - ...` condition: every event read."""
    lines = [ln for ln in query.splitlines() if "@timestamp" not in ln or "now()" not in ln]
    text = "\n".join(lines)
    return text.replace("| where and", "| where").replace("|  where and", "| where")


_CHILD = """
import json, os, sys, time
from reconwatch.backends import executor
from reconwatch.backends.spark import session
from reconwatch.ingest import Dataset
from reconwatch.plan import values
from reconwatch.query import compile_on
master, now, queries, paths = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), sys.argv[4:]
session.configure(master)
when = values.parse_datetime(now)
dataset = Dataset.from_files(paths)
start = time.perf_counter()
plans = [compile_on(q, dataset) for q in queries]
analysis = time.perf_counter() - start
run = executor("spark")
out = {"analysis": analysis, "runs": []}
run(plans[0], dataset, when)  # untimed: the JVM's start, Python workers, first reads
def cpu():
    # CPU seconds of this process and its descendants (the JVM, its Python workers) so far.
    stats = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as fh:
                    rest = fh.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            stats[int(d)] = (int(rest[1]), int(rest[11]) + int(rest[12]))
    mine, grew = {os.getpid()}, True
    while grew:
        more = {p for p, (ppid, _) in stats.items() if ppid in mine} - mine
        grew = bool(more)
        mine |= more
    return sum(stats[p][1] for p in mine if p in stats) / os.sysconf("SC_CLK_TCK")
for plan in plans:
    load = os.getloadavg()[0]
    used = cpu()
    start = time.perf_counter()
    result = run(plan, dataset, when)
    seconds = time.perf_counter() - start
    out["runs"].append({"seconds": seconds, "cpu": cpu() - used, "rows": len(result.rows), "load": [load, os.getloadavg()[0]]})
print(json.dumps(out))
"""


def spark_times(
    master: str, queries: list[str], now: str, files: list[str], cores: int | None = None
) -> dict[str, Any]:
    """One measurement in a fresh process; `cores`: confined to the first that many CPUs (with
    its JVM, whose GC and JIT threads otherwise run on the other core, so that local[1] on a
    2-core machine uses both and a scaling ratio cannot be read from it)."""

    def pin() -> None:
        if cores is not None:
            os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[:cores])

    out = subprocess.run(
        [sys.executable, "-c", _CHILD, master, now, json.dumps(queries), *files],
        check=True,
        capture_output=True,
        text=True,
        preexec_fn=pin,
    ).stdout
    found: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return found


def duckdb_time(query: str, now: str, files: list[str]) -> tuple[float, list[float]]:
    """Seconds of the whole `reconwatch query` process, and the load average before and after."""
    load = os.getloadavg()[0]
    start = time.perf_counter()
    subprocess.run(
        [EXE, "query", query, *files, "--now", now, "--format", "ndjson"],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return time.perf_counter() - start, [load, os.getloadavg()[0]]


# The seed rule by hand over the same Parquet files, as an expert writes it for DuckDB: the
# export's flat dotted columns, its day directories pruned to the window's days (`dt`), the
# window itself left out for the every-event query.
PARQUET_SQL = """
SELECT count(*) AS n, count(DISTINCT "destination.ip") AS d, count(DISTINCT "agent.id") AS a,
       list(DISTINCT "host.name"), list(DISTINCT "agent.id"), "process.executable"
FROM read_parquet({files}, hive_partitioning = true, union_by_name = true)
WHERE {window} "host.os.type" = 'linux' AND "event.type" = 'start'
  AND "event.action" = 'connection_attempted'
GROUP BY "process.executable"
HAVING count(DISTINCT "agent.id") = 1 AND count(DISTINCT "destination.ip") > 250
ORDER BY n
LIMIT 100
"""

_CHILD_SQL = """
import sys, duckdb
con = duckdb.connect()
con.execute("SET enable_progress_bar = false")
print(len(con.execute(sys.argv[1]).fetchall()))
"""


def duckdb_sql_time(files: list[str], now: str, window: bool) -> tuple[float, int, list[float]]:
    """Seconds of a whole `python -c` process running PARQUET_SQL, its rows, and the load."""
    from datetime import datetime, timedelta

    end = datetime.fromisoformat(now)
    start = end - timedelta(hours=1)
    days = f"dt BETWEEN '{start.date()}' AND '{end.date()}' AND"
    stamp = f"\"@timestamp\" > TIMESTAMP '{start.replace(tzinfo=None).isoformat()}' AND"
    sql = PARQUET_SQL.format(files=json.dumps(files), window=f"{days} {stamp}" if window else "")
    load = os.getloadavg()[0]
    began = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", _CHILD_SQL, sql], check=True, capture_output=True, text=True
    ).stdout
    return time.perf_counter() - began, int(out.split()[-1]), [load, os.getloadavg()[0]]


def _load(pair: list[float]) -> str:
    return f"load {pair[0]:.1f}-{pair[1]:.1f}"


def parquet_files(root: Path) -> list[str]:
    return expand_inputs([str(root)], "spark")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--events", type=int, default=2_000_000)
    # Files are tasks: several per core, or local[2] waits on one big file (the scaling ratio
    # measures the file layout, not Spark).
    ap.add_argument("--rows-per-file", type=int, default=40_000)
    # DuckDB's reference reads the NDJSON (20M events: ~30 GB, ~25 minutes to write).
    ap.add_argument("--duckdb", action=argparse.BooleanOptionalAction, default=True)
    # local[N] confined to N CPUs (the scaling from one core to two); --no-pin: as scheduled.
    ap.add_argument("--pin", action=argparse.BooleanOptionalAction, default=True)
    args = ap.parse_args()
    load = os.getloadavg()[0]
    start = time.perf_counter()
    root = HERE / "out" / f"events-{args.events}-7-repeated.parquet.d"
    cached = root.exists()
    exported_repeated(root, args.events, args.rows_per_file)
    if not cached:
        took = time.perf_counter() - start
        print(
            f"Parquet from the exported template hour: {took:.0f} s "
            f"({args.events / took:,.0f} ev/s), load {load:.1f}-{os.getloadavg()[0]:.1f}"
        )
    ndjson = HERE / "out" / f"events-{args.events}-7-repeated.ndjson"
    if args.duckdb:
        generate_repeated(ndjson, args.events)
    files = parquet_files(root)
    import pyarrow.parquet as pq

    events = sum(pq.read_metadata(f).num_rows for f in files)  # about --events: whole hours
    now = query_time(args.events).isoformat()
    rule = load_builtin(DEFAULT_RULE).query
    print(
        f"{events} events, {len(files)} Parquet file(s) in "
        f"{len(list(root.glob('dt=*')))} day(s); rule {DEFAULT_RULE} at {now}; "
        f"load {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
    )
    queries = {"rule (1h window)": rule, "rule, full scan": full_scan(rule)}
    pinned = args.pin and len(os.sched_getaffinity(0)) >= 2
    one = spark_times("local[1]", list(queries.values()), now, files, 1 if pinned else None)
    two = spark_times("local[2]", list(queries.values()), now, files, 2 if pinned else None)
    if pinned:
        print("local[1] confined to 1 CPU, local[2] to 2 (with their JVMs and Python workers)")
    print(
        f"driver analysis (the catalog from the export's footers): "
        f"{one['analysis']:.1f} s / {two['analysis']:.1f} s (not in the times below)"
    )
    for i, (label, query) in enumerate(queries.items()):
        a, b = one["runs"][i], two["runs"][i]
        print(f"-- {label}: {a['rows']} row(s)")
        for name, r in (("local[1]", a), ("local[2]", b)):
            rate = events / r["seconds"]
            per_cpu = events / max(r["cpu"], 1e-9)
            print(
                f"spark {name}  {r['seconds']:8.2f} s  {rate:10.0f} ev/s  {_load(r['load'])}  "
                f"CPU {r['cpu']:.1f} s: {per_cpu:,.0f} ev per CPU second"
            )
        print(f"scaling local[2]/local[1]: {a['seconds'] / b['seconds']:.2f} (target >= 1.7)")
        sql, rows, sql_load = duckdb_sql_time(files, now, window=i == 0)
        print(
            f"duckdb SQL by hand, the same Parquet  {sql:8.2f} s (whole process, {rows} row(s))"
            f"  {_load(sql_load)}; spark / that: local[1] {a['seconds'] / sql:.1f}x, "
            f"local[2] {b['seconds'] / sql:.1f}x the time"
        )
        if not args.duckdb:
            continue
        duck, duck_load = duckdb_time(query, now, [str(ndjson)])
        print(f"duckdb, the NDJSON file  {duck:8.2f} s (whole process)  {_load(duck_load)}")
        print(
            f"spark / duckdb: local[1] {a['seconds'] / duck:.1f}x, "
            f"local[2] {b['seconds'] / duck:.1f}x the time"
        )


if __name__ == "__main__":
    main()
