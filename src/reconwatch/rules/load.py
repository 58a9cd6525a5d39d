"""Load Elastic detection-rules TOML files unmodified, collecting every problem with its field."""

from __future__ import annotations

import re
import tomllib
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from reconwatch.errors import RuleLoadError
from reconwatch.rules.datemath import DateMath, DateMathError, parse_datemath, parse_interval
from reconwatch.rules.model import (
    DEFAULT_FROM,
    DEFAULT_INTERVAL,
    DEFAULT_MAX_SIGNALS,
    DEFAULT_TO,
    MAX_SIGNALS_CAP,
    Rule,
    parse_alert_suppression,
)
from reconwatch.rules.native import NATIVE_TYPE, DetectorSpec, parse_detector

SEVERITIES = ("low", "medium", "high", "critical")
MATURITIES = ("development", "experimental", "beta", "production", "deprecated")
_DATE_RE = re.compile(r"^\d{4}/\d{2}/\d{2}$")
_NAME_RE = re.compile(r"^[a-zA-Z0-9].+?[a-zA-Z0-9\[\]()]$", re.DOTALL)
# detection-rules' validates_esql_data: aggregating queries need no METADATA _id/_version/_index.
_STATS_BY_RE = re.compile(r"\|\s*stats\b.*?\bby\b", re.IGNORECASE | re.DOTALL)
_METADATA_RE = re.compile(r"^\s*from\s[^|]*\bmetadata\b([^|]*)", re.IGNORECASE)
_KEEP_RE = re.compile(r"\|\s*keep\b([^|]*)", re.IGNORECASE)

Problems = list[tuple[str, str]]


def load_rule_file(path: str | Path, *, builtin: str | None = None) -> Rule:
    """Read and validate one rule file; RuleLoadError lists every problem found."""
    p = Path(path)
    label = str(path)
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise RuleLoadError(label, [("<file>", exc.strerror or str(exc))]) from None
    return load_rule_text(data.decode("utf-8", errors="replace"), label, builtin=builtin)


def load_rule_text(text: str, label: str, *, builtin: str | None = None) -> Rule:
    """Validate a rule file's text; `label` names it in errors."""
    try:
        doc = tomllib.loads(text)
    except (tomllib.TOMLDecodeError, RecursionError) as exc:  # the latter: nested too deeply
        raise RuleLoadError(label, [("<toml>", str(exc))]) from None
    problems: Problems = []
    rule = _build(doc, problems, label, builtin)
    if problems or rule is None:
        raise RuleLoadError(label, problems or [("[rule]", "missing")])
    return rule


