"""SceneAssembler: one step per batch, cameras in order, late cameras invalid, no stale tokens."""

from __future__ import annotations

import numpy as np
import pytest

from rvm_ros.imaging.preprocess import fit_geometry
from rvm_ros.pipeline.config import ConfigError
from rvm_ros.pipeline.geometry import CameraIntrinsics, pose_matrix
from rvm_ros.pipeline.scene import SceneAssembler
from rvm_ros.pipeline.types import FrameResult, FrameSkip

CAMS = ("front", "left", "right")
MS = 1_000_000
GEOMETRY = fit_geometry(48, 64, 64, 64, "stretch")
K = np.array([[50.0, 0, 32.0], [0, 50.0, 24.0], [0, 0, 1]])


def result(cam: str, stamp_ns: int, value: float, c: int = 4, grid: int = 4) -> FrameResult:
    feats = np.full((grid, grid, c), value, np.float16)
    feats[..., 0] = np.arange(grid * grid).reshape(grid, grid)  # row-major cell index
    return FrameResult(
        camera=cam,
        header=None,
        stamp_ns=stamp_ns,
        seq=0,
        features=feats,
        cls=np.full(c, -value, np.float16),
        grid_height=grid,
        grid_width=grid,
        frames_since_reset=3,
        state_reset=False,
        reset_reason="",
        reset_count=1,
        geometry=GEOMETRY,
        cell_size=16,
        pool=1,
        model_id="tiny-random0",
        step_ms=1.0,
    )


def assembler(policy: str = "partial", tolerance_ms: float = 20.0) -> SceneAssembler:
    asm = SceneAssembler(CAMS, 64, 64, 16, policy, tolerance_ms)
    for i, cam in enumerate(CAMS):
        asm.set_intrinsics(cam, CameraIntrinsics(K, 64, 48, frame_id=f"{cam}_optical"))
        asm.set_extrinsics(cam, pose_matrix([0, i, 1], [-0.5, 0.5, -0.5, 0.5]), "static")
    return asm


def test_complete_step_in_configured_order() -> None:
    asm = assembler()
    # Batch order differs from the configured order: the step follows the configuration.
    step = asm.assemble([result("right", 102 * MS, 3), result("front", 100 * MS, 1),
                         result("left", 101 * MS, 2)])  # fmt: skip
    assert step is not None and step.complete and step.names == CAMS
    assert step.stamp_ns == 101 * MS  # lower median of 100, 101, 102
    assert step.tokens.shape == (3, 17, 4) and step.tokens.dtype == np.float16
    for i, value in enumerate((1, 2, 3)):
        assert (step.tokens[i, 0] == -value).all()  # CLS first
        np.testing.assert_array_equal(step.tokens[i, 1:, 0], np.arange(16))  # grid row-major
        assert (step.tokens[i, 1:, 1:] == value).all()
    assert [c.stamp_ns for c in step.cameras] == [100 * MS, 101 * MS, 102 * MS]
    assert [c.frame_id for c in step.cameras] == [f"{c}_optical" for c in CAMS]
    assert all(np.isfinite(c.scene.projection).all() for c in step.cameras)
    assert step.seq == 0 and asm.assemble([result("front", 200 * MS, 1)]).seq == 1


def test_late_camera_is_invalid_and_its_old_tokens_are_not_reused() -> None:
    asm = assembler()
    asm.assemble([result(c, 100 * MS, 5) for c in CAMS])
    step = asm.assemble([result("front", 133 * MS, 1), result("right", 134 * MS, 3)])
    assert step is not None and not step.complete
    left = step.cameras[1]
    assert (left.valid, left.reason, left.has_tokens, left.stamp_ns) == (False, "missing", False, 0)
    assert (step.tokens[1] == 0).all()  # zeros, not the previous step's 5s
    assert step.cameras[0].valid and step.cameras[2].valid
    # The geometry of the late camera is still known (from its last frame).
    assert np.isfinite(left.scene.projection).all()
    stats = asm.stats()
    assert (stats.complete, stats.partial, stats.dropped_partial) == (1, 1, 0)
    assert stats.invalid["left"] == {"missing": 1}


def test_out_of_sync_skipped_and_missing_geometry() -> None:
    asm = assembler(tolerance_ms=10.0)
    asm.set_intrinsics("right", None)
    skip = FrameSkip("left", 100 * MS, None, "non_finite", "NaN in the image")
    step = asm.assemble([result("front", 100 * MS, 1), skip, result("right", 100 * MS, 3)])
    assert step is not None
    reasons = [c.reason for c in step.cameras]
    assert reasons == ["", "skipped_non_finite", "no_camera_info"]
    assert step.cameras[2].has_tokens and np.isnan(step.cameras[2].scene.projection).all()
    step = asm.assemble([result("front", 200 * MS, 1), result("left", 230 * MS, 2)])
    assert step is not None and step.stamp_ns == 200 * MS
    assert [c.reason for c in step.cameras] == ["", "out_of_sync", "missing"]
    assert step.cameras[1].has_tokens  # its own tokens of this step, flagged


def test_complete_policy_drops_partial_steps() -> None:
    asm = assembler(policy="complete")
    assert asm.assemble([result("front", 0, 1)]) is None
    step = asm.assemble([result(c, MS, 1) for c in CAMS])
    assert step is not None and step.complete and step.seq == 0
    stats = asm.stats()
    assert (stats.complete, stats.partial, stats.dropped_partial) == (1, 0, 1)


def test_nothing_before_the_first_tokens() -> None:
    asm = assembler()
    assert asm.assemble([FrameSkip("front", 0, None, "invalid_image", "empty")]) is None


@pytest.mark.parametrize(
    ("kwargs", "param"),
    [
        ({"policy": "newest"}, "scene_tokens.sync_policy"),
        ({"tolerance_ms": -1.0}, "scene_tokens.tolerance_ms"),
        ({"cell_size": 24}, "feature_pool"),
    ],
)
def test_bad_settings_name_the_parameter(kwargs: dict, param: str) -> None:
    args = {"cameras": CAMS, "model_height": 64, "model_width": 64, "cell_size": 16} | kwargs
    with pytest.raises(ConfigError) as info:
        SceneAssembler(**args)
    assert info.value.param == param


def test_tokens_are_written_into_a_given_payload_buffer() -> None:
    asm = assembler()
    buffers: list[bytearray] = []

    def payload(nbytes: int) -> bytearray:
        buffers.append(bytearray(nbytes))
        return buffers[-1]

    step = asm.assemble([result(c, 0, i + 1) for i, c in enumerate(CAMS)], payload=payload)
    assert step is not None and step.payload is buffers[0]
    assert len(buffers[0]) == 3 * 17 * 4 * 2  # float16
    assert np.shares_memory(step.tokens, np.frombuffer(buffers[0], np.uint8))
    assert (np.frombuffer(buffers[0], "<f2").reshape(3, 17, 4)[2, 0] == -3).all()
