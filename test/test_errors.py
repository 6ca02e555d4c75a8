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


def test_check_size_bounds_counts_and_memory(monkeypatch) -> None:
    """The one size bound (issue 27): count limit, memory estimate, not-a-size."""
    import pytest

    from rvm_ros.errors import ALLOC_LIMIT_ENV, TooLarge, check_size

    assert check_size("points", 10, most=100, bytes_each=8) == 10
    with pytest.raises(TooLarge, match="points: 101 is more than the 100 allowed") as err:
        check_size("points", 101, most=100)
    assert err.value.cause == "too_large" and err.value.exit_code == 2
    assert isinstance(err.value, ValueError)
    monkeypatch.setenv(ALLOC_LIMIT_ENV, str(1 << 20))
    with pytest.raises(TooLarge, match=r"frames: 2048 would need about 2.0 MiB of memory"):
        check_size("frames", 2048, bytes_each=1024)
    with pytest.raises(TooLarge, match="a 401-digit number is more than"):
        check_size("dim", 10**400, most=8)
    for bad in (-1, 1.5, True, "3"):
        with pytest.raises(TooLarge, match="is not a size"):
            check_size("n", bad)
