"""The honest baseline of the learning demo: the best CONSTANT answer.

A policy that does not read the image can still learn the answer that scores best on average;
with points that steer the segmenter such an answer beats any box alone. So the bar a trained
policy must clear is the best constant answer we can find, fitted on the TRAINING split
(:func:`fit_constant_answer`) and scored like the policy's answers (:func:`answers_iou`:
through :class:`~seg_r1.inference.SegR1Pipeline`, IoU per image). Used by :mod:`seg_r1.quickstart`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from seg_r1.answer import format_answer
from seg_r1.inference import SegR1Pipeline
from seg_r1.metrics import mask_iou

logger = logging.getLogger(__name__)

#: Step sizes of the constant baseline's local box search, coarse to fine, as divisors of the
#: frame: 1/7 and 1/14 of it (32 and 16 pixels at the quickstart's 224).
BOX_STEP_DIVISORS = (7, 14)
#: Training images the constant search scores on (the winner is then scored on SCORE_IMAGES).
SEARCH_IMAGES = 16
#: Constant answers (224 frame) that image-blind GRPO policies converged to on these scenes:
#: candidates of the constant baseline. The first, with a "foreground" point in the box's
#: corner, scored 0.693 held-out where the best box alone scored 0.576 (docs/learning_demo.md).
KNOWN_CONSTANT_ANSWERS = (
    "<bbox>[11,11,199,199]</bbox>, <points>[[11,11],[111,1]]</points>, <labels>[1,0]</labels>",
)
#: Training images the winning constant's train IoU is reported on (GrabCut at 224 costs
#: ~70 ms an image, so all 2048 would add two minutes for a figure that is only informative).
SCORE_IMAGES = 256


def mean_iou(preds: Sequence[np.ndarray], gts: Sequence[np.ndarray]) -> float:

    return float(np.mean([mask_iou(p, g) for p, g in zip(preds, gts)]))


def constant_text_iou(
    text: str,
    images: Sequence[np.ndarray],
    gts: Sequence[np.ndarray],
    segmenter: Any,
    frame_size: int,
    task: str = "rl",
) -> float:
    """Mean IoU of the answer ``text`` (``frame_size`` coordinates) given for every image."""
    return answers_iou([text] * len(images), images, gts, segmenter, frame_size, task)


def answers_iou(
    texts: Sequence[str],
    images: Sequence[np.ndarray],
    gts: Sequence[np.ndarray],
    segmenter: Any,
    frame_size: int,
    task: str = "rl",
) -> float:
    """Mean IoU of answer ``texts[i]`` segmented on ``images[i]``, through the evaluation path
    (:meth:`seg_r1.inference.SegR1Pipeline.predict_from_completions`: the frame, the parser
    of ``task``'s grammar -- ``"rl"`` full answers, ``"prerl"`` points only -- the evaluation's
    answer rule, the mask back to the image), so every held-out IoU of the quickstart is
    scored alike."""
    scorer = SegR1Pipeline(None, None, segmenter, frame_size=frame_size, task=task)
    predictions = scorer.predict_from_completions(list(images), list(texts))
    return mean_iou([p.mask for p in predictions], gts)


def fit_constant_answer(
    images: Sequence[np.ndarray], gts: Sequence[np.ndarray], segmenter: Any, frame_size: int
) -> tuple[str, str, float]:
    """The best constant answers on the TRAINING split: ``(box-only answer, answer, train IoU
    of the answer)``.

    The honest baseline of the learning demo: a policy that does not read the image can still
    learn the answer that scores best on average, and with points that steer the segmenter
    such an answer beats any box alone. Two parts, both scored through the segmenter (the
    objective the policy faces) on the first :data:`SEARCH_IMAGES` training images:

    1. the box: from a few starting boxes, move one side at a time by the frame / :data:`BOX_STEP_DIVISORS` pixels
       while the mean IoU improves (a local search; point searches on top of it gained
       little, docs/learning_demo.md);
    2. the answer: the best of that box alone, that box with a foreground point at its centre,
       and :data:`KNOWN_CONSTANT_ANSWERS` (box + points answers that image-blind GRPO policies
       converged to; a local search does not find them).

    The winner is then scored on the first :data:`SCORE_IMAGES` training images.
    """

    subset = (images[:SEARCH_IMAGES], gts[:SEARCH_IMAGES])
    cache: dict[str, float] = {}
    progress = tqdm(desc="constant baseline (answers tried)", leave=False)

    def score(answer: str) -> float:
        if answer not in cache:
            cache[answer] = constant_text_iou(answer, *subset, segmenter, frame_size)
            progress.update()
        return cache[answer]

    def text(box: Sequence[int]) -> str:
        return format_answer([box])

    f, q = frame_size, frame_size // 4
    starts = [(q, q, f - q, f - q), (q // 2, q // 2, f - q // 2, f - q // 2), (0, 0, f, f)]
    best = max(starts, key=lambda box: score(text(box)))
    for step in (frame_size // d for d in BOX_STEP_DIVISORS):
        improved = True
        while improved:
            improved = False
            for side in range(4):
                for delta in (-step, step):
                    box = list(best)
                    box[side] = int(np.clip(box[side] + delta, 0, f))
                    if box[2] - box[0] < step or box[3] - box[1] < step:
                        continue
                    if score(text(box)) > score(text(best)):
                        best, improved = tuple(box), True
    centre = [[(best[0] + best[2]) // 2, (best[1] + best[3]) // 2]]
    candidates = [text(best), format_answer([best], centre, [1]), *KNOWN_CONSTANT_ANSWERS]
    answer = max(candidates, key=score)
    progress.close()
    score_set = (images[:SCORE_IMAGES], gts[:SCORE_IMAGES])
    return text(best), answer, constant_text_iou(answer, *score_set, segmenter, frame_size)


def cached_constant_fit(path: Path, key: dict[str, Any], fit: Any) -> tuple[str, str, float]:
    """:func:`seg_r1.baselines.fit_constant_answer`'s ``(box answer, answer, train IoU)`` for
    the training split described by ``key``, read from ``path`` when an earlier run of the same
    split wrote it there (the search is ~2 minutes of GrabCut), else ``fit()`` and write it."""
    if path.is_file():
        cached = json.loads(path.read_text())
        if cached.get("key") == key:
            logger.info("constant answer: reusing the fit in %s", path)
            return cached["box_answer"], cached["answer"], float(cached["train_iou"])
    box_answer, answer, train_iou = fit()
    record = {"key": key, "box_answer": box_answer, "answer": answer, "train_iou": train_iou}
    path.write_text(json.dumps(record, indent=2) + "\n")
    return box_answer, answer, train_iou
