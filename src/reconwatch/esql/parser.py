"""ES|QL parser: recursive descent over commands, precedence climbing over expressions."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import TypeVar

from reconwatch.errors import QueryError, QuerySyntaxError, Span, UnsupportedFeatureError
from reconwatch.esql import ast
from reconwatch.esql.lexer import Lexer, Mode, Token

# Time-span unit spellings (esql-time-spans.md, "Supported temporal units").
TIME_UNITS: dict[str, ast.TimeUnit] = {}
for _unit, _spellings in (
    ("year", ("year", "y", "yr", "years")),
    ("quarter", ("quarter", "q", "quarters")),
    ("month", ("month", "mo", "months")),
    ("week", ("week", "w", "weeks")),
    ("day", ("day", "d", "days")),
    ("hour", ("hour", "h", "hours")),
    ("minute", ("minute", "m", "min", "minutes")),
    ("second", ("second", "s", "sec", "seconds")),
    ("millisecond", ("millisecond", "ms", "milliseconds")),
    ("nanosecond", ("nanosecond", "ns", "nanoseconds")),
):
    for _spelling in _spellings:
        TIME_UNITS[_spelling] = _unit  # type: ignore[assignment]

SOURCE_COMMANDS = ("from", "row")
PROCESSING_COMMANDS = (
    "where", "eval", "keep", "drop", "rename", "stats", "inline", "inlinestats", "sort", "limit",
    "mv_expand", "dissect", "grok",
)  # fmt: skip

# Real ES|QL commands that reconwatch parses only far enough to refuse them by name.
UNSUPPORTED_SOURCE = frozenset({"show", "meta", "ts", "metrics", "explain", "promql"})
UNSUPPORTED_PROCESSING = frozenset(
    {
        "enrich", "lookup", "join", "left", "right", "full", "completion", "fork", "change_point",
        "sample", "rerank", "fuse", "uri_parts", "registered_domain", "insist", "rrf", "mmr",
        "metrics_info", "ts_info", "dedup", "subquery", "sort_by",
    }
)  # fmt: skip

# Binding powers: OR < AND < NOT < predicates < + - < * / % < unary < ::
BP_OR, BP_AND, BP_NOT, BP_PRED, BP_ADD, BP_MUL, BP_UNARY, BP_CAST = 1, 2, 3, 4, 5, 6, 7, 8
COMPARISONS = frozenset({"==", "!=", "<", "<=", ">", ">=", "=~"})

# How deep one expression may nest (docs/esql.md, "Limits"). Every stage after the parser
# (analyser, renderer, executors) walks expressions recursively; this bound keeps each walk far
# from Python's recursion limit. A chain of AND or OR counts log2(terms) levels (it is evaluated
# as a balanced tree), so rules with thousands of OR-ed terms stay well inside it.
MAX_EXPRESSION_DEPTH = 100

N = TypeVar("N")


def parse(text: str) -> ast.Query:
    """Parse one ES|QL query; any problem is a QuerySyntaxError positioned at the bad token."""
    parser = _Parser(text)
    query = _guarded(parser, parser.query)
    for command in query.commands:
        for expr in ast.command_expressions(command):
            check_depth(expr, text)
    return query


def parse_expression(text: str) -> ast.Expr:
    """Parse a lone expression (used by tests and tools)."""
    parser = _Parser(text)

    def whole() -> ast.Expr:
        expr = parser.expression()
        parser.expect_end("end of expression")
        return expr

    expr = _guarded(parser, whole)
    check_depth(expr, text)
    return expr


def check_depth(expr: ast.Expr, source: str) -> None:
    """Refuse an expression nested deeper than MAX_EXPRESSION_DEPTH, at the first node too deep."""
    stack = [(expr, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_EXPRESSION_DEPTH:
            msg = f"expression nested deeper than the limit of {MAX_EXPRESSION_DEPTH} levels"
            raise QuerySyntaxError(msg, node.span, source)
        step = 1
        if isinstance(node, ast.And | ast.Or):
            step = max(1, (len(node.operands) - 1).bit_length())
        stack.extend((child, depth + step) for child in ast.children(node))


def _guarded(parser: _Parser, run: Callable[[], N]) -> N:
    try:
        return run()
    except QueryError:
        raise
    except RecursionError:
        span = parser.lexer.span(parser.pos, parser.pos)
        raise QuerySyntaxError("query is nested too deeply", span, parser.source) from None
    except Exception as exc:  # a parser bug must still surface as a positioned user error
        span = parser.lexer.span(parser.pos, parser.pos)
        raise QuerySyntaxError(f"cannot parse query: {exc}", span, parser.source) from exc


def _with_span(node: N, span: Span) -> N:
    return dataclasses.replace(node, span=span)  # type: ignore[type-var]


class _Parser:
    def __init__(self, source: str) -> None:
        self.source = source
        self.lexer = Lexer(source)
        self.pos = 0  # offset just after the last consumed token
        self.prev_end = 0
        self.depth = 0  # expression() calls under way

    # -- token plumbing ------------------------------------------------------------------------

    def peek(self, mode: Mode = "expr") -> Token:
        return self.lexer.token(self.pos, mode)

    def peek2(self) -> Token:
        return self.lexer.token(self.peek().span.end)

    def advance(self, mode: Mode = "expr") -> Token:
        tok = self.peek(mode)
        self.pos = tok.span.end
        self.prev_end = tok.span.end
        return tok

    def reset(self, pos: int, prev_end: int) -> None:
        self.pos, self.prev_end = pos, prev_end

    def span_from(self, start: Span) -> Span:
        return Span(start.start, self.prev_end, start.line, start.col)

    def error(self, tok: Token, expecting: str) -> QuerySyntaxError:
        return QuerySyntaxError(
            f"mismatched input {tok.describe()} expecting {expecting}", tok.span, self.source
        )

    def accept_op(self, op: str) -> Token | None:
        tok = self.peek()
        if tok.is_op(op):
            return self.advance()
        return None

    def expect_op(self, op: str) -> Token:
        tok = self.peek()
        if not tok.is_op(op):
            raise self.error(tok, f"'{op}'")
        return self.advance()

    def accept_word(self, word: str) -> Token | None:
        tok = self.peek()
        if tok.is_word(word):
            return self.advance()
        return None

    def expect_end(self, what: str) -> None:
        tok = self.peek()
        if tok.kind != "eof":
            raise self.error(tok, what)

    def comma_list(self, item: Callable[[], N]) -> tuple[N, ...]:
        items = [item()]
        while self.accept_op(","):
            items.append(item())
        return tuple(items)

    # -- query and commands --------------------------------------------------------------------

    def query(self) -> ast.Query:
        commands: list[ast.Command] = []
        while self.peek().is_word("set"):
            commands.append(self.set_statement())
        commands.append(self.source_command())
        while True:
            tok = self.peek()
            if tok.kind == "eof":
                break
            if not tok.is_op("|"):
                raise self.error(tok, "{<EOF>, '|'}")
            self.advance()
            commands.append(self.processing_command())
        return ast.Query(tuple(commands), self.source)

    def command_word(self) -> tuple[Token, str]:
        tok = self.peek()
        if tok.kind in ("ident", "keyword") and not tok.quoted:
            return tok, tok.text.lower()
        return tok, ""

    def source_command(self) -> ast.Command:
        tok, word = self.command_word()
        if word == "from":
            return self.from_command()
        if word == "row":
            return self.row_command()
        if word in UNSUPPORTED_SOURCE:
            return self.unsupported()
        raise self.error(tok, "{'from', 'row', 'show', 'ts', 'explain'}")

    def processing_command(self) -> ast.Command:
        tok, word = self.command_word()
        handler = _HANDLERS.get(word)
        if handler is not None:
            return handler(self)
        if word in UNSUPPORTED_PROCESSING:
            return self.unsupported()
        names = ", ".join(f"'{name}'" for name in PROCESSING_COMMANDS if name != "inline")
        raise self.error(tok, "{" + names + "}")

    def from_command(self) -> ast.From:
        start = self.advance().span
        sources = self.comma_list(self.index_pattern)
        metadata: tuple[str, ...] = ()
        if self.peek("source").is_word("metadata"):
            self.advance()
            metadata = self.comma_list(self.metadata_field)
        return ast.From(sources, metadata, self.span_from(start))

    def index_pattern(self) -> str:
        tok = self.peek("source")
        if tok.kind != "pattern":
            raise self.error(tok, "an index pattern")
        self.advance("source")
        return str(tok.value)

    def metadata_field(self) -> str:
        tok = self.peek()
        if tok.kind != "ident":
            raise self.error(tok, "a metadata field name")
        self.advance()
        return str(tok.value)

    def row_command(self) -> ast.Row:
        start = self.advance().span
        return ast.Row(self.comma_list(self.assignment), self.span_from(start))

    def where_command(self) -> ast.Where:
        start = self.advance().span
        return ast.Where(self.expression(), self.span_from(start))

    def eval_command(self) -> ast.Eval:
        start = self.advance().span
        return ast.Eval(self.comma_list(self.assignment), self.span_from(start))

    def keep_command(self) -> ast.Keep:
        start = self.advance().span
        return ast.Keep(self.comma_list(self.name_pattern), self.span_from(start))

    def drop_command(self) -> ast.Drop:
        start = self.advance().span
        return ast.Drop(self.comma_list(self.name_pattern), self.span_from(start))

    def name_pattern(self) -> str:
        tok = self.peek("pattern")
        if tok.kind != "pattern":
            raise self.error(tok, "a column name or pattern")
        self.advance("pattern")
        return str(tok.value)

    def rename_command(self) -> ast.Rename:
        start = self.advance().span
        return ast.Rename(self.comma_list(self.rename_pair), self.span_from(start))

    def rename_pair(self) -> tuple[str, str]:
        first = self.qualified_name()[0]
        if self.accept_word("as"):
            return first, self.qualified_name()[0]
        if self.accept_op("="):
            return self.qualified_name()[0], first
        raise self.error(self.peek(), "{'as', '='}")

    def stats_command(self) -> ast.Stats:
        word = self.advance()
        start = word.span
        keyword = word.text.lower()  # STATS, INLINE STATS, or the older INLINESTATS
        if keyword == "inline":
            tok = self.peek()
            if not tok.is_word("stats"):
                raise self.error(tok, "'stats'")
            self.advance()
        inline = keyword != "stats"
        aggs: tuple[ast.AggField, ...] = ()
        tok = self.peek()
        if not (tok.is_word("by") or tok.is_op("|") or tok.kind == "eof"):
            aggs = self.comma_list(self.agg_field)
        by: tuple[ast.Assign, ...] = ()
        if self.accept_word("by"):
            by = self.comma_list(self.assignment)
        return ast.Stats(aggs, by, inline, self.span_from(start))

    def agg_field(self) -> ast.AggField:
        start = self.peek().span
        name = self.assignment_target()
        expr = self.expression()
        where = self.expression() if self.accept_word("where") else None
        return ast.AggField(name, expr, where, self.span_from(start))

    def sort_command(self) -> ast.Sort:
        start = self.advance().span
        return ast.Sort(self.comma_list(self.sort_item), self.span_from(start))

    def sort_item(self) -> ast.SortItem:
        start = self.peek().span
        expr = self.expression()
        descending = False
        if self.accept_word("desc"):
            descending = True
        else:
            self.accept_word("asc")
        nulls_first: bool | None = None
        if self.accept_word("nulls"):
            if self.accept_word("first"):
                nulls_first = True
            elif self.accept_word("last"):
                nulls_first = False
            else:
                raise self.error(self.peek(), "{'first', 'last'}")
        return ast.SortItem(expr, descending, nulls_first, self.span_from(start))

    def limit_command(self) -> ast.Limit:
        start = self.advance().span
        tok = self.peek()
        if tok.kind != "int":
            raise self.error(tok, "an integer")
        self.advance()
        assert isinstance(tok.value, int)
        return ast.Limit(tok.value, self.span_from(start))

    def mv_expand_command(self) -> ast.MvExpand:
        start = self.advance().span
        return ast.MvExpand(self.qualified_name()[0], self.span_from(start))

    def dissect_command(self) -> ast.Dissect:
        start = self.advance().span
        value = self.expression()
        pattern = self.string_value()
        separator: str | None = None
        if self.accept_word("append_separator"):
            self.expect_op("=")
            separator = self.string_value()
        return ast.Dissect(value, pattern, separator, self.span_from(start))

    def grok_command(self) -> ast.Command:
        start = self.advance().span
        value = self.expression()
        pattern = self.string_value()
        if self.peek().is_op(","):
            # Several patterns (newer ES|QL): not something reconwatch runs.
            self.reset(start.start, start.start)
            return self.unsupported()
        return ast.Grok(value, pattern, self.span_from(start))

    def string_value(self) -> str:
        tok = self.peek()
        if tok.kind != "string":
            raise self.error(tok, "a string")
        self.advance()
        return str(tok.value)

    # -- commands reconwatch does not run ------------------------------------------------------

    def unsupported(self) -> ast.Unsupported:
        """Keep the command's text up to the next top-level `|` (brackets balanced)."""
        first = self.advance()
        name = first.text.upper()
        second = self.peek()
        if second.is_word("join") and name in ("LOOKUP", "LEFT", "RIGHT", "FULL"):
            self.advance()
            name += " JOIN"
        end = self.scan_to_pipe(first.span.start, stop=";" if name == "SET" else "|")
        span = self.lexer.span(first.span.start, end)
        self.pos = self.prev_end = end
        return ast.Unsupported(name, span.text(self.source), span)

    def set_statement(self) -> ast.Unsupported:
        cmd = self.unsupported()
        semi = self.expect_op(";")
        span = cmd.span.join(semi.span)
        return ast.Unsupported(cmd.name, span.text(self.source), span)

    def scan_to_pipe(self, start: int, stop: str) -> int:
        """Offset just after the last token before a top-level `stop` (or the end)."""
        depth = 0
        pos = start
        end = start
        while True:
            tok = self.scan_token(pos)
            if tok.kind == "eof":
                return end
            if tok.kind == "op":
                if depth == 0 and tok.value == stop:
                    return end
                if tok.value in ("(", "[", "{"):
                    depth += 1
                elif tok.value in (")", "]", "}"):
                    depth = max(0, depth - 1)
            pos = end = tok.span.end

    def scan_token(self, pos: int) -> Token:
        # Unsupported commands may hold index patterns (`LOOKUP JOIN idx-*`) or other words the
        # expression lexer rejects; reading those as source words keeps the scan going.
        try:
            return self.lexer.token(pos)
        except QuerySyntaxError:
            return self.lexer.token(pos, "source")

    # -- fields and names ----------------------------------------------------------------------

    def assignment(self) -> ast.Assign:
        start = self.peek().span
        name = self.assignment_target()
        expr = self.expression()
        return ast.Assign(name, expr, self.span_from(start))

    def assignment_target(self) -> str | None:
        """`name =` ahead: consume it and return the name; otherwise consume nothing."""
        tok = self.peek()
        if tok.kind != "ident":
            return None
        pos, prev = self.pos, self.prev_end
        name = self.qualified_name()[0]
        if self.accept_op("="):
            return name
        self.reset(pos, prev)
        return None

    def qualified_name(self) -> tuple[str, Span]:
        """`a.b.c`, `@timestamp`, `` `odd name`.x ``: parts joined with dots."""
        tok = self.peek()
        if tok.kind != "ident":
            raise self.error(tok, "an identifier")
        self.advance()
        parts = [str(tok.value)]
        while self.peek().is_op(".") and self._name_part(self.peek2()):
            self.advance()
            part = self.advance()
            parts.append(str(part.value) if part.kind == "ident" else part.text)
        return ".".join(parts), self.span_from(tok.span)

    @staticmethod
    def _name_part(tok: Token) -> bool:
        # After a dot even reserved words are plain name parts (`x.in`, `a.null`).
        return tok.kind in ("ident", "keyword")

    # -- expressions ---------------------------------------------------------------------------

    def expression(self, rbp: int = 0) -> ast.Expr:
        # Nesting (brackets, calls, unary operators) recurses here: bounded before Python's limit.
        if self.depth >= MAX_EXPRESSION_DEPTH:
            tok = self.peek()
            msg = f"expression nested deeper than the limit of {MAX_EXPRESSION_DEPTH} levels"
            raise QuerySyntaxError(msg, tok.span, self.source)
        self.depth += 1
        try:
            left = self.prefix(rbp)
            while True:
                tok = self.peek()
                lbp = self.infix_power(tok)
                if lbp <= rbp:
                    return left
                left = self.infix(left, tok)
        finally:
            self.depth -= 1

    def infix_power(self, tok: Token) -> int:
        if tok.kind == "op":
            op = tok.value
            if op in COMPARISONS or op == ":":
                return BP_PRED
            if op in ("+", "-"):
                return BP_ADD
            if op in ("*", "/", "%"):
                return BP_MUL
            if op == "::":
                return BP_CAST
            return 0
        if tok.kind != "keyword":
            return 0
        word = tok.value
        if word == "or":
            return BP_OR
        if word == "and":
            return BP_AND
        if word in ("in", "like", "rlike", "is"):
            return BP_PRED
        if word == "not":
            nxt = self.peek2()
            if nxt.kind == "keyword" and nxt.value in ("in", "like", "rlike"):
                return BP_PRED
        return 0

    def infix(self, left: ast.Expr, tok: Token) -> ast.Expr:
        start = left.span
        if tok.kind == "op":
            op = str(tok.value)
            self.advance()
            if op == "::":
                type_name = self.type_name()
                return ast.Cast(left, type_name, self.span_from(start))
            if op == ":":
                query = self.expression(BP_PRED)
                return ast.Match(left, query, self.span_from(start))
            power = self.infix_power(tok)
            right = self.expression(power)
            return ast.Binary(op, left, right, self.span_from(start))  # type: ignore[arg-type]
        word = tok.value
        if word in ("or", "and"):
            return self.chain(left, str(word))
        self.advance()
        if word == "is":
            negated = self.accept_keyword("not")
            tok = self.peek()
            if not (tok.kind == "keyword" and tok.value == "null"):
                raise self.error(tok, "{'not', 'null'}")
            self.advance()
            return ast.IsNull(left, negated, self.span_from(start))
        negated = word == "not"
        if negated:
            word = self.advance().value
        if word == "in":
            items = self.parenthesised_list()
            return ast.In(left, items, negated, self.span_from(start))
        return self.like_tail(left, regex=word == "rlike", negated=negated)

    def chain(self, first: ast.Expr, word: str) -> ast.Expr:
        """`a OR b OR c ...` as one node, read in a loop: any number of terms, no recursion."""
        power = BP_OR if word == "or" else BP_AND
        operands = [first]
        while self.accept_keyword(word):
            operands.append(self.expression(power))
        node = ast.Or if word == "or" else ast.And
        return node(tuple(operands), self.span_from(first.span))

    def accept_keyword(self, word: str) -> bool:
        tok = self.peek()
        if tok.kind == "keyword" and tok.value == word:
            self.advance()
            return True
        return False

    def like_tail(self, left: ast.Expr, *, regex: bool, negated: bool) -> ast.Like:
        listed = self.peek().is_op("(")
        if listed:
            self.advance()
            patterns = self.comma_list(lambda: self.like_pattern(regex))
            self.expect_op(")")
        else:
            patterns = (self.like_pattern(regex),)
        return ast.Like(left, patterns, regex, negated, listed, self.span_from(left.span))

    def like_pattern(self, regex: bool) -> str:
        tok = self.peek()
        if tok.kind == "string":
            self.advance()
            return str(tok.value)
        # Newer ES|QL folds constant expressions into patterns (`LIKE concat("a", "*")`);
        # reconwatch refuses those rather than guess, naming the whole pattern expression.
        pattern = self.expression(BP_PRED)
        op = "RLIKE" if regex else "LIKE"
        raise UnsupportedFeatureError(f"{op} with a computed pattern", pattern.span, self.source)

    def parenthesised_list(self) -> tuple[ast.Expr, ...]:
        self.expect_op("(")
        items = self.comma_list(self.expression)
        self.expect_op(")")
        return items

    def type_name(self) -> str:
        tok = self.peek()
        if tok.kind not in ("ident", "keyword") or tok.quoted:
            raise self.error(tok, "a data type name")
        self.advance()
        return tok.text.lower()

    def prefix(self, rbp: int) -> ast.Expr:
        tok = self.peek()
        if tok.kind == "keyword" and tok.value == "not":
            if rbp > BP_NOT:
                raise self.error(tok, "an operand")
            self.advance()
            operand = self.expression(BP_NOT)
            return ast.Not(operand, self.span_from(tok.span))
        if tok.is_op("-") or tok.is_op("+"):
            self.advance()
            operand = self.expression(BP_UNARY)
            return ast.Unary(tok.value, operand, self.span_from(tok.span))  # type: ignore[arg-type]
        return self.primary()

    def primary(self) -> ast.Expr:
        tok = self.peek()
        kind = tok.kind
        if kind == "int":
            return self.integer_or_time_span()
        if kind == "decimal":
            self.advance()
            return ast.Literal("decimal", tok.value, tok.span)
        if kind == "string":
            self.advance()
            return ast.Literal("string", tok.value, tok.span)
        if kind == "param":
            self.advance()
            return ast.Literal("param", tok.value, tok.span)
        if kind == "keyword" and tok.value in ("true", "false"):
            self.advance()
            return ast.Literal("boolean", tok.value == "true", tok.span)
        if kind == "keyword" and tok.value == "null":
            self.advance()
            return ast.Literal("null", None, tok.span)
        if kind == "ident":
            if not tok.quoted and self.peek2().is_op("("):
                return self.call()
            name, span = self.qualified_name()
            return ast.Field(name, span)
        if tok.is_op("("):
            self.advance()
            inner = self.expression()
            self.expect_op(")")
            # The parentheses belong to the expression's text (default column names).
            return _with_span(inner, self.span_from(tok.span))
        if tok.is_op("["):
            return self.list_literal()
        if tok.is_op("{"):
            return self.map_literal()
        raise self.error(tok, "an expression")

    def integer_or_time_span(self) -> ast.Expr:
        tok = self.advance()
        assert isinstance(tok.value, int)
        unit = self.peek()
        if unit.kind == "ident" and not unit.quoted:
            normal = TIME_UNITS.get(unit.text.lower())
            if normal is not None:
                self.advance()
                return ast.TimeSpan(tok.value, normal, unit.text, self.span_from(tok.span))
        return ast.Literal("integer", tok.value, tok.span)

    def call(self) -> ast.Call:
        name_tok = self.advance()
        self.expect_op("(")
        if self.accept_op("*"):
            self.expect_op(")")
            return ast.Call(name_tok.text.lower(), (), True, self.span_from(name_tok.span))
        args: tuple[ast.Expr, ...] = ()
        if not self.peek().is_op(")"):
            args = self.comma_list(self.expression)
        self.expect_op(")")
        return ast.Call(name_tok.text.lower(), args, False, self.span_from(name_tok.span))

    def list_literal(self) -> ast.ListLiteral:
        start = self.advance().span
        items: tuple[ast.Expr, ...] = ()
        if not self.peek().is_op("]"):
            items = self.comma_list(self.expression)
        self.expect_op("]")
        return ast.ListLiteral(items, self.span_from(start))

    def map_literal(self) -> ast.MapLiteral:
        start = self.advance().span
        entries: tuple[tuple[str, ast.Expr], ...] = ()
        if not self.peek().is_op("}"):
            entries = self.comma_list(self.map_entry)
        self.expect_op("}")
        return ast.MapLiteral(entries, self.span_from(start))

    def map_entry(self) -> tuple[str, ast.Expr]:
        key = self.string_value()
        self.expect_op(":")
        return key, self.expression()


_HANDLERS: dict[str, Callable[[_Parser], ast.Command]] = {
    "where": _Parser.where_command,
    "eval": _Parser.eval_command,
    "keep": _Parser.keep_command,
    "drop": _Parser.drop_command,
    "rename": _Parser.rename_command,
    "stats": _Parser.stats_command,
    "inline": _Parser.stats_command,
    "inlinestats": _Parser.stats_command,
    "sort": _Parser.sort_command,
    "limit": _Parser.limit_command,
    "mv_expand": _Parser.mv_expand_command,
    "dissect": _Parser.dissect_command,
    "grok": _Parser.grok_command,
}
