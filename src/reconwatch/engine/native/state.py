"""Native detectors' learned and bounded state saved and loaded: one versioned msgpack blob per detector, a state file holding them by rule id."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path

import msgspec

from reconwatch.engine.native.detector import Detector
from reconwatch.errors import OutputError, ReconwatchError
from reconwatch.rules.model import Rule

# Raised by a change to any Struct below: a blob of another version is refused, never misread.
STATE_VERSION = 1
BLOB_FORMAT = "reconwatch-detector-state"
FILE_FORMAT = "reconwatch-state-file"


class StateError(ReconwatchError):
    """A saved state that cannot be used (corrupt, another version, another detector or
    parameters): one line; the caller starts that detector fresh."""

    exit_code = 2


# --- Threshold Random Walk -------------------------------------------------------------------


class Observation(msgspec.Struct, array_like=True, frozen=True):
    """One first contact kept for the alert's evidence."""

    timestamp: str
    destination: str
    outcome: str
    reason: str | None
    likelihood_ratio: float


class WalkState(msgspec.Struct, array_like=True, frozen=True):
    """One (host, executable)'s walk; `peers` (pair, last contact ms) least recent first."""

    host_id: str
    executable: str
    host_name: str
    name: str
    peers: list[tuple[str, int]]
    peers_dropped: int
    log_ratio: float
    started_ms: int | None
    attempts: int
    failures: int
    successes: int
    repeats: int
    observations: list[Observation]
    entity_ids: list[str]
    last_alert_ms: int | None


class TrwState(msgspec.Struct, array_like=True, frozen=True):
    """Every walk, least recently active first."""

    walks: list[WalkState]
    dropped: int


# --- Learned baseline ------------------------------------------------------------------------


class BloomState(msgspec.Struct, array_like=True, frozen=True):
    size: int
    hashes: int
    count: int
    bits: bytes


class GroupState(msgspec.Struct, array_like=True, frozen=True):
    """One (host, executable)'s baseline: peers exact (sorted) or as a Bloom filter; pending
    (ip, first ms, hour) and known (ip, why) least recent first; recent (ip, ms) in time order."""

    host_id: str
    executable: str
    host_name: str
    name: str
    peers_exact: list[str] | None
    peers_bloom: BloomState | None
    pending: list[tuple[str, int, int]]
    pending_dropped: int
    recent: list[tuple[str, int]]
    answered: list[str]
    outcomes_seen: bool
    known: list[tuple[str, str]]
    known_contacts: int
    new_total: bytes | None
    entity_ids: list[str]
    last_alert_ms: int | None


class BaselineState(msgspec.Struct, array_like=True, frozen=True):
    """Every group, least recently active first, and the event time learning began at."""

    first_ms: int | None
    history_until_ms: int | None
    groups: list[GroupState]
    dropped: int


# --- Envelopes -------------------------------------------------------------------------------


class _Blob(msgspec.Struct, frozen=True):
    format: str
    version: int
    kind: str
    params: dict[str, str]
    body: msgspec.Raw


class _Head(msgspec.Struct, frozen=True):
    format: str
    version: int


class _File(msgspec.Struct, frozen=True):
    format: str
    version: int
    detectors: dict[str, bytes]


_ENCODER = msgspec.msgpack.Encoder()
_BODIES: dict[str, type[TrwState] | type[BaselineState]] = {
    "trw": TrwState,
    "baseline": BaselineState,
}


def _params(rule: Rule) -> dict[str, str]:
    spec = rule.detector
    if spec is None:
        raise StateError(f"{rule.label}: not a native detector rule")
    return {k: str(v) for k, v in sorted(spec.params.items())}


def dump_detector(rule: Rule, detector: Detector) -> bytes:
    """The detector's whole state as one versioned blob (compact msgpack)."""
    from reconwatch.engine.native.baseline import BaselineDetector
    from reconwatch.engine.native.trw import TrwDetector

    if not isinstance(detector, TrwDetector | BaselineDetector):
        raise StateError(f"{rule.label}: {type(detector).__name__} has no saved state")
    kind = "trw" if isinstance(detector, TrwDetector) else "baseline"
    body = msgspec.Raw(_ENCODER.encode(detector.snapshot()))
    return _ENCODER.encode(_Blob(BLOB_FORMAT, STATE_VERSION, kind, _params(rule), body))


