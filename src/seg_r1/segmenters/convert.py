"""Meta SAM2 checkpoints -> transformers' hub format (``Sam2Model``): the config and key mapping.

    python -m seg_r1.segmenters.convert --config sam2.1_hiera_l.yaml \\
        --checkpoint third_party/sam2/checkpoints/sam2.1_hiera_large.pt \\
        --out third_party/sam2.1-hiera-large

writes a ``save_pretrained`` folder (``config.json``, ``model.safetensors``,
``processor_config.json``) that the ``"sam2_hf"`` backend loads -- the SAME weights as the
``"sam2"`` backend's checkpoint, so the two backends can be compared (tests, benchmarks).

* :func:`sam2_hf_config` reads the architecture from a **built** Meta model (not from the YAML:
  the packaged configs leave many Hiera settings at the class defaults) and returns the
  ``config.json`` content of the equivalent ``Sam2Config``. Settings the image-only
  ``Sam2Model`` cannot express (no high-resolution decoder features, a linear object-score
  head, ...) raise :class:`SAM2ConversionError` instead of being silently dropped.
* :func:`sam2_hf_state_dict` renames Meta's keys to transformers' and drops the video-only
  modules (memory attention/encoder, object pointers: :data:`VIDEO_ONLY_KEYS`); an unknown key
  raises :class:`SAM2ConversionError`.

The mapping facts were learnt from transformers' ``convert_sam2_to_hf.py``; the code is ours
and is checked by loading strictly (no missing or unexpected key) and by comparing masks with
the Meta model (``tests/test_segmenter_hf.py``).
"""

from __future__ import annotations

import argparse
import logging
import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

logger = logging.getLogger(__name__)


class SAM2ConversionError(ValueError):
    """A Meta SAM2 model or state dict that has no exact ``Sam2Model`` equivalent."""


#: Meta state-dict keys of the video modules, absent from the image-only ``Sam2Model``
#: (prefixes end with "."; the others are whole keys).
VIDEO_ONLY_KEYS: tuple[str, ...] = (
    "memory_attention.",
    "memory_encoder.",
    "mask_downsample.",
    "obj_ptr_proj.",
    "obj_ptr_tpos_proj.",
    "maskmem_tpos_enc",
    "no_mem_pos_enc",
    "no_obj_ptr",
    "no_obj_embed_spatial",
)

#: Module renames, applied in order to every non-MLP part of a key (regex, replacement).
_RENAMES: tuple[tuple[str, str], ...] = (
    (r"^no_mem_embed$", "no_memory_embedding"),
    (r"^image_encoder\.trunk\.", "vision_encoder.backbone."),
    (r"^image_encoder\.neck\.convs\.(\d+)\.conv\.", r"vision_encoder.neck.convs.\1."),
    (r"\.patch_embed\.proj\.", ".patch_embed.projection."),
    (r"^sam_prompt_encoder\.", "prompt_encoder."),
    (r"\.pe_layer\.positional_encoding_gaussian_matrix$", ".shared_embedding.positional_embedding"),
    (r"\.mask_downscaling\.0\.", ".mask_embed.conv1."),
    (r"\.mask_downscaling\.1\.", ".mask_embed.layer_norm1."),
    (r"\.mask_downscaling\.3\.", ".mask_embed.conv2."),
    (r"\.mask_downscaling\.4\.", ".mask_embed.layer_norm2."),
    (r"\.mask_downscaling\.6\.", ".mask_embed.conv3."),
    (r"^sam_mask_decoder\.", "mask_decoder."),
    (r"\.output_upscaling\.0\.", ".upscale_conv1."),
    (r"\.output_upscaling\.1\.", ".upscale_layer_norm."),
    (r"\.output_upscaling\.3\.", ".upscale_conv2."),
    (r"\.out_proj\.", ".o_proj."),
    (r"\.norm_final_attn\.", ".layer_norm_final_attn."),
    (r"\.norm([1-4])\.", r".layer_norm\1."),  # Hiera blocks (1, 2) and two-way blocks (1-4)
)

#: Meta's ``MLP`` (``<prefix>.layers.<i>``) -> transformers' ``Sam2FeedForward``: the first
#: layer is ``proj_in``, the last ``proj_out``, the ones between ``layers.<i - 1>``.
_MLP_KEY = re.compile(
    r"^(?P<prefix>.+\.(?:mlp|output_hypernetworks_mlps\.\d+|iou_prediction_head|"
    r"pred_obj_score_head))\.layers\.(?P<index>\d+)\.(?P<param>weight|bias)$"
)
_POINT_EMBEDDING = re.compile(r"^sam_prompt_encoder\.point_embeddings\.(\d+)\.weight$")


def _is_video_only(key: str) -> bool:
    return any(key.startswith(k) if k.endswith(".") else key == k for k in VIDEO_ONLY_KEYS)


def _rename(key: str) -> str:
    for pattern, replacement in _RENAMES:
        key = re.sub(pattern, replacement, key)
    return key


