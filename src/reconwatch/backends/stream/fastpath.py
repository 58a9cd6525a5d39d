"""Columnar micro-batches for the stream: raw lines decoded, filtered and grouped in one generated loop, state updated per group per batch."""

from __future__ import annotations

import bisect
import gc
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import accumulate, compress, count, repeat
from operator import add, is_, itemgetter, lt
from typing import Any

import msgspec

from reconwatch.backends.stream.cells import cell_value, ipv4_key, iso_millis
from reconwatch.backends.stream.decode import DecodeNode
from reconwatch.backends.stream.lines import COMPILED, BufferLines
from reconwatch.backends.stream.prefilter import always_true, count_terms, equality, never_true
from reconwatch.backends.stream.split import StreamPlan
from reconwatch.backends.stream.state import Group, LastSeen, StreamAggSpec
from reconwatch.backends.stream.window import StreamMatch, WindowState
from reconwatch.evaluate import EvalContext, compile_expr
from reconwatch.plan import nodes as p
from reconwatch.plan import values as v
from reconwatch.plan.documents import MAX_DEPTH
from reconwatch.types import DataType as T

# The compiled twin of the generated loop, None where the install could not build it.
Scanner: type[Any] | None = None if COMPILED is None else COMPILED.Scanner


def compiled_scan_enabled() -> bool:
    """Whether new fast paths use the compiled scan: it was built, and RECONWATCH_PURE_PYTHON
    (the Python twin, for comparison and debugging) is not set."""
    return Scanner is not None and not os.environ.get("RECONWATCH_PURE_PYTHON")


# Window ends before any event: every first event advances the window.
NO_END = -(1 << 62)
# Lines scanned before the pending rows are applied: bounds the memory a batch holds.
MAX_BATCH = 8192
_CACHE_MAX = 100_000
# Up to this many distinct values, those about to leave are counted exactly (a bound otherwise).
_EXACT_LEAVING = 64
# A group's rows that may change its verdict are halved down to this many before replaying.
_REPLAY_SLICE = 64
_MISSING = object()
_FAST_TYPES = (T.KEYWORD, T.IP, T.LONG)
# Leaves the loop takes: one value or a one-value array; a long as a JSON integer in range.
_TEXT_LEAF: Any = str | tuple[str] | None
_LONG_LEAF: Any = int | tuple[int] | None
_LONG_MIN, _LONG_MAX = -(1 << 63), (1 << 63) - 1
# An ISO time `2025-07-15T00:00:00.351Z` is two lookups done per batch with C-level maps: the
# `...T00:00:00.` prefix (cached as met, filled from a minute cache and the `ss.` table) and the
# `mmmZ` tail (a small table).
_SEC = {f"{i:02d}.": i * 1000 for i in range(60)}
_MS4 = {f"{i:03d}Z": i for i in range(1000)}
_SECOND_PREFIX: Any = itemgetter(slice(0, 20))
_MILLI_PART: Any = itemgetter(slice(20, None))
_ORDER = itemgetter(0, 1, 2)
# Minutes whose second prefixes are filled from a new minute on (60 entries each).
_MINUTES_AHEAD = 60

Fired = list[tuple[int, int, int, StreamMatch]]
# The executor's general path for one line: (line, index, errors) -> matches.
General = Callable[
    [bytes | str, int, list[tuple[int, str]]], list[StreamMatch]
]  # (event index, 0 expiry / 1 add, end, match)


class _Ineligible(Exception):
    """The plan's fields cannot all be read by the generated loop."""


def _leaf_paths(node: DecodeNode) -> list[str]:
    return [*node.leaves.values(), *(f for c in node.children.values() for f in _leaf_paths(c))]


def _refs(expr: p.Expr | None, out: set[str]) -> set[str]:
    if isinstance(expr, p.Ref):
        out.add(expr.name)
    elif isinstance(expr, p.Call):
        for arg in expr.args:
            _refs(arg, out)
    return out


def eligible_columns(
    plan: StreamPlan,
    specs: list[StreamAggSpec],
    fields: list[tuple[str, T]],
    metadata: tuple[str, ...],
) -> list[str] | None:
    """The columns the fast path reads (WHERE, MV_EXPAND, BY, aggregate arguments), or None
    when the plan has a shape it does not handle; the general path then runs every event."""
    agg = plan.aggregate
    if agg is None:
        return None
    names: set[str] = set()
    for step in plan.pre:
        if isinstance(step, p.Filter):
            _refs(step.condition, names)
        elif isinstance(step, p.MvExpand):
            names.add(step.column)
        elif not (isinstance(step, p.Project) and all(a == b for a, b in step.mapping)):
            return None  # EVAL and RENAME change what later steps read
    for _name, key in agg.groups:
        if not isinstance(key, p.Ref):
            return None
        names.add(key.name)
    for spec in specs:
        if spec.row_count:
            continue
        if not spec.distinct or spec.filter is not None or spec.column is None:
            return None
        names.add(spec.column)
    types = dict(fields)
    if any(types.get(n) not in _FAST_TYPES or n in metadata for n in names):
        return None
    return sorted(names)


