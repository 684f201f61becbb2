"""Rewards (SPEC §4): exact values, the pysodmetrics oracle, the official defects kept out,
TRL's calling conventions, masks computed once, and a GrabCut done-when check."""

from __future__ import annotations

import numpy as np
import pytest
from fake_segmenter import RectSegmenter
from PIL import Image
from py_sod_metrics import Smeasure

from seg_r1.answer import parse_answer
from seg_r1.data.io import ground_truth
from seg_r1.mask_computer import MaskComputer, completion_text
from seg_r1.rewards import (
    REWARD_FUNCS,
    format_reward,
    get_reward_funcs,
    prerl_format_reward,
    segmentation_reward,
)
from seg_r1.segmenters import ClassicalSegmenter, clear_segmenter_cache

THINK = "<think> ok </think> "


def oracle_s_measure(pred: np.ndarray, gt: np.ndarray) -> float:
    """pysodmetrics' S-measure on the same masks as uint8 0/255."""
    sm = Smeasure()
    sm.step(pred=pred.astype(np.uint8) * 255, gt=gt.astype(np.uint8) * 255)
    return float(sm.get_results()["sm"])


# 10x10 frame; the GT is the 4x4 square rows 2..5, cols 2..5 (16 pixels).
FRAME = 10
IMAGE = np.random.default_rng(0).integers(0, 255, (FRAME, FRAME, 3), dtype=np.uint8)
GT = np.zeros((FRAME, FRAME), bool)
GT[2:6, 2:6] = True


def seg_funcs(
    *names: str, frame: int = FRAME, rule: str = "well_formed"
) -> tuple[list, RectSegmenter]:
    """Reward functions on the rectangle fake. Most tests below score box-only answers, so
    they use the lenient ``well_formed`` rule; the default ``complete`` rule (the official
    reward's) has its own exact-value tests (``test_default_rule_*``)."""
    seg = RectSegmenter()
    return get_reward_funcs(list(names), segmenter=seg, frame_size=frame, answer_rule=rule), seg


def call(func, completions, image=IMAGE, mask=GT, **extra):
    n = len(completions)
    return func(completions, image=[image] * n, mask=[mask] * n, **extra)


# --------------------------------------------------------------------------- format


def test_format_reward_exact():
    completions = [
        THINK + "<bbox>[1,1,5,5]</bbox>, <points>[[2,2]]</points>, <labels>[1]</labels>",  # 1
        THINK + "<bbox>[1,1,5,5]</bbox>, <points>[[2,2],[3,3]]</points>, <labels>[1]</labels>",
        "<bbox>[1,1,5,5]</bbox>, <points>[[2,2]]</points>, <labels>[1]</labels>",  # no think
        THINK + "<points>[[2,2]]</points>, <labels>[1]</labels>",  # no box
        THINK + "<bbox>[20,20,30,30]</bbox>, <points>[[2,2]]</points>, <labels>[1]</labels>",
        THINK + "<bbox>[1,1,5,5]</bbox>",  # no points / labels
        "<think></think><bbox>[1,1,5,5]</bbox><points>[[2,2]]</points><labels>[0]</labels>",  # 1
    ]
    assert format_reward(completions, frame_size=FRAME) == [1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0]


def test_prerl_format_reward_exact():
    completions = [
        "<points>[[2,2],[8,8]]</points> <labels>[1,0]</labels>",
        "<points>[[2,2],[8,8]]</points> <labels>[1]</labels>",
        "<points>[[2,2]]</points>",
        "<labels>[1]</labels>",
        "<points>[]</points> <labels>[]</labels>",
        THINK + "<bbox>[1,1,5,5]</bbox>, <points>[[2,2]]</points>, <labels>[1]</labels>",
    ]
    assert prerl_format_reward(completions, frame_size=FRAME) == [1.0, 0.0, 0.0, 0.0, 0.0, 1.0]


def test_format_logs_failures():
    logged: dict[str, float] = {}
    extra: dict[str, list] = {}
    format_reward(
        [THINK + "<bbox>[1,1,5,5]</bbox><points>[[2,2]]</points><labels>[1]</labels>", "x"],
        log_metric=logged.__setitem__,
        log_extra=extra.__setitem__,
    )
    assert logged == {"format/failures": 1.0, "format/failure_rate": 0.5}
    assert extra == {"format_error": [None, "missing <think>...</think>"]}


# --------------------------------------------------------------------------- segmentation


