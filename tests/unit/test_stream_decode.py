"""The plan's typed decoder gives exactly what decoding and flattening the whole event gives."""

from __future__ import annotations

import json

import pytest

from reconwatch.backends.stream.decode import PlanDecoder
from reconwatch.plan.documents import flatten

FIELDS = ["@timestamp", "host.os.type", "host.name", "event.action", "event.type", "_id"]

DOCS = [
    {
        "@timestamp": "t",
        "host": {"os": {"type": "linux"}, "name": "h"},
        "event": {"type": ["start"]},
    },
    {
        "host.os.type": "linux",
        "host": {"os.type": "mac", "name": ["a", "b"]},
        "other": {"z": [1, 2]},
    },
    {"event": [{"action": "a"}, {"action": "b"}], "_id": "x"},
    {"event": "scalar", "host": {"os": {"type": {"deep": 1}}}},
    {"host": {"name": None}, "event": {"action": [None, "c"]}},
    {"host": {"os": {"type": 5}, "name": True}, "@timestamp": 1.5, "event": None},
    {"host": {"os": None, "name": []}, "_id": ["x", "y"]},
    {"host.name": "a", "host": {"name": "b"}, "event": {"type": [["x"], "y"]}},
]


@pytest.mark.parametrize("doc", DOCS)
def test_typed_decode_equals_flatten(doc: dict[str, object]) -> None:
    flat = flatten(doc)
    want = {k: flat[k] for k in FIELDS if k in flat}
    assert PlanDecoder(FIELDS).decode(json.dumps(doc)) == want


def test_documents_the_types_do_not_fit_fall_back_and_non_objects_raise() -> None:
    decoder = PlanDecoder(FIELDS)
    decoder.decode(json.dumps(DOCS[2]))
    assert decoder.fallbacks == 1
    with pytest.raises(Exception, match="object"):
        decoder.decode("[1, 2]")
