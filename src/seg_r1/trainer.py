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
* with ``share_prompt_prefix`` it scores each distinct prompt once per batch, the
  completions on top of its KV cache (:mod:`seg_r1.prefix_sharing`: the same log-probs and
  gradients, a fraction of the compute when G completions share a long image prompt);
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
from seg_r1.prefix_sharing import (
    common_prefix_forward,
    prefix_sharing_unsupported,
    shared_prefix_logps,
)
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


#: Forward inputs the shared-prompt paths read (the others must be absent).
_IMAGE_INPUTS = ("pixel_values", "image_grid_thw", "mm_token_type_ids", "num_images")


class PrefixSharing:
    """``share_prompt_prefix`` for both trainers: :meth:`_sharing_backbone` says whether the
    shared-prompt path (:mod:`seg_r1.prefix_sharing`) may score a batch."""

    def _sharing_backbone(
        self, model: Any, rows: int, batch_size: int | None, inputs: dict[str, Any]
    ) -> Any | None:
        """The unwrapped policy when ``share_prompt_prefix`` is on and nothing is against it
        (:func:`~seg_r1.prefix_sharing.prefix_sharing_unsupported`), else ``None`` (each reason
        logged once)."""
        if not getattr(self.args, "share_prompt_prefix", False):
            return None
        backbone = self.accelerator.unwrap_model(model)
        if hasattr(backbone, "get_base_model"):  # PEFT
            backbone = backbone.get_base_model()
        why = prefix_sharing_unsupported(
            backbone,
            processes=self.accelerator.num_processes,
            gradient_checkpointing=bool(self.args.gradient_checkpointing),
            batch_size=batch_size,
            rows=rows,
            pixel_values=inputs.get("pixel_values"),
            image_grid_thw=inputs.get("image_grid_thw"),
            mm_token_type_ids=inputs.get("mm_token_type_ids"),
            other_inputs=[v for k, v in inputs.items() if k not in _IMAGE_INPUTS],
        )
        if why is None:
            return backbone
        refused = self.__dict__.setdefault("_prefix_sharing_refused", set())
        if why not in refused:
            refused.add(why)
            logger.warning("share_prompt_prefix: TRL's full scoring used, because of %s", why)
        return None


class _SharedPrefixCall:
    """The policy as :meth:`SegR1SFTTrainer.compute_loss` hands it to TRL: a fused forward
    (``fused_lm_head=True``) runs the rows' common leading tokens once
    (:func:`~seg_r1.prefix_sharing.common_prefix_forward`); anything else goes to the model."""

    def __init__(self, model: Any, backbone: Any) -> None:
        self.model, self.backbone = model, backbone

    def __getattr__(self, name: str) -> Any:
        return getattr(self.model, name)

    def __call__(self, *args: Any, fused_lm_head: bool = False, **inputs: Any) -> Any:
        if fused_lm_head and not args and "labels" in inputs:
            shared = common_prefix_forward(
                self.model,
                self.backbone,
                inputs["input_ids"],
                inputs["attention_mask"],
                inputs["labels"],
                inputs["pixel_values"],
                inputs["image_grid_thw"],
                inputs["mm_token_type_ids"],
            )
            if shared is not None:
                return shared
        return self.model(*args, fused_lm_head=fused_lm_head, **inputs)


class SegR1SFTTrainer(PrefixSharing, ResumeKeyFix, SFTTrainer):
    """TRL 1.16's ``SFTTrainer`` with :class:`ResumeKeyFix` and, with ``share_prompt_prefix``,
    the rows' common leading tokens run once (:func:`~seg_r1.prefix_sharing.common_prefix_forward`:
    the same loss and gradients)."""

    def compute_loss(
        self,
        model: Any,
        inputs: dict[str, Any],
        return_outputs: bool = False,
        num_items_in_batch: Any = None,
    ) -> Any:
        """Follows ``trl==1.16`` ``SFTTrainer.compute_loss``, unchanged, with the model wrapped
        in :class:`_SharedPrefixCall` when the batch qualifies (the shared path is taken only
        for the fused training forward; metrics and the loss are TRL's)."""
        model_inputs = {k: v for k, v in inputs.items() if k not in ("labels", "attention_mask")}
        model_inputs.pop("input_ids", None)
        model_inputs.pop("use_cache", None)
        if self.model.training and not return_outputs:
            backbone = self._sharing_backbone(
                model, int(inputs["input_ids"].size(0)), None, model_inputs
            )
            if backbone is not None:
                model = _SharedPrefixCall(model, backbone)
        return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)


class SegR1GRPOTrainer(PrefixSharing, ResumeKeyFix, GRPOTrainer):
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

    def _get_per_token_logps_and_entropies(
        self,
        model: Any,
        input_ids: Any,
        attention_mask: Any,
        logits_to_keep: int,
        batch_size: int | None = None,
        compute_entropy: bool = False,
        compute_aux_loss: bool = False,
        **inputs: Any,
    ) -> Any:
        """Follows ``trl==1.16`` ``GRPOTrainer._get_per_token_logps_and_entropies``; with
        ``share_prompt_prefix`` (and :func:`~seg_r1.prefix_sharing.prefix_sharing_unsupported`
        finding nothing against it) each distinct prompt is scored once
        (:func:`~seg_r1.prefix_sharing.shared_prefix_logps`); otherwise TRL's own path."""
        if not compute_aux_loss:
            backbone = self._sharing_backbone(model, int(input_ids.size(0)), batch_size, inputs)
            if backbone is not None:
                logps, entropies = shared_prefix_logps(
                    model,
                    backbone,
                    input_ids,
                    attention_mask,
                    logits_to_keep,
                    inputs["pixel_values"],
                    inputs["image_grid_thw"],
                    inputs["mm_token_type_ids"],
                )
                return logps, (entropies if compute_entropy else None), None
        return super()._get_per_token_logps_and_entropies(
            model,
            input_ids,
            attention_mask,
            logits_to_keep,
            batch_size=batch_size,
            compute_entropy=compute_entropy,
            compute_aux_loss=compute_aux_loss,
            **inputs,
        )
