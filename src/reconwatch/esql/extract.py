"""DISSECT and GROK patterns compiled to Python regular expressions for the plan's Extract step.

Group naming (the Extract contract): output i is captured by group `g{i}`; a key captured more
than once (DISSECT append `%{+k}`, GROK repeated name) uses `g{i}`, `g{i}_1`, `g{i}_2`, ... in
text order. Executors run `re.search(regex, value)` with re.DOTALL; DISSECT regexes are anchored.
"""

from __future__ import annotations

import re

from reconwatch.types import DataType

# Elasticsearch's ECS-compatible grok base patterns (ES|QL uses them; nested captures are unnamed).
GROK_PATTERNS: dict[str, str] = {
    "USERNAME": r"[a-zA-Z0-9._-]+",
    "USER": r"%{USERNAME}",
    "EMAILLOCALPART": r"[a-zA-Z0-9!#$%&'*+\-/=?^_`{|}~]{1,64}(?:\.[a-zA-Z0-9!#$%&'*+\-/=?^_`{|}~]{1,62}){0,63}",
    "EMAILADDRESS": r"%{EMAILLOCALPART}@%{HOSTNAME}",
    "INT": r"(?:[+-]?(?:[0-9]+))",
    "BASE10NUM": r"(?<![0-9.+-])(?>[+-]?(?:(?:[0-9]+(?:\.[0-9]+)?)|(?:\.[0-9]+)))",
    "NUMBER": r"(?:%{BASE10NUM})",
    "BASE16NUM": r"(?<![0-9A-Fa-f])(?:[+-]?(?:0x)?(?:[0-9A-Fa-f]+))",
    "BASE16FLOAT": r"\b(?<![0-9A-Fa-f.])(?:[+-]?(?:0x)?(?:(?:[0-9A-Fa-f]+(?:\.[0-9A-Fa-f]*)?)|(?:\.[0-9A-Fa-f]+)))\b",
    "POSINT": r"\b(?:[1-9][0-9]*)\b",
    "NONNEGINT": r"\b(?:[0-9]+)\b",
    "WORD": r"\b\w+\b",
    "NOTSPACE": r"\S+",
    "SPACE": r"\s*",
    "DATA": r".*?",
    "GREEDYDATA": r".*",
    "QUOTEDSTRING": r"(?>(?<!\\)(?>\"(?>\\.|[^\\\"]+)+\"|\"\"|(?>'(?>\\.|[^\\']+)+')|''|(?>`(?>\\.|[^\\`]+)+`)|``))",
    "QS": r"%{QUOTEDSTRING}",
    "UUID": r"[A-Fa-f0-9]{8}-(?:[A-Fa-f0-9]{4}-){3}[A-Fa-f0-9]{12}",
    "URN": r"urn:[0-9A-Za-z][0-9A-Za-z-]{0,31}:(?:%[0-9a-fA-F]{2}|[0-9A-Za-z()+,.:=@;$_!*'/?#-])+",
    "MAC": r"(?:%{CISCOMAC}|%{WINDOWSMAC}|%{COMMONMAC})",
    "CISCOMAC": r"(?:(?:[A-Fa-f0-9]{4}\.){2}[A-Fa-f0-9]{4})",
    "WINDOWSMAC": r"(?:(?:[A-Fa-f0-9]{2}-){5}[A-Fa-f0-9]{2})",
    "COMMONMAC": r"(?:(?:[A-Fa-f0-9]{2}:){5}[A-Fa-f0-9]{2})",
    "IPV6": r"((([0-9A-Fa-f]{1,4}:){7}([0-9A-Fa-f]{1,4}|:))|(([0-9A-Fa-f]{1,4}:){6}(:[0-9A-Fa-f]{1,4}|((25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3})|:))|(([0-9A-Fa-f]{1,4}:){5}(((:[0-9A-Fa-f]{1,4}){1,2})|:((25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3})|:))|(([0-9A-Fa-f]{1,4}:){4}(((:[0-9A-Fa-f]{1,4}){1,3})|((:[0-9A-Fa-f]{1,4})?:((25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}))|:))|(([0-9A-Fa-f]{1,4}:){3}(((:[0-9A-Fa-f]{1,4}){1,4})|((:[0-9A-Fa-f]{1,4}){0,2}:((25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}))|:))|(([0-9A-Fa-f]{1,4}:){2}(((:[0-9A-Fa-f]{1,4}){1,5})|((:[0-9A-Fa-f]{1,4}){0,3}:((25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}))|:))|(([0-9A-Fa-f]{1,4}:){1}(((:[0-9A-Fa-f]{1,4}){1,6})|((:[0-9A-Fa-f]{1,4}){0,4}:((25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}))|:))|(:(((:[0-9A-Fa-f]{1,4}){1,7})|((:[0-9A-Fa-f]{1,4}){0,5}:((25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}))|:)))(%.+)?",
    "IPV4": r"(?<![0-9])(?:(?:[0-1]?[0-9]{1,2}|2[0-4][0-9]|25[0-5])[.](?:[0-1]?[0-9]{1,2}|2[0-4][0-9]|25[0-5])[.](?:[0-1]?[0-9]{1,2}|2[0-4][0-9]|25[0-5])[.](?:[0-1]?[0-9]{1,2}|2[0-4][0-9]|25[0-5]))(?![0-9])",
    "IP": r"(?:%{IPV6}|%{IPV4})",
    "HOSTNAME": r"\b(?:[0-9A-Za-z][0-9A-Za-z-]{0,62})(?:\.(?:[0-9A-Za-z][0-9A-Za-z-]{0,62}))*(\.?|\b)",
    "HOST": r"%{HOSTNAME}",
    "IPORHOST": r"(?:%{IP}|%{HOSTNAME})",
    "HOSTPORT": r"%{IPORHOST}:%{POSINT}",
    "UNIXPATH": r"(/[\w_%!$@:.,+~-]*)+",
    "TTY": r"(?:/dev/(pts|tty([pq])?)(\w+)?/?(?:[0-9]+))",
    "WINPATH": r"(?>[A-Za-z]+:|\\)(?:\\[^\\?*]*)+",
    "PATH": r"(?:%{UNIXPATH}|%{WINPATH})",
    "URIPROTO": r"[A-Za-z]([A-Za-z0-9+\-.]+)+",
    "URIHOST": r"%{IPORHOST}(?::%{POSINT})?",
    "URIPATH": r"(?:/[A-Za-z0-9$.+!*'(){},~:;=@#%&_\-]*)+",
    "URIQUERY": r"[A-Za-z0-9$.+!*'|(){},~@#%&/=:;_?\-\[\]<>]*",
    "URIPARAM": r"\?%{URIQUERY}",
    "URIPATHPARAM": r"%{URIPATH}(?:\?%{URIQUERY})?",
    "URI": r"%{URIPROTO}://(?:%{USER}(?::[^@]*)?@)?(?:%{URIHOST})?(?:%{URIPATH}(?:\?%{URIQUERY})?)?",
    "MONTH": r"\b(?:[Jj]an(?:uary|uar)?|[Ff]eb(?:ruary|ruar)?|[Mm](?:a|ä)?r(?:ch|z)?|[Aa]pr(?:il)?|[Mm]a(?:y|i)?|[Jj]un(?:e|i)?|[Jj]ul(?:y|i)?|[Aa]ug(?:ust)?|[Ss]ep(?:tember)?|[Oo](?:c|k)?t(?:ober)?|[Nn]ov(?:ember)?|[Dd]e(?:c|z)(?:ember)?)\b",
    "MONTHNUM": r"(?:0?[1-9]|1[0-2])",
    "MONTHNUM2": r"(?:0[1-9]|1[0-2])",
    "MONTHDAY": r"(?:(?:0[1-9])|(?:[12][0-9])|(?:3[01])|[1-9])",
    "DAY": r"(?:Mon(?:day)?|Tue(?:sday)?|Wed(?:nesday)?|Thu(?:rsday)?|Fri(?:day)?|Sat(?:urday)?|Sun(?:day)?)",
    "YEAR": r"(?>\d\d){1,2}",
    "HOUR": r"(?:2[0123]|[01]?[0-9])",
    "MINUTE": r"(?:[0-5][0-9])",
    "SECOND": r"(?:(?:[0-5]?[0-9]|60)(?:[:.,][0-9]+)?)",
    "TIME": r"(?!<[0-9])%{HOUR}:%{MINUTE}(?::%{SECOND})(?![0-9])",
    "DATE_US": r"%{MONTHNUM}[/-]%{MONTHDAY}[/-]%{YEAR}",
    "DATE_EU": r"%{MONTHDAY}[./-]%{MONTHNUM}[./-]%{YEAR}",
    "ISO8601_TIMEZONE": r"(?:Z|[+-]%{HOUR}(?::?%{MINUTE}))",
    "ISO8601_SECOND": r"%{SECOND}",
    "TIMESTAMP_ISO8601": r"%{YEAR}-%{MONTHNUM}-%{MONTHDAY}[T ]%{HOUR}:?%{MINUTE}(?::?%{SECOND})?%{ISO8601_TIMEZONE}?",
    "DATE": r"%{DATE_US}|%{DATE_EU}",
    "DATESTAMP": r"%{DATE}[- ]%{TIME}",
    "TZ": r"(?:[APMCE][SD]T|UTC)",
    "HTTPDATE": r"%{MONTHDAY}/%{MONTH}/%{YEAR}:%{TIME} %{INT}",
    "SYSLOGTIMESTAMP": r"%{MONTH} +%{MONTHDAY} %{TIME}",
    "PROG": r"[\x21-\x5a\x5c\x5e-\x7e]+",
    "SYSLOGPROG": r"%{PROG}(?:\[%{POSINT}\])?",
    "SYSLOGHOST": r"%{IPORHOST}",
    "LOGLEVEL": r"([Aa]lert|ALERT|[Tt]race|TRACE|[Dd]ebug|DEBUG|[Nn]otice|NOTICE|[Ii]nfo?(?:rmation)?|INFO?(?:RMATION)?|[Ww]arn?(?:ing)?|WARN?(?:ING)?|[Ee]rr?(?:or)?|ERR?(?:OR)?|[Cc]rit?(?:ical)?|CRIT?(?:ICAL)?|[Ff]atal|FATAL|[Ss]evere|SEVERE|EMERG(?:ENCY)?|[Ee]merg(?:ency)?)",
}

