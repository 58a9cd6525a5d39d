"""Raw-packet sender benchmark: SYNs written to a raw socket (as nmap -sS does), with the eBPF
sensor vs without, and how many the sensor recorded.

Run as root: `.venv/bin/python bench/bench_raw.py [--packets 200000] [--rates 0,5000,20000]
[--repeats 1] [--tracers core,bpftrace]`.
Each packet goes to its own (address, port), so each is one probe and the sensor must record them
all: captured/sent is the loss. A rate of 0 is flat out, compared with the mean of the sender
alone just before and just after it, in the same run. SAFETY: every packet goes to 127.20.0.0/15 (loopback), with a TCP checksum of zero,
which the receiving stack drops: nothing answers.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench_sensor import SAME_SESSION, start_sensor, wait_caught_up

FIRST_SUBNET = 20
PORTS = 64  # destination ports per address: 1..64


def packet(index: int) -> tuple[bytes, str]:
    """The index-th probe: an IPv4 header (IP_HDRINCL) and a TCP SYN, and its destination."""
    host, port = divmod(index, PORTS)
    address = f"127.{FIRST_SUBNET + host // 65536}.{host // 256 % 256}.{host % 256}"
    ip = struct.pack(
        "!BBHHHBBH4s4s", 0x45, 0, 40, 0, 0, 64, 6, 0, b"\x7f\0\0\1", socket.inet_aton(address)
    )
    tcp = struct.pack("!HHIIBBHHH", 40000, port + 1, 0, 0, 5 << 4, 0x02, 1024, 0, 0)
    return ip + tcp, address


def send(count: int, rate: int) -> dict[str, float]:
    """Send `count` probes at `rate` per second (0: flat out); returns what was done."""
    raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    probes = [packet(i) for i in range(count)]
    start = time.perf_counter()
    for index, (data, address) in enumerate(probes):
        if rate and index % 100 == 0:
            ahead = index / rate - (time.perf_counter() - start)
            if ahead > 0:
                time.sleep(ahead)
        raw.sendto(data, (address, 0))
    elapsed = time.perf_counter() - start
    return {"sent": count, "seconds": elapsed, "rate": count / elapsed}


def sender(count: int, rate: int) -> dict[str, float]:
    """The sender in its own process (its pid is how its events are told apart)."""
    code = f"import bench_raw, json; print(json.dumps(bench_raw.send({count}, {rate})))"
    here = Path(__file__).resolve().parent
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=here
    )
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    result: dict[str, float] = json.loads(done.stdout)
    # its CPU (user + system, with the eBPF programs run in its context), which the other
    # tenants' load does not move; the Python start-up is in it, the same in both runs
    result["cpu"] = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return result


def captured(out: Path) -> int:
    """Raw TCP attempts of python senders (the sensor's own file, read once it has stopped)."""
    count = 0
    for path in out.parent.glob(f"{out.name}*"):
        with path.open("rb") as handle:
            count += sum(
                1 for line in handle if b'"probe":"raw"' in line and b'"transport":"tcp"' in line
            )
    return count


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packets", type=int, default=200_000)
    parser.add_argument("--rates", default="0,5000,20000", help="packets/s; 0 is flat out")
    parser.add_argument(
        "--repeats", type=int, default=1, help="flat-out runs, each after its own baseline"
    )
    parser.add_argument("--same-session", action="store_true", help=SAME_SESSION)
    parser.add_argument(
        "--tracers", default="core,bpftrace", help="the sensor's --tracer values, alternated"
    )
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("bench_raw: needs root (raw sockets, eBPF)", file=sys.stderr)
        return 2
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at start")
    before = sender(args.packets, 0)
    print(f"baseline: the sender alone reaches {before['rate']:.0f} packets/s")
    results = []
    tracers = args.tracers.split(",")
    rates = [int(r) for r in args.rates.split(",")]
    rates = [r for r in rates if r] + [0] * (args.repeats if 0 in rates else 0)
    ratios: dict[str, list[float]] = {t: [] for t in tracers}
    cpu_ratios: dict[str, list[float]] = {t: [] for t in tracers}
    for rate in rates:
        for tracer in tracers:
            result = with_sensor(args, rate, tracer)
            done = result["done"]
            alone = before
            if rate == 0:
                # against the mean of the sender alone just before and just after: the
                # machine's own drift (the alone rate moves by several % from run to run) then
                # falls on both sides of the comparison
                after = sender(args.packets, 0)
                print(f"baseline: the sender alone reaches {after['rate']:.0f} packets/s")
                alone = {k: (before[k] + after[k]) / 2 for k in ("rate", "cpu")}
                before = after
            ratio = done["rate"] / alone["rate"]
            cpu_ratio = alone["cpu"] / done["cpu"]  # packets per CPU second, with vs without
            if rate == 0:
                ratios[tracer].append(ratio)
                cpu_ratios[tracer].append(cpu_ratio)
            # only a flat-out run compares with the sender alone; a paced one shows whether the
            # target rate was reached
            label = (
                f"flat out ({ratio:.2f} of the sender alone; per CPU second of the sender "
                f"{cpu_ratio:.2f})"
                if rate == 0
                else f"target {rate}/s"
            )
            got = int(result["captured"])
            print(
                f"[{tracer}] {label}: sent {done['sent']} at {done['rate']:.0f}/s; captured "
                f"{got}/{done['sent']} = {got / done['sent']:.4f}; tracer lost "
                f"{result['lost']}; load average {os.getloadavg()[0]:.1f}",
                flush=True,
            )
            results.append(
                {"target": rate, "tracer": tracer, **done, "captured": got,
                 "lost": result["lost"], "ratio": ratio}
            )  # fmt: skip
    for tracer in tracers:
        if ratios[tracer]:
            print(
                f"flat out [{tracer}]: median ratio {statistics.median(ratios[tracer]):.2f} "
                f"(target >= 0.80); per CPU second of the sender "
                f"{statistics.median(cpu_ratios[tracer]):.2f}"
            )
    print(json.dumps(results))
    return 0


def with_sensor(args: argparse.Namespace, rate: int, tracer: str) -> dict[str, Any]:
    """One sender run with a fresh sensor using `tracer`: what it sent, captured and lost."""
    with tempfile.TemporaryDirectory(prefix="bench-raw-") as tmp:
        out = Path(tmp) / "events.ndjson"
        sensor = start_sensor(
            "ebpf", out, Path(tmp), None, own_session=not args.same_session, tracer=tracer
        )
        done = sender(args.packets, rate)
        wait_caught_up(sensor.pid)
        sensor.send_signal(signal.SIGINT)
        summary = sensor.communicate(timeout=300)[1]
        found = re.search(r"lost (\d+)", summary)
        return {"done": done, "captured": captured(out), "lost": found.group(1) if found else "?"}


if __name__ == "__main__":
    raise SystemExit(main())