def _build(doc: dict[str, Any], problems: Problems, label: str, builtin: str | None) -> Rule | None:
    meta = doc.get("metadata")
    if meta is None:
        problems.append(("[metadata]", "missing table"))
        meta = {}
    elif not isinstance(meta, dict):
        problems.append(("[metadata]", "must be a table"))
        meta = {}
    _check_metadata(meta, problems)
    table = doc.get("rule")
    if not isinstance(table, dict):
        problems.append(("[rule]", "missing table" if table is None else "must be a table"))
        return None
    g = _Getter(table, problems)
    name = g.text("name", required=True)
    if name and not _NAME_RE.match(name):
        problems.append(
            ("rule.name", f"{name!r} must start with a letter or digit and end with one or ])")
        )
    rule_id = g.text("rule_id", required=True)
    if rule_id:
        _check_uuid(rule_id, problems)
    description = g.text("description", required=True)
    severity = g.text("severity", required=True)
    if severity and severity not in SEVERITIES:
        problems.append(("rule.severity", f"{severity!r} is not one of {', '.join(SEVERITIES)}"))
    risk_score = g.integer("risk_score", required=True, low=0, high=100)
    author = g.strings("author", required=True)
    rtype = g.text("type", required=True)
    language = g.text("language")
    query = g.text("query")
    detector: DetectorSpec | None = None
    if rtype == NATIVE_TYPE:
        detector, found = parse_detector(table.get("detector"))
        problems.extend(found)
    elif rtype and rtype != "esql":
        runs = f'ES|QL rules (type = "esql") and its own detectors (type = "{NATIVE_TYPE}")'
        problems.append(("rule.type", f"{rtype!r}: reconwatch runs {runs} only"))
    elif rtype == "esql":
        _check_esql(table, language, query, problems)
    interval_text = g.text("interval") or DEFAULT_INTERVAL
    interval = _parse(parse_interval, interval_text, "rule.interval", problems)
    from_ = g.text("from") or DEFAULT_FROM
    to = g.text("to") or DEFAULT_TO
    start = _parse(parse_datemath, from_, "rule.from", problems)
    end = _parse(parse_datemath, to, "rule.to", problems)
    if start is not None and end is not None and not _before(start, end):
        problems.append(
            ("rule.from", f"{from_!r} is not before rule.to {to!r}: every run would search no time")
        )
    warnings: list[str] = []
    max_signals = g.integer("max_signals", low=1) or DEFAULT_MAX_SIGNALS
    if max_signals > MAX_SIGNALS_CAP:
        warnings.append(
            f"max_signals {max_signals} capped at {MAX_SIGNALS_CAP} "
            "(xpack.alerting.rules.run.alerts.max)"
        )
        max_signals = MAX_SIGNALS_CAP
    threat = g.tables("threat")
    _check_severity_mapping(g.tables("severity_mapping"), problems)
    suppression = table.get("alert_suppression")
    if suppression is not None and not isinstance(suppression, dict):
        problems.append(("rule.alert_suppression", "must be a table"))
        suppression = None
    elif suppression is not None:
        problems.extend(parse_alert_suppression(suppression)[1])
    if problems or interval is None:
        return None
    return Rule(
        path=label,
        name=name,
        rule_id=rule_id,
        type=rtype,
        language=language,
        query=query,
        description=description,
        severity=severity,
        risk_score=risk_score or 0,
        interval=interval,
        interval_text=interval_text,
        from_=from_,
        to=to,
        timestamp_override=g.text("timestamp_override") or None,
        max_signals=max_signals,
        note=g.text("note"),
        setup=g.text("setup"),
        tags=tuple(g.strings("tags")),
        author=tuple(author),
        references=tuple(g.strings("references")),
        false_positives=tuple(g.strings("false_positives")),
        license=g.text("license"),
        threat=tuple(threat),
        alert_suppression=suppression,
        metadata=dict(meta),
        raw=dict(table),
        builtin=builtin,
        warnings=tuple(warnings),
        detector=detector,
    )


class _Getter:
    """Typed reads from the [rule] table that record a problem instead of raising."""

    def __init__(self, table: dict[str, Any], problems: Problems) -> None:
        self.table = table
        self.problems = problems

    def _missing(self, key: str, required: bool) -> bool:
        if key in self.table:
            return False
        if required:
            self.problems.append((f"rule.{key}", "required field is missing"))
        return True

    def text(self, key: str, *, required: bool = False) -> str:
        if self._missing(key, required):
            return ""
        value = self.table[key]
        if not isinstance(value, str):
            self.problems.append((f"rule.{key}", f"must be a string, got {type(value).__name__}"))
            return ""
        if required and not value.strip():
            self.problems.append((f"rule.{key}", "must not be empty"))
        return value

    def integer(
        self, key: str, *, required: bool = False, low: int | None = None, high: int | None = None
    ) -> int | None:
        if self._missing(key, required):
            return None
        value = self.table[key]
        if isinstance(value, bool) or not isinstance(value, int):
            self.problems.append((f"rule.{key}", f"must be an integer, got {value!r}"))
            return None
        if (low is not None and value < low) or (high is not None and value > high):
            bounds = f"{low if low is not None else '-inf'}..{high if high is not None else 'inf'}"
            self.problems.append((f"rule.{key}", f"{value} is outside {bounds}"))
            return None
        return value

    def strings(self, key: str, *, required: bool = False) -> list[str]:
        if self._missing(key, required):
            return []
        value = self.table[key]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self.problems.append((f"rule.{key}", "must be a list of strings"))
            return []
        return value

    def tables(self, key: str) -> list[dict[str, Any]]:
        if key not in self.table:
            return []
        value = self.table[key]
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            self.problems.append((f"rule.{key}", "must be an array of tables"))
            return []
        return value


