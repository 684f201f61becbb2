"""The command line shared by the three ``eval/*.py`` scripts: arguments, the config they
build, the run, logging."""

from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from transformers import HfArgumentParser

from seg_r1 import logs
from seg_r1.evaluation.config import DEFAULT_REPORT_CASES, EvalConfig
from seg_r1.evaluation.runner import parse_gpu_ids, run_evaluation
from seg_r1.inference import PipelineConfig

logger = logging.getLogger(__name__)


# --------------------------------------------------------------------------- command line


@dataclass
class RunArguments:
    """How an evaluation runs (not what it computes, except ``seed``): workers, resume, output."""

    gpu_ids: str | None = field(
        default=None, metadata={"help": "e.g. 0,1,2,3: one worker process per GPU."}
    )
    num_workers: int = field(default=1, metadata={"help": "CPU worker processes."})
    num_threads: int | None = field(
        default=None,
        metadata={"help": "Torch CPU threads per process (null: torch's; workers: cores // N)."},
    )
    overwrite: bool = field(default=False, metadata={"help": "Discard earlier results."})
    limit: int | None = field(default=None, metadata={"help": "Only the first N samples."})
    seed: int = field(default=0, metadata={"help": "Seed of torch / numpy / random."})
    strict: bool = field(
        default=False,
        metadata={
            "help": "Any sample the loader would skip (missing or unreadable file, mismatched "
            "annotation) is an error instead of a counted skip."
        },
    )
    report_cases: int = field(
        default=DEFAULT_REPORT_CASES,
        metadata={"help": "Best and worst cases in the visual report (0: no report)."},
    )
    no_progress: bool = field(default=False, metadata={"help": "Hide the progress bar."})
    log_level: str = field(default="INFO", metadata={"help": "Logging level."})


def eval_parser(description: str | None) -> HfArgumentParser:
    """The parser of an eval script: every :class:`~seg_r1.inference.PipelineConfig` option
    (policy, generation, frame, answer rule, segmenter) and :class:`RunArguments`; the script
    adds its data arguments to it."""
    return HfArgumentParser(
        (PipelineConfig, RunArguments),
        description=description,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def parse_eval_args(
    parser: HfArgumentParser, argv: list[str] | None = None
) -> tuple[PipelineConfig, RunArguments, argparse.Namespace]:
    """``(pipeline, run, data)``: the dataclasses and the script's own arguments."""
    parsed = parser.parse_args_into_dataclasses(args=argv)
    pipeline, run = parsed[0], parsed[1]
    data = parsed[2] if len(parsed) > 2 else argparse.Namespace()
    if not pipeline.model_path:
        parser.error("--model_path is required (a Seg-R1 checkpoint directory)")
    return pipeline, run, data


def eval_config(
    pipeline: PipelineConfig, run: RunArguments, task: str, **overrides: Any
) -> EvalConfig:
    """The :class:`EvalConfig` of parsed arguments (``overrides``: protocol fields)."""
    values = {f.name: getattr(pipeline, f.name) for f in fields(PipelineConfig)}
    return EvalConfig(**values, task=task, seed=run.seed, **overrides)


def run_from_args(
    run: RunArguments, dataset: Any, config: EvalConfig, work_dir: Path, **kwargs: Any
) -> list[dict[str, Any]]:
    """:func:`run_evaluation` with the :class:`RunArguments`."""
    return run_evaluation(
        dataset,
        config,
        work_dir,
        num_workers=run.num_workers,
        gpu_ids=parse_gpu_ids(run.gpu_ids),
        overwrite=run.overwrite,
        limit=run.limit,
        progress=not run.no_progress,
        num_threads=run.num_threads,
        **kwargs,
    )


def setup_logging(level: str = "INFO") -> None:
    """Script logging: ``LEVEL message`` lines on stderr; noisy libraries kept at WARNING."""
    logs.setup_logging(level, hide_hf_progress=True)
