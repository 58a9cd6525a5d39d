"""The eBPF collector: runs a tracer (its own, or bpftrace on the shipped script) and turns its lines into Connections."""

from __future__ import annotations

import binascii
import errno
import io
import os
import platform
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import NoReturn, cast

from reconwatch.ecs.network import (
    ACCEPTED,
    ATTEMPTED,
    PROBE_CONNECT,
    PROBE_DATAGRAM,
    PROBE_PACKET,
    PROBE_RAW,
    REASONS,
    RESULT,
    Connection,
)
from reconwatch.errors import SensorError, UsageError
from reconwatch.sensor.procs import ProcessCache, ProcessInfo, fs_text

TRACEFS = Path("/sys/kernel/tracing")
_LOST = re.compile(rb"Lost (\d+) events")
_READY_TIMEOUT = 120.0  # bpftrace compiles with LLVM; a loaded 2-core machine needs a while
# Per-CPU perf buffer pages; the default (64) overflows near 20k events/s.
_PERF_PAGES = "1024"
# bpftrace's string/buffer size: the script's buf(args->filename, 200) needs it (the default, 64,
# would cut paths; 200 is bpftrace's maximum and keeps the probe within the 512-byte BPF stack).
FILENAME_BYTES = 200
COMM_BYTES = 16  # TASK_COMM_LEN
_MAP_KEYS = "65536"
# Fields per line kind. A line is what the script prints and nothing else: numbers of ASCII
# digits (%d/%llu), ntop() addresses that inet_pton accepts, %rx buffers of \xNN only.
_SHAPES = {b"C": 10, b"O": 12, b"B": 13, b"W": 12, b"A": 8, b"U": 8, b"X": 6, b"Y": 4, b"Q": 11}
# A `W` line's (family, protocol) -> network.transport, and the ICMP types the script prints
# (requests: echo, timestamp, information, address mask; ICMPv6 echo, node information query).
_TRANSPORTS = {(4, 6): "tcp", (6, 6): "tcp", (4, 17): "udp", (6, 17): "udp"}
_ICMP = {(4, 1): ("icmp", {8, 13, 15, 17}), (6, 58): ("ipv6-icmp", {128, 139})}
_SOCK_DGRAM, _SOCK_RAW = 2, 3
# A `Q` line's (transport, answer code) -> event.reason of the probe's connection_result:
# 1 SYN-ACK, 2 RST, 3 ICMP port unreachable, 4 other ICMP unreachable, 5 a reply.
_ANSWERS = {
    ("tcp", 1): "open",
    ("tcp", 2): "refused",
    ("tcp", 3): "refused",
    ("tcp", 4): "unreachable",
    ("udp", 3): "refused",
    ("udp", 4): "unreachable",
    ("udp", 5): "answered",
    ("icmp", 4): "unreachable",
    ("icmp", 5): "answered",
}
_AF_INET, _AF_INET6, _AF_PACKET = 2, 10, 17
_TCP_FLAGS = "FSRPAUEC"  # FIN SYN RST PSH ACK URG ECE CWR: bit 0 to bit 7
# An attempt's outcome from the state it entered (tcp_states.h) and the socket's error.
_ESTABLISHED, _CLOSE = 1, 7
_UNREACHABLE = {errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EHOSTDOWN, errno.ENONET}
_PROCESS_NAMES_MAX = 4096  # pid -> the comm of its last attempt, for its outcome events
_FAMILIES = {b"4": (4, socket.AF_INET), b"6": (6, socket.AF_INET6)}
_COMM_CACHE_MAX = 4096
_PRINTABLE_ESCAPE = re.compile(rb"\\x([0-9a-f]{2})")
_BAD_SAMPLES = 3
_NUMBER = rb"(\d{1,20})"  # a %d/%llu field: ASCII digits only (bytes patterns' \d is ASCII)
# An `@b0`/`@b1` entry, whole: [NSECS, TID]: (16 numbers, then COMM: whatever is left before the
# closing parenthesis; %r prints printable bytes raw, so a comm may hold ", " and ")").
_B_ENTRY = re.compile(
    rb"@b[01]\["
    + _NUMBER
    + rb", "
    + _NUMBER
    + rb"\]: \("
    + rb", ".join([_NUMBER] * 16)
    + rb", (.*)\)",
    re.DOTALL,
)
_W_ENTRY = re.compile(
    rb"@w[01]\["
    + _NUMBER
    + rb", "
    + _NUMBER
    + rb"\]: \("
    + rb", ".join([_NUMBER] * 12)
    + rb", (.*)\)",
    re.DOTALL,
)
_Q_ENTRY = re.compile(
    rb"@q[01]\[" + _NUMBER + rb", " + _NUMBER + rb"\]: \(" + rb", ".join([_NUMBER] * 8) + rb"\)"
)
_UDP_SEEN_MAX = 65536
# Seconds without an event line that mean the tracer's buffers are empty; its stdout is flushed
# every 0.1 s by the script's padding tick.
_DRAIN_IDLE = 0.5
_READ_SIZE = 1 << 16  # bytes per read of the tracer's output (the pipe holds 64 KiB)
_DRAIN_DEADLINE = 15.0  # a busy host never goes idle; stop anyway after this


def _log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def script_path() -> Path:
    return Path(str(resources.files("reconwatch.sensor") / "scripts" / "connections.bt"))


@dataclass(slots=True)
class Stats:
    lines: int = 0
    attempted: int = 0
    accepted: int = 0
    results: int = 0
    udp: int = 0
    udp_repeats: int = 0
    probes: int = 0
    probe_repeats: int = 0
    answers: int = 0
    folded: int = 0  # repeated connects the tracer counted instead of printing
    udp_folded: int = 0  # repeated UDP sends (same process, destination, port, second) likewise
    fold_reports: int = 0
    bad_registers: int = 0  # connect() returns whose saved registers did not name connect()
    answer_repeats: int = 0
    execs: int = 0
    lost: int = 0
    bad_lines: int = 0
    own: int = 0
    executable_unknown: int = 0
    exec_path_cut: int = 0
    arglists: int = 0
    args_cut: int = 0
    tracer_messages: list[str] = field(default_factory=list)
    bad_samples: list[str] = field(default_factory=list)