_GROK_REF = re.compile(
    r"%\{(?P<syntax>[A-Za-z0-9_]+)(?::(?P<name>[^:}]+))?(?::(?P<type>[a-z]+))?\}"
)
_ONIG_NAMED = re.compile(r"\(\?<(?P<name>[A-Za-z_][A-Za-z0-9_.@\-]*)>")
_GROK_TYPES = {
    "int": DataType.INTEGER,
    "long": DataType.LONG,
    "float": DataType.DOUBLE,
    "double": DataType.DOUBLE,
    "boolean": DataType.BOOLEAN,
}


def _expand_library(syntax: str, depth: int = 0) -> str:
    if depth > 20:
        msg = f"circular grok pattern reference [{syntax}]"
        raise ValueError(msg)
    body = GROK_PATTERNS.get(syntax)
    if body is None:
        msg = f"Unable to find pattern [{syntax}] in Grok's pattern dictionary"
        raise ValueError(msg)

    def repl(m: re.Match[str]) -> str:
        return f"(?:{_expand_library(m.group('syntax'), depth + 1)})"

    return _GROK_REF.sub(repl, body)


def grok_regex(pattern: str) -> tuple[str, list[tuple[str, DataType, bool]]]:
    """A GROK pattern as (regex, [(output name, type, multivalued)]) in first-appearance order."""
    outputs: list[tuple[str, DataType]] = []
    counts: dict[str, int] = {}

    def group(name: str, type_: DataType) -> str:
        names = [n for n, _ in outputs]
        if name not in names:
            outputs.append((name, type_))
            counts[name] = 0
            return f"g{len(outputs) - 1}"
        counts[name] += 1
        return f"g{names.index(name)}_{counts[name]}"

    pieces: list[str] = []
    pos = 0
    # One scan over both reference kinds keeps output order equal to text order.
    combined = re.compile(
        f"{_GROK_REF.pattern}|{_ONIG_NAMED.pattern.replace('(?P<name>', '(?P<oname>')}"
    )
    for m in combined.finditer(pattern):
        pieces.append(pattern[pos : m.start()])
        pos = m.end()
        if m.group("oname") is not None:
            pieces.append(f"(?P<{group(m.group('oname'), DataType.KEYWORD)}>")
            continue
        body = _expand_library(m.group("syntax"))
        name = m.group("name")
        if name is None:
            pieces.append(f"(?:{body})")
            continue
        type_text = m.group("type")
        type_ = _GROK_TYPES.get(type_text or "", DataType.KEYWORD)
        if type_text and type_text not in _GROK_TYPES:
            msg = f"unsupported grok type [{type_text}]"
            raise ValueError(msg)
        pieces.append(f"(?P<{group(name, type_)}>{body})")
    pieces.append(pattern[pos:])
    regex = "".join(pieces)
    try:
        re.compile(regex)
    except re.error as exc:
        raise ValueError(str(exc)) from None
    return regex, [(n, t, counts[n] > 0) for n, t in outputs]


