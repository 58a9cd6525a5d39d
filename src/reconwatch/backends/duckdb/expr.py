"""Plan expressions as DuckDB SQL, with ES|QL's multivalue and null rules made explicit."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

from reconwatch.backends.duckdb.warnings import DIV_BY_ZERO, MV_FAILURE, WarningSites
from reconwatch.errors import Span, UnsupportedFeatureError
from reconwatch.esql.functions import REGISTRY
from reconwatch.esql.patterns import PatternError, rlike_to_regex
from reconwatch.plan import nodes as p
from reconwatch.plan import values
from reconwatch.records import record
from reconwatch.types import DataType as T

SQL_TYPES: dict[T, str] = {
    T.KEYWORD: "VARCHAR",
    T.TEXT: "VARCHAR",
    T.IP: "VARCHAR",
    T.VERSION: "VARCHAR",
    T.LONG: "BIGINT",
    T.INTEGER: "INTEGER",
    T.UNSIGNED_LONG: "UBIGINT",
    T.DOUBLE: "DOUBLE",
    T.BOOLEAN: "BOOLEAN",
    T.DATETIME: "TIMESTAMP",
    T.DATE_NANOS: "TIMESTAMP",
    T.NULL: "INTEGER",
}


# A call's SQL longer than BIND_AT that repeats an argument's SQL longer than REPEAT_AT evaluates
# its arguments once (see _bound): the SQL stays linear in the expression, and short expressions,
# the common case, keep DuckDB's fastest form.
BIND_AT = 1000
REPEAT_AT = 48


@record
class E:
    """A compiled expression: SQL text, ES|QL type, and whether the SQL value is a LIST.

    A LIST value holds every value of a cell; length 1 is a single value, NULL (never empty)
    is null. A non-LIST value is always a single value or NULL."""

    sql: str
    type: T
    is_list: bool = False


def ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def sql_type(t: T) -> str:
    found = SQL_TYPES.get(t)
    if found is None:
        raise UnsupportedFeatureError(f"values of type [{t.value}]")
    return found


def single(e: E) -> str:
    """The single value of an expression; null for a multivalue (ES|QL's single-value rule)."""
    if not e.is_list:
        return e.sql
    return f"(CASE WHEN len({e.sql}) = 1 THEN ({e.sql})[1] END)"


def as_list(e: E) -> str:
    if e.is_list:
        return e.sql
    return f"(CASE WHEN ({e.sql}) IS NULL THEN NULL ELSE [{e.sql}] END)"


def norm_list(sql: str) -> str:
    """A LIST with nulls removed, NULL when nothing remains."""
    return f"(CASE WHEN len(list_filter({sql}, lambda z: z IS NOT NULL)) > 0 THEN list_filter({sql}, lambda z: z IS NOT NULL) END)"


def literal(value: object, t: T) -> str:
    if value is None:
        # An untyped null stays SQL's NULL type, which DuckDB coerces to whatever meets it
        # (COALESCE(null, "b"), x IN ("a", null), length(null)).
        return "NULL" if t is T.NULL else f"CAST(NULL AS {sql_type(t)})"
    if isinstance(value, list):
        return "[" + ", ".join(literal(v, t) for v in value) + "]"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int):
        return f"CAST({value} AS {sql_type(t)})"
    if isinstance(value, float):
        return f"CAST('{value!r}' AS DOUBLE)"
    if isinstance(value, datetime):
        return f"TIMESTAMP '{values.format_datetime(value)[:-1]}'"
    if isinstance(value, p.TemporalAmount):
        return interval(value)
    text = str(value).replace("'", "''")
    return f"'{text}'"


def interval(amount: p.TemporalAmount) -> str:
    return (
        f"(to_months({amount.months}) + to_days({amount.days}) + to_milliseconds({amount.millis}))"
    )


class ExprCompiler:
    """Compiles expressions against the columns of one step's input. With `warnings`, failing
    evaluations (a multivalue given to a single-value function, a failed conversion, ...) also
    record Elasticsearch's warning for their site."""

    def __init__(
        self, columns: dict[str, E], now: str, warnings: WarningSites | None = None
    ) -> None:
        self.columns = columns
        self.now = now
        self.warnings = warnings
        # Calls compiled so far (by node identity): the MV check compiles arguments a second
        # time, which must not grow exponentially with nesting depth.
        self._done: dict[int, tuple[p.Call, E]] = {}
        self._bindings = 0  # lambdas made by _bound, for unique parameter names
        # The null test of the NULL_GUARDED call being compiled: its failures warn only where
        # it does not hold (DuckDB folds a constant CASE branch even where the test is true).
        self._null_test: str | None = None

    def compile(self, expr: p.Expr) -> E:
        if isinstance(expr, p.Const):
            return E(literal(expr.value, expr.type), expr.type, isinstance(expr.value, list))
        if isinstance(expr, p.Ref):
            col = self.columns.get(expr.name)
            if col is None:
                raise UnsupportedFeatureError(f"reference to unknown column [{expr.name}]")
            return col
        handler = _CALLS.get(expr.fn)
        if handler is None:
            raise UnsupportedFeatureError(f"function [{expr.fn}] on the duckdb backend", expr.span)
        done = self._done.get(id(expr))
        if done is not None and done[0] is expr:
            return done[1]
        result = self._checked_call(expr, handler)
        if self._repeats_an_argument(expr, result):
            result = self._bound(expr, handler)
        self._done[id(expr)] = (expr, result)
        return result

    def _checked_call(self, call: p.Call, handler: Handler) -> E:
        """The handler's SQL with the registry's checks: multivalued arguments, null arguments,
        long strings."""
        if call.fn not in NULL_GUARDED:
            result = self.mv_checked(call, handler(self, call))
        else:
            result = self.mv_checked(call, self.null_guarded(call, handler))
        if call.fn in values.GROWING_STRINGS:
            result = self.length_checked(call, result)
        return result

    def _repeats_an_argument(self, call: p.Call, result: E) -> bool:
        """Whether `result` holds a computed argument's SQL more than once. Templates repeat an
        operand (a null test, an overflow test, the single-value rule): nested, that would grow
        the SQL exponentially with depth."""
        if len(result.sql) <= BIND_AT:
            return False
        for arg in call.args:
            if isinstance(arg, p.Call):
                sql = self.compile(arg).sql
                if len(sql) > REPEAT_AT and result.sql.count(sql) > 1:
                    return True
        return False

    def _bound(self, call: p.Call, handler: Handler) -> E:
        """`call` with each argument evaluated once, in place (so that a CASE branch not taken
        still evaluates nothing): the arguments packed in a one-element list of one struct, the
        call's own SQL a lambda over it naming them as fields. The SQL is then linear in the
        expression, whatever the templates repeat. Columns are packed too: DuckDB binds a
        lambda that reads outer columns in time quadratic in the nesting."""
        self._bindings += 1
        param = f"rw_arg{self._bindings}"
        fields: list[str] = []
        saved_calls: dict[int, tuple[p.Call, E]] = {}
        saved_columns: dict[str, E] = {}
        for index, arg in enumerate(call.args):
            if isinstance(arg, p.Call) and id(arg) not in saved_calls:
                real = self.compile(arg)
                saved_calls[id(arg)] = (arg, real)
            elif isinstance(arg, p.Ref) and arg.name not in saved_columns:
                real = self.compile(arg)
                saved_columns[arg.name] = real
            else:
                continue
            fields.append(f"'a{index}': {real.sql}")
            field = E(f"{param}.a{index}", real.type, real.is_list)
            if isinstance(arg, p.Call):
                self._done[id(arg)] = (arg, field)
            else:
                self.columns[arg.name] = field
        try:
            body = self._checked_call(call, handler)
        finally:
            self._done.update(saved_calls)
            self.columns.update(saved_columns)
        packed = "[{" + ", ".join(fields) + "}]"
        return E(
            f"list_transform({packed}, lambda {param}: {body.sql})[1]", body.type, body.is_list
        )

    # -- warnings ------------------------------------------------------------------------------

    def failure(
        self,
        span: Span,
        reasons: str,
        failed: str,
        t: T,
        is_list: bool = False,
        result: str = "null",
    ) -> str:
        """A typed NULL that records `reasons` (SQL for a VARCHAR[]) as a failure at `span` when
        `failed` (the SQL test that selects this branch) holds; the warning says the value is
        taken as `result`."""
        target = _null_type(t, is_list)
        if self.warnings is None:
            return f"CAST(NULL AS {target})"
        if self._null_test is not None:
            failed = f"({failed}) AND NOT ({self._null_test})"
        site = self.warnings.site(span, result)
        query = "getvariable('rw_query')"
        return f"CAST(rw_warn({query}, {site}, {reasons}, {failed}) AS {target})"

    def first_failure(
        self, span: Span, checks: Sequence[tuple[str, str]], value: str, t: T, is_list: bool = False
    ) -> str:
        """`value`, or null and a warning for the first of `checks` ((test, reasons) SQL) that
        holds. Each warns only where the tests before it do not hold: DuckDB folds a constant
        CASE branch while planning even when an earlier branch is taken (LOG(1, 0) warned for
        its base too)."""
        branches: list[str] = []
        earlier: list[str] = []
        for test, reasons in checks:
            first = " AND ".join([test, *(f"NOT coalesce({e}, false)" for e in earlier)])
            fail = self.failure(span, reasons, f"({first})", t, is_list)
            branches.append(f"WHEN {test} THEN {fail}")
            earlier.append(test)
        return f"(CASE {' '.join(branches)} ELSE {value} END)"

    def checked_single(self, e: E, span: Span, result: str = "null") -> str:
        """The single value of `e`; a multivalue is null and warns at `span`."""
        if not e.is_list or self.warnings is None:
            return single(e)
        many = f"len({e.sql}) > 1"
        fail = self.failure(span, _reason(MV_FAILURE), many, e.type, result=result)
        return f"(CASE WHEN len({e.sql}) = 1 THEN ({e.sql})[1] WHEN {many} THEN {fail} END)"

    def length_checked(self, call: p.Call, e: E) -> E:
        """A string over 1 MiB from a function that can lengthen its arguments is null and
        warns (nested, such calls would grow without bound)."""
        if e.is_list:
            return e
        too_long = f"(strlen({e.sql}) > {values.MAX_STRING_BYTES})"
        fail = self.failure(call.span, _reason(values.STRING_TOO_LONG), too_long, e.type)
        return E(f"(CASE WHEN {too_long} THEN {fail} ELSE {e.sql} END)", e.type)

    def null_guarded(self, call: p.Call, handler: Handler) -> E:
        """A call of a NULL_GUARDED function: null, without a warning, where an argument is
        null, as the registry's null_propagating says (Elasticsearch's evaluators test for null
        before they compute or fail); multivalued arguments are checked before (mv_checked)."""
        if any(isinstance(a, p.Const) and a.value is None for a in call.args):
            e = handler(self, call)
            return E(f"CAST(NULL AS {_null_type(e.type, e.is_list)})", e.type, e.is_list)
        tests = [
            f"({self.compile(a).sql}) IS NULL" for a in call.args if not isinstance(a, p.Const)
        ]
        if not tests:
            return handler(self, call)
        test = " OR ".join(tests)
        outer, self._null_test = self._null_test, test
        try:
            e = handler(self, call)
        finally:
            self._null_test = outer
        return E(f"(CASE WHEN {test} THEN NULL ELSE {e.sql} END)", e.type, e.is_list)

    def mv_checked(self, call: p.Call, e: E) -> E:
        """A single-value function (the registry's rule) warns where an argument is multivalued."""
        if self.warnings is None or call.fn in _OWN_MV_CHECKS:
            return e
        fdef = REGISTRY.get(call.fn)
        if fdef is None or (fdef.mv_aware and not fdef.maps_values):
            return e
        checked = call.args[1:] if fdef.maps_values else call.args
        lists = [a for a in (self.compile(x) for x in checked) if a.is_list]
        if not lists:
            return e
        cond = " OR ".join(f"len({a.sql}) > 1" for a in lists)
        fail = self.failure(call.span, _reason(MV_FAILURE), f"({cond})", e.type, e.is_list)
        return E(f"(CASE WHEN {cond} THEN {fail} ELSE {e.sql} END)", e.type, e.is_list)

    def args(self, call: p.Call) -> list[E]:
        return [self.compile(a) for a in call.args]

    def singles(self, call: p.Call) -> list[str]:
        return [single(a) for a in self.args(call)]


