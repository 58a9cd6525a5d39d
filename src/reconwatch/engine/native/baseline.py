"""Learned baselines of each (host, executable)'s usual destinations: a process reaching many new internal addresses is a scan, one reconnecting to its peers is not."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field

from reconwatch.engine.native.contact import Contact
from reconwatch.engine.native.detector import Finding, scanner_product
from reconwatch.engine.native.sketch import BloomFilter, BoundedLru, HyperLogLog, PeerSet
from reconwatch.engine.native.state import BaselineState, BloomState, GroupState
from reconwatch.plan.values import datetime_from_millis, format_datetime
from reconwatch.rules.native import DetectorSpec

HOUR_MS = 3_600_000
SAMPLE = 20
MAX_ENTITY_IDS = 8


def _iso(ms: int) -> str:
    return format_datetime(datetime_from_millis(ms))


@dataclass(slots=True)
class _Group:
    """One (host, executable): its learned peers, the new destinations it reached (first time
    and hour), those of them inside the window (in time order) and which answered."""

    host_name: str
    name: str
    peers: PeerSet
    pending: BoundedLru[str, tuple[int, int]]
    recent: dict[str, int] = field(default_factory=dict)
    answered: set[str] = field(default_factory=set)
    outcomes_seen: bool = False
    known: BoundedLru[str, str] = field(default_factory=lambda: BoundedLru(SAMPLE))
    known_contacts: int = 0
    new_total: HyperLogLog | None = None
    entity_ids: list[str] = field(default_factory=list)
    last_alert_ms: int | None = None


class BaselineDetector:
    """During the learning period (the first `learning_period` of event time the detector sees,
    history included) every internal destination a group reaches becomes one of its peers.
    Afterwards a destination that is not a peer is new; seen again in another hour it becomes a
    peer (recurring traffic). A group reaching `threshold` distinct new destinations within
    `window` alerts, unless outcome events show that `answered_ratio` of them answered (a
    fan-out to live hosts, not a scan)."""

    def __init__(self, spec: DetectorSpec) -> None:
        self.spec = spec
        self.learning_ms = int(spec.duration("learning_period").total_seconds() * 1000)
        self.window_ms = int(spec.duration("window").total_seconds() * 1000)
        self.realert_ms = int(spec.duration("realert_after").total_seconds() * 1000)
        self.threshold = spec.count("threshold")
        self.ratio = spec.number("answered_ratio")
        self.group_map: BoundedLru[tuple[str, str], _Group] = BoundedLru(spec.count("max_groups"))
        self.first_ms: int | None = None
        self.history_until_ms: int | None = None

    @property
    def groups(self) -> int:
        return len(self.group_map)

    def learning(self, time_ms: int) -> bool:
        return self.first_ms is None or time_ms < self.first_ms + self.learning_ms

    def _group(self, contact: Contact) -> _Group:
        group = self.group_map.get(contact.group)
        if group is None:
            p = self.spec
            peers = PeerSet(
                p.count("exact_peers"), p.count("bloom_capacity"), p.number("bloom_error")
            )
            group = _Group(
                contact.host_name, contact.name, peers, BoundedLru(p.count("max_pending"))
            )
        self.group_map.set(contact.group, group)
        if contact.entity_id and contact.entity_id not in group.entity_ids:
            group.entity_ids = [*group.entity_ids, contact.entity_id][-MAX_ENTITY_IDS:]
        return group

    def push(self, contact: Contact, *, learn: bool = False) -> list[Finding]:
        t = contact.time_ms
        if self.first_ms is None:
            self.first_ms = t
        if learn:
            self.history_until_ms = max(self.history_until_ms or t, t)
        group = self._group(contact)
        if contact.result:
            group.outcomes_seen = group.outcomes_seen or contact.success is not None
            if contact.success and contact.ip in group.recent:
                group.answered.add(contact.ip)
            return []
        if learn or self.learning(t):
            group.peers.add(contact.ip)
            return []
        self._expire(group, t)
        ip = contact.ip
        if ip in group.peers:
            group.known_contacts += 1
            group.known.set(ip, "known peer: learned for this host and executable")
            return []
        seen = group.pending.get(ip)
        hour = t // HOUR_MS
        if seen is not None and seen[1] != hour:
            # Recurring: reached in two different hours, so part of what this process does.
            group.peers.add(ip)
            group.pending.pop(ip)
            group.recent.pop(ip, None)
            group.answered.discard(ip)
            group.known.set(ip, "recurring: reached in two different hours, now a peer")
            return []
        if seen is None:
            group.pending.set(ip, (t, hour))
            group.recent[ip] = t
            if group.pending.dropped:
                group.new_total = group.new_total or HyperLogLog()
            if group.new_total is not None:
                group.new_total.add(ip)
        return self._judge(contact, group)

    def _expire(self, group: _Group, t: int) -> None:
        """Drop new destinations first reached before the window (insertion order is time)."""
        recent = group.recent
        while recent:
            ip = next(iter(recent))
            if recent[ip] >= t - self.window_ms:
                break
            del recent[ip]
            group.answered.discard(ip)

    def _judge(self, contact: Contact, group: _Group) -> list[Finding]:
        count = len(group.recent)
        if count < self.threshold:
            return []
        t = contact.time_ms
        if group.last_alert_ms is not None and t - group.last_alert_ms < self.realert_ms:
            return []
        answered = len(group.answered)
        if group.outcomes_seen and answered >= self.ratio * count:
            return []  # nearly all answered: a fan-out to live hosts, not a scan
        group.last_alert_ms = t
        return [self._finding(contact, group, count, answered)]

    def _finding(self, contact: Contact, group: _Group, count: int, answered: int) -> Finding:
        first = min(group.recent.values())
        peers = group.peers
        fields: dict[str, object] = {
            "host.id": contact.host_id,
            "host.name": group.host_name,
            "process.executable": contact.executable,
            "process.name": group.name,
            "process.entity_id": list(group.entity_ids),
            "reconwatch.baseline.new_destination_count": count,
            "reconwatch.baseline.answered_count": answered if group.outcomes_seen else None,
            "reconwatch.baseline.peer_count": len(peers),
            "reconwatch.baseline.known_contacts": group.known_contacts,
            "reconwatch.detector.first_seen": _iso(first),
            "reconwatch.detector.last_seen": _iso(contact.time_ms),
        }
        if group.new_total is not None:
            fields["reconwatch.baseline.new_destination_total_estimate"] = group.new_total.count()
        if (product := scanner_product(group.name)) is not None:
            fields["reconwatch.scanner_product"] = product
        learned = "history (--history) and " if self.history_until_ms is not None else ""
        n = len(peers)
        counted = [
            {
                "destination": ip,
                "first_seen": _iso(ms),
                "answered": (ip in group.answered) if group.outcomes_seen else None,
                "why": f"new: not among the {n} destinations learned for this host and executable, "
                "reached in one hour only",
            }
            for ip, ms in list(group.recent.items())[:SAMPLE]
        ]
        evidence: dict[str, object] = {
            "available": True,
            "method": (
                f"learned baseline: peers learned from {learned}the first "
                f"{self.spec.params['learning_period']} of events from {_iso(self.first_ms or 0)}, "
                f"then from destinations reached in two different hours; alert at "
                f">= {self.threshold} new internal destinations within {self.spec.params['window']}"
            ),
            "baseline": {
                "peers": n,
                "approximate": peers.approximate,
                "false_positive_rate": peers.bloom.error_now() if peers.bloom is not None else 0.0,
            },
            "counted_total": count,
            "counted": counted,
            "not_counted_total": group.known_contacts,
            "not_counted": [
                {"destination": ip, "why": why} for ip, why in group.known.items.items()
            ],
        }
        if group.outcomes_seen:
            evidence["outcomes"] = (
                f"{answered} of {count} new destinations answered (an alert needs fewer than "
                f"{self.ratio:.0%})"
            )
        return Finding(
            contact.time_ms,
            contact.group,
            {k: v for k, v in fields.items() if v is not None},
            evidence,
        )

    def snapshot(self) -> BaselineState:
        """Everything the baselines hold, for engine.native.state to save."""
        return BaselineState(
            self.first_ms,
            self.history_until_ms,
            [_group_state(key, g) for key, g in self.group_map.items.items()],
            self.group_map.dropped,
        )

    @classmethod
    def restore(cls, spec: DetectorSpec, state: BaselineState) -> BaselineDetector:
        """A detector holding a snapshot's baselines (its bounds the spec's); a ValueError for
        a snapshot whose sketches do not fit the spec."""
        detector = cls(spec)
        detector.first_ms, detector.history_until_ms = state.first_ms, state.history_until_ms
        for s in state.groups:
            detector.group_map.set((s.host_id, s.executable), _group(spec, s))
        detector.group_map.dropped += state.dropped
        return detector

    def state_bytes(self) -> int:
        """Measured size of the state (containers and their entries, not shared strings)."""
        total = sys.getsizeof(self.group_map.items)
        for group in self.group_map.items.values():
            total += sys.getsizeof(group) + group.peers.nbytes()
            total += sys.getsizeof(group.pending.items) + len(group.pending) * 120
            total += sys.getsizeof(group.recent) + sys.getsizeof(group.answered)
            total += sys.getsizeof(group.known.items) + len(group.known) * 120
            if group.new_total is not None:
                total += group.new_total.nbytes()
        return total


def _group_state(key: tuple[str, str], g: _Group) -> GroupState:
    peers = g.peers
    bloom = peers.bloom
    return GroupState(
        key[0],
        key[1],
        g.host_name,
        g.name,
        sorted(peers.items) if peers.items is not None else None,
        BloomState(bloom.size, bloom.hashes, bloom.count, bytes(bloom.bits)) if bloom else None,
        [(ip, first, hour) for ip, (first, hour) in g.pending.items.items()],
        g.pending.dropped,
        list(g.recent.items()),
        sorted(g.answered),
        g.outcomes_seen,
        list(g.known.items.items()),
        g.known_contacts,
        bytes(g.new_total.registers) if g.new_total is not None else None,
        list(g.entity_ids),
        g.last_alert_ms,
    )


def _group(spec: DetectorSpec, s: GroupState) -> _Group:
    peers = PeerSet(
        spec.count("exact_peers"), spec.count("bloom_capacity"), spec.number("bloom_error")
    )
    if s.peers_bloom is not None:
        bloom = BloomFilter(peers.capacity, peers.error)
        b = s.peers_bloom
        if (b.size, b.hashes, len(b.bits)) != (bloom.size, bloom.hashes, len(bloom.bits)):
            raise ValueError("a Bloom filter of another size than the rule's")
        bloom.bits[:] = b.bits
        bloom.count = b.count
        peers.items, peers.bloom = None, bloom
    for ip in s.peers_exact or ():
        peers.add(ip)
    pending: BoundedLru[str, tuple[int, int]] = BoundedLru(spec.count("max_pending"))
    for ip, first, hour in s.pending:
        pending.set(ip, (first, hour))
    pending.dropped += s.pending_dropped
    group = _Group(s.host_name, s.name, peers, pending, dict(s.recent), set(s.answered))
    group.outcomes_seen = s.outcomes_seen
    for ip, why in s.known:
        group.known.set(ip, why)
    group.known_contacts = s.known_contacts
    if s.new_total is not None:
        hll = HyperLogLog()
        if len(s.new_total) != len(hll.registers):
            raise ValueError("a HyperLogLog of another size than the detector's")
        hll.registers[:] = s.new_total
        group.new_total = hll
    group.entity_ids = list(s.entity_ids[-MAX_ENTITY_IDS:])
    group.last_alert_ms = s.last_alert_ms
    return group
