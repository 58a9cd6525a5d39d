"""Comparing a query Result with a csv-spec expected table: header, typed cells, row order, warnings."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from datetime import UTC, datetime

from reconwatch.conformance.specfile import HeaderColumn, SpecCase
from reconwatch.plan.catalog import Result
from reconwatch.plan.nodes import Column
from reconwatch.plan.values import (
    ConversionError,
    canonical_ip,
    parse_datetime,
    to_text,
    to_utc_millis_precision,
)
from reconwatch.types import DataType

# Elasticsearch sums doubles with Kahan compensation, in its own order; another summation order
# changes the last digits. 1e-9 relative is far below any real computation error we could make.
DOUBLE_REL_TOL = 1e-9
ANY = "{any}"
MAX_DIFF_LINES = 8

_INTEGRAL = (DataType.INTEGER, DataType.LONG, DataType.UNSIGNED_LONG)
_DATES = (DataType.DATETIME, DataType.DATE_NANOS)


class ExpectedValueError(ValueError):
    """An expected cell that cannot be read as its column's type."""


# ---------------------------------------------------------------------------------------------
# Expected cells


def _split_multi(text: str) -> list[str]:
    """Items of `[a, "b,c", ""]`: split on commas outside double quotes (`\\,` is a literal comma),
    each item trimmed and unquoted."""
    items: list[str] = []
    current: list[str] = []
    quoted = False
    body = text[1:-1]
    i = 0
    while i < len(body):
        ch = body[i]
        if ch == "\\" and i + 1 < len(body) and body[i + 1] == ",":
            current.append(",")
            i += 2
            continue
        if ch == '"':
            quoted = not quoted
        if ch == "," and not quoted:
            items.append(unquote("".join(current).strip()))
            current = []
        else:
            current.append(ch)
        i += 1
    items.append(unquote("".join(current).strip()))
    return items


def unquote(text: str) -> str:
    """A value written in double quotes (`"two"`, `"33,F"`, `""`) is the text between them."""
    if len(text) >= 2 and text.startswith('"') and text.endswith('"'):
        return text[1:-1]
    return text


def _is_multi(text: str) -> bool:
    """Brackets holding a comma outside quotes make a multivalue (as in Elastic's reader)."""
    if not (text.startswith("[") and text.endswith("]")):
        return False
    quoted = False
    for ch in text[1:-1]:
        if ch == '"':
            quoted = not quoted
        elif ch == "," and not quoted:
            return True
    return False


def parse_single(text: str, type_: DataType) -> object:
    """One expected value of a type; ExpectedValueError if it is not one."""
    try:
        if type_ in _INTEGRAL:
            return int(text)
        if type_ is DataType.DOUBLE:
            return float(text)
        if type_ is DataType.BOOLEAN:
            lowered = text.lower()
            if lowered not in ("true", "false"):
                raise ExpectedValueError(f"[{text}] is not a boolean")
            return lowered == "true"
        if type_ in _DATES:
            return parse_datetime(text)
        if type_ is DataType.IP:
            return canonical_ip(text)
    except (ValueError, ConversionError) as exc:
        raise ExpectedValueError(f"[{text}] is not a {type_.value}: {exc}") from None
    return text


def parse_expected(text: str, type_: DataType) -> object:
    """An expected cell as a plan value: None for `null`, a list for `[a, b]` (the same rule as
    Elastic's: brackets with a comma make a multivalue), else a single value; double quotes
    around a value or an item are not part of it."""
    if text.lower() == "null":
        return None
    if _is_multi(text):
        return [parse_single(item, type_) for item in _split_multi(text)]
    if (
        type_ not in (DataType.KEYWORD, DataType.TEXT)
        and text.startswith("[")
        and text.endswith("]")
    ):
        return parse_single(unquote(text[1:-1].strip()), type_)
    return parse_single(unquote(text.replace("\\,", ",")), type_)


# ---------------------------------------------------------------------------------------------
# Rendering (for diffs) and matching


