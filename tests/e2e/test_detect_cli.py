"""The detect, rules and simulate commands end to end through the CLI entry point."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reconwatch.cli.main import main
from reconwatch.rules.builtin import builtin_text


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    try:
        main(argv)
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_broken_rule_file_exit_2_names_file_field_reason(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(
        builtin_text("subnet-scanning-seed").replace('severity = "low"', 'severity = "urgent"')
    )
    code, out, _ = _run(["rules", "check", str(bad)], capsys)
    assert code == 2
    assert (
        f"INVALID {bad}: rule.severity: 'urgent' is not one of low, medium, high, critical" in out
    )
    code, _, err = _run(
        ["detect", str(tmp_path / "x.ndjson"), "--rule", str(bad), "--now", "2025-07-16T10:00:00Z"],
        capsys,
    )
    assert code == 2
    assert "bad.toml: rule.severity" in err


def test_rules_list_and_show(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(["rules", "list"], capsys)
    assert code == 0 and "subnet-scanning-seed" in out and "port-scanning" in out
    code, out, _ = _run(["rules", "show", "subnet-scanning"], capsys)
    assert code == 0 and "Possible investigation steps" in out


def test_simulate_then_detect(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("reconwatch.query", reason="the query facade has not landed")
    events = tmp_path / "ev.ndjson"
    code, _, _ = _run(
        [
            "simulate",
            "--hosts",
            "5",
            "--hours",
            "1",
            "--scan",
            "subnet",
            "--seed",
            "1",
            "--start",
            "2025-07-16T09:00:00Z",
            "-o",
            str(events),
        ],
        capsys,
    )
    assert code == 0
    code, out, err = _run(
        ["detect", str(events), "--now", "2025-07-16T10:00:00Z", "--format", "ndjson"], capsys
    )
    assert code == 0, err
    alerts = [json.loads(line) for line in out.splitlines()]
    assert [a["process.executable"] for a in alerts] == ["/usr/bin/nmap"]
    assert alerts[0]["Esql.destination_ip_count_distinct"] == 300
    assert alerts[0]["reconwatch.evidence"]["destination"]["distinct_ips"] == 300


def test_demo(capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("reconwatch.query", reason="the query facade has not landed")
    code, out, err = _run(["detect", "--demo", "--format", "json"], capsys)
    assert code == 0, err
    alerts = json.loads(out)
    assert len(alerts) == 1 and alerts[0]["Esql.host_name_values"] == "db-002"
