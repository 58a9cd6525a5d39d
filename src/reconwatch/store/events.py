"""Writing events as Elasticsearch indexes them: ids, versions, 409 on create, event.ingested."""

from __future__ import annotations

import base64
import contextlib
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import msgspec
import numpy as np
import pyarrow as pa

from reconwatch.errors import ReconwatchError
from reconwatch.plan import values

ROW_SCHEMA = pa.schema(
    [
        pa.field("seq", pa.int64()),
        pa.field("idx", pa.string()),
        pa.field("id", pa.string()),
        pa.field("version", pa.int32()),
        pa.field("ts", pa.timestamp("us")),
        pa.field("ingested", pa.timestamp("us")),
        pa.field("source", pa.string()),
        pa.field("arrived", pa.timestamp("us")),
    ]
)


class NewEvent(msgspec.Struct, frozen=True):
    """One `index` or `create` action of a bulk request: where, which id (None: generate), what:
    the document, or its JSON text as sent (bytes, checked to be an object by `read_head`),
    which is stored as it came unless event.ingested must be added. A Struct, as are Written
    and service.bulk.Item: one is built per event, ten times faster than a frozen dataclass."""

    op: str
    index: str
    id: str | None
    source: dict[str, Any] | bytes


class SourceHead(msgspec.Struct):
    """What the store reads of a document sent as JSON text; the rest is only validated."""

    timestamp: Any = msgspec.field(default=None, name="@timestamp")
    event: msgspec.Raw | msgspec.UnsetType = msgspec.UNSET
    dotted_ingested: Any = msgspec.field(default=msgspec.UNSET, name="event.ingested")


class _EventHead(msgspec.Struct):
    ingested: Any = msgspec.UNSET


_head_decoder = msgspec.json.Decoder(SourceHead)
_event_decoder = msgspec.json.Decoder(_EventHead)
_EVENT_KEY = b'"event":{'


def read_head(raw: bytes) -> SourceHead:
    """The document's head; msgspec.DecodeError or ValidationError when `raw` is not one JSON
    object (every byte of it is checked, its text as UTF-8 too)."""
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        msg = f"invalid UTF-8 at byte {exc.start}"
        raise msgspec.DecodeError(msg) from None
    return _head_decoder.decode(raw)


class Written(msgspec.Struct, frozen=True):
    """The outcome of one action, in the terms of an Elasticsearch bulk item."""

    index: str
    id: str
    status: int
    result: str | None = None
    version: int | None = None
    seq_no: int | None = None
    error_type: str | None = None
    reason: str | None = None


def new_id() -> str:
    """An id like Elasticsearch's generated ones: 20 URL-safe base64 characters, 120 random bits."""
    return base64.urlsafe_b64encode(os.urandom(15)).decode("ascii")


def new_ids(count: int) -> list[str]:
    """`count` ids as new_id makes them, from one read of the random source."""
    text = base64.urlsafe_b64encode(os.urandom(15 * count)).decode("ascii")
    return [text[i : i + 20] for i in range(0, 20 * count, 20)]


# The common spelling of @timestamp (Defend's, the clients'): read by the C parser; anything
# else by Elasticsearch's rules in plan.values.
_PLAIN_TIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?Z")


def _time_value(raw: Any, field: str) -> datetime | None:
    if raw is None:
        return None
    if isinstance(raw, str) and _PLAIN_TIME.fullmatch(raw):
        # The pattern admits what is no date (month 13, second 60): those are read by
        # Elasticsearch's rules below, which refuse them as that item's error.
        with contextlib.suppress(ValueError):
            return datetime.fromisoformat(raw[:-1])
    return event_time({field: raw}, field)


def naive_utc(value: datetime) -> datetime:
    return value.astimezone(UTC).replace(tzinfo=None)


