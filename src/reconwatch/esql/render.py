"""ES|QL renderer: AST back to query text that parses to the same AST."""

from __future__ import annotations

import re

from reconwatch.esql import ast
from reconwatch.esql.lexer import RESERVED

# Words a command reads as its own keywords; a column so named is back-quoted to stay a column.
_CONTEXT_WORDS = frozenset(
    {"by", "as", "asc", "desc", "nulls", "first", "last", "where", "metadata", "append_separator"}
)
_NAME_PART = re.compile(r"[A-Za-z][A-Za-z0-9_]*|[_@][A-Za-z0-9_]+")
_PATTERN_PIECE = re.compile(r"[A-Za-z0-9_@.]*")
_SOURCE = re.compile(r"[^\s,|\"()\[\]{};]+")

# Binding strength of each node when printed; a child weaker than its slot needs parentheses.
_PRIMARY = 9
_PREC: dict[type, int] = {
    ast.Or: 1,
    ast.And: 2,
    ast.Not: 3,
    ast.In: 4,
    ast.Like: 4,
    ast.IsNull: 4,
    ast.Match: 4,
    ast.Unary: 7,
    ast.Cast: 8,
}
_BINARY_PREC = {"+": 5, "-": 5, "*": 6, "/": 6, "%": 6}


def render(query: ast.Query) -> str:
    """One command per line, processing commands prefixed with `| `."""
    lines: list[str] = []
    pipe = False
    for command in query.commands:
        text = render_command(command)
        lines.append(f"| {text}" if pipe else text)
        # SET statements end with `;` and precede the source command without a pipe.
        pipe = not (isinstance(command, ast.Unsupported) and command.name == "SET")
    return "\n".join(lines)


def render_command(command: ast.Command) -> str:
    match command:
        case ast.From(sources, metadata):
            text = "FROM " + ", ".join(render_source(s) for s in sources)
            if metadata:
                text += " METADATA " + ", ".join(metadata)
            return text
        case ast.Row(fields):
            return "ROW " + _assigns(fields)
        case ast.Where(condition):
            return "WHERE " + render_expr(condition)
        case ast.Eval(fields):
            return "EVAL " + _assigns(fields)
        case ast.Keep(patterns):
            return "KEEP " + ", ".join(render_pattern(p) for p in patterns)
        case ast.Drop(patterns):
            return "DROP " + ", ".join(render_pattern(p) for p in patterns)
        case ast.Rename(pairs):
            return "RENAME " + ", ".join(f"{quote_name(a)} AS {quote_name(b)}" for a, b in pairs)
        case ast.Stats():
            return _stats(command)
        case ast.Sort(items):
            return "SORT " + ", ".join(_sort_item(item) for item in items)
        case ast.Limit(count):
            return f"LIMIT {count}"
        case ast.MvExpand(field):
            return "MV_EXPAND " + quote_name(field)
        case ast.Dissect(value, pattern, separator):
            text = f"DISSECT {render_expr(value)} {quote_string(pattern)}"
            if separator is not None:
                text += f" APPEND_SEPARATOR = {quote_string(separator)}"
            return text
        case ast.Grok(value, pattern):
            return f"GROK {render_expr(value)} {quote_string(pattern)}"
        case ast.Unsupported(_, text):
            return text
    raise TypeError(f"not an ES|QL command: {command!r}")


def _assigns(fields: tuple[ast.Assign, ...]) -> str:
    return ", ".join(_named(f.name, f.expr) for f in fields)


def _named(name: str | None, expr: ast.Expr) -> str:
    return render_expr(expr) if name is None else f"{quote_name(name)} = {render_expr(expr)}"


def _stats(stats: ast.Stats) -> str:
    parts = ["INLINE STATS" if stats.inline else "STATS"]
    if stats.aggs:
        aggs = []
        for agg in stats.aggs:
            text = _named(agg.name, agg.expr)
            if agg.where is not None:
                text += " WHERE " + render_expr(agg.where)
            aggs.append(text)
        parts.append(", ".join(aggs))
    if stats.by:
        parts.append("BY " + _assigns(stats.by))
    return " ".join(parts)


def _sort_item(item: ast.SortItem) -> str:
    text = render_expr(item.expr)
    if item.descending:
        text += " DESC"
    if item.nulls_first is not None:
        text += " NULLS FIRST" if item.nulls_first else " NULLS LAST"
    return text


# -- names and literals --------------------------------------------------------------------------


def quote_name(name: str) -> str:
    """A column name as written in a query: dotted parts bare when possible, else back-quoted."""
    parts = name.split(".")
    bare = all(_NAME_PART.fullmatch(p) for p in parts) and parts[0].lower() not in (
        RESERVED | _CONTEXT_WORDS
    )
    return name if bare else "`" + name.replace("`", "``") + "`"


