"""KQL (Kibana Query Language) inside ES|QL's KQL(): a hand-written parser and its lowering to plan expressions."""

from __future__ import annotations

import contextlib
import fnmatch
import re
from collections.abc import Callable, Iterator, Mapping

from reconwatch.errors import (
    QueryError,
    QuerySemanticError,
    QuerySyntaxError,
    Span,
    UnsupportedFeatureError,
    span_at,
)
from reconwatch.plan import nodes as p
from reconwatch.plan import values
from reconwatch.records import record
from reconwatch.types import DataType as T

# Characters an unquoted KQL literal cannot hold unescaped (`*` is a wildcard instead).
_SPECIAL = frozenset('\\():<>"{}')
_KEYWORDS = ("or", "and", "not")
_WHITESPACE_ESCAPES = {"t": "\t", "n": "\n", "r": "\r"}
_RANGE_OPS = {">=": "gte", "<=": "lte", ">": "gt", "<": "lt"}
_STRINGS = frozenset({T.KEYWORD, T.TEXT})

# ---------------------------------------------------------------------------------------------
# Syntax tree. Offsets are into the KQL text; `chunks` is a value split at its wildcards, so a
# value has wildcards exactly when it has more than one chunk ("a*b" -> ("a", "b")).


@record
class Value:
    chunks: tuple[str, ...]
    quoted: bool
    start: int
    end: int

    @property
    def text(self) -> str:
        return "*".join(self.chunks)

    @property
    def has_wildcard(self) -> bool:
        return len(self.chunks) > 1


@record
class Bool:
    """`and` / `or` over two or more operands (KQL terms or, inside `field:(...)`, values)."""

    op: str
    items: tuple[Node, ...]


@record
class Not:
    operand: Node


@record
class FieldMatch:
    """`field: values`; `values` is a Value or a Bool/Not tree of Values; `field: *` is Exists."""

    field: Value
    values: Node


@record
class Exists:
    field: Value


@record
class Range:
    field: Value
    op: str  # gt gte lt lte
    value: Value


@record
class Nested:
    """`field: { query }` (nested documents)."""

    field: Value
    query: Node


@record
class FreeText:
    """Values without a field: a search over the index's default fields."""

    values: Node


Node = Value | Bool | Not | FieldMatch | Exists | Range | Nested | FreeText

# How deep a KQL string may nest, counting each `(`, `{` and NOT one level and a chain of n
# AND/OR terms log2(n) levels (it is lowered to a balanced tree); docs/esql.md, "Limits".
MAX_DEPTH = 50


def _too_deep(node: Node) -> bool:
    """Whether the lowered tree would nest deeper than MAX_DEPTH (iterative: any input)."""
    stack = [(node, 0)]
    while stack:
        current, depth = stack.pop()
        if depth > MAX_DEPTH:
            return True
        if isinstance(current, Bool):
            step = max(1, (len(current.items) - 1).bit_length())
            stack.extend((item, depth + step) for item in current.items)
        elif isinstance(current, Not):
            stack.append((current.operand, depth + 1))
        elif isinstance(current, FieldMatch | FreeText):
            stack.append((current.values, depth + 1))
        elif isinstance(current, Nested):
            stack.append((current.query, depth + 1))
    return False


# ---------------------------------------------------------------------------------------------
# Where the KQL text sits in the ES|QL query


@record
class Located:
    """A KQL string and, for each of its characters, the offset in the ES|QL source it came from."""

    text: str
    source: str = ""
    offsets: tuple[int, ...] = ()

    def span(self, start: int, end: int) -> Span | None:
        if not self.offsets:
            return None
        last = len(self.offsets) - 1
        begin = self.offsets[min(start, last)] + (1 if start > last else 0)
        finish = self.offsets[min(max(end - 1, start), last)] + 1
        return span_at(self.source, begin, max(finish, begin + 1))


def locate(raw: str, raw_start: int, source: str, value: str) -> Located:
    """The KQL text of an ES|QL string literal whose raw text (quotes included) starts at
    `raw_start`: each character mapped back through the literal's escapes."""
    if raw.startswith('"""'):
        offsets = tuple(raw_start + 3 + i for i in range(len(value)))
        return Located(value, source, offsets)
    out: list[int] = []
    i = 1
    while i < len(raw) - 1 and len(out) < len(value):
        out.append(raw_start + i)
        if raw[i] == "\\":
            i += 6 if raw[i + 1 : i + 2] == "u" else 2
        else:
            i += 1
    return Located(value, source, tuple(out))


