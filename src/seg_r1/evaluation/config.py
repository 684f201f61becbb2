"""The settings of one evaluation run (:class:`EvalConfig`), its errors and file names."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from seg_r1.families import resolve_coordinates
from seg_r1.inference import PipelineConfig
from seg_r1.policy import resolve_device
from seg_r1.tasks import EVAL_TASKS

logger = logging.getLogger(__name__)


RUN_FILE = "run.json"
RECORDS_DIR = "records"
MASKS_DIR = "masks"
PREDICTIONS_FILE = "predictions.jsonl"
LOCK_FILE = ".lock"
#: The evaluation tasks (:mod:`seg_r1.tasks`).
TASKS: tuple[str, ...] = EVAL_TASKS
IGNORE_MODES: tuple[str, ...] = ("background", "exclude")
#: Best and worst cases shown by the visual report (each).
DEFAULT_REPORT_CASES = 4


class EvalError(RuntimeError):
    """An evaluation cannot run or finish as asked (the message says how to fix it)."""


# --------------------------------------------------------------------------- configuration


@dataclass
class EvalConfig(PipelineConfig):
    """Settings of one evaluation run: the pipeline's (:class:`seg_r1.inference.PipelineConfig`,
    parsed from the command line) plus the task and the protocol.

    Null ``frame_size`` / ``max_new_tokens`` are resolved to the task's (:mod:`seg_r1.tasks`)
    here, so the run file records the values used. Everything but ``device`` /
    ``sam2_device`` is part of :meth:`fingerprint` and must stay the same when a run is
    resumed (of the devices, only the device *type* must).
    """

    task: str = field(default="foreground", metadata={"help": "The evaluation task."})
    ignore_mode: str = field(
        default="background",
        metadata={
            "help": "ReasonSeg label-255 pixels: count as background (standard) or exclude "
            "from I and U (LISA's evaluation).",
            "choices": list(IGNORE_MODES),
        },
    )
    save_masks: bool = field(default=False, metadata={"help": "Write each mask as a PNG."})
    seed: int = field(default=0, metadata={"help": "Seed of torch / numpy / random."})

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, got {self.task!r}")
        if self.ignore_mode not in IGNORE_MODES:
            raise ValueError(f"ignore_mode must be one of {IGNORE_MODES}, got {self.ignore_mode!r}")
        if not self.model_path:
            raise ValueError("an evaluation needs a model_path (--model_path)")
        self.frame_size, self.max_new_tokens = self.task_defaults(self.task)
        self.coordinates = resolve_coordinates(self.coordinates, self.model_path)

    def fingerprint(self) -> dict[str, Any]:
        """The settings that decide the outputs (compared on resume)."""
        skip = {"device", "sam2_device"}
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in skip}
        out["model_path"] = str(Path(self.model_path).expanduser().absolute())
        out["device_type"] = _device_type(self.device)
        return out


def _device_type(device: str | None) -> str:

    return resolve_device(device).type


def config_summary(config: EvalConfig) -> dict[str, Any]:
    """The settings written into result files (the fingerprint, without absolute paths)."""
    summary = asdict(config)
    summary.pop("device", None)
    summary.pop("sam2_device", None)
    return summary
