"""The policy: loading a Qwen2.5-VL checkpoint for inference (device, dtype, attention), its
processor's pixel bounds (the 28-multiple size the model sees, :mod:`seg_r1.frame`), and the
training facts a checkpoint trained here carries in its own folder (:data:`TRAINING_META`)."""

from __future__ import annotations

import importlib.util
import json
import logging
from pathlib import Path
from typing import Any

import torch

logger = logging.getLogger(__name__)

DTYPES: tuple[str, ...] = ("auto", "bfloat16", "float16", "float32")
ATTN_IMPLEMENTATIONS: tuple[str, ...] = ("flash_attention_2", "sdpa", "eager")


class PolicyLoadError(RuntimeError):
    """The policy checkpoint cannot be loaded as asked (message says how to fix it)."""


# --------------------------------------------------------------------------- devices / dtypes


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """``"auto"``/``None`` -> ``cuda:0`` when CUDA is available, else ``cpu``.

    Raises:
        PolicyLoadError: a CUDA device is asked for on a machine without CUDA.
    """
    if device is None or str(device) == "auto":
        return torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise PolicyLoadError(f"device {device!r} asked for, but CUDA is not available here")
    return dev


def resolve_dtype(dtype: str, device: torch.device) -> torch.dtype:
    """``"auto"`` -> bfloat16 on a GPU that supports it, float32 otherwise."""
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {DTYPES}, got {dtype!r}")
    if dtype == "auto":
        if device.type == "cuda" and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return torch.float32
    return getattr(torch, dtype)


def resolve_attn_implementation(
    attn_implementation: str | None, device: torch.device, dtype: torch.dtype
) -> str:
    """``None`` -> ``flash_attention_2`` on CUDA in bf16/fp16 when ``flash_attn`` is installed,
    ``sdpa`` otherwise. An explicit ``flash_attention_2`` that cannot work raises."""
    flash_ok = (
        device.type == "cuda"
        and dtype in (torch.bfloat16, torch.float16)
        and importlib.util.find_spec("flash_attn") is not None
    )
    if attn_implementation is None:
        return "flash_attention_2" if flash_ok else "sdpa"
    if attn_implementation not in ATTN_IMPLEMENTATIONS:
        raise ValueError(
            f"attn_implementation must be one of {ATTN_IMPLEMENTATIONS}, got {attn_implementation!r}"
        )
    if attn_implementation == "flash_attention_2" and not flash_ok:
        raise PolicyLoadError(
            "flash_attention_2 needs a CUDA device, dtype bfloat16/float16 and the flash-attn "
            f"package (device={device}, dtype={dtype}); use attn_implementation='sdpa' or "
            "install it with WITH_FLASH_ATTN=1 bash setup.sh"
        )
    return attn_implementation


# --------------------------------------------------------------------------- loading


