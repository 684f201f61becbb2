"""Policy families: what differs between the vision-language models a policy can be, and the
one place that decides an answer's coordinate convention.

==============  ==================  =====  =====  ======  ===============  ====================
family          config model_type   patch  merge  grid    coordinates      released pixel bounds
==============  ==================  =====  =====  ======  ===============  ====================
``qwen2.5-vl``  ``qwen2_5_vl``      14     2      28      ``frame``        3,136..12,845,056
``qwen3-vl``    ``qwen3_vl``        16     2      32      ``relative_1000``  65,536..16,777,216
``qwen3.5``     ``qwen3_5``         16     2      32      ``relative_1000``  65,536..16,777,216
==============  ==================  =====  =====  ======  ===============  ====================

Everything else is shared: the model loads through ``AutoModelForImageTextToText`` and the
processor through ``AutoProcessor`` (transformers maps each ``model_type`` to its classes:
``Qwen2_5_VLForConditionalGeneration`` / ``Qwen2_5_VLProcessor``,
``Qwen3VLForConditionalGeneration`` / ``Qwen3VLProcessor``, ``Qwen3_5ForConditionalGeneration``
/ ``Qwen3VLProcessor``), all three use ``Qwen2VLImageProcessor`` (pixel bounds in its
``size = {"shortest_edge": min_pixels, "longest_edge": max_pixels}``), ChatML turns and the
``<|vision_start|><|image_pad|><|vision_end|>`` image placeholder.

Sources of the facts (checked for transformers 5.24, our pin):

* patch / merge sizes: the vision configs' defaults (``Qwen2_5_VLVisionConfig``: patch 14,
  ``spatial_merge_size`` 2; ``Qwen3VLVisionConfig`` and ``Qwen3_5VisionConfig``: patch 16,
  merge 2), i.e. Qwen3 merges 2x2 patches into one 32-pixel token, Qwen2.5-VL into 28.
* processor classes: ``models/auto/processing_auto.py`` / ``image_processing_auto.py``.
* pixel bounds: the released ``preprocessor_config.json`` files (Qwen2.5-VL: 4..16384 tokens of
  28x28 pixels; Qwen3-VL / Qwen3.5: ``shortest_edge`` 65,536, ``longest_edge`` 16,777,216, with
  ``image_mean = image_std = 0.5``).
* coordinates: the Qwen2.5-VL technical report and cookbooks ground in absolute pixels of the
  image the model sees (the paper's prompts rely on it: pixels of the 768/1024 frame); the
  Qwen3-VL model card and cookbooks (``spatial_understanding``) ground in relative coordinates
  scaled to 0..1000, and Qwen3.5 kept that convention.
* chat templates: Qwen2.5-VL's inserts ``You are a helpful assistant.`` when a conversation has
  no system turn; Qwen3-VL's does not. Qwen3.5's released template is a thinking template (its
  generation prompt opens a ``<think>`` block unless ``enable_thinking`` is false); the
  project's own tiny Qwen3.5 checkpoints use the Qwen3-VL-style template, and Seg-R1's answer
  grammar writes its own ``<think> ... </think>``, so with a released Qwen3.5 checkpoint pass
  ``chat_template_kwargs: {enable_thinking: false}`` in the recipe (documented, not tested
  here: no released checkpoint is reachable).

The coordinate convention (``coordinates:`` of a recipe, ``--coordinates`` of eval and the demo)
is resolved by :func:`resolve_coordinates`, the one place: an explicit value wins; otherwise the
convention a checkpoint trained here recorded (``seg_r1.json``); otherwise the checkpoint's
family default (``frame`` for Qwen2.5-VL, the paper's, so every faithful recipe is unchanged).
The mapping itself is :func:`seg_r1.frame.answer_to_frame`.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from seg_r1.frame import check_coordinates

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PolicyFamily:
    """What one policy family needs (module table).

    Attributes:
        name: the family's name (``qwen2.5-vl``, ...).
        model_types: ``config.json`` ``model_type`` values of the family.
        patch_size: vision patch side in pixels.
        merge_size: patches merged per side into one visual token.
        coordinates: the grounding convention its released checkpoints answer in
            (:data:`seg_r1.frame.COORDINATES`).
        min_pixels, max_pixels: the released processors' pixel bounds.
        default_system_turn: its chat template adds a system turn when none is given.
    """

    name: str
    model_types: tuple[str, ...]
    patch_size: int
    merge_size: int
    coordinates: str
    min_pixels: int
    max_pixels: int
    default_system_turn: bool

    @property
    def factor(self) -> int:
        """The processor's resize grid: images become multiples of this many pixels."""
        return self.patch_size * self.merge_size


