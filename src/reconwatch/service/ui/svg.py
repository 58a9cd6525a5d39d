"""Evidence pictures drawn on the server as SVG: address maps, attempts per minute, top ports."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from datetime import datetime
from html import escape
from typing import Any

from reconwatch.ecs.network import is_internal
from reconwatch.plan.values import format_datetime

CELL = 9  # px per address in a /24's 16x16 grid


def address_map(cidr: str, bitmap: str, internal: bool) -> str:
    """A /24 as a 16x16 grid of its 256 addresses (row = high nibble of the last octet), the
    probed ones filled; titled for screen readers with the block and how many were probed."""
    bits = int(bitmap, 16) if bitmap else 0
    probed = bin(bits).count("1")
    side = 16 * CELL
    cells: list[str] = []
    for i in range(256):
        x, y = (i % 16) * CELL, (i // 16) * CELL
        hit = bits >> i & 1
        cls = "hit" if hit else "miss"
        cells.append(
            f'<rect class="{cls}" x="{x}" y="{y}" width="{CELL - 1}" height="{CELL - 1}"/>'
        )
    kind = "internal" if internal else "external"
    title = f"{cidr}: {probed} of 256 addresses probed ({kind})"
    return (
        f'<svg class="addrmap {kind}" role="img" aria-label="{escape(title)}" '
        f'width="{side}" height="{side}" viewBox="0 0 {side} {side}">'
        f"<title>{escape(title)}</title>{''.join(cells)}</svg>"
    )


def is_internal_block(cidr: str) -> bool:
    """Internal as the evidence counts it (ECS network.direction's internal space)."""
    return is_internal(str(ipaddress.ip_network(cidr, strict=False).network_address))


def per_minute(
    by_minute: Sequence[Mapping[str, Any]],
    window: tuple[datetime | None, datetime | None],
    crossing: datetime | None,
) -> str:
    """Attempts per minute as bars over the rule's run window (shaded) with the crossing point
    (the minute the rule's condition was first met) as a marked line."""
    from reconwatch.plan.values import parse_datetime

    points = [(parse_datetime(str(m["minute"])), int(m["attempts"])) for m in by_minute]
    if not points:
        return '<p class="muted">No timed events.</p>'
    times = [t for t, _ in points] + [t for t in window if t is not None]
    if crossing is not None:
        times.append(crossing)
    lo, hi = min(times), max(times)
    span = max((hi - lo).total_seconds(), 60.0)
    width, height, pad = 560, 160, 28
    peak = max(n for _, n in points)

    def x(t: datetime) -> float:
        return pad + (t - lo).total_seconds() / span * (width - 2 * pad)

    bar = max(2.0, 60 / span * (width - 2 * pad) - 1)
    parts: list[str] = []
    start, end = window
    if start is not None and end is not None:
        parts.append(
            f'<rect class="window" x="{x(start):.1f}" y="4" width="{max(x(end) - x(start), 1):.1f}" '
            f'height="{height - pad - 4}"><title>rule window {format_datetime(start)} to '
            f"{format_datetime(end)}</title></rect>"
        )
    for t, n in points:
        h = n / peak * (height - pad - 10)
        parts.append(
            f'<rect class="bar" x="{x(t):.1f}" y="{height - pad - h:.1f}" width="{bar:.1f}" '
            f'height="{h:.1f}"><title>{format_datetime(t)}: {n} attempts</title></rect>'
        )
    if crossing is not None:
        cx = x(crossing)
        # Left of the line when the label would run past the chart's right edge.
        right = cx > width / 2
        side = f'x="{cx - 3:.1f}" text-anchor="end"' if right else f'x="{cx + 3:.1f}"'
        parts.append(
            f'<line class="crossing" x1="{cx:.1f}" x2="{cx:.1f}" y1="4" y2="{height - pad}"/>'
            f'<text class="crossing-label" {side} y="14">crossed '
            f"{escape(format_datetime(crossing)[11:19])}</text>"
        )
    parts.append(
        f'<text x="{pad}" y="{height - 8}">{escape(format_datetime(lo)[:16])}</text>'
        f'<text x="{width - pad}" y="{height - 8}" text-anchor="end">'
        f"{escape(format_datetime(hi)[:16])}</text>"
        f'<text x="2" y="14">{peak}/min</text>'
    )
    label = f"attempts per minute, peak {peak}" + (
        f", rule condition met at {format_datetime(crossing)}" if crossing else ""
    )
    return (
        f'<svg class="chart" role="img" aria-label="{escape(label)}" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}"><title>{escape(label)}</title>'
        f"{''.join(parts)}</svg>"
    )


def ports(top: Sequence[Mapping[str, Any]], distinct: int) -> str:
    """Top destination ports as horizontal bars."""
    if not top:
        return '<p class="muted">No destination ports.</p>'
    if any("events" not in p for p in top):  # a real-time alert's: the ports, no counts kept
        listed = ", ".join(str(int(p["port"])) for p in top)
        return f'<p class="ports-list">Ports (lowest first, counts not kept): {escape(listed)}</p>'
    most = max(int(p["events"]) for p in top)
    row, width = 18, 420
    parts = []
    for i, p in enumerate(top):
        w = int(p["events"]) / most * (width - 120)
        y = i * row
        parts.append(
            f'<text x="0" y="{y + 13}">{int(p["port"])}</text>'
            f'<rect class="bar" x="60" y="{y + 3}" width="{w:.1f}" height="{row - 5}"/>'
            f'<text x="{66 + w:.1f}" y="{y + 13}">{int(p["events"])}</text>'
        )
    label = f"top destination ports ({distinct} distinct)"
    h = row * len(top)
    return (
        f'<svg class="ports" role="img" aria-label="{escape(label)}" width="{width}" height="{h}" '
        f'viewBox="0 0 {width} {h}"><title>{escape(label)}</title>{"".join(parts)}</svg>'
    )
