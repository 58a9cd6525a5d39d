"""Scalar functions and operators of the row interpreter, one small implementation each."""

from __future__ import annotations

import base64
import calendar
import functools
import hashlib
import ipaddress
import json
import math
import re
import statistics
import urllib.parse
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from reconwatch.esql.patterns import like_to_regex, rlike_to_regex
from reconwatch.evaluate.expressions import EvalContext, EvalFailure, scalar_impl
from reconwatch.plan import javadate, javatext
from reconwatch.plan import nodes as p
from reconwatch.plan import values as v
from reconwatch.types import DataType as T

Args = list[object]

_RANGES = {
    T.INTEGER: (v.INT_MIN, v.INT_MAX, "integer overflow"),
    T.LONG: (v.LONG_MIN, v.LONG_MAX, "long overflow"),
    T.UNSIGNED_LONG: (0, v.ULONG_MAX, "unsigned_long overflow"),
}


def _checked(value: int | float, type_: T) -> int | float:
    """Java's exact arithmetic: an integral result outside its type's range is an overflow."""
    if isinstance(value, int) and type_ in _RANGES:
        low, high, message = _RANGES[type_]
        if not low <= value <= high:
            raise EvalFailure(f"java.lang.ArithmeticException: {message}")
    if isinstance(value, float) and type_ is T.DOUBLE and math.isinf(value):
        raise EvalFailure("java.lang.ArithmeticException: not a finite double number: Infinity")
    return value


def _num(x: object, type_: T) -> int | float:
    assert isinstance(x, int | float)
    return float(x) if type_ is T.DOUBLE else x


# ---------------------------------------------------------------------------------------------
# Arithmetic


@scalar_impl("add", "sub")
def _add_sub(args: Args, call: p.Call, ctx: EvalContext) -> object:
    a, b = args
    sign = 1 if call.fn == "add" else -1
    if isinstance(a, datetime) and isinstance(b, p.TemporalAmount):
        return _shift(a, b, sign)
    if isinstance(a, p.TemporalAmount) and isinstance(b, datetime):
        return _shift(b, a, sign)
    if isinstance(a, p.TemporalAmount) and isinstance(b, p.TemporalAmount):
        return p.TemporalAmount(
            a.months + sign * b.months, a.days + sign * b.days, a.millis + sign * b.millis
        )
    x, y = _num(a, call.type), _num(b, call.type)
    return _checked(x + sign * y, call.type)


def _shift(when: datetime, amount: p.TemporalAmount, sign: int) -> datetime:
    try:
        result = _add_months(when, sign * amount.months) if amount.months else when
        return result + timedelta(days=sign * amount.days, milliseconds=sign * amount.millis)
    except (OverflowError, ValueError):  # past year 9999 or before year 1
        raise EvalFailure(v.DATE_OUT_OF_RANGE) from None


def _add_months(when: datetime, months: int) -> datetime:
    total = when.year * 12 + when.month - 1 + months
    year, month = divmod(total, 12)
    day = min(when.day, calendar.monthrange(year, month + 1)[1])
    return when.replace(year=year, month=month + 1, day=day)


@scalar_impl("mul")
def _mul(args: Args, call: p.Call, ctx: EvalContext) -> object:
    return _checked(_num(args[0], call.type) * _num(args[1], call.type), call.type)


@scalar_impl("div")
def _div(args: Args, call: p.Call, ctx: EvalContext) -> object:
    x, y = _num(args[0], call.type), _num(args[1], call.type)
    if y == 0:
        raise EvalFailure("java.lang.ArithmeticException: / by zero")
    if isinstance(x, int) and isinstance(y, int):
        if y == -1 and call.type in (T.INTEGER, T.LONG) and x == _RANGES[call.type][0]:
            return x  # Java's MIN / -1 wraps to MIN; only division by zero throws
        q = abs(x) // abs(y)
        return _checked(q if (x >= 0) == (y >= 0) else -q, call.type)
    return _checked(x / y, call.type)


@scalar_impl("mod")
def _mod(args: Args, call: p.Call, ctx: EvalContext) -> object:
    x, y = _num(args[0], call.type), _num(args[1], call.type)
    if y == 0:
        raise EvalFailure("java.lang.ArithmeticException: / by zero")
    if isinstance(x, int) and isinstance(y, int):
        r = abs(x) % abs(y)
        return r if x >= 0 else -r
    return math.fmod(x, y)


@scalar_impl("neg")
def _neg(args: Args, call: p.Call, ctx: EvalContext) -> object:
    x = args[0]
    if isinstance(x, p.TemporalAmount):
        return p.TemporalAmount(-x.months, -x.days, -x.millis)
    return _checked(-_num(x, call.type), call.type)


# ---------------------------------------------------------------------------------------------
# Comparison


def compare_key(x: object, type_: T) -> object:
    # The identity for every type but IP and version: expressions._direct_comparison compares
    # other operands of one Python type as they are, without this call.
    return v.order_key(x, type_)