Handler = Callable[[ExprCompiler, p.Call], E]
_CALLS: dict[str, Handler] = {}
# Functions the registry makes null on a null argument whose SQL would not be: a CASE that tests
# an argument (`n <= 0`, a failure test that warns), DuckDB's greatest/least (which skip nulls),
# a branch that returns an argument unchanged. tests/unit/test_null_arguments.py finds the rest:
# every null-propagating function with each argument null, on every executor.
NULL_GUARDED = frozenset(
    {
        "left",
        "right",
        "substring",
        "locate",
        "repeat",
        "space",
        "mv_slice",
        "log",
        "copy_sign",
        "div",
        "mod",
        "scalb",
    }
)


def _reg(*names: str) -> Callable[[Handler], Handler]:
    def wrap(fn: Handler) -> Handler:
        for n in names:
            _CALLS[n] = fn
        return fn

    return wrap


def _simple(name: str, template: str) -> None:
    """A scalar function of single values: `template` formats the arguments {0}, {1}, ..."""

    def handler(c: ExprCompiler, call: p.Call) -> E:
        return E("(" + template.format(*c.singles(call)) + ")", call.type)

    _CALLS[name] = handler


# Operators that check their operands themselves, each at its own span (as the reference does).
_OWN_MV_CHECKS = frozenset({"and", "or", "not", "case", "in", "like", "rlike"})


_ARITHMETIC = "java.lang.ArithmeticException"


def _reason(text: str) -> str:
    return f"[{literal(text, T.KEYWORD)}]"


def _null_type(t: T, is_list: bool) -> str:
    base = SQL_TYPES.get(t, "BOOLEAN")
    return base + "[]" if is_list else base


def supported() -> frozenset[str]:
    return frozenset(_CALLS)


# -- operators ------------------------------------------------------------------------------


_OVERFLOW = {T.INTEGER: "integer", T.LONG: "long", T.UNSIGNED_LONG: "unsigned_long"}
_NOT_FINITE = "java.lang.ArithmeticException: not a finite double number: Infinity"
# The datetimes every executor holds: years 1 to 9999 (plan.values.DATE_OUT_OF_RANGE).
_FIRST_DATE, _LAST_DATE = "TIMESTAMP '0001-01-01 00:00:00'", "TIMESTAMP '9999-12-31 23:59:59.999'"
_FIRST_MS, _LAST_MS = -62_135_596_800_000, 253_402_300_799_999


def _beyond_any_date(amount: object) -> bool:
    """A time span that moves every datetime out of years 1-9999 (10,000 years or more)."""
    if not isinstance(amount, p.TemporalAmount):
        return False
    return (
        abs(amount.months) >= 120_000
        or abs(amount.days) >= 3_660_000
        or abs(amount.millis) >= 316_224_000_000_000
    )


def _date_checked(c: ExprCompiler, call: p.Call, value: str, operands: Sequence[str]) -> E:
    """Date arithmetic (`value` NULL where DuckDB's own range ends) outside years 1-9999: null
    and a warning, as on the reference."""
    if c.warnings is None:
        inside = f"{value} BETWEEN {_FIRST_DATE} AND {_LAST_DATE}"
        return E(f"(CASE WHEN {inside} THEN {value} END)", call.type)
    present = " AND ".join(f"({x}) IS NOT NULL" for x in operands)
    failed = (
        f"({present} AND ({value} IS NULL OR {value} NOT BETWEEN {_FIRST_DATE} AND {_LAST_DATE}))"
    )
    fail = c.failure(call.span, _reason(values.DATE_OUT_OF_RANGE), failed, call.type)
    return E(f"(CASE WHEN {failed} THEN {fail} ELSE {value} END)", call.type)


def _overflow_checked(c: ExprCompiler, call: p.Call, value: str, operands: Sequence[str]) -> E:
    """`value` (a try(...) that is NULL on overflow) warning as Java's exact arithmetic does:
    an integral result outside its type's range is null with an ArithmeticException, and so is a
    double result that is not finite."""
    if call.type is T.DOUBLE:
        infinite = f"isinf({value})"
        fail = c.failure(call.span, _reason(_NOT_FINITE), infinite, T.DOUBLE)
        return E(f"(CASE WHEN {infinite} THEN {fail} ELSE {value} END)", T.DOUBLE)
    kind = _OVERFLOW.get(call.type)
    if kind is None or c.warnings is None:
        return E(value, call.type)
    failed = " AND ".join([*(f"({x}) IS NOT NULL" for x in operands), f"{value} IS NULL"])
    reason = _reason(f"java.lang.ArithmeticException: {kind} overflow")
    fail = c.failure(call.span, reason, f"({failed})", call.type)
    return E(f"(CASE WHEN {failed} THEN {fail} ELSE {value} END)", call.type)


def _zero_checked(c: ExprCompiler, call: p.Call, value: E, divisor: str) -> E:
    """Division and remainder by zero: null with Java's `/ by zero` (doubles too, as in ES|QL)."""
    if c.warnings is None:
        return value
    zero = f"(({divisor}) = 0)"
    fail = c.failure(call.span, _reason(DIV_BY_ZERO), zero, call.type)
    return E(f"(CASE WHEN {zero} THEN {fail} ELSE {value.sql} END)", call.type)


