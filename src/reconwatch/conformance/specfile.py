"""The csv-spec file format: test blocks (name, directives, query, expected typed table) with file:line."""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from pathlib import Path

from reconwatch.errors import IngestError
from reconwatch.types import DataType, parse_type

# Directives that may precede the query; the value is kept verbatim for the runner to judge.
_PRE_DIRECTIVES = (
    "required_capability",
    "required_capability_coordinator",
    "missing_capability_coordinator",
    "missing_capability_data_node",
    "skip_flattened_rewrite",
    "request_stored",
    "pragma",
    "skip_columnar",
)
_PRE_DIRECTIVE_RE = re.compile(rf"^({'|'.join(_PRE_DIRECTIVES)})\s*:(.*)$", re.IGNORECASE)
_POST_DIRECTIVE_RE = re.compile(r"^(ignoreorder|warning|warningregex)\s*:(.*)$", re.IGNORECASE)
# A name is the whole line (spaces, `(`, `|` included) less an `-Ignore` suffix and a `#[...]` marker.
_NAME_RE = re.compile(r"^(?P<name>.+?)(?P<ignore>-Ignore)?\s*(?:#\[(?P<marker>.*)\])?$")
_SKIP_RE = re.compile(r"^\s*skip\s*:\s*(?P<range>[^,]*?)\s*(?:,\s*reason\s*:\s*(?P<reason>.*))?$")
_HEADER_CELL_RE = re.compile(r"^\s*(?P<name>\S.*?)\s*:\s*(?P<type>[A-Za-z_ ]+?)\s*$")


@dataclass(frozen=True, slots=True)
class HeaderColumn:
    """An expected column: its name, its type as written, and the DataType (None if unknown to us)."""

    name: str
    type_text: str
    type: DataType | None


@dataclass(frozen=True, slots=True)
class SkipMarker:
    """`#[skip:LOW-HIGH,reason:...]`: the case does not apply to versions in [LOW, HIGH]."""

    low: str
    high: str
    reason: str


@dataclass(frozen=True, slots=True)
class SpecCase:
    """One csv-spec test block. `rows` hold the trimmed expected cells as written."""

    file: str
    name: str
    line: int
    query: str
    query_line: int
    capabilities: tuple[str, ...] = ()
    directives: tuple[tuple[str, str], ...] = ()
    ignore_order: bool = False
    warnings: tuple[str, ...] = ()
    warning_regexes: tuple[str, ...] = ()
    columns: tuple[HeaderColumn, ...] = ()
    rows: tuple[tuple[str, ...], ...] = ()
    ignored: bool = False
    skip: SkipMarker | None = None
    notes: tuple[str, ...] = ()
    # Elastic's reader never sees this case: the previous case's query lacks its ';', so the
    # reader takes that case's table as query text and this whole case as its expected table.
    swallowed_by: str | None = None

    @property
    def id(self) -> str:
        return f"{self.file}#{self.name}"

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass(slots=True)
class SpecFile:
    """A parsed spec file: its cases and every block that could not be read (file:line: reason)."""

    path: str
    cases: list[SpecCase] = field(default_factory=list)
    problems: list[IngestError] = field(default_factory=list)


def split_cells(line: str) -> list[str]:
    """Cells of a `|`-separated header or row line, trimmed (`\\|` is a literal bar)."""
    cells: list[str] = []
    current: list[str] = []
    i = 0
    while i < len(line):
        ch = line[i]
        if ch == "\\" and i + 1 < len(line) and line[i + 1] == "|":
            current.append("|")
            i += 2
            continue
        if ch == "|":
            cells.append("".join(current).strip())
            current = []
        else:
            current.append(ch)
        i += 1
    cells.append("".join(current).strip())
    return cells