def sam2_hf_state_dict(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Meta SAM2 ``state_dict`` -> ``Sam2Model`` state dict (video-only keys dropped).

    Besides renames: Meta's four point embeddings (``point_embeddings.{0..3}``, each ``(1, d)``)
    become one ``prompt_encoder.point_embed.weight`` ``(4, d)``, and the prompt encoder's random
    Gaussian matrix is also ``shared_image_embedding.positional_embedding`` (Meta uses one
    module for the point and the image-wide positional encodings, transformers two buffers).

    Raises:
        SAM2ConversionError: a key that is neither mapped nor video-only.
    """
    mlp_depth: dict[str, int] = {}
    for key in state:
        if match := _MLP_KEY.match(key):
            prefix = match["prefix"]
            mlp_depth[prefix] = max(mlp_depth.get(prefix, 0), int(match["index"]) + 1)
    out: dict[str, torch.Tensor] = {}
    points: dict[int, torch.Tensor] = {}
    unknown = []
    for key, value in state.items():
        if _is_video_only(key):
            continue
        if match := _POINT_EMBEDDING.match(key):
            points[int(match[1])] = value
            continue
        if match := _MLP_KEY.match(key):
            index, depth = int(match["index"]), mlp_depth[match["prefix"]]
            layer = f"layers.{index - 1}"
            if index in (0, depth - 1):
                layer = "proj_in" if index == 0 else "proj_out"
            new = f"{_rename(match['prefix'])}.{layer}.{match['param']}"
        else:
            new = _rename(key)
        if new == key:  # nothing matched: a module this mapping does not know
            unknown.append(key)
            continue
        out[new] = value
    if unknown:
        raise SAM2ConversionError(
            f"{len(unknown)} SAM2 state-dict keys have no Sam2Model equivalent "
            f"(e.g. {unknown[:5]}); is this a SAM2 / SAM2.1 checkpoint?"
        )
    if sorted(points) != [0, 1, 2, 3]:
        raise SAM2ConversionError(f"expected 4 point embeddings, got indices {sorted(points)}")
    out["prompt_encoder.point_embed.weight"] = torch.cat([points[i] for i in range(4)], dim=0)
    gaussian = out["prompt_encoder.shared_embedding.positional_embedding"]
    out["shared_image_embedding.positional_embedding"] = gaussian.clone()
    return out


def _require(condition: bool, what: str) -> None:
    if not condition:
        raise SAM2ConversionError(f"no Sam2Model equivalent: {what}")


def sam2_hf_config(model: torch.nn.Module) -> dict[str, Any]:
    """The ``config.json`` content of the ``Sam2Config`` equivalent to a built Meta SAM2 model
    (``SAM2Base``, from :func:`seg_r1.segmenters.sam2.build_sam2_model`).

    The mapping: Hiera ``embed_dim``/``num_heads`` -> ``hidden_size``/``num_attention_heads``,
    per-stage widths and heads read from each stage's last block, ``stages`` ->
    ``blocks_per_stage``, ``window_spec`` -> ``window_size_per_stage``, ``global_att_blocks``
    -> ``global_attention_blocks``, ``window_pos_embed_bkg_spatial_size`` ->
    ``window_positional_embedding_background_size``; the neck's ``d_model`` is the FPN, prompt
    encoder and mask decoder width; ``scalp`` (dropped lowest-resolution levels) gives
    ``num_feature_levels``; ``image_size`` sets the backbone, prompt encoder and feature sizes
    (``image_size / 4, / 8, / 16``...); the decoder's dynamic multi-mask settings are copied.

    Raises:
        SAM2ConversionError: a setting ``Sam2Model`` does not implement.
    """
    encoder, trunk, neck = model.image_encoder, model.image_encoder.trunk, model.image_encoder.neck
    decoder, prompt = model.sam_mask_decoder, model.sam_prompt_encoder
    blocks = list(trunk.blocks)
    stage_ends = list(trunk.stage_ends)
    blocks_per_stage = [stage_ends[0] + 1] + [b - a for a, b in zip(stage_ends, stage_ends[1:])]
    image_size, stride = int(model.image_size), int(model.backbone_stride)
    d_model = int(neck.d_model)
    patch = trunk.patch_embed.proj
    mlp_ratio = blocks[0].mlp.layers[0].out_features / blocks[0].dim_out
    pos = neck.position_encoding
    levels = len(neck.backbone_channel_list) - int(encoder.scalp)

    _require(bool(model.use_high_res_features_in_sam), "use_high_res_features_in_sam=false")
    _require(bool(model.directly_add_no_mem_embed), "directly_add_no_mem_embed=false")
    _require(bool(model.pred_obj_scores and model.pred_obj_scores_mlp), "no object-score MLP")
    _require(bool(model.iou_prediction_use_sigmoid), "iou_prediction_use_sigmoid=false")
    _require(neck.fpn_interp_model == "nearest", f"fpn_interp_model={neck.fpn_interp_model}")
    _require(neck.fuse_type == "sum", f"fuse_type={neck.fuse_type}")
    _require(2 * pos.num_pos_feats == d_model, "neck position encoding width != d_model")
    _require(pos.normalize and pos.temperature == 10000 and math.isclose(pos.scale, 2 * math.pi),
             "non-default neck position encoding")  # fmt: skip
    _require(image_size % (4 * 2 ** (levels - 1)) == 0, f"image_size {image_size}")
    _require(stride == 16, f"backbone_stride {stride}")
    conv = neck.convs[0].conv
    _require(conv.kernel_size == (1, 1) and conv.stride == (1, 1) and conv.padding == (0, 0),
             "non-1x1 neck convolutions")  # fmt: skip
    layer0 = decoder.transformer.layers[0]
    attention_downsample = layer0.cross_attn_token_to_image.embedding_dim // (
        layer0.cross_attn_token_to_image.internal_dim
    )
    backbone = {
        "model_type": "sam2_hiera_det_model",
        "hidden_size": int(trunk.pos_embed.shape[1]),
        "num_attention_heads": int(blocks[0].attn.num_heads),
        "image_size": [image_size, image_size],
        "patch_kernel_size": list(patch.kernel_size),
        "patch_stride": list(patch.stride),
        "patch_padding": list(patch.padding),
        "query_stride": list(trunk.q_stride),
        "window_positional_embedding_background_size": list(trunk.pos_embed.shape[2:]),
        "num_query_pool_stages": len(trunk.q_pool_blocks),
        "blocks_per_stage": blocks_per_stage,
        "embed_dim_per_stage": [int(blocks[e].dim_out) for e in stage_ends],
        "num_attention_heads_per_stage": [int(blocks[e].attn.num_heads) for e in stage_ends],
        "window_size_per_stage": [int(w) for w in trunk.window_spec],
        "global_attention_blocks": [int(b) for b in (trunk.global_att_blocks or ())],
        "mlp_ratio": float(mlp_ratio),
    }
    vision = {
        "model_type": "sam2_vision_model",
        "backbone_config": backbone,
        "backbone_channel_list": [int(c) for c in neck.backbone_channel_list],
        "backbone_feature_sizes": [[image_size // (4 * 2**i)] * 2 for i in range(levels)],
        "fpn_hidden_size": d_model,
        "fpn_top_down_levels": [int(level) for level in neck.fpn_top_down_levels],
        "num_feature_levels": levels,
    }
    prompt_encoder = {
        "model_type": "sam2_prompt_encoder",
        "hidden_size": int(prompt.embed_dim),
        "image_size": image_size,
        "patch_size": stride,
        "mask_input_channels": int(prompt.mask_downscaling[3].out_channels),
    }
    mask_decoder = {
        "model_type": "sam2_mask_decoder",
        "hidden_size": int(decoder.transformer_dim),
        "mlp_dim": int(decoder.transformer.mlp_dim),
        "num_hidden_layers": int(decoder.transformer.depth),
        "num_attention_heads": int(decoder.transformer.num_heads),
        "attention_downsample_rate": int(attention_downsample),
        "num_multimask_outputs": int(decoder.num_multimask_outputs),
        "iou_head_depth": int(decoder.iou_prediction_head.num_layers),
        "iou_head_hidden_dim": int(decoder.iou_prediction_head.layers[0].out_features),
        "dynamic_multimask_via_stability": bool(decoder.dynamic_multimask_via_stability),
        "dynamic_multimask_stability_delta": float(decoder.dynamic_multimask_stability_delta),
        "dynamic_multimask_stability_thresh": float(decoder.dynamic_multimask_stability_thresh),
    }
    return {
        "model_type": "sam2",
        "vision_config": vision,
        "prompt_encoder_config": prompt_encoder,
        "mask_decoder_config": mask_decoder,
    }


def convert_sam2(
    config: str | Path,
    checkpoint: str | Path,
    out: str | Path,
    overrides: tuple[str, ...] | list[str] = (),
) -> Path:
    """Convert a Meta SAM2 checkpoint (``{"model": state_dict}`` + its config) to a hub-format
    folder ``out`` for the ``"sam2_hf"`` backend; returns ``out``.

    The Meta model is built and loaded strictly by :func:`seg_r1.segmenters.sam2.build_sam2_model`
    (with the same post-processing overrides as the ``"sam2"`` backend, so the decoder settings
    match), then mapped and loaded strictly into ``Sam2Model``.
    """
    from seg_r1.segmenters.hf import write_hf_checkpoint
    from seg_r1.segmenters.sam2 import build_sam2_model

    model = build_sam2_model(config, checkpoint, "cpu", overrides)
    hf_config = sam2_hf_config(model)
    state = sam2_hf_state_dict(model.state_dict())
    path = write_hf_checkpoint(out, "sam2_hf", hf_config, state)
    logger.info("converted %s (%s) -> %s", checkpoint, config, path)
    return path


def main(argv: list[str] | None = None) -> None:
    from seg_r1.logs import setup_logging

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", required=True, help="packaged SAM2 config name or YAML path")
    parser.add_argument("--checkpoint", required=True, help="Meta {'model': state_dict} .pt file")
    parser.add_argument("--out", required=True, help="output folder (save_pretrained format)")
    args = parser.parse_args(argv)
    setup_logging()
    convert_sam2(args.config, args.checkpoint, args.out)


if __name__ == "__main__":
    main()