@_reg("add", "sub")
def _add_sub(c: ExprCompiler, call: p.Call) -> E:
    a, b = c.args(call)
    op = "+" if call.fn == "add" else "-"
    if a.type.is_temporal_amount and b.type.is_temporal_amount:
        raise UnsupportedFeatureError("arithmetic between two time spans", call.span)
    if b.type.is_temporal_amount or a.type.is_temporal_amount:
        date, span = (a, b) if b.type.is_temporal_amount else (b, a)
        d, t = single(date), single(span)
        amount = next((x for x in call.args if isinstance(x, p.Const)), None)
        if amount is not None and _beyond_any_date(amount.value):
            # No date stays inside years 1-9999, and DuckDB cannot even build the interval.
            return _date_checked(c, call, "CAST(NULL AS TIMESTAMP)", (d,))
        return _date_checked(c, call, f"try(CAST({d} {op} {t} AS TIMESTAMP))", (d, t))
    x, y = single(a), single(b)
    value = f"try(CAST({x} {op} {y} AS {sql_type(call.type)}))"
    return _overflow_checked(c, call, value, (x, y))


@_reg("mul")
def _mul(c: ExprCompiler, call: p.Call) -> E:
    a, b = c.singles(call)
    value = f"try(CAST({a} * {b} AS {sql_type(call.type)}))"
    return _overflow_checked(c, call, value, (a, b))


@_reg("div")
def _div(c: ExprCompiler, call: p.Call) -> E:
    a, b = c.singles(call)
    op = "/" if call.type is T.DOUBLE else "//"
    value = f"try(CAST({a} {op} NULLIF({b}, 0) AS {sql_type(call.type)}))"
    if call.type in (T.INTEGER, T.LONG):
        # Java's MIN / -1 wraps to MIN without an exception (DuckDB raises, so try() was null).
        value = f"COALESCE({value}, CASE WHEN {b} = -1 THEN {a} END)"
    return _zero_checked(c, call, E(value, call.type), b)


@_reg("mod")
def _mod(c: ExprCompiler, call: p.Call) -> E:
    a, b = c.singles(call)
    if call.type is T.DOUBLE:
        # Java's % on doubles is C's fmod: the result takes the dividend's sign. DuckDB's % on
        # doubles is that; its fmod() is not (fmod(7.5, -2) is -0.5 where Java gives 1.5).
        value = f"try(CAST({a} AS DOUBLE) % CAST(NULLIF({b}, 0) AS DOUBLE))"
        return _zero_checked(c, call, E(value, call.type), b)
    value = f"try(CAST({a} % NULLIF({b}, 0) AS {sql_type(call.type)}))"
    return _zero_checked(c, call, E(value, call.type), b)


@_reg("neg")
def _neg(c: ExprCompiler, call: p.Call) -> E:
    (a,) = c.args(call)
    x = single(a)
    if call.type in _OVERFLOW:
        return _overflow_checked(c, call, f"try(CAST(-({x}) AS {sql_type(call.type)}))", (x,))
    return _overflow_checked(c, call, f"try(-({x}))", (x,))


_CMP = {"eq": "=", "neq": "<>", "lt": "<", "lte": "<=", "gt": ">", "gte": ">="}


@_reg("eq", "neq", "lt", "lte", "gt", "gte")
def _compare(c: ExprCompiler, call: p.Call) -> E:
    a, b = c.args(call)
    x, y = single(a), single(b)
    if call.fn not in ("eq", "neq"):
        keyed = a.type if a.type in ORDER_KEYS else b.type
        x, y = order_key(x, keyed), order_key(y, keyed)
    return E(f"({x} {_CMP[call.fn]} {y})", T.BOOLEAN)


@_reg("eq_ci")
def _eq_ci(c: ExprCompiler, call: p.Call) -> E:
    a, b = c.singles(call)
    return E(f"(lower({a}) = lower({b}))", T.BOOLEAN)


@_reg("and", "or")
def _logic(c: ExprCompiler, call: p.Call) -> E:
    a, b = (c.checked_single(c.compile(x), x.span) for x in call.args)
    return E(f"({a} {call.fn.upper()} {b})", T.BOOLEAN)


@_reg("not")
def _not(c: ExprCompiler, call: p.Call) -> E:
    a = c.checked_single(c.compile(call.args[0]), call.span)
    return E(f"(NOT {a})", T.BOOLEAN)


@_reg("in")
def _in(c: ExprCompiler, call: p.Call) -> E:
    first, *items = c.args(call)
    item_sql: list[str] = []
    for item in items:
        if isinstance(item.sql, str) and item.is_list and item.sql.startswith("["):
            # A multivalue item is null.
            x = c.checked_single(first, call.span)
            fail = c.failure(call.span, _reason(MV_FAILURE), f"({x}) IS NOT NULL", first.type)
            item_sql.append(fail)
        else:
            item_sql.append(c.checked_single(item, call.span))
    return E(f"({c.checked_single(first, call.span)} IN ({', '.join(item_sql)}))", T.BOOLEAN)


@_reg("is_null", "is_not_null")
def _is_null(c: ExprCompiler, call: p.Call) -> E:
    (a,) = c.args(call)
    op = "IS NULL" if call.fn == "is_null" else "IS NOT NULL"
    return E(f"(({a.sql}) {op})", T.BOOLEAN)


def like_to_sql(pattern: str) -> str:
    """An ES|QL LIKE pattern (* ? and \\ escapes) as a SQL LIKE pattern with ESCAPE '\\'."""
    out: list[str] = []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\" and i + 1 < len(pattern):
            nxt = pattern[i + 1]
            out.append("\\" + nxt if nxt in "%_\\" else nxt)
            i += 2
            continue
        if ch == "*":
            out.append("%")
        elif ch == "?":
            out.append("_")
        elif ch in "%_\\":
            out.append("\\" + ch)
        else:
            out.append(ch)
        i += 1
    return "".join(out)


def rlike_to_re2(pattern: str, call: p.Call) -> str:
    """A Lucene regular expression for RE2's whole-string match: the reference's translation
    (esql/patterns.py writes syntax both engines read alike), `.` matching a newline too as the
    reference's DOTALL does."""
    try:
        return "(?s)" + rlike_to_regex(pattern)
    except PatternError as exc:
        raise UnsupportedFeatureError(f"RLIKE pattern: {exc}", call.span) from None


def _const_str(e: p.Expr, what: str) -> str:
    if isinstance(e, p.Const) and isinstance(e.value, str):
        return e.value
    raise UnsupportedFeatureError(f"{what} that is not a constant string", e.span)


@_reg("like", "rlike")
def _like(c: ExprCompiler, call: p.Call) -> E:
    value = c.checked_single(c.compile(call.args[0]), call.span)
    parts: list[str] = []
    for arg in call.args[1:]:
        patterns = arg.value if isinstance(arg, p.Const) and isinstance(arg.value, list) else None
        for pat in (
            patterns if patterns is not None else [_const_str(arg, call.fn.upper() + " pattern")]
        ):
            if call.fn == "like":
                parts.append(
                    f"({value} LIKE {literal(like_to_sql(str(pat)), T.KEYWORD)} ESCAPE '\\')"
                )
            else:
                re2 = rlike_to_re2(str(pat), call)
                parts.append(f"regexp_full_match({value}, {literal(re2, T.KEYWORD)})")
    return E("(" + " OR ".join(parts) + ")", T.BOOLEAN)


@_reg("mv_any_like")
def _mv_any_like(c: ExprCompiler, call: p.Call) -> E:
    # KQL's wildcard term: a multivalue matches when any value does; null matches nothing.
    value = c.compile(call.args[0])
    pattern = literal(like_to_sql(_const_str(call.args[1], "KQL wildcard")), T.KEYWORD)
    if value.is_list:
        test = f"len(list_filter({value.sql}, lambda z: z LIKE {pattern} ESCAPE '\\')) > 0"
    else:
        test = f"(({value.sql}) LIKE {pattern} ESCAPE '\\')"
    return E(f"COALESCE({test}, FALSE)", T.BOOLEAN)


@_reg("mv_like", "mv_rlike")
def _mv_like(c: ExprCompiler, call: p.Call) -> E:
    # Any value matching is true; a null field is false (two-valued, like MV_CONTAINS).
    value = c.compile(call.args[0])
    text = _const_str(call.args[1], f"{call.fn.upper()} pattern")
    if call.fn == "mv_like":
        pattern = literal(like_to_sql(text), T.KEYWORD)
        test = f"z LIKE {pattern} ESCAPE '\\'"
    else:
        test = f"regexp_full_match(z, {literal(rlike_to_re2(text, call), T.KEYWORD)})"
    values = as_list(value)
    return E(f"COALESCE(len(list_filter({values}, lambda z: {test})) > 0, FALSE)", T.BOOLEAN)


# -- conversions ----------------------------------------------------------------------------


