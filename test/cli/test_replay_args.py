"""`rvm-ros replay` offers the node's backend and precision choices."""

from __future__ import annotations

import argparse

from rvm_ros.cli import replay
from rvm_ros.pipeline.params import PARAMS


def _choices(name: str) -> tuple[str, ...]:
    (spec,) = [p for p in PARAMS if p.name == name]
    assert spec.choices is not None
    return tuple(spec.choices)


def test_backend_and_precision_choices_are_the_nodes() -> None:
    assert set(replay.BACKENDS) == set(_choices("backend"))
    assert set(replay.PRECISIONS) == set(_choices("precision"))
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers()
    replay.register(sub)
    args = parser.parse_args(["replay", "bag", "--out", "o", "--precision", "int8"])
    assert args.precision == "int8"
