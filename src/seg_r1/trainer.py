"""``SegR1GRPOTrainer``: TRL's ``GRPOTrainer`` plus what Seg-R1 needs, nothing else.

Stock TRL 1.16 already does everything GRPO needs for a vision-language policy: it fills the
image placeholders of conversational prompts from the ``image`` column, generates (with
``transformers`` or vLLM, colocated or served), passes every dataset column to the reward
functions together with ``log_metric``/``log_extra``, normalises rewards per group, computes
the KL to the reference model and the loss. This subclass adds:

* it **holds the segmenter** (SAM2, or the classical stand-in) inside one
  :class:`seg_r1.rewards.MaskComputer` that every mask-based reward shares;
* it **segments each rollout batch once** before the reward functions run: every distinct
  image is encoded once, every completion's prompts decoded, and the reward functions then find
  the masks in the ``MaskComputer``'s cache (no reward function segments again);
* it **logs mask-prompt statistics** over all completions (boxes and points per answer,
  parse-failure rate, predicted mask area) and the segmenter's cost (seconds, encoder passes)
  through TRL's metric pipeline (averaged over processes like TRL's own metrics). The reward
  components (IoU, S-measure, ...) are logged by the reward functions themselves;
* optionally, it **saves sample visualisations** (one group: image, ground truth, each
  completion's mask with its boxes and points) every ``visualization_steps`` steps.

Nothing depends on how completions are generated, so ``use_vllm`` (colocate or server), PEFT,
gradient checkpointing, bf16 and DeepSpeed work as in TRL. Each override names the upstream
method and version it follows.

Both trainers here (:class:`SegR1GRPOTrainer`, and :class:`SegR1SFTTrainer`, which is TRL's
``SFTTrainer`` with only this change) also fix resuming a Qwen2.5-VL run from a checkpoint
under transformers 5: checkpoints are saved in the checkpoint's original key layout
(``visual.*``, ``model.layers.*``) but ``Trainer._load_from_checkpoint`` loads them into the
model's layout (``model.visual.*``, ``model.language_model.*``) without renaming, so the weights
silently stay as they were (huggingface/transformers#43701). See :class:`ResumeKeyFix`.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from trl import GRPOTrainer, SFTTrainer

from seg_r1.answer import ParsedAnswer
from seg_r1.rewards import (
    DEFAULT_FRAME_SIZE,
    MASK_REWARDS,
    REWARD_FUNCS,
    MaskComputer,
    SegmentedBatch,
    get_reward_funcs,
    ground_truth,
)
from seg_r1.segmenter import DEFAULT_TRAIN_ANSWER_RULE, Segmenter, resize_mask

logger = logging.getLogger(__name__)


class ResumeKeyFix:
    """Mixin for ``transformers.Trainer`` subclasses: resume loads the weights it saved.

    ``_load_from_checkpoint`` follows ``transformers==5.24`` ``Trainer._load_from_checkpoint``
    and changes one case: a full (not PEFT, not DeepSpeed/FSDP -- those load through their own
    engines) safetensors checkpoint, single-file or sharded, has its keys renamed with the
    model's own conversion mapping (the renamings ``from_pretrained`` applies) before
    ``load_state_dict``; any key still missing (other than tied weights) or unexpected raises
    instead of being logged and ignored (huggingface/transformers#43701).
    """

    def _load_from_checkpoint(self, resume_from_checkpoint: str, model: Any = None) -> None:
        from transformers.utils import SAFE_WEIGHTS_INDEX_NAME, SAFE_WEIGHTS_NAME

        model = self.model if model is None else model
        folder = Path(resume_from_checkpoint)
        if (folder / SAFE_WEIGHTS_NAME).is_file():
            files = [folder / SAFE_WEIGHTS_NAME]
        elif (folder / SAFE_WEIGHTS_INDEX_NAME).is_file():
            index = json.loads((folder / SAFE_WEIGHTS_INDEX_NAME).read_text())
            files = [folder / name for name in sorted(set(index["weight_map"].values()))]
        else:
            files = []
        special = self.is_deepspeed_enabled or self.is_fsdp_enabled or hasattr(model, "peft_config")
        if special or not files:
            super()._load_from_checkpoint(resume_from_checkpoint, model)  # type: ignore[misc]
            return
        load_converted_state_dict(model, files)
        logger.info("loaded the model weights of %s", folder)


def load_converted_state_dict(model: torch.nn.Module, files: Sequence[Path]) -> None:
    """Load safetensors ``files`` saved by ``save_pretrained`` into ``model``, renaming keys
    from the checkpoint layout to the model's (what ``from_pretrained`` does).

    Raises:
        RuntimeError: keys still missing (tied weights excepted) or unexpected after renaming.
    """
    import safetensors.torch
    from transformers.conversion_mapping import get_model_conversion_mapping
    from transformers.core_model_loading import WeightConverter, WeightRenaming, rename_source_key

    transforms = getattr(model, "_weight_conversions", None) or get_model_conversion_mapping(model)
    renamings = [t for t in transforms if isinstance(t, WeightRenaming)]
    converters = [t for t in transforms if isinstance(t, WeightConverter)]
    expected = model.state_dict()
    loaded: set[str] = set()
    unexpected: list[str] = []
    for file in files:
        state = safetensors.torch.load_file(str(file), device="cpu")
        renamed = {}
        for key, tensor in state.items():
            new_key = key if key in expected else rename_source_key(key, renamings, converters)[0]
            if new_key in expected:
                renamed[new_key] = tensor
            else:
                unexpected.append(key)
        model.load_state_dict(renamed, strict=False)
        loaded.update(renamed)
    pointers = {expected[k].data_ptr() for k in loaded}
    missing = [k for k in expected if k not in loaded and expected[k].data_ptr() not in pointers]
    if missing or unexpected:
        raise RuntimeError(
            f"checkpoint {files[0].parent} does not match the model: missing {missing[:5]}, "
            f"unexpected {unexpected[:5]} (after the model's key renaming)"
        )


def train_and_save(
    trainer: Any,
    checkpoint: str | None,
    processor: Any,
    num_rows: int,
    dataset_name: str,
    tags: Sequence[str],
) -> Any:
    """Train (resuming from ``checkpoint`` when given), log and save the train metrics and
    state, then save the policy WITH its processor (pixel bounds included) to the output
    folder, so that the next stage and the evaluation load exactly what was trained."""
    output_dir = trainer.args.output_dir
    if checkpoint is not None:
        logger.info("resuming from %s", checkpoint)
    result = trainer.train(resume_from_checkpoint=checkpoint)
    metrics = dict(result.metrics, train_samples=num_rows)
    trainer.log_metrics("train", metrics)
    trainer.save_metrics("train", metrics)
    trainer.save_state()
    trainer.save_model(output_dir)
    if trainer.accelerator.is_main_process:
        processor.save_pretrained(output_dir)
        trainer.create_model_card(dataset_name=dataset_name, tags=list(tags))
    logger.info("saved the policy to %s", output_dir)
    return trainer


class SegR1SFTTrainer(ResumeKeyFix, SFTTrainer):
    """TRL 1.16's ``SFTTrainer`` with :class:`ResumeKeyFix` (nothing else changes)."""


class SegR1GRPOTrainer(ResumeKeyFix, GRPOTrainer):
    """GRPO for Seg-R1 on TRL 1.16 (see the module doc for what it adds).

    Args:
        model, args, train_dataset, processing_class, peft_config, ...: as
            :class:`trl.GRPOTrainer` (keyword arguments are passed through).
        reward_funcs: reward callables, or names of :data:`seg_r1.rewards.REWARD_FUNCS`
            (``"format"``, ``"segmentation"``, ``"prerl_format"``, ``"prerl_segmentation"``),
            which are built here sharing this trainer's :class:`~seg_r1.rewards.MaskComputer`.
            Other strings keep TRL's meaning (a reward-model id).
        segmenter: the promptable segmenter of the mask-based rewards (built once per
            process, e.g. by :func:`seg_r1.segmenter.build_segmenter`).
        mask_computer: an existing ``MaskComputer`` to share instead (e.g. the one the reward
            callables were built with); overrides ``segmenter``.
        frame_size: the training frame (SPEC §2: 768); must match the dataset's image size.
        answer_mode: ``"full"`` (RL/SOD) or ``"points"`` (pre-RL): the grammar the batch is
            parsed with for the statistics and the shared masks; ``None`` = ``"points"`` if
            ``"prerl_segmentation"`` is among the reward names, else ``"full"``.
        answer_rule: which answers the segmentation rewards score when the trainer builds
            the ``MaskComputer`` (:data:`seg_r1.segmenter.ANSWER_RULES`; default
            ``"complete"``, the official reward's).
    """

    def __init__(
        self,
        model: Any,
        reward_funcs: Any = None,
        args: Any = None,
        *,
        segmenter: Segmenter | None = None,
        mask_computer: MaskComputer | None = None,
        frame_size: int = DEFAULT_FRAME_SIZE,
        answer_mode: str | None = None,
        answer_rule: str = DEFAULT_TRAIN_ANSWER_RULE,
        **kwargs: Any,
    ) -> None:
        if mask_computer is None and segmenter is not None:
            mask_computer = MaskComputer(segmenter, frame_size, answer_rule=answer_rule)
        self.mask_computer = mask_computer
        self.frame_size = frame_size
        if answer_mode is None:
            names = reward_funcs if isinstance(reward_funcs, list) else [reward_funcs]
            answer_mode = "points" if "prerl_segmentation" in names else "full"
        self.answer_mode = answer_mode
        self._last_visualized_step = -1
        super().__init__(
            model=model,
            reward_funcs=self._resolve_rewards(reward_funcs, frame_size),
            args=args,
            **kwargs,
        )

    @property
    def segmenter(self) -> Segmenter | None:
        """The segmenter of the mask-based rewards (``None`` when no reward needs masks)."""
        return None if self.mask_computer is None else self.mask_computer.segmenter

    def _resolve_rewards(self, reward_funcs: Any, frame_size: int) -> list[Any]:
        funcs = reward_funcs if isinstance(reward_funcs, list) else [reward_funcs]
        names = [f for f in funcs if isinstance(f, str) and f in REWARD_FUNCS]
        if any(name in MASK_REWARDS for name in names) and self.mask_computer is None:
            raise ValueError(
                f"rewards {sorted(MASK_REWARDS & set(names))} need masks: pass segmenter= "
                "(seg_r1.segmenter.build_segmenter('sam2', ...) or 'classical') to the trainer"
            )
        built = iter(
            get_reward_funcs(names, frame_size=frame_size, mask_computer=self.mask_computer)
            if names
            else []
        )
        return [next(built) if isinstance(f, str) and f in REWARD_FUNCS else f for f in funcs]

    # ------------------------------------------------------------------ overrides

    def _calculate_rewards(
        self,
        inputs: list[dict[str, Any]],
        prompts: list[Any],
        completions: list[Any],
        completion_ids_list: list[list[int]],
    ) -> Any:
        """Follows ``trl==1.16`` ``GRPOTrainer._calculate_rewards``, unchanged, after one added
        step: the batch is parsed and segmented ONCE (each distinct image encoded once) by
        the shared :class:`~seg_r1.rewards.MaskComputer`, whose cache the mask-based reward
        functions then read; mask-prompt statistics, the segmenter's cost and (every
        ``visualization_steps``) a sample visualisation are logged from that batch."""
        if self.mask_computer is not None:
            images = [self._image_of(example) for example in inputs]
            stats = self.mask_computer.segmenter.stats
            encoder_calls = stats.encoder_calls
            start = time.perf_counter()
            batch = self.mask_computer(completions, images, self.answer_mode)
            self._log_metric("segmenter/seconds", time.perf_counter() - start)
            self._log_metric("segmenter/encoder_calls", stats.encoder_calls - encoder_calls)
            self._log_mask_prompt_stats(batch)
            self._maybe_visualize(inputs, images, batch)
        return super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)

    # ------------------------------------------------------------------ helpers

    @staticmethod
    def _image_of(example: dict[str, Any]) -> Any:
        if "image" in example:
            return example["image"]
        images = example.get("images")
        if images:
            return images[0]
        raise KeyError(
            "mask-based rewards need an 'image' (or 'images') column in the training dataset; "
            f"got columns {sorted(example)}"
        )

    def _log_mask_prompt_stats(self, batch: SegmentedBatch) -> None:
        """Per-batch means over ALL completions (unusable answers count as 0 boxes/points)."""
        answers = batch.answers
        n = max(len(answers), 1)
        self._log_metric("mask_prompts/boxes_per_answer", sum(a.num_boxes for a in answers) / n)
        self._log_metric("mask_prompts/points_per_answer", sum(a.num_points for a in answers) / n)
        self._log_metric("mask_prompts/parse_failure_rate", sum(not u for u in batch.usable) / n)
        self._log_metric("mask_prompts/format_ok_rate", sum(a.format_ok for a in answers) / n)
        self._log_metric(
            "mask_prompts/mask_area", float(np.mean([m.mean() for m in batch.masks] or [0.0]))
        )

    def _maybe_visualize(
        self, inputs: list[dict[str, Any]], images: Sequence[Any], batch: SegmentedBatch
    ) -> None:
        every = getattr(self.args, "visualization_steps", 0)
        step = self.state.global_step
        if not every or step % every or step == self._last_visualized_step:
            return
        self._last_visualized_step = step
        if not self.accelerator.is_main_process:
            return
        # This process's completions of the first example (a group may span processes).
        first = inputs[0].get("id")
        group = [i for i, example in enumerate(inputs) if example.get("id") == first] or [0]
        out = Path(self.args.output_dir) / "visualizations" / f"step_{step:06d}.png"
        save_visualization(
            out,
            inputs[0],
            images[0],
            [batch.answers[i] for i in group],
            [batch.masks[i] for i in group],
            self.mask_computer.frame_size,
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
    from seg_r1.metrics import mask_iou
    from seg_r1.rewards import image_array
    from seg_r1.segmenter import resize_to_frame
    from seg_r1.visualize import GT_COLOR, add_caption, draw_answer, hstack, overlay_mask, save_png

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
