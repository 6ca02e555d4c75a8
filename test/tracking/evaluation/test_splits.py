"""The tracking benchmark: exact ground truth, determinism, splits, settings."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from rvm_ros.tracking.evaluation.sequence import BenchmarkConfig, BenchmarkError
from rvm_ros.tracking.evaluation.sources import development_sources
from rvm_ros.tracking.evaluation.splits import make_sequence, make_sequences

SMALL = BenchmarkConfig(num_sequences=2, num_frames=10, height=96, width=128, num_points=16)


@pytest.fixture(scope="module")
def sources() -> list[tuple[str, np.ndarray]]:
    return development_sources()


def test_development_sources_are_real_images_and_not_the_evaluation_videos(
    sources: list[tuple[str, np.ndarray]],
) -> None:
    names = [n for n, _ in sources]
    assert any(n.startswith("bikes#") for n in names)
    assert not any("carphone" in n or "bigbuckbunny" in n for n in names)
    for _, img in sources:
        assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3
        assert img.std() > 10  # real content, not a blank frame


def test_deterministic_by_seed(sources: list[tuple[str, np.ndarray]]) -> None:
    a = make_sequence(SMALL, "occluder", 1, sources)
    b = make_sequence(SMALL, "occluder", 1, sources)
    np.testing.assert_array_equal(a.frames, b.frames)
    np.testing.assert_array_equal(a.gt_xy, b.gt_xy)
    np.testing.assert_array_equal(a.gt_visible, b.gt_visible)
    c = make_sequence(BenchmarkConfig(**{**SMALL.__dict__, "seed": 1}), "occluder", 1, sources)
    assert not np.array_equal(a.gt_xy, c.gt_xy)


def test_shapes_queries_and_visibility(sources: list[tuple[str, np.ndarray]]) -> None:
    for split in ("plain", "occluder"):
        for seq in make_sequences(SMALL, split, sources):
            assert seq.frames.shape == (10, 96, 128, 3) and seq.frames.dtype == np.uint8
            assert seq.gt_xy.shape == (16, 10, 2) and seq.gt_visible.shape == (16, 10)
            assert (seq.query_frames == 0).all() and seq.gt_visible[:, 0].all()
            x, y = seq.gt_xy[..., 0], seq.gt_xy[..., 1]
            inside = (x >= 0) & (x < 128) & (y >= 0) & (y < 96)
            assert not (seq.gt_visible & ~inside).any()  # visible implies in view
            if split == "plain":  # nothing hides a point but the border
                np.testing.assert_array_equal(seq.gt_visible, inside)


def test_gap_split_skips_frames_of_a_continuing_camera_path(
    sources: list[tuple[str, np.ndarray]],
) -> None:
    cfg = BenchmarkConfig(num_sequences=2, num_frames=10, height=96, width=128, num_points=16)
    for seq in make_sequences(cfg, "gap", sources):
        assert seq.frames.shape == (10, 96, 128, 3) and seq.resets == (5,)
        assert seq.gt_visible[:, 0].all()
        steps = np.linalg.norm(np.diff(seq.gt_xy, axis=1), axis=2)  # [P, T-1] motion per frame
        # across the gap the camera moved through gap_frames (12) missing frames
        assert np.median(steps[:, 4]) > 5 * np.median(np.delete(steps, 4, axis=1))
    assert make_sequence(cfg, "plain", 0, sources).resets == ()


def test_occluders_hide_points_inside_the_view(sources: list[tuple[str, np.ndarray]]) -> None:
    cfg = BenchmarkConfig(num_sequences=3, num_frames=24, height=128, width=128, num_points=64)
    hidden = 0
    for seq in make_sequences(cfg, "occluder", sources):
        x, y = seq.gt_xy[..., 0], seq.gt_xy[..., 1]
        inside = (x >= 0) & (x < 128) & (y >= 0) & (y < 128)
        hidden += int((inside & ~seq.gt_visible).sum())
    assert hidden > 0


def test_ground_truth_follows_the_content(sources: list[tuple[str, np.ndarray]]) -> None:
    """Without noise or photometric change, the patch at a point's true position in a later
    frame matches its patch on the query frame (camera motion is the only change)."""
    cfg = BenchmarkConfig(
        num_sequences=1,
        num_frames=8,
        height=128,
        width=128,
        num_points=32,
        noise_std=0.0,
        photometric=0.0,
        max_rotation_deg=0.0,
        max_zoom=1.0,
        perspective=0.0,
    )
    seq = make_sequence(cfg, "plain", 0, sources)
    grey = [cv2.cvtColor(f, cv2.COLOR_RGB2GRAY).astype(np.float32) for f in seq.frames]
    scores, shuffled = [], []
    for p in range(16):  # the corner points
        if not seq.gt_visible[p].all():
            continue
        x0, y0 = seq.gt_xy[p, 0] - 0.5
        ref = cv2.getRectSubPix(grey[0], (9, 9), (float(x0), float(y0)))
        x, y = seq.gt_xy[p, -1] - 0.5
        cur = cv2.getRectSubPix(grey[-1], (9, 9), (float(x), float(y)))
        off = cv2.getRectSubPix(grey[-1], (9, 9), (float(x) + 4, float(y) + 4))
        scores.append(np.corrcoef(ref.ravel(), cur.ravel())[0, 1])
        shuffled.append(np.corrcoef(ref.ravel(), off.ravel())[0, 1])
    assert len(scores) >= 5
    assert np.median(scores) > 0.95
    assert np.median(scores) > np.median(shuffled) + 0.2


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"num_frames": 1}, "num_frames must be an integer"),
        ({"height": 16}, "height must be an integer"),
        ({"num_points": 0}, "num_points must be an integer"),
        ({"seed": -1}, "seed must be an integer"),
        ({"max_zoom": 0.5}, "max_zoom must be a number"),
        ({"occluders": (3, 1)}, "occluders must be"),
        ({"gap_frames": 0}, "gap_frames must be an integer"),
    ],
)
def test_config_validation(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(BenchmarkError, match=message):
        BenchmarkConfig(**kwargs)  # type: ignore[arg-type]


def test_unknown_split_and_too_few_sources(sources: list[tuple[str, np.ndarray]]) -> None:
    with pytest.raises(BenchmarkError, match="unknown split"):
        make_sequence(SMALL, "foggy", 0, sources)
    with pytest.raises(BenchmarkError, match="at least two"):
        make_sequence(SMALL, "plain", 0, sources[:1])


def test_sources_from_files(tmp_path: object, sample_video: object) -> None:
    from pathlib import Path

    from rvm_ros.tracking.evaluation.sources import sources_from_files

    img = Path(str(tmp_path)) / "still.png"
    cv2.imwrite(str(img), np.full((40, 50, 3), 90, np.uint8))
    srcs = sources_from_files([str(sample_video), str(img)], frames_per_video=3)
    assert [n for n, _ in srcs][-1] == "still" and len(srcs) == 4
    assert all(s.dtype == np.uint8 and s.ndim == 3 for _, s in srcs)
    with pytest.raises(BenchmarkError, match="no such file"):
        sources_from_files([str(img) + ".missing"])
    with pytest.raises(BenchmarkError, match="at least two"):
        sources_from_files([str(img)])


def test_objects_move_on_their_own_and_hide_each_other(
    sources: list[tuple[str, np.ndarray]],
) -> None:
    """``objects``: half the points on objects, half on the background, reported apart;
    the objects' points do not follow the camera, and points get hidden inside the view."""
    cfg = BenchmarkConfig(
        num_sequences=2, num_frames=16, height=96, width=128, num_points=24, noise_std=0.0,
        photometric=0.0,
    )  # fmt: skip
    hidden = 0
    for seq in make_sequences(cfg, "objects", sources):
        names = [n for n, _ in seq.subsets]
        assert names == ["on objects", "background"]
        on_obj = dict(seq.subsets)["on objects"]
        assert on_obj.sum() == 12 and (~on_obj).sum() == 12
        assert seq.gt_visible[:, 0].all()
        x, y = seq.gt_xy[..., 0], seq.gt_xy[..., 1]
        inside = (x >= 0) & (x < 128) & (y >= 0) & (y < 96)
        assert not (seq.gt_visible & ~inside).any()
        hidden += int((inside & ~seq.gt_visible).sum())
        # motion of object points differs from the background's (their own paths)
        step = np.diff(seq.gt_xy, axis=1)  # [P, T-1, 2]
        bg = np.median(step[~on_obj], axis=0)  # [T-1, 2] background motion
        off = np.linalg.norm(step[on_obj] - bg[None], axis=2)
        assert np.median(off) > 0.5
        # a visible object point shows the same content as on its query frame
        grey = [cv2.cvtColor(f, cv2.COLOR_RGB2GRAY).astype(np.float32) for f in seq.frames]
        scores, shifted = [], []
        for p in np.flatnonzero(on_obj & seq.gt_visible[:, 1]):
            x0, y0 = (float(v) for v in seq.gt_xy[p, 0] - 0.5)
            x1, y1 = (float(v) for v in seq.gt_xy[p, 1] - 0.5)
            a = cv2.getRectSubPix(grey[0], (9, 9), (x0, y0)).ravel()
            b = cv2.getRectSubPix(grey[1], (9, 9), (x1, y1)).ravel()
            c = cv2.getRectSubPix(grey[1], (9, 9), (x1 + 3, y1 + 3)).ravel()
            if a.std() > 10:
                scores.append(np.corrcoef(a, b)[0, 1])
                shifted.append(np.corrcoef(a, c)[0, 1])
        assert len(scores) >= 3 and np.median(scores) > 0.7, scores
        assert np.median(scores) > np.median(shifted) + 0.2
    assert hidden > 0
