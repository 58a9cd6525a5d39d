"""The logical plan as one DuckDB statement: one CTE per pipe stage, reading only referenced fields."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from typing import Any

from reconwatch.backends.duckdb.expr import (
    ORDER_KEYS,
    E,
    ExprCompiler,
    as_list,
    ident,
    list_extreme,
    norm_list,
    order_key,
    single,
    sort_values,
    sql_type,
)
from reconwatch.backends.duckdb.warnings import (
    DIV_BY_ZERO,
    LONG_OVERFLOW,
    MV_FAILURE,
    Site,
    WarningSites,
)
from reconwatch.errors import UnsupportedFeatureError
from reconwatch.esql.extract import re2_compatible
from reconwatch.plan import nodes as p
from reconwatch.records import record
from reconwatch.types import DataType as T

SOURCE_TABLE = "rw_source"
LONG_MIN, LONG_MAX = -(2**63), 2**63 - 1
# ES|QL's population statistics and median as DuckDB aggregates (exact, interpolated median).
_SPREAD = {"std_dev": "stddev_pop", "std_var": "var_pop", "median": "median"}
SOURCE_COLUMN = "__src"


@record
class Compiled:
    sql: str
    columns: tuple[p.Column, ...]
    lists: tuple[bool, ...]
    # Where evaluation may fail with a warning: the SQL's rw_warn sites, by number.
    warning_sites: tuple[Site, ...] = ()


class PlanCompiler:
    def __init__(
        self, plan: p.Plan, now_sql: str, source_lists: dict[str, bool], inputs: list[int]
    ) -> None:
        self.plan = plan
        self.now = now_sql
        self.source_lists = source_lists
        self.inputs = inputs
        self.ctes: list[tuple[str, str]] = []
        self.cols: dict[str, E] = {}
        self.warnings = WarningSites(plan.query)

    def add(self, select: str) -> str:
        name = f"s{len(self.ctes)}"
        self.ctes.append((name, select))
        return name

    @property
    def prev(self) -> str:
        return self.ctes[-1][0]

    def refs(self, columns: tuple[p.Column, ...]) -> dict[str, E]:
        return {
            c.name: E(ident(c.name), self.cols[c.name].type, self.cols[c.name].is_list)
            for c in columns
        }

    def compiler(self) -> ExprCompiler:
        return ExprCompiler(
            {n: E(ident(n), e.type, e.is_list) for n, e in self.cols.items()},
            self.now,
            self.warnings,
        )

    def run(self) -> Compiled:
        src = self.plan.source
        if isinstance(src, p.Source):
            self.source(src)
        else:
            self.row(src)
        steps = self.plan.steps
        for i, step in enumerate(steps):
            if isinstance(step, p.Aggregate):
                # Group order is only visible when no later SORT replaces it: the hot path of a
                # sorted rule pays nothing for it.
                self.step_aggregate(step, not any(isinstance(s, p.Sort) for s in steps[i + 1 :]))
                continue
            _STEPS[type(step)](self, step)
        out = self.plan.columns
        select = ", ".join(ident(c.name) for c in out) or "1 AS __empty"
        body = ",\n".join(f"{n} AS ({q})" for n, q in self.ctes)
        sql = f"WITH {body}\nSELECT {select} FROM {self.prev}"
        lists = tuple(self.cols[c.name].is_list for c in out)
        return Compiled(sql, out, lists, tuple(self.warnings.sites))

    # -- sources -------------------------------------------------------------------------------

    def source(self, src: p.Source) -> None:
        wanted = {f.name for f in src.fields}
        items: list[str] = []
        for col in src.columns:
            if col.name in wanted or col.name in src.metadata:
                is_list = self.source_lists.get(col.name, False)
                items.append(ident(col.name))
                self.cols[col.name] = E(ident(col.name), col.type, is_list)
            else:
                # A known column no step reads: null, never loaded.
                items.append(
                    f"CAST(NULL AS {sql_type(col.type) if col.type is not T.UNSUPPORTED else 'VARCHAR'}) AS {ident(col.name)}"
                )
                self.cols[col.name] = E(ident(col.name), col.type, False)
        where = f" WHERE {SOURCE_COLUMN} IN ({', '.join(map(str, self.inputs)) or 'NULL'})"
        self.add(f"SELECT {', '.join(items) or '1 AS __empty'} FROM {SOURCE_TABLE}{where}")

    def row(self, src: p.RowSource) -> None:
        c = ExprCompiler({}, self.now, self.warnings)
        items = []
        # A name assigned twice keeps its last value, in the last one's place (`ROW a = 1, a = 2`).
        last = {name: i for i, (name, _) in enumerate(src.assignments)}
        for i, (name, expr) in enumerate(src.assignments):
            if last[name] != i:
                continue
            e = c.compile(expr)
            items.append(f"{e.sql} AS {ident(name)}")
            self.cols[name] = E(ident(name), e.type, e.is_list)
        self.add("SELECT " + (", ".join(items) or "1 AS __empty"))

    # -- steps ---------------------------------------------------------------------------------

    def step_filter(self, step: p.Filter) -> None:
        sites = len(self.warnings.sites)
        cond = single(self.compiler().compile(step.condition))
        chain = isinstance(step.condition, p.Call) and step.condition.fn in ("and", "or")
        if chain and _row_dependent(self.warnings.sites[sites:], step.condition):
            # Elasticsearch evaluates every operand of AND / OR on every row, so a later operand
            # warns on rows an earlier one rejects; DuckDB's filter would skip those. A function
            # call around the condition makes DuckDB evaluate it whole, as in a projection.
            # Only a chain whose warnings depend on the row needs it: the wrapped filter is no
            # longer pushed into the reader, which then converts every field of every event.
            cond = f"coalesce({cond}, false)"
        self.add(f"SELECT * FROM {self.prev} WHERE {cond}")

    def step_eval(self, step: p.Eval) -> None:
        for name, expr in step.assignments:
            e = self.compiler().compile(expr)
            others = [ident(n) for n in self.cols if n != name]
            self.cols.pop(name, None)
            self.cols[name] = E(ident(name), e.type, e.is_list)
            self.add(f"SELECT {', '.join([*others, f'{e.sql} AS {ident(name)}'])} FROM {self.prev}")
        self.cols = {c.name: self.cols[c.name] for c in step.columns}

    def step_project(self, step: p.Project) -> None:
        items = [f"{ident(src)} AS {ident(out)}" for out, src in step.mapping]
        new = {
            out: E(ident(out), self.cols[src].type, self.cols[src].is_list)
            for out, src in step.mapping
        }
        self.cols = new
        self.add(f"SELECT {', '.join(items) or '1 AS __empty'} FROM {self.prev}")

    def step_limit(self, step: p.Limit) -> None:
        self.add(f"SELECT * FROM {self.prev} LIMIT {step.count}")

    def step_mvexpand(self, step: p.MvExpand) -> None:
        col = self.cols[step.column]
        if not col.is_list:
            return
        items = [
            f"unnest(CASE WHEN {ident(n)} IS NULL THEN [NULL] ELSE {ident(n)} END) AS {ident(n)}"
            if n == step.column
            else ident(n)
            for n in self.cols
        ]
        self.cols[step.column] = E(ident(step.column), col.type, False)
        self.add(f"SELECT {', '.join(items)} FROM {self.prev}")

    def step_sort(self, step: p.Sort) -> None:
        c = self.compiler()
        keys = []
        for key in step.keys:
            e = c.compile(key.expr)
            v = list_extreme(e.sql, e.type, key.descending) if e.is_list else e.sql
            v = order_key(v, e.type)
            order = "DESC" if key.descending else "ASC"
            nulls = "NULLS FIRST" if key.nulls_first else "NULLS LAST"
            keys.append(f"{v} {order} {nulls}")
        self.add(f"SELECT * FROM {self.prev} ORDER BY {', '.join(keys)}")

    def step_extract(self, step: p.Extract) -> None:
        value_e = self.compiler().compile(step.value)
        needs_python = (
            value_e.is_list
            or step.append
            or any(o.multivalued for o in step.outputs)
            or not re2_compatible(step.regex)
        )
        if needs_python:
            self.extract_in_python(step, value_e)
            return
        value = single(value_e)
        # Python's end-of-text \Z is RE2's \z (RE2 rejects \Z).
        regex = re.sub(r"(?<!\\)((?:\\\\)*)\\Z", r"\1\\z", step.regex).replace("'", "''")
        names = [f"g{i}" for i in range(len(step.outputs))]
        struct = f"regexp_extract({value}, '{regex}', [{', '.join(repr(n) for n in names)}])"
        items = [ident(n) for n in self.cols if n not in {o.name for o in step.outputs}]
        for g, out in zip(names, step.outputs, strict=True):
            raw = f"(CASE WHEN regexp_matches({value}, '{regex}') THEN ({struct}).{g} END)"
            typed = raw if out.type.is_string else f"TRY_CAST({raw} AS {sql_type(out.type)})"
            items.append(f"{typed} AS {ident(out.name)}")
        for out in step.outputs:
            self.cols.pop(out.name, None)
            self.cols[out.name] = E(ident(out.name), out.type, False)
        self.add(f"SELECT {', '.join(items)} FROM {self.prev}")
        self.cols = {c.name: self.cols[c.name] for c in step.columns}

    def extract_in_python(self, step: p.Extract, value: E) -> None:
        """DISSECT/GROK through rw_extract (esql/extract.py, as the reference runs it): for
        multivalued input, appends, repeated names and regexes RE2 cannot run."""
        spec = json.dumps(
            {
                "regex": step.regex,
                "outputs": [[o.name, o.type.value] for o in step.outputs],
                "append": dict(step.append),
            }
        ).replace("'", "''")
        found = f"rw_extract({as_list(value)}, '{spec}')"
        items = [ident(n) for n in self.cols if n not in {o.name for o in step.outputs}]
        for i, out in enumerate(step.outputs):
            texts = f"({found})[{i + 1}]"
            if not out.type.is_string:
                texts = f"list_transform({texts}, lambda t: TRY_CAST(t AS {sql_type(out.type)}))"
            items.append(f"{norm_list(texts)} AS {ident(out.name)}")
        for out in step.outputs:
            self.cols.pop(out.name, None)
            self.cols[out.name] = E(ident(out.name), out.type, True)
        self.add(f"SELECT {', '.join(items)} FROM {self.prev}")
        self.cols = {c.name: self.cols[c.name] for c in step.columns}

    def step_aggregate(self, step: p.Aggregate, ordered: bool = False) -> None:
        c = self.compiler()
        # Group keys are computed, then multivalued keys expanded one at a time (every combination).
        key_items = []
        keys: list[tuple[str, E]] = []
        for i, (_name, expr) in enumerate(step.groups):
            e = c.compile(expr)
            key = f"__k{i}"
            key_items.append(f"{e.sql} AS {key}")
            keys.append((key, e))
        base = self.add(f"SELECT *{''.join(', ' + k for k in key_items)} FROM {self.prev}")
        for key, e in keys:
            if e.is_list:
                t = sql_type(e.type)
                distinct = (
                    f"list_filter({key}, lambda v, i: list_position({key}, v) = i)"
                    if ordered
                    else f"list_distinct({key})"
                )
                self.add(
                    f"SELECT * REPLACE (unnest(CASE WHEN {key} IS NULL THEN [CAST(NULL AS {t})] "
                    f"ELSE {distinct} END) AS {key}) FROM {self.prev}"
                )
        del base
        order_by = ""
        if ordered and keys:
            self.add(f"SELECT *, row_number() OVER () AS __ord FROM {self.prev}")
            order_by = f" ORDER BY {_hash_order(keys)}"
        aggs = [f"{self.agg(a, c)} AS {ident(name)}" for name, a in step.aggregates]
        groups = [
            f"{k} AS {ident(name)}" for (k, _e), (name, _x) in zip(keys, step.groups, strict=True)
        ]
        group_by = f" GROUP BY {', '.join(k for k, _ in keys)}" if keys else ""
        self.add(
            f"SELECT {', '.join([*aggs, *groups]) or '1 AS __empty'} FROM {self.prev}"
            f"{group_by}{order_by}"
        )
        new: dict[str, E] = {}
        for name, a in step.aggregates:
            new[name] = E(ident(name), a.type, a.fn == "values" or a.fn == "top")
        for (name, _x), (_k, e) in zip(step.groups, keys, strict=True):
            new.pop(name, None)
            new[name] = E(ident(name), e.type, False)
        self.cols = {col.name: new[col.name] for col in step.columns}

    def step_inlineaggregate(self, step: p.InlineAggregate) -> None:
        """STATS over the rows (a multivalued key expanded to its distinct values, each with its
        position), the outputs per group, then each row joined to its groups by key (IS NOT
        DISTINCT FROM: a null key is a group) and the outputs of several groups gathered in
        combination order, first key outermost."""
        c = self.compiler()
        keys = [c.compile(expr) for _, expr in step.groups]
        expanded = self.inline_keys(keys)
        outs = self.inline_outputs(step, keys, c, expanded)
        kept = [col.name for col in step.columns[: len(step.columns) - len(outs) - len(keys)]]
        on = " AND ".join(f"x.__ig{i} IS NOT DISTINCT FROM o.__ig{i}" for i in range(len(keys)))
        joined = f"{expanded} AS x LEFT JOIN {self.prev} AS o ON {on or 'TRUE'}"
        lists = any(e.is_list for e in keys)
        key_names = [name for name, _ in step.groups]
        out_names = [name for name, _ in step.outputs]
        if lists:
            order = ", ".join(f"x.__ix{i}.i" for i, e in enumerate(keys) if e.is_list)
            select = [f"any_value(x.{ident(n)}) AS {ident(n)}" for n in kept]
            select += [
                f"{_gathered(f'o.__io{i}', o, order)} AS {ident(n)}"
                for i, (n, o) in enumerate(zip(out_names, outs, strict=True))
            ]
            select += [f"any_value(x.__ik{i}) AS {ident(n)}" for i, n in enumerate(key_names)]
            self.add(f"SELECT {', '.join(select)} FROM {joined} GROUP BY x.__ir ORDER BY x.__ir")
        else:
            select = [f"x.{ident(n)}" for n in kept]
            select += [f"o.__io{i} AS {ident(n)}" for i, n in enumerate(out_names)]
            select += [f"x.__ik{i} AS {ident(n)}" for i, n in enumerate(key_names)]
            self.add(f"SELECT {', '.join(select) or '1 AS __empty'} FROM {joined} ORDER BY x.__ir")
        new = {n: E(ident(n), self.cols[n].type, self.cols[n].is_list) for n in kept}
        for n, o in zip(out_names, outs, strict=True):
            new[n] = E(ident(n), o.type, o.is_list or lists)
        for n, e in zip(key_names, keys, strict=True):
            new[n] = E(ident(n), e.type, e.is_list)
        self.cols = {col.name: new[col.name] for col in step.columns}

    def inline_keys(self, keys: list[E]) -> str:
        """The rows numbered (__ir) with their keys (__ik*), one row per distinct combination of
        key values (__ig*), a LIST key's value coming with its position (__ix*.i)."""
        items = "".join(f", {e.sql} AS __ik{i}" for i, e in enumerate(keys))
        self.add(f"SELECT *, row_number() OVER () AS __ir{items} FROM {self.prev}")
        for i, e in enumerate(keys):
            if e.is_list:
                values = _positioned(f"__ik{i}", e.type)
                self.add(f"SELECT *, unnest({values}) AS __ix{i} FROM {self.prev}")
        groups = "".join(
            f", {f'__ix{i}.v' if e.is_list else f'__ik{i}'} AS __ig{i}" for i, e in enumerate(keys)
        )
        return self.add(f"SELECT *{groups} FROM {self.prev}")

    def inline_outputs(
        self, step: p.InlineAggregate, keys: list[E], c: ExprCompiler, expanded: str
    ) -> list[E]:
        """The aggregates per group, then the outputs (__io*) over them and the group's keys."""
        group_keys = [f"__ig{i}" for i in range(len(keys))]
        aggs = [f"{self.agg(a, c)} AS {ident(name)}" for name, a in step.aggregates]
        group_by = f" GROUP BY {', '.join(group_keys)}" if keys else ""
        items = ", ".join([*group_keys, *aggs]) or "1 AS __empty"
        grouped = self.add(f"SELECT {items} FROM {expanded}{group_by}")
        inner = {n: E(ident(n), a.type, a.fn in ("values", "top")) for n, a in step.aggregates}
        for i, ((name, _), e) in enumerate(zip(step.groups, keys, strict=True)):
            inner[name] = E(f"__ig{i}", e.type, False)
        oc = ExprCompiler(inner, self.now, self.warnings)
        outs = [oc.compile(expr) for _, expr in step.outputs]
        items = ", ".join([*group_keys, *(f"{o.sql} AS __io{i}" for i, o in enumerate(outs))])
        self.add(f"SELECT {items or '1 AS __empty'} FROM {grouped}")
        return outs

    def agg(self, a: p.AggCall, c: ExprCompiler) -> str:
        filt = ""
        if a.filter is not None:
            filt = f" FILTER (WHERE {single(c.compile(a.filter))})"
        if a.fn == "count" and (a.star or not a.args):
            return f"count(*){filt}"
        arg = c.compile(a.args[0])
        if a.fn == "count":
            inner = f"sum(len({arg.sql})){filt}" if arg.is_list else f"count({arg.sql}){filt}"
            return f"CAST(COALESCE({inner}, 0) AS BIGINT)"
        if a.fn == "count_distinct":
            # Exact, where Elasticsearch's HyperLogLog++ is approximate above its precision.
            if arg.is_list:
                return f"CAST(COALESCE(len(list_distinct(flatten(list({arg.sql}){filt}))), 0) AS BIGINT)"
            return f"count(DISTINCT {arg.sql}){filt}"
        if a.fn == "values":
            # Elasticsearch leaves the order unspecified; the type's order (as the reference) is
            # reproducible.
            if arg.is_list:
                found = f"list_distinct(flatten(list({arg.sql}){filt}))"
            else:
                # DuckDB's list keeps a NULL as an element; ES|QL's VALUES skips it.
                found = f"list(DISTINCT {arg.sql}){_filter_and(filt, f'{arg.sql} IS NOT NULL')}"
            return _null_if_empty(sort_values(found, a.type))
        if a.fn in ("min", "max"):
            return self.min_max(a.fn, arg, filt)
        if a.fn == "sum":
            v = f"list_sum({arg.sql})" if arg.is_list else arg.sql
            if a.type not in (T.LONG, T.UNSIGNED_LONG):
                return f"TRY_CAST(sum({v}){filt} AS {sql_type(a.type)})"
            total = f"sum(CAST({v} AS HUGEINT)){filt}"
            low, high = (0, 2**64 - 1) if a.type is T.UNSIGNED_LONG else (LONG_MIN, LONG_MAX)
            overflow = f"{total} NOT BETWEEN {low} AND {high}"
            fail = c.failure(a.span, f"['{LONG_OVERFLOW}']", overflow, a.type)
            return (
                f"(CASE WHEN {overflow} THEN {fail} ELSE CAST({total} AS {sql_type(a.type)}) END)"
            )
        if a.fn == "avg":
            if arg.is_list:
                return f"(sum(list_sum({arg.sql})){filt} / sum(len({arg.sql})){filt})"
            return f"CAST(avg({arg.sql}){filt} AS DOUBLE)"
        if a.fn in _SPREAD:
            # Population statistics over every value (a multivalue contributes each of its values).
            if arg.is_list:
                return f"CAST(list_aggregate(flatten(list({arg.sql}){filt}), '{_SPREAD[a.fn]}') AS DOUBLE)"
            return f"CAST({_SPREAD[a.fn]}({arg.sql}){filt} AS DOUBLE)"
        if a.fn == "weighted_avg":
            return self.weighted_avg(a, c, filt)
        if a.fn == "top":
            return self.top(a, arg, filt)
        raise UnsupportedFeatureError(f"aggregate function [{a.fn}] on the duckdb backend", a.span)

    def weighted_avg(self, a: p.AggCall, c: ExprCompiler, filt: str) -> str:
        """sum(value * weight) / sum(weight) over rows with both; a multivalue (unless the weight
        is a constant, which Elasticsearch folds into a plain average), a long overflow or a zero
        total weight make the group null, as on the reference executor."""
        value, weight = (c.compile(x) for x in a.args)
        integral = all(x.type in (T.INTEGER, T.LONG) for x in a.args)
        num = "HUGEINT" if integral else "DOUBLE"
        constant = isinstance(a.args[1], p.Const) and not a.args[1].multivalued
        w = weight.sql
        if value.is_list and constant:
            product = f"CAST(list_sum({value.sql}) AS {num}) * CAST({w} AS {num})"
            w_sum = f"(len({value.sql}) * {w})"
            both = f"{value.sql} IS NOT NULL AND {w} IS NOT NULL"
            mv = "FALSE"
        else:
            v, w1 = single(value), single(weight)
            product, w_sum = f"CAST({v} AS {num}) * CAST({w1} AS {num})", w1
            both = f"{v} IS NOT NULL AND {w1} IS NOT NULL"
            lists = [f"len({x.sql}) > 1" for x in (value, weight) if x.is_list]
            mv = " OR ".join(lists) or "FALSE"
        cond = _filter_and(filt, both)
        mv_filt = _filter_and(filt, mv)
        total = f"sum({product}){cond}"
        weights = f"sum(CAST({w_sum} AS {num})){cond}"
        overflow = f"{total} NOT BETWEEN {LONG_MIN} AND {LONG_MAX}" if integral else "FALSE"
        has_mv, zero = f"count(*){mv_filt} > 0", f"{weights} = 0"
        mv_fail = c.failure(a.span, f"['{MV_FAILURE}']", has_mv, T.DOUBLE)
        overflow_fail = c.failure(a.span, f"['{LONG_OVERFLOW}']", overflow, T.DOUBLE)
        zero_fail = c.failure(a.span, f"['{DIV_BY_ZERO}']", zero, T.DOUBLE)
        return (
            f"(CASE WHEN {has_mv} THEN {mv_fail} WHEN {overflow} THEN {overflow_fail} "
            f"WHEN {zero} THEN {zero_fail} "
            f"ELSE CAST({total} AS DOUBLE) / CAST({weights} AS DOUBLE) END)"
        )

    def top(self, a: p.AggCall, arg: E, filt: str) -> str:
        limit, order = a.args[1], a.args[2] if len(a.args) > 2 else None
        if not isinstance(limit, p.Const) or not isinstance(limit.value, int):
            raise UnsupportedFeatureError("TOP with a non-constant limit", a.span)
        text = order.value if isinstance(order, p.Const) else "asc"
        if not isinstance(text, str) or text.lower() not in ("asc", "desc"):
            raise UnsupportedFeatureError("TOP with a non-constant order", a.span)
        desc = text.lower() == "desc"
        values = f"flatten(list({as_list(arg)}){filt})"
        ordered = sort_values(values, arg.type, "DESC" if desc else "ASC")
        return _null_if_empty(f"list_slice({ordered}, 1, {limit.value})")

    def min_max(self, fn: str, arg: E, filt: str) -> str:
        if arg.type in ORDER_KEYS:
            flat = f"flatten(list({as_list(arg)}){filt})"
            return list_extreme(flat, arg.type, fn == "max")
        v = f"list_{fn}({arg.sql})" if arg.is_list else arg.sql
        return f"{fn}({v}){filt}"


