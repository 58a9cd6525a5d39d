"""The triage web UI (issue 13): server-rendered pages over the service's store and API."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from importlib import resources
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from fastapi import FastAPI, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse

from reconwatch.errors import QueryError, ReconwatchError, UsageError
from reconwatch.plan.values import format_datetime
from reconwatch.service import esql
from reconwatch.service.params import alert_filter
from reconwatch.service.ui import context, pages
from reconwatch.store import exceptions as exc_store

if TYPE_CHECKING:
    from reconwatch.service.app import Service

KEY_COOKIE = "reconwatch_key"
QUEUE_SIZE = 50
# How often the live stream looks for new alerts, and how long one stream lasts before the
# browser reconnects (a long-lived response would hold up the server's shutdown).
STREAM_POLL_SECONDS = 1.0
STREAM_SECONDS = 15.0
STATIC = {"ui.css": "text/css", "ui.js": "text/javascript"}


def wants_html(request: Request) -> bool:
    """A browser navigating (Accept names text/html), not an Elasticsearch client."""
    return "text/html" in request.headers.get("accept", "")


def open_path(request: Request) -> bool:
    """The sign-in page and its style sheet and script need no key."""
    return request.url.path in ("/login", "/ui/static/ui.css", "/ui/static/ui.js")


def html(body: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(body, status_code=status, headers={"Cache-Control": "no-store"})


async def queue_page(service: Service, request: Request) -> Response:
    params = {k: v for k, v in request.query_params.items()}
    error = ""
    try:
        f = alert_filter({**params, "order": "desc", "size": params.get("size") or str(QUEUE_SIZE)})
    except UsageError as exc:
        error = str(exc)
        f = alert_filter({"order": "desc", "size": str(QUEUE_SIZE)})
    total, alerts = await run_in_threadpool(service.store.list_alerts, f)
    counts = await run_in_threadpool(service.store.status_counts, f)
    facets = await run_in_threadpool(service.store.alert_facets)
    state = await run_in_threadpool(alerts_state, service)
    names = (
        {k: s.rule.name for k, s in service.scheduler.states.items()}
        if service.scheduler is not None
        else {}
    )
    return html(pages.queue(params, f, total, counts, alerts, facets, names, error, state))


def _rule(service: Service, rule_id: str) -> Any:
    scheduler = service.scheduler
    if scheduler is None or rule_id not in scheduler.states:
        return None
    return scheduler.states[rule_id].rule


def _alert_parts(service: Service, alert_id: str) -> dict[str, Any] | None:
    """The alert, its rule, its stored crossing point and the console query."""
    alert = service.store.get_alert(alert_id)
    if alert is None:
        return None
    rule = _rule(service, str(alert.get("kibana.alert.rule.rule_id")))
    console = context.source_query(rule, alert) if rule is not None else None
    return {
        "alert": alert,
        "rule": rule,
        "crossing": context.stored_crossing(alert),
        "console": console,
    }


def add_routes(app: FastAPI, service: Service) -> None:
    """The pages and the UI's own endpoints (static files, live stream, login)."""

    @app.get("/alerts")
    async def alerts_page(request: Request) -> Response:
        return await queue_page(service, request)

    @app.get("/ui/queue")
    async def queue_fragment(request: Request) -> Response:
        """The queue's rows and counts for a live refresh (JSON with HTML parts)."""
        from reconwatch.service.errors import json_response

        params = dict(request.query_params.items())
        try:
            f = alert_filter(
                {**params, "order": "desc", "size": params.get("size") or str(QUEUE_SIZE)}
            )
        except UsageError as exc:
            from reconwatch.service.errors import error_response

            return error_response(400, "illegal_argument_exception", str(exc))
        total, alerts = await run_in_threadpool(service.store.list_alerts, f)
        counts = await run_in_threadpool(service.store.status_counts, f)
        return json_response(
            {
                "total": total,
                "rows": pages.queue_rows(alerts),
                "tabs": pages.status_tabs(params, counts),
                "caption": pages.queue_caption(f, total, len(alerts)),
            }
        )

    @app.get("/ui/stream")
    async def stream(request: Request) -> Response:
        """Server-sent events: `alerts` with the alerts' state whenever it changes."""

        async def events() -> AsyncIterator[str]:
            yield "retry: 500\n\n"
            last = ""
            waited = 0.0
            while waited < STREAM_SECONDS:
                if await request.is_disconnected():
                    return
                state = await run_in_threadpool(alerts_state, service)
                if state != last:
                    yield f"event: alerts\ndata: {state}\n\n"
                    last = state
                await asyncio.sleep(STREAM_POLL_SECONDS)
                waited += STREAM_POLL_SECONDS

        return StreamingResponse(
            events(), media_type="text/event-stream", headers={"Cache-Control": "no-store"}
        )

    @app.get("/alerts/{alert_id}")
    async def alert_page(alert_id: str) -> Response:
        parts = await run_in_threadpool(_alert_parts, service, alert_id)
        if parts is None:
            return html(pages.not_found(f"There is no alert with id {alert_id}."), 404)
        alert, rule = parts["alert"], parts["rule"]
        state = await run_in_threadpool(service.store.guide, alert_id)
        ctx = await run_in_threadpool(context.host_context, service, alert)
        note = rule.note if rule is not None else str(alert.get("kibana.alert.rule.note", ""))
        fps = list(rule.false_positives) if rule is not None else []
        return html(
            pages.alert_page(
                alert,
                note,
                fps,
                state,
                parts["crossing"],
                parts["console"],
                ctx,
                shared=await run_in_threadpool(service.store.exceptions, exc_store.lists),
                state=await run_in_threadpool(alerts_state, service),
            )
        )

    @app.get("/alerts/{alert_id}/report.{fmt}")
    async def report(alert_id: str, fmt: str) -> Response:
        if fmt not in ("md", "html"):
            return html(pages.not_found(f"No report format {fmt}: md or html."), 404)
        parts = await run_in_threadpool(_alert_parts, service, alert_id)
        if parts is None:
            return html(pages.not_found(f"There is no alert with id {alert_id}."), 404)
        args = (parts["alert"], parts["crossing"], parts["console"])
        name = f"alert-{alert_id[:12]}.{fmt}"
        disposition = {"Content-Disposition": f'attachment; filename="{name}"'}
        if fmt == "md":
            return Response(
                pages.report_markdown(*args),
                media_type="text/markdown; charset=utf-8",
                headers=disposition,
            )
        return HTMLResponse(pages.report_html(*args), headers=disposition)

    @app.get("/rules")
    async def rules_page() -> Response:
        from reconwatch.service.app import _rules_body

        body = await run_in_threadpool(_rules_body, service)
        runs = await run_in_threadpool(_recent_runs, service)
        return html(pages.rules_page(body["rules"], body["failures"], runs))

    @app.get("/query")
    async def console(q: str = "") -> Response:
        if not q.strip():
            return html(pages.console_page("FROM logs-* | LIMIT 20", None, "", ""))
        try:
            result = await run_in_threadpool(esql.run, service.store, q, service.store.clock())
        except QueryError as exc:
            return html(pages.console_page(q, None, exc.one_line(), exc.caret()), 400)
        except ReconwatchError as exc:
            return html(pages.console_page(q, None, exc.one_line(), ""), 400)
        return html(pages.console_page(q, esql.body(result, 0), "", "", result.warnings))

    @app.get("/exceptions")
    async def exceptions_page() -> Response:
        lists = await run_in_threadpool(service.store.exceptions, exc_store.lists)
        rules = [
            {"rule_id": k, "name": s.rule.name}
            for k, s in (service.scheduler.states.items() if service.scheduler else [])
        ]
        return html(pages.exceptions_page(lists, rules))

    @app.get("/exceptions/{list_id}")
    async def exception_list_page(list_id: str) -> Response:
        lst = await run_in_threadpool(service.store.exceptions, exc_store.get_list, list_id)
        if lst is None:
            return html(pages.not_found(f"There is no exception list {list_id}."), 404)
        items = await run_in_threadpool(service.store.exceptions, exc_store.items, list_id)
        return html(pages.exception_list_page(lst, items))

    @app.get("/ui/static/{name}")
    async def static(name: str) -> Response:
        if name not in STATIC:
            return html(pages.not_found(f"No file {name}."), 404)
        text = resources.files(__package__).joinpath("static", name).read_text("utf-8")
        return Response(text, media_type=STATIC[name], headers={"Cache-Control": "max-age=300"})

    @app.get("/login")
    async def login_form(next: str = "/") -> Response:
        return html(pages.login(next_path=local_path(next)))

    @app.post("/login")
    async def login(request: Request) -> Response:
        body = parse_qs((await request.body())[:4096].decode("utf-8", "replace"))
        key = (body.get("key") or [""])[0]
        back = local_path((body.get("next") or ["/"])[0])
        if service.api_key is None or not _same(key, service.api_key):
            return html(pages.login("That API key is not the service's.", back), 401)
        response = RedirectResponse(back, status_code=303)
        # SameSite=Strict: another site cannot make the browser send it (no cross-site forms).
        response.set_cookie(KEY_COOKIE, key, httponly=True, samesite="strict")
        return response


