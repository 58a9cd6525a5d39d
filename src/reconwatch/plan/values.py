"""Value conventions of plan/nodes.py made executable: coercion, canonical forms, ordering, printing."""

from __future__ import annotations

import decimal
import functools
import hashlib
import ipaddress
import math
import re
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from reconwatch.types import DataType

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# The warning reason of date arithmetic or conversion past the years reconwatch's datetimes hold
# (1 to 9999; Elasticsearch's reach further), on every executor.
DATE_OUT_OF_RANGE = (
    "java.time.DateTimeException: date out of the supported range "
    "[0001-01-01T00:00:00.000Z, 9999-12-31T23:59:59.999Z]"
)
# Functions that build a string from their arguments stop at 1 MiB, as Elasticsearch's do: the
# value is null with one of these warnings, on every executor.
MAX_STRING_BYTES = 1024 * 1024
REPEAT_TOO_LONG = (
    "java.lang.IllegalArgumentException: Creating repeated strings with more than "
    f"[{MAX_STRING_BYTES}] bytes is not supported"
)
SPACE_TOO_LONG = (
    "java.lang.IllegalArgumentException: Creating strings longer than "
    f"[{MAX_STRING_BYTES}] bytes is not supported"
)
STRING_TOO_LONG = (
    f"java.lang.IllegalArgumentException: concatenating more than [{MAX_STRING_BYTES}] bytes "
    "is not supported"
)
# Functions whose string result may be longer than their arguments together: nested, they would
# grow without bound, so a result over MAX_STRING_BYTES is null with STRING_TOO_LONG.
GROWING_STRINGS = frozenset(
    {"concat", "replace", "to_base64", "url_encode", "url_encode_component", "mv_concat"}
)
# MV_APPEND stops at this many values or bytes (reconwatch's own bounds; Elasticsearch's circuit
# breakers end such a query): `EVAL b = MV_APPEND(a, a)` repeated would double a multivalue
# without end, and by bytes 13 doublings of a 1 MiB string are 8 GiB in 8,192 values. A value
# weighs its UTF-8 bytes (keyword, text, version) or its fixed width (VALUE_WIDTH, 16 for an ip).
MAX_VALUES = 1024 * 1024
MAX_MULTIVALUE_BYTES = 8 * MAX_VALUES
VALUE_WIDTH, IP_WIDTH = 8, 16
TOO_MANY_VALUES = (
    f"java.lang.IllegalArgumentException: Creating multivalues with more than [{MAX_VALUES}] "
    "values is not supported"
)
MULTIVALUE_TOO_LARGE = (
    "java.lang.IllegalArgumentException: Creating multivalues of more than "
    f"[{MAX_MULTIVALUE_BYTES}] bytes is not supported"
)


def cbrt(x: float) -> float:
    """The cube root as Java's Math.cbrt gives it: exact for exact cubes (`cbrt(-27)` is -3.0;
    the C library's and DuckDB's are an ulp off). Of the libm result and its two neighbours, the
    one whose cube is nearest to `x`, measured exactly."""
    if x == 0 or not math.isfinite(x):
        return x
    from fractions import Fraction  # loaded by the first CBRT, not by every command

    guess = math.cbrt(x)
    target = Fraction(x)
    candidates = (math.nextafter(guess, -math.inf), guess, math.nextafter(guess, math.inf))
    return min(candidates, key=lambda y: abs(Fraction(y) ** 3 - target))


# Past this many digits either way ROUND gives every double and long the same result (itself,
# or 0): a digit count is clamped to it, so any count is a quantisation Decimal can do.
ROUND_DIGITS = 400
_WIDE = decimal.Context(prec=1000, Emax=decimal.MAX_EMAX, Emin=decimal.MIN_EMIN)


def round_digits(digits: int) -> int:
    """ROUND's digit count (an int or a long) clamped to where the result stops changing."""
    return max(-ROUND_DIGITS, min(ROUND_DIGITS, digits))


