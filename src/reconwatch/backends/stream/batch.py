"""A STATS query run once over NDJSON lines with the stream's compiled scan, all or nothing: None hands it back to the batch executor."""

from __future__ import annotations

import codecs
import gc
from collections.abc import Sequence
from datetime import UTC, datetime
from itertools import compress, islice, repeat
from operator import ge, itemgetter
from typing import Any

from reconwatch.backends.stream.cells import cell_value
from reconwatch.backends.stream.fastpath import FastPath, eligible_columns
from reconwatch.backends.stream.lines import COMPILED, split_lines
from reconwatch.backends.stream.split import StreamPlan, WindowSpec, split_plan
from reconwatch.backends.stream.state import LastSeen, StreamAggSpec, TimeCounter
from reconwatch.backends.stream.window import RealertPolicy, StreamMatch, WindowState
from reconwatch.errors import UnsupportedFeatureError
from reconwatch.evaluate import EvalContext, execute
from reconwatch.plan import nodes as p
from reconwatch.plan import values as v
from reconwatch.plan.catalog import Result
from reconwatch.types import DataType as T

# The time field a plan without a time filter is scanned with: it decides nothing then, and an
# event spelling it otherwise only sends the query back to the batch executor.
_NO_WINDOW = WindowSpec(86_400_000, False, ("@timestamp",), "batch")
# The oldest time any executor holds (year 1): a window starting before it is not scanned.
_MIN_MS = v.datetime_to_millis(datetime(1, 1, 1, tzinfo=UTC))
_FIRST = itemgetter(0)
# The compiled block test (_scan.c): one pass where bytes.find twice and isascii take three.
_block_bytes = getattr(COMPILED, "block_bytes", None)
_CR_OR_US, _NONASCII = 1, 2


class Declined(Exception):
    """The scan met something the batch executor may answer differently: run it there."""


def _general(_line: bytes | str, _index: int, _errors: list[tuple[int, str]]) -> list[StreamMatch]:
    raise Declined  # never reached: a line the scan does not take declines the whole run


