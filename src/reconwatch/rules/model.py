"""The rule as reconwatch runs it: the fields of an Elastic detection-rules TOML file, typed."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

DEFAULT_INTERVAL = "5m"
DEFAULT_FROM = "now-6m"
DEFAULT_TO = "now"
DEFAULT_MAX_SIGNALS = 100
# Kibana caps max_signals at xpack.alerting.rules.run.alerts.max (default 1000).
MAX_SIGNALS_CAP = 1000


@dataclass(frozen=True, slots=True)
class Rule:
    """One detection rule. `raw` keeps the whole parsed [rule] table for alert documents.

    `from_`, `to` are Kibana date-math strings relative to a run's start ("now-61m", "now");
    `interval` is the schedule period; `path` is where it was loaded from (or `builtin:NAME`).
    """

    path: str
    name: str
    rule_id: str
    type: str
    language: str
    query: str
    description: str
    severity: str
    risk_score: int
    interval: timedelta
    interval_text: str
    from_: str
    to: str
    timestamp_override: str | None
    max_signals: int
    note: str = ""
    setup: str = ""
    tags: tuple[str, ...] = ()
    author: tuple[str, ...] = ()
    references: tuple[str, ...] = ()
    false_positives: tuple[str, ...] = ()
    license: str = ""
    threat: tuple[dict[str, Any], ...] = ()
    alert_suppression: dict[str, Any] | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict)
    builtin: str | None = None
    warnings: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        """How to name the rule to a person: the built-in name or the file path."""
        return self.builtin or self.path