def round_double(x: float, digits: int) -> float:
    """ROUND of a double: half up on its shortest decimal form (2.05 -> 2.1 at 1 digit)."""
    if math.isnan(x) or math.isinf(x):
        return x
    step = decimal.Decimal(1).scaleb(-round_digits(digits))
    quantized = decimal.Decimal(repr(x)).quantize(
        step, rounding=decimal.ROUND_HALF_UP, context=_WIDE
    )
    return float(quantized)


def round_integral(x: int, digits: int) -> int:
    """ROUND of an integral value: unchanged at digits >= 0, else half up (away from zero) at
    10^-digits; the caller checks the result against its type. Within the longs it is Java's
    Maths.round(long, long), which counts the value's digits through a double's log10 and gives
    0 when there are no more than it rounds away: ROUND(6, -1) and ROUND(56, -2) are 0, not 10
    and 100 (an unsigned_long past the longs is rounded as a BigInteger, without this rule)."""
    if digits >= 0 or x == 0:
        return x
    if LONG_MIN <= x <= LONG_MAX and int(math.log10(abs(float(x))) + 1) <= -digits:
        return 0
    step = decimal.Decimal(1).scaleb(-round_digits(digits))
    return int(decimal.Decimal(x).quantize(step, rounding=decimal.ROUND_HALF_UP, context=_WIDE))


def java_case(text: str, *, upper: bool) -> str:
    """Java's String.toUpperCase/toLowerCase(Locale.ROOT), which TO_UPPER/TO_LOWER use: the full
    case mapping of Unicode's SpecialCasing (`ß` -> `SS`, `ﬁ` -> `FI`, `İ` -> `i̇`) and the final
    sigma (`ΑΣ` -> `ας`). Python's str.upper/lower implement the same rules; they differ from
    Java only where the Unicode versions differ (Python 3.11's 14.0; the JDK Elasticsearch ships
    knows later letters, whose case Python leaves as is)."""
    return text.upper() if upper else text.lower()


def negative_length(length: int) -> str:
    """The warning reason of SUBSTRING with a negative length (Elasticsearch's message)."""
    return (
        f"java.lang.IllegalArgumentException: Length parameter cannot be negative, found [{length}]"
    )


INT_MIN, INT_MAX = -(2**31), 2**31 - 1
LONG_MIN, LONG_MAX = -(2**63), 2**63 - 1
ULONG_MAX = 2**64 - 1


INVALID_ARGUMENT = "org.elasticsearch.xpack.esql.core.InvalidArgumentException"
NUMBER_FORMAT = "java.lang.NumberFormatException"
# Java's Double.parseDouble (decimal forms; surrounding whitespace is trimmed before).
JAVA_DOUBLE_RE = r"[+-]?(NaN|Infinity|([0-9]+[.]?[0-9]*|[.][0-9]+)([eE][+-]?[0-9]+)?[fFdD]?)"
_JAVA_DOUBLE = re.compile(JAVA_DOUBLE_RE)
_JAVA_INTEGER = re.compile(r"[+-]?[0-9]+")
_BIG_DECIMAL = re.compile(r"[+-]?([0-9]+[.]?[0-9]*|[.][0-9]+)([eE][+-]?[0-9]+)?")


class ConversionError(ValueError):
    """A value that cannot be converted to the requested type; the message is Elasticsearch's and
    `java` the exception class it names (None: the caller's default for the target type)."""

    def __init__(self, message: str, java: str | None = None) -> None:
        super().__init__(message)
        self.java = java


# ---------------------------------------------------------------------------------------------
# Multivalues


def multivalue_bytes(items: Iterable[object], t: DataType) -> int:
    """What a multivalue of type `t` weighs against MAX_MULTIVALUE_BYTES."""
    if t in (DataType.KEYWORD, DataType.TEXT, DataType.VERSION):
        return sum(len(str(x).encode()) for x in items)
    width = IP_WIDTH if t is DataType.IP else VALUE_WIDTH
    return width * sum(1 for _ in items)


def as_list(value: object) -> list[object]:
    """Every value of a cell: [] for null, [v] for a single value, the list for a multivalue."""
    if value is None:
        return []
    if isinstance(value, list | tuple):
        return [v for v in value if v is not None]
    return [value]


def from_list(values: Iterable[object]) -> object:
    """The cell holding these values: None, the single value, or a list of two or more."""
    items = [v for v in values if v is not None]
    if not items:
        return None
    return items[0] if len(items) == 1 else items


