"""JSON events decoded into only the fields a plan reads, with msgspec Structs generated per plan."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable
from typing import Any

import msgspec
from msgspec.structs import astuple

from reconwatch.ingest.flatten import flatten

Flat = dict[str, list[object]]
_COUNTER = itertools.count()


class _Node:
    """One object level: keys (possibly dotted) that lead to wanted leaves or deeper objects."""

    def __init__(self, prefix: str, suffixes: list[tuple[str, ...]]) -> None:
        self.leaves: dict[str, str] = {}  # key -> full path
        self.children: dict[str, _Node] = {}
        by_key: dict[str, list[tuple[str, ...]]] = {}
        for suffix in suffixes:
            for j in range(1, len(suffix) + 1):
                key = ".".join(suffix[:j])
                full = f"{prefix}.{key}" if prefix else key
                if j == len(suffix):
                    self.leaves[key] = full
                else:
                    by_key.setdefault(key, []).append(suffix[j:])
        for key, rest in by_key.items():
            if key not in self.leaves:  # a key that is also a leaf is taken whole and flattened
                self.children[key] = _Node(f"{prefix}.{key}" if prefix else key, rest)
        self.struct = self._define()
        self.reads: list[tuple[str, str | None, _Node | None]] = [
            (attr, self.leaves.get(key), self.children.get(key)) for attr, key in self.attrs
        ]

    def _define(self) -> type[msgspec.Struct]:
        self.attrs: list[tuple[str, str]] = []
        fields: list[tuple[str, Any, Any]] = []
        for i, key in enumerate([*self.leaves, *self.children]):
            attr = f"f{i}"
            self.attrs.append((attr, key))
            kind: Any = Any if key in self.leaves else self_or_none(self, key)
            fields.append((attr, kind, None))
        return msgspec.defstruct(
            f"Event{next(_COUNTER)}", fields, rename=dict(self.attrs), forbid_unknown_fields=False
        )

    def collect(self, obj: msgspec.Struct, out: Flat) -> None:
        # astuple reads every field in one C call, in the order of `reads`.
        for (_attr, path, child), value in zip(self.reads, astuple(obj), strict=True):
            if value is None:
                continue
            kind = type(value)
            if kind is str or kind is int or kind is float or kind is bool:
                assert path is not None
                got = out.get(path)
                if got is None:
                    out[path] = [value]
                else:
                    got.append(value)
            elif child is not None:
                child.collect(value, out)
            elif kind is list and not any(isinstance(x, dict | list) for x in value):
                assert path is not None  # a list of scalars: what flatten would give, cheaper
                items = [x for x in value if x is not None]
                if items:
                    out.setdefault(path, []).extend(items)
            else:
                assert path is not None
                for name, found in flatten({path: value}).items():
                    out.setdefault(name, []).extend(found)


def self_or_none(node: _Node, key: str) -> Any:
    return node.children[key].struct | None


class PlanDecoder:
    """Decodes one JSON event to {dotted field: [values]} for `fields` only. Documents whose
    shape the generated types do not fit (an array of objects, a scalar where an object was
    expected) fall back to a full decode and flatten, so no value is ever lost."""

    def __init__(self, fields: Iterable[str]) -> None:
        wanted = sorted(set(fields))
        self.fields = wanted
        self.root = _Node("", [tuple(f.split(".")) for f in wanted])
        self._typed = msgspec.json.Decoder(self.root.struct)
        self._generic = msgspec.json.Decoder()
        self.fallbacks = 0

    def decode(self, data: bytes | str) -> Flat:
        """Raises msgspec.DecodeError for text that is not a JSON object."""
        try:
            obj = self._typed.decode(data)
        except msgspec.ValidationError:
            self.fallbacks += 1
            value = self._generic.decode(data)
            if not isinstance(value, dict):
                raise msgspec.DecodeError("not a JSON object") from None
            flat = flatten(value)
            return {k: flat[k] for k in self.fields if k in flat}
        out: Flat = {}
        self.root.collect(obj, out)
        return out


def decoder_for(fields: Iterable[str]) -> Callable[[bytes | str], Flat]:
    return PlanDecoder(fields).decode
