"""A query's resource limits (DuckDB's memory, a time budget) that every executor enforces."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field

from reconwatch.errors import QueryMemoryError, QueryTimeoutError, UsageError

# DuckDB's own default is 80% of the host's memory: one rule could take most of a shared host.
DEFAULT_MEMORY = "2GB"
# Kibana's default timeout of one rule run (xpack.alerting.rules.run.timeout, 5m): the budget
# of a rule run's queries in detect, watch and serve unless --timeout says otherwise.
RULE_RUN_SECONDS = 300.0
_SIZE = re.compile(r"\s*([0-9]+(?:\.[0-9]+)?)\s*(B|KB|KIB|MB|MIB|GB|GIB|TB|TIB)?\s*", re.I)


@dataclass(frozen=True)
class QueryLimits:
    """`memory`: DuckDB's memory_limit for the query's connection (e.g. "2GB"); `seconds`: the
    time budget of one query run (None: none); `clock`: what measures it (monotonic seconds,
    injected by tests)."""

    memory: str = DEFAULT_MEMORY
    seconds: float | None = None
    clock: Callable[[], float] = field(default=time.monotonic, compare=False)

    def deadline(self) -> Deadline:
        """A budget that starts now."""
        if self.seconds is None:
            return Deadline(None, self.clock, None)
        return Deadline(self.clock() + self.seconds, self.clock, self.seconds)


@dataclass(frozen=True)
class Deadline:
    """When a running query is out of time; `check` raises once it is."""

    at: float | None
    clock: Callable[[], float]
    seconds: float | None

    def expired(self) -> bool:
        return self.at is not None and self.clock() >= self.at

    def check(self) -> None:
        if self.expired():
            raise over_budget(self.seconds)


def over_budget(seconds: float | None) -> QueryTimeoutError:
    return QueryTimeoutError(
        f"query cancelled: it ran past its time budget of {seconds:g} s (--timeout)"
    )


def out_of_memory(memory: str) -> QueryMemoryError:
    return QueryMemoryError(
        f"query stopped: it needs more than its memory limit of {memory} (--memory-limit)"
    )


def parse_memory(text: str) -> str:
    """A memory size as DuckDB's memory_limit takes it ("512MB", "2GB", "1.5GiB"); a
    UsageError for anything else."""
    match = _SIZE.fullmatch(text)
    if match is None or float(match.group(1)) <= 0:
        msg = f"--memory-limit {text}: expected a size such as 512MB or 2GB"
        raise UsageError(msg)
    return f"{match.group(1)}{(match.group(2) or 'B').upper()}"


def parse_seconds(value: float | None) -> float | None:
    """A time budget in seconds: None or 0 for none, a UsageError below 0."""
    if value is None or value == 0:
        return None
    if value < 0:
        msg = f"--timeout {value:g}: expected a number of seconds above 0 (0: no budget)"
        raise UsageError(msg)
    return value


_DEFAULT = QueryLimits()
_CURRENT: ContextVar[QueryLimits | None] = ContextVar("reconwatch_query_limits", default=None)


def current() -> QueryLimits:
    """The limits of the queries run in this context (the defaults unless `limited` set them)."""
    return _CURRENT.get() or _DEFAULT


@contextmanager
def limited(limits: QueryLimits) -> Iterator[None]:
    """Run the queries inside the block under `limits`."""
    token = _CURRENT.set(limits)
    try:
        yield
    finally:
        _CURRENT.reset(token)
