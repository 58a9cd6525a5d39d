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

# Each module defines `register(app)`; add a command by adding its module here.
COMMAND_MODULES: list[str] = [
    "reconwatch.cli.conformance",
    "reconwatch.cli.detect",
    "reconwatch.cli.query",
    "reconwatch.cli.rules",
    "reconwatch.cli.simulate",
    "reconwatch.cli.sensor",
    "reconwatch.cli.watch",
]

err_console = Console(stderr=True, highlight=False, soft_wrap=True)


def _register_all() -> None:
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(app)


def report_error(exc: ReconwatchError) -> int:
    """Print a user error without a traceback and return its exit code."""
    text = exc.render() if isinstance(exc, QueryError) else exc.one_line()
    # Escape: user text such as "Unknown column [x]" must not be read as rich markup.
    err_console.print(f"[bold red]error:[/] {escape(text)}", markup=True, highlight=False)
    return exc.exit_code


def main(argv: list[str] | None = None) -> None:
    _register_all()
    try:
        app(args=argv, standalone_mode=True)
    except ReconwatchError as exc:
        sys.exit(report_error(exc))
    except KeyboardInterrupt:
        sys.exit(130)
