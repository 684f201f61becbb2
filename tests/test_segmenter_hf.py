"""The transformers backends ``sam2_hf`` (Sam2Model) and ``sam3`` (Sam3TrackerModel): the same
masks as Meta's SAM2 for the same weights, the segmenter protocol, strict loading, the Meta ->
transformers converter (tiny and the packaged SAM2.1 configs)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from seg_r1.answer import parse_answer
from seg_r1.segmenters import (
    PromptSet,
    Segmenter,
    SegmenterConfig,
    build_segmenter,
    masks_from_answer,
    segment_batch,
)
from seg_r1.segmenters.convert import SAM2ConversionError, sam2_hf_config, sam2_hf_state_dict
from seg_r1.segmenters.hf import (
    HFSegmenterLoadError,
    SAM2HFSegmenter,
    SAM3Segmenter,
    write_hf_checkpoint,
)
from seg_r1.segmenters.sam2 import SAM2Segmenter, build_sam2_model

HF_BACKENDS = {"sam2_hf": SAM2HFSegmenter, "sam3": SAM3Segmenter}


def scene(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A textured ellipse on a differently textured background, ``uint8 (H, W, 3)``."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:height, :width]
    inside = ((xx - 0.45 * width) / (0.3 * width)) ** 2 + (
        (yy - 0.55 * height) / (0.3 * height)
    ) ** 2 <= 1
    bg = np.stack(
        [
            np.sin(xx / 5.0) * 40 + 90,
            np.cos(yy / 7.0) * 40 + 80,
            rng.integers(40, 90, (height, width)),
        ],
        axis=-1,
    )
    fg = np.stack(
        [rng.integers(150, 230, (height, width)), np.sin((xx + yy) / 4.0) * 30 + 140,
         np.full((height, width), 60)],
        axis=-1,
    )  # fmt: skip
    return np.where(inside[..., None], fg, bg).astype(np.uint8)


def prompt_sets(height: int, width: int) -> list[PromptSet]:
    """Box; box + a foreground and a background point; points only; a second box."""
    h, w = height, width
    return [
        PromptSet.make([0.2 * w, 0.25 * h, 0.75 * w, 0.85 * h]),
        PromptSet.make(
            [0.1 * w, 0.3 * h, 0.6 * w, 0.9 * h], [[0.3 * w, 0.5 * h], [0.15 * w, 0.35 * h]], [1, 0]
        ),
        PromptSet.make(None, [[0.45 * w, 0.55 * h], [0.9 * w, 0.1 * h]], [1, 0]),
        PromptSet.make([0.0, 0.0, 0.4 * w, 0.4 * h]),
    ]


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


@pytest.fixture(scope="module")
def meta_sam2(tiny_ckpts) -> SAM2Segmenter:
    return SAM2Segmenter(tiny_ckpts.sam2_config, tiny_ckpts.sam2_checkpoint)


@pytest.fixture(scope="module")
def hf_segs(tiny_ckpts) -> dict[str, Segmenter]:
    return {
        "sam2_hf": SAM2HFSegmenter(tiny_ckpts.sam2_hf),
        "sam3": SAM3Segmenter(tiny_ckpts.sam3),
    }


# --------------------------------------------------------------------------- sam2 == sam2_hf


def test_tiny_sam2_hf_holds_the_tiny_sam2_weights(meta_sam2, hf_segs):
    converted = sam2_hf_state_dict(meta_sam2.model.state_dict())
    loaded = hf_segs["sam2_hf"].model.state_dict()
    assert converted.keys() == loaded.keys()
    for key, value in converted.items():
        torch.testing.assert_close(loaded[key], value, rtol=0, atol=0, msg=key)
    meta = meta_sam2.model.state_dict()  # two spot checks with hand-written names
    torch.testing.assert_close(
        loaded["vision_encoder.backbone.blocks.2.mlp.proj_out.weight"],
        meta["image_encoder.trunk.blocks.2.mlp.layers.1.weight"],
    )
    torch.testing.assert_close(
        loaded["prompt_encoder.point_embed.weight"][3],
        meta["sam_prompt_encoder.point_embeddings.3.weight"][0],
    )


def test_sam2_hf_equals_sam2_at_the_model_input_size(meta_sam2, hf_segs):
    """256 x 256 is the tiny model's input size: neither processor resizes, and the masks of
    every prompt kind are identical, pixel for pixel."""
    image = scene(256, 256)
    hf = hf_segs["sam2_hf"]
    meta_sam2.set_image(image)
    hf.set_image(image)
    prompts = prompt_sets(256, 256)
    expected = meta_sam2.predict_batch(prompts)
    got = hf.predict_batch(prompts)
    for want, mask in zip(expected, got):
        assert 0 < want.sum() < want.size  # not a trivial mask
        np.testing.assert_array_equal(mask, want)


def test_sam2_hf_equals_sam2_given_the_same_pixels(meta_sam2, hf_segs):
    """Any image size: fed the pixels Meta's transform makes, the transformers model gives
    the same masks exactly (the converter, the prompts' scaling and the upsampling agree)."""
    image = scene(96, 128, seed=1)
    hf = hf_segs["sam2_hf"]
    meta_sam2.set_image(image)
    hf.set_image(image)
    meta_pixels = meta_sam2.predictor._transforms(image)[None]
    with torch.inference_mode():
        hf._embeddings = hf.model.get_image_embeddings(meta_pixels)
    prompts = prompt_sets(96, 128)
    for want, mask in zip(meta_sam2.predict_batch(prompts), hf.predict_batch(prompts)):
        np.testing.assert_array_equal(mask, want)


#: End-to-end tolerance between ``sam2`` and ``sam2_hf`` on images that must be resized.
#: Cause: transformers' image processor resizes the uint8 image and rounds it to uint8
#: before normalising, Meta's transform resizes the [0, 1] float image, so the inputs differ
#: by up to one grey level (asserted below) and pixels whose logit is near 0 can flip. Measured
#: on the tiny random-weight model (logits within +-0.2, so many pixels near 0): at most 0.33%
#: of the pixels differ, IoU >= 0.9948 (16 images of 4 sizes x 3 prompt kinds).
MAX_DIFFERING_PIXELS = 0.01
MIN_IOU = 0.98


@pytest.mark.parametrize("hw", [(96, 128), (200, 300), (512, 384)])
def test_sam2_hf_is_close_to_sam2_on_resized_images(meta_sam2, hf_segs, hw):
    image = scene(*hw, seed=2)
    hf = hf_segs["sam2_hf"]
    meta_pixels = meta_sam2.predictor._transforms(image)[None]
    hf_pixels = hf.processor(images=image, input_data_format="channels_last", return_tensors="pt")
    difference = (hf_pixels["pixel_values"] - meta_pixels).abs().max().item()
    one_grey_level = 1 / 255 / 0.224  # normalised by the smallest std of SAM2's three
    assert 0 < difference <= 1.01 * one_grey_level
    meta_sam2.set_image(image)
    hf.set_image(image)
    prompts = prompt_sets(*hw)
    for want, mask in zip(meta_sam2.predict_batch(prompts), hf.predict_batch(prompts)):
        assert (mask != want).mean() <= MAX_DIFFERING_PIXELS
        assert iou(mask, want) >= MIN_IOU


# --------------------------------------------------------------------------- the protocol


@pytest.mark.parametrize("backend", list(HF_BACKENDS))
def test_masks_are_bool_in_the_image_size(hf_segs, backend):
    seg = hf_segs[backend]
    assert isinstance(seg, Segmenter) and seg.name == backend
    image = scene(96, 128)
    seg.set_image(image)
    for prompt in prompt_sets(96, 128)[:3]:  # box, box + points, points only
        mask = seg.predict(prompt.box, prompt.points, prompt.labels)
        assert mask.shape == (96, 128) and mask.dtype == np.bool_


@pytest.mark.parametrize("backend", list(HF_BACKENDS))
def test_one_encoder_pass_per_distinct_image(hf_segs, backend, monkeypatch):
    seg = hf_segs[backend]
    shapes = []
    real = seg.model.get_image_embeddings

    def spy(pixel_values, **kwargs):
        shapes.append(tuple(pixel_values.shape))
        return real(pixel_values, **kwargs)

    monkeypatch.setattr(seg.model, "get_image_embeddings", spy)
    seg.stats.reset()
    a, b = scene(96, 128, seed=3), scene(64, 80, seed=4)
    texts = [
        "<bbox>[5,5,50,40]</bbox>",
        "<bbox>[10,10,60,60]</bbox><points>[[20,20]]</points><labels>[1]</labels>",
        "garbage",
        "<bbox>[30,20,90,80]</bbox><bbox>[1,1,20,20]</bbox>",
        "<bbox>[2,2,30,30]</bbox>",
    ]
    images = [a.copy(), a.copy(), a.copy(), a.copy(), b]
    answers = [parse_answer(t, img.shape[:2]) for t, img in zip(texts, images)]
    masks = segment_batch(seg, images, answers)
    assert len(shapes) == 2 and seg.stats.encoder_calls == 2  # a once (4 copies), b once
    assert seg.stats.prompt_sets == 5  # 1 + 1 + 0 + 2 + 1
    # a: 3 box-only sets in one call + 1 box+1-point set; b: 1 box-only set.
    assert seg.stats.decoder_calls == 3
    assert [m.shape for m in masks] == [(96, 128)] * 4 + [(64, 80)]
    assert not masks[2].any()


@pytest.mark.parametrize("backend", list(HF_BACKENDS))
def test_union_over_boxes_is_the_or_of_single_boxes(hf_segs, backend):
    seg = hf_segs[backend]
    seg.set_image(scene(96, 128, seed=5))
    answer = parse_answer("<bbox>[5,5,50,40]</bbox><bbox>[60,30,120,90]</bbox>", (96, 128))
    before = seg.stats.decoder_calls
    union = masks_from_answer(seg, answer)
    assert seg.stats.decoder_calls - before == 1  # both boxes in one batched decoder call
    single = seg.predict([5, 5, 50, 40]) | seg.predict([60, 30, 120, 90])
    np.testing.assert_array_equal(union, single)


@pytest.mark.parametrize("backend", list(HF_BACKENDS))
def test_different_point_counts_are_decoded_apart(hf_segs, backend):
    seg = hf_segs[backend]
    seg.set_image(scene(96, 128, seed=6))
    one = PromptSet.make([10, 10, 90, 80], [[40, 40]], [1])
    two = PromptSet.make([10, 10, 90, 80], [[40, 40], [80, 20]], [1, 0])
    before = seg.stats.decoder_calls
    together = seg.predict_batch([one, two])
    assert seg.stats.decoder_calls - before == 2  # never padded to a common count
    np.testing.assert_array_equal(together[0], seg.predict_batch([one])[0])
    np.testing.assert_array_equal(together[1], seg.predict_batch([two])[0])


#: Normalisation of each backend's processor (SAM2: ImageNet's; SAM3: 0.5 / 0.5).
NORMALISATION = {
    "sam2_hf": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    "sam3": ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
}


@pytest.mark.parametrize("backend", list(HF_BACKENDS))
def test_rgb_reaches_the_model(hf_segs, backend, monkeypatch):
    """A pure red image: channel 0 of the model input is R (255), channel 2 is B (0);
    ``bgr_compat`` swaps them."""
    seg = hf_segs[backend]
    seen = []
    real = seg.model.get_image_embeddings
    monkeypatch.setattr(
        seg.model, "get_image_embeddings", lambda px, **kw: (seen.append(px), real(px, **kw))[1]
    )
    red = np.zeros((40, 60, 3), np.uint8)
    red[..., 0] = 255
    seg.set_image(red)
    monkeypatch.setattr(seg, "bgr_compat", True)
    seg.set_image(red)
    (mean_r, _, mean_b), (std_r, _, std_b) = NORMALISATION[backend]
    rgb, bgr = (px[0, :, 5:-5, 5:-5] for px in seen)  # inside: no border effects of the resize
    torch.testing.assert_close(rgb[0], torch.full_like(rgb[0], (1 - mean_r) / std_r))
    torch.testing.assert_close(rgb[2], torch.full_like(rgb[2], (0 - mean_b) / std_b))
    torch.testing.assert_close(bgr[0], torch.full_like(bgr[0], (0 - mean_r) / std_r))
    torch.testing.assert_close(bgr[2], torch.full_like(bgr[2], (1 - mean_b) / std_b))


@pytest.mark.parametrize("backend", list(HF_BACKENDS))
def test_masks_are_logits_above_zero(hf_segs, backend, monkeypatch):
    """The rule is ``logits > 0`` on the logits resized to the image: 0 itself is background."""
    seg = hf_segs[backend]
    seg.set_image(scene(2, 3))
    calls = []
    logits = torch.tensor([[[[-1.0, 0.0, 1e-6], [2.0, -1e-6, 0.0]]]])  # (B=1, 1, H=2, W=3)

    def fake_post_process(masks, original_sizes, **kwargs):
        calls.append((tuple(masks.shape), original_sizes, kwargs))
        return [logits]

    monkeypatch.setattr(seg.processor, "post_process_masks", fake_post_process)
    mask = seg.predict([0, 0, 3, 2])
    np.testing.assert_array_equal(mask, [[False, False, True], [True, False, False]])
    ((shape, sizes, kwargs),) = calls
    assert shape[:3] == (1, 1, 1) and sizes == [[2, 3]] and kwargs == {"binarize": False}


@pytest.mark.parametrize("backend", list(HF_BACKENDS))
def test_bfloat16_runs(tiny_ckpts, backend, monkeypatch):
    path = getattr(tiny_ckpts, backend)
    seg = HF_BACKENDS[backend](path, dtype="bfloat16")
    autocast = []
    for method in ("get_image_embeddings", "forward"):  # the encoder, the decoder
        real = getattr(seg.model, method)

        def spy(*args, _real=real, **kwargs):
            autocast.append(
                torch.get_autocast_dtype("cpu") if torch.is_autocast_enabled("cpu") else None
            )
            return _real(*args, **kwargs)

        monkeypatch.setattr(seg.model, method, spy)
    seg.set_image(scene(96, 128))
    mask = seg.predict([10, 10, 60, 70], [[30, 30]], [1])
    assert mask.shape == (96, 128) and mask.dtype == np.bool_
    assert autocast == [torch.bfloat16, torch.bfloat16]
    assert seg._embeddings[0].dtype == torch.bfloat16  # conv outputs computed in bf16
    with pytest.raises(ValueError, match="dtype"):
        HF_BACKENDS[backend](path, dtype="float16")


# --------------------------------------------------------------------------- strict loading


@pytest.mark.parametrize("backend", list(HF_BACKENDS))
def test_missing_folder_or_config_names_the_path(tmp_path, backend):
    missing = tmp_path / "nope"
    with pytest.raises(HFSegmenterLoadError, match=f"not found: {missing}.*python -m seg_r1.tiny"):
        HF_BACKENDS[backend](missing)
    with pytest.raises(HFSegmenterLoadError, match=f"{tmp_path} has no config.json"):
        HF_BACKENDS[backend](tmp_path)


def test_wrong_model_type_names_the_path_and_the_backend(tiny_ckpts):
    with pytest.raises(
        HFSegmenterLoadError,
        match=r"sam2_hf/config.json has model_type 'sam2'.*--segmenter sam2_hf",
    ):
        SAM3Segmenter(tiny_ckpts.sam2_hf)
    with pytest.raises(HFSegmenterLoadError, match=r"model_type 'sam3_tracker'.*--segmenter sam3"):
        SAM2HFSegmenter(tiny_ckpts.sam3)


@pytest.mark.parametrize("backend", list(HF_BACKENDS))
def test_a_missing_or_extra_weight_key_is_refused(tiny_ckpts, tmp_path, backend):
    from safetensors.torch import load_file, save_file

    for change in ("missing", "unexpected"):
        folder = tmp_path / change
        shutil.copytree(getattr(tiny_ckpts, backend), folder)
        weights = load_file(folder / "model.safetensors")
        # SAM3's tracker saves its keys under "tracker_model.", SAM2's bare.
        (key,) = [k for k in weights if k.endswith("mask_decoder.iou_token.weight")]
        if change == "missing":
            del weights[key]
            pattern = (
                r"1 missing keys \(e.g. \['(tracker_model.)?mask_decoder.iou_token.weight'\]\)"
            )
        else:
            weights[key.replace("iou_token", "extra_head")] = torch.zeros(2)
            pattern = (
                r"1 unexpected keys \(e.g. \['(tracker_model.)?mask_decoder.extra_head.weight'\]\)"
            )
        save_file(weights, folder / "model.safetensors", metadata={"format": "pt"})
        with pytest.raises(HFSegmenterLoadError, match=f"{folder} do not match.*{pattern}"):
            HF_BACKENDS[backend](folder)


def test_write_hf_checkpoint_refuses_a_state_dict_that_does_not_fit(meta_sam2, tmp_path):
    config = sam2_hf_config(meta_sam2.model)
    state = sam2_hf_state_dict(meta_sam2.model.state_dict())
    del state["mask_decoder.iou_token.weight"]
    with pytest.raises(HFSegmenterLoadError, match="1 missing keys"):
        write_hf_checkpoint(tmp_path / "out", "sam2_hf", config, state)


# --------------------------------------------------------------------------- config, factory


def test_build_segmenter_from_segmenter_config(tiny_ckpts):
    config = SegmenterConfig(segmenter="sam2_hf", segmenter_path=str(tiny_ckpts.sam2_hf))
    seg = build_segmenter(config.segmenter, cache=False, **config.segmenter_kwargs("cpu"))
    assert isinstance(seg, SAM2HFSegmenter) and seg.path == tiny_ckpts.sam2_hf
    config = SegmenterConfig(
        segmenter="sam3", segmenter_path=str(tiny_ckpts.sam3), sam2_dtype="bfloat16"
    )
    seg = build_segmenter(config.segmenter, cache=False, **config.segmenter_kwargs("cpu"))
    assert isinstance(seg, SAM3Segmenter) and seg.dtype == "bfloat16"


def test_segmenter_config_for_the_hf_backends():
    assert SegmenterConfig().segmenter == "sam2"  # the default is unchanged
    kwargs = SegmenterConfig(segmenter="sam2_hf").segmenter_kwargs("cuda:1")
    assert kwargs == {"path": "third_party/sam2.1-hiera-large", "device": "cuda:1",
                      "dtype": "float32", "bgr_compat": False}  # fmt: skip
    kwargs = SegmenterConfig(segmenter="sam3", sam2_device="cpu").segmenter_kwargs("cuda")
    assert kwargs["path"] == "third_party/sam3" and kwargs["device"] == "cpu"
    with pytest.raises(ValueError, match="segmenter_path is only read by"):
        SegmenterConfig(segmenter="sam2", segmenter_path="third_party/sam3")
    with pytest.raises(ValueError, match="segmenter must be one of"):
        SegmenterConfig(segmenter="sam3_hf")


def test_launch_check_for_the_hf_backends(tiny_ckpts, tmp_path):
    from seg_r1.configs import GRPOScriptArguments
    from seg_r1.launch import LaunchError, check_sam2

    missing = tmp_path / "sam3"
    with pytest.raises(LaunchError, match=f"sam3 folder not found: {missing}"):
        check_sam2(GRPOScriptArguments(segmenter="sam3", segmenter_path=str(missing)))
    with pytest.raises(LaunchError, match="third_party/sam2.1-hiera-large"):
        check_sam2(GRPOScriptArguments(segmenter="sam2_hf"))  # the default folder is absent
    check_sam2(GRPOScriptArguments(segmenter="sam2_hf", segmenter_path=str(tiny_ckpts.sam2_hf)))
    check_sam2(GRPOScriptArguments(segmenter="sam3", reward_funcs=["format"]))  # no masks needed


# --------------------------------------------------------------------------- the converter


def test_state_dict_key_mapping():
    """Hand-written Meta -> transformers names (the facts of transformers' conversion)."""
    meta = {
        "no_mem_embed": torch.zeros(1, 1, 4),
        "image_encoder.trunk.patch_embed.proj.weight": torch.zeros(1),
        "image_encoder.trunk.blocks.3.norm1.weight": torch.zeros(1),
        "image_encoder.trunk.blocks.3.mlp.layers.0.weight": torch.zeros(1),
        "image_encoder.trunk.blocks.3.mlp.layers.1.weight": torch.zeros(1),
        "image_encoder.neck.convs.2.conv.bias": torch.zeros(1),
        "sam_prompt_encoder.pe_layer.positional_encoding_gaussian_matrix": torch.ones(2, 2),
        "sam_prompt_encoder.mask_downscaling.4.bias": torch.zeros(1),
        **{
            f"sam_prompt_encoder.point_embeddings.{i}.weight": torch.full((1, 4), float(i))
            for i in range(4)
        },
        "sam_mask_decoder.transformer.layers.0.norm3.weight": torch.zeros(1),
        "sam_mask_decoder.transformer.layers.1.cross_attn_image_to_token.out_proj.bias": torch.zeros(
            1
        ),
        "sam_mask_decoder.transformer.norm_final_attn.weight": torch.zeros(1),
        "sam_mask_decoder.output_upscaling.3.weight": torch.zeros(1),
        **{
            f"sam_mask_decoder.iou_prediction_head.layers.{i}.bias": torch.zeros(1)
            for i in range(3)
        },
        "memory_encoder.fuser.layers.0.gamma": torch.zeros(1),  # video-only: dropped
        "maskmem_tpos_enc": torch.zeros(1),
    }
    out = sam2_hf_state_dict(meta)
    assert sorted(out) == sorted([
        "no_memory_embedding",
        "vision_encoder.backbone.patch_embed.projection.weight",
        "vision_encoder.backbone.blocks.3.layer_norm1.weight",
        "vision_encoder.backbone.blocks.3.mlp.proj_in.weight",
        "vision_encoder.backbone.blocks.3.mlp.proj_out.weight",
        "vision_encoder.neck.convs.2.bias",
        "prompt_encoder.shared_embedding.positional_embedding",
        "shared_image_embedding.positional_embedding",
        "prompt_encoder.mask_embed.layer_norm2.bias",
        "prompt_encoder.point_embed.weight",
        "mask_decoder.transformer.layers.0.layer_norm3.weight",
        "mask_decoder.transformer.layers.1.cross_attn_image_to_token.o_proj.bias",
        "mask_decoder.transformer.layer_norm_final_attn.weight",
        "mask_decoder.upscale_conv2.weight",
        "mask_decoder.iou_prediction_head.proj_in.bias",
        "mask_decoder.iou_prediction_head.layers.0.bias",
        "mask_decoder.iou_prediction_head.proj_out.bias",
    ])  # fmt: skip
    np.testing.assert_array_equal(out["prompt_encoder.point_embed.weight"][:, 0], [0, 1, 2, 3])
    np.testing.assert_array_equal(
        out["shared_image_embedding.positional_embedding"], np.ones((2, 2))
    )
    with pytest.raises(
        SAM2ConversionError, match=r"1 SAM2 state-dict keys .*'image_encoder.extra'"
    ):
        sam2_hf_state_dict({**meta, "image_encoder.extra": torch.zeros(1)})


#: transformers' configs of the released checkpoints (facebook/sam2.1-hiera-*, from its
#: conversion script): blocks per stage, global blocks, windows, widths, heads, background.
RELEASED = {
    "sam2.1_hiera_t.yaml": ([1, 2, 7, 2], [5, 7, 9], [8, 4, 14, 7], 96, 1, [7, 7]),
    "sam2.1_hiera_s.yaml": ([1, 2, 11, 2], [7, 10, 13], [8, 4, 14, 7], 96, 1, [7, 7]),
    "sam2.1_hiera_b+.yaml": ([2, 3, 16, 3], [12, 16, 20], [8, 4, 14, 7], 112, 2, [14, 14]),
    "sam2.1_hiera_l.yaml": ([2, 6, 36, 4], [23, 33, 43], [8, 4, 16, 8], 144, 2, [7, 7]),
}


@pytest.mark.parametrize("config", list(RELEASED))
def test_converter_on_the_packaged_sam2_1_configs(config):
    """Each full-size config maps to the released transformers config and its converted
    (random) weights fit ``Sam2Model`` key for key, shape for shape."""
    from transformers import Sam2Config, Sam2Model

    blocks, global_blocks, windows, width, heads, background = RELEASED[config]
    model = build_sam2_model(config, checkpoint=None)
    hf_config = sam2_hf_config(model)
    backbone = hf_config["vision_config"]["backbone_config"]
    assert backbone["blocks_per_stage"] == blocks
    assert backbone["global_attention_blocks"] == global_blocks
    assert backbone["window_size_per_stage"] == windows
    assert backbone["embed_dim_per_stage"] == [width, 2 * width, 4 * width, 8 * width]
    assert backbone["num_attention_heads_per_stage"] == [heads, 2 * heads, 4 * heads, 8 * heads]
    assert backbone["window_positional_embedding_background_size"] == background
    assert hf_config["vision_config"]["backbone_channel_list"] == [
        8 * width,
        4 * width,
        2 * width,
        width,
    ]
    assert hf_config["vision_config"]["backbone_feature_sizes"] == [
        [256, 256],
        [128, 128],
        [64, 64],
    ]
    assert hf_config["prompt_encoder_config"]["image_size"] == 1024
    state = sam2_hf_state_dict(model.state_dict())
    with torch.device("meta"):  # shapes only
        reference = Sam2Model(Sam2Config.from_dict(hf_config)).state_dict()
    assert {k: v.shape for k, v in state.items()} == {k: v.shape for k, v in reference.items()}


def test_converter_refuses_what_sam2model_cannot_express(meta_sam2, monkeypatch):
    monkeypatch.setattr(meta_sam2.model, "use_high_res_features_in_sam", False)
    with pytest.raises(SAM2ConversionError, match="use_high_res_features_in_sam"):
        sam2_hf_config(meta_sam2.model)


def test_tiny_checkpoint_paths(tiny_ckpts):
    assert tiny_ckpts.sam2_hf == Path(tiny_ckpts.root) / "sam2_hf"
    assert tiny_ckpts.sam3 == Path(tiny_ckpts.root) / "sam3"
    assert (tiny_ckpts.sam3 / "config.json").is_file() and tiny_ckpts.exists()
