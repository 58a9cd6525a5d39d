"""What a command needs to run without Typer: a strict argv reader for the common case (Typer takes every other), echo, the event-file checks, query limits, notes."""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from reconwatch.errors import UsageError
from reconwatch.plan.limits import DEFAULT_MEMORY, QueryLimits, parse_memory, parse_seconds
from reconwatch.records import record

if TYPE_CHECKING:
    from rich.console import Console

# What click's echo strips from text written to something that is not a terminal.
_ANSI = re.compile(r"\033\[[;?0-9]*[a-zA-Z]")


@record
class Option:
    """A long option: a flag, a value (`choices` limits it), or a value given any number of times."""

    dest: str
    flag: bool = False
    multiple: bool = False
    choices: tuple[str, ...] = ()


def parse_args(
    args: Sequence[str], options: Mapping[str, Option], required: int
) -> tuple[list[str], dict[str, object]] | None:
    """(positionals, options by dest) for an argv that uses only the common forms: known long
    options (`--name value`, `--name=value`), positionals anywhere, `--` before positionals only.
    None for anything else (help, a short or unknown option, a missing or repeated value, a
    value that looks like an option, too few positionals): the caller hands the argv to Typer,
    which accepts or refuses it with its own messages, exactly as without this reader."""
    positionals: list[str] = []
    values: dict[str, object] = {}
    rest = iter(args)
    for token in rest:
        if token == "--":
            positionals.extend(rest)
            break
        if not token.startswith("-") or token == "-":
            positionals.append(token)
            continue
        name, eq, inline = token.partition("=")
        option = options.get(name)
        if option is None:
            return None
        if option.flag:
            if eq or option.dest in values:
                return None
            values[option.dest] = True
            continue
        value = inline if eq else next(rest, None)
        if (
            value is None
            or value.startswith("-")
            or (option.choices and value not in option.choices)
        ):
            return None
        if option.multiple:
            got = values.setdefault(option.dest, [])
            assert isinstance(got, list)
            got.append(value)
        elif option.dest in values:
            return None
        else:
            values[option.dest] = value
    if len(positionals) < required:
        return None
    return positionals, values


def echo(text: str, *, err: bool = False) -> None:
    """A line as Typer's echo writes it: ANSI styles removed unless the stream is a terminal,
    flushed at once."""
    stream = sys.stderr if err else sys.stdout
    if not _isatty(stream):
        text = _ANSI.sub("", text)
    stream.write(text + "\n")
    stream.flush()


def _isatty(stream: object) -> bool:
    try:
        return bool(stream.isatty())  # type: ignore[attr-defined]
    except Exception:  # a closed or unusual stream: treat as not a terminal
        return False


def require_files(paths: Iterable[str]) -> None:
    """A mistyped name or a directory must not read as "no alerts" or an empty result: refuse
    it before any run (exit 2)."""
    paths = list(paths)
    missing = [p for p in paths if not Path(p).exists()]
    if missing:
        raise UsageError(f"no such file: {', '.join(missing)}")
    folders = [p for p in paths if Path(p).is_dir()]
    if folders:
        raise UsageError(f"a directory, not an event file: {', '.join(folders)}")


def query_limits(memory: str = DEFAULT_MEMORY, seconds: float | None = None) -> QueryLimits:
    """The limits the options ask for (a UsageError for a size or a budget that is not one)."""
    return QueryLimits(parse_memory(memory), parse_seconds(seconds))


def print_notes(notes: Iterable[str], err: Console) -> None:
    """What the readers assumed (a syslog year), once per file, on stderr."""
    for line in notes:
        err.print(f"note: {line}", markup=False)


def choose_engine(engine: str, spark_master: str | None) -> str:
    """The executor's registry name (--engine), checked; for Spark the master is set and what
    Spark needs (pyspark, Java) is checked before any event is read."""
    from reconwatch.backends import EXECUTORS

    if engine not in EXECUTORS:
        raise UsageError(f"--engine {engine}: unknown; known: {', '.join(EXECUTORS)}")
    if spark_master is not None and engine != "spark":
        raise UsageError("--spark-master needs --engine spark")
    if engine == "spark":
        from reconwatch.backends.spark import session

        session.configure(spark_master)
        session.check_available()
    return engine


def expand_inputs(paths: Iterable[str], engine: str) -> list[str]:
    """The event files of the inputs: a directory stands for the files under it (an export's
    dt=YYYY-MM-DD/ layout included; hidden and _-prefixed files such as _SUCCESS skipped) and a
    glob pattern the shell left for its matches, in natural order (data_2 before data_10, as
    written); a file as given. Every engine reads them alike (`engine`: no longer consulted)."""
    import glob

    out: list[str] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = sorted(
                (
                    str(f)
                    for f in path.rglob("*")
                    if f.is_file()
                    and not any(part[:1] in "._" for part in f.relative_to(path).parts)
                ),
                key=_natural,
            )
        elif not path.exists() and any(ch in raw for ch in "*?["):
            found = sorted(
                (p for p in glob.glob(raw, recursive=True) if Path(p).is_file()), key=_natural
            )
        else:
            out.append(raw)
            continue
        if not found:
            raise UsageError(f"no event file under {raw}")
        out.extend(found)
    return out


def _natural(path: str) -> list[tuple[int, int | str]]:
    """A sort key reading digit runs as numbers: data_2.parquet before data_10.parquet."""
    return [(1, int(part)) if part.isdigit() else (0, part) for part in re.split(r"(\d+)", path)]