def render(value: object) -> str:
    """A value as csv-spec prints it."""
    if value is None:
        return "null"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(render(v) for v in value) + "]"
    # Scalars print exactly as TO_STRING renders them (the type only matters for parsing).
    return to_text(value, DataType.KEYWORD)


def _single_matches(actual: object, expected: object, type_: DataType) -> bool:
    if isinstance(expected, bool) or isinstance(actual, bool):
        return isinstance(actual, bool) and isinstance(expected, bool) and actual is expected
    if type_ is DataType.DOUBLE and isinstance(expected, float):
        if not isinstance(actual, int | float):
            return False
        if math.isnan(expected) or math.isnan(actual):
            return math.isnan(expected) and math.isnan(actual)
        return math.isclose(actual, expected, rel_tol=DOUBLE_REL_TOL, abs_tol=0.0)
    if isinstance(expected, datetime):
        if not isinstance(actual, datetime):
            return False
        naive = actual.tzinfo is None
        return to_utc_millis_precision(actual.replace(tzinfo=UTC) if naive else actual) == expected
    if type_ is DataType.IP and isinstance(actual, str) and isinstance(expected, str):
        try:
            return canonical_ip(actual) == expected
        except ConversionError:
            return False
    return type(actual) is type(expected) and actual == expected


def cell_matches(actual: object, expected_text: str, type_: DataType | None) -> bool:
    """Whether an actual value is the expected cell (`{any}` matches anything)."""
    if expected_text == ANY:
        return True
    if type_ is None:
        return render(actual) == expected_text
    try:
        expected = parse_expected(expected_text, type_)
    except ExpectedValueError:
        return False
    if isinstance(actual, tuple):
        actual = list(actual)
    if isinstance(expected, list) or isinstance(actual, list):
        if not (isinstance(expected, list) and isinstance(actual, list)):
            return False
        return len(actual) == len(expected) and all(
            _single_matches(a, e, type_) for a, e in zip(actual, expected, strict=True)
        )
    if expected is None or actual is None:
        return expected is None and actual is None
    return _single_matches(actual, expected, type_)


def row_matches(
    actual: Sequence[object], expected: Sequence[str], columns: Sequence[HeaderColumn]
) -> bool:
    return all(
        cell_matches(a, e, c.type) for a, e, c in zip(actual, expected, columns, strict=True)
    )


# ---------------------------------------------------------------------------------------------
# Whole results


def _header_text(columns: Sequence[HeaderColumn | Column]) -> str:
    parts = []
    for c in columns:
        t = c.type_text if isinstance(c, HeaderColumn) else c.type.value
        parts.append(f"{c.name}:{t}")
    return " | ".join(parts)


def _type_matches(expected: HeaderColumn, actual: Column) -> bool:
    return expected.type is None or expected.type is actual.type


def compare_header(case: SpecCase, result: Result) -> list[str]:
    names_ok = [c.name for c in case.columns] == [c.name for c in result.columns]
    types_ok = names_ok and all(
        _type_matches(e, a) for e, a in zip(case.columns, result.columns, strict=True)
    )
    if types_ok:
        return []
    return [
        f"header: expected {_header_text(case.columns)}",
        f"           got {_header_text(result.columns)}",
    ]


def _row_text(row: Sequence[object]) -> str:
    return " | ".join(render(v) for v in row)


def _ordered_diff(case: SpecCase, rows: list[tuple[object, ...]]) -> list[str]:
    out: list[str] = []
    for i, (actual, expected) in enumerate(zip(rows, case.rows, strict=False), start=1):
        if not row_matches(actual, expected, case.columns):
            out.append(f"row {i}: expected {' | '.join(expected)}")
            out.append(f"{' ' * len(str(i))}        got {_row_text(actual)}")
    if len(rows) != len(case.rows):
        out.insert(0, f"expected {len(case.rows)} rows, got {len(rows)}")
        for extra in rows[len(case.rows) :][:3]:
            out.append(f"unexpected: {_row_text(extra)}")
        for missing in case.rows[len(rows) :][:3]:
            out.append(f"missing: {' | '.join(missing)}")
    return out


