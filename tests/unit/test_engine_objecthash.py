"""object-hash compatibility: values computed with the npm package (object-hash 3, node)."""

from __future__ import annotations

from reconwatch.engine.objecthash import UNDEFINED, object_hash


def test_matches_npm_object_hash() -> None:
    assert (
        object_hash(["abc", 1, "idx", "default:rule-1"])
        == "578ec48146d39f4b3febba66f93e2df25124659c"
    )
    assert (
        object_hash(
            [
                "2025-07-16T09:59:00.000Z2025-07-16T11:00:00.000Z",
                "from x | stats c=count()",
                "default:r",
                0,
            ]
        )
        == "4f4fb12d74a47405d2afb30d390ba9b577d7f84f"
    )
    assert (
        object_hash(["a", UNDEFINED, None, True, "é☃𝄞"])
        == "3c00fe460913251ad9fd5f0bdce3912d79a0aaac"
    )


def test_order_matters() -> None:
    assert object_hash(["a", "b"]) != object_hash(["b", "a"])
