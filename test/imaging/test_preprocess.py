"""Resize modes and pixel <-> cell geometry (rvm_ros.imaging.preprocess).

The content checks use a float image holding a linear ramp of the continuous pixel-centre
coordinates: bilinear and box filters reproduce a linear function exactly away from the
borders, so every output pixel must hold the ramp evaluated at the image point that the
geometry says it comes from. That tests the geometry against the produced pixels.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rvm_ros.imaging import ImageError
from rvm_ros.imaging.preprocess import (
    INTERPOLATIONS,
    RESIZE_MODES,
    Geometry,
    Preprocessor,
    fit_geometry,
    preprocess,
)

SIZES = [(480, 640), (720, 1280), (144, 176), (256, 256), (100, 300), (300, 100), (61, 77)]
MODEL = (256, 192)  # model_h, model_w (not square on purpose)


def ramp_image(h: int, w: int) -> np.ndarray:
    """float32 [h, w, 3]: channel 0 = x, 1 = y, 2 = x + 2y at pixel centres (i + 0.5)."""
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32) + 0.5
    return np.stack([xs, ys, xs + 2 * ys], axis=-1).astype(np.float32)


@pytest.mark.parametrize("mode", RESIZE_MODES)
@pytest.mark.parametrize("size", SIZES)
def test_geometry_round_trip_and_extent(mode: str, size: tuple[int, int]) -> None:
    ih, iw = size
    mh, mw = MODEL
    g = fit_geometry(ih, iw, mh, mw, mode)
    assert (g.image_height, g.image_width, g.model_height, g.model_width, g.mode) == (
        ih,
        iw,
        mh,
        mw,
        mode,
    )
    xs = np.array([0.0, 0.5, iw / 3, iw - 0.5, float(iw)])
    ys = np.array([0.0, 0.5, ih / 3, ih - 0.5, float(ih)])
    mx, my = g.image_to_model(xs, ys)
    bx, by = g.model_to_image(mx, my)
    np.testing.assert_allclose(bx, xs, atol=1e-9)
    np.testing.assert_allclose(by, ys, atol=1e-9)
    # Image edges in model space: [x0, x1) x [y0, y1).
    x0, y0 = g.image_to_model(0.0, 0.0)
    x1, y1 = g.image_to_model(float(iw), float(ih))
    if mode == "stretch":
        assert (x0, y0) == (0.0, 0.0)
        assert x1 == pytest.approx(mw) and y1 == pytest.approx(mh)
    elif mode == "letterbox":
        assert x0 >= 0 and y0 >= 0 and x1 <= mw + 1e-9 and y1 <= mh + 1e-9
        assert x1 - x0 == pytest.approx(mw) or y1 - y0 == pytest.approx(mh)  # fills one axis
        assert abs(x0 - (mw - x1)) <= 1 and abs(y0 - (mh - y1)) <= 1  # centred
        assert g.scale_x == pytest.approx(g.scale_y, rel=1.0 / min(ih, iw) + 1e-9)
    else:
        assert x0 <= 0 and y0 <= 0 and x1 >= mw - 1e-9 and y1 >= mh - 1e-9
        assert x1 - x0 == pytest.approx(mw) or y1 - y0 == pytest.approx(mh)  # fits one axis
        assert abs(-x0 - (x1 - mw)) <= 1 and abs(-y0 - (y1 - mh)) <= 1  # centred
        assert g.scale_x == pytest.approx(g.scale_y, rel=1.0 / min(ih, iw) + 1e-9)
    assert float(g.offset_x).is_integer() and float(g.offset_y).is_integer()


@pytest.mark.parametrize("interpolation", ["auto", "area", "linear"])
@pytest.mark.parametrize("mode", RESIZE_MODES)
@pytest.mark.parametrize("size", SIZES)
def test_pixels_come_from_where_the_geometry_says(
    mode: str, size: tuple[int, int], interpolation: str
) -> None:
    ih, iw = size
    mh, mw = MODEL
    g = fit_geometry(ih, iw, mh, mw, mode)
    out = preprocess(ramp_image(ih, iw), g, interpolation=interpolation)
    assert out.shape == (mh, mw, 3) and out.dtype == np.float32
    cy, cx = np.mgrid[0:mh, 0:mw] + 0.5
    ix, iy = g.model_to_image(cx, cy)
    # Interior: at least 3 image pixels and 3 model pixels from any image border.
    margin_x = 3 + 3 / g.scale_x
    margin_y = 3 + 3 / g.scale_y
    inside = (ix > margin_x) & (ix < iw - margin_x) & (iy > margin_y) & (iy < ih - margin_y)
    assert inside.sum() > 1000  # enough interior pixels checked
    tol = 1e-3 * max(ih, iw)
    np.testing.assert_allclose(out[..., 0][inside], ix[inside], atol=tol)
    np.testing.assert_allclose(out[..., 1][inside], iy[inside], atol=tol)
    np.testing.assert_allclose(out[..., 2][inside], (ix + 2 * iy)[inside], atol=3 * tol)


@pytest.mark.parametrize("size", SIZES)
def test_letterbox_padding_is_zero_and_image_area_is_exact(size: tuple[int, int]) -> None:
    ih, iw = size
    mh, mw = MODEL
    g = fit_geometry(ih, iw, mh, mw, "letterbox")
    out = preprocess(np.full((ih, iw, 3), 200, np.uint8), g)
    x0, y0 = int(g.offset_x), int(g.offset_y)
    expected = np.zeros((mh, mw, 3), np.uint8)
    expected[y0 : y0 + g.resized_height, x0 : x0 + g.resized_width] = 200
    np.testing.assert_array_equal(out, expected)


@pytest.mark.parametrize("mode", ["stretch", "center_crop"])
def test_constant_image_fills_the_whole_input(mode: str) -> None:
    g = fit_geometry(480, 640, 256, 256, mode)
    out = preprocess(np.full((480, 640, 3), 77, np.uint8), g)
    assert (out == 77).all()


def test_center_crop_keeps_the_centre() -> None:
    # Left / middle / right thirds in three colours; a square crop keeps only the middle.
    img = np.zeros((300, 900, 3), np.uint8)
    img[:, :300] = (255, 0, 0)
    img[:, 300:600] = (0, 255, 0)
    img[:, 600:] = (0, 0, 255)
    g = fit_geometry(300, 900, 128, 128, "center_crop")
    assert g.offset_x == -128.0 and g.scale_x == pytest.approx(128 / 300)
    out = preprocess(img, g)
    assert (out == (0, 255, 0)).all()


@pytest.mark.parametrize("factor", [2, 3, 4, 8])
def test_auto_integer_reduction_is_the_box_filter(factor: int) -> None:
    """``auto`` at an exact integer factor is the box (INTER_AREA) average: 4x and 8x run as
    2x steps, which differ from the one-step box only by the intermediate rounding."""
    import cv2

    mh, mw = MODEL
    rng = np.random.default_rng(factor)
    img = rng.integers(0, 256, (mh * factor, mw * factor, 3), dtype=np.uint8)
    g = fit_geometry(mh * factor, mw * factor, mh, mw, "stretch")
    out = preprocess(img, g)
    box = img.reshape(mh, factor, mw, factor, 3).mean(axis=(1, 3))  # exact block means
    roundings = {2: 1, 3: 1, 4: 2, 8: 3}[factor]  # uint8 roundings of 1/2 level at most
    assert np.abs(out - box).max() <= 0.5 * roundings
    area = cv2.resize(img, (mw, mh), interpolation=cv2.INTER_AREA)
    assert np.abs(out.astype(int) - area.astype(int)).max() <= roundings - 1
    ramp = ramp_image(mh * factor, mw * factor)  # float: no rounding, exact
    np.testing.assert_allclose(
        preprocess(ramp, g), ramp.reshape(mh, factor, mw, factor, 3).mean(axis=(1, 3)), atol=1e-3
    )


def test_out_buffer_is_used_and_checked() -> None:
    g = fit_geometry(48, 64, 32, 32, "stretch")
    img = np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    buf = np.empty((32, 32, 3), np.uint8)
    assert preprocess(img, g, out=buf) is buf
    np.testing.assert_array_equal(buf, preprocess(img, g))
    with pytest.raises(ImageError, match=r"out must be a C-contiguous uint8 array of shape") as e:
        preprocess(img, g, out=np.empty((32, 32, 3), np.float32))
    assert e.value.cause == "geometry_mismatch"


def test_preprocess_input_errors() -> None:
    g = fit_geometry(48, 64, 32, 32, "letterbox")
    with pytest.raises(ImageError, match=r"image shape \(64, 48, 3\) does not match") as e:
        preprocess(np.zeros((64, 48, 3), np.uint8), g)
    assert e.value.cause == "geometry_mismatch"
    with pytest.raises(ImageError, match="dtype must be uint8 or float32, got float64"):
        preprocess(np.zeros((48, 64, 3), np.float64), g)
    with pytest.raises(ValueError, match="interpolation must be one of"):
        preprocess(np.zeros((48, 64, 3), np.uint8), g, interpolation="cubic")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((480, 640, 256, 256, "fill"), "mode must be one of stretch, letterbox, center_crop"),
        ((0, 640, 256, 256, "stretch"), "image_h must be a positive integer, got 0"),
        ((480, 640.0, 256, 256, "stretch"), "image_w must be a positive integer, got 640.0"),
        ((480, 640, 256, -1, "stretch"), "model_w must be a positive integer, got -1"),
    ],
)
def test_fit_geometry_errors(args: tuple, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        fit_geometry(*args)


def test_image_to_cell() -> None:
    g = fit_geometry(480, 640, 256, 256, "letterbox")  # scale 0.4, offset_y 32
    row, col, valid = g.image_to_cell(
        np.array([0.5, 639.5, 320.0, -1.0, 100.0]),
        np.array([0.5, 479.5, 240.0, 10.0, 480.0]),
        16,
    )
    # y 0.5 -> 32.2 -> row 2; y 479.5 -> 223.8 -> row 13; 240 -> 128 -> row 8.
    np.testing.assert_array_equal(row, [2, 13, 8, -1, -1])
    np.testing.assert_array_equal(col, [0, 15, 8, -1, -1])
    np.testing.assert_array_equal(valid, [True, True, True, False, False])
    assert g.image_to_cell(320.0, 240.0, 32) == (4, 4, True)
    crop = fit_geometry(480, 640, 256, 256, "center_crop")
    assert crop.image_to_cell(10.0, 240.0, 16) == (-1, -1, False)  # cropped away
    assert crop.image_to_cell(320.0, 240.0, 16)[2] is True
    with pytest.raises(ValueError, match="cell_size must be > 0"):
        g.image_to_cell(1.0, 1.0, 0)


def test_grid_coordinates_invert() -> None:
    g = fit_geometry(480, 640, 224, 224, "center_crop")
    gx, gy = g.image_to_grid(np.array([100.0, 321.7]), np.array([50.0, 400.2]), 16)
    x, y = g.grid_to_image(gx, gy, 16)
    np.testing.assert_allclose(x, [100.0, 321.7])
    np.testing.assert_allclose(y, [50.0, 400.2])
    # Centre of cell (row 3, col 5) is grid (5.5, 3.5) -> model (88, 56).
    mx, my = g.image_to_model(*g.grid_to_image(5.5, 3.5, 16))
    assert (mx, my) == pytest.approx((88.0, 56.0))


def test_preprocessor_caches_geometry_and_buffer() -> None:
    pre = Preprocessor(64, 64, "letterbox", reuse_output=True)
    a = np.full((48, 80, 3), 9, np.uint8)
    out1, g1 = pre(a)
    out2, g2 = pre(a)
    assert out1 is out2 and g1 is g2
    assert g1 == fit_geometry(48, 80, 64, 64, "letterbox")
    out3, g3 = pre(np.full((80, 48, 3), 9, np.uint8))
    assert g3.image_height == 80 and out3 is not out1
    fresh = Preprocessor(64, 64, "letterbox")
    assert fresh(a)[0] is not fresh(a)[0]
    with pytest.raises(ValueError, match="mode must be one of"):
        Preprocessor(64, 64, "zoom")
    with pytest.raises(ImageError, match=r"expected an \[H, W, 3\] image, got \(4, 4\)"):
        pre(np.zeros((4, 4), np.uint8))


def test_geometry_is_frozen_and_hashable() -> None:
    g = fit_geometry(10, 20, 16, 16, "stretch")
    with pytest.raises(AttributeError):
        g.scale_x = 2.0  # type: ignore[misc]
    assert {g: 1}[Geometry(10, 20, 16, 16, "stretch", 0.8, 1.6, 0.0, 0.0)] == 1


@settings(max_examples=200, deadline=None)
@given(
    st.integers(1, 4000),
    st.integers(1, 4000),
    st.integers(1, 1024),
    st.integers(1, 1024),
    st.sampled_from(RESIZE_MODES),
)
def test_geometry_properties(ih: int, iw: int, mh: int, mw: int, mode: str) -> None:
    g = fit_geometry(ih, iw, mh, mw, mode)
    assert g.scale_x > 0 and g.scale_y > 0
    assert g.resized_width >= 1 and g.resized_height >= 1
    if mode == "letterbox":
        assert g.resized_width <= mw and g.resized_height <= mh
        assert 0 <= g.offset_x <= mw - g.resized_width
        assert 0 <= g.offset_y <= mh - g.resized_height
    elif mode == "center_crop":
        assert g.resized_width >= mw and g.resized_height >= mh
        assert g.offset_x <= 0 and g.offset_x + g.resized_width >= mw
        assert g.offset_y <= 0 and g.offset_y + g.resized_height >= mh
    else:
        assert (g.resized_width, g.resized_height) == (mw, mh)


@settings(max_examples=40, deadline=None)
@given(
    st.integers(1, 300),
    st.integers(1, 300),
    st.integers(1, 96),
    st.integers(1, 96),
    st.sampled_from(RESIZE_MODES),
    st.sampled_from(INTERPOLATIONS),
)
def test_preprocess_any_size(ih: int, iw: int, mh: int, mw: int, mode: str, interp: str) -> None:
    g = fit_geometry(ih, iw, mh, mw, mode)
    out = preprocess(np.full((ih, iw, 3), 255, np.uint8), g, interpolation=interp)
    assert out.shape == (mh, mw, 3)
    covered = int((out == 255).all(axis=2).sum())
    if mode == "letterbox":
        assert covered == g.resized_width * g.resized_height
    else:
        assert covered == mh * mw


@pytest.mark.parametrize("mode", RESIZE_MODES)
def test_read_only_input_from_a_zero_copy_message_view(mode: str) -> None:
    # image_to_array returns a read-only view for unpadded rgb8 bytes: preprocessing reads it.
    img = np.random.default_rng(5).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    view = np.frombuffer(img.tobytes(), np.uint8).reshape(48, 64, 3)
    assert not view.flags.writeable
    g = fit_geometry(48, 64, 32, 32, mode)
    np.testing.assert_array_equal(preprocess(view, g), preprocess(img, g))
