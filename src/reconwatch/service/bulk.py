"""Elasticsearch `_bulk` bodies: NDJSON action/source pairs -> store actions and per-item errors."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec

from reconwatch.store import NewEvent, Written

ACTIONS = ("index", "create", "delete", "update")
# Actions followed by a source line (delete is the one that is not).
WITH_SOURCE = ("index", "create", "update")

_decoder = msgspec.json.Decoder()


class Item(msgspec.Struct, frozen=True):
    """One action of the body, in order: an event to store or an error already decided."""

    action: str
    index: str | None
    id: str | None
    event: NewEvent | None = None
    status: int = 0
    error_type: str = ""
    reason: str = ""


def parse(body: bytes, default_index: str | None) -> list[Item]:
    """Every action of `body`; a broken line is its item's error, the other items go on."""
    uniform = _parse_uniform(body, default_index)
    if uniform is not None:
        return uniform
    lines = [ln.rstrip(b"\r") for ln in body.split(b"\n")]
    lines = [ln for ln in lines if ln.strip()]
    items: list[Item] = []
    i = 0
    while i < len(lines):
        line_no = i + 1
        action = _action(lines[i])
        i += 1
        if isinstance(action, str):
            items.append(_bad_action(action, line_no, default_index))
            # The client sent a pair: the next line is this action's source unless it is an action.
            if i < len(lines) and isinstance(_action(lines[i]), str):
                i += 1
            continue
        op, meta = action
        index = _str(meta.get("_index")) or default_index
        doc_id = _str(meta.get("_id"))
        source: bytes | None = None
        if op in WITH_SOURCE and i < len(lines):
            source = lines[i]
            i += 1
        items.append(_item(op, index, doc_id, source, meta))
    return items


# A shipper's body repeats a few action lines; more distinct ones go the line-by-line way.
_UNIFORM_ACTIONS = 16


def _parse_uniform(body: bytes, default_index: str | None) -> list[Item] | None:
    """parse's items for the body a shipper sends, without a step per line: action and source
    lines alternate, no line is blank or ends in CR, and each action line is an `index` or
    `create` of an index without `_id` (among a few distinct lines). The items are those the
    line-by-line reading gives; None for any other body, which it reads."""
    if b"\r" in body:
        return None
    lines = body.split(b"\n")
    if lines[-1] == b"":
        lines.pop()
    if not lines or len(lines) % 2 or not all(map(bytes.strip, lines)):
        return None
    actions = lines[0::2]
    kinds = set(actions)
    if len(kinds) > _UNIFORM_ACTIONS:
        return None
    decided: dict[bytes, tuple[str, str]] = {}
    for line in kinds:
        action = _action(line)
        if isinstance(action, str):
            return None
        op, meta = action
        index = _str(meta.get("_index")) or default_index
        if op not in ("index", "create") or index is None or meta.get("_id") is not None:
            return None
        if op == "index" and meta.get("op_type") == "create":
            op = "create"
        decided[line] = (op, index)
    return [
        Item(op, index, None, NewEvent(op, index, None, source))
        for (op, index), source in zip(map(decided.__getitem__, actions), lines[1::2], strict=True)
    ]


# Action lines repeat (a shipper sends the same `{"index":{"_index":...}}` for every event):
# their reading is remembered, up to this many distinct lines.
_MEMO_SIZE = 4096
_memo: dict[bytes, tuple[str, dict[str, Any]] | str] = {}


def _action(line: bytes) -> tuple[str, dict[str, Any]] | str:
    """(op, metadata) of an action line, or why it is not one."""
    found = _memo.get(line)
    if found is None:
        found = _read_action(line)
        if len(_memo) >= _MEMO_SIZE:
            _memo.clear()
        _memo[line] = found
    return found


def _read_action(line: bytes) -> tuple[str, dict[str, Any]] | str:
    try:
        obj = _decoder.decode(line)
    except msgspec.DecodeError as exc:
        return f"failed to parse the action line: {exc}"
    if not isinstance(obj, dict) or len(obj) != 1:
        return "Malformed action/metadata line: expected an object with one action key"
    op, meta = next(iter(obj.items()))
    if op not in ACTIONS:
        return f"Action/metadata line contains an unknown parameter [{op}]"
    if not isinstance(meta, dict):
        return f"Malformed action/metadata line: [{op}] must hold an object"
    return op, meta


def _str(value: object) -> str | None:
    if value is None:
        return None
    return value if isinstance(value, str) else str(value)


def _bad_action(reason: str, line_no: int, default_index: str | None) -> Item:
    return Item(
        "index",
        default_index,
        None,
        None,
        400,
        "illegal_argument_exception",
        f"line {line_no}: {reason}",
    )


def _item(
    op: str, index: str | None, doc_id: str | None, source: bytes | None, meta: dict[str, Any]
) -> Item:
    if index is None:
        return Item(
            op,
            None,
            doc_id,
            None,
            400,
            "action_request_validation_exception",
            "Validation Failed: 1: index is missing;",
        )
    if op in ("delete", "update"):
        reason = f"the [{op}] action is not supported: reconwatch's store takes index and create"
        return Item(op, index, doc_id, None, 400, "illegal_argument_exception", reason)
    if source is None:
        return Item(
            op,
            index,
            doc_id,
            None,
            400,
            "action_request_validation_exception",
            "Validation Failed: 1: source is missing;",
        )
    if op == "index" and meta.get("op_type") == "create":
        op = "create"
    # Stored as sent; the writer checks it is one JSON object (store.events.read_head).
    return Item(op, index, doc_id, NewEvent(op, index, doc_id, source))


def response(items: Sequence[Item], written: Sequence[Written], took_ms: int) -> dict[str, Any]:
    """The bulk response: one entry per action in order, `errors` true when any failed."""
    out: list[dict[str, Any]] = []
    results = iter(written)
    errors = False
    for item in items:
        if item.event is None:
            errors = True
            out.append(
                {
                    item.action: _error(
                        item.index, item.id, item.status, item.error_type, item.reason
                    )
                }
            )
            continue
        w = next(results)
        if w.error_type is not None:
            errors = True
            out.append({item.action: _error(w.index, w.id, w.status, w.error_type, w.reason or "")})
            continue
        out.append(
            {
                item.action: {
                    "_index": w.index,
                    "_id": w.id,
                    "_version": w.version,
                    "result": w.result,
                    "_shards": {"total": 1, "successful": 1, "failed": 0},
                    "_seq_no": w.seq_no,
                    "_primary_term": 1,
                    "status": w.status,
                }
            }
        )
    return {"errors": errors, "took": took_ms, "items": out}


def _error(
    index: str | None, doc_id: str | None, status: int, type_: str, reason: str
) -> dict[str, Any]:
    error: dict[str, Any] = {"type": type_, "reason": reason}
    if index is not None:
        error["index"] = index
    return {"_index": index, "_id": doc_id, "status": status, "error": error}
