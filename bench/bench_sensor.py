"""Sensor capture benchmark: paced nonblocking connect() load on loopback vs events recorded, and CPU.

Run as root: `.venv/bin/python bench/bench_sensor.py [--backend ebpf] [--rates 5000,...,80000]
[--silent]`. The load comes from bench/loadgen.c, compiled here with `cc -O2` into bench/out/;
without a C compiler a slower Python generator is used (and says so). `--silent` connects to
addresses that never answer, as a scanner's mostly do, inside a network namespace the bench
creates (silent_namespace()): no handshake on loopback, so a higher rate can be offered.
SAFETY: every connect goes to 127.0.0.0/8 (127.10.0.0/15 and up), to a closed port, or with
--silent to 10.0.0.0/8 inside the bench's own namespace, whose one route leads to a veth peer
that drops every frame (addressed to a MAC nothing has).
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from reconwatch.sensor.bpf import COMM_BYTES

CLK_TCK = os.sysconf("SC_CLK_TCK")
HERE = Path(__file__).resolve().parent
PORT = 9  # discard: closed on this machine, so each connect is refused at once
FIRST_SUBNET = 10  # worker i targets 127.(10 + i).y.z
LOSSLESS = 0.9999
SAME_SESSION = "start the sensor in the bench's own session (its CPU group) instead of its own"


def compile_loadgen() -> Path | None:
    """bench/out/loadgen built from bench/loadgen.c, or None (with a note) when there is no cc."""
    compiler = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if compiler is None:
        print("note: no C compiler (cc): using the Python load generator, which tops out lower")
        return None
    out = HERE / "out"
    out.mkdir(exist_ok=True)
    binary = out / "loadgen"
    subprocess.run([compiler, "-O2", "-o", str(binary), str(HERE / "loadgen.c")], check=True)
    return binary


def root_loadgen(name: str) -> Path | None:
    """The compiled load generator for a root-only bench, or None after saying why not."""
    if os.geteuid() != 0:
        print(f"{name}: needs root (eBPF)", file=sys.stderr)
        return None
    loadgen = compile_loadgen()
    if loadgen is None:
        print(f"{name}: needs a C compiler for bench/loadgen.c", file=sys.stderr)
    return loadgen


def own_cpu(pid: int) -> float:
    """utime + stime (and reaped children's) of one process, in seconds."""
    with contextlib.suppress(OSError):
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        return sum(int(x) for x in fields[11:15]) / CLK_TCK
    return 0.0


def descendants(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError, ValueError):
            for child in (task / "children").read_text().split():
                found += [int(child), *descendants(int(child))]
    return found


def tree_cpu(pid: int) -> tuple[float, float]:
    """(the process's own CPU, its live descendants' CPU): the sensor and its bpftrace."""
    return own_cpu(pid), sum(own_cpu(child) for child in descendants(pid))


def python_load(count: int, rate: int, subnet: int) -> str:
    """The fallback generator: the loadgen.c protocol and output line, in Python."""
    start = time.perf_counter()
    made = errors = 0
    while made < count:
        due = min(count, int((time.perf_counter() - start) * rate) + 1)
        while made < due:
            host = made % (256 * 254)
            addr = f"127.{subnet}.{host // 254}.{host % 254 + 1}"  # loopback only
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setblocking(False)
            code = s.connect_ex((addr, PORT))
            s.close()
            errors += code not in (0, errno.EINPROGRESS, errno.ECONNREFUSED, errno.EAGAIN)
            made += 1
        time.sleep(0.001)
    elapsed = time.perf_counter() - start
    return f"attempted {made} errors {errors} seconds {elapsed:.6f} rate {made / elapsed:.1f}\n"


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=30)


@contextlib.contextmanager
def silent_namespace() -> Iterator[str]:
    """A network namespace of the bench's own where 10.0.0.0/8 is routed to a veth peer that
    drops every frame (a permanent neighbour entry with a MAC nothing has): each SYN leaves and
    nothing answers, as most of a scanner's probes. Yields its name; deleted afterwards."""
    name = f"rwbench{os.getpid()}"
    _ip("netns", "add", name)
    try:
        _ip("-n", name, "link", "set", "lo", "up")
        _ip("-n", name, "link", "add", "va", "type", "veth", "peer", "name", "vb")
        _ip("-n", name, "addr", "add", "10.255.255.1/24", "dev", "va")
        _ip("-n", name, "link", "set", "va", "up")
        _ip("-n", name, "link", "set", "vb", "up")
        mac = ["lladdr", "02:00:00:00:00:02", "dev", "va", "nud", "permanent"]
        _ip("-n", name, "neigh", "add", "10.255.255.2", *mac)
        _ip("-n", name, "route", "add", "10.0.0.0/8", "via", "10.255.255.2", "dev", "va")
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False, capture_output=True)