class StatsScan:
    """One STATS query over every line of its inputs, with the stream's compiled scan.

    The scan takes a line only when it is sure of every field it reads (strict JSON, single
    values, no dotted spelling, integers in range, see fastpath.FastPath); `checks` are fields
    the query does not read that are validated anyway (the batch reader's checks: an event
    with an integer ECS field it cannot take is dropped and reported there). Anything else
    (a line the scan stops at, a time it cannot convert, an address that is not one) raises
    Declined, and the caller runs the query on the batch executor from the start, so answers,
    warnings and bad-event reports are that executor's exactly.
    """

    def __init__(
        self, plan: p.Plan, checks: Sequence[tuple[str, T]], *, compiled: bool = True
    ) -> None:
        split = _split(plan)
        self.split = split
        self.plan = plan
        self.window = split.window
        window = split.window or _NO_WINDOW
        ctx = EvalContext(source=plan.query)
        self.ctx = ctx
        self.state = WindowState(
            split, window, ctx, lateness_ms=window.length_ms, policy=RealertPolicy()
        )
        fields = [(c.name, c.type) for c in split.source.fields]
        columns = eligible_columns(split, self.state.specs, fields, split.source.metadata)
        if columns is None:
            raise Declined
        read = {n for n, _ in fields}
        extra = [(n, t) for n, t in checks if n not in read and n not in window.time_fields]
        if any(t not in (T.LONG, T.INTEGER) for _, t in extra):
            raise Declined  # a double or boolean the scan has no leaf type for
        # A checked integer field is read as a long leaf (a JSON integer in range, one-value
        # array or null; anything else stops the scan); nothing reads its value.
        typed = [*fields, *((n, T.LONG) for n, _ in extra)]
        self.fast = FastPath(
            self.state, split, typed, ctx, _general, [*columns, *(n for n, _ in extra)]
        )
        if self.route_ip_columns() and self.fast.equalities:
            # The executor checks a filtered field's addresses in every event; the scan looks
            # at the WHERE's other columns only in events that pass its equality tests.
            raise Declined
        if compiled and not self.fast.native:
            raise Declined  # the Python twin is slower than the executor: only the C scan pays
        self.types = dict(fields)
        # Per group key: rows counted, and per distinct column its keys (-> value for IPs).
        self.counts: dict[tuple[object, ...], int] = {}
        self.distinct: dict[tuple[object, ...], list[dict[Any, object]]] = {}
        self.ip_cells = [self.types[c] is T.IP for c in self.fast.cells]
        self.route_ips = [i for i, c in enumerate(self.fast.route_columns) if self.types[c] is T.IP]
        self.memo: dict[Any, Any] = {}  # the scan's WHERE answers and group keys by lookup
        self.checked = 0  # memo entries whose addresses were checked
        self.start: int | None = None

    def route_ip_columns(self) -> list[str]:
        types = self.split.source.fields
        ips = {c.name for c in types if c.type is T.IP}
        return [c for c in self.fast.route_columns if c in ips]

    def at(self, now: datetime) -> None:
        """The query time: the window's oldest event time from it (at DuckDB's millisecond)."""
        if self.window is None:
            return
        end = v.datetime_to_millis(v.to_utc_millis_precision(now))
        self.start = self.window.start_ms(end)
        if self.start < _MIN_MS:
            raise Declined  # the bound itself is out of range: the executor warns for it

    def feed_block(self, data: bytes | bytearray, end: int) -> None:
        """Every line of data[:end] (whole lines, each ending with a newline), or Declined.
        The batch reader sends a file with a CR, a 0x1f byte or bytes that are not UTF-8 to
        the Python reader, which decides each line: so does this."""
        if _block_bytes is not None:
            found = _block_bytes(data, end)
            odd, ascii = bool(found & _CR_OR_US), not found & _NONASCII
        else:
            odd = data.find(b"\r", 0, end) >= 0 or data.find(b"\x1f", 0, end) >= 0
            ascii = data.isascii()
        if odd or (not ascii and not _utf8(memoryview(data)[:end])):
            raise Declined
        self.feed(split_lines(data, end))

    def feed(self, lines: Sequence[bytes]) -> None:
        """Every line of one block, or Declined."""
        # As in FastPath.run: a block allocates a row tuple per kept line and a time per line,
        # all freed by reference counting at its end, and the collector walking them every
        # few hundred lines cost ~5% of the route's CPU (perf, 500k events). It runs once after
        # the block instead; nothing the scan builds holds a reference cycle.
        collecting = gc.isenabled()
        gc.disable()
        try:
            self._feed(lines)
        finally:
            if collecting:
                gc.enable()

    def _feed(self, lines: Sequence[bytes]) -> None:
        pending: dict[tuple[object, ...], list[tuple[Any, ...]]] = {}
        texts: list[object] = []
        taken = self.fast.scan(lines, pending, self.memo, texts)
        if taken < len(lines):
            raise Declined
        self._check_routes()
        if self.window is None:
            for key, rows in pending.items():  # in the order of their first rows
                self._add(key, rows)
            return
        assert self.start is not None
        inside = list(map(ge, self._times(texts), repeat(self.start)))
        if not any(inside):
            return
        every = all(inside)
        kept: list[tuple[int, tuple[object, ...], list[tuple[Any, ...]]]] = []
        for key, rows in pending.items():
            if not every:
                rows = list(compress(rows, map(inside.__getitem__, map(_FIRST, rows))))
                if not rows:
                    continue
            kept.append((rows[0][0], key, rows))
        # Groups in the order of their first rows the filters keep: the executor's STATS
        # output order (first seen, a single key's null group first) when no SORT follows.
        kept.sort(key=_FIRST)
        for _first, key, rows in kept:
            self._add(key, rows)

    def _times(self, texts: list[object]) -> list[int]:
        """Epoch millis per line; a line without a time gets one before any window (its
        filter is null: dropped, as the executor drops it)."""
        if set(map(type, texts)) <= {int}:
            return texts  # type: ignore[return-value]
        out: list[int] = []
        for text in texts:
            if text is None:
                out.append(_MIN_MS - 1)
                continue
            got = text if type(text) is int else self.fast.time_millis(text)
            if got is None:
                raise Declined  # another spelling: the executor parses (or rejects) it
            out.append(got)
        return out

    def _check_routes(self) -> None:
        """An IP the WHERE or BY reads that does not convert is a bad event for the executor."""
        if not self.route_ips:
            return
        single = len(self.fast.route_columns) == 1
        new = list(islice(self.memo, self.checked, None))  # the memo only grows, in order
        self.checked += len(new)
        for lookup in new:
            combo = (lookup,) if single else lookup
            for i in self.route_ips:
                raw = combo[i]
                if raw is not None and cell_value(_scalar(raw), T.IP) is None:
                    raise Declined

    def _add(self, key: tuple[object, ...], rows: list[tuple[Any, ...]]) -> None:
        self.counts[key] = self.counts.get(key, 0) + len(rows)
        if not self.fast.cells:
            return
        held = self.distinct.get(key)
        if held is None:
            held = self.distinct[key] = [{} for _ in self.fast.cells]
        columns = list(zip(*rows, strict=True))
        for index, (ip, seen) in enumerate(zip(self.ip_cells, held, strict=True)):
            raw = set(columns[1 + index])
            raw.discard(None)
            if ip:
                for x in raw:
                    value, order = self.fast.ip_value(x)
                    if value is None:
                        raise Declined  # not an address: a bad event for the executor
                    seen[order] = value
            elif tuple in set(map(type, raw)):
                seen.update((x, x) for x in map(_scalar, raw))
            else:
                seen.update(zip(raw, raw, strict=True))

    def partial(self) -> tuple[Any, Any]:
        """What the lines fed so far gave (picklable), for `merge` in another process."""
        return self.counts, self.distinct

    def merge(self, partial: tuple[Any, Any]) -> None:
        """Add the partial result of lines that come after every line fed here: counts add,
        distinct values unite, groups first seen there come after those seen here."""
        counts, distinct = partial
        for key, n in counts.items():
            self.counts[key] = self.counts.get(key, 0) + n
        for key, columns in distinct.items():
            held = self.distinct.get(key)
            if held is None:
                self.distinct[key] = columns
                continue
            for mine, theirs in zip(held, columns, strict=True):
                mine.update(theirs)

    def result(self, now: datetime) -> Result:
        """The STATS rows, then the steps after STATS by the interpreter; Declined if they
        warn (the executor then words and orders its own warnings)."""
        specs = self.state.specs
        cells = self.fast.cells
        rows = []
        order = list(self.counts)
        if len(self.state.keys) == 1 and (None,) in self.counts:
            order.remove((None,))
            order.insert(0, (None,))
        for key in order:
            n = self.counts[key]
            held = self.distinct.get(key, [])
            row: dict[str, object] = {}
            for name, spec in zip(self.state.agg_names, specs, strict=True):
                row[name] = spec.read(_state(spec, n, held, cells))
            for (name, _fn, _type), value in zip(self.state.keys, key, strict=True):
                row[name] = value
            rows.append(row)
        if not rows and not self.state.keys:
            rows = [self.state.group_row(None)]
        cols = self.split.aggregate.columns  # type: ignore[union-attr]
        source = p.Source((), (), cols, cols)
        post = p.Plan(source, self.split.post, self.plan.query)
        if self.ctx.warnings.as_list():
            raise Declined  # a WHERE term warned: the executor words and counts its warnings
        got = execute(post, rows, now)
        if got.warnings:
            raise Declined
        return Result(got.columns, got.rows, list(self.plan.warnings))


