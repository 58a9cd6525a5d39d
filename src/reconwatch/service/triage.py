"""The triage API: bulk alert status, exceptions (CRUD, Kibana import, from an alert), rule
settings, guide checklists and alert reports; the JSON the triage UI's pages act through."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

import msgspec
from fastapi import FastAPI, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from reconwatch.engine.exceptions_esql import matching
from reconwatch.errors import UsageError
from reconwatch.rules.exceptions import ExceptionItem
from reconwatch.service.errors import error_response, json_response
from reconwatch.service.rules import SERVICE_BUILTINS
from reconwatch.service.scheduler import named_lists
from reconwatch.store import StoreError
from reconwatch.store import exceptions as exc_store
from reconwatch.store.alerts import STATUSES, AlertFilter
from reconwatch.store.exceptions import ExceptionInputError, Who

if TYPE_CHECKING:
    from reconwatch.service.app import Service

JsonBody = Callable[["Service", Request], Awaitable[dict[str, Any]]]
# Kibana's "Add rule exception" puts items on the rule's own default list.
DEFAULT_LIST_SUFFIX = "-default"


def default_list_id(rule_id: str) -> str:
    return rule_id + DEFAULT_LIST_SUFFIX


def _user(doc: Mapping[str, Any]) -> str:
    user = doc.get("user")
    if not isinstance(user, str) or not user.strip():
        raise UsageError("[user] is required: who makes the change")
    return user.strip()


def _not_found(what: str) -> Response:
    return error_response(404, "resource_not_found_exception", what)


def _item_not_found(item_id: str) -> Response:
    return _not_found(f'exception list item id: "{item_id}" does not exist')


def _bad(message: str) -> Response:
    return error_response(400, "illegal_argument_exception", message)


def add_routes(app: FastAPI, service: Service, json_body: JsonBody) -> None:
    """The triage API's routes on the service's application."""
    store = service.store

    async def call(fn: Callable[..., Any], *args: Any) -> Any:
        return await run_in_threadpool(fn, *args)

    def who(doc: Mapping[str, Any]) -> Who:
        return Who(_user(doc), store.clock())

    async def guarded(work: Callable[[], Awaitable[Response]]) -> Response:
        try:
            return await work()
        except (UsageError, ExceptionInputError) as exc:
            return _bad(str(exc))
        except StoreError as exc:
            return error_response(500, "store_exception", str(exc))

    @app.post("/api/alerts/_status")
    async def bulk_status(request: Request) -> Response:
        async def work() -> Response:
            doc = await json_body(service, request)
            ids, status = doc.get("ids"), doc.get("status")
            if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids) or not ids:
                raise UsageError("[ids] must be a non-empty list of alert ids")
            if status not in STATUSES:
                raise UsageError(f"[status] must be one of {', '.join(STATUSES)}")
            found = await call(store.set_statuses, ids, status, _user(doc))
            missing = [i for i in ids if i not in set(found)]
            return json_response({"updated": found, "not_found": missing})

        return await guarded(work)

    @app.get("/api/alerts/{alert_id}/guide")
    async def get_guide(alert_id: str) -> Response:
        if await call(store.get_alert, alert_id) is None:
            return _not_found(f"no alert with id [{alert_id}]")
        steps = await call(store.guide, alert_id)
        return json_response({"steps": {str(k): v for k, v in steps.items()}})

    @app.post("/api/alerts/{alert_id}/guide")
    async def set_guide(alert_id: str, request: Request) -> Response:
        async def work() -> Response:
            doc = await json_body(service, request)
            step, done = doc.get("step"), doc.get("done")
            if not isinstance(step, int) or isinstance(step, bool) or step < 0:
                raise UsageError("[step] must be a step number from 0")
            if not isinstance(done, bool):
                raise UsageError("[done] must be true or false")
            alert = await call(store.get_alert, alert_id)
            if alert is None:
                return _not_found(f"no alert with id [{alert_id}]")
            steps = _guide_steps(service, alert)
            if step >= steps:
                raise UsageError(f"[step] must be below {steps}: the guide's investigation steps")
            await call(store.set_guide_step, alert_id, step, done, _user(doc))
            steps = await call(store.guide, alert_id)
            return json_response({"steps": {str(k): v for k, v in steps.items()}})

        return await guarded(work)

    @app.post("/api/alerts/{alert_id}/_exception")
    async def exception_from_alert(alert_id: str, request: Request) -> Response:
        async def work() -> Response:
            doc = await json_body(service, request)
            alert = await call(store.get_alert, alert_id)
            if alert is None:
                return _not_found(f"no alert with id [{alert_id}]")
            return json_response(await call(_exception_from_alert, service, alert, doc))

        return await guarded(work)

    @app.patch("/api/rules/{rule_id}")
    async def patch_rule(rule_id: str, request: Request) -> Response:
        async def work() -> Response:
            scheduler = service.scheduler
            if scheduler is None or rule_id not in scheduler.states:
                return _not_found(f"no rule with rule_id [{rule_id}]")
            doc = await json_body(service, request)
            return json_response(await call(_patch_rule, service, rule_id, doc))

        return await guarded(work)

    @app.get("/api/exceptions")
    async def all_lists() -> Response:
        return json_response({"data": await call(store.exceptions, exc_store.lists)})

    @app.post("/api/exceptions")
    async def create_list(request: Request) -> Response:
        async def work() -> Response:
            doc = await json_body(service, request)
            made = await call(store.exceptions, exc_store.create_list, doc, who(doc))
            if made is None:
                return error_response(
                    409, "conflict", f'exception list id: "{doc.get("list_id")}" already exists'
                )
            return json_response(made)

        return await guarded(work)

    @app.post("/api/exceptions/_import")
    async def import_lists(request: Request) -> Response:
        async def work() -> Response:
            body = await request.body()
            if len(body) > service.limits.max_body_bytes:
                return error_response(413, "content_too_long_exception", "the body is too large")
            try:
                text = body.decode("utf-8")
            except UnicodeDecodeError:
                raise UsageError("the body is not UTF-8 text") from None
            user = request.query_params.get("user") or "import"
            overwrite = request.query_params.get("overwrite", "false") == "true"
            answer = await call(
                store.exceptions,
                exc_store.import_ndjson,
                text,
                Who(user, store.clock()),
                overwrite,
            )
            rule_id = request.query_params.get("rule_id")
            if rule_id:
                await call(_link_imported, service, rule_id, text)
            return json_response(answer)

        return await guarded(work)

    @app.get("/api/exceptions/{list_id}")
    async def one_list(list_id: str) -> Response:
        found = await call(store.exceptions, exc_store.get_list, list_id)
        if found is None:
            return _not_found(f'exception list id: "{list_id}" does not exist')
        found["items"] = await call(store.exceptions, exc_store.items, list_id)
        return json_response(found)

    @app.put("/api/exceptions/{list_id}")
    async def update_list(list_id: str, request: Request) -> Response:
        async def work() -> Response:
            doc = await json_body(service, request)
            done = await call(store.exceptions, exc_store.update_list, list_id, doc, who(doc))
            if done is None:
                return _not_found(f'exception list id: "{list_id}" does not exist')
            return json_response(done)

        return await guarded(work)

    @app.delete("/api/exceptions/{list_id}")
    async def delete_list(list_id: str) -> Response:
        if not await call(store.exceptions, exc_store.delete_list, list_id):
            return _not_found(f'exception list id: "{list_id}" does not exist')
        return json_response({"deleted": list_id})

    @app.get("/api/exceptions/{list_id}/items")
    async def list_items(list_id: str) -> Response:
        if await call(store.exceptions, exc_store.get_list, list_id) is None:
            return _not_found(f'exception list id: "{list_id}" does not exist')
        return json_response({"data": await call(store.exceptions, exc_store.items, list_id)})

    @app.post("/api/exceptions/{list_id}/items")
    async def create_item(list_id: str, request: Request) -> Response:
        async def work() -> Response:
            doc = await json_body(service, request)
            if await call(store.exceptions, exc_store.get_list, list_id) is None:
                return _not_found(f'exception list id: "{list_id}" does not exist')
            made = await call(store.exceptions, exc_store.create_item, list_id, doc, who(doc))
            if made is None:
                return error_response(
                    409,
                    "conflict",
                    f'exception list item id: "{doc.get("item_id")}" already exists',
                )
            return json_response(made)

        return await guarded(work)

    async def item_of(list_id: str, item_id: str) -> dict[str, Any] | None:
        """The stored item `item_id` when it belongs to the list `list_id`."""
        found = await call(store.exceptions, exc_store.get_item, item_id)
        return found if found is not None and found["list_id"] == list_id else None

    @app.get("/api/exceptions/{list_id}/items/{item_id}")
    async def one_item(list_id: str, item_id: str) -> Response:
        found = await item_of(list_id, item_id)
        if found is None:
            return _item_not_found(item_id)
        return json_response(found)

    @app.put("/api/exceptions/{list_id}/items/{item_id}")
    async def update_item(list_id: str, item_id: str, request: Request) -> Response:
        async def work() -> Response:
            doc = await json_body(service, request)
            if await item_of(list_id, item_id) is None:
                return _item_not_found(item_id)
            done = await call(store.exceptions, exc_store.update_item, item_id, doc, who(doc))
            return json_response(done)

        return await guarded(work)

    @app.delete("/api/exceptions/{list_id}/items/{item_id}")
    async def delete_item(list_id: str, item_id: str) -> Response:
        if await item_of(list_id, item_id) is None:
            return _item_not_found(item_id)
        await call(store.exceptions, exc_store.delete_item, item_id)
        return json_response({"deleted": item_id})


def _guide_steps(service: Service, alert: Mapping[str, Any]) -> int:
    """How many checklist steps the alert's rule's guide has (its note as the page draws it)."""
    from reconwatch.service.ui import markdown

    rule_id = str(alert.get("kibana.alert.rule.rule_id", ""))
    scheduler = service.scheduler
    if scheduler is not None and rule_id in scheduler.states:
        note = scheduler.states[rule_id].rule.note
    else:
        note = str(alert.get("kibana.alert.rule.note", ""))
    return len(markdown.render(note).steps)


def _exception_from_alert(
    service: Service, alert: Mapping[str, Any], doc: Mapping[str, Any]
) -> dict[str, Any]:
    """Kibana's "Add rule exception" from an alert: an item on the rule's default list (made
    and linked on first use) or on a shared list (`list_id`, linked to the rule if it is not),
    optionally closing this alert and the rule's open alerts that match the item."""
    store = service.store
    by = Who(_user(doc), store.clock())
    rule_id = str(alert.get("kibana.alert.rule.rule_id", ""))
    entries = exc_store.checked_entries(doc.get("entries"))
    list_id = doc.get("list_id") or default_list_id(rule_id)
    if not isinstance(list_id, str):
        raise UsageError("[list_id] must be a list_id")
    if (
        list_id != default_list_id(rule_id)
        and store.exceptions(exc_store.get_list, list_id) is None
    ):
        raise UsageError(f'[list_id]: exception list id: "{list_id}" does not exist')
    if store.exceptions(exc_store.get_list, list_id) is None:
        name = f"Exceptions for {alert.get('kibana.alert.rule.name', rule_id)}"
        store.exceptions(
            exc_store.create_list, {"list_id": list_id, "name": name, "type": "rule_default"}, by
        )
    linked = store.exceptions(exc_store.linked_lists, rule_id)
    if list_id not in linked:
        store.exceptions(exc_store.link, rule_id, [*linked, list_id])
    item_doc = {
        "name": doc.get("name") or f"Exception from alert {alert.get('kibana.alert.uuid')}",
        "entries": entries,
        "comments": [{"comment": doc["comment"]}] if isinstance(doc.get("comment"), str) else [],
        "expire_time": doc.get("expire_time"),
    }
    item = store.exceptions(exc_store.create_item, list_id, item_doc, by)
    closing: list[str] = []
    if doc.get("close_alert"):
        closing.append(str(alert["kibana.alert.uuid"]))
    if doc.get("close_matching"):
        closing.extend(_matching_open(service, rule_id, entries))
    closed = store.set_statuses(list(dict.fromkeys(closing)), "closed", by.user) if closing else []
    return {"list_id": list_id, "item": item, "closed": closed}