def read_lines(stream: io.BufferedIOBase, size: int = _READ_SIZE) -> Iterator[list[bytes]]:
    """The stream's lines (without their newline), a list per read of up to `size` bytes: one
    read() and one split() per block of the tracer's output instead of a readline() per line.
    A last line without a newline is yielded at the end of the stream."""
    rest = b""
    while chunk := stream.read1(size):
        lines = (rest + chunk).split(b"\n")
        rest = lines.pop()
        yield lines
    if rest:
        yield [rest]


def encode_buf(data: bytes, size: int) -> bytes:
    """What bpftrace's `%rx` prints for buf(p, size) over `data` (NUL-padded): \\xNN per byte."""
    padded = data[:size].ljust(size, b"\0")
    return b"".join(b"\\x%02x" % byte for byte in padded)


def decode_buf(field: bytes) -> tuple[bytes, bool]:
    """(the string in a `%rx` buffer up to its first NUL, whether it had one); ValueError if malformed.

    Only `\\x` followed by two hex digits is accepted, so a field is either exactly what bpftrace
    prints for some bytes or a clean error.
    """
    raw = decode_raw(field)
    end = raw.find(b"\0")
    return (raw, False) if end < 0 else (raw[:end], True)


def decode_raw(field: bytes) -> bytes:
    """Every byte of a `%rx` buffer, NULs included; ValueError if it is not exactly `\\xNN`s."""
    count, rest = divmod(len(field), 4)
    if rest or field[0::4].count(b"\\") != count or field[1::4].count(b"x") != count:
        raise ValueError("not a %rx buffer")
    digits = field.replace(b"\\x", b"")
    if len(digits) != 2 * count:  # a `\\x` where the digits belong
        raise ValueError("not a %rx buffer")
    return binascii.unhexlify(digits)


TRACERS = ("auto", "core", "bpftrace")


@dataclass(frozen=True, slots=True)
class Tracer:
    """A tracer program whose output is connections.bt's lines: its name, argv and environment."""

    name: str
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)


def check_environment(*, mount_tracefs: bool = True) -> str:
    """The bpftrace binary to run, after checking root and tracefs; SensorError names the fix."""
    binary = shutil.which("bpftrace")
    if binary is None:
        raise SensorError(
            "bpftrace is not installed: install it with `apt-get install -y bpftrace` "
            "(or use --backend auditd)"
        )
    check_host()
    ensure_tracefs(mount=mount_tracefs)
    return binary


def check_host() -> None:
    """Root on x86-64, which both tracers need; SensorError names the fix."""
    if os.geteuid() != 0:
        raise SensorError("the sensor needs root to load eBPF programs: run it as root (sudo)")
    machine = platform.machine()
    if machine not in ("x86_64", "amd64"):
        # both tracers read syscall arguments from x86-64's saved registers (pt_regs)
        raise SensorError(
            f"the eBPF backend supports x86-64 only (this machine is {machine}): "
            "use --backend auditd"
        )


def bpftrace_tracer(*, mount_tracefs: bool = True) -> Tracer:
    binary = check_environment(mount_tracefs=mount_tracefs)
    env = {
        "BPFTRACE_PERF_RB_PAGES": _PERF_PAGES,
        "BPFTRACE_STRLEN": str(FILENAME_BYTES),
        # @syn holds every socket still in SYN_SENT: a scanner keeps thousands in flight
        "BPFTRACE_MAP_KEYS_MAX": _MAP_KEYS,
    }
    return Tracer("bpftrace", [binary, "-B", "full", str(script_path())], env)


def core_tracer(answer_seconds: int = 30) -> Tracer:
    """reconwatch's own collector (scripts/rwcore.*), built for this kernel or from the cache,
    keeping raw probes waiting for their answers one to two `answer_seconds` periods;
    bpfcore.CoreUnavailable says why not."""
    from reconwatch.sensor.bpfcore import prepare

    check_host()
    return Tracer("core", [*prepare(), str(answer_seconds)])


def _root() -> bool:
    return os.geteuid() == 0


def fallback_notice(reason: str) -> str:
    return f"sensor: own eBPF collector unavailable ({reason}); using bpftrace"


def select_tracer(
    choice: str, log: Callable[[str], None] = _log, *, answer_seconds: int = 30
) -> BpfCollector:
    """A collector for --tracer `choice`: `core` or `bpftrace` exactly, or `auto`: core, and
    bpftrace (one line on stderr saying why) when core cannot be built or loaded.
    `answer_seconds` is the core tracer's (bpftrace's script keeps its own minute)."""
    from reconwatch.sensor.bpfcore import CoreUnavailable

    if choice == "bpftrace" or (choice == "auto" and not _root()):
        # not root: bpftrace's check names what is missing first, then root, as it always did
        return BpfCollector(tracer=bpftrace_tracer())
    if choice not in ("auto", "core"):
        raise UsageError(f"unknown tracer {choice!r}: use {', '.join(TRACERS)}")
    try:
        tracer = core_tracer(answer_seconds)
    except CoreUnavailable as exc:
        if choice == "core":
            raise SensorError(f"--tracer core: {exc}") from None
        try:
            fallback = bpftrace_tracer()
        except SensorError as missing:  # neither: one line naming both
            raise SensorError(f"{missing}; own eBPF collector unavailable too: {exc}") from None
        log(fallback_notice(str(exc)))
        collector = BpfCollector(tracer=fallback)
        collector.fell_back = str(exc)
        return collector
    later = bpftrace_tracer if choice == "auto" else None
    return BpfCollector(tracer=tracer, fallback=later, log=log)