def build(
    state: WindowState,
    plan: StreamPlan,
    fields: list[tuple[str, T]],
    metadata: tuple[str, ...],
    ctx: EvalContext,
    general: General,
) -> FastPath | None:
    """The plan's fast path, or None when its shape needs the general path for every event."""
    columns = eligible_columns(plan, state.specs, fields, metadata)
    if columns is None:
        return None
    try:
        return FastPath(state, plan, fields, ctx, general, columns)
    except _Ineligible:
        return None


class FastPath:
    """Runs raw NDJSON lines through one plan's executor in micro-batches.

    A generated loop (or its compiled twin, _scan.c, where the install built it) decodes each
    line into Structs whose leaves must be single strings or long integers (or one-value
    arrays), tests the WHERE's equalities, answers its other terms from memos of their input
    values and appends the row's cells to its group's pending list. Event times are then
    converted and checked against the window for the whole batch with C-level maps. Per group per batch the state is updated with
    C-level dict and deque calls when judging the group at every moment of the batch would
    change nothing (its count terms out of reach, or an alerted group that keeps matching);
    otherwise its rows are replayed event by event with the general code, so alerts carry the
    exact crossing event and time. Anything else (a multivalue, a dotted key, another time
    spelling, a late event) goes to the general path, in order, so the answers never change.
    """

    def __init__(
        self,
        state: WindowState,
        plan: StreamPlan,
        fields: list[tuple[str, T]],
        ctx: EvalContext,
        general: General,
        columns: list[str],
    ) -> None:
        self.state = state
        self.general = general  # the executor's general path for one line (push_line)
        self.columns = columns
        types = dict(fields)
        self.types = types
        self.time_fields = list(state.window.time_fields)
        wanted = sorted({*columns, *self.time_fields})
        self.longs = [c for c in wanted if types.get(c) is T.LONG]
        leaf_types = dict.fromkeys(self.longs, _LONG_LEAF)
        root = DecodeNode("", [tuple(f.split(".")) for f in wanted], _TEXT_LEAF, leaf_types)
        self._decode = msgspec.json.Decoder(root.struct).decode
        key_columns = [k.name for _n, k in plan.aggregate.groups]  # type: ignore[union-attr]
        self.cells = sorted({s.column for s in state.specs if s.column is not None})
        self.ip_cells = [types[c] is T.IP for c in self.cells]
        self.ip_cache: dict[object, object] = {}
        self.ip_raw_keys: dict[object, object] = {}  # IP text -> its distinct-value key
        self.seen: dict[Any, Any] = {}  # the scan's lookup -> group key, False: rejected
        self.minute_cache: dict[object, int | None] = {}
        self.second_cache: dict[object, int | None] = {}
        # `field == "constant"` terms are tested in the loop; the other terms of the WHERE's AND
        # chains are answered from a memo each, keyed by that term's own input values (a new
        # address in a scan does not re-test the executable's exclusions).
        keyword = {n for n, t in types.items() if t is T.KEYWORD}
        self.equalities: list[tuple[str, str]] = []
        terms: list[p.Expr] = []
        for step in plan.pre:
            if isinstance(step, p.Filter):
                for term in _and_terms(step.condition):
                    test = equality(term, keyword)
                    if test is None:
                        terms.append(term)
                    else:
                        self.equalities.append(test)
        where_route = sorted({n for term in terms for n in _refs(term, set())})
        self.route_columns = [*where_route, *(k for k in key_columns if k not in where_route)]
        self.key_positions = [self.route_columns.index(k) for k in key_columns]
        self.residual = [
            _Term(self.route_columns, types, term, compile_expr(term, ctx)) for term in terms
        ]
        self._python_scan = self._compile(root, wanted)
        self._native = self._native_scanner(root, wanted)
        self.native = self._native is not None
        self._agg_plan = [
            (spec, self.cells.index(spec.column) if spec.column else -1) for spec in state.specs
        ]
        self.terms = count_terms(plan.post, state.count_columns)
        window = state.window
        self.leave = window.length_ms + (1 if window.closed else 0)
        self.outside = window.length_ms - (0 if window.closed else 1)  # start = end - outside
        self.stats = {
            "fast_events": 0,
            "general_events": 0,
            "bulk_groups": 0,
            "replayed_groups": 0,
            "split_groups": 0,
        }

    # -- code generation -----------------------------------------------------------------------

    def _compile(self, root: DecodeNode, wanted: list[str]) -> Callable[..., int]:
        """The per-line loop, generated once per plan: identifiers are generated, field names
        and constants enter only as bound values, never as source text."""
        var = {name: f"x{i}" for i, name in enumerate(wanted)}
        lines = [
            "def scan(lines, P, B, T):",
            "    i = 0",
            "    for line in lines:",
            # A line that may nest too deep goes to the general path, which decides (msgspec
            # alone would take some that the other readers refuse).
            "        if len(line) > DEEP and deep(line):",
            "            break",
            "        try:",
            "            o = dec(line)",
            "        except Exception:",
            "            break",
        ]
        assigned: set[str] = set()
        self._reads(root, "o", "        ", var, lines, count(), assigned)
        if assigned != set(wanted):
            raise _Ineligible  # a field reachable only through a dotted key
        scope: dict[str, Any] = {
            "dec": self._decode,
            "route": self._route,
            "DEEP": 2 * MAX_DEPTH,
            "deep": _may_be_too_deep,
        }
        scope["LO"], scope["HI"] = _LONG_MIN, _LONG_MAX
        for name in self.longs:  # msgspec decodes any JSON integer; a long holds 64 bits
            x = var[name]
            lines += [
                f"        if ({x}.__class__ is int and not LO <= {x} <= HI) or (",
                f"            {x}.__class__ is tuple and not LO <= {x}[0] <= HI",
                "        ):",
                "            break",
            ]
        t_vars = [var[f] for f in self.time_fields]
        lines.append(f"        T.append({t_vars[0]})")
        for tv in t_vars[1:]:
            lines += ["        if T[-1] is None:", f"            T[-1] = {tv}"]
        # Equality terms: a single string or a one-value array equal to the constant; null,
        # another value or a longer array (not decoded here) is false.
        tests = []
        for n, (name, const) in enumerate(self.equalities):
            scope[f"K{n}"], scope[f"A{n}"] = const, (const,)
            tests.append(f"({var[name]} == K{n} or {var[name]} == A{n})")
        if tests:
            lines += [
                f"        if not ({' and '.join(tests)}):",
                "            i += 1",
                "            continue",
            ]
        # One lookup in a memo that outlives the batch answers the rest of the WHERE and gives
        # the group's key (False: rejected); a single BY column is its own lookup key.
        single = len(self.route_columns) == 1
        combo = "".join(f"{var[c]}, " for c in self.route_columns)
        lookup = var[self.route_columns[0]] if single else f"({combo})"
        cells = "".join(f", {var[c]}" for c in self.cells)
        lines += [
            f"        k = B.get({lookup})",
            "        if k is None:",
            f"            k = route(({combo}), B, {lookup})",
            "        if k is not False:",
            "            r = P.get(k)",
            "            if r is None:",
            "                r = P[k] = []",
            # Always a tuple, as the compiled scan makes it (`(i)` alone would be an int).
            f"            r.append((i,{cells.removeprefix(',')}))",
            "        i += 1",
            "    return i",
        ]
        exec("\n".join(lines), scope)  # generated from the plan's shape, see the docstring
        return scope["scan"]  # type: ignore[no-any-return]

    def _reads(
        self,
        node: DecodeNode,
        obj: str,
        indent: str,
        var: dict[str, str],
        lines: list[str],
        counter: Any,
        assigned: set[str],
    ) -> None:
        """Straight-line reads of one Struct level through the nested spelling. A dotted key
        (`"host.name": ...`) sends the event to the general path, which merges spellings."""
        dotted = [attr for attr, key in node.attrs if "." in key]
        if dotted:
            chain = " is ".join(f"{obj}.{a}" for a in dotted)
            lines.append(f"{indent}if not ({chain} is None):")
            lines.append(f"{indent}    break")
        for attr, key in node.attrs:
            if "." in key:
                continue
            path = node.leaves.get(key)
            if path is not None:
                lines.append(f"{indent}{var[path]} = {obj}.{attr}")
                assigned.add(path)
                continue
            child = node.children[key]
            name = f"y{next(counter)}"
            lines.append(f"{indent}{name} = {obj}.{attr}")
            lines.append(f"{indent}if {name} is not None:")
            self._reads(child, name, indent + "    ", var, lines, counter, assigned)
            below = sorted({var[f] for f in _leaf_paths(child)})
            lines.append(f"{indent}else:")
            lines.append(f"{indent}    {' = '.join(below)} = None")

    def _native_scanner(self, root: DecodeNode, wanted: list[str]) -> Any:
        """The compiled scan configured like the generated loop, or None without it."""
        if Scanner is None or not compiled_scan_enabled():
            return None
        index = {name: i for i, name in enumerate(wanted)}
        equalities = [(index[name], const) for name, const in self.equalities]
        times = [index[f] for f in self.time_fields]
        unique = {*self.time_fields, *self.longs}  # values not worth interning
        return Scanner(
            _tree(root, index),
            len(wanted),
            times,
            equalities,
            [index[c] for c in self.route_columns],
            [index[c] for c in self.cells],
            [i for name, i in index.items() if name not in unique],
            int_times=True,
        )

    def use_python_scan(self) -> None:
        """Run the generated Python loop even where the compiled scan is built."""
        self._native = None
        self.native = False

    def _scan(self, lines: Sequence[bytes | str], P: Any, B: Any, T: list[object]) -> int:
        """Lines taken up to the first the fast path cannot take (see _compile)."""
        if self._native is not None:
            if type(lines) is BufferLines:
                return int(
                    self._native.scan_lines(
                        lines.buf, lines.starts, lines.lo, len(lines), P, B, T, self._route
                    )
                )
            return int(self._native.scan(lines, P, B, T, self._route))
        return int(self._python_scan(lines, P, B, T))

    def scan(
        self, lines: Sequence[bytes | str], pending: Any, memo: Any, times: list[object]
    ) -> int:
        """How many lines from the first the scan takes (see _compile): each taken line's time
        text (or epoch millis) appended to `times`, the rows the WHERE keeps appended to
        `pending[group key]` as (line index, cells...), the WHERE's answers kept in `memo`."""
        return self._scan(lines, pending, memo, times)

    def time_millis(self, text: object) -> int | None:
        """Epoch millis of a time text as the fast path reads it, None for another spelling."""
        got = self._times([text])
        return None if got is None else got[0]

    @staticmethod
    def ip_value(raw: object) -> tuple[object, object]:
        """An IP cell converted as the general path does, with its distinct-value key; (None,
        None) for a value that is not one address."""
        text = _scalar(raw)
        key = ipv4_key(text)  # a canonical dotted quad is its own converted value
        value = text if key is not None else cell_value(text, T.IP)
        if value is None or type(value) is list:
            return None, None
        return value, key or ipv4_key(value) or v.order_key(value, T.IP)

    # -- memos the loop and the batch fill --------------------------------------------------------

    def _route(
        self, combo: tuple[object, ...], seen: dict[Any, Any], lookup: object
    ) -> tuple[object, ...] | bool:
        """The group key of an event with these WHERE and BY values, or False when the WHERE
        rejects it; remembered in `seen` under `lookup`. Each term's result is memoised: its
        expressions are pure (`now()` is refused outside the time filter), and on single values
        an AND chain keeps a row exactly when every term is true."""
        values = tuple(_scalar(x) for x in combo)
        for term in self.residual:
            if not term.passes(values):
                seen[lookup] = False
                return False
        types, route = self.types, self.route_columns
        key = tuple(cell_value(values[i], types[route[i]]) for i in self.key_positions)
        seen[lookup] = key
        return key

    def _minute(self, text: object) -> int | None:
        """Epoch millis of a `YYYY-MM-DDThh:mm:` prefix, None when not valid (cached)."""
        got = iso_millis(text + "00.000Z") if type(text) is str else None
        self.minute_cache[text] = got
        return got

    def _ip(self, raw: object) -> object:
        """An IP cell converted as the general path does; its distinct-value key remembered."""
        text = _scalar(raw)
        key = ipv4_key(text)  # a canonical dotted quad is its own converted value
        value = text if key is not None else cell_value(text, T.IP)
        self.ip_cache[raw] = value
        if value is None or type(value) is list:
            self.ip_raw_keys[raw] = None
        else:
            self.ip_raw_keys[raw] = key or ipv4_key(value) or v.order_key(value, T.IP)
        return value

    # -- the batch driver --------------------------------------------------------------------

    def run(self, lines: Sequence[bytes | str], errors: list[tuple[int, str]]) -> list[StreamMatch]:
        """Every line in order; lines that are not JSON objects go to `errors` (index, reason)."""
        # A batch allocates many short-lived tuples and lists: without this the collector walks
        # the whole window state every few hundred events (about 12% of the time). It runs
        # once after the batch instead; the state holds no reference cycles.
        collecting = gc.isenabled()
        gc.disable()
        try:
            return self._run(lines, errors)
        finally:
            if collecting:
                gc.enable()

    def _run(
        self, lines: Sequence[bytes | str], errors: list[tuple[int, str]]
    ) -> list[StreamMatch]:
        fired: list[StreamMatch] = []
        i, n = 0, len(lines)
        while i < n:
            for cache in (self.ip_cache, self.minute_cache, self.second_cache):
                if len(cache) >= _CACHE_MAX:
                    cache.clear()
                    self.ip_raw_keys.clear()
            if len(self.seen) >= _CACHE_MAX:
                self.seen.clear()
            chunk = lines[i : min(n, i + MAX_BATCH)]
            batch = self._batch(chunk)
            if batch.events:
                self._flush(batch)
                batch.sink.sort(key=_ORDER)
                fired.extend(m for *_x, m in batch.sink)
            i += batch.events
            if batch.events < len(chunk):
                fired.extend(self._general(lines[i], i, errors))
                i += 1
        return fired

    def _batch(self, chunk: Sequence[bytes | str]) -> _Batch:
        """Scan a chunk up to its first line the fast path cannot take; convert its times and
        place them in the window."""
        before = self.state.clock.end_ms
        batch = _Batch(NO_END if before is None else before)
        texts: list[object] = []
        stop = self._scan(chunk, batch.pending, self.seen, texts)
        times = self._times(texts)
        ordered = False
        if times is None:
            times, stop = self._times_slowly(texts, stop)
        else:
            # The usual batch: times in order from the window end on. Each event then moves
            # the end to its own time, and none is late (a C-level sort check, no accumulate).
            ordered = not times or (times[0] >= batch.before and times == sorted(times))
        batch.times = times
        batch.events = stop
        if ordered:
            batch.ends = [batch.before, *times]
            self._trim(batch, stop)
            self._count(batch, stop)
            return batch
        ends = list(accumulate(times, max, initial=batch.before)) if None not in times else None
        margin = min(self.outside, self.state.lateness_ms)
        if ends is None or any(map(lt, map(add, times, repeat(margin)), ends)):
            self._place_slowly(batch)  # missing times or late events: classify one by one
        else:
            batch.ends = ends
            batch.disordered = any(map(lt, times, ends))
        self._trim(batch, stop)
        self._count(batch, stop)
        return batch

    def _count(self, batch: _Batch, stop: int) -> None:
        m = self.state.metrics
        m.events += stop
        m.rows += sum(map(len, batch.pending.values()))
        self.stats["fast_events"] += stop

    def _times(self, texts: list[object]) -> list[Any] | None:
        """Epoch millis of every time text, or None when one is missing or spelled otherwise:
        the `YYYY-MM-DDThh:mm:ss.` prefix from a cache (filled per batch from the minute cache
        and the `ss.` table), plus the `mmmZ` tail, with C-level maps."""
        if self.native and set(map(type, texts)) == {int}:
            return texts  # every time converted by the compiled scan
        seconds = self.second_cache
        try:
            # Every prefix already known (minutes are filled ahead): one fused C-level pass.
            return list(
                map(
                    add,
                    map(seconds.__getitem__, map(_SECOND_PREFIX, texts)),
                    map(_MS4.__getitem__, map(_MILLI_PART, texts)),
                )
            )
        except (KeyError, TypeError):
            pass  # a new minute, a missing time or another spelling: step by step below
        try:
            prefixes = list(map(_SECOND_PREFIX, texts))
            millis = list(map(_MS4.get, map(_MILLI_PART, texts)))
        except TypeError:
            return None  # a missing time
        if None in millis:
            return None
        found = list(map(seconds.get, prefixes))
        if None in found:
            for prefix in set(compress(prefixes, map(is_, found, repeat(None)))):
                if prefix not in seconds:  # filled with its minute meanwhile
                    seconds[prefix] = self._second(prefix)
            found = list(map(seconds.get, prefixes))
            if None in found:
                return None
        return list(map(add, found, millis))

    def _second(self, prefix: object) -> int | None:
        if type(prefix) is not str:
            return None
        minute = self.minute_cache.get(prefix[:17], _MISSING)
        if minute is _MISSING:
            minute = self._minute(prefix[:17])
            if minute is not None:
                self._fill_ahead(prefix[:17], minute)
        second = _SEC.get(prefix[17:])
        return None if minute is None or second is None else minute + second  # type: ignore[operator]

    def _fill_ahead(self, text: str, minute: int) -> None:
        """The second prefixes of a new minute and of the minutes after it (times mostly move
        forward), so the next batches take the fused pass. A minute's text is the canonical
        spelling, kept only when the parser reads it back as that minute."""
        seconds = self.second_cache
        for ahead in range(_MINUTES_AHEAD):
            ms = minute + ahead * 60_000
            if ahead:
                text = _minute_text(ms)
                if self.minute_cache.get(text, _MISSING) is not _MISSING:
                    continue
                if self._minute(text) != ms:
                    return
            for second, offset in _SEC.items():
                seconds[text + second] = ms + offset

    def _times_slowly(self, texts: list[object], stop: int) -> tuple[list[Any], int]:
        """Times one by one: None for an event without one; the batch stops at the first time
        in another spelling (the general path parses it)."""
        out: list[Any] = []
        for index, text in enumerate(texts[:stop]):
            if text is None or type(text) is int:
                out.append(text)  # no time, or one the compiled scan converted
                continue
            got = self._times([text])
            if got is None:
                return out, index
            out.append(got[0])
        return out, stop

    def _place_slowly(self, batch: _Batch) -> None:
        """The window logic of `push`, event by event: no time, outside the window, too late."""
        m = self.state.metrics
        end = batch.before
        ends = [end]
        dropped = batch.dropped
        lateness = self.state.lateness_ms
        for index, t in enumerate(batch.times):
            if t is None:
                m.no_time += 1
                dropped.add(index)
            elif t > end:
                end = t
            elif t < end - self.outside:
                m.outside_window += 1
                dropped.add(index)
            elif t < end - lateness:
                m.too_late += 1
                dropped.add(index)
            elif t < end:
                batch.disordered = True
            ends.append(end)
        batch.ends = ends

    def _trim(self, batch: _Batch, stop: int) -> None:
        """Pending rows only of events the batch keeps (before `stop`, not dropped)."""
        dropped = batch.dropped
        batch.times = batch.times[:stop]
        batch.ends = batch.ends[: stop + 1]
        for key, rows in list(batch.pending.items()):
            if rows and (rows[-1][0] >= stop or dropped):
                kept = [r for r in rows if r[0] < stop and r[0] not in dropped]
                if kept:
                    batch.pending[key] = kept
                else:
                    del batch.pending[key]

    def _general(
        self, line: bytes | str, index: int, errors: list[tuple[int, str]]
    ) -> list[StreamMatch]:
        self.stats["general_events"] += 1
        return self.general(line, index, errors)

    def _flush(self, batch: _Batch) -> None:
        """Apply one batch: groups that may change their verdict are replayed exactly, the
        others in bulk; then the window slides to the batch's end."""
        state = self.state
        end = batch.ends[-1]
        if end == NO_END:
            return  # no event had a time
        start = state.window.start_ms(end)
        self._prune_points(batch)
        quiet: set[tuple[object, ...]] = set()
        for key, rows in batch.pending.items():
            if self._bulk(key, rows, start, batch):
                quiet.add(key)
                continue
            self._split(key, rows, start, batch)
            self._expire_exact(key, end, batch)
            self._prune(key, len(batch.ends), batch)
        self._slide(end, start, quiet, batch)
        state.move_to(end, start)
        if batch.prunes:
            last = len(batch.prunes)
            for key in [k for k in state.memory if k not in batch.pruned]:
                self._prune(key, last, batch)

    def _prune_points(self, batch: _Batch) -> None:
        """Where `push` would forget re-armed groups (at the start of a window slide past
        `prune_at`): the memory a judge sees depends on it, so replays apply them in order."""
        state = self.state
        ends = batch.ends
        due = state.clock.prune_at
        while True:
            k = bisect.bisect_left(ends, due, 1)
            if k >= len(ends):
                break
            batch.prunes.append((k - 1, ends[k]))
            due = state.prune_due(ends[k])
        state.set_prune_at(due)

    def _prune(self, key: tuple[object, ...], upto: int, batch: _Batch) -> None:
        """Apply to one group's memory the prune points of events up to index `upto`."""
        done = batch.pruned.get(key, 0)
        prunes = batch.prunes
        while done < len(prunes) and prunes[done][0] <= upto:
            self.state.forget_if_rearmed(key, prunes[done][1])
            done += 1
        batch.pruned[key] = done

    def _ip_keys(self, raw: tuple[Any, ...]) -> list[Any]:
        """The distinct-value keys of one pending IP column (None for a missing or bad value)."""
        keys = list(map(self.ip_raw_keys.get, raw, repeat(_MISSING)))
        if _MISSING in keys:
            for x in compress(raw, map(is_, keys, repeat(_MISSING))):
                self._ip(x)
            keys = list(map(self.ip_raw_keys.get, raw))
        return keys

    def _latest(
        self, spec: StreamAggSpec, raw: tuple[Any, ...], times: list[int]
    ) -> dict[Any, int]:
        """Key -> newest time in the batch, for one distinct aggregate's column."""
        if spec.ip_like:
            # Each distinct text converted once: a value repeated through the batch (a DNS
            # server) costs one row pass, not two. Two spellings of one address fall back.
            by_text = dict(zip(raw, times))  # noqa: B905 (equal lengths)
            newest = dict(zip(self._ip_keys(tuple(by_text)), by_text.values()))  # noqa: B905
            if len(newest) < len(by_text):
                newest = dict(zip(self._ip_keys(raw), times))  # noqa: B905
        else:
            newest = dict(zip(raw, times))  # noqa: B905
            if tuple in set(map(type, newest)):  # a one-value array somewhere: unwrap
                newest = dict(zip(map(_scalar, raw), times))  # noqa: B905
        newest.pop(None, None)  # a missing value feeds nothing
        return newest

    def _bulk(
        self, key: tuple[object, ...], rows: list[tuple[Any, ...]], start: int, batch: _Batch
    ) -> bool:
        """Add a group's rows with C-level calls if judging it at every moment of the batch
        would change nothing; False (nothing changed) otherwise."""
        times_of = batch.times
        if batch.disordered:
            rows = sorted(rows, key=lambda r: times_of[r[0]])
        columns = list(zip(*rows, strict=True))
        times = list(map(times_of.__getitem__, columns[0]))
        state = self.state
        group = state.groups.get(key)
        latest: list[dict[Any, int] | None] = []
        for spec, cell in self._agg_plan:
            if spec.row_count:
                latest.append(None)
                continue
            if spec.share is not None:
                latest.append(latest[spec.share])  # one state: updated once, through its owner
                continue
            latest.append(self._latest(spec, columns[1 + cell], times))
        if not self._calm(key, group, latest, len(times), start):
            return False
        self.stats["bulk_groups"] += 1
        if group is None:
            group = state.new_group(key)
        held = group.rows.newest()
        newer = held is None or held < times[0]  # the newest row holds the newest value
        group.rows.add_sorted(times)
        for (spec, cell), agg, seen in zip(self._agg_plan, group.aggs, latest, strict=True):
            if seen is None or spec.share is not None:
                continue
            assert isinstance(agg.state, LastSeen)
            if spec.ip_like and agg.state.keep_values:
                raw = columns[1 + cell]
                values = map(self.ip_cache.get, raw)
                by_key = dict(zip(map(self.ip_raw_keys.get, raw), values))  # noqa: B905
                agg.state.touch_many(seen, by_key, newer)
            else:
                agg.state.touch_many(seen, None, newer)
        if group.heap_ms is None or times[0] < group.heap_ms:
            state.queue(group, times[0])
        return True

    def _calm(
        self,
        key: tuple[object, ...],
        group: Group | None,
        latest: list[dict[Any, int] | None],
        added: int,
        start: int,
    ) -> bool:
        """Whether judging the group at every moment of the batch would change nothing: it has
        not alerted and some count term is false throughout, or it alerted, matches, and every
        count term (the whole test) holds throughout while it keeps rows."""
        state = self.state
        memory = state.memory.get(key)
        end = state.clock.end_ms
        if memory is not None and end is not None and state.rearmed(memory, end):
            # Re-armed before the batch (judges only see later ends): the first judge forgets
            # it, so the group is tested as one that never alerted.
            memory = None
        if memory is None:
            return any(
                self._term(never_true, op, bound, group, index, latest[index], added, start)
                for index, op, bound in self.terms
            )
        if (
            group is None
            or not state.terms_decide
            or memory.unmatched_since is not None
            or state.growth is not None
            or group.rows.n - group.rows.leaving(start) < 1
        ):
            return False
        return all(
            self._term(always_true, op, bound, group, index, latest[index], added, start)
            for index, op, bound in self.terms
        )

    def _term(
        self,
        test: Callable[[str, int, int, int], bool],
        op: str,
        bound: int,
        group: Group | None,
        index: int,
        seen: dict[Any, int] | None,
        added: int,
        start: int,
    ) -> bool:
        """`test` (never_true or always_true) on a count's range over the batch, computing only
        the bound the comparison needs: the lower bound for `<`, the upper one for `>`."""
        if op in ("eq", "neq"):
            low, high = self._low(group, index, start), self._high(group, index, seen, added)
        elif (op in ("gt", "gte")) == (test is never_true):
            low, high = 0, self._high(group, index, seen, added)
        else:
            low, high = self._low(group, index, start), 0
        return test(op, low, high, bound)

    def _low(self, group: Group | None, index: int, start: int) -> int:
        """At least this many at every moment: what is present now less what may leave."""
        if group is None:
            return 0
        state = group.aggs[index].state
        if isinstance(state, LastSeen):
            last = state.last
            if len(last) <= _EXACT_LEAVING:
                gone = sum(1 for ms in last.values() if ms < start)
            else:
                gone = state.leaving(start)
            return max(0, len(last) - gone)
        return max(0, state.n - state.leaving(start))

    def _high(
        self, group: Group | None, index: int, seen: dict[Any, int] | None, added: int
    ) -> int:
        """At most this many at any moment: what is present now plus the new values."""
        if group is None:
            return added if seen is None else len(seen)
        state = group.aggs[index].state
        if isinstance(state, LastSeen):
            last = state.last
            if seen is None:
                return len(last)
            return len(last) + len(seen) - sum(map(last.__contains__, seen))
        return state.n + added

    def _replay(self, key: tuple[object, ...], rows: list[tuple[Any, ...]], batch: _Batch) -> None:
        """A group's rows event by event with the general code: its expiries at the moments
        they happen, each row judged with the window ending at its event."""
        self.stats["replayed_groups"] += 1
        state = self.state
        names = self.cells
        for row in rows:
            index = row[0]
            t = batch.times[index]
            end = batch.ends[index + 1]
            self._expire_exact(key, end, batch)
            self._prune(key, index, batch)
            group = state.groups.get(key)
            if group is None:
                group = state.new_group(key)
            cells = [
                self.ip_cache.get(x, _MISSING) if ip else _scalar(x)
                for x, ip in zip(row[1:], self.ip_cells)  # noqa: B905
            ]
            cells = [
                self._ip(x) if c is _MISSING else c
                for x, c in zip(row[1:], cells)  # noqa: B905
            ]
            group.add(dict(zip(names, cells, strict=True)), t)
            if group.heap_ms is None or t < group.heap_ms:
                state.queue(group, t)
            state.move_to(end)
            fired: list[StreamMatch] = []
            state.judge(key, group, fired, t)
            batch.sink.extend((index, 1, end, m) for m in fired)

    def _split(
        self, key: tuple[object, ...], rows: list[tuple[Any, ...]], start: int, batch: _Batch
    ) -> None:
        """Rows of a group that may change its verdict: halves that provably cannot are applied
        in bulk, the rest replayed, so only a slice around the crossing runs event by event.

        Exact because every judge inside a bulk half is a no-op for any state within that half's
        bounds: the one it would have seen and the one a later replay or the final slide shows it
        (both are within the bounds), so deferring those expiries changes nothing."""
        if len(rows) <= _REPLAY_SLICE:
            self._replay(key, rows, batch)
            return
        self.stats["split_groups"] += 1
        half = len(rows) // 2
        for part in (rows[:half], rows[half:]):
            if not self._bulk(key, part, start, batch):
                self._split(key, part, start, batch)

    def _expire_exact(self, key: tuple[object, ...], end: int, batch: _Batch) -> None:
        """The general window slide for one group: each oldest row leaves at its own moment,
        and the group is judged then."""
        state = self.state
        group = state.groups.get(key)
        while group is not None and group.heap_ms is not None and group.heap_ms + self.leave <= end:
            at = group.heap_ms + self.leave
            index = batch.event_at(at)
            self._prune(key, index, batch)
            state.move_to(at)
            group.expire(state.window.start_ms(at))
            fired: list[StreamMatch] = []
            if group.empty:
                state.drop_group(key)
                state.judge(key, None, fired)
                group = None
            else:
                state.queue(group, group.rows.times[0])
                state.judge(key, group, fired)
            batch.sink.extend((index, 0, at, m) for m in fired)

    def _slide(self, end: int, start: int, quiet: set[tuple[object, ...]], batch: _Batch) -> None:
        """Slide the window to `end`: groups that cannot match expire in one step, the others
        (re-alert memory, or a count that may come into range as rows leave) exactly."""
        state = self.state
        nothing: list[dict[Any, int] | None] = [None] * len(state.specs)
        for _ms, key, group in state.due(start):
            calm = key in quiet or self._calm(key, group, nothing, 0, start)
            if not calm:
                self._expire_exact(key, end, batch)
                self._prune(key, len(batch.ends), batch)
                continue
            group.expire(start)
            if group.empty:
                state.drop_group(key)
            else:
                state.queue(group, group.rows.times[0])


