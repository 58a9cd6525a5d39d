"""`@record` behaves as `@dataclass(frozen=True, slots=True)`: the same class, defined side by side."""

from __future__ import annotations

import copy
import dataclasses
import pickle
from dataclasses import dataclass, field

import pytest

from reconwatch.errors import Span
from reconwatch.esql import ast
from reconwatch.plan import nodes
from reconwatch.records import record

NAN = float("nan")


@record
class Rec:
    """A record with every kind of field the project uses."""

    name: str
    value: object
    items: tuple[int, ...] = ()
    tags: list[str] = field(default_factory=list)
    note: str = field(default="", compare=False)
    span: Span = field(default=Span(0, 0, 0, 0), compare=False, repr=False)

    def described(self) -> str:
        return f"{self.name}: {self.value}"


@dataclass(frozen=True, slots=True)
class Ref:
    """The same class as a standard dataclass."""

    name: str
    value: object
    items: tuple[int, ...] = ()
    tags: list[str] = field(default_factory=list)
    note: str = field(default="", compare=False)
    span: Span = field(default=Span(0, 0, 0, 0), compare=False, repr=False)

    def described(self) -> str:
        return f"{self.name}: {self.value}"


@record
class Empty:
    """No fields at all."""


ARGS = [
    (("a", 1), {}),
    (("a", 1, (1, 2)), {"note": "n"}),
    (("a",), {"value": NAN}),
    (("b", [1, "x"]), {"tags": ["t"], "span": Span(1, 2, 3, 4)}),
    ((), {"name": "c", "value": None, "items": (3,)}),
]


def _both(args: tuple[object, ...], kwargs: dict[str, object]) -> tuple[Rec, Ref]:
    return Rec(*args, **kwargs), Ref(*args, **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(("args", "kwargs"), ARGS)
def test_a_record_is_the_dataclass(args: tuple[object, ...], kwargs: dict[str, object]) -> None:
    got, want = _both(args, kwargs)
    assert repr(got) == repr(want).replace("Ref(", "Rec(")
    assert dataclasses.is_dataclass(got)
    assert [(f.name, f.default, f.compare, f.repr, f.init) for f in dataclasses.fields(got)] == [
        (f.name, f.default, f.compare, f.repr, f.init) for f in dataclasses.fields(want)
    ]
    assert dataclasses.asdict(got) == dataclasses.asdict(want) or NAN in args + tuple(
        kwargs.values()
    )
    assert Rec.__match_args__ == Ref.__match_args__
    assert Rec.__slots__ == Ref.__slots__
    assert got.described() == want.described()
    same, other = _both(args, kwargs)
    assert (got == same) == (want == other)  # the same value object: NaN compares equal
    assert got == dataclasses.replace(got, note="other", span=Span(9, 9, 9, 9))
    assert got != dataclasses.replace(got, name="zz")
    assert got != want and want != got
    with pytest.raises(TypeError, match="unhashable type: 'list'"):
        hash(got)  # a list field, as for the dataclass
    with pytest.raises(TypeError, match="unhashable type: 'list'"):
        hash(want)
    assert pickle.loads(pickle.dumps(got)) == got or got.value is NAN
    assert repr(copy.deepcopy(got)) == repr(got)
    assert copy.copy(got) == got


def test_a_record_refuses_what_the_dataclass_refuses() -> None:
    got, want = _both(("a", 1), {})
    for obj in (got, want):
        with pytest.raises(dataclasses.FrozenInstanceError, match="cannot assign to field 'name'"):
            obj.name = "b"  # type: ignore[misc]
        with pytest.raises(dataclasses.FrozenInstanceError, match="cannot delete field 'value'"):
            del obj.value  # type: ignore[misc]
    for cls in (Rec, Ref):
        with pytest.raises(TypeError):
            cls("a")  # type: ignore[call-arg]
        with pytest.raises(TypeError):
            cls("a", 1, name="b")  # type: ignore[misc]
        with pytest.raises(TypeError):
            cls("a", 1, other=2)  # type: ignore[call-arg]
    assert Rec("a", 1).tags is not Rec("a", 1).tags  # a fresh default each time
    for obj in (Rec("a", 1, (2,), ()), Ref("a", 1, (2,), ())):  # type: ignore[arg-type]
        assert hash(obj) == hash(("a", 1, (2,), ()))
        assert hash(obj) == hash(dataclasses.replace(obj, note="x"))
    assert Empty() == Empty() and hash(Empty()) == hash(()) and repr(Empty()) == "Empty()"


def test_the_nodes_are_records() -> None:
    lit = ast.Literal("integer", 1, Span(0, 1, 1, 1))
    assert lit == ast.Literal("integer", 1) and hash(lit) == hash(ast.Literal("integer", 1))
    assert repr(lit) == "Literal(kind='integer', value=1)"
    amount = nodes.TemporalAmount(days=1)
    assert amount == nodes.TemporalAmount(0, 1, 0) and repr(amount).startswith("TemporalAmount(")
    assert pickle.loads(pickle.dumps(lit)) == lit
    assert {lit: 1}[ast.Literal("integer", 1)] == 1


def test_an_undocumented_record_is_documented_by_its_signature() -> None:
    @record
    class Bare:
        a: int
        b: str = "x"

    @dataclass(frozen=True, slots=True)
    class Std:
        a: int
        b: str = "x"

    assert Bare.__doc__ == Std.__doc__.replace("Std", "Bare")  # type: ignore[union-attr]
