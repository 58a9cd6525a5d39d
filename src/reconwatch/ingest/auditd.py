"""Audit logs (auditd's audit.log, plain or gzip) as an event input: connect() records as ECS events."""

from __future__ import annotations

import re
import uuid
from collections import OrderedDict, deque
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from reconwatch.errors import IngestError
from reconwatch.ingest.lines import read_lines

if TYPE_CHECKING:
    from reconwatch.ecs.host import HostInfo
    from reconwatch.ecs.network import Connection
    from reconwatch.ingest.head import Head
    from reconwatch.ingest.report import IngestReport

FORMAT = "auditd"
# The first record line of an audit log: auditd's `type=` (or `node=NAME type=`, name_format).
_FIRST_RECORD = re.compile(r"^(?:node=\S+\s+)?type=\S+\s+msg=audit\(\d+\.\d+:\d+\)")
# bounded like ecs.auditd's header, which decides whether the record is read at all
_STAMP = re.compile(r"audit\((?P<sec>\d{1,10})\.(?P<ms>\d{1,9}):\d{1,20}\)")
_NODE = re.compile(r"^node=(\S+)\s")
_PID = re.compile(r"\spid=(\d{1,20})\b")
# Sniffing looks at the first non-blank line within this many bytes.
_SNIFF_BYTES = 8192
# SYSCALL lines remembered until their event completes; the parser itself holds at most 256.
_MAX_REMEMBERED = 4096
# agent.id of a log file's host: stable per host name (or file), so repeated reads agree.
_AGENT_NAMESPACE = uuid.UUID("0f6c2b4e-8e55-4a8e-9a57-5d0f0c1e7a31")


def sniff(head: Head) -> bool:
    """The input-format registry's test: the head's first non-blank line is an audit record."""
    return _first_is_record(head.data[:_SNIFF_BYTES])


def _first_is_record(head: bytes) -> bool:
    for raw in head.splitlines():
        line = raw.decode("utf-8", "replace").strip()
        if line:
            return _FIRST_RECORD.match(line) is not None
    return False


def _host(path: Path, node: str | None) -> HostInfo:
    """host.* and agent.* for a log file: a file says neither, except auditd's optional `node=`.

    auditd runs on Linux only, so host.os.type is known; host.name is the node name, else the
    file name; agent.id is derived from the node name, else from the file's absolute path."""
    name = node or path.name
    key = f"node:{node}" if node else f"file:{path.resolve()}"
    agent_id = str(uuid.uuid5(_AGENT_NAMESPACE, key))
    from reconwatch.ecs.host import HostInfo

    return HostInfo(name=name, hostname=name, id=agent_id, agent_id=agent_id)


def _syscall_key(text: str) -> tuple[float, int] | None:
    """(timestamp, pid) of a SYSCALL record, as the parser computes them for its Connection."""
    if "SYSCALL" not in text and "type=1300" not in text:
        return None
    stamp, pid = _STAMP.search(text), _PID.search(text)
    if stamp is None or pid is None:
        return None
    sec, ms = stamp.group("sec"), stamp.group("ms")
    return int(sec) + int(ms) / 10 ** len(ms), int(pid.group(1))


class AuditLines:
    """One audit log read line by line (a file, or a followed file as it grows): each line in,
    the ECS network events of the connect() records it completes out, as (line of the connect
    SYSCALL record, event). Bad records go to `report` as file:line."""

    def __init__(self, path: Path, report: IngestReport) -> None:
        self.path = path

        def on_error(exc: IngestError) -> None:
            report.errors.append(exc)

        # The parser and the ECS mapping (~5 ms of imports) load only when an audit log is read,
        # not whenever the format registry sniffs an input.
        from reconwatch.ecs.auditd import AuditParser

        self.parser = AuditParser(path=str(path), on_error=on_error)
        self.syscall_lines: OrderedDict[tuple[float, int], deque[int]] = OrderedDict()
        self.host: HostInfo | None = None
        self.last = 0

    def feed(self, raw: bytes, lineno: int) -> list[tuple[int, dict[str, object]]]:
        self.last = lineno
        text = raw.decode("utf-8", "replace")
        if self.host is None and text.strip():
            node = _NODE.match(text)
            self.host = _host(self.path, node.group(1) if node else None)
        key = _syscall_key(text)
        if key is not None:
            self.syscall_lines.setdefault(key, deque()).append(lineno)
            if len(self.syscall_lines) > _MAX_REMEMBERED:
                self.syscall_lines.popitem(last=False)
        return [self._pair(conn) for conn in self.parser.feed(text, lineno)]

    def flush(self) -> list[tuple[int, dict[str, object]]]:
        """The events still pending at the end of the input."""
        return [self._pair(conn) for conn in self.parser.flush()]

    def _pair(self, conn: Connection) -> tuple[int, dict[str, object]]:
        host = self.host or _host(self.path, None)
        return _line(conn, self.syscall_lines, self.last), _event(conn, host)


def read_audit_log(path: Path, report: IngestReport) -> Iterator[tuple[int, dict[str, object]]]:
    """(line of the connect SYSCALL record, ECS network event) for each connect() in the log.

    Bad records are reported as file:line and skipped. event.ingested is left out: a log file
    does not say when its records were ingested, so rule windows fall back to @timestamp."""
    yield from read_lines(path, report, AuditLines(path, report))


def read_audit_log_events(path: Path, report: IngestReport) -> Iterator[tuple[int, object]]:
    """read_audit_log as the input-format registry's reader."""
    yield from read_audit_log(path, report)


def _line(conn: Connection, lines: dict[tuple[float, int], deque[int]], fallback: int) -> int:
    queue = lines.get((conn.timestamp, conn.pid))
    return queue.popleft() if queue else fallback


def _event(conn: Connection, host: HostInfo) -> dict[str, object]:
    from reconwatch.ecs.network import to_ecs

    doc = to_ecs(conn, host, ingested=conn.timestamp)
    event = doc["event"]
    assert isinstance(event, dict)
    del event["ingested"]
    return doc
