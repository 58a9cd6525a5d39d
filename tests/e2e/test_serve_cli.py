"""`reconwatch serve` as a user runs it: settings refused before start, a real process on
127.0.0.1 fed by the official client, the API key, SIGTERM, a restart keeping the events."""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import IO

import httpx
import pytest
from elasticsearch import Elasticsearch, helpers

from reconwatch.cli.main import main
from reconwatch.rules.builtin import builtin_text

CODE = "from reconwatch.cli.main import main; main()"


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", CODE, *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, **(env or {})},
    )


def start(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", CODE, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )


def listening(proc: subprocess.Popen[str], limit_s: float = 90.0) -> tuple[str, str]:
    """(base URL, what the service said before it) once it says it listens. A thread reads
    stderr: select() on a buffered text pipe misses lines already in the buffer."""
    assert proc.stderr is not None
    lines: queue.Queue[str] = queue.Queue()
    said = _SAID.setdefault(proc.pid, [])
    threading.Thread(target=_pump, args=(proc.stderr, lines, said), daemon=True).start()
    seen = ""
    while "listening on" not in seen:
        try:
            line = lines.get(timeout=limit_s)
        except queue.Empty:
            pytest.fail(f"the service never said it listens; it said {seen!r}")
        assert line, f"the service ended before listening: {seen!r}"
        seen += line
    match = re.search(r"listening on (http://\S+)", seen)
    assert match
    return match[1], seen


# Everything each process said on stderr (by pid), for the checks after it stopped.
_SAID: dict[int, list[str]] = {}


def _pump(stream: IO[str], lines: queue.Queue[str], said: list[str]) -> None:
    for line in stream:
        said.append(line)
        lines.put(line)
    lines.put("")


def stop(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=120)  # the step under way (a rule run) finishes first
    said = "".join(_SAID.get(proc.pid, []))
    assert proc.returncode == 0, said
    assert "Traceback" not in said, said


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('bind = "127.0.0.1:9200"\nport = 1\n', r": port: unknown key \(known: "),
        ("retention = 7\n", r": retention: expected a non-empty string, got 7"),
        ('retention = "a week"\n', r": retention: expected a duration such as 7d"),
        ('bind = "localhost"\n', r": bind: expected ADDR:PORT"),
        ("queue_batches = 0\n", r": queue_batches: expected a positive whole number"),
        ("rules = 'x'\n", r": rules: expected a list of directories"),
        ("sinks = [1]\n", r": sinks: expected a non-empty string, got 1"),
        ("this is not = = toml\n", r": <file>: not TOML: .*line 1"),
    ],
)
def test_a_malformed_config_is_one_error_and_exit_2(
    tmp_path: Path, text: str, expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "serve.toml"
    config.write_text(text)
    # In-process (the command fails before it starts anything): main() as the CLI runs it.
    with pytest.raises(SystemExit) as exit_:
        main(["serve", "--config", str(config), "--data-dir", str(tmp_path / "d")])
    assert exit_.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"error: {config}: ")
    assert re.search(expected, lines[0]), lines[0]
    assert not (tmp_path / "d").exists()  # nothing was started


def test_a_malformed_config_from_the_command_line(tmp_path: Path) -> None:
    config = tmp_path / "serve.toml"
    config.write_text("port = 1\n")
    out = run("serve", "--config", str(config))
    assert out.returncode == 2
    assert (
        out.stderr
        == f"error: {config}: port: unknown key (known: api_key, bind, builtin_rules, data_dir, follow, max_body_bytes, memory_limit, query_timeout, queue_batches, realtime, retention, rule, rules, sinks)\n"
    )


def test_a_non_loopback_address_needs_an_api_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("RECONWATCH_API_KEY", "")
    cases = [
        (["--bind", "0.0.0.0:9200"], "needs an API key"),
        (["--bind", "[::]:9200"], "needs an API key"),
        (["--bind", "nonsense"], "expected ADDR:PORT"),
        (["--rules", str(tmp_path / "nope")], "not a directory"),
    ]
    for args, expected in cases:
        with pytest.raises(SystemExit) as exit_:
            main(["serve", "--data-dir", str(tmp_path / "d"), *args])
        assert exit_.value.code == 2, args
        err = capsys.readouterr().err
        assert expected in err and "Traceback" not in err, err
    assert not (tmp_path / "d").exists()


