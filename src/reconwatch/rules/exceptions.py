"""Elastic exception lists: items of entries (is, is one of, exists, matches and negations).

Two file forms are read: Kibana's exception-list export (NDJSON: a list header, then items whose
`entries` are {field, operator: included|excluded, type: match|match_any|exists|wildcard, value})
and a short TOML form:

    [[exception]]
    name = "monitoring agent"
    "process.executable" = { "is one of" = ["/usr/bin/prometheus", "/usr/bin/zabbix_agentd"] }
    "agent.id" = "0b4a..."            # shorthand for { is = "0b4a..." }

Entries in one item are ANDed, items are ORed; a source event matching any item is excluded.
"""

from __future__ import annotations

import difflib
import ipaddress
import json
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reconwatch.errors import RuleLoadError
from reconwatch.plan.values import ConversionError, convert
from reconwatch.types import DataType

ENTRY_TYPES = ("match", "match_any", "exists", "wildcard")
# The operator names of Kibana's UI -> (type, operator) of the stored entry.
OPERATORS: dict[str, tuple[str, str]] = {
    "is": ("match", "included"),
    "is not": ("match", "excluded"),
    "is one of": ("match_any", "included"),
    "is not one of": ("match_any", "excluded"),
    "exists": ("exists", "included"),
    "does not exist": ("exists", "excluded"),
    "matches": ("wildcard", "included"),
    "does not match": ("wildcard", "excluded"),
}


@dataclass(frozen=True, slots=True)
class Entry:
    field: str
    type: str
    operator: str
    value: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        for name, (type_, op) in OPERATORS.items():
            if (type_, op) == (self.type, self.operator):
                return name
        return f"{self.type}/{self.operator}"


@dataclass(frozen=True, slots=True)
class ExceptionItem:
    name: str
    entries: tuple[Entry, ...]


@dataclass(frozen=True, slots=True)
class ExceptionList:
    name: str
    items: tuple[ExceptionItem, ...]
    path: str = ""


def load_exceptions(path: str | Path) -> ExceptionList:
    """Read an exception file (.toml short form, otherwise Kibana NDJSON export)."""
    p = Path(path)
    try:
        text = p.read_text("utf-8")
    except OSError as exc:
        raise RuleLoadError(str(path), [("<file>", exc.strerror or str(exc))]) from None
    except UnicodeDecodeError as exc:
        line = exc.object[: exc.start].count(b"\n") + 1
        reason = f"not UTF-8 text (byte 0x{exc.object[exc.start]:02x} on line {line})"
        raise RuleLoadError(str(path), [("<file>", reason)]) from None
    if p.suffix.lower() == ".toml":
        return _from_toml(text, str(path))
    return _from_ndjson(text, str(path))


def _from_ndjson(text: str, label: str) -> ExceptionList:
    problems: list[tuple[str, str]] = []
    name = Path(label).stem
    header = False
    items: list[ExceptionItem] = []
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        where = f"line {lineno}"
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            problems.append((where, f"not JSON: {exc.msg}"))
            continue
        except RecursionError:  # nesting deeper than the parser's stack
            problems.append((where, "not JSON: nested too deeply"))
            continue
        if not isinstance(obj, dict):
            problems.append((where, "expected a JSON object"))
            continue
        if "entries" not in obj:
            # The list header (list_id, name, type) or the export summary line.
            if "list_id" in obj and isinstance(obj.get("name"), str):
                name = obj["name"]
                header = True
            continue
        entries = _entries(obj["entries"], f"{where}: entries", problems)
        items.append(ExceptionItem(str(obj.get("name") or obj.get("item_id") or where), entries))
    if not items and not header and not problems:
        reason = (
            "holds no exception list: expected Kibana's exception-list export "
            "(a list header, then items with `entries`) or a .toml file"
        )
        problems.append(("<file>", reason))
    if problems:
        raise RuleLoadError(label, problems)
    return ExceptionList(name, tuple(items), label)


def _entries(
    raw: object, where: str, problems: list[tuple[str, str]], prefix: str = ""
) -> tuple[Entry, ...]:
    if not isinstance(raw, list) or not raw:
        problems.append((where, "must be a non-empty list"))
        return ()
    out: list[Entry] = []
    for i, ent in enumerate(raw):
        at = f"{where}[{i}]"
        if not isinstance(ent, dict) or not isinstance(ent.get("field"), str):
            problems.append((at, "needs a string `field`"))
            continue
        field = prefix + ent["field"]
        type_ = ent.get("type")
        if type_ == "nested":
            out.extend(_entries(ent.get("entries"), f"{at}.entries", problems, field + "."))
            continue
        if type_ == "list":
            problems.append(
                (
                    at,
                    "value-list entries (is in list) are not supported; inline the values with match_any",
                )
            )
            continue
        if type_ not in ENTRY_TYPES:
            problems.append((at, f"type {type_!r} is not one of {', '.join(ENTRY_TYPES)}"))
            continue
        operator = ent.get("operator", "included")
        if operator not in ("included", "excluded"):
            problems.append((at, f"operator {operator!r} must be included or excluded"))
            continue
        values = _values(type_, ent.get("value"), at, problems)
        if values is not None:
            out.append(Entry(field, type_, operator, values))
    return tuple(out)


