"""The settings of one evaluation run (:class:`EvalConfig`), its errors and file names."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from seg_r1.segmenters import DEFAULT_EVAL_ANSWER_RULE, check_answer_rule
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
class EvalConfig:
    """Settings of one evaluation run (the eval scripts build it from their arguments).

    Everything but ``device`` / ``sam2_device`` is part of :meth:`fingerprint` and must stay
    the same when a run is resumed (of the devices, only the device *type* must).
    """

    model_path: str
    task: str
    frame_size: int
    batch_size: int = 8
    max_new_tokens: int = 1024
    repetition_penalty: float = 1.0
    dtype: str = "auto"
    attn_implementation: str | None = None
    min_pixels: int | None = None
    max_pixels: int | None = None
    segmenter: str = "sam2"
    sam2_config: str | None = None
    sam2_checkpoint: str | None = None
    sam2_dtype: str = "float32"
    bgr_compat: bool = False
    answer_rule: str = DEFAULT_EVAL_ANSWER_RULE
    ignore_mode: str = "background"
    save_masks: bool = False
    seed: int = 0
    device: str = "auto"
    sam2_device: str | None = None

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, got {self.task!r}")
        if self.ignore_mode not in IGNORE_MODES:
            raise ValueError(f"ignore_mode must be one of {IGNORE_MODES}, got {self.ignore_mode!r}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        check_answer_rule(self.answer_rule)

    def fingerprint(self) -> dict[str, Any]:
        """The settings that decide the outputs (compared on resume)."""
        skip = {"device", "sam2_device"}
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in skip}
        out["model_path"] = str(Path(self.model_path).expanduser().absolute())
        out["device_type"] = _device_type(self.device)
        return out


def _device_type(device: str | None) -> str:
    from seg_r1.inference import resolve_device

    return resolve_device(device).type


def config_summary(config: EvalConfig) -> dict[str, Any]:
    """The settings written into result files (the fingerprint, without absolute paths)."""
    summary = asdict(config)
    summary.pop("device", None)
    summary.pop("sam2_device", None)
    return summary