def _unordered_diff(case: SpecCase, rows: list[tuple[object, ...]]) -> list[str]:
    """Match every expected row to a distinct actual row (greedily; rows are small tables)."""
    unmatched = list(range(len(rows)))
    missing: list[tuple[str, ...]] = []
    for expected in case.rows:
        hit = next((j for j in unmatched if row_matches(rows[j], expected, case.columns)), None)
        if hit is None:
            missing.append(expected)
        else:
            unmatched.remove(hit)
    out: list[str] = []
    if missing or unmatched:
        out.append(f"expected {len(case.rows)} rows, got {len(rows)} (any order)")
    out += [f"missing: {' | '.join(m)}" for m in missing[:4]]
    out += [f"unexpected: {_row_text(rows[j])}" for j in unmatched[:4]]
    return out


def as_header(warning: str) -> str:
    """A warning as Elasticsearch's HTTP Warning header carries it, and so as the specs write it:
    backslashes and double quotes escaped (`evaluation of [cidr_match(ip1, \\"::1\\")]`)."""
    return warning.replace("\\", "\\\\").replace('"', '\\"')


def percent_encoded(header: str) -> str:
    """The header text with `%`, control and non-ASCII characters percent-encoded as UTF-8 bytes,
    as Elasticsearch sends a Warning header (specs copied from it write `%25{a}` for `%{a}`)."""
    out: list[str] = []
    for ch in header:
        if ch == "%" or (ch < " " and ch != "\t") or ch > "~":
            out.extend(f"%{b:02X}" for b in ch.encode("utf-8"))
        else:
            out.append(ch)
    return "".join(out)


def _forms(warning: str) -> tuple[str, ...]:
    """The texts a spec may write for one warning: as the header carries it (percent-encoded) and
    decoded (most specs write plain text)."""
    header = as_header(warning)
    encoded = percent_encoded(header)
    return (header,) if encoded == header else (header, encoded)


def _exact_warning(expected: str, actual: str) -> bool:
    """A `warning:` line matches its text exactly; failing that, as a whole-text regex, because
    some specs write regexes there (null.csv-spec: `warning:Line \\d+:\\d+: evaluation of ...`)."""
    if expected == actual:
        return True
    try:
        return re.fullmatch(expected, actual) is not None
    except re.error:
        return False


def compare_warnings(case: SpecCase, actual: Sequence[str]) -> list[str]:
    """Exact warnings must all appear; each regex must match some warning (searched, as the
    specs' regexes omit the `Line L:C:` prefix); every actual warning must be expected."""
    warnings = [_forms(w) for w in actual]
    out: list[str] = []
    for w in case.warnings:
        if not any(_exact_warning(w, f) for forms in warnings for f in forms):
            out.append(f"missing warning: {w}")
    patterns: list[re.Pattern[str]] = []
    for text in case.warning_regexes:
        try:
            patterns.append(re.compile(text))
        except re.error as exc:
            out.append(f"unreadable warningRegex {text!r}: {exc}")
    for r in patterns:
        if not any(r.search(f) for forms in warnings for f in forms):
            out.append(f"missing warning matching: {r.pattern}")
    for forms in warnings:
        exact = any(_exact_warning(e, f) for e in case.warnings for f in forms)
        if not exact and not any(r.search(f) for r in patterns for f in forms):
            out.append(f"unexpected warning: {forms[0]}")
    return out


def compare(case: SpecCase, result: Result) -> list[str]:
    """Differences between a result and the case's expectation, as short lines ([] if equal)."""
    out = compare_header(case, result)
    if not out:
        rows = [tuple(r) for r in result.rows]
        out = _unordered_diff(case, rows) if case.ignore_order else _ordered_diff(case, rows)
    out += compare_warnings(case, result.warnings)
    if len(out) > MAX_DIFF_LINES:
        out = [*out[:MAX_DIFF_LINES], f"... {len(out) - MAX_DIFF_LINES} more"]
    return out
