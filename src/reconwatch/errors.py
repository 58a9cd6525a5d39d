"""One error tree for reconwatch: every user-facing failure carries where it happened."""

from __future__ import annotations

from reconwatch.records import record


@record
class Span:
    """A region of query text: 1-based line and column of its start, 0-based offsets [start, end)."""

    start: int
    end: int
    line: int
    col: int

    def text(self, source: str) -> str:
        return source[self.start : self.end]

    def join(self, other: Span) -> Span:
        """The smallest span covering both (self must start first)."""
        return Span(self.start, max(self.end, other.end), self.line, self.col)

    def cut(self, end: int) -> Span:
        """The same start, ending at `end`."""
        return Span(self.start, end, self.line, self.col)


def span_at(source: str, start: int, end: int | None = None) -> Span:
    """Build a Span for offsets into source, computing line and column."""
    line = source.count("\n", 0, start) + 1
    col = start - (source.rfind("\n", 0, start) + 1) + 1
    return Span(start, start if end is None else end, line, col)


class ReconwatchError(Exception):
    """Root of every error reconwatch reports to a user. exit_code: 2 bad input, 1 runtime."""

    exit_code = 1

    def one_line(self) -> str:
        return str(self)

    def render(self) -> str:
        """What the CLI prints after `error: ` (a query error adds its caret line)."""
        return self.one_line()


class QueryError(ReconwatchError):
    """A problem in ES|QL text, positioned as Elasticsearch does: `line L:C: message`."""

    exit_code = 2

    def __init__(self, message: str, span: Span | None = None, source: str | None = None) -> None:
        self.message = message
        self.span = span
        self.source = source
        super().__init__(self.one_line())

    def one_line(self) -> str:
        if self.span is None:
            return self.message
        return f"line {self.span.line}:{self.span.col}: {self.message}"

    def caret(self) -> str:
        """The offending query line with a caret under the error position, or '' if unknown."""
        if self.span is None or self.source is None:
            return ""
        lines = self.source.split("\n")
        if not 1 <= self.span.line <= len(lines):
            return ""
        text = lines[self.span.line - 1]
        width = max(1, min(self.span.end - self.span.start, len(text) - self.span.col + 1))
        return f"{text}\n{' ' * (self.span.col - 1)}{'^' * width}"

    def render(self) -> str:
        caret = self.caret()
        return f"{self.one_line()}\n{caret}" if caret else self.one_line()


class QuerySyntaxError(QueryError):
    """The text is not ES|QL (lexer or parser)."""


class QuerySemanticError(QueryError):
    """Valid syntax, invalid meaning: unknown column, wrong type, bad argument count."""


class UnsupportedFeatureError(QueryError):
    """A real ES|QL feature reconwatch does not run; refused by name, never approximated."""

    def __init__(self, feature: str, span: Span | None = None, source: str | None = None) -> None:
        self.feature = feature
        super().__init__(f"unsupported: {feature}", span, source)


class IngestError(ReconwatchError):
    """A bad event or input file: `file:line: reason`. Usually counted and skipped, not raised."""

    exit_code = 2

    def __init__(self, reason: str, path: str | None = None, line: int | None = None) -> None:
        self.reason = reason
        self.path = path
        self.line = line
        super().__init__(self.one_line())

    def one_line(self) -> str:
        where = self.path or "<input>"
        if self.line is not None:
            where = f"{where}:{self.line}"
        return f"{where}: {self.reason}"


class RuleLoadError(ReconwatchError):
    """A rule file that cannot be used; carries every problem found, each naming file and field."""

    exit_code = 2

    def __init__(self, path: str, problems: list[tuple[str, str]]) -> None:
        self.path = path
        self.problems = problems  # (field, reason)
        super().__init__(self.one_line())

    def one_line(self) -> str:
        return "; ".join(f"{self.path}: {field}: {reason}" for field, reason in self.problems)


class UsageError(ReconwatchError):
    """A command line that cannot be carried out as given."""

    exit_code = 2


class ConfigError(ReconwatchError):
    """A configuration file that cannot be used: one line naming the file, the key and why."""

    exit_code = 2

    def __init__(self, path: str, key: str, reason: str) -> None:
        self.path = path
        self.key = key
        self.reason = reason
        super().__init__(f"{path}: {key}: {reason}")


class OutputError(ReconwatchError):
    """Results could not be written (a full disk, an I/O error): `writing alerts to X: reason`."""

    exit_code = 1


class QueryLimitError(ReconwatchError):
    """A query stopped at one of its resource limits (time budget, memory), in one line naming
    the limit and the option that sets it; the host is left as it was."""

    exit_code = 1


class QueryTimeoutError(QueryLimitError):
    """A query cancelled at its time budget (--timeout)."""


class QueryMemoryError(QueryLimitError):
    """A query stopped at its memory limit (--memory-limit)."""


class RuleRunError(ReconwatchError):
    """A rule that failed to load or run while others ran: the rule's file, then the cause."""

    def __init__(self, label: str, cause: ReconwatchError) -> None:
        self.label = label
        self.cause = cause
        self.exit_code = cause.exit_code
        super().__init__(self.one_line())

    def one_line(self) -> str:
        return self._named(self.cause.one_line())

    def render(self) -> str:
        return self._named(self.cause.render())

    def _named(self, text: str) -> str:
        """The cause, led by the rule's file unless it names it already."""
        first = text.split("\n", 1)[0]
        return (
            text
            if repr(self.label) in first or first.startswith(self.label + ":")
            else f"{self.label}: {text}"
        )


class SensorError(ReconwatchError):
    """The sensor cannot capture (missing bpftrace, no privileges, no tracefs); names the fix."""

    exit_code = 1
