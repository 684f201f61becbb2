"""Segmenters: the SPEC §3 mask rule, encode-once batching, GrabCut and the tiny SAM2."""

from __future__ import annotations

import numpy as np
import pytest
from fake_segmenter import RectSegmenter

from seg_r1.answer import parse_answer
from seg_r1.segmenters import (
    ANSWER_RULES,
    ClassicalSegmenter,
    PromptSet,
    Segmenter,
    answer_usable,
    build_segmenter,
    clear_segmenter_cache,
    image_key,
    masks_from_answer,
    prompts_from_answer,
    segment_batch,
)
from seg_r1.segmenters.sam2 import SAM2LoadError, SAM2Segmenter


def textured_disk_scene(size: int = 256, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A textured disk (centre (120, 136), radius 50) on a differently textured background."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    mask = (xx - 120) ** 2 + (yy - 136) ** 2 <= 50**2
    bg = np.stack(
        [
            np.sin(xx / 5.0) * 40 + 90,
            np.cos(yy / 7.0) * 40 + 80,
            rng.integers(40, 90, (size, size)),
        ],
        axis=-1,
    )
    fg = np.stack(
        [
            rng.integers(150, 230, (size, size)),
            np.sin((xx + yy) / 4.0) * 30 + 140,
            np.full((size, size), 60),
        ],
        axis=-1,
    )
    return np.where(mask[..., None], fg, bg).astype(np.uint8), mask


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


# --------------------------------------------------------------------------- the mask rule

ANSWER = (
    "<think>two objects</think> <bbox>[0,0,4,4]</bbox> <bbox>[6,2,10,8]</bbox> "
    "<points>[[1,1],[3,3],[7,5],[5,9],[4,4]]</points> <labels>[1,0,1,1,0]</labels>"
)


def test_prompts_keep_only_points_inside_each_box():
    sets = prompts_from_answer(parse_answer(ANSWER, 10))
    assert len(sets) == 2
    np.testing.assert_array_equal(sets[0].box, [0, 0, 4, 4])
    # [4,4] lies on the border of box 1 (inclusive); [5,9] is in no box and is dropped.
    np.testing.assert_array_equal(sets[0].points, [[1, 1], [3, 3], [4, 4]])
    np.testing.assert_array_equal(sets[0].labels, [1, 0, 0])
    np.testing.assert_array_equal(sets[1].box, [6, 2, 10, 8])
    np.testing.assert_array_equal(sets[1].points, [[7, 5]])
    np.testing.assert_array_equal(sets[1].labels, [1])


def test_prompts_are_rescaled_from_frame_to_image():
    answer = parse_answer(
        "<bbox>[10,20,30,40]</bbox><points>[[15,25]]</points><labels>[1]</labels>", 100
    )
    (prompt,) = prompts_from_answer(answer, (50, 200))  # image 50 high, 200 wide
    np.testing.assert_allclose(prompt.box, [20, 10, 60, 20])
    np.testing.assert_allclose(prompt.points, [[30, 12.5]])


def test_points_mode_prompt_has_no_box():
    answer = parse_answer(
        "<bbox>[0,0,5,5]</bbox><points>[[1,2],[8,8]]</points><labels>[1,0]</labels>", 10, "points"
    )
    (prompt,) = prompts_from_answer(answer)
    assert prompt.box is None
    np.testing.assert_array_equal(prompt.points, [[1, 2], [8, 8]])
    np.testing.assert_array_equal(prompt.labels, [1, 0])


def _sets(text: str, rule: str, mode: str = "full") -> list[tuple]:
    """The prompt sets of ``text`` (frame 10) as plain ``(box, points, labels)`` lists."""
    out = []
    for p in prompts_from_answer(parse_answer(text, 10, mode), rule=rule):
        box = None if p.box is None else p.box.tolist()
        out.append((box, p.points.tolist(), p.labels.tolist()))
    return out


BOX = "<bbox>[0,0,4,4]</bbox>"
PAIR = "<points>[[1,1],[8,8]]</points><labels>[1,0]</labels>"


@pytest.mark.parametrize(
    ("text", "complete", "well_formed", "fallback"),
    [
        # box + points + labels: every rule segments it (the point outside the box dropped)
        (BOX + PAIR, [([0, 0, 4, 4], [[1, 1]], [1])], "same", "same"),
        # box alone: only the lenient and the official-eval rules segment it
        (BOX, [], [([0, 0, 4, 4], [], [])], "same"),
        # box + mismatched counts: the official eval falls back to the box alone
        (BOX + "<points>[[1,1]]</points><labels>[1,0]</labels>", [], [], [([0, 0, 4, 4], [], [])]),
        # box + malformed points: the same
        (BOX + "<points>[[1,1</points><labels>[1]</labels>", [], [], [([0, 0, 4, 4], [], [])]),
        # points + labels without a box: the official eval makes a points-only mask
        (PAIR, [], [], [(None, [[1, 1], [8, 8]], [1, 0])]),
        # points without labels and no box: nothing to segment under any rule
        ("<points>[[1,1]]</points>", [], [], []),
        ("no tags at all", [], [], []),
    ],
)
def test_answer_rules(text, complete, well_formed, fallback):
    """Which imperfect answers give a mask, per rule (hand-written expectations)."""
    well_formed = complete if well_formed == "same" else well_formed
    fallback = well_formed if fallback == "same" else fallback
    assert _sets(text, "complete") == complete
    assert _sets(text, "well_formed") == well_formed
    assert _sets(text, "fallback") == fallback
    for rule, expected in (("complete", complete), ("well_formed", well_formed),
                           ("fallback", fallback)):  # fmt: skip
        assert answer_usable(parse_answer(text, 10), rule) == bool(expected)


def test_points_mode_is_the_same_under_every_rule():
    for rule in ANSWER_RULES:
        assert _sets(PAIR, rule, "points") == [(None, [[1, 1], [8, 8]], [1, 0])]
        assert _sets("<points>[[1,1]]</points>", rule, "points") == []
    with pytest.raises(ValueError, match="answer rule"):
        _sets(PAIR, "lenient")


def test_unusable_answer_gives_no_prompts_and_an_empty_mask():
    seg = RectSegmenter()
    seg.set_image(np.zeros((10, 12, 3), np.uint8))
    answer = parse_answer("no tags at all", 10)
    assert prompts_from_answer(answer) == []
    mask = masks_from_answer(seg, answer)
    assert mask.shape == (10, 12) and mask.dtype == bool and not mask.any()
    assert seg.stats.decoder_calls == 0


def test_masks_from_answer_is_the_union_over_boxes():
    seg = RectSegmenter()
    seg.set_image(np.zeros((10, 10, 3), np.uint8))
    mask = masks_from_answer(seg, parse_answer(ANSWER, 10))
    expected = np.zeros((10, 10), bool)
    expected[0:4, 0:4] = True
    expected[2:8, 6:10] = True
    np.testing.assert_array_equal(mask, expected)
    assert (seg.stats.decoder_calls, seg.stats.prompt_sets) == (1, 2)


def test_masks_from_answer_needs_an_image():
    with pytest.raises(RuntimeError, match="set_image"):
        masks_from_answer(RectSegmenter(), parse_answer(ANSWER, 10))


def test_prompt_set_validation():
    with pytest.raises(ValueError, match="box or at least one point"):
        PromptSet.make()
    with pytest.raises(ValueError, match="0 or 1"):
        PromptSet.make(points=[[1, 2]], labels=[3])
    with pytest.raises(ValueError, match="points"):
        PromptSet.make(points=[[1, 2]], labels=[1, 0])


def test_set_image_rejects_non_rgb_uint8():
    seg = RectSegmenter()
    with pytest.raises(ValueError, match="uint8"):
        seg.set_image(np.zeros((4, 4, 3), np.float32))
    with pytest.raises(ValueError, match=r"\(H, W, 3\)"):
        seg.set_image(np.zeros((4, 4), np.uint8))


# --------------------------------------------------------------------------- batching


def test_segment_batch_encodes_each_distinct_image_once():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 255, (10, 10, 3), dtype=np.uint8)
    b = rng.integers(0, 255, (10, 10, 3), dtype=np.uint8)
    texts = [
        "<bbox>[0,0,2,2]</bbox>",
        "<bbox>[0,0,5,5]</bbox><bbox>[6,6,8,8]</bbox>",
        "garbage",
        "<bbox>[1,1,3,3]</bbox>",
        "<bbox>[2,2,4,4]</bbox>",
    ]
    answers = [parse_answer(t, 10) for t in texts]
    # G copies of `a` are distinct array objects with equal pixels: grouped by content.
    images = [a.copy(), a.copy(), a.copy(), a.copy(), b]
    seg = RectSegmenter()
    masks = segment_batch(seg, images, answers)
    assert (seg.stats.encoder_calls, seg.stats.decoder_calls, seg.stats.prompt_sets) == (2, 2, 5)
    assert [m.sum() for m in masks] == [4, 25 + 4, 0, 4, 4]
    np.testing.assert_array_equal(masks[4], masks_from_answer(seg, answers[4]))