def test_segmentation_reward_exact_values():
    (seg_fn,), _ = seg_funcs("segmentation")
    completions = [
        THINK + "<bbox>[2,2,6,6]</bbox>",  # pred == GT: IoU 1, S 1 -> 1.0
        THINK + "<bbox>[2,2,6,4]</bbox>",  # rows 2..3: 8 px, all in GT; IoU 8/16 = 0.5
        "no answer at all",  # unusable -> 0.0
        THINK + "<bbox>[2,2,4,6]</bbox><bbox>[4,2,6,6]</bbox>",  # two halves: union == GT -> 1.0
        # the points are inside the box and passed on; the fake ignores them: IoU 1
        THINK + "<bbox>[2,2,6,6]</bbox><points>[[3,3],[9,9]]</points><labels>[1,0]</labels>",
        THINK + "<bbox>[2,2,6,6]</bbox><points>[[3,3]]</points><labels>[1,0]</labels>",  # 0.0
    ]
    rewards = call(seg_fn, completions)
    half = np.zeros_like(GT)
    half[2:4, 2:6] = True
    s_half = oracle_s_measure(half, GT)
    assert s_half == pytest.approx(0.6418168734161721, abs=1e-12)
    assert rewards == pytest.approx([1.0, 0.7 * 0.5 + 0.3 * s_half, 0.0, 1.0, 1.0, 0.0], abs=1e-12)


def test_default_rule_is_the_official_complete_rule():
    """By default (the official reward's rule) a mask needs a box AND points and labels with
    matching counts; no think block is needed for the segmentation term (the format reward
    asks for it). Values by hand: the fake paints the boxes, the GT is rows/cols 2..5."""
    seg = RectSegmenter()
    (seg_fn,) = get_reward_funcs(["segmentation"], segmenter=seg, frame_size=FRAME)
    half = np.zeros_like(GT)
    half[2:4, 2:6] = True
    half_reward = 0.7 * 0.5 + 0.3 * oracle_s_measure(half, GT)
    pts = "<points>[[3,3]]</points><labels>[1]</labels>"
    completions = [
        THINK + "<bbox>[2,2,6,6]</bbox>" + pts,  # complete, pred == GT -> 1.0
        THINK + "<bbox>[2,2,6,4]</bbox>" + pts,  # complete, half the GT
        "<bbox>[2,2,6,6]</bbox>" + pts,  # no think: still segmented -> 1.0
        THINK + "<bbox>[2,2,6,6]</bbox>",  # box only -> 0.0 (the lenient rule gives 1.0)
        THINK + "<bbox>[2,2,6,6]</bbox><points>[[3,3]]</points><labels>[1,0]</labels>",  # 0.0
        THINK + "<bbox>[2,2,6,6]</bbox><points>[[3,3]]</points>",  # no labels -> 0.0
        THINK + "<bbox>[2,2,6,6]</bbox><points>[]</points><labels>[]</labels>",  # no point -> 0.0
        THINK + pts,  # no box -> 0.0
    ]
    logged: dict[str, float] = {}
    extra: dict[str, list] = {}
    rewards = call(seg_fn, completions, log_metric=logged.__setitem__, log_extra=extra.__setitem__)
    assert rewards == pytest.approx([1.0, half_reward, 1.0, 0, 0, 0, 0, 0], abs=1e-12)
    assert logged["segmentation/parse_failures"] == 5.0
    assert extra["segmentation_parse_error"][:4] == [None, None, None,
        "no points and labels (the 'complete' rule needs them)"]  # fmt: skip
    # The same completions under the lenient rule: the box-only answers (no points, or empty
    # point and label lists) are segmented from their box.
    (lenient,), _ = seg_funcs("segmentation", rule="well_formed")
    assert call(lenient, completions) == pytest.approx(
        [1.0, half_reward, 1.0, 1.0, 0, 0, 1.0, 0], abs=1e-12
    )


def test_default_rule_reaches_the_recipe_and_the_trainer():
    from seg_r1.configs import GRPOScriptArguments
    from seg_r1.segmenters import DEFAULT_TRAIN_ANSWER_RULE

    assert DEFAULT_TRAIN_ANSWER_RULE == "complete"
    assert MaskComputer(RectSegmenter(), FRAME).answer_rule == "complete"
    assert GRPOScriptArguments(datasets=["synthetic"]).answer_rule == "complete"
    assert GRPOScriptArguments(datasets=["synthetic"], answer_rule="well_formed").answer_rule
    with pytest.raises(ValueError, match="answer rule"):
        GRPOScriptArguments(datasets=["synthetic"], answer_rule="box_only")


