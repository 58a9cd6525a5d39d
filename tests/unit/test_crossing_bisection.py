"""The crossing point of rules without a one-pass count (the pack's two-STATS campaign rule):
the whole rule re-run over time prefixes of the group's events, by bisection, checked."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from reconwatch.engine.bisection import MAX_RUNS, NotFound, first_holding
from reconwatch.engine.detect import DatasetBackend, Schedule, detect
from reconwatch.engine.run import RuleExecutor
from reconwatch.engine.schedule import RunWindow
from reconwatch.esql import ast
from reconwatch.ingest import Dataset
from reconwatch.plan.nodes import Column
from reconwatch.plan.values import format_datetime
from reconwatch.query import Result
from reconwatch.rules.builtin import load_builtin
from reconwatch.service.ui import pages
from reconwatch.service.ui.context import stored_crossing

T0 = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)


def _times(n: int) -> list[datetime]:
    return [T0 + timedelta(seconds=i) for i in range(n)]


def test_a_monotone_condition_is_found_exactly_in_logarithmic_runs() -> None:
    times = _times(1000)
    calls: list[datetime] = []

    def holds(at: datetime) -> bool:
        calls.append(at)
        return at >= times[637]

    at, runs = first_holding(times, holds)
    assert at == times[637]
    assert runs == len(calls) == len(set(calls))
    assert runs <= 1 + 10 + 4  # the full prefix, the search, the probes


def test_a_condition_that_holds_then_stops_is_not_monotone() -> None:
    """Holds over [100, 400) and from 900 on: the search lands on 900, a probe before it holds."""
    times = _times(1000)
    with pytest.raises(NotFound, match="not monotone"):
        first_holding(times, lambda at: times[100] <= at < times[400] or at >= times[900])


def test_no_prefix_holding_and_too_many_times_say_why() -> None:
    with pytest.raises(NotFound, match="does not yield the alert"):
        first_holding(_times(10), lambda at: False)
    with pytest.raises(NotFound, match=f"over {MAX_RUNS}"):
        first_holding([T0] * (2**19 + 1), lambda at: True)


def _event(second: int, host: int, action: str, ip: str, outcome: str | None = None) -> str:
    doc: dict[str, object] = {
        "@timestamp": format_datetime(T0 + timedelta(seconds=second)),
        "event": {"action": action, **({"outcome": outcome} if outcome else {})},
        "host": {"id": f"host-{host}", "name": f"web-0{host}", "os": {"type": "linux"}},
        "process": {"executable": "/usr/bin/nmap", "name": "nmap", "entity_id": f"p{host}"},
        "destination": {"ip": ip, "port": 22},
    }
    return json.dumps(doc)


def _attempts(first: int, host: int, addresses: range) -> list[str]:
    return [
        _event(first + i, host, "connection_attempted", f"10.{host}.0.{a}")
        for i, a in enumerate(addresses)
    ]


def _campaign(tmp_path: Path, lines: list[str]) -> dict[str, object]:
    """The campaign rule's one alert over the events, run a minute after the last."""
    evidence = _alert(tmp_path, lines)["reconwatch.evidence"]
    assert isinstance(evidence, dict)
    crossing = evidence["crossing"]
    assert isinstance(crossing, dict)
    return crossing


def _alert(tmp_path: Path, lines: list[str]) -> dict[str, object]:
    path = tmp_path / "fleet.ndjson"
    path.write_text("\n".join(lines) + "\n")
    backend = DatasetBackend(Dataset.from_files([path]))
    last = max(json.loads(line)["@timestamp"] for line in lines)
    at = datetime.fromisoformat(last.replace("Z", "+00:00")) + timedelta(minutes=1)
    report = detect([load_builtin("recon-campaign")], backend, Schedule(at=at))
    assert not report.failures
    (alert,) = report.alerts
    return alert


def _fleet() -> list[str]:
    """web-01 sweeps 60 addresses from second 0, web-02 60 from second 100: the campaign
    (two hosts of >= 50 addresses each) holds from web-02's 50th, at second 149."""
    return [*_attempts(0, 1, range(1, 61)), *_attempts(100, 2, range(1, 61))]


def test_the_campaign_rule_crosses_at_the_second_hosts_fiftieth_address(tmp_path: Path) -> None:
    alert = _alert(tmp_path, _fleet())
    evidence = alert["reconwatch.evidence"]
    assert isinstance(evidence, dict)
    crossing = evidence["crossing"]
    assert crossing["at"] == format_datetime(T0 + timedelta(seconds=149))
    assert crossing["method"] == "bisection"
    runs = crossing["runs"]
    assert isinstance(runs, int) and 8 <= runs <= MAX_RUNS  # 120 times: 1 + 7 + probes
    # The page and the report draw it from the alert as stored.
    stored = stored_crossing(alert)
    assert stored.at == T0 + timedelta(seconds=149)
    report = pages.report_markdown(alert, stored, None)
    assert f"Condition first met: 2026-03-01T10:02:29.000Z (bisection, {runs} rule runs)" in report
    assert "crossed 10:02:29" in pages.timeline_html(alert, stored)


class _Unpinned:
    """The dataset's backend without `pin`: every probe runs the whole rule over the source."""

    def __init__(self, backend: DatasetBackend) -> None:
        self.backend = backend
        self.runs = 0

    def run(self, query: ast.Query, *, now: datetime) -> Result:
        self.runs += 1
        return self.backend.run(query, now=now)

    def columns(self, query: ast.Query) -> tuple[Column, ...]:
        return self.backend.columns(query)


def test_without_a_pinned_result_the_rule_runs_over_the_source(tmp_path: Path) -> None:
    path = tmp_path / "fleet.ndjson"
    path.write_text("\n".join(_fleet()) + "\n")
    backend = _Unpinned(DatasetBackend(Dataset.from_files([path])))
    executor = RuleExecutor(load_builtin("recon-campaign"), backend)
    at = T0 + timedelta(minutes=5)
    (alert,) = executor.run(RunWindow(at, at - timedelta(minutes=65), at)).alerts
    evidence = alert["reconwatch.evidence"]
    assert isinstance(evidence, dict)
    assert evidence["crossing"]["at"] == format_datetime(T0 + timedelta(seconds=149))
    assert backend.runs >= evidence["crossing"]["runs"]


def test_a_campaign_that_holds_stops_and_holds_again_keeps_no_crossing(tmp_path: Path) -> None:
    """The campaign holds from second 99; web-01's addresses then answer (45 of 50 answered is
    no fan-out any more: the 90 % bound), 200 failed results later it probes two new ones and
    holds again. Bisection lands on that second rise; a probe before it holds: not monotone."""
    lines = [*_attempts(0, 1, range(1, 51)), *_attempts(50, 2, range(1, 51))]
    lines += [
        _event(100 + i, 1, "connection_result", f"10.1.0.{i + 1}", "success") for i in range(46)
    ]
    lines += [
        _event(146 + i, 1, "connection_result", f"10.1.0.{47 + i % 4}", "failure")
        for i in range(200)
    ]
    lines += _attempts(346, 1, range(51, 53))
    crossing = _campaign(tmp_path, lines)
    assert crossing["at"] is None
    reason = crossing["reason"]
    assert isinstance(reason, str)
    assert reason.startswith("the rule aggregates more than once; by bisection: ")
    assert "not monotone" in reason
