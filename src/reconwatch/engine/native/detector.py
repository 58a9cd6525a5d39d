"""What every native detector is: contacts in (learning or live), findings out; and the detector a rule names."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from reconwatch.engine.native.contact import Contact
from reconwatch.rules.model import Rule
from reconwatch.rules.native import DetectorSpec

# Authorised scanners recognised by their process name (as the recon pack's ES|QL rules do):
# alerted and named, their alerts lowered by the rule's severity_mapping.
SCANNER_PRODUCTS: tuple[tuple[Callable[[str], bool], str], ...] = (
    (lambda n: n.startswith(("rumble-agent", "runzero-")), "runZero"),
    (lambda n: n == "nessusd", "Nessus"),
    (lambda n: n.startswith("qualys-"), "Qualys"),
)


def scanner_product(name: str) -> str | None:
    for test, product in SCANNER_PRODUCTS:
        if test(name):
            return product
    return None


@dataclass(slots=True)
class Finding:
    """A detector's decision that a group is scanning: when the evidence sufficed, the alert's
    fields (top-level ECS names and the detector's own `reconwatch.<kind>.*`), and the evidence
    (why each destination did or did not count)."""

    time_ms: int
    key: tuple[str, ...]
    fields: dict[str, object]
    evidence: dict[str, object] = field(default_factory=dict)


class Detector(Protocol):
    """Contacts in event-time order. `learn=True`: history, read only to learn (never a
    finding). `groups` and `state_bytes` say how much state it holds."""

    def push(self, contact: Contact, *, learn: bool = False) -> list[Finding]: ...

    @property
    def groups(self) -> int: ...

    def state_bytes(self) -> int: ...


def make_detector(rule: Rule) -> Detector:
    """The detector of a native rule, with its checked parameters."""
    from reconwatch.engine.native.baseline import BaselineDetector
    from reconwatch.engine.native.trw import TrwDetector

    spec: DetectorSpec | None = rule.detector
    assert spec is not None, "make_detector takes a native rule"
    if spec.kind == "trw":
        return TrwDetector(spec)
    return BaselineDetector(spec)
