"""Tiny checkpoints for tests and CPU runs, built locally (no download).

    python -m seg_r1.tiny --out runs/tiny [--seed 0]
    python -m seg_r1.tiny --preset qwen2.5-vl-3b --sam2-preset hiera_l --out runs/full
                                      # released architectures, random weights (seg_r1.full_size)

writes

* ``OUT/policy/`` -- a Qwen2.5-VL checkpoint directory (the real ``Qwen2_5_VLForConditionalGeneration``
  classes, two text layers, a two-block vision tower) with a byte-level BPE tokenizer trained
  here (Qwen's special tokens, one token per digit, the answer-grammar tags as single ordinary
  tokens), a Qwen2.5-VL chat template and an image processor with small pixel bounds. It loads
  with ``AutoProcessor.from_pretrained`` / ``AutoModelForImageTextToText.from_pretrained``.
* ``OUT/policy_qwen3-vl/``, ``OUT/policy_qwen3.5/`` -- the same sizes and tokenizer as
  Qwen3-VL and Qwen3.5 checkpoints (``Qwen3VLForConditionalGeneration`` /
  ``Qwen3_5ForConditionalGeneration``, ``Qwen3VLProcessor`` with 16-pixel patches, the Qwen3
  chat template), for the other policy families (:mod:`seg_r1.families`).
* ``OUT/sam2/sam2_tiny.yaml`` + ``OUT/sam2/sam2_tiny.pt`` -- a ~1M-parameter SAM2 built from the
  packaged ``sam2.1_hiera_t.yaml`` with width/depth overrides, saved as ``{"model": state_dict}``
  like Meta's checkpoints and loaded by the same :func:`seg_r1.segmenters.sam2.build_sam2_model`.
* ``OUT/sam2_hf/`` -- that SAM2 (the same weights) converted to transformers' hub format
  (``Sam2Model``, ``save_pretrained``) for the ``"sam2_hf"`` backend.
* ``OUT/sam3/`` -- a ~0.1M-parameter SAM3 tracker (``Sam3TrackerModel``, hub format) for the
  ``"sam3"`` backend.

Everything is deterministic for a given seed. Weights are random: the tiny models exercise
the real loading, generation and prompting code, not segmentation quality.
"""

from __future__ import annotations

