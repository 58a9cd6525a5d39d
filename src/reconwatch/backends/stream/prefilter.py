"""A leading WHERE's keyword equalities tested on the decoded event, before any row is built."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from reconwatch.esql.types import DataType as T
from reconwatch.plan import nodes as p

REJECT, PASS, UNKNOWN = 0, 1, 2
Verdict = Callable[[Mapping[str, object]], int]
_TEXTUAL = (T.KEYWORD,)


def leading_equalities(
    steps: tuple[p.Step, ...], fields: set[str]
) -> tuple[list[tuple[str, str]], tuple[p.Step, ...]]:
    """(field, constant) tests every leading WHERE requires, and the steps left to run when all
    of them hold. Only WHEREs before any EVAL/RENAME/MV_EXPAND count: their names are still the
    event's own fields. A WHERE made only of such tests is dropped from the remaining steps."""
    tests: list[tuple[str, str]] = []
    rest: list[p.Step] = []
    leading = True
    for step in steps:
        narrowing = isinstance(step, p.Project) and all(a == b for a, b in step.mapping)
        if leading and isinstance(step, p.Filter):
            found, complete = _conjuncts(step.condition, fields)
            tests.extend(found)
            if complete:
                continue
        elif not narrowing:
            leading = False
        rest.append(step)
    return tests, tuple(rest)


def _conjuncts(expr: p.Expr, fields: set[str]) -> tuple[list[tuple[str, str]], bool]:
    """The `field == "constant"` terms of an AND chain; True when there is nothing else."""
    if isinstance(expr, p.Call) and expr.fn == "and" and len(expr.args) == 2:
        left, lc = _conjuncts(expr.args[0], fields)
        right, rc = _conjuncts(expr.args[1], fields)
        return left + right, lc and rc
    test = _equality(expr, fields)
    return ([test], True) if test is not None else ([], False)


def _equality(expr: p.Expr, fields: set[str]) -> tuple[str, str] | None:
    if not (isinstance(expr, p.Call) and expr.fn == "eq" and len(expr.args) == 2):
        return None
    a, b = expr.args
    if isinstance(a, p.Const):
        a, b = b, a
    if not (isinstance(a, p.Ref) and isinstance(b, p.Const)):
        return None
    if a.type not in _TEXTUAL or a.name not in fields or not isinstance(b.value, str):
        return None
    return a.name, b.value


def compile_verdict(tests: list[tuple[str, str]]) -> Verdict:
    """REJECT when a test is certainly false or null (a missing field, a different single
    string), PASS when every test holds on a single string, UNKNOWN otherwise (a multivalue, a
    number that converts to a keyword): then the full WHERE decides, with its own semantics."""
    pairs = tuple(tests)

    def verdict(raw: Mapping[str, object]) -> int:
        result = PASS
        for name, const in pairs:
            value = raw.get(name)
            if type(value) is list:
                if not value:
                    return REJECT
                if len(value) == 1:
                    value = value[0]
            if value is None:
                return REJECT  # null == "x" is null, and a null conjunct never lets a row through
            if type(value) is str:
                if value != const:
                    return REJECT
            else:
                result = UNKNOWN
        return result

    return verdict
