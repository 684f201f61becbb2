"""The full-size benchmarks' own logic: the memory model's terms against hand-computed values
and PEFT's adapter count, and the GPU check rehearsed on CPU with the tiny models (slow: every
Python step of ``benchmarks/gpu_check.sh`` runs, as on the GPU machine)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _module(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_lora_parameter_count_matches_peft():
    """r-rank LoRA on q/k/v/o/gate/up/down of the language model, counted by PEFT itself on a
    small Qwen2.5-VL (the target regex of configs/grpo_cod_lora.yaml)."""
    import yaml
    from peft import LoraConfig, get_peft_model
    from transformers import Qwen2_5_VLForConditionalGeneration

    from seg_r1.qwen_parts import build_tokenizer, qwen25vl_config

    memory_model = _module("memory_model")
    recipe = yaml.safe_load((ROOT / "configs" / "grpo_cod_lora.yaml").read_text())
    text = {
        "vocab_size": 700,
        "hidden_size": 64,
        "intermediate_size": 160,
        "num_hidden_layers": 3,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "rope_parameters": {"rope_type": "default", "mrope_section": [2, 3, 3]},
    }
    vision = {"depth": 1, "hidden_size": 32, "intermediate_size": 64, "num_heads": 2}
    model = Qwen2_5_VLForConditionalGeneration(
        qwen25vl_config(build_tokenizer(), text, vision, tie_word_embeddings=True)
    )
    lora = LoraConfig(r=8, target_modules=recipe["lora_target_modules"][0], lora_alpha=16)
    peft_model = get_peft_model(model, lora)
    trainable = sum(p.numel() for p in peft_model.parameters() if p.requires_grad)
    assert memory_model.lora_parameters(text, r=8) == trainable


def test_memory_estimate_terms():
    """1e9 parameters, full fine-tuning, 8 GPUs, no tokens: ZeRO-2 keeps weights + reference
    (2 + 2 bytes) whole and shards gradients + fp32 master/moments ((2 + 12) / 8); ZeRO-3
    shards the reference too but holds the gathered weights for generation."""
    mm = _module("memory_model")
    fixed = (mm.SAM2_GIB + mm.OVERHEAD_GIB) * mm.GIB
    p = 10**9
    zero2 = mm.estimate(p, p, False, "zero2", 8, 0, 0, 0, 0.0) - fixed
    assert zero2 == pytest.approx(p * (2 + 2 + 14 / 8))
    zero3 = mm.estimate(p, p, False, "zero3", 8, 0, 0, 0, 0.0) - fixed
    assert zero3 == pytest.approx(p * (2 + 16 / 8))
    offload = mm.estimate(p, p, False, "zero3_offload", 8, 0, 0, 0, 0.0) - fixed
    assert offload == pytest.approx(p * (2 + 4 / 8))
    lora = mm.estimate(p, 10**6, True, "zero2", 8, 1000, 10, 100, 500.0) - fixed
    assert lora == pytest.approx(2 * p + 16 * 10**6 / 8 + 1000 * 500 + 2 * 10 * 100 * 4)


@pytest.mark.slow
def test_gpu_check_rehearsal_on_cpu(tmp_path):
    out = tmp_path / "out"
    env = {
        **os.environ,
        "GPU_CHECK_DEVICE": "cpu",
        "GPU_CHECK_TINY": "1",
        "GPU_CHECK_CKPT": str(tmp_path / "ckpt"),
        "OUT": str(out),
    }
    result = subprocess.run(
        ["bash", "benchmarks/gpu_check.sh"], cwd=ROOT, env=env, capture_output=True, text=True,
        timeout=1500,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    files = sorted(p.name for p in out.iterdir())
    assert len(files) <= 8, files  # what the device tool brings back
    steps = [json.loads(line) for line in (out / "steps.jsonl").read_text().splitlines()]
    assert [s["step"] for s in steps] == ["3b_full", "reward_path", "7b_lora", "eval_3b"]
    assert all(s["rc"] == 0 for s in steps), steps
    full = json.loads((out / "3b_full.json").read_text())
    assert full["sam2"]["encoder_seconds_per_image"] > 0
    assert full["train"]["step_seconds"] > 0 and full["train"]["generation_calls"] == 1
    assert full["eval"]["batched"]["images_per_second"] > 0
    lora = json.loads((out / "7b_lora.json").read_text())
    assert lora["lora"] and 0 < lora["train"]["trainable_parameters"]
    reward = json.loads((out / "reward_path.json").read_text())
    assert reward["groups"][0]["identical_rewards"] is True
    assert reward["groups"][0]["encodes"] == {"ours": 1, "official": 2}
