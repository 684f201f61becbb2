"""The ``"sam2"`` backend (Meta's SAM2 package): the only module of the package that imports
``sam2``.

Conventions
-----------
* ``config`` is either the name of a config packaged with ``sam2`` (``sam2.1_hiera_l.yaml``,
  ``configs/sam2.1/sam2.1_hiera_t.yaml``, ...) or a path to a YAML file of the same schema (the
  tiny checkpoints of :mod:`seg_r1.tiny` ship one). Both go through the same code path.
* ``checkpoint`` is a ``torch.save`` file holding ``{"model": state_dict}`` -- the format of
  Meta's released ``sam2.1_hiera_*.pt`` files. Loading is strict: missing or unexpected keys
  raise a :class:`SAM2LoadError` that names them.
* ``image_size`` is read from the config; the image predictor's backbone feature sizes are
  derived from it (the upstream predictor hard-codes them for 1024).

:class:`SAM2Segmenter` wraps the image predictor as the ``"sam2"`` backend of
:mod:`seg_r1.segmenters` (encode once per image, batched decoding, RGB input; ``bgr_compat``
reproduces the official code's channel swap only when asked).
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch

from seg_r1.segmenters.base import BaseSegmenter, PromptSet, structure_chunks
from seg_r1.segmenters.config import DEFAULT_SAM2_CHECKPOINT, DEFAULT_SAM2_CONFIG, SAM2_DTYPES

logger = logging.getLogger(__name__)

#: Overrides that ``sam2.build_sam.build_sam2`` applies by default (``apply_postprocessing``):
#: fall back to multi-mask output when the single mask is unstable. Kept identical so that
#: our loader builds the same model as the upstream one.
POSTPROCESSING_OVERRIDES: tuple[str, ...] = (
    "++model.sam_mask_decoder_extra_args.dynamic_multimask_via_stability=true",
    "++model.sam_mask_decoder_extra_args.dynamic_multimask_stability_delta=0.05",
    "++model.sam_mask_decoder_extra_args.dynamic_multimask_stability_thresh=0.98",
)


class SAM2LoadError(RuntimeError):
    """A SAM2 config or checkpoint could not be found or does not match."""


def packaged_config_dir() -> Path:
    """Folder holding the configs shipped inside the installed ``sam2`` package."""
    import sam2

    return Path(sam2.__file__).parent / "configs"


def resolve_sam2_config(config: str | Path) -> Path:
    """Return the YAML file for ``config`` (a file path or a packaged config name).

    ``"sam2.1_hiera_l.yaml"``, ``"configs/sam2.1/sam2.1_hiera_l.yaml"`` and
    ``"sam2.1/sam2.1_hiera_l.yaml"`` all name the packaged file.
    """
    path = Path(config)
    if path.is_file():
        return path
    root = packaged_config_dir()
    name = str(config)
    if name.startswith("configs/"):
        name = name[len("configs/") :]
    candidates = [root / name, *sorted(root.glob(f"*/{Path(name).name}"))]
    for cand in candidates:
        if cand.is_file():
            return cand
    available = sorted(p.relative_to(root).as_posix() for p in root.glob("**/*.yaml"))
    raise SAM2LoadError(
        f"SAM2 config {config!r} is neither a file nor a config packaged with sam2. "
        f"Packaged configs: {', '.join(available)}."
    )


def load_sam2_config(config: str | Path, overrides: tuple[str, ...] | list[str] = ()) -> Any:
    """Load a SAM2 YAML config as an OmegaConf object and apply ``++key=value`` overrides."""
    from omegaconf import OmegaConf

    cfg = OmegaConf.load(resolve_sam2_config(config))
    for item in overrides:
        key, _, value = item.lstrip("+").partition("=")
        OmegaConf.update(cfg, key, OmegaConf.create({"v": _yaml_value(value)}).v, force_add=True)
    OmegaConf.resolve(cfg)
    return cfg


def _yaml_value(text: str) -> Any:
    import yaml

    return yaml.safe_load(text)


def build_sam2_model(
    config: str | Path = DEFAULT_SAM2_CONFIG,
    checkpoint: str | Path | None = DEFAULT_SAM2_CHECKPOINT,
    device: str | torch.device = "cpu",
    overrides: tuple[str, ...] | list[str] = (),
    apply_postprocessing: bool = True,
) -> torch.nn.Module:
    """Build a SAM2 model (``SAM2Base``) from a config and load a checkpoint strictly.

    Args:
        config: packaged config name or YAML path.
        checkpoint: ``{"model": state_dict}`` file; ``None`` keeps random weights (used by the
            tiny-checkpoint builder and by benchmarks of full-size architectures).
        device: where the model lives.
        overrides: extra ``++key=value`` config overrides.
        apply_postprocessing: add :data:`POSTPROCESSING_OVERRIDES` like upstream ``build_sam2``.

    Raises:
        SAM2LoadError: the config or checkpoint is missing, or the state dict does not match.
    """
    from hydra.utils import instantiate

    if checkpoint is not None and not Path(checkpoint).is_file():
        raise SAM2LoadError(
            f"SAM2 checkpoint not found: {checkpoint}. Download the official weights with "
            "third_party/README.md (sam2.1_hiera_large.pt), or build tiny test weights with "
            "`python -m seg_r1.tiny --out runs/tiny` and pass runs/tiny/sam2/sam2_tiny.pt "
            "with its config runs/tiny/sam2/sam2_tiny.yaml."
        )
    all_overrides = list(overrides) + (
        list(POSTPROCESSING_OVERRIDES) if apply_postprocessing else []
    )
    cfg = load_sam2_config(config, all_overrides)
    model = instantiate(cfg.model, _recursive_=True)
    if checkpoint is not None:
        state = torch.load(checkpoint, map_location="cpu", weights_only=True)
        if not isinstance(state, dict) or "model" not in state:
            raise SAM2LoadError(
                f"{checkpoint} is not a SAM2 checkpoint: expected a dict with a 'model' state dict."
            )
        missing, unexpected = model.load_state_dict(state["model"], strict=False)
        if missing or unexpected:
            raise SAM2LoadError(
                f"{checkpoint} does not match config {config}: "
                f"{len(missing)} missing keys (e.g. {missing[:5]}), "
                f"{len(unexpected)} unexpected keys (e.g. {unexpected[:5]})."
            )
        logger.info("loaded SAM2 weights from %s", checkpoint)
    return model.to(device).eval()


def build_image_predictor(model: torch.nn.Module, mask_threshold: float = 0.0) -> Any:
    """Wrap a SAM2 model in ``SAM2ImagePredictor`` with feature sizes matching its image size.

    Upstream hard-codes backbone feature sizes for ``image_size == 1024``; they are the
    image size divided by 4, 8 and 16 (the Hiera strides of the three levels the decoder uses).
    """
    from sam2.sam2_image_predictor import SAM2ImagePredictor

    predictor = SAM2ImagePredictor(model, mask_threshold=mask_threshold)
    size = int(model.image_size)
    predictor._bb_feat_sizes = [
        (size // 4, size // 4),
        (size // 8, size // 8),
        (size // 16, size // 16),
    ]
    return predictor


# --------------------------------------------------------------------------- segmenter backend


class SAM2Segmenter(BaseSegmenter):
    """The frozen SAM2 image predictor as a :class:`seg_r1.segmenters.Segmenter` backend.

    ``set_image`` runs the image encoder once and caches the embedding; every prompt set is
    then decoded with ``multimask_output=False`` (SPEC §3) and thresholded at
    ``mask_threshold`` (SAM2's default 0 on the logits). Prompt sets with the same structure
    (box or not, same number of points) are decoded together in one batched decoder call;
    different point counts are never padded, because SAM2's "not a point" padding token would
    change the masks.

    Args:
        config: packaged config name or YAML path (default: SAM2.1-L, as in the paper).
        checkpoint: ``{"model": state_dict}`` file (default: the official SAM2.1-L path);
            ``None`` keeps random weights (benchmarks only).
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"``...
        dtype: ``"float32"`` or ``"bfloat16"`` (bf16 autocast around encoder and decoder).
        bgr_compat: feed SAM2 the image with R and B swapped. This reproduces a defect of the
            official Seg-R1 code (it applies BGR2RGB to RGB images before SAM2) and exists
            ONLY to reproduce the official numbers; leave it ``False`` otherwise.
        mask_threshold: logit threshold of the binary masks.
        overrides: extra ``++key=value`` config overrides.

    Raises:
        SAM2LoadError: missing config/checkpoint or a checkpoint that does not match.
    """

    name = "sam2"

    def __init__(
        self,
        config: str | Path = DEFAULT_SAM2_CONFIG,
        checkpoint: str | Path | None = DEFAULT_SAM2_CHECKPOINT,
        device: str | torch.device = "cpu",
        dtype: str = "float32",
        bgr_compat: bool = False,
        mask_threshold: float = 0.0,
        overrides: tuple[str, ...] | list[str] = (),
    ) -> None:
        super().__init__()
        if dtype not in SAM2_DTYPES:
            raise ValueError(f"dtype must be one of {SAM2_DTYPES}, got {dtype!r}")
        self.device = torch.device(device)
        self.dtype = dtype
        self.bgr_compat = bgr_compat
        self.model = build_sam2_model(config, checkpoint, self.device, overrides)
        self.predictor = build_image_predictor(self.model, mask_threshold=mask_threshold)
        if bgr_compat:
            logger.warning(
                "SAM2Segmenter(bgr_compat=True): R and B are swapped before SAM2, reproducing "
                "the official code's defect; use only to reproduce official numbers."
            )

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.dtype == "float32":
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16)

    def _encode(self, image: np.ndarray) -> None:
        if self.bgr_compat:
            image = np.ascontiguousarray(image[..., ::-1])
        with torch.inference_mode(), self._autocast():
            self.predictor.set_image(image)

    def _decode(self, prompts: list[PromptSet]) -> list[np.ndarray]:
        masks: list[np.ndarray | None] = [None] * len(prompts)
        for has_box, num_points, chunk in structure_chunks(prompts):
            for index, mask in zip(chunk, self._decode_group(prompts, chunk, has_box, num_points)):
                masks[index] = mask
        return masks  # type: ignore[return-value]

    def _decode_group(
        self, prompts: list[PromptSet], chunk: list[int], has_box: bool, num_points: int
    ) -> np.ndarray:
        """One decoder call for prompt sets of identical structure -> ``bool (B, H, W)``."""
        boxes = np.stack([prompts[i].box for i in chunk]) if has_box else None
        coords = labels = None
        if num_points:
            coords = np.stack([prompts[i].points for i in chunk]).astype(np.float32)
            labels = np.stack([prompts[i].labels for i in chunk]).astype(np.int32)
        with torch.inference_mode(), self._autocast():
            masks, _, _ = self.predictor.predict(
                point_coords=coords,
                point_labels=labels,
                box=boxes,
                multimask_output=False,
            )
        self.stats.decoder_calls += 1
        h, w = masks.shape[-2:]
        # predict() squeezes the batch dim for B == 1: (1, H, W); for B > 1 it is (B, 1, H, W).
        return masks.reshape(len(chunk), -1, h, w)[:, 0].astype(bool)
