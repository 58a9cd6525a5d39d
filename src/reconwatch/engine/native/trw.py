"""Threshold Random Walk (Jung, Paxson, Berger, Balakrishnan, IEEE S&P 2004) over the sensor's connection outcomes, per host and executable."""

from __future__ import annotations

import math
import sys
from collections import deque
from dataclasses import dataclass, field

from reconwatch.engine.native.contact import Contact
from reconwatch.engine.native.detector import Finding, scanner_product
from reconwatch.engine.native.sketch import BoundedLru
from reconwatch.engine.native.state import Observation, TrwState, WalkState
from reconwatch.plan.values import datetime_from_millis, format_datetime
from reconwatch.rules.native import DetectorSpec

# Observations kept per group for the alert's evidence (the walk itself needs none).
KEPT_OBSERVATIONS = 32
MAX_ENTITY_IDS = 8


def _iso(ms: int) -> str:
    return format_datetime(datetime_from_millis(ms))


@dataclass(slots=True)
class _Walk:
    """One (host, executable)'s walk: log of the likelihood ratio since it last restarted, the
    first contacts it is made of, the probes sent meanwhile, and what it remembers."""

    host_name: str
    name: str
    peers: BoundedLru[str, int]
    log_ratio: float = 0.0
    started_ms: int | None = None
    attempts: int = 0
    failures: int = 0
    successes: int = 0
    repeats: int = 0
    observations: deque[dict[str, object]] = field(
        default_factory=lambda: deque(maxlen=KEPT_OBSERVATIONS)
    )
    entity_ids: list[str] = field(default_factory=list)
    last_alert_ms: int | None = None

    def restart(self) -> None:
        self.log_ratio = 0.0
        self.started_ms = None
        self.attempts = self.failures = self.successes = self.repeats = 0
        self.observations.clear()


def _observation(o: dict[str, object]) -> Observation:
    ratio = o["likelihood_ratio"]
    assert isinstance(ratio, float | int)
    reason = o["reason"]
    return Observation(
        str(o["@timestamp"]),
        str(o["destination"]),
        str(o["outcome"]),
        None if reason is None else str(reason),
        float(ratio),
    )