def convert_sql(v: str, src: T, dst: T, span: object = None) -> str:
    """One single value converted like TO_<type>; NULL where Elasticsearch gives null + warning."""
    if src is dst or (src.is_string and dst.is_string) or src is T.NULL:
        return v if src is not T.NULL else f"CAST(NULL AS {sql_type(dst)})"
    if dst in (T.KEYWORD, T.TEXT):
        if src is T.DOUBLE:
            return f"rw_double_text({v})"
        if src is T.BOOLEAN:
            return f"(CASE WHEN {v} THEN 'true' WHEN NOT {v} THEN 'false' END)"
        if src in (T.DATETIME, T.DATE_NANOS):
            return f"strftime({v}, '%Y-%m-%dT%H:%M:%S.%gZ')"
        return f"CAST({v} AS VARCHAR)"
    if dst in (T.INTEGER, T.LONG, T.UNSIGNED_LONG):
        target = sql_type(dst)
        if src.is_string:
            text = f"trim({v})"
            number = _java_double_sql(text)
            if dst is T.UNSIGNED_LONG:  # read as a decimal number (BigDecimal), half up
                number = f"TRY_CAST(CASE WHEN regexp_full_match({text}, '{_DECIMAL_RE}') THEN {text} END AS DOUBLE)"
            return (
                f"COALESCE(TRY_CAST(CASE WHEN regexp_full_match({text}, '[+-]?[0-9]+') THEN {text} END AS {target}), "
                f"{_double_to_int_sql(number, dst)})"
            )
        if src is T.DOUBLE:
            return _double_to_int_sql(v, dst)
        if src in (T.DATETIME, T.DATE_NANOS):
            return f"TRY_CAST(epoch_ms({v}) AS {target})"
        return f"TRY_CAST({v} AS {target})"
    if dst is T.DOUBLE:
        if src in (T.DATETIME, T.DATE_NANOS):
            return f"CAST(epoch_ms({v}) AS DOUBLE)"
        if src.is_string:
            return _java_double_sql(f"trim({v})")
        return f"CAST({v} AS DOUBLE)"
    if dst is T.BOOLEAN:
        if src.is_string:
            return f"(lower(trim({v})) = 'true')"
        return f"({v} <> 0)"
    if dst in (T.DATETIME, T.DATE_NANOS):
        if src.is_string:
            return f"rw_to_datetime({v})"
        # epoch_ms() raises past its range: only milliseconds inside years 1-9999 reach it.
        ms = f"trunc({v})" if src is T.DOUBLE else v
        inside = f"{ms} BETWEEN {_FIRST_MS} AND {_LAST_MS}"
        return f"(CASE WHEN {inside} THEN epoch_ms(CAST({ms} AS BIGINT)) END)"
    if dst is T.IP and src.is_string:
        return f"rw_ip_canon({v})"
    if dst is T.VERSION and src.is_string:
        return v
    raise UnsupportedFeatureError(f"conversion from [{src.value}] to [{dst.value}]")


_DECIMAL_RE = r"[+-]?([0-9]+[.]?[0-9]*|[.][0-9]+)([eE][+-]?[0-9]+)?"
_RANGE_SQL = {
    T.INTEGER: ("-2147483648.0", "2147483647.0"),
    T.LONG: ("-9223372036854775808.0", "9223372036854775807.0"),
    T.UNSIGNED_LONG: ("0.0", "18446744073709551615.0"),
}


def _java_double_sql(text: str) -> str:
    """Double.parseDouble of a (trimmed) string, NULL where Java refuses it."""
    readable = f"regexp_full_match({text}, '{values.JAVA_DOUBLE_RE}')"
    number = f"regexp_replace(replace({text}, 'Infinity', 'inf'), '[fFdD]$', '')"
    return f"(CASE WHEN {readable} THEN TRY_CAST({number} AS DOUBLE) END)"


def _double_to_int_sql(number: str, dst: T) -> str:
    """Elasticsearch's safe double -> integral: NULL out of range (compared as doubles), else
    Math.round, saturating at the type's bounds."""
    low, high = _RANGE_SQL[dst]
    target = sql_type(dst)
    # The upper bound as a double is 2^63 (2^64): saturate in DECIMAL, where the bound is exact;
    # a double 2^63 cast to BIGINT is NULL (was a null without a warning: to_long(pow(2, 63))).
    exact_high = high.removesuffix(".0")
    rounded = (
        f"least(CAST(greatest(floor(({number}) + 0.5), {low}) AS DECIMAL(38, 0)), {exact_high})"
    )
    return (
        f"(CASE WHEN ({number}) BETWEEN {low} AND {high} THEN TRY_CAST({rounded} AS {target}) END)"
    )


def _convert(c: ExprCompiler, call: p.Call) -> E:
    (a,) = c.args(call)
    dst = call.type
    # Only these conversions can fail on a non-null value (giving null and a warning).
    can_fail = a.type is not T.NULL and a.type is not dst and dst in _FALLIBLE
    can_fail = can_fail and not (a.type.is_string and dst is T.BOOLEAN)
    can_fail = can_fail and not (a.type in (T.DATETIME, T.DATE_NANOS) and dst is not T.INTEGER)
    if not a.is_list:
        converted = convert_sql(a.sql, a.type, dst)
        if not can_fail or c.warnings is None:
            return E(converted, dst)
        reasons = (
            f"rw_conversion_errors([CAST({a.sql} AS VARCHAR)], '{dst.value}', '{a.type.value}')"
        )
        failed = f"({a.sql}) IS NOT NULL AND ({converted}) IS NULL"
        fail = c.failure(call.span, reasons, failed, dst)
        return E(f"(CASE WHEN {failed} THEN {fail} ELSE {converted} END)", dst)
    body = convert_sql("x", a.type, dst)
    value = norm_list(f"list_transform({a.sql}, lambda x: {body})")
    if not can_fail or c.warnings is None:
        return E(value, dst, True)
    failed = f"list_filter({a.sql}, lambda x: x IS NOT NULL AND ({body}) IS NULL)"
    reasons = f"rw_conversion_errors(CAST({failed} AS VARCHAR[]), '{dst.value}', '{a.type.value}')"
    fail = c.failure(call.span, reasons, f"len({failed}) > 0", dst, True)
    # The values that convert are kept; the failure only records its warning.
    return E(
        f"(CASE WHEN len({failed}) > 0 THEN COALESCE({fail}, {value}) ELSE {value} END)",
        dst,
        True,
    )


_FALLIBLE = frozenset(
    {T.INTEGER, T.LONG, T.UNSIGNED_LONG, T.DOUBLE, T.DATETIME, T.DATE_NANOS, T.IP}
)


for _name in [
    "to_string",
    "to_text",
    "to_integer",
    "to_long",
    "to_unsigned_long",
    "to_double",
    "to_boolean",
    "to_datetime",
    "to_ip",
    "to_version",
    "cast_keyword",
    "cast_text",
    "cast_integer",
    "cast_long",
    "cast_unsigned_long",
    "cast_double",
    "cast_boolean",
    "cast_datetime",
    "cast_ip",
    "cast_version",
]:
    _CALLS[_name] = _convert


# -- strings --------------------------------------------------------------------------------

_WS = r"[\s\x0B\x1C-\x1F]"


@_reg("to_lower", "to_upper")
def _case_map(c: ExprCompiler, call: p.Call) -> E:
    """Java's String.toLowerCase/toUpperCase(Locale.ROOT): full case mapping (`ß` -> `SS`,
    `İ` -> `i̇`, a final `Σ` -> `ς`), as Python's str.lower/upper (values.java_case). DuckDB's
    lower/upper map one code point to one (`ß` -> `ẞ`) and know no final sigma, so they take
    only ASCII text (byte length = character length), where every mapping agrees; other text
    goes through the shared function."""
    # Elasticsearch 9.1+ converts every value of a multivalue (the registry's maps_values).
    (a,) = c.args(call)
    fn = "lower" if call.fn == "to_lower" else "upper"
    template = (
        f"(CASE WHEN strlen({{0}}) = length({{0}}) THEN {fn}({{0}}) ELSE rw_{call.fn}({{0}}) END)"
    )
    return _each_value(a, template, T.KEYWORD)


def _each_value(a: E, template: str, t: T) -> E:
    """`template` ({0} the value) applied to a value, or to every value of a multivalue."""
    if a.is_list:
        return E(f"list_transform({a.sql}, lambda x: {template.format('x')})", t, True)
    return E(template.format(a.sql), t)


_simple("trim", f"regexp_replace({{0}}, '^{_WS}+|{_WS}+$', '', 'g')")
_simple("ltrim", f"regexp_replace({{0}}, '^{_WS}+', '')")
_simple("rtrim", f"regexp_replace({{0}}, '{_WS}+$', '')")
_simple("reverse", "reverse({0})")
_simple("length", "CAST(length({0}) AS INTEGER)")
_simple("bit_length", "CAST(bit_length({0}) AS INTEGER)")
_simple("byte_length", "CAST(strlen({0}) AS INTEGER)")
_simple("starts_with", "starts_with({0}, {1})")
_simple("ends_with", "suffix({0}, {1})")
_simple("contains", "contains({0}, {1})")
_simple("left", "CASE WHEN {1} <= 0 THEN '' ELSE left({0}, {1}) END")
_simple("right", "CASE WHEN {1} <= 0 THEN '' ELSE right({0}, {1}) END")


