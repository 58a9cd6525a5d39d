"""The sensor loop: a collector's Connections -> ECS documents -> a sink, with a clean stop on signals."""

from __future__ import annotations

import os
import resource
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Protocol

from reconwatch.ecs.host import HostInfo
from reconwatch.ecs.network import Connection, EcsEncoder
from reconwatch.sensor.outputs import Sink


class Collector(Protocol):
    def start(self) -> None: ...

    def events(self) -> Iterator[Connection]: ...

    def stop(self) -> None: ...

    def summary(self) -> str: ...


class _Flusher:
    """Flushes the sink every interval so a quiet host still gets its events written."""

    def __init__(self, sink: Sink, lock: threading.Lock, interval: float = 1.0) -> None:
        self.sink, self.lock, self.interval = sink, lock, interval
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, name="flusher", daemon=True)

    def _run(self) -> None:
        while not self.done.wait(self.interval):
            with self.lock:
                self.sink.flush()


def run(
    collector: Collector,
    sink: Sink,
    host: HostInfo,
    *,
    log: Callable[[str], None] = lambda text: print(text, file=sys.stderr, flush=True),
    ready: Callable[[], None] | None = None,
    nice: int = 0,
) -> int:
    """Capture until SIGINT/SIGTERM, then drain the collector and flush the sink; returns events."""
    raise_priority(nice, log)
    lock = threading.Lock()
    stopping = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        if not stopping.is_set():
            stopping.set()
            log(f"{signal.Signals(signum).name}: stopping, flushing events")
        collector.stop()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    count = unencodable = 0
    flusher = _Flusher(sink, lock)
    encoder = EcsEncoder(host)
    try:
        collector.start()
        log(f"sensor running (agent.id {host.agent_id}); SIGINT or SIGTERM stops it")
        if ready is not None:
            ready()
        flusher.thread.start()
        for conn in collector.events():
            try:
                # to the millisecond, all event.ingested shows: the encoder formats it once per ms
                data = encoder.encode(conn, int(time.time() * 1000) / 1000)
            except (ValueError, TypeError) as exc:
                # one event that cannot be encoded must not end the capture of all later ones
                unencodable += 1
                log(f"event of pid {conn.pid} not written: {type(exc).__name__}: {exc}")
                continue
            with lock:
                sink.write_encoded(data)
            count += 1
    finally:
        flusher.done.set()
        collector.stop()
        with lock:
            sink.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    log(collector.summary())
    if unencodable:
        log(f"{unencodable} events could not be encoded and were not written")
    log(sink.report())
    log(cpu_report())
    return count


def raise_priority(nice: int, log: Callable[[str], None]) -> None:
    """Renice this process (and so the tracer it starts) to `nice`.

    The tracer's buffers overflow when a busy host leaves the sensor too little CPU; measured on
    a loaded 2-core machine, nice -10 removed all loss that nice 0 showed at the same rate.
    """
    if nice == 0:
        return
    try:
        os.setpriority(os.PRIO_PROCESS, 0, nice)
    except OSError as exc:
        log(f"could not set scheduling priority {nice}: {exc.strerror}; continuing")


def cpu_report() -> str:
    """CPU spent by this process and its reaped children (bpftrace, auditctl), for benchmarks."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (
        f"cpu: sensor {own.ru_utime + own.ru_stime:.2f}s, "
        f"tracer {kids.ru_utime + kids.ru_stime:.2f}s (user+system)"
    )
