"""`reconwatch alerts` and `reconwatch rules run`: thin clients of a running `reconwatch serve`'s API."""

from __future__ import annotations

import os
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from reconwatch.errors import ReconwatchError, UsageError

DEFAULT_URL = "http://127.0.0.1:9200"
API_KEY_ENV = "RECONWATCH_API_KEY"
TIMEOUT_SECONDS = 600.0

UrlOption = Annotated[
    str, typer.Option("--url", help="The service's address (reconwatch serve --bind).")
]
KeyOption = Annotated[
    str | None,
    typer.Option("--api-key", help=f"The service's API key (default: ${API_KEY_ENV})."),
]


class ServiceUnreachable(ReconwatchError):
    """The service did not answer (not running, wrong address) or failed (5xx): exit 1."""

    exit_code = 1


def call(method: str, url: str, path: str, api_key: str | None, **kwargs: Any) -> dict[str, Any]:
    """The JSON answer of one API request; an error answer is one line with its reason
    (4xx: exit 2, as bad usage; 5xx or no answer: exit 1)."""
    import httpx

    key = api_key or os.environ.get(API_KEY_ENV)
    headers = {"Authorization": f"ApiKey {key}"} if key else {}
    try:
        answer = httpx.request(
            method, url.rstrip("/") + path, headers=headers, timeout=TIMEOUT_SECONDS, **kwargs
        )
    except httpx.HTTPError as exc:
        msg = f"cannot reach reconwatch serve at {url}: {exc}"
        raise ServiceUnreachable(msg) from None
    try:
        doc = answer.json()
    except ValueError:
        doc = {}
    if answer.status_code >= 400:
        error = doc.get("error", {}) if isinstance(doc, dict) else {}
        reason = error.get("reason") if isinstance(error, dict) else None
        msg = f"{method} {path}: HTTP {answer.status_code}: {reason or answer.text[:200]}"
        if answer.status_code >= 500:
            raise ServiceUnreachable(msg)
        raise UsageError(msg)
    if not isinstance(doc, dict):
        msg = f"{method} {path}: the answer is not a JSON object"
        raise ServiceUnreachable(msg)
    return doc


def _alert_table(alerts: list[dict[str, Any]]) -> Table:
    table = Table("id", "rule", "severity", "host", "detected", "status", "path")
    for a in alerts:
        host = a.get("host.name") or a.get("Esql.host_name_values") or ""
        table.add_row(
            str(a.get("kibana.alert.uuid", ""))[:16],
            str(a.get("kibana.alert.rule.name", "")),
            str(a.get("kibana.alert.severity", "")),
            str(host if not isinstance(host, list) else ", ".join(map(str, host))),
            str(a.get("kibana.alert.original_time") or a.get("@timestamp", "")),
            str(a.get("kibana.alert.workflow_status", "")),
            str(a.get("reconwatch.detection.path", "scheduled")),
        )
    return table


def _print(doc: object, as_json: bool) -> None:
    import msgspec

    out = Console(highlight=False, soft_wrap=True)
    if as_json:
        out.print(msgspec.json.encode(doc).decode(), markup=False)


def register(app: typer.Typer) -> None:
    @app.command()
    def alerts(
        url: UrlOption = DEFAULT_URL,
        api_key: KeyOption = None,
        rule_id: Annotated[str | None, typer.Option("--rule-id", help="One rule's.")] = None,
        status: Annotated[
            str | None, typer.Option("--status", help="open, acknowledged or closed.")
        ] = None,
        since: Annotated[
            str | None, typer.Option("--since", help="Stored at or after (ISO-8601).")
        ] = None,
        size: Annotated[int, typer.Option("--size", help="At most this many.")] = 100,
        as_json: Annotated[bool, typer.Option("--json", help="NDJSON, one alert a line.")] = False,
        set_status: Annotated[
            str | None,
            typer.Option(
                "--set-status", help="Set the --id alert's status (open, acknowledged, closed)."
            ),
        ] = None,
        alert_id: Annotated[str | None, typer.Option("--id", help="The alert to change.")] = None,
        user: Annotated[str | None, typer.Option("--user", help="Who sets the status.")] = None,
    ) -> None:
        """The alerts a running `reconwatch serve` stored, or set one's workflow status."""
        if set_status is not None:
            if alert_id is None or user is None:
                raise UsageError("--set-status needs --id ALERT and --user NAME")
            doc = call(
                "POST",
                url,
                f"/api/alerts/{alert_id}/_status",
                api_key,
                json={"status": set_status, "user": user},
            )
            Console(highlight=False).print(
                f"{alert_id}: {doc.get('kibana.alert.workflow_status')}", markup=False
            )
            return
        params = {"size": size}
        for name, value in (("rule_id", rule_id), ("status", status), ("since", since)):
            if value is not None:
                params[name] = value  # type: ignore[assignment]
        doc = call("GET", url, "/api/alerts", api_key, params=params)
        found: list[dict[str, Any]] = doc.get("alerts", [])
        if as_json:
            for alert in found:
                _print(alert, True)
            return
        console = Console(highlight=False)
        console.print(_alert_table(found))
        console.print(f"{len(found)} of {doc.get('total', len(found))} alerts", markup=False)


def register_rules_run(rules_app: typer.Typer) -> None:
    @rules_app.command("run")
    def run_cmd(
        rule_id: Annotated[str, typer.Argument(help="The rule_id to run.")],
        start: Annotated[str, typer.Option("--start", help="From (ISO-8601).")],
        end: Annotated[str, typer.Option("--end", help="To (ISO-8601).")],
        url: UrlOption = DEFAULT_URL,
        api_key: KeyOption = None,
        as_json: Annotated[bool, typer.Option("--json", help="The API's answer as JSON.")] = False,
    ) -> None:
        """A manual run (gap fill) of a rule over a time range on a running `reconwatch serve`."""
        doc = call(
            "POST", url, f"/api/rules/{rule_id}/_run", api_key, json={"start": start, "end": end}
        )
        if as_json:
            _print(doc, True)
            return
        console = Console(highlight=False, soft_wrap=True)
        for run in doc.get("runs", []):
            problem = f", error: {run['error']}" if run.get("error") else ""
            console.print(
                f"run {run['start']} .. {run['end']}: {run['alerts']} alerts{problem}",
                markup=False,
            )
        created = doc.get("alerts", [])
        if created:
            console.print(_alert_table(created))
        console.print(f"{len(created)} new alerts", markup=False)
