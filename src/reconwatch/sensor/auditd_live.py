"""The auditd collector: installs connect() and raw-socket audit rules and reads records from the kernel or auditd's log."""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import socket
import struct
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from reconwatch.ecs.auditd import AF_PACKET, SEND_SYSCALLS, AuditParser, ProbeSocket
from reconwatch.ecs.network import Connection
from reconwatch.errors import IngestError, SensorError
from reconwatch.sensor.procs import ProcessCache

RULE_KEY = "reconwatch"
DEFAULT_AUDIT_LOG = Path("/var/log/audit/audit.log")
NETLINK_AUDIT = 9
AUDIT_GET, AUDIT_SET = 1000, 1001
AUDIT_STATUS_ENABLED, AUDIT_STATUS_PID, AUDIT_STATUS_BACKLOG_LIMIT = 0x1, 0x4, 0x10
NLM_F_REQUEST, NLM_F_ACK = 0x1, 0x4
_NLMSG = struct.Struct("=IHHII")
_STATUS = struct.Struct("=8I")  # mask enabled failure pid rate_limit backlog_limit lost backlog
_RECORD_NAMES = {1300: "SYSCALL", 1306: "SOCKADDR", 1327: "PROCTITLE", 1320: "EOE"}
_BACKLOG_LIMIT = 65536
_REASSEMBLY_WAIT = 2.0  # seconds a partial event may wait for records before it is completed
AUDIT_USER = 1005  # a message user space logs through the kernel's audit queue
_DRAIN_IDLE = 1.0  # without a marker: how long a stop keeps reading
_DRAIN_DEADLINE = 15.0  # a stop waits at most this long for its marker to come back


RAW_RULE_KEY = "reconwatch-raw"
_RAW_RULES_MAX = 256  # per-socket send rules at once; more sockets are counted, not watched
_REAP_EVERY = 1.0  # seconds between checks for exited processes whose send rules can go


def _rules() -> list[list[str]]:
    """Both syscall ABIs: a 32-bit binary on a 64-bit kernel calls connect through another table.

    socket() is audited only when it makes a raw socket (`a1&=3`: SOCK_RAW, whatever flags are
    or-ed in), a packet socket (a0=17) or an ICMP datagram socket (IPv4 protocol 1, IPv6 58):
    its record names the process and the new fd, and the sensor then audits that fd's sends."""
    rules = []
    for arch in ("arch=b64", "arch=b32"):
        rules.append(["-F", arch, "-S", "connect", "-k", RULE_KEY])
        sockets = [
            ["-F", "a1&=3"],
            ["-F", f"a0={AF_PACKET}"],
            ["-F", "a0=2", "-F", "a2=1"],
            ["-F", "a0=10", "-F", "a2=58"],
        ]
        for fields in sockets:
            rules.append(["-F", arch, "-S", "socket", *fields, "-F", "success=1", "-k", RULE_KEY])
    return rules


AUDIT_ADD_RULE, AUDIT_DEL_RULE = 1011, 1012
_NLMSG_ERROR = 2
_FILTER_EXIT, _ALWAYS, _EQUAL = 0x04, 2, 0x40000000
_F_PID, _F_ARCH, _F_SUCCESS, _F_ARG0, _F_FILTERKEY = 0, 11, 104, 200, 210
_RULE_HEAD = struct.Struct("=3I")  # flags, action, field_count; then 4 x 64 u32, buflen, buf