def local_path(path: str) -> str:
    """Where to go after signing in: a path of this service only (no other site, no scheme)."""
    if not path.startswith("/") or path.startswith("//") or "\\" in path or "\n" in path:
        return "/"
    return path


def _same(a: str, b: str) -> bool:
    import hmac

    return hmac.compare_digest(a.encode(), b.encode())


def alerts_state(service: Service) -> str:
    """What the live stream watches: the alerts' count and a hash of every alert's workflow
    status (who, when), so a new alert and a status change (another tab, the API) both show."""
    cur = service.store.cursor()
    try:
        row = cur.execute(
            "SELECT count(*), coalesce(sum(hash(id, status, status_by, status_at)), 0) FROM alerts"
        ).fetchone()
    finally:
        cur.close()
    return f"{row[0]}-{row[1]}" if row else "0-0"


def _recent_runs(service: Service) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for rule_id in service.scheduler.states if service.scheduler is not None else []:
        runs = service.store.runs(rule_id)
        durations = service.store.run_durations(rule_id)
        rows = []
        for record, ms in list(zip(runs, durations, strict=False))[-20:][::-1]:
            rows.append(
                {
                    "run_at": format_datetime(record.run_at),
                    "start": format_datetime(record.start),
                    "end": format_datetime(record.end),
                    "execution_type": record.execution_type,
                    "alerts": record.alerts,
                    "gap_ms": record.gap_ms,
                    "error": record.error,
                    "duration_ms": ms,
                }
            )
        out[rule_id] = rows
    return out