def loadgen_argv(
    loadgen: Path, count: int, rate: int, subnet: int, hosts: list[str], netns: str | None
) -> list[str]:
    """loadgen's command line; inside `netns` (silent_namespace()) it connects to 10.SUBNET.y.z
    (`ip netns exec` execs it, so the pid is loadgen's own)."""
    argv = [str(loadgen), str(count), str(rate), str(PORT), str(subnet)]
    if netns is None:
        return argv + hosts
    return ["ip", "netns", "exec", netns, *argv, *(hosts or [str(256 * 254)]), "silent"]


def start_worker(
    loadgen: Path | None,
    count: int,
    rate: int,
    subnet: int,
    netns: str | None = None,
    own_session: bool = False,
) -> subprocess.Popen[str]:
    if loadgen is not None:
        argv = loadgen_argv(loadgen, count, rate, subnet, [], netns)
    else:
        if netns is not None:
            raise SystemExit("bench_sensor: --silent needs a C compiler for bench/loadgen.c")
        code = f"import bench_sensor as b; print(b.python_load({count}, {rate}, {subnet}), end='')"
        argv = [sys.executable, "-c", code]
    return subprocess.Popen(
        argv, stdout=subprocess.PIPE, text=True, cwd=HERE, start_new_session=own_session
    )


@dataclass
class Level:
    rate: int
    attempted: int
    errors: int
    achieved: float
    captured: int
    lost: str
    cpu_seconds: float
    tracer_cpu_seconds: float
    wall_seconds: float

    @property
    def ratio(self) -> float:
        return self.captured / self.attempted if self.attempted else 0.0


def start_sensor(
    backend: str,
    out: Path,
    workdir: Path,
    nice: int | None,
    env: dict[str, str] | None = None,
    *,
    own_session: bool = True,
    tracer: str | None = None,
) -> subprocess.Popen[str]:
    """A sensor writing to `out`, once it says it runs.

    In its own session by default, as a service runs (systemd puts it in its own cgroup): with
    the kernel's autogroup scheduling (sched_autogroup_enabled, on by default) a process started
    from the bench's session shares the bench's CPU group with the load it measures, so every CPU
    second the sensor spends is taken from the generator instead of from the whole machine.
    `own_session=False` measures that case (--same-session)."""
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
            "--max-bytes",
            str(1 << 40),
            "--agent-id-file",
            str(workdir / "agent-id"),
            *(["--nice", str(nice)] if nice is not None else []),
            *(["--tracer", tracer] if tracer is not None else []),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=own_session,
    )
    assert sensor.stderr is not None
    said = []
    for line in sensor.stderr:
        if "sensor running" in line:
            return sensor
        said.append(line)
    raise SystemExit(f"sensor did not start: exit {sensor.wait()}: {''.join(said).strip()}")


def wait_caught_up(pid: int, limit: float = 120.0) -> tuple[float, float]:
    """Wait until the sensor tree is idle (its backlog is processed); returns its CPU then."""
    deadline = time.monotonic() + limit
    last = sum(tree_cpu(pid))
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now = sum(tree_cpu(pid))
        if now - last < 0.03:
            break
        last = now
    return tree_cpu(pid)


_ATTEMPT = b'"action":"connection_attempted"'


def count_captured(out: Path, pids: list[int]) -> int:
    marks = [f'"process":{{"pid":{pid},'.encode() for pid in pids]
    captured = 0
    for path in out.parent.glob(f"{out.name}*"):
        with path.open("rb") as handle:
            # attempts only: each attempt to the closed port also has its outcome event
            captured += sum(
                1 for line in handle if _ATTEMPT in line and any(m in line for m in marks)
            )
        if not os.environ.get("BENCH_KEEP"):
            path.unlink()
    return captured


