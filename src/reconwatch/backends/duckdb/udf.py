"""Python functions registered on the DuckDB connection where SQL has no exact equivalent (IPs, dates)."""

from __future__ import annotations

import functools
import ipaddress
import json
import math
import re
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any
from urllib.parse import quote_plus

import duckdb
from duckdb.func import DEFAULT, SPECIAL

from reconwatch.backends.duckdb.warnings import WarningSink
from reconwatch.esql import extract
from reconwatch.plan import javadate, javatext, values
from reconwatch.types import DataType


def ip_key(text: str | None) -> bytes | None:
    if text is None:
        return None
    try:
        return values.ip_bytes(text)
    except ValueError:
        return None


def ip_canon(text: str | None) -> str | None:
    if text is None:
        return None
    try:
        return values.canonical_ip(text)
    except values.ConversionError:
        return None


def cidr(ip: str | None, blocks: list[str | None] | None) -> bool | None:
    """CIDR_MATCH (values.cidr_contains over the blocks in order); NULL where a block that is
    not one is met before a match (see rw_cidr_errors)."""
    try:
        return _cidr(ip, blocks)
    except values.ConversionError:
        return None


def cidr_errors(ip: str | None, blocks: list[str | None] | None) -> list[str] | None:
    """The warning reason of CIDR_MATCH for these arguments."""
    try:
        _cidr(ip, blocks)
    except values.ConversionError as exc:
        return [f"{exc.java}: {exc}"]
    return []


def _cidr(ip: str | None, blocks: list[str | None] | None) -> bool | None:
    if ip is None or blocks is None:
        return None
    return any(values.cidr_contains(ip, b) for b in blocks if b is not None)


def cbrt(x: float) -> float:
    return values.cbrt(x)


def url_decode(text: str | None) -> str | None:
    """URL_DECODE; NULL where Java's URLDecoder fails (see rw_java_text_errors)."""
    return _java_text(javatext.url_decode, text)


def from_base64(text: str | None) -> str | None:
    """FROM_BASE64; NULL where Java's Base64 decoder fails (see rw_java_text_errors)."""
    return _java_text(javatext.base64_decode, text)


def _java_text(decode: Callable[[str], str], text: str | None) -> str | None:
    if text is None:
        return None
    try:
        return decode(text)
    except values.ConversionError:
        return None


_JAVA_TEXT = {"url_decode": javatext.url_decode, "from_base64": javatext.base64_decode}


def java_text_errors(fn: str | None, text: str | None) -> list[str] | None:
    """The warning reason of URL_DECODE or FROM_BASE64 (`fn`) for `text`."""
    if fn is None or text is None:
        return None
    try:
        _JAVA_TEXT[fn](text)
    except values.ConversionError as exc:
        return [f"{exc.java}: {exc}"]
    return []


def version_key(text: str | None) -> bytes | None:
    """A key whose byte order is values.version_key's order (SORT, comparisons, MV_SORT)."""
    if text is None:
        return None
    return values.version_key_bytes(text)