def is_multi(value: object) -> bool:
    return isinstance(value, list | tuple) and len(value) > 1


# ---------------------------------------------------------------------------------------------
# IP addresses


def canonical_ip(text: str) -> str:
    """The canonical spelling of an IP (IPv4-mapped IPv6 as IPv4); ConversionError if invalid."""
    try:
        addr = ipaddress.ip_address(text.strip())
    except ValueError:
        msg = f"'{text}' is not an IP string literal."
        raise ConversionError(msg) from None
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return str(addr.ipv4_mapped)
    return str(addr)


def ip_bytes(text: str) -> bytes:
    """The 16-byte IPv6 form Elasticsearch stores and orders IPs by (IPv4 mapped into ::ffff:0:0/96)."""
    addr = ipaddress.ip_address(text)
    if isinstance(addr, ipaddress.IPv4Address):
        return b"\x00" * 10 + b"\xff\xff" + addr.packed
    return addr.packed


@functools.lru_cache(maxsize=1 << 16)
def _ip_int(text: str) -> int:
    """ip_bytes as an integer, cached: a stream tests the same addresses again and again."""
    return int.from_bytes(ip_bytes(text), "big")


@functools.lru_cache(maxsize=1024)
def _mapped_block(block: str) -> tuple[int, int]:
    """A CIDR block as (network, mask) over the 16-byte form (IPv4 mapped), cached: a rule
    names the same few blocks for every event."""
    try:
        net = ipaddress.ip_network(block.strip(), strict=False)
    except ValueError:
        msg = f"'{block}' is not an IP string literal."
        raise ConversionError(msg, "java.lang.IllegalArgumentException") from None
    if isinstance(net, ipaddress.IPv4Network):
        net = ipaddress.IPv6Network(f"::ffff:{net.network_address}/{96 + net.prefixlen}")
    return int(net.network_address), int(net.netmask)


def cidr_contains(ip: str, block: str) -> bool:
    """Whether `ip` is inside the CIDR block, both as Elasticsearch stores IPs (16 bytes, IPv4
    mapped into ::ffff:0:0/96): an IPv4 block is its mapped /96+n block, so `1.2.3.4` is in
    `1.2.3.0/24` and in `::ffff:1.2.3.0/120`, and `::ffff:1.2.3.4` in either. A block that is
    not one raises ConversionError with Elasticsearch's message."""
    network, mask = _mapped_block(block)
    return _ip_int(ip) & mask == network


# ---------------------------------------------------------------------------------------------
# Dates

_DATE_RE = re.compile(
    r"^(?P<y>[+-]?\d{4,})(?:-(?P<mo>\d{1,2})(?:-(?P<d>\d{1,2})"
    r"(?:[T ](?P<h>\d{1,2})(?::(?P<mi>\d{2})(?::(?P<s>\d{2})(?:[.,](?P<f>\d{1,9}))?)?)?"
    r"(?P<tz>Z|[+-]\d{2}:?\d{2})?)?)?)?$"
)


# Elasticsearch's strict_date_optional_time, which TO_DATETIME reads: a `T` before the time and
# two-digit fields (`2024-01-01 10:00:00` is not a date there).
_STRICT_DATE_RE = re.compile(
    r"^(?P<y>[+-]?\d{4,})(?:-(?P<mo>\d{2})(?:-(?P<d>\d{2})"
    r"(?:T(?P<h>\d{2})(?::(?P<mi>\d{2})(?::(?P<s>\d{2})(?:[.,](?P<f>\d{1,9}))?)?)?"
    r"(?P<tz>Z|[+-]\d{2}:?\d{2})?)?)?)?$"
)