def _check_severity_mapping(entries: list[dict[str, Any]], problems: Problems) -> None:
    """detection-rules' SeverityMapping: field, operator "equals", value, severity."""
    for i, entry in enumerate(entries):
        where = f"rule.severity_mapping[{i}]"
        for key in ("field", "value"):
            if not isinstance(entry.get(key), str):
                problems.append((f"{where}.{key}", "must be a string"))
        if entry.get("operator") != "equals":
            problems.append((f"{where}.operator", f"{entry.get('operator')!r} is not 'equals'"))
        if entry.get("severity") not in SEVERITIES:
            problems.append(
                (
                    f"{where}.severity",
                    f"{entry.get('severity')!r} is not one of {', '.join(SEVERITIES)}",
                )
            )


def _check_metadata(meta: dict[str, Any], problems: Problems) -> None:
    for key in ("creation_date", "updated_date"):
        value = meta.get(key)
        if value is None:
            problems.append((f"metadata.{key}", "required field is missing"))
        elif not isinstance(value, str) or not _DATE_RE.match(value):
            problems.append((f"metadata.{key}", f"{value!r} is not a YYYY/MM/DD date"))
    maturity = meta.get("maturity")
    if maturity is not None and maturity not in MATURITIES:
        problems.append(
            ("metadata.maturity", f"{maturity!r} is not one of {', '.join(MATURITIES)}")
        )


def _check_uuid(value: str, problems: Problems) -> None:
    try:
        uuid.UUID(value)
    except ValueError:
        problems.append(("rule.rule_id", f"{value!r} is not a UUID"))


def _check_esql(table: dict[str, Any], language: str, query: str, problems: Problems) -> None:
    """The detection-rules schema checks for ES|QL rules (validates_esql_data)."""
    if language != "esql":
        problems.append(("rule.language", f'{language!r}: an esql rule needs language = "esql"'))
    if "index" in table:
        problems.append(("rule.index", "Index is not a valid field for ES|QL rule type"))
    if not query.strip():
        if "query" not in table:
            problems.append(("rule.query", "required field is missing"))
        return
    aggregating = _STATS_BY_RE.search(query) is not None
    meta = _METADATA_RE.search(query)
    meta_fields = set(re.findall(r"[\w@]+", meta.group(1))) if meta else set()
    if not aggregating and not {"_id", "_version", "_index"} <= meta_fields:
        problems.append(
            (
                "rule.query",
                "a non-aggregating query needs `from ... metadata _id, _version, _index`",
            )
        )
    keeps = _KEEP_RE.findall(query)
    if not keeps:
        problems.append(("rule.query", "a `| keep` command is required"))


def _before(start: DateMath, end: DateMath) -> bool:
    """Whether a run's window [start, end) is empty at most at a rounding boundary (`now/d` to
    `now` is empty only at midnight): both are relative to the same `now`, so an instant off
    every boundary decides it."""
    at = datetime(2024, 7, 17, 13, 37, 29, 500000, tzinfo=UTC)
    return start.resolve(at) < end.resolve(at)


def _parse(fn: Callable[[str], Any], text: str, field: str, problems: Problems) -> Any:
    try:
        return fn(text)
    except DateMathError as exc:
        problems.append((field, str(exc)))
        return None
