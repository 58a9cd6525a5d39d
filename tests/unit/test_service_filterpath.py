"""filter_path as Elasticsearch applies it to a response: includes, `*`, `**`, excludes."""

from __future__ import annotations

from typing import Any

import pytest

from reconwatch.service.filterpath import apply

BULK: dict[str, Any] = {
    "errors": True,
    "took": 3,
    "items": [
        {"create": {"_index": "i", "_id": "a", "status": 201, "result": "created"}},
        {"create": {"_index": "i", "_id": "b", "status": 409, "error": {"type": "conflict"}}},
        {"index": {"_index": "i", "_id": "c", "status": 201, "result": "created"}},
    ],
}


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (
            "errors,items.*.status",
            {
                "errors": True,
                "items": [
                    {"create": {"status": 201}},
                    {"create": {"status": 409}},
                    {"index": {"status": 201}},
                ],
            },
        ),
        # Array elements no path reaches are left out, as Elasticsearch leaves them.
        ("items.*.error", {"items": [{"create": {"error": {"type": "conflict"}}}]}),
        ("items.create._id", {"items": [{"create": {"_id": "a"}}, {"create": {"_id": "b"}}]}),
        ("took,items.ind*.result", {"took": 3, "items": [{"index": {"result": "created"}}]}),
        ("**.type", {"items": [{"create": {"error": {"type": "conflict"}}}]}),
        ("items.**", {"items": BULK["items"]}),
        ("nothing.here", {}),
        ("-items", {"errors": True, "took": 3}),
        (" errors , ,took", {"errors": True, "took": 3}),
    ],
)
def test_filter_path(spec: str, expected: dict[str, Any]) -> None:
    assert apply(BULK, spec) == expected
