"""The masks of a rollout batch, computed once and shared by every mask-based reward.

:class:`MaskComputer` parses a batch of completions, resizes each distinct image to the frame,
encodes it ONCE (:func:`seg_r1.segmenters.segment_batch`) and decodes every completion's
prompts under the run's answer rule; the result (:class:`SegmentedBatch`) is cached so the
second reward of a step gets the same masks without touching the segmenter, and
:meth:`MaskComputer.statistics` gives the batch's prompt statistics and cost for the logs.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from seg_r1.answer import Mode, ParsedAnswer, parse_answer
from seg_r1.data.io import image_array
from seg_r1.frame import check_coordinates, frame_hw, resize_to_frame
from seg_r1.segmenters import (
    DEFAULT_TRAIN_ANSWER_RULE,
    Segmenter,
    answer_usable,
    check_answer_rule,
    image_key,
    segment_batch,
)
from seg_r1.tasks import TRAIN_FRAME

logger = logging.getLogger(__name__)

#: The training frame (SPEC §2): images are resized to 768x768 for GRPO.
DEFAULT_FRAME_SIZE = TRAIN_FRAME


def completion_text(completion: Any) -> str:
    """The text of one completion: a string, or a conversational list of messages (the
    assistant messages' contents concatenated; content may be a list of text parts).

    Raises:
        TypeError: any other structure (a caller bug, not a model failure).
    """
    if isinstance(completion, str):
        return completion
    if isinstance(completion, Mapping):
        completion = [completion]
    if isinstance(completion, Sequence) and all(isinstance(m, Mapping) for m in completion):
        texts = []
        for message in completion:
            if message.get("role", "assistant") != "assistant":
                continue
            content = message.get("content", "")
            if isinstance(content, str):
                texts.append(content)
            elif isinstance(content, Sequence):
                texts += [p["text"] for p in content if isinstance(p, Mapping) and "text" in p]
            else:
                raise TypeError(f"unsupported message content {type(content).__name__}")
        return "".join(texts)
    raise TypeError(f"unsupported completion type {type(completion).__name__}")


@dataclass(frozen=True)
class SegmentedBatch:
    """A batch of answers and their masks in the frame.

    Attributes:
        answers: one :class:`ParsedAnswer` per completion.
        masks: ``bool (frame_h, frame_w)`` per completion (all False when unusable).
        usable: per completion, whether the answer rule gave it a mask
            (:func:`seg_r1.segmenters.answer_usable`); unusable answers score 0.
        seconds, encoder_calls: the cost of computing the batch (parse + segment); encoder
            calls = distinct images.
    """

    answers: list[ParsedAnswer]
    masks: list[np.ndarray]
    usable: list[bool]
    seconds: float = 0.0
    encoder_calls: int = 0


class MaskComputer:
    """Parses and segments a batch once and shares the result between reward functions.

    ``__call__(completions, images, mode)`` resizes each distinct image to the frame, encodes
    it once (:func:`seg_r1.segmenters.segment_batch`) and decodes every completion's prompts.
    The last ``cache_size`` batches are kept, keyed by ``(mode, completion texts, image
    contents)``: the second reward function of a step gets the same masks without touching
    the segmenter. ``hits`` / ``misses`` count cache use.

    Args:
        segmenter: any :class:`seg_r1.segmenters.Segmenter` (built once per process).
        frame_size: the frame the answers' coordinates refer to (``int`` or ``(h, w)``).
        cache_size: batches kept.
        answer_rule: which answers give a mask (:data:`seg_r1.segmenters.ANSWER_RULES`); the
            default ``"complete"`` is the official reward's (box, points and labels with
            matching counts), ``"well_formed"`` also scores box-only answers.
        coordinates: the convention the answers are written in (``"frame"`` pixels, the
            paper's, or ``"relative_1000"``; :func:`seg_r1.families.resolve_coordinates`).
    """

    def __init__(
        self,
        segmenter: Segmenter,
        frame_size: int | tuple[int, int] = DEFAULT_FRAME_SIZE,
        cache_size: int = 4,
        answer_rule: str = DEFAULT_TRAIN_ANSWER_RULE,
        coordinates: str = "frame",
    ) -> None:
        self.segmenter = segmenter
        self.frame_size = frame_hw(frame_size)
        self.coordinates = check_coordinates(coordinates)
        self.answer_rule = check_answer_rule(answer_rule)
        self.cache_size = cache_size
        self._cache: OrderedDict[tuple, SegmentedBatch] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def __call__(
        self, completions: Sequence[Any], images: Sequence[Any], mode: Mode
    ) -> SegmentedBatch:
        texts = [completion_text(c) for c in completions]
        if len(images) != len(texts):
            raise ValueError(f"{len(images)} images for {len(texts)} completions")
        arrays: dict[int, np.ndarray] = {}
        for value in images:
            if id(value) not in arrays:
                arrays[id(value)] = image_array(value)
        keys_by_id = {i: image_key(a) for i, a in arrays.items()}
        keys = [keys_by_id[id(v)] for v in images]
        cache_key = (mode, tuple(texts), tuple(keys))
        if cache_key in self._cache:
            self.hits += 1
            self._cache.move_to_end(cache_key)
            return self._cache[cache_key]
        self.misses += 1
        start, encoder_calls = time.perf_counter(), self.segmenter.stats.encoder_calls
        answers = [parse_answer(t, self.frame_size, mode, self.coordinates) for t in texts]
        frames: dict[str, np.ndarray] = {}
        for i, arr in arrays.items():
            frames.setdefault(keys_by_id[i], resize_to_frame(arr, self.frame_size))
        masks = segment_batch(
            self.segmenter,
            [frames[k] for k in keys],
            answers,
            image_keys=keys,
            rule=self.answer_rule,
        )
        usable = [answer_usable(a, self.answer_rule) for a in answers]
        batch = SegmentedBatch(
            answers,
            masks,
            usable,
            seconds=time.perf_counter() - start,
            encoder_calls=self.segmenter.stats.encoder_calls - encoder_calls,
        )
        self._cache[cache_key] = batch
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return batch

    @staticmethod
    def statistics(batch: SegmentedBatch) -> dict[str, float]:
        """The batch's mask-prompt statistics, means over ALL completions (an unusable answer
        counts as 0 boxes and 0 points): ``mask_prompts/{boxes_per_answer, points_per_answer,
        parse_failure_rate, format_ok_rate, mask_area}`` (``mask_area``: the predicted mask's
        share of the frame; catches "segment everything"), and its cost,
        ``segmenter/{seconds, encoder_calls}``."""
        answers = batch.answers
        n = max(len(answers), 1)
        return {
            "segmenter/seconds": batch.seconds,
            "segmenter/encoder_calls": float(batch.encoder_calls),
            "mask_prompts/boxes_per_answer": sum(a.num_boxes for a in answers) / n,
            "mask_prompts/points_per_answer": sum(a.num_points for a in answers) / n,
            "mask_prompts/parse_failure_rate": sum(not u for u in batch.usable) / n,
            "mask_prompts/format_ok_rate": sum(a.format_ok for a in answers) / n,
            "mask_prompts/mask_area": float(np.mean([m.mean() for m in batch.masks] or [0.0])),
        }
