"""Resolving a training run at launch, before anything heavy loads -- clear errors for a missing
model or SAM2 checkpoint (:class:`LaunchError`, with how to fix it), the checkpoint to resume
from, the processor with the recipe's pixel bounds, the model's init kwargs, logging -- and
running it to the saved policy (:func:`train_and_save`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import trl

from seg_r1 import logs
from seg_r1.configs import GRPOScriptArguments, SegR1ModelConfig
from seg_r1.families import checkpoint_model_type, family_of_model_type
from seg_r1.policy import set_pixel_bounds, write_training_meta
from seg_r1.segmenters import (
    DEFAULT_SAM2_CHECKPOINT,
    HF_SEGMENTER_NAMES,
)

logger = logging.getLogger(__name__)


class LaunchError(RuntimeError):
    """A recipe points at something that is not there; the message says how to fix it."""


#: Path prefixes that are always local folders (never a hub model id).
_LOCAL_PREFIXES = (".", "/", "~", "runs/", "third_party/", "outputs/", "checkpoints/")


def is_local_path(name: str) -> bool:
    """Whether ``name`` names a local folder rather than a hub model id (``org/name``)."""
    from pathlib import Path

    if Path(name).exists() or name.startswith(_LOCAL_PREFIXES) or name.count("/") != 1:
        return True
    return Path(name.split("/")[0]).is_dir()


def check_model_path(model_args: trl.ModelConfig) -> None:
    """Fail early when the policy checkpoint is missing.

    Raises:
        LaunchError: no ``model_name_or_path``, a local path that does not exist, or a
            checkpoint of a model type no policy family supports (:mod:`seg_r1.families`).
    """
    from pathlib import Path

    name = model_args.model_name_or_path
    if not name:
        raise LaunchError(
            "model_name_or_path is not set: put it in the recipe or pass --model_name_or_path "
            "(MODEL_PATH in the launchers), e.g. Qwen/Qwen2.5-VL-3B-Instruct"
        )
    if is_local_path(name) and not (Path(name) / "config.json").is_file():
        raise LaunchError(
            f"policy checkpoint {name!r} not found (no config.json). Use the output folder of "
            "the previous stage (scripts/run_prerl.sh -> runs/prerl), a hub id such as "
            "Qwen/Qwen2.5-VL-3B-Instruct (downloaded on first use, or fetched beforehand with "
            "`huggingface-cli download Qwen/Qwen2.5-VL-3B-Instruct --local-dir DIR`), or tiny "
            "CPU weights from `python -m seg_r1.tiny --out runs/tiny` (runs/tiny/policy)."
        )
    model_type = checkpoint_model_type(name)
    if model_type is not None:
        try:
            family_of_model_type(model_type)
        except ValueError as error:
            raise LaunchError(f"policy checkpoint {name!r}: {error}") from None


def check_sam2(script_args: GRPOScriptArguments) -> None:
    """Fail early when the SAM2 checkpoint of a SAM2-scored run is missing.

    Raises:
        LaunchError: a mask-based reward and ``segmenter='sam2'`` without its checkpoint file,
            or ``segmenter='sam2_hf'`` / ``'sam3'`` without a hub-format folder (a
            ``config.json`` of the backend's model type) at ``segmenter_path``.
    """
    from pathlib import Path

    if not script_args.needs_masks:
        return
    if script_args.segmenter in HF_SEGMENTER_NAMES:
        from seg_r1.segmenters.hf import HFSegmenterLoadError, check_hf_folder

        try:
            check_hf_folder(script_args.hf_segmenter_path, script_args.segmenter)
        except HFSegmenterLoadError as err:
            raise LaunchError(str(err)) from err
        return
    if script_args.segmenter != "sam2":
        return
    if not Path(script_args.sam2_checkpoint).is_file():
        raise LaunchError(
            f"SAM2 checkpoint {script_args.sam2_checkpoint!r} not found. Get "
            "sam2.1_hiera_large.pt as described in third_party/README.md (expected at "
            f"{DEFAULT_SAM2_CHECKPOINT}) or pass --sam2_checkpoint (SAM2_CHECKPOINT in the "
            "launchers); for CPU tests use tiny weights (`python -m seg_r1.tiny --out "
            "runs/tiny`: runs/tiny/sam2/sam2_tiny.pt with runs/tiny/sam2/sam2_tiny.yaml) or "
            "--segmenter classical."
        )


def resolve_checkpoint(training_args: Any) -> str | None:
    """The checkpoint to resume from, from ``resume_from_checkpoint``:

    * ``null`` -- start fresh; refused when ``output_dir`` already holds ``checkpoint-*``
      folders (mixing two runs in one folder breaks resuming);
    * ``latest`` (or ``true``) -- the last ``checkpoint-*`` in ``output_dir``;
    * a path -- that checkpoint.

    Raises:
        LaunchError: the cases above that cannot work, with the fix.
    """
    from pathlib import Path

    from transformers.trainer_utils import get_last_checkpoint

    output_dir = Path(training_args.output_dir)
    last = get_last_checkpoint(str(output_dir)) if output_dir.is_dir() else None
    value = training_args.resume_from_checkpoint
    if value is None or str(value).lower() in ("", "false", "none", "no"):
        if last is not None:
            raise LaunchError(
                f"{output_dir} already holds checkpoints (last: {last}). Resume with "
                "--resume_from_checkpoint latest (RESUME=1 in the launchers), or choose another "
                "output_dir (OUTPUT_DIR), or delete it."
            )
        return None
    if str(value).lower() in ("latest", "true", "yes", "1"):
        if last is None:
            raise LaunchError(
                f"resume requested but {output_dir} holds no checkpoint-* folder; start without "
                "RESUME / --resume_from_checkpoint, or point output_dir at the earlier run."
            )
        return last
    if not Path(value).is_dir():
        raise LaunchError(f"resume_from_checkpoint {value!r} is not a checkpoint folder")
    return str(value)


def load_processor(model_args: SegR1ModelConfig) -> Any:
    """The policy's processor with left padding (TRL generation) and, when set in the config,
    the pixel bounds ``min_pixels``/``max_pixels`` (module doc: frame and pixel bounds)."""
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(
        model_args.model_name_or_path, revision=model_args.model_revision, padding_side="left"
    )
    set_pixel_bounds(processor, model_args.min_pixels, model_args.max_pixels)
    return processor


def model_init_kwargs(model_args: trl.ModelConfig) -> dict[str, Any]:
    """``from_pretrained`` keyword arguments of the policy (TRL's ``model_init_kwargs``)."""
    return {
        "revision": model_args.model_revision,
        "attn_implementation": model_args.attn_implementation,
        "dtype": model_args.dtype,
    }


def setup_logging(training_args: Any, *arguments: Any) -> None:
    """Log to stderr at the process's level (warnings only on non-main ranks), as open-r1;
    every rank says who it is, and the main rank logs the other ``arguments`` dataclasses."""
    import datasets
    import transformers

    level = training_args.get_process_log_level()
    logs.setup_logging(
        logging.WARNING,
        fmt="%(asctime)s - %(levelname)s - %(name)s - %(message)s",
        datefmt="%Y-%m-%d %H:%M:%S",
    )
    logging.getLogger("seg_r1").setLevel(level)
    datasets.utils.logging.set_verbosity(level)
    transformers.utils.logging.set_verbosity(level)
    transformers.utils.logging.enable_default_handler()
    transformers.utils.logging.enable_explicit_format()
    # Warning level: replicas only log warnings, and each rank should say who it is.
    logger.warning(
        "process %d of %d on %s, bf16 %s",
        training_args.process_index,
        training_args.world_size,
        training_args.device,
        training_args.bf16,
    )
    for args in arguments:
        logger.info("%s %s", type(args).__name__, args)


def train_and_save(
    trainer: Any,
    checkpoint: str | None,
    processor: Any,
    num_rows: int,
    dataset_name: str,
    tags: Sequence[str],
    training_facts: dict[str, Any] | None = None,
) -> Any:
    """Train (resuming from ``checkpoint`` when given), log and save the train metrics and
    state, then save the policy WITH its processor (pixel bounds included) and its
    ``training_facts`` (:func:`seg_r1.policy.write_training_meta`: the frame its answers refer
    to) to the output folder, so that the next stage, the evaluation and the demo load exactly
    what was trained and read its answers in the right frame."""
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
        write_training_meta(output_dir, **(training_facts or {}))
        trainer.create_model_card(dataset_name=dataset_name, tags=list(tags))
    logger.info("saved the policy to %s", output_dir)
    finish_distributed()
    return trainer


def finish_distributed() -> None:
    """Tear the process group down at the end of a successful run (all ranks together).

    A process that exits with its process group alive leaves gloo's worker threads holding
    tensors; the interpreter then tears down under them and the rank aborts with "terminate
    called without an active exception" (exit -6) after the run has finished and saved -- and
    the launcher reports the finished run as failed. Destroying the group first (after a barrier,
    so that no rank still talks to another) is PyTorch's documented way to shut down. Only on
    success: a failing rank must not wait in a collective for peers that may never arrive.
    """
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
