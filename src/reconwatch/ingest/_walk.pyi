"""Types of the compiled sample walk (_walk.c)."""

def walk(
    doc: dict[str, object], arrays: set[str], odd: set[str], /
) -> dict[str, list[object]] | None: ...
