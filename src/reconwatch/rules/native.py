"""Native detector rules (`type = "reconwatch"`): the `[rule.detector]` table, its kinds and parameters, checked."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from reconwatch.rules.datemath import DateMathError, parse_interval

NATIVE_TYPE = "reconwatch"

# kind -> parameter -> (default, kind of value: "prob", "count", "duration")
PARAMETERS: dict[str, dict[str, tuple[object, str]]] = {
    # Jung, Paxson, Berger, Balakrishnan, "Fast Portscan Detection Using Sequential Hypothesis
    # Testing", IEEE S&P 2004; values of the authors' own implementation (Bro's trw-impl.bro).
    "trw": {
        "theta_0": (0.8, "prob"),  # P(first contact succeeds | benign)
        "theta_1": (0.2, "prob"),  # P(first contact succeeds | scanner)
        "detection_probability": (0.99, "prob"),  # beta, P_D
        "false_positive_probability": (0.01, "prob"),  # alpha, P_F
        "contact_memory": (
            "24h",
            "duration",
        ),  # a pair contacted again within it is no first contact
        "max_peers": (1024, "count"),  # remembered (destination, port) pairs per group
        "realert_after": ("65m", "duration"),  # one alert per group within this
        "max_groups": (100_000, "count"),
    },
    "baseline": {
        "learning_period": ("12h", "duration"),  # no alert before this much event time was seen
        "window": ("65m", "duration"),  # new destinations counted over this sliding span
        "threshold": (30, "count"),  # distinct new internal destinations in the window
        "answered_ratio": (0.9, "prob"),  # with outcomes: this share answered is a fan-out
        "exact_peers": (1024, "count"),  # learned peers kept exactly, then in a Bloom filter
        "bloom_capacity": (65_536, "count"),
        "bloom_error": (0.01, "prob"),
        "max_pending": (4096, "count"),  # new destinations remembered per group
        "realert_after": ("65m", "duration"),
        "max_groups": (100_000, "count"),
    },
}


@dataclass(frozen=True, slots=True)
class DetectorSpec:
    """A checked `[rule.detector]`: its kind and every parameter (defaults filled in; durations
    as timedelta)."""

    kind: str
    params: dict[str, Any]

    def duration(self, name: str) -> timedelta:
        value = self.params[name]
        assert isinstance(value, timedelta)
        return value

    def number(self, name: str) -> float:
        return float(self.params[name])

    def count(self, name: str) -> int:
        return int(self.params[name])


def parse_detector(table: object) -> tuple[DetectorSpec | None, list[tuple[str, str]]]:
    """The detector table checked: (spec, problems), each problem naming its field."""
    where = "rule.detector"
    if not isinstance(table, dict):
        return None, [(where, "a reconwatch rule needs a [rule.detector] table")]
    kind = table.get("kind")
    if kind not in PARAMETERS:
        return None, [(f"{where}.kind", f"{kind!r} is not one of {', '.join(PARAMETERS)}")]
    known = PARAMETERS[str(kind)]
    problems = [
        (f"{where}.{name}", f"unknown parameter of {kind} (known: {', '.join(known)})")
        for name in table
        if name != "kind" and name not in known
    ]
    params: dict[str, Any] = {}
    for name, (default, shape) in known.items():
        value = table.get(name, default)
        checked, problem = _check(value, shape)
        if problem:
            problems.append((f"{where}.{name}", problem))
        params[name] = checked
    if kind == "trw" and not problems and params["theta_1"] >= params["theta_0"]:
        problems.append((f"{where}.theta_1", "must be below theta_0 (a scanner succeeds less)"))
    if problems:
        return None, problems
    return DetectorSpec(str(kind), params), []


def _check(value: object, shape: str) -> tuple[object, str]:
    if shape == "duration":
        if not isinstance(value, str):
            return value, "must be a duration such as 65m or 12h"
        try:
            span = parse_interval(value)
        except DateMathError as exc:
            return value, str(exc)
        if span <= timedelta(0):
            return value, "must be longer than 0"
        return span, ""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return value, f"must be a number, got {value!r}"
    if shape == "prob" and not 0 < value < 1:
        return value, f"{value} is not strictly between 0 and 1"
    if shape == "count" and (not isinstance(value, int) or value < 1):
        return value, f"{value} is not an integer >= 1"
    return value, ""
