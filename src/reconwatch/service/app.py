"""The HTTP application: Elasticsearch's `GET /` and `_bulk`, behind the optional API key."""

from __future__ import annotations

import asyncio
import functools
import hmac
import logging
import socket
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

import msgspec
from fastapi import FastAPI, Request
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.responses import RedirectResponse, Response

from reconwatch import __version__
from reconwatch.errors import ReconwatchError, UsageError
from reconwatch.plan import values
from reconwatch.plan.limits import RULE_RUN_SECONDS, QueryLimits
from reconwatch.query import warning_header
from reconwatch.service import bulk, esql, filterpath, triage, ui
from reconwatch.service.delivery import Delivery
from reconwatch.service.errors import PRODUCT_HEADER, error_response, json_response
from reconwatch.service.follow import FileFeed
from reconwatch.service.loop import Loop
from reconwatch.service.metrics import Metrics
from reconwatch.service.params import alert_filter
from reconwatch.service.realtime import RealTime
from reconwatch.service.rules import RuleReloader, RuleSet
from reconwatch.service.scheduler import RunOutcome, Scheduler
from reconwatch.service.writer import QueueFull, Writer
from reconwatch.store import Store, StoreError
from reconwatch.store.alerts import STATUSES, RunRecord

# The Elasticsearch version whose APIs the service answers like (GET / reports it; clients
# read it to choose request formats).
ES_VERSION = "9.0.0"
RETRY_AFTER_SECONDS = 1
LOG = logging.getLogger("reconwatch.service")


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
    metrics: Metrics | None = None
    delivery: Delivery | None = None
    realtime: RealTime | None = None
    reloader: RuleReloader | None = None
    feed: FileFeed | None = None
    # The ES|QL API's queries: the store's DuckDB memory and a time budget (serve --timeout).
    query_limits: QueryLimits = field(default_factory=lambda: QueryLimits(seconds=RULE_RUN_SECONDS))
    # Which of a rule set's rules run in real time by the configuration (assemble).
    realtime_choice: Callable[[RuleSet], list[str]] | None = None

    def start_schedule(self) -> None:
        """Run the rules on their schedule (and retention) on a thread of their own, and the
        real-time rules over every committed batch."""
        if self.realtime is not None:
            self.realtime.start()
        if self.delivery is not None:
            self.delivery.start()
        if self.feed is not None:
            self.feed.start()
        if self.scheduler is not None and self.loop is None:
            self.loop = Loop(self.scheduler, self.store, self.scheduler.clock, self.delivery)
            if self.reloader is not None:
                self.loop.reload = self.reload_rules
            self.loop.start()

    def reload_rules(self) -> bool:
        """Apply the rule directories' changes, if any: new and edited rules run (in real time
        too when they were, or are chosen to be), removed ones stop, refused files are listed
        in place of the old ones. Whether anything changed."""
        loaded = self.reloader.changed() if self.reloader is not None else None
        if loaded is None or self.scheduler is None:
            return False
        touched, removed = self.scheduler.replace_rules(list(loaded.rules.values()))
        failures = list(loaded.failures)
        if self.realtime is not None:
            realtime = self.realtime
            was = set(realtime.enabled())
            realtime.rules = dict(loaded.rules)
            for rule_id in removed:
                realtime.disable(rule_id)
            chosen = set(self.realtime_choice(loaded)) if self.realtime_choice else set()
            for rule_id in touched:
                if rule_id in was or rule_id in chosen:
                    realtime.disable(rule_id)
                    try:
                        realtime.enable(rule_id)
                    except ReconwatchError as exc:
                        failures.append(
                            f"{loaded.rules[rule_id].label}: not run in real time: {exc}"
                        )
        self.rule_failures[:] = failures
        return True

    def close(self) -> None:
        # Ingest first (what it holds is committed and evaluated), then the rules, then sinks.
        if self.feed is not None:
            self.feed.stop()
        self.writer.close()
        if self.realtime is not None:
            self.realtime.close()
        if self.loop is not None:
            self.loop.stop()
        if self.delivery is not None:
            self.delivery.close()
        self.store.close()


def open_service(
    store: Store,
    limits: Limits,
    api_key: str | None = None,
    scheduler: Scheduler | None = None,
    rule_failures: list[str] | None = None,
    delivery: Delivery | None = None,
    realtime: RealTime | None = None,
) -> Service:
    writer = Writer(store, limits.queue_batches)
    service = Service(
        store, writer, limits, api_key, uuid.uuid4().hex, scheduler, list(rule_failures or [])
    )
    metrics = Metrics(writer.depth)
    service.metrics = metrics
    service.delivery = delivery
    service.realtime = realtime
    if delivery is not None:
        delivery.on_failure = functools.partial(_sink_failed, metrics)
    if scheduler is not None:
        scheduler.on_run = functools.partial(_observe_run, metrics)
    if realtime is not None:
        store.on_commit = realtime.offer
        realtime.on_alerts = functools.partial(_realtime_alerts, service)
        realtime.on_held = metrics.realtime_held.observe
        if scheduler is not None:
            scheduler.realtime_groups = realtime.groups
    return service


