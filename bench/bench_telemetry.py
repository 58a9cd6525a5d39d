"""Telemetry readers: Zeek conn.log ingest vs DuckDB's CSV reader on the same TSV file; pcap reading vs dpkt's bare iteration; a replay's run over a loaded conn.log vs the same run converting the events again."""

from __future__ import annotations

import argparse
import random
import socket
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dpkt
import duckdb

import reconwatch.ingest.dataset as dataset_module
from reconwatch.engine.detect import DatasetBackend, Schedule, detect
from reconwatch.ingest import Dataset
from reconwatch.ingest.pcap import read_pcap
from reconwatch.ingest.report import IngestReport
from reconwatch.ingest.zeek import read_zeek
from reconwatch.rules.builtin import load_builtin

HERE = Path(__file__).resolve().parent
FIELDS = [
    "ts",
    "uid",
    "id.orig_h",
    "id.orig_p",
    "id.resp_h",
    "id.resp_p",
    "proto",
    "service",
    "duration",
    "orig_bytes",
    "resp_bytes",
    "conn_state",
    "local_orig",
    "local_resp",
    "missed_bytes",
    "history",
    "orig_pkts",
    "orig_ip_bytes",
    "resp_pkts",
    "resp_ip_bytes",
    "tunnel_parents",
]
TYPES = [
    "time",
    "string",
    "addr",
    "port",
    "addr",
    "port",
    "enum",
    "string",
    "interval",
    "count",
    "count",
    "string",
    "bool",
    "bool",
    "count",
    "string",
    "count",
    "count",
    "count",
    "count",
    "set[string]",
]
STATES = (("S0", "S"), ("REJ", "Sr"), ("SF", "ShADadFf"), ("RSTO", "ShAR"))


def zeek_file(path: Path, records: int) -> Path:
    """A conn.log of `records` connections: a scanner among ordinary clients (seeded)."""
    if path.exists():
        return path
    rng = random.Random(7)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as out:
        out.write("#separator \\x09\n#set_separator\t,\n#empty_field\t(empty)\n#unset_field\t-\n")
        out.write(
            "#path\tconn\n#fields\t" + "\t".join(FIELDS) + "\n#types\t" + "\t".join(TYPES) + "\n"
        )
        for i in range(records):
            state, history = rng.choice(STATES)
            src = f"10.{rng.randrange(4)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
            dst = f"192.168.{rng.randrange(256)}.{rng.randrange(1, 255)}"
            row = [
                f"{1_700_000_000 + i * 0.01:.6f}", f"C{i:x}", src, str(rng.randrange(1024, 65535)),
                dst, str(rng.choice((22, 80, 443, 445, rng.randrange(1, 65535)))), "tcp", "-",
                f"{rng.random():.6f}", "0", "0", state, "T", "T", "0", history, "1", "44", "1",
                "40", "(empty)",
            ]  # fmt: skip
            out.write("\t".join(row) + "\n")
    return path


def pcap_file(path: Path, packets: int) -> Path:
    """A capture of `packets` TCP packets: SYN probes and their SYN-ACK/RST answers (seeded)."""
    if path.exists():
        return path
    rng = random.Random(7)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as fh:
        writer = dpkt.pcap.Writer(fh, linktype=dpkt.pcap.DLT_EN10MB)
        for i in range(packets):
            src = socket.inet_aton(f"10.0.{rng.randrange(4)}.{rng.randrange(1, 255)}")
            dst = socket.inet_aton(f"192.168.{rng.randrange(256)}.{rng.randrange(1, 255)}")
            flags = rng.choice((0x02, 0x02, 0x12, 0x14))
            sport, dport = rng.randrange(1024, 65535), rng.randrange(1, 1024)
            if flags != 0x02:
                src, dst, sport, dport = dst, src, dport, sport
            tcp = dpkt.tcp.TCP(sport=sport, dport=dport, flags=flags, off=5)
            ip = dpkt.ip.IP(src=src, dst=dst, p=6, data=tcp)
            ip.len = len(ip)
            eth = dpkt.ethernet.Ethernet(src=b"\x00" * 6, dst=b"\x01" * 6, data=ip)
            writer.writepkt(bytes(eth), ts=1_700_000_000 + i * 0.001)
    return path


