"""Frame geometry (:mod:`seg_r1.frame`): frame <-> image coordinates, Qwen's 28-pixel grid,
and the centre-aligned image and mask resizes."""

from __future__ import annotations

import numpy as np
import pytest

from seg_r1.frame import (
    QWEN_MAX_PIXELS,
    QWEN_MIN_PIXELS,
    clip_to_frame,
    frame_hw,
    frame_to_image,
    image_to_frame,
    nearest_indices,
    processor_resize,
    resize_mask,
    resize_to_frame,
)

# --------------------------------------------------------------------------- frame geometry


def test_frame_hw():
    assert frame_hw(768) == (768, 768)
    assert frame_hw((480, 640)) == (480, 640)
    assert frame_hw(np.int64(5)) == (5, 5)
    with pytest.raises(ValueError):
        frame_hw(True)


def test_frame_image_conversions():
    # frame 768x768 -> image 480 high, 640 wide: x * 640/768, y * 480/768
    boxes = np.array([[384.0, 96.0, 768.0, 768.0]])
    np.testing.assert_allclose(frame_to_image(boxes, 768, (480, 640)), [[320, 60, 640, 480]])
    points = np.array([[768.0, 384.0]])
    np.testing.assert_allclose(frame_to_image(points, 768, (480, 640)), [[640, 240]])
    np.testing.assert_allclose(image_to_frame([[320, 60, 640, 480]], (480, 640), 768), boxes)
    with pytest.raises(ValueError, match="interleaved"):
        frame_to_image(np.zeros((2, 3)), 768, 10)


def test_clip_to_frame():
    np.testing.assert_array_equal(
        clip_to_frame([[-1, 5, 300, 120]], (100, 200)), [[0, 5, 200, 100]]
    )


@pytest.mark.parametrize(
    ("frame", "bounds", "expected"),
    [
        (768, {}, (756, 756)),  # 768/28 = 27.43 -> 27 * 28
        (1024, {}, (1036, 1036)),  # 1024/28 = 36.57 -> 37 * 28
        (1024, {"max_pixels": 28 * 28 * 1280}, (980, 980)),  # processor class default bounds
        (112, {}, (112, 112)),
        (20, {}, (56, 56)),  # below min_pixels: scaled up
        ((480, 640), {}, (476, 644)),
    ],
)
def test_processor_resize(frame, bounds, expected):
    assert processor_resize(frame, **bounds) == expected


@pytest.mark.parametrize("size", [14, 28, 100, 331, 512, 640, 768, 1000, 1024, 2048, 4000])
def test_processor_resize_matches_transformers(size):
    from transformers.models.qwen2_vl.image_processing_qwen2_vl import smart_resize

    for other in (size, 300, 1200):
        for lo, hi in [
            (QWEN_MIN_PIXELS, QWEN_MAX_PIXELS),
            (56 * 56, 28 * 28 * 1280),
            (3136, 200704),
        ]:
            expected = smart_resize(size, other, factor=28, min_pixels=lo, max_pixels=hi)
            assert processor_resize((size, other), lo, hi) == expected


# --------------------------------------------------------------------------- resizing


def test_resize_helpers():
    image = np.zeros((20, 40, 3), np.uint8)
    assert resize_to_frame(image, 10).shape == (10, 10, 3)
    assert resize_to_frame(image, (20, 40)) is image
    mask = np.zeros((4, 4), bool)
    mask[:2, :2] = True
    up = resize_mask(mask, 8)
    assert up.dtype == bool and up.sum() == 16 and up[:4, :4].all()


def _hand_nearest(size_in: int, size_out: int) -> list[int]:
    """Source index of each destination pixel, by hand: floor((dst + 0.5) * in / out),
    in exact rational arithmetic (the pixel centre ``dst + 0.5`` mapped into the source)."""
    from fractions import Fraction

    return [int((Fraction(d) + Fraction(1, 2)) * size_in // size_out) for d in range(size_out)]


@pytest.mark.parametrize(
    ("size_in", "size_out"),
    [
        ((768, 768), (1024, 1024)),
        ((768, 768), (480, 480)),
        ((1024, 1024), (333, 333)),
        ((97, 97), (768, 768)),
        ((97, 768), (480, 333)),
    ],  # fmt: skip
)
def test_resize_mask_is_centre_aligned(size_in, size_out):
    """Every destination pixel takes the source pixel its centre falls in. The pattern is
    asymmetric (random), so any one-pixel shift of a row or column index shows."""
    rng = np.random.default_rng(sum(size_in) + sum(size_out))
    mask = rng.random(size_in) < 0.5
    rows, cols = _hand_nearest(size_in[0], size_out[0]), _hand_nearest(size_in[1], size_out[1])
    expected = np.array([[mask[r, c] for c in cols] for r in rows])
    out = resize_mask(mask, size_out)
    assert out.dtype == bool and out.shape == size_out
    np.testing.assert_array_equal(out, expected)
    np.testing.assert_array_equal(nearest_indices(size_in[1], size_out[1]), cols)


def test_resize_mask_round_trip_and_edges():
    """Centre alignment keeps an upsample-then-downsample by an integer factor exact, and a
    one-pixel border column keeps its width share (cv2.INTER_NEAREST widened it)."""
    rng = np.random.default_rng(0)
    mask = rng.random((96, 64)) < 0.5
    np.testing.assert_array_equal(resize_mask(resize_mask(mask, (288, 192)), (96, 64)), mask)
    # 768 -> 1024: source column 0 covers destination centres < 4/3, i.e. column 0 alone;
    # cv2.INTER_NEAREST (floor(d * 0.75)) gave it columns 0 and 1.
    edge = np.zeros((768, 768), bool)
    edge[:, 0] = True
    up = resize_mask(edge, 1024)
    assert up.any(axis=0).nonzero()[0].tolist() == [0] and up[:, 0].all()
    with pytest.raises(ValueError, match="2-D"):
        resize_mask(np.zeros((4, 4, 3), bool), 8)
