"""Full-size checkpoints with random weights: the published architectures of the models the
real recipes train, built locally (no hub), to measure memory and time at the true size.

    python -m seg_r1.tiny --preset qwen2.5-vl-3b --out runs/full      # runs/full/policy (7.5 GB)
    python -m seg_r1.tiny --preset qwen2.5-vl-7b --out runs/full7b    # 16.6 GB
    python -m seg_r1.tiny --sam2-preset hiera_l --out runs/full       # runs/full/sam2 (0.9 GB)

Random weights cost exactly what real ones cost (memory, FLOPs, time); they segment nothing.

* **Policy presets** (:data:`POLICY_PRESETS`): every architecture number is the public
  ``config.json`` of the released checkpoint (cited per preset); the vocabulary keeps the
  model's size (151,936 / 152,064 rows) while the tokenizer is the project's own small BPE
  (:func:`seg_r1.qwen_parts.build_tokenizer`, ids beyond it are never produced), with the Qwen2.5-VL
  chat template and the released ``preprocessor_config.json`` pixel bounds
  (``min_pixels`` 3,136 = 56², ``max_pixels`` 12,845,056 = 3,584²). Weights are written shard by
  shard from a ``meta``-device model (no full copy in memory; HF's initialisation: normal(0,
  ``initializer_range``) for matrices and embeddings, ones for norms, zeros for biases) as
  bf16 safetensors with an index, like a downloaded checkpoint, and load with
  ``AutoModelForImageTextToText.from_pretrained``.
* **SAM2 presets** (:data:`SAM2_PRESETS`): Meta's packaged SAM2.1 configs, random weights saved
  as ``{"model": state_dict}`` under Meta's file names, loaded by
  :func:`seg_r1.segmenters.sam2.build_sam2_model` like a downloaded checkpoint.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PolicyPreset:
    """One released Qwen2.5-VL architecture (numbers from its public ``config.json``)."""

    name: str
    source: str
    text: dict[str, Any]
    tie_word_embeddings: bool
    #: The parameter count the model card states (the test's oracle for the numbers above).
    published_parameters: float
    #: Vision tower: the same in 3B, 7B and 72B (``vision_config`` of each ``config.json``).
    vision: dict[str, Any] = field(
        default_factory=lambda: {
            "depth": 32,
            "hidden_size": 1280,
            "intermediate_size": 3420,
            "num_heads": 16,
            "in_channels": 3,
            "patch_size": 14,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
            "window_size": 112,
            "fullatt_block_indexes": [7, 15, 23, 31],
            "tokens_per_second": 2,
            "hidden_act": "silu",
        }
    )
    #: ``preprocessor_config.json`` of the released checkpoints.
    min_pixels: int = 3136
    max_pixels: int = 12845056


#: Shared text settings of Qwen2.5-VL (both ``config.json``): M-RoPE sections 16/24/24 of the
#: 64 rotary pairs of a 128-wide head, theta 1e6, 128k positions, RMSNorm eps 1e-6, SiLU.
_QWEN25_TEXT = {
    "max_position_embeddings": 128000,
    "rms_norm_eps": 1e-6,
    "hidden_act": "silu",
    "initializer_range": 0.02,
    "rope_parameters": {
        "rope_type": "default",
        "rope_theta": 1000000.0,
        "mrope_section": [16, 24, 24],
    },
}

POLICY_PRESETS: dict[str, PolicyPreset] = {
    preset.name: preset
    for preset in (
        PolicyPreset(
            name="qwen2.5-vl-3b",
            source="huggingface.co/Qwen/Qwen2.5-VL-3B-Instruct/blob/main/config.json",
            text={
                **_QWEN25_TEXT,
                "vocab_size": 151936,
                "hidden_size": 2048,
                "intermediate_size": 11008,
                "num_hidden_layers": 36,
                "num_attention_heads": 16,
                "num_key_value_heads": 2,
            },
            tie_word_embeddings=True,
            published_parameters=3.75e9,
        ),
        PolicyPreset(
            name="qwen2.5-vl-7b",
            source="huggingface.co/Qwen/Qwen2.5-VL-7B-Instruct/blob/main/config.json",
            text={
                **_QWEN25_TEXT,
                "vocab_size": 152064,
                "hidden_size": 3584,
                "intermediate_size": 18944,
                "num_hidden_layers": 28,
                "num_attention_heads": 28,
                "num_key_value_heads": 4,
            },
            tie_word_embeddings=False,
            published_parameters=8.29e9,
        ),
    )
}


@dataclass(frozen=True)
class SAM2Preset:
    """A packaged SAM2.1 config and the file name of Meta's released checkpoint."""

    config: str
    checkpoint: str
    #: Parameters of the released checkpoint (Meta's SAM2 README, "SAM 2.1 checkpoints").
    published_parameters: float


SAM2_PRESETS: dict[str, SAM2Preset] = {
    "hiera_t": SAM2Preset("sam2.1_hiera_t.yaml", "sam2.1_hiera_tiny.pt", 38.9e6),
    "hiera_s": SAM2Preset("sam2.1_hiera_s.yaml", "sam2.1_hiera_small.pt", 46e6),
    "hiera_b+": SAM2Preset("sam2.1_hiera_b+.yaml", "sam2.1_hiera_base_plus.pt", 80.8e6),
    "hiera_l": SAM2Preset("sam2.1_hiera_l.yaml", "sam2.1_hiera_large.pt", 224.4e6),
}


def _lookup(table: dict[str, Any], name: str, what: str) -> Any:
    try:
        return table[name]
    except KeyError:
        raise ValueError(
            f"unknown {what} preset {name!r}; choose from {sorted(table)} or 'tiny'"
        ) from None


