"""Decoded packets -> probe and outcome events, the way Zeek summarises connections (one event each, not one per packet)."""

from __future__ import annotations

from collections import OrderedDict

from reconwatch.ecs.flow import ICMP_PROBES, Flow, to_ecs
from reconwatch.ecs.network import ATTEMPTED, RESULT
from reconwatch.records import record

DATASET = "network_traffic.flow"
INDEX = "logs-network_traffic.flow-default"
MODULE = "network_traffic"
# Probes remembered until answered (oldest forgotten first): bounds memory on a long capture.
MAX_PENDING = 1 << 20
_ICMP_REPLIES = {"icmp": {0: 8, 14: 13, 16: 15, 18: 17}, "ipv6-icmp": {129: 128}}
# Destination unreachable: (type, code that means "port unreachable") per ICMP version.
_UNREACHABLE = {"icmp": (3, 3), "ipv6-icmp": (1, 4)}
_FLAG_LETTERS = (("F", 0x01), ("S", 0x02), ("R", 0x04), ("P", 0x08), ("A", 0x10), ("U", 0x20))


@record
class Packet:
    """What the summariser needs of one IP packet. For an ICMP error, `inner` is the packet it
    quotes (the probe that failed)."""

    timestamp: float
    src: str
    dst: str
    transport: str
    sport: int | None = None
    dport: int | None = None
    tcp_flags: int = 0
    icmp_type: int | None = None
    icmp_code: int | None = None
    icmp_id: int | None = None
    inner: Packet | None = None


Key = tuple[str, int | None, str, int | None, str]


def flag_letters(flags: int) -> str:
    return "".join(letter for letter, bit in _FLAG_LETTERS if flags & bit)


class PacketSummary:
    """Feeds packets in capture order, yields ECS events: one ATTEMPTED per probe (a TCP SYN
    without ACK, a UDP datagram, an ICMP echo; repeats of one are one probe) and one RESULT per
    answer seen (SYN-ACK: established; RST to a SYN: refused; a reply datagram or echo reply:
    established; ICMP unreachable: refused for a port, else unreachable). A SYN-ACK nobody's SYN
    was seen for (backscatter) is still an outcome event, but no probe."""

    def __init__(self, max_pending: int = MAX_PENDING) -> None:
        self.pending: OrderedDict[Key, bool] = OrderedDict()  # probe -> answered
        self.max_pending = max_pending
        self.answered_unseen: OrderedDict[Key, None] = OrderedDict()

    def feed(self, pkt: Packet) -> list[dict[str, object]]:
        if pkt.transport == "tcp":
            return self._tcp(pkt)
        if pkt.transport in ICMP_PROBES:
            return self._icmp(pkt)
        return self._datagram(pkt)

    def _remember(self, key: Key) -> bool:
        """Whether `key` is a new probe (then remembered)."""
        if key in self.pending:
            return False
        self.pending[key] = False
        if len(self.pending) > self.max_pending:
            self.pending.popitem(last=False)
        return True

    def _answer(self, key: Key) -> bool:
        """Whether this answers probe `key` for the first time (a pending one, or one not seen)."""
        answered = self.pending.get(key)
        if answered is None:
            if key in self.answered_unseen:
                return False
            self.answered_unseen[key] = None
            if len(self.answered_unseen) > self.max_pending:
                self.answered_unseen.popitem(last=False)
            return True
        if answered:
            return False
        self.pending[key] = True
        return True

    def _tcp(self, pkt: Packet) -> list[dict[str, object]]:
        syn, ack, rst = pkt.tcp_flags & 0x02, pkt.tcp_flags & 0x10, pkt.tcp_flags & 0x04
        key: Key = (pkt.src, pkt.sport, pkt.dst, pkt.dport, "tcp")
        reverse: Key = (pkt.dst, pkt.dport, pkt.src, pkt.sport, "tcp")
        if syn and not ack and not rst:
            return [self._event(pkt, ATTEMPTED, None)] if self._remember(key) else []
        if syn and ack:
            return [self._reply(pkt, "established")] if self._answer(reverse) else []
        if rst and self.pending.get(reverse) is False:
            self.pending[reverse] = True
            return [self._reply(pkt, "refused")]
        return []

    def _datagram(self, pkt: Packet) -> list[dict[str, object]]:
        key: Key = (pkt.src, pkt.sport, pkt.dst, pkt.dport, pkt.transport)
        reverse: Key = (pkt.dst, pkt.dport, pkt.src, pkt.sport, pkt.transport)
        if reverse in self.pending:
            return [self._reply(pkt, "established")] if self._answer(reverse) else []
        return [self._event(pkt, ATTEMPTED, None)] if self._remember(key) else []

    def _icmp(self, pkt: Packet) -> list[dict[str, object]]:
        kind = pkt.transport
        if pkt.icmp_type in ICMP_PROBES[kind]:
            key: Key = (pkt.src, pkt.icmp_id, pkt.dst, pkt.icmp_type, kind)
            return [self._event(pkt, ATTEMPTED, None)] if self._remember(key) else []
        request = _ICMP_REPLIES[kind].get(pkt.icmp_type or -1)
        if request is not None:
            reverse: Key = (pkt.dst, pkt.icmp_id, pkt.src, request, kind)
            return [self._reply(pkt, "established")] if self._answer(reverse) else []
        unreachable, port_code = _UNREACHABLE[kind]
        if pkt.icmp_type == unreachable and pkt.inner is not None:
            return self._unreachable(
                pkt, pkt.inner, "refused" if pkt.icmp_code == port_code else "unreachable"
            )
        return []

    def _unreachable(self, pkt: Packet, probe: Packet, reason: str) -> list[dict[str, object]]:
        if probe.transport in ICMP_PROBES:
            key: Key = (probe.src, probe.icmp_id, probe.dst, probe.icmp_type, probe.transport)
        else:
            key = (probe.src, probe.sport, probe.dst, probe.dport, probe.transport)
        if not self._answer(key):
            return []
        flow = _flow(probe, RESULT, reason, pkt.timestamp)
        flow.icmp_type, flow.icmp_code = pkt.icmp_type, pkt.icmp_code
        flow.extra["network_traffic"] = {"answered_by": pkt.src}
        return [to_ecs(flow)]

    @staticmethod
    def _event(pkt: Packet, action: str, reason: str | None) -> dict[str, object]:
        return to_ecs(_flow(pkt, action, reason, pkt.timestamp))

    @staticmethod
    def _reply(pkt: Packet, reason: str) -> dict[str, object]:
        """The outcome of the probe this packet answers: source and destination are the probe's."""
        probe = Packet(
            pkt.timestamp,
            pkt.dst,
            pkt.src,
            pkt.transport,
            pkt.dport,
            pkt.sport,
            pkt.tcp_flags,
            pkt.icmp_type,
            pkt.icmp_code,
            pkt.icmp_id,
        )
        return to_ecs(_flow(probe, RESULT, reason, pkt.timestamp))


def _flow(pkt: Packet, action: str, reason: str | None, timestamp: float) -> Flow:
    icmp = pkt.transport in ICMP_PROBES
    return Flow(
        timestamp=timestamp,
        src_ip=pkt.src,
        dst_ip=pkt.dst,
        dataset=DATASET,
        module=MODULE,
        action=action,
        transport=pkt.transport,
        src_port=None if icmp else pkt.sport,
        dst_port=None if icmp else pkt.dport,
        reason=reason,
        tcp_flags=flag_letters(pkt.tcp_flags) if pkt.transport == "tcp" else None,
        icmp_type=pkt.icmp_type if icmp else None,
        icmp_code=pkt.icmp_code if icmp else None,
    )
