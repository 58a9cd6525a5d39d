"""Exception lists and items in the store, shaped as Kibana's exception-list API keeps them."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import duckdb
import msgspec

from reconwatch.plan import values
from reconwatch.plan.values import format_datetime
from reconwatch.rules.exceptions import Entry, ExceptionItem, ExceptionList
from reconwatch.store.events import naive_utc

LIST_TYPES = ("detection", "rule_default")
ENTRY_TYPES = ("match", "match_any", "exists", "wildcard", "nested")


class ExceptionInputError(ValueError):
    """A list or item the API was given that Kibana would refuse (the message names the field)."""


@dataclass(frozen=True, slots=True)
class Who:
    """Who changes something, and when (the store's clock)."""

    user: str
    at: datetime


def _stamp(at: datetime) -> str:
    return format_datetime(at.replace(tzinfo=UTC) if at.tzinfo is None else at)


def list_row_body(row: tuple[Any, ...], items: int) -> dict[str, Any]:
    return {
        "list_id": row[0],
        "id": row[0],
        "name": row[1],
        "description": row[2],
        "type": row[3],
        "namespace_type": "single",
        "created_at": _stamp(row[4]),
        "created_by": row[5],
        "updated_at": _stamp(row[6]),
        "updated_by": row[7],
        "item_count": items,
    }


def item_row_body(row: tuple[Any, ...]) -> dict[str, Any]:
    return {
        "item_id": row[0],
        "id": row[0],
        "list_id": row[1],
        "name": row[2],
        "description": row[3],
        "type": "simple",
        "namespace_type": "single",
        "entries": msgspec.json.decode(row[4]),
        "comments": msgspec.json.decode(row[5]),
        "expire_time": None if row[6] is None else _stamp(row[6]),
        "created_at": _stamp(row[7]),
        "created_by": row[8],
        "updated_at": _stamp(row[9]),
        "updated_by": row[10],
    }


_LIST_COLUMNS = (
    "SELECT list_id, name, description, type, created, created_by, updated, updated_by "
    "FROM exception_lists"
)
_ITEM_COLUMNS = (
    "SELECT item_id, list_id, name, description, entries, comments, expire_time, created, "
    "created_by, updated, updated_by FROM exception_items"
)


def lists(cur: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    counts = dict(
        cur.execute("SELECT list_id, count(*) FROM exception_items GROUP BY list_id").fetchall()
    )
    rows = cur.execute(f"{_LIST_COLUMNS} ORDER BY created, list_id").fetchall()
    return [list_row_body(r, int(counts.get(r[0], 0))) for r in rows]


def get_list(cur: duckdb.DuckDBPyConnection, list_id: str) -> dict[str, Any] | None:
    row = cur.execute(f"{_LIST_COLUMNS} WHERE list_id = ?", [list_id]).fetchone()
    if row is None:
        return None
    count = cur.execute(
        "SELECT count(*) FROM exception_items WHERE list_id = ?", [list_id]
    ).fetchone()
    return list_row_body(row, int(count[0]) if count else 0)


def checked_list(doc: Mapping[str, Any], *, partial: bool = False) -> dict[str, Any]:
    """The list fields of a create (all needed) or update (`partial`) body, checked."""
    out: dict[str, Any] = {}
    for key in ("name", "description"):
        value = doc.get(key)
        if value is None:
            if not partial and key == "name":
                raise ExceptionInputError("[name] is required: the list's name")
            continue
        if not isinstance(value, str) or (key == "name" and not value.strip()):
            raise ExceptionInputError(f"[{key}] must be a non-empty string")
        out[key] = value
    type_ = doc.get("type", None if partial else "detection")
    if type_ is not None:
        if type_ not in LIST_TYPES:
            raise ExceptionInputError(f"[type] must be one of {', '.join(LIST_TYPES)}")
        out["type"] = type_
    return out


def create_list(
    cur: duckdb.DuckDBPyConnection, doc: Mapping[str, Any], who: Who
) -> dict[str, Any] | None:
    """A new list; None when its list_id is taken."""
    fields = checked_list(doc)
    list_id = doc.get("list_id") or str(uuid.uuid4())
    if not isinstance(list_id, str):
        raise ExceptionInputError("[list_id] must be a string")
    if get_list(cur, list_id) is not None:
        return None
    at = naive_utc(who.at)
    cur.execute(
        "INSERT INTO exception_lists VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [
            list_id,
            fields["name"],
            fields.get("description", ""),
            fields["type"],
            at,
            who.user,
            at,
            who.user,
        ],
    )
    return get_list(cur, list_id)


def update_list(
    cur: duckdb.DuckDBPyConnection, list_id: str, doc: Mapping[str, Any], who: Who
) -> dict[str, Any] | None:
    fields = checked_list(doc, partial=True)
    if get_list(cur, list_id) is None:
        return None
    sets = [f"{k} = ?" for k in fields]
    cur.execute(
        f"UPDATE exception_lists SET {', '.join([*sets, 'updated = ?', 'updated_by = ?'])} "
        "WHERE list_id = ?",
        [*fields.values(), naive_utc(who.at), who.user, list_id],
    )
    return get_list(cur, list_id)


def delete_list(cur: duckdb.DuckDBPyConnection, list_id: str) -> bool:
    if get_list(cur, list_id) is None:
        return False
    cur.execute("DELETE FROM exception_items WHERE list_id = ?", [list_id])
    cur.execute("DELETE FROM exception_lists WHERE list_id = ?", [list_id])
    cur.execute("DELETE FROM rule_exception_lists WHERE list_id = ?", [list_id])
    return True


def items(cur: duckdb.DuckDBPyConnection, list_id: str) -> list[dict[str, Any]]:
    rows = cur.execute(
        f"{_ITEM_COLUMNS} WHERE list_id = ? ORDER BY created, item_id", [list_id]
    ).fetchall()
    return [item_row_body(r) for r in rows]


def get_item(cur: duckdb.DuckDBPyConnection, item_id: str) -> dict[str, Any] | None:
    row = cur.execute(f"{_ITEM_COLUMNS} WHERE item_id = ?", [item_id]).fetchone()
    return None if row is None else item_row_body(row)


def checked_entries(raw: object, where: str = "entries") -> list[dict[str, Any]]:
    """Kibana's entry objects, checked: {field, type, operator, value} or nested {entries}."""
    if not isinstance(raw, list) or not raw:
        raise ExceptionInputError(f"[{where}] must be a non-empty list of entries")
    out: list[dict[str, Any]] = []
    for i, entry in enumerate(raw):
        at = f"{where}[{i}]"
        if not isinstance(entry, dict):
            raise ExceptionInputError(f"[{at}] must be an object")
        field = entry.get("field")
        type_ = entry.get("type")
        if not isinstance(field, str) or not field.strip():
            raise ExceptionInputError(f"[{at}.field] is required: the field name")
        if type_ == "list":
            raise ExceptionInputError(
                f"[{at}.type]: value-list entries (is in list) are not supported; "
                "inline the values with match_any (is one of)"
            )
        if type_ not in ENTRY_TYPES:
            raise ExceptionInputError(f"[{at}.type] must be one of {', '.join(ENTRY_TYPES)}")
        if type_ == "nested":
            out.append(
                {
                    "field": field,
                    "type": "nested",
                    "entries": checked_entries(entry.get("entries"), f"{at}.entries"),
                }
            )
            continue
        operator = entry.get("operator", "included")
        if operator not in ("included", "excluded"):
            raise ExceptionInputError(f"[{at}.operator] must be included or excluded")
        checked: dict[str, Any] = {"field": field, "type": type_, "operator": operator}
        value = entry.get("value")
        if type_ == "match_any":
            if not isinstance(value, list) or not value or not all(_scalar(v) for v in value):
                raise ExceptionInputError(f"[{at}.value] must be a non-empty list of values")
            checked["value"] = [str(v) for v in value]
        elif type_ != "exists":
            if not _scalar(value) or value == "":
                raise ExceptionInputError(f"[{at}.value] is required: one value")
            checked["value"] = str(value)
        out.append(checked)
    return out


def _scalar(value: object) -> bool:
    return isinstance(value, str | int | float) and not isinstance(value, bool)


def checked_item(doc: Mapping[str, Any], *, partial: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if "entries" in doc or not partial:
        out["entries"] = checked_entries(doc.get("entries"))
    for key in ("name", "description"):
        value = doc.get(key)
        if value is None:
            if key == "name" and not partial:
                raise ExceptionInputError("[name] is required: the item's name")
            continue
        if not isinstance(value, str):
            raise ExceptionInputError(f"[{key}] must be a string")
        out[key] = value
    if "expire_time" in doc:
        raw = doc["expire_time"]
        out["expire_time"] = None if raw in (None, "") else _time(raw, "expire_time")
    if "comments" in doc:
        raw = doc["comments"]
        if not isinstance(raw, list) or not all(
            isinstance(c, dict) and isinstance(c.get("comment"), str) for c in raw
        ):
            raise ExceptionInputError("[comments] must be a list of {comment: text}")
        out["comments"] = [{"comment": c["comment"]} for c in raw]
    return out


def _time(raw: object, name: str) -> datetime:
    if not isinstance(raw, str):
        raise ExceptionInputError(f"[{name}] must be an ISO-8601 date-time")
    try:
        return values.parse_datetime(raw)
    except values.ConversionError as exc:
        raise ExceptionInputError(f"[{name}]: {exc}") from None


def create_item(
    cur: duckdb.DuckDBPyConnection, list_id: str, doc: Mapping[str, Any], who: Who
) -> dict[str, Any] | None:
    """A new item in `list_id`; None when its item_id is taken (the list must exist)."""
    fields = checked_item(doc)
    item_id = doc.get("item_id") or str(uuid.uuid4())
    if not isinstance(item_id, str):
        raise ExceptionInputError("[item_id] must be a string")
    if get_item(cur, item_id) is not None:
        return None
    at = naive_utc(who.at)
    expire = fields.get("expire_time")
    comments = [
        {**c, "created_by": who.user, "created_at": _stamp(who.at)}
        for c in fields.get("comments", [])
    ]
    cur.execute(
        "INSERT INTO exception_items VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            item_id,
            list_id,
            fields["name"],
            fields.get("description", ""),
            msgspec.json.encode(fields["entries"]).decode(),
            msgspec.json.encode(comments).decode(),
            None if expire is None else naive_utc(expire),
            at,
            who.user,
            at,
            who.user,
        ],
    )
    return get_item(cur, item_id)


def update_item(
    cur: duckdb.DuckDBPyConnection, item_id: str, doc: Mapping[str, Any], who: Who
) -> dict[str, Any] | None:
    fields = checked_item(doc, partial=True)
    old = get_item(cur, item_id)
    if old is None:
        return None
    sets: list[str] = []
    args: list[object] = []
    for key, value in fields.items():
        sets.append(f"{key} = ?")
        if key == "entries":
            args.append(msgspec.json.encode(value).decode())
        elif key == "comments":
            stamped = [{**c, "created_by": who.user, "created_at": _stamp(who.at)} for c in value]
            args.append(msgspec.json.encode([*old["comments"], *stamped]).decode())
        elif key == "expire_time":
            args.append(None if value is None else naive_utc(value))
        else:
            args.append(value)
    cur.execute(
        f"UPDATE exception_items SET {', '.join([*sets, 'updated = ?', 'updated_by = ?'])} "
        "WHERE item_id = ?",
        [*args, naive_utc(who.at), who.user, item_id],
    )
    return get_item(cur, item_id)


def delete_item(cur: duckdb.DuckDBPyConnection, item_id: str) -> bool:
    if get_item(cur, item_id) is None:
        return False
    cur.execute("DELETE FROM exception_items WHERE item_id = ?", [item_id])
    return True


# -- rules' lists and what a run applies -----------------------------------------------------------


def linked_lists(cur: duckdb.DuckDBPyConnection, rule_id: str) -> list[str]:
    rows = cur.execute(
        "SELECT list_id FROM rule_exception_lists WHERE rule_id = ? ORDER BY list_id", [rule_id]
    ).fetchall()
    return [r[0] for r in rows]


def link(cur: duckdb.DuckDBPyConnection, rule_id: str, list_ids: Sequence[str]) -> None:
    """Make `list_ids` the rule's exception lists (Kibana's rule.exceptions_list)."""
    cur.execute("DELETE FROM rule_exception_lists WHERE rule_id = ?", [rule_id])
    for list_id in dict.fromkeys(list_ids):
        cur.execute("INSERT INTO rule_exception_lists VALUES (?, ?)", [rule_id, list_id])


def for_rule(
    cur: duckdb.DuckDBPyConnection, rule_id: str, now: datetime, named: Sequence[str] = ()
) -> list[ExceptionList]:
    """The lists a run of the rule applies: those linked to it and those its file names
    (`named`, its exceptions_list), without the items that expired (Kibana skips an item whose
    expire_time has passed). A named list not in the store is left out."""
    out: list[ExceptionList] = []
    for list_id in dict.fromkeys([*named, *linked_lists(cur, rule_id)]):
        found = get_list(cur, list_id)
        if found is None:
            continue
        kept = []
        for item in items(cur, list_id):
            expire = item["expire_time"]
            if expire is not None and _parse(expire) <= now:
                continue
            kept.append(ExceptionItem(item["name"], tuple(entries_of(item["entries"]))))
        out.append(ExceptionList(list_id, tuple(kept), list_id))
    return out


def _parse(text: str) -> datetime:
    return values.parse_datetime(text)


def entries_of(raw: Sequence[Mapping[str, Any]], prefix: str = "") -> list[Entry]:
    """Stored entry objects as the engine's entries (nested ones flattened to dotted fields)."""
    out: list[Entry] = []
    for entry in raw:
        field = prefix + str(entry["field"])
        if entry["type"] == "nested":
            out.extend(entries_of(entry["entries"], field + "."))
            continue
        value = entry.get("value")
        given = () if value is None else tuple(value) if isinstance(value, list) else (value,)
        out.append(Entry(field, str(entry["type"]), str(entry["operator"]), given))
    return out


# -- import of Kibana's exception-list export ------------------------------------------------------


def import_ndjson(
    cur: duckdb.DuckDBPyConnection, text: str, who: Who, overwrite: bool = False
) -> dict[str, Any]:
    """Kibana's `_import` of an exception-list export: list headers, then items, then the
    export summary. An existing list_id or item_id is skipped with a 409 error unless
    `overwrite`; a bad line is one error naming its line; the good lines are stored. The answer
    is Kibana's import response."""
    errors: list[dict[str, Any]] = []
    lists_done = items_done = 0
    known_lists: set[str] = set()
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = msgspec.json.decode(line)
        except msgspec.DecodeError as exc:
            errors.append(_import_error(400, f"line {lineno}: not JSON: {exc}"))
            continue
        if not isinstance(obj, dict):
            errors.append(_import_error(400, f"line {lineno}: expected a JSON object"))
            continue
        if "exported_exception_list_count" in obj or "exported_count" in obj:
            continue  # the export's summary line
        try:
            if "entries" in obj:
                items_done += _import_item(cur, obj, who, overwrite, known_lists, errors, lineno)
            elif "list_id" in obj:
                if _import_list(cur, obj, who, overwrite, errors, lineno):
                    lists_done += 1
                    known_lists.add(str(obj["list_id"]))  # its items replace the old ones
            else:
                errors.append(
                    _import_error(400, f"line {lineno}: neither an exception list nor an item")
                )
        except ExceptionInputError as exc:
            key = "item_id" if "entries" in obj else "list_id"
            errors.append({**_import_error(400, f"line {lineno}: {exc}"), key: obj.get(key)})
    return {
        "errors": errors,
        "success": not errors,
        "success_count": lists_done + items_done,
        "success_exception_lists": not any("list_id" in e and "item_id" not in e for e in errors),
        "success_count_exception_lists": lists_done,
        "success_exception_list_items": not any("item_id" in e for e in errors),
        "success_count_exception_list_items": items_done,
    }


def _import_error(status: int, message: str) -> dict[str, Any]:
    return {"error": {"status_code": status, "message": message}}


def _import_list(
    cur: duckdb.DuckDBPyConnection,
    obj: Mapping[str, Any],
    who: Who,
    overwrite: bool,
    errors: list[dict[str, Any]],
    lineno: int,
) -> int:
    list_id = str(obj["list_id"])
    doc = {k: obj.get(k) for k in ("list_id", "name", "description")}
    doc["type"] = obj.get("type") if obj.get("type") in LIST_TYPES else "detection"
    if get_list(cur, list_id) is not None:
        if not overwrite:
            message = (
                f'Found that list_id: "{list_id}" already exists. Import of list_id: '
                f'"{list_id}" skipped.'
            )
            errors.append({**_import_error(409, message), "list_id": list_id})
            return 0
        delete_list(cur, list_id)
    create_list(cur, doc, who)
    return 1


def _import_item(
    cur: duckdb.DuckDBPyConnection,
    obj: Mapping[str, Any],
    who: Who,
    overwrite: bool,
    known_lists: set[str],
    errors: list[dict[str, Any]],
    lineno: int,
) -> int:
    list_id = obj.get("list_id")
    item_id = str(obj.get("item_id") or uuid.uuid4())
    if not isinstance(list_id, str) or get_list(cur, list_id) is None:
        message = f'line {lineno}: exception list id: "{list_id}" does not exist'
        errors.append({**_import_error(404, message), "item_id": item_id, "list_id": list_id})
        return 0
    if get_item(cur, item_id) is not None:
        if not overwrite and list_id not in known_lists:
            message = (
                f'Found that item_id: "{item_id}" already exists. Import of item_id: '
                f'"{item_id}" skipped.'
            )
            errors.append({**_import_error(409, message), "item_id": item_id})
            return 0
        delete_item(cur, item_id)
    doc = {
        "item_id": item_id,
        "name": obj.get("name") or item_id,
        "description": obj.get("description") or "",
        "entries": obj.get("entries"),
        "expire_time": obj.get("expire_time"),
        "comments": [
            {"comment": c["comment"]}
            for c in obj.get("comments") or []
            if isinstance(c, dict) and isinstance(c.get("comment"), str)
        ],
    }
    create_item(cur, list_id, doc, who)
    return 1
