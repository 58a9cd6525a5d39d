"""ES|QL text surgery for rule runs: split at top-level pipes, insert source filters, literals."""

from __future__ import annotations

import json
from datetime import datetime

from reconwatch.plan.values import format_datetime
from reconwatch.types import DataType


def split_commands(query: str) -> list[str]:
    """The query's commands as source slices, split at pipes outside strings, quotes and comments."""
    parts: list[str] = []
    start = 0
    i = 0
    n = len(query)
    while i < n:
        ch = query[i]
        if query.startswith('"""', i):
            end = query.find('"""', i + 3)
            i = n if end < 0 else end + 3
            continue
        if ch == '"':
            i += 1
            while i < n and query[i] != '"':
                i += 2 if query[i] == "\\" else 1
            i += 1
            continue
        if ch == "`":
            i += 1
            while i < n:
                if query[i] == "`":
                    if query.startswith("``", i):
                        i += 2
                        continue
                    break
                i += 1
            i += 1
            continue
        if query.startswith("//", i):
            end = query.find("\n", i)
            i = n if end < 0 else end
            continue
        if query.startswith("/*", i):
            end = query.find("*/", i + 2)
            i = n if end < 0 else end + 2
            continue
        if ch == "|":
            parts.append(query[start:i])
            start = i + 1
        i += 1
    parts.append(query[start:])
    return parts


def join_commands(commands: list[str]) -> str:
    return "|".join(commands)


def command_name(command: str) -> str:
    """The command keyword, lower-cased ("from", "stats", "inline stats", ...)."""
    words = _strip_comments(command).split()
    if not words:
        return ""
    first = words[0].lower()
    if first == "inline" and len(words) > 1:
        return f"inline {words[1].lower()}"
    return first


def _strip_comments(text: str) -> str:
    out: list[str] = []
    for line in text.split("\n"):
        stripped = line.strip()
        if stripped.startswith("//"):
            continue
        out.append(line)
    return "\n".join(out)


def insert_after_source(query: str, conditions: list[str]) -> str:
    """Add `| where <cond>` stages right after FROM, where Kibana's DSL filters act."""
    if not conditions:
        return query
    commands = split_commands(query)
    stages = [f" where {cond}\n" for cond in conditions]
    return join_commands([commands[0].rstrip() + "\n", *stages, *commands[1:]])


def append_limit(query: str, size: int) -> str:
    """Kibana's request body: `<rule query> | limit <size>`."""
    return f"{query.rstrip()}\n| limit {size}"


def quote_field(name: str) -> str:
    """A field name as ES|QL accepts it: dotted identifiers bare, anything else back-quoted."""
    parts = name.split(".")
    if all(
        p and (p[0].isalpha() or p[0] in "_@") and p.replace("_", "a").replace("@", "a").isalnum()
        for p in parts
    ):
        return name
    return "`" + name.replace("`", "``") + "`"


def string_literal(text: str) -> str:
    # JSON escaping is a subset of ES|QL's double-quoted string escapes (\\ \" \n \t \r and \u with four hex digits).
    return json.dumps(text, ensure_ascii=False)


def datetime_literal(value: datetime) -> str:
    return f"to_datetime({string_literal(format_datetime(value))})"


def literal(value: object, type_: DataType) -> str:
    """An ES|QL expression denoting `value` of `type_` (one value, not null)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return datetime_literal(value)
    if type_ is DataType.IP:
        return f"to_ip({string_literal(str(value))})"
    if type_ is DataType.VERSION:
        return f"to_version({string_literal(str(value))})"
    if type_ in (DataType.DATETIME, DataType.DATE_NANOS):
        return f"to_datetime({string_literal(str(value))})"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    return string_literal(str(value))


def time_range_condition(
    field: str | None, start: datetime, end: datetime, *, fallback: bool
) -> str:
    """Kibana's run filter: `field` in [start, end], or `@timestamp` there when `field` is missing."""
    # Plain strings, which ES|QL casts to the field's datetime type: they compile to constants,
    # where TO_DATETIME(...) is a function evaluated per row.
    lo, hi = string_literal(format_datetime(start)), string_literal(format_datetime(end))
    if field is None or field == "@timestamp":
        ts = "@timestamp"
    elif fallback:
        ts = f"coalesce({quote_field(field)}, @timestamp)"
    else:
        ts = quote_field(field)
    return f"{ts} >= {lo} and {ts} <= {hi}"
