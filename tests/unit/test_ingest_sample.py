"""The field sample's one-walk reading (flatten, array paths, checks) gives what the separate passes gave, bad values included."""

from __future__ import annotations

import collections
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reconwatch.ecs.schema import ECS_FIELDS
from reconwatch.ingest import Dataset, dataset
from reconwatch.ingest.dataset import _fits_text, _misfit, flatten_noting_arrays
from reconwatch.plan.documents import Flat, flatten
from reconwatch.types import DataType as T

# Keys that build ECS fields of every checked kind (ip, long, date, keyword, boolean) and some
# outside ECS, nested or dotted.
KEYS = st.sampled_from(
    [
        "destination",
        "ip",
        "port",
        "destination.ip",
        "source.port",
        "@timestamp",
        "event",
        "created",
        "type",
        "action",
        "host",
        "name",
        "process",
        "pid",
        "network",
        "transport",
        "x",
        "",
    ]
)
TEXTS = st.one_of(
    st.sampled_from(
        [
            "10.0.0.1",
            "255.255.255.255",
            "256.1.1.1",
            "01.2.3.4",
            "::1",
            "::ffff:10.0.0.2",
            "2024-01-01T00:00:00Z",
            "2024-02-30T00:00:00.123Z",
            "2024-01-01T24:00:00Z",
            "2024-01-01T23:59:60Z",
            "0000-01-01T00:00:00Z",
            "2024-01-01T00:00:00.123456789Z",
            "2024-01-01T00:00:00+01:00",
            "1704067200000",
            "\u0662024-01-01T00:00:00Z",
            "80",
            "x",
            "",
        ]
    ),
    st.text(max_size=8),
)
LEAVES = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), TEXTS)
DOCS = st.recursive(
    LEAVES,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(KEYS, inner, max_size=4)),
    max_leaves=12,
)


def array_paths(value: object, prefix: str, out: set[str]) -> None:
    """The dotted paths holding a JSON array, as the sample found them in a separate walk."""
    if isinstance(value, dict):
        for key, item in value.items():
            array_paths(item, f"{prefix}.{key}" if prefix else str(key), out)
    elif isinstance(value, list):
        out.add(prefix)
        for item in value:
            array_paths(item, prefix, out)


def reference_check(flat: Flat) -> str | None:
    """Every leaf of every ECS field converted, in order: the first misfit named."""
    for name, vals in flat.items():
        type_ = ECS_FIELDS.get(name)
        if type_ is None:
            continue
        for v in vals:
            problem = _misfit(v, type_)
            if problem is not None:
                return f"field [{name}] of type [{type_.value}]: {problem}"
    return None


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(KEYS, DOCS, max_size=5))
def test_one_walk_matches_the_separate_passes(doc: dict[str, Any]) -> None:
    arrays: set[str] = set()
    odd: set[str] = set()
    flat = flatten_noting_arrays(doc, arrays, odd)
    assert flat == flatten(doc)
    assert list(flat) == list(flatten(doc))
    expected: set[str] = set()
    array_paths(doc, "", expected)
    assert arrays == expected
    assert odd == {n for n, vals in flat.items() if any(type(v) is not str for v in vals)}
    ds = Dataset.from_documents([])
    want = reference_check(flat)
    assert ds._check(flat) == want
    assert ds._check_sampled(flat, odd) == want
    assert ds._check_sampled(flat, odd) == want  # again, from the memo


@settings(max_examples=150, deadline=None)
@given(TEXTS, st.sampled_from([T.IP, T.DATETIME, T.DATE_NANOS, T.KEYWORD, T.LONG, T.BOOLEAN]))
def test_the_quick_yes_is_never_wrong(text: str, type_: T) -> None:
    if _fits_text(text, type_):
        assert _misfit(text, type_) is None


def test_the_quick_yes_takes_the_common_spellings() -> None:
    assert _fits_text("10.1.2.3", T.IP)
    assert _fits_text("2025-07-15T00:00:00.351Z", T.DATETIME)
    assert not _fits_text("2024-02-30T00:00:00Z", T.DATETIME)
    assert _misfit("2024-02-30T00:00:00Z", T.DATETIME) is not None
    assert _fits_text("fd00:20::80", T.IP) and _fits_text("::1", T.IP)
    for text in ("::ffff:10.0.0.1", "fe80::1%eth0", " ::1", "1::2::3", "12345::1"):
        assert not _fits_text(text, T.IP)  # left to convert_leaf
    assert _misfit("::ffff:10.0.0.1", T.IP) is None


HEX_GROUPS = st.lists(
    st.one_of(st.just(""), st.text("0123456789abcdefABCDEF", min_size=1, max_size=5)),
    min_size=1,
    max_size=10,
)


@settings(max_examples=400, deadline=None)
@given(HEX_GROUPS)
def test_the_quick_ipv6_yes_is_never_wrong(groups: list[str]) -> None:
    text = ":".join(groups)
    if _fits_text(text, T.IP):
        assert _misfit(text, T.IP) is None


INT_TYPES = [T.INTEGER, T.LONG, T.UNSIGNED_LONG]
EDGES = [
    bound + step
    for bound in (0, -(2**31), 2**31 - 1, -(2**63), 2**63 - 1, 2**64 - 1)
    for step in (-1, 0, 1)
]


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.integers(),
            st.sampled_from(EDGES),
            st.booleans(),
            st.floats(allow_nan=False, allow_infinity=False),
            TEXTS,
        ),
        min_size=1,
        max_size=3,
    ),
    st.sampled_from(INT_TYPES),
)
def test_the_integer_quick_yes_decides_as_convert_leaf(vals: list[Any], type_: T) -> None:
    """A JSON integer within the type's range is taken without convert_leaf: the first misfit
    (and so the rejection message) is still the one converting every leaf in order finds."""
    expected = next((p for v in vals if (p := _misfit(v, type_)) is not None), None)
    assert Dataset([])._misfits(vals, type_) == expected


