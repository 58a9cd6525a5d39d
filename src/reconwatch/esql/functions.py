"""The ES|QL function and operator registry: kinds, parameters, accepted types, result types, MV rules."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from enum import StrEnum

from reconwatch.records import record
from reconwatch.types import DataType as T


class Kind(StrEnum):
    SCALAR = "scalar"
    AGGREGATE = "aggregate"
    OPERATOR = "operator"


TypeSet = frozenset[T]

STRING: TypeSet = frozenset({T.KEYWORD, T.TEXT})
NUMERIC: TypeSet = frozenset({T.INTEGER, T.LONG, T.UNSIGNED_LONG, T.DOUBLE})
INTEGRAL: TypeSet = frozenset({T.INTEGER, T.LONG, T.UNSIGNED_LONG})
# Positions, lengths and counts Elasticsearch takes as `int` only (its type tables: SUBSTRING,
# LEFT, RIGHT, LOCATE, REPEAT, SPACE, IP_PREFIX, MV_SLICE, TOP's limit): a long there is a
# type error, not a value narrowed at run time.
INTEGER: TypeSet = frozenset({T.INTEGER})
# SCALB's scale factor: an int or a long (a long outside the ints is null, `integer overflow`).
SIGNED_WHOLE: TypeSet = frozenset({T.INTEGER, T.LONG})
DATE: TypeSet = frozenset({T.DATETIME, T.DATE_NANOS})
TEMPORAL_AMOUNT: TypeSet = frozenset({T.DATE_PERIOD, T.TIME_DURATION})
IP: TypeSet = frozenset({T.IP})
BOOLEAN: TypeSet = frozenset({T.BOOLEAN})
ORDERED: TypeSet = NUMERIC | STRING | DATE | IP | frozenset({T.VERSION, T.BOOLEAN})
VALUE: TypeSet = ORDERED  # every storable (non-spatial, non-temporal-amount) type
ANY: TypeSet = VALUE | TEMPORAL_AMOUNT


@record
class Param:
    """One parameter: its name (for messages), accepted types, and whether it may be omitted."""

    name: str
    types: TypeSet
    optional: bool = False
    # How a type error names the accepted types where Elasticsearch's words are not a list.
    expected: str | None = None


ResultRule = Callable[[Sequence[T]], T]


@record
class FunctionDef:
    """A registered function or operator.

    mv_aware: multivalued arguments are read whole; otherwise a multivalued argument makes the
      result null with the "single-value function encountered multi-value" warning.
    maps_values: applied to each value of a multivalued first argument (TO_* conversions).
    null_propagating: a null argument makes the result null without evaluating.
    mv_result: the result may be a multivalue.
    variadic: the last parameter repeats.
    """

    name: str
    kind: Kind
    params: tuple[Param, ...]
    result: ResultRule
    variadic: bool = False
    mv_aware: bool = False
    maps_values: bool = False
    null_propagating: bool = True
    mv_result: bool = False

    @property
    def min_args(self) -> int:
        return sum(1 for p in self.params if not p.optional)

    @property
    def max_args(self) -> int | None:
        return None if self.variadic else len(self.params)

    def param_for(self, index: int) -> Param:
        if index < len(self.params):
            return self.params[index]
        return self.params[-1]


# ---------------------------------------------------------------------------------------------
# Result type rules


def fixed(t: T) -> ResultRule:
    return lambda _args: t


def same_as(index: int, *, text_to_keyword: bool = False) -> ResultRule:
    def rule(args: Sequence[T]) -> T:
        t = args[index] if index < len(args) else T.NULL
        return T.KEYWORD if text_to_keyword and t is T.TEXT else t

    return rule


def first_non_null(args: Sequence[T]) -> T:
    for t in args:
        if t is not T.NULL:
            return T.KEYWORD if t is T.TEXT and any(a is T.KEYWORD for a in args) else t
    return T.NULL


def first_non_null_keyword(args: Sequence[T]) -> T:
    """first_non_null, but never text: a function that picks among values returns keyword for
    text (Elasticsearch 8.17+: CASE, COALESCE, GREATEST, LEAST)."""
    t = first_non_null(args)
    return T.KEYWORD if t is T.TEXT else t


def sum_type(args: Sequence[T]) -> T:
    t = args[0] if args else T.NULL
    if t is T.NULL:
        return T.NULL
    return T.DOUBLE if t is T.DOUBLE else T.UNSIGNED_LONG if t is T.UNSIGNED_LONG else T.LONG


def _p(name: str, types: TypeSet, optional: bool = False, expected: str | None = None) -> Param:
    return Param(name, types, optional, expected)


REGISTRY: dict[str, FunctionDef] = {}


def _add(fn: FunctionDef, *aliases: str) -> None:
    REGISTRY[fn.name] = fn
    for alias in aliases:
        REGISTRY[alias] = fn


def scalar(
    name: str,
    params: Sequence[Param],
    result: ResultRule,
    *aliases: str,
    variadic: bool = False,
    mv_aware: bool = False,
    maps_values: bool = False,
    null_propagating: bool = True,
    mv_result: bool = False,
) -> None:
    _add(
        FunctionDef(
            name,
            Kind.SCALAR,
            tuple(params),
            result,
            variadic,
            mv_aware,
            maps_values,
            null_propagating,
            mv_result,
        ),
        *aliases,
    )


def aggregate(
    name: str, params: Sequence[Param], result: ResultRule, *, mv_result: bool = False
) -> None:
    _add(
        FunctionDef(
            name,
            Kind.AGGREGATE,
            tuple(params),
            result,
            mv_aware=True,
            null_propagating=False,
            mv_result=mv_result,
        )
    )


def operator(
    name: str,
    params: Sequence[Param],
    result: ResultRule,
    *,
    variadic: bool = False,
    null_propagating: bool = True,
    mv_aware: bool = False,
    maps_values: bool = False,
) -> None:
    _add(
        FunctionDef(
            name,
            Kind.OPERATOR,
            tuple(params),
            result,
            variadic,
            mv_aware,
            maps_values,
            null_propagating,
        )
    )


# ---------------------------------------------------------------------------------------------
# Aggregates: they read every value of a multivalue and skip nulls.

aggregate("count", [_p("field", ANY, optional=True)], fixed(T.LONG))
aggregate(
    "count_distinct",
    [_p("field", VALUE), _p("precision", INTEGRAL, optional=True)],
    fixed(T.LONG),
)
aggregate("values", [_p("field", VALUE)], same_as(0, text_to_keyword=True), mv_result=True)
aggregate("min", [_p("field", ORDERED)], same_as(0, text_to_keyword=True))
aggregate("max", [_p("field", ORDERED)], same_as(0, text_to_keyword=True))
aggregate("sum", [_p("number", NUMERIC)], sum_type)
aggregate("avg", [_p("number", NUMERIC)], fixed(T.DOUBLE))
aggregate("std_dev", [_p("number", NUMERIC)], fixed(T.DOUBLE))
aggregate("median", [_p("number", NUMERIC)], fixed(T.DOUBLE))
aggregate("weighted_avg", [_p("number", NUMERIC), _p("weight", NUMERIC)], fixed(T.DOUBLE))
aggregate("std_var", [_p("number", NUMERIC)], fixed(T.DOUBLE))
aggregate(
    "top",
    [_p("field", ORDERED), _p("limit", INTEGER), _p("order", STRING, optional=True)],
    same_as(0, text_to_keyword=True),
    mv_result=True,
)

# ---------------------------------------------------------------------------------------------
# Conditional and multivalue-aware scalars

scalar(
    "case",
    [_p("condition", BOOLEAN | ANY), _p("value", ANY)],
    first_non_null_keyword,
    variadic=True,
    mv_aware=True,
    null_propagating=False,
    mv_result=True,
)
scalar(
    "coalesce",
    [_p("first", ANY), _p("rest", ANY, optional=True)],
    first_non_null_keyword,
    variadic=True,
    mv_aware=True,
    null_propagating=False,
    mv_result=True,
)
scalar(
    "greatest",
    [_p("first", ORDERED), _p("rest", ORDERED, optional=True)],
    first_non_null_keyword,
    variadic=True,
    mv_aware=True,
)
scalar(
    "least",
    [_p("first", ORDERED), _p("rest", ORDERED, optional=True)],
    first_non_null_keyword,
    variadic=True,
    mv_aware=True,
)

# ---------------------------------------------------------------------------------------------
# Strings

# Elasticsearch 9.1+: TO_LOWER/TO_UPPER convert every value of a multivalue; text becomes keyword.
scalar(
    "to_lower",
    [_p("str", STRING)],
    fixed(T.KEYWORD),
    maps_values=True,
    mv_aware=True,
    mv_result=True,
)
scalar(
    "to_upper",
    [_p("str", STRING)],
    fixed(T.KEYWORD),
    maps_values=True,
    mv_aware=True,
    mv_result=True,
)
scalar("trim", [_p("string", STRING)], fixed(T.KEYWORD))
scalar("ltrim", [_p("string", STRING)], fixed(T.KEYWORD))
scalar("rtrim", [_p("string", STRING)], fixed(T.KEYWORD))
scalar("reverse", [_p("str", STRING)], fixed(T.KEYWORD))
scalar("length", [_p("string", STRING)], fixed(T.INTEGER))
scalar("bit_length", [_p("string", STRING)], fixed(T.INTEGER))
scalar("byte_length", [_p("string", STRING)], fixed(T.INTEGER))
scalar("concat", [_p("string1", STRING), _p("string2", STRING)], fixed(T.KEYWORD), variadic=True)
scalar(
    "substring",
    [_p("string", STRING), _p("start", INTEGER), _p("length", INTEGER, optional=True)],
    fixed(T.KEYWORD),
)
scalar("left", [_p("string", STRING), _p("length", INTEGER)], fixed(T.KEYWORD))
scalar("right", [_p("string", STRING), _p("length", INTEGER)], fixed(T.KEYWORD))
scalar(
    "locate",
    [_p("string", STRING), _p("substring", STRING), _p("start", INTEGER, optional=True)],
    fixed(T.INTEGER),
)
scalar(
    "replace",
    [_p("string", STRING), _p("regex", STRING), _p("newString", STRING)],
    fixed(T.KEYWORD),
)
scalar("split", [_p("string", STRING), _p("delim", STRING)], fixed(T.KEYWORD), mv_result=True)
scalar("starts_with", [_p("str", STRING), _p("prefix", STRING)], fixed(T.BOOLEAN))
scalar("ends_with", [_p("str", STRING), _p("suffix", STRING)], fixed(T.BOOLEAN))
scalar("contains", [_p("string", STRING), _p("substring", STRING)], fixed(T.BOOLEAN))
scalar("repeat", [_p("string", STRING), _p("number", INTEGER)], fixed(T.KEYWORD))
scalar("space", [_p("number", INTEGER)], fixed(T.KEYWORD))
scalar("url_decode", [_p("string", STRING)], fixed(T.KEYWORD))
scalar("url_encode", [_p("string", STRING)], fixed(T.KEYWORD))
scalar("url_encode_component", [_p("string", STRING)], fixed(T.KEYWORD))
scalar("from_base64", [_p("string", STRING)], fixed(T.KEYWORD))
scalar("to_base64", [_p("string", STRING)], fixed(T.KEYWORD))
scalar("md5", [_p("input", STRING)], fixed(T.KEYWORD))
scalar("sha1", [_p("input", STRING)], fixed(T.KEYWORD))
scalar("sha256", [_p("input", STRING)], fixed(T.KEYWORD))
scalar("hash", [_p("algorithm", STRING), _p("input", STRING)], fixed(T.KEYWORD))
scalar("json_extract", [_p("string", STRING), _p("path", STRING)], fixed(T.KEYWORD))

# ---------------------------------------------------------------------------------------------
# Numbers

scalar("abs", [_p("number", NUMERIC)], same_as(0))
scalar("ceil", [_p("number", NUMERIC)], same_as(0))
scalar("floor", [_p("number", NUMERIC)], same_as(0))
scalar("round", [_p("number", NUMERIC), _p("decimals", INTEGRAL, optional=True)], same_as(0))
scalar("signum", [_p("number", NUMERIC)], fixed(T.DOUBLE))
scalar("sqrt", [_p("number", NUMERIC)], fixed(T.DOUBLE))
scalar("cbrt", [_p("number", NUMERIC)], fixed(T.DOUBLE))
scalar("exp", [_p("number", NUMERIC)], fixed(T.DOUBLE))
scalar("log10", [_p("number", NUMERIC)], fixed(T.DOUBLE))
scalar("pow", [_p("base", NUMERIC), _p("exponent", NUMERIC)], fixed(T.DOUBLE))
scalar("log", [_p("base", NUMERIC), _p("number", NUMERIC, optional=True)], fixed(T.DOUBLE))
for _trig in ("acos", "asin", "atan", "cos", "cosh", "sin", "sinh", "tan", "tanh"):
    scalar(_trig, [_p("number", NUMERIC)], fixed(T.DOUBLE))
scalar("atan2", [_p("y_coordinate", NUMERIC), _p("x_coordinate", NUMERIC)], fixed(T.DOUBLE))
scalar("hypot", [_p("number1", NUMERIC), _p("number2", NUMERIC)], fixed(T.DOUBLE))
# TO_DEGREES / TO_RADIANS convert every value of a multivalue, as the TO_* conversions do.
for _angle in ("to_degrees", "to_radians"):
    scalar(
        _angle,
        [_p("number", NUMERIC)],
        fixed(T.DOUBLE),
        maps_values=True,
        mv_aware=True,
        mv_result=True,
    )
scalar(
    "clamp",
    [_p("field", ORDERED), _p("min", ORDERED), _p("max", ORDERED)],
    same_as(0, text_to_keyword=True),
)
scalar("clamp_min", [_p("field", ORDERED), _p("min", ORDERED)], same_as(0, text_to_keyword=True))
scalar("clamp_max", [_p("field", ORDERED), _p("max", ORDERED)], same_as(0, text_to_keyword=True))
scalar(
    "round_to",
    [_p("field", NUMERIC | DATE), _p("points", NUMERIC | DATE)],
    same_as(0),
    variadic=True,
)
scalar("copy_sign", [_p("magnitude", NUMERIC), _p("sign", NUMERIC)], same_as(0))
scalar(
    "scalb",
    [
        _p("d", NUMERIC),
        _p(
            "scaleFactor",
            SIGNED_WHOLE,
            expected="whole number except unsigned_long or counter types",
        ),
    ],
    fixed(T.DOUBLE),
)
scalar("pi", [], fixed(T.DOUBLE))
scalar("e", [], fixed(T.DOUBLE))
scalar("tau", [], fixed(T.DOUBLE))

# ---------------------------------------------------------------------------------------------
# Dates

scalar("now", [], fixed(T.DATETIME))
scalar("date_trunc", [_p("interval", TEMPORAL_AMOUNT), _p("date", DATE)], same_as(1))
scalar(
    "date_diff",
    [_p("unit", STRING), _p("startTimestamp", DATE), _p("endTimestamp", DATE)],
    fixed(T.INTEGER),
)
scalar("date_extract", [_p("datePart", STRING), _p("date", DATE)], fixed(T.LONG))
scalar("day_name", [_p("date", DATE)], fixed(T.KEYWORD))
scalar("month_name", [_p("date", DATE)], fixed(T.KEYWORD))
# DATE_FORMAT([format,] date) and DATE_PARSE([pattern,] text): Java DateTimeFormatter patterns.
scalar(
    "date_format",
    [_p("dateFormat", STRING | DATE), _p("date", DATE, optional=True)],
    fixed(T.KEYWORD),
)
scalar(
    "date_parse",
    [_p("datePattern", STRING), _p("dateString", STRING, optional=True)],
    fixed(T.DATETIME),
)
scalar(
    "bucket",
    [
        _p("field", NUMERIC | DATE),
        _p("buckets", NUMERIC | TEMPORAL_AMOUNT),
        _p("from", NUMERIC | DATE | STRING, optional=True),
        _p("to", NUMERIC | DATE | STRING, optional=True),
    ],
    lambda args: T.DOUBLE if args[0].is_numeric else args[0],
)

# ---------------------------------------------------------------------------------------------
# IPs

scalar("cidr_match", [_p("ip", IP), _p("blockX", STRING)], fixed(T.BOOLEAN), variadic=True)
scalar(
    "ip_prefix",
    [_p("ip", IP), _p("prefixLengthV4", INTEGER), _p("prefixLengthV6", INTEGER)],
    fixed(T.IP),
)

# ---------------------------------------------------------------------------------------------
# Type conversions: each value of a multivalue is converted.

CONVERSIONS: dict[str, T] = {
    "to_string": T.KEYWORD,
    "to_text": T.TEXT,
    "to_integer": T.INTEGER,
    "to_long": T.LONG,
    "to_unsigned_long": T.UNSIGNED_LONG,
    "to_double": T.DOUBLE,
    "to_boolean": T.BOOLEAN,
    "to_datetime": T.DATETIME,
    "to_ip": T.IP,
    "to_version": T.VERSION,
}
_CONVERSION_ALIASES = {
    "to_string": ("to_str",),
    "to_integer": ("to_int",),
    "to_unsigned_long": ("to_ul", "to_ulong"),
    "to_double": ("to_dbl",),
    "to_boolean": ("to_bool",),
    "to_datetime": ("to_dt",),
    "to_version": ("to_ver",),
}
_CONVERTIBLE: dict[T, TypeSet] = {
    T.KEYWORD: VALUE,
    T.TEXT: STRING,  # TO_TEXT takes strings only
    T.INTEGER: NUMERIC | STRING | DATE | BOOLEAN,
    T.LONG: NUMERIC | STRING | DATE | BOOLEAN,
    T.UNSIGNED_LONG: NUMERIC | STRING | DATE | BOOLEAN,
    T.DOUBLE: NUMERIC | STRING | DATE | BOOLEAN,
    T.BOOLEAN: NUMERIC | STRING | BOOLEAN,
    T.DATETIME: NUMERIC | STRING | DATE,
    T.IP: STRING | IP,
    T.VERSION: STRING | frozenset({T.VERSION}),
}
for _name, _target in CONVERSIONS.items():
    scalar(
        _name,
        [_p("field", _CONVERTIBLE[_target])],
        fixed(_target),
        *_CONVERSION_ALIASES.get(_name, ()),
        maps_values=True,
        mv_aware=True,
        mv_result=True,
    )

# ---------------------------------------------------------------------------------------------
# MV_* functions

scalar("mv_count", [_p("field", VALUE)], fixed(T.INTEGER), mv_aware=True)
scalar("mv_first", [_p("field", VALUE)], same_as(0), mv_aware=True)
scalar("mv_last", [_p("field", VALUE)], same_as(0), mv_aware=True)
scalar("mv_min", [_p("field", ORDERED)], same_as(0), mv_aware=True)
scalar("mv_max", [_p("field", ORDERED)], same_as(0), mv_aware=True)
scalar("mv_sum", [_p("number", NUMERIC)], same_as(0), mv_aware=True)
scalar("mv_avg", [_p("number", NUMERIC)], fixed(T.DOUBLE), mv_aware=True)
scalar("mv_median", [_p("number", NUMERIC)], same_as(0), mv_aware=True)
scalar("mv_concat", [_p("string", STRING), _p("delim", STRING)], fixed(T.KEYWORD), mv_aware=True)
scalar("mv_dedupe", [_p("field", VALUE)], same_as(0), mv_aware=True, mv_result=True)
scalar(
    "mv_slice",
    [_p("field", VALUE), _p("start", INTEGER), _p("end", INTEGER, optional=True)],
    same_as(0),
    mv_aware=True,
    mv_result=True,
)
scalar(
    "mv_sort",
    [_p("field", ORDERED), _p("order", STRING, optional=True)],
    same_as(0),
    mv_aware=True,
    mv_result=True,
)
scalar(
    "mv_append",
    [_p("field1", VALUE), _p("field2", VALUE)],
    first_non_null,
    mv_aware=True,
    mv_result=True,
)
scalar(
    "mv_contains",
    [_p("superset", VALUE), _p("subset", VALUE)],
    fixed(T.BOOLEAN),
    mv_aware=True,
    null_propagating=False,
)
# MV_LIKE / MV_RLIKE: true when any value matches (a constant pattern), false for null.
for _name in ("mv_like", "mv_rlike"):
    scalar(
        _name,
        [_p("field", STRING), _p("pattern", STRING)],
        fixed(T.BOOLEAN),
        mv_aware=True,
        null_propagating=False,
    )
scalar(
    "mv_intersection",
    [_p("field1", VALUE), _p("field2", VALUE)],
    first_non_null,
    mv_aware=True,
    mv_result=True,
)

# ---------------------------------------------------------------------------------------------
# Operators (plan/nodes.py Call docstring); their typing is decided in the analyser.

for _op in ("add", "sub", "mul", "div", "mod"):
    operator(
        _op,
        [_p("lhs", NUMERIC | DATE | TEMPORAL_AMOUNT), _p("rhs", NUMERIC | DATE | TEMPORAL_AMOUNT)],
        first_non_null,
    )
operator("neg", [_p("value", NUMERIC | TEMPORAL_AMOUNT)], same_as(0))
for _op in ("eq", "neq", "lt", "lte", "gt", "gte", "eq_ci"):
    operator(_op, [_p("lhs", VALUE), _p("rhs", VALUE)], fixed(T.BOOLEAN))
operator("and", [_p("lhs", BOOLEAN), _p("rhs", BOOLEAN)], fixed(T.BOOLEAN), null_propagating=False)
operator("or", [_p("lhs", BOOLEAN), _p("rhs", BOOLEAN)], fixed(T.BOOLEAN), null_propagating=False)
operator("not", [_p("value", BOOLEAN)], fixed(T.BOOLEAN))
operator(
    "in",
    [_p("value", VALUE), _p("item", VALUE)],
    fixed(T.BOOLEAN),
    variadic=True,
    null_propagating=False,
)
operator("like", [_p("value", STRING), _p("pattern", STRING)], fixed(T.BOOLEAN), variadic=True)
operator("rlike", [_p("value", STRING), _p("pattern", STRING)], fixed(T.BOOLEAN), variadic=True)
# KQL's `field: pat*` (esql/kql.py): true when any value of the field matches the LIKE
# pattern, false for null. An operator, so ES|QL text cannot call it by name.
operator(
    "mv_any_like",
    [_p("value", STRING), _p("pattern", STRING)],
    fixed(T.BOOLEAN),
    null_propagating=False,
    mv_aware=True,
)
operator("is_null", [_p("value", ANY)], fixed(T.BOOLEAN), null_propagating=False, mv_aware=True)
operator("is_not_null", [_p("value", ANY)], fixed(T.BOOLEAN), null_propagating=False, mv_aware=True)
CAST_TARGETS: dict[str, T] = {
    "cast_keyword": T.KEYWORD,
    "cast_text": T.TEXT,
    "cast_integer": T.INTEGER,
    "cast_long": T.LONG,
    "cast_unsigned_long": T.UNSIGNED_LONG,
    "cast_double": T.DOUBLE,
    "cast_boolean": T.BOOLEAN,
    "cast_datetime": T.DATETIME,
    "cast_ip": T.IP,
    "cast_version": T.VERSION,
}
for _name, _target in CAST_TARGETS.items():
    operator(
        _name,
        [_p("value", _CONVERTIBLE.get(_target, VALUE))],
        fixed(_target),
        mv_aware=True,
        maps_values=True,
    )


# ---------------------------------------------------------------------------------------------
# ES|QL functions reconwatch knows but does not run: refused by name, never approximated.

UNSUPPORTED: frozenset[str] = frozenset(
    {
        "qstr",
        "match",
        "match_phrase",
        "multi_match",
        "knn",
        "score",
        "term",
        "to_geopoint",
        "to_geoshape",
        "to_cartesianpoint",
        "to_cartesianshape",
        "to_geohash",
        "to_geotile",
        "to_geohex",
        "to_date_nanos",
        "to_datenanos",
        "to_dense_vector",
        "to_aggregate_metric_double",
        "st_distance",
        "st_x",
        "st_y",
        "st_xmin",
        "st_xmax",
        "st_ymin",
        "st_ymax",
        "st_contains",
        "st_within",
        "st_intersects",
        "st_disjoint",
        "st_envelope",
        "st_centroid_agg",
        "st_extent_agg",
        "st_geohash",
        "st_geotile",
        "st_geohex",
        "st_npoints",
        "st_simplify",
        "st_buffer",
        "median_absolute_deviation",
        "percentile",
        "variance",
        "rate",
        "irate",
        "delta",
        "idelta",
        "increase",
        "first",
        "last",
        "first_over_time",
        "last_over_time",
        "avg_over_time",
        "sum_over_time",
        "max_over_time",
        "min_over_time",
        "count_over_time",
        "count_distinct_over_time",
        "present",
        "present_over_time",
        "absent",
        "absent_over_time",
        "sample",
        "categorize",
        "tbucket",
        "mv_percentile",
        "mv_pseries_weighted_sum",
        "mv_zip",
        "mv_median_absolute_deviation",
        "mv_first_index",
        "to_timeduration",
        "to_dateperiod",
        "v_cosine",
        "v_dot_product",
        "v_hamming",
        "v_l1_norm",
        "v_l2_norm",
        "v_magnitude",
        "text_embedding",
        "decay",
        "chunk",
        "top_snippets",
        "network_direction",
        "to_lower_mv",
        "from_json",
    }
)


def lookup(name: str) -> FunctionDef | None:
    return REGISTRY.get(name.lower())


def canonical_names() -> list[str]:
    """Every registered function and operator name (aliases folded), sorted."""
    return sorted({fn.name for fn in REGISTRY.values()})


def type_list(types: TypeSet) -> str:
    """Elasticsearch's spelling of an accepted-type set in messages: `keyword or text`."""
    if types == STRING:
        return "keyword or text"
    if types == NUMERIC:
        return "numeric"
    names = sorted(t.value for t in types)
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]
