"""Elasticsearch's evaluation warnings on DuckDB: sites known at compile time, failures recorded by a UDF.

A compiled query calls `rw_warn(site, reasons)` only on rows where evaluation fails (inside a CASE
branch DuckDB evaluates lazily), so rows that do not fail pay only for the test.
"""

from __future__ import annotations

from reconwatch.errors import Span

MV_FAILURE = "java.lang.IllegalArgumentException: single-value function encountered multi-value"
LONG_OVERFLOW = "java.lang.ArithmeticException: long overflow"
DIV_BY_ZERO = "java.lang.ArithmeticException: / by zero"
MAX_RECORDED = 20

# (line, col, source text, what the failed value is taken as: "null", or "false" for a CASE test)
Site = tuple[int, int, str, str]


class WarningSites:
    """The expressions of one query that may fail, numbered for rw_warn (see Site)."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.sites: list[Site] = []

    def site(self, span: Span, result: str = "null") -> int:
        text = span.text(self.source) if self.source and span.end > span.start else ""
        key = (span.line, span.col, text, result)
        if key not in self.sites:
            self.sites.append(key)
        return self.sites.index(key)


class WarningSink:
    """Failures of the running query, per site: up to 20 distinct reasons, in the order seen."""

    def __init__(self) -> None:
        self.sites: tuple[Site, ...] = ()
        self.entries: dict[int, list[str]] = {}

    def start(self, sites: tuple[Site, ...]) -> None:
        self.sites = sites
        self.entries = {}

    def fail(self, site: int | None, reasons: list[str | None] | None) -> None:
        if site is None or not reasons or not 0 <= site < len(self.sites):
            return None
        got = self.entries.setdefault(site, [])
        for reason in reasons:
            if reason is not None and reason not in got and len(got) < MAX_RECORDED:
                got.append(reason)
        return None

    def finish(self) -> list[str]:
        out: list[str] = []
        for site, reasons in self.entries.items():
            line, col, text, result = self.sites[site]
            out.append(
                f"Line {line}:{col}: evaluation of [{text}] failed, treating result as {result}. "
                f"Only first {MAX_RECORDED} failures recorded."
            )
            out.extend(f"Line {line}:{col}: {reason}" for reason in reasons)
        self.entries = {}
        return out