def _realtime_alerts(service: Service, count: int) -> None:
    if service.metrics is not None:
        service.metrics.realtime_alerts.inc(count)
    if service.delivery is not None:
        service.delivery.kick()


def _sink_failed(metrics: Metrics, sink: str) -> None:
    metrics.sink_failures.labels(sink).inc()


def _observe_run(metrics: Metrics, outcome: RunOutcome, seconds: float) -> None:
    record = outcome.record
    metrics.runs.labels(record.rule_id, record.execution_type).observe(seconds)
    if record.error is not None:
        metrics.run_errors.labels(record.rule_id).inc()
    if record.gap_ms:
        metrics.gaps.labels(record.rule_id).inc()
    if outcome.created:
        metrics.alerts.labels(record.rule_id).inc(len(outcome.created))


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
            if ui.open_path(request):
                return await call_next(request)
            if ui.wants_html(request):  # a browser: sign in once, then the key is a cookie
                back = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                return RedirectResponse(f"/login?{urlencode({'next': back})}", status_code=303)
            reason = "missing or wrong API key (send the header Authorization: ApiKey <key>)"
            return error_response(401, "security_exception", reason, {"WWW-Authenticate": "ApiKey"})
        try:
            response = await call_next(request)
        except Exception as exc:  # a bug or a failed store: one line in the log, never a traceback
            line = f"{request.method} {request.url.path}: {type(exc).__name__}: {exc}"
            LOG.error("reconwatch serve: internal error: %s", line)
            if ui.wants_html(request):
                return ui.html(ui.pages.error_page(line), 500)
            return error_response(500, "internal_server_error", line)
        response.headers.update(PRODUCT_HEADER)
        return response

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Response:
        if exc.status_code == 404 and ui.wants_html(request):
            return ui.html(ui.pages.not_found(f"No page at {request.url.path}."), 404)
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
    async def info(request: Request) -> Response:
        if ui.wants_html(request):  # a browser: the triage UI's alert queue
            return await ui.queue_page(service, request)
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

    @app.post("/_query")
    async def query(request: Request) -> Response:
        return await _query(service, request)

    @app.get("/api/alerts")
    async def alerts(request: Request) -> Response:
        return await _list_alerts(service, request)

    @app.get("/api/alerts/{alert_id}")
    async def alert(alert_id: str) -> Response:
        doc = await run_in_threadpool(service.store.get_alert, alert_id)
        if doc is None:
            return error_response(
                404, "resource_not_found_exception", f"no alert with id [{alert_id}]"
            )
        return json_response(doc)

    @app.post("/api/alerts/{alert_id}/_status")
    async def alert_status(alert_id: str, request: Request) -> Response:
        return await _set_status(service, alert_id, request)

    @app.get("/api/health")
    async def health() -> Response:
        return json_response(await run_in_threadpool(_health, service))

    @app.get("/metrics")
    async def metrics() -> Response:
        assert service.metrics is not None
        return Response(
            service.metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8"
        )

    @app.get("/api/rules")
    async def rules() -> Response:
        return json_response(await run_in_threadpool(_rules_body, service))

    @app.post("/api/rules/{rule_id}/_run")
    async def run_rule(rule_id: str, request: Request) -> Response:
        return await _manual_run(service, rule_id, request)

    triage.add_routes(app, service, _json_body)
    ui.add_routes(app, service)
    return app


async def _json_body(service: Service, request: Request) -> dict[str, Any]:
    """The request's JSON object; UsageError naming what is wrong."""
    body = await _read_body(request, service.limits.max_body_bytes)
    if body is None:
        raise UsageError("the request body is larger than the limit")
    try:
        doc = msgspec.json.decode(body) if body.strip() else None
    except msgspec.DecodeError as exc:
        msg = f"the request body is not JSON: {exc}"
        raise UsageError(msg) from None
    if not isinstance(doc, dict):
        raise UsageError("the request body must be a JSON object")
    return doc


