"""osquery `socket_events` results (its results log, event or snapshot rows) -> ECS network events."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping

from reconwatch.ecs.flow import PROTOCOLS, Flow, to_ecs
from reconwatch.ecs.network import ACCEPTED, ATTEMPTED

DATASET = "osquery_manager.result"
INDEX = "logs-osquery_manager.result-default"
# socket_events.status of a connect() -> the sensor's connection_result reasons.
_STATUS = {"succeeded": "established", "failed": "error", "in_progress": None}
_ACTIONS = {"connect": ATTEMPTED, "accept": ACCEPTED}


def _int(value: object) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lstrip("-").isdigit():
        return int(value)
    return None


def _ip(value: object, name: str) -> str:
    try:
        return str(ipaddress.ip_address(str(value)))
    except ValueError:
        msg = f"{name} {str(value)[:45]!r} is not an address"
        raise ValueError(msg) from None


def socket_event(
    row: Mapping[str, object], when: float, host: str | None
) -> dict[str, object] | None:
    """The ECS document of one socket_events row; None for actions other than connect and
    accept, and for sockets that are not inet (unix, netlink)."""
    action = _ACTIONS.get(str(row.get("action", "")))
    if action is None or _int(row.get("family")) not in (2, 10):
        return None
    local = (_ip(row.get("local_address"), "local_address"), _int(row.get("local_port")))
    remote = (_ip(row.get("remote_address"), "remote_address"), _int(row.get("remote_port")))
    (src, sport), (dst, dport) = (local, remote) if action == ATTEMPTED else (remote, local)
    proto = _int(row.get("protocol"))
    stamp = _int(row.get("time"))
    flow = Flow(
        timestamp=float(stamp) if stamp else when,
        src_ip=src,
        dst_ip=dst,
        dataset=DATASET,
        module="osquery",
        action=action,
        transport=PROTOCOLS.get(proto) if proto else None,
        src_port=sport or None,
        dst_port=dport,
        reason=_STATUS.get(str(row.get("status", ""))) if action == ATTEMPTED else None,
    )
    process: dict[str, object] = {}
    pid = _int(row.get("pid"))
    if pid is not None:
        process["pid"] = pid
    path = row.get("path")
    if isinstance(path, str) and path:
        process["executable"] = path
        process["name"] = path.rsplit("/", 1)[-1]
    if process:
        flow.ecs["process"] = process
    flow.ecs["host"] = {"os": {"type": "linux"}, **({"name": host} if host else {})}
    auid = _int(row.get("auid"))
    if auid is not None:
        flow.ecs["user"] = {"audit": {"id": str(auid)}}
    flow.extra["osquery"] = {
        "socket_events": {k: row[k] for k in ("status", "fd", "uptime") if k in row}
    }
    return to_ecs(flow)


def result_events(rec: Mapping[str, object]) -> list[dict[str, object]]:
    """The ECS documents of one results-log line: an event row (`columns`) or a snapshot.
    ValueError for a line that is no socket_events result."""
    when = _int(rec.get("unixTime"))
    if when is None:
        raise ValueError("unixTime missing")
    host = rec.get("hostIdentifier")
    host_name = host if isinstance(host, str) else None
    rows: list[object]
    if isinstance(rec.get("columns"), dict):
        if rec.get("action") == "removed":
            return []
        rows = [rec["columns"]]
    elif isinstance(rec.get("snapshot"), list):
        rows = list(rec["snapshot"])  # type: ignore[call-overload]
    else:
        raise ValueError("neither columns nor snapshot")
    out = []
    for row in rows:
        if isinstance(row, dict):
            event = socket_event(row, float(when), host_name)
            if event is not None:
                out.append(event)
    return out
