"""The HTTP application: Elasticsearch's `GET /` and `_bulk`, behind the optional API key."""

from __future__ import annotations

import asyncio
import hmac
import socket
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import msgspec
from fastapi import FastAPI, Request
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.responses import Response

from reconwatch import __version__
from reconwatch.errors import UsageError
from reconwatch.plan import values
from reconwatch.service import bulk
from reconwatch.service.errors import PRODUCT_HEADER, error_response, json_response
from reconwatch.service.loop import Loop
from reconwatch.service.scheduler import RunOutcome, Scheduler
from reconwatch.service.writer import QueueFull, Writer
from reconwatch.store import Store, StoreError
from reconwatch.store.alerts import RunRecord

# The Elasticsearch version whose APIs the service answers like (GET / reports it; clients
# read it to choose request formats).
ES_VERSION = "9.0.0"
RETRY_AFTER_SECONDS = 1


@dataclass(frozen=True, slots=True)
class Limits:
    """Refusals before work: a body over `max_body_bytes` is 413, a full queue 429."""

    max_body_bytes: int = 100 * 1024 * 1024
    queue_batches: int = 64


@dataclass(slots=True)
class Service:
    """What the routes share: the store, its writer, the limits, the key (None: no auth)."""

    store: Store
    writer: Writer
    limits: Limits
    api_key: str | None = None
    cluster_uuid: str = ""
    scheduler: Scheduler | None = None
    # Rule files that could not be used, each naming file, field and reason.
    rule_failures: list[str] = field(default_factory=list)
    loop: Loop | None = None

    def start_schedule(self) -> None:
        """Run the rules on their schedule (and retention) on a thread of their own."""
        if self.scheduler is not None and self.loop is None:
            self.loop = Loop(self.scheduler, self.store, self.scheduler.clock)
            self.loop.start()

    def close(self) -> None:
        if self.loop is not None:
            self.loop.stop()
        self.writer.close()
        self.store.close()


def open_service(
    store: Store,
    limits: Limits,
    api_key: str | None = None,
    scheduler: Scheduler | None = None,
    rule_failures: list[str] | None = None,
) -> Service:
    writer = Writer(store, limits.queue_batches)
    return Service(
        store, writer, limits, api_key, uuid.uuid4().hex, scheduler, list(rule_failures or [])
    )


