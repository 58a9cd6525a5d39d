"""Audit logs (auditd's audit.log, plain or gzip) as an event input: connect() records as ECS events."""

from __future__ import annotations

import gzip
import re
import uuid
import zlib
from collections import OrderedDict, deque
from collections.abc import Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, cast

from reconwatch.ecs.auditd import AuditParser
from reconwatch.ecs.host import HostInfo
from reconwatch.ecs.network import Connection, to_ecs
from reconwatch.errors import IngestError

if TYPE_CHECKING:
    from reconwatch.ingest.read import IngestReport

FORMAT = "auditd"
# The first record line of an audit log: auditd's `type=` (or `node=NAME type=`, name_format).
_FIRST_RECORD = re.compile(r"^(?:node=\S+\s+)?type=\S+\s+msg=audit\(\d+\.\d+:\d+\)")
_STAMP = re.compile(r"audit\((?P<sec>\d+)\.(?P<ms>\d+):\d+\)")
_NODE = re.compile(r"^node=(\S+)\s")
_PID = re.compile(r"\spid=(\d+)")
_SNIFF_BYTES = 8192
# SYSCALL lines remembered until their event completes; the parser itself holds at most 256.
_MAX_REMEMBERED = 4096
# agent.id of a log file's host: stable per host name (or file), so repeated reads agree.
_AGENT_NAMESPACE = uuid.UUID("0f6c2b4e-8e55-4a8e-9a57-5d0f0c1e7a31")


def _open(path: Path) -> IO[bytes]:
    with path.open("rb") as probe:
        magic = probe.read(2)
    if magic == b"\x1f\x8b":
        return cast("IO[bytes]", gzip.open(path, "rb"))
    return path.open("rb")


def looks_like_audit_log(path: Path) -> bool:
    """Whether the file's first non-blank line is an audit record (`type=... msg=audit(...)`)."""
    try:
        with _open(path) as fh:
            head = fh.read(_SNIFF_BYTES)
    except (OSError, EOFError, zlib.error):
        return False
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


def read_audit_log(path: Path, report: IngestReport) -> Iterator[tuple[int, dict[str, object]]]:
    """(line of the connect SYSCALL record, ECS network event) for each connect() in the log.

    Bad records are reported as file:line and skipped. event.ingested is left out: a log file
    does not say when its records were ingested, so rule windows fall back to @timestamp."""
    name = str(path)

    def on_error(exc: IngestError) -> None:
        report.errors.append(exc)

    parser = AuditParser(path=name, on_error=on_error)
    syscall_lines: OrderedDict[tuple[float, int], deque[int]] = OrderedDict()
    host: HostInfo | None = None
    lineno = 0
    try:
        fh = _open(path)
    except OSError as exc:
        report.add(f"cannot read file: {exc.strerror or exc}", name, None)
        return
    with fh:
        try:
            for raw in fh:
                lineno += 1
                text = raw.decode("utf-8", "replace")
                if host is None and text.strip():
                    node = _NODE.match(text)
                    host = _host(path, node.group(1) if node else None)
                key = _syscall_key(text)
                if key is not None:
                    syscall_lines.setdefault(key, deque()).append(lineno)
                    if len(syscall_lines) > _MAX_REMEMBERED:
                        syscall_lines.popitem(last=False)
                for conn in parser.feed(text, lineno):
                    yield (
                        _line(conn, syscall_lines, lineno),
                        _event(conn, host or _host(path, None)),
                    )
        except (OSError, EOFError, zlib.error) as exc:
            report.add(f"unreadable compressed data after this line: {exc}", name, lineno)
    for conn in parser.flush():
        yield _line(conn, syscall_lines, lineno), _event(conn, host or _host(path, None))


def _line(conn: Connection, lines: dict[tuple[float, int], deque[int]], fallback: int) -> int:
    queue = lines.get((conn.timestamp, conn.pid))
    return queue.popleft() if queue else fallback


def _event(conn: Connection, host: HostInfo) -> dict[str, object]:
    doc = to_ecs(conn, host, ingested=conn.timestamp)
    event = doc["event"]
    assert isinstance(event, dict)
    del event["ingested"]
    return doc