_DISSECT_KEY = re.compile(r"%\{([^}]*)\}")


def dissect_regex(
    pattern: str, append_separator: str | None
) -> tuple[str, list[str], tuple[tuple[str, str], ...]]:
    """A DISSECT pattern as (anchored regex, output names, append separators).

    Appended keys (`%{+k}`, ordered by their `/N` position, then text order) capture `g{i}`,
    `g{i}_1`, ... in joining order; a key repeated without `+` keeps its last value (the earlier
    ones only match)."""
    keys = list(_DISSECT_KEY.finditer(pattern))
    if not keys:
        msg = "Unable to find any keys or delimiters."
        raise ValueError(msg)
    parsed = [_dissect_key(m.group(0), m.group(1)) for m in keys]
    names: list[str] = []
    appended = {name for name, append, _, _ in parsed if name and append}
    for name, _, _, _ in parsed:
        if name and name not in names:
            names.append(name)
    groups = _dissect_groups(parsed, names, appended)
    pieces = [r"\A", re.escape(pattern[: keys[0].start()])]
    for index, m in enumerate(keys):
        pad = parsed[index][3]
        last = index == len(keys) - 1
        capture = "(.*)" if last else "(.*?)"
        group = groups[index]
        pieces.append(capture.replace("(", "(?:" if group is None else f"(?P<{group}>", 1))
        end = keys[index + 1].start() if not last else len(pattern)
        delimiter = pattern[m.end() : end]
        if delimiter:
            pieces.append(f"(?:{re.escape(delimiter)})+" if pad else re.escape(delimiter))
        elif not last:
            msg = "consecutive keys need a delimiter between them"
            raise ValueError(msg)
    pieces.append(r"\Z")
    separator = append_separator if append_separator is not None else ""
    append = tuple((n, separator) for n in names if n in appended)
    return "".join(pieces), names, append