def _values(
    type_: str, value: object, at: str, problems: list[tuple[str, str]]
) -> tuple[str, ...] | None:
    if type_ == "exists":
        return ()
    if type_ == "match_any":
        if (
            isinstance(value, list)
            and value
            and all(isinstance(v, str | int | float) for v in value)
        ):
            return tuple(str(v) for v in value)
        problems.append((at, "match_any needs a non-empty list of values"))
        return None
    if isinstance(value, str | int | float) and not isinstance(value, bool):
        return (str(value),)
    problems.append((at, f"{type_} needs one string value"))
    return None


def _from_toml(text: str, label: str) -> ExceptionList:
    try:
        doc = tomllib.loads(text)
    except (tomllib.TOMLDecodeError, RecursionError) as exc:
        raise RuleLoadError(label, [("<toml>", str(exc))]) from None
    problems: list[tuple[str, str]] = []
    raw_items = doc.get("exception")
    if not isinstance(raw_items, list) or not raw_items:
        raise RuleLoadError(label, [("exception", "expected one or more [[exception]] tables")])
    items: list[ExceptionItem] = []
    for i, raw in enumerate(raw_items):
        where = f"exception[{i}]"
        if not isinstance(raw, dict):
            problems.append((where, "must be a table of field = condition"))
            continue
        name = str(raw.get("name", where))
        entries: list[Entry] = []
        conditions = {k: v for k, v in raw.items() if k not in ("name", "comment", "description")}
        for field, spec in conditions.items():
            entry = _toml_entry(field, spec, f"{where}.{field}", problems)
            if entry is not None:
                entries.append(entry)
        if not conditions:
            problems.append((where, "has no conditions"))
        items.append(ExceptionItem(name, tuple(entries)))
    if problems:
        raise RuleLoadError(label, problems)
    return ExceptionList(Path(label).stem, tuple(items), label)


def _toml_entry(field: str, spec: object, at: str, problems: list[tuple[str, str]]) -> Entry | None:
    if isinstance(spec, str | int | float) and not isinstance(spec, bool):
        return Entry(field, "match", "included", (str(spec),))
    if not isinstance(spec, dict) or len(spec) != 1:
        problems.append((at, f"expected a value or one of {{{', '.join(OPERATORS)}}} = value"))
        return None
    ((op_name, value),) = spec.items()
    if op_name not in OPERATORS:
        problems.append((at, f"operator {op_name!r} is not one of {', '.join(OPERATORS)}"))
        return None
    type_, operator = OPERATORS[op_name]
    if type_ == "exists" and value is not True:
        problems.append((at, f"{op_name!r} takes `true`"))
        return None
    values = _values(type_, value, at, problems)
    return None if values is None else Entry(field, type_, operator, values)


def check_fields(lst: ExceptionList, fields: Mapping[str, DataType]) -> None:
    """Refuse entries that can never match: a field neither ECS nor the events have, a value
    the field's type cannot hold (`destination.ip is "not-an-ip"`, `destination.port is
    "eighty"`), a wildcard on a field that is not a string. Raises RuleLoadError naming each."""
    problems: list[tuple[str, str]] = []
    for index, item in enumerate(lst.items):
        for entry in item.entries:
            where = f"{item.name or f'item {index}'}: {entry.field}"
            problem = _entry_problem(entry, fields)
            if problem is not None:
                problems.append((where, problem))
    if problems:
        raise RuleLoadError(lst.path or lst.name, problems)


def _entry_problem(entry: Entry, fields: Mapping[str, DataType]) -> str | None:
    type_ = fields.get(entry.field)
    if type_ is None:
        near = difflib.get_close_matches(entry.field, list(fields), n=1)
        hint = f", did you mean [{near[0]}]?" if near else ""
        return f"unknown field [{entry.field}]: not an ECS field nor in the events{hint}"
    if entry.type == "exists":
        return None
    if entry.type == "wildcard":
        if type_ not in (DataType.KEYWORD, DataType.TEXT):
            return f"`{entry.label}` needs a string field; [{entry.field}] is {type_.value}"
        return None
    for value in entry.value:
        if type_ is DataType.IP and "/" in value and _cidr(value):
            continue  # an ip field's term query takes a CIDR block
        try:
            convert(value, type_)
        except ConversionError:
            return (
                f"{value!r} is not a valid {type_.value} for [{entry.field}], so it never matches"
            )
    return None


def _cidr(value: str) -> bool:
    try:
        ipaddress.ip_network(value, strict=False)
    except ValueError:
        return False
    return True


def describe(item: ExceptionItem) -> str:
    parts = []
    for e in item.entries:
        shown = (
            ""
            if e.type == "exists"
            else " " + (repr(e.value[0]) if len(e.value) == 1 else repr(list(e.value)))
        )
        parts.append(f"{e.field} {e.label}{shown}")
    return " AND ".join(parts)


def as_dict(lst: ExceptionList) -> dict[str, Any]:
    """The list as Kibana's `exceptions_list` reference on a rule."""
    return {"id": lst.name, "list_id": lst.name, "type": "detection", "namespace_type": "single"}
