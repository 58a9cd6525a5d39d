"""The semantic pass: an ES|QL AST resolved against a catalog into the typed logical plan."""

from __future__ import annotations

import dataclasses
import fnmatch
import math
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, cast

from reconwatch.errors import (
    QueryError,
    QuerySemanticError,
    Span,
    UnsupportedFeatureError,
    span_at,
)
from reconwatch.esql import ast
from reconwatch.esql import functions as fns
from reconwatch.esql.parser import parse
from reconwatch.esql.patterns import PatternError, rlike_to_regex
from reconwatch.plan import nodes as p
from reconwatch.plan import values
from reconwatch.plan.catalog import Catalog
from reconwatch.types import DataType as T
from reconwatch.types import parse_type, widen

if TYPE_CHECKING:
    from reconwatch.esql import kql

DEFAULT_LIMIT = 1000
MAX_LIMIT = 10_000
# `_source` is the original document as JSON text (JSON_EXTRACT reads it), typed keyword.
METADATA_TYPES: dict[str, T] = {
    "_id": T.KEYWORD,
    "_index": T.KEYWORD,
    "_version": T.LONG,
    "_ignored": T.KEYWORD,
    "_source": T.KEYWORD,
}
_ORDINALS = ("first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth", "ninth")
# Functions whose arguments share one type; the first three widen numbers to the common type.
_SAME_TYPE_ARGS = ("coalesce", "greatest", "least", "mv_append", "mv_intersection")
_WIDENED_ARGS = ("coalesce", "greatest", "least")
_ARITH = {"+": "add", "-": "sub", "*": "mul", "/": "div", "%": "mod"}
_COMPARE = {"==": "eq", "!=": "neq", "<": "lt", "<=": "lte", ">": "gt", ">=": "gte", "=~": "eq_ci"}
# String literals are implicitly cast to these types where one is expected, trying them in this
# order where several are (a datetime before a date_nanos, as Elasticsearch lists them). A tuple:
# iterating a set would make the choice depend on the hash seed.
_CASTABLE_FROM_STRING = (T.DATETIME, T.DATE_NANOS, T.IP, T.VERSION, T.BOOLEAN)
_TEMPORAL_FROM_STRING = (T.DATE_PERIOD, T.TIME_DURATION)
_TEMPORAL_UNITS: dict[str, tuple[T, str, int]] = {
    "year": (T.DATE_PERIOD, "months", 12),
    "quarter": (T.DATE_PERIOD, "months", 3),
    "month": (T.DATE_PERIOD, "months", 1),
    "week": (T.DATE_PERIOD, "days", 7),
    "day": (T.DATE_PERIOD, "days", 1),
    "hour": (T.TIME_DURATION, "millis", 3_600_000),
    "minute": (T.TIME_DURATION, "millis", 60_000),
    "second": (T.TIME_DURATION, "millis", 1000),
    "millisecond": (T.TIME_DURATION, "millis", 1),
}
_UNIT_SPELLINGS: dict[str, str] = {
    **{s: "year" for s in ("y", "yr", "year", "years")},
    **{s: "quarter" for s in ("q", "quarter", "quarters")},
    **{s: "month" for s in ("mo", "month", "months")},
    **{s: "week" for s in ("w", "week", "weeks")},
    **{s: "day" for s in ("d", "day", "days")},
    **{s: "hour" for s in ("h", "hour", "hours")},
    **{s: "minute" for s in ("m", "min", "minute", "minutes")},
    **{s: "second" for s in ("s", "sec", "second", "seconds")},
    **{s: "millisecond" for s in ("ms", "millisecond", "milliseconds")},
}


def compile_query(text: str, catalog: Catalog) -> p.Plan:
    """Parse then analyse ES|QL text."""
    return analyze(parse(text), catalog)


def analyze(query: ast.Query, catalog: Catalog) -> p.Plan:
    """Resolve names and types; raise QuerySemanticError / UnsupportedFeatureError with positions."""
    problems = support_report(query)
    if problems:
        raise problems[0]
    return _Analyzer(query, catalog).run()


def ordinal(index: int) -> str:
    return _ORDINALS[index] if index < len(_ORDINALS) else f"{index + 1}th"


# ---------------------------------------------------------------------------------------------
# Support report: every feature reconwatch refuses, found without resolving anything.


def support_report(query: ast.Query) -> list[QueryError]:
    """Every unsupported command, function, operator or parameter in the query, in text order."""
    found: list[QueryError] = []
    src = query.source
    for cmd in query.commands:
        if isinstance(cmd, ast.Unsupported):
            found.append(UnsupportedFeatureError(f"command [{cmd.name}]", cmd.span, src))
        for expr in ast.command_expressions(cmd):
            for node in ast.walk(expr):
                problem = _unsupported_expr(node, src)
                if problem is not None:
                    found.append(problem)
                found.extend(_kql_problems(node, src))
    return found


def _unsupported_expr(node: ast.Expr, src: str) -> QueryError | None:
    if isinstance(node, ast.Call) and node.name.lower() in fns.UNSUPPORTED:
        return UnsupportedFeatureError(f"function [{node.name.lower()}]", node.span, src)
    if isinstance(node, ast.Match):
        return UnsupportedFeatureError("match operator [:]", node.span, src)
    if isinstance(node, ast.MapLiteral):
        return UnsupportedFeatureError("function options {...}", node.span, src)
    if isinstance(node, ast.Literal) and node.kind == "param":
        return UnsupportedFeatureError(f"query parameter [?{node.value}]", node.span, src)
    if isinstance(node, ast.TimeSpan) and node.unit == "nanosecond" and node.amount % 1_000_000:
        return UnsupportedFeatureError("nanosecond time spans", node.span, src)
    if isinstance(node, ast.Cast):
        target = parse_type(node.type_name)
        if target is not None and f"cast_{target.value}" not in fns.REGISTRY:
            return UnsupportedFeatureError(f"cast to [{node.type_name}]", node.span, src)
    return None


def _kql_problems(node: ast.Expr, src: str) -> list[QueryError]:
    """A KQL("...") string that does not parse, or uses a KQL construct reconwatch refuses."""
    if not (isinstance(node, ast.Call) and node.name.lower() == "kql"):
        return []
    where = _kql_text(node, src)
    if where is None:
        return []
    from reconwatch.esql import kql

    try:
        return kql.unsupported_parts(kql.parse(where), where)
    except QueryError as exc:
        return [exc]


def _kql_text(node: ast.Call, src: str) -> kql.Located | None:
    """KQL's one argument, a string literal, located in the query text (None if it is not one)."""
    # Loaded for a query that calls KQL() only: its grammar costs ~10 ms at every start.
    from reconwatch.esql import kql

    if len(node.args) != 1:
        return None
    arg = node.args[0]
    if not (isinstance(arg, ast.Literal) and arg.kind == "string" and isinstance(arg.value, str)):
        return None
    if arg.span == ast.NO_SPAN or not src:
        return kql.Located(arg.value)
    return kql.locate(arg.span.text(src), arg.span.start, src, arg.value)


# ---------------------------------------------------------------------------------------------
# The analyser


@dataclass
class _Stats:
    """What an expression in a STATS aggregate position may see outside aggregate calls."""

    groups: dict[str, p.Column]
    input_columns: dict[str, p.Column]
    aliases: Mapping[str, p.Expr] = field(default_factory=dict)
    found: list[tuple[str, p.AggCall]] = field(default_factory=list)
    filter: p.Expr | None = None


@dataclass
class _Env:
    columns: Mapping[str, p.Column]
    stats: _Stats | None = None
    in_agg: str | None = None  # text of the enclosing aggregate call
    aliases: Mapping[str, p.Expr] = field(default_factory=dict)  # STATS groupings by name


