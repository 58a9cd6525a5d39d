"""The CLI as a user meets it when things go wrong: one clear line, the right exit code, no
traceback, and no run that looks clean when it was not (issue 10), plus the alert sinks shared
by detect and watch (issue 16)."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pytest

from conftest import run_cli
from reconwatch.cli.main import main
from reconwatch.rules.builtin import builtin_text, load_builtin
from reconwatch.rules.load import load_rule_file

RUN_AT = "2025-07-16T10:00:00Z"


def _process(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-c", "from reconwatch.cli.main import main; main()", *args]
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        cmd, capture_output=True, text=True, timeout=300, check=False, env=full_env
    )


def _event(at: datetime, ip: str, port: int = 22) -> str:
    return json.dumps(
        {
            "@timestamp": at.isoformat().replace("+00:00", "Z"),
            "event": {"action": "connection_attempted", "type": ["start"]},
            "host": {"name": "web-01", "os": {"type": "linux"}},
            "agent": {"id": "a6f1c0de-0000-4000-8000-000000000001"},
            "process": {"executable": "/tmp/.x/nmap", "name": "nmap", "pid": 31337},
            "destination": {"ip": ip, "port": port},
            "network": {"transport": "tcp"},
        }
    )


@pytest.fixture
def scan(tmp_path: Path) -> Path:
    """One host trying 260 addresses at 09:30Z: the seed rule's 10:00Z run alerts once."""
    start = datetime(2025, 7, 16, 9, 30, tzinfo=UTC)
    lines = [
        _event(start + timedelta(seconds=i), f"10.9.{i // 200}.{i % 200 + 1}") for i in range(260)
    ]
    path = tmp_path / "scan.ndjson"
    path.write_text("\n".join(lines) + "\n")
    return path


def _detect(scan: Path, *extra: str) -> list[str]:
    return ["detect", str(scan), "--now", RUN_AT, "--no-evidence", *extra]


# -- output: sinks, formats, errors -------------------------------------------------------------


@pytest.mark.parametrize("where", ["missing-dir/x.ndjson", "."])
def test_output_path_that_cannot_be_written_is_one_line_exit_2(
    scan: Path, tmp_path: Path, where: str, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / where
    code, _, err = run_cli(_detect(scan, "-o", str(target)), capsys)
    assert code == 2
    reason = "No such file or directory" if "missing" in where else "is a directory"
    (line,) = err.strip().splitlines()
    assert line.startswith(f"error: --output {target}: cannot write: {reason}")


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="no /dev/full on this system")
def test_full_disk_is_one_line_exit_1(scan: Path) -> None:
    done = _process(*_detect(scan, "-o", "/dev/full"))
    assert done.returncode == 1
    assert done.stderr.strip() == "error: writing alerts to /dev/full: No space left on device"
    # stdout itself on a full disk: the same line, not a traceback at the interpreter's exit
    with open("/dev/full", "w") as full:
        done = subprocess.run(
            [sys.executable, "-c", "from reconwatch.cli.main import main; main()", *_detect(scan)],
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            timeout=300,
            check=False,
        )
    assert done.returncode == 1
    assert "error: writing alerts to <stdout>: No space left on device" in done.stderr
    assert "Traceback" not in done.stderr and "Exception ignored" not in done.stderr


