"""LIKE wildcards and RLIKE (Lucene regular expressions) translated to a regex for fullmatch that Python's `re` and RE2 (DuckDB) read alike."""

from __future__ import annotations

import re
import string

# Lucene's predefined classes are ASCII (Python's \d, \s and \w would take any Unicode digit,
# space or letter), written out so that both engines read them the same.
_DIGIT, _SPACE, _WORD = "0-9", " \\t\\n\\x0B\\f\\r", "a-zA-Z0-9_"
_PREDEFINED = {
    "d": f"[{_DIGIT}]",
    "D": f"[^{_DIGIT}]",
    "s": f"[{_SPACE}]",
    "S": f"[^{_SPACE}]",
    "w": f"[{_WORD}]",
    "W": f"[^{_WORD}]",
}
# Inside a character class only the positive ones can be written out.
_IN_CLASS = {"d": _DIGIT, "s": _SPACE, "w": _WORD, "D": r"\D", "S": r"\S", "W": r"\W"}
# Lucene's empty language (`#`): a class nothing is in (RE2 has no lookahead for `(?!)`).
NOTHING = r"[^\s\S]"
_PUNCTUATION = frozenset(string.punctuation)


def escape(text: str) -> str:
    """`text` matched literally, in syntax both engines read alike: ASCII punctuation behind a
    backslash, every other character as it is (Python's re.escape writes `\\ ` for a space,
    which RE2 refuses)."""
    return "".join("\\" + c if c in _PUNCTUATION else c for c in text)


class PatternError(ValueError):
    """A pattern that is invalid, or that uses a Lucene operator reconwatch does not run."""

    def __init__(self, message: str, unsupported: bool = False) -> None:
        super().__init__(message)
        self.unsupported = unsupported


def like_to_regex(pattern: str) -> str:
    """LIKE: `*` any string, `?` one character, `\\` escapes the next character."""
    out: list[str] = []
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\" and i + 1 < len(pattern):
            out.append(escape(pattern[i + 1]))
            i += 2
            continue
        out.append(".*" if c == "*" else "." if c == "?" else escape(c))
        i += 1
    return "".join(out)


def rlike_to_regex(pattern: str) -> str:
    """RLIKE: Lucene RegExp syntax (flags ALL) as an equivalent Python regex for re.fullmatch."""
    parser = _Lucene(pattern)
    result = parser.union()
    if parser.pos < len(pattern):
        msg = f"unexpected character '{pattern[parser.pos]}' at position {parser.pos}"
        raise PatternError(msg)
    try:
        re.compile(result)
    except re.error as exc:
        raise PatternError(str(exc)) from None
    return result


class _Lucene:
    """Recursive descent over Lucene's RegExp grammar: union > intersection > concat > repeat."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def peek(self, chars: str) -> bool:
        return self.pos < len(self.text) and self.text[self.pos] in chars

    def take(self) -> str:
        c = self.text[self.pos]
        self.pos += 1
        return c

    def union(self) -> str:
        parts = [self.intersection()]
        while self.peek("|"):
            self.pos += 1
            parts.append(self.intersection())
        return parts[0] if len(parts) == 1 else "(?:" + "|".join(parts) + ")"

    def intersection(self) -> str:
        first = self.concat()
        if self.peek("&"):
            raise PatternError("RLIKE intersection operator [&]", unsupported=True)
        return first

    def concat(self) -> str:
        parts: list[str] = []
        while self.pos < len(self.text) and not self.peek(")|&"):
            parts.append(self.repeat())
        return "".join(parts)

    def repeat(self) -> str:
        atom = self.complement()
        while self.peek("?*+{"):
            c = self.take()
            if c == "{":
                end = self.text.find("}", self.pos)
                if end < 0:
                    msg = "expected '}'"
                    raise PatternError(msg)
                body = self.text[self.pos : end]
                self.pos = end + 1
                if not re.fullmatch(r"\d+(,\d*)?", body):
                    msg = f"invalid repetition {{{body}}}"
                    raise PatternError(msg)
                atom = f"(?:{atom}){{{body}}}"
            else:
                atom = f"(?:{atom}){c}"
        return atom

    def complement(self) -> str:
        if self.peek("~"):
            raise PatternError("RLIKE complement operator [~]", unsupported=True)
        return self.char_class_exp()

    def char_class_exp(self) -> str:
        if not self.peek("["):
            return self.simple()
        self.pos += 1
        negate = self.peek("^")
        if negate:
            self.pos += 1
        items: list[str] = []
        while not self.peek("]"):
            if self.pos >= len(self.text):
                msg = "expected ']'"
                raise PatternError(msg)
            low = self.class_char()
            if self.peek("-") and self.pos + 1 < len(self.text) and self.text[self.pos + 1] != "]":
                self.pos += 1
                high = self.class_char()
                items.append(f"{low}-{high}")
            else:
                items.append(low)
        self.pos += 1
        return f"[{'^' if negate else ''}{''.join(items)}]"

    def class_char(self) -> str:
        c = self.take()
        if c == "\\" and self.pos < len(self.text):
            c = self.take()
            if c in _IN_CLASS:
                return _IN_CLASS[c]
        return escape(c) if c in "\\]^-[" else c

    def simple(self) -> str:
        c = self.take()
        if c == ".":
            return "."
        if c == "@":
            return ".*"
        if c == "#":
            return NOTHING
        if c == '"':
            end = self.text.find('"', self.pos)
            if end < 0:
                msg = "expected '\"'"
                raise PatternError(msg)
            literal = self.text[self.pos : end]
            self.pos = end + 1
            return escape(literal)
        if c == "(":
            if self.peek(")"):
                self.pos += 1
                return ""
            inner = self.union()
            if not self.peek(")"):
                msg = "expected ')'"
                raise PatternError(msg)
            self.pos += 1
            return f"(?:{inner})"
        if c == "<":
            return self.interval()
        if c == "\\" and self.pos < len(self.text):
            c = self.take()
            return _PREDEFINED.get(c, escape(c))
        return escape(c)

    def interval(self) -> str:
        end = self.text.find(">", self.pos)
        body = self.text[self.pos : end] if end >= 0 else ""
        m = re.fullmatch(r"(\d+)-(\d+)", body)
        if m is None:
            msg = "invalid numeric interval"
            raise PatternError(msg)
        self.pos = end + 1
        low, high = sorted((int(m.group(1)), int(m.group(2))))
        if high - low > 10_000:
            raise PatternError("RLIKE numeric interval wider than 10000", unsupported=True)
        width = len(m.group(1)) if len(m.group(1)) == len(m.group(2)) else 0
        # Lucene accepts leading zeros up to the written width.
        options = [f"0*{n}" if width == 0 else str(n).zfill(width) for n in range(low, high + 1)]
        return "(?:" + "|".join(options) + ")"
