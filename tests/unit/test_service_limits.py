"""Query limits beyond query and detect: the service's store (ES|QL API, scheduled runs) and watch
stop a runaway query with one clear line, and the service goes on serving."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from conftest import Clock, iso_ms, run_cli
from reconwatch.errors import ConfigError
from reconwatch.plan.limits import QueryLimits
from reconwatch.rules.builtin import DEFAULT_RULE, builtin_text
from reconwatch.rules.load import load_rule_text
from reconwatch.service.app import Limits, Service, build_app, open_service
from reconwatch.service.config import ServiceConfig, load_config
from reconwatch.service.scheduler import Scheduler
from reconwatch.service.server import running
from reconwatch.store import Store
from reconwatch.store.events import NewEvent

T0 = datetime(2026, 3, 1, 0, 0, tzinfo=UTC)
NET = "logs-endpoint.events.network-default"
# Two MV_EXPANDs of 100,001 values each: 10^10 rows to count, far more than any budget allows.
HEAVY = (
    'ROW s = repeat("a,", 100000) | EVAL v = split(s, ","), w = v '
    "| MV_EXPAND v | MV_EXPAND w | STATS c = count(*)"
)
# Five doublings of 256 KiB stay under the multivalue bound but not under 16 MB of DuckDB memory.
HUNGRY = 'ROW a = repeat("x", 262144) ' + "| EVAL a = mv_append(a, a) " * 5 + "| KEEP a"
TIMED_OUT = "query cancelled: it ran past its time budget of 0.05 s (--timeout)"


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Service, str]]:
    clock = Clock(T0)
    store = Store(tmp_path, clock)
    service = open_service(store, Limits())
    service.query_limits = QueryLimits(seconds=0.05)
    with running(build_app(service)) as url:
        yield service, url
    service.close()


def test_esql_request_past_its_budget_is_cancelled_and_the_service_goes_on(
    served: tuple[Service, str],
) -> None:
    _, url = served
    r = httpx.post(f"{url}/_query", json={"query": HEAVY}, timeout=60)
    assert r.status_code == 400
    assert r.json()["error"]["type"] == "task_cancelled_exception"
    assert r.json()["error"]["reason"] == TIMED_OUT
    r = httpx.post(f"{url}/_query", json={"query": "ROW a = 1"}, timeout=60)
    assert r.status_code == 200 and r.json()["values"] == [[1]]


def test_esql_request_past_the_memory_limit_is_stopped_and_the_service_goes_on(
    served: tuple[Service, str],
) -> None:
    service, url = served
    service.query_limits = QueryLimits(memory="16MB")
    r = httpx.post(f"{url}/_query", json={"query": HUNGRY}, timeout=60)
    assert r.status_code == 429
    assert r.json()["error"]["type"] == "circuit_breaking_exception"
    assert r.json()["error"]["reason"] == (
        "query stopped: it needs more than its memory limit of 16MB (--memory-limit)"
    )
    service.query_limits = QueryLimits()
    r = httpx.post(f"{url}/_query", json={"query": HUNGRY.replace("* 5", "* 1")}, timeout=60)
    assert r.status_code == 200


def test_a_scheduled_run_past_its_budget_fails_alone(tmp_path: Path) -> None:
    """The run is recorded with the budget's error; the next rule and the next run go on."""
    clock = Clock(T0 + timedelta(hours=1))
    store = Store(tmp_path, clock)
    text = builtin_text(DEFAULT_RULE)
    start = text.index("query = '''") + len("query = '''")
    end = text.index("'''", start)
    heavy = (
        "\nfrom logs-endpoint.events.network-*\n| keep @timestamp, process.executable\n"
        "| where @timestamp > now() - 1 hours\n"
        '| eval s = repeat("a,", 100000) | eval v = split(s, ","), w = v\n'
        "| mv_expand v | mv_expand w | stats c = count(*) by process.executable\n"
    )
    rule = load_rule_text(text[:start] + heavy + text[end:], "heavy.toml")
    event = {
        "@timestamp": iso_ms(T0 + timedelta(minutes=30)),
        "process": {"executable": "/tmp/x"},
    }
    store.write([NewEvent("index", NET, None, event)])
    scheduler = Scheduler(
        store, [rule], clock, evidence=False, query_limits=QueryLimits(seconds=0.05)
    )
    (outcome,) = scheduler.tick()
    assert outcome.record.error == TIMED_OUT
    store.close()


def test_service_settings_take_the_limits(tmp_path: Path) -> None:
    config = tmp_path / "serve.toml"
    config.write_text('memory_limit = "512mb"\nquery_timeout = 30\n')
    settings = load_config(config)
    assert (settings.memory_limit, settings.query_timeout) == ("512MB", 30.0)
    assert ServiceConfig().query_limits() == QueryLimits("2GB", 300.0)
    config.write_text("query_timeout = 0\n")
    assert load_config(config).query_timeout is None
    for bad in ('memory_limit = "lots"', "query_timeout = -1", 'query_timeout = "5m"'):
        config.write_text(bad + "\n")
        with pytest.raises(ConfigError):
            load_config(config)


def _heavy_rule(tmp_path: Path) -> Path:
    """The seed rule over a window, made to expand each event's process.args against itself
    (3,000 values: 9 million rows for one event)."""
    text = builtin_text(DEFAULT_RULE)
    start = text.index("query = '''") + len("query = '''")
    end = text.index("'''", start)
    heavy = (
        "\nfrom logs-endpoint.events.network-*\n| keep @timestamp, process.args\n"
        "| where @timestamp > now() - 1 hours\n| eval w = process.args\n"
        "| mv_expand process.args | mv_expand w\n"
        "| stats c = sum(to_long(w)) by process.args\n"
    )
    path = tmp_path / "heavy.toml"
    path.write_text(text[:start] + heavy + text[end:])
    return path


def test_watch_event_past_its_budget_exits_1_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    events = tmp_path / "events.ndjson"
    event = {
        "@timestamp": "2026-03-01T00:00:00.000Z",
        "process": {"args": [str(i) for i in range(3000)]},
    }
    events.write_text(json.dumps(event) + "\n")
    argv = ["watch", str(events), "--rule", str(_heavy_rule(tmp_path)), "--timeout", "0.05"]
    code, _, err = run_cli(argv, capsys)
    assert code == 1
    assert err.strip().splitlines()[-1] == f"error: {TIMED_OUT}"


def test_watch_refuses_a_bad_limit(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    events = tmp_path / "events.ndjson"
    events.write_text("{}\n")
    code, _, err = run_cli(["watch", str(events), "--memory-limit", "lots"], capsys)
    assert code == 2
    assert "--memory-limit lots: expected a size such as 512MB or 2GB" in err