def test_segmentation_special_cases_by_hand():
    (seg_fn,), _ = seg_funcs("segmentation")
    empty = np.zeros_like(GT)
    full = np.ones_like(GT)
    # Empty GT, empty prediction is impossible with a valid box; a 4x5 = 20 px box on an empty
    # GT: IoU 0, S-measure = 1 - mean(pred) = 1 - 0.2 = 0.8 -> 0.3 * 0.8 = 0.24.
    assert call(seg_fn, [THINK + "<bbox>[0,0,5,4]</bbox>"], mask=empty) == pytest.approx([0.24])
    # Full GT, a 5x5 = 25 px box: IoU 25/100, S-measure = mean(pred) = 0.25 -> 0.25.
    assert call(seg_fn, [THINK + "<bbox>[0,0,5,5]</bbox>"], mask=full) == pytest.approx([0.25])


@pytest.mark.parametrize(
    "box", ["[0,0,3,3]", "[1,2,7,9]", "[4,4,10,10]", "[0,0,10,10]", "[5,0,6,10]", "[2,5,6,6]"]
)
def test_segmentation_matches_oracle(box):
    (seg_fn,), _ = seg_funcs("segmentation")
    (reward,) = call(seg_fn, [THINK + f"<bbox>{box}</bbox>"])
    x1, y1, x2, y2 = (int(v) for v in box.strip("[]").split(","))
    pred = np.zeros_like(GT)
    pred[y1:y2, x1:x2] = True
    iou = (pred & GT).sum() / (pred | GT).sum()
    assert reward == pytest.approx(
        0.7 * iou + 0.3 * min(max(oracle_s_measure(pred, GT), 0), 1), abs=1e-12
    )


def test_prerl_segmentation_uses_points_only():
    (seg_fn,), _ = seg_funcs("prerl_segmentation")
    # The fake paints the foreground points: 4 px inside GT -> IoU 4/16 = 0.25. The bbox is ignored.
    text = "<bbox>[2,2,6,6]</bbox><points>[[2,2],[3,3],[4,4],[5,5],[9,0]]</points><labels>[1,1,1,1,0]</labels>"
    pred = np.zeros_like(GT)
    pred[[2, 3, 4, 5], [2, 3, 4, 5]] = True
    expected = 0.7 * 0.25 + 0.3 * oracle_s_measure(pred, GT)
    assert call(seg_fn, [text, "<points>[[1,1]]</points>"]) == pytest.approx(
        [expected, 0.0], abs=1e-12
    )


def test_segmentation_reward_needs_a_segmenter():
    with pytest.raises(ValueError, match="needs a segmenter"):
        segmentation_reward(["x"], image=[IMAGE], mask=[GT])
    with pytest.raises(ValueError, match="need a segmenter"):
        get_reward_funcs(["format", "segmentation"])


def test_images_column_is_accepted():
    (seg_fn,), _ = seg_funcs("segmentation")
    rewards = seg_fn([THINK + "<bbox>[2,2,6,6]</bbox>"], images=[[IMAGE]], mask=[GT])
    assert rewards == pytest.approx([1.0], abs=1e-9)


def test_missing_column_is_a_clear_error():
    (seg_fn,), _ = seg_funcs("segmentation")
    with pytest.raises(KeyError, match="'mask'"):
        seg_fn([THINK + "<bbox>[2,2,6,6]</bbox>"], image=[IMAGE])


# --------------------------------------------------------------------------- the official defects


def test_ground_truth_scales_agree(tmp_path):
    """Regression: the official ``> 128`` on a 0/1 GT made it empty. Every spelling of the
    same GT must binarise to the same mask (and give the same reward)."""
    path = tmp_path / "gt.png"
    Image.fromarray(GT.astype(np.uint8) * 255).save(path)
    spellings = {
        "bool": GT,
        "uint8 0/1": GT.astype(np.uint8),
        "uint8 0/255": GT.astype(np.uint8) * 255,
        "float 0/1": GT.astype(np.float32),
        "PIL L 0/255": Image.fromarray(GT.astype(np.uint8) * 255, "L"),
        "PIL L 0/1": Image.fromarray(GT.astype(np.uint8), "L"),
        "PIL 1": Image.fromarray(GT),
        "path": str(path),
        "hf dict": {"path": str(path), "bytes": None},
    }
    (seg_fn,), _ = seg_funcs("segmentation")
    text = THINK + "<bbox>[2,2,6,4]</bbox>"
    rewards = {}
    for name, value in spellings.items():
        np.testing.assert_array_equal(ground_truth(value), GT, err_msg=name)
        (rewards[name],) = call(seg_fn, [text], mask=value)
    assert len(set(rewards.values())) == 1, rewards
    # Soft 0-255 GT: the one GT rule, > 128 (the toolbox's): 127 and 128 are background.
    np.testing.assert_array_equal(
        ground_truth(np.array([[127, 128, 129]], np.uint8)), [[False, False, True]]
    )


