"""Alert sinks: where alerts go (stdout, a file; others register by URL scheme) and in which format.

Both `detect` and `watch` write through `open_sink`. A format renders alerts as text; a sink is
a destination. The format is chosen by `--format`, else by the output file's extension, else
NDJSON for files and pipes and the table on a terminal. A destination written as `scheme://...`
goes to the sink registered for that scheme (the service adds webhook, syslog and _bulk sinks
with `register_sink`).
"""

from __future__ import annotations

import abc
import contextlib
import csv
import io
import json
import os
import re
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol, TextIO

from rich.console import Console

from reconwatch.alerts.render import CSV_COLUMNS, csv_row, print_reports, table
from reconwatch.errors import OutputError, UsageError
from reconwatch.rules.model import Rule

Alerts = Sequence[Mapping[str, object]]
STDOUT = "-"
# Width of the table and reports written to a file (no terminal to measure).
FILE_WIDTH = 120


class AlertSink(Protocol):
    """A destination for alerts. `write` may be called any number of times (a stream writes
    each batch as it fires); `close` finishes the output. Both raise OutputError when the
    destination fails (a full disk, a closed connection)."""

    name: str

    def write(self, alerts: Alerts) -> None: ...

    def close(self) -> None: ...


class Formatter(Protocol):
    """Renders alerts as text to a stream, batch by batch; `end` is told how many were written."""

    def write(self, out: TextIO, alerts: Alerts) -> None: ...

    def end(self, out: TextIO, count: int) -> None: ...


@dataclass(frozen=True, slots=True)
class FormatContext:
    """What a format may need besides the alerts."""

    rules: Mapping[str, Rule] = field(default_factory=dict)
    # The table's and reports' width in a file; None on stdout (the terminal's width, COLUMNS).
    width: int | None = None


@dataclass(frozen=True, slots=True)
class OutputFormat:
    name: str
    extensions: tuple[str, ...]
    make: Callable[[FormatContext], Formatter]
    help: str


FORMATS: dict[str, OutputFormat] = {}
SinkFactory = Callable[[str, Formatter], AlertSink]
# URL scheme -> sink factory (target, formatter); files and stdout are built in.
SINKS: dict[str, SinkFactory] = {}


def register_format(fmt: OutputFormat) -> None:
    FORMATS[fmt.name] = fmt


def register_sink(scheme: str, factory: SinkFactory) -> None:
    SINKS[scheme] = factory


# -- formats -------------------------------------------------------------------------------


class NdjsonFormat:
    def write(self, out: TextIO, alerts: Alerts) -> None:
        out.write("".join(json.dumps(a, ensure_ascii=False, default=str) + "\n" for a in alerts))

    def end(self, out: TextIO, count: int) -> None:
        return None


class JsonFormat:
    """One JSON array, written element by element (a stream can be read as it grows)."""

    def __init__(self) -> None:
        self.started = False

    def write(self, out: TextIO, alerts: Alerts) -> None:
        for alert in alerts:
            text = json.dumps(alert, ensure_ascii=False, indent=2, default=str)
            out.write(",\n" if self.started else "[\n")
            out.write("\n".join("  " + line for line in text.split("\n")))
            self.started = True

    def end(self, out: TextIO, count: int) -> None:
        out.write("\n]\n" if self.started else "[]\n")


class CsvFormat:
    """A header, then one row per alert with fixed columns (render.CSV_COLUMNS)."""

    def __init__(self) -> None:
        self.started = False

    def write(self, out: TextIO, alerts: Alerts) -> None:
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        if not self.started:
            writer.writerow(CSV_COLUMNS)
            self.started = True
        writer.writerows(csv_row(a) for a in alerts)
        out.write(buf.getvalue())

    def end(self, out: TextIO, count: int) -> None:
        if not self.started:
            self.write(out, [])


class _RichFormat(abc.ABC):
    """Rendered by rich: to the terminal's width on stdout, or FILE_WIDTH in a file."""

    def __init__(self, context: FormatContext) -> None:
        self.context = context
        self.count = 0

    def console(self, out: TextIO) -> Console:
        if self.context.width is None:
            return Console(file=out)
        return Console(file=out, width=self.context.width, force_terminal=False)

    def write(self, out: TextIO, alerts: Alerts) -> None:
        if alerts:
            self.render(self.console(out), alerts, self.count + 1)
            self.count += len(alerts)

    def end(self, out: TextIO, count: int) -> None:
        if count == 0:
            self.console(out).print("no alerts")

    @abc.abstractmethod
    def render(self, console: Console, alerts: Alerts, first: int) -> None:
        """Print `alerts`, numbered from `first`."""


class TableFormat(_RichFormat):
    def render(self, console: Console, alerts: Alerts, first: int) -> None:
        console.print(table(alerts, first))


class ReportFormat(_RichFormat):
    def render(self, console: Console, alerts: Alerts, first: int) -> None:
        print_reports(console, alerts, self.context.rules, first)


