"""Pieces of the quickstart (fast): the constant baseline's search, checkpoint + resume of a
stage. The whole chain runs in the slow test tests/test_learning_demo.py."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from seg_r1 import baselines, learning, quickstart


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
    images, gts = learning.load_scenes(scenes, "train")
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
    package = logging.getLogger("seg_r1")
    level = package.level
    package.setLevel(logging.INFO)
    try:
        trainer = quickstart.run_stage(
            "sft",
            tiny_ckpts.policy,
            scenes,
            tmp_path / "sft",
            1,
            0,
            extra=["--learning_rate", "0.25"],
        )
        assert trainer.args.learning_rate == 0.25
        # the stage leaves the package's log level as it found it (the summary is INFO)
        assert package.level == logging.INFO
    finally:
        package.setLevel(level)


def test_heldout_curve_scores_the_policy(tiny_ckpts, scenes, tmp_path_factory):
    """HeldOutIoU's figure is the greedy answer's IoU: the policy is scripted (its generation
    config forces one box answer), so each point must be that answer's IoU, recomputed here --
    the segmenter called directly with the box, IoU as plain NumPy counts. Points: before step
    1, every N steps, after the last step; a point already in log_history is not redone."""
    from test_eval_support import SCRIPTED_ANSWER, scripted_policy_dir
    from transformers import TrainerControl, TrainerState

    from seg_r1.callbacks import HELDOUT_IOU_KEY, HeldOutIoU
    from seg_r1.policy import load_policy
    from seg_r1.segmenters import build_segmenter

    # The scripted answer, written out: box [16, 20, 112, 108] with the point (64, 64) inside
    # it, label 1; (2, 2) lies outside the box and is dropped (SPEC: each box with its points).
    assert (
        "<bbox>[16,20,112,108]</bbox>" in SCRIPTED_ANSWER and "[[64,64],[2,2]]" in SCRIPTED_ANSWER
    )
    policy = scripted_policy_dir(tiny_ckpts, tmp_path_factory)
    images, gts = learning.load_scenes(scenes, "test")
    assert images[0].shape[:2] == (224, 224)  # the frame itself: the box needs no mapping
    segmenter = build_segmenter("classical")
    ious = []
    for image, gt in zip(images[:3], gts[:3]):
        segmenter.set_image(image)
        mask = segmenter.predict(
            np.array([16, 20, 112, 108], float), np.array([[64, 64]]), np.array([1])
        )
        union = np.count_nonzero(mask | gt)
        ious.append(np.count_nonzero(mask & gt) / union if union else 1.0)
    expected = float(np.mean(ious))
    assert expected > 0.01

    model, processor = load_policy(policy, device="cpu", dtype="float32")
    model.train()
    kwargs = {"frame_size": 224, "task": "rl", "max_new_tokens": 48, "batch_size": 2}
    curve = HeldOutIoU(images[:3], gts[:3], segmenter, 2, **kwargs)
    state, control = TrainerState(max_steps=3), TrainerControl()
    hooks = {"model": model, "processing_class": processor}
    curve.on_train_begin(None, state, control, **hooks)
    for step in (1, 2, 3):
        state.global_step = step
        curve.on_step_end(None, state, control, **hooks)
    assert model.training  # put back in train mode after each pass
    assert [step for step, _ in curve.history] == [0, 2, 3]
    for _, iou in curve.history:
        assert iou == pytest.approx(expected, abs=1e-9)
    assert [e["step"] for e in state.log_history] == [0, 2, 3]
    assert state.log_history[-1][HELDOUT_IOU_KEY] == round(expected, 4)
    # a resumed run that already logged step 2 does not score it again
    again = HeldOutIoU(images[:3], gts[:3], segmenter, 2, **kwargs)
    state.global_step = 2
    again.on_step_end(None, state, control, **hooks)
    assert again.history == [] and len(state.log_history) == 3
    with pytest.raises(ValueError, match="every"):
        HeldOutIoU(images, gts, segmenter, 0)


def test_heldout_curve_in_the_grpo_stage(tiny_ckpts, scenes, tmp_path):
    """run_stage hands callbacks to the GRPO trainer: the curve's points land in its
    log_history at steps 0, 2 and 3; write_curves draws them; SFT refuses callbacks."""
    from seg_r1.callbacks import HELDOUT_IOU_KEY, HeldOutIoU
    from seg_r1.segmenters import build_segmenter

    images, gts = learning.load_scenes(scenes, "test")
    kwargs = {"frame_size": 224, "task": "rl", "max_new_tokens": 8, "batch_size": 2}
    curve = HeldOutIoU(images[:2], gts[:2], build_segmenter("classical"), 2, **kwargs)
    extra = ["--max_completion_length", "8"]
    trainer = quickstart.run_stage(
        "grpo", tiny_ckpts.policy, scenes, tmp_path / "grpo", 3, 0, extra=extra, callbacks=[curve]
    )
    logged = [
        (e["step"], e[HELDOUT_IOU_KEY]) for e in trainer.state.log_history if HELDOUT_IOU_KEY in e
    ]
    assert [step for step, _ in logged] == [0, 2, 3]
    assert logged == [(step, round(iou, 4)) for step, iou in curve.history]

    png = tmp_path / "curves.png"
    learning.write_curves(
        [{"step": 1, "loss": 2.0}, {"step": 2, "loss": 1.5}],
        trainer.state.log_history,
        png,
        levels={"SFT policy": 0.3, "constant": 0.5},
    )
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="grpo stage only"):
        quickstart.run_stage(
            "sft", tiny_ckpts.policy, scenes, tmp_path / "s", 1, 0, callbacks=[curve]
        )


def test_constant_fit_is_cached_per_training_split(tmp_path):
    calls = []

    def fit():
        calls.append(1)
        return "<bbox>[1,2,3,4]</bbox>", f"<bbox>[1,2,3,{len(calls) + 4}]</bbox>", 0.5

    path = tmp_path / "constant_fit.json"
    key = {"seed": 0, "n_train": 16}
    first = baselines.cached_constant_fit(path, key, fit)
    assert baselines.cached_constant_fit(path, key, fit) == first and len(calls) == 1
    other = baselines.cached_constant_fit(path, {"seed": 1, "n_train": 16}, fit)
    assert len(calls) == 2 and other[1] == "<bbox>[1,2,3,6]</bbox>"


def test_sampled_answers_are_grouped_by_scene(tiny_ckpts, tmp_path_factory, monkeypatch):
    """evaluate_policy(samples=k): k answers drawn for each held-out scene, each scored on ITS
    scene; iou_sampled is their mean and iou_best_of_samples the mean of each scene's best.
    Generation is replaced by a script (greedy: one answer; sampled: three answers in turn, in
    draw order), and every expected IoU is recomputed with the segmenter called directly."""
    import torch
    from test_eval_support import scripted_policy_dir

    from seg_r1.data.synthetic_trees import write_foreground_dataset
    from seg_r1.inference import SegR1Pipeline
    from seg_r1.segmenters import build_segmenter

    boxes = [[16, 20, 112, 108], [40, 40, 90, 90], [0, 0, 60, 60]]
    points = [[64, 64], [64, 64], [30, 30]]
    answers = [
        "<think> x </think> <bbox>[{},{},{},{}]</bbox>, <points>[[{},{}]]</points>, "
        "<labels>[1]</labels>".format(*box, *point)
        for box, point in zip(boxes, points)
    ]
    drawn, temperatures = [], []

    def scripted_generation(self, frames, queries, query_types):
        temperatures.append(self.temperature)
        if self.temperature is None:
            return [answers[0]] * len(frames)
        out = [answers[(len(drawn) + j) % 3] for j in range(len(frames))]
        drawn.extend(out)
        return out

    monkeypatch.setattr(SegR1Pipeline, "_generate_batch", scripted_generation)
    root = tmp_path_factory.mktemp("sampled")
    write_foreground_dataset(root, 3, 2, 128, "test", camouflage_ratio=0.0)
    images, gts = learning.load_scenes(root, "test")
    segmenter = build_segmenter("classical", iterations=1)
    seeded = []
    monkeypatch.setattr(torch, "manual_seed", lambda seed: seeded.append(seed))
    result = learning.evaluate_policy(
        scripted_policy_dir(tiny_ckpts, tmp_path_factory), images, gts, segmenter, 4, True,
        frame_size=128, samples=2, temperature=0.8, sample_seed=5,
    )  # fmt: skip

    def iou(i, a):
        segmenter.set_image(images[i])
        mask = segmenter.predict(np.array(boxes[a], float), np.array([points[a]]), np.array([1]))
        return np.count_nonzero(mask & gts[i]) / np.count_nonzero(mask | gts[i])

    table = np.array([[iou(i, (2 * i + j) % 3) for j in range(2)] for i in range(3)])
    # shuffled: the j-th answer drawn about scene i + 1, segmented on scene i
    moved = np.array([[iou(i, (2 * ((i + 1) % 3) + j) % 3) for j in range(2)] for i in range(3)])
    assert len(drawn) == 6 and seeded == [
        5
    ]  # the greedy shuffled pass draws nothing and set(temperatures) == {None, 0.8}
    assert np.ptp(table) > 0.05  # the three answers score differently
    assert result["iou"] == pytest.approx(np.mean([iou(i, 0) for i in range(3)]), abs=1e-9)
    assert result["iou_sampled"] == pytest.approx(table.mean(), abs=1e-9)
    assert result["iou_best_of_samples"] == pytest.approx(table.max(axis=1).mean(), abs=1e-9)
    assert result["iou_sampled_shuffled"] == pytest.approx(moved.mean(), abs=1e-9)
    assert not np.allclose(moved.mean(), table.mean())
    assert (result["samples"], result["temperature"]) == (2, 0.8)
    assert "iou_sampled" not in learning.evaluate_policy(
        scripted_policy_dir(tiny_ckpts, tmp_path_factory), images, gts, segmenter, 4, frame_size=128
    )


def test_score_one_checkpoint_from_the_command_line(tiny_ckpts, tmp_path_factory, capsys):
    """``python -m seg_r1.quickstart --out OUT --score POLICY``: the scripted policy gives one
    answer to every image, so its IoU is that answer's IoU, recomputed here with the segmenter
    called directly (the frame and GrabCut iterations its seg_r1.json records), and its shuffled
    IoU and best own answer equal it (a constant answer does not depend on the image). Without
    seg_r1.json the quickstart's frame and iterations apply; nothing of OUT is removed."""
    import json
    import shutil

    from test_eval_support import scripted_policy_dir

    from seg_r1.data.synthetic_trees import write_foreground_dataset
    from seg_r1.segmenters import build_segmenter

    root = tmp_path_factory.mktemp("score")
    write_foreground_dataset(root / "data", 3, 1, 128, "test", camouflage_ratio=0.0)
    policy = root / "grpo"  # a folder the chain itself would rebuild
    shutil.copytree(scripted_policy_dir(tiny_ckpts, tmp_path_factory), policy)
    (policy / "seg_r1.json").write_text(json.dumps({"frame_size": 128, "classical_iterations": 2}))

    images, gts = learning.load_scenes(root / "data", "test")
    assert len(images) == 3 and images[0].shape[:2] == (128, 128)  # the frame: no resizing
    segmenter = build_segmenter("classical", iterations=2)
    ious = []
    for image, gt in zip(images, gts):
        segmenter.set_image(image)  # box [16, 20, 112, 108] and its point (64, 64), label 1
        mask = segmenter.predict(
            np.array([16, 20, 112, 108], float), np.array([[64, 64]]), np.array([1])
        )
        ious.append(np.count_nonzero(mask & gt) / np.count_nonzero(mask | gt))
    expected = float(np.mean(ious))
    assert 0.01 < expected < 0.99

    argv = ["--out", str(root), "--eval-batch-size", "2", "--score"]
    returned = quickstart.main([*argv, str(policy)])
    result = json.loads(capsys.readouterr().out)
    assert result == returned and (policy / "config.json").is_file()
    assert (result["frame_size"], result["classical_iterations"], result["n"]) == (128, 2, 3)
    assert result["iou"] == pytest.approx(expected, abs=1e-9)
    assert result["iou_shuffled"] == pytest.approx(expected, abs=1e-9)
    assert result["iou_best_own_answer"] == pytest.approx(expected, abs=1e-9)
    assert result["distinct_answers"] == 1 and result["format_ok"] == 1.0
    assert "iou_sampled" not in result
    # sampled answers (GRPO's rollout settings): the scripted policy still gives its one answer
    sampled = quickstart.main([*argv, str(policy), "--samples", "2"])
    assert sampled["iou_sampled"] == pytest.approx(expected, abs=1e-9)
    assert sampled["iou_best_of_samples"] == pytest.approx(expected, abs=1e-9)
    assert (sampled["samples"], sampled["temperature"]) == (2, 1.0)
    capsys.readouterr()

    (policy / "seg_r1.json").unlink()  # an SFT checkpoint records no segmenter: the chain's
    again = quickstart.main([*argv, str(policy)])
    assert (again["frame_size"], again["classical_iterations"]) == (
        quickstart.FRAME_SIZE,
        quickstart.CLASSICAL_ITERATIONS,
    )
    with pytest.raises(FileNotFoundError, match="not a saved policy"):
        quickstart.main([*argv, str(root / "nothing")])
    with pytest.raises(FileNotFoundError, match="no held-out scenes"):
        quickstart.main(["--out", str(root / "empty"), "--score", str(policy)])
    with pytest.raises(SystemExit):  # --samples without --score: refused before any work
        quickstart.main(["--out", str(root / "nothing"), "--samples", "2"])
    assert "--samples scores a policy given with --score" in capsys.readouterr().err
    assert not (root / "nothing").exists()
