"""Cheap tests before the general ones: a leading WHERE on the decoded event, count thresholds on a group."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from reconwatch.plan import nodes as p
from reconwatch.types import DataType as T

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
    test = equality(expr, fields)
    return ([test], True) if test is not None else ([], False)


def equality(expr: p.Expr, fields: set[str]) -> tuple[str, str] | None:
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


_COMPARE: dict[str, Callable[[int, int], bool]] = {
    "eq": lambda a, b: a == b,
    "neq": lambda a, b: a != b,
    "gt": lambda a, b: a > b,
    "gte": lambda a, b: a >= b,
    "lt": lambda a, b: a < b,
    "lte": lambda a, b: a <= b,
}
_MIRROR = {"eq": "eq", "neq": "neq", "gt": "lt", "gte": "lte", "lt": "gt", "lte": "gte"}


def count_thresholds(
    post: tuple[p.Step, ...], counts: dict[str, int]
) -> list[tuple[int, Callable[[int, int], bool], int]]:
    """(aggregate index, comparison, integer) terms of the leading post-STATS WHEREs on count or
    count_distinct columns (`counts`: name -> index). Those columns are never null, so a false
    term means the group does not match, without running the general threshold."""
    return [(index, _COMPARE[op], bound) for index, op, bound in count_terms(post, counts)]


def count_terms(post: tuple[p.Step, ...], counts: dict[str, int]) -> list[tuple[int, str, int]]:
    """The terms of `count_thresholds` with the comparison by name (eq, gt, lte, ...)."""
    found: list[tuple[int, str, int]] = []
    for step in post:
        if not isinstance(step, p.Filter):
            break
        for term in _and_terms(step.condition):
            test = _count_term(term, counts)
            if test is not None:
                found.append(test)
    return found


# |factor| bound for linear terms: a count held in memory stays below 2**32, so no product
# reaches the long range (where ES|QL would answer null with a warning).
_MAX_FACTOR = 2**31
Linear = tuple[int, int, int, int, Callable[[int, int], bool]]


def linear_count_terms(post: tuple[p.Step, ...], counts: dict[str, int]) -> list[Linear]:
    """(index a, factor a, index b, factor b, comparison) for the leading post-STATS WHEREs'
    terms comparing two count columns, each optionally times an integer constant
    (`slots * 4 < ips * 5`). Counts are never null and the products stay in the long range,
    so a false term means the group does not match, as for `count_thresholds`."""
    found: list[Linear] = []
    for step in post:
        if not isinstance(step, p.Filter):
            break
        for term in _and_terms(step.condition):
            if not (isinstance(term, p.Call) and term.fn in _COMPARE and len(term.args) == 2):
                continue
            left, right = (_scaled_count(a, counts) for a in term.args)
            if left is not None and right is not None:
                found.append((*left, *right, _COMPARE[term.fn]))
    return found


def _scaled_count(expr: p.Expr, counts: dict[str, int]) -> tuple[int, int] | None:
    """(count index, factor) for `count`, `count * k` or `k * count` with an integer k."""
    if isinstance(expr, p.Ref):
        index = counts.get(expr.name)
        return None if index is None else (index, 1)
    if not (isinstance(expr, p.Call) and expr.fn == "mul" and len(expr.args) == 2):
        return None
    a, b = expr.args
    if isinstance(a, p.Const):
        a, b = b, a
    if not (isinstance(a, p.Ref) and isinstance(b, p.Const) and type(b.value) is int):
        return None
    index = counts.get(a.name)
    if index is None or abs(b.value) > _MAX_FACTOR:
        return None
    return index, b.value


def only_count_terms(post: tuple[p.Step, ...], counts: dict[str, int]) -> bool:
    """Whether a group matches exactly when every count term holds: the post-STATS steps are
    WHEREs made only of such terms, then steps that keep every row (EVAL, KEEP, SORT, LIMIT;
    a group is judged before SORT and LIMIT)."""
    leading = True
    terms = 0
    for step in post:
        if isinstance(step, p.Filter) and leading:
            for term in _and_terms(step.condition):
                if _count_term(term, counts) is None:
                    return False
                terms += 1
        elif isinstance(step, p.Eval | p.Project | p.Sort | p.Limit):
            leading = False
        else:
            return False
    return terms > 0


def always_true(op: str, low: int, high: int, bound: int) -> bool:
    """Whether `value op bound` holds for every value in [low, high]."""
    if op == "gt":
        return low > bound
    if op == "gte":
        return low >= bound
    if op == "lt":
        return high < bound
    if op == "lte":
        return high <= bound
    if op == "eq":
        return low == high == bound
    return high < bound or low > bound  # neq


def never_true(op: str, low: int, high: int, bound: int) -> bool:
    """Whether `value op bound` is false for every value in [low, high]."""
    if op == "gt":
        return high <= bound
    if op == "gte":
        return high < bound
    if op == "lt":
        return low >= bound
    if op == "lte":
        return low > bound
    if op == "eq":
        return high < bound or low > bound
    return low == high == bound  # neq


def _and_terms(expr: p.Expr) -> list[p.Expr]:
    if isinstance(expr, p.Call) and expr.fn == "and" and len(expr.args) == 2:
        return _and_terms(expr.args[0]) + _and_terms(expr.args[1])
    return [expr]


def _count_term(expr: p.Expr, counts: dict[str, int]) -> tuple[int, str, int] | None:
    if not (isinstance(expr, p.Call) and expr.fn in _COMPARE and len(expr.args) == 2):
        return None
    a, b = expr.args
    fn = expr.fn
    if isinstance(a, p.Const):
        a, b, fn = b, a, _MIRROR[fn]
    if not (isinstance(a, p.Ref) and isinstance(b, p.Const) and type(b.value) is int):
        return None
    index = counts.get(a.name)
    return None if index is None else (index, fn, b.value)
