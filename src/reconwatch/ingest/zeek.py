"""Zeek conn.log files, TSV (with its #fields/#types header) or JSON lines, as an event input."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec

from reconwatch.ingest.lines import read_lines

if TYPE_CHECKING:
    from reconwatch.ingest.head import Head
    from reconwatch.ingest.report import IngestReport

FORMAT = "zeek"
_DECODER = msgspec.json.Decoder()
# A conn record's keys that a JSON line must hold to be taken for one.
_JSON_KEYS = (b'"id.orig_h"', b'"id.resp_h"', b'"ts"')
_JSON_CONN = (b'"conn_state"', b'"uid"', b'"proto"')
_HEX_ESCAPE = re.compile(r"\\x([0-9a-fA-F]{2})")
Convert = Callable[[str], object]


def sniff(head: Head) -> bool:
    """A TSV conn.log (its header names the conn fields) or JSON lines of conn records."""
    lines = head.lines()[:20]
    if not lines:
        return False
    if lines[0].startswith((b"#separator", b"#fields")):  # a header cut to #fields/#types too
        return any(x.startswith(b"#fields") and b"id.orig_h" in x for x in lines)
    first = lines[0]
    return (
        first[:1] == b"{"
        and all(k in first for k in _JSON_KEYS)
        and any(k in first for k in _JSON_CONN)
    )


def _time(text: str) -> object:
    return float(text)


def _count(text: str) -> object:
    return int(text)


def _bool(text: str) -> object:
    if text in ("T", "F"):
        return text == "T"
    msg = f"not a bool: {text!r}"
    raise ValueError(msg)


def _text(text: str) -> object:
    return text


_CONVERT: dict[str, Convert] = {
    "time": _time,
    "interval": _time,
    "double": _time,
    "count": _count,
    "int": _count,
    "port": _count,
    "bool": _bool,
}


class ZeekLines:
    """One conn.log read line by line: header lines set the columns (a file may hold several
    logs one after another), data lines become ECS events; a line whose columns disagree with
    the header, or that cannot be a record, goes to `report` as file:line."""

    def __init__(self, path: Path, report: IngestReport) -> None:
        self.name = str(path)
        self.report = report
        self.separator = "\t"
        self.set_separator = ","
        self.empty = "(empty)"
        self.unset = "-"
        self.fields: list[str] | None = None
        self.types: list[str] | None = None
        self.converters: list[tuple[Convert, bool]] = []
        from reconwatch.ecs import zeek  # the ECS mapping, loaded when a file is read

        self._conn_event = zeek.conn_event

    def feed(self, raw: bytes, lineno: int) -> list[tuple[int, dict[str, object]]]:
        text = raw.decode("utf-8", "replace").rstrip("\r\n")
        if not text.strip():
            return []
        if text.startswith("#"):
            self._header(text, lineno)
            return []
        try:
            record = self._json(raw) if text.lstrip()[:1] == "{" else self._row(text)
            return [(lineno, self._conn_event(record))]
        except msgspec.DecodeError as exc:  # a ValueError too: it must come first
            self.report.add(f"not JSON: {str(exc)[:120]}", self.name, lineno)
        except ValueError as exc:
            self.report.add(str(exc), self.name, lineno)
        return []

    def flush(self) -> list[tuple[int, dict[str, object]]]:
        return []

    def _header(self, text: str, lineno: int) -> None:
        if text.startswith("#separator "):
            self.separator = _unescape(text.split(" ", 1)[1])
            return
        key, _, rest = text.partition(self.separator)
        values = rest.split(self.separator)
        if key == "#fields":
            self.fields, self.types = values, None
            self._converters()
        elif key == "#types":
            self.types = values
            if self.fields is not None and len(values) != len(self.fields):
                self.report.add(
                    f"#types names {len(values)} columns, #fields {len(self.fields)}: "
                    "values read as text",
                    self.name,
                    lineno,
                )
                self.types = None
            self._converters()
        elif key == "#set_separator":
            self.set_separator = _unescape(rest)
        elif key == "#empty_field":
            self.empty = rest
        elif key == "#unset_field":
            self.unset = rest

    def _converters(self) -> None:
        fields = self.fields or []
        types = self.types or ["string"] * len(fields)
        self.converters = [
            (
                _CONVERT.get(t.split("[", 1)[-1].rstrip("]"), _text),
                t.startswith(("set[", "vector[")),
            )
            for t in types
        ]

    def _row(self, text: str) -> dict[str, object]:
        if self.fields is None:
            raise ValueError("a data line before the #fields header")
        cells = text.split(self.separator)
        if len(cells) != len(self.fields):
            msg = f"{len(cells)} columns where #fields names {len(self.fields)} (line cut short?)"
            raise ValueError(msg)
        record: dict[str, object] = {}
        for name, cell, (convert, is_set) in zip(self.fields, cells, self.converters, strict=True):
            if cell == self.unset:
                continue
            try:
                if is_set:
                    items = [] if cell == self.empty else cell.split(self.set_separator)
                    record[name] = [convert(i) for i in items]
                else:
                    record[name] = convert(cell)
            except ValueError:
                msg = f"{name}: {cell[:40]!r} is not a value of its #types type"
                raise ValueError(msg) from None
        return record

    @staticmethod
    def _json(raw: bytes) -> dict[str, object]:
        value = _DECODER.decode(raw)
        if not isinstance(value, dict):
            raise ValueError("not a JSON object")
        return value


def _unescape(text: str) -> str:
    return _HEX_ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), text.strip())


def read_zeek(path: Path, report: IngestReport) -> Iterator[tuple[int, object]]:
    """(line, ECS event) for each record of a conn.log; bad lines reported as file:line."""
    yield from read_lines(path, report, ZeekLines(path, report))
