"""The one inference path: image (+ query) -> policy answer -> parsed prompts -> mask.

Evaluation (``eval/*.py`` through :mod:`seg_r1.evaluation`), the demo and the training
quickstart's held-out evaluation all go through :class:`SegR1Pipeline`; nothing else calls
``model.generate`` on evaluation images.

Steps of :meth:`SegR1Pipeline.predict` for a batch of images:

1. **Frame.** Each image (RGB) is resized to the square ``frame_size`` frame, ignoring its
   aspect ratio (SPEC §2: 768 for COD/SOD, 1024 for referring/reasoning and the demo), with
   :func:`seg_r1.frame.resize_to_frame` (area interpolation when shrinking, bilinear when
   enlarging). The policy and the segmenter both see this frame image.
2. **Policy.** The chat of :func:`seg_r1.prompts.build_chat` is rendered for each image and the
   batch is generated **greedily** (``do_sample=False``, one beam, ``repetition_penalty`` 1.0
   unless asked) with **left padding**, so every row's prompt ends where generation starts and
   a batch gives the same tokens as one-at-a-time generation (pinned by
   ``tests/test_inference.py``). Qwen's processor then resizes the frame to its own 28-pixel
   grid within the pixel bounds (``min_pixels``/``max_pixels``; 768 -> 756 and 1024 -> 1036
   with the released checkpoints' bounds): coordinates are still read in the frame, as in the
   official code (see :mod:`seg_r1.answer`).
3. **Parse.** :func:`seg_r1.answer.parse_answer` in the frame (never raises).
4. **Segment.** :func:`seg_r1.segmenters.segment_batch` on the frame images: each distinct image
   is encoded ONCE per call (several queries on one image share the encoder pass), one mask
   per box, union over boxes (SPEC §3).
5. **Back to the image.** The frame mask is resized to the original ``(H, W)`` with
   **nearest-neighbour** interpolation (:func:`seg_r1.frame.resize_mask`): each original
   pixel takes the value of the frame pixel its centre falls in, so the mask stays binary and
   no threshold is involved.

Devices: the policy lives on ``device`` (``load_policy``), the segmenter on its own device
(``build_segmenter(..., device=...)``); they may differ (e.g. policy on ``cuda:0``, SAM2 on
``cuda:1`` or on the CPU).
"""

from __future__ import annotations

import logging
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch
from PIL import Image

from seg_r1.answer import ParsedAnswer, parse_answer
from seg_r1.data.io import image_array
from seg_r1.families import CoordinatesArguments, resolve_coordinates
from seg_r1.frame import check_coordinates, resize_mask, resize_to_frame
from seg_r1.policy import (
    ATTN_IMPLEMENTATIONS,
    DTYPES,
    checkpoint_frame,
    load_policy,
    resolve_device,
    set_pixel_bounds,
)
from seg_r1.prompts import build_chat
from seg_r1.segmenters import (
    ANSWER_RULES,
    DEFAULT_EVAL_ANSWER_RULE,
    Segmenter,
    SegmenterConfig,
    answer_usable,
    build_segmenter,
    check_answer_rule,
    segment_batch,
)
from seg_r1.tasks import get_task

logger = logging.getLogger(__name__)

#: Room for a reasoning trace plus prompts; Seg-R1 answers are typically 100-300 tokens.
DEFAULT_MAX_NEW_TOKENS = 1024

ImageLike = Image.Image | np.ndarray


@dataclass(frozen=True, eq=False)
class Prediction:
    """One image's prediction.

    Attributes:
        completion: the policy's raw answer text (special tokens removed).
        answer: the parsed answer; coordinates in the frame (``answer.frame_size``).
        frame_mask: ``bool (F_h, F_w)`` mask in the frame.
        mask: ``bool (H, W)`` mask at the ORIGINAL image resolution (nearest-neighbour resize
            of ``frame_mask``).
        usable: whether the pipeline's answer rule made a mask from the answer
            (:func:`seg_r1.segmenters.answer_usable`); ``False`` means an empty mask.
    """

    completion: str
    answer: ParsedAnswer
    frame_mask: np.ndarray
    mask: np.ndarray
    usable: bool = True

    @property
    def image_size(self) -> tuple[int, int]:
        """``(height, width)`` of the original image."""
        return int(self.mask.shape[0]), int(self.mask.shape[1])