def test_the_integer_quick_yes_stops_at_the_bounds() -> None:
    dataset = Dataset([])
    for edge in EDGES:
        for type_ in INT_TYPES:
            assert (dataset._misfits([edge], type_) is None) == (_misfit(edge, type_) is None)
    assert dataset._misfits([2**63], T.LONG) is not None
    assert dataset._misfits([-1], T.UNSIGNED_LONG) is not None
    assert dataset._misfits([2**63 - 1], T.LONG) is None


class _Text(str):
    """A str subclass: not a plain JSON value, so the compiled walk hands the event back."""


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(KEYS, DOCS, max_size=6))
def test_the_compiled_walk_is_the_python_walk(doc: dict[str, Any]) -> None:
    both = []
    for compiled in (True, False):
        arrays: set[str] = set()
        odd: set[str] = set()
        flat = flatten_noting_arrays(doc, arrays, odd, compiled=compiled)
        both.append((list(flat.items()), arrays, odd))
    assert both[0] == both[1]


def test_the_compiled_walk_hands_back_what_json_does_not_hold() -> None:
    if dataset._compiled is None:
        pytest.skip("the compiled walk (_walk.c) was not built")
    assert dataset._compiled({"a": {"b": [1, None, {"c": "x"}]}}, set(), set()) is not None
    deep: dict[str, object] = {"a": 1}
    for _ in range(310):  # 620 levels: deeper than the compiled walk goes (600)
        deep = {"k": [deep]}
    for doc in (
        {"a": _Text("x")},
        {"a": {1: "x"}},
        {"a": [b"x"]},
        {"a": (1, 2)},
        {"a": collections.OrderedDict(b=1)},
        deep,
    ):
        assert dataset._compiled(doc, set(), set()) is None  # type: ignore[arg-type]
        arrays: set[str] = set()
        odd: set[str] = set()
        arrays_py: set[str] = set()
        odd_py: set[str] = set()
        flat = flatten_noting_arrays(doc, arrays, odd)  # type: ignore[arg-type]
        assert flat == flatten_noting_arrays(doc, arrays_py, odd_py, compiled=False)  # type: ignore[arg-type]
        assert (arrays, odd) == (arrays_py, odd_py)


# A field of each kind the compiled quick yes knows, and one it does not.
QUICK_FIELDS = {
    "source.ip": T.IP,
    "@timestamp": T.DATETIME,
    "source.port": T.LONG,
    "process.pid": T.LONG,
}
DAYS = [
    f"{y:04d}-{m:02d}-{d:02d}"
    for y in (1899, 1900, 1970, 2000, 2023, 2024, 2100, 2199, 2200)
    for m in (0, 1, 2, 12, 13)
    for d in (0, 1, 28, 29, 30, 31, 32)
]


def _quick_yes(value: object, name: str) -> bool:
    if dataset._doubtful is None:
        pytest.skip("the compiled quick yes (_walk.c) was not built")
    return not dataset._doubtful({name: [value]}, dataset._QUICK_KINDS)


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        TEXTS,
        st.sampled_from(DAYS).map(lambda d: d + "T00:00:00Z"),
        st.sampled_from(DAYS).map(lambda d: d + "T23:59:59.123456789Z"),
        st.integers(),
        st.sampled_from(EDGES),
        st.booleans(),
        st.floats(allow_nan=False),
    ),
    st.sampled_from(sorted(QUICK_FIELDS)),
)
def test_the_compiled_quick_yes_is_never_wrong(value: object, name: str) -> None:
    assert ECS_FIELDS[name] is QUICK_FIELDS[name]
    if _quick_yes(value, name):
        assert _misfit(value, QUICK_FIELDS[name]) is None


def test_the_compiled_quick_yes_takes_the_common_leaves() -> None:
    for value, name in [
        ("10.20.10.122", "source.ip"),
        ("fd00:20::80", "source.ip"),
        ("2025-07-15T00:00:00.145Z", "@timestamp"),
        ("2024-02-29T23:59:59Z", "@timestamp"),
        (38689, "source.port"),
    ]:
        assert _quick_yes(value, name), value
    for value, name in [
        ("01.2.3.4", "source.ip"),
        ("::ffff:1.2.3.4", "source.ip"),
        ("2023-02-29T00:00:00Z", "@timestamp"),
        ("2024-01-01T24:00:00Z", "@timestamp"),
        ("2024-01-01T00:00:00+00:00", "@timestamp"),
        (2**63, "source.port"),
        (True, "source.port"),
        ("80", "source.port"),
    ]:
        assert not _quick_yes(value, name), value


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(KEYS, DOCS, max_size=5))
def test_the_compiled_checks_are_the_python_checks(doc: dict[str, Any]) -> None:
    odd: set[str] = set()
    flat = flatten_noting_arrays(doc, set(), odd)
    ds = Dataset.from_documents([])
    slow = Dataset.from_documents([])
    slow._compiled_checks = False
    assert ds._check_sampled(flat, odd) == slow._check_sampled(flat, odd)


def test_the_compiled_walk_keeps_its_paths_bounded() -> None:
    if dataset._compiled is None:
        pytest.skip("the compiled walk (_walk.c) was not built")
    for i in range(60_000):  # past the 50,000 paths it keeps: it starts again, right
        assert dataset._compiled({"a": {str(i): i}}, set(), set()) == {f"a.{i}": [i]}
