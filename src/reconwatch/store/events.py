"""Writing events as Elasticsearch indexes them: ids, versions, 409 on create, event.ingested."""

from __future__ import annotations

import base64
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import msgspec
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


@dataclass(frozen=True, slots=True)
class NewEvent:
    """One `index` or `create` action of a bulk request: where, which id (None: generate), what."""

    op: str
    index: str
    id: str | None
    source: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Written:
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


def naive_utc(value: datetime) -> datetime:
    return value.astimezone(UTC).replace(tzinfo=None)


def event_time(source: dict[str, Any]) -> datetime | None:
    """@timestamp as Elasticsearch's default date mapping reads it (ISO text or epoch millis)."""
    raw = source.get("@timestamp")
    if raw is None:
        return None
    if isinstance(raw, bool) or not isinstance(raw, str | int | float):
        msg = f"failed to parse field [@timestamp] of type [date]: [{raw!r}] is not a date"
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
        msg = f"failed to parse field [@timestamp] of type [date]: {exc}"
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


@dataclass(slots=True)
class _Pending:
    """Rows of one batch before they are committed, and the old versions they replace."""

    rows: list[tuple[int, str, str, int, datetime | None, datetime, str, datetime]]
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
    out: list[Written] = []
    pending = _Pending([], [], {})
    arrived = naive_utc(now)
    encoder = msgspec.json.Encoder()
    for ev in batch:
        doc_id = ev.id if ev.id is not None else new_id()
        try:
            ts = event_time(ev.source)
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
        stamp_ingested(ev.source, now)
        ingested_at = _ingested_time(ev.source, arrived)
        seq = next_seq + len(pending.rows)
        body = encoder.encode(ev.source).decode("utf-8")
        pending.rows.append((seq, ev.index, doc_id, version, ts, ingested_at, body, arrived))
        result = "created" if version == 1 else "updated"
        out.append(Written(ev.index, doc_id, 201 if version == 1 else 200, result, version, seq))
    return out, pending


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
        pending.rows[row] = (old[0], "", "", 0, None, old[5], "", old[7])


def arrow_rows(pending: _Pending) -> pa.Table:
    """The batch's rows (replaced ones left out) as the Arrow table DuckDB inserts."""
    rows = [r for r in pending.rows if r[1]]
    columns = [pa.array([r[i] for r in rows], type=f.type) for i, f in enumerate(ROW_SCHEMA)]
    return pa.table(columns, schema=ROW_SCHEMA)
