"""`reconwatch alerts` and `reconwatch rules run` against a running service (in this process)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from conftest import Clock, run_cli
from reconwatch.service.app import build_app
from reconwatch.service.assemble import build
from reconwatch.service.config import ServiceConfig
from reconwatch.service.demo import SAMPLE_END, SAMPLE_START, load_demo
from reconwatch.service.server import running

NOW = datetime(2025, 7, 16, 10, 5, tzinfo=UTC)


def test_alerts_and_manual_runs_through_the_api(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    service = build(ServiceConfig(data_dir=tmp_path, api_key="k3y"), Clock(NOW))
    load_demo(service.store, None)  # the sample stored; no rule run yet
    assert service.scheduler is not None
    rule_id = next(
        r
        for r in service.scheduler.states
        if "subnet" in service.scheduler.states[r].rule.name.lower()
    )
    try:
        with running(build_app(service)) as url:
            common = ["--url", url, "--api-key", "k3y"]
            code, out, err = run_cli(
                [
                    "rules",
                    "run",
                    rule_id,
                    "--start",
                    SAMPLE_START.isoformat(),
                    "--end",
                    SAMPLE_END.isoformat(),
                    *common,
                ],
                capsys,
            )
            assert code == 0, err
            assert "1 new alerts" in out
            code, out, err = run_cli(["alerts", "--json", *common], capsys)
            assert code == 0, err
            alerts = [json.loads(line) for line in out.splitlines()]
            assert len(alerts) == 1 and alerts[0]["kibana.alert.rule.rule_id"] == rule_id
            alert_id = alerts[0]["kibana.alert.uuid"]
            code, out, err = run_cli(
                [
                    "alerts",
                    "--id",
                    alert_id,
                    "--set-status",
                    "acknowledged",
                    "--user",
                    "ana",
                    *common,
                ],
                capsys,
            )
            assert code == 0, err
            assert out.strip().endswith("acknowledged")
            code, out, _ = run_cli(["alerts", "--status", "acknowledged", *common], capsys)
            assert code == 0 and "1 of 1 alerts" in out
            # A wrong key: the API's reason, exit 2; a bad status: exit 2.
            code, _, err = run_cli(["alerts", "--url", url, "--api-key", "nope"], capsys)
            assert code == 2 and "HTTP 401" in err and "Traceback" not in err
            code, _, err = run_cli(["alerts", "--status", "maybe", *common], capsys)
            assert code == 2 and "[status] must be one of" in err
    finally:
        service.close()
    # Nothing listening: one line, exit 1.
    code, _, err = run_cli(["alerts", "--url", "http://127.0.0.1:9"], capsys)
    assert code == 1 and err.startswith("error: cannot reach reconwatch serve")
