"""Whole queries on the reference interpreter: the seed rule's thresholds and Elasticsearch's row rules."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

from reconwatch.backends.reference import EvalContext, compile_agg, compile_expr, execute
from reconwatch.esql.analyze import compile_query
from reconwatch.plan import nodes as p
from reconwatch.plan.catalog import StaticCatalog
from reconwatch.types import DataType as T

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
FIELDS = {
    "@timestamp": T.DATETIME,
    "host.os.type": T.KEYWORD,
    "event.type": T.KEYWORD,
    "event.action": T.KEYWORD,
    "process.executable": T.KEYWORD,
    "destination.ip": T.IP,
    "destination.port": T.LONG,
    "agent.id": T.KEYWORD,
    "host.name": T.KEYWORD,
    "message": T.KEYWORD,
}
CATALOG = StaticCatalog({n: p.Column(n, t) for n, t in FIELDS.items()})
SEED = """from logs-endpoint.events.network-*
| keep @timestamp, host.os.type, event.type, event.action, process.executable, destination.ip, agent.id, host.name
| where @timestamp > now() - 1 hours and host.os.type == "linux" and event.type == "start" and event.action == "connection_attempted"
| stats Esql.event_count = count(), Esql.destination_ip_count_distinct = count_distinct(destination.ip), Esql.agent_id_count_distinct = count_distinct(agent.id), Esql.host_name_values = values(host.name), Esql.agent_id_values = values(agent.id) by process.executable
| where Esql.agent_id_count_distinct == 1 and Esql.destination_ip_count_distinct > 250
| sort Esql.event_count asc
| limit 100"""


def events(n: int, **overrides: object) -> Iterator[dict[str, object]]:
    for i in range(n):
        event: dict[str, object] = {
            "@timestamp": (NOW - timedelta(minutes=10)).isoformat(),
            "host.os.type": "linux",
            "event.type": "start",
            "event.action": "connection_attempted",
            "process.executable": "/usr/bin/nmap",
            "destination.ip": f"10.0.{i // 250}.{i % 250}",
            "agent.id": "agent-1",
            "host.name": "web-1",
        }
        event.update(overrides)
        yield event


def run(query: str, rows: list[dict[str, object]]) -> list[dict[str, object]]:
    return execute(compile_query(query, CATALOG), rows, NOW).as_dicts()


# ---------------------------------------------------------------------------------------------
# The seed rule


def test_seed_rule_fires_at_251_distinct_ips_not_250() -> None:
    plan = compile_query(SEED, CATALOG)
    assert execute(plan, events(250), NOW).rows == []
    result = execute(plan, events(251), NOW)
    assert result.as_dicts() == [
        {
            "Esql.event_count": 251,
            "Esql.destination_ip_count_distinct": 251,
            "Esql.agent_id_count_distinct": 1,
            "Esql.host_name_values": "web-1",
            "Esql.agent_id_values": "agent-1",
            "process.executable": "/usr/bin/nmap",
        }
    ]


def test_seed_rule_repeated_ips_count_once() -> None:
    plan = compile_query(SEED, CATALOG)
    rows = list(events(251)) + list(events(100))
    (hit,) = execute(plan, rows, NOW).as_dicts()
    assert hit["Esql.event_count"] == 351 and hit["Esql.destination_ip_count_distinct"] == 251


def test_seed_rule_multivalued_event_type_drops_rows_with_warning() -> None:
    plan = compile_query(SEED, CATALOG)
    result = execute(plan, events(300, **{"event.type": ["start", "connection"]}), NOW)
    assert result.rows == []
    assert result.warnings == [
        (
            'Line 3:70: evaluation of [event.type == "start"] failed, treating result as null. '
            "Only first 20 failures recorded."
        ),
        "Line 3:70: java.lang.IllegalArgumentException: single-value function encountered multi-value",
    ]


def test_seed_rule_one_element_list_is_single_value() -> None:
    plan = compile_query(SEED, CATALOG)
    assert len(execute(plan, events(251, **{"event.type": ["start"]}), NOW).rows) == 1


def test_seed_rule_time_window_and_two_agents() -> None:
    plan = compile_query(SEED, CATALOG)
    old = list(events(251, **{"@timestamp": (NOW - timedelta(hours=2)).isoformat()}))
    assert execute(plan, old, NOW).rows == []
    two_agents = list(events(251)) + list(events(1, **{"agent.id": "agent-2"}))
    assert execute(plan, two_agents, NOW).rows == []


def test_seed_rule_ipv4_mapped_ipv6_counts_as_ipv4() -> None:
    plan = compile_query(SEED, CATALOG)
    rows = list(events(251)) + list(events(1, **{"destination.ip": "::ffff:10.0.0.0"}))
    (hit,) = execute(plan, rows, NOW).as_dicts()
    assert hit["Esql.destination_ip_count_distinct"] == 251


# ---------------------------------------------------------------------------------------------
# STATS


def test_multivalued_by_key_puts_the_whole_row_in_every_group() -> None:
    rows = [
        {"host.name": ["a", "b"], "destination.port": 22},
        {"host.name": "a", "destination.port": 80},
    ]
    got = run(
        "from x | stats c = count(*), p = values(destination.port), h = values(host.name) "
        "by host.name | sort host.name",
        rows,
    )
    assert got == [
        {"c": 2, "p": [22, 80], "h": ["a", "b"], "host.name": "a"},
        {"c": 1, "p": 22, "h": ["a", "b"], "host.name": "b"},
    ]


def test_null_key_is_a_group_and_empty_inputs() -> None:
    rows = [{"host.name": None}, {"host.name": "a"}]
    got = run("from x | stats c = count(*) by host.name | sort host.name", rows)
    assert got == [{"c": 1, "host.name": "a"}, {"c": 1, "host.name": None}]
    assert run("from x | stats c = count(*), m = max(destination.port)", []) == [
        {"c": 0, "m": None}
    ]
    assert run("from x | stats c = count(*) by host.name", []) == []


def test_count_field_counts_values_count_star_counts_rows() -> None:
    rows = [{"event.type": ["a", "b", "c"]}, {"event.type": None}, {"event.type": "a"}]
    assert run("from x | stats f = count(event.type), r = count(*)", rows) == [{"f": 4, "r": 3}]


def test_per_aggregate_filter_and_lowered_expressions() -> None:
    rows = [{"destination.port": p} for p in (22, 80, 443, 8080)]
    got = run(
        "from x | stats low = count(*) where destination.port < 1024, "
        "avg2 = round(avg(destination.port) / 2, 1), n = count(*)",
        rows,
    )
    assert got == [{"low": 3, "avg2": 1078.1, "n": 4}]


# ---------------------------------------------------------------------------------------------
# SORT, LIMIT, MV_EXPAND, KEEP


def test_sort_nulls_and_multivalues() -> None:
    rows = [
        {"destination.port": None, "host.name": "n"},
        {"destination.port": [5, 50], "host.name": "mv"},
        {"destination.port": 10, "host.name": "ten"},
    ]
    asc = run("from x | sort destination.port | keep host.name", rows)
    assert [r["host.name"] for r in asc] == ["mv", "ten", "n"]
    desc = run("from x | sort destination.port desc | keep host.name", rows)
    assert [r["host.name"] for r in desc] == ["n", "mv", "ten"]
    last = run("from x | sort destination.port desc nulls last | keep host.name", rows)
    assert [r["host.name"] for r in last] == ["mv", "ten", "n"]


def test_ip_sort_order_is_ipv6_byte_order() -> None:
    ips = ["fe80::1", "127.0.0.1", "::1", "10.0.0.1"]
    got = run(
        "from x | sort destination.ip | keep destination.ip", [{"destination.ip": i} for i in ips]
    )
    assert [r["destination.ip"] for r in got] == ["::1", "10.0.0.1", "127.0.0.1", "fe80::1"]


def test_limit_and_implicit_limit() -> None:
    rows = [{"destination.port": i} for i in range(1500)]
    assert len(run("from x | keep destination.port", rows)) == 1000
    assert len(run("from x | keep destination.port | limit 3", rows)) == 3


def test_mv_expand() -> None:
    rows = [
        {"event.action": ["a", "b"], "host.name": "h"},
        {"event.action": None, "host.name": "g"},
    ]
    got = run("from x | mv_expand event.action | keep host.name, event.action", rows)
    assert got == [
        {"host.name": "h", "event.action": "a"},
        {"host.name": "h", "event.action": "b"},
        {"host.name": "g", "event.action": None},
    ]


def test_input_cells_are_coerced_to_column_types() -> None:
    rows = [{"destination.port": "443", "destination.ip": "::ffff:1.2.3.4", "@timestamp": 0}]
    (got,) = run("from x | keep destination.port, destination.ip, @timestamp", rows)
    assert got == {
        "destination.port": 443,
        "destination.ip": "1.2.3.4",
        "@timestamp": datetime(1970, 1, 1, tzinfo=UTC),
    }


# ---------------------------------------------------------------------------------------------
# DISSECT, GROK, metadata


def test_dissect_and_grok() -> None:
    rows = [{"message": "GET https://evil.example:8443/x 200"}]
    got = run('from x | dissect message "%{method} %{url} %{status}" | keep method, status', rows)
    assert got == [{"method": "GET", "status": "200"}]
    got = run(
        'from x | grok message "%{URIPROTO:proto}://%{URIHOST:host}%{GREEDYDATA} %{INT:code:int}" '
        "| keep proto, host, code",
        rows,
    )
    assert got == [{"proto": "https", "host": "evil.example:8443", "code": 200}]
    got = run('from x | dissect message "%{a} nomatch %{b}" | keep a', rows)
    assert got == [{"a": None}]


def test_source_metadata_is_document_json() -> None:
    rows = [{"message": "m", "sip.method": "REGISTER", "_index": "logs-a"}]
    got = run(
        'from x metadata _source, _index | eval m = json_extract(_source, "sip.method") '
        "| keep m, _index",
        rows,
    )
    assert got == [{"m": "REGISTER", "_index": "logs-a"}]


# ---------------------------------------------------------------------------------------------
# Reusable pieces for the streaming executor


def test_compile_expr_and_compile_agg_are_reusable() -> None:
    plan = compile_query('from x | where host.name == "a" and destination.port > 10', CATALOG)
    step = plan.steps[0]
    assert isinstance(step, p.Filter)
    cond = compile_expr(step.condition, EvalContext(now=NOW))
    assert cond({"host.name": "a", "destination.port": 11}) is True
    assert cond({"host.name": "a", "destination.port": None}) is None
    agg_plan = compile_query("from x | stats d = count_distinct(destination.ip)", CATALOG)
    agg_step = agg_plan.steps[0]
    assert isinstance(agg_step, p.Aggregate)
    spec = compile_agg(agg_step.aggregates[0][1])
    state = spec.new()
    for ip in ("10.0.0.1", "10.0.0.2", "10.0.0.1"):
        state.add({"destination.ip": ip})
    assert state.result() == 2


def test_or_of_constant_tests_on_one_field_warns_at_the_field() -> None:
    rows = [{"destination.ip": ["10.0.0.1", "10.0.0.2"]}]
    query = (
        'from x | where cidr_match(destination.ip, "10.0.0.0/8") or destination.ip == "192.168.0.1"'
    )
    result = execute(compile_query(query, CATALOG), rows, NOW)
    assert result.rows == []
    assert result.warnings[0].startswith("Line 1:27: evaluation of [destination.ip] failed")
    single = 'from x | where cidr_match(destination.ip, "10.0.0.0/8")'
    result = execute(compile_query(single, CATALOG), rows, NOW)
    assert 'evaluation of [cidr_match(destination.ip, "10.0.0.0/8")] failed' in result.warnings[0]
