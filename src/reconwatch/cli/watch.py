"""`reconwatch watch`: run a rule over NDJSON events as they arrive and print alerts as they fire."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO, Annotated

import msgspec
import typer
from rich.console import Console

from reconwatch.alerts.render import to_ndjson
from reconwatch.backends.stream.decode import PlanDecoder
from reconwatch.backends.stream.executor import RealertPolicy
from reconwatch.engine.watch import RuleWatch
from reconwatch.errors import UsageError
from reconwatch.ingest.flatten import flatten
from reconwatch.ingest.read import IngestReport, read_events
from reconwatch.plan.catalog import Catalog
from reconwatch.rules.builtin import DEFAULT_RULE, resolve_rule
from reconwatch.rules.datemath import parse_interval

# Files read line by line with the plan's own decoder; others (.gz, JSON arrays) via ingest.
PLAIN_NDJSON = (".ndjson", ".jsonl")
FOLLOW_POLL_S = 0.2


def _millis(text: str | None, option: str) -> int | None:
    if text is None:
        return None
    try:
        return int(parse_interval(text).total_seconds() * 1000)
    except Exception:
        msg = f"{option} {text!r}: expected a duration such as 90s, 5m or 1h"
        raise UsageError(msg) from None


def _lines(handle: IO[str], name: str, follow: bool) -> Iterator[tuple[str, int, str]]:
    """(input name, line number, text) for each line; with `follow`, waits for appended lines."""
    number = 0
    pending = ""
    while True:
        chunk = handle.readline()
        if not chunk:
            if not follow:
                break
            time.sleep(FOLLOW_POLL_S)
            continue
        pending += chunk
        if not pending.endswith("\n") and follow:
            continue  # a line still being written
        number += 1
        yield name, number, pending
        pending = ""
    if pending:
        yield name, number + 1, pending


def _decoded(
    lines: Iterator[tuple[str, int, str]], report: IngestReport, decoder: PlanDecoder
) -> Iterator[Mapping[str, object]]:
    for name, number, text in lines:
        if not text.strip():
            continue
        try:
            yield decoder.decode(text)
        except msgspec.DecodeError as exc:
            report.add(f"not a JSON object: {exc}", name, number)


def _events(
    paths: list[str], follow: bool, report: IngestReport, decoder: PlanDecoder
) -> Iterator[Mapping[str, object]]:
    for raw in paths or ["-"]:
        if raw == "-":
            yield from _decoded(_lines(sys.stdin, "<stdin>", follow), report, decoder)
        elif follow or Path(raw).suffix in PLAIN_NDJSON:
            with open(raw, encoding="utf-8", errors="replace") as handle:
                yield from _decoded(_lines(handle, raw, follow), report, decoder)
        else:
            for line, value in read_events(Path(raw), report):
                if isinstance(value, dict):
                    yield flatten(value)
                else:
                    report.add("not a JSON object", raw, line)


def _catalog(paths: list[str], follow: bool) -> Catalog | None:
    """Replayed files give the analyser their real fields (as `detect` sees them); a live stream
    is analysed against the ECS fields alone."""
    if follow or not paths or "-" in paths:
        return None
    from reconwatch.ingest import Dataset

    return Dataset.from_files(paths)


def register(app: typer.Typer) -> None:
    @app.command("watch")
    def watch_cmd(
        files: Annotated[
            list[str] | None,
            typer.Argument(
                help="NDJSON event files (.gz when replayed), or - for stdin (default)."
            ),
        ] = None,
        rule: Annotated[
            str, typer.Option("--rule", "-r", help="Built-in name, rule_id or TOML path.")
        ] = DEFAULT_RULE,
        follow: Annotated[
            bool, typer.Option("--follow", "-F", help="Keep reading lines appended to the input.")
        ] = False,
        lateness: Annotated[
            str | None,
            typer.Option(
                "--lateness",
                help="Drop events older than this behind the latest event time (default: the window).",
            ),
        ] = None,
        rearm: Annotated[
            str | None,
            typer.Option(
                "--rearm-after",
                help="Alert a group again after it stopped matching this long (default: the window).",
            ),
        ] = None,
        growth: Annotated[
            float | None,
            typer.Option(
                "--realert-growth",
                help="Also alert again when the distinct count grows by this factor (e.g. 10).",
            ),
        ] = None,
        growth_column: Annotated[
            str | None,
            typer.Option(
                "--realert-column",
                help="Column --realert-growth watches (default: first count_distinct).",
            ),
        ] = None,
        stats: Annotated[
            bool, typer.Option("--stats", help="Print state metrics to stderr at the end.")
        ] = False,
        space: Annotated[
            str, typer.Option("--space", help="Kibana space id used in alert ids.")
        ] = "default",
    ) -> None:
        """Evaluate a rule continuously over a sliding event-time window; alerts print as NDJSON when they fire."""
        paths = list(files or [])
        chosen = resolve_rule(rule)
        policy = RealertPolicy(_millis(rearm, "--rearm-after"), growth, growth_column)
        watch = RuleWatch.create(
            chosen,
            _catalog(paths, follow),
            lateness_ms=_millis(lateness, "--lateness"),
            policy=policy,
            space=space,
        )
        report = IngestReport()
        out = sys.stdout
        err = Console(stderr=True, highlight=False, soft_wrap=True)
        alerts = 0
        try:
            decoder = PlanDecoder(watch.executor.input_fields)
            for event in _events(paths, follow, report, decoder):
                for alert in watch.push(event):
                    out.write(to_ndjson([alert]))
                    out.flush()
                    alerts += 1
        except KeyboardInterrupt:
            pass
        for line in report.lines(cap=20):
            err.print(f"warning: skipped {line}", markup=False)
        metrics = watch.executor.refresh_metrics()
        if stats:
            err.print(" ".join(f"{k}={v}" for k, v in metrics.as_dict().items()), markup=False)
        err.print(
            f"{alerts} alert(s) from {metrics.events} event(s); {report.skipped} bad line(s) skipped, "
            f"{metrics.outside_window + metrics.too_late} late event(s) dropped",
            markup=False,
        )