def _state(
    spec: StreamAggSpec, n: int, held: list[dict[Any, object]], cells: list[str]
) -> TimeCounter | LastSeen:
    """An aggregate's state as the stream's reader reads it (no window: times are not kept)."""
    if spec.row_count:
        counter = TimeCounter()
        counter.n = n
        return counter
    assert spec.column is not None
    seen = held[cells.index(spec.column)] if held else {}
    state = LastSeen(spec.ip_like)
    state.last = dict.fromkeys(seen, 0)
    if spec.ip_like:
        state.values = dict(seen)
    return state


def _utf8(data: memoryview) -> bool:
    try:
        codecs.utf_8_decode(data, "strict", True)
    except UnicodeDecodeError:
        return False
    return True


def _scalar(value: object) -> object:
    return value[0] if type(value) is tuple else value


def _split(plan: p.Plan) -> StreamPlan:
    """The plan cut as the stream cuts it, when its whole answer can come from one scan: a
    FROM without METADATA, WHERE and KEEP before one STATS, and no now() but the time filter's
    `ts > now() - L` (`ts <= now()` and others bound what the stream's window does not)."""
    if not isinstance(plan.source, p.Source) or plan.source.metadata:
        raise Declined
    try:
        split = split_plan(plan)
    except UnsupportedFeatureError:
        raise Declined from None
    if split.aggregate is None or any(isinstance(s, p.MvExpand | p.Eval) for s in split.pre):
        raise Declined
    # Comparisons of single values never warn, so the executor pushes such a WHERE into its
    # reader and converts the fields it does not filter on only for the events it keeps, as
    # the scan does; a function that may warn row by row changes that (duckdb/compile.py).
    if not all(_plain(s.condition) for s in split.pre if isinstance(s, p.Filter)):
        raise Declined
    nows = sum(_nows(s) for s in plan.steps if isinstance(s, p.Filter))
    if nows != (1 if split.window is not None else 0):
        raise Declined
    return split


_PLAIN_CALLS = frozenset(
    {"and", "or", "not", "eq", "neq", "lt", "lte", "gt", "gte", "in", "is_null", "is_not_null"}
)


def _plain(expr: p.Expr) -> bool:
    """Whether a condition is only comparisons, IN and null tests of columns and constants."""
    if isinstance(expr, p.Call):
        return expr.fn in _PLAIN_CALLS and all(_plain(a) for a in expr.args)
    return isinstance(expr, p.Ref | p.Const)


def _nows(step: p.Filter) -> int:
    count = 0
    stack: list[p.Expr] = [step.condition]
    while stack:
        expr = stack.pop()
        if isinstance(expr, p.Call):
            count += expr.fn == "now"
            stack.extend(expr.args)
    return count