# ---------------------------------------------------------------------------------------------
# Parser: recursive descent straight over the characters (or < and < not < primary).


class _Parser:
    def __init__(self, where: Located) -> None:
        self.where = where
        self.text = where.text
        self.pos = 0
        self.depth = 0  # groups and NOTs under way

    # -- errors and scanning ------------------------------------------------------------------

    def fail(self, message: str, start: int, end: int | None = None) -> QuerySyntaxError:
        span = self.where.span(start, end if end is not None else start + 1)
        return QuerySyntaxError(f"KQL: {message}", span, self.where.source or None)

    def skip_space(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def keyword_at(self, pos: int) -> str | None:
        """The keyword (`or`, `and`, `not`) starting at pos, delimited on both sides."""
        for word in _KEYWORDS:
            end = pos + len(word)
            if self.text[pos:end].lower() != word:
                continue
            before = self.text[pos - 1] if pos > 0 else " "
            after = self.text[end] if end < len(self.text) else " "
            if (before.isspace() or before in "()") and (after.isspace() or after in '("'):
                return word
        return None

    def accept_keyword(self, word: str) -> bool:
        self.skip_space()
        if self.keyword_at(self.pos) == word:
            self.pos += len(word)
            return True
        return False

    # -- boolean structure --------------------------------------------------------------------

    def parse(self) -> Node:
        self.skip_space()
        if self.pos == len(self.text):
            return Bool("and", ())  # an empty query matches every document, as in Kibana
        node = self.or_(self.primary)
        self.skip_space()
        if self.pos < len(self.text):
            raise self.fail(f"unexpected [{self.text[self.pos]}]", self.pos)
        if _too_deep(node):
            raise self.fail(f"query nested deeper than the limit of {MAX_DEPTH} levels", 0)
        return node

    def or_(self, leaf: Callable[[], Node]) -> Node:
        items = [self.and_(leaf)]
        while self.accept_keyword("or"):
            items.append(self.and_(leaf))
        return items[0] if len(items) == 1 else Bool("or", tuple(items))

    def and_(self, leaf: Callable[[], Node]) -> Node:
        items = [self.not_(leaf)]
        while self.accept_keyword("and"):
            items.append(self.not_(leaf))
        return items[0] if len(items) == 1 else Bool("and", tuple(items))

    def not_(self, leaf: Callable[[], Node]) -> Node:
        if self.accept_keyword("not"):
            with self.nested(self.pos - 3):
                return Not(self.not_(leaf))
        return leaf()

    @contextlib.contextmanager
    def nested(self, at: int) -> Iterator[None]:
        """One more level of recursion in this parser: refused past MAX_DEPTH, at `at`."""
        if self.depth >= MAX_DEPTH:
            raise self.fail(f"query nested deeper than the limit of {MAX_DEPTH} levels", at)
        self.depth += 1
        try:
            yield
        finally:
            self.depth -= 1

    def group(self, leaf: Callable[[], Node], close: str = ")") -> Node:
        open_at = self.pos
        self.pos += 1
        with self.nested(open_at):
            node = self.or_(leaf)
        self.skip_space()
        if self.peek() != close:
            raise self.fail(f"expected [{close}] to close [{self.text[open_at]}]", self.pos)
        self.pos += 1
        return node

    # -- terms --------------------------------------------------------------------------------

    def primary(self) -> Node:
        self.skip_space()
        if self.peek() == "(":
            return self.group(self.primary)
        first = self.literal("a field or a value")
        self.skip_space()
        ch = self.peek()
        if ch == ":":
            self.pos += 1
            return self.after_colon(first)
        if ch and ch in "<>":
            op = (
                self.text[self.pos : self.pos + 2]
                if self.text[self.pos + 1 : self.pos + 2] == "="
                else ch
            )
            self.pos += len(op)
            self.skip_space()
            value = self.literal("a value after [" + op + "]")
            if value.has_wildcard:
                raise self.fail("a range value cannot hold a wildcard", value.start, value.end)
            return Range(first, _RANGE_OPS[op], value)
        return FreeText(first)

    def after_colon(self, field: Value) -> Node:
        self.skip_space()
        ch = self.peek()
        if ch == "{":
            return Nested(field, self.group(self.primary, "}"))
        if ch == "(":
            return FieldMatch(field, self.group(self.value_term))
        value = self.literal("a value after [:]")
        if not value.quoted and value.chunks == ("", ""):
            return Exists(field)
        return FieldMatch(field, value)

    def value_term(self) -> Node:
        self.skip_space()
        if self.peek() == "(":
            return self.group(self.value_term)
        return self.literal("a value")

    def literal(self, what: str) -> Value:
        self.skip_space()
        start = self.pos
        if self.peek() == '"':
            return self.quoted()
        if self.pos >= len(self.text) or self.peek() in _SPECIAL - {"\\"}:
            found = f"[{self.peek()}]" if self.peek() else "the end of the query"
            raise self.fail(f"expected {what}, found {found}", start)
        if self.keyword_at(self.pos) is not None:
            word = self.text[start : start + 3].strip()
            raise self.fail(f"expected {what}, found keyword [{word}]", start, start + len(word))
        return self.unquoted(start)

    def quoted(self) -> Value:
        start = self.pos
        self.pos += 1
        out: list[str] = []
        while self.pos < len(self.text):
            ch = self.text[self.pos]
            if ch == '"':
                self.pos += 1
                return Value(("".join(out),), True, start, self.pos)
            if ch == "\\" and self.pos + 1 < len(self.text):
                nxt = self.text[self.pos + 1]
                if nxt in '\\"':
                    out.append(nxt)
                    self.pos += 2
                    continue
                if nxt in _WHITESPACE_ESCAPES:
                    out.append(_WHITESPACE_ESCAPES[nxt])
                    self.pos += 2
                    continue
            out.append(ch)
            self.pos += 1
        raise self.fail("unterminated quoted string", start, len(self.text))

    def unquoted(self, start: int) -> Value:
        chunks: list[str] = []
        current: list[str] = []
        end = start
        while self.pos < len(self.text):
            ch = self.text[self.pos]
            if ch.isspace():
                after = self.pos
                while after < len(self.text) and self.text[after].isspace():
                    after += 1
                if after == len(self.text) or self.keyword_at(after) is not None:
                    break
                current.append(self.text[self.pos : after])
                self.pos = after
                continue
            if ch == "\\":
                current.append(self.escape())
                end = self.pos
                continue
            if ch in _SPECIAL:
                break
            if ch == "*":
                chunks.append("".join(current))
                current = []
            else:
                current.append(ch)
            self.pos += 1
            end = self.pos
        chunks.append("".join(current).rstrip())
        self.pos = end
        return Value(tuple(chunks), False, start, end)

    def escape(self) -> str:
        at = self.pos
        rest = self.text[at + 1 :]
        if rest[:1] in _SPECIAL or rest[:1] == "*":
            self.pos += 2
            return rest[0]
        if rest[:1] in _WHITESPACE_ESCAPES:
            self.pos += 2
            return _WHITESPACE_ESCAPES[rest[0]]
        for word in _KEYWORDS:
            if rest[: len(word)].lower() == word:
                self.pos += 1 + len(word)
                return rest[: len(word)]
        raise self.fail(f"invalid escape [\\{rest[:1]}]", at, at + 2)


def parse(where: Located | str) -> Node:
    """The syntax tree of a KQL query; QuerySyntaxError positioned in the ES|QL text if located."""
    located = where if isinstance(where, Located) else Located(where)
    return _Parser(located).parse()


def unsupported_parts(node: Node, where: Located) -> list[QueryError]:
    """KQL constructs reconwatch refuses whatever the fields are (for the support report)."""
    found: list[QueryError] = []
    for item in walk(node):
        if isinstance(item, Nested):
            span = where.span(item.field.start, item.field.end)
            found.append(
                UnsupportedFeatureError(
                    "KQL nested query [field: {...}]", span, where.source or None
                )
            )
        elif isinstance(item, FreeText):
            first = _first_value(item.values)
            span = where.span(first.start, first.end)
            found.append(
                UnsupportedFeatureError("KQL value without a field", span, where.source or None)
            )
    return found


def walk(node: Node) -> list[Node]:
    """The node and every node under it, parents first."""
    if isinstance(node, Bool):
        return [node, *(n for item in node.items for n in walk(item))]
    if isinstance(node, Not):
        return [node, *walk(node.operand)]
    if isinstance(node, Nested):
        return [node, *walk(node.query)]
    return [node]


def _first_value(node: Node) -> Value:
    """The first value written in a term (where a refusal of the term points)."""
    if isinstance(node, Value):
        return node
    if isinstance(node, Not):
        return _first_value(node.operand)
    if isinstance(node, Bool):
        return _first_value(node.items[0])
    if isinstance(node, FieldMatch | FreeText):
        return _first_value(node.values)
    return node.field


# ---------------------------------------------------------------------------------------------
# Lowering to plan expressions. KQL is a Lucene query: a document matches or not, so every
# lowered term is true or false, never null, and a multivalued field matches when any of its
# values does. A field the catalog does not know matches nothing (Elasticsearch's rule for
# unmapped fields in queries), so `not unknown: x` is true.

_FALSE = p.Const(False, T.BOOLEAN)
_TRUE = p.Const(True, T.BOOLEAN)
_DATE_MATH = re.compile(r"now((?:[+-]\d+[yMwdhHms])*)(?:/([yMwdhHms]))?")
_DATE_STEP = re.compile(r"([+-])(\d+)([yMwdhHms])")
_DATE_UNITS: dict[str, p.TemporalAmount] = {
    "y": p.TemporalAmount(months=12),
    "M": p.TemporalAmount(months=1),
    "w": p.TemporalAmount(days=7),
    "d": p.TemporalAmount(days=1),
    "h": p.TemporalAmount(millis=3_600_000),
    "H": p.TemporalAmount(millis=3_600_000),
    "m": p.TemporalAmount(millis=60_000),
    "s": p.TemporalAmount(millis=1000),
}
# The comparison on the value that a multivalued field must have for some value to pass.
_RANGE_PICK = {"gt": "mv_max", "gte": "mv_max", "lt": "mv_min", "lte": "mv_min"}


def lower(node: Node, where: Located, columns: Mapping[str, p.Column], span: Span) -> p.Expr:
    """A boolean plan expression equal to the KQL query over rows with `columns`."""
    return _Lowering(where, columns, span).term(node)


class _Lowering:
    def __init__(self, where: Located, columns: Mapping[str, p.Column], span: Span) -> None:
        self.where = where
        self.columns = columns
        self.span = span

    def call(self, fn: str, *args: p.Expr, type_: T = T.BOOLEAN) -> p.Call:
        return p.Call(fn, args, type_, False, self.span)

    def at(self, value: Value) -> Span | None:
        return self.where.span(value.start, value.end)

    def semantic(self, message: str, value: Value) -> QuerySemanticError:
        return QuerySemanticError(f"KQL: {message}", self.at(value), self.where.source or None)

    def unsupported(self, feature: str, value: Value) -> UnsupportedFeatureError:
        return UnsupportedFeatureError(feature, self.at(value), self.where.source or None)

    def combine(self, op: str, items: list[p.Expr]) -> p.Expr:
        if not items:
            return _TRUE if op == "and" else _FALSE
        return p.balanced(op, items, self.span)  # thousands of terms nest log2(n) deep

    # -- terms --------------------------------------------------------------------------------

    def term(self, node: Node) -> p.Expr:
        if isinstance(node, Bool):
            return self.combine(node.op, [self.term(item) for item in node.items])
        if isinstance(node, Not):
            return self.call("not", self.term(node.operand))
        if isinstance(node, Exists):
            return self.combine("or", [self.exists(ref) for ref in self.fields(node.field)])
        if isinstance(node, FieldMatch):
            return self.per_field(node.field, lambda ref: self.values(ref, node.values))
        if isinstance(node, Range):
            return self.per_field(node.field, lambda ref: self.range(ref, node.op, node.value))
        for problem in unsupported_parts(node, self.where):
            raise problem
        raise AssertionError(node)

    def per_field(self, field: Value, test: Callable[[p.Ref], p.Expr]) -> p.Expr:
        """`test` on each field a name or pattern names, OR-ed. A pattern is lenient, as
        Elasticsearch's multi-field queries are: a field whose type cannot hold the value is
        skipped instead of failing the query."""
        tests: list[p.Expr] = []
        for ref in self.fields(field):
            if ref.type is T.NULL:
                continue  # a column of nulls (ROW x = null) holds no value to match
            try:
                tests.append(test(ref))
            except QuerySemanticError:
                if not field.has_wildcard:
                    raise
        return self.combine("or", tests)

    def fields(self, field: Value) -> list[p.Ref]:
        """The columns a field name (or pattern) names; none for an unknown field."""
        if field.has_wildcard:
            pattern = field.text.replace("[", "[[]").replace("?", "[?]")
            names = [n for n in self.columns if fnmatch.fnmatchcase(n, pattern)]
        else:
            names = [field.text] if field.text in self.columns else []
        refs: list[p.Ref] = []
        for name in names:
            col = self.columns[name]
            if col.type is T.UNSUPPORTED:
                raise self.unsupported(f"KQL on field [{name}] of an unsupported type", field)
            refs.append(p.Ref(name, col.type, col.multivalued, self.span))
        return refs

    def exists(self, ref: p.Ref) -> p.Expr:
        return self.call("is_not_null", ref)

    def values(self, ref: p.Ref, node: Node) -> p.Expr:
        if isinstance(node, Bool):
            return self.combine(node.op, [self.values(ref, item) for item in node.items])
        if isinstance(node, Not):
            return self.call("not", self.values(ref, node.operand))
        if not isinstance(node, Value):
            raise AssertionError(node)
        if not node.quoted and not any(node.chunks):
            return self.exists(ref)
        self.check_searchable(ref, node)
        if node.has_wildcard and not node.quoted:
            if ref.type not in _STRINGS:
                raise self.semantic(
                    f"wildcard value [{node.text}] on field [{ref.name}] of type [{ref.type.value}]",
                    node,
                )
            return self.call("mv_any_like", ref, p.Const(_like_pattern(node.chunks), T.KEYWORD))
        return self.call("mv_contains", ref, self.constant(ref, node))

    def range(self, ref: p.Ref, op: str, value: Value) -> p.Expr:
        self.check_searchable(ref, value)
        bound = self.constant(ref, value, op)
        picked = self.call(_RANGE_PICK[op], ref, type_=ref.type)
        return self.call("coalesce", self.call(op, picked, bound), _FALSE)

    def check_searchable(self, ref: p.Ref, value: Value) -> None:
        if ref.type is T.TEXT:
            raise self.unsupported(
                f"KQL on text field [{ref.name}] (Elasticsearch matches analysed terms)", value
            )

    # -- values -------------------------------------------------------------------------------

    def constant(self, ref: p.Ref, value: Value, op: str = "eq") -> p.Expr:
        """The value as a constant of the field's type (date math for dates)."""
        text = value.text
        target = ref.type
        if target in (T.DATETIME, T.DATE_NANOS) and _DATE_MATH.fullmatch(text.strip()):
            return self.date_math(text.strip(), op)
        if target is T.IP and "/" in text:
            raise self.unsupported(f"KQL CIDR block [{text}] on ip field [{ref.name}]", value)
        if target in (T.INTEGER, T.LONG, T.UNSIGNED_LONG) and not re.fullmatch(
            r"\s*[+-]?\d+\s*", text
        ):
            raise self.semantic(f"[{text}] is not a whole number for field [{ref.name}]", value)
        if target is T.BOOLEAN and text.strip().lower() not in ("true", "false"):
            raise self.semantic(f"[{text}] is not a boolean for field [{ref.name}]", value)
        try:
            converted = values.convert(text.strip() if target not in _STRINGS else text, target)
        except (values.ConversionError, ValueError) as exc:
            raise self.semantic(
                f"cannot read [{text}] as [{target.value}] for field [{ref.name}]: {exc}", value
            ) from None
        return p.Const(converted, target, self.span)

    def date_math(self, text: str, op: str) -> p.Expr:
        """`now`, `now-1d`, `now/d`: rounding down, except that `gt` and `lte` round up to the
        last millisecond of the unit, as Elasticsearch's range queries do."""
        m = _DATE_MATH.fullmatch(text)
        assert m is not None
        expr: p.Expr = self.call("now", type_=T.DATETIME)
        for sign, amount, unit in _DATE_STEP.findall(m.group(1)):
            step = _DATE_UNITS[unit]
            scaled = p.TemporalAmount(
                step.months * int(amount), step.days * int(amount), step.millis * int(amount)
            )
            fn = "add" if sign == "+" else "sub"
            expr = self.call(fn, expr, _amount(scaled), type_=T.DATETIME)
        rounding = m.group(2)
        if rounding:
            unit = _amount(_DATE_UNITS[rounding])
            expr = self.call("date_trunc", unit, expr, type_=T.DATETIME)
            if op in ("gt", "lte"):
                expr = self.call("add", expr, unit, type_=T.DATETIME)
                expr = self.call("sub", expr, _amount(p.TemporalAmount(millis=1)), type_=T.DATETIME)
        return expr


def _amount(amount: p.TemporalAmount) -> p.Const:
    kind = T.TIME_DURATION if amount.millis else T.DATE_PERIOD
    return p.Const(amount, kind)


def _like_pattern(chunks: tuple[str, ...]) -> str:
    """KQL value chunks (split at wildcards) as an ES|QL LIKE pattern."""
    escaped = (re.sub(r"([\\*?])", r"\\\1", chunk) for chunk in chunks)
    return "*".join(escaped)