def _matching_open(service: Service, rule_id: str, entries: list[dict[str, Any]]) -> list[str]:
    """The rule's open and acknowledged alerts that match the entries (Kibana closes both),
    by the engine's matcher, as a run applies the item to events."""
    item = ExceptionItem("closing", tuple(exc_store.entries_of(entries)))
    fields = {e.field for e in item.entries}
    out: list[str] = []
    for status in ("open", "acknowledged"):
        offset = 0
        while True:
            _, page = service.store.list_alerts(
                AlertFilter(rule_id=rule_id, status=status, size=1000, offset=offset)
            )
            # Only the fields the item reads: an alert's evidence is no field to match.
            docs = [{k: v for k, v in a.items() if k in fields} for a in page]
            hits = matching([item], docs)
            out.extend(
                str(a["kibana.alert.uuid"]) for a, hit in zip(page, hits, strict=True) if hit
            )
            if len(page) < 1000:
                break
            offset += 1000
    return out


def _patch_rule(service: Service, rule_id: str, doc: Mapping[str, Any]) -> dict[str, Any]:
    scheduler = service.scheduler
    assert scheduler is not None
    enabled, realtime, lists = doc.get("enabled"), doc.get("realtime"), doc.get("exceptions_list")
    for name, value in (("enabled", enabled), ("realtime", realtime)):
        if value is not None and not isinstance(value, bool):
            raise UsageError(f"[{name}] must be true or false")
    if lists is not None:
        if not isinstance(lists, list) or not all(isinstance(x, str) for x in lists):
            raise UsageError("[exceptions_list] must be a list of list_ids")
        unknown = [x for x in lists if service.store.exceptions(exc_store.get_list, x) is None]
        if unknown:
            raise UsageError(f"[exceptions_list]: no exception list with list_id {unknown}")
    live = service.realtime
    runs = scheduler.states[rule_id].enabled if enabled is None else enabled
    # A disabled rule does not run at all, in real time neither (Kibana runs no disabled
    # rule); enabled again, it is watched again if it was (or is now asked to be).
    watched = live is not None and rule_id in live.enabled()
    if realtime is not None:
        watched = realtime
    elif live is not None and enabled:
        setting = service.store.rule_settings().get(rule_id)
        watched = watched or bool(setting and setting.realtime)
    if live is not None and watched and runs and rule_id not in live.enabled():
        live.enable(rule_id)  # refused (no STATS ... BY) as UsageError before anything changes
    if live is not None and not (watched and runs):
        if watched and realtime is None and rule_id in live.enabled():
            service.store.set_rule(rule_id, realtime=True)  # remembered for when it is enabled
        live.disable(rule_id)
    if lists is not None:
        service.store.exceptions(exc_store.link, rule_id, lists)
    if enabled is not None:
        scheduler.set_enabled(rule_id, enabled)
    if realtime is not None:
        service.store.set_rule(rule_id, realtime=realtime)
    return rule_settings_body(service, rule_id)