def _hash_order(keys: list[tuple[str, E]]) -> str:
    """Elasticsearch's group output order: first seen, except that a single key's block hash
    gives null ordinal 0 and booleans the fixed ordinals null, false, true."""
    if len(keys) == 1:
        key, e = keys[0]
        if e.type is T.BOOLEAN:
            return f"{key} ASC NULLS FIRST"
        return f"({key} IS NULL) DESC, min(__ord)"
    return "min(__ord)"


def _null_if_empty(sql: str) -> str:
    """A LIST aggregate of no values is null (a LIST value is never empty), so that a later
    `IS NULL` sees the group's null."""
    return f"(CASE WHEN len({sql}) > 0 THEN {sql} END)"


def _positioned(key: str, t: T) -> str:
    """A LIST key's distinct values in first-seen order, each as {'v': value, 'i': position};
    a null key is one null value."""
    distinct = f"list_filter({key}, lambda v, i: list_position({key}, v) = i)"
    return (
        f"(CASE WHEN {key} IS NULL THEN [{{'v': CAST(NULL AS {sql_type(t)}), 'i': 1}}] "
        f"ELSE list_transform({distinct}, lambda v, i: {{'v': v, 'i': i}}) END)"
    )


def _gathered(column: str, out: E, order: str) -> str:
    """The values of one output over a row's groups, in combination order, as one LIST."""
    return norm_list(f"flatten(list({as_list(E(column, out.type, out.is_list))} ORDER BY {order}))")