def test_segment_batch_explicit_keys_and_skipped_images():
    img = np.zeros((8, 8, 3), np.uint8)
    seg = RectSegmenter()
    answers = [parse_answer("<bbox>[0,0,2,2]</bbox>", 8), parse_answer("nothing", 8)]
    masks = segment_batch(seg, [img, img + 1], answers, image_keys=["x", "y"])
    # Image "y" has only an unusable answer: it is never encoded.
    assert seg.stats.encoder_calls == 1 and len(seg.encoded) == 1
    assert masks[0].sum() == 4 and masks[1].shape == (8, 8) and not masks[1].any()
    with pytest.raises(ValueError, match="2 images for 1 answers"):
        segment_batch(seg, [img, img], answers[:1])


def test_segment_batch_with_a_protocol_only_segmenter():
    """A segmenter that implements only the Segmenter protocol (no predict_many) is driven
    image by image, with the same masks and counts as a BaseSegmenter."""

    class ProtocolOnly:
        def __init__(self) -> None:
            self.inner = RectSegmenter()
            self.stats = self.inner.stats

        @property
        def image_hw(self):
            return self.inner.image_hw

        def set_image(self, image):
            self.inner.set_image(image)

        def predict(self, box, points=None, labels=None):
            return self.inner.predict(box, points, labels)

        def predict_batch(self, prompts):
            return self.inner.predict_batch(prompts)

    a, b = np.zeros((8, 8, 3), np.uint8), np.ones((8, 8, 3), np.uint8)
    answers = [parse_answer(t, 8) for t in ("<bbox>[0,0,2,2]</bbox>", "<bbox>[1,1,4,4]</bbox>")]
    seg = ProtocolOnly()
    assert isinstance(seg, Segmenter) and not hasattr(seg, "predict_many")
    masks = segment_batch(seg, [a, b], answers)
    assert [int(m.sum()) for m in masks] == [4, 9]
    assert (seg.stats.encoder_calls, seg.stats.prompt_sets) == (2, 2)