def best(fn: Callable[[], int], repeats: int) -> tuple[float, int]:
    times, count = [], 0
    for _ in range(repeats):
        start = time.perf_counter()
        count = fn()
        times.append(time.perf_counter() - start)
    return min(times), count


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--records", type=int, default=100_000)
    ap.add_argument("--packets", type=int, default=100_000)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--runs", type=int, default=10, help="replay runs timed")
    args = ap.parse_args()
    conn = zeek_file(HERE / "out" / f"conn-{args.records}.log", args.records)

    def ours() -> int:
        return sum(1 for _ in read_zeek(conn, IngestReport()))

    def duck() -> int:
        con = duckdb.connect()
        try:
            # every column typed by DuckDB's sniffer, as a fair baseline for typed Zeek columns
            rows = con.execute(
                f"select count(*), max(column00) from read_csv('{conn}', delim='\\t', "
                "comment='#', header=false)"
            ).fetchall()
        finally:
            con.close()
        return int(rows[0][0])

    t_ours, n_ours = best(ours, args.repeats)
    t_duck, n_duck = best(duck, args.repeats)
    print(f"zeek conn.log {args.records:,} records: reconwatch {n_ours / t_ours:,.0f} events/s "
          f"({n_ours:,} ECS events), DuckDB read_csv {n_duck / t_duck:,.0f} rows/s; "
          f"ratio reconwatch/DuckDB {t_duck / t_ours:.3f}")  # fmt: skip

    capture = pcap_file(HERE / "out" / f"capture-{args.packets}.pcap", args.packets)

    def read_ours() -> int:
        sum(1 for _ in read_pcap(capture, IngestReport()))
        return args.packets

    def bare() -> int:
        with capture.open("rb") as fh:
            return sum(1 for _ in dpkt.pcap.UniversalReader(fh))

    t_pcap, _ = best(read_ours, args.repeats)
    t_bare, n_bare = best(bare, args.repeats)
    print(f"pcap {n_bare:,} packets: reconwatch {n_bare / t_pcap:,.0f} packets/s, dpkt bare "
          f"iteration {n_bare / t_bare:,.0f} packets/s; ratio reconwatch/dpkt {t_bare / t_pcap:.3f}")  # fmt: skip
    replay(conn, args.records, args.runs)


def replay_run(conn: Path, records: int, runs: int, shapes: int) -> float:
    """Seconds per run of recon-net-port-scan over `conn`, read once beforehand; `shapes`:
    the column sets whose converted batches the dataset keeps (0: converted every run)."""
    rule = load_builtin("recon-net-port-scan")
    last = datetime.fromtimestamp(1_700_000_000 + records * 0.01, UTC) + timedelta(minutes=5)
    schedule = Schedule(first=last - (runs - 1) * rule.interval, last=last)
    saved, dataset_module.CONVERTED_SHAPES = dataset_module.CONVERTED_SHAPES, shapes
    try:
        backend = DatasetBackend(Dataset.from_files([conn]))
        detect([rule], backend, Schedule(at=last), evidence=False)  # the file read once
        start = time.perf_counter()
        report = detect([rule], backend, schedule, evidence=False)
        assert not report.failures
        return (time.perf_counter() - start) / runs
    finally:
        dataset_module.CONVERTED_SHAPES = saved


def replay(conn: Path, records: int, runs: int) -> None:
    kept = replay_run(conn, records, runs, dataset_module.CONVERTED_SHAPES)
    again = replay_run(conn, records, runs, 0)
    print(f"replay over {records:,} records, {runs} runs of recon-net-port-scan: {kept:.3f} s "
          f"per run (converted once), {again:.3f} s converting every run; ratio {again / kept:.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
