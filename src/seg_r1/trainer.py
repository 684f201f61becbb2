"""``SegR1GRPOTrainer``: TRL's ``GRPOTrainer`` plus what Seg-R1 needs, nothing else.

Stock TRL 1.16 already does everything GRPO needs for a vision-language policy: it fills the
image placeholders of conversational prompts from the ``image`` column, generates (with
``transformers`` or vLLM, colocated or served), passes every dataset column to the reward
functions together with ``log_metric``/``log_extra``, normalises rewards per group, computes
the KL to the reference model and the loss. This subclass adds:

* it **holds the segmenter** (SAM2, or the classical stand-in) inside one
  :class:`seg_r1.mask_computer.MaskComputer` that every mask-based reward shares;
* it **segments each rollout batch once** before the reward functions run: every distinct
  image is encoded once, every completion's prompts decoded, and the reward functions then find
  the masks in the ``MaskComputer``'s cache (no reward function segments again);
* it **logs mask-prompt statistics** over all completions (boxes and points per answer,
  parse-failure rate, predicted mask area) and the segmenter's cost (seconds, encoder passes)
  through TRL's metric pipeline (averaged over processes like TRL's own metrics). The reward
  components (IoU, S-measure, ...) are logged by the reward functions themselves;
* it leaves each rollout batch in :attr:`SegR1GRPOTrainer.rollouts`, from which
  :class:`seg_r1.callbacks.SampleVisualizer` saves sample visualisations (one group: image,
  ground truth, each completion's mask with its boxes and points) every
  ``visualization_steps`` steps.

Nothing depends on how completions are generated, so ``use_vllm`` (colocate or server), PEFT,
gradient checkpointing, bf16 and DeepSpeed work as in TRL. Each override names the upstream
method and version it follows.

Both trainers here (:class:`SegR1GRPOTrainer`, and :class:`SegR1SFTTrainer`, which is TRL's
``SFTTrainer`` with only this change) resume a Qwen2.5-VL run with its weights
(:class:`seg_r1.resume.ResumeKeyFix`, huggingface/transformers#43701). Sample visualisations
are a callback (:class:`seg_r1.callbacks.SampleVisualizer`).
"""

from __future__ import annotations

import logging
from typing import Any

from trl import GRPOTrainer, SFTTrainer

from seg_r1.callbacks import Rollout, RolloutLog, SampleVisualizer
from seg_r1.mask_computer import DEFAULT_FRAME_SIZE, MaskComputer
from seg_r1.resume import ResumeKeyFix
from seg_r1.rewards import (
    MASK_REWARDS,
    REWARDS,
    answer_mode_of,
    get_reward_funcs,
    needs_masks,
    row_image,
)
from seg_r1.segmenters import DEFAULT_TRAIN_ANSWER_RULE, Segmenter

logger = logging.getLogger(__name__)


class SegR1SFTTrainer(ResumeKeyFix, SFTTrainer):
    """TRL 1.16's ``SFTTrainer`` with :class:`ResumeKeyFix` (nothing else changes)."""


class SegR1GRPOTrainer(ResumeKeyFix, GRPOTrainer):
    """GRPO for Seg-R1 on TRL 1.16 (see the module doc for what it adds).

    Args:
        model, args, train_dataset, processing_class, peft_config, ...: as
            :class:`trl.GRPOTrainer` (keyword arguments are passed through).
        reward_funcs: reward callables, or names of :data:`seg_r1.rewards.REWARDS`
            (``"format"``, ``"segmentation"``, ``"prerl_format"``, ``"prerl_segmentation"``),
            which are built here sharing this trainer's :class:`~seg_r1.mask_computer.MaskComputer`.
            Other strings keep TRL's meaning (a reward-model id).
        segmenter: the promptable segmenter of the mask-based rewards (built once per
            process, e.g. by :func:`seg_r1.segmenters.build_segmenter`).
        mask_computer: an existing ``MaskComputer`` to share instead (e.g. the one the reward
            callables were built with); overrides ``segmenter``.
        frame_size: the training frame (SPEC §2: 768); must match the dataset's image size.
        answer_mode: ``"full"`` (RL/SOD) or ``"points"`` (pre-RL): the grammar the batch is
            parsed with for the statistics and the shared masks; ``None`` = ``"points"`` if
            the registry rewards parse points-only answers (their :class:`RewardSpec`), else
            ``"full"``.
        answer_rule: which answers the segmentation rewards score when the trainer builds
            the ``MaskComputer`` (:data:`seg_r1.segmenters.ANSWER_RULES`; default
            ``"complete"``, the official reward's).
        coordinates: the convention the policy writes its answers in (``"frame"``, the
            paper's, or ``"relative_1000"``; :func:`seg_r1.families.resolve_coordinates`).
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
        coordinates: str = "frame",
        **kwargs: Any,
    ) -> None:
        if mask_computer is None and segmenter is not None:
            mask_computer = MaskComputer(
                segmenter, frame_size, answer_rule=answer_rule, coordinates=coordinates
            )
        self.mask_computer = mask_computer
        self.frame_size = frame_size
        self.coordinates = mask_computer.coordinates if mask_computer else coordinates
        if answer_mode is None:
            names = reward_funcs if isinstance(reward_funcs, list) else [reward_funcs]
            answer_mode = answer_mode_of(names) or "full"
        self.answer_mode = answer_mode
        self.rollouts = RolloutLog()
        super().__init__(
            model=model,
            reward_funcs=self._resolve_rewards(reward_funcs, frame_size),
            args=args,
            **kwargs,
        )
        every = getattr(self.args, "visualization_steps", 0)
        if every and self.mask_computer is not None:
            self.add_callback(SampleVisualizer(self.rollouts, every))

    @property
    def segmenter(self) -> Segmenter | None:
        """The segmenter of the mask-based rewards (``None`` when no reward needs masks)."""
        return None if self.mask_computer is None else self.mask_computer.segmenter

    def _resolve_rewards(self, reward_funcs: Any, frame_size: int) -> list[Any]:
        funcs = reward_funcs if isinstance(reward_funcs, list) else [reward_funcs]
        names = [f for f in funcs if isinstance(f, str) and f in REWARDS]
        if needs_masks(names) and self.mask_computer is None:
            raise ValueError(
                f"rewards {sorted(MASK_REWARDS & set(names))} need masks: pass segmenter= "
                "(seg_r1.segmenters.build_segmenter('sam2', ...) or 'classical') to the trainer"
            )
        built = iter(
            get_reward_funcs(
                names,
                frame_size=frame_size,
                mask_computer=self.mask_computer,
                coordinates=self.coordinates,
            )
            if names
            else []
        )
        return [next(built) if isinstance(f, str) and f in REWARDS else f for f in funcs]

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
        the shared :class:`~seg_r1.mask_computer.MaskComputer`, whose cache the mask-based reward
        functions then read; the batch's mask-prompt statistics
        (:meth:`~seg_r1.mask_computer.MaskComputer.statistics`) and the segmenter's cost are logged,
        and the batch is left in :attr:`rollouts` for the callbacks (sample visualisation)."""
        if self.mask_computer is not None:
            images = [row_image(example) for example in inputs]
            batch = self.mask_computer(completions, images, self.answer_mode)
            for name, value in self.mask_computer.statistics(batch).items():
                self._log_metric(name, value)
            self.rollouts.latest = Rollout(inputs, images, batch, self.mask_computer.frame_size)
        return super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)