def parse_date(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        return values.parse_datetime(text).replace(tzinfo=None)
    except values.ConversionError:
        return None


def to_datetime(text: str | None) -> datetime | None:
    """TO_DATETIME of a string: strict_date_optional_time only."""
    if text is None:
        return None
    try:
        return values.parse_datetime(text, strict=True).replace(tzinfo=None)
    except values.ConversionError:
        return None


def double_text(value: float) -> str:
    return values.java_double(value)


def url_encode(text: str) -> str:
    return quote_plus(text, safe="*-._")


def url_encode_component(text: str) -> str:
    return quote_plus(text, safe="*-._").replace("+", "%20")


def ip_prefix(ip: str | None, v4: int | None, v6: int | None) -> str | None:
    if ip is None or v4 is None or v6 is None:
        return None
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return None
    # Elasticsearch checks both lengths whatever the address family.
    if not (0 <= v4 <= 32 and 0 <= v6 <= 128):
        return None
    length = v4 if addr.version == 4 else v6
    return str(ipaddress.ip_network(f"{addr}/{length}", strict=False).network_address)


# Sinks of the queries running now, by the token each query reads from getvariable('rw_query').
ACTIVE_SINKS: dict[int, WarningSink] = {}


def warn(
    query: int | None, site: int | None, reasons: list[str | None] | None, failed: bool | None
) -> bool | None:
    """Record failures of one evaluation site of the running query; always NULL. `failed` is the
    failure test itself: DuckDB may fold a constant call outside its CASE branch, and then the
    test, not the branch, keeps a value that did not fail from warning."""
    sink = ACTIVE_SINKS.get(query) if query is not None else None
    if sink is not None and failed is True:
        sink.fail(site, reasons)
    return None


# DuckDB's text of a number read back as the number it was (the message prints the number).
_SOURCE_READERS: dict[str, Callable[[str], object]] = {
    DataType.DOUBLE.value: float,
    DataType.INTEGER.value: int,
    DataType.LONG.value: int,
    DataType.UNSIGNED_LONG.value: int,
}


def conversion_errors(
    texts: list[str | None] | None, target: str | None, source: str | None = None
) -> list[str] | None:
    """Elasticsearch's reasons for values (as DuckDB prints them) of type `source` that do not
    convert to `target` (as the reference)."""
    if texts is None or target is None:
        return None
    type_ = DataType(target)
    read = _SOURCE_READERS.get(source or "", str)
    out: list[str] = []
    for text in texts:
        if text is None:
            continue
        try:
            values.convert(read(text), type_, strict=True)
        except values.ConversionError as exc:
            if exc.java is not None:
                out.append(f"{exc.java}: {exc}")
            elif type_ in (DataType.IP, DataType.DATETIME, DataType.BOOLEAN):
                out.append(f"java.lang.IllegalArgumentException: {exc}")
            else:
                out.append(f"org.elasticsearch.xpack.esql.core.InvalidArgumentException: {exc}")
    return out


@functools.lru_cache(maxsize=64)
def _extractor(
    spec: str,
) -> tuple[re.Pattern[str], list[list[str]], list[str | None], list[DataType]]:
    parsed = json.loads(spec)
    regex = re.compile(parsed["regex"], re.DOTALL)
    outputs = parsed["outputs"]
    append: dict[str, str] = parsed["append"]
    groups = extract.output_groups(regex, len(outputs))
    return regex, groups, [append.get(n) for n, _ in outputs], [DataType(t) for _, t in outputs]


def extract_values(texts: list[str | None] | None, spec: str | None) -> list[list[str]] | None:
    """DISSECT/GROK of every value of a (multivalued) input, as the reference runs it: per
    output, its values as text (typed outputs converted, then printed for SQL to cast back)."""
    if texts is None or spec is None:
        return None
    regex, groups, separators, types = _extractor(spec)
    found = extract.extract_texts(regex, groups, separators, [t for t in texts if t is not None])
    if found is None:
        return None
    out: list[list[str]] = []
    for values_, type_ in zip(found, types, strict=True):
        if type_ in (DataType.KEYWORD, DataType.TEXT):
            out.append(values_)
            continue
        typed: list[str] = []
        for text in values_:
            try:
                value = values.convert(text, type_)
            except values.ConversionError:
                continue
            typed.append(("true" if value else "false") if isinstance(value, bool) else repr(value))
        out.append(typed)
    return out


def to_lower(text: str) -> str:
    """TO_LOWER of non-ASCII text: Java's toLowerCase(Locale.ROOT) (values.java_case)."""
    return values.java_case(text, upper=False)


def to_upper(text: str) -> str:
    """TO_UPPER of non-ASCII text: Java's toUpperCase(Locale.ROOT) (values.java_case)."""
    return values.java_case(text, upper=True)


def round_double(x: float, digits: int) -> float:
    """ROUND of a double by a digit count that is not a constant (values.round_double)."""
    return values.round_double(x, digits)


def hypot(x: float, y: float) -> float:
    """Math.hypot: no overflow or underflow on the way (DuckDB has no hypot)."""
    return math.hypot(x, y)


def java_hash(algorithm: str | None, text: str | None) -> str | None:
    """HASH(algorithm, input); NULL for an algorithm Java does not know (see rw_hash_errors)."""
    if algorithm is None or text is None:
        return None
    try:
        return values.java_digest(algorithm, text)
    except values.ConversionError:
        return None


def hash_errors(algorithm: str | None) -> list[str] | None:
    """The warning reason of HASH with this algorithm."""
    if algorithm is None:
        return None
    try:
        values.java_digest(algorithm, "")
    except values.ConversionError as exc:
        return [f"{exc.java}: {exc}"]
    return []


def date_format(pattern: str | None, when: datetime | None) -> str | None:
    """DATE_FORMAT; NULL for a pattern we cannot print (see rw_date_errors)."""
    if when is None:
        return None
    try:
        return javadate.format_date(pattern, when)
    except values.ConversionError:
        return None


def date_parse(pattern: str | None, text: str | None) -> datetime | None:
    """DATE_PARSE (pattern NULL: the one-argument form); NULL where it fails."""
    if text is None:
        return None
    try:
        if pattern is None:
            return values.parse_datetime(text, strict=True).replace(tzinfo=None)
        return javadate.parse_date(pattern, text).replace(tzinfo=None)
    except values.ConversionError:
        return None


def date_errors(pattern: str | None, text: str | None, parse: bool | None) -> list[str] | None:
    """The warning reasons of DATE_PARSE (parse) or DATE_FORMAT for these arguments."""
    try:
        if parse and pattern is None:
            values.parse_datetime(text or "", strict=True)
        elif parse:
            javadate.parse_date(pattern or "", text or "")
        else:
            javadate.compile_pattern(pattern or "")
    except values.ConversionError as exc:
        return [f"{exc.java or javadate.ILLEGAL}: {exc}"]
    return []


# name -> (function, parameter types, return type, NULL handled by the function itself).
_V, _B, _TS, _D = "VARCHAR", "BLOB", "TIMESTAMP", "DOUBLE"
# (Any: DuckDB's stubs type the functions and parameter lists narrower than these are.)
FUNCTIONS: dict[str, tuple[Any, Any, str, bool]] = {
    "rw_ip_key": (ip_key, [_V], _B, True),
    "rw_ip_canon": (ip_canon, [_V], _V, True),
    "rw_cidr": (cidr, [_V, "VARCHAR[]"], "BOOLEAN", True),
    "rw_cidr_errors": (cidr_errors, [_V, "VARCHAR[]"], "VARCHAR[]", True),
    "rw_cbrt": (cbrt, [_D], _D, False),
    "rw_url_decode": (url_decode, [_V], _V, True),
    "rw_from_base64": (from_base64, [_V], _V, True),
    "rw_java_text_errors": (java_text_errors, [_V, _V], "VARCHAR[]", True),
    "rw_version_key": (version_key, [_V], _B, True),
    "rw_parse_date": (parse_date, [_V], _TS, True),
    "rw_to_datetime": (to_datetime, [_V], _TS, True),
    "rw_double_text": (double_text, [_D], _V, False),
    "rw_hypot": (hypot, [_D, _D], _D, False),
    "rw_round_double": (round_double, [_D, "INTEGER"], _D, False),
    "rw_to_lower": (to_lower, [_V], _V, False),
    "rw_to_upper": (to_upper, [_V], _V, False),
    "rw_url_encode": (url_encode, [_V], _V, False),
    "rw_url_encode_component": (url_encode_component, [_V], _V, False),
    "rw_ip_prefix": (ip_prefix, [_V, "INTEGER", "INTEGER"], _V, True),
    # Not volatile, as DuckDB refuses volatile functions inside TRY(); see `failed` above.
    "rw_warn": (warn, ["BIGINT", "INTEGER", "VARCHAR[]", "BOOLEAN"], "BOOLEAN", True),
    "rw_hash": (java_hash, [_V, _V], _V, True),
    "rw_date_format": (date_format, [_V, _TS], _V, True),
    "rw_date_parse": (date_parse, [_V, _V], _TS, True),
    "rw_date_errors": (date_errors, [_V, _V, "BOOLEAN"], "VARCHAR[]", True),
    "rw_hash_errors": (hash_errors, [_V], "VARCHAR[]", True),
    "rw_extract": (extract_values, ["VARCHAR[]", _V], "VARCHAR[][]", True),
    "rw_conversion_errors": (conversion_errors, ["VARCHAR[]", _V, _V], "VARCHAR[]", True),
}
# How DuckDB names a function a statement calls that the connection does not have (yet).
_MISSING = re.compile(r"Scalar Function with name (rw_\w+) does not exist")


def register(con: duckdb.DuckDBPyConnection, names: Iterable[str] | None = None) -> None:
    """Make the rw_* helpers (all, or those named) callable from SQL on this connection. DuckDB
    loads numpy for its first Python function (~0.1 CPU s, as much as `import duckdb`): a
    connection that may do without registers them as statements ask (`missing_function`)."""
    for name in FUNCTIONS if names is None else names:
        fn, params, ret, special = FUNCTIONS[name]
        # "special" null handling: the function sees NULL inputs itself and may return NULL
        # for input it cannot read (DuckDB accepts NULL results only so).
        con.create_function(
            name,
            fn,
            params,
            ret,
            null_handling=SPECIAL if special else DEFAULT,
            side_effects=False,
        )


def missing_function(exc: duckdb.Error) -> str | None:
    """The rw_* helper a statement failed for because the connection lacks it, or None."""
    found = _MISSING.search(str(exc))
    return found.group(1) if found and found.group(1) in FUNCTIONS else None
