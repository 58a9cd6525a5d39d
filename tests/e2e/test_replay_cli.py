"""`detect FILES --replay`: every scheduled run across the inputs' own time span, and the runs whose window held none of the events named on stderr."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import run_cli

T0 = 1_600_000_000.0  # 2020-09-13T12:26:40Z, far from any default run time


def _conn(ts: float, port: int, state: str = "REJ") -> str:
    return json.dumps(
        {
            "ts": ts,
            "uid": f"C{port}",
            "id.orig_h": "198.51.100.7",
            "id.orig_p": 40000 + port,
            "id.resp_h": "10.1.2.3",
            "id.resp_p": port,
            "proto": "tcp",
            "conn_state": state,
            "history": "Sr",
        }
    )


@pytest.fixture
def two_bursts(tmp_path: Path) -> Path:
    """A port scan of 20 ports, then three hours of nothing, then one more probe."""
    path = tmp_path / "conn.json.log"
    lines = [_conn(T0 + i, 1000 + i) for i in range(20)]
    lines.append(_conn(T0 + 3 * 3600, 22, "S0"))
    path.write_text("\n".join(lines) + "\n")
    return path


def test_a_file_from_the_past_gives_nothing_without_replay(
    two_bursts: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_cli(
        ["detect", str(two_bursts), "-r", "recon-net-port-scan", "--now", "2026-01-01T00:00:00Z",
         "-f", "ndjson", "--no-evidence"],
        capsys,
    )  # fmt: skip
    assert code == 0 and out == ""
    assert "no events in any run window" in err


@pytest.mark.slow  # 37 runs
def test_replay_runs_over_the_inputs_span_and_names_empty_runs(
    two_bursts: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_cli(
        ["detect", str(two_bursts), "-r", "recon-net-port-scan", "--replay", "-f", "ndjson",
         "--no-evidence"],
        capsys,
    )  # fmt: skip
    assert code == 0, err
    (alert,) = [json.loads(line) for line in out.splitlines()]
    assert alert["source.ip"] == "198.51.100.7" and alert["destination.ip"] == "10.1.2.3"
    assert alert["Esql.port_failed_count"] == 20
    assert "replay: recon-net-port-scan: 21 event(s) from 2020-09-13T12:26:40.000Z" in err
    # runs every 5 minutes from 12:31:40 to 15:31:40, one interval past the last event (37);
    # the scan is in the first 13 windows (65 minutes back), the last probe in the last 2
    assert "from 37 run(s)" in err
    empty = [line for line in err.splitlines() if "held none of the inputs' events" in line]
    assert empty == [
        (
            "replay: recon-net-port-scan: 22 run(s) at 2020-09-13T13:36:40.000Z .. "
            "2020-09-13T15:21:40.000Z: the window held none of the inputs' events"
        )
    ]


def test_replay_refuses_run_times_and_a_span_past_max_range(
    two_bursts: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _out, err = run_cli(["detect", str(two_bursts), "--replay", "--now", "now"], capsys)
    assert code == 2 and "--replay takes the inputs' own time span" in err
    late = tmp_path / "late.json.log"
    late.write_text(_conn(T0 + 200 * 86400, 80) + "\n")
    code, _out, err = run_cli(
        ["detect", str(two_bursts), str(late), "-r", "recon-net-port-scan", "--replay"], capsys
    )
    assert code == 2 and "--replay: the events span 200 days, more than --max-range 90d" in err


def test_syslog_year_option_and_note_in_query_and_watch(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = tmp_path / "kern.log"
    log.write_text(
        "".join(
            f"Mar 11 20:35:{10 + i:02d} fw kernel: [1.0] DROP IN=eth1 OUT= SRC=192.168.10.55 "
            f"DST=192.168.10.1 LEN=44 TTL=53 ID=1 PROTO=TCP SPT=56247 DPT={1000 + i} WINDOW=3072 "
            "RES=0x00 SYN URGP=0\n"
            for i in range(20)
        )
    )
    code, out, err = run_cli(
        [
            "query",
            "from * | stats t = min(@timestamp)",
            str(log),
            "--year",
            "2011",
            "--format",
            "ndjson",
        ],
        capsys,
    )
    assert code == 0 and json.loads(out) == {"t": "2011-03-11T20:35:10.000Z"}
    assert f"note: {log}: syslog time stamps carry no year: read as 2011 (--year)" in err
    code, out, err = run_cli(
        ["watch", str(log), "-r", "recon-net-port-scan", "--year", "2011", "-f", "ndjson",
         "--no-evidence"],
        capsys,
    )  # fmt: skip
    assert code == 0, err
    (alert,) = [json.loads(line) for line in out.splitlines()]
    assert alert["source.ip"] == "192.168.10.55" and alert["@timestamp"].startswith("2011-03-11")
    assert "read as 2011 (--year)" in err
