"""Full-size presets (seg_r1.full_size): the published architectures, random weights that load
through the same code as a downloaded checkpoint.

Oracles: the parameter counts the model cards state (Qwen2.5-VL-3B-Instruct: 3,754,622,976;
Qwen2.5-VL-7B-Instruct: 8,292,166,656 -- the safetensors totals the hub shows; SAM 2.1: Meta's
README table), not numbers produced by this code. The full-size checkpoints themselves are
built by ``benchmarks/bench_full_size.py`` (7.5 GB); here the writer is exercised on a small
config through the same functions.
"""

from __future__ import annotations

import json

import pytest
import torch

from seg_r1.full_size import (
    POLICY_PRESETS,
    SAM2_PRESETS,
    PolicyPreset,
    build_policy_preset,
    build_sam2_preset,
    count_parameters,
    meta_policy,
    write_random_weights,
)

PUBLISHED = {"qwen2.5-vl-3b": 3_754_622_976, "qwen2.5-vl-7b": 8_292_166_656}


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_preset_has_the_published_parameter_count(name):
    model, tokenizer = meta_policy(POLICY_PRESETS[name])
    assert count_parameters(model) == PUBLISHED[name]
    config = model.config
    # the vocabulary keeps the model's rows; the project's tokenizer is far smaller
    assert config.text_config.vocab_size in (151936, 152064) and len(tokenizer) < 1000
    assert config.image_token_id == tokenizer.convert_tokens_to_ids("<|image_pad|>")
    assert config.vision_config.out_hidden_size == config.text_config.hidden_size
    assert config.vision_config.fullatt_block_indexes == [7, 15, 23, 31]
    assert config.text_config.rope_parameters["mrope_section"] == [16, 24, 24]


def test_random_weights_load_with_from_pretrained(tmp_path):
    """A small preset through the same builder: an index + several shards that
    ``from_pretrained`` and TRL's loader (``config.architectures``) load with nothing missing,
    norms at one, biases at zero, matrices at the initialiser's standard deviation."""
    from transformers import AutoConfig, AutoModelForImageTextToText, AutoProcessor

    small = PolicyPreset(
        name="small",
        source="test",
        text={
            "vocab_size": 1024,
            "hidden_size": 128,
            "intermediate_size": 256,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "rope_parameters": {
                "rope_type": "default",
                "rope_theta": 1e6,
                "mrope_section": [4, 6, 6],
            },
        },
        vision={"depth": 2, "hidden_size": 64, "intermediate_size": 128, "num_heads": 2},
        tie_word_embeddings=False,
        published_parameters=0,
    )
    out = build_policy_preset(tmp_path / "policy", small, seed=0, shard_bytes=256 * 1024)
    index = json.loads((out / "model.safetensors.index.json").read_text())
    assert len(set(index["weight_map"].values())) > 1  # really sharded
    assert AutoConfig.from_pretrained(out).architectures == ["Qwen2_5_VLForConditionalGeneration"]
    processor = AutoProcessor.from_pretrained(out)
    assert processor.image_processor.size == {"shortest_edge": 3136, "longest_edge": 12845056}

    loaded, info = AutoModelForImageTextToText.from_pretrained(
        out, dtype=torch.float32, output_loading_info=True
    )
    assert not info["missing_keys"] and not info["unexpected_keys"]
    params = dict(loaded.named_parameters())
    model, _ = meta_policy(small)
    assert count_parameters(loaded) == count_parameters(model)
    norm = params["model.language_model.norm.weight"]
    assert torch.equal(norm, torch.ones_like(norm))
    bias = params["model.language_model.layers.0.self_attn.q_proj.bias"]
    assert torch.equal(bias, torch.zeros_like(bias))
    weight = params["model.language_model.layers.0.mlp.up_proj.weight"]
    assert abs(weight.std().item() - 0.02) < 0.002
    # deterministic for a seed, different across seeds
    again = write_random_weights(model, tmp_path / "again", seed=0, shard_bytes=256 * 1024)
    other = write_random_weights(model, tmp_path / "other", seed=1, shard_bytes=256 * 1024)
    assert again["weight_map"] == index["weight_map"] == other["weight_map"]
    first = sorted(set(index["weight_map"].values()))[0]
    assert (out / first).read_bytes() == (tmp_path / "again" / first).read_bytes()
    assert (out / first).read_bytes() != (tmp_path / "other" / first).read_bytes()


def test_sam2_preset_is_meta_layout_with_published_size(tmp_path):
    from seg_r1.segmenters.sam2 import build_sam2_model

    config, checkpoint = build_sam2_preset(tmp_path, "hiera_t")
    assert checkpoint.name == "sam2.1_hiera_tiny.pt"
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    assert set(state) == {"model"}
    model = build_sam2_model(config, checkpoint=checkpoint)  # strict load: every key matches
    published = SAM2_PRESETS["hiera_t"].published_parameters
    assert abs(count_parameters(model) - published) / published < 0.005


def test_cli_rejects_unknown_preset(tmp_path, capsys):
    from seg_r1 import tiny

    with pytest.raises(SystemExit):
        tiny.main(["--preset", "qwen9-vl", "--out", str(tmp_path)])
    assert "invalid choice" in capsys.readouterr().err