def load_policy(
    model_path: str | Path,
    device: str | torch.device = "cpu",
    dtype: str = "auto",
    attn_implementation: str | None = None,
    min_pixels: int | None = None,
    max_pixels: int | None = None,
) -> tuple[Any, Any]:
    """Load a Seg-R1 / Qwen2.5-VL policy and its processor for inference.

    Args:
        model_path: checkpoint directory (``config.json`` + weights + processor files) or a
            hub id already in the local cache.
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"`` or ``"auto"``.
        dtype: ``"auto"`` (bf16 on a GPU that supports it, fp32 otherwise), ``"bfloat16"``,
            ``"float16"`` or ``"float32"``.
        attn_implementation: ``None`` = flash_attention_2 on GPU (bf16/fp16, flash-attn
            installed), sdpa otherwise; or one of :data:`ATTN_IMPLEMENTATIONS`.
        min_pixels, max_pixels: the processor's pixel bounds (``None`` keeps the checkpoint's
            ``preprocessor_config``); they decide the 28-multiple size the model sees.

    Returns:
        ``(model, processor)``: the model in eval mode on ``device``; the processor pads on
        the LEFT (needed for batched generation).

    Raises:
        PolicyLoadError: the checkpoint is missing or cannot be loaded (message says why).
    """
    from transformers import AutoModelForImageTextToText, AutoProcessor

    path = Path(model_path)
    if path.exists() and not (path / "config.json").is_file():
        raise PolicyLoadError(
            f"{model_path} is not a checkpoint directory (no config.json); pass the folder "
            "written by save_pretrained (or build tiny test weights with "
            "`python -m seg_r1.tiny --out runs/tiny` and use runs/tiny/policy)"
        )
    dev = resolve_device(device)
    torch_dtype = resolve_dtype(dtype, dev)
    attn = resolve_attn_implementation(attn_implementation, dev, torch_dtype)
    try:
        processor = AutoProcessor.from_pretrained(model_path)
        model = AutoModelForImageTextToText.from_pretrained(
            model_path, dtype=torch_dtype, attn_implementation=attn
        )
    except OSError as exc:
        raise PolicyLoadError(
            f"cannot load the policy from {model_path!r} ({exc}). Pass a local checkpoint "
            "directory; this machine may not reach the model hub."
        ) from exc
    set_pixel_bounds(processor, min_pixels, max_pixels)
    processor.tokenizer.padding_side = "left"
    model = model.to(dev).eval()
    logger.info(
        "policy %s on %s (%s, %s attention, %.1fM parameters)",
        model_path,
        dev,
        str(torch_dtype).removeprefix("torch."),
        attn,
        sum(p.numel() for p in model.parameters()) / 1e6,
    )
    return model, processor


def set_pixel_bounds(processor: Any, min_pixels: int | None, max_pixels: int | None) -> None:
    """Override the image processor's pixel bounds (``None`` keeps the current value).

    Raises:
        ValueError: ``min_pixels > max_pixels`` or non-positive bounds.
    """
    if min_pixels is None and max_pixels is None:
        return
    image_processor = processor.image_processor
    size = dict(image_processor.size)
    low = int(min_pixels if min_pixels is not None else size["shortest_edge"])
    high = int(max_pixels if max_pixels is not None else size["longest_edge"])
    if low <= 0 or high < low:
        raise ValueError(f"need 0 < min_pixels <= max_pixels, got {low}, {high}")
    image_processor.size = {"shortest_edge": low, "longest_edge": high}


def pixel_bounds(processor: Any) -> tuple[int, int]:
    """The processor's ``(min_pixels, max_pixels)``."""
    size = processor.image_processor.size
    return int(size["shortest_edge"]), int(size["longest_edge"])


# --------------------------------------------------------------------------- training facts

#: File in a checkpoint trained by this repository: the frame its answers' coordinates refer to
#: (and the answer mode, stage). Released Seg-R1 checkpoints have none: they keep SPEC's frames.
TRAINING_META = "seg_r1.json"


def write_training_meta(output_dir: str | Path, **facts: Any) -> Path:
    """Write ``facts`` (``frame_size``, ``answer_mode``, ``stage``; ``None`` values dropped)."""
    path = Path(output_dir) / TRAINING_META
    path.write_text(json.dumps({k: v for k, v in facts.items() if v is not None}, indent=2))
    return path


def read_training_meta(model_path: str | Path | None) -> dict[str, Any]:
    """The checkpoint's :data:`TRAINING_META` (``{}`` without one, or for a hub id)."""
    if not model_path:
        return {}
    path = Path(model_path) / TRAINING_META
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise PolicyLoadError(f"{path} is not valid JSON ({error}); fix or delete it") from None


def checkpoint_frame(model_path: str | Path | None) -> int | None:
    """The training frame recorded in the checkpoint, if any (logged when used)."""
    frame = read_training_meta(model_path).get("frame_size")
    if frame is not None:
        logger.info(
            "frame %d: the training frame of %s (%s); pass --frame_size to override",
            frame,
            model_path,
            TRAINING_META,
        )
    return frame