def _tree(node: DecodeNode, index: dict[str, int]) -> tuple[tuple[str, int, Any], ...]:
    """One Struct level as the compiled scan reads it: (key, 0 text leaf or 3 long leaf, field
    index), (key, 1 object, level) or (key, 2 dotted spelling, None), as _reads walks it."""
    out: list[tuple[str, int, Any]] = []
    for _attr, key in node.attrs:
        if "." in key:
            out.append((key, 2, None))
        elif key in node.leaves:
            path = node.leaves[key]
            out.append((key, 3 if node.leaf_types.get(path) is _LONG_LEAF else 0, index[path]))
        else:
            out.append((key, 1, _tree(node.children[key], index)))
    return tuple(out)


def _may_be_too_deep(line: bytes | str) -> bool:
    """Whether a line holds more opening brackets than MAX_DEPTH (so might nest deeper)."""
    if isinstance(line, str):
        return line.count("{") + line.count("[") > MAX_DEPTH
    return line.count(b"{") + line.count(b"[") > MAX_DEPTH


def _minute_text(ms: int) -> str:
    """`YYYY-MM-DDThh:mm:` of an epoch-millisecond minute."""
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:")


def _scalar(value: object) -> object:
    """A one-value array (decoded as a 1-tuple) as its value."""
    return value[0] if type(value) is tuple else value


