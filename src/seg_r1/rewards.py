"""GRPO reward functions (SPEC §4) and their registry.

Every reward has TRL's signature ``fn(completions, **kwargs) -> list[float]``: ``kwargs``
carry the dataset columns (``image``, ``mask``, ...) repeated per completion, plus TRL's
``trainer_state``, ``log_metric(name, value)`` and ``log_extra(column, values)`` (absent in
direct calls; both are optional here). Completions are plain strings or conversational
(``[{"role": "assistant", "content": "..."}]``, content possibly a list of ``{"type": "text"}``
parts).

=====================  ==========================================================  =========
YAML name              reward                                                      needs
=====================  ==========================================================  =========
``format``             1.0 iff think + >=1 valid box + points + matching labels     --
``prerl_format``       1.0 iff points and labels parse with matching counts         --
``segmentation``       ``0.7 IoU + 0.3 clip(S-measure(alpha=0.5), 0, 1)``; 0 if     segmenter
                       the answer is unusable (boxes + points inside each box)
``prerl_segmentation`` the same with a points-only mask                              segmenter
=====================  ==========================================================  =========

The segmentation rewards are computed in the training *frame* (``frame_size``, default 768):
the image is resized to the frame (:func:`seg_r1.frame.resize_to_frame`), segmented with
the answer's prompts (frame pixels), and compared with the ground truth resized to the frame
with nearest-neighbour interpolation. Masks are computed ONCE per batch by a shared
:class:`MaskComputer` (one encoder pass per distinct image, a small cache keyed by the
completion texts and image contents), so any number of mask-based rewards costs one
segmentation pass.

Ground truth is binarised by the package's one rule, :func:`seg_r1.metrics.binarize_gt`:
``> 128`` on the 0-255 scale (the toolbox's rule, so the reward's S-measure is the evaluation's;
the official reward's ``> 127`` differs only on GT pixels of exactly 128). A mask given on the
0/1 scale (a ``bool`` array, or values whose maximum is <= 1) is read as 0/1 (``> 0.5``)
instead: the official code's ``> 128`` on a 0/1 GT made every GT empty, and its S-measure
term degenerate to ``1 - foreground fraction`` (see ``tests/test_rewards.py``).

Expected failures -- answers that do not parse -- score 0 and are counted and logged
(``<name>/parse_failures``, ``<name>/parse_failure_rate``); anything unexpected (a missing
column, an unreadable image) raises.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from seg_r1.answer import Mode, parse_answer
from seg_r1.data.io import ground_truth
from seg_r1.frame import resize_mask
from seg_r1.mask_computer import (
    DEFAULT_FRAME_SIZE,
    MaskComputer,
    completion_text,
)
from seg_r1.metrics import mask_iou, s_measure
from seg_r1.segmenters import (
    DEFAULT_TRAIN_ANSWER_RULE,
    Segmenter,
    build_segmenter,
    unusable_reason,
)

logger = logging.getLogger(__name__)

#: SPEC §4: segmentation = IOU_WEIGHT * IoU + S_MEASURE_WEIGHT * clip(S-measure, 0, 1).
IOU_WEIGHT = 0.7
S_MEASURE_WEIGHT = 0.3
#: S-measure's object/region balance (0.5 in the paper and the COD/SOD toolbox).
S_MEASURE_ALPHA = 0.5

LogMetric = Callable[[str, float], None]
LogExtra = Callable[[str, list], None]


# --------------------------------------------------------------------------- inputs


def _column(kwargs: Mapping[str, Any], name: str, n: int) -> list[Any]:
    if name not in kwargs:
        raise KeyError(
            f"reward needs the dataset column {name!r}; got columns {sorted(kwargs)}. "
            "Keep it in the dataset passed to the trainer (remove_unused_columns=False)."
        )
    values = list(kwargs[name])
    if len(values) != n:
        raise ValueError(f"column {name!r} has {len(values)} values for {n} completions")
    return values


def row_image(example: Mapping[str, Any]) -> Any:
    """The image of one dataset row: its ``image`` column, or the first of its ``images``."""
    if "image" in example:
        return example["image"]
    images = example.get("images")
    if images:
        return images[0]
    raise KeyError(
        "mask-based rewards need an 'image' (or 'images') column in the training dataset; "
        f"got columns {sorted(example)}"
    )


def _images(kwargs: Mapping[str, Any], n: int) -> list[Any]:
    """The ``image`` column, or the first image of each sample's ``images`` list."""
    if "image" not in kwargs and "images" in kwargs:
        values = _column(kwargs, "images", n)
        return [imgs[0] if isinstance(imgs, (list, tuple)) else imgs for imgs in values]
    return _column(kwargs, "image", n)


