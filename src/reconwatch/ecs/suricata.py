"""Suricata EVE JSON `flow` events (and `alert` events, as context) -> ECS network events."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

from reconwatch.ecs.flow import FLOW, Flow, probe_action, to_ecs
from reconwatch.ecs.network import ATTEMPTED

DATASET = "suricata.eve"
INDEX = "logs-suricata.eve-default"
_SYN, _RST, _ACK = 0x02, 0x04, 0x10
KINDS = ("flow", "alert")


def _time(value: object) -> float:
    if not isinstance(value, str):
        raise ValueError("timestamp missing")
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        msg = f"timestamp {value[:40]!r} is not an ISO time"
        raise ValueError(msg) from None
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _flags(tcp: Mapping[str, object], key: str) -> int:
    value = tcp.get(key)
    if isinstance(value, str):
        try:
            return int(value, 16)
        except ValueError:
            return 0
    return 0


def _transport(proto: object) -> str | None:
    if not isinstance(proto, str):
        return None
    lowered = proto.lower()
    return "ipv6-icmp" if lowered == "ipv6-icmp" or lowered == "icmpv6" else lowered


def _reason(transport: str | None, tcp: Mapping[str, object], to_client: int) -> str | None:
    """The outcome of the flow's first packet, as the sensor's connection_result names it."""
    if transport == "tcp":
        answer = _flags(tcp, "tcp_flags_tc")
        if answer & (_SYN | _ACK) == _SYN | _ACK:
            return "established"
        if answer & _RST:
            return "refused"
        return "timeout" if to_client == 0 else None
    return "established" if to_client > 0 else None


def eve_event(rec: Mapping[str, object]) -> dict[str, object] | None:
    """The ECS document of a flow or alert record; None for other event types. ValueError for
    a flow or alert record without time or addresses."""
    kind = rec.get("event_type")
    if kind not in KINDS:
        return None
    src, dst = rec.get("src_ip"), rec.get("dest_ip")
    if not isinstance(src, str) or not isinstance(dst, str):
        raise ValueError("src_ip/dest_ip missing")
    flow_doc = rec.get("flow") if isinstance(rec.get("flow"), dict) else {}
    assert isinstance(flow_doc, dict)
    tcp = rec.get("tcp") if isinstance(rec.get("tcp"), dict) else {}
    assert isinstance(tcp, dict)
    transport = _transport(rec.get("proto"))
    to_client = _int(flow_doc.get("pkts_toclient")) or 0
    icmp_type = _int(rec.get("icmp_type"))
    start = flow_doc.get("start") if kind == "flow" else None
    flow = Flow(
        timestamp=_time(start or rec.get("timestamp")),
        src_ip=src,
        dst_ip=dst,
        dataset=DATASET,
        module="suricata",
        transport=transport,
        src_port=_int(rec.get("src_port")),
        dst_port=_int(rec.get("dest_port")),
        icmp_type=icmp_type,
        icmp_code=_int(rec.get("icmp_code")),
        protocol=app if isinstance(app := rec.get("app_proto"), str) else None,
    )
    syn = bool(_flags(tcp, "tcp_flags_ts") & _SYN) if tcp else flow_doc.get("state") == "new"
    if kind == "flow":
        flow.action = probe_action(transport, syn or transport != "tcp", icmp_type)
        flow.reason = _reason(transport, tcp, to_client) if flow.action == ATTEMPTED else None
        for side, key in (("source", "toserver"), ("destination", "toclient")):
            target = flow.source_extra if side == "source" else flow.destination_extra
            for unit in ("pkts", "bytes"):
                value = _int(flow_doc.get(f"{unit}_{key}"))
                if value is not None:
                    target["packets" if unit == "pkts" else "bytes"] = value
    else:
        flow.action, flow.kind = FLOW, "alert"
        alert = rec.get("alert") if isinstance(rec.get("alert"), dict) else {}
        assert isinstance(alert, dict)
        rule = {
            k: alert[v]
            for k, v in (("name", "signature"), ("id", "signature_id"), ("category", "category"))
            if v in alert
        }
        if rule:
            flow.ecs["rule"] = rule
    eve = {k: rec[k] for k in ("flow_id", "event_type", "in_iface", "community_id") if k in rec}
    for key in ("flow", "alert", "tcp"):
        if isinstance(rec.get(key), dict):
            eve[key] = rec[key]
    flow.extra["suricata"] = {"eve": eve}
    return to_ecs(flow)