def test_s_measure_term_is_not_one_minus_foreground_fraction():
    """Regression: with the defect the GT is empty, IoU is 0 and the S term is
    ``1 - mean(pred)``; a perfect answer would score 0.3 * (1 - 16/100) = 0.252 and an empty
    one more than a good one. Here the perfect answer scores 1.0 and the S term is the oracle's."""
    (seg_fn,), _ = seg_funcs("segmentation")
    gt01 = GT.astype(np.uint8)  # 0/1, the case the official code broke
    perfect, half = call(
        seg_fn, [THINK + "<bbox>[2,2,6,6]</bbox>", THINK + "<bbox>[2,2,6,4]</bbox>"], mask=gt01
    )
    assert perfect == pytest.approx(1.0, abs=1e-9)  # S-measure's eps keeps it a hair below 1
    pred = np.zeros_like(GT)
    pred[2:4, 2:6] = True
    s_term = (half - 0.7 * 0.5) / 0.3
    assert s_term == pytest.approx(oracle_s_measure(pred, GT), abs=1e-9)
    assert abs(s_term - (1 - pred.mean())) > 0.1  # 0.6418 vs 0.92
    # And a smaller mask is not preferred: the 8-px half scores below the perfect 16-px mask.
    assert half < perfect


# --------------------------------------------------------------------------- calling conventions


def test_conversational_completions():
    text = THINK + "<bbox>[2,2,6,6]</bbox>, <points>[[3,3]]</points>, <labels>[1]</labels>"
    as_str = [{"role": "assistant", "content": text}]
    as_parts = [{"role": "assistant", "content": [{"type": "text", "text": text}]}]
    assert completion_text(as_str) == completion_text(as_parts) == text
    (fmt, seg_fn), _ = seg_funcs("format", "segmentation")
    assert call(fmt, [text, as_str, as_parts]) == [1.0, 1.0, 1.0]
    assert call(seg_fn, [text, as_str, as_parts]) == pytest.approx([1.0] * 3, abs=1e-9)
    with pytest.raises(TypeError, match="unsupported completion"):
        completion_text(42)


def test_trl_style_call_logs_metrics_and_extras():
    (seg_fn,), _ = seg_funcs("segmentation")
    logged: dict[str, float] = {}
    extra: dict[str, list] = {}
    completions = [
        THINK + "<bbox>[2,2,6,6]</bbox><points>[[3,3],[4,4]]</points><labels>[1,1]</labels>",
        THINK + "<bbox>[2,2,6,4]</bbox><bbox>[0,0,1,1]</bbox>",
        "garbage",
    ]
    n = len(completions)
    rewards = seg_fn(
        prompts=["p"] * n,
        completions=completions,
        completion_ids=[[1]] * n,
        image=[Image.fromarray(IMAGE)] * n,  # PIL images work like arrays
        mask=[Image.fromarray(GT.astype(np.uint8) * 255)] * n,
        id=["a"] * n,
        trainer_state=None,
        log_metric=logged.__setitem__,
        log_extra=extra.__setitem__,
    )
    assert rewards[0] == pytest.approx(1.0, abs=1e-9) and rewards[2] == 0.0
    pred = np.zeros_like(GT)
    pred[2:4, 2:6] = True
    pred[0, 0] = True  # IoU 8 / 17
    assert logged == pytest.approx(
        {
            "segmentation/parse_failures": 1.0,
            "segmentation/parse_failure_rate": 1 / 3,
            "segmentation/iou": (1 + 8 / 17) / 2,
            "segmentation/s_measure": (1 + oracle_s_measure(pred, GT)) / 2,
            "segmentation/boxes_per_answer": 1.5,
            "segmentation/points_per_answer": 1.0,
        }
    )
    assert extra == {"segmentation_parse_error": [None, None, "no valid box"]}


def test_missing_log_metric_is_fine():
    assert segmentation_reward(
        [THINK + "<bbox>[2,2,6,6]</bbox>"],
        mask_computer=MaskComputer(RectSegmenter(), FRAME, answer_rule="well_formed"),
        image=[IMAGE],
        mask=[GT],
    ) == pytest.approx([1.0], abs=1e-9)
    assert format_reward(["x"]) == [0.0]


