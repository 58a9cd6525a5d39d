"""`reconwatch serve`: the detection service (Elasticsearch-compatible ingest, scheduled rules, API)."""

from __future__ import annotations

import os
import signal
import socket
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape

from reconwatch.errors import UsageError

if TYPE_CHECKING:
    from reconwatch.service.config import ServiceConfig


def _now() -> datetime:
    """The service's clock: the real one, read only here at the command's edge."""
    return datetime.now(UTC)


def register(app: typer.Typer) -> None:
    @app.command()
    def serve(
        config: Annotated[
            Path | None,
            typer.Option("--config", help="A TOML file of settings (see docs/service.md)."),
        ] = None,
        data_dir: Annotated[
            Path | None,
            typer.Option(
                "--data-dir",
                help="Where the store lives. Default: $XDG_DATA_HOME/reconwatch or ~/.local/share/reconwatch.",
            ),
        ] = None,
        bind: Annotated[
            str | None,
            typer.Option(
                "--bind",
                help="ADDR:PORT to listen on (default 127.0.0.1:9200); another address than "
                "loopback needs an API key.",
            ),
        ] = None,
        rules: Annotated[
            list[Path] | None,
            typer.Option(
                "--rules", help="A directory of rule files (TOML) to run too; repeatable."
            ),
        ] = None,
        follow: Annotated[
            list[Path] | None,
            typer.Option(
                "--follow",
                help="A file to tail into the store (NDJSON or an audit log; survives rotation); repeatable.",
            ),
        ] = None,
        rule: Annotated[
            list[str] | None,
            typer.Option(
                "--rule",
                help="A built-in rule, a pack (recon) or a rule file to run too; repeatable.",
            ),
        ] = None,
        no_builtin_rules: Annotated[
            bool, typer.Option("--no-builtin-rules", help="Run only the --rules files.")
        ] = False,
        demo: Annotated[
            bool,
            typer.Option("--demo", help="Store the shipped sample and run every rule over it."),
        ] = False,
        memory_limit: Annotated[
            str | None,
            typer.Option(
                "--memory-limit",
                help="Memory the store's DuckDB may use (e.g. 512MB, 4GB; default 2GB); a query "
                "that needs more stops with an error, the service goes on.",
                metavar="SIZE",
            ),
        ] = None,
        timeout: Annotated[
            float | None,
            typer.Option(
                "--timeout",
                help="Cancel a rule run's query or an ES|QL request after this many seconds "
                "(default 300, Kibana's rule run timeout); 0: no budget.",
                metavar="SECONDS",
            ),
        ] = None,
    ) -> None:
        """Run the detection service: _bulk ingest, rules on schedule, alerts and ES|QL API."""
        from reconwatch.plan.limits import parse_memory, parse_seconds
        from reconwatch.service.assemble import listen, settle
        from reconwatch.service.config import ServiceConfig, load_config

        err = Console(stderr=True, highlight=False, soft_wrap=True)
        settings = load_config(config) if config is not None else ServiceConfig()
        if data_dir is not None:
            settings = replace(settings, data_dir=data_dir)
        if bind is not None:
            settings = replace(settings, bind=bind)
        if rules:
            settings = replace(settings, rules=(*settings.rules, *rules))
        if rule:
            settings = replace(settings, rule=(*settings.rule, *rule))
        if follow:
            settings = replace(settings, follow=(*settings.follow, *follow))
        if no_builtin_rules:
            settings = replace(settings, builtin_rules=False)
        if memory_limit is not None:
            settings = replace(settings, memory_limit=parse_memory(memory_limit))
        if timeout is not None:
            settings = replace(settings, query_timeout=parse_seconds(timeout))
        settings = settle(settings, os.environ)
        for directory in settings.rules:
            if not directory.is_dir():
                raise UsageError(f"--rules {directory}: not a directory")
        sock = listen(settings.bind)
        try:
            _run(settings, sock, demo, err)
        finally:
            sock.close()


def _terminated(signum: int, frame: FrameType | None) -> None:
    """SIGTERM (systemd's stop): uvicorn has finished the requests in flight; leave cleanly."""
    raise SystemExit(0)


def _run(settings: ServiceConfig, sock: socket.socket, demo: bool, err: Console) -> None:
    from reconwatch.service import server
    from reconwatch.service.app import build_app
    from reconwatch.service.assemble import build

    service = build(settings, _now)
    previous = signal.signal(signal.SIGTERM, _terminated)
    try:
        for failure in service.rule_failures:
            err.print(f"warning: rule not loaded: {escape(failure)}")
        if demo:
            from reconwatch.service.demo import load_demo

            assert service.scheduler is not None
            stored, created = load_demo(service.store, service.scheduler)
            err.print(f"demo: {stored} sample events stored, {created} alerts created")
        host, port = sock.getsockname()[:2]
        shown = f"[{host}]" if ":" in host else host
        rule_count = len(service.scheduler.states) if service.scheduler else 0
        err.print(
            f"reconwatch serve: listening on http://{shown}:{port} "
            f"(store {escape(str(settings.data_dir))}, {rule_count} rules"
            f"{', API key required' if settings.api_key else ''})"
        )
        service.start_schedule()
        server.run_on(build_app(service), sock)
    finally:
        signal.signal(signal.SIGTERM, previous)
        service.close()
