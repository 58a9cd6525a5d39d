"""The `reconwatch` command: builds the Typer app from one module per command and maps errors to exit codes."""

from __future__ import annotations

import signal
import sys
from types import FrameType


def _interrupted_at_start(signum: int, frame: FrameType | None) -> None:
    """Ctrl-C while the program is still loading: leave with 130 and no traceback."""
    raise SystemExit(130)


# Before the heavy imports below: an interrupt while they load must not print a traceback.
signal.signal(signal.SIGINT, _interrupted_at_start)

import enum  # noqa: E402
import errno  # noqa: E402
import importlib  # noqa: E402
import os  # noqa: E402
from typing import Annotated, Any  # noqa: E402

import typer  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.markup import escape  # noqa: E402

from reconwatch import __version__  # noqa: E402
from reconwatch.errors import ReconwatchError  # noqa: E402

app = typer.Typer(
    name="reconwatch",
    help="Catch network reconnaissance from compromised Linux hosts with Elastic's ES|QL detection rules.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"reconwatch {__version__}")
        raise typer.Exit()


# The group's own options; a callback also keeps the app a group when only the command being
# run is registered (Typer would run a lone command directly).
@app.callback()
def _options(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_version,
            is_eager=True,
            help="Print the version and exit.",
            metavar="",
        ),
    ] = False,
) -> None:
    """Catch network reconnaissance from compromised Linux hosts with Elastic's ES|QL detection rules."""


# Each module defines `register(app)`; add a command by adding its name and module here. Only
# the module of the command being run is imported (each pulls in its own engine parts).
COMMAND_MODULES: dict[str, str] = {
    "conformance": "reconwatch.cli.conformance",
    "detect": "reconwatch.cli.detect",
    "query": "reconwatch.cli.query",
    "rules": "reconwatch.cli.rules",
    "simulate": "reconwatch.cli.simulate",
    "sensor": "reconwatch.cli.sensor",
    "serve": "reconwatch.cli.serve",
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


def _quiet_flags(command: Any) -> None:
    """Flags take no value: the help shows none (not `<bool>`) for them and for --help."""
    commands = getattr(command, "commands", {})
    for sub in commands.values():
        _quiet_flags(sub)
    for param in getattr(command, "params", []):
        if getattr(param, "is_flag", False):
            param.metavar = ""
        elif _unnamed_option(param):
            # Typer would show the Python type (`<str>`, `<int>`): name the value instead.
            param.metavar = (param.name or "value").upper()
    make_context = getattr(command, "context_class", None)
    get_help = getattr(command, "get_help_option", None)
    if make_context is not None and get_help is not None:
        help_option = get_help(make_context(command, info_name=command.name))
        if help_option is not None:
            help_option.metavar = ""


def _unnamed_option(param: Any) -> bool:
    """An option with no metavar whose type says nothing to a user (text, a number); an
    option's choices stay shown, and arguments are named by themselves."""
    if getattr(param, "param_type_name", "") != "option" or param.metavar is not None:
        return False
    desc = getattr(param, "type_descriptor", None)
    return desc is not None and not getattr(desc, "choices", None) and not _is_enum(desc)


def _is_enum(desc: Any) -> bool:
    annotation = getattr(desc, "annotation", None)
    return isinstance(annotation, type) and issubclass(annotation, enum.Enum)


def build_command(argv: list[str]) -> Any:
    """The click command tree that runs `argv` (its command registered, or all of them)."""
    _register_for(argv)
    command = typer.main.get_command(app)
    _quiet_flags(command)
    return command


def report_error(exc: ReconwatchError) -> int:
    """Print a user error without a traceback and return its exit code."""
    # Escape: user text such as "Unknown column [x]" must not be read as rich markup.
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
    try:
        command = build_command(sys.argv[1:] if argv is None else argv)
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
        err_console.print(f"error: {where}{reason}", markup=False)
        sys.exit(1)
    except Exception as exc:
        if not _interrupted(exc):
            raise
        sys.exit(130)  # Ctrl-C inside a DuckDB query: DuckDB stops it and raises its own error


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