class TrwDetector:
    """Each first contact of a group with a (destination, port, transport), judged by its
    outcome, moves the walk: a failure multiplies the likelihood ratio by (1 - theta_1) /
    (1 - theta_0), a success by theta_1 / theta_0. At eta_1 = P_D / P_F the group is a scanner
    (an alert, at most one per `realert_after`); at eta_0 = (1 - P_D) / (1 - P_F) it is benign.
    Either decision restarts the walk, so a process that turns to scanning later is still
    caught (Jung et al. decide once per remote host). A pair contacted again within
    `contact_memory` is no first contact; attempts without an outcome event do not move it."""

    def __init__(self, spec: DetectorSpec) -> None:
        self.spec = spec
        theta_0, theta_1 = spec.number("theta_0"), spec.number("theta_1")
        beta, alpha = (
            spec.number("detection_probability"),
            spec.number("false_positive_probability"),
        )
        self.step_failure = math.log((1 - theta_1) / (1 - theta_0))
        self.step_success = math.log(theta_1 / theta_0)
        self.eta_1 = beta / alpha
        self.eta_0 = (1 - beta) / (1 - alpha)
        self.upper, self.lower = math.log(self.eta_1), math.log(self.eta_0)
        self.memory_ms = int(spec.duration("contact_memory").total_seconds() * 1000)
        self.realert_ms = int(spec.duration("realert_after").total_seconds() * 1000)
        self.walks: BoundedLru[tuple[str, str], _Walk] = BoundedLru(spec.count("max_groups"))

    @property
    def groups(self) -> int:
        return len(self.walks)

    def _walk(self, contact: Contact) -> _Walk:
        walk = self.walks.get(contact.group)
        if walk is None:
            walk = _Walk(contact.host_name, contact.name, BoundedLru(self.spec.count("max_peers")))
        self.walks.set(contact.group, walk)
        if contact.entity_id and contact.entity_id not in walk.entity_ids:
            walk.entity_ids = [*walk.entity_ids, contact.entity_id][-MAX_ENTITY_IDS:]
        return walk

    def push(self, contact: Contact, *, learn: bool = False) -> list[Finding]:
        walk = self._walk(contact)
        if walk.started_ms is None:
            walk.started_ms = contact.time_ms
        if not contact.result:
            walk.attempts += 1
            return []
        if contact.success is None:
            return []
        pair = contact.pair
        last = walk.peers.get(pair)
        walk.peers.set(pair, contact.time_ms)
        if last is not None and contact.time_ms - last < self.memory_ms:
            walk.repeats += 1  # not a first contact: the walk does not move
            return []
        walk.log_ratio += self.step_success if contact.success else self.step_failure
        walk.successes += contact.success
        walk.failures += not contact.success
        walk.observations.append(
            {
                "@timestamp": _iso(contact.time_ms),
                "destination": pair,
                "outcome": "success" if contact.success else "failure",
                "reason": contact.reason,
                "likelihood_ratio": round(math.exp(walk.log_ratio), 4),
            }
        )
        if walk.log_ratio <= self.lower:
            walk.restart()  # benign: the walk starts again from 1
            return []
        if walk.log_ratio < self.upper:
            return []
        finding = None
        due = walk.last_alert_ms is None or contact.time_ms - walk.last_alert_ms >= self.realert_ms
        if due and not learn:
            finding = self._finding(contact, walk)
            walk.last_alert_ms = contact.time_ms
        walk.restart()
        return [finding] if finding is not None else []

    def _finding(self, contact: Contact, walk: _Walk) -> Finding:
        first = walk.started_ms if walk.started_ms is not None else contact.time_ms
        fields: dict[str, object] = {
            "host.id": contact.host_id,
            "host.name": walk.host_name,
            "process.executable": contact.executable,
            "process.name": walk.name,
            "process.entity_id": list(walk.entity_ids),
            "reconwatch.trw.likelihood_ratio": round(math.exp(walk.log_ratio), 2),
            "reconwatch.trw.eta_1": round(self.eta_1, 4),
            "reconwatch.trw.first_contacts": walk.failures + walk.successes,
            "reconwatch.trw.failures": walk.failures,
            "reconwatch.trw.successes": walk.successes,
            "reconwatch.trw.attempts": walk.attempts,
            "reconwatch.detector.first_seen": _iso(first),
            "reconwatch.detector.last_seen": _iso(contact.time_ms),
        }
        if (product := scanner_product(walk.name)) is not None:
            fields["reconwatch.scanner_product"] = product
        p = self.spec.params
        evidence: dict[str, object] = {
            "available": True,
            "method": (
                "Threshold Random Walk (Jung et al. 2004) over first contacts' outcomes: "
                f"theta_0={p['theta_0']}, theta_1={p['theta_1']}, P_D={p['detection_probability']}, "
                f"P_F={p['false_positive_probability']}; scanner at likelihood ratio >= "
                f"{self.eta_1:.4g}, benign (walk restarts) at <= {self.eta_0:.4g}"
            ),
            "counted": [
                {
                    **o,
                    "why": "first contact with this destination and port: its outcome moved the walk",
                }
                for o in walk.observations
            ],
            "not_counted": {
                "repeat_contacts": walk.repeats,
                "why_repeat": "contacted again within contact_memory: not a first contact",
                "attempts_without_outcome": max(0, walk.attempts - walk.failures - walk.successes),
                "why_attempts": "probes whose outcome event was not (yet) seen do not move the walk",
            },
        }
        return Finding(contact.time_ms, contact.group, fields, evidence)

    def snapshot(self) -> TrwState:
        """Everything the walks hold, for engine.native.state to save."""
        return TrwState(
            [
                WalkState(
                    host_id,
                    executable,
                    w.host_name,
                    w.name,
                    list(w.peers.items.items()),
                    w.peers.dropped,
                    w.log_ratio,
                    w.started_ms,
                    w.attempts,
                    w.failures,
                    w.successes,
                    w.repeats,
                    [_observation(o) for o in w.observations],
                    list(w.entity_ids),
                    w.last_alert_ms,
                )
                for (host_id, executable), w in self.walks.items.items()
            ],
            self.walks.dropped,
        )

    @classmethod
    def restore(cls, spec: DetectorSpec, state: TrwState) -> TrwDetector:
        """A detector holding a snapshot's walks (its bounds the spec's)."""
        detector = cls(spec)
        for s in state.walks:
            peers: BoundedLru[str, int] = BoundedLru(spec.count("max_peers"))
            for pair, ms in s.peers:
                peers.set(pair, ms)
            peers.dropped += s.peers_dropped
            walk = _Walk(s.host_name, s.name, peers, s.log_ratio, s.started_ms)
            walk.attempts, walk.failures, walk.successes = s.attempts, s.failures, s.successes
            walk.repeats = s.repeats
            walk.observations.extend(
                {
                    "@timestamp": o.timestamp,
                    "destination": o.destination,
                    "outcome": o.outcome,
                    "reason": o.reason,
                    "likelihood_ratio": o.likelihood_ratio,
                }
                for o in s.observations
            )
            walk.entity_ids = list(s.entity_ids[-MAX_ENTITY_IDS:])
            walk.last_alert_ms = s.last_alert_ms
            detector.walks.set((s.host_id, s.executable), walk)
        detector.walks.dropped += state.dropped
        return detector

    def state_bytes(self) -> int:
        """Measured size of the state (containers and their entries, not shared strings)."""
        total = sys.getsizeof(self.walks.items)
        for walk in self.walks.items.values():
            total += sys.getsizeof(walk) + sys.getsizeof(walk.peers.items)
            total += len(walk.peers) * (sys.getsizeof(0) + 64)
            total += sys.getsizeof(walk.observations) + len(walk.observations) * 400
        return total
