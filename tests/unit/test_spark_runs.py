"""Many runs of a STATS rule in one grouped Spark pass (backends/spark/runs.py): each run's result
is the one its own query gives, on Spark alone and on DuckDB, at every window edge; queries the
pass cannot group fall back to a job per run."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import reconwatch.backends.spark as spark_backend
from reconwatch.backends.spark import execute as spark_execute
from reconwatch.backends.spark.runs import execute_runs, plan_shape
from reconwatch.esql.analyze import compile_query
from reconwatch.ingest import Dataset
from reconwatch.query import run_query

FIRST_RUN = datetime(2025, 7, 15, 22, tzinfo=UTC)
RUNS = 5
INTERVAL = timedelta(hours=1)
LOOKBACK = timedelta(minutes=61)  # the seed rule's `from = "now-61m"`: windows overlap
# Kibana's run filter on the rule's timestamp_override (event.ingested), then the seed rule's
# own `@timestamp > now() - 1 hours`: two moving constants per run.
QUERY = (
    'from logs-* | where coalesce(event.ingested, @timestamp) >= "{start}" '
    'and coalesce(event.ingested, @timestamp) <= "{end}" '
    '| where @timestamp > now() - 1 hours and event.action == "connection_attempted" '
    "| stats c = count(), d = count_distinct(destination.ip), h = values(host.name), "
    "first = min(@timestamp) by process.executable "
    "| where c > 0 | sort c desc, process.executable | limit 100"
)


def _stamp(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


def _runs() -> list[tuple[datetime, datetime, datetime]]:
    """(now, start, end) of every run."""
    return [
        (FIRST_RUN + k * INTERVAL, FIRST_RUN + k * INTERVAL - LOOKBACK, FIRST_RUN + k * INTERVAL)
        for k in range(RUNS)
    ]


def _events() -> list[dict[str, object]]:
    """Events on every edge of every window (start, end, now() - 1 hour) and a millisecond
    either side, some with an event.ingested that differs from @timestamp, some with none."""
    ms = timedelta(milliseconds=1)
    times: list[datetime] = []
    for now, start, end in _runs():
        for edge in (start, end, now - timedelta(hours=1)):
            times.extend((edge - ms, edge, edge + ms))
    events: list[dict[str, object]] = []
    for i, when in enumerate(sorted(times)):
        event: dict[str, object] = {
            "@timestamp": _stamp(when),
            "event": {"action": "connection_attempted"},
            "process": {"executable": f"/usr/bin/p{i % 3}"},
            "host": {"name": f"h{i % 4}"},
            "destination": {"ip": f"10.0.{i % 5}.{i % 7}"},
        }
        if i % 4 == 1:
            event["event"] = {"action": "connection_attempted", "ingested": _stamp(when + ms)}
        events.append(event)
    events.append({"event": {"action": "connection_attempted"}, "host": {"name": "no-time"}})
    return events


@pytest.fixture(scope="module")
def events_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("runs") / "edges.ndjson"
    path.write_text("".join(json.dumps(e) + "\n" for e in _events()))
    return path


def _plans(ds: Dataset, query: str = QUERY) -> tuple[list[Any], list[datetime]]:
    runs = _runs()
    plans = [compile_query(query.format(start=_stamp(s), end=_stamp(e)), ds) for _, s, e in runs]
    return plans, [now for now, _, _ in runs]


def test_the_seed_rules_runs_have_a_grouped_shape() -> None:
    """The run filter's two bounds and now() - 1 hours move by the interval: three moving terms."""
    ds = Dataset.from_documents(_events(), index="logs-x")
    plans, nows = _plans(ds)
    shape = plan_shape(plans, nows)
    assert shape is not None
    assert sum(len(terms) for terms in shape.moving.values()) == 3
    hour = int(INTERVAL.total_seconds() * 1_000_000)
    assert {m.stride for terms in shape.moving.values() for m in terms.values()} == {hour}


@pytest.mark.parametrize(
    ("query", "why"),
    [
        (QUERY.replace("| where c > 0", "| eval n = now() | where c > 0"), None),
        (
            QUERY.replace(
                "| stats", "| eval recent = @timestamp > now() - 1 hour | where recent | stats"
            ),
            "now() in an EVAL",
        ),
        (QUERY.split("| stats")[0] + "| keep @timestamp", "no STATS"),
        (QUERY.replace("> now() - 1 hours", "== now() - 1 hours"), "equality with now()"),
    ],
)
def test_which_runs_group(query: str, why: str | None) -> None:
    """now() after the STATS is each run's own (the driver's steps): still grouped. Elsewhere,
    or compared for equality, or with no STATS, the runs go one by one (no Spark started)."""
    ds = Dataset.from_documents(_events(), index="logs-x")
    plans, nows = _plans(ds, query)
    assert (plan_shape(plans, nows) is None) == (why is not None), why
    if why is not None:
        assert execute_runs(plans, ds, nows) is None