def parse_datetime(text: str, *, strict: bool = False) -> datetime:
    """An ISO-8601 date or date-time as a UTC datetime, ms precision. `strict`: exactly
    strict_date_optional_time (TO_DATETIME); otherwise a space may stand for the `T` and fields
    may have one digit (event files, command-line times)."""
    m = (_STRICT_DATE_RE if strict else _DATE_RE).match(text.strip())
    if m is None:
        msg = f"failed to parse date field [{text}] with format [strict_date_optional_time]"
        raise ConversionError(msg)
    g = m.groupdict()
    try:
        millis = int((g["f"] or "0").ljust(3, "0")[:3])
        dt = datetime(
            int(g["y"]),
            int(g["mo"] or 1),
            int(g["d"] or 1),
            int(g["h"] or 0),
            int(g["mi"] or 0),
            int(g["s"] or 0),
            millis * 1000,
            tzinfo=UTC,
        )
    except (ValueError, OverflowError) as exc:  # a year too long for a C int overflows
        msg = f"failed to parse date field [{text}] with format [strict_date_optional_time]"
        raise ConversionError(msg) from exc
    tz = g["tz"]
    if tz and tz != "Z":
        sign = -1 if tz[0] == "-" else 1
        digits = tz[1:].replace(":", "")
        try:
            dt -= sign * timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
        except OverflowError:
            msg = f"failed to parse date field [{text}] with format [strict_date_optional_time]"
            raise ConversionError(msg) from None
    return dt


def datetime_from_millis(millis: int) -> datetime:
    try:
        return EPOCH + timedelta(milliseconds=millis)
    except OverflowError:  # outside years 1-9999, the range reconwatch's datetimes hold
        msg = f"date [{millis}] is out of range"
        raise ConversionError(msg) from None


def datetime_to_millis(value: datetime) -> int:
    delta = value - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


def format_datetime(value: datetime) -> str:
    """Elasticsearch's rendering: 2024-01-02T03:04:05.678Z."""
    v = value.astimezone(UTC)
    return f"{v.strftime('%Y-%m-%dT%H:%M:%S')}.{v.microsecond // 1000:03d}Z"


