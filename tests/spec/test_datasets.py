"""Spec data sets loaded as Elasticsearch returns them: typed cells, doc-value order, precision."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from reconwatch.conformance.datasets import (
    MissingIndexError,
    SpecCatalog,
    load_spec_data,
    split_csv_line,
)
from reconwatch.types import DataType as T

EMPLOYEES = """\
birth_date:date     ,emp_no:integer,name:keyword,tags:keyword,notes:text,height.float:float,height.half_float:half_float,height.scaled_float:scaled_float,ips:ip,flags:boolean
1953-09-02T00:00:00Z,10001,Georgi   ,[b,a,b],[z,y],2.03,2.05,2.034,[::1,127.0.0.1],[true,false,true]
,10002,,[],,1.7,1.7,1.7,,
not-a-date,10003,x,y,z,1,1,1,1.2.3.4,true
"""


@pytest.fixture
def spec_dir(tmp_path: Path) -> Path:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "employees.csv").write_text(EMPLOYEES, encoding="utf-8")
    return tmp_path


def test_rows_are_typed_like_elasticsearch(spec_dir: Path) -> None:
    data = load_spec_data(spec_dir)
    first, second, _ = data.rows(("employees",))
    assert first["birth_date"] == datetime(1953, 9, 2, tzinfo=UTC)
    assert first["emp_no"] == 10001
    assert first["name"] == "Georgi"
    # keyword doc values: sorted set; text: source order; booleans sorted but not de-duplicated
    assert first["tags"] == ["a", "b"]
    assert first["notes"] == ["z", "y"]
    assert first["flags"] == [False, True, True]
    assert first["ips"] == ["::1", "127.0.0.1"]  # IPv4 sorts as ::ffff:a.b.c.d
    assert first["height.float"] == 2.0299999713897705
    assert first["height.half_float"] == 2.05078125
    assert first["height.scaled_float"] == 2.03
    assert second["birth_date"] is None
    assert second["tags"] is None
    assert second["name"] is None


def test_bad_cells_become_null_and_are_reported(spec_dir: Path) -> None:
    data = load_spec_data(spec_dir)
    third = data.rows(("employees",))[2]
    assert third["birth_date"] is None
    assert third["emp_no"] == 10003
    assert [(p.line, p.reason.split(":")[0]) for p in data.problems] == [(4, "birth_date")]
    assert data.problems[0].path is not None and data.problems[0].path.endswith("employees.csv")


def test_catalog_columns_and_missing_index(spec_dir: Path) -> None:
    catalog = SpecCatalog(load_spec_data(spec_dir))
    fields = catalog.fields(("emp*",))
    assert list(fields) == sorted(fields)
    assert fields["birth_date"].type is T.DATETIME
    assert fields["height.half_float"].type is T.DOUBLE
    assert fields["tags"].multivalued and not fields["emp_no"].multivalued
    with pytest.raises(MissingIndexError, match=r"index \[apps\]"):
        catalog.fields(("employees", "apps"))


def test_split_csv_line_keeps_multivalues_whole() -> None:
    assert split_csv_line("a,[b, c],,d") == ["a", "[b, c]", "", "d"]