class SegR1Pipeline:
    """Policy + segmenter: images (and queries) in, answers and masks out.

    Args:
        model, processor: from :func:`seg_r1.policy.load_policy` (the processor must pad on
            the left; it is set so here if it does not). Both ``None``: a pipeline that only
            scores given answers (:meth:`predict_from_completions`), e.g. constant baselines.
        segmenter: a :class:`seg_r1.segmenters.Segmenter` (``build_segmenter("sam2", ...)`` or
            ``"classical"``).
        frame_size: side of the square frame the image is resized to and the answer's
            coordinates refer to (768 COD/SOD, 1024 referring/reasoning/demo).
        task: a task of :mod:`seg_r1.prompts` (``"foreground"``, ``"referring"``,
            ``"reasoning"``, ...); ``"prerl"`` parses points-only answers.
        max_new_tokens: generation budget per answer.
        batch_size: images per ``generate`` call.
        repetition_penalty: 1.0 = plain greedy decoding. (Qwen2.5-VL's shipped
            ``generation_config`` has 1.05, which a bare ``generate(do_sample=False)`` applies;
            pass 1.05 to reproduce such a run.)
        temperature: ``None`` (default) decodes greedily; a positive value samples instead,
            with GRPO's rollout settings otherwise (``top_p`` 1, ``top_k`` 0: TRL's defaults),
            to score the policy that the training stage sampled (seed torch beforehand for
            repeatable draws). The evaluation scripts never set it.
        min_pixels, max_pixels: optional processor pixel bounds (see :func:`load_policy`).
        answer_rule: which imperfect answers still give a mask
            (:data:`seg_r1.segmenters.ANSWER_RULES`): ``"fallback"`` (default: the official
            evaluation's -- box-only when points/labels are unusable, points-only without a
            box; numbers comparable with the paper's), ``"well_formed"`` (strict: an
            inconsistent answer gives an empty mask) or ``"complete"`` (the reward's rule).
        coordinates: the convention the policy writes answers in (``"frame"`` pixels, the
            paper's, or ``"relative_1000"``; :func:`seg_r1.families.resolve_coordinates`
            decides it in :func:`build_pipeline`); the prompts say so and the parser maps it.
    """

    def __init__(
        self,
        model: Any,
        processor: Any,
        segmenter: Segmenter,
        frame_size: int = 1024,
        task: str = "foreground",
        max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
        batch_size: int = 8,
        repetition_penalty: float = 1.0,
        min_pixels: int | None = None,
        max_pixels: int | None = None,
        answer_rule: str = DEFAULT_EVAL_ANSWER_RULE,
        coordinates: str = "frame",
        temperature: float | None = None,
    ) -> None:
        spec = get_task(task)
        if batch_size < 1 or max_new_tokens < 1 or frame_size < 1:
            raise ValueError("batch_size, max_new_tokens and frame_size must be positive")
        if temperature is not None and not temperature > 0:
            raise ValueError(f"temperature must be positive (or None: greedy), got {temperature}")
        self.temperature = None if temperature is None else float(temperature)
        self.model = model
        self.processor = processor
        self.segmenter = segmenter
        self.frame_size = int(frame_size)
        self.task = task
        self.mode = spec.answer_mode
        self.max_new_tokens = int(max_new_tokens)
        self.batch_size = int(batch_size)
        self.repetition_penalty = float(repetition_penalty)
        self.answer_rule = check_answer_rule(answer_rule)
        self.coordinates = check_coordinates(coordinates)
        if processor is not None:  # None: a pipeline that only scores given answers
            set_pixel_bounds(processor, min_pixels, max_pixels)
            if getattr(processor.tokenizer, "padding_side", "left") != "left":
                processor.tokenizer.padding_side = "left"

    @property
    def device(self) -> torch.device:
        if self.model is None:
            return torch.device("cpu")
        return next(self.model.parameters()).device

    # ------------------------------------------------------------------ policy

    def frames(self, images: Sequence[ImageLike]) -> list[np.ndarray]:
        """The images as ``uint8 (F, F, 3)`` RGB frames (step 1 of the module doc)."""
        return [resize_to_frame(image_array(im), self.frame_size) for im in images]

    def _queries(
        self, n: int, queries: Sequence[str] | None, query_types: Sequence[str] | None
    ) -> tuple[list[str], list[str]]:
        queries = [""] * n if queries is None else list(queries)
        query_types = [""] * n if query_types is None else list(query_types)
        if len(queries) != n or len(query_types) != n:
            raise ValueError(
                f"{n} images but {len(queries)} queries and {len(query_types)} query types"
            )
        if get_task(self.task).needs_query and not all(queries):
            raise ValueError(f"task {self.task!r} needs a non-empty query for every image")
        return queries, query_types

    def generate(
        self,
        images: Sequence[ImageLike],
        queries: Sequence[str] | None = None,
        query_types: Sequence[str] | None = None,
    ) -> list[str]:
        """Greedy answers for ``images`` (resized to the frame first), in input order."""
        if self.model is None or self.processor is None:
            raise RuntimeError(
                "this pipeline has no policy (model/processor None: it scores given answers); "
                "use predict_from_completions, or build it with build_pipeline"
            )
        queries, query_types = self._queries(len(images), queries, query_types)
        frames = self.frames(images)
        return self._generate_frames(frames, queries, query_types)

    def _generate_frames(
        self, frames: Sequence[np.ndarray], queries: Sequence[str], query_types: Sequence[str]
    ) -> list[str]:
        out: list[str] = []
        for start in range(0, len(frames), self.batch_size):
            stop = start + self.batch_size
            out += self._generate_batch(
                frames[start:stop], queries[start:stop], query_types[start:stop]
            )
        return out

    @torch.inference_mode()
    def _generate_batch(
        self, frames: Sequence[np.ndarray], queries: Sequence[str], query_types: Sequence[str]
    ) -> list[str]:
        pils = [Image.fromarray(frame) for frame in frames]
        texts = [
            self.processor.apply_chat_template(
                build_chat(self.task, pil, query, query_type, self.coordinates),
                tokenize=False,
                add_generation_prompt=True,
            )
            for pil, query, query_type in zip(pils, queries, query_types)
        ]
        inputs = self.processor(text=texts, images=pils, padding=True, return_tensors="pt")
        inputs = inputs.to(self.device)
        decoding: dict[str, Any] = {"do_sample": False, "temperature": None, "top_p": None,
                                    "top_k": None}  # fmt: skip
        if self.temperature is not None:  # GRPO's rollouts: TRL's top_p 1 and top_k 0
            decoding = {"do_sample": True, "temperature": self.temperature, "top_p": 1.0,
                        "top_k": 0}  # fmt: skip
        generated = self.model.generate(
            **inputs,
            max_new_tokens=self.max_new_tokens,
            num_beams=1,
            repetition_penalty=self.repetition_penalty,
            **decoding,
        )
        new_tokens = generated[:, inputs["input_ids"].shape[1] :]
        return self.processor.batch_decode(
            new_tokens, skip_special_tokens=True, clean_up_tokenization_spaces=False
        )

    # ------------------------------------------------------------------ full prediction

    def predict(
        self,
        images: Sequence[ImageLike],
        queries: Sequence[str] | None = None,
        query_types: Sequence[str] | None = None,
        image_keys: Sequence[Hashable] | None = None,
    ) -> list[Prediction]:
        """Answers, parsed prompts and masks for ``images`` (module doc, steps 1-5).

        Args:
            images: PIL images or ``uint8 (H, W, 3)`` RGB arrays, any sizes.
            queries, query_types: per image (referring/reasoning); ``None`` for foreground.
            image_keys: equal keys = the same image, encoded once by the segmenter. Default:
                the same Python object passed several times counts as one image.
        """
        queries, query_types = self._queries(len(images), queries, query_types)
        keys, frames, sizes = self._frames_by_key(images, image_keys)
        completions = self._generate_frames(frames, queries, query_types)
        return self._segment(frames, sizes, keys, completions)

    def predict_from_completions(
        self,
        images: Sequence[ImageLike],
        completions: Sequence[str],
        image_keys: Sequence[Hashable] | None = None,
    ) -> list[Prediction]:
        """Steps 1 and 3-5 for given answer texts (the policy is skipped): re-scoring saved
        completions, or segmenting an answer a user edited in the demo."""
        if len(completions) != len(images):
            raise ValueError(f"{len(images)} images but {len(completions)} completions")
        keys, frames, sizes = self._frames_by_key(images, image_keys)
        return self._segment(frames, sizes, keys, list(completions))

    def _frames_by_key(
        self, images: Sequence[ImageLike], image_keys: Sequence[Hashable] | None
    ) -> tuple[list[Hashable], list[np.ndarray], list[tuple[int, int]]]:
        """Keys, frames and original ``(H, W)`` sizes; one frame per distinct key (shared
        images are resized once and keep one identity)."""
        if image_keys is None:
            first: dict[int, int] = {}
            image_keys = [first.setdefault(id(im), i) for i, im in enumerate(images)]
        elif len(image_keys) != len(images):
            raise ValueError(f"{len(image_keys)} image keys for {len(images)} images")
        frame_of: dict[Hashable, np.ndarray] = {}
        sizes: list[tuple[int, int]] = []
        for image, key in zip(images, image_keys):
            array = image_array(image)
            sizes.append((int(array.shape[0]), int(array.shape[1])))
            if key not in frame_of:
                frame_of[key] = resize_to_frame(array, self.frame_size)
        return list(image_keys), [frame_of[key] for key in image_keys], sizes

    def _segment(
        self,
        frames: list[np.ndarray],
        sizes: list[tuple[int, int]],
        keys: list[Hashable],
        completions: list[str],
    ) -> list[Prediction]:
        answers = [
            parse_answer(text, self.frame_size, self.mode, self.coordinates) for text in completions
        ]
        frame_masks = segment_batch(
            self.segmenter, frames, answers, image_keys=keys, rule=self.answer_rule
        )
        return [
            Prediction(
                text,
                answer,
                frame_mask,
                resize_mask(frame_mask, size),
                answer_usable(answer, self.answer_rule),
            )
            for text, answer, frame_mask, size in zip(completions, answers, frame_masks, sizes)
        ]


