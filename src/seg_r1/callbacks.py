"""Training callbacks: sample visualisations of the GRPO rollouts, a held-out IoU curve.

:class:`SampleVisualizer` (a ``transformers.TrainerCallback``) saves, every
``visualization_steps`` steps, one group of the latest rollout batch: the image with its ground
truth, then each completion's mask with its boxes and points, captioned with its IoU
(``<output_dir>/visualizations/step_XXXXXX.png``). It reads the batch the trainer leaves in a
:class:`RolloutLog` (the trainer itself draws nothing).

:class:`HeldOutIoU` scores the policy being trained, every ``every`` steps, on a fixed set of
held-out images: greedy answers through :class:`seg_r1.inference.SegR1Pipeline`, mean mask IoU
against the ground truth, added to ``state.log_history`` as ``heldout/iou`` (so it is saved
with ``trainer_state.json`` and survives a resume). The quickstart draws it in ``curves.png``.
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


#: The ``state.log_history`` key of :class:`HeldOutIoU`'s figures.
HELDOUT_IOU_KEY = "heldout/iou"


class HeldOutIoU(TrainerCallback):
    """Greedy held-out IoU of the policy being trained, before the first step and every
    ``every`` optimizer steps (and after the last one): ``pipeline_kwargs`` build a
    :class:`seg_r1.inference.SegR1Pipeline` around the trainer's model and processor
    (``frame_size``, ``task``, ``max_new_tokens``, ``batch_size``, ...; the segmenter is
    ``segmenter``). The model is put in eval mode for the pass and back afterwards.

    Each figure goes to ``state.log_history`` as ``{"step": s, "heldout/iou": iou}`` and to
    :attr:`history` as ``(step, iou)``."""

    def __init__(
        self,
        images: Sequence[np.ndarray],
        gts: Sequence[np.ndarray],
        segmenter: Any,
        every: int,
        **pipeline_kwargs: Any,
    ) -> None:
        if every < 1:
            raise ValueError(f"HeldOutIoU: every must be >= 1, got {every}")
        if len(images) != len(gts) or not images:
            raise ValueError(f"HeldOutIoU: {len(images)} images and {len(gts)} masks")
        self.images, self.gts = list(images), list(gts)
        self.segmenter = segmenter
        self.every = int(every)
        self.pipeline_kwargs = pipeline_kwargs
        self.history: list[tuple[int, float]] = []

    def score(self, model: Any, processor: Any) -> float:
        """Mean IoU of ``model``'s greedy answers on the held-out images."""
        from seg_r1.inference import SegR1Pipeline

        was_training = model.training
        model.eval()
        try:
            pipeline = SegR1Pipeline(model, processor, self.segmenter, **self.pipeline_kwargs)
            predictions = pipeline.predict(self.images)
        finally:
            model.train(was_training)
        return float(np.mean([mask_iou(p.mask, g) for p, g in zip(predictions, self.gts)]))

    def _record(self, state: Any, model: Any, processor: Any) -> None:
        step = int(state.global_step)
        if any(s == step for s, _ in self.history) or any(
            e.get("step") == step and HELDOUT_IOU_KEY in e for e in state.log_history
        ):
            return  # already scored (a resumed run keeps its earlier figures)
        iou = self.score(model, processor)
        self.history.append((step, iou))
        state.log_history.append({"step": step, HELDOUT_IOU_KEY: round(iou, 4)})
        logger.info("step %d: held-out IoU %.4f (%d images)", step, iou, len(self.images))

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._record(state, kwargs["model"], kwargs["processing_class"])

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if state.global_step % self.every == 0 or state.global_step >= state.max_steps:
            self._record(state, kwargs["model"], kwargs["processing_class"])
