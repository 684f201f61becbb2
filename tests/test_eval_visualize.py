"""Drawing helpers of the evaluation reports and the demo (seg_r1.visualize)."""

from __future__ import annotations

import numpy as np
import pytest

from seg_r1.answer import parse_answer
from seg_r1.visualize import (
    BOX_COLOR,
    GT_COLOR,
    NEGATIVE_COLOR,
    POSITIVE_COLOR,
    Case,
    add_caption,
    case_grid,
    draw_answer,
    draw_prompts,
    overlay_mask,
    save_png,
)


def _grey(h: int = 64, w: int = 96) -> np.ndarray:
    return np.full((h, w, 3), 128, np.uint8)


def test_points_are_green_or_red_and_boxes_yellow():
    image = _grey()
    out = draw_prompts(image, boxes=[[10, 10, 50, 40]], points=[[20, 20], [70, 50]], labels=[1, 0])
    assert tuple(out[20, 20]) == POSITIVE_COLOR
    assert tuple(out[50, 70]) == NEGATIVE_COLOR
    assert tuple(out[10, 30]) == BOX_COLOR  # top edge of the box
    assert tuple(image[20, 20]) == (128, 128, 128)  # input untouched
    with pytest.raises(ValueError, match="2 points but 1 labels"):
        draw_prompts(image, points=[[1, 1], [2, 2]], labels=[1])


def test_draw_answer_maps_frame_coordinates_to_the_image():
    answer = parse_answer("<bbox>[0,0,512,512]</bbox> <points>[[512,256]]</points> "
                          "<labels>[1]</labels>", 1024)  # fmt: skip
    out = draw_answer(_grey(64, 96), answer)  # frame 1024 -> 96 x 64 image
    assert tuple(out[16, 48]) == POSITIVE_COLOR  # (512, 256) -> (48, 16)
    assert tuple(out[32, 20]) == BOX_COLOR  # bottom edge y = 32


def test_overlay_changes_only_the_mask_and_its_outline():
    image = _grey()
    mask = np.zeros(image.shape[:2], bool)
    mask[20:40, 30:60] = True
    out = overlay_mask(image, mask, GT_COLOR, alpha=0.5, contour=False)
    expected = np.round(0.5 * 128 + 0.5 * np.array(GT_COLOR)).astype(np.uint8)
    assert (out[mask] == expected).all()
    assert (out[~mask] == 128).all()
    with pytest.raises(ValueError, match="does not match"):
        overlay_mask(image, mask[:10])


def test_case_grid_and_png(tmp_path):
    image = _grey()
    gt = np.zeros(image.shape[:2], bool)
    gt[10:30, 10:30] = True
    answer = parse_answer("<think> x </think> <bbox>[10,10,30,30]</bbox>", (64, 96))
    case = Case(image, gt, gt, answer, title="id  IoU 1.000", query="the thing \u00e9")
    grid = case_grid([("best", [case, case]), ("worst", [])], panel_height=64, title="t")
    assert grid.dtype == np.uint8 and grid.ndim == 3
    assert grid.shape[1] == 3 * 96 + 2 * 4  # three panels and two gaps (panel height = image)
    path = save_png(tmp_path / "sub" / "grid.png", grid)
    assert path.is_file()
    assert add_caption(image, ["a", "b"]).shape[0] > image.shape[0]