def get_policy_preset(name: str) -> PolicyPreset:
    return _lookup(POLICY_PRESETS, name, "policy")


def get_sam2_preset(name: str) -> SAM2Preset:
    return _lookup(SAM2_PRESETS, name, "SAM2")


def meta_policy(preset: PolicyPreset) -> Any:
    """The preset's model on the ``meta`` device (shapes only, no memory), with its tokenizer."""
    from transformers import Qwen2_5_VLForConditionalGeneration

    from seg_r1.qwen_parts import build_tokenizer, qwen25vl_config, set_generation_tokens

    tokenizer = build_tokenizer()
    config = qwen25vl_config(
        tokenizer, preset.text, preset.vision, tie_word_embeddings=preset.tie_word_embeddings
    )
    with torch.device("meta"):
        model = Qwen2_5_VLForConditionalGeneration(config)
    set_generation_tokens(model, tokenizer)
    return model, tokenizer


def count_parameters(model: Any) -> int:
    """Distinct parameters (a tied embedding counts once)."""
    return sum(p.numel() for p in model.parameters())


def _is_norm(module: torch.nn.Module) -> bool:
    return "Norm" in type(module).__name__


def write_random_weights(
    model: Any,
    out: Path,
    seed: int = 0,
    dtype: torch.dtype = torch.bfloat16,
    shard_bytes: int = 2 * 1024**3,
) -> dict[str, Any]:
    """Write random weights for ``model`` (on ``meta``) as sharded safetensors + index.

    HF's initialisation, tensor by tensor: normal(0, ``initializer_range``) for weights of
    linear/conv/embedding layers, ones for norm weights, zeros for biases. Tied parameters are
    written once (``named_parameters`` deduplicates them), as ``save_pretrained`` does.
    Returns the index (``metadata.total_size``, ``weight_map``).
    """
    from safetensors.torch import save_file

    std = float(getattr(model.config, "initializer_range", 0.02) or 0.02)
    norms = {
        f"{name}.{pname}" if name else pname
        for name, module in model.named_modules()
        if _is_norm(module)
        for pname, _ in module.named_parameters(recurse=False)
    }
    generator = torch.Generator().manual_seed(seed)
    params = dict(model.named_parameters())
    element = torch.empty((), dtype=dtype).element_size()
    shards: list[list[str]] = [[]]
    size = 0
    for name, param in params.items():
        if shards[-1] and size + param.numel() * element > shard_bytes:
            shards.append([])
            size = 0
        shards[-1].append(name)
        size += param.numel() * element
    out.mkdir(parents=True, exist_ok=True)
    weight_map: dict[str, str] = {}
    total = 0
    for index, names in enumerate(shards, start=1):
        file = f"model-{index:05d}-of-{len(shards):05d}.safetensors"
        tensors = {}
        for name in names:
            shape = params[name].shape
            if name in norms:
                tensor = torch.ones(shape, dtype=dtype)
            elif name.endswith(".bias"):
                tensor = torch.zeros(shape, dtype=dtype)
            else:
                tensor = torch.empty(shape, dtype=torch.float32).normal_(
                    0.0, std, generator=generator
                )
                tensor = tensor.to(dtype)
            tensors[name] = tensor
            weight_map[name] = file
            total += tensor.numel() * tensor.element_size()
        save_file(tensors, str(out / file), metadata={"format": "pt"})
        logger.info("wrote %s (%d tensors)", file, len(tensors))
        del tensors
    index_data = {"metadata": {"total_size": total}, "weight_map": weight_map}
    (out / "model.safetensors.index.json").write_text(json.dumps(index_data, indent=2))
    return index_data


def build_policy_preset(
    out: str | Path, preset: str | PolicyPreset, seed: int = 0, shard_bytes: int = 2 * 1024**3
) -> Path:
    """Write the preset's random-weight checkpoint (weights, config, tokenizer, processor)."""
    from seg_r1.qwen_parts import qwen25vl_processor

    preset = get_policy_preset(preset) if isinstance(preset, str) else preset
    out = Path(out)
    model, tokenizer = meta_policy(preset)
    model.config.dtype = torch.bfloat16
    # what save_pretrained records: TRL builds the policy from config.architectures[0]
    model.config.architectures = [type(model).__name__]
    n = count_parameters(model)
    logger.info(
        "%s: %.3fB parameters (%s), writing random weights to %s",
        preset.name,
        n / 1e9,
        preset.source,
        out,
    )
    write_random_weights(model, out, seed=seed, shard_bytes=shard_bytes)
    model.config.save_pretrained(out)
    model.generation_config.save_pretrained(out)
    qwen25vl_processor(tokenizer, preset.min_pixels, preset.max_pixels).save_pretrained(out)
    return out


def build_sam2_preset(out: str | Path, name: str, seed: int = 0) -> tuple[Path, Path]:
    """Write ``<config name>`` (resolved copy) and Meta's checkpoint file name to ``out``."""
    from omegaconf import OmegaConf

    from seg_r1.segmenters.sam2 import build_sam2_model, load_sam2_config

    preset = get_sam2_preset(name)
    torch.manual_seed(seed)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    config_path = out / preset.config
    config_path.write_text(
        f"# SAM2.1 {name} (packaged {preset.config}), written by `python -m seg_r1.tiny "
        f"--sam2-preset {name}` for random weights.\n"
        + OmegaConf.to_yaml(load_sam2_config(preset.config))
    )
    model = build_sam2_model(config_path, checkpoint=None)
    checkpoint = out / preset.checkpoint
    torch.save({"model": model.state_dict()}, checkpoint)
    n = count_parameters(model)
    logger.info("SAM2 %s: %.1fM parameters -> %s", name, n / 1e6, checkpoint)
    return config_path, checkpoint