import argparse
import logging
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from seg_r1.logs import setup_logging
from seg_r1.qwen_parts import (
    TOKENIZER_VOCAB,
    build_tokenizer,
    qwen3_config,
    qwen3_processor,
    qwen25vl_config,
    qwen25vl_processor,
    set_generation_tokens,
)
from seg_r1.segmenters.sam2 import build_sam2_model, load_sam2_config

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TinySpec:
    """Sizes of the tiny checkpoints (the why of each number in the comments)."""

    # Policy text model: 2 layers of width 64 keep a forward pass ~1 ms on CPU.
    text_hidden: int = 64
    text_layers: int = 2
    text_heads: int = 4  # head_dim 16 -> mrope_section must sum to 8
    text_kv_heads: int = 2
    text_intermediate: int = 128
    # Vision tower: 2 blocks of width 32; block 1 is a full-attention block as in the real model.
    vision_hidden: int = 32
    vision_depth: int = 2
    vision_heads: int = 2
    vision_intermediate: int = 64
    # Text M-RoPE. 10000 is Qwen's theta; with head_dim 16-32 it leaves the height and width
    # sections (the lowest frequencies) almost still over a 4x4 merged-token image, so a
    # policy that must read positions wants a small theta (see seg_r1.quickstart).
    rope_theta: float = 10000.0
    # (temporal, height, width) rotary pairs, summing to head_dim / 2; None: the temporal
    # section takes the remainder and height/width a third each (Qwen's 16/24/24 at 128).
    mrope_section: tuple[int, int, int] | None = None
    # Processor pixel bounds: 56^2..112^2 pixels -> 4..16 merged image tokens per image.
    min_pixels: int = 56 * 56
    max_pixels: int = 112 * 112
    # Tokenizer: small BPE vocabulary (plus special and grammar tokens).
    vocab_size: int = TOKENIZER_VOCAB
    # SAM2: image size 256 (4x fewer pixels per side than 1024) keeps encoding ~10 ms.
    sam2_image_size: int = 256
    # SAM3 tracker: 252 = 18 x 14, the multiple of its 14-pixel patches nearest below 256.
    sam3_image_size: int = 252


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def build_policy(out: Path, spec: TinySpec, seed: int) -> Path:
    """Write a tiny Qwen2.5-VL checkpoint directory to ``out`` and return it."""
    from transformers import Qwen2_5_VLForConditionalGeneration

    _seed_everything(seed)
    tok = build_tokenizer(spec.vocab_size)
    head_dim = spec.text_hidden // spec.text_heads
    half = head_dim // 2
    mrope = [half - 2 * (half // 3), half // 3, half // 3]  # temporal, height, width
    if spec.mrope_section is not None:
        mrope = list(spec.mrope_section)
        if sum(mrope) != half:
            raise ValueError(f"mrope_section {mrope} must sum to head_dim / 2 = {half}")
    text = {
        "vocab_size": len(tok),
        "hidden_size": spec.text_hidden,
        "intermediate_size": spec.text_intermediate,
        "num_hidden_layers": spec.text_layers,
        "num_attention_heads": spec.text_heads,
        "num_key_value_heads": spec.text_kv_heads,
        "max_position_embeddings": 4096,
        "rope_parameters": {
            "rope_type": "default",
            "rope_theta": float(spec.rope_theta),
            "mrope_section": mrope,
        },
    }
    vision = {
        "depth": spec.vision_depth,
        "hidden_size": spec.vision_hidden,
        "intermediate_size": spec.vision_intermediate,
        "num_heads": spec.vision_heads,
        "fullatt_block_indexes": [spec.vision_depth - 1],
        "patch_size": 14,
        "spatial_merge_size": 2,
        "temporal_patch_size": 2,
        "window_size": 112,
    }
    model = Qwen2_5_VLForConditionalGeneration(
        qwen25vl_config(tok, text, vision, tie_word_embeddings=True)
    )
    set_generation_tokens(model, tok)
    processor = qwen25vl_processor(tok, spec.min_pixels, spec.max_pixels)
    return _save_policy(out, model, processor, "Qwen2.5-VL")


def _save_policy(out: Path, model: Any, processor: Any, family: str) -> Path:
    """Save a tiny policy's model and processor to ``out`` (logged with its size)."""
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    processor.save_pretrained(out)
    n = sum(p.numel() for p in model.parameters())
    vocab = model.config.get_text_config().vocab_size
    logger.info("tiny %s policy: %.2fM parameters, vocab %d -> %s", family, n / 1e6, vocab, out)
    return out


#: Tiny Qwen3 processor pixel bounds: 64^2..128^2 pixels -> 4..16 merged 32-pixel tokens per
#: image, the token counts of the tiny Qwen2.5-VL's 56^2..112^2 with 28-pixel tokens.
QWEN3_TINY_PIXELS = (64 * 64, 128 * 128)


def build_qwen3_policy(out: Path, spec: TinySpec, seed: int, family: str = "qwen3-vl") -> Path:
    """Write a tiny Qwen3-VL (``family="qwen3-vl"``) or Qwen3.5 (``"qwen3.5"``) checkpoint to
    ``out``: the real ``Qwen3VLForConditionalGeneration`` / ``Qwen3_5ForConditionalGeneration``
    classes at :class:`TinySpec`'s text and vision sizes, 16-pixel patches merged 2x2, the same
    tokenizer as the tiny Qwen2.5-VL and the Qwen3 chat template (:mod:`seg_r1.qwen_parts`).
    Qwen3.5's text layers alternate linear attention (gated delta rule; transformers' PyTorch
    reference kernels on CPU) and full attention, as the released models do (3:1 there)."""
    import transformers

    _seed_everything(seed)
    tok = build_tokenizer(spec.vocab_size)
    head_dim = spec.text_hidden // spec.text_heads
    text: dict = {
        "vocab_size": len(tok),
        "hidden_size": spec.text_hidden,
        "intermediate_size": spec.text_intermediate,
        "num_hidden_layers": spec.text_layers,
        "num_attention_heads": spec.text_heads,
        "num_key_value_heads": spec.text_kv_heads,
        "head_dim": head_dim,
        "max_position_embeddings": 4096,
    }
    # Interleaved M-RoPE (Qwen3's): (temporal, height, width) pairs summing to the rotary half.
    rope = {"rope_type": "default", "rope_theta": float(spec.rope_theta), "mrope_interleaved": True}
    if family == "qwen3.5":
        rotary_half = head_dim // 4  # partial_rotary_factor 0.5
        rope["partial_rotary_factor"] = 0.5
        text.update(
            linear_key_head_dim=head_dim,
            linear_value_head_dim=head_dim,
            linear_num_key_heads=spec.text_kv_heads,
            linear_num_value_heads=spec.text_heads,
            layer_types=["linear_attention", "full_attention"] * (spec.text_layers // 2)
            + ["full_attention"] * (spec.text_layers % 2),
        )
        model_class = transformers.Qwen3_5ForConditionalGeneration
    elif family == "qwen3-vl":
        rotary_half = head_dim // 2
        model_class = transformers.Qwen3VLForConditionalGeneration
    else:
        raise ValueError(f"build_qwen3_policy builds qwen3-vl or qwen3.5, got {family!r}")
    rope["mrope_section"] = [
        rotary_half - 2 * (rotary_half // 4),
        rotary_half // 4,
        rotary_half // 4,
    ]
    text["rope_parameters"] = rope
    vision = {
        "depth": spec.vision_depth,
        "hidden_size": spec.vision_hidden,
        "intermediate_size": spec.vision_intermediate,
        "num_heads": spec.vision_heads,
        "patch_size": 16,
        "spatial_merge_size": 2,
        "temporal_patch_size": 2,
        # learnt position grid (8 x 8 patches, interpolated to the image's grid)
        "num_position_embeddings": 64,
    }
    if family == "qwen3-vl":
        vision["deepstack_visual_indexes"] = [0]  # one DeepStack tap, as the real model's three
    model = model_class(qwen3_config(family, tok, text, vision, tie_word_embeddings=True))
    set_generation_tokens(model, tok)
    processor = qwen3_processor(tok, *QWEN3_TINY_PIXELS)
    return _save_policy(out, model, processor, family)


def sam2_tiny_overrides(spec: TinySpec) -> list[str]:
    """Overrides shrinking ``sam2.1_hiera_t.yaml`` to a ~1M-parameter model.

    Constraints: the mask decoder's hidden width (the neck's ``d_model``) must be divisible by
    8 (its upscaling convs use ``d/4`` and ``d/8`` channels and it has 8 attention heads);
    a Hiera stage's first block cannot be a global-attention block; the memory modules (unused
    for single images but part of the state dict) must agree with the hidden width.
    """
    d = 32  # neck / decoder width
    mem = 16  # memory-encoder output width
    feat = spec.sam2_image_size // 16
    return [
        f"++model.image_size={spec.sam2_image_size}",
        "++model.image_encoder.trunk.embed_dim=8",
        "++model.image_encoder.trunk.num_heads=1",
        "++model.image_encoder.trunk.stages=[1,1,2,1]",
        "++model.image_encoder.trunk.global_att_blocks=[3]",
        "++model.image_encoder.trunk.window_pos_embed_bkg_spatial_size=[4,4]",
        "++model.image_encoder.trunk.window_spec=[4,4,4,2]",
        f"++model.image_encoder.neck.d_model={d}",
        "++model.image_encoder.neck.backbone_channel_list=[64,32,16,8]",
        f"++model.image_encoder.neck.position_encoding.num_pos_feats={d}",
        f"++model.memory_attention.d_model={d}",
        "++model.memory_attention.num_layers=1",
        f"++model.memory_attention.layer.d_model={d}",
        "++model.memory_attention.layer.dim_feedforward=64",
        f"++model.memory_attention.layer.self_attention.embedding_dim={d}",
        f"++model.memory_attention.layer.self_attention.feat_sizes=[{feat},{feat}]",
        f"++model.memory_attention.layer.cross_attention.embedding_dim={d}",
        f"++model.memory_attention.layer.cross_attention.feat_sizes=[{feat},{feat}]",
        f"++model.memory_attention.layer.cross_attention.kv_in_dim={mem}",
        f"++model.memory_encoder.out_dim={mem}",
        f"++model.memory_encoder.in_dim={d}",
        f"++model.memory_encoder.position_encoding.num_pos_feats={mem}",
        f"++model.memory_encoder.mask_downsampler.embed_dim={d}",
        f"++model.memory_encoder.fuser.layer.dim={d}",
        "++model.num_maskmem=2",
    ]


def build_sam2(out: Path, spec: TinySpec, seed: int) -> tuple[Path, Path]:
    """Write ``sam2_tiny.yaml`` (a full config) and ``sam2_tiny.pt`` to ``out``."""
    from omegaconf import OmegaConf

    _seed_everything(seed)
    out.mkdir(parents=True, exist_ok=True)
    cfg = load_sam2_config("sam2.1_hiera_t.yaml", sam2_tiny_overrides(spec))
    config_path = out / "sam2_tiny.yaml"
    config_path.write_text(
        "# Tiny SAM2 for tests, written by `python -m seg_r1.tiny` (random weights).\n"
        + OmegaConf.to_yaml(cfg)
    )
    model = build_sam2_model(config_path, checkpoint=None)
    ckpt_path = out / "sam2_tiny.pt"
    torch.save({"model": model.state_dict()}, ckpt_path)
    n = sum(p.numel() for p in model.parameters())
    logger.info("tiny SAM2: %.2fM parameters -> %s", n / 1e6, ckpt_path)
    return config_path, ckpt_path


def build_sam2_hf(
    out: Path, spec: TinySpec, seed: int, sam2_files: tuple[Path, Path] | None = None
) -> Path:
    """Write the tiny SAM2 in transformers' hub format (``Sam2Model`` + ``Sam2Processor``) to
    ``out``: THE SAME WEIGHTS as :func:`build_sam2`'s checkpoint, converted by
    :func:`seg_r1.segmenters.convert.convert_sam2`. ``sam2_files`` is that ``(yaml, pt)`` pair;
    ``None`` builds it (same ``spec`` and ``seed``, so the same weights) in a temporary folder."""
    import tempfile

    from seg_r1.segmenters.convert import convert_sam2

    if sam2_files is not None:
        return convert_sam2(*sam2_files, out)
    with tempfile.TemporaryDirectory() as tmp:
        return convert_sam2(*build_sam2(Path(tmp), spec, seed), out)


def sam3_tiny_config(spec: TinySpec) -> dict:
    """``config.json`` of a ~0.1M-parameter SAM3 tracker (``Sam3TrackerConfig``).

    A 2-layer ViT of width 32 (the real one: 32 layers of 1024) on ``spec.sam3_image_size``
    with 14-pixel patches (an 18 x 18 grid at 252): windows of 6 tokens (3 x 3 windows) and a
    last global-attention layer, as in the real model; the position embeddings are learnt at
    the input size (``pretrain_image_size``: no interpolation). The FPN, prompt encoder and
    mask decoder share width 32; feature sizes are 4x, 2x and 1x the patch grid.
    """
    size, width = spec.sam3_image_size, 32
    grid = size // 14
    if grid * 14 != size:
        raise ValueError(f"sam3_image_size must be a multiple of 14, got {size}")
    backbone = {
        "model_type": "sam3_vit_model",
        "hidden_size": width,
        "intermediate_size": 2 * width,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "image_size": size,
        "patch_size": 14,
        "window_size": 6,
        "global_attn_indexes": [1],
        "pretrain_image_size": size,
    }
    vision = {
        "model_type": "sam3_vision_model",
        "backbone_config": backbone,
        "fpn_hidden_size": width,
        "backbone_feature_sizes": [[4 * grid] * 2, [2 * grid] * 2, [grid] * 2],
    }
    return {
        "model_type": "sam3_tracker",
        "vision_config": vision,
        "prompt_encoder_config": {"hidden_size": width, "image_size": size, "patch_size": 14},
        "mask_decoder_config": {
            "hidden_size": width,
            "mlp_dim": 2 * width,
            "iou_head_hidden_dim": width,
        },
    }


def build_sam3(out: Path, spec: TinySpec, seed: int) -> Path:
    """Write a tiny random-weight SAM3 tracker (``Sam3TrackerModel`` + ``Sam3TrackerProcessor``,
    ``save_pretrained`` format) to ``out`` for the ``"sam3"`` backend."""
    from seg_r1.segmenters.hf import write_hf_checkpoint

    _seed_everything(seed)
    return write_hf_checkpoint(out, "sam3", sam3_tiny_config(spec))


#: The policy families :func:`build_tiny_checkpoints` builds a tiny policy of (the first is
#: ``policy/``, the faithful one).
TINY_FAMILIES: tuple[str, ...] = ("qwen2.5-vl", "qwen3-vl", "qwen3.5")


@dataclass(frozen=True)
class TinyCheckpoints:
    """Paths of a tiny checkpoint set."""

    root: Path

    @property
    def policy(self) -> Path:
        return self.root / "policy"

    @property
    def sam2_config(self) -> Path:
        return self.root / "sam2" / "sam2_tiny.yaml"

    @property
    def sam2_checkpoint(self) -> Path:
        return self.root / "sam2" / "sam2_tiny.pt"

    @property
    def sam2_hf(self) -> Path:
        """The tiny SAM2 in hub format (``"sam2_hf"``), the same weights as ``sam2_checkpoint``."""
        return self.root / "sam2_hf"

    @property
    def sam3(self) -> Path:
        """The tiny SAM3 tracker in hub format (``"sam3"``)."""
        return self.root / "sam3"

    def policy_of(self, family: str) -> Path:
        """The tiny policy of a family (:mod:`seg_r1.families`): ``policy/`` is Qwen2.5-VL's,
        ``policy_qwen3-vl/`` and ``policy_qwen3.5/`` the others."""
        if family not in TINY_FAMILIES:
            raise ValueError(f"no tiny policy of family {family!r}; built: {TINY_FAMILIES}")
        return self.policy if family == "qwen2.5-vl" else self.root / f"policy_{family}"

    def exists(self) -> bool:
        return (
            all((self.policy_of(f) / "config.json").is_file() for f in TINY_FAMILIES)
            and self.sam2_config.is_file()
            and self.sam2_checkpoint.is_file()
            and (self.sam2_hf / "config.json").is_file()
            and (self.sam3 / "config.json").is_file()
        )


def build_tiny_checkpoints(
    out: str | Path, seed: int = 0, spec: TinySpec | None = None, overwrite: bool = False
) -> TinyCheckpoints:
    """Build both tiny checkpoints under ``out`` (skipped when present unless ``overwrite``)."""
    spec = spec or TinySpec()
    tiny = TinyCheckpoints(Path(out))
    if tiny.exists() and not overwrite:
        logger.info("tiny checkpoints already at %s", tiny.root)
        return tiny
    build_policy(tiny.policy, spec, seed)
    for family in TINY_FAMILIES[1:]:
        build_qwen3_policy(tiny.policy_of(family), spec, seed, family)
    sam2_files = build_sam2(tiny.sam2_config.parent, spec, seed)
    build_sam2_hf(tiny.sam2_hf, spec, seed, sam2_files)
    build_sam3(tiny.sam3, spec, seed)
    return tiny


def main(argv: list[str] | None = None) -> None:
    from seg_r1.full_size import (
        POLICY_PRESETS,
        SAM2_PRESETS,
        build_policy_preset,
        build_sam2_preset,
        get_sam2_preset,
    )

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", required=True, help="output folder (policy/ and sam2/ go inside)")
    parser.add_argument("--seed", type=int, default=0, help="seed for weights (deterministic)")
    parser.add_argument("--overwrite", action="store_true", help="rebuild even if present")
    parser.add_argument(
        "--preset",
        default="tiny",
        choices=["tiny", *POLICY_PRESETS],
        help="policy architecture: the tiny test model, or a released one with random weights "
        "(seg_r1.full_size; written to OUT/policy)",
    )
    parser.add_argument(
        "--sam2-preset",
        default="tiny",
        choices=["tiny", *SAM2_PRESETS],
        help="SAM2 architecture: the tiny test model, or a packaged SAM2.1 config with random "
        "weights (written to OUT/sam2 under Meta's checkpoint name)",
    )
    args = parser.parse_args(argv)
    setup_logging(fmt="%(message)s")
    out = Path(args.out)
    if args.preset == "tiny" and args.sam2_preset == "tiny":
        tiny = build_tiny_checkpoints(out, seed=args.seed, overwrite=args.overwrite)
        for family in TINY_FAMILIES:
            logger.info("policy (%s): %s", family, tiny.policy_of(family))
        logger.info("sam2 config: %s", tiny.sam2_config)
        logger.info("sam2 checkpoint: %s", tiny.sam2_checkpoint)
        logger.info("sam2_hf folder: %s", tiny.sam2_hf)
        logger.info("sam3 folder: %s", tiny.sam3)
        return
    if args.preset != "tiny":  # only what was asked for: the tiny models are not built too
        policy = out / "policy"
        if (policy / "config.json").is_file() and not args.overwrite:
            logger.info("policy %s already at %s", args.preset, policy)
        else:
            build_policy_preset(policy, args.preset, seed=args.seed)
        logger.info("policy: %s", policy)
    if args.sam2_preset != "tiny":
        preset = get_sam2_preset(args.sam2_preset)
        sam2 = out / "sam2"
        if (sam2 / preset.checkpoint).is_file() and not args.overwrite:
            logger.info("SAM2 %s already at %s", args.sam2_preset, sam2)
        else:
            build_sam2_preset(sam2, args.sam2_preset, seed=args.seed)
        logger.info("sam2 config: %s", sam2 / preset.config)
        logger.info("sam2 checkpoint: %s", sam2 / preset.checkpoint)


if __name__ == "__main__":
    main()
