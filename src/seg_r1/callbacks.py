"""Training callbacks: sample visualisations of the GRPO rollouts.

:class:`SampleVisualizer` (a ``transformers.TrainerCallback``) saves, every
``visualization_steps`` steps, one group of the latest rollout batch: the image with its ground
truth, then each completion's mask with its boxes and points, captioned with its IoU
(``<output_dir>/visualizations/step_XXXXXX.png``). It reads the batch the trainer leaves in a
:class:`RolloutLog` (the trainer itself draws nothing).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from transformers import TrainerCallback

from seg_r1.answer import ParsedAnswer
from seg_r1.data.io import ground_truth, image_array
from seg_r1.frame import resize_mask, resize_to_frame
from seg_r1.mask_computer import SegmentedBatch
from seg_r1.metrics import mask_iou
from seg_r1.visualize import GT_COLOR, add_caption, draw_answer, hstack, overlay_mask, save_png

logger = logging.getLogger(__name__)


@dataclass
class Rollout:
    """One rollout batch as this process saw it: the dataset rows, their images, the parsed
    answers and masks (frame), and the frame size."""

    inputs: list[dict[str, Any]]
    images: list[Any]
    batch: SegmentedBatch
    frame_size: tuple[int, int]


class RolloutLog:
    """The latest :class:`Rollout` (written by the trainer, read by callbacks)."""

    def __init__(self) -> None:
        self.latest: Rollout | None = None


class SampleVisualizer(TrainerCallback):
    """Every ``every`` optimizer steps (main process only), save one group of the latest
    rollout as a PNG under ``<output_dir>/visualizations/`` (:func:`save_visualization`)."""

    def __init__(self, log: RolloutLog, every: int) -> None:
        self.log = log
        self.every = int(every)

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        rollout = self.log.latest
        step = state.global_step
        if (
            not self.every
            or step % self.every
            or rollout is None
            or not state.is_world_process_zero
        ):
            return
        # This process's completions of the first example (a group may span processes).
        first = rollout.inputs[0].get("id")
        group = [i for i, ex in enumerate(rollout.inputs) if ex.get("id") == first] or [0]
        out = Path(args.output_dir) / "visualizations" / f"step_{step:06d}.png"
        batch = rollout.batch
        save_visualization(
            out,
            rollout.inputs[0],
            rollout.images[0],
            [batch.answers[i] for i in group],
            [batch.masks[i] for i in group],
            rollout.frame_size,
            [batch.usable[i] for i in group],
        )
        logger.info("saved %s", out)


def save_visualization(
    path: Path,
    example: dict[str, Any],
    image: Any,
    answers: Sequence[ParsedAnswer],
    masks: Sequence[np.ndarray],
    frame_size: tuple[int, int],
    usable: Sequence[bool] | None = None,
) -> None:
    """Save one row of panels in the frame: the image with the ground truth, then each
    completion's mask with its boxes and points (colours of :mod:`seg_r1.visualize`), captioned
    with the completion's IoU.

    ``answers`` are parsed answers (frame coordinates), ``masks`` the matching ``bool`` frame
    masks, ``image``/``example`` the row's image and columns (its ground truth is read like the
    rewards read it); ``usable`` says which answers the reward's answer rule scored
    (default: :attr:`~seg_r1.answer.ParsedAnswer.ok`).
    """
    frame = resize_to_frame(image_array(image), frame_size)
    row = {k: example[k] for k in ("task", "annotation", "id") if k in example}
    gt = resize_mask(ground_truth(example.get("mask"), row), frame_size)
    panels = [add_caption(overlay_mask(frame, gt, GT_COLOR), ["ground truth"])]
    if usable is None:
        usable = [a.ok for a in answers]
    for answer, mask, ok in zip(answers, masks, usable):
        caption = f"IoU {mask_iou(mask, gt):.2f}" if ok else "unusable"
        panels.append(add_caption(draw_answer(overlay_mask(frame, mask), answer), [caption]))
    save_png(path, hstack(panels))
