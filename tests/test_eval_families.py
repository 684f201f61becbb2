"""Evaluation and the demo with the other policy families and segmenter backends: the family
(and so the coordinate convention) is read from the checkpoint, ``--segmenter sam2_hf|sam3``."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from test_eval_support import common_args, load_script, make_scripted_policy, synthetic_root

#: The same prompts in a 128 frame (the tests' frame) and in Qwen3-VL's 0..1000: every number
#: maps exactly (x * 1000 / 128).
FRAME_ANSWER = (
    "<think> a shape </think> <bbox>[16,32,112,96]</bbox>, "
    "<points>[[64,64],[0,0]]</points>, <labels>[1,0]</labels>"
)
RELATIVE_ANSWER = (
    "<think> a shape </think> <bbox>[125,250,875,750]</bbox>, "
    "<points>[[500,500],[0,0]]</points>, <labels>[1,0]</labels>"
)


@pytest.fixture(scope="module")
def policies(tiny_ckpts, tmp_path_factory):
    base = tmp_path_factory.getbasetemp()
    return {
        "qwen2.5-vl": make_scripted_policy(
            tiny_ckpts.policy, base / "scripted_frame", FRAME_ANSWER
        ),
        "qwen3-vl": make_scripted_policy(
            tiny_ckpts.policy_of("qwen3-vl"), base / "scripted_qwen3vl", RELATIVE_ANSWER
        ),
    }


def _eval(policy, root, out, *extra):
    script = load_script("eval_foreground_segmentation")
    argv = ["--dataset", "synthetic", "--data_root", str(root), "--vis_output_path", str(out),
            "--limit", "3", "--report_cases", "0", *common_args(policy), *extra]  # fmt: skip
    assert script.main(argv) == 0
    result = json.loads((out / "synthetic_metrics.json").read_text())
    masks = {p.name: np.asarray(Image.open(p)) for p in sorted((out / "synthetic").rglob("*.png"))}
    return result, masks


def test_qwen3vl_relative_answers_give_the_masks_of_the_frame_answers(
    policies, tiny_ckpts, tmp_path_factory, tmp_path
):
    """The eval script reads the family from the checkpoint (no flag): the Qwen3-VL policy's
    0..1000 answer gives exactly the masks of the Qwen2.5-VL policy's frame-pixel answer."""
    root = synthetic_root(tmp_path_factory) / "fg"
    frame_result, frame_masks = _eval(policies["qwen2.5-vl"], root, tmp_path / "frame")
    rel_result, rel_masks = _eval(policies["qwen3-vl"], root, tmp_path / "rel")
    assert frame_result["config"]["coordinates"] == "frame"
    assert rel_result["config"]["coordinates"] == "relative_1000"
    assert len(frame_masks) == 3 and frame_masks.keys() == rel_masks.keys()
    for name, mask in frame_masks.items():
        assert mask.any(), name
        np.testing.assert_array_equal(rel_masks[name], mask, err_msg=name)
    assert rel_result["metrics"]["gIoU"] == frame_result["metrics"]["gIoU"]
    # forcing the wrong convention changes the answer's meaning (the test can fail)
    wrong, wrong_masks = _eval(
        policies["qwen3-vl"], root, tmp_path / "wrong", "--coordinates", "frame"
    )
    assert wrong["config"]["coordinates"] == "frame"
    assert any(not np.array_equal(wrong_masks[n], m) for n, m in frame_masks.items())


@pytest.mark.parametrize("segmenter", ["sam2_hf", "sam3"])
def test_eval_with_the_transformers_segmenters(
    policies, tiny_ckpts, tmp_path_factory, tmp_path, segmenter
):
    root = synthetic_root(tmp_path_factory) / "fg"
    args = common_args(policies["qwen3-vl"])
    args[args.index("classical")] = segmenter
    script = load_script("eval_foreground_segmentation")
    out = tmp_path / "out"
    argv = ["--dataset", "synthetic", "--data_root", str(root), "--vis_output_path", str(out),
            "--segmenter_path", str(getattr(tiny_ckpts, segmenter)),
            "--limit", "2", "--report_cases", "0", *args]  # fmt: skip
    assert script.main(argv) == 0
    result = json.loads((out / "synthetic_metrics.json").read_text())
    assert result["metrics"]["n"] == 2
    assert result["config"]["segmenter"] == segmenter
    assert result["config"]["coordinates"] == "relative_1000"
    assert len(list((out / "synthetic" / "masks").rglob("*.png"))) == 2


def test_demo_serves_a_qwen3vl_policy_with_sam3(policies, tiny_ckpts):
    """The demo's builder (no browser) on the Qwen3-VL policy and the SAM3 segmenter: the family
    comes from the checkpoint, the answer is read in 0..1000 and the header says so."""
    from seg_r1.demo_app import build_parser, load_demo

    args = build_parser().parse_args(
        ["--model_path", str(policies["qwen3-vl"]), "--segmenter", "sam3", "--segmenter_path",
         str(tiny_ckpts.sam3), "--device", "cpu", "--frame_size", "128",
         "--max_new_tokens", "64", "--quickstart_dir", ""]
    )  # fmt: skip
    demo = load_demo(args)
    assert (
        demo.coordinates == "relative_1000" and "**Coordinates** relative_1000" in demo.description
    )
    image = np.full((128, 128, 3), 120, np.uint8)
    result = demo.run(image, "foreground", frame_size=128)
    assert result.prediction.completion == RELATIVE_ANSWER
    np.testing.assert_allclose(result.prediction.answer.boxes, [[16, 32, 112, 96]])
    assert result.prediction.mask.shape == (128, 128)
    assert result.prompt.endswith("1000 (right, bottom).")
