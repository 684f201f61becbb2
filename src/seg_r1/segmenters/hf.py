"""The ``"sam2_hf"`` and ``"sam3"`` backends (transformers): the only module of the package that
imports transformers' SAM2 and SAM3-tracker classes.

===========  ===============================================  ========================
backend      classes                                          ``config.json`` type
===========  ===============================================  ========================
``sam2_hf``  ``Sam2Model`` + ``Sam2Processor``                ``sam2``, ``sam2_video``
``sam3``     ``Sam3TrackerModel`` + ``Sam3TrackerProcessor``  ``sam3_tracker``,
                                                              ``sam3_tracker_video``,
                                                              ``sam3_video``
===========  ===============================================  ========================

Conventions
-----------
* ``path`` is a hub-format folder (``save_pretrained``: ``config.json``, ``model.safetensors``,
  the processor's config), e.g. a local copy of ``facebook/sam2.1-hiera-large`` /
  ``facebook/sam3``, a folder written by :func:`seg_r1.segmenters.convert.convert_sam2` from
  Meta's ``.pt``, or the tiny test folders of :mod:`seg_r1.tiny`. Loading is strict: a missing
  folder or ``config.json``, another model type, missing / unexpected / mis-shaped weights
  raise :class:`HFSegmenterLoadError` naming the path and the fix.
* The processor resizes the image to the model's square input (``image_size``) and scales the
  prompts' pixel coordinates by ``image_size / W`` and ``image_size / H``; the decoder's
  low-resolution logits are resized back to the image (bilinear, ``post_process_masks`` with
  ``binarize=False``) and thresholded here: **mask = logits > mask_threshold** (0, as SAM2).

:class:`HFSegmenter` (shared by both) runs the vision encoder once per image in
:meth:`~seg_r1.segmenters.BaseSegmenter.set_image` and caches the embeddings; prompt sets are
decoded against them (``image_embeddings=``) with ``multimask_output=False``, those of the same
structure (box or not, same number of points) in one batched decoder call -- different point
counts are never padded (a padding point changes the masks).
"""

from __future__ import annotations

import contextlib
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import (
    Sam2Config,
    Sam2ImageProcessor,
    Sam2Model,
    Sam2Processor,
    Sam3ImageProcessor,
    Sam3TrackerConfig,
    Sam3TrackerModel,
    Sam3TrackerProcessor,
)

from seg_r1.segmenters.base import BaseSegmenter, PromptSet, structure_chunks
from seg_r1.segmenters.config import DEFAULT_HF_SEGMENTER_PATHS, SAM2_DTYPES

logger = logging.getLogger(__name__)


class HFSegmenterLoadError(RuntimeError):
    """A hub-format SAM2 / SAM3 folder could not be found or does not match its backend."""


#: Per backend: model class, processor class, config class, the image processor of a new
#: folder, accepted ``model_type``s (the hub's video configs hold the image model's weights
#: and are loaded by the image classes, as transformers documents), the hub id to download.
_BACKENDS: dict[str, dict[str, Any]] = {
    "sam2_hf": {
        "model": Sam2Model,
        "processor": Sam2Processor,
        "config": Sam2Config,
        "image_processor": Sam2ImageProcessor,
        "model_types": ("sam2", "sam2_video"),
        "hub_id": "facebook/sam2.1-hiera-large",
    },
    "sam3": {
        "model": Sam3TrackerModel,
        "processor": Sam3TrackerProcessor,
        "config": Sam3TrackerConfig,
        "image_processor": Sam3ImageProcessor,
        "model_types": ("sam3_tracker", "sam3_tracker_video", "sam3_video"),
        "hub_id": "facebook/sam3",
    },
}


def _fix(backend: str) -> str:
    hub_id = _BACKENDS[backend]["hub_id"]
    default = DEFAULT_HF_SEGMENTER_PATHS[backend]
    text = (
        f"Download it with `huggingface-cli download {hub_id} --local-dir {default}` "
        f"(third_party/README.md), or build tiny test weights with `python -m seg_r1.tiny --out "
        f"runs/tiny` and pass runs/tiny/{backend} (--segmenter_path)"
    )
    if backend == "sam2_hf":
        text += (
            ", or convert a Meta checkpoint with `python -m seg_r1.segmenters.convert --config "
            "sam2.1_hiera_l.yaml --checkpoint third_party/sam2/checkpoints/sam2.1_hiera_large.pt "
            f"--out {default}`"
        )
    return text + "."