@dataclass
class PipelineConfig(SegmenterConfig, CoordinatesArguments):
    """Everything that decides what the inference pipeline answers: the policy, generation, the
    frame and the answer rule, plus the segmenter (:class:`SegmenterConfig`). The evaluation
    config extends it and the demo parses it (``HfArgumentParser``); :func:`build_pipeline`
    is the one builder."""

    model_path: str | None = field(
        default=None,
        metadata={"help": "Seg-R1 policy checkpoint directory (save_pretrained layout)."},
    )
    frame_size: int | None = field(
        default=None,
        metadata={
            "help": "Side of the square frame the image is resized to; the answer's "
            "coordinates refer to it (null: the frame a checkpoint trained here records in "
            "its seg_r1.json, else the task's, SPEC §2: 768 foreground, 1024 referring / "
            "reasoning / demo)."
        },
    )
    max_new_tokens: int | None = field(
        default=None,
        metadata={
            "help": "Generation budget (null: the task's official evaluation budget, 1024 "
            "foreground, 512 referring / reasoning)."
        },
    )
    batch_size: int = field(default=8, metadata={"help": "Images per generate call."})
    repetition_penalty: float = field(
        default=1.0,
        metadata={
            "help": "1.0 = plain greedy decoding; Qwen2.5-VL's shipped generation_config has "
            "1.05, which the official scripts' bare generate() applies."
        },
    )
    dtype: str = field(default="auto", metadata={"help": "Policy dtype.", "choices": list(DTYPES)})
    attn_implementation: str | None = field(
        default=None,
        metadata={
            "help": "Policy attention (null: flash_attention_2 on GPU when installed, else sdpa).",
            "choices": list(ATTN_IMPLEMENTATIONS),
        },
    )
    min_pixels: int | None = field(
        default=None, metadata={"help": "Processor pixel bound (null: the checkpoint's)."}
    )
    max_pixels: int | None = field(
        default=None, metadata={"help": "Processor pixel bound (null: the checkpoint's)."}
    )
    answer_rule: str = field(
        default=DEFAULT_EVAL_ANSWER_RULE,
        metadata={
            "help": "Which imperfect answers still give a mask: 'fallback' (the official "
            "evaluation's: box-only mask when points/labels are unusable, points-only mask "
            "without a box -- numbers comparable with the paper's), 'well_formed' (strict: an "
            "inconsistent answer gives an empty mask; box-only answers are kept) or "
            "'complete' (the training reward's rule).",
            "choices": list(ANSWER_RULES),
        },
    )
    device: str = field(
        default="auto", metadata={"help": "Policy device: auto, cpu, cuda, cuda:1, ..."}
    )

    def __post_init__(self) -> None:
        SegmenterConfig.__post_init__(self)
        CoordinatesArguments.__post_init__(self)
        check_answer_rule(self.answer_rule)
        for name in ("frame_size", "max_new_tokens", "batch_size"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be positive, got {value}")

    def task_defaults(self, task: str) -> tuple[int, int]:
        """``(frame_size, max_new_tokens)``: this config's; where null, the frame the checkpoint
        was trained in (its ``seg_r1.json``, :func:`seg_r1.policy.checkpoint_frame`), else the
        task's (:mod:`seg_r1.tasks`, SPEC §2 -- released checkpoints)."""
        spec = get_task(task)
        frame = self.frame_size or checkpoint_frame(self.model_path) or spec.frame_size
        budget = self.max_new_tokens or spec.eval_max_new_tokens or DEFAULT_MAX_NEW_TOKENS
        return frame, budget

    def resolved(self, task: str) -> PipelineConfig:
        """A copy with the task's defaults filled in (:meth:`task_defaults`) and the coordinate
        convention decided (:func:`seg_r1.families.resolve_coordinates`)."""
        frame, budget = self.task_defaults(task)
        coordinates = resolve_coordinates(self.coordinates, self.model_path)
        return replace(self, frame_size=frame, max_new_tokens=budget, coordinates=coordinates)


def build_pipeline(
    config: PipelineConfig, task: str = "foreground", sam2_device: str | None = None
) -> SegR1Pipeline:
    """Load the policy and build the segmenter of ``config``, then the pipeline for ``task``
    (eval scripts, demo, quickstart): THE builder.

    Null ``frame_size`` / ``max_new_tokens`` take the task's (:mod:`seg_r1.tasks`); the
    segmenter goes to ``config.sam2_device`` (or ``sam2_device``, a worker's override), else
    to the policy's device. ``sam2_bgr_compat`` affects the SAM2 backends only (``sam2``,
    ``sam2_hf``, ``sam3``), not ``classical``.

    Raises:
        ValueError: no ``model_path``.
    """
    if not config.model_path:
        raise ValueError("the pipeline needs a model_path (a Seg-R1 checkpoint directory)")
    config = config.resolved(task)
    policy_device = resolve_device(config.device)
    model, processor = load_policy(
        config.model_path,
        policy_device,
        config.dtype,
        config.attn_implementation,
        config.min_pixels,
        config.max_pixels,
    )
    if config.segmenter == "classical" and config.sam2_bgr_compat:
        logger.warning("sam2_bgr_compat only affects the SAM2 segmenters; ignored")
    seg_device = sam2_device or config.sam2_device
    seg_device = str(resolve_device(seg_device) if seg_device else policy_device)
    segmenter = build_segmenter(config.segmenter, **config.segmenter_kwargs(seg_device))
    return SegR1Pipeline(
        model,
        processor,
        segmenter,
        frame_size=config.frame_size,
        task=task,
        max_new_tokens=config.max_new_tokens,
        batch_size=config.batch_size,
        repetition_penalty=config.repetition_penalty,
        answer_rule=config.answer_rule,
        coordinates=config.coordinates,
    )