@_reg("repeat", "space")
def _repeat(c: ExprCompiler, call: p.Call) -> E:
    """REPEAT and SPACE, refusing (null and a warning) to build more than 1 MiB."""
    args = c.singles(call)
    text, count = ("' '", args[0]) if call.fn == "space" else (args[0], args[1])
    too_long = f"(CAST(strlen({text}) AS HUGEINT) * {count} > {values.MAX_STRING_BYTES})"
    reason = values.SPACE_TOO_LONG if call.fn == "space" else values.REPEAT_TOO_LONG
    negative = f"({count} < 0)"
    found = f"'java.lang.IllegalArgumentException: Number parameter cannot be negative, found [' || CAST({count} AS VARCHAR) || ']'"
    # DuckDB folds constants in every CASE branch while planning, so an unclamped
    # repeat(' ', 2147483647) built 2 GiB before the guard could skip it. The clamp changes
    # nothing where the branch is taken (count * length <= the limit there).
    bounded = f"least({count}, {values.MAX_STRING_BYTES} // greatest(strlen({text}), 1))"
    checks = [(negative, f"[{found}]"), (too_long, _reason(reason))]
    value = f"repeat({text}, {bounded})"
    return E(c.first_failure(call.span, checks, value, T.KEYWORD), T.KEYWORD)


_simple("url_encode", "rw_url_encode({0})")
_simple("url_encode_component", "rw_url_encode_component({0})")


@_reg("url_decode", "from_base64")
def _java_text(c: ExprCompiler, call: p.Call) -> E:
    """Java's URLDecoder and Base64 decoder (plan/javatext.py): null and Java's message where
    the text is not a valid escape or encoding."""
    (text,) = c.singles(call)
    value = f"rw_{call.fn}({text})"
    failed = f"({text}) IS NOT NULL AND {value} IS NULL"
    fail = c.failure(call.span, f"rw_java_text_errors('{call.fn}', {text})", failed, T.KEYWORD)
    return E(f"(CASE WHEN {failed} THEN {fail} ELSE {value} END)", T.KEYWORD)


_simple("to_base64", "to_base64(encode({0}))")
_simple("md5", "md5({0})")
_simple("sha1", "sha1({0})")
_simple("sha256", "sha256({0})")


@_reg("concat")
def _concat(c: ExprCompiler, call: p.Call) -> E:
    # `||` is null if any operand is null, as ES|QL's CONCAT; DuckDB's concat() skips nulls.
    return E("(" + " || ".join(c.singles(call)) + ")", T.KEYWORD)


@_reg("substring")
def _substring(c: ExprCompiler, call: p.Call) -> E:
    s, start, *rest = c.singles(call)
    # ES: a negative start counts from the end; start 0 is the first character.
    begin = f"(CASE WHEN {start} > 0 THEN {start} WHEN {start} < 0 THEN greatest(length({s}) + {start} + 1, 1) ELSE 1 END)"
    if rest:
        negative = f"({rest[0]} < 0)"
        found = f"'{values.negative_length(0)[:-2]}' || CAST({rest[0]} AS VARCHAR) || ']'"
        fail = c.failure(call.span, f"[{found}]", negative, T.KEYWORD)
        return E(
            f"(CASE WHEN {negative} THEN {fail} ELSE substring({s}, {begin}, {rest[0]}) END)",
            T.KEYWORD,
        )
    return E(f"substring({s}, {begin})", T.KEYWORD)


@_reg("locate")
def _locate(c: ExprCompiler, call: p.Call) -> E:
    s, sub, *rest = c.singles(call)
    if not rest:
        return E(f"CAST(instr({s}, {sub}) AS INTEGER)", T.INTEGER)
    st = f"greatest({rest[0]}, 1)"
    found = f"instr(substring({s}, {st}), {sub})"
    return E(
        f"CAST(CASE WHEN {found} = 0 THEN 0 ELSE {found} + {st} - 1 END AS INTEGER)", T.INTEGER
    )


@_reg("replace")
def _replace(c: ExprCompiler, call: p.Call) -> E:
    s, regex, _new = c.singles(call)
    new = _const_str(call.args[2], "REPLACE replacement")
    # Java's $n group references are RE2's \n.
    re2_new = ""
    i = 0
    while i < len(new):
        ch = new[i]
        if ch == "\\" and i + 1 < len(new):
            re2_new += "\\\\" if new[i + 1] == "\\" else new[i + 1]
            i += 2
            continue
        if ch == "$" and i + 1 < len(new) and new[i + 1].isdigit():
            re2_new += "\\" + new[i + 1]
            i += 2
            continue
        re2_new += "\\\\" if ch == "\\" else ch
        i += 1
    return E(f"try(regexp_replace({s}, {regex}, {literal(re2_new, T.KEYWORD)}, 'g'))", T.KEYWORD)


@_reg("split")
def _split(c: ExprCompiler, call: p.Call) -> E:
    s, d = c.singles(call)
    return E(norm_list(f"string_split({s}, {d})"), T.KEYWORD, True)


@_reg("json_extract")
def _json_extract(c: ExprCompiler, call: p.Call) -> E:
    s, path = c.singles(call)
    full = f"(CASE WHEN starts_with({path}, '$') THEN {path} ELSE '$.' || {path} END)"
    return E(f"try(json_extract_string({s}, {full}))", T.KEYWORD)


# -- numbers --------------------------------------------------------------------------------


@_reg("abs")
def _abs(c: ExprCompiler, call: p.Call) -> E:
    (x,) = c.singles(call)
    if call.type in _OVERFLOW:  # abs of the most negative long or integer overflows
        return _overflow_checked(c, call, f"try(abs({x}))", (x,))
    return E(f"abs({x})", call.type)


@_reg("ceil", "floor")
def _ceil_floor(c: ExprCompiler, call: p.Call) -> E:
    (x,) = c.singles(call)
    if call.type is not T.DOUBLE:
        # An integral value is its own ceiling (DuckDB's ceil of a BIGINT goes through a double:
        # CEIL(9223372036854775807) was 2^63).
        return E(f"({x})", call.type)
    return E(f"{call.fn}({x})", call.type)


_simple("signum", "CAST(sign({0}) AS DOUBLE)")
# DuckDB's cbrt is an ulp off Java's (cbrt(-27) is -3.0000000000000004): values.cbrt.
_simple("cbrt", "rw_cbrt({0})")


def _guarded(name: str, bad: str, value: str, reason: str) -> None:
    """A math function that is null with an ArithmeticException where `bad` holds."""

    def handler(c: ExprCompiler, call: p.Call) -> E:
        args = c.singles(call)
        test = "(" + bad.format(*args) + ")"
        fail = c.failure(
            call.span, _reason(f"java.lang.ArithmeticException: {reason}"), test, T.DOUBLE
        )
        return E(f"(CASE WHEN {test} THEN {fail} ELSE {value.format(*args)} END)", T.DOUBLE)

    _CALLS[name] = handler


_guarded("sqrt", "{0} < 0", "sqrt({0})", "Square root of negative")
_guarded("log10", "{0} <= 0", "log10({0})", "Log of non-positive number")
_guarded(
    "pow",
    "try(isinf(pow({0}, {1})) OR isnan(pow({0}, {1})))",
    "try(pow({0}, {1}))",
    "invalid result when computing pow",
)
# As doubles: abs() of the most negative integer overflows in DuckDB.
_guarded("acos", "abs(CAST({0} AS DOUBLE)) > 1", "acos({0})", "Acos input out of range")
_guarded("asin", "abs(CAST({0} AS DOUBLE)) > 1", "asin({0})", "Asin input out of range")
_guarded("cosh", "isinf(cosh({0}))", "cosh({0})", "cosh overflow")
_guarded("sinh", "isinf(sinh({0}))", "sinh({0})", "sinh overflow")
for _fn in ("atan", "cos", "sin", "tan", "tanh"):
    _simple(_fn, f"{_fn}(CAST({{0}} AS DOUBLE))")
_simple("atan2", "atan2(CAST({0} AS DOUBLE), CAST({1} AS DOUBLE))")
# Java's Math.hypot does not overflow on the way (hypot(3e200, 4e200) is 5e200); squaring did.
_simple("hypot", "rw_hypot(CAST({0} AS DOUBLE), CAST({1} AS DOUBLE))")


@_reg("to_degrees", "to_radians")
def _angle(c: ExprCompiler, call: p.Call) -> E:
    # Every value of a multivalue is converted (the registry's maps_values).
    (a,) = c.args(call)
    fn = "degrees" if call.fn == "to_degrees" else "radians"
    return _each_value(a, fn + "(CAST({} AS DOUBLE))", T.DOUBLE)


@_reg("log")
def _log(c: ExprCompiler, call: p.Call) -> E:
    args = [f"CAST({x} AS DOUBLE)" for x in c.singles(call)]
    base, x = ("exp(1)", args[0]) if len(args) == 1 else (args[0], args[1])
    value = f"ln({x})" if len(args) == 1 else f"(ln({x}) / ln({base}))"
    checks = [
        (f"({x} <= 0 OR {base} <= 0)", _reason(f"{_ARITHMETIC}: Log of non-positive number")),
        (f"({base} = 1)", _reason(f"{_ARITHMETIC}: Log of base 1")),
    ]
    return E(c.first_failure(call.span, checks, value, T.DOUBLE), T.DOUBLE)