def check_hf_folder(path: str | Path, backend: str) -> dict[str, Any]:
    """The ``config.json`` of the hub-format folder ``path`` for ``backend`` (``"sam2_hf"`` or
    ``"sam3"``), after checking that it exists and has an accepted ``model_type``.

    Raises:
        HFSegmenterLoadError: no folder, no ``config.json``, or another model type.
    """
    spec = _BACKENDS[backend]
    path = Path(path)
    if not path.is_dir():
        raise HFSegmenterLoadError(f"{backend} folder not found: {path}. {_fix(backend)}")
    config_file = path / "config.json"
    if not config_file.is_file():
        raise HFSegmenterLoadError(
            f"{path} has no config.json, so it is not a hub-format (save_pretrained) folder "
            f"for the {backend} segmenter. {_fix(backend)} (A Meta .pt checkpoint is loaded by "
            "--segmenter sam2.)"
        )
    config = json.loads(config_file.read_text())
    model_type = config.get("model_type")
    if model_type not in spec["model_types"]:
        other = [name for name, s in _BACKENDS.items() if model_type in s["model_types"]]
        hint = f" It is a --segmenter {other[0]} folder." if other else ""
        raise HFSegmenterLoadError(
            f"{config_file} has model_type {model_type!r}; the {backend} segmenter needs one of "
            f"{spec['model_types']}.{hint} {_fix(backend)}"
        )
    return config


def load_hf_segmenter(path: str | Path, backend: str) -> tuple[torch.nn.Module, Any]:
    """Load ``(model, processor)`` of ``backend`` from the hub-format folder ``path``, strictly.

    Raises:
        HFSegmenterLoadError: see :func:`check_hf_folder`; weights missing, or missing,
            unexpected or mis-shaped weight keys; no processor config.
    """
    spec = _BACKENDS[backend]
    check_hf_folder(path, backend)
    try:
        # float32 whatever the saved dtype: bfloat16 is autocast (HFSegmenter's ``dtype``).
        model, info = spec["model"].from_pretrained(
            str(path), dtype=torch.float32, output_loading_info=True
        )
    except (OSError, RuntimeError, ValueError) as err:
        raise HFSegmenterLoadError(
            f"could not load the {backend} weights from {path}: {err} {_fix(backend)}"
        ) from err
    problems = {
        name: sorted(info.get(name) or ())
        for name in ("missing_keys", "unexpected_keys", "mismatched_keys")
    }
    if any(problems.values()) or info.get("error_msgs"):
        details = ", ".join(
            f"{len(keys)} {name.replace('_', ' ')} (e.g. {keys[:5]})"
            for name, keys in problems.items()
            if keys
        )
        raise HFSegmenterLoadError(
            f"the weights in {path} do not match its config.json: "
            f"{details or info.get('error_msgs')}. Re-create the folder (save_pretrained of the "
            f"model, or python -m seg_r1.segmenters.convert) or download it again. {_fix(backend)}"
        )
    try:
        processor = spec["processor"].from_pretrained(str(path))
    except (OSError, ValueError, TypeError) as err:
        raise HFSegmenterLoadError(
            f"no usable processor config in {path} ({err}); save the processor with "
            f"save_pretrained next to the model. {_fix(backend)}"
        ) from err
    logger.info("loaded %s (%s) from %s", backend, type(model).__name__, path)
    return model.eval(), processor


