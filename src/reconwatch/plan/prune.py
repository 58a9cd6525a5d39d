"""Catalog columns a plan carries without reading or returning them, and the plan without them."""

from __future__ import annotations

import dataclasses

from reconwatch.plan.nodes import Column, Plan, Source


def unread_columns(plan: Plan) -> frozenset[str]:
    """Source columns the plan neither reads, names in any step, nor returns: in a query without
    KEEP or STATS they are carried to the end, so they are in every step's `columns`."""
    source = plan.source
    if not isinstance(source, Source):
        return frozenset()
    named: set[str] = set()
    for step in plan.steps:
        for f in dataclasses.fields(step):
            if f.name != "columns":
                _collect_strings(getattr(step, f.name), named)
    needed = {c.name for c in (*source.fields, *plan.columns)} | set(source.metadata) | named
    return frozenset(c.name for c in source.columns if c.name not in needed)


def _collect_strings(value: object, out: set[str]) -> None:
    """Every string inside a plan value (names, and constants too: keeping more is harmless)."""
    if isinstance(value, str):
        out.add(value)
    elif isinstance(value, tuple | list):
        for item in value:
            _collect_strings(item, out)
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        for f in dataclasses.fields(value):
            _collect_strings(getattr(value, f.name), out)


def without_columns(plan: Plan, names: frozenset[str]) -> Plan:
    """`plan` with the columns `names` taken out of its source and of every step's columns."""
    if not names:
        return plan

    def kept(columns: tuple[Column, ...]) -> tuple[Column, ...]:
        return tuple(c for c in columns if c.name not in names)

    return dataclasses.replace(
        plan,
        source=dataclasses.replace(plan.source, columns=kept(plan.source.columns)),
        steps=tuple(dataclasses.replace(s, columns=kept(s.columns)) for s in plan.steps),
    )


def pruned(plan: Plan) -> Plan:
    """The plan without the catalog columns it neither reads nor returns (same rows, warnings
    and errors: those columns are only carried along)."""
    return without_columns(plan, unread_columns(plan))
