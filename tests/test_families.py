"""Policy families and the coordinate convention: the registry's facts against transformers, the
one place that decides the convention, and a relative-coordinate answer giving the same mask as
the equivalent frame-pixel answer."""

from __future__ import annotations

import json

import numpy as np
import pytest
from test_segmenter import textured_disk_scene

from seg_r1.answer import format_answer, parse_answer
from seg_r1.families import (
    FAMILIES,
    family_of,
    family_of_model_type,
    resolve_coordinates,
)
from seg_r1.frame import answer_to_frame, frame_to_answer
from seg_r1.tiny import TINY_FAMILIES

# --------------------------------------------------------------------------- registry facts


def test_family_facts_match_the_transformers_configs():
    """Patch and merge sizes as transformers' own vision configs define them (the oracle)."""
    import transformers

    vision = {
        "qwen2.5-vl": transformers.Qwen2_5_VLConfig().vision_config,
        "qwen3-vl": transformers.Qwen3VLConfig().vision_config,
        "qwen3.5": transformers.Qwen3_5Config().vision_config,
    }
    for name, config in vision.items():
        family = FAMILIES[name]
        assert (family.patch_size, family.merge_size) == (
            config.patch_size,
            config.spatial_merge_size,
        ), name
        assert getattr(transformers, type(config).__name__.replace("Vision", "")).model_type in (
            family.model_types
        )
    assert FAMILIES["qwen2.5-vl"].factor == 28 and FAMILIES["qwen3-vl"].factor == 32


def test_the_faithful_family_answers_in_frame_pixels():
    assert FAMILIES["qwen2.5-vl"].coordinates == "frame"
    assert FAMILIES["qwen3-vl"].coordinates == "relative_1000"
    assert FAMILIES["qwen3.5"].coordinates == "relative_1000"


def test_unknown_model_type_names_the_supported_ones():
    with pytest.raises(ValueError, match="qwen2_5_vl.*qwen3_vl"):
        family_of_model_type("llava")


@pytest.mark.parametrize("family", TINY_FAMILIES)
def test_tiny_checkpoint_of_each_family(tiny_ckpts, family):
    """The tiny policy loads through the Auto classes and is of its family; its processor's grid
    is the family's (a 112 frame becomes a multiple of 28 or 32)."""
    from PIL import Image

    from seg_r1.policy import load_policy

    path = tiny_ckpts.policy_of(family)
    assert family_of(path).name == family
    model, processor = load_policy(path, "cpu", "float32")
    assert family_of(model).name == family
    image_processor = processor.image_processor
    assert image_processor.patch_size * image_processor.merge_size == FAMILIES[family].factor
    out = processor.image_processor(images=[Image.new("RGB", (112, 112))], return_tensors="pt")
    _, rows, cols = out["image_grid_thw"][0].tolist()
    side = rows * FAMILIES[family].patch_size
    assert side == cols * FAMILIES[family].patch_size
    assert side % FAMILIES[family].factor == 0
    assert side == {"qwen2.5-vl": 112}.get(family, 128)  # 112/32 = 3.5 rounds to 4 (even)
    template = processor.apply_chat_template(
        [{"role": "user", "content": [{"type": "text", "text": "hi"}]}], tokenize=False
    )
    assert ("You are a helpful assistant." in template) == FAMILIES[family].default_system_turn


def test_launch_refuses_an_unsupported_model_type(tmp_path):
    from seg_r1.configs import SegR1ModelConfig
    from seg_r1.launch import LaunchError, check_model_path

    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llava"}))
    with pytest.raises(LaunchError, match="llava.*not a supported policy family"):
        check_model_path(SegR1ModelConfig(model_name_or_path=str(tmp_path)))


# --------------------------------------------------------------------------- the convention


def test_relative_coordinates_map_to_frame_pixels():
    # hand-computed: 0..1000 of a (height 200, width 100) frame
    got = answer_to_frame(np.array([[250.0, 500.0, 1000.0, 1000.0]]), (200, 100), "relative_1000")
    np.testing.assert_allclose(got, [[25.0, 100.0, 100.0, 200.0]])
    back = frame_to_answer(got, (200, 100), "relative_1000")
    np.testing.assert_allclose(back, [[250.0, 500.0, 1000.0, 1000.0]])
    same = answer_to_frame(np.array([[3.0, 4.0]]), 768, "frame")
    np.testing.assert_array_equal(same, [[3.0, 4.0]])
    with pytest.raises(ValueError, match="coordinates must be one of"):
        answer_to_frame(np.zeros((1, 2)), 768, "normalized")


def test_parse_relative_answer_equals_the_frame_pixel_answer():
    rel = "<think> x </think> <bbox>[250,250,750,1100]</bbox>, <points>[[500,500],[100,900]]</points>, <labels>[1,0]</labels>"
    pix = "<think> x </think> <bbox>[28,28,84,112]</bbox>, <points>[[56,56],[11.2,100.8]]</points>, <labels>[1,0]</labels>"
    a = parse_answer(rel, 112, coordinates="relative_1000")
    b = parse_answer(pix, 112)
    assert a.ok and b.ok
    np.testing.assert_allclose(a.boxes, b.boxes)  # 1100 is clipped to the frame's 112 edge
    np.testing.assert_allclose(a.points, b.points)
    np.testing.assert_array_equal(a.labels, b.labels)


