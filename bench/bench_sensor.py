"""Sensor capture benchmark: paced nonblocking connect() load on loopback vs events recorded, and CPU.

Run as root: `.venv/bin/python bench/bench_sensor.py [--backend ebpf] [--rates 5000,10000,20000,40000]`.
SAFETY: every connect goes to 127.0.0.0/8, to a closed port.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process and its reaped children, from /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return sum(int(x) for x in fields[11:15]) / CLK_TCK


def children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):
            found += [int(c) for c in (task / "children").read_text().split()]
    return found


def load(rate: int, seconds: float, port: int) -> tuple[int, float]:
    """Paced connect() calls in a child process; returns (attempted, achieved rate)."""
    total = int(rate * seconds)
    start = time.perf_counter()
    made = 0
    while made < total:
        due = min(total, int((time.perf_counter() - start) * rate) + 1)
        while made < due:
            # 127.10.0.0/16: many destinations, all loopback.
            addr = f"127.10.{(made >> 8) & 255}.{made & 255}"
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setblocking(False)
            code = s.connect_ex((addr, port))
            s.close()
            if code not in (0, errno.EINPROGRESS, errno.ECONNREFUSED, errno.EAGAIN):
                raise OSError(code, os.strerror(code))
            made += 1
        time.sleep(0.0005)
    elapsed = time.perf_counter() - start
    return made, made / elapsed


def start_load(rate: int, seconds: float, workers: int) -> tuple[list[int], int]:
    """Fork paced load workers; returns their pids and the read end of their result pipe."""
    read_fd, write_fd = os.pipe()
    pids = []
    for _ in range(workers):
        pid = os.fork()
        if pid == 0:
            os.close(read_fd)
            made, achieved = load(rate // workers, seconds, port=9)
            os.write(write_fd, (json.dumps([made, achieved]) + "\n").encode())
            os._exit(0)
        pids.append(pid)
    os.close(write_fd)
    return pids, read_fd


def run_level(
    backend: str, rate: int, seconds: float, workers: int, workdir: Path
) -> dict[str, float | str]:
    out = workdir / f"events-{rate}.ndjson"
    sensor = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from reconwatch.cli.main import main; main()",
            "sensor",
            "--backend",
            backend,
            "--output",
            str(out),
            "--agent-id-file",
            str(workdir / "agent-id"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert sensor.stderr is not None
    for line in sensor.stderr:
        if "sensor running" in line:
            break
    else:
        raise SystemExit(f"sensor did not start: exit {sensor.wait()}")
    pids, read_fd = start_load(rate, seconds, workers)
    with os.fdopen(read_fd) as results:
        reports = [json.loads(line) for line in results]
    for pid in pids:
        os.waitpid(pid, 0)
    made = sum(r[0] for r in reports)
    achieved = sum(r[1] for r in reports)
    time.sleep(1.0)
    sensor.send_signal(signal.SIGINT)
    summary = sensor.communicate(timeout=300)[1]
    marks = [f'"pid":{pid},'.encode() for pid in pids]
    captured = 0
    for path in workdir.glob(f"events-{rate}.ndjson*"):
        with path.open("rb") as handle:
            captured += sum(1 for line in handle if any(m in line for m in marks))
        if os.environ.get("BENCH_KEEP"):
            continue
        path.unlink()
    cpu = re.search(r"cpu: sensor ([0-9.]+)s, tracer ([0-9.]+)s", summary)
    lost = re.search(r"lost (\d+)", summary)
    busy = float(cpu.group(1)) + float(cpu.group(2)) if cpu else float("nan")
    return {
        "rate": rate,
        "achieved": achieved,
        "attempted": made,
        "captured": captured,
        "ratio": captured / made if made else 0.0,
        "sensor_cpu_pct": 100 * busy / seconds,
        "lost": lost.group(1) if lost else "?",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--backend", default="ebpf", choices=["ebpf", "auditd"])
    parser.add_argument("--rates", default="5000,10000,20000,40000")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--workers", type=int, default=2, help="load generator processes")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("bench_sensor needs root (the sensor loads eBPF programs)")
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for rate in (int(r) for r in args.rates.split(",")):
            r = run_level(args.backend, rate, args.seconds, args.workers, Path(tmp))
            results.append(r)
            print(
                f"{args.backend} target {rate}/s achieved {r['achieved']:.0f}/s: "
                f"captured {r['captured']}/{r['attempted']} = {r['ratio']:.4f}, "
                f"sensor+tracer CPU {r['sensor_cpu_pct']:.0f}% of one core over the load period, "
                f"tracer reported {r['lost']} lost",
                flush=True,
            )
    full = [r for r in results if r["ratio"] >= 0.9999]
    loss = [r for r in results if r["ratio"] < 0.9999]
    at_20k = next((r for r in results if r["rate"] == 20000), None)
    if at_20k is not None:
        print(
            f"ratio captured/attempted at 20000 connects/s: {at_20k['ratio']:.4f} (target 1.0000)"
        )
    print(
        "loss begins at: "
        + (
            f"{loss[0]['rate']}/s target ({loss[0]['achieved']:.0f}/s achieved)"
            if loss
            else "none up to the highest rate tried"
        )
        + (f"; last lossless level {full[-1]['rate']}/s" if full else "")
    )


if __name__ == "__main__":
    main()