def test_image_key_is_content_based():
    a = np.zeros((4, 4, 3), np.uint8)
    assert image_key(a) == image_key(a.copy())
    b = a.copy()
    b[0, 0, 0] = 1
    assert image_key(a) != image_key(b)
    assert image_key(a) != image_key(np.zeros((8, 2, 3), np.uint8))  # same bytes, other shape


# --------------------------------------------------------------------------- classical backend


@pytest.fixture(scope="module")
def disk_scene() -> tuple[np.ndarray, np.ndarray]:
    return textured_disk_scene()


def test_classical_true_box_recovers_the_disk(disk_scene):
    image, gt = disk_scene
    seg = ClassicalSegmenter()
    assert isinstance(seg, Segmenter)
    seg.set_image(image)
    true_box = [70, 86, 171, 187]  # the disk's pixel extent, XYXY
    assert iou(seg.predict(true_box), gt) >= 0.98
    filled = np.zeros_like(gt)
    filled[86:187, 70:171] = True
    assert iou(filled, gt) < 0.8  # GrabCut does better than the box itself
    shifted = [130, 126, 231, 227]  # moved 60 px right, 40 px down
    assert iou(seg.predict(shifted), gt) < 0.3
    with_points = seg.predict(true_box, [[120, 136], [75, 90]], [1, 0])
    assert iou(with_points, gt) >= 0.98
    assert seg.stats.encoder_calls == 1 and seg.stats.decoder_calls == 3


def test_classical_points_only(disk_scene):
    image, gt = disk_scene
    seg = ClassicalSegmenter()
    seg.set_image(image)
    mask = seg.predict(None, [[120, 136], [130, 150], [20, 20], [240, 240]], [1, 1, 0, 0])
    assert iou(mask, gt) >= 0.95
    assert not seg.predict(None, [[20, 20]], [0]).any()  # no foreground seed: empty mask


def test_classical_is_deterministic(disk_scene):
    image, _ = disk_scene
    masks = []
    for _ in range(2):
        seg = ClassicalSegmenter(seed=3)
        seg.set_image(image)
        masks.append(seg.predict([60, 80, 200, 200], [[120, 136]], [1]))
    np.testing.assert_array_equal(masks[0], masks[1])


