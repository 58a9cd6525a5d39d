"""ES|QL lexer: turns query text into positioned tokens, one token at a time, in a chosen mode."""

from __future__ import annotations

import bisect
import math
from typing import Literal as Lit

from reconwatch.errors import QuerySyntaxError, Span
from reconwatch.records import record

TokenKind = Lit["ident", "keyword", "int", "decimal", "string", "param", "op", "pattern", "eof"]

# How the next word is read. ES|QL's FROM index patterns (`logs-*`, `.alerts-security.*`,
# `cluster:index`) and KEEP/DROP name patterns (`host.*`) are not expression tokens, so the
# parser asks for them explicitly at the positions where they may occur.
Mode = Lit["expr", "source", "pattern"]

# Words that can never be identifiers unless back-quoted. Command-local words (BY, AS, ASC,
# METADATA, ...) stay identifiers so that fields may carry those names elsewhere.
RESERVED = frozenset({"and", "or", "not", "in", "like", "rlike", "is", "null", "true", "false"})

# Longest first so that `==` wins over `=`.
OPERATORS = (
    "==", "!=", "<=", ">=", "=~", "::",
    "<", ">", "=", "+", "-", "*", "/", "%", ":", "(", ")", "[", "]", ",", ".", "|", "{", "}", ";",
)  # fmt: skip

_ESCAPES = {'"': '"', "\\": "\\", "n": "\n", "r": "\r", "t": "\t"}
_IDENT_START = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_@")
_IDENT_BODY = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")
_DIGITS = frozenset("0123456789")
_PATTERN_CHARS = _IDENT_BODY | frozenset("@.*")
# Characters that end an unquoted FROM source (besides whitespace and comment starts).
_SOURCE_STOP = frozenset(',|"()[]{};')


@record
class Token:
    """One lexeme. `value` is the decoded payload: a name, keyword (lower-cased), int, float,
    unescaped string, parameter name, operator text or pattern text."""

    kind: TokenKind
    text: str
    value: object
    span: Span
    quoted: bool = False

    def is_op(self, op: str) -> bool:
        return self.kind == "op" and self.value == op

    def is_word(self, word: str) -> bool:
        """An unquoted identifier or keyword spelled `word` (case-insensitive)."""
        return (
            self.kind in ("ident", "keyword", "pattern")
            and not self.quoted
            and self.text.lower() == word
        )

    def describe(self) -> str:
        return "'<EOF>'" if self.kind == "eof" else f"'{self.text}'"