def event_time(source: dict[str, Any], field: str = "@timestamp") -> datetime | None:
    """@timestamp as Elasticsearch's default date mapping reads it (ISO text or epoch millis)."""
    raw = source.get(field)
    if raw is None:
        return None
    if isinstance(raw, bool) or not isinstance(raw, str | int | float):
        msg = f"failed to parse field [{field}] of type [date]: [{raw!r}] is not a date"
        raise ReconwatchError(msg)
    try:
        if isinstance(raw, str):
            when = (
                values.datetime_from_millis(int(raw))
                if raw.strip().lstrip("-").isdigit()
                else values.parse_datetime(raw)
            )
        else:
            when = values.datetime_from_millis(int(raw))
    except (values.ConversionError, ValueError) as exc:
        msg = f"failed to parse field [{field}] of type [date]: {exc}"
        raise ReconwatchError(msg) from None
    return naive_utc(when)


def stamp_ingested(source: dict[str, Any], now: datetime) -> None:
    """Set event.ingested where the event has none, as Elastic's ingest pipelines do."""
    if "event.ingested" in source:
        return
    event = source.get("event")
    if event is None:
        source["event"] = {"ingested": values.format_datetime(now)}
    elif isinstance(event, dict) and "ingested" not in event:
        event["ingested"] = values.format_datetime(now)


def _ingested_time(source: dict[str, Any], default: datetime) -> datetime:
    """event.ingested as a time (the column a rule with timestamp_override reads by)."""
    event = source.get("event")
    raw = source.get("event.ingested")
    if raw is None and isinstance(event, dict):
        raw = event.get("ingested")
    if isinstance(raw, str):
        try:
            return naive_utc(values.parse_datetime(raw))
        except values.ConversionError:
            return default
    return default


def _raw_ingested(head: SourceHead) -> tuple[bool, Any]:
    """(whether the document has event.ingested, its value) from its head."""
    if head.dotted_ingested is not msgspec.UNSET:
        return True, head.dotted_ingested
    event = head.event
    if isinstance(event, msgspec.Raw) and bytes(event).lstrip().startswith(b"{"):
        value = _event_decoder.decode(event).ingested
        if value is not msgspec.UNSET:
            return True, value
    return False, None


def _stamped_raw(raw: bytes, head: SourceHead, stamp: str) -> bytes:
    """The JSON text with event.ingested = `stamp` added as stamp_ingested adds it, written
    into the text (no re-encoding); decoded and encoded again when the text is unusual."""
    body = raw.strip()
    event = head.event
    if event is msgspec.UNSET:
        inner = body[1:-1].strip()
        added = b'"event":{"ingested":"' + stamp.encode() + b'"}}'
        return body[:-1] + (b"," if inner else b"") + added
    if not bytes(event).lstrip().startswith(b"{"):
        return raw  # event is not an object: Elastic's pipeline sets nothing there either
    at = body.find(_EVENT_KEY)
    if at >= 0:
        cut = at + len(_EVENT_KEY)
        rest = body[cut:]
        comma = b"" if rest.lstrip().startswith(b"}") else b","
        candidate = body[:cut] + b'"ingested":"' + stamp.encode() + b'"' + comma + rest
        # The first "event":{ may be a nested object's: keep the splice only if it reached
        # the top-level event.
        if _raw_ingested(read_head(candidate)) == (True, stamp):
            return candidate
    doc = msgspec.json.decode(raw)
    stamp_ingested(doc, datetime.fromisoformat(stamp.replace("Z", "+00:00")))
    return msgspec.json.encode(doc)