class _Analyzer:
    def __init__(self, query: ast.Query, catalog: Catalog) -> None:
        self.query = query
        self.src = query.source
        self.catalog = catalog
        self.columns: dict[str, p.Column] = {}
        self.origin: dict[str, str] = {}  # column -> the source field it still holds unchanged
        # column -> identity of the values it holds: EVAL z = y and RENAME keep y's identity, so
        # STATS BY y, z groups once (Elasticsearch resolves z to the same attribute as y).
        self.identity: dict[str, object] = {}
        self.used: set[str] = set()
        self.source_fields: Mapping[str, p.Column] = {}
        self.internal = 0
        self.warnings: list[str] = []

    # -- errors --------------------------------------------------------------------------------

    def error(self, message: str, span: Span) -> QuerySemanticError:
        return QuerySemanticError(message, span if span != ast.NO_SPAN else None, self.src)

    def text(self, node: ast.Expr) -> str:
        span = node.span
        if span != ast.NO_SPAN and self.src:
            return span.text(self.src)
        return _fallback_text(node)

    def column_name(self, node: ast.Expr) -> str:
        """The name of an unaliased output: a bare column keeps its own name (`` `host.name` ``
        names `host.name`); any other expression is named by its source text, quotes included."""
        return node.name if isinstance(node, ast.Field) else self.text(node)

    # -- driver --------------------------------------------------------------------------------

    def run(self) -> p.Plan:
        commands = self.query.commands
        if not commands:
            raise QuerySemanticError("empty query", None, self.src)
        first = commands[0]
        source: p.Source | p.RowSource
        if isinstance(first, ast.From):
            source = self.from_(first)
        elif isinstance(first, ast.Row):
            source = self.row(first)
        else:
            raise self.error("a query must start with FROM or ROW", first.span)
        steps: list[p.Step] = []
        for cmd in commands[1:]:
            for step in self.command(cmd):
                previous = steps[-1] if steps else None
                if isinstance(step, p.Project) and isinstance(previous, p.Project):
                    steps[-1] = _merge_projects(previous, step)
                elif isinstance(step, p.Filter) and isinstance(previous, p.Filter):
                    # Elasticsearch combines adjacent WHEREs into one AND, whose sides it
                    # evaluates on every row: the second one warns on rows the first drops.
                    both = p.Call("and", (previous.condition, step.condition), T.BOOLEAN)
                    steps[-1] = p.Filter(both, step.columns, previous.span)
                else:
                    steps.append(step)
        steps = _unread_inline_outputs_nulled(self.final_limit(steps))
        if isinstance(source, p.Source):
            source = self.finish_source(source)
        return p.Plan(source, tuple(steps), self.query.source, tuple(self.warnings))

    def final_limit(self, steps: list[p.Step]) -> list[p.Step]:
        cols = self.snapshot()
        if steps and isinstance(steps[-1], p.Limit):
            last = steps[-1]
            return [*steps[:-1], p.Limit(min(last.count, MAX_LIMIT), last.columns, last.span)]
        return [*steps, p.Limit(DEFAULT_LIMIT, cols)]

    def finish_source(self, source: p.Source) -> p.Source:
        for name in self.columns:
            if name in self.origin:
                self.used.add(self.origin[name])
        fields = tuple(c for name, c in self.source_fields.items() if name in self.used)
        # METADATA columns nothing reads are not loaded either (Elastic's rules declare _id,
        # _index, _version and drop them at STATS): executors leave them null.
        metadata = tuple(m for m in source.metadata if m in self.used)
        return p.Source(source.indices, metadata, fields, source.columns, source.span)

    def snapshot(self) -> tuple[p.Column, ...]:
        return tuple(self.columns.values())

    def command(self, cmd: ast.Command) -> list[p.Step]:
        handler = _HANDLERS.get(type(cmd))
        if handler is None:
            raise self.error(f"[{type(cmd).__name__.upper()}] must be the first command", cmd.span)
        result = handler(self, cmd)
        return result if isinstance(result, list) else [result]

    # -- source commands -----------------------------------------------------------------------

    def from_(self, cmd: ast.From) -> p.Source:
        known = self.catalog.fields(cmd.sources)
        self.source_fields = {name: known[name] for name in sorted(known)}
        for name, col in self.source_fields.items():
            self.columns[name] = p.Column(name, col.type, col.multivalued)
            self.origin[name] = name
        for meta in cmd.metadata:
            mtype = METADATA_TYPES.get(meta)
            if mtype is None:
                raise UnsupportedFeatureError(f"metadata field [{meta}]", cmd.span, self.src)
            # A document's own `_id` key is the metadata value (an export), never a field.
            self.source_fields.pop(meta, None)
            self.columns.pop(meta, None)
            self.columns[meta] = p.Column(meta, mtype, multivalued=meta == "_ignored")
            self.origin[meta] = meta
        return p.Source(cmd.sources, cmd.metadata, (), self.snapshot(), cmd.span)

    def row(self, cmd: ast.Row) -> p.RowSource:
        assignments: list[tuple[str, p.Expr]] = []
        for assign in cmd.fields:
            expr = self.expr(assign.expr, _Env(self.columns))
            name = assign.name or self.column_name(assign.expr)
            assignments.append((name, expr))
            self.columns.pop(name, None)
            self.columns[name] = p.Column(name, expr.type, _is_mv(expr))
            self.identity[name] = object()
        return p.RowSource(tuple(assignments), self.snapshot(), cmd.span)

    # -- processing commands -------------------------------------------------------------------

    def where(self, cmd: ast.Where) -> p.Filter:
        cond = self.condition(cmd.condition, _Env(self.columns))
        cond = self.combined_spans(cond)
        return p.Filter(cond, self.snapshot(), cmd.span)

    def combined_spans(self, expr: p.Expr) -> p.Expr:
        """Elasticsearch merges OR-ed tests of one field against constants (`a == 1 OR a IN (2)`,
        CIDR_MATCHes of an ip) into one test written at the field, so a multivalue warns
        `evaluation of [field] failed` there; the merged disjuncts get the field's span."""
        if not isinstance(expr, p.Call):
            return expr
        inner = expr.args[0] if expr.fn == "not" else None
        if isinstance(inner, p.Call) and inner.fn in _NEGATED:
            # NOT over a comparison is the opposite comparison, written (and warning) where
            # the NOT is: `not(x < 1)` warns `evaluation of [not(x < 1)] failed`.
            return dataclasses.replace(inner, fn=_NEGATED[inner.fn], span=expr.span)
        if expr.fn in ("and", "not"):
            return dataclasses.replace(expr, args=tuple(self.combined_spans(a) for a in expr.args))
        if expr.fn != "or":
            return expr
        disjuncts = _without_implied_equalities([self.combined_spans(d) for d in _flatten_or(expr)])
        by_field: dict[str, list[int]] = {}
        for index, d in enumerate(disjuncts):
            field_ref = _constant_test_field(d)
            if field_ref is not None:
                by_field.setdefault(field_ref.name, []).append(index)
        merged: set[int] = set()
        for indexes in by_field.values():
            if len(indexes) < 2:
                continue
            first = _constant_test_field(disjuncts[indexes[0]])
            assert first is not None
            for index in indexes:
                disjuncts[index] = dataclasses.replace(disjuncts[index], span=first.span)
            merged |= _merge_into_in(disjuncts, indexes, first)
        kept = [d for i, d in enumerate(disjuncts) if i not in merged]
        return p.balanced("or", kept, expr.span)

    def condition(self, node: ast.Expr, env: _Env) -> p.Expr:
        expr = self.expr(node, env)
        if expr.type not in (T.BOOLEAN, T.NULL):
            raise self.error(
                f"Condition expression needs to be boolean, found [{expr.type.value.upper()}]",
                node.span,
            )
        return expr

    def eval_(self, cmd: ast.Eval) -> p.Eval:
        assignments: list[tuple[str, p.Expr]] = []
        for assign in cmd.fields:
            expr = self.combined_spans(self.expr(assign.expr, _Env(self.columns)))
            name = assign.name or self.column_name(assign.expr)
            assignments.append((name, expr))
            self.columns.pop(name, None)
            self.origin.pop(name, None)
            self.columns[name] = p.Column(name, expr.type, _is_mv(expr))
            self.identity[name] = (
                self.identity_of(expr.name) if isinstance(expr, p.Ref) else object()
            )
        return p.Eval(tuple(assignments), self.snapshot(), cmd.span)

    def identity_of(self, name: str) -> object:
        return self.identity.setdefault(name, object())

    def name_span(self, name: str, span: Span) -> Span:
        """Where a KEEP/DROP/RENAME/MV_EXPAND name is written inside its command (the AST keeps
        names as strings)."""
        if span == ast.NO_SPAN or not self.src:
            return span
        text = span.text(self.src)
        pattern = re.compile(r"(?<![\w.@`*])`?" + re.escape(name) + r"`?(?![\w.*])")
        for m in pattern.finditer(text):
            if m.start() > 0:
                return span_at(self.src, span.start + m.start(), span.start + m.end())
        return span

    def keep(self, cmd: ast.Keep) -> p.Project:
        # Precedence: exact name > partial wildcard > lone `*`; rightmost wins among equals.
        best: dict[str, tuple[int, int]] = {}
        for index, pattern in enumerate(cmd.patterns):
            matched = self.match_pattern(pattern, cmd.span)
            rank = 1 if pattern == "*" else 2 if "*" in pattern else 3
            for name in matched:
                current = best.get(name)
                if current is None or rank >= current[0]:
                    best[name] = (rank, index)
        position = {name: i for i, name in enumerate(self.columns)}  # one pass, not one per name
        order = sorted(best, key=lambda n: (best[n][1], position[n]))
        return self.project([(n, n) for n in order], cmd.span)

    def drop(self, cmd: ast.Drop) -> p.Project:
        dropped: set[str] = set()
        for pattern in cmd.patterns:
            dropped.update(self.match_pattern(pattern, cmd.span))
        return self.project([(n, n) for n in self.columns if n not in dropped], cmd.span)

    def rename(self, cmd: ast.Rename) -> p.Project:
        mapping = [(n, n) for n in self.columns]
        for old, new in cmd.pairs:
            outs = [out for out, _ in mapping]
            if old not in outs:
                raise self.unknown_column(old, self.name_span(old, cmd.span), outs)
            mapping = [
                (new if out == old else out, src)
                for out, src in mapping
                if out != new or out == old
            ]
        return self.project(mapping, cmd.span)

    def project(self, mapping: list[tuple[str, str]], span: Span) -> p.Project:
        old_cols, old_origin = self.columns, self.origin
        identities = {out: self.identity_of(src) for out, src in mapping}
        self.columns, self.origin, self.identity = {}, {}, identities
        for out, src in mapping:
            col = old_cols[src]
            self.columns[out] = p.Column(out, col.type, col.multivalued)
            if src in old_origin:
                self.origin[out] = old_origin[src]
        return p.Project(tuple(mapping), self.snapshot(), span)

    def match_pattern(self, pattern: str, span: Span) -> list[str]:
        span = self.name_span(pattern, span)
        if "*" not in pattern:
            if pattern not in self.columns:
                raise self.unknown_column(pattern, span, list(self.columns))
            return [pattern]
        matched = [n for n in self.columns if fnmatch.fnmatchcase(n, pattern.replace("[", "[[]"))]
        if not matched and pattern != "*":
            raise self.error(f"No matches found for pattern [{pattern}]", span)
        return matched

    def sort(self, cmd: ast.Sort) -> p.Sort:
        keys: list[p.SortKey] = []
        for item in cmd.items:
            expr = self.expr(item.expr, _Env(self.columns))
            if expr.type.is_temporal_amount:
                raise self.error(f"cannot sort on {expr.type.value}", item.span)
            nulls_first = item.descending if item.nulls_first is None else item.nulls_first
            keys.append(p.SortKey(expr, item.descending, nulls_first))
        return p.Sort(tuple(keys), self.snapshot(), cmd.span)

    def limit(self, cmd: ast.Limit) -> p.Limit:
        return p.Limit(cmd.count, self.snapshot(), cmd.span)

    def mv_expand(self, cmd: ast.MvExpand) -> p.MvExpand:
        col = self.columns.get(cmd.field)
        if col is None:
            span = self.name_span(cmd.field, cmd.span)
            raise self.unknown_column(cmd.field, span, list(self.columns))
        if cmd.field in self.origin:
            self.used.add(self.origin[cmd.field])
        self.columns[cmd.field] = p.Column(cmd.field, col.type)
        self.identity[cmd.field] = object()
        return p.MvExpand(cmd.field, self.snapshot(), cmd.span)

    def dissect(self, cmd: ast.Dissect) -> p.Extract:
        from reconwatch.esql.extract import dissect_regex

        value = self.string_input(cmd.value, "DISSECT")
        try:
            regex, names, append = dissect_regex(cmd.pattern, cmd.append_separator)
        except ValueError as exc:
            raise self.error(
                f"Invalid pattern for dissect: [{cmd.pattern}]: {exc}", cmd.span
            ) from None
        outputs = tuple(p.Column(n, T.KEYWORD) for n in names)
        return self.extract("dissect", value, regex, outputs, append, cmd.span)

    def grok(self, cmd: ast.Grok) -> p.Extract:
        from reconwatch.esql.extract import grok_regex

        value = self.string_input(cmd.value, "GROK")
        try:
            regex, typed = grok_regex(cmd.pattern)
        except ValueError as exc:
            raise self.error(f"Invalid GROK pattern [{cmd.pattern}]: {exc}", cmd.span) from None
        outputs = tuple(p.Column(n, t, mv) for n, t, mv in typed)
        return self.extract("grok", value, regex, outputs, (), cmd.span)

    def string_input(self, node: ast.Expr, command: str) -> p.Expr:
        value = self.expr(node, _Env(self.columns))
        if value.type not in (*fns.STRING, T.NULL):
            raise self.error(
                f"{command} only supports KEYWORD or TEXT values, found expression "
                f"[{self.text(node)}] type [{value.type.value.upper()}]",
                node.span,
            )
        return value

    def extract(
        self,
        kind: str,
        value: p.Expr,
        regex: str,
        outputs: tuple[p.Column, ...],
        append: tuple[tuple[str, str], ...],
        span: Span,
    ) -> p.Extract:
        if _is_mv(value):
            # Every value of a multivalued input is matched: outputs gather their captures.
            outputs = tuple(dataclasses.replace(c, multivalued=True) for c in outputs)
        for col in outputs:
            self.columns.pop(col.name, None)
            self.origin.pop(col.name, None)
            self.identity[col.name] = object()
            self.columns[col.name] = col
        return p.Extract(kind, value, regex, outputs, append, self.snapshot(), span)

    # -- STATS ---------------------------------------------------------------------------------

    def stats(self, cmd: ast.Stats) -> list[p.Step]:
        if cmd.inline:
            return self.inline_stats(cmd)
        kept_groups, kept, collected = self.stats_parts(cmd)
        copies = self.same_groups(kept_groups)
        self.columns, self.origin, self.identity = {}, {}, {}
        if copies:
            distinct = [(n, e) for n, e in kept_groups if n not in copies]
            return self.lowered_stats(cmd.span, collected, kept, distinct, copies, kept_groups)
        if all(isinstance(e, p.AggCall) for _, e in kept):
            aggs = tuple((n, cast(p.AggCall, e)) for n, e in kept)
            for n, a in aggs:
                self.columns[n] = p.Column(n, a.type, a.multivalued)
            for n, e in kept_groups:
                self.columns[n] = p.Column(n, e.type)
            return [p.Aggregate(aggs, tuple(kept_groups), self.snapshot(), cmd.span)]
        return self.lowered_stats(cmd.span, collected, kept, kept_groups)

    def stats_parts(
        self, cmd: ast.Stats
    ) -> tuple[
        list[tuple[str, p.Expr]], list[tuple[str, p.Expr | p.AggCall]], list[tuple[str, p.AggCall]]
    ]:
        """A STATS command resolved against the current columns: the groupings and the outputs
        that survive name collisions, and every aggregate call under its internal name."""
        inputs = dict(self.columns)
        groups: list[tuple[str, p.Expr]] = []
        aliases: dict[str, p.Expr] = {}
        for assign in cmd.by:
            # Groupings see the STATS input only, not each other (`BY l = l + 1, l = l + 1`).
            expr = self.expr(assign.expr, _Env(inputs))
            name = assign.name or self.column_name(assign.expr)
            groups.append((name, expr))
            if not (isinstance(expr, p.Ref) and expr.name == name):
                aliases[name] = expr
            else:
                aliases.pop(name, None)
        group_cols = {n: p.Column(n, e.type) for n, e in groups}
        # Inside aggregates and their WHERE, a grouping's name means its expression.
        agg_inputs = {
            **inputs,
            **{n: p.Column(n, e.type, e.multivalued) for n, e in aliases.items()},
        }
        outputs: list[tuple[str, p.Expr | p.AggCall]] = []
        collected: list[tuple[str, p.AggCall]] = []
        for agg in cmd.aggs:
            name = agg.name or self.column_name(agg.expr)
            st = _Stats(group_cols, agg_inputs, aliases=aliases)
            if agg.where is not None:
                st.filter = self.condition(agg.where, _Env(agg_inputs, aliases=aliases))
            resolved = self.expr(agg.expr, _Env(group_cols, stats=st))
            direct = isinstance(resolved, p.Ref) and len(st.found) == 1 and _is_agg_call(agg.expr)
            outputs.append((name, st.found[0][1] if direct else resolved))
            collected.extend(st.found)
        self.shadow_warnings(cmd)
        # Rightmost wins among equal names; a grouping wins over an aggregate.
        group_names = [n for n, _ in groups]
        kept_groups = [(n, e) for i, (n, e) in enumerate(groups) if n not in group_names[i + 1 :]]
        out_names = [n for n, _ in outputs]
        kept = [
            (n, e)
            for i, (n, e) in enumerate(outputs)
            if n not in out_names[i + 1 :] and n not in group_names
        ]
        return kept_groups, kept, collected

    def inline_stats(self, cmd: ast.Stats) -> list[p.Step]:
        """INLINE STATS: the input columns (less those named like a result), then the outputs,
        then the groupings; a grouping that copies another (see same_groups) is not a second key
        but a copy made by an Eval after the InlineAggregate, then a Project restores the order."""
        inputs = self.snapshot()
        old_origin = dict(self.origin)
        kept_groups, kept, collected = self.stats_parts(cmd)
        copies = self.same_groups(kept_groups)
        keys = [(n, e) for n, e in kept_groups if n not in copies]
        outputs = [
            (n, _ref_to(collected, e) if isinstance(e, p.AggCall) else _renamed_refs(e, copies))
            for n, e in kept
        ]
        named = {n for n, _ in kept} | {n for n, _ in kept_groups}
        keys_mv = any(e.multivalued for _, e in keys)
        columns = [c for c in inputs if c.name not in named]
        columns += [p.Column(n, e.type, e.multivalued or keys_mv) for n, e in outputs]
        columns += [p.Column(n, e.type, e.multivalued) for n, e in keys]
        self.columns = {c.name: c for c in columns}
        for name, _expr in [*outputs, *kept_groups]:
            self.origin.pop(name, None)
            self.identity[name] = object()
        for name, expr in kept_groups:
            if isinstance(expr, p.Ref):
                # The grouping column holds the row's own value: still the field it reads.
                self.identity[name] = self.identity_of(expr.name)
                if expr.name in old_origin:
                    self.origin[name] = old_origin[expr.name]
        step = p.InlineAggregate(
            tuple(collected), tuple(keys), tuple(outputs), tuple(columns), cmd.span
        )
        if not copies:
            return [step]
        assignments = tuple(
            (n, p.Ref(o, self.columns[o].type, self.columns[o].multivalued))
            for n, o in copies.items()
        )
        for name, ref in assignments:
            self.columns[name] = p.Column(name, ref.type, ref.multivalued)
        ev = p.Eval(assignments, self.snapshot(), cmd.span)
        final = [c.name for c in inputs if c.name not in named]
        final += [n for n, _ in kept] + [n for n, _ in kept_groups]
        self.columns = {n: self.columns[n] for n in final}
        return [step, ev, p.Project(tuple((n, n) for n in final), self.snapshot(), cmd.span)]

    def same_groups(self, groups: list[tuple[str, p.Expr]]) -> dict[str, str]:
        """Groupings that name the same values as an earlier one (`EVAL z = y | STATS BY y, z`):
        grouping name -> the earlier grouping's name. They are one key, expanded once."""
        first: dict[object, str] = {}
        copies: dict[str, str] = {}
        for name, expr in groups:
            if not isinstance(expr, p.Ref):
                continue
            identity = self.identity_of(expr.name)
            if identity in first:
                copies[name] = first[identity]
            else:
                first[identity] = name
        return copies

    def shadow_warnings(self, cmd: ast.Stats) -> None:
        """Elasticsearch's warning for each STATS column hidden by a later one of the same name
        (a grouping hides aggregates)."""
        entries = [(a.name or self.column_name(a.expr), a.span, False) for a in cmd.aggs]
        entries += [(g.name or self.column_name(g.expr), g.span, True) for g in cmd.by]
        for name in dict.fromkeys(n for n, _, _ in entries):
            same = [(span, is_group) for n, span, is_group in entries if n == name]
            if len(same) < 2:
                continue
            groups = [span for span, is_group in same if is_group]
            winner = groups[-1] if groups else same[-1][0]
            for span, _ in same:
                if span is not winner and span != ast.NO_SPAN:
                    self.warnings.append(
                        f"Line {span.line}:{span.col}: Field '{name}' shadowed by field at "
                        f"line {winner.line}:{winner.col}"
                    )

    def lowered_stats(
        self,
        span: Span,
        collected: list[tuple[str, p.AggCall]],
        kept: list[tuple[str, p.Expr | p.AggCall]],
        groups: list[tuple[str, p.Expr]],
        copies: Mapping[str, str] | None = None,
        all_groups: list[tuple[str, p.Expr]] | None = None,
    ) -> list[p.Step]:
        """Scalar expressions over aggregates: Aggregate (internal names), Eval, then Project.
        `copies` are groupings computed as a copy of another one (see same_groups); `all_groups`
        is then every grouping in output order."""
        agg_cols = [p.Column(n, c.type, c.multivalued) for n, c in collected]
        group_cols = [p.Column(n, e.type) for n, e in groups]
        aggregate = p.Aggregate(tuple(collected), tuple(groups), (*agg_cols, *group_cols), span)
        eval_cols = {c.name: c for c in (*agg_cols, *group_cols)}
        assignments: list[tuple[str, p.Expr]] = []
        for name, e in kept:
            expr = _ref_to(collected, e) if isinstance(e, p.AggCall) else e
            assignments.append((name, expr))
            eval_cols.pop(name, None)
            eval_cols[name] = p.Column(name, expr.type, expr.multivalued)
        for name, original in (copies or {}).items():
            assignments.append((name, p.Ref(original, eval_cols[original].type)))
            eval_cols[name] = p.Column(name, eval_cols[original].type)
        ev = p.Eval(tuple(assignments), tuple(eval_cols.values()), span)
        final = [n for n, _ in kept] + [n for n, _ in (all_groups or groups)]
        self.columns = {n: eval_cols[n] for n in final}
        project = p.Project(tuple((n, n) for n in final), self.snapshot(), span)
        return [aggregate, ev, project]

    # -- expressions ---------------------------------------------------------------------------

    def expr(self, node: ast.Expr, env: _Env) -> p.Expr:
        handler = _EXPR_HANDLERS[type(node)]
        return handler(self, node, env)

    def literal(self, node: ast.Literal, env: _Env) -> p.Expr:
        if node.kind == "null":
            return p.Const(None, T.NULL, node.span)
        if node.kind == "integer":
            return _integer_const(cast(int, node.value), node.span)
        if node.kind == "decimal":
            return p.Const(float(cast(float, node.value)), T.DOUBLE, node.span)
        if node.kind == "string":
            return p.Const(node.value, T.KEYWORD, node.span)
        if node.kind == "boolean":
            return p.Const(bool(node.value), T.BOOLEAN, node.span)
        raise UnsupportedFeatureError(f"query parameter [?{node.value}]", node.span, self.src)

    def time_span(self, node: ast.TimeSpan, env: _Env) -> p.Expr:
        if node.unit == "nanosecond":
            return p.Const(
                p.TemporalAmount(millis=node.amount // 1_000_000), T.TIME_DURATION, node.span
            )
        type_, part, factor = _TEMPORAL_UNITS[node.unit]
        amount = p.TemporalAmount(**{part: node.amount * factor})
        return p.Const(amount, type_, node.span)

    def list_literal(self, node: ast.ListLiteral, env: _Env) -> p.Expr:
        items = [self.signed_integer(item) or self.expr(item, env) for item in node.items]
        if any(not isinstance(i, p.Const) for i in items):
            raise self.error("list items must be constants", node.span)
        consts = [cast(p.Const, i) for i in items if cast(p.Const, i).value is not None]
        if not consts:
            return p.Const(None, T.NULL, node.span)
        type_ = consts[0].type
        for c in consts[1:]:
            if c.type.is_numeric and type_.is_numeric:
                type_ = widen(type_, c.type)
            elif c.type != type_:
                raise self.error(
                    f"multivalue literals must be of the same type, found [{type_.value}] and [{c.type.value}]",
                    node.span,
                )
        vals = [_widen_value(c.value, type_) for c in consts]
        return p.Const(vals if len(vals) > 1 else vals[0], type_, node.span)

    def signed_integer(self, node: ast.Expr) -> p.Const | None:
        """In a multivalue literal a sign belongs to the number (`[-2147483648]` is an integer,
        not the negation of the long 2147483648)."""
        if not (isinstance(node, ast.Unary) and isinstance(node.operand, ast.Literal)):
            return None
        if node.operand.kind != "integer":
            return None
        value = cast(int, node.operand.value)
        value = -value if node.op == "-" else value
        return p.Const(value, _integer_type(value), node.span)

    def field(self, node: ast.Field, env: _Env) -> p.Expr:
        alias = env.aliases.get(node.name)
        if alias is not None:
            return alias
        col = env.columns.get(node.name)
        if col is None:
            if env.stats is not None and node.name in env.stats.input_columns:
                raise self.error(
                    f"column [{node.name}] must appear in the STATS BY clause or be used in an "
                    "aggregate function",
                    node.span,
                )
            raise self.unknown_column(node.name, node.span, list(env.columns))
        if col.type is T.UNSUPPORTED:
            raise self.error(f"Cannot use field [{node.name}] with unsupported type", node.span)
        if env.stats is None and node.name in self.origin:
            self.used.add(self.origin[node.name])
        return p.Ref(node.name, col.type, col.multivalued, node.span)

    def unknown_column(self, name: str, span: Span, candidates: list[str]) -> QuerySemanticError:
        close = _closest(name, candidates)
        hint = ""
        if len(close) == 1:
            hint = f", did you mean [{close[0]}]?"
        elif close:
            hint = f", did you mean any of [{', '.join(close)}]?"
        return self.error(f"Unknown column [{name}]{hint}", span)

    def unary(self, node: ast.Unary, env: _Env) -> p.Expr:
        operand = self.expr(node.operand, env)
        if node.op == "+":
            return operand
        if operand.type not in (*fns.NUMERIC, *fns.TEMPORAL_AMOUNT, T.NULL):
            raise self.type_error(node, 0, node.operand, operand, fns.NUMERIC)
        if isinstance(operand, p.Const) and not isinstance(operand.value, list):
            value = _negate(operand.value)
            if isinstance(node.operand, ast.Literal) and isinstance(value, int):
                # The sign belongs to an integer literal (ES|QL's grammar): -9223372036854775808
                # is a long, as 9223372036854775808 alone is an unsigned_long.
                return _integer_const(value, node.span)
            if not isinstance(value, int) or _fits(value, operand.type):
                return p.Const(value, operand.type, node.span)
            # -(-2147483648) overflows: the executors' negation warns as Elasticsearch does.
        return p.Call("neg", (operand,), operand.type, False, node.span)

    def binary(self, node: ast.Binary, env: _Env) -> p.Expr:
        left = self.expr(node.left, env)
        right = self.expr(node.right, env)
        if node.op in _ARITH:
            return self.arithmetic(node, _ARITH[node.op], left, right)
        return self.comparison(node, _COMPARE[node.op], left, right)

    def arithmetic(self, node: ast.Binary, fn: str, left: p.Expr, right: p.Expr) -> p.Expr:
        lt, rt = left.type, right.type
        allowed = fns.NUMERIC | fns.DATE | fns.TEMPORAL_AMOUNT | {T.NULL}
        for index, (arg_node, arg) in enumerate(((node.left, left), (node.right, right))):
            if arg.type not in allowed:
                raise self.type_error(node, index, arg_node, arg, allowed - {T.NULL})
        result: T | None = None
        if lt is T.NULL or rt is T.NULL:
            result = rt if lt is T.NULL else lt
        elif lt.is_numeric and rt.is_numeric:
            result = widen(lt, rt)
        elif fn in ("add", "sub") and lt in fns.DATE and rt.is_temporal_amount:
            result = lt
        elif fn == "add" and lt.is_temporal_amount and rt in fns.DATE:
            result = rt
        elif fn in ("add", "sub") and lt.is_temporal_amount and lt == rt:
            result = lt
        if result is None:
            raise self.error(
                f"[{node.op}] has arguments with incompatible types [{lt.value}] and [{rt.value}]",
                node.span,
            )
        return p.Call(fn, (left, right), result, False, node.span)

    def comparison(self, node: ast.Binary, fn: str, left: p.Expr, right: p.Expr) -> p.Expr:
        left, right = self.implicit_pair(left, right)
        if fn == "eq_ci":
            for index, (arg_node, arg) in enumerate(((node.left, left), (node.right, right))):
                if arg.type not in (*fns.STRING, T.NULL):
                    raise self.type_error(node, index, arg_node, arg, fns.STRING)
        self.check_comparable(node, left, right)
        return p.Call(fn, (left, right), T.BOOLEAN, False, node.span)

    def implicit_pair(self, left: p.Expr, right: p.Expr) -> tuple[p.Expr, p.Expr]:
        """A string literal compared with a datetime/ip/version/boolean is cast to that type."""
        if _is_string_const(right) and left.type in _CASTABLE_FROM_STRING:
            return left, self.cast_literal(cast(p.Const, right), left.type)
        if _is_string_const(left) and right.type in _CASTABLE_FROM_STRING:
            return self.cast_literal(cast(p.Const, left), right.type), right
        return left, right

    def check_comparable(self, node: ast.Expr, left: p.Expr, right: p.Expr) -> None:
        lt, rt = left.type, right.type
        if T.NULL in (lt, rt) or _compatible(lt, rt):
            return
        category = "numeric" if lt.is_numeric else lt.value
        raise self.error(
            f"first argument of [{self.text(node)}] is [{category}] so second argument must also "
            f"be [{category}] but was [{rt.value}]",
            node.span,
        )

    def cast_literal(self, const: p.Const, target: T) -> p.Const:
        try:
            if target.is_temporal_amount:
                value: object = _parse_temporal_amount(cast(str, const.value), target)
            elif isinstance(const.value, list):
                value = [values.convert(v, target) for v in const.value]
            else:
                value = values.convert(const.value, target)
        except (values.ConversionError, ValueError) as exc:
            raise self.error(
                f"Cannot convert string [{const.value}] to [{target.value.upper()}], error [{exc}]",
                const.span,
            ) from None
        return p.Const(value, target, const.span)

    def logical(self, node: ast.And | ast.Or, env: _Env) -> p.Expr:
        args = []
        for index, child in enumerate(node.operands):
            arg = self.expr(child, env)
            if arg.type not in (T.BOOLEAN, T.NULL):
                # Named as Elasticsearch names it in its left-deep tree: the chain up to this
                # operand (the first two for the first), this operand its first or second argument.
                last = node.operands[max(index, 1)].span
                prefix = dataclasses.replace(node, span=node.span.join(last).cut(last.end))
                raise self.type_error(prefix, min(index, 1), child, arg, fns.BOOLEAN)
            args.append(arg)
        fn = "and" if isinstance(node, ast.And) else "or"
        return p.balanced(fn, args, node.span)

    def not_(self, node: ast.Not, env: _Env) -> p.Expr:
        arg = self.expr(node.operand, env)
        if arg.type not in (T.BOOLEAN, T.NULL):
            raise self.type_error(node, 0, node.operand, arg, fns.BOOLEAN)
        return p.Call("not", (arg,), T.BOOLEAN, False, node.span)

    def in_(self, node: ast.In, env: _Env) -> p.Expr:
        value = self.expr(node.value, env)
        items: list[p.Expr] = []
        for item_node in node.items:
            item = self.expr(item_node, env)
            value, item = self.implicit_pair(value, item)
            self.check_comparable(node, value, item)
            items.append(item)
        call = p.Call("in", (value, *items), T.BOOLEAN, False, node.span)
        return p.Call("not", (call,), T.BOOLEAN, False, node.span) if node.negated else call

    def like(self, node: ast.Like, env: _Env) -> p.Expr:
        value = self.expr(node.value, env)
        if value.type not in (*fns.STRING, T.NULL):
            raise self.type_error(node, 0, node.value, value, fns.STRING)
        fn = "rlike" if node.regex else "like"
        for pattern in node.patterns:
            self.check_pattern(pattern, node)
        if all(pat == ("." + "*" if node.regex else "*") for pat in node.patterns):
            # Elasticsearch rewrites a match-everything pattern to IS NOT NULL (so a multivalue
            # matches and NOT LIKE "*" keeps the nulls); reconwatch does the same.
            present = p.Call("is_not_null", (value,), T.BOOLEAN, False, node.span)
            return (
                p.Call("not", (present,), T.BOOLEAN, False, node.span) if node.negated else present
            )
        patterns = tuple(p.Const(pat, T.KEYWORD, node.span) for pat in node.patterns)
        call = p.Call(fn, (value, *patterns), T.BOOLEAN, False, node.span)
        return p.Call("not", (call,), T.BOOLEAN, False, node.span) if node.negated else call

    def check_pattern(self, pattern: str, node: ast.Like) -> None:
        if not node.regex:
            return
        try:
            rlike_to_regex(pattern)
        except PatternError as exc:
            if exc.unsupported:
                raise UnsupportedFeatureError(str(exc), node.span, self.src) from None
            raise self.error(
                f"Invalid regex pattern for RLIKE [{pattern}]: [{exc}]", node.span
            ) from None

    def is_null(self, node: ast.IsNull, env: _Env) -> p.Expr:
        value = self.expr(node.value, env)
        fn = "is_not_null" if node.negated else "is_null"
        return p.Call(fn, (value,), T.BOOLEAN, False, node.span)

    def cast_(self, node: ast.Cast, env: _Env) -> p.Expr:
        target = parse_type(node.type_name)
        if target is None:
            raise self.error(f"Unknown data type named [{node.type_name}]", node.span)
        value = self.expr(node.value, env)
        name = f"cast_{target.value}"
        fn = fns.REGISTRY.get(name)
        if fn is None:
            raise UnsupportedFeatureError(f"cast to [{node.type_name}]", node.span, self.src)
        if value.type == target:
            return value
        accepted = fn.params[0].types
        if value.type not in (*accepted, T.NULL):
            raise self.type_error(node, 0, node.value, value, accepted)
        return p.Call(name, (value,), target, _is_mv(value), node.span)

    def match(self, node: ast.Match, env: _Env) -> p.Expr:
        raise UnsupportedFeatureError("match operator [:]", node.span, self.src)

    def map_literal(self, node: ast.MapLiteral, env: _Env) -> p.Expr:
        raise UnsupportedFeatureError("function options {...}", node.span, self.src)

    def call(self, node: ast.Call, env: _Env) -> p.Expr:
        name = node.name.lower()
        if name == "kql":
            return self.kql(node, env)
        if name in fns.UNSUPPORTED:
            raise UnsupportedFeatureError(f"function [{name}]", node.span, self.src)
        fn = fns.lookup(name)
        if fn is None or fn.kind is fns.Kind.OPERATOR:
            known = [n for n, f in fns.REGISTRY.items() if f.kind is not fns.Kind.OPERATOR]
            import difflib  # for the message only: a query that analyses never loads it

            close = difflib.get_close_matches(name, known, n=1, cutoff=0.8)
            hint = f", did you mean [{close[0]}]?" if close else ""
            raise self.error(f"Unknown function [{node.name}]{hint}", node.span)
        if fn.kind is fns.Kind.AGGREGATE:
            return self.aggregate_call(node, fn, env)
        args = [self.expr(a, env) for a in node.args]
        self.check_arity(node, fn, len(args))
        if fn.name == "case":
            return self.case(node, args)
        args = [self.check_arg(node, fn, i, a) for i, a in enumerate(args)]
        if fn.name == "bucket" and len(args) != 2:
            args = [args[0], self.bucket_span(node, args)]
        result = fn.result([a.type for a in args])
        if fn.name in _SAME_TYPE_ARGS:
            self.check_same_types(node, args)
            result = _common_type([a.type for a in args])
            if result.is_numeric and fn.name in _WIDENED_ARGS:
                args = [_widen_expr(a, result) for a in args]
        return p.Call(fn.name, tuple(args), result, _call_mv(fn, args), node.span)

    def bucket_span(self, node: ast.Call, args: list[p.Expr]) -> p.Expr:
        """BUCKET(field, count, from, to) as the span Elasticsearch picks: for numbers the
        power of ten (or half of one) nearest above (to - from) / count; for dates the finest
        of its human roundings (month, week, day, 12h, 3h, 1h, 30m, ... 1ms) giving at most
        `count` buckets over [from, to), else a year."""
        if len(args) != 4 or not all(isinstance(a, p.Const) for a in args[1:]):
            raise self.error(
                f"[{self.text(node)}] needs a constant bucket count with constant from and to",
                node.span,
            )
        count, low, high = (cast(p.Const, a).value for a in args[1:])
        if not isinstance(count, int) or isinstance(count, bool) or count <= 0:
            raise self.error(f"[{self.text(node)}]: the bucket count must be > 0", node.span)
        if args[0].type.is_numeric:
            if not all(isinstance(x, int | float) for x in (low, high)):
                raise self.error(f"[{self.text(node)}]: from and to must be numbers", node.span)
            span = _numeric_bucket_span(float(cast(float, low)), float(cast(float, high)), count)
            return p.Const(span, T.DOUBLE, node.span)
        try:
            start, end = (_as_datetime(x) for x in (low, high))
        except values.ConversionError as exc:
            raise self.error(f"[{self.text(node)}]: {exc}", node.span) from None
        amount = _date_bucket_span(start, end, count)
        kind = T.TIME_DURATION if amount.millis else T.DATE_PERIOD
        return p.Const(amount, kind, node.span)

    def kql(self, node: ast.Call, env: _Env) -> p.Expr:
        """KQL("...") lowered to ordinary plan expressions over the visible columns (esql/kql.py)."""
        where = _kql_text(node, self.src)
        if where is None:
            raise self.error(
                f"[{self.text(node)}] needs exactly one argument, a constant string", node.span
            )
        from reconwatch.esql import kql

        expr = kql.lower(kql.parse(where), where, env.columns, node.span)
        if env.stats is None:
            for name in _ref_names(expr):
                if name in self.origin:
                    self.used.add(self.origin[name])
        return expr

    def check_arity(self, node: ast.Call, fn: fns.FunctionDef, count: int) -> None:
        low, high = fn.min_args, fn.max_args
        if low <= count and (high is None or count <= high):
            return
        if high == low:
            what = {0: "no arguments", 1: "exactly one argument"}.get(
                low, f"exactly {low} arguments"
            )
        elif high is None or count < low:
            what = f"at least {low} argument{'s' if low != 1 else ''}"
        else:
            what = f"at most {high} argument{'s' if high != 1 else ''}"
        raise self.error(f"error building [{fn.name}]: expects {what}", node.span)

    def check_arg(self, node: ast.Call, fn: fns.FunctionDef, index: int, arg: p.Expr) -> p.Expr:
        accepted = fn.param_for(index).types
        if arg.type is T.NULL or arg.type in accepted:
            return arg
        if _is_string_const(arg):
            targets = [t for t in (*_CASTABLE_FROM_STRING, *_TEMPORAL_FROM_STRING) if t in accepted]
            for target in targets[:-1]:
                # "1 hour" is a time_duration, "1 day" a date_period: the first that parses wins.
                try:
                    return self.cast_literal(cast(p.Const, arg), target)
                except QuerySemanticError:
                    continue
            if targets:
                return self.cast_literal(cast(p.Const, arg), targets[-1])
        expected = fn.param_for(index).expected
        raise self.type_error(node, index, node.args[index], arg, accepted, expected)

    def type_error(
        self,
        node: ast.Expr,
        index: int,
        arg_node: ast.Expr,
        arg: p.Expr,
        accepted: fns.TypeSet,
        expected: str | None = None,
    ) -> QuerySemanticError:
        return self.error(
            f"{ordinal(index)} argument of [{self.text(node)}] must be "
            f"[{expected or fns.type_list(accepted)}], "
            f"found value [{self.text(arg_node)}] type [{arg.type.value}]",
            node.span,
        )

    def check_same_types(self, node: ast.Call, args: list[p.Expr]) -> None:
        types = [a.type for a in args if a.type is not T.NULL]
        for index, t in enumerate(types[1:], start=1):
            if not _compatible(types[0], t):
                raise self.error(
                    f"{ordinal(index)} argument of [{self.text(node)}] must be "
                    f"[{types[0].value}], found value [{self.text(node.args[index])}] type [{t.value}]",
                    node.span,
                )

    def case(self, node: ast.Call, args: list[p.Expr]) -> p.Expr:
        values_: list[p.Expr] = []
        for index, arg in enumerate(args):
            is_condition = index % 2 == 0 and index != len(args) - 1
            if is_condition and arg.type not in (T.BOOLEAN, T.NULL):
                raise self.type_error(node, index, node.args[index], arg, fns.BOOLEAN)
            if not is_condition:
                values_.append(arg)
        types = [v.type for v in values_]
        result = _common_type(types)
        for index, v in enumerate(values_):
            if v.type is not T.NULL and not _compatible(result, v.type):
                raise self.error(
                    f"{ordinal(index + 1)} value of [{self.text(node)}] must be [{result.value}], "
                    f"found value type [{v.type.value}]",
                    node.span,
                )
        widened = [
            _widen_expr(a, result)
            if result.is_numeric and (i % 2 == 1 or i == len(args) - 1)
            else a
            for i, a in enumerate(args)
        ]
        mv = any(_is_mv(v) for v in values_)
        return p.Call("case", tuple(widened), result, mv, node.span)

    def check_agg_options(
        self, node: ast.Call, fn: fns.FunctionDef, args: list[p.Expr]
    ) -> list[p.Expr]:
        """TOP's limit and order, and COUNT_DISTINCT's precision, must be constants; integer
        arithmetic on constants is folded first (`count_distinct(h, 9875 + 1)`), as in ES."""
        if fn.name in ("top", "count_distinct"):
            args = [args[0], *(_fold_integral(a) for a in args[1:])]
        options = {"top": args[1:], "count_distinct": args[1:]}.get(fn.name, [])
        for index, option in enumerate(options, start=1):
            if not isinstance(option, p.Const) or option.value is None:
                raise self.error(
                    f"{ordinal(index)} argument of [{self.text(node)}] must be a constant, "
                    f"received [{self.text(node.args[index])}]",
                    node.span,
                )
        if fn.name == "top":
            limit = cast(p.Const, args[1]).value
            if not isinstance(limit, int) or limit <= 0:
                raise self.error(
                    f"Limit must be greater than 0 in [{self.text(node)}], found [{limit}]",
                    node.span,
                )
            order = cast(p.Const, args[2]).value if len(args) > 2 else "asc"
            if not isinstance(order, str) or order.lower() not in ("asc", "desc"):
                raise self.error(
                    f"Invalid order value in [{self.text(node)}], expected [ASC, DESC] but got "
                    f"[{order}]",
                    node.span,
                )
        return args

    def aggregate_call(self, node: ast.Call, fn: fns.FunctionDef, env: _Env) -> p.Expr:
        text = self.text(node)
        if env.in_agg is not None:
            raise self.error(
                f"The aggregation function [{text}] cannot be nested inside aggregation function "
                f"[{env.in_agg}]",
                node.span,
            )
        st = env.stats
        if st is None:
            raise self.error(
                f"aggregate function [{text}] not allowed outside STATS command", node.span
            )
        inner = _Env(st.input_columns, in_agg=text, aliases=st.aliases)
        args = [self.expr(a, inner) for a in node.args]
        star = node.star or (fn.name == "count" and not args)
        if not star:
            self.check_arity(node, fn, len(args))
        args = [self.check_arg(node, fn, i, a) for i, a in enumerate(args)]
        args = self.check_agg_options(node, fn, args)
        result = fn.result([a.type for a in args]) if args else T.LONG
        agg = p.AggCall(fn.name, tuple(args), result, star, st.filter, fn.mv_result, node.span)
        self.internal += 1
        internal = f"$agg{self.internal}"
        st.found.append((internal, agg))
        return p.Ref(internal, result, fn.mv_result, node.span)


def _renamed_refs(expr: p.Expr, names: Mapping[str, str]) -> p.Expr:
    """`expr` with references to the keys of `names` pointing at their values instead."""
    if isinstance(expr, p.Ref) and expr.name in names:
        return dataclasses.replace(expr, name=names[expr.name])
    if isinstance(expr, p.Call):
        return dataclasses.replace(expr, args=tuple(_renamed_refs(a, names) for a in expr.args))
    return expr


def _ref_to(collected: list[tuple[str, p.AggCall]], agg: p.AggCall) -> p.Expr:
    for name, candidate in collected:
        if candidate is agg:
            return p.Ref(name, agg.type, agg.multivalued, agg.span)
    raise AssertionError("aggregate not collected")


# Dispatch, as everywhere in the package: a table from the node's type to the function or
# unbound method that handles it (its parameter typed precisely; the table's Any admits it).
_HANDLERS: dict[type[ast.Command], Callable[[_Analyzer, Any], p.Step | list[p.Step]]] = {
    ast.Where: _Analyzer.where,
    ast.Eval: _Analyzer.eval_,
    ast.Keep: _Analyzer.keep,
    ast.Drop: _Analyzer.drop,
    ast.Rename: _Analyzer.rename,
    ast.Stats: _Analyzer.stats,
    ast.Sort: _Analyzer.sort,
    ast.Limit: _Analyzer.limit,
    ast.MvExpand: _Analyzer.mv_expand,
    ast.Dissect: _Analyzer.dissect,
    ast.Grok: _Analyzer.grok,
}

_EXPR_HANDLERS: dict[type[ast.Expr], Callable[[_Analyzer, Any, _Env], p.Expr]] = {
    ast.Literal: _Analyzer.literal,
    ast.TimeSpan: _Analyzer.time_span,
    ast.ListLiteral: _Analyzer.list_literal,
    ast.Field: _Analyzer.field,
    ast.Call: _Analyzer.call,
    ast.Unary: _Analyzer.unary,
    ast.Binary: _Analyzer.binary,
    ast.And: _Analyzer.logical,
    ast.Or: _Analyzer.logical,
    ast.Not: _Analyzer.not_,
    ast.In: _Analyzer.in_,
    ast.Like: _Analyzer.like,
    ast.IsNull: _Analyzer.is_null,
    ast.Cast: _Analyzer.cast_,
    ast.Match: _Analyzer.match,
    ast.MapLiteral: _Analyzer.map_literal,
}


# ---------------------------------------------------------------------------------------------
# Helpers


_INTEGRAL_OPS: dict[str, Callable[[int, int], int]] = {
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "mul": lambda a, b: a * b,
}


def _fold_integral(expr: p.Expr) -> p.Expr:
    """Integer arithmetic on constants as one constant (other expressions unchanged)."""
    if not isinstance(expr, p.Call) or expr.type not in (T.INTEGER, T.LONG):
        return expr
    args = [_fold_integral(a) for a in expr.args]
    values = [a.value for a in args if isinstance(a, p.Const) and isinstance(a.value, int)]
    if len(values) != len(args):
        return expr
    if expr.fn == "neg" and len(values) == 1:
        folded = -values[0]
    else:
        op = _INTEGRAL_OPS.get(expr.fn)
        if op is None or len(values) != 2:
            return expr
        folded = op(values[0], values[1])
    # An overflow is not folded: the option is then not a constant, and refused as one.
    return p.Const(folded, expr.type, expr.span) if _fits(folded, expr.type) else expr


def _fits(value: int, type_: T) -> bool:
    """Whether an integer is inside an integral type's range (any value fits another type)."""
    low, high = {
        T.INTEGER: (values.INT_MIN, values.INT_MAX),
        T.LONG: (values.LONG_MIN, values.LONG_MAX),
        T.UNSIGNED_LONG: (0, values.ULONG_MAX),
    }.get(type_, (value, value))
    return low <= value <= high


def _ref_names(expr: p.Expr) -> Iterator[str]:
    if isinstance(expr, p.Ref):
        yield expr.name
    elif isinstance(expr, p.Call):
        for arg in expr.args:
            yield from _ref_names(arg)


def _flatten_or(expr: p.Expr) -> list[p.Expr]:
    return p.flatten("or", expr)


_NEGATED = {"lt": "gte", "lte": "gt", "gt": "lte", "gte": "lt", "eq": "neq", "neq": "eq"}
_RANGE_IMPLIES = {
    "gt": lambda c, d: c > d,
    "gte": lambda c, d: c >= d,
    "lt": lambda c, d: c < d,
    "lte": lambda c, d: c <= d,
}


def _field_against_number(expr: p.Expr) -> tuple[str, str, float] | None:
    """(field, operator, number) of `field <op> number` with a numeric constant on the right."""
    if not isinstance(expr, p.Call) or len(expr.args) != 2:
        return None
    ref, const = expr.args
    if not (isinstance(ref, p.Ref) and isinstance(const, p.Const)):
        return None
    number = const.value
    if isinstance(number, bool) or not isinstance(number, int | float):
        return None
    return ref.name, expr.fn, number


def _without_implied_equalities(disjuncts: list[p.Expr]) -> list[p.Expr]:
    """Elasticsearch's optimizer drops an OR-ed `f == c` that another disjunct `f > d` (>=, <,
    <=) on the same field already covers (`a == 2 OR a > 1` is `a > 1`): the dropped test is
    never evaluated, so it cannot warn."""
    tests = [_field_against_number(d) for d in disjuncts]
    ranges = [t for t in tests if t is not None and t[1] in _RANGE_IMPLIES]
    if not ranges:
        return disjuncts
    kept: list[p.Expr] = []
    for d, t in zip(disjuncts, tests, strict=True):
        implied = (
            t is not None
            and t[1] == "eq"
            and any(
                field == t[0] and _RANGE_IMPLIES[op](t[2], bound) for field, op, bound in ranges
            )
        )
        if not implied:
            kept.append(d)
    return kept


def _merge_into_in(disjuncts: list[p.Expr], indexes: list[int], field_ref: p.Ref) -> set[int]:
    """Elasticsearch's optimizer turns OR-ed `field == const` / `field IN (consts)` of one field
    into one IN (same result, one warning site: the field's). Done here too, in place of the
    first, when every constant has the field's type; the indexes it replaced are returned. A
    rule's thousands of OR-ed values are then one IN list, not a tree of comparisons that
    DuckDB binds slowly (3,000 terms: 36 s and 1.5 GB)."""
    values: list[p.Expr] = []
    taken: list[int] = []
    for index in indexes:
        d = disjuncts[index]
        assert isinstance(d, p.Call)
        if d.fn not in ("eq", "in"):
            continue
        consts = [_as_type(a, field_ref.type) for a in d.args if isinstance(a, p.Const)]
        if any(c is None for c in consts):
            continue
        values.extend(c for c in consts if c is not None)
        taken.append(index)
    if len(taken) < 2:
        return set()
    ref = dataclasses.replace(field_ref, span=field_ref.span)
    disjuncts[taken[0]] = p.Call("in", (ref, *values), T.BOOLEAN, False, field_ref.span)
    return set(taken[1:])


# Constants an equality compares with a field of another type without changing the answer.
_WIDENS = {
    (T.INTEGER, T.LONG): int,
    (T.INTEGER, T.DOUBLE): float,
    (T.LONG, T.DOUBLE): float,
    (T.KEYWORD, T.TEXT): str,
    (T.TEXT, T.KEYWORD): str,
}


def _as_type(const: p.Const, type_: T) -> p.Const | None:
    """`const` as a constant of the field's type for an IN list, None if it may not be one."""
    if const.value is None or isinstance(const.value, list):
        return None
    if const.type is type_:
        return const
    widen = _WIDENS.get((const.type, type_))
    if widen is None or isinstance(const.value, bool):
        return None
    return p.Const(widen(const.value), type_, const.span)


def _constant_test_field(expr: p.Expr) -> p.Ref | None:
    """The field of `field == const`, `field IN (consts)`, or `CIDR_MATCH(ip, consts)`."""
    if not isinstance(expr, p.Call) or expr.fn not in ("eq", "in", "cidr_match"):
        return None
    refs = [a for a in expr.args if isinstance(a, p.Ref)]
    if len(refs) != 1 or not all(isinstance(a, p.Ref | p.Const) for a in expr.args):
        return None
    if expr.fn != "eq" and expr.args[0] is not refs[0]:
        return None
    if expr.fn == "cidr_match" and refs[0].type is not T.IP:
        return None
    return None if refs[0].span == ast.NO_SPAN else refs[0]


def _unread_inline_outputs_nulled(steps: list[p.Step]) -> list[p.Step]:
    """INLINE STATS outputs nothing later reads become null constants, and the aggregates only
    they read are dropped: Elasticsearch's optimizer prunes them, so they never run and cannot
    warn (DuckDB's optimizer would drop some of them and not others)."""
    if not any(isinstance(s, p.InlineAggregate) for s in steps):
        return steps
    needed = {c.name for c in steps[-1].columns}
    out: list[p.Step] = []
    for step in reversed(steps):
        if isinstance(step, p.InlineAggregate):
            step = _nulled_outputs(step, needed)
        needed = _needed_before(step, needed)
        out.append(step)
    return out[::-1]


def _nulled_outputs(step: p.InlineAggregate, needed: set[str]) -> p.InlineAggregate:
    outputs = tuple(
        (n, e if n in needed else p.Const(None, e.type, e.span)) for n, e in step.outputs
    )
    read = set().union(*(p.refs(e) for _, e in outputs))
    aggregates = tuple((n, a) for n, a in step.aggregates if n in read)
    return dataclasses.replace(step, aggregates=aggregates, outputs=outputs)


def _needed_before(step: p.Step, needed: set[str]) -> set[str]:
    """The columns a step and those after it read, given what is read after it."""
    if isinstance(step, p.Eval):
        for name, expr in reversed(step.assignments):
            if name in needed:
                needed = (needed - {name}) | p.refs(expr)
        return needed
    if isinstance(step, p.Project):
        return {src for out, src in step.mapping if out in needed}
    if isinstance(step, p.Aggregate | p.InlineAggregate):
        kept = set() if isinstance(step, p.Aggregate) else needed
        made = {n for n, _ in step.groups}
        if isinstance(step, p.InlineAggregate):
            made |= {n for n, _ in step.outputs}
        return (kept - made).union(
            *(p.refs(e) for _, e in step.groups),
            *(p.refs(x) for _, a in step.aggregates for x in (*a.args, a.filter) if x is not None),
        )
    if isinstance(step, p.Extract):
        return (needed - {c.name for c in step.outputs}) | p.refs(step.value)
    if isinstance(step, p.Filter):
        return needed | p.refs(step.condition)
    if isinstance(step, p.Sort):
        return needed.union(*(p.refs(k.expr) for k in step.keys))
    if isinstance(step, p.MvExpand):
        return needed | {step.column}
    return needed


def _merge_projects(first: p.Project, second: p.Project) -> p.Project:
    inner = dict(first.mapping)
    mapping = tuple((out, inner[src]) for out, src in second.mapping)
    return p.Project(mapping, second.columns, first.span)


def _closest(name: str, candidates: list[str]) -> list[str]:
    """The known names nearest to a misspelt one (ties kept), if any is near enough."""
    import difflib  # for the message only: a query that analyses never loads it

    scored = [(difflib.SequenceMatcher(None, name, c).ratio(), c) for c in candidates]
    near = [(score, c) for score, c in scored if score >= 0.8]
    if not near:
        return []
    best = max(score for score, _ in near)
    return sorted(c for score, c in near if score == best)


def _is_mv(expr: p.Expr) -> bool:
    return expr.multivalued


def _is_agg_call(node: ast.Expr) -> bool:
    fn = fns.lookup(node.name) if isinstance(node, ast.Call) else None
    return fn is not None and fn.kind is fns.Kind.AGGREGATE


def _call_mv(fn: fns.FunctionDef, args: list[p.Expr]) -> bool:
    if not fn.mv_result:
        return False
    if fn.name in ("split", "mv_append"):
        return True
    return any(a.multivalued for a in args)


def _is_string_const(expr: p.Expr) -> bool:
    return isinstance(expr, p.Const) and expr.type in fns.STRING and expr.value is not None


def _compatible(a: T, b: T) -> bool:
    if a == b:
        return True
    if a.is_numeric and b.is_numeric:
        return True
    if a.is_string and b.is_string:
        return True
    return a in fns.DATE and b in fns.DATE


def _common_type(types: list[T]) -> T:
    result = T.NULL
    for t in types:
        if t is T.NULL:
            continue
        if result is T.NULL:
            result = T.KEYWORD if t is T.TEXT else t
        elif result.is_numeric and t.is_numeric:
            result = widen(result, t)
    return result


def _widen_expr(expr: p.Expr, target: T) -> p.Expr:
    if expr.type == target or expr.type is T.NULL or not expr.type.is_numeric:
        return expr
    if isinstance(expr, p.Const):
        return p.Const(_widen_value(expr.value, target), target, expr.span)
    return p.Call(f"cast_{target.value}", (expr,), target, expr.multivalued, expr.span)


def _widen_value(value: object, target: T) -> object:
    if target is T.DOUBLE and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def _integer_const(value: int, span: Span) -> p.Const:
    """An integer literal typed by its size; past unsigned_long it is a double, and so its value."""
    type_ = _integer_type(value)
    return p.Const(float(value) if type_ is T.DOUBLE else value, type_, span)


def _integer_type(value: int) -> T:
    if values.INT_MIN <= value <= values.INT_MAX:
        return T.INTEGER
    if values.LONG_MIN <= value <= values.LONG_MAX:
        return T.LONG
    if 0 <= value <= values.ULONG_MAX:
        return T.UNSIGNED_LONG
    return T.DOUBLE


def _negate(value: object) -> object:
    if isinstance(value, p.TemporalAmount):
        return p.TemporalAmount(-value.months, -value.days, -value.millis)
    if isinstance(value, int | float):
        return -value
    return None


def _parse_temporal_amount(text: str, target: T) -> p.TemporalAmount:
    """Implicit cast of "1 hour" / "3days" to a time span."""
    stripped = text.strip()
    digits = len(stripped) - len(stripped.lstrip("+-0123456789"))
    amount_text, unit_text = stripped[:digits], stripped[digits:].strip().lower()
    unit = _UNIT_SPELLINGS.get(unit_text)
    if not amount_text or unit is None:
        msg = f"Unexpected temporal unit: '{unit_text}'"
        raise ValueError(msg)
    type_, part, factor = _TEMPORAL_UNITS[unit]
    if type_ != target:
        msg = f"Unexpected temporal unit: '{unit_text}'"
        raise ValueError(msg)
    return p.TemporalAmount(**{part: int(amount_text) * factor})


def _fallback_text(node: ast.Expr) -> str:
    """A rendering for hand-built ASTs without source spans (tests); parsed queries use spans."""
    if isinstance(node, ast.Field):
        return node.name
    if isinstance(node, ast.Literal):
        if node.kind == "string":
            return f'"{node.value}"'
        return (
            "null"
            if node.value is None
            else str(node.value).lower()
            if node.kind == "boolean"
            else str(node.value)
        )
    if isinstance(node, ast.Call):
        inner = "*" if node.star else ", ".join(_fallback_text(a) for a in node.args)
        return f"{node.name}({inner})"
    if isinstance(node, ast.Binary):
        return f"{_fallback_text(node.left)} {node.op} {_fallback_text(node.right)}"
    if isinstance(node, ast.TimeSpan):
        return f"{node.amount} {node.unit_text or node.unit}"
    return type(node).__name__.lower()


def _numeric_bucket_span(low: float, high: float, count: int) -> float:
    """The power of ten at or above (high - low) / count, or half of it when that is enough."""
    precise = (high - low) / count
    if precise <= 0:
        return 1.0
    power = 10.0 ** math.ceil(math.log10(precise))
    return power / 2 if precise < power / 2 else power


_HOUR_MS, _MINUTE_MS, _SECOND_MS = 3_600_000, 60_000, 1000
# Elasticsearch's human date roundings, coarsest first.
_DATE_ROUNDINGS = (
    p.TemporalAmount(months=1),
    p.TemporalAmount(days=7),
    p.TemporalAmount(days=1),
    *(p.TemporalAmount(millis=h * _HOUR_MS) for h in (12, 3, 1)),
    *(p.TemporalAmount(millis=m * _MINUTE_MS) for m in (30, 10, 5, 1)),
    *(p.TemporalAmount(millis=s * _SECOND_MS) for s in (30, 10, 5, 1)),
    *(p.TemporalAmount(millis=ms) for ms in (100, 50, 10, 1)),
)


def _as_datetime(value: object) -> datetime:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str):
        return values.parse_datetime(value)
    msg = f"[{value}] is not a date"
    raise values.ConversionError(msg)


def _bucket_count(start: datetime, end: datetime, amount: p.TemporalAmount) -> int:
    """How many buckets of `amount` cover [start, end)."""
    if amount.months:
        first = start.year * 12 + start.month - 1
        last = end.year * 12 + end.month - 1
        return (
            last - first + (1 if end > datetime(end.year, end.month, 1, tzinfo=end.tzinfo) else 0)
        )
    if amount.days:
        step = amount.days * 86_400_000
        origin = values.datetime_to_millis(start)
        if amount.days == 7:  # weeks start on Monday
            origin -= start.weekday() * 86_400_000
        origin -= origin % 86_400_000
    else:
        step = amount.millis
        origin = values.datetime_to_millis(start)
        origin -= origin % step
    return max(1, math.ceil((values.datetime_to_millis(end) - origin) / step))


def _date_bucket_span(start: datetime, end: datetime, count: int) -> p.TemporalAmount:
    chosen: p.TemporalAmount | None = None
    for amount in _DATE_ROUNDINGS:
        if _bucket_count(start, end, amount) > count:
            break
        chosen = amount
    return chosen if chosen is not None else p.TemporalAmount(months=12)