def parse_header(line: str) -> tuple[HeaderColumn, ...] | None:
    """The columns of a header line, or None if some cell is not `name:type`."""
    out: list[HeaderColumn] = []
    for cell in split_cells(line):
        m = _HEADER_CELL_RE.match(cell)
        if m is None:
            return None
        type_text = " ".join(m["type"].split())
        out.append(HeaderColumn(m["name"], type_text, parse_type(type_text)))
    return tuple(out)


def _looks_like_header(line: str) -> bool:
    """True if every cell is `name:type` with a type we recognise (a query line never is)."""
    columns = parse_header(line)
    return columns is not None and all(c.type is not None for c in columns)


def _is_comment(line: str) -> bool:
    return line.startswith(("//", "#")) or line.startswith(("tag::", "end::"))


@dataclass(slots=True)
class _Block:
    """A test block being read."""

    name: str
    line: int
    ignored: bool
    skip: SkipMarker | None
    capabilities: list[str] = field(default_factory=list)
    directives: list[tuple[str, str]] = field(default_factory=list)
    query_lines: list[str] = field(default_factory=list)
    query_line: int = 0
    query_done: bool = False
    ignore_order: bool = False
    warnings: list[str] = field(default_factory=list)
    warning_regexes: list[str] = field(default_factory=list)
    columns: tuple[HeaderColumn, ...] | None = None
    rows: list[tuple[str, ...]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    swallowed_by: str | None = None

    def finish(self, file: str) -> SpecCase:
        query = "\n".join(self.query_lines).replace("\\;", ";")
        return SpecCase(
            file=file,
            name=self.name,
            line=self.line,
            query=query,
            query_line=self.query_line,
            capabilities=tuple(self.capabilities),
            directives=tuple(self.directives),
            ignore_order=self.ignore_order,
            warnings=tuple(self.warnings),
            warning_regexes=tuple(self.warning_regexes),
            columns=self.columns or (),
            rows=tuple(self.rows),
            ignored=self.ignored,
            skip=self.skip,
            notes=tuple(self.notes),
            swallowed_by=self.swallowed_by,
        )


def _parse_name(line: str) -> tuple[str, bool, SkipMarker | None] | str:
    """(name, ignored, skip marker) of a test name line, or the reason it is not one."""
    m = _NAME_RE.match(line)
    if m is None:
        return f"expected a test name, found {line[:60]!r}"
    skip: SkipMarker | None = None
    if m["marker"] is not None:
        s = _SKIP_RE.match(m["marker"])
        if s is None:
            return f"unreadable test marker #[{m['marker']}]"
        low, _, high = s["range"].partition("-")
        skip = SkipMarker(low.strip(), high.strip(), (s["reason"] or "").strip())
    return m["name"], m["ignore"] is not None, skip


class _Reader:
    """A line-driven reader; one instance per file."""

    def __init__(self, path: str, file: str) -> None:
        self.path = path
        self.file = file
        self.out = SpecFile(path)
        self.block: _Block | None = None
        self.resync = False  # after a bad block: skip to its closing `;`
        self.previous_blank = False
        self.swallowing: str | None = None  # name of a case whose query lacked its ';'

    def problem(self, line_no: int, reason: str) -> None:
        self.out.problems.append(IngestError(reason, self.path, line_no))

    def feed(self, line_no: int, raw: str) -> None:
        line = raw.strip()
        blank = not line
        try:
            if blank or _is_comment(line):
                return
            if self.resync:
                self.resync = line != ";"
                return
            if self.block is None:
                self._start(line_no, line)
            elif not self.block.query_done:
                self._query_line(line_no, line)
            else:
                self._result_line(line_no, line)
        finally:
            self.previous_blank = blank

    def end(self, line_no: int) -> None:
        if self.block is not None:
            self.problem(self.block.line, f"test {self.block.name} is not closed by a ';' line")
            self.block = None

    def _start(self, line_no: int, line: str) -> None:
        parsed = _parse_name(line)
        if isinstance(parsed, str):
            self.problem(line_no, parsed)
            self.resync = line != ";"
            return
        name, ignored, skip = parsed
        self.block = _Block(name, line_no, ignored, skip, swallowed_by=self.swallowing)
        self.swallowing = None

    def _query_line(self, line_no: int, line: str) -> None:
        block = self.block
        assert block is not None
        if not block.query_lines:
            m = _PRE_DIRECTIVE_RE.match(line)
            if m is not None:
                key, value = m[1].lower(), m[2].strip()
                if key == "required_capability":
                    block.capabilities.append(value)
                else:
                    block.directives.append((key, value))
                return
            block.query_line = line_no
        elif self.previous_blank and _looks_like_header(line):
            # The query lacked its ';' (e.g. ip.csv-spec#equalityNoSort-Ignore): the header starts.
            block.notes.append(f"line {line_no}: query not terminated by ';'")
            self.swallowing = block.name
            block.query_done = True
            self._result_line(line_no, line)
            return
        if line.endswith(";") and not line.endswith("\\;"):
            if line != ";":
                block.query_lines.append(line[:-1].rstrip())
            block.query_done = True
        else:
            block.query_lines.append(line)

    def _result_line(self, line_no: int, line: str) -> None:
        block = self.block
        assert block is not None
        if line.startswith(";"):
            self._close(line_no)
            return
        m = _POST_DIRECTIVE_RE.match(line)
        if m is not None and block.columns is None:
            key, value = m[1].lower(), m[2].strip()
            if key == "ignoreorder":
                block.ignore_order = value.lower() == "true"
            elif key == "warning":
                # `text#[Emulated:other]`: `other` is what Elasticsearch's in-process test
                # emulation gives; a real node (which we are judged as) gives `text`.
                block.warnings.append(value.split("#[Emulated:", 1)[0])
            else:
                block.warning_regexes.append(value)
            return
        if block.columns is None:
            columns = parse_header(line)
            if columns is None:
                self.problem(line_no, f"test {block.name}: expected a `name:type | ...` header")
                self.block = None
                self.resync = True
                return
            block.columns = columns
            return
        cells = split_cells(line)
        if len(cells) != len(block.columns):
            self.problem(
                line_no,
                f"test {block.name}: row has {len(cells)} cells, header has {len(block.columns)}",
            )
            self.block = None
            self.resync = True
            return
        block.rows.append(tuple(cells))

    def _close(self, line_no: int) -> None:
        block = self.block
        assert block is not None
        self.block = None
        if block.columns is None:
            self.problem(line_no, f"test {block.name}: no expected header before ';'")
            return
        if not "".join(block.query_lines).strip():
            self.problem(block.line, f"test {block.name}: empty query")
            return
        self.out.cases.append(block.finish(self.file))


def parse_spec_text(text: str, path: str = "<spec>") -> SpecFile:
    """Parse csv-spec text; bad blocks are reported in `problems`, the good ones kept."""
    reader = _Reader(path, Path(path).name)
    lines = text.splitlines()
    for number, raw in enumerate(lines, start=1):
        reader.feed(number, raw)
    reader.end(len(lines))
    _qualify_duplicates(reader.out.cases)
    return reader.out


def _qualify_duplicates(cases: list[SpecCase]) -> None:
    """Give a repeated test name (ip.csv-spec has two `mvSlice`) a unique id: name@line."""
    seen: set[str] = set()
    for i, case in enumerate(cases):
        if case.name in seen:
            note = f"duplicate test name {case.name}; id qualified by its line"
            cases[i] = replace(case, name=f"{case.name}@{case.line}", notes=(*case.notes, note))
        seen.add(case.name)


def parse_spec_file(path: Path) -> SpecFile:
    """Parse one *.csv-spec file (UTF-8)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        out = SpecFile(str(path))
        out.problems.append(IngestError(f"cannot read: {exc}", str(path)))
        return out
    return parse_spec_text(text, str(path))