def _keys(args: Args, call: p.Call) -> tuple[object, object]:
    a, b = call.args
    return compare_key(args[0], a.type), compare_key(args[1], b.type)


@scalar_impl("eq")
def _eq(args: Args, call: p.Call, ctx: EvalContext) -> object:
    x, y = _keys(args, call)
    return x == y


@scalar_impl("neq")
def _neq(args: Args, call: p.Call, ctx: EvalContext) -> object:
    x, y = _keys(args, call)
    return x != y


@scalar_impl("lt")
def _lt(args: Args, call: p.Call, ctx: EvalContext) -> object:
    x, y = _keys(args, call)
    return x < y  # type: ignore[operator]


@scalar_impl("lte")
def _lte(args: Args, call: p.Call, ctx: EvalContext) -> object:
    x, y = _keys(args, call)
    return x <= y  # type: ignore[operator]


@scalar_impl("gt")
def _gt(args: Args, call: p.Call, ctx: EvalContext) -> object:
    x, y = _keys(args, call)
    return x > y  # type: ignore[operator]


@scalar_impl("gte")
def _gte(args: Args, call: p.Call, ctx: EvalContext) -> object:
    x, y = _keys(args, call)
    return x >= y  # type: ignore[operator]


@scalar_impl("eq_ci")
def _eq_ci(args: Args, call: p.Call, ctx: EvalContext) -> object:
    return str(args[0]).lower() == str(args[1]).lower()


# ---------------------------------------------------------------------------------------------
# Strings


def _s(x: object) -> str:
    assert isinstance(x, str)
    return x


def _i(x: object) -> int:
    assert isinstance(x, int)
    return x


@scalar_impl("to_lower")
def _to_lower(args: Args, call: p.Call, ctx: EvalContext) -> object:
    return v.java_case(_s(args[0]), upper=False)


@scalar_impl("to_upper")
def _to_upper(args: Args, call: p.Call, ctx: EvalContext) -> object:
    return v.java_case(_s(args[0]), upper=True)


@scalar_impl("trim")
def _trim(args: Args, call: p.Call, ctx: EvalContext) -> object:
    return _s(args[0]).strip()


@scalar_impl("ltrim")
def _ltrim(args: Args, call: p.Call, ctx: EvalContext) -> object:
    return _s(args[0]).lstrip()


@scalar_impl("rtrim")
def _rtrim(args: Args, call: p.Call, ctx: EvalContext) -> object:
    return _s(args[0]).rstrip()


@scalar_impl("reverse")
def _reverse(args: Args, call: p.Call, ctx: EvalContext) -> object:
    return _s(args[0])[::-1]


@scalar_impl("length")
def _length(args: Args, call: p.Call, ctx: EvalContext) -> object:
    return len(_s(args[0]))


@scalar_impl("bit_length")
def _bit_length(args: Args, call: p.Call, ctx: EvalContext) -> object:
    return len(_s(args[0]).encode()) * 8


@scalar_impl("byte_length")
def _byte_length(args: Args, call: p.Call, ctx: EvalContext) -> object:
    return len(_s(args[0]).encode())


@scalar_impl("concat")
def _concat(args: Args, call: p.Call, ctx: EvalContext) -> object:
    return "".join(_s(a) for a in args)


@scalar_impl("substring")
def _substring(args: Args, call: p.Call, ctx: EvalContext) -> object:
    text, start = _s(args[0]), _i(args[1])
    if len(args) > 2 and _i(args[2]) < 0:
        raise EvalFailure(v.negative_length(_i(args[2])))
    count = len(text)
    begin = start - 1 if start > 0 else count + start if start < 0 else 0
    begin = max(0, begin)
    end = count if len(args) < 3 else min(count, begin + max(0, _i(args[2])))
    return text[begin:end] if begin < end else ""


@scalar_impl("left")
def _left(args: Args, call: p.Call, ctx: EvalContext) -> object:
    n = _i(args[1])
    return _s(args[0])[: max(0, n)]


@scalar_impl("right")
def _right(args: Args, call: p.Call, ctx: EvalContext) -> object:
    text, n = _s(args[0]), _i(args[1])
    return text[len(text) - n :] if 0 < n < len(text) else (text if n > 0 else "")


@scalar_impl("locate")
def _locate(args: Args, call: p.Call, ctx: EvalContext) -> object:
    text, sub = _s(args[0]), _s(args[1])
    start = _i(args[2]) if len(args) > 2 else 1
    index = text.find(sub, max(start, 1) - 1)
    return index + 1


def java_replacement(replacement: str) -> str:
    """Java's `$1`/`${name}` group references and `\\` escapes as Python's re.sub template."""
    out: list[str] = []
    i = 0
    while i < len(replacement):
        c = replacement[i]
        if c == "\\" and i + 1 < len(replacement):
            out.append(replacement[i + 1].replace("\\", "\\\\"))
            i += 2
        elif c == "$" and i + 1 < len(replacement) and replacement[i + 1] == "{":
            end = replacement.index("}", i)
            out.append(f"\\g<{replacement[i + 2 : end]}>")
            i = end + 1
        elif c == "$" and i + 1 < len(replacement) and replacement[i + 1].isdigit():
            j = i + 1
            while j < len(replacement) and replacement[j].isdigit():
                j += 1
            out.append(f"\\g<{replacement[i + 1 : j]}>")
            i = j
        else:
            out.append("\\\\" if c == "\\" else c)
            i += 1
    return "".join(out)


