"""Every real detection-rule query and every official csv-spec query parses and round-trips."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from reconwatch.esql import ast
from reconwatch.esql.parser import parse
from reconwatch.esql.render import render

SHARED = Path(__file__).resolve().parents[2].parent / "shared"
CORPUS = SHARED / "rules" / "esql-corpus"
SPECS = SHARED / "esql-spec" / "specs"

needs_corpus = pytest.mark.skipif(not CORPUS.is_dir(), reason=f"rule corpus not found at {CORPUS}")
needs_specs = pytest.mark.skipif(not SPECS.is_dir(), reason=f"csv-spec files not found at {SPECS}")


def _rule_queries() -> list[tuple[str, str]]:
    if not CORPUS.is_dir():
        return []
    out = []
    for path in sorted(CORPUS.glob("*.toml")):
        with path.open("rb") as f:
            out.append((path.name, tomllib.load(f)["rule"]["query"]))
    return out


RULES = _rule_queries()


@needs_corpus
def test_corpus_has_all_rules() -> None:
    assert len(RULES) == 209


@needs_corpus
@pytest.mark.parametrize(("name", "query"), RULES, ids=[n for n, _ in RULES])
def test_rule_query_parses_and_round_trips(name: str, query: str) -> None:
    tree = parse(query)
    assert isinstance(tree.commands[0], ast.From)
    assert parse(render(tree)) == tree