# --------------------------------------------------------------------------- rewards


def _log(log_metric: LogMetric | None, name: str, value: float) -> None:
    if log_metric is not None:
        log_metric(name, float(value))


def _format(
    completions: Sequence[Any],
    mode: Mode,
    name: str,
    frame_size: int | tuple[int, int],
    log_metric: LogMetric | None,
    log_extra: LogExtra | None,
    coordinates: str = "frame",
) -> list[float]:
    answers = [parse_answer(completion_text(c), frame_size, mode, coordinates) for c in completions]
    rewards = [1.0 if a.format_ok else 0.0 for a in answers]
    failures = len(answers) - int(sum(rewards))
    _log(log_metric, f"{name}/failures", failures)
    _log(log_metric, f"{name}/failure_rate", failures / max(len(answers), 1))
    if log_extra is not None:
        log_extra(f"{name}_error", [a.error for a in answers])
    return rewards


def format_reward(
    completions: Sequence[Any],
    frame_size: int | tuple[int, int] = DEFAULT_FRAME_SIZE,
    log_metric: LogMetric | None = None,
    log_extra: LogExtra | None = None,
    coordinates: str = "frame",
    **kwargs: Any,
) -> list[float]:
    """RL/SOD format reward (SPEC §4): 1.0 iff the answer has a ``<think>...</think>`` block
    (may be empty), at least one valid box, points, and as many labels as points; else 0.0.
    ``frame_size`` and ``coordinates`` (the answer's convention) matter only for box validity
    (a box outside the frame is not valid)."""
    return _format(completions, "full", "format", frame_size, log_metric, log_extra, coordinates)


def prerl_format_reward(
    completions: Sequence[Any],
    frame_size: int | tuple[int, int] = DEFAULT_FRAME_SIZE,
    log_metric: LogMetric | None = None,
    log_extra: LogExtra | None = None,
    coordinates: str = "frame",
    **kwargs: Any,
) -> list[float]:
    """Pre-RL format reward (SPEC §4): 1.0 iff points and labels parse with matching counts."""
    return _format(
        completions, "points", "prerl_format", frame_size, log_metric, log_extra, coordinates
    )


def segmentation_score(pred: np.ndarray, gt: np.ndarray) -> tuple[float, float, float]:
    """``(reward, IoU, S-measure)`` of a predicted mask against the GT (both ``bool``, same
    shape): ``reward = 0.7 IoU + 0.3 clip(S-measure(alpha=0.5), 0, 1)``."""
    iou = mask_iou(pred, gt)
    sm = s_measure(pred, gt, alpha=S_MEASURE_ALPHA)
    return IOU_WEIGHT * iou + S_MEASURE_WEIGHT * float(np.clip(sm, 0.0, 1.0)), iou, sm


