"""The segmenter options, declared once: :class:`SegmenterConfig`.

Training recipes (:class:`seg_r1.configs.GRPOScriptArguments`), the evaluation config and the
demo (both through :class:`seg_r1.inference.PipelineConfig`) inherit these fields, so a YAML
key or a command-line flag means the same thing everywhere (``--sam2_checkpoint``, ...).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

#: The segmenter backends (:func:`seg_r1.segmenters.build_segmenter` builds them by name).
SEGMENTER_NAMES: tuple[str, ...] = ("sam2", "classical")
#: Default config and checkpoint (the paper's SAM2.1-L); the checkpoint path follows the
#: official ``third_party/sam2/checkpoints/download_ckpts.sh`` layout.
DEFAULT_SAM2_CONFIG = "sam2.1_hiera_l.yaml"
DEFAULT_SAM2_CHECKPOINT = "third_party/sam2/checkpoints/sam2.1_hiera_large.pt"
#: SAM2 compute dtypes (bfloat16 = autocast).
SAM2_DTYPES: tuple[str, ...] = ("float32", "bfloat16")


@dataclass
class SegmenterConfig:
    """Which promptable segmenter turns the answers' prompts into masks, and how."""

    segmenter: str = field(
        default="sam2",
        metadata={
            "help": "Mask backend: 'sam2' (the frozen SAM2 of the paper) or 'classical' "
            "(OpenCV GrabCut seeded by the prompts; a CPU stand-in for tests, NOT SAM2).",
            "choices": list(SEGMENTER_NAMES),
        },
    )
    sam2_config: str = field(
        default=DEFAULT_SAM2_CONFIG,
        metadata={"help": "SAM2 config: a packaged name (sam2.1_hiera_l.yaml) or a YAML path."},
    )
    sam2_checkpoint: str = field(
        default=DEFAULT_SAM2_CHECKPOINT,
        metadata={
            "help": "SAM2 weights ({'model': state_dict} .pt, Meta's format); get them with "
            "third_party/README.md."
        },
    )
    sam2_device: str | None = field(
        default=None,
        metadata={
            "help": "Device of SAM2; null = the policy's (in training: each process's own, no "
            "GPU is set aside for SAM2)."
        },
    )
    sam2_dtype: str = field(
        default="float32",
        metadata={
            "help": "SAM2 compute dtype (bfloat16 = autocast).",
            "choices": list(SAM2_DTYPES),
        },
    )
    sam2_bgr_compat: bool = field(
        default=False,
        metadata={
            "help": "Swap R and B before SAM2 to reproduce the official code's defect (SPEC "
            "§3). Only for reproducing official numbers.",
            "aliases": ["--bgr_compat"],
        },
    )
    classical_iterations: int = field(
        default=3,
        metadata={"help": "GrabCut iterations of the 'classical' segmenter (SPEC §9: 3)."},
    )

    def __post_init__(self) -> None:
        if self.segmenter not in SEGMENTER_NAMES:
            raise ValueError(f"segmenter must be one of {SEGMENTER_NAMES}, got {self.segmenter!r}")
        if self.sam2_dtype not in SAM2_DTYPES:
            raise ValueError(f"sam2_dtype must be one of {SAM2_DTYPES}, got {self.sam2_dtype!r}")
        if self.classical_iterations < 1:
            raise ValueError(f"classical_iterations must be >= 1, got {self.classical_iterations}")

    def segmenter_kwargs(self, device: str) -> dict[str, Any]:
        """Keyword arguments of :func:`seg_r1.segmenters.build_segmenter` for this config;
        ``device`` is used when ``sam2_device`` is null."""
        if self.segmenter == "classical":
            return {"iterations": self.classical_iterations}
        return {
            "config": self.sam2_config,
            "checkpoint": self.sam2_checkpoint,
            "device": self.sam2_device or device,
            "dtype": self.sam2_dtype,
            "bgr_compat": self.sam2_bgr_compat,
        }