def _dissect_key(text: str, raw: str) -> tuple[str, bool, int, bool]:
    """(name or "" when skipped, append, append position, right padding) of one `%{...}`."""
    pad = raw.endswith("->")
    raw = raw.removesuffix("->")
    if raw[:1] in ("*", "&"):
        msg = f"reference keys [{text}] are not supported"
        raise ValueError(msg)
    if raw == "" or raw.startswith("?"):
        return "", False, 0, pad
    append = raw.startswith("+")
    name, _, position = raw.lstrip("+").partition("/")
    order = int(position) if append and position.isdigit() else 0
    return name, append, order, pad


def _dissect_groups(
    parsed: list[tuple[str, bool, int, bool]], names: list[str], appended: set[str]
) -> list[str | None]:
    """The regex group of each key (None: matched, not kept)."""
    groups: list[str | None] = [None] * len(parsed)
    for i, name in enumerate(names):
        where = [k for k, key in enumerate(parsed) if key[0] == name]
        if name in appended:
            ordered = sorted(where, key=lambda k: (parsed[k][2], k))
            for rank, k in enumerate(ordered):
                groups[k] = f"g{i}" if rank == 0 else f"g{i}_{rank}"
        else:
            groups[where[-1]] = f"g{i}"  # a repeated plain key: the last one wins
    return groups


# ---------------------------------------------------------------------------------------------
# Running an Extract step (both executors)

# Python `re` constructs RE2 (DuckDB's regex engine) does not have.
_NOT_RE2 = re.compile(r"\(\?[=!>]|\(\?<[=!]|\\[1-9]|[*+?}]\+")


# A group that may take no part in a match: an alternation, or a group made optional. RE2's
# regexp_extract gives '' for such a group where Elasticsearch gives null (GROK
# "%{WORD:a}( %{WORD:b})?" on "x"). Over-approximated: `|` or `)` then ?, *, {0 or {,.
_MAY_NOT_TAKE_PART = re.compile(r"\||\)(?:[?*]|\{0|\{,)")


def re2_compatible(regex: str) -> bool:
    """Whether DuckDB's RE2 can run this regex as Python's `re` does (no lookaround, atomic
    group, backreference or possessive quantifier), telling a group that took no part (null)
    from one that matched nothing."""
    return _NOT_RE2.search(regex) is None and _MAY_NOT_TAKE_PART.search(regex) is None


def output_groups(regex: re.Pattern[str], count: int) -> list[list[str]]:
    """The groups of each output (`g{i}`, `g{i}_1`, ...) in joining order."""

    def order(name: str) -> int:
        _, _, suffix = name.partition("_")
        return int(suffix) if suffix else 0

    return [
        sorted((g for g in regex.groupindex if g == f"g{i}" or g.startswith(f"g{i}_")), key=order)
        for i in range(count)
    ]


def extract_texts(
    regex: re.Pattern[str],
    groups: list[list[str]],
    separators: list[str | None],
    values: list[str],
) -> list[list[str]] | None:
    """Each output's captured texts over every value of a (multivalued) input: Elasticsearch
    matches each value and gathers what each matching value captured (a repeated GROK name
    captures several; DISSECT appends are joined per value). None when no value matches."""
    found: list[list[str]] = [[] for _ in groups]
    matched = False
    for value in values:
        m = regex.search(value)
        if m is None:
            continue
        matched = True
        for out, names in enumerate(groups):
            texts = [m.group(n) for n in names if m.group(n) is not None]
            separator = separators[out]
            if separator is not None:
                texts = [separator.join(texts)] if texts else []
            found[out].extend(texts)
    return found if matched else None
