"""The ``opencv_threads`` parameter: OpenCV's pool for the node process."""

from __future__ import annotations

from collections.abc import Iterator

import cv2
import pytest

from rvm_ros.node.opencv_threads import apply_opencv_threads
from rvm_ros.pipeline.config import ConfigError
from rvm_ros.pipeline.params import PARAMS, config_from_params


@pytest.fixture(autouse=True)
def _restore() -> Iterator[None]:
    before = cv2.getNumThreads()
    yield
    cv2.setNumThreads(before)


def test_one_thread_is_set_and_zero_leaves_the_default() -> None:
    cv2.setNumThreads(2)
    assert apply_opencv_threads(0) == 2  # OpenCV's own setting stays
    assert apply_opencv_threads(1) == 1 == cv2.getNumThreads()
    with pytest.raises(ValueError, match="opencv_threads"):
        apply_opencv_threads(-1)


def _values(**changes: object) -> dict[str, object]:
    values: dict[str, object] = {p.name: p.default for p in PARAMS}
    values.update(changes)
    return values


def test_parameter_default_is_one_and_negative_is_refused() -> None:
    assert config_from_params(_values()).opencv_threads == 1
    assert config_from_params(_values(opencv_threads=0)).opencv_threads == 0
    with pytest.raises(ConfigError) as err:
        config_from_params(_values(opencv_threads=-1))
    assert err.value.param == "opencv_threads"