register_format(
    OutputFormat(
        "ndjson", (".ndjson", ".jsonl"), lambda _: NdjsonFormat(), "one JSON alert per line"
    )
)
register_format(OutputFormat("json", (".json",), lambda _: JsonFormat(), "a JSON array"))
register_format(OutputFormat("csv", (".csv",), lambda _: CsvFormat(), "one row per alert"))
register_format(OutputFormat("table", (".txt",), TableFormat, "a table (terminal default)"))
register_format(
    OutputFormat("report", (), ReportFormat, "a report per alert with the rule's guide")
)


# -- sinks ---------------------------------------------------------------------------------


class StreamSink:
    """Alerts rendered to a text stream (stdout or a file), flushed after every batch so a
    reader sees each alert as it fires."""

    def __init__(self, name: str, stream: TextIO, formatter: Formatter, *, owned: bool) -> None:
        self.name = name
        self.stream = stream
        self.formatter = formatter
        self.owned = owned
        self.count = 0
        self.closed = False

    def write(self, alerts: Alerts) -> None:
        with self._guard():
            self.formatter.write(self.stream, alerts)
            self.stream.flush()
        self.count += len(alerts)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        with self._guard():
            self.formatter.end(self.stream, self.count)
            self.stream.flush()
            if self.owned:
                self.stream.close()

    @contextlib.contextmanager
    def _guard(self) -> Iterator[None]:
        """An OSError of the destination (ENOSPC, EIO ...) becomes one OutputError line."""
        try:
            yield
        except BrokenPipeError:
            raise  # the reader went away: main leaves quietly
        except OSError as exc:
            self.closed = True
            _discard(self.stream)
            reason = exc.strerror or str(exc)
            raise OutputError(f"writing alerts to {self.name}: {reason}") from None


def _discard(stream: TextIO) -> None:
    """After a failed write, point the stream at /dev/null: the interpreter's own flush at exit
    would otherwise fail once more and print a traceback."""
    try:
        fd = stream.fileno()
    except (OSError, ValueError):
        return
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, fd)
    finally:
        os.close(null)


_SCHEME = re.compile(r"^([a-z][a-z0-9+.-]*)://")


def format_for(target: str | None, fmt: str | None, *, terminal: bool) -> str:
    """The format name: `fmt` if given, else by the file's extension, else table on a
    terminal and NDJSON otherwise."""
    if fmt is not None:
        if fmt not in FORMATS:
            msg = f"--format {fmt!r}: choose one of {', '.join(FORMATS)}"
            raise UsageError(msg)
        return fmt
    if target is None or target == STDOUT:
        return "table" if terminal else "ndjson"
    suffixes = [s.lower() for s in Path(target).suffixes]
    for f in FORMATS.values():
        if suffixes and suffixes[-1] in f.extensions:
            return f.name
    return "ndjson"


def open_sink(
    target: str | None,
    fmt: str | None = None,
    *,
    rules: Mapping[str, Rule] | None = None,
    stdout: TextIO | None = None,
    inputs: Sequence[str] = (),
    append: bool = False,
) -> AlertSink:
    """The sink for `-o target` (None or - is stdout). Opened before any run, so a bad path
    fails at once rather than after an hour of runs; a target that is one of the `inputs`
    is refused (opening it would empty the events before they are read). `append`: a file
    keeps what it holds (the service's sinks across restarts)."""
    out = stdout or sys.stdout
    to_stdout = target is None or target == STDOUT
    terminal = to_stdout and out.isatty()
    name = format_for(target, fmt, terminal=terminal)
    width = None if to_stdout else FILE_WIDTH
    formatter = FORMATS[name].make(FormatContext(dict(rules or {}), width))
    if target is None or target == STDOUT:
        return StreamSink("<stdout>", out, formatter, owned=False)
    match = _SCHEME.match(target)
    if match is not None:
        scheme = match.group(1)
        if scheme == "file":
            target = target[len("file://") :]
        elif scheme in SINKS:
            return SINKS[scheme](target, formatter)
        else:
            known = ", ".join(["file", *SINKS]) + " (or a plain path, or - for stdout)"
            msg = f"--output {target}: no alert sink for {scheme}://; known: {known}"
            raise UsageError(msg)
    _refuse_input(target, inputs)
    return StreamSink(target, _open_file(target, "a" if append else "w"), formatter, owned=True)


def _refuse_input(target: str, inputs: Sequence[str]) -> None:
    for name in inputs:
        try:
            same = os.path.samefile(target, name)
        except OSError:  # either does not exist (yet): not the same file
            continue
        if same:
            msg = f"--output {target}: is an input of this command (writing would empty it)"
            raise UsageError(msg)


def _open_file(path: str, mode: Literal["w", "a"] = "w") -> TextIO:
    try:
        return open(path, mode, encoding="utf-8")  # the sink owns and closes it
    except OSError as exc:
        reason = exc.strerror or str(exc)
        if isinstance(exc, IsADirectoryError):
            reason = "is a directory (give a file name)"
        msg = f"--output {path}: cannot write: {reason}"
        raise UsageError(msg) from None