@scalar_impl("replace")
def _replace(args: Args, call: p.Call, ctx: EvalContext) -> object:
    try:
        pattern = re.compile(_s(args[1]))
        return pattern.sub(java_replacement(_s(args[2])), _s(args[0]))
    except (re.error, IndexError, ValueError) as exc:
        raise EvalFailure(f"java.util.regex.PatternSyntaxException: {exc}") from None


@scalar_impl("split")
def _split(args: Args, call: p.Call, ctx: EvalContext) -> object:
    text, delim = _s(args[0]), _s(args[1])
    parts = text.split(delim) if delim else list(text)
    return parts[0] if len(parts) == 1 else parts


@scalar_impl("starts_with")
def _starts_with(args: Args, call: p.Call, ctx: EvalContext) -> object:
    return _s(args[0]).startswith(_s(args[1]))


@scalar_impl("ends_with")
def _ends_with(args: Args, call: p.Call, ctx: EvalContext) -> object:
    return _s(args[0]).endswith(_s(args[1]))


@scalar_impl("contains")
def _contains(args: Args, call: p.Call, ctx: EvalContext) -> object:
    return _s(args[1]) in _s(args[0])


@scalar_impl("repeat")
def _repeat(args: Args, call: p.Call, ctx: EvalContext) -> object:
    n = _i(args[1])
    if n < 0:
        raise EvalFailure(
            f"java.lang.IllegalArgumentException: Number parameter cannot be negative, found [{n}]"
        )
    text = _s(args[0])
    if len(text.encode()) * n > v.MAX_STRING_BYTES:  # checked before anything is built
        raise EvalFailure(v.REPEAT_TOO_LONG)
    return text * n


@scalar_impl("space")
def _space(args: Args, call: p.Call, ctx: EvalContext) -> object:
    n = _i(args[0])
    if n < 0:
        raise EvalFailure(
            f"java.lang.IllegalArgumentException: Number parameter cannot be negative, found [{n}]"
        )
    if n > v.MAX_STRING_BYTES:
        raise EvalFailure(v.SPACE_TOO_LONG)
    return " " * n


@scalar_impl("url_decode")
def _url_decode(args: Args, call: p.Call, ctx: EvalContext) -> object:
    return _java_text(javatext.url_decode, _s(args[0]))


def _java_text(decode: Callable[[str], str], text: str) -> str:
    try:
        return decode(text)
    except v.ConversionError as exc:
        raise EvalFailure(f"{exc.java}: {exc}") from None


@scalar_impl("url_encode")
def _url_encode(args: Args, call: p.Call, ctx: EvalContext) -> object:
    return urllib.parse.quote_plus(_s(args[0]), safe="*-._")


@scalar_impl("url_encode_component")
def _url_encode_component(args: Args, call: p.Call, ctx: EvalContext) -> object:
    return urllib.parse.quote(_s(args[0]), safe="-_.!~*'()")


@scalar_impl("from_base64")
def _from_base64(args: Args, call: p.Call, ctx: EvalContext) -> object:
    return _java_text(javatext.base64_decode, _s(args[0]))


@scalar_impl("to_base64")
def _to_base64(args: Args, call: p.Call, ctx: EvalContext) -> object:
    return base64.b64encode(_s(args[0]).encode()).decode()


@scalar_impl("md5", "sha1", "sha256")
def _hash(args: Args, call: p.Call, ctx: EvalContext) -> object:
    return hashlib.new(call.fn, _s(args[0]).encode()).hexdigest()


@scalar_impl("hash")
def _hash_any(args: Args, call: p.Call, ctx: EvalContext) -> object:
    try:
        return v.java_digest(_s(args[0]), _s(args[1]))
    except v.ConversionError as exc:
        raise EvalFailure(f"{exc.java}: {exc}") from None


_JSON_PATH_TOKEN = re.compile(r"\.?([^.\[\]]+)|\[(\d+)\]|\['([^']*)'\]|\[\"([^\"]*)\"\]")


@scalar_impl("json_extract")
def _json_extract(args: Args, call: p.Call, ctx: EvalContext) -> object:
    try:
        node: object = json.loads(_s(args[0]))
    except json.JSONDecodeError as exc:
        raise EvalFailure(
            f"java.lang.IllegalArgumentException: invalid JSON input: {exc}"
        ) from None
    path = _s(args[1]).strip()
    path = path[1:] if path.startswith("$") else path
    pos = 0
    while pos < len(path):
        m = _JSON_PATH_TOKEN.match(path, pos)
        if m is None:
            raise EvalFailure(f"java.lang.IllegalArgumentException: invalid JSON path [{args[1]}]")
        pos = m.end()
        key, index, quoted1, quoted2 = m.groups()
        if index is not None and isinstance(node, list):
            node = node[int(index)] if int(index) < len(node) else None
        elif isinstance(node, dict):
            node = node.get(next(k for k in (key, quoted1, quoted2, index) if k is not None))
        else:
            node = None
        if node is None:
            return None
    if isinstance(node, str):
        return node
    return json.dumps(node, separators=(",", ":"))


