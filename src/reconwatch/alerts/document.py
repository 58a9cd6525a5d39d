"""Alert documents shaped like Kibana's (build_alert.ts), with flat dotted keys and our evidence."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Protocol

from reconwatch.plan.values import format_datetime
from reconwatch.rules.exceptions import ExceptionList, as_dict
from reconwatch.rules.model import Rule


class AlertRun(Protocol):
    """What an alert records of the rule execution that raised it (engine.schedule.RunWindow is one)."""

    @property
    def run_at(self) -> datetime: ...
    @property
    def start(self) -> datetime: ...
    @property
    def end(self) -> datetime: ...
    @property
    def index(self) -> int: ...
    @property
    def execution_type(self) -> str: ...
    @property
    def run_id(self) -> str: ...


def build_alert(
    rule: Rule,
    window: AlertRun,
    row: Mapping[str, object],
    *,
    alert_id: str,
    aggregating: bool,
    source: Mapping[str, object],
    space: str,
    evidence: Mapping[str, object] | None,
    exceptions: Sequence[ExceptionList] = (),
) -> dict[str, object]:
    """One alert: source fields (non-aggregating) merged with the ES|QL columns, then kibana.*."""
    merged: dict[str, object] = {}
    if not aggregating:
        merged.update({k: plain(v) for k, v in source.items()})
    merged.update({k: plain(v) for k, v in row.items()})
    original_time = merged.get("@timestamp")
    event_id = "" if aggregating else str(row.get("_id", ""))
    event_index = "" if aggregating else str(row.get("_index", ""))
    run_at = format_datetime(window.run_at)
    severity, override = severity_from_mapping(rule, merged)
    alert: dict[str, object] = {"@timestamp": run_at}
    # Kibana strips the source event's own kind/signal fields and sets event.kind = signal.
    alert.update({k: v for k, v in merged.items() if k not in ("@timestamp", "event.kind")})
    alert["event.kind"] = "signal"
    if isinstance(original_time, str):
        alert["kibana.alert.original_time"] = original_time
    alert.update(
        {
            "kibana.space_ids": [space],
            "kibana.alert.ancestors": [
                {"id": event_id, "type": "event", "index": event_index, "depth": 0}
            ],
            "kibana.alert.depth": 1,
            "kibana.alert.status": "active",
            "kibana.alert.workflow_status": "open",
            "kibana.alert.workflow_tags": [],
            "kibana.alert.workflow_assignee_ids": [],
            "kibana.alert.reason": reason(merged, rule),
            "kibana.alert.severity": severity,
            "kibana.alert.risk_score": rule.risk_score,
            "kibana.alert.uuid": alert_id,
            "kibana.alert.start": run_at,
            "kibana.alert.last_detected": run_at,
            "kibana.alert.intended_timestamp": run_at,
            "kibana.alert.rule.execution.type": window.execution_type,
            "kibana.alert.rule.execution.timestamp": run_at,
            # Kibana draws a random execution uuid; one per (space, rule, run window) here.
            "kibana.alert.rule.execution.uuid": str(
                uuid.uuid5(uuid.NAMESPACE_URL, f"{space}:{rule.rule_id}:{window.run_id}")
            ),
        }
    )
    alert.update(rule_fields(rule, exceptions))
    if override is not None:
        alert["kibana.alert.rule.parameters.meta"] = {"severityOverrideField": override}
    alert.update(
        {
            "reconwatch.run.index": window.index,
            "reconwatch.run.at": run_at,
            "reconwatch.run.from": format_datetime(window.start),
            "reconwatch.run.to": format_datetime(window.end),
            "reconwatch.rule.source": rule.label,
        }
    )
    # The seed rule's blind spots a pack rule closes, from its "Blind Spot: ..." tags.
    spots = [t.split(":", 1)[1].strip() for t in rule.tags if t.startswith(BLIND_SPOT_TAG)]
    if spots:
        alert["reconwatch.rule.blind_spots"] = spots
    if evidence is not None:
        alert["reconwatch.evidence"] = dict(evidence)
    return alert


BLIND_SPOT_TAG = "Blind Spot:"
# Kibana's severitySortMapping: mapping entries are tried from low to high, the last match wins.
SEVERITY_ORDER = {"low": 0, "medium": 1, "high": 2, "critical": 3}
ECS_SEVERITY_FIELD = "event.severity"
_SAFE_INTEGER = 2**53 - 1


def severity_from_mapping(rule: Rule, doc: Mapping[str, object]) -> tuple[str, str | None]:
    """Kibana's buildSeverityFromMapping: the rule's `severity_mapping` entries sorted from low to
    high severity (stable), each matching when the alert document's field (a dotted key, or a
    path through nested objects) holds its value (any element of an array; strings and safe
    integers compared as text, `event.severity` as an integer); the last match wins. Returns the
    severity and the field that overrode it (None: the rule's own severity)."""
    mapping = rule.raw.get("severity_mapping")
    if not isinstance(mapping, list) or not mapping:
        return rule.severity, None
    entries = [m for m in mapping if isinstance(m, dict) and m.get("severity") in SEVERITY_ORDER]
    matched: dict[str, object] | None = None
    for entry in sorted(entries, key=lambda m: SEVERITY_ORDER[str(m["severity"])]):
        name = str(entry.get("field", ""))
        if _mapping_value(name, entry.get("value")) in _event_values(name, _lookup(doc, name)):
            matched = entry
    if matched is None:
        return rule.severity, None
    return str(matched["severity"]), str(matched.get("field", ""))


def _lookup(doc: Mapping[str, object], path: str) -> object:
    """lodash's get: the key as written if the document has it, else the dotted path walked."""
    if path in doc:
        return doc[path]
    node: object = doc
    for part in path.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def _mapping_value(name: str, value: object) -> object:
    if name == ECS_SEVERITY_FIELD:
        try:
            return int(float(str(value)) // 1)
        except (ValueError, OverflowError):  # Math.floor(Number(v)) is NaN: never equal
            return None
    return str(value)


def _event_values(name: str, value: object) -> set[object]:
    values = value if isinstance(value, list) else [value]
    ints = [
        v
        for v in values
        if isinstance(v, int) and not isinstance(v, bool) and abs(v) <= _SAFE_INTEGER
    ]
    if name == ECS_SEVERITY_FIELD:
        return set(ints)
    return {str(v) for v in [*ints, *(v for v in values if isinstance(v, str))]}


def rule_fields(rule: Rule, exceptions: Sequence[ExceptionList] = ()) -> dict[str, object]:
    """kibana.alert.rule.* for a rule (the SO id is the rule_id: there is no Kibana saved object)."""
    fields: dict[str, object] = {
        "kibana.alert.rule.author": list(rule.author),
        "kibana.alert.rule.category": "ES|QL Rule",
        "kibana.alert.rule.consumer": "siem",
        "kibana.alert.rule.description": rule.description,
        "kibana.alert.rule.enabled": True,
        "kibana.alert.rule.exceptions_list": [as_dict(e) for e in exceptions],
        "kibana.alert.rule.false_positives": list(rule.false_positives),
        "kibana.alert.rule.from": rule.from_,
        "kibana.alert.rule.immutable": rule.builtin is not None,
        "kibana.alert.rule.interval": rule.interval_text,
        "kibana.alert.rule.license": rule.license,
        "kibana.alert.rule.max_signals": rule.max_signals,
        "kibana.alert.rule.name": rule.name,
        "kibana.alert.rule.producer": "siem",
        "kibana.alert.rule.references": list(rule.references),
        "kibana.alert.rule.risk_score": rule.risk_score,
        "kibana.alert.rule.rule_id": rule.rule_id,
        "kibana.alert.rule.rule_type_id": "siem.esqlRule",
        "kibana.alert.rule.severity": rule.severity,
        "kibana.alert.rule.tags": list(rule.tags),
        "kibana.alert.rule.threat": [dict(t) for t in rule.threat],
        "kibana.alert.rule.to": rule.to,
        "kibana.alert.rule.type": rule.type,
        "kibana.alert.rule.uuid": rule.rule_id,
        "kibana.alert.rule.parameters.query": rule.query,
        "kibana.alert.rule.parameters.language": rule.language,
    }
    raw = rule.raw
    fields.update(
        {
            "kibana.alert.rule.note": rule.note,
            "kibana.alert.rule.setup": rule.setup,
            "kibana.alert.rule.version": raw.get("version", 1),
            "kibana.alert.rule.revision": 0,
            "kibana.alert.rule.risk_score_mapping": list(raw.get("risk_score_mapping", [])),
            "kibana.alert.rule.severity_mapping": list(raw.get("severity_mapping", [])),
            "kibana.alert.rule.indices": [],  # ES|QL rules name their indices in FROM
            "kibana.alert.rule.actions": [],
        }
    )
    created, updated = rule.metadata.get("creation_date"), rule.metadata.get("updated_date")
    if isinstance(created, str):
        fields["kibana.alert.rule.created_at"] = _metadata_date(created)
    if isinstance(updated, str):
        fields["kibana.alert.rule.updated_at"] = _metadata_date(updated)
    for key in ("rule_name_override", "building_block_type"):
        if isinstance(raw.get(key), str):
            fields[f"kibana.alert.rule.{key}"] = raw[key]
    if raw.get("building_block_type") == "default":
        fields["kibana.alert.building_block_type"] = "default"
    if rule.timestamp_override:
        fields["kibana.alert.rule.timestamp_override"] = rule.timestamp_override
    if rule.alert_suppression is not None:
        # The rule's params as Kibana stores them (snake_case, as in the TOML).
        fields["kibana.alert.rule.parameters.alert_suppression"] = dict(rule.alert_suppression)
    return fields


def _metadata_date(text: str) -> str:
    """detection-rules' YYYY/MM/DD metadata dates as Elasticsearch dates (midnight UTC)."""
    return text.replace("/", "-") + "T00:00:00.000Z"


def _first(doc: Mapping[str, object], key: str) -> str | None:
    value = doc.get(key)
    if isinstance(value, list):
        value = value[0] if value else None
    return None if value is None else str(value)


def reason(doc: Mapping[str, object], rule: Rule) -> str:
    """reason_formatters.ts buildReasonMessageUtil: the parts present in the merged document."""
    text = ""
    category = doc.get("event.category")
    if category is not None:
        text += (
            ", ".join(map(str, category)) if isinstance(category, list) else str(category)
        ) + " "
    text += "event"
    if (process := _first(doc, "process.name")) is not None:
        text += f" with process {process},"
    if (src := _first(doc, "source.ip")) is not None:
        port = _first(doc, "source.port")
        text += f" from {src}{':' + port if port else ''},"
    if (dst := _first(doc, "destination.ip")) is not None:
        port = _first(doc, "destination.port")
        text += f" to {dst}{':' + port if port else ''},"
    if (file_name := _first(doc, "file.name")) is not None:
        text += f" file {file_name},"
    if (user := _first(doc, "user.name")) is not None:
        text += f" by {user}"
    if (host := _first(doc, "host.name")) is not None:
        text += f" on {host}"
    return f"{text} created {rule.severity} alert {rule.name}."


def plain(value: object) -> object:
    """A result value as JSON: datetimes in Elasticsearch's format, lists element-wise."""
    if isinstance(value, datetime):
        return format_datetime(value)
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    return value
