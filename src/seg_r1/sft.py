"""Supervised fine-tuning of the Seg-R1 policy (the optional SFT stage of SPEC §5), on TRL.

    # FCoT, one node, 8 GPUs, ZeRO-2 (the paper's setting)
    accelerate launch --config_file configs/accelerate/zero2.yaml --num_processes 8 \
        -m seg_r1.sft --config configs/sft.yaml

    # CPU, tiny self-built policy, traces synthesised from synthetic masks
    python -m seg_r1.sft --config configs/tiny/sft.yaml

Two sources of targets:

* ``sft_data`` -- an FCoT-schema set (``problem``, ``image``, ``thinking``, ``solution``,
  optional ``system``): the chat of SPEC §2, target ``thinking + " " + solution``;
* otherwise ``datasets`` -- segmentation data whose masks are turned into answers by
  :func:`seg_r1.training_data.synthesize_trace` (box, interior/exterior points, a templated
  reasoning sentence) under the RL prompt, in the training frame.

The rows are TRL's conversational prompt-completion format, so the loss covers the answer
only (``completion_only_loss``; the official SFT also trained on the prompt -- set
``completion_only_loss: false`` to do the same). ``scripts/sft.sh`` wraps this with
environment variables (docs/training.md).
"""

from __future__ import annotations

import logging
from typing import Any

from seg_r1.configs import SegR1ModelConfig, SegR1SFTConfig, SFTScriptArguments
from seg_r1.data import load_sft_dataset
from seg_r1.families import resolve_coordinates
from seg_r1.launch import (
    LaunchError,
    check_model_path,
    load_processor,
    model_init_kwargs,
    resolve_checkpoint,
    setup_logging,
    train_and_save,
)
from seg_r1.tasks import get_task
from seg_r1.trainer import SegR1SFTTrainer
from seg_r1.training_data import (
    load_segmentation_data,
    sft_dataset_from_fcot,
    sft_dataset_from_masks,
)

logger = logging.getLogger(__name__)


def build_sft_dataset(
    script_args: SFTScriptArguments, coordinates: str = "frame", seed: int = 0
) -> tuple[Any, int]:
    """The lazy SFT view of the configured data and its number of source rows; the targets
    are written in the ``coordinates`` convention (:func:`seg_r1.families.resolve_coordinates`);
    ``seed`` seeds the box jitter (``trace_jitter``)."""

    if script_args.sft_data is not None:
        source = load_sft_dataset(script_args.sft_data, image_root=script_args.sft_image_root)
        if script_args.max_train_samples is not None:
            source = source.select(range(min(script_args.max_train_samples, len(source))))
        return sft_dataset_from_fcot(source, script_args.frame_size, coordinates), len(source)
    source = load_segmentation_data(script_args)
    view = sft_dataset_from_masks(
        source,
        script_args.frame_size,
        script_args.trace_fg_points,
        script_args.trace_bg_points,
        coordinates,
        script_args.trace_from,
        script_args.trace_stage,
        script_args.trace_grid,
        script_args.trace_jitter,
        seed,
        script_args.trace_box_swap,
        script_args.trace_box_margin,
    )
    return view, len(source)


def main(script_args: SFTScriptArguments, training_args: Any, model_args: SegR1ModelConfig) -> Any:
    """Fine-tune and save the policy (and its processor) to ``output_dir``; return the trainer."""
    from transformers import set_seed
    from trl import get_peft_config

    set_seed(training_args.seed)
    setup_logging(training_args, script_args, model_args)

    check_model_path(model_args)
    checkpoint = resolve_checkpoint(training_args)

    processor = load_processor(model_args)
    training_args.model_init_kwargs = model_init_kwargs(model_args)
    # The lazy view reads its source columns (image, mask, ...) when a row is fetched, so the
    # Trainer must not drop them.
    training_args.remove_unused_columns = False

    coordinates = resolve_coordinates(script_args.coordinates, model_args.model_name_or_path)
    train_dataset, num_rows = build_sft_dataset(script_args, coordinates, training_args.seed)
    logger.info("SFT on %d examples (%s coordinates)", num_rows, coordinates)

    trainer = SegR1SFTTrainer(
        model=model_args.model_name_or_path,
        args=training_args,
        train_dataset=train_dataset,
        processing_class=processor,
        peft_config=get_peft_config(model_args),
    )
    source = script_args.sft_data or ",".join(script_args.datasets)
    # frame_size None (FCoT images as stored) records no frame: the SPEC's frames then apply
    facts = {"stage": "sft", "frame_size": script_args.frame_size, "coordinates": coordinates}
    if script_args.sft_data is None:  # synthesised traces: the grammar they taught
        facts["answer_mode"] = get_task(script_args.trace_stage).answer_mode
    return train_and_save(
        trainer, checkpoint, processor, num_rows, source, ["seg-r1", "sft"], training_facts=facts
    )


def parse_args(argv: list[str] | None = None) -> tuple[Any, Any, Any]:
    """``(script_args, training_args, model_args)`` from ``--config RECIPE`` + overrides."""
    from trl import TrlParser

    parser = TrlParser((SFTScriptArguments, SegR1SFTConfig, SegR1ModelConfig))
    return parser.parse_args_and_config(argv)


if __name__ == "__main__":
    try:
        main(*parse_args())
    except LaunchError as error:  # a missing input: the message says how to fix it
        logger.error("%s", error)
        raise SystemExit(2) from None