class _Term:
    """One term of the WHERE's AND chains with a memo of its result by its input values."""

    __slots__ = ("columns", "memo", "positions", "test", "types")

    def __init__(
        self,
        route: list[str],
        types: dict[str, T],
        term: p.Expr,
        test: Callable[[Any], object],
    ) -> None:
        self.columns = sorted(_refs(term, set()))
        self.positions = [route.index(c) for c in self.columns]
        self.types = [types[c] for c in self.columns]
        self.test = test
        self.memo: dict[tuple[object, ...], bool] = {}

    def passes(self, values: tuple[object, ...]) -> bool:
        args = tuple(values[i] for i in self.positions)
        passed = self.memo.get(args)
        if passed is None:
            cells = map(cell_value, args, self.types)  # converted as the general path does
            passed = self.test(dict(zip(self.columns, cells, strict=True))) is True
            if len(self.memo) >= _CACHE_MAX:
                self.memo.clear()
            self.memo[args] = passed
        return passed


def _and_terms(expr: p.Expr) -> list[p.Expr]:
    """The terms of an AND chain (the expression itself when it is not one)."""
    if isinstance(expr, p.Call) and expr.fn == "and" and len(expr.args) == 2:
        return [*_and_terms(expr.args[0]), *_and_terms(expr.args[1])]
    return [expr]


@dataclass(slots=True)
class _Batch:
    """One micro-batch: pending rows per group, event times and window ends, what fired."""

    before: int  # the window end before the batch
    events: int = 0
    pending: dict[tuple[object, ...], list[tuple[Any, ...]]] = field(default_factory=dict)
    times: list[Any] = field(default_factory=list)  # per event, None without a time
    ends: list[int] = field(default_factory=list)  # ends[k]: the window end before event k
    dropped: set[int] = field(default_factory=set)
    disordered: bool = False
    sink: Fired = field(default_factory=list)
    prunes: list[tuple[int, int]] = field(default_factory=list)  # (event index, window end)
    pruned: dict[tuple[object, ...], int] = field(default_factory=dict)  # points applied

    def event_at(self, end: int) -> int:
        """The index of the event whose time first moved the window to `end` or later."""
        k = bisect.bisect_left(self.ends, end, 1)
        return max(0, min(k, len(self.ends) - 1) - 1)
