"""The mask rule of SPEC §3 and the answer rules: parsed answers -> prompt sets -> masks.

* :func:`prompts_from_answer` -- one prompt set per box with only the points inside it (points
  outside every box are dropped); pre-RL answers give one points-only set.
* :data:`ANSWER_RULES` -- which imperfect answers still give a mask (``complete``: the
  official reward's, the training default; ``well_formed``; ``fallback``: the official
  evaluation's, the evaluation default), decided here and nowhere else.
* :func:`segment_batch` -- masks for a batch, each distinct image encoded ONCE; the union over
  an answer's boxes.

Parsed answers' coordinates are in the answer's *frame*; they are rescaled to the image that is
set (identity when the image is the frame image, as in training, where rewards segment the
frame-resized image).
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import numpy as np

from seg_r1.answer import ParsedAnswer
from seg_r1.frame import frame_to_image
from seg_r1.segmenters.base import BaseSegmenter, PromptSet, Segmenter, check_image, image_key

#: How an answer becomes prompts: which imperfect answers still give a mask.
#:
#: ``"complete"`` -- a mask only from a complete answer: at least one valid box AND points
#: and labels that parse with matching counts (at least one point). The official GRPO reward's
#: rule, and the training default (:data:`DEFAULT_TRAIN_ANSWER_RULE`): an answer without
#: points scores 0, so a policy cannot learn to drop them.
#: ``"well_formed"`` -- also a box-only answer with no points/labels at all; an internally
#: inconsistent answer (count mismatch, malformed points) gives no mask
#: (:attr:`~seg_r1.answer.ParsedAnswer.ok`). The lenient training rule, and the strict
#: evaluation switch.
#: ``"fallback"`` -- the official evaluation scripts' salvage (the evaluation default,
#: :data:`DEFAULT_EVAL_ANSWER_RULE`, so numbers compare with the paper's): boxes with
#: unusable points/labels give a box-only mask; points and labels without a valid box give
#: a points-only mask; nothing usable gives an empty mask.
#:
#: Pre-RL (``"points"`` mode) answers need points and matching labels under every rule.
ANSWER_RULES: tuple[str, ...] = ("complete", "well_formed", "fallback")
DEFAULT_TRAIN_ANSWER_RULE = "complete"
DEFAULT_EVAL_ANSWER_RULE = "fallback"


def check_answer_rule(rule: str) -> str:
    """``rule`` if it is one of :data:`ANSWER_RULES`, else ``ValueError`` naming them."""
    if rule not in ANSWER_RULES:
        raise ValueError(f"answer rule must be one of {ANSWER_RULES}, got {rule!r}")
    return rule


def answer_usable(answer: ParsedAnswer, rule: str = "well_formed") -> bool:
    """Whether ``answer`` gives a (possibly empty-looking) mask under ``rule``
    (:data:`ANSWER_RULES`). Unusable answers get an all-``False`` mask and reward 0."""
    check_answer_rule(rule)
    if answer.mode == "points":
        return answer.ok
    if rule == "complete":
        return answer.has_box and answer.labels_match and answer.num_points > 0
    if rule == "well_formed":
        return answer.ok
    return answer.has_box or (answer.labels_match and answer.num_points > 0)


def unusable_reason(answer: ParsedAnswer, rule: str = "well_formed") -> str | None:
    """Why ``rule`` gives ``answer`` no mask (``None`` when it is usable), for logs."""
    if answer_usable(answer, rule):
        return None
    if answer.mode == "points" or rule == "fallback":
        return answer.error or "no usable prompt"
    if not answer.has_box:
        return "no valid box"
    if not answer.has_points and not answer.has_labels:
        return "no points and labels (the 'complete' rule needs them)"
    return "points and labels do not parse with matching counts"


def prompts_from_answer(
    answer: ParsedAnswer, image_hw: tuple[int, int] | None = None, rule: str = "well_formed"
) -> list[PromptSet]:
    """SPEC §3: the prompt sets an answer turns into (empty when ``rule`` rejects it).

    ``"full"`` mode: one prompt set per box, holding the box and only the points inside it
    (``x1 <= x <= x2`` and ``y1 <= y <= y2``, in the frame) with their labels; points outside
    every box are dropped. Under the ``"fallback"`` rule an answer without a valid box but
    with points and labels becomes one points-only set (the official evaluation's), and one
    whose points/labels are unusable keeps its boxes alone. ``"points"`` mode (pre-RL): one
    prompt set with all points and labels and no box. Coordinates are rescaled from the
    answer's frame to ``image_hw`` (``(height, width)``, default: the frame itself).
    """
    if not answer_usable(answer, rule):
        return []
    hw = answer.frame_size if image_hw is None else image_hw

    def to_image(coords: np.ndarray) -> np.ndarray:
        return frame_to_image(coords, answer.frame_size, hw)

    if answer.mode == "points" or not answer.has_box:
        return [PromptSet(None, to_image(answer.points), answer.labels.copy())]
    sets = []
    # Points are kept only when they parse with matching labels (ParsedAnswer), so a box of
    # an answer with unusable points is decoded box-only.
    x, y = answer.points[:, 0], answer.points[:, 1]
    for box in answer.boxes:
        inside = (x >= box[0]) & (x <= box[2]) & (y >= box[1]) & (y <= box[3])
        sets.append(
            PromptSet(to_image(box), to_image(answer.points[inside]), answer.labels[inside])
        )
    return sets


def masks_from_answer(
    segmenter: Segmenter, answer: ParsedAnswer, rule: str = "well_formed"
) -> np.ndarray:
    """The answer's mask on the segmenter's current image: the union of its prompt sets'
    masks (SPEC §3), ``bool (H, W)``; all ``False`` for an answer ``rule`` rejects."""
    hw = segmenter.image_hw
    if hw is None:
        raise RuntimeError("call segmenter.set_image(image) before masks_from_answer")
    prompts = prompts_from_answer(answer, hw, rule)
    return _union(segmenter.predict_batch(prompts) if prompts else [], hw)


def _union(masks: Sequence[np.ndarray], hw: tuple[int, int]) -> np.ndarray:
    out = np.zeros(hw, dtype=bool)
    for mask in masks:
        out |= mask
    return out


def segment_batch(
    segmenter: Segmenter,
    images: Sequence[np.ndarray],
    answers: Sequence[ParsedAnswer],
    image_keys: Sequence[Hashable] | None = None,
    rule: str = "well_formed",
) -> list[np.ndarray]:
    """Masks for ``answers[i]`` on ``images[i]``, encoding each distinct image ONCE.

    ``rule`` (:data:`ANSWER_RULES`) decides which imperfect answers still give a mask.

    Samples are grouped by ``image_keys`` (default: :func:`image_key`, a content hash, so a
    GRPO group's G copies of one image share one encoder pass even when they are distinct
    array objects). Each group's image is encoded once and all its prompt sets are decoded in
    one :meth:`Segmenter.predict_batch` call; the groups go to the segmenter together
    (``predict_many``: the classical backend runs them in parallel). Images whose answers are
    all unusable are not encoded at all. Returns ``bool (H_i, W_i)`` masks in input order.
    """
    check_answer_rule(rule)
    if len(images) != len(answers):
        raise ValueError(f"{len(images)} images for {len(answers)} answers")
    if image_keys is not None and len(image_keys) != len(images):
        raise ValueError(f"{len(image_keys)} image keys for {len(images)} images")
    if image_keys is None:
        by_id: dict[int, str] = {}
        image_keys = [by_id.setdefault(id(im), image_key(im)) for im in images]
    groups: dict[Hashable, list[int]] = {}
    for index, key in enumerate(image_keys):
        groups.setdefault(key, []).append(index)

    masks: list[np.ndarray | None] = [None] * len(images)
    jobs: list[tuple[np.ndarray, list[PromptSet]]] = []
    owners: list[list[int]] = []  # per job: the answer index of each prompt set
    for indices in groups.values():
        image = check_image(images[indices[0]])
        hw = (int(image.shape[0]), int(image.shape[1]))
        owner: list[int] = []
        prompts: list[PromptSet] = []
        for index in indices:
            sets = prompts_from_answer(answers[index], hw, rule)
            owner += [index] * len(sets)
            prompts += sets
            masks[index] = np.zeros(hw, dtype=bool)  # stays empty without prompt sets
        if prompts:  # an image whose answers are all unusable is not encoded
            jobs.append((image, prompts))
            owners.append(owner)
    for owner, predicted in zip(owners, _predict_many(segmenter, jobs)):
        for index, mask in zip(owner, predicted):
            masks[index] |= mask
    return masks  # type: ignore[return-value]


def _predict_many(
    segmenter: Segmenter, jobs: Sequence[tuple[np.ndarray, list[PromptSet]]]
) -> list[list[np.ndarray]]:
    """``segmenter.predict_many(jobs)`` (in parallel where the backend can), or the
    per-image loop for segmenters without it (the :class:`Segmenter` protocol does not
    require it)."""
    many = getattr(segmenter, "predict_many", None)
    if many is not None:
        return many(jobs)
    return BaseSegmenter.predict_many(segmenter, jobs)  # type: ignore[arg-type]