def run_level(
    args: argparse.Namespace, rate: int, loadgen: Path | None, workdir: Path, netns: str | None
) -> Level:
    backend, seconds, workers = args.backend, args.seconds, args.workers
    out = workdir / f"events-{rate}.ndjson"
    sensor = start_sensor(backend, out, workdir, args.nice, own_session=not args.same_session)
    time.sleep(0.5)  # let start-up work (first /proc reads) settle before measuring
    (own_before, tracer_before), wall_before = tree_cpu(sensor.pid), time.monotonic()
    count = int(rate * seconds) // workers
    procs = [
        start_worker(loadgen, count, rate // workers, FIRST_SUBNET + i, netns, args.worker_sessions)
        for i in range(workers)
    ]
    reports = [p.communicate()[0] for p in procs]
    own_after, tracer_after = wait_caught_up(sensor.pid)
    wall = time.monotonic() - wall_before
    sensor.send_signal(signal.SIGINT)
    summary = sensor.communicate(timeout=300)[1]
    numbers = [re.findall(r"[0-9.]+", report) for report in reports]
    lost = re.search(r"lost (\d+)", summary)
    return Level(
        rate=rate,
        attempted=sum(int(n[0]) for n in numbers),
        errors=sum(int(n[1]) for n in numbers),
        achieved=sum(float(n[3]) for n in numbers),
        captured=count_captured(out, [p.pid for p in procs]),
        lost=lost.group(1) if lost else "?",
        cpu_seconds=own_after - own_before + tracer_after - tracer_before,
        tracer_cpu_seconds=tracer_after - tracer_before,
        wall_seconds=wall,
    )


def baseline(args: argparse.Namespace, loadgen: Path | None, netns: str | None) -> float:
    """Connects/s the generator reaches flat out with no sensor running (same machine, same run)."""
    count = int(20000 * args.seconds) // args.workers
    procs = [
        start_worker(loadgen, count, 10_000_000, FIRST_SUBNET + i, netns, args.worker_sessions)
        for i in range(args.workers)
    ]
    return sum(float(re.findall(r"[0-9.]+", p.communicate()[0])[3]) for p in procs)


REPLAY_TRACER = """#!{python}
import os, signal, sys, time
signal.signal(signal.SIGINT, lambda *_: sys.exit(0))
print("R\\tready", flush=True)
time.sleep(1.5)  # the bench measures the sensor's CPU from here on, past its start-up
with open(os.environ["REPLAY_LINES"], "rb") as lines:
    sys.stdout.buffer.write(lines.read())
sys.stdout.flush()
while True:
    time.sleep(0.05)
"""


def replay_lines(count: int, pid: int) -> bytes:
    """What the tracer prints for a connect() scan of `count` closed loopback ports: `@b0`
    entries (each an attempt with its outcome, refused), 1,000 per tick with their count."""
    comm = percent_r(b"loadgen".ljust(COMM_BYTES, b"\0"))  # as the script prints it (%r)
    lines = []
    for n in range(count):
        dst = 127 | (10 << 8) | (n >> 8 & 255) << 16 | (n & 255) << 24  # 127.10.x.y, as stored
        lines.append(
            b"@b0[%d, %d]: (%d, 0, 2, 16777343, 0, 0, 0, %d, %d, 0, 0, 0, 9, 7, 111, 7000, %s)\n"
            % (1000 + 50 * n, pid, pid, 40000 + n % 20000, dst, comm)
        )
        if n % 1000 == 999 or n == count - 1:
            lines.append(b"@bn0: %d\n\n" % (n % 1000 + 1))
    return b"".join(lines)


def percent_r(data: bytes) -> bytes:
    """bpftrace's `%r` of a buffer: printable ASCII as is, any other byte as \\xNN."""
    return b"".join(bytes([c]) if 0x20 <= c < 0x7F else b"\\x%02x" % c for c in data)


def replay(count: int, workdir: Path) -> None:
    """The sensor's own pipeline (parse, ECS, NDJSON) fed by a stand-in tracer, flat out."""
    bindir = workdir / "replay-bin"
    bindir.mkdir(exist_ok=True)
    fake = bindir / "bpftrace"
    fake.write_text(REPLAY_TRACER.format(python=sys.executable))
    fake.chmod(0o755)
    lines = workdir / "replay.txt"
    gone = 2**22 + 77  # no such pid: the executable lookup misses, as for a short-lived scanner
    lines.write_bytes(replay_lines(count, gone))
    env = dict(os.environ, PATH=f"{bindir}:{os.environ['PATH']}", REPLAY_LINES=str(lines))
    out = workdir / "replay.ndjson"
    sensor = start_sensor("ebpf", out, workdir, None, env)
    time.sleep(0.5)
    before, cpu_before = time.monotonic(), own_cpu(sensor.pid)
    deadline = time.monotonic() + 30
    while (not out.exists() or out.stat().st_size == 0) and time.monotonic() < deadline:
        time.sleep(0.05)  # the stand-in tracer starts writing 1.5 s after "ready"
    cpu = wait_caught_up(sensor.pid)[0] - cpu_before
    sensor.send_signal(signal.SIGINT)
    sensor.communicate(timeout=120)
    written = sum(1 for _ in out.open("rb"))
    out.unlink()
    print(
        f"replay: sensor pipeline alone (stand-in tracer) wrote {written}/{2 * count} events "
        f"({count} attempts, each with its outcome) in {time.monotonic() - before:.1f}s wall, "
        f"{1e6 * cpu / written:.1f} us/event of sensor CPU = {written / cpu:.0f} events/s per core",
        flush=True,
    )


def print_level(backend: str, r: Level) -> None:
    per_event = 1e6 * r.cpu_seconds / r.captured if r.captured else float("nan")
    print(
        f"{backend} target {r.rate}/s achieved {r.achieved:.0f}/s: "
        f"captured {r.captured}/{r.attempted} = {r.ratio:.4f} (connect errors {r.errors}, "
        f"tracer lost {r.lost}); sensor+bpftrace CPU {r.cpu_seconds:.2f}s "
        f"(bpftrace {r.tracer_cpu_seconds:.2f}s) over {r.wall_seconds:.1f}s = "
        f"{100 * r.cpu_seconds / r.wall_seconds:.0f}% of a core ({per_event:.1f} us/event)",
        flush=True,
    )


def print_verdict(results: list[Level]) -> None:
    loss = [r for r in results if r.ratio < LOSSLESS]
    full = [r for r in results if r.ratio >= LOSSLESS]
    at_20k = [r for r in results if r.achieved >= 19000]
    print(
        "loss begins at: "
        + (
            f"{loss[0].rate}/s target ({loss[0].achieved:.0f}/s achieved)"
            if loss
            else f"none up to {max(r.achieved for r in results):.0f}/s achieved"
        )
        + (f"; highest lossless {max(r.achieved for r in full):.0f}/s achieved" if full else "")
    )
    if at_20k:
        first = at_20k[0]
        print(
            f"ratio captured/attempted at >= 19000 connects/s achieved ({first.achieved:.0f}/s): "
            f"{first.ratio:.4f} (target 1.0000)"
        )
    else:
        print("ratio captured/attempted at 20000 connects/s: not reached (load generator too slow)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--backend", default="ebpf", choices=["ebpf", "auditd"])
    parser.add_argument("--rates", default="5000,10000,20000,40000,80000")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--workers", type=int, default=4, help="load generator processes")
    parser.add_argument("--nice", type=int, help="the sensor's --nice (default: its own)")
    parser.add_argument("--same-session", action="store_true", help=SAME_SESSION)
    parser.add_argument("--replay", type=int, default=100000, help="attempts for the replay run")
    parser.add_argument(
        "--silent",
        action="store_true",
        help="connect to silent addresses in a namespace of the bench's own, not loopback",
    )
    parser.add_argument(
        "--worker-sessions",
        action="store_true",
        help="start each generator in a session of its own: with autogroup scheduling each "
        "then gets a CPU share of its own instead of all sharing the bench's, so a loaded "
        "machine can still be offered the rate (a loss test, not an overhead one)",
    )
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("bench_sensor needs root (the sensor loads eBPF programs)")
    loadgen = compile_loadgen()
    with silent_namespace() if args.silent else contextlib.nullcontext() as netns:
        run_all(args, loadgen, netns)


def run_all(args: argparse.Namespace, loadgen: Path | None, netns: str | None) -> None:
    results = []
    where = "silent addresses in the bench's namespace" if netns else "closed loopback ports"
    print(
        f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at start; "
        f"connects to {where}"
    )
    alone = baseline(args, loadgen, netns)
    print(f"baseline: the generator alone (no sensor) reaches {alone:.0f} connects/s", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        if args.replay:
            replay(args.replay, Path(tmp))
        for rate in (int(r) for r in args.rates.split(",")):
            level = run_level(args, rate, loadgen, Path(tmp), netns)
            results.append(level)
            print_level(args.backend, level)
    print(json.dumps([{**vars(r), "ratio": r.ratio} for r in results]))
    print_verdict(results)


if __name__ == "__main__":
    main()
