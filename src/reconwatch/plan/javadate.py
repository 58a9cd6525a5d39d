"""Java DateTimeFormatter patterns (DATE_FORMAT, DATE_PARSE) read into fields, printed and parsed in UTC."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from reconwatch.plan.values import ConversionError, format_datetime

MONTHS = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
]
DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
# Pattern letters we print and parse; any other letter is refused by name.
_LETTERS = frozenset("yuMLdDHhKkmsSaEeZXxzVn")
ILLEGAL = "java.lang.IllegalArgumentException"


@dataclass(frozen=True, slots=True)
class Field:
    """One pattern element: a letter repeated `width` times, or literal text (letter "")."""

    letter: str
    width: int
    text: str = ""


@functools.lru_cache(maxsize=256)
def compile_pattern(pattern: str) -> tuple[Field, ...]:
    """The elements of a pattern; ConversionError (IllegalArgumentException) for letters we do
    not implement or an unterminated quote."""
    out: list[Field] = []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "'":
            end = pattern.find("'", i + 1)
            if end == i + 1:  # '' is a quote
                out.append(Field("", 0, "'"))
                i += 2
                continue
            if end < 0:
                msg = f"Pattern ends with an incomplete string literal: {pattern}"
                raise ConversionError(msg, ILLEGAL)
            out.append(Field("", 0, pattern[i + 1 : end].replace("''", "'")))
            i = end + 1
            continue
        if ch.isascii() and ch.isalpha():
            j = i
            while j < len(pattern) and pattern[j] == ch:
                j += 1
            if ch not in _LETTERS:
                msg = f"Unsupported pattern letter [{ch}] in [{pattern}]"
                raise ConversionError(msg, ILLEGAL)
            out.append(Field(ch, j - i))
            i = j
            continue
        if ch in "[]{}#":
            msg = f"Unsupported pattern character [{ch}] in [{pattern}]"
            raise ConversionError(msg, ILLEGAL)
        out.append(Field("", 0, ch))
        i += 1
    return tuple(out)


# ---------------------------------------------------------------------------------------------
# Printing


def _number(value: int, width: int) -> str:
    return str(value).zfill(width)


def _offset(f: Field) -> str:
    """The UTC offset as each zone letter prints it."""
    if f.letter == "Z":
        return "Z" if f.width == 5 else ("GMT" if f.width == 4 else "+0000")
    if f.letter == "X":
        return "Z"
    if f.letter == "x":
        return {1: "+00", 2: "+0000", 3: "+00:00"}.get(f.width, "+00:00")
    return "Z" if f.letter == "V" else "UTC"  # z: short zone name


def _print_field(f: Field, when: datetime) -> str:
    letter, width = f.letter, f.width
    if letter in "yu":
        return _number(when.year % 100, 2) if width == 2 else _number(when.year, width)
    if letter in "ML":
        if width >= 4:
            return MONTHS[when.month - 1]
        return MONTHS[when.month - 1][:3] if width == 3 else _number(when.month, width)
    numbers = {
        "d": when.day,
        "D": when.timetuple().tm_yday,
        "H": when.hour,
        "k": when.hour or 24,
        "h": (when.hour % 12) or 12,
        "K": when.hour % 12,
        "m": when.minute,
        "s": when.second,
        "e": when.isoweekday(),
    }
    if letter in numbers and not (letter == "e" and width >= 3):
        return _number(numbers[letter], width)
    if letter == "S":
        return f"{when.microsecond:06d}000"[:width].ljust(width, "0")
    if letter == "n":
        return _number(when.microsecond * 1000, width)
    if letter == "a":
        return "AM" if when.hour < 12 else "PM"
    if letter in "Ee":
        day = DAYS[when.weekday()]
        return day if width >= 4 else day[:3]
    return _offset(f)


def format_date(pattern: str | None, when: datetime) -> str:
    """DATE_FORMAT: the date printed in UTC (the default format is ES|QL's own)."""
    moment = when.astimezone(UTC) if when.tzinfo else when.replace(tzinfo=UTC)
    if pattern is None:
        return format_datetime(moment)
    return "".join(
        f.text if not f.letter else _print_field(f, moment) for f in compile_pattern(pattern)
    )


# ---------------------------------------------------------------------------------------------
# Parsing


def _field_regex(f: Field, index: int) -> str:
    group = f"(?P<f{index}>"
    letter, width = f.letter, f.width
    if not letter:
        return re.escape(f.text)
    if letter in "yu":
        return group + (r"\d{2})" if width == 2 else r"[+-]?\d{4,9})" if width >= 4 else r"\d+)")
    if letter in "ML" and width >= 3:
        names = MONTHS if width >= 4 else [m[:3] for m in MONTHS]
        return group + "|".join(names) + ")"
    if letter in "Ee" and (letter == "E" or width >= 3):
        names = DAYS if width >= 4 else [d[:3] for d in DAYS]
        return group + "|".join(names) + ")"
    if letter == "S":
        return group + rf"\d{{{width}}})"
    if letter == "a":
        return group + "AM|PM)"
    if letter in "ZXxzV":
        return group + r"Z|UTC|GMT|[+-]\d{2}(?::?\d{2})?)"
    return group + (r"\d{1,2})" if width == 1 else rf"\d{{{width}}})")


@functools.lru_cache(maxsize=256)
def _parser(pattern: str) -> tuple[re.Pattern[str], tuple[Field, ...]]:
    fields = compile_pattern(pattern)
    regex = "".join(_field_regex(f, i) for i, f in enumerate(fields))
    return re.compile(regex), fields


def _zone(text: str) -> timedelta:
    if text in ("Z", "UTC", "GMT"):
        return timedelta(0)
    sign = -1 if text[0] == "-" else 1
    digits = text[1:].replace(":", "")
    return sign * timedelta(hours=int(digits[:2]), minutes=int(digits[2:4] or 0))


def parse_date(pattern: str, text: str) -> datetime:
    """DATE_PARSE: the text read with the pattern, in UTC unless it names an offset; fields it
    lacks default to 1970-01-01T00:00:00. ConversionError with Elasticsearch's message."""
    regex, fields = _parser(pattern)
    m = regex.fullmatch(text)
    failed = ConversionError(
        f"failed to parse date field [{text}] with format [{pattern}]", ILLEGAL
    )
    if m is None:
        raise failed
    parts = {"y": 1970, "M": 1, "d": 1, "H": 0, "m": 0, "s": 0, "us": 0, "D": 0}
    pm: bool | None = None
    offset = timedelta(0)
    for i, f in enumerate(fields):
        if not f.letter:
            continue
        value = m.group(f"f{i}")
        if f.letter in "yu":
            parts["y"] = 2000 + int(value) if f.width == 2 else int(value)
        elif f.letter in "ML":
            names = MONTHS if f.width >= 4 else [x[:3] for x in MONTHS]
            parts["M"] = names.index(value) + 1 if f.width >= 3 else int(value)
        elif f.letter in "dHms":
            parts[f.letter] = int(value)
        elif f.letter in "hK":
            parts["H"] = int(value) % 12
        elif f.letter == "k":
            parts["H"] = int(value) % 24
        elif f.letter == "D":
            parts["D"] = int(value)
        elif f.letter == "S":
            parts["us"] = int(value.ljust(6, "0")[:6])
        elif f.letter == "a":
            pm = value == "PM"
        elif f.letter in "ZXxzV":
            offset = _zone(value)
    if pm is not None:
        parts["H"] = parts["H"] % 12 + (12 if pm else 0)
    try:
        if parts["D"]:
            day = datetime(parts["y"], 1, 1, tzinfo=UTC) + timedelta(days=parts["D"] - 1)
            parts["M"], parts["d"] = day.month, day.day
        moment = datetime(
            parts["y"],
            parts["M"],
            parts["d"],
            parts["H"],
            parts["m"],
            parts["s"],
            parts["us"],
            tzinfo=UTC,
        )
    except ValueError:
        raise failed from None
    moment -= offset
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)  # dates hold millis
