"""JSON events decoded into only the fields a plan reads, with msgspec Structs generated per plan."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import msgspec

from reconwatch.plan.documents import Flat, check_depth, flatten

_COUNTER = itertools.count()


class DecodeNode:
    """One object level: keys (possibly dotted) that lead to wanted leaves or deeper objects."""

    def __init__(
        self,
        prefix: str,
        suffixes: list[tuple[str, ...]],
        leaf: Any = Any,
        leaf_types: Mapping[str, Any] | None = None,
    ) -> None:
        self.leaf = leaf
        self.leaf_types = leaf_types or {}  # full path -> its leaf's type, else `leaf`
        self.leaves: dict[str, str] = {}  # key -> full path
        self.children: dict[str, DecodeNode] = {}
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
                full = f"{prefix}.{key}" if prefix else key
                self.children[key] = DecodeNode(full, rest, leaf, self.leaf_types)
        self.struct = self._define()
        self.reads: list[tuple[str, str | None, DecodeNode | None]] = [
            (attr, self.leaves.get(key), self.children.get(key)) for attr, key in self.attrs
        ]

    def _define(self) -> type[msgspec.Struct]:
        self.attrs: list[tuple[str, str]] = []
        fields: list[tuple[str, Any, Any]] = []
        for i, key in enumerate([*self.leaves, *self.children]):
            attr = f"f{i}"
            self.attrs.append((attr, key))
            kind: Any = (
                self.leaf_types.get(self.leaves[key], self.leaf)
                if key in self.leaves
                else self_or_none(self, key)
            )
            fields.append((attr, kind, None))
        # Decoded JSON cannot form reference cycles, so the Structs need not be GC-tracked.
        return msgspec.defstruct(
            f"Event{next(_COUNTER)}",
            fields,
            rename=dict(self.attrs),
            forbid_unknown_fields=False,
            gc=False,
        )

    def source(self, var: str, indent: str, env: dict[str, object], lines: list[str]) -> None:
        """Straight-line Python that reads this level of `var` into `out` (see compile_reader)."""
        for attr, path, child in self.reads:
            name = f"v{len(env)}"
            env[name] = None  # reserves the name
            lines.append(f"{indent}{name} = {var}.{attr}")
            lines.append(f"{indent}if {name} is not None:")
            if child is not None:
                child.source(name, indent + "    ", env, lines)
                continue
            const = f"p{len(env)}"
            env[const] = path
            lines.append(f"{indent}    if type({name}) is str and {const} not in out:")
            lines.append(f"{indent}        out[{const}] = [{name}]")
            lines.append(f"{indent}    else:")
            lines.append(f"{indent}        add_leaf(out, {const}, {name})")


def compile_reader(root: DecodeNode) -> Callable[[msgspec.Struct], Flat]:
    """One generated function per plan that walks the decoded Structs without loops: a generic
    walk costs several times the JSON decode itself. Field paths enter only as bound constants."""
    env: dict[str, object] = {}
    lines = ["def read(obj):", "    out = {}"]
    root.source("obj", "    ", env, lines)
    lines.append("    return out")
    scope: dict[str, object] = {k: val for k, val in env.items() if k.startswith("p")}
    scope["add_leaf"] = add_leaf
    # Safe to exec: identifiers are generated (v0, p1, f2); field paths are bound values.
    exec("\n".join(lines), scope)
    return scope["read"]  # type: ignore[return-value]


def add_leaf(out: Flat, path: str, value: object) -> None:
    """One decoded leaf (not None) added as flatten would: scalars, lists, objects below it."""
    if isinstance(value, list) and not any(isinstance(x, dict | list) for x in value):
        items = [x for x in value if x is not None]
        if items:
            out.setdefault(path, []).extend(items)
    elif isinstance(value, dict | list):
        for name, found in flatten({path: value}).items():
            out.setdefault(name, []).extend(found)
    else:
        out.setdefault(path, []).append(value)


def self_or_none(node: DecodeNode, key: str) -> Any:
    return node.children[key].struct | None


class PlanDecoder:
    """Decodes one JSON event to {dotted field: [values]} for `fields` only. Documents whose
    shape the generated types do not fit (an array of objects, a scalar where an object was
    expected) fall back to a full decode and flatten, so no value is ever lost."""

    def __init__(self, fields: Iterable[str]) -> None:
        wanted = sorted(set(fields))
        self.fields = wanted
        self.root = DecodeNode("", [tuple(f.split(".")) for f in wanted])
        self._typed = msgspec.json.Decoder(self.root.struct)
        self._generic = msgspec.json.Decoder()
        self.fallbacks = 0
        self._read = compile_reader(self.root)

    def decode(self, data: bytes | str) -> Flat:
        """Raises msgspec.DecodeError for text that is not a JSON object, TooDeepError for one
        nested deeper than the readers accept."""
        check_depth(data)
        try:
            obj = self._typed.decode(data)
        except msgspec.ValidationError:
            self.fallbacks += 1
            value = self._generic.decode(data)
            if not isinstance(value, dict):
                raise msgspec.DecodeError("not a JSON object") from None
            flat = flatten(value)
            return {k: flat[k] for k in self.fields if k in flat}
        return self._read(obj)


def decoder_for(fields: Iterable[str]) -> Callable[[bytes | str], Flat]:
    return PlanDecoder(fields).decode
