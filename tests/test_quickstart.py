"""Pieces of the quickstart (fast): the constant baseline's search, checkpoint + resume of a
stage. The whole chain runs in the slow test tests/test_learning_demo.py."""

from __future__ import annotations

import numpy as np
import pytest

from seg_r1 import baselines, quickstart


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    from seg_r1.data.synthetic_trees import write_foreground_dataset

    root = tmp_path_factory.mktemp("qs_data")
    size = quickstart.FRAME_SIZE
    write_foreground_dataset(root, 16, 0, size, "train", camouflage_ratio=0.0)
    write_foreground_dataset(root, 4, 0, size, "test", camouflage_ratio=0.0)
    return root


def test_constant_answer_is_the_best_of_its_candidates(scenes, monkeypatch):
    from seg_r1.answer import parse_answer
    from seg_r1.segmenters import build_segmenter

    monkeypatch.setattr(baselines, "SEARCH_IMAGES", 4)
    monkeypatch.setattr(baselines, "SCORE_IMAGES", 4)
    monkeypatch.setattr(baselines, "BOX_STEP_DIVISORS", (4,))  # 56 pixels at 224
    images, gts = quickstart._examples(scenes, "train")
    segmenter = build_segmenter("classical")
    box_only, answer, train_iou = baselines.fit_constant_answer(images, gts, segmenter, 224)

    parsed, parsed_box = parse_answer(answer, 224), parse_answer(box_only, 224)
    assert parsed.ok and parsed_box.ok  # usable prompts (no <think>: not a full answer)
    assert len(parsed_box.boxes) == 1 and len(parsed_box.points) == 0
    # Scored independently of the search's scorer (constant_text_iou / segment_batch): the
    # segmenter called directly with SPEC §3's rule written out here (each box with the points
    # inside it, union over boxes), IoU as plain NumPy counts. Images are the 224 frame itself.
    assert images[0].shape[:2] == (224, 224)

    def independent_iou(text: str) -> float:
        parsed = parse_answer(text, 224)
        ious = []
        for image, gt in zip(images[:4], gts[:4]):
            segmenter.set_image(image)
            mask = np.zeros(gt.shape, bool)
            for x1, y1, x2, y2 in parsed.boxes:
                px, py = parsed.points[:, 0], parsed.points[:, 1]
                inside = (px >= x1) & (px <= x2) & (py >= y1) & (py <= y2)
                mask |= segmenter.predict(
                    np.array([x1, y1, x2, y2]), parsed.points[inside], parsed.labels[inside]
                )
            ious.append(np.count_nonzero(mask & gt) / np.count_nonzero(mask | gt))
        return float(np.mean(ious))

    # searched and reported on the same 4 images: the answer is at least as good as the box
    # alone, every known constant and every starting box (hand-written, not from the search)
    assert train_iou == pytest.approx(independent_iou(answer), abs=1e-12)
    others = [
        box_only,
        *baselines.KNOWN_CONSTANT_ANSWERS,
        "<bbox>[56,56,168,168]</bbox>",
        "<bbox>[0,0,224,224]</bbox>",
    ]
    for other in others:
        assert train_iou >= independent_iou(other) - 1e-12, other


def test_stage_keeps_checkpoints_and_resumes(tiny_ckpts, scenes, tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(
        quickstart,
        "SFT_OVERRIDES",
        [*quickstart.SFT_OVERRIDES, "--per_device_train_batch_size", "2"],
    )
    out = tmp_path / "sft"
    first = quickstart.run_stage("sft", tiny_ckpts.policy, scenes, out, 2, 0, save_steps=1)
    assert first.state.global_step == 2
    assert sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-1", "checkpoint-2"]
    # a longer run in the same folder continues from checkpoint-2 (not from step 0)
    with caplog.at_level("INFO", logger="seg_r1.launch"):
        again = quickstart.run_stage(
            "sft", tiny_ckpts.policy, scenes, out, 3, 0, save_steps=1, resume=True
        )
    assert f"resuming from {out / 'checkpoint-2'}" in caplog.text
    assert again.state.global_step == 3
    assert (out / "checkpoint-3").is_dir()
    # without resume, a folder that holds checkpoints is refused (not silently mixed)
    from seg_r1.launch import LaunchError

    with pytest.raises(LaunchError, match="already holds checkpoints"):
        quickstart.run_stage("sft", tiny_ckpts.policy, scenes, out, 3, 0)


def test_stage_extra_arguments_override_the_recipe(tiny_ckpts, scenes, tmp_path, monkeypatch):
    """--sft-args / --grpo-args reach the stage last: they win over the recipe and the
    quickstart's own overrides (SFT_OVERRIDES sets lr 1e-3)."""
    monkeypatch.setattr(
        quickstart,
        "SFT_OVERRIDES",
        [*quickstart.SFT_OVERRIDES, "--per_device_train_batch_size", "2"],
    )
    trainer = quickstart.run_stage(
        "sft", tiny_ckpts.policy, scenes, tmp_path / "sft", 1, 0, extra=["--learning_rate", "0.25"]
    )
    assert trainer.args.learning_rate == 0.25
