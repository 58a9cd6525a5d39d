"""Streaming executor on hand-built plans: window from the time filter, expiry, lateness, re-alerts, refusals."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reconwatch.backends.stream.executor import RealertPolicy, StreamExecutor
from reconwatch.backends.stream.split import WindowSpec, split_plan
from reconwatch.backends.stream.state import LastSeen, TimeCounter
from reconwatch.errors import UnsupportedFeatureError, UsageError
from reconwatch.plan import nodes as p
from reconwatch.types import DataType as T

T0 = datetime(2025, 7, 16, 9, 0, tzinfo=UTC)
HOUR = p.TemporalAmount(millis=3_600_000)

TS = p.Column("@timestamp", T.DATETIME)
KEY = p.Column("process.executable", T.KEYWORD)
IP = p.Column("destination.ip", T.IP)
FIELDS = (TS, KEY, IP)
AGG_COLS = (p.Column("n", T.LONG), p.Column("ips", T.LONG), KEY)


def _ref(col: p.Column) -> p.Ref:
    return p.Ref(col.name, col.type)


def _now_minus(amount: p.TemporalAmount) -> p.Expr:
    return p.Call(
        "sub", (p.Call("now", (), T.DATETIME), p.Const(amount, T.TIME_DURATION)), T.DATETIME
    )


def _time_filter(op: str = "gt", amount: p.TemporalAmount = HOUR) -> p.Expr:
    return p.Call(op, (_ref(TS), _now_minus(amount)), T.BOOLEAN)


def scan_plan(
    threshold: int = 3, time_filter: p.Expr | None = None, extra: p.Expr | None = None
) -> p.Plan:
    """FROM x | WHERE @timestamp > now() - 1h [and extra] | STATS n = count(), ips =
    count_distinct(destination.ip) BY process.executable | WHERE ips > threshold."""
    source = p.Source(("logs-*",), (), FIELDS, FIELDS)
    cond = time_filter if time_filter is not None else _time_filter()
    if extra is not None:
        cond = p.Call("and", (cond, extra), T.BOOLEAN)
    steps: list[p.Step] = [p.Filter(cond, FIELDS)]
    steps.append(
        p.Aggregate(
            (
                ("n", p.AggCall("count", (), T.LONG, star=True)),
                ("ips", p.AggCall("count_distinct", (_ref(IP),), T.LONG)),
            ),
            (("process.executable", _ref(KEY)),),
            AGG_COLS,
        )
    )
    over = p.Call("gt", (p.Ref("ips", T.LONG), p.Const(threshold, T.INTEGER)), T.BOOLEAN)
    steps.append(p.Filter(over, AGG_COLS))
    steps.append(p.Limit(1000, AGG_COLS))
    return p.Plan(source, tuple(steps))


def event(minutes: float, ip: str, exe: str = "/usr/bin/nmap") -> dict[str, object]:
    ts = (T0 + timedelta(minutes=minutes)).isoformat().replace("+00:00", "Z")
    return {"@timestamp": ts, "process.executable": exe, "destination.ip": ip}


def feed(ex: StreamExecutor, events: list[dict[str, object]]) -> list[dict[str, object]]:
    return [m.row for e in events for m in ex.push(e)]


def test_window_comes_from_the_query_time_filter() -> None:
    split = split_plan(scan_plan())
    assert split.window == WindowSpec(3_600_000, False, ("@timestamp",), "query")
    assert all(not isinstance(s, p.Filter) or "now" not in repr(s.condition) for s in split.pre)
    closed = split_plan(scan_plan(time_filter=_time_filter("gte")))
    assert closed.window is not None and closed.window.closed
    assert closed.window.start_ms(10_000) == 10_000 - 3_600_000


def test_mirrored_time_filter_and_remaining_conditions_kept() -> None:
    mirrored = p.Call("lt", (_now_minus(HOUR), _ref(TS)), T.BOOLEAN)
    extra = p.Call("eq", (_ref(KEY), p.Const("/usr/bin/nmap", T.KEYWORD)), T.BOOLEAN)
    split = split_plan(scan_plan(time_filter=mirrored, extra=extra))
    assert split.window is not None and split.window.length_ms == 3_600_000
    assert len(split.pre) == 1 and isinstance(split.pre[0], p.Filter)
    assert split.pre[0].condition == extra


def test_fires_when_threshold_crossed_and_not_again_while_matching() -> None:
    ex = StreamExecutor(scan_plan(threshold=3))
    fired = feed(ex, [event(i, f"10.0.0.{i}") for i in range(10)])
    assert fired == [{"n": 4, "ips": 4, "process.executable": "/usr/bin/nmap"}]
    assert ex.snapshot().rows == [(10, 10, "/usr/bin/nmap")]


def test_scan_split_across_the_hour_is_seen() -> None:
    # 200 addresses before 10:00 and 200 after: two hourly runs each see 200, the window 400.
    ex = StreamExecutor(scan_plan(threshold=250))
    before = [event(50 + i * 0.05, f"10.0.0.{i}") for i in range(200)]
    after = [event(60 + i * 0.05, f"10.0.1.{i}") for i in range(200)]
    fired = feed(ex, before + after)
    assert len(fired) == 1 and fired[0]["ips"] == 251


def test_old_events_expire_as_the_window_slides() -> None:
    ex = StreamExecutor(scan_plan(threshold=0))
    feed(ex, [event(0, "10.0.0.1"), event(1, "10.0.0.2"), event(30, "10.0.0.3")])
    assert ex.snapshot().rows == [(3, 3, "/usr/bin/nmap")]
    feed(ex, [event(60.5, "10.0.0.4")])  # window (0:00:30, 1:00:30]: minute 0 is out
    assert ex.snapshot().rows == [(3, 3, "/usr/bin/nmap")]
    feed(ex, [event(200, "10.0.0.9", exe="/bin/other")])
    assert ex.snapshot().rows == [(1, 1, "/bin/other")]
    metrics = ex.refresh_metrics()
    assert (metrics.groups, metrics.distinct_entries) == (1, 1)


def test_window_boundary_open_and_closed() -> None:
    open_ = StreamExecutor(scan_plan(threshold=0))
    closed = StreamExecutor(scan_plan(threshold=0, time_filter=_time_filter("gte")))
    for ex in (open_, closed):
        feed(ex, [event(0, "10.0.0.1"), event(60, "10.0.0.2")])
    assert open_.snapshot().rows == [(1, 1, "/usr/bin/nmap")]
    assert closed.snapshot().rows == [(2, 2, "/usr/bin/nmap")]


def test_out_of_order_events_count_and_too_old_ones_are_dropped() -> None:
    ex = StreamExecutor(scan_plan(threshold=0))
    feed(ex, [event(50, "10.0.0.1"), event(10, "10.0.0.2"), event(30, "10.0.0.1")])
    assert ex.snapshot().rows == [(3, 2, "/usr/bin/nmap")]
    feed(ex, [event(-20, "10.0.0.3")])  # older than the window start: can never count
    assert ex.metrics.outside_window == 1
    # Expiring the out-of-order minute-10 row keeps the IP seen again at minute 30.
    feed(ex, [event(75, "10.0.0.4")])
    assert ex.snapshot().rows == [(3, 2, "/usr/bin/nmap")]


def test_allowed_lateness_drops_events_behind_it() -> None:
    ex = StreamExecutor(scan_plan(threshold=0), lateness_ms=5 * 60_000)
    feed(ex, [event(50, "10.0.0.1"), event(47, "10.0.0.2"), event(40, "10.0.0.3")])
    assert ex.metrics.too_late == 1
    assert ex.snapshot().rows == [(2, 2, "/usr/bin/nmap")]


def test_realert_after_the_group_stopped_matching_for_a_window() -> None:
    ex = StreamExecutor(scan_plan(threshold=2))
    first = feed(ex, [event(i, f"10.0.0.{i}") for i in range(4)])
    assert len(first) == 1
    # Two hours of silence: the group expires and is re-armed; a new scan alerts again.
    again = feed(ex, [event(200 + i, f"10.0.1.{i}") for i in range(4)])
    assert len(again) == 1
    # A short gap (the group still matching) does not re-alert.
    assert feed(ex, [event(210, "10.0.2.1")]) == []


def test_realert_when_the_distinct_count_grows_tenfold() -> None:
    policy = RealertPolicy(growth_factor=10)
    ex = StreamExecutor(scan_plan(threshold=2), policy=policy)
    fired = feed(ex, [event(i * 0.01, f"10.0.{i // 250}.{i % 250}") for i in range(40)])
    assert [r["ips"] for r in fired] == [3, 30]


def test_lookback_used_when_the_query_has_no_time_filter() -> None:
    source = p.Source(("logs-*",), (), FIELDS, FIELDS)
    agg = p.Aggregate(
        (("n", p.AggCall("count", (), T.LONG, star=True)),), (), (p.Column("n", T.LONG),)
    )
    plan = p.Plan(source, (agg,))
    with pytest.raises(UsageError):
        StreamExecutor(plan)
    lookback = WindowSpec(10 * 60_000, True, ("event.ingested", "@timestamp"), "lookback")
    ex = StreamExecutor(plan, lookback=lookback)
    feed(
        ex,
        [event(0, "10.0.0.1"), {**event(3, "10.0.0.2"), "event.ingested": "2025-07-16T09:30:00Z"}],
    )
    assert ex.end == T0 + timedelta(minutes=30)
    assert ex.snapshot().rows == [(1,)]
    # STATS without BY answers one row even over nothing, as the batch executor does.
    feed(ex, [event(100, "10.0.0.3")])
    ex.advance(ex.clock.end_ms + 3_600_000)  # type: ignore[operator]
    assert ex.snapshot().rows == [(0,)]


def test_steps_that_cannot_stream_are_refused_by_name() -> None:
    source = p.Source(("logs-*",), (), FIELDS, FIELDS)
    sort = p.Sort((p.SortKey(_ref(TS)),), FIELDS)
    agg = p.Aggregate(
        (("n", p.AggCall("count", (), T.LONG, star=True)),), (), (p.Column("n", T.LONG),)
    )
    with pytest.raises(UnsupportedFeatureError, match="SORT before STATS"):
        split_plan(p.Plan(source, (sort, agg)))
    median = p.Aggregate(
        (("m", p.AggCall("median", (_ref(TS),), T.DOUBLE)),), (), (p.Column("m", T.DOUBLE),)
    )
    with pytest.raises(UnsupportedFeatureError, match="MEDIAN"):
        split_plan(p.Plan(source, (p.Filter(_time_filter(), FIELDS), median)))
    late_now = p.Filter(p.Call("gt", (_ref(TS), p.Call("now", (), T.DATETIME)), T.BOOLEAN), FIELDS)
    with pytest.raises(UnsupportedFeatureError, match="now"):
        split_plan(p.Plan(source, (p.Filter(_time_filter(), FIELDS), late_now, agg)))


def test_last_seen_keeps_a_value_seen_again_and_compacts() -> None:
    state = LastSeen(keep_values=True)
    for ms in range(200):
        state.touch("a", "a", ms)
    state.touch("b", "b", 5)
    assert len(state.queue) <= 3 * state.entries() + 65
    state.expire(150)
    assert set(state.last) == {"a"}
    state.expire(200)
    assert state.entries() == 0


def test_time_counter_out_of_order_and_float_sums() -> None:
    counter = TimeCounter()
    for ms, x in ((10, 0.1), (5, 0.2), (10, 0.3), (7, 1e16), (8, -1e16)):
        counter.add(ms, 1, x)
    assert list(counter.times) == [5, 7, 8, 10]
    assert counter.float_sum() == pytest.approx(0.6)
    counter.expire(8)
    assert counter.n == 3 and counter.float_sum() == pytest.approx(-1e16 + 0.4)


@given(
    st.lists(
        st.tuples(st.sampled_from(["touch", "many", "expire", "read"]), st.integers(0, 40)),
        max_size=120,
    ),
    st.booleans(),
)
def test_last_seen_min_and_max_follow_the_keys_held(
    steps: list[tuple[str, int]], keep_values: bool
) -> None:
    """min/max through the lazy heaps equal min/max of the keys held, whatever entered, left
    and came back in between (keys and times both small, so they collide)."""
    state = LastSeen(keep_values=keep_values)
    clock = 0
    for op, x in steps:
        if op == "touch":
            clock += x % 3
            state.touch(x, f"v{x}", clock)
        elif op == "many":
            clock += 1
            latest = {x: clock, (x * 7) % 41: clock, (x * 13) % 41: clock}
            values = {k: f"v{k}" for k in latest} if keep_values else None
            state.touch_many(dict(latest), values, newer=bool(x % 2))
        elif op == "expire":
            state.expire(clock - x % 5)
        held = set(state.last)
        assert state.extreme(False) == (min(held) if held else None)
        assert state.extreme(True) == (max(held) if held else None)


class _Counted:
    """A key that counts the comparisons made on it."""

    compared = 0

    def __init__(self, n: int) -> None:
        self.n = n

    def __lt__(self, other: _Counted) -> bool:
        _Counted.compared += 1
        return self.n < other.n

    def __hash__(self) -> int:
        return self.n

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Counted) and self.n == other.n


def test_last_seen_min_and_max_do_not_rescan_every_key() -> None:
    """A group judged at every event reads min/max each time: a read after one more key must
    not compare every key held (the slow-scan rule's 24-hour groups held tens of thousands)."""
    state = LastSeen(keep_values=False)
    for ms in range(10_000):
        state.touch(_Counted(ms), None, ms)
    state.expire(1_000)
    assert state.extreme(False).n == 1_000 and state.extreme(True).n == 9_999
    for ms in range(10_000, 10_100):
        _Counted.compared = 0
        state.touch(_Counted(ms), None, ms)
        state.expire(ms - 8_999)
        assert state.extreme(False).n == ms - 8_999
        assert state.extreme(True).n == ms
        assert _Counted.compared < 200  # a scan of the keys held: about 9,000 each


RATIO_QUERY = """
    from logs-endpoint.events.network-*
    | where @timestamp > now() - 10 minutes
    | eval slot = concat(to_string(destination.ip), " ", to_string(date_trunc(2 minutes, @timestamp)))
    | stats n = count(), ips = count_distinct(destination.ip), slots = count_distinct(slot)
      by host.name
    | where ips >= 2 and slots * 4 < ips * 5 and n * 2 >= ips
"""


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 30), st.sampled_from(["h1", "h2"]), st.integers(1, 6)),
        min_size=1,
        max_size=80,
    )
)
def test_linear_count_terms_change_no_alert(events: list[tuple[int, str, int]]) -> None:
    """The integer test of `slots * 4 < ips * 5` before the general threshold: the same
    matches, at the same events, as the general threshold alone."""
    from reconwatch.esql.analyze import compile_query
    from reconwatch.ingest import Dataset
    from reconwatch.plan.documents import flatten
    from reconwatch.plan.values import format_datetime

    docs = [
        {
            "@timestamp": format_datetime(T0 + timedelta(minutes=minute)),
            "host": {"name": host},
            "destination": {"ip": f"10.0.0.{ip}"},
        }
        for minute, host, ip in sorted(events)
    ]
    plan = compile_query(RATIO_QUERY, Dataset.from_documents(docs))
    quick, plain = StreamExecutor(plan), StreamExecutor(plan)
    assert len(quick.state.linear) == 2
    plain.state.linear = []
    for i, doc in enumerate(docs):
        got = [(m.key, m.trigger_ms, m.row) for m in quick.push(flatten(doc))]
        want = [(m.key, m.trigger_ms, m.row) for m in plain.push(flatten(doc))]
        assert got == want, f"event {i}"
        _LINEAR_MATCHES[bool(got)] += 1


_LINEAR_MATCHES = {True: 0, False: 0}


def test_linear_count_terms_check_saw_matches_and_misses() -> None:
    """The example above is only worth something if its streams both fire and do not."""
    test_linear_count_terms_change_no_alert()
    assert _LINEAR_MATCHES[True] > 0 and _LINEAR_MATCHES[False] > 0
