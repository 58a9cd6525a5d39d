"""Types of the compiled line scan (_scan.c)."""

from collections.abc import Callable, Sequence
from typing import Any

class Scanner:
    def __init__(
        self,
        tree: tuple[tuple[str, int, Any], ...],
        nvars: int,
        time_vars: Sequence[int],
        equalities: Sequence[tuple[int, str]],
        route_vars: Sequence[int],
        cell_vars: Sequence[int],
        interned: Sequence[int],
        int_times: bool = False,
    ) -> None: ...
    def scan(
        self,
        lines: Sequence[bytes | str],
        P: dict[Any, Any],
        B: dict[Any, Any],
        T: list[Any],
        route: Callable[..., Any],
    ) -> int: ...
    def scan_lines(
        self,
        buf: bytes,
        starts: bytes,
        first: int,
        count: int,
        P: dict[Any, Any],
        B: dict[Any, Any],
        T: list[Any],
        route: Callable[..., Any],
    ) -> int: ...
    def clear(self) -> None: ...

def line_starts(buf: bytes, end: int) -> bytes: ...
def block_bytes(buf: bytes, end: int) -> int: ...
