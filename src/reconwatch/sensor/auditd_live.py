"""The auditd collector: installs connect() audit rules and reads records from the kernel or auditd's log."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import struct
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from reconwatch.ecs.auditd import AuditParser
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


def _rules() -> list[list[str]]:
    """Both syscall ABIs: a 32-bit binary on a 64-bit kernel calls connect through another table."""
    common = ["-S", "connect", "-k", RULE_KEY]
    return [["-F", "arch=b64", *common], ["-F", "arch=b32", *common]]


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
        self.parser = AuditParser(path=source, on_error=self._bad_record)
        self.stopping = False
        self.count = 0
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

    def _kernel_lost(self) -> int | None:
        return _status_field(_auditctl(self.auditctl, "-s").stdout, "lost")

    def stop(self) -> None:
        self.stopping = True

    def _cleanup(self) -> None:
        lost = self._kernel_lost()
        if lost is not None and self.lost_at_start is not None:
            self.lost = max(0, lost - self.lost_at_start)
        for rule in self._installed:
            _auditctl(self.auditctl, "-d", "always,exit", *rule)
        self._installed = []
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
            yield from self._enrich(self.parser.flush())
        finally:
            self._cleanup()

    def _enrich(self, conns: Iterator[Connection]) -> Iterator[Connection]:
        for conn in conns:
            if conn.pid == os.getpid():
                continue  # our own output traffic
            conn.transport = None
            if conn.uid is not None and conn.user_name is None:
                conn.user_name = self.cache.user_name(conn.uid)
            self.count += 1
            yield conn

    def _netlink_lines(self) -> Iterator[str]:
        assert self.sock is not None
        drain_until: float | None = None
        while True:
            if self.stopping and drain_until is None:
                drain_until = time.monotonic() + 1.0  # records already queued still count
            if drain_until is not None and time.monotonic() > drain_until:
                return
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                yield ""  # lets the caller complete events whose EOE never comes
                continue
            except InterruptedError:
                continue
            yield from _netlink_records(data)

    def _log_lines(self) -> Iterator[str]:
        try:
            handle = self.audit_log.open(encoding="utf-8", errors="replace")
        except OSError as exc:
            raise SensorError(f"cannot read {self.audit_log}: {exc.strerror}") from None
        with handle:
            handle.seek(0, os.SEEK_END)
            drain_until: float | None = None
            while True:
                line = handle.readline()
                if line:
                    yield line
                    continue
                if self.stopping:
                    drain_until = drain_until or time.monotonic() + 1.0
                    if time.monotonic() > drain_until:
                        return
                time.sleep(0.1)
                yield ""

    def summary(self) -> str:
        text = f"captured {self.count} connect() events from audit; kernel lost {self.lost} records"
        if self.parser.error_count:
            text += f"; {self.parser.error_count} bad records skipped"
        return text


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