@_reg("clamp", "clamp_min", "clamp_max")
def _clamp(c: ExprCompiler, call: p.Call) -> E:
    t = call.type
    if t in (T.IP, T.VERSION, T.BOOLEAN):
        raise UnsupportedFeatureError(f"{call.fn.upper()} of {t.value} values", call.span)
    value, *bounds = c.singles(call)
    if t.is_numeric:
        bounds = [f"CAST({b} AS {sql_type(t)})" for b in bounds]
    # GREATEST/LEAST skip nulls; Elasticsearch's CLAMP is null when any argument is.
    nulls = " OR ".join(f"({x}) IS NULL" for x in (value, *bounds))
    if call.fn != "clamp_max":
        value = f"greatest({value}, {bounds.pop(0)})"
    if call.fn != "clamp_min":
        value = f"least({value}, {bounds[0]})"
    return E(f"(CASE WHEN {nulls} THEN NULL ELSE {value} END)", t)


@_reg("round_to")
def _round_to(c: ExprCompiler, call: p.Call) -> E:
    value, *points = c.singles(call)
    t = call.type
    if t.is_numeric:
        points = [f"CAST({pt} AS {sql_type(t)})" for pt in points]
    listed = f"[{', '.join(points)}]"
    below = f"list_filter({listed}, lambda pt: pt <= {value})"
    picked = f"CASE WHEN len({below}) > 0 THEN list_max({below}) ELSE list_min({listed}) END"
    nulls = " OR ".join(f"({x}) IS NULL" for x in (value, *points))
    return E(f"(CASE WHEN {nulls} THEN NULL ELSE {picked} END)", t)


_simple(
    "day_name",
    "['Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday', 'Sunday'][isodow({0})]",
)
_simple("month_name", "monthname({0})")


@_reg("copy_sign")
def _copy_sign(c: ExprCompiler, call: p.Call) -> E:
    m, sign = c.singles(call)
    negative = f"(CAST({sign} AS DOUBLE) < 0 OR (CAST({sign} AS DOUBLE) = 0 AND 1 / CAST({sign} AS DOUBLE) < 0))"
    if call.type is T.DOUBLE:
        value = f"(CASE WHEN {negative} THEN -abs(CAST({m} AS DOUBLE)) ELSE abs(CAST({m} AS DOUBLE)) END)"
        return E(value, T.DOUBLE)
    # In HUGEINT, so that the most negative integer's magnitude overflows as in Java, with its
    # warning, instead of failing DuckDB's abs().
    wide = f"CAST({m} AS HUGEINT)"
    signed = f"(CASE WHEN {negative} THEN -abs({wide}) ELSE abs({wide}) END)"
    return _overflow_checked(c, call, f"try(CAST({signed} AS {sql_type(call.type)}))", [m, sign])


_guarded(
    "exp",
    "isinf(exp(CAST({0} AS DOUBLE)))",
    "exp(CAST({0} AS DOUBLE))",
    "not a finite double number: Infinity",
)


@_reg("scalb")
def _scalb(c: ExprCompiler, call: p.Call) -> E:
    """Math.scalb; a long scale factor outside the ints fails Math.toIntExact first."""
    d, n = c.singles(call)
    x = f"CAST({d} AS DOUBLE)"
    checks = [
        (
            f"({n} NOT BETWEEN {values.INT_MIN} AND {values.INT_MAX})",
            _reason(f"{_ARITHMETIC}: integer overflow"),
        ),
        (
            f"({x} <> 0 AND isinf({x} * pow(2.0, {n})))",
            _reason(f"{_ARITHMETIC}: not a finite double number: Infinity"),
        ),
    ]
    # Math.scalb(0, n) is 0 whatever n (0 * pow(2, 2^31) was NaN).
    value = f"(CASE WHEN {x} = 0 THEN {x} ELSE {x} * pow(2.0, {n}) END)"
    return E(c.first_failure(call.span, checks, value, T.DOUBLE), T.DOUBLE)


@_reg("date_format")
def _date_format(c: ExprCompiler, call: p.Call) -> E:
    args = c.singles(call)
    pattern, when = ("NULL", args[0]) if len(args) == 1 else (args[0], args[1])
    value = f"rw_date_format({pattern}, {when})"
    failed = f"({when}) IS NOT NULL AND ({pattern}) IS NOT NULL AND {value} IS NULL"
    if len(args) == 1:
        return E(value, T.KEYWORD)
    reasons = f"rw_date_errors({pattern}, NULL, false)"
    fail = c.failure(call.span, reasons, failed, T.KEYWORD)
    return E(f"(CASE WHEN {failed} THEN {fail} ELSE {value} END)", T.KEYWORD)


@_reg("date_parse")
def _date_parse(c: ExprCompiler, call: p.Call) -> E:
    args = c.singles(call)
    pattern, text = ("NULL", args[0]) if len(args) == 1 else (args[0], args[1])
    value = f"rw_date_parse({pattern}, {text})"
    failed = f"({text}) IS NOT NULL AND {value} IS NULL"
    if len(args) > 1:
        failed = f"({pattern}) IS NOT NULL AND {failed}"
    reasons = f"rw_date_errors({pattern}, {text}, true)"
    fail = c.failure(call.span, reasons, failed, T.DATETIME)
    return E(f"(CASE WHEN {failed} THEN {fail} ELSE {value} END)", T.DATETIME)


@_reg("hash")
def _hash_any(c: ExprCompiler, call: p.Call) -> E:
    algorithm, text = c.singles(call)
    reasons = f"rw_hash_errors({algorithm})"
    failed = f"({text}) IS NOT NULL AND rw_hash({algorithm}, {text}) IS NULL"
    fail = c.failure(call.span, reasons, failed, T.KEYWORD)
    return E(f"(CASE WHEN {failed} THEN {fail} ELSE rw_hash({algorithm}, {text}) END)", T.KEYWORD)


_simple("pi", "pi()")
_simple("e", "exp(1)")
_simple("tau", "(2 * pi())")


@_reg("round")
def _round(c: ExprCompiler, call: p.Call) -> E:
    args = c.singles(call)
    digits = call.args[1] if len(call.args) > 1 else p.Const(0, T.INTEGER)
    if call.type is T.DOUBLE:
        return E(_round_double(args[0], digits, args[1] if len(args) > 1 else "0"), T.DOUBLE)
    # An integral value is itself at digits >= 0 and 0 at 20 digits or more below the point
    # (the widest unsigned_long has 20), so the count DuckDB's round() takes as an INTEGER,
    # whatever the type of the argument (an int, a long), is clamped to [-20, 0].
    if isinstance(digits, p.Const) and isinstance(digits.value, int):
        n = str(max(-20, min(0, digits.value)))
    else:
        n = f"CAST({_within(args[1], -20, 0)} AS INTEGER)"
    x = args[0]
    # Java's Maths.round(long, long) (values.round_integral): a long with no more digits, by a
    # double's log10, than are rounded away is 0.
    few_digits = (
        f"({n} < 0 AND ({x}) <> 0 AND CAST({x} AS HUGEINT) BETWEEN {values.LONG_MIN} AND "
        f"{values.LONG_MAX} AND trunc(log10(abs(CAST({x} AS DOUBLE))) + 1) <= -({n}))"
    )
    rounded = f"(CASE WHEN {few_digits} THEN 0 ELSE round({x}, {n}) END)"
    value = f"try(CAST({rounded} AS {sql_type(call.type)}))"
    return _overflow_checked(c, call, value, args)


def _within(x: str, low: int, high: int) -> str:
    """`x` within [low, high], null where `x` is (DuckDB's greatest and least skip nulls)."""
    return f"(CASE WHEN {x} < {low} THEN {low} WHEN {x} > {high} THEN {high} ELSE {x} END)"


def _round_double(x: str, digits: p.Expr, digits_sql: str) -> str:
    """Half up on the shortest decimal form of the double (2.05 -> 2.1), as the reference
    (values.round_double); DuckDB's round() works on the binary value (2.05 -> 2.0). Constant
    digits round a DECIMAL in SQL; other digits (an int or a long column) call the reference's
    function, as DuckDB's DECIMAL round() takes only a constant count."""
    if not (isinstance(digits, p.Const) and isinstance(digits.value, int)):
        clamped = _within(digits_sql, -values.ROUND_DIGITS, values.ROUND_DIGITS)
        return f"rw_round_double(CAST({x} AS DOUBLE), CAST({clamped} AS INTEGER))"
    n = values.round_digits(digits.value)
    exact = f"CAST(round(CAST(CAST({x} AS VARCHAR) AS DECIMAL(38, 18)), {n}) AS DOUBLE)"
    # Beyond DECIMAL(38, 18) a double has no fraction left to round at non-negative digits.
    return (
        f"(CASE WHEN abs({x}) < 1e19 THEN {exact} WHEN {n} >= 0 THEN {x} ELSE round({x}, {n}) END)"
    )


# -- dates ----------------------------------------------------------------------------------


@_reg("now")
def _now(c: ExprCompiler, call: p.Call) -> E:
    return E(c.now, T.DATETIME)


