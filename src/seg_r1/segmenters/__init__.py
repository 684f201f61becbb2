"""Promptable segmenters: the protocol, the mask rule of SPEC §3, one module per backend, the
factory.

=====================  =====================================================================
module                 what
=====================  =====================================================================
:mod:`.base`           :class:`Segmenter` protocol, :class:`PromptSet`, :class:`BaseSegmenter`
:mod:`.mask_rule`      answers -> prompt sets -> masks, the answer rules, :func:`segment_batch`
:mod:`.classical`      ``"classical"``: GrabCut seeded by the prompts (CPU stand-in, NOT SAM2)
:mod:`.sam2`           ``"sam2"``: Meta's SAM2 (the only importer of ``sam2``)
:mod:`.hf`             ``"sam2_hf"`` / ``"sam3"``: SAM2 / SAM3's tracker through transformers
                       (the only importer of transformers' SAM classes)
:mod:`.convert`        Meta SAM2 checkpoint -> ``"sam2_hf"`` folder (the same weights)
:mod:`.config`         :class:`SegmenterConfig`: the segmenter options, declared once
:mod:`.factory`        :func:`build_segmenter` by name, once per process
=====================  =====================================================================

Dependencies point one way: ``base`` <- backends <- ``factory``; ``mask_rule`` needs only
``base`` (any object of the protocol). To add a backend: subclass :class:`BaseSegmenter`
(``_encode`` once per image, ``_decode`` a list of prompt sets), add it to
:data:`SEGMENTER_NAMES` and :func:`build_segmenter` (docs/architecture.md).
"""

from seg_r1.segmenters.base import (
    BaseSegmenter,
    PromptSet,
    Segmenter,
    SegmenterStats,
    check_image,
    image_key,
)
from seg_r1.segmenters.classical import ClassicalSegmenter
from seg_r1.segmenters.config import (
    DEFAULT_HF_SEGMENTER_PATHS,
    DEFAULT_SAM2_CHECKPOINT,
    DEFAULT_SAM2_CONFIG,
    HF_SEGMENTER_NAMES,
    SAM2_DTYPES,
    SEGMENTER_NAMES,
    SegmenterConfig,
)
from seg_r1.segmenters.factory import build_segmenter, clear_segmenter_cache
from seg_r1.segmenters.mask_rule import (
    ANSWER_RULES,
    DEFAULT_EVAL_ANSWER_RULE,
    DEFAULT_TRAIN_ANSWER_RULE,
    answer_usable,
    check_answer_rule,
    masks_from_answer,
    prompts_from_answer,
    segment_batch,
    unusable_reason,
)

__all__ = [
    "ANSWER_RULES",
    "DEFAULT_HF_SEGMENTER_PATHS",
    "DEFAULT_SAM2_CHECKPOINT",
    "DEFAULT_SAM2_CONFIG",
    "DEFAULT_EVAL_ANSWER_RULE",
    "DEFAULT_TRAIN_ANSWER_RULE",
    "HF_SEGMENTER_NAMES",
    "SAM2_DTYPES",
    "SEGMENTER_NAMES",
    "BaseSegmenter",
    "ClassicalSegmenter",
    "PromptSet",
    "Segmenter",
    "SegmenterConfig",
    "SegmenterStats",
    "answer_usable",
    "build_segmenter",
    "check_answer_rule",
    "check_image",
    "clear_segmenter_cache",
    "image_key",
    "masks_from_answer",
    "prompts_from_answer",
    "segment_batch",
    "unusable_reason",
]