def test_classical_threads_give_the_same_masks(disk_scene):
    """GrabCut on 2 threads (predict_batch and predict_many, the path of segment_batch) gives
    exactly the masks of one thread, in order, and counts one encoder call per image."""
    image, _ = disk_scene
    flipped = np.ascontiguousarray(image[::-1])
    prompts = [
        PromptSet.make([70, 86, 171, 187]),
        PromptSet.make([60, 80, 200, 200], [[120, 136]], [1]),
        PromptSet.make(None, [[120, 136], [20, 20]], [1, 0]),
        PromptSet.make([0, 0, 256, 256]),
    ]
    serial = ClassicalSegmenter(workers=1)
    expected = []
    for img in (image, flipped):
        serial.set_image(img)
        expected.append([serial.predict(p.box, p.points, p.labels) for p in prompts])
    threaded = ClassicalSegmenter(workers=2)
    got = threaded.predict_many([(image, prompts), (flipped, prompts[:2])])
    assert [len(masks) for masks in got] == [4, 2]
    for masks, want in zip(got, expected):
        for mask, ref in zip(masks, want):
            np.testing.assert_array_equal(mask, ref)
    assert threaded.stats.encoder_calls == 2 and threaded.stats.prompt_sets == 6
    assert threaded.stats.decoder_calls == 6
    threaded.set_image(flipped)
    for mask, ref in zip(threaded.predict_batch(prompts), expected[1]):
        np.testing.assert_array_equal(mask, ref)
    with pytest.raises(ValueError, match="workers"):
        ClassicalSegmenter(workers=0)
    import copy

    assert copy.deepcopy(threaded).workers == 2  # the pool is not copied


def test_classical_seeds(disk_scene):
    image, _ = disk_scene
    import cv2

    seg = ClassicalSegmenter(point_radius=2)
    seg.set_image(image)
    seeds = seg.seed_mask(PromptSet.make([10.5, 20, 30, 40.2], [[15, 25], [12, 30]], [1, 0]))
    assert seeds[0, 0] == cv2.GC_BGD
    assert seeds[20, 10] == cv2.GC_PR_FGD and seeds[40, 29] == cv2.GC_PR_FGD
    assert seeds[41, 29] == cv2.GC_BGD and seeds[20, 30] == cv2.GC_BGD
    assert (
        seeds[25, 15] == cv2.GC_FGD and seeds[25, 17] == cv2.GC_FGD and seeds[25, 18] != cv2.GC_FGD
    )
    assert seeds[30, 12] == cv2.GC_BGD
    assert ClassicalSegmenter()._radius((256, 256)) == 3  # 1 % of the short side, >= 2


def test_classical_whole_frame_box_and_tiny_box_do_not_crash(disk_scene):
    image, _ = disk_scene
    seg = ClassicalSegmenter()
    seg.set_image(image)
    assert seg.predict([0, 0, 256, 256]).shape == (256, 256)
    tiny = seg.predict([10, 10, 11, 12])  # 2 pixels: too few for GrabCut -> the seeds
    assert tiny.sum() == 2


def test_build_segmenter_caches_instances():
    clear_segmenter_cache()
    a = build_segmenter("classical", iterations=2)
    assert build_segmenter("classical", iterations=2) is a
    assert build_segmenter("classical", iterations=3) is not a
    assert build_segmenter("classical", cache=False, iterations=2) is not a
    with pytest.raises(ValueError, match="unknown segmenter 'grabcut'"):
        build_segmenter("grabcut")
    clear_segmenter_cache()


# --------------------------------------------------------------------------- SAM2 (tiny)


@pytest.fixture(scope="module")
def sam2_seg(tiny_ckpts) -> SAM2Segmenter:
    return SAM2Segmenter(config=tiny_ckpts.sam2_config, checkpoint=tiny_ckpts.sam2_checkpoint)


@pytest.fixture
def scene_image() -> np.ndarray:
    return np.random.default_rng(1).integers(0, 255, (96, 128, 3), dtype=np.uint8)


def test_sam2_masks_for_box_points_and_points_only(sam2_seg, scene_image):
    assert isinstance(sam2_seg, Segmenter)
    sam2_seg.set_image(scene_image)
    for mask in (
        sam2_seg.predict([10, 10, 60, 70]),
        sam2_seg.predict([10, 10, 60, 70], [[30, 30], [12, 60]], [1, 0]),
        sam2_seg.predict(None, [[30, 30], [100, 80]], [1, 0]),
    ):
        assert mask.shape == (96, 128) and mask.dtype == bool


