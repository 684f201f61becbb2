"""A checkpoint trained here carries its training frame (``seg_r1.json``), and the pipeline, the
eval config and the demo read its answers in that frame when none is given; released
checkpoints (no file) keep SPEC's frames."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from seg_r1.inference import PipelineConfig
from seg_r1.policy import TRAINING_META, PolicyLoadError, read_training_meta, write_training_meta


def test_pipeline_frame_comes_from_the_checkpoint(tmp_path, caplog):
    write_training_meta(tmp_path, stage="rl", frame_size=224, answer_mode="full", other=None)
    assert json.loads((tmp_path / TRAINING_META).read_text()) == {
        "stage": "rl",
        "frame_size": 224,
        "answer_mode": "full",
    }
    with caplog.at_level("INFO", logger="seg_r1.policy"):
        for task in ("foreground", "referring", "reasoning"):
            assert PipelineConfig(model_path=str(tmp_path)).task_defaults(task)[0] == 224
    assert "training frame" in caplog.text and "--frame_size" in caplog.text
    # an explicit frame wins; no file (a released checkpoint) -> the task's SPEC frame
    assert (
        PipelineConfig(model_path=str(tmp_path), frame_size=500).task_defaults("referring")[0]
        == 500
    )
    released = tmp_path / "released"
    released.mkdir()
    assert PipelineConfig(model_path=str(released)).task_defaults("foreground")[0] == 768
    assert PipelineConfig(model_path=str(released)).task_defaults("referring")[0] == 1024
    assert (
        PipelineConfig(model_path="Qwen/Qwen2.5-VL-3B-Instruct").task_defaults("foreground")[0]
        == 768
    )


def test_eval_config_defaults_to_the_checkpoint_frame(tmp_path):
    from seg_r1.evaluation.config import EvalConfig

    write_training_meta(tmp_path, frame_size=112)
    config = EvalConfig(model_path=str(tmp_path), task="foreground")
    assert config.frame_size == 112


def test_corrupt_meta_is_reported_by_path(tmp_path):
    (tmp_path / TRAINING_META).write_text("{not json")
    with pytest.raises(PolicyLoadError, match="seg_r1.json"):
        read_training_meta(tmp_path)


def test_demo_reads_answers_in_the_checkpoint_frame(tiny_ckpts, tmp_path):
    """The reported bug: a policy trained in a 224 frame answered <bbox>[26,96,86,199]</bbox>
    and the demo read it in its 1024 default, drawing a tiny box in the corner."""
    from seg_r1 import demo_app

    policy = tmp_path / "policy"
    shutil.copytree(tiny_ckpts.policy, policy)
    write_training_meta(policy, stage="rl", frame_size=224, answer_mode="full")
    args = demo_app.build_parser().parse_args(
        [
            "--model_path",
            str(policy),
            "--segmenter",
            "classical",
            "--tiny_dir",
            str(tiny_ckpts.root),
        ]
    )
    app = demo_app.load_demo(args)
    assert app.default_frame == 224
    assert "Frame** 224 (the checkpoint's training frame)" in app.description
    import numpy as np

    image = np.zeros((448, 448, 3), dtype=np.uint8)
    answer = "<bbox>[26,96,86,199]</bbox>, <points>[[56,150]]</points>, <labels>[1]</labels>"
    result = app.run(image, "foreground", answer=answer)  # no frame given: the checkpoint's
    assert result.level != "error", result.status
    summary = result.prompts_summary()
    assert summary["frame_size"] == 224
    assert summary["boxes_image_px"][0] == pytest.approx([52, 192, 172, 398], abs=1)
    # the released default without the file
    plain = demo_app.load_demo(
        demo_app.build_parser().parse_args(
            [
                "--model_path",
                str(tiny_ckpts.policy),
                "--segmenter",
                "classical",
                "--quickstart_dir",
                "",
            ]
        )
    )
    assert plain.default_frame == 1024


def test_demo_without_model_path_serves_the_quickstart_policy(tiny_ckpts, tmp_path):
    """`python demo/seg_r1_web_demo.py` with no --model_path: the quickstart's trained policy
    (runs/quickstart/grpo) when there is one -- with its frame, the classical segmenter it was
    trained with and its held-out scenes as examples -- else the tiny random checkpoints."""
    from seg_r1 import demo_app
    from seg_r1.data.synthetic_trees import write_foreground_dataset

    quickstart = tmp_path / "quickstart"
    shutil.copytree(tiny_ckpts.policy, quickstart / "grpo")
    write_training_meta(
        quickstart / "grpo",
        stage="rl",
        frame_size=224,
        answer_mode="full",
        segmenter="classical",
        classical_iterations=1,
    )
    write_foreground_dataset(quickstart / "data", 3, seed=0, size=224, split="test")
    argv = ["--quickstart_dir", str(quickstart), "--tiny_dir", str(tiny_ckpts.root)]
    args = demo_app.build_parser().parse_args(argv)
    app = demo_app.load_demo(args)
    assert not app.tiny and app.default_frame == 224
    assert app.segmenter.iterations == 1  # GrabCut as the policy was trained with it
    chosen = demo_app.build_parser().parse_args([*argv, "--classical_iterations", "2"])
    assert demo_app.load_demo(chosen).segmenter.iterations == 2  # unless one was chosen
    assert "quickstart's trained policy" in app.description
    assert "classical GrabCut" in app.description and str(quickstart / "grpo") in app.description
    examples = demo_app.quickstart_examples(args)
    assert len(examples) == 3 and all(row[1] == "foreground" for row in examples)
    assert all(Path(row[0]).parent == quickstart / "data" / "Test" / "Image" for row in examples)

    # no quickstart policy there: the tiny fallback, as before
    empty = demo_app.build_parser().parse_args(
        ["--quickstart_dir", str(tmp_path / "none"), "--tiny_dir", str(tiny_ckpts.root)]
    )
    assert demo_app.quickstart_policy(empty) is None
    assert demo_app.load_demo(empty).tiny