def _segmentation(
    completions: Sequence[Any],
    mode: Mode,
    name: str,
    mask_computer: MaskComputer | None,
    log_metric: LogMetric | None,
    log_extra: LogExtra | None,
    kwargs: Mapping[str, Any],
) -> list[float]:
    if mask_computer is None:
        raise ValueError(
            f"the {name} reward needs a segmenter: build it with "
            f"get_reward_funcs([{name!r}], segmenter=...) or pass mask_computer=MaskComputer(...)"
        )
    n = len(completions)
    images = _images(kwargs, n)
    gts = _column(kwargs, "mask", n)
    batch = mask_computer(completions, images, mode)
    frame = mask_computer.frame_size
    rewards, ious, sms = [], [], []
    gt_cache: dict[int, np.ndarray] = {}
    for index, (usable, pred) in enumerate(zip(batch.usable, batch.masks)):
        if not usable:
            rewards.append(0.0)
            continue
        value = gts[index]
        if id(value) not in gt_cache or value is None:
            row = {k: kwargs[k][index] for k in ("task", "annotation", "id") if k in kwargs}
            gt_cache[id(value)] = resize_mask(ground_truth(value, row), frame)
        reward, iou, sm = segmentation_score(pred, gt_cache[id(value)])
        rewards.append(float(reward))
        ious.append(iou)
        sms.append(sm)
    usable = [a for a, ok in zip(batch.answers, batch.usable) if ok]
    failures = n - len(usable)
    _log(log_metric, f"{name}/parse_failures", failures)
    _log(log_metric, f"{name}/parse_failure_rate", failures / max(n, 1))
    if usable:
        _log(log_metric, f"{name}/iou", float(np.mean(ious)))
        _log(log_metric, f"{name}/s_measure", float(np.mean(sms)))
        _log(log_metric, f"{name}/boxes_per_answer", float(np.mean([a.num_boxes for a in usable])))
        _log(
            log_metric, f"{name}/points_per_answer", float(np.mean([a.num_points for a in usable]))
        )
    if failures:
        logger.debug(
            "%s: %d/%d answers unusable: %s",
            name,
            failures,
            n,
            [
                unusable_reason(a, mask_computer.answer_rule)
                for a, ok in zip(batch.answers, batch.usable)
                if not ok
            ],
        )
    if log_extra is not None:
        log_extra(
            f"{name}_parse_error",
            [
                None if ok else unusable_reason(a, mask_computer.answer_rule)
                for a, ok in zip(batch.answers, batch.usable)
            ],
        )
    return rewards


def segmentation_reward(
    completions: Sequence[Any],
    mask_computer: MaskComputer | None = None,
    log_metric: LogMetric | None = None,
    log_extra: LogExtra | None = None,
    **kwargs: Any,
) -> list[float]:
    """RL/SOD segmentation reward (SPEC §4): ``0.7 IoU + 0.3 clip(S-measure, 0, 1)`` between
    the answer's mask (union over its boxes, with the points inside each box) and the ground
    truth, in the frame; 0.0 when the answer is unusable. Needs ``image`` and ``mask`` columns.
    Logs ``segmentation/{iou, s_measure, parse_failures, parse_failure_rate,
    boxes_per_answer, points_per_answer}``."""
    return _segmentation(
        completions, "full", "segmentation", mask_computer, log_metric, log_extra, kwargs
    )


def prerl_segmentation_reward(
    completions: Sequence[Any],
    mask_computer: MaskComputer | None = None,
    log_metric: LogMetric | None = None,
    log_extra: LogExtra | None = None,
    **kwargs: Any,
) -> list[float]:
    """Pre-RL segmentation reward: the same formula with a points-only mask (no box)."""
    return _segmentation(
        completions, "points", "prerl_segmentation", mask_computer, log_metric, log_extra, kwargs
    )


# --------------------------------------------------------------------------- registry


@dataclass(frozen=True)
class RewardSpec:
    """A registry entry: the reward function and what it needs.

    Attributes:
        func: TRL's signature, ``func(completions, **columns) -> list[float]``.
        answer_mode: the grammar it parses answers with (``"full"`` or ``"points"``); a
            stage's rewards must agree with the stage's (:mod:`seg_r1.tasks`).
        needs_masks: it scores masks, so a segmenter (and a shared :class:`MaskComputer`) is
            needed.
    """

    func: Callable[..., list[float]]
    answer_mode: Mode
    needs_masks: bool


#: YAML name -> reward (the only place that says what each reward needs).
REWARDS: dict[str, RewardSpec] = {
    "format": RewardSpec(format_reward, "full", needs_masks=False),
    "prerl_format": RewardSpec(prerl_format_reward, "points", needs_masks=False),
    "segmentation": RewardSpec(segmentation_reward, "full", needs_masks=True),
    "prerl_segmentation": RewardSpec(prerl_segmentation_reward, "points", needs_masks=True),
}
#: Views of :data:`REWARDS`: name -> function, and the names that need masks.
REWARD_FUNCS: dict[str, Callable[..., list[float]]] = {n: r.func for n, r in REWARDS.items()}
MASK_REWARDS: frozenset[str] = frozenset(n for n, r in REWARDS.items() if r.needs_masks)


