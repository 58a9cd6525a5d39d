"""Rule + events -> expected alerts, for the seed, the current upstream and the port-scan rule.

Cases are data (cases/*.json, written by build_cases.py); expected alerts are data
(expected/*.json). Regenerate expected files with RECONWATCH_REGEN=1 (off by default).
"""

from __future__ import annotations

import importlib.util
import ipaddress
import json
import os
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from reconwatch.engine.detect import Schedule, detect
from reconwatch.plan.values import format_datetime, parse_datetime
from reconwatch.rules.builtin import resolve_rule
from reconwatch.rules.exceptions import load_exceptions
from reconwatch.rules.load import load_rule_file

HERE = Path(__file__).resolve().parent
_spec = importlib.util.spec_from_file_location("rule_conformance_backend", HERE / "backend.py")
assert _spec is not None and _spec.loader is not None
_backend = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_backend)
backend_for = _backend.backend_for
CASES = sorted((HERE / "cases").glob("*.json"))
REGEN = os.environ.get("RECONWATCH_REGEN") == "1"
SUPPRESSION_ID = "kibana.alert.instance.id"
KEPT = (
    "kibana.alert.uuid",
    "kibana.alert.rule.rule_id",
    "kibana.alert.severity",
    "kibana.alert.reason",
)


def _dotted(doc: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in doc.items():
        if isinstance(v, dict):
            out.update(_dotted(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _set(doc: dict[str, Any], path: str, value: object, dotted: bool) -> None:
    if dotted:
        doc[path] = value
        return
    *parents, leaf = path.split(".")
    for p in parents:
        doc = doc.setdefault(p, {})
    doc[leaf] = value


def expand(group: dict[str, Any]) -> list[dict[str, Any]]:
    start = parse_datetime(group["start"])
    events = []
    for i in range(group["count"]):
        doc = json.loads(json.dumps(group["doc"]))
        if group["dotted"]:
            doc = _dotted(doc)
        at = start + timedelta(seconds=i * group["step_seconds"])
        _set(doc, "@timestamp", format_datetime(at), True)
        if group["ingested_lag_seconds"] is not None:
            lag = timedelta(seconds=group["ingested_lag_seconds"])
            _set(doc, "event.ingested", format_datetime(at + lag), group["dotted"])
        for field, how in group["vary"].items():
            if "ip_from" in how:
                value: object = str(ipaddress.ip_address(how["ip_from"]) + i)
            elif "int_from" in how:
                value = how["int_from"] + i
            else:
                value = how["const"]
            _set(doc, field, value, group["dotted"])
        events.append(doc)
    return events


def project(alert: dict[str, Any]) -> dict[str, Any]:
    """What a case pins down: identity, the query's columns, and evidence counts."""
    out = {k: alert[k] for k in KEPT}
    out.update(
        {
            k: v
            for k, v in alert.items()
            if k.startswith(("Esql.", "kibana.alert.suppression."))
            or k
            in ("process.executable", "destination.ip", "agent.id", "host.name", SUPPRESSION_ID)
        }
    )
    ev = alert.get("reconwatch.evidence", {})
    out["evidence"] = {
        "event_count": ev.get("event_count"),
        "distinct_ips": ev.get("destination", {}).get("distinct_ips"),
        "first_seen": ev.get("first_seen"),
        "last_seen": ev.get("last_seen"),
    }
    return out


def run_case(path: Path) -> dict[str, Any]:
    case = json.loads(path.read_text())
    events = [e for g in case["groups"] for e in expand(g)]
    backend = backend_for(events)
    lists = [load_exceptions(HERE / "rules" / case["exceptions"])] if "exceptions" in case else []
    rules = (
        [load_rule_file(HERE / "rules" / case["rule_file"])]
        if "rule_file" in case
        else [resolve_rule(r) for r in case["rules"]]
    )
    schedule = Schedule(at=parse_datetime(case["now"]))
    result: dict[str, Any] = {}
    for rule in rules:
        report = detect([rule], backend, schedule, exceptions=lists)
        result[rule.label if rule.builtin else Path(rule.path).name] = {
            "alerts": [project(a) for a in report.alerts],
            "warnings": [w.split(": ", 1)[1] for w in report.warnings],
        }
    return result


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_case(path: Path) -> None:
    got = run_case(path)
    expected_path = HERE / "expected" / path.name
    if REGEN:
        expected_path.parent.mkdir(exist_ok=True)
        expected_path.write_text(json.dumps(got, indent=1, sort_keys=True) + "\n")
    assert expected_path.exists(), (
        f"no expected file; run with RECONWATCH_REGEN=1 once: {expected_path}"
    )
    assert got == json.loads(expected_path.read_text())