def test_sam2_union_equals_or_of_single_boxes(sam2_seg, scene_image):
    sam2_seg.set_image(scene_image)
    answer = parse_answer("<bbox>[5,5,50,40]</bbox><bbox>[60,30,120,90]</bbox>", (96, 128))
    before = sam2_seg.stats.decoder_calls
    union = masks_from_answer(sam2_seg, answer)
    assert sam2_seg.stats.decoder_calls - before == 1  # both boxes in one batched decoder call
    single = sam2_seg.predict([5, 5, 50, 40]) | sam2_seg.predict([60, 30, 120, 90])
    np.testing.assert_array_equal(union, single)


def test_sam2_points_outside_the_box_are_dropped(sam2_seg, scene_image, monkeypatch):
    calls = []
    real = sam2_seg.predictor.predict

    def spy(**kwargs):
        calls.append(kwargs)
        return real(**kwargs)

    monkeypatch.setattr(sam2_seg.predictor, "predict", spy)
    sam2_seg.set_image(scene_image)
    answer = parse_answer(
        "<bbox>[10,10,50,50]</bbox><points>[[20,20],[90,90],[40,45]]</points><labels>[1,1,0]</labels>",
        (96, 128),
    )
    masks_from_answer(sam2_seg, answer)
    (call,) = calls
    np.testing.assert_array_equal(call["box"], [[10, 10, 50, 50]])
    np.testing.assert_array_equal(call["point_coords"], [[[20, 20], [40, 45]]])
    np.testing.assert_array_equal(call["point_labels"], [[1, 0]])
    assert call["multimask_output"] is False


def test_sam2_one_encoder_pass_per_distinct_image(sam2_seg, scene_image, monkeypatch):
    forward_calls = []
    real = sam2_seg.model.forward_image

    def spy(x):
        forward_calls.append(tuple(x.shape))
        return real(x)

    monkeypatch.setattr(sam2_seg.model, "forward_image", spy)
    sam2_seg.stats.reset()
    texts = [
        "<bbox>[5,5,50,40]</bbox>",
        "<bbox>[10,10,60,60]</bbox><points>[[20,20]]</points><labels>[1]</labels>",
        "<bbox>[0,0,128,96]</bbox>",
        "<bbox>[30,20,90,80]</bbox><bbox>[1,1,20,20]</bbox>",
    ]
    answers = [parse_answer(t, (96, 128)) for t in texts]
    masks = segment_batch(sam2_seg, [scene_image.copy() for _ in texts], answers)
    assert len(forward_calls) == 1 and sam2_seg.stats.encoder_calls == 1
    assert sam2_seg.stats.prompt_sets == 5
    assert sam2_seg.stats.decoder_calls == 2  # 4 box-only sets batched + 1 box+1-point set
    assert all(m.shape == (96, 128) and m.dtype == bool for m in masks)


def test_sam2_bgr_compat_swaps_channels(sam2_seg, scene_image, monkeypatch):
    seen = []
    real = sam2_seg.predictor.set_image
    monkeypatch.setattr(
        sam2_seg.predictor, "set_image", lambda image: (seen.append(image), real(image))
    )
    sam2_seg.set_image(scene_image)
    monkeypatch.setattr(sam2_seg, "bgr_compat", True)
    sam2_seg.set_image(scene_image)
    np.testing.assert_array_equal(seen[0], scene_image)  # default: RGB as given
    np.testing.assert_array_equal(seen[1], scene_image[..., ::-1])  # compat: R and B swapped


def test_sam2_bfloat16_runs(tiny_ckpts, scene_image):
    seg = SAM2Segmenter(tiny_ckpts.sam2_config, tiny_ckpts.sam2_checkpoint, dtype="bfloat16")
    seg.set_image(scene_image)
    mask = seg.predict([10, 10, 60, 70], [[30, 30]], [1])
    assert mask.shape == (96, 128) and mask.dtype == bool
    with pytest.raises(ValueError, match="dtype"):
        SAM2Segmenter(tiny_ckpts.sam2_config, tiny_ckpts.sam2_checkpoint, dtype="float16")


def test_sam2_missing_checkpoint_names_the_path(tiny_ckpts, tmp_path):
    missing = tmp_path / "nope" / "sam2.1_hiera_large.pt"
    with pytest.raises(SAM2LoadError, match=str(missing)):
        SAM2Segmenter(config=tiny_ckpts.sam2_config, checkpoint=missing)
    with pytest.raises(SAM2LoadError, match=str(missing)):
        build_segmenter("sam2", cache=False, config=tiny_ckpts.sam2_config, checkpoint=missing)