_PERIOD_TRUNC = {(0, 1): "day", (0, 7): "week", (1, 0): "month", (3, 0): "quarter", (12, 0): "year"}
_DURATION_TRUNC = {3_600_000: "hour", 60_000: "minute", 1000: "second", 1: "millisecond"}


@_reg("date_trunc")
def _date_trunc(c: ExprCompiler, call: p.Call) -> E:
    span, date = call.args
    if not isinstance(span, p.Const) or not isinstance(span.value, p.TemporalAmount):
        raise UnsupportedFeatureError("DATE_TRUNC with a non-constant interval", call.span)
    amount = span.value
    d = single(c.compile(date))
    if amount.millis == 0:
        unit = _PERIOD_TRUNC.get((amount.months, amount.days))
        if unit is None:
            raise UnsupportedFeatureError(
                f"DATE_TRUNC interval of {amount.months} months and {amount.days} days", call.span
            )
        return E(f"CAST(date_trunc('{unit}', {d}) AS TIMESTAMP)", call.type)
    if amount.months or amount.days or amount.millis < 0:
        raise UnsupportedFeatureError("DATE_TRUNC with a mixed interval", call.span)
    unit = _DURATION_TRUNC.get(amount.millis)
    if unit is not None:
        return E(f"CAST(date_trunc('{unit}', {d}) AS TIMESTAMP)", call.type)
    return E(
        f"CAST(time_bucket(to_milliseconds({amount.millis}), {d}, TIMESTAMP '1970-01-01') AS TIMESTAMP)",
        call.type,
    )


_DIFF_UNITS = {
    **dict.fromkeys(("year", "years", "yy", "yyyy"), "year"),
    **dict.fromkeys(("quarter", "quarters", "qq", "q"), "quarter"),
    **dict.fromkeys(("month", "months", "mm", "m"), "month"),
    **dict.fromkeys(("dayofyear", "dy", "y"), "day"),
    **dict.fromkeys(("day", "days", "dd", "d"), "day"),
    **dict.fromkeys(("week", "weeks", "wk", "ww"), "week"),
    **dict.fromkeys(("weekday", "weekdays", "dw"), "day"),
    **dict.fromkeys(("hour", "hours", "hh"), "hour"),
    **dict.fromkeys(("minute", "minutes", "mi", "n"), "minute"),
    **dict.fromkeys(("second", "seconds", "ss", "s"), "second"),
    **dict.fromkeys(("millisecond", "milliseconds", "ms"), "millisecond"),
    **dict.fromkeys(("microsecond", "microseconds", "mcs"), "microsecond"),
}


@_reg("date_diff")
def _date_diff(c: ExprCompiler, call: p.Call) -> E:
    unit_name = _const_str(call.args[0], "DATE_DIFF unit").lower()
    unit = _DIFF_UNITS.get(unit_name)
    if unit is None:
        raise UnsupportedFeatureError(f"DATE_DIFF unit [{unit_name}]", call.span)
    start, end = (single(c.compile(a)) for a in call.args[1:])
    # Past an integer the result is null with Java's toIntExact warning (was null, silently).
    value = f"try(CAST(date_sub('{unit}', {start}, {end}) AS INTEGER))"
    return _overflow_checked(c, call, value, (start, end))


_SECOND_OF_DAY = "(hour({d}) * 3600 + minute({d}) * 60 + second({d}))"
_MICRO = "(microsecond({d}) % 1000000)"
# java.time's ChronoField values of a UTC timestamp `{d}` (as evaluate/scalars.py computes them).
_EXTRACT = {
    "year": "year({d})",
    "year_of_era": "year({d})",
    "era": "(CASE WHEN year({d}) >= 1 THEN 1 ELSE 0 END)",
    "month_of_year": "month({d})",
    "proleptic_month": "(year({d}) * 12 + month({d}) - 1)",
    "quarter_of_year": "quarter({d})",
    "day_of_month": "day({d})",
    "day_of_week": "isodow({d})",
    "day_of_year": "dayofyear({d})",
    "epoch_day": "(epoch_ms(date_trunc('day', {d})) // 86400000)",
    "aligned_week_of_year": "((dayofyear({d}) - 1) // 7 + 1)",
    "aligned_week_of_month": "((day({d}) - 1) // 7 + 1)",
    "aligned_day_of_week_in_month": "((day({d}) - 1) % 7 + 1)",
    "aligned_day_of_week_in_year": "((dayofyear({d}) - 1) % 7 + 1)",
    "ampm_of_day": "(CASE WHEN hour({d}) < 12 THEN 0 ELSE 1 END)",
    "hour_of_ampm": "(hour({d}) % 12)",
    "clock_hour_of_ampm": "(CASE WHEN hour({d}) % 12 = 0 THEN 12 ELSE hour({d}) % 12 END)",
    "hour_of_day": "hour({d})",
    "clock_hour_of_day": "(CASE WHEN hour({d}) = 0 THEN 24 ELSE hour({d}) END)",
    "minute_of_hour": "minute({d})",
    "minute_of_day": "(hour({d}) * 60 + minute({d}))",
    "second_of_minute": "second({d})",
    "second_of_day": _SECOND_OF_DAY,
    "milli_of_second": f"({_MICRO} // 1000)",
    "milli_of_day": f"({_SECOND_OF_DAY} * 1000 + {_MICRO} // 1000)",
    "micro_of_second": _MICRO,
    "micro_of_day": f"({_SECOND_OF_DAY} * 1000000 + {_MICRO})",
    "nano_of_second": f"({_MICRO} * 1000)",
    "nano_of_day": f"({_SECOND_OF_DAY} * 1000000000 + {_MICRO} * 1000)",
    "instant_seconds": "CAST(floor(epoch_ms({d}) / 1000) AS BIGINT)",
    "offset_seconds": "0",
}


@_reg("date_extract")
def _date_extract(c: ExprCompiler, call: p.Call) -> E:
    part = _const_str(call.args[0], "DATE_EXTRACT part").lower()
    d = single(c.compile(call.args[1]))
    template = _EXTRACT.get(part)
    if template is None:
        reason = (
            "java.lang.IllegalArgumentException: No enum constant "
            f"java.time.temporal.ChronoField.{part.upper()}"
        )
        fail = c.failure(call.span, _reason(reason), f"({d}) IS NOT NULL", T.LONG)
        return E(f"(CASE WHEN ({d}) IS NOT NULL THEN {fail} END)", T.LONG)
    return E(f"CAST({template.format(d=d)} AS BIGINT)", T.LONG)


@_reg("bucket")
def _bucket(c: ExprCompiler, call: p.Call) -> E:
    value, span = call.args
    if isinstance(span, p.Const) and isinstance(span.value, p.TemporalAmount):
        return _date_trunc(c, p.Call("date_trunc", (span, value), call.type, span=call.span))
    if isinstance(span, p.Const) and isinstance(span.value, int | float) and value.type.is_numeric:
        v = single(c.compile(value))
        return E(f"CAST(floor({v} / {span.value!r}) * {span.value!r} AS DOUBLE)", T.DOUBLE)
    raise UnsupportedFeatureError("BUCKET without a constant span", call.span)


# -- IPs ------------------------------------------------------------------------------------


@_reg("cidr_match")
def _cidr_match(c: ExprCompiler, call: p.Call) -> E:
    ip, *blocks = c.args(call)
    block_list = []
    for b in blocks:
        block_list.extend(
            b.sql[1:-1].split(", ") if b.is_list and b.sql.startswith("[") else [single(b)]
        )
    args = f"{single(ip)}, [{', '.join(block_list)}]"
    value = f"rw_cidr({args})"
    failed = f"({single(ip)}) IS NOT NULL AND {value} IS NULL"
    fail = c.failure(call.span, f"rw_cidr_errors({args})", failed, T.BOOLEAN)
    return E(f"(CASE WHEN {failed} THEN {fail} ELSE {value} END)", T.BOOLEAN)


@_reg("ip_prefix")
def _ip_prefix(c: ExprCompiler, call: p.Call) -> E:
    ip, v4, v6 = c.singles(call)
    value = f"rw_ip_prefix({ip}, {v4}, {v6})"
    if c.warnings is None:
        return E(value, T.IP)
    bad = (
        "'java.lang.IllegalArgumentException: Prefix length {0} must be in range [0, {1}], found '"
    )
    v4_bad, v6_bad = f"{v4} NOT BETWEEN 0 AND 32", f"{v6} NOT BETWEEN 0 AND 128"
    v4_fail = c.failure(call.span, f"[{bad.format('v4', 32)} || {v4}]", v4_bad, T.IP)
    v6_fail = c.failure(call.span, f"[{bad.format('v6', 128)} || {v6}]", v6_bad, T.IP)
    return E(
        f"(CASE WHEN {ip} IS NULL THEN NULL WHEN {v4_bad} THEN {v4_fail} "
        f"WHEN {v6_bad} THEN {v6_fail} ELSE {value} END)",
        T.IP,
    )


# -- conditionals ---------------------------------------------------------------------------


def _uniform(items: Sequence[E]) -> tuple[list[str], bool]:
    if any(i.is_list for i in items):
        return [as_list(i) for i in items], True
    return [i.sql for i in items], False