def load_detector(rule: Rule, data: bytes) -> Detector:
    """The rule's detector with a saved state; a StateError (one line) for a blob that is not
    one (corrupt, truncated), of another version, detector kind or parameters."""
    from reconwatch.engine.native.baseline import BaselineDetector
    from reconwatch.engine.native.trw import TrwDetector

    params = _params(rule)
    assert rule.detector is not None
    try:
        head = msgspec.msgpack.decode(data, type=_Head)
    except (msgspec.DecodeError, msgspec.ValidationError):
        raise StateError("not a reconwatch detector state (corrupt or truncated)") from None
    if head.format != BLOB_FORMAT:
        raise StateError(f"not a reconwatch detector state (format {head.format!r})")
    if head.version != STATE_VERSION:
        raise StateError(
            f"saved by another version of reconwatch (state version {head.version}, "
            f"this one reads {STATE_VERSION})"
        )
    try:
        blob = msgspec.msgpack.decode(data, type=_Blob)
        if blob.kind != rule.detector.kind:
            raise StateError(f"a {blob.kind} detector's state, the rule is {rule.detector.kind}")
        if blob.params != params:
            changed = sorted(
                k for k in params.keys() | blob.params.keys() if params.get(k) != blob.params.get(k)
            )
            raise StateError(f"saved with other parameters ({', '.join(changed)})")
        if blob.kind == "trw":
            return TrwDetector.restore(
                rule.detector, msgspec.msgpack.decode(blob.body, type=TrwState)
            )
        return BaselineDetector.restore(
            rule.detector, msgspec.msgpack.decode(blob.body, type=BaselineState)
        )
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise StateError(f"corrupt detector state: {exc}") from None
    except ValueError as exc:  # restore's own consistency checks
        raise StateError(f"corrupt detector state: {exc}") from None


class StateFile:
    """Native detectors' states in one file, by rule id, replaced atomically (write, fsync,
    rename). States of rules not run this time are kept as they were."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.blobs: dict[str, bytes] = {}

    def read(self) -> list[str]:
        """Read the file (a missing one is an empty state); returns one-line notices for what
        could not be used (the whole file then starts fresh)."""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return []
        except OSError as exc:
            return [f"state {self.path}: cannot read ({exc.strerror or exc}): starting fresh"]
        try:
            head = msgspec.msgpack.decode(data, type=_Head)
            if head.format != FILE_FORMAT:
                return [f"state {self.path}: not a reconwatch state file: starting fresh"]
            if head.version != STATE_VERSION:
                version = f"state version {head.version}, this one reads {STATE_VERSION}"
                return [
                    f"state {self.path}: saved by another version of reconwatch ({version}): starting fresh"
                ]
            self.blobs = dict(msgspec.msgpack.decode(data, type=_File).detectors)
        except (msgspec.DecodeError, msgspec.ValidationError):
            return [f"state {self.path}: corrupt or truncated: starting fresh"]
        return []

    def detectors(self, rules: Iterable[Rule]) -> tuple[dict[str, Detector], list[str]]:
        """The saved detector of each native rule that has a usable one (by rule id), and a
        notice for each that has an unusable one (it starts fresh)."""
        out: dict[str, Detector] = {}
        notices: list[str] = []
        for rule in rules:
            data = self.blobs.get(rule.rule_id)
            if data is None or not rule.native:
                continue
            try:
                out[rule.rule_id] = load_detector(rule, data)
            except StateError as exc:
                notices.append(f"state {self.path}: {rule.label}: {exc}: starting fresh")
        return out, notices

    def write(self, rules: Iterable[Rule], detectors: Mapping[str, Detector]) -> None:
        """Save each rule's detector (others' saved states kept); an OutputError if the file
        cannot be written."""
        for rule in rules:
            detector = detectors.get(rule.rule_id)
            if detector is not None:
                self.blobs[rule.rule_id] = dump_detector(rule, detector)
        data = _ENCODER.encode(_File(FILE_FORMAT, STATE_VERSION, dict(sorted(self.blobs.items()))))
        folder = self.path.parent
        try:
            fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=folder)
            try:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(data)
                    fh.flush()
                    os.fsync(fh.fileno())
                os.replace(tmp, self.path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        except OSError as exc:
            raise OutputError(f"writing state to {self.path}: {exc.strerror or exc}") from None
