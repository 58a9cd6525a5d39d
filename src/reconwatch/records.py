"""`@record`: a frozen, slotted dataclass defined at a fraction of `@dataclass(frozen=True, slots=True)`'s cost."""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable
from operator import attrgetter
from typing import Any, TypeVar, dataclass_transform

_T = TypeVar("_T")


@dataclasses.dataclass(frozen=True, slots=True)
class _Frozen:
    """What `@dataclass(frozen=True, slots=True)` records of a class (its __dataclass_params__),
    claimed by every record so that dataclasses treats records and their subclasses alike."""


@dataclass_transform(frozen_default=True, field_specifiers=(dataclasses.field, dataclasses.Field))
def record(cls: type[_T]) -> type[_T]:
    """The class as `@dataclass(frozen=True, slots=True)` makes it: the same fields (so
    `dataclasses.fields`, `replace`, `asdict` and `is_dataclass` work), `__init__`, equality and
    hashing over the compared fields, `repr` of the shown ones, assignment refused, pickling.
    Why: @dataclass compiles six methods from source for each frozen class (~0.5 ms), and the
    AST and plan nodes alone are 53 classes every command defines at start-up. Here the fields
    come from @dataclass without methods, `__init__` (the hot one) is compiled from source as
    @dataclass does, and the other methods are shared functions over the field names."""
    # @dataclass documents an undocumented class by its signature, which here would be
    # object's: a builtin's, parsed from text (~4 ms the first time). Documented below instead.
    undocumented = not cls.__doc__
    if undocumented:
        cls.__doc__ = "-"
    new: Any = dataclasses.dataclass(init=False, repr=False, eq=False, slots=True)(cls)
    fields = dataclasses.fields(new)
    names = tuple(f.name for f in fields)
    compared = tuple(f.name for f in fields if f.compare)
    shown = tuple(f.name for f in fields if f.repr)
    hashed = tuple(f.name for f in fields if (f.compare if f.hash is None else f.hash))
    own = vars(new)
    methods: dict[str, object] = {
        "__init__": _init(new, fields),
        "__repr__": _repr(shown),
        "__eq__": _eq(_key(compared)),
        "__setattr__": _refuse_set,
        "__delattr__": _refuse_delete,
        "__getstate__": _getstate(names),
        "__setstate__": _setstate(names),
    }
    for name, method in methods.items():
        if name not in own or name in ("__setattr__", "__delattr__"):
            if callable(method) and hasattr(method, "__qualname__"):
                method.__qualname__ = f"{new.__qualname__}.{name}"
            setattr(new, name, method)
    if "__hash__" not in own or own["__hash__"] is None:
        new.__hash__ = _hash(_key(hashed))
    new.__dataclass_params__ = _Frozen.__dataclass_params__  # type: ignore[attr-defined]
    if undocumented:
        new.__doc__ = new.__name__ + str(inspect.signature(new)).replace(" -> None", "")
    return new  # type: ignore[no-any-return]


def _init(cls: type, fields: tuple[dataclasses.Field[Any], ...]) -> Callable[..., None]:
    # The same code @dataclass compiles for a frozen class: one exec per class.
    env: dict[str, object] = {"__set": object.__setattr__, "__none": dataclasses.MISSING}
    params, body = [], []
    for f in fields:
        if not f.init:
            if f.default is not dataclasses.MISSING:
                env[f"__d_{f.name}"] = f.default
                body.append(f"__set(self, {f.name!r}, __d_{f.name})")
            elif f.default_factory is not dataclasses.MISSING:
                env[f"__f_{f.name}"] = f.default_factory
                body.append(f"__set(self, {f.name!r}, __f_{f.name}())")
            continue
        if f.default is not dataclasses.MISSING:
            env[f"__d_{f.name}"] = f.default
            params.append(f"{f.name}=__d_{f.name}")
        elif f.default_factory is not dataclasses.MISSING:
            env[f"__f_{f.name}"] = f.default_factory
            params.append(f"{f.name}=__none")
            body.append(f"if {f.name} is __none: {f.name} = __f_{f.name}()")
        else:
            params.append(f.name)
        body.append(f"__set(self, {f.name!r}, {f.name})")
    if hasattr(cls, "__post_init__"):
        body.append("self.__post_init__()")
    source = "def __init__(self, {}) -> None:\n    {}\n".format(
        ", ".join(params), "\n    ".join(body or ["pass"])
    )
    exec(source, env)
    init = env["__init__"]
    assert callable(init)
    init.__annotations__ = {f.name: f.type for f in fields if f.init} | {"return": None}
    return init


def _key(names: tuple[str, ...]) -> Callable[[object], tuple[object, ...]]:
    """The tuple @dataclass compares and hashes (a tuple even of one field: its comparison
    takes identical items as equal, which a float NaN needs)."""
    if not names:
        return lambda _self: ()
    if len(names) == 1:
        get = attrgetter(names[0])
        return lambda self: (get(self),)
    return attrgetter(*names)


def _eq(key: Callable[[object], tuple[object, ...]]) -> Callable[[object, object], object]:
    def __eq__(self: object, other: object) -> object:
        if other.__class__ is self.__class__:
            return key(self) == key(other)
        return NotImplemented

    return __eq__


def _hash(key: Callable[[object], tuple[object, ...]]) -> Callable[[object], int]:
    def __hash__(self: object) -> int:
        return hash(key(self))

    return __hash__


def _repr(names: tuple[str, ...]) -> Callable[[object], str]:
    def __repr__(self: object) -> str:
        shown = ", ".join(f"{name}={getattr(self, name)!r}" for name in names)
        return f"{self.__class__.__qualname__}({shown})"

    return __repr__


def _refuse_set(self: object, name: str, value: object) -> None:
    raise dataclasses.FrozenInstanceError(f"cannot assign to field {name!r}")


def _refuse_delete(self: object, name: str) -> None:
    raise dataclasses.FrozenInstanceError(f"cannot delete field {name!r}")


def _getstate(names: tuple[str, ...]) -> Callable[[object], list[object]]:
    def __getstate__(self: object) -> list[object]:
        return [getattr(self, name) for name in names]

    return __getstate__


def _setstate(names: tuple[str, ...]) -> Callable[[object, list[object]], None]:
    def __setstate__(self: object, state: list[object]) -> None:
        for name, value in zip(names, state, strict=False):
            object.__setattr__(self, name, value)

    return __setstate__