@_reg("case")
def _case(c: ExprCompiler, call: p.Call) -> E:
    args = c.args(call)
    pairs = len(args) // 2
    # A multivalued condition is false; Elasticsearch's warning names the whole CASE.
    conds = [c.checked_single(args[2 * i], call.span, "false") for i in range(pairs)]
    vals = [args[2 * i + 1] for i in range(pairs)]
    has_else = len(args) % 2 == 1
    if has_else:
        vals.append(args[-1])
    sqls, is_list = _uniform(vals)
    parts = [f"WHEN {cond} THEN {v}" for cond, v in zip(conds, sqls, strict=False)]
    tail = f" ELSE {sqls[-1]}" if has_else else ""
    return E(f"(CASE {' '.join(parts)}{tail} END)", call.type, is_list)


@_reg("coalesce")
def _coalesce(c: ExprCompiler, call: p.Call) -> E:
    sqls, is_list = _uniform(c.args(call))
    return E(f"COALESCE({', '.join(sqls)})", call.type, is_list)


@_reg("greatest", "least")
def _greatest(c: ExprCompiler, call: p.Call) -> E:
    args = c.args(call)
    lists = [as_list(a) for a in args]
    nulls = " OR ".join(f"({a.sql}) IS NULL" for a in args)
    extreme = list_extreme(f"list_concat({', '.join(lists)})", call.type, call.fn == "greatest")
    return E(f"(CASE WHEN {nulls} THEN NULL ELSE {extreme} END)", call.type)


# -- multivalue functions -------------------------------------------------------------------


def _mv_arg(c: ExprCompiler, call: p.Call) -> E:
    return c.compile(call.args[0])


@_reg("mv_count")
def _mv_count(c: ExprCompiler, call: p.Call) -> E:
    return E(f"CAST(len({as_list(_mv_arg(c, call))}) AS INTEGER)", T.INTEGER)


@_reg("mv_first", "mv_last")
def _mv_first(c: ExprCompiler, call: p.Call) -> E:
    a = _mv_arg(c, call)
    if not a.is_list:
        return a
    return E(f"({a.sql})[{1 if call.fn == 'mv_first' else -1}]", a.type)


# Types whose text does not sort as Elasticsearch orders them: a UDF gives a BLOB key that does
# (ips by address bytes, versions by values.version_key).
ORDER_KEYS = {T.IP: "rw_ip_key", T.VERSION: "rw_version_key"}


def order_key(sql: str, t: T) -> str:
    """SQL that orders as Elasticsearch orders values of type `t`."""
    fn = ORDER_KEYS.get(t)
    return f"{fn}({sql})" if fn else sql


def sort_values(sql: str, t: T, order: str = "ASC") -> str:
    """A LIST sorted as Elasticsearch orders the type (ORDER_KEYS), `order` ASC or DESC."""
    fn = ORDER_KEYS.get(t)
    if fn is None:
        return f"list_sort({sql}, '{order}')"
    keyed = f"list_transform({sql}, lambda v: {{'k': {fn}(v), 'v': v}})"
    return f"list_transform(list_sort({keyed}, '{order}'), lambda s: s.v)"


def list_extreme(sql: str, t: T, largest: bool) -> str:
    """The largest or smallest value of a LIST as Elasticsearch orders the type."""
    fn = ORDER_KEYS.get(t)
    if fn is None:
        return f"list_{'max' if largest else 'min'}({sql})"
    keyed = f"list_sort(list_transform({sql}, lambda v: {{'k': {fn}(v), 'v': v}}))"
    return f"({keyed})[{-1 if largest else 1}].v"


@_reg("mv_min", "mv_max")
def _mv_min(c: ExprCompiler, call: p.Call) -> E:
    a = _mv_arg(c, call)
    if not a.is_list:
        return a
    return E(list_extreme(a.sql, a.type, call.fn == "mv_max"), a.type)


@_reg("mv_sum")
def _mv_sum(c: ExprCompiler, call: p.Call) -> E:
    a = as_list(_mv_arg(c, call))
    value = f"try(CAST(list_sum({a}) AS {sql_type(call.type)}))"
    return _overflow_checked(c, call, value, (a,))


@_reg("mv_avg")
def _mv_avg(c: ExprCompiler, call: p.Call) -> E:
    return E(f"CAST(list_avg({as_list(_mv_arg(c, call))}) AS DOUBLE)", T.DOUBLE)


@_reg("mv_median")
def _mv_median(c: ExprCompiler, call: p.Call) -> E:
    a = as_list(_mv_arg(c, call))
    if call.type is T.DOUBLE:
        return E(f"CAST(list_median({a}) AS DOUBLE)", T.DOUBLE)
    return E(f"CAST(floor(list_median({a})) AS {sql_type(call.type)})", call.type)


@_reg("mv_concat")
def _mv_concat(c: ExprCompiler, call: p.Call) -> E:
    a = c.compile(call.args[0])
    d = single(c.compile(call.args[1]))
    return E(
        f"(CASE WHEN ({a.sql}) IS NULL THEN NULL ELSE array_to_string({as_list(a)}, {d}) END)",
        T.KEYWORD,
    )


@_reg("mv_dedupe")
def _mv_dedupe(c: ExprCompiler, call: p.Call) -> E:
    a = _mv_arg(c, call)
    if not a.is_list:
        return a
    return E(f"list_filter({a.sql}, lambda v, i: list_position({a.sql}, v) = i)", a.type, True)


@_reg("mv_slice")
def _mv_slice(c: ExprCompiler, call: p.Call) -> E:
    a = as_list(c.compile(call.args[0]))
    start = single(c.compile(call.args[1]))
    end = single(c.compile(call.args[2])) if len(call.args) > 2 else start
    n = f"len({a})"
    s = f"(CASE WHEN {start} < 0 THEN {n} + {start} ELSE {start} END)"
    e = f"(CASE WHEN {end} < 0 THEN {n} + {end} ELSE {end} END)"
    body = f"(CASE WHEN {s} > {e} OR {s} >= {n} OR {e} < 0 THEN NULL ELSE list_slice({a}, greatest({s}, 0) + 1, least({e}, {n} - 1) + 1) END)"
    return E(body, call.type, True)


@_reg("mv_sort")
def _mv_sort(c: ExprCompiler, call: p.Call) -> E:
    a = _mv_arg(c, call)
    order = _const_str(call.args[1], "MV_SORT order").upper() if len(call.args) > 1 else "ASC"
    if order not in ("ASC", "DESC"):
        raise UnsupportedFeatureError(f"MV_SORT order [{order}]", call.span)
    return E(sort_values(as_list(a), a.type, order), a.type, True)


@_reg("mv_append")
def _mv_append(c: ExprCompiler, call: p.Call) -> E:
    a, b = c.args(call)
    # Either argument null makes the result null (list_concat would skip it).
    both = f"CASE WHEN ({a.sql}) IS NOT NULL AND ({b.sql}) IS NOT NULL THEN list_concat({as_list(a)}, {as_list(b)}) END"
    joined = norm_list(f"({both})")
    sizes = f"(COALESCE(len({as_list(a)}), 0) + COALESCE(len({as_list(b)}), 0))"
    too_many = f"({sizes} > {values.MAX_VALUES})"
    weight = f"({_list_bytes(a, call.type)} + {_list_bytes(b, call.type)})"
    too_large = f"({weight} > {values.MAX_MULTIVALUE_BYTES})"
    checks = [
        (too_many, _reason(values.TOO_MANY_VALUES)),
        (too_large, _reason(values.MULTIVALUE_TOO_LARGE)),
    ]
    return E(c.first_failure(call.span, checks, joined, call.type, True), call.type, True)


def _list_bytes(e: E, t: T) -> str:
    """What `e`'s values weigh against MAX_MULTIVALUE_BYTES (values.multivalue_bytes), as BIGINT."""
    if t in (T.KEYWORD, T.TEXT, T.VERSION):
        total = f"list_sum(list_transform({as_list(e)}, lambda s: strlen(s)))"
        return f"COALESCE(CAST({total} AS BIGINT), 0)"
    width = values.IP_WIDTH if t is T.IP else values.VALUE_WIDTH
    return f"(COALESCE(len({as_list(e)}), 0) * {width})"


@_reg("mv_contains")
def _mv_contains(c: ExprCompiler, call: p.Call) -> E:
    a, b = c.args(call)
    sup, sub = as_list(a), as_list(b)
    return E(
        f"(CASE WHEN {sub} IS NULL THEN TRUE WHEN {sup} IS NULL THEN FALSE ELSE list_has_all({sup}, {sub}) END)",
        T.BOOLEAN,
    )


@_reg("mv_intersection")
def _mv_intersection(c: ExprCompiler, call: p.Call) -> E:
    a, b = c.args(call)
    # The first argument's order, each value once (list_intersect's order is unspecified).
    left, right = as_list(a), as_list(b)
    kept = f"list_filter({left}, lambda v, i: list_contains({right}, v) AND list_position({left}, v) = i)"
    return E(norm_list(kept), call.type, True)
