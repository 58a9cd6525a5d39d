"""ES|QL lexer: token kinds, values, positions, modes and lexical errors."""

from __future__ import annotations

import pytest

from reconwatch.errors import QuerySyntaxError
from reconwatch.esql.lexer import Lexer, Token, tokenize


def kinds(text: str) -> list[tuple[str, object]]:
    return [(t.kind, t.value) for t in tokenize(text)[:-1]]


def test_keywords_are_case_insensitive_identifiers_keep_case() -> None:
    assert kinds("AND Or nOt In LIKE rlike IS NULL True false") == [
        ("keyword", "and"),
        ("keyword", "or"),
        ("keyword", "not"),
        ("keyword", "in"),
        ("keyword", "like"),
        ("keyword", "rlike"),
        ("keyword", "is"),
        ("keyword", "null"),
        ("keyword", "true"),
        ("keyword", "false"),
    ]
    assert kinds("Where host_Name @timestamp _id") == [
        ("ident", "Where"),
        ("ident", "host_Name"),
        ("ident", "@timestamp"),
        ("ident", "_id"),
    ]


def test_dotted_names_are_separate_tokens() -> None:
    assert kinds("host.os.type") == [
        ("ident", "host"),
        ("op", "."),
        ("ident", "os"),
        ("op", "."),
        ("ident", "type"),
    ]


def test_back_quoted_names_unescape_doubled_quotes() -> None:
    (tok,) = tokenize("`a ``b`` c`")[:-1]
    assert (tok.kind, tok.value, tok.quoted) == ("ident", "a `b` c", True)
    assert tokenize("`and`")[0].kind == "ident"  # quoting turns a keyword into a name


@pytest.mark.parametrize(
    ("text", "kind", "value"),
    [
        ("42", "int", 42),
        ("0", "int", 0),
        ("4.25", "decimal", 4.25),
        ("1.", "decimal", 1.0),
        (".5", "decimal", 0.5),
        ("1e3", "decimal", 1000.0),
        ("1.5E-2", "decimal", 0.015),
        ("2e+2", "decimal", 200.0),
        ("9223372036854775808", "int", 9223372036854775808),
        ("99999999999999999999", "int", 99999999999999999999),  # 20 digits
        ("100000000000000000000", "decimal", 1e20),  # 21: past unsigned_long, a double
    ],
)
def test_numbers(text: str, kind: str, value: object) -> None:
    (tok,) = tokenize(text)[:-1]
    assert (tok.kind, tok.value, tok.text) == (kind, value, text)


def test_integer_then_unit_are_two_tokens() -> None:
    assert kinds("1hours") == [("int", 1), ("ident", "hours")]
    assert kinds("1 day") == [("int", 1), ("ident", "day")]


@pytest.mark.parametrize(
    ("text", "value"),
    [
        (r'"plain"', "plain"),
        (r'"a\"b"', 'a"b'),
        (r'"back\\slash"', "back\\slash"),
        (r'"\n\r\t"', "\n\r\t"),
        (r'"\u00e9"', "é"),
        ('""', ""),
        ('"""C:\\foo\\bar "quoted" """', 'C:\\foo\\bar "quoted" '),
        ('"""a\nb"""', "a\nb"),
        ('""""x"""""', '"x""'),
    ],
)
def test_strings(text: str, value: str) -> None:
    (tok,) = tokenize(text)[:-1]
    assert (tok.kind, tok.value, tok.text) == ("string", value, text)


def test_operators_longest_match() -> None:
    ops = "== != < <= > >= =~ + - * / % :: : = ( ) [ ] , . | { } ;"
    assert [t.value for t in tokenize(ops)[:-1]] == ops.split()
    assert [t.value for t in tokenize("a==-1")[:-1]] == ["a", "==", "-", 1]
    assert [t.value for t in tokenize("x::ip")[:-1]] == ["x", "::", "ip"]


def test_params() -> None:
    assert kinds("? ?name ?1 ??field") == [
        ("param", ""),
        ("param", "name"),
        ("param", "1"),
        ("param", "?field"),
    ]


def test_comments_are_skipped() -> None:
    text = "a // line comment\n/* block\ncomment */ b"
    assert kinds(text) == [("ident", "a"), ("ident", "b")]


def test_positions_are_line_and_column() -> None:
    toks = tokenize('from x\n| where  y == "z"')
    where = toks[3]
    assert (where.text, where.span.line, where.span.col) == ("where", 2, 3)
    z = toks[6]
    assert (z.span.start, z.span.end, z.span.line, z.span.col) == (21, 24, 2, 15)
    eof = toks[-1]
    assert eof.kind == "eof"
    assert eof.span.start == len('from x\n| where  y == "z"')


def _word(text: str, mode: str) -> Token:
    return Lexer(text).token(0, mode)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("logs-endpoint.events.network-*", "logs-endpoint.events.network-*"),
        ("logs-*, other", "logs-*"),
        (".alerts-security.*|", ".alerts-security.*"),
        ("cluster:index-1", "cluster:index-1"),
        ("*:logs-*", "*:logs-*"),
        ('"my index"', "my index"),
        ("logs-*// comment", "logs-*"),
        ("<logs-{now/d}>, b", "<logs-{now/d}>"),
    ],
)
def test_source_mode_reads_index_patterns(text: str, value: str) -> None:
    tok = _word(text, "source")
    assert (tok.kind, tok.value) == ("pattern", value)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("host.*", "host.*"),
        ("*", "*"),
        ("first*name, x", "first*name"),
        ("@timestamp", "@timestamp"),
        ("`AVG(x)`", "AVG(x)"),
        ("`odd name`*", "odd name*"),
    ],
)
def test_pattern_mode_reads_name_patterns(text: str, value: str) -> None:
    tok = _word(text, "pattern")
    assert (tok.kind, tok.value) == ("pattern", value)


def test_modes_fall_back_to_expression_tokens() -> None:
    assert _word(", a", "source").value == ","
    assert _word("| a", "pattern").value == "|"


@pytest.mark.parametrize(
    ("text", "message", "col"),
    [
        ('x == "abc', "unterminated string", 6),
        ('"a\nb"', "unterminated string", 1),
        ('"""abc', "unterminated string", 1),
        (r'"a\qb"', "invalid escape sequence '\\q' in string", 3),
        ("a /* never closed", "unterminated comment", 3),
        ("`abc", "unterminated quoted identifier", 1),
        ("a # b", "token recognition error at: '#'", 3),
        ("a ! b", "token recognition error at: '!'", 3),
    ],
)
def test_lexical_errors_are_positioned(text: str, message: str, col: int) -> None:
    with pytest.raises(QuerySyntaxError) as info:
        tokenize(text)
    assert info.value.message == message
    assert info.value.span is not None
    assert (info.value.span.line, info.value.span.col) == (1, col)


def test_error_on_a_later_line() -> None:
    with pytest.raises(QuerySyntaxError) as info:
        tokenize("from a\n| where x == $")
    assert str(info.value) == "line 2:14: token recognition error at: '$'"
