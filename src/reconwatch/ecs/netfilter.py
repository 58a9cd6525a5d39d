"""netfilter LOG messages (iptables, ip6tables, nftables `log`) -> ECS network events of logged packets."""

from __future__ import annotations

import ipaddress
import re

from reconwatch.ecs.flow import PROTOCOLS, Flow, probe_action, to_ecs

DATASET = "iptables.log"
INDEX = "logs-iptables.log-default"
_FIELD = re.compile(r"([A-Z][A-Z0-9]*)=(\S*)")
_KERNEL_STAMP = re.compile(r"^(?:kernel: )?\[\s*\d+\.\d+\]\s?")
_FLAGS = ("CWR", "ECE", "URG", "ACK", "PSH", "RST", "SYN", "FIN")
_FLAG_LETTERS = {"SYN": "S", "ACK": "A", "FIN": "F", "RST": "R", "PSH": "P", "URG": "U"}
# Log prefixes of rules that block (the prefix is the administrator's text, so read the words).
_BLOCKING = re.compile(r"drop|reject|deny|denied|block", re.IGNORECASE)


def is_log_message(text: str) -> bool:
    """A LOG message, or the start of one cut short (then reported, not skipped silently)."""
    return "IN=" in text and " SRC=" in text


def _ip(value: str | None, name: str) -> str:
    if not value:
        msg = f"{name}= missing"
        raise ValueError(msg)
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        msg = f"{name}={value[:45]} is not an address"
        raise ValueError(msg) from None


def _port(value: str | None) -> int | None:
    return int(value) if value is not None and value.isdigit() else None


def _transport(proto: str | None) -> str | None:
    if proto is None:
        return None
    lowered = proto.lower()
    if lowered == "icmpv6":
        return "ipv6-icmp"
    if lowered.isdigit():
        return PROTOCOLS.get(int(lowered), lowered)
    return lowered


def packet_event(message: str, timestamp: float, host: str | None) -> dict[str, object]:
    """The ECS document of one LOG message (after the syslog prefix). ValueError with the
    reason when it is not a complete one (a line cut short, no addresses)."""
    body = _KERNEL_STAMP.sub("", message)
    start = body.find("IN=")
    prefix = body[:start].strip() if start > 0 else ""
    fields = dict(_FIELD.findall(body))
    if "PROTO" not in fields or "DST" not in fields:
        raise ValueError("no DST= or PROTO= (line cut short?)")
    src, dst = _ip(fields.get("SRC"), "SRC"), _ip(fields.get("DST"), "DST")
    transport = _transport(fields.get("PROTO"))
    words = set(body[body.find("PROTO=") :].split())
    flags = [f for f in _FLAGS if f in words] if transport == "tcp" else []
    if transport == "tcp" and ("SPT" not in fields or "DPT" not in fields):
        raise ValueError("TCP without SPT=/DPT= (line cut short?)")
    icmp_type = _port(fields.get("TYPE")) if transport in ("icmp", "ipv6-icmp") else None
    flow = Flow(
        timestamp=timestamp,
        src_ip=src,
        dst_ip=dst,
        dataset=DATASET,
        module="iptables",
        action=probe_action(transport, "SYN" in flags and "ACK" not in flags, icmp_type),
        transport=transport,
        src_port=_port(fields.get("SPT")),
        dst_port=_port(fields.get("DPT")),
        tcp_flags="".join(_FLAG_LETTERS[f] for f in flags if f in _FLAG_LETTERS)
        if transport == "tcp"
        else None,
        icmp_type=icmp_type,
        icmp_code=_port(fields.get("CODE")) if icmp_type is not None else None,
    )
    blocked = bool(_BLOCKING.search(prefix))
    # A logged packet is not a connection's end: the log says only that the packet passed the
    # rule; a blocking rule's prefix says it was dropped or rejected (event.type denied).
    flow.event["type"] = ["denied"] if blocked else ["start"]
    observer: dict[str, object] = {"type": "firewall", "product": "netfilter"}
    if host:
        observer["hostname"] = host
    if fields.get("IN"):
        observer["ingress"] = {"interface": {"name": fields["IN"]}}
    if fields.get("OUT"):
        observer["egress"] = {"interface": {"name": fields["OUT"]}}
    flow.ecs["observer"] = observer
    iptables: dict[str, object] = {"blocked": blocked}
    if prefix:
        iptables["prefix"] = prefix
    for key, name in (("LEN", "length"), ("TTL", "ttl"), ("ID", "id")):
        value = _port(fields.get(key))
        if value is not None:
            iptables[name] = value
    if transport == "tcp":
        tcp: dict[str, object] = {"flags": flags}
        window = _port(fields.get("WINDOW"))
        if window is not None:
            tcp["window"] = window
        iptables["tcp"] = tcp
    flow.extra["iptables"] = iptables
    return to_ecs(flow)
