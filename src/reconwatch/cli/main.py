"""The `reconwatch` command: builds the Typer app from one module per command and maps errors to exit codes."""

from __future__ import annotations

import importlib
import sys

import typer
from rich.console import Console
from rich.markup import escape

from reconwatch.errors import QueryError, ReconwatchError

app = typer.Typer(
    name="reconwatch",
    help="Catch network reconnaissance from compromised Linux hosts with Elastic's ES|QL detection rules.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _group() -> None:
    """A group even when one command is registered (Typer would run a lone command directly)."""


# Each module defines `register(app)`; add a command by adding its name and module here. Only
# the module of the command being run is imported (each pulls in its own engine parts).
COMMAND_MODULES: dict[str, str] = {
    "conformance": "reconwatch.cli.conformance",
    "detect": "reconwatch.cli.detect",
    "query": "reconwatch.cli.query",
    "rules": "reconwatch.cli.rules",
    "simulate": "reconwatch.cli.simulate",
    "sensor": "reconwatch.cli.sensor",
    "watch": "reconwatch.cli.watch",
}
_registered: set[str] = set()

err_console = Console(stderr=True, highlight=False, soft_wrap=True)


def _register(modules: list[str]) -> None:
    for name in modules:
        if name not in _registered:
            _registered.add(name)
            importlib.import_module(name).register(app)


def _register_all() -> None:
    _register(list(COMMAND_MODULES.values()))


def _register_for(argv: list[str]) -> None:
    """Register the command `argv` runs, or every command (help, or a name to say is unknown)."""
    command = next((a for a in argv if not a.startswith("-")), None)
    module = COMMAND_MODULES.get(command) if command is not None else None
    if module is None:
        _register_all()
    else:
        _register([module])


def report_error(exc: ReconwatchError) -> int:
    """Print a user error without a traceback and return its exit code."""
    text = exc.render() if isinstance(exc, QueryError) else exc.one_line()
    # Escape: user text such as "Unknown column [x]" must not be read as rich markup.
    err_console.print(f"[bold red]error:[/] {escape(text)}", markup=True, highlight=False)
    return exc.exit_code


def main(argv: list[str] | None = None) -> None:
    _register_for(sys.argv[1:] if argv is None else argv)
    try:
        app(args=argv, standalone_mode=True)
    except ReconwatchError as exc:
        sys.exit(report_error(exc))
    except KeyboardInterrupt:
        sys.exit(130)