class Lexer:
    """Reads tokens at any offset of one source text; results are cached so backtracking is cheap."""

    def __init__(self, source: str) -> None:
        self.source = source
        self._line_starts = [0] + [i + 1 for i, ch in enumerate(source) if ch == "\n"]
        self._cache: dict[tuple[int, Mode], Token] = {}

    def span(self, start: int, end: int) -> Span:
        line = bisect.bisect_right(self._line_starts, start)
        return Span(start, end, line, start - self._line_starts[line - 1] + 1)

    def error(self, message: str, start: int, end: int | None = None) -> QuerySyntaxError:
        return QuerySyntaxError(
            message, self.span(start, start + 1 if end is None else end), self.source
        )

    def token(self, pos: int, mode: Mode = "expr") -> Token:
        key = (pos, mode)
        tok = self._cache.get(key)
        if tok is None:
            tok = self._read(self.skip_trivia(pos), mode)
            self._cache[key] = tok
        return tok

    def skip_trivia(self, pos: int) -> int:
        """Skip whitespace and `//` / `/* */` comments."""
        src = self.source
        n = len(src)
        while pos < n:
            ch = src[pos]
            if ch.isspace():
                pos += 1
            elif src.startswith("//", pos):
                nl = src.find("\n", pos)
                pos = n if nl < 0 else nl + 1
            elif src.startswith("/*", pos):
                close = src.find("*/", pos + 2)
                if close < 0:
                    raise self.error("unterminated comment", pos, pos + 2)
                pos = close + 2
            else:
                break
        return pos

    # -- dispatch ------------------------------------------------------------------------------

    def _read(self, pos: int, mode: Mode) -> Token:
        src = self.source
        if pos >= len(src):
            return Token("eof", "", None, self.span(pos, pos))
        if mode == "source":
            tok = self._source_word(pos)
            if tok is not None:
                return tok
        elif mode == "pattern":
            tok = self._name_pattern(pos)
            if tok is not None:
                return tok
        ch = src[pos]
        if ch == '"':
            return self._string(pos)
        if ch == "`":
            return self._quoted_ident(pos)
        if ch in _DIGITS or (ch == "." and self._starts_leading_dot_decimal(pos)):
            return self._number(pos)
        if ch in _IDENT_START:
            return self._ident(pos)
        if ch == "?":
            return self._param(pos)
        for op in OPERATORS:
            if src.startswith(op, pos):
                return Token("op", op, op, self.span(pos, pos + len(op)))
        raise self.error(f"token recognition error at: '{ch}'", pos)

    # -- expression tokens ---------------------------------------------------------------------

    def _ident(self, pos: int) -> Token:
        src = self.source
        end = pos + 1
        while end < len(src) and src[end] in _IDENT_BODY:
            end += 1
        text = src[pos:end]
        if text in ("_", "@"):
            raise self.error(f"token recognition error at: '{text}'", pos, end)
        lower = text.lower()
        if lower in RESERVED:
            return Token("keyword", text, lower, self.span(pos, end))
        return Token("ident", text, text, self.span(pos, end))

    def _quoted_ident(self, pos: int) -> Token:
        value, end = self._backquoted(pos)
        return Token("ident", self.source[pos:end], value, self.span(pos, end), quoted=True)

    def _backquoted(self, pos: int) -> tuple[str, int]:
        """A back-quoted name starting at pos; a doubled back-quote stands for one."""
        src = self.source
        parts: list[str] = []
        i = pos + 1
        while True:
            close = src.find("`", i)
            if close < 0:
                raise self.error("unterminated quoted identifier", pos, len(src))
            parts.append(src[i:close])
            if src.startswith("``", close):
                parts.append("`")
                i = close + 2
                continue
            return "".join(parts), close + 1

    def _starts_leading_dot_decimal(self, pos: int) -> bool:
        # `.5` is a number, but the `.` in `a.b` or `f(x).y` never starts one.
        src = self.source
        if pos + 1 >= len(src) or src[pos + 1] not in _DIGITS:
            return False
        return pos == 0 or src[pos - 1] not in _IDENT_BODY | frozenset("`)]")

    def _number(self, pos: int) -> Token:
        src = self.source
        n = len(src)
        end = pos
        while end < n and src[end] in _DIGITS:
            end += 1
        decimal = False
        if end < n and src[end] == ".":
            after = src[end + 1] if end + 1 < n else ""
            # `1.` is a decimal, but `1.hour` or `1..` is not one.
            if after in _DIGITS or not (after in _IDENT_START or after in (".", "`")):
                decimal = True
                end += 1
                while end < n and src[end] in _DIGITS:
                    end += 1
        if end < n and src[end] in "eE":
            exp = end + 1
            if exp < n and src[exp] in "+-":
                exp += 1
            if exp < n and src[exp] in _DIGITS:
                decimal = True
                end = exp
                while end < n and src[end] in _DIGITS:
                    end += 1
        text = src[pos:end]
        span = self.span(pos, end)
        # An integer past unsigned_long is a double, as in ES|QL (and int() refuses thousands of
        # digits); a number no double holds is refused as Elasticsearch refuses it.
        if decimal or len(text.lstrip("0")) > 20:
            value = float(text)
            if math.isinf(value):
                raise self.error(f"Number [{text}] is too large", pos, end)
            return Token("decimal", text, value, span)
        return Token("int", text, int(text), span)

    def _string(self, pos: int) -> Token:
        value, end = self._read_string(pos)
        return Token("string", self.source[pos:end], value, self.span(pos, end))

    def _read_string(self, pos: int) -> tuple[str, int]:
        """A "..." string with escapes or a \"\"\"...\"\"\" one without; returns (value, end)."""
        src = self.source
        if src.startswith('"""', pos):
            close = src.find('"""', pos + 3)
            if close < 0:
                raise self.error("unterminated string", pos, len(src))
            end = close + 3
            # Up to two further quotes belong to the content: `""""a"""""` is `"a""`.
            extra = 0
            while extra < 2 and src.startswith('"', end + extra):
                extra += 1
            return src[pos + 3 : close + extra], end + extra
        out: list[str] = []
        i = pos + 1
        n = len(src)
        while i < n:
            ch = src[i]
            if ch == '"':
                return "".join(out), i + 1
            if ch in "\r\n":
                break
            if ch == "\\":
                esc = src[i + 1] if i + 1 < n else ""
                if esc == "u":
                    out.append(self._unicode_escape(i))
                    i += 6
                    continue
                if esc not in _ESCAPES:
                    raise self.error(f"invalid escape sequence '\\{esc}' in string", i, i + 2)
                out.append(_ESCAPES[esc])
                i += 2
                continue
            out.append(ch)
            i += 1
        raise self.error("unterminated string", pos, i)

    def _unicode_escape(self, i: int) -> str:
        digits = self.source[i + 2 : i + 6]
        if len(digits) != 4 or any(c not in "0123456789abcdefABCDEF" for c in digits):
            raise self.error("invalid unicode escape in string", i, i + 2 + len(digits))
        return chr(int(digits, 16))

    def _param(self, pos: int) -> Token:
        src = self.source
        end = pos + 1
        if src.startswith("?", end):  # `??name`: a parameter standing for an identifier
            end += 1
        while end < len(src) and src[end] in _IDENT_BODY:
            end += 1
        text = src[pos:end]
        return Token("param", text, text[1:], self.span(pos, end))

    # -- mode-specific words -------------------------------------------------------------------

    def _source_word(self, pos: int) -> Token | None:
        """An index pattern: a quoted string, or a run of characters up to a separator."""
        src = self.source
        if src[pos] == '"':
            value, end = self._read_string(pos)
            return Token("pattern", src[pos:end], value, self.span(pos, end), quoted=True)
        end = pos
        while end < len(src):
            ch = src[end]
            if ch == "<":
                # Date math (`<logs-{now/d}>`) may hold braces and slashes up to its `>`.
                close = src.find(">", end)
                if close >= 0 and "\n" not in src[end:close]:
                    end = close + 1
                    continue
            if ch.isspace() or ch in _SOURCE_STOP or src.startswith(("//", "/*"), end):
                break
            end += 1
        if end == pos:
            return None
        text = src[pos:end]
        return Token("pattern", text, text, self.span(pos, end))

    def _name_pattern(self, pos: int) -> Token | None:
        """A KEEP/DROP name pattern: name characters, `*` wildcards and back-quoted pieces."""
        src = self.source
        parts: list[str] = []
        quoted = False
        end = pos
        while end < len(src):
            ch = src[end]
            if ch == "`":
                value, end = self._backquoted(end)
                parts.append(value)
                quoted = True
            elif ch in _PATTERN_CHARS:
                parts.append(ch)
                end += 1
            else:
                break
        if end == pos:
            return None
        return Token("pattern", src[pos:end], "".join(parts), self.span(pos, end), quoted=quoted)


def tokenize(source: str) -> list[Token]:
    """All expression-mode tokens of source, ending with the eof token (for tests and tools)."""
    lexer = Lexer(source)
    tokens: list[Token] = []
    pos = 0
    while True:
        tok = lexer.token(pos)
        tokens.append(tok)
        if tok.kind == "eof":
            return tokens
        pos = tok.span.end