def to_utc_millis_precision(value: datetime) -> datetime:
    v = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    v = v.astimezone(UTC)
    return v.replace(microsecond=v.microsecond // 1000 * 1000)


# ---------------------------------------------------------------------------------------------
# Versions


def version_key(text: str) -> tuple[object, ...]:
    """Semantic-version ordering: numeric parts numerically, a pre-release below its release."""
    main, _, pre = text.partition("-")
    parts: list[tuple[int, object]] = []
    for part in main.split("."):
        parts.append((1, int(part)) if part.isdigit() else (2, part))
    release_rank = 0 if pre else 1
    pre_parts = tuple((1, int(p)) if p.isdigit() else (2, p) for p in pre.split(".")) if pre else ()
    return (tuple(parts), release_rank, pre_parts)


def version_key_bytes(text: str) -> bytes:
    """version_key as bytes whose order is the tuple's (DuckDB sorts a BLOB, not a tuple): each
    part a tag (1 number, 2 text; 0 ends a list, so a shorter list sorts first), a number as its
    digit count then its digits, a text as UTF-8 with 0x00 escaped, then 0x00 0x00."""
    main, release_rank, pre = version_key(text)
    assert isinstance(main, tuple) and isinstance(pre, tuple) and isinstance(release_rank, int)
    return _parts_bytes(main) + bytes([release_rank]) + _parts_bytes(pre)


def _parts_bytes(parts: tuple[tuple[int, int | str], ...]) -> bytes:
    out = bytearray()
    for tag, value in parts:
        out.append(tag)
        if isinstance(value, int):
            digits = str(value).encode()
            out += len(digits).to_bytes(4, "big") + digits
        else:
            out += str(value).encode().replace(b"\x00", b"\x00\xff") + b"\x00\x00"
    out.append(0)
    return bytes(out)


# ---------------------------------------------------------------------------------------------
# Printing and conversion


def java_double(value: float) -> str:
    """Double.toString: 1.0, 0.001, 1.0E-4, 1.0E7, NaN, Infinity."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    if value == 0:
        return "-0.0" if math.copysign(1.0, value) < 0 else "0.0"
    magnitude = abs(value)
    if 1e-3 <= magnitude < 1e7:
        text = repr(value)
        if "e" in text:
            text = f"{value:.17f}".rstrip("0")
        return text if "." in text else text + ".0"
    mantissa, _, exponent = f"{value:e}".partition("e")
    digits = repr(value / 10 ** int(exponent)) if abs(int(exponent)) < 300 else mantissa
    if "e" in digits:
        digits = mantissa
    digits = digits.rstrip("0")
    if digits.endswith("."):
        digits += "0"
    if "." not in digits:
        digits += ".0"
    return f"{digits}E{int(exponent)}"


def to_text(value: object, type_: DataType) -> str:
    """TO_STRING of one value of a type."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return java_double(value)
    if isinstance(value, datetime):
        return format_datetime(value)
    return str(value)


def _int_in_range(value: int, type_: DataType, shown: object = None) -> int:
    low, high = _RANGES[type_]
    if not low <= value <= high:
        msg = f"[{value if shown is None else shown}] out of [{type_.value}] range"
        raise ConversionError(msg, INVALID_ARGUMENT)
    return value


_RANGES = {
    DataType.INTEGER: (INT_MIN, INT_MAX),
    DataType.LONG: (LONG_MIN, LONG_MAX),
    DataType.UNSIGNED_LONG: (0, ULONG_MAX),
}


def _double_to_int(value: float, type_: DataType) -> int:
    """Elasticsearch's safe double -> integral: out of range (compared as doubles, printed as Java
    prints a double: `[1.0E19] out of [integer] range`), else Math.round (half up)."""
    low, high = _RANGES[type_]
    if math.isnan(value) or not float(low) <= value <= float(high):
        msg = f"[{java_double(value)}] out of [{type_.value}] range"
        raise ConversionError(msg, INVALID_ARGUMENT)
    return max(low, min(high, math.floor(value + 0.5)))


def parse_java_double(text: str) -> float:
    """Double.parseDouble: NumberFormatException `For input string: "foo"` for what it rejects."""
    stripped = text.strip()
    if _JAVA_DOUBLE.fullmatch(stripped) is None:
        msg = "empty String" if not stripped else f'For input string: "{text}"'
        raise ConversionError(msg, NUMBER_FORMAT)
    return float(stripped.rstrip("fFdD").replace("Infinity", "inf"))


def _string_to_unsigned_long(text: str) -> int:
    """As BigDecimal reads it, rounded half up; BigDecimal's message for a bad character."""
    stripped = text.strip()
    if _BIG_DECIMAL.fullmatch(stripped) is None:
        bad = next((c for c in stripped if not (c.isdigit() or c in "+-.eE")), None)
        if bad is None:
            raise ConversionError(f"Cannot parse number [{text}]", INVALID_ARGUMENT)
        msg = (
            f"Character {bad} is neither a decimal digit number, decimal point, nor "
            '"e" notation exponential mark.'
        )
        raise ConversionError(msg, NUMBER_FORMAT)
    number = decimal.Decimal(stripped)
    rounded = int(number.to_integral_value(rounding=decimal.ROUND_HALF_UP))
    return _int_in_range(rounded, DataType.UNSIGNED_LONG, text)


def _to_int(value: object, type_: DataType) -> int:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return _int_in_range(value, type_)
    if isinstance(value, float):
        return _double_to_int(value, type_)
    if isinstance(value, datetime):
        # A naive datetime (a Parquet timestamp without a zone) is UTC, as everywhere else.
        return _int_in_range(datetime_to_millis(to_utc_millis_precision(value)), type_)
    if isinstance(value, str):
        if type_ is DataType.UNSIGNED_LONG:
            return _string_to_unsigned_long(value)
        text = value.strip()
        if _JAVA_INTEGER.fullmatch(text) is not None:
            number = int(text)
            low, high = _RANGES[type_]
            if low <= number <= high:
                return number
        # Not an integer of the type: read as a double; out of range or unreadable, the message
        # names the text (Elasticsearch: `Cannot parse number [2147483647.2]`).
        try:
            return _double_to_int(parse_java_double(text), type_)
        except ConversionError:
            msg = f"Cannot parse number [{value}]"
            raise ConversionError(msg, INVALID_ARGUMENT) from None
    msg = f"Cannot convert [{value}] to [{type_.value}]"
    raise ConversionError(msg)


def _to_double(value: object) -> float:
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, datetime):
        return float(datetime_to_millis(to_utc_millis_precision(value)))
    if isinstance(value, str):
        return parse_java_double(value)
    msg = f"Cannot convert [{value}] to [double]"
    raise ConversionError(msg)