# ---------------------------------------------------------------------------------------------
# Numbers


@scalar_impl("abs")
def _abs(args: Args, call: p.Call, ctx: EvalContext) -> object:
    return _checked(abs(_num(args[0], call.type)), call.type)


@scalar_impl("ceil")
def _ceil(args: Args, call: p.Call, ctx: EvalContext) -> object:
    x = args[0]
    return float(math.ceil(x)) if isinstance(x, float) else x


@scalar_impl("floor")
def _floor(args: Args, call: p.Call, ctx: EvalContext) -> object:
    x = args[0]
    return float(math.floor(x)) if isinstance(x, float) else x


@scalar_impl("round")
def _round(args: Args, call: p.Call, ctx: EvalContext) -> object:
    x = _num(args[0], call.type)
    digits = _i(args[1]) if len(args) > 1 else 0
    if isinstance(x, float):
        return v.round_double(x, digits)
    return _checked(v.round_integral(x, digits), call.type)


@scalar_impl("signum")
def _signum(args: Args, call: p.Call, ctx: EvalContext) -> object:
    x = float(_num(args[0], T.DOUBLE))
    return math.copysign(1.0, x) if x != 0 else 0.0


@scalar_impl("sqrt")
def _sqrt(args: Args, call: p.Call, ctx: EvalContext) -> object:
    x = float(_num(args[0], T.DOUBLE))
    if x < 0:
        raise EvalFailure("java.lang.ArithmeticException: Square root of negative")
    return math.sqrt(x)


@scalar_impl("cbrt")
def _cbrt(args: Args, call: p.Call, ctx: EvalContext) -> object:
    return v.cbrt(float(_num(args[0], T.DOUBLE)))


@scalar_impl("exp")
def _exp(args: Args, call: p.Call, ctx: EvalContext) -> object:
    # Past about 709.78 the double is infinite (Python raises instead): null and the warning
    # Elasticsearch gives any arithmetic that leaves the finite doubles.
    try:
        result = math.exp(float(_num(args[0], T.DOUBLE)))
    except OverflowError:
        result = math.inf
    return _checked(result, T.DOUBLE)


@scalar_impl("log")
def _log(args: Args, call: p.Call, ctx: EvalContext) -> object:
    """LOG(base, x), or LOG(x) (natural)."""
    numbers = [float(_num(a, T.DOUBLE)) for a in args]
    base, x = (math.e, numbers[0]) if len(numbers) == 1 else (numbers[0], numbers[1])
    if x <= 0 or base <= 0:
        raise EvalFailure("java.lang.ArithmeticException: Log of non-positive number")
    if base == 1:
        raise EvalFailure("java.lang.ArithmeticException: Log of base 1")
    return math.log(x) if len(numbers) == 1 else math.log(x) / math.log(base)


def _bounded(name: str, fn: Callable[[float], float]) -> None:
    """ACOS/ASIN: an input outside [-1, 1] is null with Java's ArithmeticException."""

    @scalar_impl(name)
    def impl(args: Args, call: p.Call, ctx: EvalContext) -> object:
        x = float(_num(args[0], T.DOUBLE))
        if not -1.0 <= x <= 1.0:
            raise EvalFailure(
                f"java.lang.ArithmeticException: {name.capitalize()} input out of range"
            )
        return fn(x)


def _hyperbolic(name: str, fn: Callable[[float], float]) -> None:
    """COSH/SINH: a result too large for a double is null with an ArithmeticException."""

    @scalar_impl(name)
    def impl(args: Args, call: p.Call, ctx: EvalContext) -> object:
        try:
            return fn(float(_num(args[0], T.DOUBLE)))
        except OverflowError:
            raise EvalFailure(f"java.lang.ArithmeticException: {name} overflow") from None


def _unary_double(name: str, fn: Callable[[float], float]) -> None:
    @scalar_impl(name)
    def impl(args: Args, call: p.Call, ctx: EvalContext) -> object:
        try:
            return fn(float(_num(args[0], T.DOUBLE)))
        except ValueError:  # sin/cos/tan of an infinity: Java's NaN
            return math.nan


_bounded("acos", math.acos)
_bounded("asin", math.asin)
_hyperbolic("cosh", math.cosh)
_hyperbolic("sinh", math.sinh)
for _name, _fn in (
    ("atan", math.atan),
    ("cos", math.cos),
    ("sin", math.sin),
    ("tan", math.tan),
    ("tanh", math.tanh),
    ("to_degrees", math.degrees),
    ("to_radians", math.radians),
):
    _unary_double(_name, _fn)


