"""Per-rule settings (enabled, real time) and each alert's investigation-guide checklist."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import duckdb

from reconwatch.plan.values import format_datetime
from reconwatch.store.events import naive_utc


@dataclass(frozen=True, slots=True)
class RuleSetting:
    """What an operator set for a rule; None: the rule's default."""

    enabled: bool | None = None
    realtime: bool | None = None


def rule_settings(cur: duckdb.DuckDBPyConnection) -> dict[str, RuleSetting]:
    rows = cur.execute("SELECT rule_id, enabled, realtime FROM rule_settings").fetchall()
    return {r[0]: RuleSetting(r[1], r[2]) for r in rows}


def set_rule(
    cur: duckdb.DuckDBPyConnection, rule_id: str, enabled: bool | None, realtime: bool | None
) -> RuleSetting:
    """Change what is given (None keeps the stored value); the rule's settings after."""
    old = rule_settings(cur).get(rule_id, RuleSetting())
    new = RuleSetting(
        old.enabled if enabled is None else enabled, old.realtime if realtime is None else realtime
    )
    cur.execute(
        "INSERT OR REPLACE INTO rule_settings VALUES (?, ?, ?)",
        [rule_id, new.enabled, new.realtime],
    )
    return new


def guide(cur: duckdb.DuckDBPyConnection, alert_id: str) -> dict[int, dict[str, object]]:
    """The alert's ticked guide steps: step number -> {done, by, at}."""
    rows = cur.execute(
        "SELECT step, done, done_by, done_at FROM guide_steps WHERE alert_id = ? ORDER BY step",
        [alert_id],
    ).fetchall()
    return {
        int(r[0]): {"done": bool(r[1]), "by": r[2], "at": format_datetime(r[3].replace(tzinfo=UTC))}
        for r in rows
    }


def set_step(
    cur: duckdb.DuckDBPyConnection, alert_id: str, step: int, done: bool, by: str, at: datetime
) -> None:
    cur.execute(
        "INSERT OR REPLACE INTO guide_steps VALUES (?, ?, ?, ?, ?)",
        [alert_id, step, done, by, naive_utc(at)],
    )