def render_pattern(pattern: str) -> str:
    """A KEEP/DROP pattern: pieces between `*` wildcards are back-quoted when they need it."""
    pieces = pattern.split("*")
    plain = all(_PATTERN_PIECE.fullmatch(p) for p in pieces) and pattern.lower() not in (
        RESERVED | _CONTEXT_WORDS
    )
    if plain:
        return pattern
    return "*".join("`" + p.replace("`", "``") + "`" if p else "" for p in pieces)


def render_source(source: str) -> str:
    bare = _SOURCE.fullmatch(source) and "//" not in source and "/*" not in source
    if bare and source.lower() != "metadata":
        return source
    return quote_string(source)


def quote_string(value: str) -> str:
    """A double-quoted literal; triple quotes when that avoids escapes and can hold the value."""
    if (
        ("\\" in value or '"' in value)
        and '"""' not in value
        and not value.endswith('"')
        and "\n" not in value
        and "\r" not in value
    ):
        return f'"""{value}"""'
    escaped = (
        value.replace("\\", "\\\\")
        .replace('"', '\\"')
        .replace("\n", "\\n")
        .replace("\r", "\\r")
        .replace("\t", "\\t")
    )
    return f'"{escaped}"'


def _literal(lit: ast.Literal) -> str:
    if lit.kind == "null":
        return "null"
    if lit.kind == "boolean":
        return "true" if lit.value else "false"
    if lit.kind == "string":
        return quote_string(str(lit.value))
    if lit.kind == "param":
        return f"?{lit.value}"
    return repr(lit.value)


# -- expressions ---------------------------------------------------------------------------------


def _prec(expr: ast.Expr) -> int:
    if isinstance(expr, ast.Binary):
        return _BINARY_PREC.get(expr.op, 4)
    if isinstance(expr, ast.Literal) and isinstance(expr.value, int | float) and expr.value < 0:
        return 7  # prints with a leading minus, like a unary
    return _PREC.get(type(expr), _PRIMARY)


def _sub(expr: ast.Expr, least: int) -> str:
    text = render_expr(expr)
    return f"({text})" if _prec(expr) < least else text


def render_expr(expr: ast.Expr) -> str:
    """An expression with only the parentheses its tree needs."""
    match expr:
        case ast.Literal():
            return _literal(expr)
        case ast.TimeSpan(amount, unit, unit_text):
            return f"{amount} {unit_text or unit}"
        case ast.ListLiteral(items):
            return "[" + ", ".join(render_expr(i) for i in items) + "]"
        case ast.MapLiteral(entries):
            return "{" + ", ".join(f"{quote_string(k)}: {render_expr(v)}" for k, v in entries) + "}"
        case ast.Field(name):
            return quote_name(name)
        case ast.Call(name, args, star):
            inner = "*" if star else ", ".join(render_expr(a) for a in args)
            return f"{name}({inner})"
        case ast.Unary(op, operand):
            text = _sub(operand, 7)
            # `- -x` rather than `--x`: clearer, and never mistaken for a comment marker.
            return f"{op} {text}" if text.startswith(("-", "+")) else f"{op}{text}"
        case ast.Binary(op, left, right):
            prec = _prec(expr)
            if prec == 4:  # comparisons do not chain: both sides must be tighter
                return f"{_sub(left, 5)} {op} {_sub(right, 5)}"
            return f"{_sub(left, prec)} {op} {_sub(right, prec + 1)}"
        case ast.And(operands):
            # Each operand tighter than AND: a nested chain keeps its parentheses (its own node).
            return " AND ".join(_sub(o, 3) for o in operands)
        case ast.Or(operands):
            return " OR ".join(_sub(o, 2) for o in operands)
        case ast.Not(operand):
            return f"NOT {_sub(operand, 3)}"
        case ast.In(value, items, negated):
            keyword = "NOT IN" if negated else "IN"
            return f"{_sub(value, 5)} {keyword} (" + ", ".join(render_expr(i) for i in items) + ")"
        case ast.Like():
            return _like(expr)
        case ast.IsNull(value, negated):
            return f"{_sub(value, 5)} IS {'NOT NULL' if negated else 'NULL'}"
        case ast.Cast(value, type_name):
            return f"{_sub(value, 8)}::{type_name}"
        case ast.Match(field, query):
            return f"{_sub(field, 5)} : {_sub(query, 5)}"
    raise TypeError(f"not an ES|QL expression: {expr!r}")


def _like(like: ast.Like) -> str:
    op = ("NOT " if like.negated else "") + ("RLIKE" if like.regex else "LIKE")
    patterns = ", ".join(quote_string(p) for p in like.patterns)
    if like.listed:
        patterns = f"({patterns})"
    return f"{_sub(like.value, 5)} {op} {patterns}"
