"""The evidence summary's quick paths (IPv4 as integers, the sample ordered by time) give what the
summary gave before them, byte for byte: the earlier code is kept here as the oracle."""

from __future__ import annotations

import ipaddress
import json
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reconwatch.ecs.network import is_internal
from reconwatch.engine import evidence
from reconwatch.plan.values import format_datetime


def _old_destinations(events_per_ip: Counter[str], *, counted: bool = True) -> dict[str, object]:
    """engine.evidence.destinations before its IPv4 quick path (ipaddress for every address)."""
    blocks: dict[str, Counter[str]] = {}
    for ip, n in events_per_ip.items():
        addr = ipaddress.ip_address(ip)
        prefix = 24 if addr.version == 4 else 64
        blocks.setdefault(str(ipaddress.ip_network(f"{ip}/{prefix}", strict=False)), Counter())[
            ip
        ] += n
    ranked = sorted(blocks.items(), key=lambda kv: (-len(kv[1]), kv[0]))
    internal = [ip for ip in events_per_ip if is_internal(ip)]
    internal_events = sum(events_per_ip[ip] for ip in internal)
    collapsed4 = ipaddress.collapse_addresses(
        ipaddress.IPv4Network(ip) for ip in events_per_ip if ":" not in ip
    )
    collapsed6 = ipaddress.collapse_addresses(
        ipaddress.IPv6Network(ip) for ip in events_per_ip if ":" in ip
    )
    exact = [str(n) for n in collapsed4] + [str(n) for n in collapsed6]
    total = sum(events_per_ip.values())
    counts: list[dict[str, object]] = [
        {"cidr": cidr, "distinct_ips": len(c), "events": sum(c.values())}
        for cidr, c in ranked[: evidence.MAX_BLOCKS]
    ]
    inside: dict[str, object] = {"distinct_ips": len(internal), "events": internal_events}
    outside: dict[str, object] = {
        "distinct_ips": len(events_per_ip) - len(internal),
        "events": total - internal_events,
    }
    if not counted:
        for part in [*counts, inside, outside]:
            del part["events"]
    return {
        "distinct_ips": len(events_per_ip),
        "blocks": counts,
        "probed": {
            cidr: evidence.probed_bitmap(c)
            for cidr, c in ranked[: evidence.MAX_BLOCKS]
            if ":" not in cidr
        },
        "blocks_total": len(blocks),
        "exact_ranges": exact[: evidence.MAX_BLOCKS],
        "exact_ranges_total": len(exact),
        "internal": inside,
        "external": outside,
    }


def _old_spread(events: list[dict[str, object]], times: list[datetime]) -> list[dict[str, object]]:
    def key(e: dict[str, object]) -> str:
        t = e.get("@timestamp")
        return format_datetime(t) if isinstance(t, datetime) else ""

    return evidence.evenly(sorted(events, key=key))


_V4 = st.builds(
    lambda block, last: f"{block}.{last}",
    st.sampled_from(
        [
            "10.0.0",
            "10.0.1",
            "172.16.5",
            "172.32.0",
            "192.168.1",
            "8.8.8",
            "127.0.0",
            "169.254.3",
            "0.0.0",
            "255.255.255",
        ]
    ),
    st.integers(0, 255),
)
_V6 = st.sampled_from(["::1", "fe80::1", "fc00::2", "2001:db8::1", "2001:db8::2", "::ffff:a00:1"])
_IPS = st.dictionaries(st.one_of(_V4, _V4, _V4, _V6), st.integers(1, 5), max_size=60)


@settings(max_examples=200, deadline=None)
@given(_IPS, st.booleans())
def test_destinations_as_before(ips: dict[str, int], counted: bool) -> None:
    per_ip = Counter(ips)
    assert json.dumps(evidence.destinations(per_ip, counted=counted)) == json.dumps(
        _old_destinations(per_ip, counted=counted)
    )


def test_a_whole_block_collapses_as_ipaddress_collapses_it() -> None:
    per_ip = Counter({f"10.1.{i // 256}.{i % 256}": 1 for i in range(3, 700)})
    per_ip.update({"0.0.0.0": 1, "0.0.0.1": 1, "255.255.255.255": 1})
    assert evidence.destinations(per_ip) == _old_destinations(per_ip)


_T0 = datetime(2026, 3, 1, tzinfo=UTC)
_TIMES = st.one_of(
    st.none(),
    st.builds(lambda us: _T0 + timedelta(microseconds=us), st.integers(0, 5_000)),
    st.builds(lambda ms: _T0 + timedelta(milliseconds=ms), st.integers(0, 300_000)),
    st.just(datetime(999, 12, 31, 23, 59, tzinfo=UTC)),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(_TIMES, _IPS.map(lambda d: sorted(d)[:1])), max_size=40))
def test_summary_as_before(rows: list[tuple[datetime | None, list[str]]]) -> None:
    events: list[dict[str, object]] = []
    for i, (t, ips) in enumerate(rows):
        event: dict[str, object] = {"_id": f"e{i}", "destination.port": 20 + i % 3}
        if t is not None:
            event["@timestamp"] = t
        if ips:
            event["destination.ip"] = ips[0]
        events.append(event)
    new = evidence.summarize(events, method="m")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(evidence, "_spread", _old_spread)
        mp.setattr(evidence, "destinations", _old_destinations)
        old = evidence.summarize(events, method="m")
    assert json.dumps(new, default=str) == json.dumps(old, default=str)
