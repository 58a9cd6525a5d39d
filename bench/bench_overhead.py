"""Sensor overhead on a process doing connect() in a loop: its connect rate with the eBPF sensor
running vs without, alternated in one run, medians reported.

Run as root: `.venv/bin/python bench/bench_overhead.py [--repeats 3] [--count 60000]
[--tracers core,bpftrace]`.
Four workloads, one flat-out bench/loadgen process each: `same` connects again and again to one
closed loopback port (a client's retry or health-check loop), `distinct` to a new loopback
address each time (a connect() scan), `silent` to a new address each time that never answers
(a connect() scan of a network, most of whose addresses are silent: inside a network namespace
the bench creates, bench_sensor.silent_namespace()), `udp-same` sends a datagram to one closed
loopback port again and again (a DNS client's loop). Each repeat runs the generator alone, then
with a fresh sensor for each --tracers in turn (the eBPF tracers alternate in one run), and
reports both ratios: the connect rate in wall-clock time (what the
process achieved on this shared machine) and per CPU second of the process (what the sensor's
in-kernel programs cost it), what the sensor wrote of the attempts, and its tracer loss.
SAFETY: every connect and datagram goes to 127.30.0.0/16 (loopback), port 9 (closed), or for
`silent` to 10.30.0.0/16 inside the bench's own namespace, where nothing answers.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import signal
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from bench_sensor import (
    SAME_SESSION,
    count_captured,
    loadgen_argv,
    root_loadgen,
    silent_namespace,
    start_sensor,
    tree_cpu,
    wait_caught_up,
)

SUBNET = 30
# loadgen's HOSTS argument, and "udp" for sendto() of a datagram instead of connect()
WORKLOADS = {
    "same": ["1"],
    "distinct": [str(256 * 254)],
    "silent": [str(256 * 254)],  # in the namespace: 10.30.y.z, silent
    "udp-same": ["1", "udp"],
}


def generate(
    loadgen: Path, count: int, hosts: list[str], netns: str | None = None
) -> tuple[int, float, int, float]:
    """One flat-out generator process: (attempted, connects/s, pid, its CPU seconds).

    Its CPU (user + system) includes the eBPF programs the kernel runs in its context, so
    connects per CPU second measure what the sensor costs the process itself, apart from how
    much of a loaded machine the scheduler happened to give it."""
    argv = loadgen_argv(loadgen, count, 10_000_000, SUBNET, hosts, netns)
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    report = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    numbers = re.findall(r"[0-9.]+", report)
    return int(numbers[0]), float(numbers[3]), proc.pid, usage.ru_utime + usage.ru_stime


def with_sensor(
    loadgen: Path,
    count: int,
    hosts: list[str],
    nice: int | None,
    own_session: bool,
    netns: str | None,
    tracer: str | None = None,
) -> dict[str, float | int | str]:
    with tempfile.TemporaryDirectory(prefix="bench-overhead-") as tmp:
        out = Path(tmp) / "events.ndjson"
        sensor = start_sensor("ebpf", out, Path(tmp), nice, own_session=own_session, tracer=tracer)
        time.sleep(0.5)  # past start-up work
        cpu_before, wall_before = sum(tree_cpu(sensor.pid)), time.monotonic()
        attempted, rate, pid, gen_cpu = generate(loadgen, count, hosts, netns)
        cpu = sum(tree_cpu(sensor.pid)) - cpu_before
        wall = time.monotonic() - wall_before
        wait_caught_up(sensor.pid)
        sensor.send_signal(signal.SIGINT)
        summary = sensor.communicate(timeout=300)[1]
        lost = re.search(r"lost (\d+)", summary)
        what = "UDP sends" if "udp" in hosts else "connects"
        folded = re.search(rf"(\d+) repeated {what} folded", summary)
        return {
            "attempted": attempted,
            "rate": rate,
            "per_cpu": attempted / gen_cpu,
            "written": count_captured(out, [pid]),
            "folded": int(folded.group(1)) if folded else 0,
            "lost": lost.group(1) if lost else "?",
            "cpu": cpu / wall,  # the sensor's and bpftrace's share of a core during the run
        }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--count", type=int, default=60_000, help="connects per run")
    parser.add_argument("--workloads", default="same,distinct,silent,udp-same")
    parser.add_argument("--nice", type=int, help="the sensor's --nice (default: its own, -10)")
    parser.add_argument("--same-session", action="store_true", help=SAME_SESSION)
    parser.add_argument(
        "--tracers", default="core,bpftrace", help="the sensor's --tracer values, alternated"
    )
    args = parser.parse_args()
    loadgen = root_loadgen("bench_overhead")
    if loadgen is None:
        return 2
    print(
        f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at start; "
        f"sensor in {'the bench' if args.same_session else 'its own'} session"
    )
    results = {}
    for name in args.workloads.split(","):
        with silent_namespace() if name == "silent" else contextlib.nullcontext() as netns:
            results.update(workload(args, loadgen, name, netns))
    print(json.dumps(results))
    return 0


def workload(
    args: argparse.Namespace, loadgen: Path, name: str, netns: str | None
) -> dict[str, float]:
    """One workload's repeats, each the generator alone then with a fresh sensor; the medians."""
    results: dict[str, float] = {}
    hosts = WORKLOADS[name]
    tracers = args.tracers.split(",")
    ratios: dict[str, list[float]] = {t: [] for t in tracers}
    cpu_ratios: dict[str, list[float]] = {t: [] for t in tracers}
    for repeat in range(args.repeats):
        attempted, alone, _, cpu = generate(loadgen, args.count, hosts, netns)
        for tracer in tracers:
            run = with_sensor(
                loadgen, args.count, hosts, args.nice, not args.same_session, netns, tracer
            )
            ratio = float(run["rate"]) / alone
            cpu_ratio = float(run["per_cpu"]) / (attempted / cpu)
            ratios[tracer].append(ratio)
            cpu_ratios[tracer].append(cpu_ratio)
            print(
                f"{name} #{repeat + 1} [{tracer}]: alone {alone:.0f}/s, with the sensor "
                f"{run['rate']:.0f}/s = {ratio:.2f}; per CPU second of the process "
                f"{attempted / cpu:.0f} vs {float(run['per_cpu']):.0f} = {cpu_ratio:.2f}; "
                f"attempts written {run['written']}/{run['attempted']} "
                f"(folded {run['folded']}), tracer lost {run['lost']}; sensor+tracer "
                f"{100 * float(run['cpu']):.0f}% of a core during the run; "
                f"load average {os.getloadavg()[0]:.1f}",
                flush=True,
            )
    for tracer in tracers:
        key = name if len(tracers) == 1 else f"{name}_{tracer}"
        results[key] = statistics.median(ratios[tracer])
        results[f"{key}_per_cpu"] = statistics.median(cpu_ratios[tracer])
        print(
            f"{name} [{tracer}]: median ratio {results[key]:.2f} (target >= 0.80); per CPU "
            f"second of the connecting process {results[f'{key}_per_cpu']:.2f}",
            flush=True,
        )
    return results


if __name__ == "__main__":
    raise SystemExit(main())