def rule_settings_body(service: Service, rule_id: str) -> dict[str, Any]:
    """A rule's operator settings as the rules API lists them."""
    assert service.scheduler is not None
    state = service.scheduler.states[rule_id]
    setting = service.store.rule_settings().get(rule_id)
    realtime = None if setting is None else setting.realtime
    if service.realtime is not None:
        realtime = rule_id in service.realtime.enabled()  # what runs now
    elif realtime is None:
        realtime = state.rule.builtin in SERVICE_BUILTINS
    return {
        "rule_id": rule_id,
        "enabled": state.enabled,
        "realtime": realtime,
        "exceptions_list": list(
            dict.fromkeys(
                [
                    *named_lists(state.rule),
                    *service.store.exceptions(exc_store.linked_lists, rule_id),
                ]
            )
        ),
    }


def _link_imported(service: Service, rule_id: str, text: str) -> None:
    """Link the list headers of an imported export to a rule (`?rule_id=`)."""
    scheduler = service.scheduler
    if scheduler is None or rule_id not in scheduler.states:
        raise UsageError(f"no rule with rule_id [{rule_id}]")
    ids: list[str] = []
    for line in text.splitlines():
        try:
            obj = msgspec.json.decode(line) if line.strip() else None
        except msgspec.DecodeError:
            continue
        if isinstance(obj, dict) and "list_id" in obj and "entries" not in obj:
            ids.append(str(obj["list_id"]))
    linked = service.store.exceptions(exc_store.linked_lists, rule_id)
    present = [i for i in ids if service.store.exceptions(exc_store.get_list, i) is not None]
    service.store.exceptions(exc_store.link, rule_id, [*linked, *present])
