"""The rule as reconwatch runs it: the fields of an Elastic detection-rules TOML file, typed."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from reconwatch.errors import RuleLoadError
from reconwatch.rules.native import DetectorSpec

DEFAULT_INTERVAL = "5m"
DEFAULT_FROM = "now-6m"
DEFAULT_TO = "now"
DEFAULT_MAX_SIGNALS = 100
# Kibana caps max_signals at xpack.alerting.rules.run.alerts.max (default 1000).
MAX_SIGNALS_CAP = 1000
# detection-rules' AlertSuppressionMapping: 1-3 group_by fields, duration units s|m|h.
SUPPRESSION_MAX_FIELDS = 3
SUPPRESSION_UNITS = {"s": 1, "m": 60, "h": 3600}
SUPPRESSION_STRATEGIES = ("suppress", "doNotSuppress")
# Kibana's DEFAULT_SUPPRESSION_MISSING_FIELDS_STRATEGY.
DEFAULT_MISSING_FIELDS_STRATEGY = "suppress"


@dataclass(frozen=True, slots=True)
class AlertSuppression:
    """`[rule.alert_suppression]`: group alerts by up to three fields, per rule execution
    (`duration` None) or for `duration` after the alert that opened the group was created."""

    group_by: tuple[str, ...]
    duration: timedelta | None = None
    missing_fields_strategy: str = DEFAULT_MISSING_FIELDS_STRATEGY

    @property
    def suppress_missing(self) -> bool:
        return self.missing_fields_strategy == "suppress"


def parse_alert_suppression(
    table: dict[str, Any],
) -> tuple[AlertSuppression | None, list[tuple[str, str]]]:
    """The suppression table checked as detection-rules' schema does: (model, problems)."""
    problems: list[tuple[str, str]] = []
    group_by = table.get("group_by")
    if (
        not isinstance(group_by, list)
        or not 1 <= len(group_by) <= SUPPRESSION_MAX_FIELDS
        or not all(isinstance(f, str) and f for f in group_by)
    ):
        problems.append(
            ("rule.alert_suppression.group_by", "must list 1 to 3 non-empty field names")
        )
        group_by = []
    duration = _suppression_duration(table.get("duration"), problems)
    strategy = table.get("missing_fields_strategy", DEFAULT_MISSING_FIELDS_STRATEGY)
    if strategy not in SUPPRESSION_STRATEGIES:
        problems.append(
            (
                "rule.alert_suppression.missing_fields_strategy",
                f"{strategy!r} is not one of {', '.join(SUPPRESSION_STRATEGIES)}",
            )
        )
    if problems:
        return None, problems
    return AlertSuppression(tuple(group_by), duration, str(strategy)), []


def _suppression_duration(value: object, problems: list[tuple[str, str]]) -> timedelta | None:
    if value is None:
        return None
    field_name = "rule.alert_suppression.duration"
    if not isinstance(value, dict):
        problems.append((field_name, "must be a table with value and unit"))
        return None
    amount, unit = value.get("value"), value.get("unit")
    if not isinstance(amount, int) or isinstance(amount, bool) or amount < 1:
        problems.append((f"{field_name}.value", "must be an integer >= 1"))
        return None
    if unit not in SUPPRESSION_UNITS:
        problems.append((f"{field_name}.unit", f"{unit!r} is not one of s, m, h"))
        return None
    return timedelta(seconds=amount * SUPPRESSION_UNITS[unit])


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
    # A native detector rule (type = "reconwatch"): its checked [rule.detector]; None for ES|QL.
    detector: DetectorSpec | None = None

    @property
    def native(self) -> bool:
        return self.detector is not None

    @property
    def suppression(self) -> AlertSuppression | None:
        """The checked `[rule.alert_suppression]`; RuleLoadError when it breaks the schema."""
        if self.alert_suppression is None:
            return None
        model, problems = parse_alert_suppression(self.alert_suppression)
        if problems:
            raise RuleLoadError(self.path, problems)
        return model

    @property
    def label(self) -> str:
        """How to name the rule to a person: the built-in name or the file path."""
        return self.builtin or self.path
