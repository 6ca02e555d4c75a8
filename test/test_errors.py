"""rvm_ros.errors: the key-set difference reporter and the name listing."""

from __future__ import annotations

import pytest

from rvm_ros.errors import key_differences, listing


@pytest.mark.parametrize(
    ("names", "limit", "text"),
    [
        (["a", "b"], 8, "a, b"),
        ([f"k{i}" for i in range(10)], 8, "k0, k1, k2, k3, k4, k5, k6, k7 (and 2 more)"),
        ([f"k{i}" for i in range(10)], None, ", ".join(f"k{i}" for i in range(10))),
        ([], 8, ""),
    ],
)
def test_listing(names: list[str], limit: int | None, text: str) -> None:
    assert listing(names, limit) == text


def test_key_differences_of_mappings() -> None:
    expected = {"a": (1, 2), "b": (3,), "c": (4,)}
    got = {"b": (3,), "c": (5,), "z": (0,)}
    assert key_differences(expected, got) == [
        "missing key(s): a",
        "unexpected key(s): z",
        "shape mismatch: c (5,) (expected (4,))",
    ]
    assert key_differences(expected, dict(expected)) == []


def test_key_differences_of_key_sets_labels_and_describe() -> None:
    assert key_differences({"x", "y"}, {"y", "w"}, "missing", "unknown", limit=None) == [
        "missing x",
        "unknown w",
    ]
    text = key_differences({"k": 1}, {"k": 2}, describe=lambda k, g, e: f"{k}: {g} != {e}")
    assert text == ["shape mismatch: k: 2 != 1"]
