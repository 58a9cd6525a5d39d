"""The observer of an event: the host.* and agent.* fields (the values come from the sensor or a log file)."""

from __future__ import annotations

from dataclasses import field

from reconwatch import __version__ as _pkg_version
from reconwatch.records import record

AGENT_TYPE = "reconwatch-sensor"


@record
class HostInfo:
    """The host.* and agent.* fields stamped on every event."""

    name: str
    hostname: str
    id: str
    ip: tuple[str, ...] = ()
    os: dict[str, str] = field(default_factory=lambda: {"type": "linux"})
    agent_id: str = ""
    agent_version: str = _pkg_version

    def host_doc(self) -> dict[str, object]:
        doc: dict[str, object] = {"name": self.name, "hostname": self.hostname, "id": self.id}
        if self.ip:
            doc["ip"] = list(self.ip)
        doc["os"] = dict(self.os)
        return doc

    def agent_doc(self) -> dict[str, object]:
        return {"id": self.agent_id, "type": AGENT_TYPE, "version": self.agent_version}