def build_app(service: Service) -> FastAPI:
    app = FastAPI(
        title="reconwatch", version=__version__, docs_url=None, redoc_url=None, openapi_url=None
    )
    app.state.service = service

    @app.middleware("http")
    async def authenticate(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        if service.api_key is not None and not _authorised(request, service.api_key):
            reason = "missing or wrong API key (send the header Authorization: ApiKey <key>)"
            return error_response(401, "security_exception", reason, {"WWW-Authenticate": "ApiKey"})
        response = await call_next(request)
        response.headers.update(PRODUCT_HEADER)
        return response

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Response:
        reason = f"no handler found for uri [{request.url.path}] and method [{request.method}]"
        if exc.status_code != 404 and exc.status_code != 405:
            reason = str(exc.detail)
        return error_response(
            exc.status_code,
            "illegal_argument_exception"
            if exc.status_code != 404
            else "resource_not_found_exception",
            reason,
        )

    @app.api_route("/", methods=["GET", "HEAD"])
    async def info() -> Response:
        return json_response(
            {
                "name": socket.gethostname(),
                "cluster_name": "reconwatch",
                "cluster_uuid": service.cluster_uuid,
                "version": {
                    "number": ES_VERSION,
                    "build_flavor": "default",
                    "build_type": "reconwatch",
                    "build_snapshot": False,
                    "reconwatch": __version__,
                },
                "tagline": "You Know, for Search",
            }
        )

    @app.api_route("/_bulk", methods=["POST", "PUT"])
    async def bulk_all(request: Request) -> Response:
        return await _bulk(service, request, None)

    @app.api_route("/{index}/_bulk", methods=["POST", "PUT"])
    async def bulk_index(index: str, request: Request) -> Response:
        return await _bulk(service, request, index)

    @app.get("/api/rules")
    async def rules() -> Response:
        return json_response(await run_in_threadpool(_rules_body, service))

    @app.post("/api/rules/{rule_id}/_run")
    async def run_rule(rule_id: str, request: Request) -> Response:
        return await _manual_run(service, rule_id, request)

    return app


def _rules_body(service: Service) -> dict[str, Any]:
    out: list[dict[str, Any]] = []
    scheduler = service.scheduler
    for state in scheduler.states.values() if scheduler is not None else ():
        rule = state.rule
        runs = service.store.runs(rule.rule_id)
        last = runs[-1] if runs else None
        out.append(
            {
                "rule_id": rule.rule_id,
                "name": rule.name,
                "source": rule.label,
                "interval": rule.interval_text,
                "from": rule.from_,
                "to": rule.to,
                "next_run": values.format_datetime(state.next_at),
                "last_run": None if last is None else _run_body(last),
                "gaps": sum(1 for r in runs if r.gap_ms),
            }
        )
    return {"rules": out, "failures": service.rule_failures}


def _run_body(record: RunRecord) -> dict[str, Any]:
    return {
        "run_at": values.format_datetime(record.run_at),
        "start": values.format_datetime(record.start),
        "end": values.format_datetime(record.end),
        "execution_type": record.execution_type,
        "alerts": record.alerts,
        "gap_ms": record.gap_ms,
        "error": record.error,
        "warnings": list(record.warnings),
    }


async def _manual_run(service: Service, rule_id: str, request: Request) -> Response:
    scheduler = service.scheduler
    if scheduler is None or rule_id not in scheduler.states:
        return error_response(
            404, "resource_not_found_exception", f"no rule with rule_id [{rule_id}]"
        )
    body = await _read_body(request, service.limits.max_body_bytes)
    try:
        start, end = _range(body)
        outcomes: list[RunOutcome] = await run_in_threadpool(
            scheduler.run_manual, rule_id, start, end
        )
    except UsageError as exc:
        return error_response(400, "illegal_argument_exception", str(exc))
    except StoreError as exc:
        return error_response(500, "store_exception", str(exc))
    return json_response(
        {
            "rule_id": rule_id,
            "runs": [_run_body(o.record) for o in outcomes],
            "alerts": [a for o in outcomes for a in o.created],
        }
    )


def _range(body: bytes | None) -> tuple[datetime, datetime]:
    """`{"start": ..., "end": ...}` as UTC times; UsageError naming what is wrong."""
    if body is None:
        raise UsageError("the request body is larger than the limit")
    try:
        doc = msgspec.json.decode(body) if body.strip() else None
    except msgspec.DecodeError as exc:
        msg = f"the request body is not JSON: {exc}"
        raise UsageError(msg) from None
    if not isinstance(doc, dict):
        raise UsageError('the request body must be an object {"start": ..., "end": ...}')
    out: list[datetime] = []
    for key in ("start", "end"):
        raw = doc.get(key)
        if not isinstance(raw, str):
            msg = f"[{key}] is required: an ISO-8601 date-time"
            raise UsageError(msg)
        try:
            out.append(values.parse_datetime(raw))
        except values.ConversionError as exc:
            msg = f"[{key}]: {exc}"
            raise UsageError(msg) from None
    return out[0], out[1]


def _authorised(request: Request, key: str) -> bool:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() not in ("apikey", "bearer"):
        return False
    return hmac.compare_digest(value.strip().encode(), key.encode())


async def _read_body(request: Request, limit: int) -> bytes | None:
    """The body, or None once it is longer than `limit` (read no further)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


async def _bulk(service: Service, request: Request, index: str | None) -> Response:
    started = time.monotonic()
    body = await _read_body(request, service.limits.max_body_bytes)
    if body is None:
        reason = (
            f"the request body is larger than the limit of [{service.limits.max_body_bytes}] bytes"
        )
        return error_response(413, "content_too_long_exception", reason)
    if not body.strip():
        return error_response(
            400, "action_request_validation_exception", "Validation Failed: 1: no requests added;"
        )
    items = await run_in_threadpool(bulk.parse, body, index)
    events = [item.event for item in items if item.event is not None]
    written = []
    if events:
        try:
            future = service.writer.submit(events)
        except QueueFull:
            reason = "the write queue is full; retry after the delay in Retry-After"
            return error_response(
                429,
                "es_rejected_execution_exception",
                reason,
                {"Retry-After": str(RETRY_AFTER_SECONDS)},
            )
        try:
            written = await asyncio.wrap_future(future)
        except StoreError as exc:
            return error_response(500, "store_exception", str(exc))
    took = int((time.monotonic() - started) * 1000)
    return json_response(bulk.response(items, written, took))