def _to_boolean(value: object) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return value != 0
    if isinstance(value, str):
        # Elasticsearch's Boolean.parseBoolean: only "true" (any case) is true.
        return value.strip().lower() == "true"
    msg = f"Cannot convert [{value}] to [boolean]"
    raise ConversionError(msg)


def _to_datetime(value: object, strict: bool = False) -> datetime:
    if isinstance(value, datetime):
        return to_utc_millis_precision(value)
    if isinstance(value, bool):
        msg = f"Cannot convert [{value}] to [datetime]"
        raise ConversionError(msg)
    if isinstance(value, int):
        return datetime_from_millis(value)
    if isinstance(value, float):
        return datetime_from_millis(int(value))
    if isinstance(value, str):
        return parse_datetime(value, strict=strict)
    msg = f"Cannot convert [{value}] to [datetime]"
    raise ConversionError(msg)


def convert(value: object, type_: DataType, *, strict: bool = False) -> object:
    """One single value converted to `type_` as the TO_<type> functions do; ConversionError if not.
    `strict`: text dates exactly as TO_DATETIME reads them (see parse_datetime)."""
    if type_ in (DataType.KEYWORD, DataType.TEXT):
        return to_text(value, type_)
    if type_ in (DataType.INTEGER, DataType.LONG, DataType.UNSIGNED_LONG):
        return _to_int(value, type_)
    if type_ is DataType.DOUBLE:
        return _to_double(value)
    if type_ is DataType.BOOLEAN:
        return _to_boolean(value)
    if type_ in (DataType.DATETIME, DataType.DATE_NANOS):
        return _to_datetime(value, strict)
    if type_ is DataType.IP:
        if isinstance(value, str):
            return canonical_ip(value)
        msg = f"Cannot convert [{value}] to [ip]"
        raise ConversionError(msg)
    if type_ is DataType.VERSION:
        return str(value)
    if type_ is DataType.NULL:
        return None
    msg = f"Cannot convert [{value}] to [{type_.value}]"
    raise ConversionError(msg)


def coerce_cell(value: object, type_: DataType) -> object:
    """An input cell brought to the plan's conventions: values converted, nulls and bad values
    dropped from multivalues, one-element lists unwrapped. Unconvertible values become null."""
    out: list[object] = []
    for item in as_list(value):
        if isinstance(item, dict):
            continue  # an object where a leaf was expected is not a value of this column
        try:
            out.append(convert(item, type_))
        except ConversionError:
            continue
    return from_list(out)


def order_key(value: object, type_: DataType) -> Any:
    """A key that orders single values of one type as Elasticsearch does."""
    if type_ is DataType.IP and isinstance(value, str):
        return ip_bytes(value)
    if type_ is DataType.VERSION and isinstance(value, str):
        return version_key(value)
    return value


# ---------------------------------------------------------------------------------------------
# Functions both executors compute in Python

# Java MessageDigest names (any case) -> hashlib names.
_DIGESTS = {
    "MD2": None,
    "MD5": "md5",
    "SHA-1": "sha1",
    "SHA-224": "sha224",
    "SHA-256": "sha256",
    "SHA-384": "sha384",
    "SHA-512": "sha512",
    "SHA-512/224": "sha512_224",
    "SHA-512/256": "sha512_256",
    "SHA3-224": "sha3_224",
    "SHA3-256": "sha3_256",
    "SHA3-384": "sha3_384",
    "SHA3-512": "sha3_512",
}


def java_digest(algorithm: str, text: str) -> str:
    """HASH(algorithm, input): the hex digest of the UTF-8 input; ConversionError (with Java's
    NoSuchAlgorithmException) for an algorithm Java's MessageDigest does not know."""
    name = _DIGESTS.get(algorithm.upper())
    if name is None or name not in hashlib.algorithms_available:
        msg = f"{algorithm} MessageDigest not available"
        raise ConversionError(msg, "java.security.NoSuchAlgorithmException")
    return hashlib.new(name, text.encode("utf-8")).hexdigest()
