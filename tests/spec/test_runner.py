"""The conformance runner's classification on a small spec directory: pass, fail with a diff, skips."""

from __future__ import annotations

import os
import signal
from datetime import datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from reconwatch.cli.main import _register_all, app
from reconwatch.conformance import runner
from reconwatch.conformance.datasets import SpecData
from reconwatch.conformance.runner import BACKENDS, CaseResult, Limits, Outcome, run_all
from reconwatch.conformance.specfile import SpecCase

DATA = "host:keyword,ip0:ip,n:integer\nalpha,127.0.0.1,1\nbeta,[::1,10.0.0.1],2\ngamma,,3\n"

SPEC = """\
good
from hosts | where n >= 2 | sort n | keep host, n;

host:keyword | n:integer
beta         | 2
gamma        | 3
;

wrong
from hosts | stats c = count(*);

c:long
4
;

otherIndex
from apps | keep name;

name:keyword
;

ignored-Ignore
row a = 1;

a:integer
2
;

unsupportedFunction
row a = 4 | eval b = median_absolute_deviation(a);

a:integer | b:double
4 | 0.0
;

badSyntax
from hosts | where ((;

n:integer
;

oldOnly#[skip:-8.12.99,reason:old behaviour]
row a = 1;

a:integer
1
;

notYetFixed#[skip:-99.0.0,reason:not yet fixed]
row a = 1;

a:integer
2
;

name with spaces (a|b) and "quotes"
skip_columnar: a limitation of Elasticsearch's columnar test mode
row a = 1, b = "two";

a:integer | b:keyword
1         | "two"
;
"""


@pytest.fixture
def spec_dir(tmp_path: Path) -> Path:
    (tmp_path / "data").mkdir()
    (tmp_path / "specs").mkdir()
    (tmp_path / "data" / "hosts.csv").write_text(DATA, encoding="utf-8")
    (tmp_path / "specs" / "small.csv-spec").write_text(SPEC, encoding="utf-8")
    return tmp_path


@pytest.mark.parametrize("backend", BACKENDS)
def test_classification(spec_dir: Path, backend: str) -> None:
    summary = run_all(spec_dir, (backend,))
    got = {r.case.name: (r.outcome, r.reason) for r in summary.results}
    assert got["good"] == (Outcome.PASSED, "")
    assert got["wrong"][0] is Outcome.FAILED
    assert got["wrong"][1] == "row 1: expected 4"
    assert got["otherIndex"] == (Outcome.SKIPPED, "index [apps] is not available")
    assert got["ignored"] == (Outcome.SKIPPED, "-Ignore in the spec")
    assert got["unsupportedFunction"] == (
        Outcome.SKIPPED,
        "unsupported: function [median_absolute_deviation]",
    )
    # An Elastic test query we cannot parse is our bug, not a skip.
    assert got["badSyntax"][0] is Outcome.FAILED
    assert got["badSyntax"][1].startswith("syntax error: ")
    assert got["oldOnly"] == (Outcome.PASSED, "")
    assert got["notYetFixed"] == (Outcome.SKIPPED, "#[skip:-99.0.0] not yet fixed")
    assert got['name with spaces (a|b) and "quotes"'] == (Outcome.PASSED, "")
    assert not summary.ok


def test_cli_exit_codes_and_counts(spec_dir: Path) -> None:
    _register_all()
    runner = CliRunner()
    result = runner.invoke(app, ["conformance", str(spec_dir), "--case", "good"])
    assert result.exit_code == 0, result.output
    assert "small.csv-spec" in result.output
    result = runner.invoke(app, ["conformance", str(spec_dir), "--backend", "both", "-v"])
    assert result.exit_code == 1
    assert "FAILED  small.csv-spec#wrong [duckdb]" in result.output
    # 3 passed and 2 failed of the cases run (skips do not count): the pass rate per file.
    assert "60.0%" in result.output
    assert "FAILED  small.csv-spec#wrong [reference]" in result.output
    assert "skipped small.csv-spec#otherIndex [reference]: index [apps] is not available" in (
        result.output
    )
    result = runner.invoke(app, ["conformance", str(spec_dir), "--format", "json"])
    assert '"failed": 2' in result.output


def test_a_folder_of_spec_files_takes_its_data_from_the_parent(spec_dir: Path) -> None:
    wave = spec_dir / "specs-wave2"
    wave.mkdir()
    (wave / "more.csv-spec").write_text(SPEC.split("wrong\n")[0], encoding="utf-8")
    both = run_all(spec_dir, ("reference",), limits=None)
    assert both.files == ["more.csv-spec", "small.csv-spec"]
    alone = run_all(wave, ("reference",), limits=None)
    assert [(r.case.id, r.outcome) for r in alone.results] == [
        ("more.csv-spec#good", Outcome.PASSED)
    ]


def _runaway(case: SpecCase, data: SpecData, backend: str, now: datetime) -> CaseResult:
    """Stands in for run_case in the worker: one case loops, one kills its process."""
    if case.name == "good":
        while True:
            pass
    if case.name == "wrong":
        os.kill(os.getpid(), signal.SIGKILL)
    return CaseResult(case, backend, Outcome.PASSED)


def test_a_runaway_or_crashing_case_fails_alone(
    spec_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runner, "run_case", _runaway)
    summary = run_all(spec_dir, ("reference",), limits=Limits(seconds=0.5))
    got = {r.case.name: (r.outcome, r.reason) for r in summary.results}
    assert got["good"] == (Outcome.FAILED, "no result within 0.5s: stopped")
    assert got["wrong"] == (Outcome.FAILED, "the case ended its worker process (signal 9)")
    # The cases after them ran, each in a fresh worker.
    assert got["ignored"] == (Outcome.PASSED, "")
    assert got["notYetFixed"] == (Outcome.PASSED, "")