def test_format_answer_writes_relative_integers():
    text = format_answer([[28, 28, 84, 112]], [[56, 56]], [1], think="t", frame_size=112,
                         coordinates="relative_1000")  # fmt: skip
    assert (
        text
        == "<think> t </think> <bbox>[250,250,750,1000]</bbox>, <points>[[500,500]]</points>, <labels>[1]</labels>"
    )
    with pytest.raises(ValueError, match="needs the frame_size"):
        format_answer([[1, 1, 2, 2]], coordinates="relative_1000")


def test_relative_answer_gives_the_same_mask_as_the_frame_answer(tiny_ckpts):
    """Through the real path (MaskComputer -> segment_batch -> SAM2), a Qwen3-VL answer in 0-1000
    and the equivalent frame-pixel answer give the same mask."""
    from seg_r1.mask_computer import MaskComputer
    from seg_r1.segmenters import build_segmenter

    image, _ = textured_disk_scene()
    frame = image.shape[0]
    sam2 = build_segmenter(
        "sam2", config=str(tiny_ckpts.sam2_config), checkpoint=str(tiny_ckpts.sam2_checkpoint)
    )
    box = np.array([0.2, 0.3, 0.7, 0.8]) * frame
    point = np.array([[0.45, 0.55]]) * frame
    pixels = format_answer([box], point, [1], think="t")
    relative = format_answer([box], point, [1], think="t", frame_size=frame,
                             coordinates="relative_1000")  # fmt: skip
    assert relative != pixels
    frame_masks = MaskComputer(sam2, frame)([pixels], [image], "full").masks
    rel_masks = MaskComputer(sam2, frame, coordinates="relative_1000")(
        [relative], [image], "full"
    ).masks
    assert frame_masks[0].any()
    np.testing.assert_array_equal(rel_masks[0], frame_masks[0])
    # ... and read in the wrong convention it is a different answer (the test can fail)
    wrong = MaskComputer(sam2, frame)([relative], [image], "full").masks
    assert not np.array_equal(wrong[0], frame_masks[0])


def test_resolve_coordinates_explicit_then_recorded_then_family(tiny_ckpts, tmp_path):
    from seg_r1.policy import write_training_meta

    assert resolve_coordinates(None, tiny_ckpts.policy) == "frame"
    assert resolve_coordinates(None, tiny_ckpts.policy_of("qwen3-vl")) == "relative_1000"
    assert resolve_coordinates(None, tiny_ckpts.policy_of("qwen3.5")) == "relative_1000"
    assert resolve_coordinates("frame", tiny_ckpts.policy_of("qwen3-vl")) == "frame"
    assert resolve_coordinates(None, "Qwen/Qwen2.5-VL-3B-Instruct") == "frame"  # a hub id
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "qwen3_vl"}))
    write_training_meta(tmp_path, coordinates="frame")
    assert resolve_coordinates(None, tmp_path) == "frame"  # recorded beats the family default
    with pytest.raises(ValueError, match="coordinates must be one of"):
        resolve_coordinates("pixels", tmp_path)


def test_prompts_keep_the_paper_text_for_frame_and_tell_relative_policies():
    from seg_r1 import prompts

    frame = prompts.build_chat("rl")
    assert frame[-1]["content"][1]["text"] == prompts.USER_PROMPT_FOREGROUND
    relative = prompts.build_chat("referring", query="the dog", coordinates="relative_1000")
    text = relative[-1]["content"][1]["text"]
    assert text == "Identify and segment the dog" + prompts.RELATIVE_1000_NOTE
    assert "0 (left, top) to 1000" in text


def test_trace_sft_targets_follow_the_convention(tiny_ckpts, tmp_path):
    """Synthesised SFT targets for a relative policy parse (in relative_1000) back to the frame
    answer, within the rounding of 0..1000 integers."""
    from seg_r1.configs import SegR1DataArguments
    from seg_r1.data.synthetic_trees import write_foreground_dataset
    from seg_r1.training_data import load_segmentation_data, sft_dataset_from_masks

    write_foreground_dataset(tmp_path, 4, seed=1, size=112, split="train")
    source = load_segmentation_data(
        SegR1DataArguments(datasets=["synthetic:train"], data_root=str(tmp_path))
    )
    frame_rows = sft_dataset_from_masks(source, 112)[:4]
    rel_rows = sft_dataset_from_masks(source, 112, coordinates="relative_1000")[:4]
    for frame_c, rel_c, rel_p in zip(frame_rows["completion"], rel_rows["completion"],
                                     rel_rows["prompt"]):  # fmt: skip
        a = parse_answer(frame_c[0]["content"][0]["text"], 112)
        b = parse_answer(rel_c[0]["content"][0]["text"], 112, coordinates="relative_1000")
        assert a.ok and b.ok
        np.testing.assert_allclose(b.boxes, a.boxes, atol=112 / 2000 + 1e-9)
        np.testing.assert_allclose(b.points, a.points, atol=112 / 2000 + 1e-9)
        assert rel_p[-1]["content"][1]["text"].endswith("1000 (right, bottom).")
