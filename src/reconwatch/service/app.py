"""The HTTP application: Elasticsearch's `GET /` and `_bulk`, behind the optional API key."""

from __future__ import annotations

import asyncio
import hmac
import socket
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from fastapi import FastAPI, Request
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.responses import Response

from reconwatch import __version__
from reconwatch.service import bulk
from reconwatch.service.errors import PRODUCT_HEADER, error_response, json_response
from reconwatch.service.writer import QueueFull, Writer
from reconwatch.store import Store, StoreError

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

    def close(self) -> None:
        self.writer.close()
        self.store.close()


def open_service(store: Store, limits: Limits, api_key: str | None = None) -> Service:
    return Service(store, Writer(store, limits.queue_batches), limits, api_key, uuid.uuid4().hex)


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

    return app


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
