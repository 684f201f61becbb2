"""The segmenter options, declared once: :class:`SegmenterConfig`.

Training recipes (:class:`seg_r1.configs.GRPOScriptArguments`), the evaluation config and the
demo (both through :class:`seg_r1.inference.PipelineConfig`) inherit these fields, so a YAML
key or a command-line flag means the same thing everywhere (``--sam2_checkpoint``, ...).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

#: The segmenter backends (:func:`seg_r1.segmenters.build_segmenter` builds them by name);
#: ``"sam2"`` (the paper's) is the default.
SEGMENTER_NAMES: tuple[str, ...] = ("sam2", "classical", "sam2_hf", "sam3")
#: The backends loaded from a hub-format folder through transformers (``segmenter_path``).
HF_SEGMENTER_NAMES: tuple[str, ...] = ("sam2_hf", "sam3")
#: Default config and checkpoint (the paper's SAM2.1-L); the checkpoint path follows the
#: official ``third_party/sam2/checkpoints/download_ckpts.sh`` layout.
DEFAULT_SAM2_CONFIG = "sam2.1_hiera_l.yaml"
DEFAULT_SAM2_CHECKPOINT = "third_party/sam2/checkpoints/sam2.1_hiera_large.pt"
#: Default hub-format folders of the transformers backends (``segmenter_path: null``): local
#: copies of ``facebook/sam2.1-hiera-large`` (the paper's SAM2.1-L) and ``facebook/sam3``.
DEFAULT_HF_SEGMENTER_PATHS: dict[str, str] = {
    "sam2_hf": "third_party/sam2.1-hiera-large",
    "sam3": "third_party/sam3",
}
#: SAM2 compute dtypes (bfloat16 = autocast).
SAM2_DTYPES: tuple[str, ...] = ("float32", "bfloat16")


@dataclass
class SegmenterConfig:
    """Which promptable segmenter turns the answers' prompts into masks, and how."""

    segmenter: str = field(
        default="sam2",
        metadata={
            "help": "Mask backend: 'sam2' (the frozen SAM2 of the paper, Meta's code), "
            "'classical' (OpenCV GrabCut seeded by the prompts; a CPU stand-in for tests, NOT "
            "SAM2), 'sam2_hf' (SAM2 through transformers' Sam2Model) or 'sam3' (SAM3's tracker "
            "through transformers' Sam3TrackerModel); the last two load segmenter_path.",
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
    segmenter_path: str | None = field(
        default=None,
        metadata={
            "help": "Hub-format folder (save_pretrained: config.json, model.safetensors, "
            "processor config) of the 'sam2_hf' / 'sam3' segmenter; null = "
            "third_party/sam2.1-hiera-large (facebook/sam2.1-hiera-large) for sam2_hf, "
            "third_party/sam3 (facebook/sam3) for sam3. Unused by 'sam2' and 'classical'."
        },
    )
    sam2_device: str | None = field(
        default=None,
        metadata={
            "help": "Device of SAM2 (also of the sam2_hf / sam3 segmenters); null = the "
            "policy's (in training: each process's own, no GPU is set aside for SAM2)."
        },
    )
    sam2_dtype: str = field(
        default="float32",
        metadata={
            "help": "SAM2 compute dtype (bfloat16 = autocast); also of sam2_hf / sam3.",
            "choices": list(SAM2_DTYPES),
        },
    )
    sam2_bgr_compat: bool = field(
        default=False,
        metadata={
            "help": "Swap R and B before SAM2 (sam2, sam2_hf, sam3) to reproduce the official "
            "code's defect (SPEC §3). Only for reproducing official numbers.",
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
        if self.segmenter_path is not None and self.segmenter not in HF_SEGMENTER_NAMES:
            raise ValueError(
                f"segmenter_path is only read by the {HF_SEGMENTER_NAMES} segmenters, not "
                f"{self.segmenter!r}: drop it, or choose --segmenter sam2_hf / sam3 (the "
                "'sam2' backend takes --sam2_config and --sam2_checkpoint)"
            )

    @property
    def hf_segmenter_path(self) -> str:
        """The folder the ``sam2_hf`` / ``sam3`` segmenter loads (``segmenter_path`` or the
        backend's default, :data:`DEFAULT_HF_SEGMENTER_PATHS`)."""
        return self.segmenter_path or DEFAULT_HF_SEGMENTER_PATHS[self.segmenter]

    def segmenter_kwargs(self, device: str) -> dict[str, Any]:
        """Keyword arguments of :func:`seg_r1.segmenters.build_segmenter` for this config;
        ``device`` is used when ``sam2_device`` is null."""
        if self.segmenter == "classical":
            return {"iterations": self.classical_iterations}
        if self.segmenter in HF_SEGMENTER_NAMES:
            return {
                "path": self.hf_segmenter_path,
                "device": self.sam2_device or device,
                "dtype": self.sam2_dtype,
                "bgr_compat": self.sam2_bgr_compat,
            }
        return {
            "config": self.sam2_config,
            "checkpoint": self.sam2_checkpoint,
            "device": self.sam2_device or device,
            "dtype": self.sam2_dtype,
            "bgr_compat": self.sam2_bgr_compat,
        }
