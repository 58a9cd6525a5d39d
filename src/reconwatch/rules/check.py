"""A rule's query checked as Elasticsearch would run it: parse, features, and names and types against the schema of its FROM index patterns."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, is_dataclass

from reconwatch.ecs.indices import IndexFields, ecs_array_fields, index_fields
from reconwatch.ecs.schema import MULTIVALUED_FIELDS
from reconwatch.errors import QueryError, QuerySemanticError, UnsupportedFeatureError
from reconwatch.esql import ast
from reconwatch.esql.analyze import compile_query, support_report
from reconwatch.esql.parser import parse
from reconwatch.plan import nodes as p
from reconwatch.plan.nodes import Column
from reconwatch.types import DataType as T

_UNKNOWN = re.compile(r"^Unknown column \[(.+?)\]")
_NO_MATCH = re.compile(r"^No matches found for pattern \[(.+?)\]")
# Each retry adds one field of unknown type; a query naming more than this is not analysed further.
MAX_UNCHECKED = 500


@dataclass(frozen=True, slots=True)
class Finding:
    """One thing found: "error" (the rule fails at run time), "unsupported" (Elasticsearch runs
    it, reconwatch does not) or "warning" (what could not be checked). `text` starts with the
    query's `line L:C:` where there is a position."""

    level: str
    text: str


@dataclass(slots=True)
class QueryCheck:
    findings: list[Finding] = field(default_factory=list)

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.level == "error"]

    @property
    def unsupported(self) -> list[Finding]:
        return [f for f in self.findings if f.level == "unsupported"]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.level == "warning"]


class _SchemaCatalog:
    """The fields FROM's index patterns map, plus names of unknown type added as the analysis
    meets them where some pattern's schema is not complete (typed null: Elasticsearch's
    `unmapped_fields` "nullify" reading, so they never make a type error of their own)."""

    def __init__(self, patterns: tuple[str, ...]) -> None:
        self.schemas = [index_fields(p) for p in patterns]
        known: dict[str, Column] = {}
        for schema in self.schemas:
            columns = _columns(schema.fields)
            if not known:
                known = dict(columns)
                continue
            for name, col in columns.items():
                seen = known.get(name)
                known[name] = col if seen is None else Column(name, _union(seen.type, col.type))
        self.known = known
        self.unchecked: dict[str, list[str]] = {}  # pattern -> names taken with unknown type

    def fields(self, indices: tuple[str, ...]) -> Mapping[str, Column]:
        return self.known

    def admit(self, name: str) -> bool:
        """Take `name` as a field of unknown type when some pattern may map it; False when
        every pattern's schema is complete and none allows it (it fails at run time)."""
        if name in self.known:
            return False
        open_ = [s for s in self.schemas if s.allows(name)]
        if not open_:
            return False
        for schema in open_:
            if not schema.complete:
                self.unchecked.setdefault(schema.pattern, []).append(name)
        self.known[name] = Column(name, T.NULL)
        return True

    def assume(self, name: str) -> bool:
        """Go on past an unknown column (already reported): take it as a field of unknown type.
        False when it was one already (the name is unknown where no source field reaches)."""
        if name in self.known:
            return False
        self.known[name] = Column(name, T.NULL)
        return True

    def partial(self) -> list[IndexFields]:
        return [s for s in self.schemas if not s.complete]


_COLUMNS: dict[int, tuple[Mapping[str, T], dict[str, Column]]] = {}


def _columns(types: Mapping[str, T]) -> dict[str, Column]:
    """A schema's fields as analyser columns (arrays multivalued), built once per schema."""
    got = _COLUMNS.get(id(types))
    if got is None or got[0] is not types:
        arrays = ecs_array_fields() | MULTIVALUED_FIELDS
        columns = {n: Column(n, t, n in arrays) for n, t in types.items()}
        got = _COLUMNS[id(types)] = (types, columns)
    return got[1]


def _union(a: T, b: T) -> T:
    """One name mapped with two types across indices: ES|QL reads keyword and text together as
    keyword, and any other pair as unsupported (a union type the query would have to convert)."""
    if a is b:
        return a
    if a.is_string and b.is_string:
        return T.KEYWORD
    return T.UNSUPPORTED


def check_query(text: str) -> QueryCheck:
    """What running `text` in Elasticsearch would meet: a syntax error, a feature reconwatch
    lacks, an unknown column or a type error (each with the query's line:col), and warnings for
    fields the shipped schemas cannot vouch for."""
    out = QueryCheck()
    try:
        parsed = parse(text)
    except QueryError as exc:
        out.findings.append(Finding("error", exc.one_line()))
        return out
    first = parsed.commands[0] if parsed.commands else None
    if isinstance(first, ast.From):
        bad = _from_problem(first, text)
        if bad is not None:
            out.findings.append(Finding("error", bad))
            return out
    missing = support_report(parsed)
    if missing:
        out.findings += [Finding("unsupported", e.one_line()) for e in missing]
        return out
    patterns = _selecting(first.sources) if isinstance(first, ast.From) else ()
    catalog = _SchemaCatalog(patterns)
    # Names read but never assigned are source fields: admitted at once, not one analysis each.
    for name in sorted(_names(parsed)):
        catalog.admit(name)
    for problem in _analyse(text, catalog):
        out.findings.append(problem)
        unknown = _UNKNOWN.match(problem.text.split(": ", 1)[-1])
        for names in catalog.unchecked.values():
            if unknown is not None and unknown.group(1) in names:
                names.remove(unknown.group(1))  # an error, not something left unchecked
    # One warning per kind of partial schema: its patterns, and the names taken unchecked.
    groups: dict[str, list[IndexFields]] = {}
    for schema in catalog.partial():
        groups.setdefault(schema.source, []).append(schema)
    for schemas in groups.values():
        names = list(
            dict.fromkeys(n for s in schemas for n in catalog.unchecked.get(s.pattern, []))
        )
        if names or not schemas[0].fields:
            out.findings.append(Finding("warning", _unchecked(schemas, names)))
    return out


