"""Query-string parameters of the alert list (the API's and the queue page's), checked."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from reconwatch.errors import UsageError
from reconwatch.plan import values
from reconwatch.store.alerts import STATUSES, AlertFilter


def alert_filter(q: Mapping[str, str]) -> AlertFilter:
    """The alert filter of a query string (API and queue page); UsageError naming a bad one."""
    status = q.get("status") or None
    if status is not None and status not in STATUSES:
        raise UsageError(f"[status] must be one of {', '.join(STATUSES)}")
    order = q.get("order", "asc")
    if order not in ("asc", "desc"):
        raise UsageError("[order] must be asc or desc")
    return AlertFilter(
        rule_id=q.get("rule_id") or None,
        status=status,
        since=time_param(q.get("since") or None, "since"),
        until=time_param(q.get("until") or None, "until"),
        size=int_param(q.get("size") or None, "size", 100, 10_000),
        offset=int_param(q.get("from") or None, "from", 0, 10**9),
        severity=q.get("severity") or None,
        host=q.get("host") or None,
        executable=q.get("executable") or None,
        newest_first=order == "desc",
    )


def time_param(raw: str | None, name: str) -> datetime | None:
    if raw is None:
        return None
    try:
        return values.parse_datetime(raw)
    except values.ConversionError as exc:
        raise UsageError(f"[{name}]: {exc}") from None


def int_param(raw: str | None, name: str, default: int, most: int) -> int:
    if raw is None:
        return default
    if not raw.isdigit() or int(raw) > most:
        raise UsageError(f"[{name}] must be a whole number from 0 to {most}, got [{raw}]")
    return int(raw)
