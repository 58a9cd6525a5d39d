"""Packet captures (pcap, pcapng; read with dpkt) as an event input: probes and their outcomes."""

from __future__ import annotations

import functools
import importlib.util
import socket
import struct
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    from reconwatch.ecs.packets import Packet
    from reconwatch.ingest.head import Head
    from reconwatch.ingest.report import IngestReport


def _lazy(name: str) -> ModuleType:
    """`name` imported on first use: the format registry imports this module to sniff every
    input, and dpkt's import costs as much CPU as `import duckdb` for a query that reads no pcap."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None:
        raise ModuleNotFoundError(name)
    spec.loader = importlib.util.LazyLoader(spec.loader)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


dpkt: Any = _lazy("dpkt")

FORMAT = "pcap"
_PCAP_MAGIC = (b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\xc3\xd4", b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d")
_PCAPNG_MAGIC = b"\x0a\x0d\x0d\x0a"


@functools.cache
def _decode_errors() -> tuple[type[Exception], ...]:
    """What dpkt raises for a record or a header it cannot decode."""
    return (dpkt.UnpackError, dpkt.NeedData, struct.error, ValueError, IndexError)


def sniff(head: Head) -> bool:
    return head.raw[:4] in _PCAP_MAGIC or head.raw[:4] == _PCAPNG_MAGIC


def _ethernet(buf: bytes) -> Any:
    return dpkt.ethernet.Ethernet(buf).data


def _raw(buf: bytes) -> Any:
    version = buf[0] >> 4 if buf else 0
    return dpkt.ip6.IP6(buf) if version == 6 else dpkt.ip.IP(buf)


def _sll(buf: bytes) -> Any:
    return dpkt.sll.SLL(buf).data


def _sll2(buf: bytes) -> Any:
    return dpkt.sll2.SLL2(buf).data


def _loopback(buf: bytes) -> Any:
    return dpkt.loopback.Loopback(buf).data


# pcap link types (LINKTYPE_*) -> the decoder that finds the IP packet in a frame.
_LINKS: dict[int, Callable[[bytes], Any]] = {
    1: _ethernet,
    0: _loopback,
    108: _loopback,
    12: _raw,
    14: _raw,
    101: _raw,
    228: _raw,
    229: _raw,
    113: _sll,
    276: _sll2,
}


def _address(raw: bytes) -> str:
    return socket.inet_ntop(socket.AF_INET6 if len(raw) == 16 else socket.AF_INET, raw)


def decode_ip(ts: float, ip: Any, inner: bool = False) -> Packet | None:
    """A Packet of an IPv4/IPv6 packet (dpkt), None for anything else."""
    # The ECS side is loaded with the first packet: the registry imports this module to sniff.
    from reconwatch.ecs.flow import PROTOCOLS
    from reconwatch.ecs.packets import Packet

    if isinstance(ip, dpkt.ip.IP):
        proto = ip.p
    elif isinstance(ip, dpkt.ip6.IP6):
        proto = ip.nxt
    else:
        return None
    src, dst = _address(ip.src), _address(ip.dst)
    transport = PROTOCOLS.get(proto, str(proto))
    body = ip.data
    if isinstance(body, dpkt.tcp.TCP):
        return Packet(ts, src, dst, "tcp", body.sport, body.dport, body.flags)
    if isinstance(body, dpkt.udp.UDP):
        return Packet(ts, src, dst, "udp", body.sport, body.dport)
    if isinstance(body, dpkt.icmp.ICMP | dpkt.icmp6.ICMP6):
        return _icmp(ts, src, dst, transport, body, inner)
    if inner and isinstance(body, bytes) and transport in ("tcp", "udp") and len(body) >= 4:
        # An ICMP error quotes only 8 bytes of the probe: dpkt leaves a short TCP header undecoded.
        sport, dport = struct.unpack("!HH", body[:4])
        return Packet(ts, src, dst, transport, sport, dport)
    return Packet(ts, src, dst, transport)


def _icmp(ts: float, src: str, dst: str, transport: str, body: Any, inner: bool) -> Packet:
    from reconwatch.ecs.packets import Packet

    ident = None
    quoted = None
    data = body.data
    if isinstance(data, dpkt.icmp.ICMP.Echo | dpkt.icmp6.ICMP6.Echo):
        ident = data.id
    elif not inner and isinstance(getattr(data, "data", None), bytes | dpkt.Packet):
        quoted = _quoted(ts, data.data, transport)
    return Packet(
        ts,
        src,
        dst,
        transport,
        icmp_type=body.type,
        icmp_code=body.code,
        icmp_id=ident,
        inner=quoted,
    )


def _quoted(ts: float, data: Any, transport: str) -> Packet | None:
    if isinstance(data, dpkt.Packet):
        return decode_ip(ts, data, inner=True)
    try:
        ip = dpkt.ip6.IP6(data) if transport == "ipv6-icmp" else dpkt.ip.IP(data)
    except _decode_errors():
        return None
    return decode_ip(ts, ip, inner=True)


class _Tracked:
    """The capture file as dpkt reads it, noting a read cut short by the end of the file: dpkt
    yields a truncated last packet as if it were whole."""

    def __init__(self, fh: IO[bytes]) -> None:
        self.fh = fh
        self.name = fh.name
        self.short = False

    def read(self, size: int = -1) -> bytes:
        data = self.fh.read(size)
        if size > 0 and 0 < len(data) < size:
            self.short = True
        return data

    def seek(self, offset: int, whence: int = 0) -> int:
        return self.fh.seek(offset, whence)

    def tell(self) -> int:
        return self.fh.tell()


def read_pcap(path: Path, report: IngestReport) -> Iterator[tuple[int, object]]:
    """(packet number, ECS event) for each probe and outcome in the capture. A packet that
    cannot be decoded is reported by number and skipped; a capture cut short is read up to
    its last whole packet."""
    name = str(path)
    try:
        fh = path.open("rb")
    except OSError as exc:
        report.add(f"cannot read file: {exc.strerror or exc}", name, None)
        return
    with fh:
        tracked = _Tracked(fh)
        try:
            reader = dpkt.pcap.UniversalReader(tracked)
        except _decode_errors() as exc:
            report.add(f"not a readable capture: {exc or type(exc).__name__}", name, None)
            return
        if tracked.short:
            report.add("not a readable capture: its file header is cut short", name, None)
            return
        link = _LINKS.get(reader.datalink())
        if link is None:
            report.add(f"link type {reader.datalink()} is not read", name, None)
            return
        from reconwatch.ecs.packets import PacketSummary

        summary = PacketSummary()
        number = 0
        packets = iter(reader)
        while True:
            try:
                ts, buf = next(packets)
            except StopIteration:
                break
            except _decode_errors() as exc:
                reason = exc or type(exc).__name__
                report.add(f"capture cut short after packet {number}: {reason}", name, number + 1)
                break
            if tracked.short:
                reason = "the file ends inside this packet"
                report.add(f"capture cut short after packet {number}: {reason}", name, number + 1)
                break
            number += 1
            try:
                pkt = decode_ip(float(ts), link(buf))
            except _decode_errors() as exc:
                report.add(
                    f"packet {number}: cannot decode: {exc or type(exc).__name__}", name, number
                )
                continue
            if pkt is None:
                continue  # ARP, LLDP, ...: not IP traffic
            for event in summary.feed(pkt):
                yield number, event