# METADATA fields Elasticsearch knows (reconwatch runs some of them); any other name is an error.
ES_METADATA = frozenset(
    {"_id", "_index", "_version", "_ignored", "_source", "_score", "_index_mode", "_tier", "_size"}
)
# Characters an index name cannot hold (`*` is a pattern's wildcard), and its forbidden starts.
_INDEX_FORBIDDEN = '\\/?"<>| ,#'
_INDEX_STARTS = ("_", "-", "+")


def _from_problem(cmd: ast.From, text: str) -> str | None:
    """Why Elasticsearch refuses this FROM before running anything: an index pattern that no
    index name can have, or a METADATA field it does not know; None when it accepts it."""
    where = f"line {cmd.span.line}:{cmd.span.col}: " if cmd.span.line else ""
    for pattern in cmd.sources:
        reason = _index_name_problem(pattern)
        if reason is not None:
            return f"{where}Invalid index name [{pattern}], {reason}"
    for meta in cmd.metadata:
        if meta not in ES_METADATA:
            return f"{where}unsupported metadata field [{meta}]"
    return None


def _index_name_problem(pattern: str) -> str | None:
    """Elasticsearch's index name rules for one FROM pattern (a remote cluster prefix, an
    exclusion's `-` and date math `<...>` aside)."""
    name = pattern.strip()
    if name.startswith("<") and name.endswith(">"):
        return None  # date math, resolved by Elasticsearch per run
    name = name.split(":", 1)[1] if ":" in name else name
    name = name.removeprefix("-")
    if name in (".", ".."):
        return "must not be '.' or '..'"
    if name != name.lower():
        return "must be lowercase"
    bad = sorted({c for c in name if c in _INDEX_FORBIDDEN})
    if bad:
        shown = ", ".join(repr(c) if c == " " else c for c in bad)
        return f"must not contain the following characters [{shown}]"
    if name.startswith(_INDEX_STARTS):
        return "must not start with '_', '-', or '+'"
    return None


def _selecting(sources: tuple[str, ...]) -> tuple[str, ...]:
    """The patterns that select indices (an exclusion `-pattern` only removes some), with a
    remote cluster's prefix dropped (its indices have the same names and mappings)."""
    out = []
    for pattern in sources:
        name = pattern.strip()
        if name.startswith("-"):
            continue
        out.append(name.split(":", 1)[1] if ":" in name and not name.startswith("<") else name)
    return tuple(out)


def _names(query: ast.Query) -> set[str]:
    """Column names the query reads before any of its commands assigns them (the source fields
    it may read), by walking the syntax tree in order."""
    read: set[str] = set()
    assigned: set[str] = set()

    def walk(node: object) -> None:
        if isinstance(node, ast.Field):
            if node.name not in assigned:
                read.add(node.name)
        elif isinstance(node, ast.Assign | ast.AggField):
            walk(node.expr)
            if isinstance(node, ast.AggField):
                walk(node.where)
            if node.name is not None:
                assigned.add(node.name)
        elif isinstance(node, ast.Rename):
            read.update(old for old, _new in node.pairs if old not in assigned)
            assigned.update(new for _old, new in node.pairs)
        elif isinstance(node, ast.Keep | ast.Drop):
            read.update(n for n in node.patterns if "*" not in n and n not in assigned)
        elif isinstance(node, tuple | list):
            for item in node:
                walk(item)
        elif is_dataclass(node) and not isinstance(node, type):
            for f in fields(node):
                walk(getattr(node, f.name))

    walk(query.commands)
    return read


def _analyse(text: str, catalog: _SchemaCatalog) -> list[Finding]:
    """The problems the analyser meets over `catalog`, admitting names of unknown type where a
    schema is not complete. An unknown source column is an error and the analysis goes on past
    it (so every such column is named, as Elasticsearch lists every problem); any other problem
    ends it. Without one, only the admitted names the query reads from its source stay listed
    as unchecked."""
    found: list[Finding] = []
    for _attempt in range(MAX_UNCHECKED):
        try:
            plan = compile_query(text, catalog)
        except UnsupportedFeatureError as exc:
            return [*found, Finding("unsupported", exc.one_line())]
        except QuerySemanticError as exc:
            unknown = _UNKNOWN.match(exc.message)
            if unknown is not None and catalog.admit(unknown.group(1)):
                continue
            if _NO_MATCH.match(exc.message) and catalog.partial():
                # KEEP/DROP of a pattern only unshipped fields could match: not decidable here.
                text_ = f"{exc.one_line()} in the shipped schemas; not checked"
                return [*found, Finding("warning", text_)]
            error = Finding("error", exc.one_line())
            if error not in found:
                found.append(error)
            if unknown is None or not catalog.assume(unknown.group(1)):
                return found
            continue
        except QueryError as exc:
            return [*found, Finding("error", exc.one_line())]
        if isinstance(plan.source, p.Source):
            read = {f.name for f in plan.source.fields}
            for names in catalog.unchecked.values():
                names[:] = [n for n in names if n in read]
        return found
    return [*found, Finding("warning", f"more than {MAX_UNCHECKED} names; not checked further")]


def _unchecked(schemas: list[IndexFields], names: list[str]) -> str:
    patterns = ", ".join(s.pattern for s in schemas)
    known = schemas[0].source
    what = "for their fields" if not schemas[0].fields else f"for their fields beyond {known}"
    text = f"cannot check fields of index {patterns}: reconwatch ships no schema {what}"
    if names:
        text += f"; not checked: {', '.join(names)}"
    return text
