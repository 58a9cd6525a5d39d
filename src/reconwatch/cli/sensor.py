"""`reconwatch sensor`: capture connection attempts on this host as Elastic Defend network events."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from reconwatch.errors import UsageError
from reconwatch.sensor.host import DEFAULT_AGENT_ID_FILE, load_agent_id, this_host
from reconwatch.sensor.outputs import FileSink, HttpSink, Sink, StreamSink
from reconwatch.sensor.service import ANSWER_SECONDS

DEFAULT_SPOOL = Path("/var/lib/reconwatch/spool")
DEFAULT_NICE = -10


class Backend(StrEnum):
    ebpf = "ebpf"
    auditd = "auditd"


class Tracer(StrEnum):
    auto = "auto"
    core = "core"
    bpftrace = "bpftrace"


def _check_one_output(output: Path | None, stdout: bool, url: str | None) -> None:
    chosen = [
        flag for flag, on in (("--output", output), ("--stdout", stdout), ("--url", url)) if on
    ]
    if len(chosen) != 1:
        raise UsageError("choose exactly one output: --output FILE, --stdout or --url URL")
    if url is not None and not url.startswith(("http://", "https://")):
        raise UsageError(f"--url must be an http(s) URL ending in /_bulk, got {url!r}")


def _sink(
    output: Path | None,
    stdout: bool,
    url: str | None,
    *,
    max_bytes: int,
    keep: int,
    spool: Path,
    batch_size: int,
    headers: list[str],
) -> Sink:
    chosen = [
        flag for flag, on in (("--output", output), ("--stdout", stdout), ("--url", url)) if on
    ]
    if len(chosen) != 1:
        raise UsageError("choose exactly one output: --output FILE, --stdout or --url URL")
    if output is not None:
        return FileSink(output, max_bytes=max_bytes, keep=keep)
    if url is not None:
        return HttpSink(url, spool, batch_size=batch_size, headers=_headers(headers))
    return StreamSink()


def _headers(values: list[str]) -> dict[str, str]:
    headers: dict[str, str] = {}
    for value in values:
        name, sep, content = value.partition(":")
        if not sep or not name.strip():
            raise UsageError(f"--header must look like 'Name: value', got {value!r}")
        headers[name.strip()] = content.strip()
    return headers


def register(app: typer.Typer) -> None:
    @app.command("sensor")
    def sensor_cmd(
        output: Annotated[
            Path | None, typer.Option("--output", "-o", help="NDJSON file, rotated by size.")
        ] = None,
        stdout: Annotated[bool, typer.Option("--stdout", help="Write NDJSON to stdout.")] = False,
        url: Annotated[
            str | None,
            typer.Option("--url", help="POST batches to this Elasticsearch `_bulk` URL."),
        ] = None,
        backend: Annotated[
            Backend, typer.Option("--backend", help="ebpf or auditd.")
        ] = Backend.ebpf,
        tracer: Annotated[
            Tracer,
            typer.Option(
                "--tracer",
                envvar="RECONWATCH_SENSOR_TRACER",
                help="ebpf backend: core (reconwatch's own eBPF collector, built for this kernel "
                "with clang/libbpf/bpftool), bpftrace, or auto (core, else bpftrace, saying why).",
            ),
        ] = Tracer.auto,
        answer_seconds: Annotated[
            int,
            typer.Option(
                "--answer-seconds",
                envvar="RECONWATCH_ANSWER_SECONDS",
                min=1,
                max=3600,
                help="core tracer: how long a raw or packet probe waits for its answer (SYN-ACK, "
                "RST, ICMP error, reply); an answer is matched within one to two such periods.",
            ),
        ] = ANSWER_SECONDS,
        agent_id_file: Annotated[
            Path, typer.Option("--agent-id-file", help="Where the persisted agent.id lives.")
        ] = DEFAULT_AGENT_ID_FILE,
        max_bytes: Annotated[
            int, typer.Option("--max-bytes", help="Rotate the --output file at this size.")
        ] = 100 * 1024 * 1024,
        keep: Annotated[int, typer.Option("--keep", help="Rotated files to keep.")] = 5,
        spool: Annotated[
            Path, typer.Option("--spool", help="On-disk buffer for --url while it is down.")
        ] = DEFAULT_SPOOL,
        batch_size: Annotated[
            int, typer.Option("--batch-size", help="Documents per `_bulk` request.")
        ] = 1000,
        header: Annotated[
            list[str] | None,
            typer.Option("--header", help="Extra HTTP header for --url, 'Name: value'."),
        ] = None,
        audit_log: Annotated[
            Path | None,
            typer.Option(
                "--audit-log",
                help="auditd backend: follow this log when auditd is running "
                "(default /var/log/audit/audit.log); otherwise the sensor reads the kernel directly.",
            ),
        ] = None,
        nice: Annotated[
            int,
            typer.Option(
                "--nice",
                help="Scheduling priority of the sensor and its tracer (-20..19); below 0 keeps "
                "a busy host from starving it into dropping events.",
            ),
        ] = DEFAULT_NICE,
    ) -> None:
        """Record each connection attempt and its process as Elastic Defend network events (root)."""
        from reconwatch.sensor.runner import run
        from reconwatch.sensor.service import build_collector

        if max_bytes <= 0 or batch_size <= 0 or keep < 0:
            raise UsageError("--max-bytes and --batch-size must be positive, --keep not negative")
        if not -20 <= nice <= 19:
            raise UsageError(f"--nice must be between -20 and 19, got {nice}")
        _check_one_output(output, stdout, url)
        collector = build_collector(
            backend.value, audit_log=audit_log, tracer=tracer.value, answer_seconds=answer_seconds
        )
        host = this_host(load_agent_id(agent_id_file))
        sink = _sink(
            output,
            stdout,
            url,
            max_bytes=max_bytes,
            keep=keep,
            spool=spool,
            batch_size=batch_size,
            headers=header or [],
        )
        run(collector, sink, host, nice=nice)
