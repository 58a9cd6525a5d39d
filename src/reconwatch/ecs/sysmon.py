"""Sysmon for Linux network connection events (Event ID 3, XML as written to syslog) -> ECS network events."""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from reconwatch.ecs.flow import Flow, to_ecs
from reconwatch.ecs.network import ACCEPTED, ATTEMPTED

if TYPE_CHECKING:
    import xml.etree.ElementTree as ET

DATASET = "sysmon_linux.log"
INDEX = "logs-sysmon_linux.log-default"
NETWORK_CONNECT = "3"
_NS = "{http://schemas.microsoft.com/win/2004/08/events/event}"


def _strip(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _fields(event: ET.Element) -> tuple[dict[str, str], dict[str, str]]:
    """(System's children and attributes, EventData's Data by Name)."""
    system: dict[str, str] = {}
    data: dict[str, str] = {}
    for child in event:
        name = _strip(child.tag)
        if name == "System":
            for item in child:
                key = _strip(item.tag)
                system[key] = (item.text or "").strip()
                for attr, value in item.attrib.items():
                    system[f"{key}.{attr}"] = value
        elif name == "EventData":
            for item in child:
                if "Name" in item.attrib:
                    data[item.attrib["Name"]] = (item.text or "").strip()
    return system, data


def _ip(value: str | None, name: str) -> str:
    try:
        return str(ipaddress.ip_address(value or ""))
    except ValueError:
        msg = f"{name} {value!r} is not an address"
        raise ValueError(msg) from None


def _port(value: str | None) -> int | None:
    return int(value) if value and value.isdigit() else None


def _utc(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value).replace(tzinfo=UTC).timestamp()
    except ValueError:
        return None


def connect_event(xml: str, fallback_time: float | None) -> dict[str, object] | None:
    """The ECS document of an Event ID 3; None for the other event ids. ValueError for XML that
    is cut short or an event without addresses. `fallback_time`: the syslog line's stamp, used
    when the event's UtcTime is missing."""
    # Loaded here: the format registry imports this module for every input it sniffs.
    import xml.etree.ElementTree as ET

    if "<!DOCTYPE" in xml or "<!ENTITY" in xml:
        raise ValueError("XML with a DTD is refused")
    try:
        root = ET.fromstring(xml)
    except ET.ParseError as exc:
        msg = f"not XML (cut short?): {exc}"
        raise ValueError(msg) from None
    system, data = _fields(root)
    if system.get("EventID") != NETWORK_CONNECT:
        return None
    stamp = _utc(data.get("UtcTime")) or fallback_time
    if stamp is None:
        raise ValueError("no UtcTime and no syslog time stamp")
    initiated = data.get("Initiated", "true").lower() == "true"
    local = (_ip(data.get("SourceIp"), "SourceIp"), _port(data.get("SourcePort")))
    remote = (_ip(data.get("DestinationIp"), "DestinationIp"), _port(data.get("DestinationPort")))
    # Sysmon writes the local end as Source; an accepted connection's source is the peer.
    (src, sport), (dst, dport) = (local, remote) if initiated else (remote, local)
    flow = Flow(
        timestamp=stamp,
        src_ip=src,
        dst_ip=dst,
        dataset=DATASET,
        module="sysmon_linux",
        action=ATTEMPTED if initiated else ACCEPTED,
        transport=(data.get("Protocol") or "").lower() or None,
        src_port=sport,
        dst_port=dport,
    )
    flow.event["code"] = NETWORK_CONNECT
    process: dict[str, object] = {}
    if data.get("Image"):
        process["executable"] = data["Image"]
        process["name"] = data["Image"].rsplit("/", 1)[-1]
    if _port(data.get("ProcessId")) is not None:
        process["pid"] = _port(data.get("ProcessId"))
    if data.get("ProcessGuid"):
        process["entity_id"] = data["ProcessGuid"].strip("{}")
    if process:
        flow.ecs["process"] = process
    if data.get("User"):
        flow.ecs["user"] = {"name": data["User"]}
    host: dict[str, object] = {"os": {"type": "linux"}}
    if system.get("Computer"):
        host["name"] = host["hostname"] = system["Computer"]
    flow.ecs["host"] = host
    flow.extra["sysmon"] = {
        k: v
        for k, v in data.items()
        if k.endswith("Hostname") or k.endswith("PortName") or k == "RuleName"
    }
    doc = to_ecs(flow)
    network = doc["network"]
    assert isinstance(network, dict)
    network["direction"] = "egress" if initiated else "ingress"
    return doc
