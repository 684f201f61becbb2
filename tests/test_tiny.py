"""Tiny checkpoints: real loading paths, generation from an image, SAM2 mask, determinism."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from seg_r1.prompts import build_chat
from seg_r1.qwen_parts import GRAMMAR_TOKENS, QWEN_SPECIAL_TOKENS
from seg_r1.tiny import TinySpec, build_policy, build_sam2


def _digest(folder: Path) -> dict[str, str]:
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.iterdir())
        if p.is_file()
    }


@pytest.fixture(scope="module")
def policy(tiny_ckpts):
    from transformers import AutoModelForImageTextToText, AutoProcessor

    processor = AutoProcessor.from_pretrained(tiny_ckpts.policy)
    model = AutoModelForImageTextToText.from_pretrained(tiny_ckpts.policy)
    return processor, model


def _image(h: int = 90, w: int = 130, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))


def test_policy_loads_with_auto_classes(policy):
    processor, model = policy
    assert type(processor).__name__ == "Qwen2_5_VLProcessor"
    assert type(model).__name__ == "Qwen2_5_VLForConditionalGeneration"
    n_params = sum(p.numel() for p in model.parameters())
    assert n_params < 1_000_000


def test_tokenizer_special_and_grammar_tokens(policy):
    processor, _ = policy
    tok = processor.tokenizer
    for t in QWEN_SPECIAL_TOKENS + GRAMMAR_TOKENS:
        ids = tok(t, add_special_tokens=False)["input_ids"]
        assert len(ids) == 1, (t, ids)
    # every digit is its own token: coordinates tokenize digit by digit
    ids = tok("[1024,768]", add_special_tokens=False)["input_ids"]
    assert tok.convert_ids_to_tokens(ids) == ["[", "1", "0", "2", "4", ",", "7", "6", "8", "]"]
    # grammar tags are ordinary tokens: they survive skip_special_tokens (TRL decodes that way)
    text = (
        "<think> a </think> <bbox>[1,2,3,4]</bbox>, <points>[[1,2]]</points>, <labels>[1]</labels>"
    )
    ids = tok(text + "<|im_end|>", add_special_tokens=False)["input_ids"]
    assert tok.decode(ids, skip_special_tokens=True) == text


def test_chat_template_format(policy):
    processor, _ = policy
    text = processor.apply_chat_template(
        build_chat("referring", None, "the red dog"), tokenize=False, add_generation_prompt=True
    )
    assert text.startswith("<|im_start|>system\nA conversation between User and Assistant.")
    assert text.endswith(
        "<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>"
        "Identify and segment the red dog<|im_end|>\n<|im_start|>assistant\n"
    )
    # without a system message Qwen's default one is inserted
    text = processor.apply_chat_template(
        build_chat("prerl", None), tokenize=False, add_generation_prompt=True
    )
    assert text.startswith("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n")


def test_processor_pixel_bounds(policy):
    processor, _ = policy
    spec = TinySpec()
    for size in [(40, 40), (90, 130), (600, 800)]:
        inputs = processor(
            text=["<|vision_start|><|image_pad|><|vision_end|>"],
            images=[_image(*size)],
            return_tensors="pt",
        )
        t, h, w = inputs["image_grid_thw"][0].tolist()
        pixels = h * w * 14 * 14
        assert spec.min_pixels <= pixels <= spec.max_pixels, (size, h, w)
        assert "mm_token_type_ids" in inputs  # transformers 5 processors add it


def test_generate_from_image(policy):
    processor, model = policy
    image = _image()
    text = processor.apply_chat_template(
        build_chat("rl", image), tokenize=False, add_generation_prompt=True
    )
    inputs = processor(text=[text], images=[image], return_tensors="pt")
    out = model.generate(**inputs, max_new_tokens=16, do_sample=False)
    assert out.shape[1] > inputs["input_ids"].shape[1]
    completion = processor.batch_decode(out[:, inputs["input_ids"].shape[1] :])[0]
    assert isinstance(completion, str) and completion


def test_generate_through_qwen_vl_utils(policy):
    from qwen_vl_utils import process_vision_info

    processor, model = policy
    messages = build_chat("foreground", _image(seed=1))
    images, videos = process_vision_info(messages)
    text = processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    inputs = processor(text=[text], images=images, return_tensors="pt")
    out = model.generate(**inputs, max_new_tokens=8, do_sample=False)
    assert out.shape[0] == 1 and out.shape[1] > inputs["input_ids"].shape[1]


def test_sam2_loads_and_predicts_a_mask(tiny_ckpts):
    from seg_r1.segmenters.sam2 import build_image_predictor, build_sam2_model

    model = build_sam2_model(tiny_ckpts.sam2_config, tiny_ckpts.sam2_checkpoint)
    assert sum(p.numel() for p in model.parameters()) < 1_500_000
    predictor = build_image_predictor(model)
    image = np.asarray(_image(120, 160))
    predictor.set_image(image)
    masks, scores, _ = predictor.predict(box=np.array([10, 20, 100, 90]), multimask_output=False)
    assert masks.shape == (1, 120, 160)
    assert scores.shape == (1,)


def test_sam2_checkpoint_mismatch_and_missing_raise(tiny_ckpts, tmp_path):
    from seg_r1.segmenters.sam2 import SAM2LoadError, build_sam2_model

    with pytest.raises(SAM2LoadError, match="not found"):
        build_sam2_model(tiny_ckpts.sam2_config, tmp_path / "nope.pt")
    state = torch.load(tiny_ckpts.sam2_checkpoint, weights_only=True)
    state["model"].pop(next(iter(state["model"])))
    state["model"]["extra.weight"] = torch.zeros(1)
    bad = tmp_path / "bad.pt"
    torch.save(state, bad)
    with pytest.raises(SAM2LoadError, match="1 missing keys.*1 unexpected keys"):
        build_sam2_model(tiny_ckpts.sam2_config, bad)
    with pytest.raises(SAM2LoadError, match="neither a file nor a config"):
        build_sam2_model("sam2.1_hiera_xxl.yaml", None)


def test_packaged_config_names_resolve():
    from seg_r1.segmenters.sam2 import resolve_sam2_config

    a = resolve_sam2_config("sam2.1_hiera_l.yaml")
    assert a == resolve_sam2_config("configs/sam2.1/sam2.1_hiera_l.yaml")
    assert a.name == "sam2.1_hiera_l.yaml" and a.is_file()


def test_build_is_deterministic(tiny_ckpts, tmp_path):
    spec = TinySpec()
    build_policy(tmp_path / "a" / "policy", spec, seed=0)
    build_sam2(tmp_path / "a" / "sam2", spec, seed=0)
    assert _digest(tmp_path / "a" / "policy") == _digest(tiny_ckpts.policy)
    assert _digest(tmp_path / "a" / "sam2") == _digest(tiny_ckpts.sam2_config.parent)
    build_sam2(tmp_path / "b" / "sam2", spec, seed=1)
    assert _digest(tmp_path / "b" / "sam2") != _digest(tiny_ckpts.sam2_config.parent)


def test_cli_writes_both_checkpoints(tmp_path):
    import subprocess
    import sys

    out = tmp_path / "tiny"
    proc = subprocess.run(
        [sys.executable, "-m", "seg_r1.tiny", "--out", str(out), "--seed", "3"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert (out / "policy" / "config.json").is_file()
    assert (out / "policy" / "tokenizer.json").is_file()
    assert (out / "sam2" / "sam2_tiny.pt").is_file()
    assert (out / "sam2" / "sam2_tiny.yaml").is_file()


def test_tokenizer_corpus_does_not_follow_new_prompts(monkeypatch):
    """The tiny tokenizer's corpus is frozen: a prompt added to seg_r1.prompts must not change
    the BPE merges (the quickstart's result depends on them; adding SYSTEM_PROMPT_SFT once
    moved its held-out IoU from 0.85 to 0.11)."""
    from seg_r1 import prompts, qwen_parts

    before = qwen_parts._tokenizer_corpus()
    monkeypatch.setattr(prompts, "SYSTEM_PROMPT_NEW", "a brand new prompt", raising=False)
    assert qwen_parts._tokenizer_corpus() == before
    assert prompts.SYSTEM_PROMPT_RL in before and prompts.SYSTEM_PROMPT_SFT not in before