async def _query(service: Service, request: Request) -> Response:
    started = time.monotonic()
    try:
        doc = await _json_body(service, request)
        text = doc.get("query")
        if not isinstance(text, str) or not text.strip():
            raise UsageError("[query] is required: the ES|QL text")
        result = await run_in_threadpool(
            esql.run, service.store, text, service.store.clock(), service.query_limits
        )
    except UsageError as exc:
        return error_response(400, "parsing_exception", str(exc))
    except ReconwatchError as exc:
        return error_response(*esql.error(exc))
    took = int((time.monotonic() - started) * 1000)
    headers = (
        {"Warning": ", ".join(warning_header(w) for w in result.warnings)}
        if result.warnings
        else None
    )
    return json_response(esql.body(result, took), headers=headers)


async def _list_alerts(service: Service, request: Request) -> Response:
    q = request.query_params
    try:
        f = alert_filter(q)
    except UsageError as exc:
        return error_response(400, "illegal_argument_exception", str(exc))
    total, docs = await run_in_threadpool(service.store.list_alerts, f)
    counts = await run_in_threadpool(service.store.status_counts, f)
    return json_response({"total": total, "counts": counts, "alerts": docs})


async def _set_status(service: Service, alert_id: str, request: Request) -> Response:
    try:
        doc = await _json_body(service, request)
        status, user = doc.get("status"), doc.get("user")
        if status not in STATUSES:
            raise UsageError(f"[status] must be one of {', '.join(STATUSES)}")
        if not isinstance(user, str) or not user.strip():
            raise UsageError("[user] is required: who sets the status")
    except UsageError as exc:
        return error_response(400, "illegal_argument_exception", str(exc))
    updated = await run_in_threadpool(service.store.set_status, alert_id, str(status), user)
    if updated is None:
        return error_response(404, "resource_not_found_exception", f"no alert with id [{alert_id}]")
    return json_response(updated)


def _health(service: Service) -> dict[str, Any]:
    scheduler = service.scheduler
    loop_errors = service.loop.errors if service.loop is not None else []
    failing = service.delivery.last_error if service.delivery is not None else {}
    problems = len(service.rule_failures) + len(loop_errors) + len(failing)
    return {
        "status": "green" if not problems else "yellow",
        "events": service.store.count(),
        "indices": len(service.store.indices()),
        "write_queue": {"depth": service.writer.depth(), "limit": service.limits.queue_batches},
        "rules": 0 if scheduler is None else len(scheduler.states),
        "realtime": _realtime_health(service.realtime),
        "follow": {}
        if service.feed is None
        else {"events_stored": service.feed.stored, "errors": list(service.feed.errors)},
        "schedule_running": service.loop is not None,
        "rule_failures": service.rule_failures,
        "sinks": _sinks_health(service.delivery),
        "errors": loop_errors,
    }


def _realtime_health(realtime: RealTime | None) -> dict[str, Any]:
    if realtime is None:
        return {}
    return {
        "rules": realtime.enabled(),
        "queue_depth": realtime.depth(),
        "alerts_created": realtime.alerts_created,
        "errors": list(realtime.errors),
    }


def _sinks_health(delivery: Delivery | None) -> dict[str, Any]:
    if delivery is None:
        return {}
    return {
        name: {
            "failures": delivery.failures[name],
            "last_error": delivery.last_error.get(name),
            "dead_lettered": delivery.dead_lettered(name),
        }
        for name in delivery.sinks
    }


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
                **triage.rule_settings_body(service, rule.rule_id),
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
    try:
        start, end = _range(await _json_body(service, request))
        outcomes: list[RunOutcome] = await run_in_threadpool(
            scheduler.run_manual, rule_id, start, end
        )
        if service.delivery is not None:
            await run_in_threadpool(service.delivery.kick)
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


def _range(doc: dict[str, Any]) -> tuple[datetime, datetime]:
    """`{"start": ..., "end": ...}` as UTC times; UsageError naming what is wrong."""
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
    cookie = request.cookies.get(ui.KEY_COOKIE)
    if cookie is not None and hmac.compare_digest(cookie.encode(), key.encode()):
        return True
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() not in ("apikey", "bearer"):
        return False
    # Header values arrive decoded as Latin-1: their own bytes are what the client sent (the
    # key's UTF-8 when it is not ASCII).
    return hmac.compare_digest(value.strip().encode("latin-1", "replace"), key.encode())


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
        _refused(service, "too_large")
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
            _refused(service, "queue_full")
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
    answer = bulk.response(items, written, took)
    if service.metrics is not None:
        stored = sum(1 for w in written if w.error_type is None)
        service.metrics.ingested.inc(stored)
        service.metrics.rejected.inc(len(items) - stored)
    wanted = request.query_params.get("filter_path")
    if wanted:  # what shippers ask for (errors,items.*.status,...): a fraction of the bytes
        answer = await run_in_threadpool(filterpath.apply, answer, wanted)
    return json_response(answer)


def _refused(service: Service, reason: str) -> None:
    if service.metrics is not None:
        service.metrics.refused.labels(reason).inc()