def needs_masks(names: Sequence[Any]) -> bool:
    """Whether any registry reward among ``names`` scores masks (other entries -- callables,
    dotted paths -- are the caller's own and need nothing from us)."""
    return any(isinstance(n, str) and n in MASK_REWARDS for n in names)


def answer_mode_of(names: Sequence[Any]) -> Mode | None:
    """The answer grammar the registry rewards among ``names`` parse with (``None`` when
    there are none).

    Raises:
        ValueError: they disagree (a pre-RL reward mixed with a full-answer one).
    """
    modes = {REWARDS[n].answer_mode for n in names if isinstance(n, str) and n in REWARDS}
    if len(modes) > 1:
        raise ValueError(
            f"rewards {[n for n in names if n in REWARDS]} parse answers in different modes "
            f"{sorted(modes)}: use the prerl_* rewards together, or the full-answer ones"
        )
    return modes.pop() if modes else None


def get_reward_funcs(
    names: Sequence[str],
    segmenter: Segmenter | str | None = None,
    frame_size: int | tuple[int, int] = DEFAULT_FRAME_SIZE,
    segmenter_kwargs: Mapping[str, Any] | None = None,
    mask_computer: MaskComputer | None = None,
    answer_rule: str = DEFAULT_TRAIN_ANSWER_RULE,
    coordinates: str = "frame",
) -> list[Callable[..., list[float]]]:
    """The reward functions named in a recipe, ready for ``GRPOTrainer(reward_funcs=...)``.

    Each returned function has ``__name__`` = its YAML name (TRL logs ``rewards/<name>``).
    All mask-based rewards share one :class:`MaskComputer`, so a step segments once.

    Args:
        names: YAML names, keys of :data:`REWARD_FUNCS`.
        segmenter: a :class:`~seg_r1.segmenters.Segmenter`, or a backend name (``"sam2"``,
            ``"classical"``) built with ``segmenter_kwargs`` by
            :func:`~seg_r1.segmenters.build_segmenter`. Needed by mask-based rewards.
        frame_size: the training frame (SPEC §2: 768).
        segmenter_kwargs: backend arguments when ``segmenter`` is a name.
        mask_computer: share an existing one instead of building one from ``segmenter``
            (its own ``answer_rule`` applies then).
        answer_rule: which answers the segmentation rewards score
            (:data:`seg_r1.segmenters.ANSWER_RULES`): ``"complete"`` (default, the official
            reward: 0 unless box, points and labels parse with matching counts) or
            ``"well_formed"`` (lenient: box-only answers are scored too).
        coordinates: the convention the answers are written in (:mod:`seg_r1.families`);
            a shared ``mask_computer`` brings its own.

    Raises:
        ValueError: an unknown name, or a mask-based reward without a segmenter.
    """
    unknown = [n for n in names if n not in REWARDS]
    if unknown:
        raise ValueError(f"unknown reward(s) {unknown}; known: {sorted(REWARDS)}")
    if needs_masks(names) and mask_computer is None:
        if segmenter is None:
            raise ValueError(
                f"rewards {sorted(MASK_REWARDS & set(names))} need a segmenter: pass "
                "segmenter='sam2' (with segmenter_kwargs config/checkpoint) or 'classical'"
            )
        if isinstance(segmenter, str):
            segmenter = build_segmenter(segmenter, **dict(segmenter_kwargs or {}))
        mask_computer = MaskComputer(
            segmenter, frame_size, answer_rule=answer_rule, coordinates=coordinates
        )
    if mask_computer is not None:
        coordinates = mask_computer.coordinates
    funcs = []
    for name in names:
        base = REWARDS[name].func
        if REWARDS[name].needs_masks:
            func = functools.partial(base, mask_computer=mask_computer)
        else:
            func = functools.partial(base, frame_size=frame_size, coordinates=coordinates)
        funcs.append(_named(func, name))
    return funcs


def _named(func: Callable[..., list[float]], name: str) -> Callable[..., list[float]]:
    def reward(completions: Sequence[Any], **kwargs: Any) -> list[float]:
        return func(completions, **kwargs)

    reward.__name__ = reward.__qualname__ = name
    reward.__doc__ = func.func.__doc__ if isinstance(func, functools.partial) else func.__doc__
    return reward