@pytest.mark.parametrize(
    ("name", "check"),
    [
        ("alerts.json", lambda text: json.loads(text)[0]["process.executable"] == "/tmp/.x/nmap"),
        ("alerts.ndjson", lambda text: json.loads(text.splitlines()[0])["Esql.event_count"] == 260),
        (
            "alerts.csv",
            lambda text: next(csv.DictReader(io.StringIO(text)))["host.name"] == "web-01",
        ),
        ("alerts.txt", lambda text: "1 alert(s)" in text and "web-01" in text),
        ("alerts.out", lambda text: json.loads(text.splitlines()[0])["Esql.event_count"] == 260),
    ],
)
def test_output_format_follows_the_file_extension(
    scan: Path, tmp_path: Path, name: str, check: object, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / name
    code, out, err = run_cli(_detect(scan, "-o", str(target)), capsys)
    assert code == 0, err
    assert out == ""
    assert check(target.read_text())  # type: ignore[operator]


def test_detect_csv_format_on_stdout(scan: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(_detect(scan, "--format", "csv"), capsys)
    assert code == 0, err
    (row,) = list(csv.DictReader(io.StringIO(out)))
    assert row["process.executable"] == "/tmp/.x/nmap"
    assert row["kibana.alert.severity"] == "low"
    assert "Esql.destination_ip_count_distinct=260" in row["results"]
    # No alert: the header alone, so a spreadsheet still opens it.
    code, out, _ = run_cli(
        ["detect", str(scan), "--now", "2025-07-16T12:00:00Z", "--format", "csv"], capsys
    )
    assert code == 0 and out.startswith("kibana.alert.uuid,") and len(out.splitlines()) == 1


def test_flag_beats_extension_and_bad_format_is_refused(
    scan: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "alerts.json"
    code, _, _ = run_cli(_detect(scan, "-o", str(target), "--format", "ndjson"), capsys)
    assert code == 0 and len(target.read_text().splitlines()) == 1
    code, _, err = run_cli(_detect(scan, "--format", "xml"), capsys)
    assert code == 2 and "choose one of ndjson, json, csv, table, report" in err


def test_unknown_sink_scheme_is_refused(scan: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(_detect(scan, "-o", "gopher://x"), capsys)
    assert code == 2 and "no alert sink for gopher://" in err


def test_watch_writes_through_the_same_sinks(
    scan: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_cli(["watch", str(scan), "--no-evidence", "--format", "json"], capsys)
    assert code == 0, err
    (alert,) = json.loads(out)
    assert alert["process.executable"] == "/tmp/.x/nmap"
    target = tmp_path / "w.csv"
    code, out, err = run_cli(["watch", str(scan), "--no-evidence", "-o", str(target)], capsys)
    assert code == 0, err
    assert out == ""
    (row,) = list(csv.DictReader(io.StringIO(target.read_text())))
    assert row["host.name"] == "web-01"
    code, out, _ = run_cli(["watch", str(scan), "--no-evidence", "--format", "table"], capsys)
    assert code == 0 and "1 alert(s)" in out and "/tmp/.x/nmap" in out


# -- inputs that are not events -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (b"garbage\nmore garbage\n", "looks like text that is not JSON"),
        (b"#separator \\x09\n#fields\tts\tuid\n1.0\tC1\n", "looks like a Zeek log"),
        # a capture whose one packet record is empty: read as a pcap, the packet reported
        (b"\xd4\xc3\xb2\xa1\x02\x00\x04\x00" + bytes(32), "no events read: all 1 were bad events"),
        (b'{"a": \n{"b": \n', "no events read: all 2 were bad events"),
    ],
)
def test_input_with_no_event_is_an_error_naming_it(
    tmp_path: Path, content: bytes, says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "input.log"
    path.write_bytes(content)
    code, out, err = run_cli(["detect", str(path), "--now", RUN_AT, "-f", "ndjson"], capsys)
    assert code == 2
    assert out == ""
    (line,) = [x for x in err.splitlines() if x.startswith("error: ")]
    assert str(path) in line and says in line


def test_unusable_input_beside_good_one_still_alerts_and_fails(
    scan: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pcap = tmp_path / "capture.pcap"
    pcap.write_bytes(b"\xd4\xc3\xb2\xa1" + bytes(10))
    code, out, err = run_cli(_detect(scan, str(pcap), "-f", "ndjson"), capsys)
    assert code == 2
    assert len(out.splitlines()) == 1  # the good file's alert is written
    assert f"error: {pcap}: not a readable capture" in err  # its header is cut short


def test_query_refuses_a_missing_input_and_names_a_useless_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_cli(["query", "from * | limit 1", str(tmp_path / "nope.ndjson")], capsys)
    assert code == 2 and f"no such file: {tmp_path / 'nope.ndjson'}" in err
    # A directory stands for the event files under it: none is no input, not an empty result.
    code, _, err = run_cli(["query", "from * | limit 1", str(tmp_path)], capsys)
    assert code == 2 and f"no event file under {tmp_path}" in err
    code, _, err = run_cli(["detect", str(tmp_path), "--now", RUN_AT], capsys)
    assert code == 2 and f"no event file under {tmp_path}" in err
    zeek = tmp_path / "conn.log"
    zeek.write_text("#separator \\x09\n#fields\tts\n1.0\n")
    code, _, err = run_cli(["query", "from * | stats c = count(*)", str(zeek)], capsys)
    assert code == 2 and "a Zeek log" in err


def test_no_events_in_any_run_window_says_so_with_the_inputs_span(
    scan: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_cli(
        ["detect", str(scan), "--now", "2026-01-01T00:00:00Z", "-f", "ndjson"], capsys
    )
    assert code == 0
    assert "no events in any run window" in err
    assert (
        "the inputs' 260 event(s) span 2025-07-16T09:30:00.000Z .. 2025-07-16T09:34:19.000Z" in err
    )
    # Events in the window but no alert: nothing to say.
    code, _, err = run_cli(["detect", str(scan), "--now", "2025-07-16T09:40:00Z"], capsys)
    assert code == 0 and "no events in any run window" not in err


# -- rules and exceptions -------------------------------------------------------------------------


def test_bad_rule_among_good_ones_runs_the_good_names_the_file_exits_2(
    scan: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(
        builtin_text("subnet-scanning-seed").replace(
            "count_distinct(destination.ip)", "count_distinct(destination.ipx)"
        )
    )
    broken = tmp_path / "broken.toml"
    broken.write_text("this is not toml [")
    code, out, err = run_cli(
        _detect(
            scan, "-r", str(bad), "-r", "subnet-scanning-seed", "-r", str(broken), "-f", "ndjson"
        ),
        capsys,
    )
    assert code == 2
    (alert,) = [json.loads(line) for line in out.splitlines()]
    assert alert["kibana.alert.rule.name"].startswith("Potential Subnet Scanning")
    assert f"error: {bad}: {_position_in_rule(bad, 'destination.ipx')}: " in err
    assert "Unknown column [destination.ipx]" in err
    assert f"error: {broken}: " in err
    assert "2 rule(s) failed" in err


def _position_in_rule(path: Path, text: str) -> str:
    """`line L:C` of `text` in the rule's own query (what rules check reports), not in the
    run's query with the time range inserted after FROM."""
    query = load_rule_file(path).query
    at = query.index(text)
    line = query.count("\n", 0, at) + 1
    return f"line {line}:{at - (query.rfind(chr(10), 0, at) + 1) + 1}"


def test_watch_names_the_bad_rule_file_and_its_own_position_and_runs_the_good_ones(
    scan: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """As `detect`: the bad rule is reported (file, position in its own query) at once, the good
    rule still watches and alerts, and the exit says a rule failed."""
    bad = tmp_path / "bad.toml"
    bad.write_text(
        builtin_text("subnet-scanning-seed").replace(
            "count_distinct(destination.ip)", "count_distinct(destination.ipx)"
        )
    )
    code, out, err = run_cli(
        ["watch", str(scan), "-r", "subnet-scanning-seed", "-r", str(bad), "-f", "ndjson"], capsys
    )
    assert code == 2
    assert err.startswith(f"error: {bad}: {_position_in_rule(bad, 'destination.ipx')}: ")
    assert "Unknown column [destination.ipx]" in err
    assert [json.loads(x)["kibana.alert.rule.name"] for x in out.splitlines()] == [
        load_builtin("subnet-scanning-seed").name
    ]
    assert err.rstrip().endswith("error: 1 rule(s) failed (above)")
    # One bad rule alone is still the error it was.
    code, out, err = run_cli(["watch", str(scan), "-r", str(bad)], capsys)
    assert code == 2 and out == ""
    assert err.startswith(f"error: {bad}: {_position_in_rule(bad, 'destination.ipx')}: ")


def test_exceptions_that_can_never_match_are_refused(
    scan: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "ex.toml"
    bad.write_text(
        '[[exception]]\nname = "typos"\n"destination.ip" = "not-an-ip"\n'
        '"destination.port" = "eighty"\n"proces.executable" = "/usr/bin/nmap"\n'
        '[[exception]]\n"destination.port" = { matches = "8*" }\n'
    )
    code, out, err = run_cli(_detect(scan, "-e", str(bad)), capsys)
    assert code == 2 and out == ""
    assert "typos: destination.ip: 'not-an-ip' is not a valid ip" in err
    assert "typos: destination.port: 'eighty' is not a valid long" in err
    assert "unknown field [proces.executable]" in err and "did you mean [process.executable]" in err
    assert "`matches` needs a string field; [destination.port] is long" in err
    # A field only the events have is known.
    ok = tmp_path / "ok.toml"
    ok.write_text('[[exception]]\n"process.pid" = 31337\n"destination.ip" = "10.9.0.1"\n')
    code, _, err = run_cli(_detect(scan, "-e", str(ok)), capsys)
    assert code == 0, err


def test_exception_file_without_a_list_or_not_utf8(
    scan: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    empty = tmp_path / "rules.ndjson"
    empty.write_text('{"rule_id": "x", "name": "a rule, not a list"}\n')
    code, _, err = run_cli(_detect(scan, "-e", str(empty)), capsys)
    assert code == 2 and f"{empty}: <file>: holds no exception list" in err
    latin = tmp_path / "latin.ndjson"
    latin.write_bytes(b'{"name": "caf\xe9"}\n')
    code, _, err = run_cli(_detect(scan, "-e", str(latin)), capsys)
    assert code == 2 and "not UTF-8 text (byte 0xe9 on line 1)" in err
    assert "Traceback" not in err


# -- long runs, version, help, interrupts ---------------------------------------------------------


def test_from_to_is_bounded_like_kibana_manual_runs(
    scan: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["detect", str(scan), "--from", "2010-01-01T00:00:00Z", "--to", "2030-01-01T00:00:00Z"]
    code, _, err = run_cli(args, capsys)
    assert code == 2
    assert "--from/--to spans 7,305 days; a manual run covers at most 90d" in err
    assert "--max-range 7305d" in err
    short = ["--from", "2025-07-16T08:00:00Z", "--to", "2025-07-16T11:00:00Z"]
    code, _, err = run_cli(["detect", str(scan), *short, "--max-range", "2h"], capsys)
    assert code == 2 and "at most 2h" in err
    code, _, err = run_cli(["detect", str(scan), *short, "--no-evidence", "-f", "ndjson"], capsys)
    assert code == 0, err


def test_progress_bar_only_on_a_terminal(scan: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = [
        "detect", str(scan), "--from", "2025-07-16T00:00:00Z", "--to", "2025-07-16T12:00:00Z",
        "--no-evidence", "-f", "ndjson",
    ]  # fmt: skip
    done = _process(*args, env={"TTY_COMPATIBLE": "1", "FORCE_COLOR": "1", "COLUMNS": "160"})
    assert done.returncode == 0, done.stderr
    assert "12/12" in done.stderr and "runs" in done.stderr
    code, _, err = run_cli(args, capsys)  # stderr not a terminal: the summary alone
    assert code == 0
    assert err.strip().splitlines() == ["1 alert(s) from 12 run(s) of 1 rule(s)"]


def test_version_and_help_without_type_noise(capsys: pytest.CaptureFixture[str]) -> None:
    from reconwatch import __version__

    code, out, _ = run_cli(["--version"], capsys)
    assert code == 0 and out.strip() == f"reconwatch {__version__}"
    for command in ("detect", "watch", "query", "simulate", "rules", "sensor", "conformance"):
        code, out, _ = run_cli([command, "--help"], capsys)
        assert code == 0
        assert "<bool>" not in out, command
        # An option's value is named (RULE, HOURS), not typed (`<str>`, `<float>`); choices stay.
        options = out[out.index("Options") :]
        for noise in ("<str>", "<int>", "<float>", "<path>", "<list[str]>"):
            assert noise not in options, (command, noise)


INTERRUPT_AT_IMPORT = """
import os, signal, sys
class Interrupt:
    def find_spec(self, name, path=None, target=None):
        if name == {module!r}:
            os.kill(os.getpid(), signal.SIGINT)
        return None
sys.meta_path.insert(0, Interrupt())
from reconwatch.cli.main import main
main({argv!r})
"""


@pytest.mark.parametrize("module", ["typer", "duckdb", "reconwatch.query"])
def test_ctrl_c_during_start_up_exits_130_without_traceback(scan: Path, module: str) -> None:
    """SIGINT while the CLI's own modules load (typer), while commands register (duckdb), and
    while the command starts its first query (reconwatch.query, imported at the first run)."""
    code = INTERRUPT_AT_IMPORT.format(module=module, argv=_detect(scan))
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 130, done.stderr
    assert "Traceback" not in done.stderr


def test_simulate_output_errors_are_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["simulate", "--hosts", "3", "--hours", "0.1", "--start", "2025-07-16T09:00:00Z"]
    code, _, err = run_cli([*args, "-o", str(tmp_path / "no" / "x.ndjson")], capsys)
    assert code == 2 and "cannot write: No such file or directory" in err
    if Path("/dev/full").exists():
        code, _, err = run_cli([*args, "-o", "/dev/full"], capsys)
        assert code == 1
        assert err.strip() == "error: writing events to /dev/full: No space left on device"


@pytest.mark.parametrize(
    "raised",
    [
        lambda: duckdb.InterruptException("INTERRUPT Error: Interrupted!"),
        lambda: RuntimeError("Query interrupted"),
    ],
)
def test_ctrl_c_inside_a_duckdb_query_exits_130(
    scan: Path,
    raised: Callable[[], Exception],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Ctrl-C while DuckDB runs a query: DuckDB stops it and raises its own error, which is an
    interrupt to the user (exit 130), not a traceback."""
    import reconwatch.engine.detect as engine

    def interrupted(*args: object, **kwargs: object) -> object:
        raise raised()

    monkeypatch.setattr(engine.RuleExecutor, "run", interrupted)
    code, _, err = run_cli(_detect(scan), capsys)
    assert code == 130 and err == ""
    # Any other error of DuckDB's is not an interrupt: it still propagates (a bug to see).
    monkeypatch.setattr(engine.RuleExecutor, "run", lambda *a, **k: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        main(_detect(scan))


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="no /dev/full on this system")
def test_other_commands_on_a_full_stdout_say_so_in_one_line(scan: Path) -> None:
    with open("/dev/full", "w") as full:
        done = subprocess.run(
            [sys.executable, "-c", "from reconwatch.cli.main import main; main()", "rules", "list"],
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            timeout=300,
            check=False,
        )
    assert done.returncode == 1
    assert done.stderr.strip() == "error: writing output: No space left on device"


def test_output_onto_an_input_is_refused_and_the_events_kept(
    scan: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = scan.read_bytes()
    for command in (_detect(scan), ["watch", str(scan), "--no-evidence"]):
        code, _, err = run_cli([*command, "-o", str(scan)], capsys)
        assert code == 2 and "is an input of this command" in err
        assert scan.read_bytes() == before