def rule_data(sock: ProbeSocket) -> bytes:
    """struct audit_rule_data of `-a always,exit -F arch=ARCH -S sendto -S sendmsg -F pid=PID
    -F a0=FD -F success=1 -k reconwatch-raw`: the sends of one raw socket, and nothing else."""
    mask = [0] * 64
    for number in SEND_SYSCALLS.get(sock.arch, {}):
        mask[number // 32] |= 1 << (number % 32)
    key = RAW_RULE_KEY.encode()
    pairs = [
        (_F_ARCH, sock.arch),
        (_F_PID, sock.pid),
        (_F_ARG0, sock.fd),
        (_F_SUCCESS, 1),
        (_F_FILTERKEY, len(key)),
    ]
    fields = [f for f, _ in pairs] + [0] * (64 - len(pairs))
    values = [v for _, v in pairs] + [0] * (64 - len(pairs))
    flags = [_EQUAL] * len(pairs) + [0] * (64 - len(pairs))
    body = struct.pack("=256I", *mask, *fields, *values, *flags)
    return (
        _RULE_HEAD.pack(_FILTER_EXIT, _ALWAYS, len(pairs))
        + body
        + struct.pack("=I", len(key))
        + key
    )


class RuleChannel:
    """A netlink socket of its own for adding and removing per-socket rules: a rule must be in
    within a millisecond or two of the socket() (the scanner's first sends follow at once), and
    spawning auditctl takes tens of milliseconds on a busy host."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_AUDIT)
        self.sock.bind((0, 0))
        self.sock.settimeout(2.0)
        self.seq = 100

    def change(self, kind: int, data: bytes) -> int:
        """Send AUDIT_ADD_RULE/AUDIT_DEL_RULE; the kernel's answer (0 or a negative errno)."""
        self.seq += 1
        header = _NLMSG.pack(_NLMSG.size + len(data), kind, NLM_F_REQUEST | NLM_F_ACK, self.seq, 0)
        try:
            self.sock.send(header + data)
            while True:
                reply = self.sock.recv(65536)
                _, rtype, _, seq, _ = _NLMSG.unpack_from(reply)
                if rtype == _NLMSG_ERROR and seq == self.seq:
                    return int(struct.unpack_from("=i", reply, _NLMSG.size)[0])
        except OSError as exc:
            return -(exc.errno or 1)

    def close(self) -> None:
        self.sock.close()


def _auditctl(binary: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([binary, *args], capture_output=True, text=True, check=False)


def check_audit_environment(audit_log: Path | None) -> dict[str, Any]:
    """Arguments for AuditCollector after checking auditctl, root and the kernel's audit support."""
    binary = shutil.which("auditctl")
    if binary is None:
        raise SensorError("auditctl is not installed: install it with `apt-get install -y auditd`")
    if os.geteuid() != 0:
        raise SensorError("the auditd backend needs root: run the sensor as root (sudo)")
    status = _auditctl(binary, "-s")
    if status.returncode != 0:
        detail = (status.stderr or status.stdout).strip().splitlines()
        raise SensorError(
            "the kernel refuses audit requests "
            f"({detail[0] if detail else 'auditctl -s failed'}): audit must be enabled and "
            "the sensor must run in the initial namespaces; use --backend ebpf"
        )
    daemon_pid = _status_field(status.stdout, "pid")
    return {
        "auditctl": binary,
        "audit_log": audit_log,
        "daemon_running": daemon_pid not in (0, None),
    }


def _status_field(text: str, name: str) -> int | None:
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        if key == name and value.strip().lstrip("-").isdigit():
            return int(value)
    return None


class AuditCollector:
    """Reads connect() audit events; owns the audit rules it installs and removes them on stop."""

    def __init__(self, *, auditctl: str, audit_log: Path | None, daemon_running: bool) -> None:
        self.auditctl = auditctl
        self.audit_log = audit_log or DEFAULT_AUDIT_LOG
        self.follow_log = daemon_running or audit_log is not None
        self.cache = ProcessCache()
        source = str(self.audit_log) if self.follow_log else "<audit netlink>"
        self.parser = AuditParser(path=source, on_error=self._bad_record, on_socket=self._watch)
        self._send_rules: dict[tuple[int, int], bytes] = {}  # (pid, fd) -> its rule
        self._rules: RuleChannel | None = None
        self._unwatched = 0  # raw sockets beyond _RAW_RULES_MAX or whose rule failed
        self._packet_sockets: dict[str, int] = {}  # executable -> packet sockets opened
        self._next_reap = 0.0
        self.stopping = False
        self.count = 0
        self.raw = 0
        self.lost_at_start: int | None = None
        self.lost = 0
        self.bad: list[IngestError] = []
        self.sock: socket.socket | None = None
        self._installed: list[list[str]] = []
        self._was_enabled = True

    def _bad_record(self, error: IngestError) -> None:
        if len(self.bad) < 100:
            self.bad.append(error)

    def start(self) -> None:
        if not self.follow_log:
            self._open_netlink()
        for rule in _rules():
            result = _auditctl(self.auditctl, "-a", "always,exit", *rule)
            if result.returncode != 0 and "exists" not in result.stderr:
                self.stop()
                raise SensorError(
                    f"auditctl could not add the connect rule: {result.stderr.strip()}"
                )
            self._installed.append(rule)
        self.lost_at_start = self._kernel_lost()

    def _open_netlink(self) -> None:
        sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_AUDIT)
        try:
            sock.setsockopt(socket.SOL_SOCKET, 33, 16 * 1024 * 1024)  # SO_RCVBUFFORCE
        except OSError:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 1024 * 1024)
        sock.bind((0, 0))
        self._was_enabled = (
            _status_field(_auditctl(self.auditctl, "-s").stdout, "enabled") or 0
        ) > 0
        mask = AUDIT_STATUS_ENABLED | AUDIT_STATUS_PID | AUDIT_STATUS_BACKLOG_LIMIT
        status = _STATUS.pack(mask, 1, 0, os.getpid(), 0, _BACKLOG_LIMIT, 0, 0)
        try:
            sock.send(
                _NLMSG.pack(_NLMSG.size + len(status), AUDIT_SET, NLM_F_REQUEST, 1, 0) + status
            )
        except OSError as exc:
            sock.close()
            raise SensorError(f"cannot register as the audit listener: {exc.strerror}") from None
        sock.settimeout(0.5)
        self.sock = sock

    def _watch(self, sock: ProbeSocket) -> None:
        """A process made a raw, packet or ICMP datagram socket: audit that fd's sends from now
        on (the sends before the rule is in are not seen). A packet socket's sends name a
        device, not a host, so it is only counted."""
        if sock.pid == os.getpid():
            return
        if sock.family == AF_PACKET:
            exe = _executable(sock.pid) or "?"
            self._packet_sockets[exe] = self._packet_sockets.get(exe, 0) + 1
            return
        key = (sock.pid, sock.fd)
        if key in self._send_rules:
            return
        if len(self._send_rules) >= _RAW_RULES_MAX:
            self._reap()
        if self._rules is None:
            self._rules = RuleChannel()
        data = rule_data(sock)
        if len(self._send_rules) >= _RAW_RULES_MAX or (
            self._rules.change(AUDIT_ADD_RULE, data) not in (0, -errno.EEXIST)
        ):
            self._unwatched += 1
            return
        self._send_rules[key] = data

    def _reap(self) -> None:
        """Remove the send rules of processes that have exited."""
        for key, data in list(self._send_rules.items()):
            if not os.path.exists(f"/proc/{key[0]}"):
                self._remove(data)
                del self._send_rules[key]

    def _remove(self, data: bytes) -> None:
        if self._rules is not None:
            self._rules.change(AUDIT_DEL_RULE, data)

    def _kernel_lost(self) -> int | None:
        return _status_field(_auditctl(self.auditctl, "-s").stdout, "lost")

    def stop(self) -> None:
        self.stopping = True

    def _send_marker(self) -> bytes | None:
        """Log a message of our own through the kernel's audit queue, behind every record queued
        before the stop; reading up to it drains them all however far behind kauditd, auditd or
        we are (a fixed wait lost the last records on a loaded host). None if it cannot be sent
        (no CAP_AUDIT_WRITE): the drain then waits _DRAIN_IDLE as before."""
        marker = b"reconwatch-drain-%d-%d" % (os.getpid(), time.monotonic_ns())
        body = marker + b"\0"
        try:
            with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_AUDIT) as sock:
                sock.send(
                    _NLMSG.pack(_NLMSG.size + len(body), AUDIT_USER, NLM_F_REQUEST, 1, 0) + body
                )
        except OSError:
            return None
        return marker

    def _drain_deadline(self) -> tuple[bytes | None, float]:
        """What a stop waits for: its marker (up to _DRAIN_DEADLINE), or _DRAIN_IDLE without."""
        marker = self._send_marker()
        return marker, time.monotonic() + (_DRAIN_DEADLINE if marker else _DRAIN_IDLE)

    def _cleanup(self) -> None:
        lost = self._kernel_lost()
        if lost is not None and self.lost_at_start is not None:
            self.lost = max(0, lost - self.lost_at_start)
        for rule in self._installed:
            _auditctl(self.auditctl, "-d", "always,exit", *rule)
        self._installed = []
        for data in self._send_rules.values():
            self._remove(data)
        self._send_rules = {}
        if self._rules is not None:
            self._rules.close()
            self._rules = None
        if self.sock is not None:
            status = _STATUS.pack(
                AUDIT_STATUS_PID | AUDIT_STATUS_ENABLED, int(self._was_enabled), 0, 0, 0, 0, 0, 0
            )
            with contextlib.suppress(OSError):
                self.sock.send(
                    _NLMSG.pack(_NLMSG.size + len(status), AUDIT_SET, NLM_F_REQUEST, 2, 0) + status
                )
            self.sock.close()
            self.sock = None

    def events(self) -> Iterator[Connection]:
        lines = self._netlink_lines() if self.sock is not None else self._log_lines()
        try:
            for number, line in enumerate(lines, start=1):
                yield from self._enrich(self.parser.feed(line, number))
                yield from self._enrich(
                    self.parser.flush(older_than=time.time() - _REASSEMBLY_WAIT)
                )
                if self._send_rules and time.monotonic() >= self._next_reap:
                    self._next_reap = time.monotonic() + _REAP_EVERY
                    self._reap()
            yield from self._enrich(self.parser.flush())
        finally:
            self._cleanup()

    def _enrich(self, conns: Iterator[Connection]) -> Iterator[Connection]:
        for conn in conns:
            if conn.pid == os.getpid():
                continue  # our own output traffic
            if conn.probe is None:
                conn.transport = None  # connect(): audit does not say TCP or UDP
            else:
                self.raw += 1
            if conn.uid is not None and conn.user_name is None:
                conn.user_name = self.cache.user_name(conn.uid)
            self.count += 1
            yield conn

    def _netlink_lines(self) -> Iterator[str]:
        assert self.sock is not None
        drain_until: float | None = None
        marker: bytes | None = None
        while True:
            if self.stopping and drain_until is None:
                marker, drain_until = self._drain_deadline()  # records already queued count
            if drain_until is not None and time.monotonic() > drain_until:
                return
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                yield ""  # lets the caller complete events whose EOE never comes
                continue
            except InterruptedError:
                continue
            if marker is not None and marker in data:
                return  # everything queued before the stop has been read
            yield from _netlink_records(data)

    def _log_lines(self) -> Iterator[str]:
        try:
            handle = self.audit_log.open(encoding="utf-8", errors="replace")
        except OSError as exc:
            raise SensorError(f"cannot read {self.audit_log}: {exc.strerror}") from None
        with handle:
            handle.seek(0, os.SEEK_END)
            drain_until: float | None = None
            marker: str | None = None
            while True:
                if self.stopping and drain_until is None:
                    sent, drain_until = self._drain_deadline()
                    marker = sent.decode() if sent else None
                line = handle.readline()
                if line:
                    if marker is not None and marker in line:
                        return  # auditd has written everything queued before the stop
                    yield line
                    continue
                if drain_until is not None and time.monotonic() > drain_until:
                    return
                time.sleep(0.1)
                yield ""

    def summary(self) -> str:
        p = self.parser
        text = (
            f"captured {self.count - self.raw} connect() events and {self.raw} raw-socket "
            f"destinations ({p.raw_repeats} repeated sends, {p.raw_unaddressed} sends without "
            f"an address) from audit; kernel lost {self.lost} records"
        )
        if self._unwatched:
            text += f"; {self._unwatched} raw sockets not watched (rule limit or auditctl failed)"
        if self._packet_sockets:
            opened = ", ".join(f"{exe} ({n})" for exe, n in sorted(self._packet_sockets.items()))
            text += f"; packet sockets opened (destinations not visible to audit): {opened}"
        if self.parser.error_count:
            text += f"; {self.parser.error_count} bad records skipped"
        return text


def _executable(pid: int) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/exe")
    except OSError:
        return None


def _netlink_records(data: bytes) -> Iterator[str]:
    """One audit netlink datagram as an audit.log line (`type=NAME msg=audit(...): ...`).

    The kernel sends one record per datagram and its nlmsg_len is not reliable (EOE records
    claim less than they carry), so the payload is the rest of the datagram, as libaudit reads it.
    """
    if len(data) < _NLMSG.size:
        return
    _length, kind, _flags, _seq, _pid = _NLMSG.unpack_from(data)
    name = _RECORD_NAMES.get(kind)
    if name is not None:
        payload = data[_NLMSG.size :].split(b"\0", 1)[0].rstrip(b"\n")
        yield f"type={name} msg={payload.decode('utf-8', 'replace')}"