@scalar_impl("copy_sign")
def _copy_sign(args: Args, call: p.Call, ctx: EvalContext) -> object:
    magnitude, sign = args
    assert isinstance(magnitude, int | float) and isinstance(sign, int | float)
    negative = math.copysign(1.0, float(sign)) < 0
    if isinstance(magnitude, float) or call.type is T.DOUBLE:
        return math.copysign(float(magnitude), -1.0 if negative else 1.0)
    return _checked(-abs(magnitude) if negative else abs(magnitude), call.type)


@scalar_impl("scalb")
def _scalb(args: Args, call: p.Call, ctx: EvalContext) -> object:
    d, scale = float(_num(args[0], T.DOUBLE)), _i(args[1])
    if not v.INT_MIN <= scale <= v.INT_MAX:
        # A long scale factor is narrowed with Math.toIntExact, which throws outside the ints.
        raise EvalFailure("java.lang.ArithmeticException: integer overflow")
    try:
        return _checked(math.ldexp(d, scale), T.DOUBLE)
    except OverflowError:
        raise EvalFailure(
            "java.lang.ArithmeticException: not a finite double number: Infinity"
        ) from None


@scalar_impl("atan2")
def _atan2(args: Args, call: p.Call, ctx: EvalContext) -> object:
    return math.atan2(float(_num(args[0], T.DOUBLE)), float(_num(args[1], T.DOUBLE)))


@scalar_impl("hypot")
def _hypot(args: Args, call: p.Call, ctx: EvalContext) -> object:
    return math.hypot(float(_num(args[0], T.DOUBLE)), float(_num(args[1], T.DOUBLE)))


@scalar_impl("clamp", "clamp_min", "clamp_max")
def _clamp(args: Args, call: p.Call, ctx: EvalContext) -> object:
    """CLAMP(f, lo, hi) is CLAMP_MAX(CLAMP_MIN(f, lo), hi); bounds are read as the field's type."""
    t = call.type
    key = functools.partial(v.order_key, type_=t)
    value, *bounds = (v.convert(a, t) if t.is_numeric else a for a in args)
    if call.fn != "clamp_max":
        value = max(value, bounds.pop(0), key=key)
    if call.fn != "clamp_min":
        value = min(value, bounds[0], key=key)
    return value


@scalar_impl("round_to")
def _round_to(args: Args, call: p.Call, ctx: EvalContext) -> object:
    """The largest point not above the value; below every point, the smallest point."""
    t = call.type
    value, *points = (v.convert(a, t) if t.is_numeric else a for a in args)
    key = functools.partial(v.order_key, type_=t)
    ordered = sorted(points, key=key)
    below = [pt for pt in ordered if key(pt) <= key(value)]
    return below[-1] if below else ordered[0]


@scalar_impl("log10")
def _log10(args: Args, call: p.Call, ctx: EvalContext) -> object:
    x = float(_num(args[0], T.DOUBLE))
    if x <= 0:
        raise EvalFailure("java.lang.ArithmeticException: Log of non-positive number")
    return math.log10(x)


@scalar_impl("pow")
def _pow(args: Args, call: p.Call, ctx: EvalContext) -> object:
    try:
        result = math.pow(float(_num(args[0], T.DOUBLE)), float(_num(args[1], T.DOUBLE)))
    except (OverflowError, ValueError):
        raise EvalFailure(
            "java.lang.ArithmeticException: invalid result when computing pow"
        ) from None
    return _checked(result, T.DOUBLE)


@scalar_impl("pi")
def _pi(args: Args, call: p.Call, ctx: EvalContext) -> object:
    return math.pi


@scalar_impl("e")
def _e(args: Args, call: p.Call, ctx: EvalContext) -> object:
    return math.e


@scalar_impl("tau")
def _tau(args: Args, call: p.Call, ctx: EvalContext) -> object:
    return math.tau


@scalar_impl("greatest", "least")
def _greatest(args: Args, call: p.Call, ctx: EvalContext) -> object:
    all_values = [x for a in args for x in v.as_list(a)]
    pick = max if call.fn == "greatest" else min
    return pick(all_values, key=lambda x: v.order_key(x, call.type))


# ---------------------------------------------------------------------------------------------
# Dates


@scalar_impl("day_name", "month_name")
def _day_month_name(args: Args, call: p.Call, ctx: EvalContext) -> object:
    when = _dt(args[0]).astimezone(UTC)
    if call.fn == "day_name":
        return javadate.DAYS[when.weekday()]
    return javadate.MONTHS[when.month - 1]


@scalar_impl("date_format")
def _date_format(args: Args, call: p.Call, ctx: EvalContext) -> object:
    pattern, when = (None, args[0]) if len(args) == 1 else (_s(args[0]), args[1])
    try:
        return javadate.format_date(pattern, _dt(when))
    except v.ConversionError as exc:
        raise EvalFailure(f"{exc.java}: {exc}") from None