def test_uneven_runs_are_not_grouped() -> None:
    ds = Dataset.from_documents(_events(), index="logs-x")
    plans, nows = _plans(ds)
    nows[-1] += timedelta(minutes=1)  # the last run's now() moved, not its window
    assert plan_shape(plans, nows) is None


@pytest.mark.slow
def test_grouped_runs_equal_each_run_alone_and_duckdb(events_file: Path) -> None:
    """Every run's rows and warnings from the grouped pass are those of its own Spark job and of
    DuckDB, with events on every edge of every window."""
    ds = Dataset.from_files([events_file])
    plans, nows = _plans(ds)
    grouped = execute_runs(plans, ds, nows)
    assert grouped is not None
    for (now, start, end), plan, got in zip(_runs(), plans, grouped, strict=True):
        alone = spark_execute.execute(plan, Dataset.from_files([events_file]), now)
        text = QUERY.format(start=_stamp(start), end=_stamp(end))
        duck = run_query(text, Dataset.from_files([events_file]), now=now)
        assert got.columns == alone.columns == duck.columns
        assert got.rows == alone.rows == duck.rows, f"run at {now}"
        assert got.warnings == alone.warnings == duck.warnings
    assert any(r.rows for r in grouped) and len({repr(r.rows) for r in grouped}) > 1


@pytest.mark.slow
def test_detect_groups_the_runs_and_alerts_as_duckdb(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """detect --from/--to on Spark: one grouped pass for the rule's runs, then a job only for
    each alerting run's evidence; the alerts (ids, documents, evidence) are DuckDB's and those
    of the per-run path (a job per run)."""
    from reconwatch.engine.detect import DatasetBackend, Schedule, detect
    from reconwatch.rules.builtin import DEFAULT_RULE, builtin_text
    from reconwatch.rules.load import load_rule_text
    from reconwatch.simulate import Simulation

    start = datetime(2025, 7, 15, 21, tzinfo=UTC)
    sim = Simulation(hosts=5, hours=4, start=start, scans=("subnet",), seed=5)
    ndjson = tmp_path / "fleet.ndjson"
    ndjson.write_text("".join(json.dumps(e) + "\n" for e in sim.events()))
    text = builtin_text(DEFAULT_RULE).replace(
        "destination_ip_count_distinct > 250", "destination_ip_count_distinct > 2"
    )
    rule = load_rule_text(text, "low.toml")
    runs = Schedule(first=start + timedelta(hours=1), last=start + timedelta(hours=4))
    calls = {"alone": 0, "grouped": 0, "ungrouped": 0}
    alone, together = spark_backend.EXECUTOR, spark_backend.RUNS_EXECUTOR

    def one(*args: Any) -> Any:
        calls["alone"] += 1
        return alone(*args)

    def many(*args: Any) -> Any:
        found = together(*args)
        calls["grouped" if found is not None else "ungrouped"] += 1
        return found

    monkeypatch.setattr(spark_backend, "EXECUTOR", one)
    monkeypatch.setattr(spark_backend, "RUNS_EXECUTOR", many)
    duck = detect([rule], DatasetBackend(Dataset.from_files([ndjson])), runs)
    grouped = detect([rule], DatasetBackend(Dataset.from_files([ndjson]), engine="spark"), runs)
    alerting = sum(1 for _, run in grouped.runs if run.alerts)
    assert calls == {"alone": alerting, "grouped": 1, "ungrouped": 0}
    assert alerting and len(grouped.runs) == 3
    monkeypatch.setattr(spark_backend, "RUNS_EXECUTOR", None)  # a job per run, as before
    calls["alone"] = 0
    each = detect([rule], DatasetBackend(Dataset.from_files([ndjson]), engine="spark"), runs)
    assert calls["alone"] == len(each.runs)
    assert duck.alerts, "the low threshold raises alerts"
    assert grouped.alerts == duck.alerts == each.alerts
    for (_, a), (_, b), (_, c) in zip(duck.runs, grouped.runs, each.runs, strict=True):
        assert (a.rows, a.warnings, a.query) == (b.rows, b.warnings, b.query)
        assert (b.rows, b.warnings, b.query) == (c.rows, c.warnings, c.query)
