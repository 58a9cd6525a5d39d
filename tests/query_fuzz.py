"""Fuzz checks for the ES|QL text and JSON event readers: shared by bench/fuzz_query.py (the
million-input campaign) and tests/unit/test_query_fuzz.py (a short run in CI).

Each check returns the outcome's name when the input was accepted or cleanly rejected and raises
anything else: an exception escaping a check is a crash.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from hypothesis import strategies as st

from reconwatch.backends.stream.executor import StreamExecutor
from reconwatch.errors import QueryError
from reconwatch.esql.analyze import analyze, compile_query
from reconwatch.esql.parser import parse
from reconwatch.esql.render import render
from reconwatch.ingest import Dataset
from reconwatch.ingest.read import _decode_json
from reconwatch.plan.catalog import StaticCatalog
from reconwatch.plan.documents import JSON_ERRORS, check_depth, flatten
from reconwatch.rules.builtin import builtin_rules

NOW = datetime(2025, 7, 16, 10, tzinfo=UTC)
_DATA = Path(__file__).resolve().parents[1] / "src" / "reconwatch" / "data" / "sample"

# -- the query parser and analyser ------------------------------------------------------------

_WORDS = [
    "from", "row", "where", "eval", "stats", "by", "keep", "drop", "rename", "as", "sort", "limit",
    "mv_expand", "dissect", "grok", "inline", "enrich", "set", "|", ",", "(", ")", "[", "]", "{",
    "}", '"s"', '"""t"""', "`q`", "1", "2.5", "x", "a.b", "and", "or", "not", "in", "like", "is",
    "null", "==", "=", "-", "+", "*", "/", "%", "::", ":", "?", "?p", "desc", "nulls", "metadata",
    "hour", "\n", ";", ".", "`", '"', "=~", "count(*)", "lookup join", "kql(", "case(", "abs(",
    "to_ip(", "concat(", "repeat(", "date_trunc(", "now()", "9223372036854775807",
    "18446744073709551616", "1e308", "rlike", '"[a-"', '"*\\\\"', "@timestamp", "destination.ip",
]  # fmt: skip

_RULES = [rule.query for rule in builtin_rules() if not rule.native]
# Pieces the mutation engine splices in (bench/fuzz_query.py).
TOKENS = [*_WORDS, '{"a":', "[", "]", "}", '"', "\\u0000", "1e999", "-0", "null", "true"]


@st.composite
def _mutated_rule(draw: st.DrawFn) -> str:
    """A shipped rule's query with a few pieces cut, repeated or replaced."""
    text = draw(st.sampled_from(_RULES))
    for _ in range(draw(st.integers(1, 4))):
        if not text:
            break
        start = draw(st.integers(0, len(text)))
        end = draw(st.integers(start, min(len(text), start + 40)))
        what = draw(st.sampled_from(["cut", "repeat", "word", "char"]))
        if what == "cut":
            text = text[:start] + text[end:]
        elif what == "repeat":
            text = text[:end] + text[start:end] * draw(st.integers(1, 3)) + text[end:]
        elif what == "word":
            text = text[:start] + " " + draw(st.sampled_from(_WORDS)) + " " + text[end:]
        else:
            text = text[:start] + draw(st.characters()) + text[start:]
    return text


QUERIES = st.one_of(
    st.lists(st.sampled_from(_WORDS), max_size=24).map(" ".join),
    st.lists(st.sampled_from(_WORDS), max_size=24).map(lambda w: "ROW x = 1 | " + " ".join(w)),
    _mutated_rule(),
    st.text(max_size=80),
)

_CATALOG: Dataset | None = None


def catalog() -> Dataset:
    global _CATALOG
    if _CATALOG is None:
        _CATALOG = Dataset.from_files([_DATA / "defend-network-sample.ndjson.gz"])
    return _CATALOG


def check_query(text: str) -> str:
    """Parse, render and analyse: a query is valid, or a QueryError names where it went wrong."""
    try:
        query = parse(text)
    except QueryError as exc:
        _check_position(exc, text)
        return "syntax error"
    again = parse(render(query))
    if again != query:
        msg = f"render does not round-trip: {render(query)!r}"
        raise AssertionError(msg)
    try:
        analyze(query, catalog() if query.commands and not _is_row(text) else StaticCatalog({}))
    except QueryError as exc:
        _check_position(exc, text)
        return "rejected"
    return "accepted"


def _is_row(text: str) -> bool:
    return text.lstrip().lower().startswith("row")


def _check_position(exc: QueryError, text: str) -> None:
    if exc.span is None:
        return
    lines = text.split("\n")
    if not (1 <= exc.span.line <= len(lines) + 1 and exc.span.col >= 1):
        msg = f"error position {exc.span} outside the query: {exc.one_line()}"
        raise AssertionError(msg)
    if "cannot parse query" in exc.message:
        msg = f"a parser bug surfaced as an error: {exc.one_line()}"
        raise AssertionError(msg)


# -- the JSON event readers ------------------------------------------------------------------

_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False),
    st.text(max_size=12),
    st.sampled_from(["10.0.0.1", "::1", "2025-07-16T09:30:00Z", "1752658200000", "/usr/bin/nmap"]),
)
_KEYS = st.sampled_from(
    ["@timestamp", "event", "action", "destination", "ip", "port", "host", "name", "a.b", ""]
)
_VALUES = st.recursive(
    _SCALARS,
    lambda sub: st.one_of(st.lists(sub, max_size=4), st.dictionaries(_KEYS, sub, max_size=4)),
    max_leaves=12,
)


@st.composite
def _json_line(draw: st.DrawFn) -> bytes:
    """A JSON text, often an event-like object, then maybe damaged."""
    doc = draw(st.dictionaries(_KEYS, _VALUES, max_size=6))
    data = json.dumps(doc).encode()  # Infinity and NaN too: not JSON, a bad line
    how = draw(st.sampled_from(["as is", "cut", "byte", "deep", "splice"]))
    if how == "cut" and data:
        data = data[: draw(st.integers(0, len(data) - 1))]
    elif how == "byte" and data:
        at = draw(st.integers(0, len(data) - 1))
        data = data[:at] + bytes([draw(st.integers(0, 255))]) + data[at + 1 :]
    elif how == "deep":
        depth = draw(st.integers(1, 1200))
        data = b'{"a":' * depth + b"1" + b"}" * depth
    elif how == "splice":
        data = data + draw(st.binary(max_size=8))
    return data


JSON_LINES = st.one_of(_json_line(), st.binary(max_size=64))


def check_json_line(line: bytes) -> str:
    """The validating reader's path for one line: depth check, decode, flatten."""
    try:
        check_depth(line)
        value = _decode_json(line)
    except JSON_ERRORS:
        return "bad line"
    if not isinstance(value, dict):
        return "not an object"
    flatten(value)
    return "event"


_STREAM: StreamExecutor | None = None


def stream() -> StreamExecutor:
    global _STREAM
    if _STREAM is None:
        text = next(r.query for r in builtin_rules() if "count_distinct" in r.query)
        _STREAM = StreamExecutor(compile_query(text, catalog()))
    return _STREAM


def check_stream_lines(lines: list[bytes]) -> str:
    """`reconwatch watch`'s path for a micro-batch: each line an event or a listed bad line."""
    errors: list[tuple[int, str]] = []
    stream().push_lines(lines, errors)
    for index, _reason in errors:
        if not 0 <= index < len(lines):
            msg = f"bad-line index {index} outside the batch"
            raise AssertionError(msg)
    return "batch with bad lines" if errors else "batch"