@scalar_impl("date_parse")
def _date_parse(args: Args, call: p.Call, ctx: EvalContext) -> object:
    try:
        if len(args) == 1:
            return v.parse_datetime(_s(args[0]), strict=True)
        return javadate.parse_date(_s(args[0]), _s(args[1]))
    except v.ConversionError as exc:
        raise EvalFailure(f"{exc.java or javadate.ILLEGAL}: {exc}") from None


def _dt(x: object) -> datetime:
    assert isinstance(x, datetime)
    return x


def truncate(when: datetime, amount: p.TemporalAmount) -> datetime:
    """DATE_TRUNC / BUCKET by a time span: calendar units for periods, epoch-aligned for durations."""
    if amount.months and not amount.days and not amount.millis:
        total = when.year * 12 + when.month - 1
        total -= total % amount.months
        year, month = divmod(total, 12)
        return datetime(year, month + 1, 1, tzinfo=UTC)
    if amount.days and not amount.months and not amount.millis:
        day = datetime(when.year, when.month, when.day, tzinfo=UTC)
        if amount.days == 7:
            return day - timedelta(days=day.weekday())
        epoch_days = (day - v.EPOCH).days
        return v.EPOCH + timedelta(days=epoch_days - epoch_days % amount.days)
    if amount.millis > 0 and not amount.months and not amount.days:
        millis = v.datetime_to_millis(when)
        return v.datetime_from_millis(millis - millis % amount.millis)
    raise EvalFailure(
        "java.lang.IllegalArgumentException: Zero or negative time interval is not supported"
    )


@scalar_impl("date_trunc")
def _date_trunc(args: Args, call: p.Call, ctx: EvalContext) -> object:
    amount = args[0]
    assert isinstance(amount, p.TemporalAmount)
    return truncate(_dt(args[1]), amount)


@scalar_impl("bucket")
def _bucket(args: Args, call: p.Call, ctx: EvalContext) -> object:
    field, span = args
    if isinstance(span, p.TemporalAmount):
        return truncate(_dt(field), span)
    size = float(_num(span, T.DOUBLE))
    if size <= 0:
        raise EvalFailure("java.lang.IllegalArgumentException: bucket span must be positive")
    return math.floor(float(_num(field, T.DOUBLE)) / size) * size


def _months_between(a: datetime, b: datetime) -> int:
    months = (b.year - a.year) * 12 + b.month - a.month
    if months > 0 and _add_months(a, months) > b:
        months -= 1
    elif months < 0 and _add_months(a, months) < b:
        months += 1
    return months


_DIFF_UNITS: dict[str, str] = {
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
    **dict.fromkeys(("nanosecond", "nanoseconds", "ns"), "nanosecond"),
}
_UNIT_MILLIS = {
    "week": 604_800_000,
    "day": 86_400_000,
    "hour": 3_600_000,
    "minute": 60_000,
    "second": 1000,
    "millisecond": 1,
}


@scalar_impl("date_diff")
def _date_diff(args: Args, call: p.Call, ctx: EvalContext) -> object:
    unit_text = _s(args[0])
    unit = _DIFF_UNITS.get(unit_text.lower())
    if unit is None:
        raise EvalFailure(
            f"java.lang.IllegalArgumentException: A value of [YEAR, QUARTER, MONTH, DAYOFYEAR, DAY, "
            f"WEEK, WEEKDAY, HOUR, MINUTE, SECOND, MILLISECOND, MICROSECOND, NANOSECOND] or their "
            f"aliases is required; received [{unit_text}]"
        )
    start, end = _dt(args[1]), _dt(args[2])
    if unit in ("year", "quarter", "month"):
        months = _months_between(start, end)
        result = int(months / (12 if unit == "year" else 3 if unit == "quarter" else 1))
    else:
        millis = v.datetime_to_millis(end) - v.datetime_to_millis(start)
        if unit == "microsecond":
            result = millis * 1000
        elif unit == "nanosecond":
            result = millis * 1_000_000
        else:
            size = _UNIT_MILLIS[unit]
            result = abs(millis) // size * (1 if millis >= 0 else -1)
    return _checked(result, T.INTEGER)


