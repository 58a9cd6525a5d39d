"""What the native detectors read of a network event: one attempt or outcome of one process towards one internal destination."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from reconwatch.backends.stream.cells import iso_millis
from reconwatch.plan.values import ConversionError, datetime_to_millis, parse_datetime

ATTEMPT = "connection_attempted"
RESULT = "connection_result"
# The recon pack's internal space: RFC 1918, carrier-grade NAT, IPv6 unique local addresses.
INTERNAL = tuple(
    ipaddress.ip_network(n)
    for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "fc00::/7")
)
# The fields a detector reads (detect keeps only these of the events it reads).
FIELDS = (
    "@timestamp",
    "event.action",
    "event.outcome",
    "event.reason",
    "host.id",
    "host.name",
    "process.executable",
    "process.name",
    "process.entity_id",
    "destination.ip",
    "destination.port",
    "network.transport",
)
_INTERNAL_CACHE: dict[str, bool] = {}
_CACHE_LIMIT = 1 << 16


@dataclass(frozen=True, slots=True)
class Contact:
    """One attempt (`outcome` None) or one outcome (`success` True/False) of a process's
    connection to an internal address."""

    time_ms: int
    host_id: str
    host_name: str
    executable: str
    name: str
    entity_id: str
    ip: str
    port: int | None
    transport: str
    result: bool  # an outcome event (connection_result), not an attempt
    success: bool | None
    reason: str | None

    @property
    def group(self) -> tuple[str, str]:
        return (self.host_id, self.executable)

    @property
    def pair(self) -> str:
        return f"{self.ip} {self.port if self.port is not None else '-'}/{self.transport}"


def is_internal(ip: str) -> bool:
    """Whether `ip` is in the internal space (cached: the same addresses come again and again)."""
    known = _INTERNAL_CACHE.get(ip)
    if known is not None:
        return known
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return False
    inside = any(addr.version == n.version and addr in n for n in INTERNAL)
    if len(_INTERNAL_CACHE) >= _CACHE_LIMIT:
        _INTERNAL_CACHE.clear()
    _INTERNAL_CACHE[ip] = inside
    return inside


def _one(value: object) -> object:
    if type(value) is list or isinstance(value, list | tuple):
        return value[0] if value else None
    return value


def _text(value: object) -> str | None:
    value = _one(value)
    return value if type(value) is str else None if value is None else str(value)


def _millis(value: object) -> int | None:
    value = _one(value)
    if isinstance(value, str):
        fast = iso_millis(value)  # the usual spelling, without building a datetime
        if fast is not None:
            return fast
        try:
            return datetime_to_millis(parse_datetime(value))
        except ConversionError:
            return None
    if isinstance(value, datetime):
        return datetime_to_millis(value)
    return None


def contact_of(event: Mapping[str, object]) -> Contact | None:
    """The contact a flattened event (dotted keys) or a query row is, or None for an event the
    detectors do not read (another action, an external or missing destination, no process)."""
    get = event.get
    actions = get("event.action")
    names = actions if isinstance(actions, list | tuple) else [actions]
    result = RESULT in names
    if not result and ATTEMPT not in names:
        return None
    ip = _text(get("destination.ip"))
    executable = _text(get("process.executable"))
    host = _text(get("host.id")) or _text(get("host.name"))
    if ip is None or executable is None or host is None or not is_internal(ip):
        return None
    time_ms = _millis(get("@timestamp"))
    if time_ms is None:
        return None
    port = _one(get("destination.port"))
    outcome = _text(get("event.outcome")) if result else None
    return Contact(
        time_ms,
        host,
        _text(get("host.name")) or host,
        executable,
        _text(get("process.name")) or executable.rsplit("/", 1)[-1],
        _text(get("process.entity_id")) or "",
        ip,
        int(port) if isinstance(port, int | float) and not isinstance(port, bool) else None,
        _text(get("network.transport")) or "tcp",
        result,
        (outcome == "success") if outcome in ("success", "failure") else None,
        _text(get("event.reason")),
    )