FAMILIES: dict[str, PolicyFamily] = {
    family.name: family
    for family in (
        PolicyFamily("qwen2.5-vl", ("qwen2_5_vl",), 14, 2, "frame", 4 * 28 * 28, 16384 * 28 * 28, True),
        PolicyFamily("qwen3-vl", ("qwen3_vl",), 16, 2, "relative_1000", 65_536, 16_777_216, False),
        PolicyFamily("qwen3.5", ("qwen3_5",), 16, 2, "relative_1000", 65_536, 16_777_216, False),
    )
}  # fmt: skip
#: The faithful family (the paper's policy).
DEFAULT_FAMILY = "qwen2.5-vl"


def get_family(name: str) -> PolicyFamily:
    """The family ``name``; ``ValueError`` naming the known ones otherwise."""
    try:
        return FAMILIES[name]
    except KeyError:
        known = ", ".join(FAMILIES)
        raise ValueError(f"unknown policy family {name!r}; expected one of {known}") from None


def family_of_model_type(model_type: str) -> PolicyFamily:
    """The family whose checkpoints have this ``config.json`` ``model_type``.

    Raises:
        ValueError: no family knows it (the message lists the supported types).
    """
    for family in FAMILIES.values():
        if model_type in family.model_types:
            return family
    known = ", ".join(t for f in FAMILIES.values() for t in f.model_types)
    raise ValueError(
        f"model_type {model_type!r} is not a supported policy family (supported: {known}; "
        "seg_r1.families lists what each needs)"
    )


def checkpoint_model_type(model_path: str | Path | None) -> str | None:
    """``model_type`` of the checkpoint folder's ``config.json`` (``None`` when there is no
    readable local ``config.json``, e.g. a hub id)."""
    if not model_path:
        return None
    path = Path(model_path) / "config.json"
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text()).get("model_type")
    except json.JSONDecodeError:
        return None


def family_of(model: str | Path | Any | None) -> PolicyFamily:
    """The family of a checkpoint folder, a config or a model (its ``config.model_type``);
    the default family when a folder has no readable ``config.json`` (a hub id)."""
    if model is None or isinstance(model, (str, Path)):
        model_type = checkpoint_model_type(model)
        return (
            get_family(DEFAULT_FAMILY) if model_type is None else family_of_model_type(model_type)
        )
    config = getattr(model, "config", model)
    return family_of_model_type(getattr(config, "model_type", ""))


def resolve_coordinates(requested: str | None, model_path: str | Path | None) -> str:
    """THE decision of an answer's coordinate convention (module doc): ``requested`` if given;
    else what the checkpoint recorded in ``seg_r1.json``; else its family's default. Logs the
    choice when it was not explicit.

    Raises:
        ValueError: an unknown convention.
    """
    if requested is not None:
        return check_coordinates(requested)
    from seg_r1.policy import TRAINING_META, read_training_meta

    recorded = read_training_meta(model_path).get("coordinates")
    if recorded is not None:
        logger.info(
            "coordinates %s: recorded in %s of %s; pass --coordinates to override",
            recorded,
            TRAINING_META,
            model_path,
        )
        return check_coordinates(recorded)
    family = family_of(model_path)
    if family.coordinates != "frame":
        logger.info(
            "coordinates %s: the %s family's grounding convention; pass --coordinates to override",
            family.coordinates,
            family.name,
        )
    return family.coordinates


@dataclass
class CoordinatesArguments:
    """The ``coordinates`` option, declared once: inherited by the GRPO and SFT recipes'
    script arguments and by :class:`seg_r1.inference.PipelineConfig` (eval, demo)."""

    coordinates: str | None = field(
        default=None,
        metadata={
            "help": "Coordinate convention the policy WRITES its answers in: 'frame' (absolute "
            "pixels of the frame, the paper's, Qwen2.5-VL) or 'relative_1000' (0..1000 of the "
            "frame's width/height, Qwen3-VL / Qwen3.5). null = what the checkpoint recorded "
            "(seg_r1.json), else its policy family's default (seg_r1.families)."
        },
    )

    def __post_init__(self) -> None:
        if self.coordinates is not None:
            check_coordinates(self.coordinates)
