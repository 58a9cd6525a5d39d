"""Elasticsearch's `filter_path` query parameter: the response keeps only the fields it names."""

from __future__ import annotations

import functools
import re
from typing import Any

# What a filter leaves of a value that none of its paths reach (the value is left out).
_NOTHING: Any = object()


@functools.lru_cache(maxsize=64)
def compile_filter(spec: str) -> tuple[tuple[tuple[str, ...], ...], tuple[tuple[str, ...], ...]]:
    """(include paths, exclude paths) of a filter_path value: comma-separated dotted paths,
    `*` within a name matching any characters, `**` any number of levels, `-` excluding."""
    include: list[tuple[str, ...]] = []
    exclude: list[tuple[str, ...]] = []
    for raw in spec.split(","):
        path = raw.strip()
        if not path:
            continue
        target = exclude if path.startswith("-") else include
        target.append(tuple(path.lstrip("-").split(".")))
    return tuple(include), tuple(exclude)


def apply(doc: dict[str, Any], spec: str) -> dict[str, Any]:
    """`doc` as Elasticsearch answers with `filter_path=spec`: objects and array elements that
    no include path reaches are left out (the whole answer, then, is `{}`), and the fields an
    exclude path reaches are removed."""
    include, exclude = compile_filter(spec)
    out: Any = doc
    if include:
        out = _keep(doc, _paths(include))
    if exclude and out is not _NOTHING:
        out = _drop(out, exclude)
    return out if isinstance(out, dict) else {}


@functools.lru_cache(maxsize=256)
def _name(pattern: str) -> re.Pattern[str] | None:
    """A name pattern with `*` as a regular expression (None: a plain name)."""
    if "*" not in pattern:
        return None
    return re.compile(".*".join(re.escape(part) for part in pattern.split("*")), re.S)


def _matches(pattern: str, key: str) -> bool:
    regex = _name(pattern)
    return key == pattern if regex is None else regex.fullmatch(key) is not None


@functools.lru_cache(maxsize=4096)
def _step(paths: tuple[tuple[str, ...], ...], key: str) -> tuple[bool, tuple[tuple[str, ...], ...]]:
    """Whether one of `paths` ends at `key` (its whole value kept), and the paths its value is
    filtered by otherwise."""
    whole = False
    inner: list[tuple[str, ...]] = []
    for path in paths:
        head, rest = path[0], path[1:]
        if head == "**":
            inner.append(path)  # more levels
            if rest:
                ends, deeper = _step((rest,), key)  # no level
                whole = whole or ends
                inner.extend(deeper)
            else:
                whole = True
        elif _matches(head, key):
            if rest:
                inner.append(rest)
            else:
                whole = True
    return whole, tuple(inner)


class _Paths:
    """Paths still to match below some object; one instance per distinct set (`_paths`), so
    the caches below look it up by identity instead of hashing the paths every time."""

    __slots__ = ("paths",)

    def __init__(self, paths: tuple[tuple[str, ...], ...]) -> None:
        self.paths = paths


@functools.lru_cache(maxsize=1024)
def _paths(paths: tuple[tuple[str, ...], ...]) -> _Paths:
    return _Paths(paths)


def _keep(value: Any, paths: _Paths) -> Any:
    if isinstance(value, list):
        kept = [v for v in (_keep(item, paths) for item in value) if v is not _NOTHING]
        return kept if kept else _NOTHING
    if not isinstance(value, dict):
        return _NOTHING
    out: dict[str, Any] = {}
    # Decided once per set of keys: a bulk answer's thousands of items share a few.
    for key, whole, inner in _plan(paths, tuple(value)):
        child = value[key]
        if whole:
            out[key] = child
        else:
            kept = _keep(child, inner)
            if kept is not _NOTHING:
                out[key] = kept
    return out if out else _NOTHING


@functools.lru_cache(maxsize=4096)
def _plan(paths: _Paths, keys: tuple[str, ...]) -> tuple[tuple[str, bool, _Paths], ...]:
    """The keys of an object some path reaches: (key, kept whole, the paths below it)."""
    out = []
    for key in keys:
        whole, inner = _step(paths.paths, key)
        if whole or inner:
            out.append((key, whole, _paths(inner)))
    return tuple(out)


def _drop(value: Any, paths: tuple[tuple[str, ...], ...]) -> Any:
    if isinstance(value, list):
        return [_drop(item, paths) for item in value]
    if not isinstance(value, dict):
        return value
    out: dict[str, Any] = {}
    for key, child in value.items():
        whole, inner = _step(paths, key)
        if not whole:
            out[key] = _drop(child, inner) if inner else child
    return out
