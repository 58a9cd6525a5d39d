"""Zeek conn.log records -> ECS network events (the fields Elastic's Zeek integration writes)."""

from __future__ import annotations

from collections.abc import Mapping

from reconwatch.ecs.flow import FLOW, ICMP_PROBES, Flow, to_ecs
from reconwatch.ecs.network import ATTEMPTED

DATASET = "zeek.connection"
INDEX = "logs-zeek.connection-default"
# conn_state -> event.reason of the sensor's connection_result events (docs/sensor.md), for the
# states that answer a probe of the originator. S0: no reply; REJ: RST to the SYN; RSTOS0/SH:
# the originator gave up (RST or FIN) before any answer; the rest: the handshake completed.
TCP_REASONS = {
    "S0": "timeout",
    "REJ": "refused",
    "RSTOS0": "aborted",
    "SH": "aborted",
    "S1": "established",
    "SF": "established",
    "S2": "established",
    "S3": "established",
    "RSTO": "established",
    "RSTR": "established",
}
# States where the responder spoke first (backscatter, a scan of someone else seen from the
# other side) or the start was missed: no probe of the originator.
NOT_PROBES = frozenset({"RSTRH", "SHR", "OTH"})
# Fields of the record that go to ECS fields; every other one stays under zeek.connection.
_ECS_FIELDS = {
    "orig_bytes": ("source", "bytes"),
    "resp_bytes": ("destination", "bytes"),
    "orig_pkts": ("source", "packets"),
    "resp_pkts": ("destination", "packets"),
    "orig_l2_addr": ("source", "mac"),
    "resp_l2_addr": ("destination", "mac"),
}
_CONSUMED = frozenset(
    {"ts", "uid", "id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p", "proto", "service"}
    | {"duration", "conn_state", *_ECS_FIELDS}
)


def _int(value: object) -> int | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None


def _number(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        msg = f"{name} is not a number: {value!r}"
        raise ValueError(msg)
    try:
        return float(value)
    except ValueError:
        msg = f"{name} is not a number: {value!r}"
        raise ValueError(msg) from None


def _text(rec: Mapping[str, object], name: str) -> str:
    value = rec.get(name)
    if not isinstance(value, str) or not value:
        msg = f"{name} missing" if value is None else f"{name} is not an address: {value!r}"
        raise ValueError(msg)
    return value


def action_and_reason(
    proto: str | None, state: str | None, history: str | None, rec: Mapping[str, object]
) -> tuple[str, str | None]:
    """(event.action, event.reason) of a conn record: whether the originator probed, and how
    the probe was answered (the sensor's connection_result reasons)."""
    if proto == "tcp":
        if state in NOT_PROBES or (history is not None and "S" not in history):
            return FLOW, None
        return ATTEMPTED, TCP_REASONS.get(state or "")
    answered = (_int(rec.get("resp_pkts")) or 0) > 0 or state == "SF"
    if proto in ("icmp", "ipv6-icmp"):
        family = "ipv6-icmp" if ":" in str(rec.get("id.orig_h", "")) else "icmp"
        if _int(rec.get("id.orig_p")) not in ICMP_PROBES[family]:
            return FLOW, None
        return ATTEMPTED, "established" if answered else None
    if state == "SHR" or (_int(rec.get("orig_pkts")) == 0 and state != "S0"):
        return FLOW, None
    # A UDP datagram nobody answered proves nothing (open or filtered): no reason, unknown.
    return ATTEMPTED, "established" if answered else None


def conn_event(rec: Mapping[str, object]) -> dict[str, object]:
    """The ECS document of one conn.log record (JSON names: `id.orig_h`, ...), values typed
    (numbers as numbers; a TSV reader converts by the #types line). ValueError with the reason
    for a record that cannot be one (no time, no addresses)."""
    if "ts" not in rec:
        raise ValueError("ts missing")
    ts = _number(rec["ts"], "ts")
    src, dst = _text(rec, "id.orig_h"), _text(rec, "id.resp_h")
    proto = rec.get("proto")
    transport = proto.lower() if isinstance(proto, str) else None
    if transport == "icmp" and ":" in src:
        transport = "ipv6-icmp"
    state = rec.get("conn_state")
    history = rec.get("history")
    action, reason = action_and_reason(
        "tcp" if transport == "tcp" else transport,
        state if isinstance(state, str) else None,
        history if isinstance(history, str) else None,
        rec,
    )
    duration = rec.get("duration")
    flow = Flow(
        timestamp=ts,
        src_ip=src,
        dst_ip=dst,
        dataset=DATASET,
        module="zeek",
        action=action,
        transport=transport,
        src_port=_int(rec.get("id.orig_p")),
        dst_port=_int(rec.get("id.resp_p")),
        reason=reason,
        duration_ns=None
        if duration is None
        else round(_number(duration, "duration") * 1_000_000_000),
        protocol=service if isinstance(service := rec.get("service"), str) else None,
    )
    if transport in ICMP_PROBES:
        flow.icmp_type, flow.icmp_code = _int(rec.get("id.orig_p")), _int(rec.get("id.resp_p"))
    for name, (side, key) in _ECS_FIELDS.items():
        value = rec.get(name)
        if value is not None:
            target = flow.source_extra if side == "source" else flow.destination_extra
            target[key] = value
    connection = {k: v for k, v in rec.items() if k not in _CONSUMED and v is not None}
    if isinstance(state, str):
        connection["state"] = state
    zeek: dict[str, object] = {"connection": connection}
    uid = rec.get("uid")
    if isinstance(uid, str):
        zeek["session_id"] = uid
    flow.extra["zeek"] = zeek
    return to_ecs(flow)