_EXTRACT: dict[str, Callable[[datetime], int]] = {
    "year": lambda d: d.year,
    "month_of_year": lambda d: d.month,
    "day_of_month": lambda d: d.day,
    "day_of_week": lambda d: d.isoweekday(),
    "day_of_year": lambda d: d.timetuple().tm_yday,
    "hour_of_day": lambda d: d.hour,
    "minute_of_hour": lambda d: d.minute,
    "minute_of_day": lambda d: d.hour * 60 + d.minute,
    "second_of_minute": lambda d: d.second,
    "second_of_day": lambda d: d.hour * 3600 + d.minute * 60 + d.second,
    "milli_of_second": lambda d: d.microsecond // 1000,
    "milli_of_day": lambda d: (
        (d.hour * 3600 + d.minute * 60 + d.second) * 1000 + d.microsecond // 1000
    ),
    "epoch_day": lambda d: (d - v.EPOCH).days,
    "aligned_week_of_year": lambda d: (d.timetuple().tm_yday - 1) // 7 + 1,
    "quarter_of_year": lambda d: (d.month - 1) // 3 + 1,
    "ampm_of_day": lambda d: 0 if d.hour < 12 else 1,
    "hour_of_ampm": lambda d: d.hour % 12,
    "year_of_era": lambda d: d.year,
    # The rest of java.time's ChronoField (Elasticsearch accepts any of them).
    "nano_of_second": lambda d: d.microsecond * 1000,
    "nano_of_day": lambda d: _second_of_day(d) * 1_000_000_000 + d.microsecond * 1000,
    "micro_of_second": lambda d: d.microsecond,
    "micro_of_day": lambda d: _second_of_day(d) * 1_000_000 + d.microsecond,
    "clock_hour_of_ampm": lambda d: (d.hour % 12) or 12,
    "clock_hour_of_day": lambda d: d.hour or 24,
    "aligned_day_of_week_in_month": lambda d: (d.day - 1) % 7 + 1,
    "aligned_day_of_week_in_year": lambda d: (d.timetuple().tm_yday - 1) % 7 + 1,
    "aligned_week_of_month": lambda d: (d.day - 1) // 7 + 1,
    "proleptic_month": lambda d: d.year * 12 + d.month - 1,
    "era": lambda d: 1 if d.year >= 1 else 0,
    "instant_seconds": lambda d: v.datetime_to_millis(d) // 1000,
    "offset_seconds": lambda d: 0,
}


def _second_of_day(d: datetime) -> int:
    return d.hour * 3600 + d.minute * 60 + d.second


@scalar_impl("date_extract")
def _date_extract(args: Args, call: p.Call, ctx: EvalContext) -> object:
    part = _s(args[0]).lower()
    getter = _EXTRACT.get(part)
    if getter is None:
        raise EvalFailure(
            f"java.lang.IllegalArgumentException: No enum constant java.time.temporal.ChronoField.{part.upper()}"
        )
    return getter(_dt(args[1]))


# ---------------------------------------------------------------------------------------------
# IPs


def _ip(text: object) -> ipaddress.IPv6Address:
    return ipaddress.IPv6Address(v.ip_bytes(_s(text)))


@scalar_impl("cidr_match")
def _cidr_match(args: Args, call: p.Call, ctx: EvalContext) -> object:
    ip = _s(args[0])
    try:
        return any(v.cidr_contains(ip, _s(b)) for a in args[1:] for b in v.as_list(a))
    except v.ConversionError as exc:
        raise EvalFailure(f"{exc.java}: {exc}") from None


@scalar_impl("ip_prefix")
def _ip_prefix(args: Args, call: p.Call, ctx: EvalContext) -> object:
    text, v4, v6 = _s(args[0]), _i(args[1]), _i(args[2])
    if not 0 <= v4 <= 32:
        raise EvalFailure(
            f"java.lang.IllegalArgumentException: Prefix length v4 must be in range [0, 32], found {v4}"
        )
    if not 0 <= v6 <= 128:
        raise EvalFailure(
            f"java.lang.IllegalArgumentException: Prefix length v6 must be in range [0, 128], found {v6}"
        )
    return _prefix_of(text, v4, v6)


@functools.lru_cache(maxsize=1 << 16)
def _prefix_of(text: str, v4: int, v6: int) -> str:
    """IP_PREFIX's answer, cached: a stream asks it for the same addresses again and again."""
    addr = ipaddress.ip_address(text)
    if isinstance(addr, ipaddress.IPv4Address):
        return str(ipaddress.ip_network(f"{addr}/{v4}", strict=False).network_address)
    return v.canonical_ip(str(ipaddress.ip_network(f"{addr}/{v6}", strict=False).network_address))


# ---------------------------------------------------------------------------------------------
# Multivalue functions: arguments arrive whole (a list for a multivalue).


def _values_of(x: object) -> list[object]:
    return v.as_list(x)


@scalar_impl("mv_count")
def _mv_count(args: Args, call: p.Call, ctx: EvalContext) -> object:
    return len(_values_of(args[0]))


@scalar_impl("mv_first")
def _mv_first(args: Args, call: p.Call, ctx: EvalContext) -> object:
    return _values_of(args[0])[0]


@scalar_impl("mv_last")
def _mv_last(args: Args, call: p.Call, ctx: EvalContext) -> object:
    return _values_of(args[0])[-1]


@scalar_impl("mv_min", "mv_max")
def _mv_min_max(args: Args, call: p.Call, ctx: EvalContext) -> object:
    pick = min if call.fn == "mv_min" else max
    return pick(_values_of(args[0]), key=lambda x: v.order_key(x, call.type))


@scalar_impl("mv_sum")
def _mv_sum(args: Args, call: p.Call, ctx: EvalContext) -> object:
    items = [_num(x, call.type) for x in _values_of(args[0])]
    if call.type is T.DOUBLE:
        return math.fsum(items)
    total = 0
    for item in items:
        total = int(_checked(total + item, call.type))
    return total


