"""The Typer app: the command tree for help, usage errors and every argv the commands' plain readers leave to it."""

from __future__ import annotations

import enum
import importlib
from typing import Annotated, Any

import typer

from reconwatch import __version__
from reconwatch.cli.main import COMMAND_MODULES

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


_registered: set[str] = set()


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