def _prepare_raw(
    raw: bytes, now_text: str, arrived: datetime
) -> tuple[datetime | None, datetime, bytes]:
    """(@timestamp, event.ingested as a time, the text to store) of a document sent as text;
    ReconwatchError for an @timestamp Elasticsearch cannot read."""
    head = read_head(raw)
    ts = _time_value(head.timestamp, "@timestamp")
    has, value = _raw_ingested(head)
    if not has:
        # The stamp's own time (milliseconds, as its text says and as a decoded document's
        # stamp reads), so the column and the text agree.
        stamped = arrived.replace(microsecond=arrived.microsecond // 1000 * 1000)
        return ts, stamped, _stamped_raw(raw, head, now_text)
    ingested = arrived
    if isinstance(value, str):
        try:
            ingested = _time_value(value, "event.ingested") or arrived
        except ReconwatchError:
            ingested = arrived
    return ts, ingested, raw


def _prepare_doc(
    source: dict[str, Any], now: datetime, arrived: datetime, encoder: msgspec.json.Encoder
) -> tuple[datetime | None, datetime, bytes]:
    ts = event_time(source)
    stamp_ingested(source, now)
    return ts, _ingested_time(source, arrived), encoder.encode(source)


def _unparsable(index: str, doc_id: str, reason: str) -> Written:
    return Written(index, doc_id, 400, error_type="document_parsing_exception", reason=reason)


@dataclass(slots=True)
class _Pending:
    """Rows of one batch before they are committed, and the old versions they replace."""

    rows: list[tuple[int, str, str, int, datetime | None, datetime, bytes, datetime]]
    replaced: list[tuple[str, str, datetime | None]]
    chosen: dict[tuple[str, str], tuple[int, datetime | None, int | None]]


def plan_batch(
    batch: Sequence[NewEvent],
    known: dict[tuple[str, str], tuple[int, datetime | None]],
    now: datetime,
    next_seq: int,
) -> tuple[list[Written], _Pending]:
    """Decide every action of `batch` in order (later actions see earlier ones); `known`: the
    stored versions of the client-chosen ids in the batch."""
    plain = _plan_plain(batch, now, next_seq)
    if plain is not None:
        return plain
    out: list[Written] = []
    pending = _Pending([], [], {})
    arrived = naive_utc(now)
    now_text = values.format_datetime(now)
    encoder = msgspec.json.Encoder()
    fresh = iter(new_ids(sum(1 for ev in batch if ev.id is None)))
    for ev in batch:
        doc_id = ev.id if ev.id is not None else next(fresh)
        try:
            if isinstance(ev.source, bytes):
                ts, ingested_at, body = _prepare_raw(ev.source, now_text, arrived)
            else:
                ts, ingested_at, body = _prepare_doc(ev.source, now, arrived, encoder)
        except msgspec.ValidationError:  # a subclass of DecodeError: first
            reason = "failed to parse: the source is not a JSON object"
            out.append(_unparsable(ev.index, doc_id, reason))
            continue
        except msgspec.DecodeError as exc:
            out.append(_unparsable(ev.index, doc_id, f"failed to parse: {exc}"))
            continue
        except ReconwatchError as exc:
            out.append(
                Written(
                    ev.index, doc_id, 400, error_type="document_parsing_exception", reason=str(exc)
                )
            )
            continue
        version = 1
        if ev.id is not None:
            key = (ev.index, ev.id)
            current = _current(key, known, pending)
            if current is not None:
                if ev.op == "create":
                    reason = f"[{doc_id}]: version conflict, document already exists (current version [{current[0]}])"
                    out.append(
                        Written(
                            ev.index,
                            doc_id,
                            409,
                            error_type="version_conflict_engine_exception",
                            reason=reason,
                        )
                    )
                    continue
                version = current[0] + 1
                _replace(key, current, pending)
            pending.chosen[key] = (version, ts, len(pending.rows))
        seq = next_seq + len(pending.rows)
        pending.rows.append((seq, ev.index, doc_id, version, ts, ingested_at, body, arrived))
        result = "created" if version == 1 else "updated"
        out.append(Written(ev.index, doc_id, 201 if version == 1 else 200, result, version, seq))
    return out, pending


class _PlainEvent(msgspec.Struct):
    ingested: Any = msgspec.UNSET


class _PlainHead(msgspec.Struct):
    """SourceHead of a document whose `event`, if any, is an object (else a ValidationError)."""

    timestamp: Any = msgspec.field(default=None, name="@timestamp")
    event: _PlainEvent | msgspec.UnsetType = msgspec.UNSET
    dotted_ingested: Any = msgspec.field(default=msgspec.UNSET, name="event.ingested")


_plain_decode = msgspec.json.Decoder(_PlainHead).decode
_fromisoformat = datetime.fromisoformat


def _plain_times(texts: list[Any]) -> list[datetime] | None:
    """Every text as _time_value reads it when all are in the common spelling; else None."""
    if not all(type(t) is str for t in texts):
        return None
    joined = "\n".join(texts)
    if joined.count("\n") != len(texts) - 1 or not _PLAIN_TIMES.fullmatch(joined):
        return None
    try:
        return [_fromisoformat(t[:-1]) for t in texts]
    except ValueError:
        return None


_PLAIN_TIMES = re.compile(rf"(?:{_PLAIN_TIME.pattern}\n)*{_PLAIN_TIME.pattern}")


def _plan_plain(
    batch: Sequence[NewEvent], now: datetime, next_seq: int
) -> tuple[list[Written], _Pending] | None:
    """plan_batch of the batch a shipper sends, a few calls per event instead of a few dozen:
    every action lets the store choose the id, and every document is JSON text, valid UTF-8,
    with its @timestamp absent or in the common spelling and event.ingested set (in `event`)
    in that spelling. The results and rows are those plan_batch's event-by-event path gives;
    None for any other batch, which that path decides."""
    if not batch or any(ev.id is not None or type(ev.source) is not bytes for ev in batch):
        return None
    sources: list[bytes] = [ev.source for ev in batch]  # type: ignore[misc]
    try:
        # Joined by a byte no multi-byte sequence can hold: valid as one when valid each.
        b"\n".join(sources).decode("utf-8")
        heads = [_plain_decode(s) for s in sources]
    except (UnicodeDecodeError, msgspec.DecodeError):
        return None
    events = [h.event for h in heads]
    if any(h.dotted_ingested is not msgspec.UNSET for h in heads) or not all(
        type(e) is _PlainEvent for e in events
    ):
        return None
    ingested = _plain_times([e.ingested for e in events])  # type: ignore[union-attr]
    stamps = [h.timestamp for h in heads]
    present = [t for t in stamps if t is not None]
    times = _plain_times(present) if present else []
    if ingested is None or times is None:
        return None
    found = iter(times)
    ts = (
        [None if t is None else next(found) for t in stamps]
        if len(present) < len(stamps)
        else times
    )
    arrived = naive_utc(now)
    count = len(batch)
    ids = new_ids(count)
    seqs = range(next_seq, next_seq + count)
    indices = [ev.index for ev in batch]
    rows = list(
        zip(seqs, indices, ids, [1] * count, ts, ingested, sources, [arrived] * count, strict=True)
    )
    out = [
        Written(index, doc_id, 201, "created", 1, seq)
        for index, doc_id, seq in zip(indices, ids, seqs, strict=True)
    ]
    return out, _Pending(rows, [], {})


def _current(
    key: tuple[str, str],
    known: dict[tuple[str, str], tuple[int, datetime | None]],
    pending: _Pending,
) -> tuple[int, datetime | None, int | None] | None:
    if key in pending.chosen:
        return pending.chosen[key]
    if key in known:
        version, ts = known[key]
        return version, ts, None
    return None


def _replace(
    key: tuple[str, str], current: tuple[int, datetime | None, int | None], pending: _Pending
) -> None:
    """The old version goes: a row of this batch is dropped, a stored one deleted at commit."""
    row = current[2]
    if row is None:
        pending.replaced.append((key[0], key[1], current[1]))
    else:
        old = pending.rows[row]
        # Keep positions stable: an empty marker is skipped when the batch is written.
        pending.rows[row] = (old[0], "", "", 0, None, old[5], b"", old[7])


def arrow_rows(pending: _Pending) -> pa.Table:
    """The batch's rows (replaced ones left out) as the Arrow table DuckDB inserts."""
    rows = [r for r in pending.rows if r[1]]
    by_column = list(zip(*rows, strict=True)) if rows else [() for _ in ROW_SCHEMA]
    columns = [
        _texts(list(by_column[i])) if f.name == "source" else pa.array(by_column[i], f.type)
        for i, f in enumerate(ROW_SCHEMA)
    ]
    return pa.table(columns, schema=ROW_SCHEMA)


def _texts(items: list[bytes]) -> pa.Array:
    """UTF-8 byte strings as one Arrow string array, built from one buffer and its offsets (ten
    times faster than converting item by item; validated all the same)."""
    lengths = np.fromiter(map(len, items), dtype=np.int64, count=len(items))
    offsets = np.zeros(len(items) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    data = pa.py_buffer(b"".join(items))
    if offsets[-1] < 2**31:
        out = pa.StringArray.from_buffers(len(items), pa.py_buffer(offsets.astype(np.int32)), data)
    else:
        out = pa.LargeStringArray.from_buffers(len(items), pa.py_buffer(offsets), data)
    out.validate(full=True)
    return out