def test_serve_ingests_runs_rules_and_keeps_events_across_a_restart(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "seed.toml").write_text(builtin_text("subnet-scanning-seed"))
    (rules / "broken.toml").write_text("[rule]\nname = 'x'\n")
    config = tmp_path / "serve.toml"
    config.write_text('api_key = "k3y"\nretention = "30d"\n')
    args = [
        "serve",
        "--config",
        str(config),
        "--data-dir",
        str(tmp_path / "data"),
        "--bind",
        "127.0.0.1:0",
        "--rules",
        str(rules),
        "--no-builtin-rules",
    ]
    proc = start(*args)
    try:
        url, said = listening(proc)
        assert "warning: rule not loaded: " in said and "broken.toml: " in said
        assert "1 rules" in said and "API key required" in said
        assert (
            httpx.post(url + "/_bulk", content=b'{"index":{"_index":"a"}}\n{}\n').status_code == 401
        )
        es = Elasticsearch(url, api_key="k3y")
        actions = [
            {"_index": "logs-endpoint.events.network-default", "_source": {"n": i}}
            for i in range(500)
        ]
        assert helpers.bulk(es, actions) == (500, [])
        rules_api = httpx.get(url + "/api/rules", headers={"authorization": "ApiKey k3y"}).json()
        assert [r["source"] for r in rules_api["rules"]] == [str(rules / "seed.toml")]
        assert rules_api["rules"][0]["last_run"] is not None  # ran once at start
    finally:
        stop(proc)
    proc = start(*args)
    try:
        url, _ = listening(proc)
        es = Elasticsearch(url, api_key="k3y")
        count = es.esql.query(query="FROM logs-endpoint.events.network-* | STATS c = COUNT(*)")
        assert count["values"] == [[500]]
    finally:
        stop(proc)


def test_a_busy_port_or_a_locked_store_is_a_runtime_error(tmp_path: Path) -> None:
    proc = start(
        "serve", "--bind", "127.0.0.1:0", "--data-dir", str(tmp_path / "a"), "--no-builtin-rules"
    )
    try:
        url, _ = listening(proc)
        out = run("serve", "--bind", url.removeprefix("http://"), "--data-dir", str(tmp_path / "b"))
        assert out.returncode == 1
        assert "cannot listen on 127.0.0.1:" in out.stderr and "Traceback" not in out.stderr
        # The same store from a second process: refused by its lock, one line, exit 1.
        out = run("serve", "--bind", "127.0.0.1:0", "--data-dir", str(tmp_path / "a"))
        assert out.returncode == 1
        assert f"cannot open the store in {tmp_path / 'a'}" in out.stderr
        assert "Traceback" not in out.stderr
    finally:
        stop(proc)


@pytest.mark.slow
def test_demo_stores_the_sample_alerts_and_delivers_to_the_sinks(tmp_path: Path) -> None:
    config = tmp_path / "serve.toml"
    config.write_text('sinks = ["alerts.ndjson"]\n')
    args = [
        "serve",
        "--demo",
        "--config",
        str(config),
        "--bind",
        "127.0.0.1:0",
        "--data-dir",
        str(tmp_path / "d"),
    ]
    proc = start(*args)
    try:
        url, said = listening(proc, limit_s=300)
        assert "demo: 2986 sample events stored, 2 alerts created" in said
        alerts = httpx.get(url + "/api/alerts").json()
        assert alerts["total"] == 2
        rules = {a["kibana.alert.rule.rule_id"] for a in alerts["alerts"]}
        assert rules == {
            "860f2a03-a1cf-48d6-a674-c6d62ae608a1",
            "6b341d03-1d63-41ac-841a-2009c86959ca",
        }
        assert all(a["Esql.host_name_values"] == "db-002" for a in alerts["alerts"])
    finally:
        stop(proc)
    # Delivered before the start finished or by the schedule thread: once each.
    delivered = [json.loads(line) for line in (tmp_path / "alerts.ndjson").read_text().splitlines()]
    assert sorted(a["kibana.alert.uuid"] for a in delivered) == sorted(
        a["kibana.alert.uuid"] for a in alerts["alerts"]
    )
    # A second start stores nothing twice and delivers nothing twice.
    proc = start(*args)
    try:
        _, said = listening(proc, limit_s=300)
        assert "demo: 0 sample events stored, 0 alerts created" in said
    finally:
        stop(proc)
    assert len((tmp_path / "alerts.ndjson").read_text().splitlines()) == 2