def test_masks_are_computed_once_per_batch():
    (fmt, seg_fn, prerl_seg), seg = seg_funcs("format", "segmentation", "prerl_segmentation")
    completions = [
        THINK + f"<bbox>[2,2,6,{y}]</bbox><points>[[3,3]]</points><labels>[1]</labels>"
        for y in (3, 4, 5, 6)
    ]
    images = [IMAGE.copy() for _ in completions]  # G distinct objects, same pixels
    kwargs = {"image": images, "mask": [GT] * 4}
    first = seg_fn(completions, **kwargs)
    fmt(completions, **kwargs)
    again = seg_fn(completions, **kwargs)  # a second mask-based reward of the same step
    assert first == again
    assert (seg.stats.encoder_calls, seg.stats.decoder_calls, seg.stats.prompt_sets) == (1, 1, 4)
    prerl_seg(completions, **kwargs)  # another mode is another segmentation pass
    assert seg.stats.encoder_calls == 2
    seg_fn(completions[:2], image=images[:2], mask=[GT] * 2)  # another batch
    assert seg.stats.encoder_calls == 3


def test_frame_resizing_of_image_and_gt():
    """A 20x20 image with its 20x20 GT, frame 10: the GT is resized with nearest neighbour
    (frame pixel i <- image pixel 2i): image rows/cols 4..11 -> frame 2..5."""
    (seg_fn,), seg = seg_funcs("segmentation", frame=FRAME)
    image = np.random.default_rng(1).integers(0, 255, (20, 20, 3), dtype=np.uint8)
    gt = np.zeros((20, 20), bool)
    gt[4:12, 4:12] = True
    assert call(seg_fn, [THINK + "<bbox>[2,2,6,6]</bbox>"], image=image, mask=gt) == pytest.approx(
        [1.0], abs=1e-9
    )
    assert seg.image_hw == (FRAME, FRAME)  # the segmenter saw the frame image


# --------------------------------------------------------------------------- registry


def test_registry_names_and_errors():
    assert set(REWARD_FUNCS) == {"format", "prerl_format", "segmentation", "prerl_segmentation"}
    funcs, _ = seg_funcs("format", "prerl_format", "segmentation", "prerl_segmentation")
    assert [f.__name__ for f in funcs] == [
        "format",
        "prerl_format",
        "segmentation",
        "prerl_segmentation",
    ]
    with pytest.raises(ValueError, match="unknown reward"):
        get_reward_funcs(["accuracy"])
    # The format rewards need no segmenter; the registry's frame size reaches them.
    (fmt,) = get_reward_funcs(["format"], frame_size=5)
    ans = THINK + "<bbox>[6,6,9,9]</bbox><points>[[7,7]]</points><labels>[1]</labels>"
    assert fmt([ans]) == [0.0]  # the box lies outside the 5x5 frame


def test_registry_builds_a_named_segmenter():
    clear_segmenter_cache()
    (seg_fn,) = get_reward_funcs(["segmentation"], segmenter="classical", frame_size=FRAME)
    assert len(seg_fn([THINK + "<bbox>[2,2,6,6]</bbox>"], image=[IMAGE], mask=[GT])) == 1
    clear_segmenter_cache()


# --------------------------------------------------------------------------- done-when (GrabCut)


def test_classical_reward_prefers_the_true_box():
    """Textured disk on another texture, frame 256: the GT box answer must score clearly
    higher than the same box shifted off the object."""
    rng = np.random.default_rng(0)
    size = 256
    yy, xx = np.mgrid[:size, :size]
    gt = (xx - 120) ** 2 + (yy - 136) ** 2 <= 50**2
    background = np.stack(
        [
            np.sin(xx / 5.0) * 40 + 90,
            np.cos(yy / 7.0) * 40 + 80,
            rng.integers(40, 90, (size, size)),
        ],
        -1,
    )
    disk = np.stack(
        [
            rng.integers(150, 230, (size, size)),
            np.sin((xx + yy) / 4.0) * 30 + 140,
            np.full((size, size), 60),
        ],
        -1,
    )
    image = np.where(gt[..., None], disk, background).astype(np.uint8)
    (seg_fn,) = get_reward_funcs(
        ["segmentation"], segmenter=ClassicalSegmenter(), frame_size=size, answer_rule="well_formed"
    )
    true_box = THINK + "<bbox>[70,86,171,187]</bbox>"
    shifted = THINK + "<bbox>[130,126,231,227]</bbox>"
    r_true, r_shifted = seg_fn([true_box, shifted], image=[image, image], mask=[gt, gt])
    assert r_true >= 0.95
    assert r_shifted <= 0.4
    assert parse_answer(true_box, size).ok
