"""In-kernel time of the sensor's eBPF programs per connect: each program's run time and count
(kernel.bpf_stats_enabled) across one flat-out bench/loadgen process.

Run as root: `.venv/bin/python bench/bench_bpf_time.py [--workload silent|distinct|same]
[--count 40000]`. The sensor is started as bench_overhead.py starts it; bpftrace's programs are
found through its /proc/PID/fdinfo (prog_id, run_time_ns, run_cnt), read before and after the
generator runs. kernel.bpf_stats_enabled is set for the run and put back afterwards. The figures
leave out what the programs do not run themselves: the tracepoints' perf-event dispatch and the
syscall tracing slow path. SAFETY: as bench_overhead.py (loopback, or the bench's own namespace).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from bench_overhead import SUBNET, WORKLOADS
from bench_sensor import (
    descendants,
    loadgen_argv,
    root_loadgen,
    silent_namespace,
    start_sensor,
)

STATS = Path("/proc/sys/kernel/bpf_stats_enabled")


def programs(pid: int) -> dict[str, tuple[int, int]]:
    """prog_id -> (run_time_ns, run_cnt) of every BPF program `pid` holds an fd of."""
    found = {}
    for info in Path(f"/proc/{pid}/fdinfo").iterdir():
        with contextlib.suppress(OSError):
            fields = dict(re.findall(r"(\w+):\s+(\S+)", info.read_text()))
            if "prog_id" in fields:
                found[fields["prog_id"]] = (
                    int(fields.get("run_time_ns", 0)),
                    int(fields.get("run_cnt", 0)),
                )
    return found


def tracer(sensor_pid: int) -> int:
    for pid in descendants(sensor_pid):
        with contextlib.suppress(OSError):
            if Path(f"/proc/{pid}/comm").read_text().strip() == "bpftrace":
                return pid
    raise SystemExit("bench_bpf_time: the sensor has no bpftrace child")


def measure(loadgen: Path, workload: str, count: int, netns: str | None) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-bpf-") as tmp:
        sensor = start_sensor("ebpf", Path(tmp) / "events.ndjson", Path(tmp), None)
        time.sleep(0.5)  # past start-up work
        bpftrace = tracer(sensor.pid)
        before = programs(bpftrace)
        argv = loadgen_argv(loadgen, count, 10_000_000, SUBNET, WORKLOADS[workload], netns)
        report = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
        after = programs(bpftrace)
        sensor.send_signal(signal.SIGINT)
        sensor.communicate(timeout=300)
    total = 0
    rows = []
    for prog, (ns, runs) in after.items():
        ns -= before.get(prog, (0, 0))[0]
        runs -= before.get(prog, (0, 0))[1]
        total += ns
        if runs >= count // 100:  # the connect path's programs, not the ticks
            rows.append((ns, runs, prog))
    for ns, runs, prog in sorted(rows, reverse=True):
        print(
            f"program {prog}: {runs / count:.2f} runs per connect, {ns / runs:.0f} ns per run, "
            f"{ns / count:.0f} ns per connect"
        )
    print(
        f"{workload}: {report.strip()}; all programs {total / count:.0f} ns per connect; "
        f"load average {os.getloadavg()[0]:.1f}",
        flush=True,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workload", default="distinct", choices=sorted(WORKLOADS))
    parser.add_argument("--count", type=int, default=40_000)
    args = parser.parse_args()
    loadgen = root_loadgen("bench_bpf_time")
    if loadgen is None:
        return 2
    was = STATS.read_text().strip()
    STATS.write_text("1\n")
    try:
        silent = args.workload == "silent"
        with silent_namespace() if silent else contextlib.nullcontext() as netns:
            measure(loadgen, args.workload, args.count, netns)
    finally:
        STATS.write_text(was + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