def ensure_tracefs(*, mount: bool = True) -> None:
    """bpftrace reports 'tracepoint not found' without tracefs; as root, mount it."""
    if (TRACEFS / "events").is_dir():
        return
    fix = f"mount -t tracefs nodev {TRACEFS}"
    if not mount or os.geteuid() != 0:
        raise SensorError(f"tracefs is not mounted at {TRACEFS}: run `{fix}` as root")
    result = subprocess.run(
        ["mount", "-t", "tracefs", "nodev", str(TRACEFS)],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0 or not (TRACEFS / "events").is_dir():
        detail = result.stderr.strip() or "no events directory after mounting"
        raise SensorError(f"tracefs is not mounted and `{fix}` failed: {detail}")


def explain_failure(stderr: str, tracer: str = "bpftrace") -> str:
    """One line naming the fix for a tracer that would not start."""
    errors = [
        line
        for line in stderr.splitlines()
        if "ERROR" in line and "RLIMIT_MEMLOCK" not in line  # that one is only a warning
    ]
    text = "\n".join(errors) or stderr.strip()
    if "tracepoint not found" in text:
        return f"bpftrace: tracepoint not found; mount tracefs: `mount -t tracefs nodev {TRACEFS}`"
    if "Operation not permitted" in text or "permission" in text.lower():
        return (
            "eBPF is not permitted here (needs root with CAP_BPF/CAP_SYS_ADMIN, no kernel "
            "lockdown, not an unprivileged container): run as root on the host or use --backend auditd"
        )
    first = errors[0] if errors else (text.splitlines() or ["no output"])[0]
    return f"{tracer} failed to start: {first.strip()}"


class BpfCollector:
    """Runs a tracer (bpftrace on connections.bt, or the core collector) and yields Connections
    until stop() is called and the tracer has drained."""

    def __init__(
        self,
        *,
        tracer: Tracer | None = None,
        binary: str | None = None,
        cache: ProcessCache | None = None,
        fallback: Callable[[], Tracer] | None = None,
        log: Callable[[str], None] = _log,
    ) -> None:
        if tracer is None:
            if binary is None:
                raise ValueError("a tracer or a bpftrace binary is needed")
            tracer = Tracer("bpftrace", [binary, "-B", "full", str(script_path())])
        self.tracer = tracer
        self._fallback = fallback  # started instead when the tracer fails before it is ready
        self._log = log
        self.fell_back: str | None = None  # why the core tracer is not the one running
        self.cache = cache or ProcessCache()
        self.stats = Stats()
        self.proc: subprocess.Popen[bytes] | None = None
        self.own_pids: set[int] = {os.getpid()}
        self._udp_seen: OrderedDict[tuple[object, ...], None] = OrderedDict()
        self._probe_seen: OrderedDict[tuple[object, ...], None] = OrderedDict()
        self._answer_seen: OrderedDict[tuple[object, ...], None] = OrderedDict()
        self._comms: dict[bytes, str] = {}
        self._names: dict[int, str] = {}
        self._batched_comms: dict[bytes, str] = {}
        # entries of each batched map (@b0, @b1, @w0, ...) printed since its count
        self._batch_entries = {m + n: 0 for m in (b"b", b"w", b"q") for n in (b"0", b"1")}
        self.pending_result: Connection | None = None  # a `B` line's outcome, after its attempt
        self._clock_offset = time.time() - time.monotonic()
        self._stderr: list[str] = []
        self._stderr_thread: threading.Thread | None = None
        self._stop_requested = False
        self._last_line = time.monotonic()
        self._ticks = 0  # the tracer's 0.1 s padding lines received

    def start(self) -> None:
        try:
            self._start()
        except SensorError as exc:
            if self._fallback is None or self._stop_requested:
                raise
            self._log(fallback_notice(str(exc)))
            self.fell_back = str(exc)
            self.tracer, self._fallback = self._fallback(), None
            self._stderr = []
            self._start()

    def _start(self) -> None:
        env = dict(
            os.environ,
            BPFTRACE_PERF_RB_PAGES=_PERF_PAGES,
            BPFTRACE_STRLEN=str(FILENAME_BYTES),
            # @syn holds every socket still in SYN_SENT: a scanner keeps thousands in flight
            BPFTRACE_MAP_KEYS_MAX=_MAP_KEYS,
        )
        env.update(self.tracer.env)
        # Binary pipes: the tracer's lines are bytes, and every field is decoded explicitly.
        self.proc = subprocess.Popen(
            self.tracer.argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            start_new_session=True,  # we decide when it stops, so a terminal ^C cannot cut it short
        )
        self.own_pids.add(self.proc.pid)
        self._stderr_thread = threading.Thread(target=self._read_stderr, daemon=True)
        self._stderr_thread.start()
        self._wait_ready()

    def _read_stderr(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        for line in self.proc.stderr:
            self._stderr.append(line.decode("utf-8", "replace"))
            self._note_lost(line)

    def _note_lost(self, line: bytes) -> bool:
        match = _LOST.search(line)
        if match:
            self.stats.lost += int(match.group(1))
        return match is not None

    def _wait_ready(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        # A tracer that hangs before its first line is killed, which ends the loop below.
        watchdog = threading.Timer(_READY_TIMEOUT, self.kill)
        watchdog.start()
        try:
            for line in self.proc.stdout:
                if line.startswith(b"R\tready"):
                    return
        finally:
            watchdog.cancel()
        self.proc.kill()
        self.proc.wait()
        if self._stop_requested:
            return  # stopped while bpftrace was still compiling: nothing to report
        if self._stderr_thread is not None:
            self._stderr_thread.join(timeout=5)
        raise SensorError(explain_failure("".join(self._stderr), self.tracer.name))

    def stop(self) -> None:
        """Finish once the tracer's backlog is drained; events() then ends after the last one.

        bpftrace drops what is still in its perf buffers when interrupted, and it cannot empty
        them while we lag behind on the pipe; so wait until no line has come for a moment, and
        for two ticks printed after the request: an event written just before it (an outcome
        that woke the process that made us stop) has been read by then, even when the tracer
        is slow (a loaded host) and the last line before it came long ago.
        """
        if self._stop_requested:
            return
        self._stop_requested = True
        threading.Thread(target=self._stop_when_idle, name="bpftrace-stop", daemon=True).start()

    def _stop_when_idle(self) -> None:
        deadline = time.monotonic() + _DRAIN_DEADLINE
        ticks = self._ticks + 2
        while time.monotonic() < deadline and (
            time.monotonic() - self._last_line < _DRAIN_IDLE or self._ticks < ticks
        ):
            time.sleep(_DRAIN_IDLE / 4)
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()

    def events(self) -> Iterator[Connection]:
        assert self.proc is not None and self.proc.stdout is not None
        # a pipe opened with the default buffering is a BufferedReader (it may hold lines read
        # past the ready line already)
        for lines in read_lines(cast(io.BufferedIOBase, self.proc.stdout)):
            for line in lines:
                conn = self.handle_line(line)
                if conn is not None:
                    yield conn
                if self.pending_result is not None:  # a batched probe's answer, even to a repeat
                    yield self.pending_result
                    self.pending_result = None
        self.proc.wait()
        if self._stderr_thread is not None:
            self._stderr_thread.join(timeout=5)

    def summary(self) -> str:
        s = self.stats
        text = (
            f"captured {s.attempted} connection attempts, {s.results} attempt outcomes, "
            f"{s.accepted} accepts, {s.udp} UDP destinations, {s.probes} raw/ICMP probes "
            f"({s.probe_repeats} repeated sends), {s.answers} probe answers; lost {s.lost} events (tracer buffer or attempt map full)"
        )
        if s.folded:
            text += (
                f"; {s.folded} repeated connects folded (same process, destination, port, second)"
            )
        if s.udp_folded:
            text += f"; {s.udp_folded} repeated UDP sends folded in the tracer"
        if s.bad_registers:
            text += (
                f"; {s.bad_registers} connect() returns whose registers could not be read "
                "(their UDP destinations and held TCP attempts are missing)"
            )
        if s.executable_unknown:
            text += f"; {s.executable_unknown} with unknown executable"
        if s.exec_path_cut:
            text += (
                f"; {s.exec_path_cut} exec paths longer than {FILENAME_BYTES - 1} bytes not used"
            )
        if s.args_cut:
            text += f"; {s.args_cut} argument lists longer than {FILENAME_BYTES} bytes"
        if s.bad_lines:
            text += f"; {s.bad_lines} unparsable tracer lines (first: {', '.join(s.bad_samples)})"
        text += f"; tracer {self.tracer.name}"
        if self.fell_back:
            text += f" (own collector unavailable: {self.fell_back})"
        return text

    def handle_line(self, line: bytes) -> Connection | None:
        """Parse one tracer line: update the process cache or return a Connection.

        A line that is not exactly what the script prints is counted (and the first few kept
        for the summary), never raised: the tracer's output carries strings any local user
        chooses, so the parser assumes nothing about them. A `B` line (an attempt and its
        outcome) returns the attempt and leaves the outcome in `pending_result`.
        """
        self.pending_result = None
        if line.startswith(b"P\t"):
            self._ticks += 1
            return None  # the flush tick's padding
        if line.startswith(b"F\t"):
            self._folded(line)  # the tracer's once-a-second count, not an event: no activity
            return None
        if line.startswith((b"@bn", b"@wn", b"@qn")) or line in (b"\n", b""):
            self._batch_count(line)  # each tick's count of batched events: no activity
            return None
        if line.startswith((b"@b0[", b"@b1[")):
            return self._batched(line)
        if line.startswith((b"@w0[", b"@w1[", b"@q0[", b"@q1[")):
            return self._batched_probe(line)
        self.stats.lines += 1
        self._last_line = time.monotonic()
        parts = line.rstrip(b"\n").split(b"\t")
        expected = _SHAPES.get(parts[0])
        if expected is None:
            self._other(line)
            return None
        try:
            if len(parts) != expected:
                raise ValueError(f"{len(parts)} fields, not {expected}")
            if parts[0] == b"X":
                self._exec(parts)
                return None
            if parts[0] == b"Y":
                self._args(parts)
                return None
            if parts[0] == b"O":
                return self._result(parts)
            if parts[0] == b"B":
                return self._combined(parts)
            if parts[0] == b"W":
                return self._probe(parts)
            if parts[0] == b"Q":
                return self._answer(parts)
            return self._connection(parts)
        except ValueError:  # UnicodeError and binascii.Error are ValueErrors too
            self.stats.bad_lines += 1
            if len(self.stats.bad_samples) < _BAD_SAMPLES:
                self.stats.bad_samples.append(repr(line[:80]))
        return None

    def _folded(self, line: bytes) -> None:
        """An `F` line: how many repeated connects and UDP sends the tracer has folded so far,
        and how many connect() returns it could not read the registers of (cumulative counts)."""
        parts = line.rstrip(b"\n").split(b"\t")
        if len(parts) == 4 and all(p.isdigit() and len(p) <= 20 for p in parts[1:]):
            self.stats.fold_reports += 1
            self.stats.folded = max(self.stats.folded, int(parts[1]))
            self.stats.udp_folded = max(self.stats.udp_folded, int(parts[2]))
            self.stats.bad_registers = max(self.stats.bad_registers, int(parts[3]))
            return
        self.stats.lines += 1
        self.stats.bad_lines += 1
        if len(self.stats.bad_samples) < _BAD_SAMPLES:
            self.stats.bad_samples.append(repr(line[:80]))

    def _other(self, line: bytes) -> None:
        """bpftrace's own messages on stdout; `Lost N events` is counted."""
        if line.strip() and not self._note_lost(line):
            self.stats.tracer_messages.append(line.decode("utf-8", "replace").strip())

    def _timestamp(self, nsecs: bytes) -> float:
        return self._clock_offset + int(nsecs) / 1e9

    def _exec(self, parts: list[bytes]) -> None:
        _, nsecs, pid, ppid, uid, filename = parts
        _digits(nsecs, pid, ppid, uid)  # every field is checked before anything is counted
        raw, whole = decode_buf(filename)
        self.stats.execs += 1
        if not whole:
            self.stats.exec_path_cut += 1  # a cut path would name the wrong file
        text = fs_text(raw) if whole else None
        self.cache.on_exec(int(pid), text, int(ppid), self._timestamp(nsecs), int(nsecs))

    def _args(self, parts: list[bytes]) -> None:
        """A `Y` line: the argv the exec put on the new image's stack (NUL-separated), read by
        the tracer, so a process gone before this line is read still has its args."""
        _, pid, total, argv = parts
        _digits(pid, total)
        raw = decode_raw(argv)
        if len(raw) != min(int(total), FILENAME_BYTES):
            raise ValueError("args buffer is not the length the tracer printed")
        whole = int(total) <= FILENAME_BYTES
        self.stats.arglists += 1
        if not whole:
            self.stats.args_cut += 1
        self.cache.on_args(int(pid), [fs_text(arg) for arg in raw.split(b"\0") if arg], whole)

    def _comm(self, field: bytes) -> str:
        comm = self._comms.get(field)  # a hit is a field already checked by decode_buf
        if comm is None:
            if len(field) != 4 * COMM_BYTES:
                raise ValueError("comm is not a 16-byte buffer")
            if len(self._comms) >= _COMM_CACHE_MAX:
                self._comms.clear()
            comm = self._comms[field] = fs_text(decode_buf(field)[0])
        return comm

    def _connection(self, parts: list[bytes]) -> Connection | None:
        kind = parts[0]
        if kind == b"C":
            _, nsecs, pid_field, uid_field, family_field, src, sport, dst, dport, comm_field = parts
            _digits(nsecs, pid_field, uid_field, sport, dport)
            src_port: int | None = int(sport)
        else:
            _, nsecs, pid_field, uid_field, family_field, dst, dport, comm_field = parts
            _digits(nsecs, pid_field, uid_field, dport)
            src, src_port = None, None
        family, af = _FAMILIES.get(family_field) or _bad("unknown address family")
        dst_port = int(dport)
        if dst_port > 65535 or (src_port or 0) > 65535:
            raise ValueError("port out of range")
        dst_ip = _address(af, dst)
        src_ip = None if src is None else _source(_address(af, src))
        pid, uid, comm = int(pid_field), int(uid_field), self._comm(comm_field)
        if pid in self.own_pids:
            self.stats.own += 1  # our own output traffic is not something we observe
            return None
        if kind == b"U" and self._udp_repeat(pid, dst_ip, dst_port):
            return None
        if kind == b"C":
            self._remember_name(pid, comm)
        info = self.cache.lookup(pid, int(nsecs))
        self._count(kind, info.executable)
        action = ACCEPTED if kind == b"A" else ATTEMPTED
        conn = self._attributed(
            self._timestamp(nsecs), action, pid, uid, comm, info, dst_ip, dst_port, family
        )
        conn.transport = "udp" if kind == b"U" else "tcp"
        conn.src_ip = src_ip
        conn.src_port = src_port or None  # 0 until the kernel picks the ephemeral port
        conn.probe = None if kind == b"A" else PROBE_CONNECT
        return conn

    def _attributed(
        self,
        when: float,
        action: str,
        pid: int,
        uid: int,
        name: str,
        info: ProcessInfo,
        dst_ip: str,
        dst_port: int,
        family: int,
    ) -> Connection:
        """The part every line kind shares: time, destination, and the process from the cache
        (the caller sets its own fields on the result)."""
        return Connection(
            when, action, pid, dst_ip, dst_port, family, name, info.executable, info.args,
            info.ppid, self._parent_executable(info.ppid), uid, self.cache.user_name(uid),
            process_start=info.start,
        )  # fmt: skip

    def _probe(self, parts: list[bytes]) -> Connection | None:
        """A `W` line: a packet a raw IP, packet or ICMP datagram socket sent."""
        (
            _,
            nsecs,
            pid_field,
            uid_field,
            family_field,
            sockfamily,
            socktype,
            dst,
            proto,
            dport,
            detail,
            comm_f,
        ) = parts
        _digits(nsecs, pid_field, uid_field, sockfamily, socktype, proto, dport, detail)
        family, af = _FAMILIES.get(family_field) or _bad("unknown address family")
        numbers = (int(sockfamily), int(socktype), int(proto), int(dport), int(detail))
        dst_ip = _address(af, dst)
        comm = self._comm(comm_f)
        return self._probe_event(
            int(nsecs), int(pid_field), int(uid_field), family, dst_ip, *numbers, comm
        )

    def _probe_event(
        self,
        nsecs: int,
        pid: int,
        uid: int,
        family: int,
        dst_ip: str,
        sockfamily: int,
        socktype: int,
        number: int,
        port: int,
        flags: int,
        comm: str,
    ) -> Connection | None:
        """A probe (`W` line or `@w` entry), reported once per process, destination, transport
        and port (or ICMP type); repeated sends are only counted. ValueError before anything is
        counted if it is not a probe the script prints."""
        transport = _TRANSPORTS.get((family, number))
        icmp = _ICMP.get((family, number))
        if icmp is not None and flags in icmp[1] and port == 0:
            transport = icmp[0]
        if transport is None or port > 65535 or flags > 255:
            raise ValueError("not a probe the script prints")
        method = _method(sockfamily, socktype, icmp is not None)
        if pid in self.own_pids:
            self.stats.own += 1
            return None
        self._remember_name(pid, comm)  # for the probe's answer (a Q line has no comm)
        if _seen_before(self._probe_seen, (pid, transport, dst_ip, flags if icmp else port)):
            self.stats.probe_repeats += 1
            return None
        info = self.cache.lookup(pid, nsecs)
        self.stats.probes += 1
        if info.executable is None:
            self.stats.executable_unknown += 1
        when = self._clock_offset + nsecs / 1e9
        conn = self._attributed(when, ATTEMPTED, pid, uid, comm, info, dst_ip, port, family)
        conn.transport = transport
        conn.probe = method
        conn.tcp_flags = _tcp_flags(flags) if transport == "tcp" else None
        conn.icmp_type = flags if icmp else None
        return conn

    def _check_answer(self, parts: list[bytes]) -> tuple[str, str, int]:
        """A `Q` line's (transport, reason, port), or ValueError."""
        (_, nsecs, pid_field, uid_field, dst, proto, key, answer, took, sockfamily, socktype) = (
            parts
        )
        _digits(nsecs, pid_field, uid_field, proto, key, answer, took, sockfamily, socktype)
        _address(socket.AF_INET, dst)
        return _answer_kind(int(proto), int(answer), int(key))

    def _answer(self, parts: list[bytes]) -> Connection | None:
        """A `Q` line: the answer to a raw or packet probe (IPv4), as this host received it."""
        (_, nsecs, pid_field, uid_field, dst, _, _, _, took, sockfamily, socktype) = parts
        kind = self._check_answer(parts)
        dst_ip = _address(socket.AF_INET, dst)
        numbers = (int(took), int(sockfamily), int(socktype))
        return self._answer_event(
            int(nsecs), int(pid_field), int(uid_field), dst_ip, kind, *numbers
        )

    def _answer_event(
        self,
        nsecs: int,
        pid: int,
        uid: int,
        dst_ip: str,
        kind: tuple[str, str, int],
        took: int,
        sockfamily: int,
        socktype: int,
    ) -> Connection | None:
        """An answer (`Q` line, `@q` entry, or an `@w` entry's): one connection_result per
        process, transport, destination and port (or echo id); `kind` from _answer_kind()."""
        transport, reason, port = kind
        method = _method(sockfamily, socktype, transport == "icmp")
        if pid in self.own_pids:
            self.stats.own += 1
            return None
        if _seen_before(self._answer_seen, (pid, transport, dst_ip, port)):
            self.stats.answer_repeats += 1  # the answer to a retransmission
            return None
        info = self.cache.lookup(pid, nsecs - took)  # the process as it sent the probe
        self.stats.answers += 1
        if info.executable is None:
            self.stats.executable_unknown += 1
        name = self._names.get(pid, "")
        when = self._clock_offset + nsecs / 1e9
        conn = self._attributed(when, RESULT, pid, uid, name, info, dst_ip, port, 4)
        conn.transport = transport
        conn.outcome = REASONS[reason]
        conn.probe = method
        conn.reason = reason
        conn.duration_ns = took
        return conn

    def _parent_executable(self, ppid: int | None) -> str | None:
        """The parent's executable, from the same cache (so usually no /proc read)."""
        return self.cache.lookup(ppid).executable if ppid else None

    def _remember_name(self, pid: int, comm: str) -> None:
        if self._names.get(pid) != comm:
            if len(self._names) >= _PROCESS_NAMES_MAX:
                self._names.clear()
            self._names[pid] = comm

    def _combined(self, parts: list[bytes]) -> Connection | None:
        """A `B` line: an attempt whose outcome came within its connect() call, as its `C` line
        and its `O` line would have said (the outcome's time is the attempt's plus the took)."""
        nsecs, state, err, took = parts[1], parts[10], parts[11], parts[12]
        _digits(nsecs, state, err, took)
        _reason(int(state), int(err))  # checked before the attempt is counted
        attempt = self._connection([b"C", *parts[1:10]])
        if attempt is None:
            return None
        ended = str(int(nsecs) + int(took)).encode()
        self.pending_result = self._result([b"O", ended, *parts[2:9], state, err, took])
        return attempt

    def _batched(self, line: bytes) -> Connection | None:
        """One entry of the tick's map of attempts with their outcomes (`@b0`/`@b1`), as
        bpftrace prints it: `@b0[NSECS, TID]: (PID, UID, AF, S0, S1, S2, S3, SPORT, D0, D1, D2,
        D3, DPORT, STATE, ERR, TOOK, COMM)`, COMM in %r form (printable bytes raw, others \\xNN);
        the same two events as a `B` line would give.

        The hot path of a connect() scan (two events per entry), so it is parsed in one step:
        one regular expression checks the whole shape (every number ASCII digits), and both
        Connections are built straight from the integers, with one process lookup.
        """
        self.stats.lines += 1
        self._last_line = time.monotonic()
        self._batch_entries[line[1:3]] += 1
        match = _B_ENTRY.fullmatch(line.rstrip(b"\n"))
        try:
            if match is None:
                raise ValueError("not a batched event")
            return self._batched_attempt(match.groups())
        except ValueError:
            self._bad_line(line)
        return None

    def _batched_attempt(self, f: tuple[bytes, ...]) -> Connection | None:
        """The attempt of a matched `@b` entry (its outcome left in pending_result)."""
        nsecs, _, pid_f, uid_f, family_f = f[0], f[1], f[2], f[3], f[4]
        words = [int(w) for w in f[5:9] + f[10:14]]
        if max(words) > 0xFFFFFFFF:
            raise ValueError("address word out of range")
        sport, dport, took = int(f[9]), int(f[14]), int(f[17])
        if sport > 65535 or dport > 65535:
            raise ValueError("port out of range")
        if family_f == b"2":
            family = 4
            src = socket.inet_ntoa(words[0].to_bytes(4, "little"))
            dst = socket.inet_ntoa(words[4].to_bytes(4, "little"))
        elif family_f == b"10":
            family = 6
            src = socket.inet_ntop(socket.AF_INET6, struct.pack("<4I", *words[:4]))
            dst = socket.inet_ntop(socket.AF_INET6, struct.pack("<4I", *words[4:]))
        else:
            raise ValueError("unknown address family")
        src_ip = _source(src)
        state, err = int(f[15]), int(f[16])
        if state == 0:  # an attempt whose outcome had not come when it was batched
            if err or took:
                raise ValueError("an attempt without its outcome has no error or duration")
            reason, error = None, None
        else:
            reason, error = _reason(state, err)
        name = self._batched_comm(f[18])
        pid, uid = int(pid_f), int(uid_f)
        if pid in self.own_pids:
            self.stats.own += 1
            return None
        self._remember_name(pid, name)
        start = int(nsecs)
        info = self.cache.lookup(pid, start)
        s = self.stats
        s.attempted += 1
        events = 1 if reason is None else 2
        s.results += events - 1
        if info.executable is None:
            s.executable_unknown += events  # the attempt (and its outcome)
        ppid = info.ppid
        parent, user = self._parent_executable(ppid), self.cache.user_name(uid)
        exe, args, began, src_port = info.executable, info.args, info.start, sport or None
        if reason is not None:
            # positional (Connection's field order), a third of the cost of keywords at two
            # per entry
            self.pending_result = Connection(
                self._clock_offset + (start + took) / 1e9, RESULT, pid, dst, dport, family,
                name, exe, args, ppid, parent, uid, user, "tcp", src_ip, src_port, REASONS[reason],
                began, PROBE_CONNECT, reason, took, error,
            )  # fmt: skip
        return Connection(
            self._clock_offset + start / 1e9, ATTEMPTED, pid, dst, dport, family, name, exe,
            args, ppid, parent, uid, user, "tcp", src_ip, src_port, "unknown", began, PROBE_CONNECT,
        )  # fmt: skip

    def _batched_comm(self, field: bytes) -> str:
        """A %r comm buffer (printable bytes raw, others \\xNN) as the name up to its first NUL,
        decoded as a `%rx` one is (cached: a scan repeats one comm)."""
        name = self._batched_comms.get(field)
        if name is None:
            raw = _PRINTABLE_ESCAPE.sub(lambda m: bytes([int(m.group(1), 16)]), field)
            raw = raw[:COMM_BYTES].partition(b"\0")[0]
            if len(self._batched_comms) >= _COMM_CACHE_MAX:
                self._batched_comms.clear()
            name = self._batched_comms[field] = fs_text(raw)
        return name

    def _batched_probe(self, line: bytes) -> Connection | None:
        """An entry of the tick's map of raw/packet probes (IPv4) or of their answers:
        `@w0[NSECS, TID]: (PID, UID, SOCKFAMILY, SOCKTYPE, DADDR, PROTO, PORT, DETAIL, KEY,
        ANSWER, ANSWERED, TOOK, COMM)`, ANSWER 0 when none came within the send, TOOK then
        meaningless; `@q0[NSECS, PID]: (UID, DADDR, PROTO, KEY, ANSWER, TOOK, SOCKFAMILY,
        SOCKTYPE)`. The events a `W` line (then a `Q` line, when answered) would give, parsed
        in one step like `@b` entries."""
        self.stats.lines += 1
        self._last_line = time.monotonic()
        self._batch_entries[line[1:3]] += 1
        body = line.rstrip(b"\n")
        try:
            if line[1:2] == b"q":
                match = _Q_ENTRY.fullmatch(body)
                if match is None:
                    raise ValueError("not a batched answer")
                return self._batched_answer([int(n) for n in match.groups()])
            match = _W_ENTRY.fullmatch(body)
            if match is None:
                raise ValueError("not a batched probe")
            groups = match.groups()
            return self._batched_packet([int(n) for n in groups[:-1]], groups[-1])
        except ValueError:
            self._bad_line(line)
        return None

    def _batched_answer(self, n: list[int]) -> Connection | None:
        nsecs, pid, uid, daddr, proto, key, answer, took, sockfamily, socktype = n
        kind = _answer_kind(proto, answer, key)
        return self._answer_event(nsecs, pid, uid, _ipv4(daddr), kind, took, sockfamily, socktype)

    def _batched_packet(self, n: list[int], comm_field: bytes) -> Connection | None:
        nsecs, _, pid, uid, sockfamily, socktype, daddr, proto, port, detail = n[:10]
        key, answer, answered, took = n[10:]
        dst_ip = _ipv4(daddr)
        kind = _answer_kind(proto, answer, key) if answer else None  # checked before counting
        comm = self._batched_comm(comm_field)
        numbers = (sockfamily, socktype, proto, port, detail)
        conn = self._probe_event(nsecs, pid, uid, 4, dst_ip, *numbers, comm)
        if kind is not None:
            self.pending_result = self._answer_event(
                answered, pid, uid, dst_ip, kind, took, sockfamily, socktype
            )
        return conn

    def _batch_count(self, line: bytes) -> None:
        """`@bn0: N` (`@wn0`, `@qn0`): how many events the kernel put in map @b0 (@w0, @q0)
        since the last count; fewer entries printed means a full map refused some: lost."""
        name, sep, count = line.rstrip(b"\n").partition(b": ")
        if line in (b"\n", b""):
            return  # bpftrace ends each print() with an empty line
        which = name[1:2] + name[3:4]
        if which not in self._batch_entries or not sep or not count.isdigit() or len(count) > 20:
            self.stats.lines += 1
            self._bad_line(line)
            return
        printed = self._batch_entries[which]
        self._batch_entries[which] = 0
        self.stats.lost += max(0, int(count) - printed)

    def _bad_line(self, line: bytes) -> None:
        self.stats.bad_lines += 1
        if len(self.stats.bad_samples) < _BAD_SAMPLES:
            self.stats.bad_samples.append(repr(line[:80]))

    def _result(self, parts: list[bytes]) -> Connection | None:
        """An `O` line: the outcome of an attempt, attributed to the process that began it."""
        _, nsecs, pid_field, uid_field, family_field, src, sport, dst, dport, state, err, took = (
            parts
        )
        _digits(nsecs, pid_field, uid_field, sport, dport, state, err, took)
        family, af = _FAMILIES.get(family_field) or _bad("unknown address family")
        src_port, dst_port = int(sport), int(dport)
        if dst_port > 65535 or src_port > 65535:
            raise ValueError("port out of range")
        reason, error = _reason(int(state), int(err))
        dst_ip, src_ip = _address(af, dst), _source(_address(af, src))
        pid, uid = int(pid_field), int(uid_field)
        if pid in self.own_pids:
            self.stats.own += 1
            return None
        info = self.cache.lookup(pid, int(nsecs) - int(took))  # as it began the attempt
        self.stats.results += 1
        if info.executable is None:
            self.stats.executable_unknown += 1
        name = self._names.get(pid, "")
        when = self._timestamp(nsecs)
        conn = self._attributed(when, RESULT, pid, uid, name, info, dst_ip, dst_port, family)
        conn.transport = "tcp"
        conn.src_ip = src_ip
        conn.src_port = src_port or None
        conn.outcome = REASONS[reason]
        conn.probe = PROBE_CONNECT
        conn.reason = reason
        conn.duration_ns = int(took)
        conn.error = error
        return conn

    def _count(self, kind: bytes, executable: str | None) -> None:
        if kind == b"C":
            self.stats.attempted += 1
        elif kind == b"A":
            self.stats.accepted += 1
        else:
            self.stats.udp += 1
        if executable is None:
            self.stats.executable_unknown += 1

    def _udp_repeat(self, pid: int, ip: str, port: int) -> bool:
        """UDP has no handshake: report a destination the first time a process uses it."""
        if _seen_before(self._udp_seen, (pid, ip, port)):
            self.stats.udp_repeats += 1
            return True
        return False


def _reason(state: int, err: int) -> tuple[str, str | None]:
    """(event.reason, errno name) of a socket that left SYN_SENT for `state` with error `err`."""
    if state == _ESTABLISHED and err <= 4095:  # an error after the handshake is not its outcome
        return "established", None
    if state != _CLOSE or err > 4095:  # the kernel's errnos are below 4096
        raise ValueError("not an outcome")
    if err == 0:
        return "aborted", None
    name = errno.errorcode.get(err, f"E{err}")
    if err == errno.ECONNREFUSED:
        return "refused", name
    if err == errno.ETIMEDOUT:
        return "timeout", name
    return ("unreachable" if err in _UNREACHABLE else "error"), name


def _seen_before(seen: OrderedDict[tuple[object, ...], None], key: tuple[object, ...]) -> bool:
    """Whether `key` is in the bounded LRU `seen` (the most recent _UDP_SEEN_MAX); adds it."""
    if key in seen:
        seen.move_to_end(key)
        return True
    seen[key] = None
    if len(seen) > _UDP_SEEN_MAX:
        seen.popitem(last=False)
    return False


def _method(sockfamily: int, socktype: int, icmp: bool) -> str:
    """reconwatch.probe of a `W` line's socket; ValueError for one the script does not read."""
    if sockfamily == _AF_PACKET and socktype in (_SOCK_RAW, _SOCK_DGRAM):
        return PROBE_PACKET
    if sockfamily in (_AF_INET, _AF_INET6):
        if socktype == _SOCK_RAW:
            return PROBE_RAW
        if socktype == _SOCK_DGRAM and icmp:
            return PROBE_DATAGRAM
    raise ValueError("not a raw IP, packet or ICMP datagram socket")


def _answer_kind(proto: int, answer: int, key: int) -> tuple[str, str, int]:
    """An answer's (transport, event.reason, port or echo id); ValueError if the script would
    not print it."""
    transport = {6: "tcp", 17: "udp", 1: "icmp"}.get(proto) or _bad("not a probe protocol")
    reason = _ANSWERS.get((transport, answer)) or _bad("not an answer the script prints")
    if key > 65535:
        raise ValueError("port out of range")
    return transport, reason, key


def _ipv4(word: int) -> str:
    """An IPv4 address from the 32-bit word the kernel stores it in (read little-endian)."""
    if word > 0xFFFFFFFF:
        raise ValueError("address word out of range")
    return socket.inet_ntoa(word.to_bytes(4, "little"))


def _tcp_flags(byte: int) -> str:
    """The letters of a TCP flags byte's bits ("S" for a SYN, "SA" a SYN-ACK, "" a NULL scan)."""
    return "".join(letter for bit, letter in enumerate(_TCP_FLAGS) if byte >> bit & 1)


def _digits(*fields: bytes) -> None:
    """%d/%llu fields: ASCII digits only (int() would also take signs, spaces and underscores)."""
    for value in fields:
        if not value.isdigit() or len(value) > 20:
            raise ValueError("not a number")


def _bad(reason: str) -> NoReturn:
    raise ValueError(reason)


def _source(address: str) -> str | None:
    """A source address, None when the kernel had none (a connect() that failed before the
    socket was given one: the unspecified address)."""
    return None if address in ("0.0.0.0", "::") else address


def _address(af: int, field: bytes) -> str:
    """An ntop() address, checked by inet_pton (strict, and cheaper than ipaddress)."""
    text = field.decode("ascii")
    try:
        socket.inet_pton(af, text)
    except OSError:
        raise ValueError("not an address") from None
    return text
