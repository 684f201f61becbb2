"""GRPO training of Seg-R1: the pre-RL, RL (COD) and SOD stages (SPEC §5), on TRL.

    # one node, 8 GPUs, ZeRO-2 (SAM2 runs on each rank's own GPU)
    accelerate launch --config_file configs/accelerate/zero2.yaml --num_processes 8 \
        -m seg_r1.grpo --config configs/grpo_cod.yaml

    # CPU, tiny self-built models, synthetic data (what `scripts/run_grpo.sh` runs with
    # RECIPE=configs/tiny/grpo.yaml)
    python -m seg_r1.grpo --config configs/tiny/grpo.yaml

Every recipe option can be overridden on the command line (``--learning_rate 2e-6``); the
launchers ``scripts/run_prerl.sh``, ``scripts/run_grpo.sh`` and ``scripts/run_grpo_sod.sh`` wrap
this with environment variables (docs/training.md).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from seg_r1.configs import GRPOScriptArguments, SegR1GRPOConfig, SegR1ModelConfig
from seg_r1.families import resolve_coordinates
from seg_r1.launch import (
    LaunchError,
    check_model_path,
    check_sam2,
    load_processor,
    model_init_kwargs,
    resolve_checkpoint,
    setup_logging,
    train_and_save,
)
from seg_r1.segmenters import build_segmenter
from seg_r1.trainer import SegR1GRPOTrainer
from seg_r1.training_data import grpo_dataset, load_segmentation_data

logger = logging.getLogger(__name__)


def main(
    script_args: GRPOScriptArguments,
    training_args: SegR1GRPOConfig,
    model_args: SegR1ModelConfig,
    callbacks: Sequence[Any] = (),
) -> Any:
    """Train one GRPO stage and save the policy (and its processor) to ``output_dir``.
    ``callbacks``: extra ``transformers.TrainerCallback`` objects (the quickstart's held-out
    IoU curve).

    Returns the trainer (tests and the quickstart read its ``state.log_history``).
    """
    from transformers import set_seed
    from trl import get_peft_config

    set_seed(training_args.seed)
    setup_logging(training_args, script_args, model_args)

    # Everything that can be missing is checked before anything heavy is loaded.
    check_model_path(model_args)
    check_sam2(script_args)
    checkpoint = resolve_checkpoint(training_args)

    processor = load_processor(model_args)
    training_args.model_init_kwargs = model_init_kwargs(model_args)

    coordinates = resolve_coordinates(script_args.coordinates, model_args.model_name_or_path)
    dataset = load_segmentation_data(script_args)
    train_dataset = grpo_dataset(dataset, script_args.stage, script_args.frame_size, coordinates)
    logger.info(
        "stage %s: %d examples, frame %d (%s coordinates), rewards %s",
        script_args.stage,
        len(dataset),
        script_args.frame_size,
        coordinates,
        script_args.reward_names,
    )

    segmenter = None
    if script_args.needs_masks:
        segmenter = build_segmenter(
            script_args.segmenter, **script_args.segmenter_kwargs(str(training_args.device))
        )

    trainer = SegR1GRPOTrainer(
        model=model_args.model_name_or_path,
        reward_funcs=script_args.reward_callables(),
        args=training_args,
        train_dataset=train_dataset,
        processing_class=processor,
        peft_config=get_peft_config(model_args),
        segmenter=segmenter,
        frame_size=script_args.frame_size,
        answer_mode=script_args.answer_mode,
        answer_rule=script_args.answer_rule,
        coordinates=coordinates,
        callbacks=list(callbacks) or None,
    )
    facts = {
        "stage": script_args.stage,
        "frame_size": script_args.frame_size,
        "answer_mode": script_args.answer_mode,
        "coordinates": coordinates,
        "segmenter": script_args.segmenter if segmenter is not None else None,
    }
    if script_args.segmenter == "classical" and segmenter is not None:
        facts["classical_iterations"] = script_args.classical_iterations
    return train_and_save(
        trainer,
        checkpoint,
        processor,
        len(dataset),
        ",".join(script_args.datasets),
        ["seg-r1"],
        training_facts=facts,
    )


def parse_args(argv: list[str] | None = None) -> tuple[Any, Any, Any]:
    """``(script_args, training_args, model_args)`` from ``--config RECIPE`` + overrides."""
    from trl import TrlParser

    parser = TrlParser((GRPOScriptArguments, SegR1GRPOConfig, SegR1ModelConfig))
    return parser.parse_args_and_config(argv)


if __name__ == "__main__":
    try:
        main(*parse_args())
    except LaunchError as error:  # a missing input: the message says how to fix it
        logger.error("%s", error)
        raise SystemExit(2) from None
