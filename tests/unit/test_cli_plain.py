"""`query` read without Typer: the plain reader takes only the common argv forms, and what it takes runs exactly as Typer would run it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import run_cli
from reconwatch.cli import main as cli_main
from reconwatch.cli.plain import Option, parse_args
from reconwatch.cli.query import PLAIN_OPTIONS, plain_run

OPTIONS = {
    "--fmt": Option("fmt", choices=("a", "b")),
    "--now": Option("now"),
    "--index": Option("index", multiple=True),
    "--explain": Option("explain", flag=True),
}


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["q"], (["q"], {})),
        (["q", "f1", "f2"], (["q", "f1", "f2"], {})),
        (["--now", "x", "q", "f"], (["q", "f"], {"now": "x"})),
        (["q", "--now=x", "f"], (["q", "f"], {"now": "x"})),
        (["q", "--index", "a", "--index=b"], (["q"], {"index": ["a", "b"]})),
        (["q", "--explain", "--fmt", "b"], (["q"], {"explain": True, "fmt": "b"})),
        (["q", "-"], (["q", "-"], {})),
        (["--", "--now", "-x"], (["--now", "-x"], {})),
        (["q", "--now="], (["q"], {"now": ""})),
    ],
)
def test_common_forms_are_read(argv: list[str], expected: object) -> None:
    assert parse_args(argv, OPTIONS, required=1) == expected


@pytest.mark.parametrize(
    "argv",
    [
        [],  # the query is missing
        ["q", "--help"],
        ["q", "-h"],
        ["q", "--nope"],
        ["q", "--now"],  # no value
        ["q", "--now", "--explain"],  # a value that looks like an option
        ["q", "--now", "a", "--now", "b"],  # given twice
        ["q", "--explain", "--explain"],
        ["q", "--explain=yes"],
        ["q", "--fmt", "c"],  # not a choice
        ["q", "-5"],
    ],
)
def test_anything_else_is_left_to_typer(argv: list[str]) -> None:
    assert parse_args(argv, OPTIONS, required=1) is None


def test_numbers_are_left_to_typer() -> None:
    """--timeout and --year are numbers Typer converts and range-checks."""
    assert plain_run(["from logs-*", "f", "--timeout", "5"]) is None
    assert plain_run(["from logs-*", "f", "--year", "2024"]) is None


def test_the_plain_options_are_the_typer_options() -> None:
    """Every option the plain reader takes is one `query` declares, with the same kind."""
    from reconwatch.cli.app import build_command

    command = build_command(["query"]).commands["query"]
    declared = {opt: p for p in command.params for opt in getattr(p, "opts", ())}
    for name, option in PLAIN_OPTIONS.items():
        param = declared[name]
        assert param.name == option.dest
        assert bool(getattr(param, "is_flag", False)) == option.flag
        assert bool(getattr(param, "multiple", False)) == option.multiple


@pytest.fixture
def events(tmp_path: Path) -> Path:
    path = tmp_path / "e.ndjson"
    docs = [
        {"@timestamp": "2024-01-01T00:00:00Z", "host": {"name": "a"}, "destination.ip": "::1"},
        {"@timestamp": "2024-01-01T00:00:01Z", "host": {"name": "b"}, "destination.port": "x"},
    ]
    lines = [json.dumps(d) for d in docs]
    lines.insert(1, "{not json")
    path.write_text("\n".join(lines) + "\n")
    return path


ARGVS = [
    ["from logs-* | stats n = count(*) by host.name | sort host.name", "{f}"],
    ["from logs-* | keep host.name, destination.ip | sort host.name", "{f}", "--format", "csv"],
    ['from logs-* | eval x = to_integer("a") | keep x | limit 1', "{f}", "--format=json"],
    ["from logs-* | keep host.name", "{f}", "--format", "table"],
    ["from logs-* | keep host.name", "{f}", "--explain", "--now", "2024-01-01T00:00:00Z"],
    ["from logs-* | where", "{f}"],  # a syntax error: exit 2 with a caret
    ["from logs-* | keep nope", "{f}"],  # an unknown column
    ["from logs-*", "{f}", "--now", "yesterday"],
    ["from logs-*", "{f}/missing.ndjson"],
    ["from logs-*", "{f}", "--index", "bad"],
    ["from logs-*", "{f}", "--input-format", "nope"],
    ["from logs-* | keep host.name", "{f}", "--input-format", "ndjson", "--format", "ndjson"],
    ["from logs-* | stats n = count(*)", "{f}", "--memory-limit", "512MB"],
    ["from logs-* | stats n = count(*)", "{f}", "--memory-limit=lots"],
]


@pytest.mark.parametrize("argv", ARGVS)
def test_plain_and_typer_runs_agree(
    argv: list[str],
    events: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    args = ["query", *(a.replace("{f}", str(events)) for a in argv)]
    assert plain_run(args[1:]) is not None
    plain = run_cli(args, capsys)
    monkeypatch.setattr(cli_main, "plain_command", lambda argv: None)
    typer = run_cli(args, capsys)
    assert plain == typer


def test_query_loads_neither_typer_nor_rich_nor_numpy(events: Path) -> None:
    """The common run pays for none of them: rich comes for messages, numpy for DuckDB's Python
    functions, which this query's SQL does not call."""
    good = events.with_name("good.ndjson")
    good.write_text(events.read_text().splitlines()[0] + "\n")
    probe = (
        "import sys\n"
        "from reconwatch.cli.main import main\n"
        "try:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in ('typer', 'rich', 'numpy', 'pydantic') if m in sys.modules))"
    )
    query = 'from logs-* | where host.name == "a" | stats n = count(*)'
    out = subprocess.run(
        [sys.executable, "-c", probe, "query", query, str(good), "--format", "json"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.splitlines()[-1] == "[]"
    assert json.loads("\n".join(out.stdout.splitlines()[:-1])) == [{"n": 1}]
