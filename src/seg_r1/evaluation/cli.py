"""The command line shared by the three ``eval/*.py`` scripts: arguments, the config they
build, the run, logging."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from seg_r1.evaluation.config import DEFAULT_REPORT_CASES, EvalConfig
from seg_r1.evaluation.runner import parse_gpu_ids, quiet_hf_progress, run_evaluation
from seg_r1.inference import ATTN_IMPLEMENTATIONS, DTYPES
from seg_r1.segmenters import ANSWER_RULES, DEFAULT_EVAL_ANSWER_RULE
from seg_r1.segmenters.sam2 import DEFAULT_SAM2_CHECKPOINT, DEFAULT_SAM2_CONFIG
from seg_r1.tasks import get_task

logger = logging.getLogger(__name__)


# --------------------------------------------------------------------------- command line


def add_common_arguments(parser: argparse.ArgumentParser, task: str) -> None:
    """Arguments shared by the three eval scripts (model, generation, segmenter, runner)."""
    spec = get_task(task)
    model = parser.add_argument_group("policy")
    model.add_argument("--model_path", required=True, help="Seg-R1 checkpoint directory")
    model.add_argument("--batch_size", type=int, default=8, help="images per generate call")
    model.add_argument(
        "--frame_size",
        type=int,
        default=spec.frame_size,
        help="square frame the image is resized to; answers' coordinates refer to it "
        f"(SPEC §2; default {spec.frame_size} for {task})",
    )
    model.add_argument(
        "--max_new_tokens",
        type=int,
        default=spec.eval_max_new_tokens,
        help=f"generation budget (default {spec.eval_max_new_tokens}, the official script's)",
    )
    model.add_argument(
        "--repetition_penalty",
        type=float,
        default=1.0,
        help="1.0 = plain greedy decoding; Qwen2.5-VL's generation_config has 1.05",
    )
    model.add_argument("--dtype", default="auto", choices=DTYPES, help="policy dtype")
    model.add_argument("--attn_implementation", default=None, choices=ATTN_IMPLEMENTATIONS,
                       help="default: flash_attention_2 on GPU when installed, else sdpa")  # fmt: skip
    model.add_argument("--min_pixels", type=int, default=None,
                       help="processor pixel bounds (default: the checkpoint's)")  # fmt: skip
    model.add_argument("--max_pixels", type=int, default=None)

    seg = parser.add_argument_group("segmenter")
    seg.add_argument("--segmenter", default="sam2", choices=["sam2", "classical"],
                     help="sam2 (the real one) or classical (GrabCut; CPU tests only)")  # fmt: skip
    seg.add_argument("--sam2_config", default=DEFAULT_SAM2_CONFIG)
    seg.add_argument("--sam2_checkpoint", default=DEFAULT_SAM2_CHECKPOINT)
    seg.add_argument("--sam2_dtype", default="float32", choices=["float32", "bfloat16"])
    seg.add_argument(
        "--bgr_compat",
        action="store_true",
        help="reproduce the official code's defect: SAM2 sees R and B swapped (SPEC §3)",
    )

    proto = parser.add_argument_group("protocol")
    proto.add_argument(
        "--strict",
        action="store_true",
        help="any sample the loader would skip (missing or unreadable file, mismatched "
        "annotation) is an error instead of a counted skip",
    )
    proto.add_argument(
        "--answer_rule",
        default=DEFAULT_EVAL_ANSWER_RULE,
        choices=ANSWER_RULES,
        help="which imperfect answers still give a mask: 'fallback' (default, the official "
        "evaluation's: box-only mask when points/labels are unusable, points-only mask "
        "without a box -- numbers comparable with the paper's), 'well_formed' (strict: an "
        "inconsistent answer gives an empty mask; box-only answers are kept) or 'complete' "
        "(the training reward's rule)",
    )

    run = parser.add_argument_group("runner")
    run.add_argument("--device", default="auto", help="policy device: auto, cpu, cuda, cuda:1")
    run.add_argument("--sam2_device", default=None, help="segmenter device (default: --device)")
    run.add_argument("--gpu_ids", default=None, help="e.g. 0,1,2,3: one worker process per GPU")
    run.add_argument("--num_workers", type=int, default=1, help="CPU worker processes")
    run.add_argument("--num_threads", type=int, default=None,
                     help="torch CPU threads per process (default: torch's; workers: "
                     "cores // num_workers)")  # fmt: skip
    run.add_argument("--overwrite", action="store_true", help="discard earlier results")
    run.add_argument("--limit", type=int, default=None, help="only the first N samples")
    run.add_argument("--seed", type=int, default=0)
    run.add_argument("--report_cases", type=int, default=DEFAULT_REPORT_CASES,
                     help="best and worst cases in the visual report (0: no report)")  # fmt: skip
    run.add_argument("--no_progress", action="store_true", help="hide the progress bar")
    run.add_argument("--log_level", default="INFO")


def config_from_args(args: argparse.Namespace, task: str, **overrides: Any) -> EvalConfig:
    """Build the :class:`EvalConfig` of parsed :func:`add_common_arguments` arguments."""
    values = {
        "model_path": args.model_path,
        "task": task,
        "frame_size": args.frame_size,
        "batch_size": args.batch_size,
        "max_new_tokens": args.max_new_tokens,
        "repetition_penalty": args.repetition_penalty,
        "dtype": args.dtype,
        "attn_implementation": args.attn_implementation,
        "min_pixels": args.min_pixels,
        "max_pixels": args.max_pixels,
        "segmenter": args.segmenter,
        "sam2_config": args.sam2_config if args.segmenter == "sam2" else None,
        "sam2_checkpoint": args.sam2_checkpoint if args.segmenter == "sam2" else None,
        "sam2_dtype": args.sam2_dtype,
        "bgr_compat": args.bgr_compat,
        "answer_rule": args.answer_rule,
        "seed": args.seed,
        "device": args.device,
        "sam2_device": args.sam2_device,
    }
    values.update(overrides)
    return EvalConfig(**values)


def run_from_args(
    args: argparse.Namespace, dataset: Any, config: EvalConfig, work_dir: Path, **kwargs: Any
) -> list[dict[str, Any]]:
    """:func:`run_evaluation` with the runner arguments of :func:`add_common_arguments`."""
    return run_evaluation(
        dataset,
        config,
        work_dir,
        num_workers=args.num_workers,
        gpu_ids=parse_gpu_ids(args.gpu_ids),
        overwrite=args.overwrite,
        limit=args.limit,
        progress=not args.no_progress,
        num_threads=args.num_threads,
        **kwargs,
    )


def setup_logging(level: str = "INFO") -> None:
    """Script logging: ``LEVEL message`` lines on stderr; noisy libraries kept at WARNING."""
    logging.basicConfig(level=level.upper(), format="%(levelname)s %(name)s: %(message)s")
    for name in ("httpx", "urllib3", "PIL"):
        logging.getLogger(name).setLevel(logging.WARNING)
    quiet_hf_progress()