def _filter_and(filt: str, condition: str) -> str:
    """An aggregate FILTER clause (`filt`, possibly empty) narrowed by one more condition."""
    if filt:
        return filt.replace("FILTER (WHERE ", f"FILTER (WHERE ({condition}) AND ", 1)
    return f" FILTER (WHERE {condition})"


# One CTE per step, by the step's type (STATS is called directly: it also takes the order flag).
_STEPS: dict[type[p.Step], Callable[[PlanCompiler, Any], None]] = {
    p.Filter: PlanCompiler.step_filter,
    p.Eval: PlanCompiler.step_eval,
    p.Project: PlanCompiler.step_project,
    p.Limit: PlanCompiler.step_limit,
    p.MvExpand: PlanCompiler.step_mvexpand,
    p.Sort: PlanCompiler.step_sort,
    p.Extract: PlanCompiler.step_extract,
    p.Aggregate: PlanCompiler.step_aggregate,
    p.InlineAggregate: PlanCompiler.step_inlineaggregate,
}


def compile_plan(
    plan: p.Plan, now_sql: str, source_lists: dict[str, bool], inputs: list[int]
) -> Compiled:
    return PlanCompiler(plan, now_sql, source_lists, inputs).run()


def _row_dependent(sites: Sequence[Site], condition: p.Expr) -> bool:
    """Whether a warning site of `condition` can fail on some rows and not others: it is at a
    node that reads a column (or at no node of it). A site of constants only, such as the
    `now() - 1 hours` every rule's window has (its date range check), fails the same way for
    every row and DuckDB folds it while planning: which rows a pushed filter evaluates does
    not change its warning, so the filter may be pushed into the reader."""
    varying: set[tuple[int, int]] = set()
    fixed: set[tuple[int, int]] = set()

    def reads(e: p.Expr) -> bool:
        found = isinstance(e, p.Ref) or (
            isinstance(e, p.Call) and any([reads(a) for a in e.args])  # every argument walked
        )
        (varying if found else fixed).add((e.span.line, e.span.col))
        return found

    reads(condition)
    return any(
        (line, col) in varying or (line, col) not in fixed for line, col, _text, _result in sites
    )
