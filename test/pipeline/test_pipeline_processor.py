"""Processor policy: resets, batching, pooling, dtype, non-finite handling, counters."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pipeline_fakes import FakeEncoder

from rvm_ros.imaging.preprocess import fit_geometry, preprocess
from rvm_ros.pipeline import (
    ConfigError,
    FrameInput,
    FrameResult,
    FrameSkip,
    ProcessingConfig,
    Processor,
)

S = 1_000_000_000  # ns per second


def image(seed: int, h: int = 64, w: int = 64) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def frame(cam: str, t: float, seed: int = 0, h: int = 64, w: int = 64) -> FrameInput:
    return FrameInput(cam, round(t * S), object(), image(seed, h, w))


def make(enc: FakeEncoder, **kw: object) -> Processor:
    args: dict[str, object] = {
        "cameras": ("front", "rear"),
        "model_height": 64,
        "model_width": 64,
        "tracking": False,
    }
    args.update(kw)
    return Processor(ProcessingConfig(**args), enc)  # type: ignore[arg-type]


def one(proc: Processor, f: FrameInput) -> FrameResult | FrameSkip:
    (r,) = proc.process([f])
    return r


def ok(r: FrameResult | FrameSkip) -> FrameResult:
    assert isinstance(r, FrameResult), r
    return r


# ----------------------------------------------------------------------------- config


@pytest.mark.parametrize(
    ("kw", "param", "text"),
    [
        ({"cameras": ()}, "cameras", "at least one camera"),
        ({"cameras": ("a", "a")}, "cameras", "listed twice"),
        ({"cameras": ("front/x",)}, "cameras", "not valid"),
        ({"cameras": "front"}, "cameras", "tuple of camera names"),
        ({"model_height": 100}, "model_height", "multiple of 16"),
        ({"model_width": 0}, "model_width", "multiple of 16"),
        ({"resize_mode": "fill"}, "resize_mode", "stretch, letterbox, center_crop"),
        ({"reset_on_gap_s": -1.0}, "reset_on_gap_s", ">= 0"),
        ({"reset_on_gap_s": float("nan")}, "reset_on_gap_s", ">= 0"),
        ({"feature_dtype": "bfloat16"}, "feature_dtype", "float16 or float32"),
        ({"feature_pool": 3}, "feature_pool", "feature_pool must be 1, 2 or 4, got 3"),
        ({"feature_pool": True}, "feature_pool", "must be 1, 2 or 4"),
        ({"feature_pool": 4, "model_height": 32}, "feature_pool", "does not divide the 2x"),
        ({"max_batch_wait_ms": -0.5}, "max_batch_wait_ms", ">= 0"),
        ({"max_image_pixels": 0}, "max_image_pixels", "positive integer"),
        ({"tracking": 1}, "tracking", "true or false"),
        ({"track_grid": -2}, "track_grid", ">= 0"),
        ({"tracker": {"topk": 3}}, "tracker", "TrackerConfig"),
    ],
)
def test_config_errors_name_the_parameter(kw: dict[str, object], param: str, text: str) -> None:
    args: dict[str, object] = {"cameras": ("front",)}
    args.update(kw)
    with pytest.raises(ConfigError) as info:
        ProcessingConfig(**args)  # type: ignore[arg-type]
    assert info.value.param == param
    assert text in str(info.value)
    assert param in str(info.value)


def test_config_defaults_and_list_cameras() -> None:
    cfg = ProcessingConfig(cameras=["front", "rear"])  # type: ignore[arg-type]
    assert cfg.cameras == ("front", "rear")
    assert (cfg.model_height, cfg.model_width, cfg.resize_mode) == (256, 256, "stretch")
    assert (cfg.feature_dtype, cfg.feature_pool, cfg.reset_on_gap_s) == ("float16", 1, 1.0)
    assert cfg.max_image_pixels == 4096 * 4096
    assert cfg.tracking is True and cfg.track_grid == 0 and cfg.tracker is None


def test_encoder_size_must_match_config(fake_encoder: FakeEncoder) -> None:
    with pytest.raises(ConfigError, match=r"encoder takes 64x64 frames .* 128x64"):
        Processor(
            ProcessingConfig(cameras=("front",), model_height=128, model_width=64), fake_encoder
        )


# ----------------------------------------------------------------------------- results


def test_first_frame_result_fields(fake_encoder: FakeEncoder) -> None:
    proc = make(fake_encoder, feature_dtype="float32")
    f = frame("front", 10.0, seed=1, h=48, w=80)
    r = ok(one(proc, f))
    assert r.header is f.header and r.stamp_ns == f.stamp_ns and r.camera == "front"
    assert (r.seq, r.frames_since_reset, r.reset_count) == (0, 0, 1)
    assert r.state_reset and r.reset_reason == "first_frame"
    assert (r.grid_height, r.grid_width, r.channels) == (4, 4, 8)
    assert r.features.dtype == np.float32 and r.cls.dtype == np.float32
    assert (r.cell_size, r.pool, r.model_id) == (16, 1, "tiny-fake000000")
    assert r.geometry == fit_geometry(48, 80, 64, 64, "stretch")
    assert r.tracks is None
    assert r.step_ms >= 0
    assert fake_encoder.resets == ["front"]
    # what the encoder saw is the preprocessed image, and the output comes back unchanged
    frames, cams = fake_encoder.calls[0]
    assert cams == ["front"]
    np.testing.assert_array_equal(frames[0], preprocess(f.image, r.geometry))
    out = fake_encoder.outputs[0][0]
    np.testing.assert_array_equal(r.cls, out[0])
    np.testing.assert_array_equal(r.features, out[1:].reshape(4, 4, 8))


def test_consecutive_frames_keep_the_state(fake_encoder: FakeEncoder) -> None:
    proc = make(fake_encoder, feature_dtype="float32")
    results = [ok(one(proc, frame("front", 1.0 + 0.1 * i, seed=7))) for i in range(4)]
    assert [r.seq for r in results] == [0, 1, 2, 3]
    assert [r.frames_since_reset for r in results] == [0, 1, 2, 3]
    assert [r.state_reset for r in results] == [True, False, False, False]
    assert [r.reset_count for r in results] == [1, 1, 1, 1]
    # the fake adds its step count: same image, state carried -> +1 per frame
    np.testing.assert_allclose(results[3].cls - results[0].cls, 3.0, atol=1e-5)
    assert fake_encoder.resets == ["front"]


RESET_CASES = {
    # name: (second frame, action between first and second frame)
    "time_backwards": (frame("front", 9.5, seed=1), None),
    "gap": (frame("front", 11.5, seed=1), None),
    "resolution_change": (frame("front", 10.1, seed=1, h=32, w=32), None),
    "service": (frame("front", 10.1, seed=1), "service"),
    "non_finite": (frame("front", 10.1, seed=1), "nan_output"),
}


@pytest.mark.parametrize("reason", list(RESET_CASES))
def test_every_reset_cause(fake_encoder: FakeEncoder, reason: str) -> None:
    proc = make(fake_encoder, reset_on_gap_s=1.0)
    first = ok(one(proc, frame("front", 10.0, seed=1)))
    assert first.reset_reason == "first_frame"
    nxt, action = RESET_CASES[reason]
    if action == "service":
        proc.reset("front")
    elif action == "nan_output":
        fake_encoder.nan_cameras.add("front")
        skip = one(proc, frame("front", 10.05, seed=1))
        assert isinstance(skip, FrameSkip) and skip.reason == "non_finite"
        assert "model output has 1 NaN/inf values" in skip.detail
        fake_encoder.nan_cameras.clear()
    r = ok(one(proc, nxt))
    assert r.state_reset and r.reset_reason == reason
    assert r.frames_since_reset == 0 and r.reset_count == 2
    assert r.seq == 1
    # a fresh state: the fake's step count restarted at 0 -> CLS equals the image mean
    expected = preprocess(nxt.image, r.geometry).astype(np.float64).mean() / 255.0
    assert float(r.cls[0]) == pytest.approx(expected, abs=1e-3)
    assert "front" in fake_encoder.resets[1:]
    assert proc.stats["front"].resets == {"first_frame": 1, reason: 1}
    # the frame after is normal again
    later = ok(
        one(
            proc,
            frame(
                "front", nxt.stamp_ns / S + 0.05, seed=1, h=nxt.image.shape[0], w=nxt.image.shape[1]
            ),
        )
    )
    assert not later.state_reset and later.reset_reason == "" and later.frames_since_reset == 1


def test_gap_rule_boundary_and_disabled(fake_encoder: FakeEncoder) -> None:
    proc = make(fake_encoder, reset_on_gap_s=0.5)
    ok(one(proc, frame("front", 1.0)))
    assert not ok(one(proc, frame("front", 1.5))).state_reset  # exactly the limit: no reset
    assert ok(one(proc, frame("front", 2.0000001))).reset_reason == "gap"
    proc = make(FakeEncoder(), reset_on_gap_s=0.0)
    ok(one(proc, frame("front", 1.0)))
    assert not ok(one(proc, frame("front", 1000.0))).state_reset
    # equal stamps are not time going backwards
    assert not ok(one(proc, frame("front", 1000.0))).state_reset


def test_service_reset_of_all_cameras_applies_on_each_next_frame(
    fake_encoder: FakeEncoder,
) -> None:
    proc = make(fake_encoder)
    proc.process([frame("front", 1.0), frame("rear", 1.0)])
    proc.reset()
    r = ok(one(proc, frame("front", 1.1)))
    assert r.reset_reason == "service"
    assert ok(one(proc, frame("front", 1.2))).reset_reason == ""
    assert ok(one(proc, frame("rear", 1.2))).reset_reason == "service"
    with pytest.raises(ValueError, match="unknown camera 'side'; configured cameras: front, rear"):
        proc.reset("side")


def test_two_cameras_run_in_one_batched_step(fake_encoder: FakeEncoder) -> None:
    proc = make(fake_encoder, feature_dtype="float32")
    fa, fb = frame("rear", 5.0, seed=2), frame("front", 5.001, seed=3, h=32, w=96)
    ra, rb = proc.process([fa, fb])
    assert len(fake_encoder.calls) == 1
    frames, cams = fake_encoder.calls[0]
    assert frames.shape == (2, 64, 64, 3) and cams == ["rear", "front"]
    ra, rb = ok(ra), ok(rb)
    assert (ra.camera, ra.header, ra.stamp_ns) == ("rear", fa.header, fa.stamp_ns)
    assert (rb.camera, rb.header, rb.stamp_ns) == ("front", fb.header, fb.stamp_ns)
    assert ra.step_ms == rb.step_ms
    assert rb.geometry.image_width == 96 and ra.geometry.image_width == 64
    # each output row goes to its own camera
    for j, (f, r) in enumerate(((fa, ra), (fb, rb))):
        np.testing.assert_array_equal(frames[j], preprocess(f.image, r.geometry))
        np.testing.assert_array_equal(r.cls, fake_encoder.outputs[0][j][0])


def test_two_frames_of_one_camera_in_a_batch_is_an_error(fake_encoder: FakeEncoder) -> None:
    proc = make(fake_encoder)
    with pytest.raises(ValueError, match=r"camera 'front' has more than one frame .*batch\[2\]"):
        proc.process([frame("front", 1.0), frame("rear", 1.0), frame("front", 1.001)])
    assert fake_encoder.calls == [] and proc.stats["front"].frames_in == 0
    with pytest.raises(TypeError, match=r"batch\[0\] is a tuple, not a FrameInput"):
        proc.process([("front", 1, None, image(0))])  # type: ignore[list-item]


def test_unknown_camera_is_skipped_and_the_rest_processed(fake_encoder: FakeEncoder) -> None:
    proc = make(fake_encoder)
    r_side, r_front = proc.process([frame("side", 1.0), frame("front", 1.0)])
    assert isinstance(r_side, FrameSkip) and r_side.reason == "camera_unknown"
    assert r_side.detail == "camera 'side' is not configured (cameras: front, rear)"
    assert isinstance(r_front, FrameResult)
    assert fake_encoder.calls[0][1] == ["front"]
    assert proc.unknown_frames == 1


def test_empty_batch_does_nothing(fake_encoder: FakeEncoder) -> None:
    assert make(fake_encoder).process([]) == []
    assert fake_encoder.calls == []


# ----------------------------------------------------------------------------- pooling, dtype


@pytest.mark.parametrize("pool", [2, 4])
def test_pooling_is_the_mean_of_blocks(pool: int) -> None:
    enc = FakeEncoder()
    proc = make(enc, feature_pool=pool, feature_dtype="float32")
    r = ok(one(proc, frame("front", 1.0, seed=4)))
    grid = enc.outputs[0][0][1:].reshape(4, 4, 8).astype(np.float64)
    n = 4 // pool
    assert (r.grid_height, r.grid_width, r.pool, r.cell_size) == (n, n, pool, 16 * pool)
    for i in range(n):
        for j in range(n):
            block = grid[i * pool : (i + 1) * pool, j * pool : (j + 1) * pool]
            np.testing.assert_allclose(r.features[i, j], block.mean(axis=(0, 1)), rtol=1e-6)
    # the CLS token is not pooled
    np.testing.assert_array_equal(r.cls, enc.outputs[0][0][0])


def test_float16_output_is_the_rounded_float32() -> None:
    enc = FakeEncoder()
    proc = make(enc, feature_dtype="float16")
    r = ok(one(proc, frame("front", 1.0, seed=5)))
    out = enc.outputs[0][0]
    assert r.features.dtype == np.float16 and r.cls.dtype == np.float16
    np.testing.assert_array_equal(r.features, out[1:].reshape(4, 4, 8).astype(np.float16))
    np.testing.assert_array_equal(r.cls, out[0].astype(np.float16))


def test_float16_overflow_is_a_non_finite_skip() -> None:
    enc = FakeEncoder(scale=1e6)  # finite float32 values beyond 65504
    proc = make(enc, feature_dtype="float16")
    r = one(proc, frame("front", 1.0, seed=5))
    assert isinstance(r, FrameSkip) and r.reason == "non_finite"
    assert "float16 range" in r.detail
    enc.scale = 1.0
    assert ok(one(proc, frame("front", 1.1, seed=5))).reset_reason == "non_finite"
    # float32 output keeps such values
    proc32 = make(FakeEncoder(scale=1e6), feature_dtype="float32")
    assert ok(one(proc32, frame("front", 1.0))).features.max() > 65504


# ----------------------------------------------------------------------------- bad input


def test_nan_float_image_is_skipped_and_the_next_frame_flagged(
    fake_encoder: FakeEncoder,
) -> None:
    proc = make(fake_encoder)
    ok(one(proc, frame("front", 1.0)))
    bad = np.full((64, 64, 3), 0.5, np.float32)
    bad[3, 4, 1] = np.nan
    bad[5, 5, 0] = np.inf
    r = one(proc, FrameInput("front", 1_100_000_000, "hdr", bad))
    assert isinstance(r, FrameSkip)
    assert (r.reason, r.header, r.camera, r.stamp_ns) == ("non_finite", "hdr", "front", 1.1e9)
    assert "float image has 2 NaN/inf values" in r.detail and "'front'" in r.detail
    assert len(fake_encoder.calls) == 1  # never reached the encoder
    nxt = ok(one(proc, frame("front", 1.2)))
    assert nxt.state_reset and nxt.reset_reason == "non_finite"
    assert proc.stats["front"].skipped == {"non_finite": 1}


def test_float_image_is_converted_like_uint8(fake_encoder: FakeEncoder) -> None:
    proc = make(fake_encoder)
    u8 = image(9, 48, 80)  # resized: the float path must match the uint8 path exactly
    as_float = u8.astype(np.float32) / 255.0
    proc.process([FrameInput("front", 1, None, as_float), FrameInput("rear", 1, None, u8)])
    frames, _ = fake_encoder.calls[0]
    np.testing.assert_array_equal(frames[0], frames[1])
    # out-of-range float values clip
    wild = np.full((64, 64, 3), 2.0, np.float32)
    wild[0, 0] = -1.0
    proc.process([FrameInput("front", 2, None, wild)])
    got = fake_encoder.calls[1][0][0]
    assert got[0, 0].tolist() == [0, 0, 0] and int(got[10, 10, 0]) == 255


@pytest.mark.parametrize(
    ("img", "reason", "text"),
    [
        (np.zeros((8, 8), np.uint8), "invalid_image", "shape (8, 8), expected [H, W, 3]"),
        (np.zeros((8, 8, 4), np.uint8), "invalid_image", "shape (8, 8, 4)"),
        (np.zeros((8, 8, 3), np.int16), "invalid_image", "dtype is int16"),
        (np.zeros((0, 8, 3), np.uint8), "invalid_image", "empty (0x8)"),
        ([[0, 0, 0]], "invalid_image", "is a list, not a numpy array"),
        (np.zeros((20, 20, 3), np.uint8), "too_large", "20x20 = 400 pixels"),
    ],
)
def test_invalid_images_are_skipped_with_a_reason(img: object, reason: str, text: str) -> None:
    enc = FakeEncoder()
    proc = make(enc, max_image_pixels=399)
    r = one(proc, FrameInput("front", 5, None, img))  # type: ignore[arg-type]
    assert isinstance(r, FrameSkip) and r.reason == reason
    assert text in r.detail and "camera 'front' stamp 5" in r.detail
    assert enc.calls == []
    assert proc.stats["front"].skipped == {reason: 1}


def test_encoder_failure_propagates_and_the_reset_is_not_lost(
    fake_encoder: FakeEncoder,
) -> None:
    proc = make(fake_encoder)
    ok(one(proc, frame("front", 1.0)))
    proc.reset("front")
    fake_encoder.fail = RuntimeError("device lost")
    with pytest.raises(RuntimeError, match="device lost"):
        proc.process([frame("front", 1.1)])
    fake_encoder.fail = None
    r = ok(one(proc, frame("front", 1.2)))
    assert r.reset_reason == "service" and r.seq == 1


# ----------------------------------------------------------------------------- counters


def test_stats_count_everything(fake_encoder: FakeEncoder) -> None:
    proc = make(fake_encoder)
    proc.process([frame("front", 1.0), frame("rear", 1.0)])
    proc.process([frame("front", 0.5), frame("rear", 1.1)])  # front goes backwards
    fake_encoder.nan_cameras.add("rear")
    proc.process([frame("rear", 1.2), FrameInput("front", 2, None, np.zeros((2, 2), np.uint8))])
    fake_encoder.nan_cameras.clear()
    proc.process([frame("rear", 1.3)])
    st = proc.stats
    assert (st["front"].frames_in, st["front"].processed) == (3, 2)
    assert st["front"].skipped == {"invalid_image": 1}
    assert st["front"].resets == {"first_frame": 1, "time_backwards": 1}
    assert (st["rear"].frames_in, st["rear"].processed) == (4, 3)
    assert st["rear"].skipped == {"non_finite": 1}
    assert st["rear"].resets == {"first_frame": 1, "non_finite": 1}
    assert st["rear"].reset_count == 2 and st["rear"].skipped_count == 1
    # a snapshot: changing it does not change the processor
    st["rear"].resets.clear()
    assert proc.stats["rear"].reset_count == 2


@pytest.mark.parametrize(("value", "ok_"), [(65519.0, True), (65520.0, False), (-65520.0, False)])
def test_float16_range_boundary(value: float, ok_: bool) -> None:
    class Const(FakeEncoder):
        def step(self, frames: np.ndarray, cameras: list[str]) -> np.ndarray:
            out = super().step(frames, cameras)
            out[:, 5, 2] = value
            return out

    proc = make(Const(), feature_dtype="float16")
    r = one(proc, frame("front", 1.0))
    if ok_:
        assert ok(r).features.reshape(-1, 8)[4, 2] == np.float16(65504)
    else:
        assert isinstance(r, FrameSkip) and r.reason == "non_finite"
        assert "max |x| = 65520 > 65504" in r.detail


def test_inf_model_output_is_non_finite() -> None:
    class Inf(FakeEncoder):
        def step(self, frames: np.ndarray, cameras: list[str]) -> np.ndarray:
            out = super().step(frames, cameras)
            out[1, 0, :3] = np.inf  # only the second camera
            return out

    proc = make(Inf())
    ra, rb = proc.process([frame("front", 1.0), frame("rear", 1.0)])
    assert isinstance(ra, FrameResult)
    assert isinstance(rb, FrameSkip) and "model output has 3 NaN/inf values" in rb.detail


def test_preprocessing_failure_is_a_skip_and_keeps_a_pending_reset(
    fake_encoder: FakeEncoder, monkeypatch: pytest.MonkeyPatch
) -> None:
    import rvm_ros.imaging.preprocess as pre
    from rvm_ros.imaging import ImageError

    proc = make(fake_encoder)
    ok(one(proc, frame("front", 1.0)))
    proc.reset("front")
    real = pre.preprocess

    def broken(*args: object, **kwargs: object) -> np.ndarray:
        raise ImageError("geometry_mismatch", "preprocess: simulated failure")

    monkeypatch.setattr(pre, "preprocess", broken)
    r = one(proc, frame("front", 1.1))
    assert isinstance(r, FrameSkip) and r.reason == "invalid_image"
    assert "preprocessing failed: " in r.detail and "simulated failure" in r.detail
    monkeypatch.setattr(pre, "preprocess", real)
    assert ok(one(proc, frame("front", 1.2))).reset_reason == "service"


def test_the_core_imports_no_ros(repo_root: Path) -> None:
    code = (
        "import sys, rvm_ros.pipeline, rvm_ros.wire.encode; "
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('rclpy', 'rosidl_runtime_py', 'std_msgs', 'sensor_msgs')); "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=repo_root, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["front", "rear"]),
            st.integers(0, 3000),  # stamp in ms
            st.sampled_from([(64, 64), (32, 48)]),
            st.booleans(),  # a service reset before this frame
        ),
        min_size=1,
        max_size=25,
    )
)
def test_reset_policy_properties(events: list[tuple[str, int, tuple[int, int], bool]]) -> None:
    enc = FakeEncoder()
    proc = make(enc, reset_on_gap_s=1.0)
    last: dict[str, tuple[int, tuple[int, int]]] = {}
    pending: dict[str, bool] = {}
    seq: dict[str, int] = {}
    since: dict[str, int] = {}
    for cam, t_ms, (h, w), service in events:
        if service:
            proc.reset(cam)
            pending[cam] = True
        r = ok(one(proc, frame(cam, t_ms / 1000, h=h, w=w)))
        prev = last.get(cam)
        if prev is None:
            want = "first_frame"
        elif pending.get(cam):
            want = "service"
        elif prev[1] != (h, w):
            want = "resolution_change"
        elif t_ms < prev[0]:
            want = "time_backwards"
        elif t_ms - prev[0] > 1000:
            want = "gap"
        else:
            want = ""
        assert r.reset_reason == want and r.state_reset == bool(want)
        pending[cam] = False
        last[cam] = (t_ms, (h, w))
        since[cam] = 0 if want else since[cam] + 1
        assert r.frames_since_reset == since[cam]
        assert r.seq == seq.get(cam, 0)
        seq[cam] = r.seq + 1
        # the encoder's state agrees: its step count restarted exactly on resets
        assert enc.steps[cam] == since[cam] + 1
    for cam, st_ in proc.stats.items():
        assert st_.processed == seq.get(cam, 0) == st_.frames_in
