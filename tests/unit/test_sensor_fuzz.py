"""Fuzz (short, for CI) of the parsers fed by other users: tracer lines, audit records, audit files.

bench/fuzz_sensor.py runs the same targets for >= 1M inputs each; the numbers are in docs/sensor.md.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings

from sensor_fuzz import (
    audit_files,
    audit_records,
    check_audit_file,
    check_audit_records,
    check_tracer_line,
    tracer_collector,
    tracer_lines,
)

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
SHORT = settings(FUZZ, max_examples=150)  # an audit input is several records: slower to draw
COLLECTOR = tracer_collector()  # one, like the sensor's: state (caches, counters) carries over


@FUZZ
@given(tracer_lines())
def test_tracer_lines_are_parsed_or_counted_as_unparsable(line: bytes) -> None:
    check_tracer_line(COLLECTOR, line)


@SHORT
@given(audit_records)
def test_audit_records_are_parsed_or_reported_with_their_line(lines: list[str]) -> None:
    check_audit_records(lines)


@SHORT
@given(audit_files)
def test_audit_files_are_read_or_reported_with_their_line(data: bytes) -> None:
    check_audit_file(data)