def write_hf_checkpoint(
    out: str | Path,
    backend: str,
    config: dict[str, Any],
    state_dict: dict[str, torch.Tensor] | None = None,
) -> Path:
    """Write a hub-format folder for ``backend``: the model built from ``config`` (the
    ``config.json`` content) with ``state_dict`` loaded strictly (``None``: the model's random
    initialisation, seeded by the caller), and its processor (square input of the config's
    ``image_size``). Used by the tiny checkpoints, the converter and the benchmarks.

    Raises:
        HFSegmenterLoadError: ``state_dict`` does not match the config's model.
    """
    spec = _BACKENDS[backend]
    model = spec["model"](spec["config"].from_dict(config))
    if state_dict is not None:
        try:
            missing, unexpected = model.load_state_dict(state_dict, strict=False)
        except RuntimeError as err:  # shape mismatches
            raise HFSegmenterLoadError(
                f"state dict does not fit the {backend} config: {err}"
            ) from err
        if missing or unexpected:
            raise HFSegmenterLoadError(
                f"state dict does not fit the {backend} config: {len(missing)} missing keys "
                f"(e.g. {missing[:5]}), {len(unexpected)} unexpected keys (e.g. {unexpected[:5]})"
            )
    size = int(model.config.prompt_encoder_config.image_size)
    # The decoder's low-resolution masks are a quarter of the input size (256 for SAM2's 1024,
    # 288 for SAM3's 1008); the processor only uses mask_size for segmentation-map inputs.
    image_processor = spec["image_processor"](
        size={"height": size, "width": size}, mask_size={"height": size // 4, "width": size // 4}
    )
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    spec["processor"](image_processor=image_processor).save_pretrained(out)
    n = sum(p.numel() for p in model.parameters())
    logger.info("%s: %.2fM parameters, input %d -> %s", backend, n / 1e6, size, out)
    return out


class HFSegmenter(BaseSegmenter):
    """A transformers SAM-family model as a :class:`seg_r1.segmenters.Segmenter` backend
    (subclasses :class:`SAM2HFSegmenter` and :class:`SAM3Segmenter` only name the backend).

    Args:
        path: hub-format folder; ``None``: :data:`~seg_r1.segmenters.config.DEFAULT_HF_SEGMENTER_PATHS`.
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"``...
        dtype: ``"float32"`` or ``"bfloat16"`` (bf16 autocast around encoder and decoder, as the
            ``"sam2"`` backend; the weights stay float32).
        bgr_compat: feed the model the image with R and B swapped, reproducing the official
            Seg-R1 code's defect (SPEC §3); ONLY to reproduce official numbers.
        mask_threshold: logit threshold of the binary masks (SAM's 0).

    Raises:
        HFSegmenterLoadError: see :func:`load_hf_segmenter`.
    """

    name = "hf"

    def __init__(
        self,
        path: str | Path | None = None,
        device: str | torch.device = "cpu",
        dtype: str = "float32",
        bgr_compat: bool = False,
        mask_threshold: float = 0.0,
    ) -> None:
        super().__init__()
        if self.name not in _BACKENDS:
            raise TypeError("use a backend subclass: SAM2HFSegmenter or SAM3Segmenter")
        if dtype not in SAM2_DTYPES:
            raise ValueError(f"dtype must be one of {SAM2_DTYPES}, got {dtype!r}")
        self.path = Path(path if path is not None else DEFAULT_HF_SEGMENTER_PATHS[self.name])
        self.device = torch.device(device)
        self.dtype = dtype
        self.bgr_compat = bgr_compat
        self.mask_threshold = float(mask_threshold)
        model, self.processor = load_hf_segmenter(self.path, self.name)
        self.model = model.to(self.device)
        self._embeddings: list[torch.Tensor] | None = None
        if bgr_compat:
            logger.warning(
                "%s(bgr_compat=True): R and B are swapped before the model, reproducing the "
                "official code's defect; use only to reproduce official numbers.",
                type(self).__name__,
            )

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.dtype == "float32":
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16)

    def _encode(self, image: np.ndarray) -> None:
        if self.bgr_compat:
            image = np.ascontiguousarray(image[..., ::-1])
        inputs = self.processor(
            images=image, input_data_format="channels_last", return_tensors="pt"
        )
        pixel_values = inputs["pixel_values"].to(self.device)
        with torch.inference_mode(), self._autocast():
            self._embeddings = self.model.get_image_embeddings(pixel_values)

    def _decode(self, prompts: list[PromptSet]) -> list[np.ndarray]:
        masks: list[np.ndarray | None] = [None] * len(prompts)
        for has_box, num_points, chunk in structure_chunks(prompts):
            logits = self._decode_group([prompts[i] for i in chunk], has_box, num_points)
            for index, mask in zip(chunk, logits > self.mask_threshold):
                masks[index] = mask
        return masks  # type: ignore[return-value]

    def _decode_group(self, chunk: list[PromptSet], has_box: bool, num_points: int) -> np.ndarray:
        """One decoder call for prompt sets of identical structure -> logits ``float32
        (B, H, W)`` in the image's pixels (the processor's bilinear resize, not thresholded)."""
        hw = list(self._image_hw)  # type: ignore[arg-type]
        # One image (the outer list) with B prompt sets: boxes (1, B, 4), points (1, B, K, 2),
        # labels (1, B, K). The processor scales pixels to the model's input; its "padding"
        # value -10 is never used since all sets in a chunk have K points (a point at exactly
        # (-10, -10), outside the image, would be left unscaled).
        prompts = self.processor(
            original_sizes=[hw],
            input_boxes=[[p.box.tolist() for p in chunk]] if has_box else None,
            input_points=[[p.points.tolist() for p in chunk]] if num_points else None,
            input_labels=[[p.labels.tolist() for p in chunk]] if num_points else None,
            return_tensors="pt",
        )
        inputs = {
            key: prompts[key].to(self.device)
            for key in ("input_boxes", "input_points", "input_labels")
            if key in prompts
        }
        with torch.inference_mode(), self._autocast():
            out = self.model(image_embeddings=self._embeddings, multimask_output=False, **inputs)
        self.stats.decoder_calls += 1
        low_res = out.pred_masks.float().cpu()  # (1, B, 1, h, w)
        (logits,) = self.processor.post_process_masks(low_res, [hw], binarize=False)
        return logits[:, 0].numpy()  # (B, H, W)


class SAM2HFSegmenter(HFSegmenter):
    """``"sam2_hf"``: SAM2 through ``transformers.Sam2Model`` (default folder
    ``third_party/sam2.1-hiera-large``, the hub's ``facebook/sam2.1-hiera-large``)."""

    name = "sam2_hf"


class SAM3Segmenter(HFSegmenter):
    """``"sam3"``: SAM3's tracker (SAM2-style point/box prompts) through
    ``transformers.Sam3TrackerModel`` (default folder ``third_party/sam3``, the hub's
    ``facebook/sam3``)."""

    name = "sam3"


#: Backend name -> class (:func:`seg_r1.segmenters.build_segmenter`).
HF_SEGMENTERS: dict[str, type[HFSegmenter]] = {"sam2_hf": SAM2HFSegmenter, "sam3": SAM3Segmenter}
