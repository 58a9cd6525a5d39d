"""`reconwatch simulate`: Elastic-Defend-shaped fleet traffic with planted scans, to a file."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Annotated

import msgspec
import typer
from rich.console import Console

from reconwatch.cli.detect import parse_time
from reconwatch.errors import OutputError, UsageError
from reconwatch.simulate import LOOKALIKE_KINDS, SCAN_KINDS, Simulation, write_events

KINDS_HELP = "; ".join(f"{k}: {v}" for k, v in SCAN_KINDS.items())
LOOKALIKES_HELP = "; ".join(f"{k}: {v}" for k, v in LOOKALIKE_KINDS.items())


def _to_stdout(events: Iterable[dict[str, object]]) -> int:
    encoder = msgspec.json.Encoder()
    out = sys.stdout.buffer
    count = 0
    for event in events:
        out.write(encoder.encode(event) + b"\n")
        count += 1
    out.flush()
    return count


def _writable(path: str) -> str:
    """Refuse an output path that cannot be created, before any event is made."""
    try:
        with open(path, "ab"):
            pass
    except OSError as exc:
        reason = (
            "is a directory (give a file name)"
            if isinstance(exc, IsADirectoryError)
            else exc.strerror
        )
        msg = f"--output {path}: cannot write: {reason or exc}"
        raise UsageError(msg) from None
    return path


def register(app: typer.Typer) -> None:
    @app.command("simulate")
    def simulate_cmd(
        output: Annotated[
            str,
            typer.Option(
                "--output", "-o", help="NDJSON file to write (.gz compresses); - is stdout."
            ),
        ] = "-",
        hosts: Annotated[int, typer.Option("--hosts", help="Fleet size.")] = 20,
        hours: Annotated[float, typer.Option("--hours", help="Hours of traffic.")] = 1.0,
        scan: Annotated[
            list[str] | None, typer.Option("--scan", help=f"Plant a scan; repeatable. {KINDS_HELP}")
        ] = None,
        lookalike: Annotated[
            list[str] | None,
            typer.Option(
                "--lookalike",
                help=f"Add a benign look-alike of a scan; repeatable. {LOOKALIKES_HELP}",
            ),
        ] = None,
        seed: Annotated[int, typer.Option("--seed", help="Same seed, same events.")] = 0,
        outcomes: Annotated[
            bool,
            typer.Option(
                "--outcomes",
                help="Follow every attempt with its connection_result event, as the eBPF sensor "
                "does (scanned addresses answer one time in ten, everything else answers).",
            ),
        ] = False,
        start: Annotated[
            str | None,
            typer.Option(
                "--start", help="First event time (default: the current hour minus --hours)."
            ),
        ] = None,
    ) -> None:
        """Write benign fleet traffic (DNS, NTP, web, SSH, monitoring) plus planted scans."""
        if hours <= 0:
            raise UsageError("--hours must be positive")
        if start is None:
            hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
            begin = hour - timedelta(hours=hours)
        else:
            begin = parse_time(start, "--start")
        try:
            sim = Simulation(
                hosts=hosts,
                hours=hours,
                start=begin,
                scans=tuple(scan or ()),
                lookalikes=tuple(lookalike or ()),
                seed=seed,
                outcomes=outcomes,
            )
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        # Streamed: a large fleet over many hours never sits in memory as a whole.
        target = "<stdout>" if output == "-" else _writable(output)
        try:
            if output == "-":
                count = _to_stdout(sim.stream())
            else:
                count = write_events(sim.stream(), target)
        except BrokenPipeError:
            raise  # the reader went away (`| head`): main leaves quietly
        except OSError as exc:  # a full disk, an I/O error: one line, exit 1
            msg = f"writing events to {target}: {exc.strerror or exc}"
            raise OutputError(msg) from None
        err = Console(stderr=True, highlight=False, soft_wrap=True)
        err.print(
            f"wrote {count} events for {hosts} hosts from {begin.isoformat()} to "
            + ("stdout" if output == "-" else output),
            markup=False,
        )
        for p in sim.planted:
            err.print(
                f"planted {p.kind} scan on {p.host}: {p.targets} target(s), {p.start.isoformat()} .. {p.end.isoformat()}",
                markup=False,
            )
        for p in sim.planted_lookalikes:
            err.print(
                f"look-alike {p.kind} on {p.host} ({p.executable}): {p.targets} target(s)",
                markup=False,
            )
