"""Processor end to end with the real torch encoder (random tiny model) on real video frames."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from rvm_ros.imaging.preprocess import fit_geometry, preprocess
from rvm_ros.pipeline import (
    FrameInput,
    FrameResult,
    ProcessingConfig,
    Processor,
    group_batches,
)
from rvm_ros.runtime import create_encoder
from rvm_ros.wire.encode import feature_map_fields

H = W = 64
MS = 1_000_000


@pytest.fixture(scope="module")
def video_frames(sample_video: Path) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(sample_video))
    frames = []
    while len(frames) < 6:
        ok, bgr = cap.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))  # [144, 176, 3]
    cap.release()
    assert len(frames) == 6
    return frames


def encoder() -> object:
    return create_encoder("random:tiny", backend="torch", height=H, width=W, max_batch=4)


def reference(frames: list[np.ndarray], mode: str) -> list[np.ndarray]:
    """Features of a frame sequence from a separate encoder, one frame per step."""
    enc = encoder()
    geo = fit_geometry(frames[0].shape[0], frames[0].shape[1], H, W, mode)
    out = []
    for img in frames:
        x = preprocess(img, geo)[None]  # [1, H, W, 3]
        out.append(enc.step(x, ["ref"])[0])  # type: ignore[attr-defined]  # [1 + h*w, D]
    return out


def test_two_cameras_batched_match_separate_runs(video_frames: list[np.ndarray]) -> None:
    front = video_frames
    rear = [np.ascontiguousarray(f[::-1, ::-1]) for f in video_frames]  # another view
    cfg = ProcessingConfig(
        cameras=("front", "rear"),
        model_height=H,
        model_width=W,
        resize_mode="letterbox",
        feature_dtype="float32",
        max_batch_wait_ms=5.0,
        tracking=True,
    )
    enc = encoder()
    proc = Processor(cfg, enc)
    ids = proc.set_query_points("front", [88.0], [72.0], append=False)
    stream = []
    for i in range(len(front)):
        t = 1_000 * MS + i * 33 * MS
        stream.append(FrameInput("front", t, ("front", i), front[i]))
        stream.append(FrameInput("rear", t + 2 * MS, ("rear", i), rear[i]))
    results = []
    batches = list(group_batches(stream, cfg.max_batch_wait_ms))
    assert [len(b) for b in batches] == [2] * len(front)
    for b in batches:
        results.extend(proc.process(b))
    assert all(isinstance(r, FrameResult) for r in results)
    ref = {"front": reference(front, "letterbox"), "rear": reference(rear, "letterbox")}
    for r in results:
        assert isinstance(r, FrameResult)
        cam, i = r.header
        assert r.camera == cam and r.seq == i and r.frames_since_reset == i
        assert r.state_reset == (i == 0)
        assert r.model_id == enc.info.model_id  # type: ignore[attr-defined]
        tokens = ref[cam][i]
        np.testing.assert_allclose(r.cls, tokens[0], atol=1e-4)
        np.testing.assert_allclose(r.features, tokens[1:].reshape(4, 4, -1), atol=1e-4)
        assert r.tracks is not None
        if cam == "front":
            assert r.tracks.ids.tolist() == ids
        else:
            assert len(r.tracks) == 0
    first = results[0]
    assert isinstance(first, FrameResult) and first.tracks is not None
    assert (float(first.tracks.x[0]), float(first.tracks.y[0])) == pytest.approx((88, 72), abs=1e-3)
    fields = feature_map_fields(first)
    assert (fields["image_height"], fields["image_width"], fields["resize_mode"]) == (
        144,
        176,
        "letterbox",
    )


def test_time_backwards_restarts_from_a_fresh_state(video_frames: list[np.ndarray]) -> None:
    cfg = ProcessingConfig(
        cameras=("front",), model_height=H, model_width=W, feature_dtype="float32", tracking=False
    )
    proc = Processor(cfg, encoder())
    seq = [(0, 0), (1, 1), (2, 2), (0, 0), (1, 1)]  # (frame, stamp index): a looped bag
    out = []
    for k, (i, t) in enumerate(seq):
        (r,) = proc.process([FrameInput("front", t * 33 * MS, k, video_frames[i])])
        assert isinstance(r, FrameResult)
        out.append(r)
    assert [r.reset_reason for r in out] == ["first_frame", "", "", "time_backwards", ""]
    # after the reset the model sees exactly what it saw the first time
    np.testing.assert_allclose(out[3].features, out[0].features, atol=1e-5)
    np.testing.assert_allclose(out[4].features, out[1].features, atol=1e-5)
    # and the state really is recurrent: the same frame without a reset differs
    (again,) = proc.process([FrameInput("front", 2 * 33 * MS, 9, video_frames[1])])
    assert isinstance(again, FrameResult) and not again.state_reset
    assert np.abs(again.features - out[4].features).max() > 1e-3
    assert proc.stats["front"].resets == {"first_frame": 1, "time_backwards": 1}


def test_pooled_float16_output(video_frames: list[np.ndarray]) -> None:
    cfg = ProcessingConfig(
        cameras=("front",),
        model_height=H,
        model_width=W,
        feature_dtype="float16",
        feature_pool=2,
        resize_mode="center_crop",
        tracking=False,
    )
    proc = Processor(cfg, encoder())
    (r,) = proc.process([FrameInput("front", 0, None, video_frames[0])])
    assert isinstance(r, FrameResult)
    tokens = reference(video_frames[:1], "center_crop")[0]
    grid = tokens[1:].reshape(4, 4, -1).astype(np.float64)
    pooled = grid.reshape(2, 2, 2, 2, -1).mean(axis=(1, 3))
    assert r.features.dtype == np.float16 and r.features.shape == (2, 2, grid.shape[-1])
    assert (r.cell_size, r.pool, r.grid_height) == (32, 2, 2)
    np.testing.assert_allclose(r.features.astype(np.float64), pooled, rtol=2e-3, atol=2e-3)