@scalar_impl("mv_avg")
def _mv_avg(args: Args, call: p.Call, ctx: EvalContext) -> object:
    items = [float(_num(x, T.DOUBLE)) for x in _values_of(args[0])]
    return math.fsum(items) / len(items)


@scalar_impl("mv_median")
def _mv_median(args: Args, call: p.Call, ctx: EvalContext) -> object:
    items = sorted(_num(x, call.type) for x in _values_of(args[0]))
    if call.type is T.DOUBLE:
        return float(statistics.median(items))
    mid = len(items) // 2
    if len(items) % 2:
        return items[mid]
    return (int(items[mid - 1]) + int(items[mid])) // 2


@scalar_impl("mv_concat")
def _mv_concat(args: Args, call: p.Call, ctx: EvalContext) -> object:
    if isinstance(args[1], list):
        raise EvalFailure(
            "java.lang.IllegalArgumentException: single-value function encountered multi-value"
        )
    return _s(args[1]).join(_s(x) for x in _values_of(args[0]))


@scalar_impl("mv_dedupe")
def _mv_dedupe(args: Args, call: p.Call, ctx: EvalContext) -> object:
    seen: list[object] = []
    for x in _values_of(args[0]):
        if x not in seen:
            seen.append(x)
    return v.from_list(seen)


@scalar_impl("mv_slice")
def _mv_slice(args: Args, call: p.Call, ctx: EvalContext) -> object:
    items = _values_of(args[0])
    start = _i(args[1])
    end = _i(args[2]) if len(args) > 2 and args[2] is not None else start
    count = len(items)
    if start < 0:
        start += count
    if end < 0:
        end += count
    if start < 0 or end < start:
        if end < start:
            raise EvalFailure(
                "org.elasticsearch.xpack.esql.core.InvalidArgumentException: Start offset is greater than end offset"
            )
        start = max(start, 0)
    if start >= count:
        return None
    return v.from_list(items[start : min(end, count - 1) + 1])


@scalar_impl("mv_sort")
def _mv_sort(args: Args, call: p.Call, ctx: EvalContext) -> object:
    order = _s(args[1]).upper() if len(args) > 1 and args[1] is not None else "ASC"
    if order not in ("ASC", "DESC"):
        raise EvalFailure(
            f"org.elasticsearch.xpack.esql.core.InvalidArgumentException: Invalid order value in "
            f"[{order}], expected one of [ASC, DESC] but got [{order}]"
        )
    items = sorted(_values_of(args[0]), key=lambda x: v.order_key(x, call.type))
    return v.from_list(items[::-1] if order == "DESC" else items)


@scalar_impl("mv_append")
def _mv_append(args: Args, call: p.Call, ctx: EvalContext) -> object:
    first, second = _values_of(args[0]), _values_of(args[1])
    if len(first) + len(second) > v.MAX_VALUES:  # EVAL chains could double it without end
        raise EvalFailure(v.TOO_MANY_VALUES)
    if v.multivalue_bytes(first, call.type) + v.multivalue_bytes(second, call.type) > (
        v.MAX_MULTIVALUE_BYTES
    ):
        raise EvalFailure(v.MULTIVALUE_TOO_LARGE)
    return v.from_list(first + second)


@scalar_impl("mv_contains")
def _mv_contains(args: Args, call: p.Call, ctx: EvalContext) -> object:
    superset = {v.order_key(x, call.args[0].type) for x in _values_of(args[0])}
    return all(v.order_key(x, call.args[1].type) in superset for x in _values_of(args[1]))


@functools.lru_cache(maxsize=256)
def _like_regex(pattern: str) -> re.Pattern[str]:
    return re.compile(like_to_regex(pattern), re.DOTALL)


@scalar_impl("mv_any_like")
def _mv_any_like(args: Args, call: p.Call, ctx: EvalContext) -> object:
    # KQL's wildcard term: a multivalue matches when any value does; null matches nothing.
    pattern = _like_regex(_s(args[1]))
    return any(pattern.fullmatch(_s(x)) for x in _values_of(args[0]))


@scalar_impl("mv_like", "mv_rlike")
def _mv_like(args: Args, call: p.Call, ctx: EvalContext) -> object:
    if args[1] is None:
        return None
    translate = rlike_to_regex if call.fn == "mv_rlike" else like_to_regex
    pattern = _pattern(translate, _s(args[1]))
    return any(pattern.fullmatch(_s(x)) for x in _values_of(args[0]))


@functools.lru_cache(maxsize=256)
def _pattern(translate: Callable[[str], str], text: str) -> re.Pattern[str]:
    return re.compile(translate(text), re.DOTALL)


@scalar_impl("mv_intersection")
def _mv_intersection(args: Args, call: p.Call, ctx: EvalContext) -> object:
    right = _values_of(args[1])
    out: list[object] = []
    for x in _values_of(args[0]):
        if x in right and x not in out:
            out.append(x)
    return v.from_list(out)
