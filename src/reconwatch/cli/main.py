"""The `reconwatch` command: runs one command (read without Typer where its module can) and maps errors to exit codes."""

from __future__ import annotations

import signal
import sys
from types import FrameType


def _interrupted_at_start(signum: int, frame: FrameType | None) -> None:
    """Ctrl-C while the program is still loading: leave with 130 and no traceback."""
    raise SystemExit(130)


# Before the heavy imports below: an interrupt while they load must not print a traceback.
signal.signal(signal.SIGINT, _interrupted_at_start)

import errno  # noqa: E402
import importlib  # noqa: E402
import os  # noqa: E402
from collections.abc import Callable  # noqa: E402
from typing import Any  # noqa: E402

from reconwatch.errors import ReconwatchError  # noqa: E402

# Each module defines `register(app)`; add a command by adding its name and module here. Only
# the module of the command being run is imported (each pulls in its own engine parts). A module
# may also define `plain_run(args)`: the command for its common argv without Typer (whose import
# and parameter handling cost several times `import duckdb`), None to leave the argv to Typer.
COMMAND_MODULES: dict[str, str] = {
    "alerts": "reconwatch.cli.client",
    "conformance": "reconwatch.cli.conformance",
    "detect": "reconwatch.cli.detect",
    "export": "reconwatch.cli.export",
    "query": "reconwatch.cli.query",
    "rules": "reconwatch.cli.rules",
    "simulate": "reconwatch.cli.simulate",
    "sensor": "reconwatch.cli.sensor",
    "serve": "reconwatch.cli.serve",
    "watch": "reconwatch.cli.watch",
}
# Set by the shell-completion scripts Click writes: Typer answers those itself.
_COMPLETION_VAR = "_RECONWATCH_COMPLETE"
_TYPER_NAMES = ("app", "build_command", "_register", "_register_all", "_register_for")


def __getattr__(name: str) -> Any:
    """The Typer app's pieces (cli/app.py), loaded when first asked for."""
    if name in _TYPER_NAMES:
        from reconwatch.cli import app

        return getattr(app, name)
    msg = f"module {__name__!r} has no attribute {name!r}"
    raise AttributeError(msg)


def plain_command(argv: list[str]) -> Callable[[], int] | None:
    """The command `argv` runs, read without Typer, or None when Typer must read it (help, a
    group option, a command without a plain reader, anything its reader does not take)."""
    if not argv or argv[0] not in COMMAND_MODULES or os.environ.get(_COMPLETION_VAR):
        return None
    module = importlib.import_module(COMMAND_MODULES[argv[0]])
    reader: Callable[[list[str]], Callable[[], int] | None] | None = getattr(
        module, "plain_run", None
    )
    return None if reader is None else reader(argv[1:])


def report_error(exc: ReconwatchError) -> int:
    """Print a user error without a traceback and return its exit code."""
    from rich.console import Console
    from rich.markup import escape

    # Escape: user text such as "Unknown column [x]" must not be read as rich markup.
    err_console = Console(stderr=True, highlight=False, soft_wrap=True)
    err_console.print(f"[bold red]error:[/] {escape(exc.render())}", markup=True, highlight=False)
    return exc.exit_code


def _stdout_to_devnull() -> None:
    """The interpreter flushes stdout once more at exit; after a failed write that flush
    must go nowhere instead of printing a traceback."""
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
    finally:
        os.close(null)


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    try:
        plain = plain_command(args)
        if plain is not None:
            _run_plain(plain)
        from reconwatch.cli.app import build_command

        command = build_command(args)
        # Loaded: from here Ctrl-C is a KeyboardInterrupt the commands may handle (watch's summary).
        signal.signal(signal.SIGINT, signal.default_int_handler)
        command(args=argv, prog_name="reconwatch", standalone_mode=True)
    except ReconwatchError as exc:
        sys.exit(report_error(exc))
    except KeyboardInterrupt:
        sys.exit(130)
    except BrokenPipeError:
        _stdout_to_devnull()  # the reader went away (`| head`): nothing to say
        sys.exit(1)
    except OSError as exc:
        # A write to stdout that failed (a full disk, an I/O error) or a file that vanished.
        _stdout_to_devnull()
        where = f"{exc.filename}: " if exc.filename else "writing output: "
        reason = exc.strerror or errno.errorcode.get(exc.errno or 0, str(exc))
        from rich.console import Console

        Console(stderr=True, highlight=False, soft_wrap=True).print(
            f"error: {where}{reason}", markup=False
        )
        sys.exit(1)
    except Exception as exc:
        if not _interrupted(exc):
            raise
        sys.exit(130)  # Ctrl-C inside a DuckDB query: DuckDB stops it and raises its own error


def _run_plain(command: Callable[[], int]) -> None:
    """Run a command read without Typer and leave as Typer's standalone mode would: its exit
    code (0 included) as SystemExit, end of input as "Aborted." with 1."""
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        code = command()
    except EOFError:
        sys.stderr.write("\nAborted.\n")
        sys.exit(1)
    sys.exit(code)


def _interrupted(exc: BaseException) -> bool:
    """Whether `exc` is how DuckDB reports a query it stopped for Ctrl-C (its
    InterruptException, or a RuntimeError "Query interrupted" in some releases)."""
    seen: BaseException | None = exc
    for _ in range(20):  # the chain of causes, bounded
        if seen is None:
            break
        if isinstance(seen, KeyboardInterrupt) or type(seen).__name__ == "InterruptException":
            return True
        if isinstance(seen, RuntimeError) and str(seen).strip() == "Query interrupted":
            return True
        seen = seen.__cause__ or seen.__context__
    return False
