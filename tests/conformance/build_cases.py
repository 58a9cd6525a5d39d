"""The conformance cases as data: `python tests/conformance/build_cases.py` rewrites cases/*.json."""

from __future__ import annotations

import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
NOW = "2025-07-16T10:00:00.000Z"
AGENT_A = "a6f1c0de-0000-4000-8000-00000000000a"
AGENT_B = "b6f1c0de-0000-4000-8000-00000000000b"


def sweep(
    count: int,
    *,
    ip_from: str = "10.1.0.1",
    agent: str = AGENT_A,
    host: str = "db-002",
    exe: str = "/usr/bin/nmap",
    start: str = "2025-07-16T09:20:00.000Z",
    lag: float | None = 2.0,
    dotted: bool = False,
    port_from: int | None = None,
    fixed_ip: str | None = None,
    os_type: str = "linux",
    event_type: object = "start",
) -> dict[str, object]:
    vary: dict[str, object] = {}
    if fixed_ip is None:
        vary["destination.ip"] = {"ip_from": ip_from}
    vary["destination.port"] = {"int_from": port_from} if port_from is not None else {"const": 443}
    doc: dict[str, object] = {
        "event": {"action": "connection_attempted", "type": event_type, "category": ["network"]},
        "host": {"name": host, "os": {"type": os_type}},
        "agent": {"id": agent},
        "process": {"executable": exe, "name": exe.rsplit("/", 1)[-1]},
        "network": {"direction": "egress", "transport": "tcp"},
        "source": {"ip": "10.20.10.12"},
        "data_stream": {
            "dataset": "endpoint.events.network",
            "namespace": "default",
            "type": "logs",
        },
    }
    if fixed_ip is not None:
        doc["destination"] = {"ip": fixed_ip}
    return {
        "count": count,
        "doc": doc,
        "vary": vary,
        "start": start,
        "step_seconds": 0.5,
        "ingested_lag_seconds": lag,
        "dotted": dotted,
    }


CASES: dict[str, dict[str, object]] = {
    "ips_250": {"groups": [sweep(250)], "note": "250 distinct IPs: not > 250"},
    "ips_251": {"groups": [sweep(251)], "note": "251 distinct IPs: alert"},
    "two_hosts": {
        "groups": [sweep(200), sweep(200, ip_from="10.2.0.1", agent=AGENT_B, host="web-001")],
        "note": "same executable on two hosts: agent count 2, no alert",
    },
    "multivalued_event_type": {
        "groups": [sweep(300, event_type=["start", "connection"])],
        "note": "event.type == 'start' is null on a multivalue: rows dropped",
    },
    "nested_and_dotted": {
        "groups": [sweep(150), sweep(150, ip_from="10.1.1.1", dotted=True)],
        "note": "nested and dotted documents are the same fields",
    },
    "outside_window_timestamp": {
        "groups": [
            sweep(251),
            sweep(40, ip_from="10.9.0.1", start="2025-07-16T08:30:00.000Z", lag=None),
        ],
        "note": "events without event.ingested fall back to @timestamp; 08:30 is before the window",
    },
    "outside_window_ingested": {
        "groups": [
            sweep(240),
            sweep(40, ip_from="10.9.0.1", start="2025-07-16T09:58:00.000Z", lag=600.0),
        ],
        "note": "ingested after the run: not in this window even though @timestamp is",
    },
    "missing_ingested": {
        "groups": [sweep(260, lag=None)],
        "note": "no event.ingested: @timestamp decides",
    },
    "linux_capitalised": {"groups": [sweep(300, os_type="Linux")], "note": "'Linux' != 'linux'"},
    "ipv6": {"groups": [sweep(300, ip_from="fd00:30::1")], "note": "IPv6 destinations count"},
    "exception_executable": {
        "groups": [sweep(300)],
        "exceptions": "nmap.toml",
        "note": "exception on process.executable",
    },
    "exception_agent": {
        "groups": [sweep(300)],
        "exceptions": "agent.ndjson",
        "note": "exception on agent.id",
    },
    "max_signals": {
        # Distinct counts: `sort Esql.event_count asc` must decide which two rows make alerts
        # (ES|QL leaves the order of ties unspecified).
        "groups": [
            sweep(260 + 10 * i, exe=f"/tmp/scan{i}", ip_from=f"10.{i + 1}.0.1") for i in range(3)
        ],
        "rule_file": "seed_max_signals_2.toml",
        "note": "3 rows, max_signals 2: the two smallest by event count",
    },
    "suppressed_by_host": {
        # Four executables scan, three on db-002: per rule execution, one alert per host; the
        # db-002 alert (the first row: fewest events) stands for the other two.
        "groups": [
            *(
                sweep(260 + 10 * i, exe=f"/tmp/scan{i}", ip_from=f"10.{i + 1}.0.1")
                for i in range(3)
            ),
            sweep(300, exe="/tmp/other", ip_from="10.9.0.1", agent=AGENT_B, host="web-001"),
        ],
        "rule_file": "seed_suppressed_by_host.toml",
        "note": "alert suppression by Esql.host_name_values: 4 rows, 2 alerts, docs_count 2 and 0",
    },
    "port_100": {
        "groups": [sweep(100, fixed_ip="10.20.10.29", port_from=1)],
        "rules": ["port-scanning"],
        "note": "100 distinct ports: not > 100",
    },
    "port_101": {
        "groups": [sweep(101, fixed_ip="10.20.10.29", port_from=1)],
        "rules": ["port-scanning"],
        "note": "101 distinct ports: alert",
    },
}


def main() -> None:
    out = HERE / "cases"
    out.mkdir(exist_ok=True)
    for name, case in CASES.items():
        case = {"now": NOW, "rules": ["subnet-scanning-seed", "subnet-scanning"], **case}
        (out / f"{name}.json").write_text(json.dumps(case, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
