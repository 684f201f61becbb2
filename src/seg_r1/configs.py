"""Configuration of the training entry points (``python -m seg_r1.sft`` / ``python -m seg_r1.grpo``).

Each entry point is parsed by :class:`trl.TrlParser` from a YAML recipe in ``configs/`` with
command-line overrides, into three dataclasses (open-r1 style)::

    script_args, training_args, model_args = TrlParser(
        (GRPOScriptArguments, SegR1GRPOConfig, SegR1ModelConfig)
    ).parse_args_and_config()

* ``script_args`` -- what is trained on and how it is scored: the stage (prompt + answer
  grammar), the datasets, the training *frame*, the reward functions and the segmenter;
* ``training_args`` -- TRL's ``GRPOConfig`` / ``SFTConfig`` (optimiser, batch, generation, GRPO
  loss, saving, logging) plus a few Seg-R1 logging knobs;
* ``model_args`` -- TRL's ``ModelConfig`` (checkpoint, dtype, attention, LoRA) plus the
  Qwen2.5-VL processor's pixel bounds.

Frame and pixel bounds (SPEC §2)
--------------------------------
Images are resized to the square training frame (``frame_size``, 768 in the paper) BEFORE the
policy sees them, ignoring the aspect ratio, and the answer's coordinates are read as pixels of
that frame. Rewards are computed in the frame too (the ground truth is resized to it with
nearest-neighbour interpolation). Qwen2.5-VL's processor then resizes the frame to multiples of
28 pixels within its pixel bounds (``min_pixels``/``max_pixels``): with the released
checkpoints' bounds a 768 frame becomes 756x756 (27x27 merged visual tokens). The model thus
sees a frame 1.6 % smaller than the one its prompt promises -- like the official code, we keep
the coordinates in the promised frame. Set ``frame_size: 756`` (a multiple of 28) to make the
two agree exactly; :func:`seg_r1.frame.processor_resize` shows what the processor does with any
frame.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import Any

import trl

from seg_r1.data import FOREGROUND_DATASETS, REFER_DATASETS
from seg_r1.families import CoordinatesArguments
from seg_r1.rewards import REWARD_FUNCS, answer_mode_of, needs_masks
from seg_r1.segmenters import (
    DEFAULT_TRAIN_ANSWER_RULE,
    SegmenterConfig,
    check_answer_rule,
)
from seg_r1.tasks import STAGES, get_task

logger = logging.getLogger(__name__)


#: Dataset names a ``datasets`` entry may start with (besides ``stage:<name>``): the adapters'
#: own ``FOREGROUND_DATASETS`` and ``REFER_DATASETS`` (``seg_r1.data``), and this one.
REASONSEG_NAME = "ReasonSeg"
_DATASET_SPEC = re.compile(r"^(?P<name>[^:]+)(?::(?P<split>[^:]+))?$")


def import_reward(name: str) -> Any:
    """``name`` itself when it is a reward of :data:`seg_r1.rewards.REWARD_FUNCS` (built by the
    trainer with the shared segmenter), else the callable at the dotted path ``name``.

    Raises:
        ValueError: neither a known name nor an importable ``module.function`` path.
    """
    if name in REWARD_FUNCS:
        return name
    module_name, _, attr = name.rpartition(".")
    if module_name:
        import importlib

        try:
            func = getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError) as error:
            raise ValueError(f"reward {name!r} cannot be imported: {error}") from None
        if callable(func):
            return func
    raise ValueError(
        f"unknown reward {name!r}: use one of {sorted(REWARD_FUNCS)} or a dotted import path "
        "to a function with TRL's reward signature fn(completions, **kwargs) -> list[float]"
    )


@dataclass(frozen=True)
class DatasetSpec:
    """One parsed ``datasets`` entry: ``NAME[:SPLIT]``.

    ``kind`` is ``"foreground"``, ``"referring"``, ``"reasoning"`` or ``"stage"`` (the
    prepared manifest of a training stage, ``stage:rl``).
    """

    kind: str
    name: str
    split: str


def parse_dataset_spec(text: str) -> DatasetSpec:
    """Parse ``"COD10K:train"``, ``"refcocog:train"``, ``"ReasonSeg:train"``, ``"stage:rl"``.

    The split defaults to ``train``. Names are matched case-insensitively.

    Raises:
        ValueError: an unknown name, with the list of known ones.
    """
    match = _DATASET_SPEC.match(text.strip())
    if match is None:
        raise ValueError(f"dataset entry {text!r} is not NAME[:SPLIT], e.g. 'COD10K:train'")
    name, split = match["name"].strip(), (match["split"] or "train").strip()
    lower = name.lower()
    if lower == "stage":
        if split not in STAGES:
            raise ValueError(f"dataset entry {text!r}: stage must be one of {STAGES}")
        return DatasetSpec("stage", split, split)
    for known in FOREGROUND_DATASETS:
        if lower == known.lower() or lower == known.lower().replace("-", ""):
            return DatasetSpec("foreground", known, split)
    if lower in REFER_DATASETS:
        return DatasetSpec("referring", lower, split)
    if lower == REASONSEG_NAME.lower():
        return DatasetSpec("reasoning", REASONSEG_NAME, split)
    known_all = [*FOREGROUND_DATASETS, *REFER_DATASETS, REASONSEG_NAME, "stage:<prerl|rl|sod>"]
    raise ValueError(f"dataset entry {text!r}: unknown dataset {name!r}; known: {known_all}")


def _check_frame(frame_size: int | None, allow_none: bool) -> None:
    if frame_size is None and allow_none:
        return
    if not isinstance(frame_size, int) or frame_size < 28:
        raise ValueError(
            f"frame_size must be an integer >= 28 (pixels of the square training frame; the "
            f"paper uses 768), got {frame_size!r}"
        )


@dataclass
class SegR1DataArguments:
    """Which segmentation data to train on (shared by SFT trace synthesis and GRPO)."""

    datasets: list[str] = field(
        default_factory=lambda: ["COD10K:train", "CAMO:train"],
        metadata={
            "help": "Training data, each entry NAME[:SPLIT] (split defaults to train): a "
            "foreground set (DIS5K, COD10K, CAMO, DUTS, DUT-OMRON, HKU-IS, ECSSD, synthetic), "
            "refcoco/refcoco+/refcocog, ReasonSeg, or stage:<prerl|rl|sod> for a stage's "
            "prepared manifest (datasets/manifests/<stage>.jsonl, else its raw folders). "
            "Entries are concatenated."
        },
    )
    data_root: str = field(
        default="datasets",
        metadata={
            "help": "Folder holding the dataset folders (SPEC §6 layout); for 'synthetic' the "
            "folder written by seg_r1.data.synthetic."
        },
    )
    refer_image_root: str | None = field(
        default=None,
        metadata={
            "help": "Folder of the COCO train2014 images for refcoco* entries; default "
            "<data_root>/Refer_Segm/coco_2014/train2014."
        },
    )
    max_train_samples: int | None = field(
        default=None,
        metadata={"help": "Keep only the first N examples (after concatenation); None = all."},
    )

    def __post_init__(self) -> None:
        if isinstance(self.datasets, str):  # a single entry given on the command line
            self.datasets = [self.datasets]
        if not self.datasets:
            raise ValueError("datasets is empty: list at least one entry, e.g. ['COD10K:train']")
        for entry in self.datasets:
            parse_dataset_spec(entry)
        if self.max_train_samples is not None and self.max_train_samples < 1:
            raise ValueError(
                f"max_train_samples must be >= 1 (or null for all), got {self.max_train_samples}"
            )

    @property
    def dataset_specs(self) -> list[DatasetSpec]:
        return [parse_dataset_spec(entry) for entry in self.datasets]


@dataclass
class GRPOScriptArguments(SegmenterConfig, CoordinatesArguments, SegR1DataArguments):
    """Stage, data, frame, rewards and segmenter of a GRPO run (pre-RL, RL or SOD); the
    segmenter options are :class:`seg_r1.segmenters.SegmenterConfig`'s (declared once)."""

    stage: str = field(
        default="rl",
        metadata={
            "help": "GRPO stage (SPEC §5): 'prerl' (points-only prompt and rewards), 'rl' "
            "(camouflaged objects) or 'sod' (salient objects); picks the foreground prompt, "
            "the answer grammar and the default rewards. Referring/reasoning examples always "
            "get their own task prompts (SPEC §2)."
        },
    )
    frame_size: int = field(
        default=768,
        metadata={
            "help": "Side of the square training frame in pixels: images are resized to it "
            "before the policy sees them, answers are read in its pixels and rewards are "
            "computed in it (SPEC §2: 768). The processor's pixel bounds then turn 768 into 756."
        },
    )
    reward_funcs: list[str] | None = field(
        default=None,
        metadata={
            "help": "Reward functions by name (seg_r1.rewards.REWARD_FUNCS: format, "
            "segmentation, prerl_format, prerl_segmentation) or as a dotted import path "
            "(my_package.my_module.my_reward, TRL's signature); null = the stage's pair. "
            "Weights: reward_weights (TRL option, default 1 each)."
        },
    )
    answer_rule: str = field(
        default=DEFAULT_TRAIN_ANSWER_RULE,
        metadata={
            "help": "Which answers the segmentation reward scores: 'complete' (the official "
            "reward, the paper's training: 0 unless a box, points and labels all parse with "
            "matching counts) or 'well_formed' (lenient: a box-only answer with no points "
            "and labels is segmented and scored too; a policy can then learn to drop "
            "points). 'fallback' (the official evaluation's salvage) is accepted too."
        },
    )

    def __post_init__(self) -> None:
        SegR1DataArguments.__post_init__(self)
        SegmenterConfig.__post_init__(self)
        CoordinatesArguments.__post_init__(self)
        check_answer_rule(self.answer_rule)
        if self.stage not in STAGES:
            raise ValueError(f"stage must be one of {STAGES}, got {self.stage!r}")
        mode = answer_mode_of(self.reward_funcs or [])
        if mode is not None and mode != self.answer_mode:
            raise ValueError(
                f"stage {self.stage!r} writes {self.answer_mode!r} answers but reward_funcs "
                f"{self.reward_funcs} parse {mode!r} ones: use the prerl_* rewards with stage "
                "prerl and format/segmentation with rl or sod (seg_r1.tasks)"
            )
        _check_frame(self.frame_size, allow_none=False)
        if isinstance(self.reward_funcs, str):
            self.reward_funcs = [self.reward_funcs]
        if self.reward_funcs is not None:
            if not self.reward_funcs:
                raise ValueError(
                    "reward_funcs is empty: list rewards, or null for the stage's pair"
                )
            for name in self.reward_funcs:
                import_reward(name)  # raises with the fix when unknown

    @property
    def answer_mode(self) -> str:
        """``"points"`` for pre-RL, ``"full"`` otherwise."""
        return get_task(self.stage).answer_mode

    @property
    def reward_names(self) -> list[str]:
        """The reward functions to use (explicit, or the stage's default pair)."""
        return list(self.reward_funcs or get_task(self.stage).rewards)

    @property
    def needs_masks(self) -> bool:
        """Whether the run's rewards score masks (a segmenter is built), from the reward
        registry (:data:`seg_r1.rewards.REWARDS`)."""
        return needs_masks(self.reward_names)

    def reward_callables(self) -> list[Any]:
        """:attr:`reward_names` for :class:`seg_r1.trainer.SegR1GRPOTrainer`: registry names
        stay names (the trainer builds them around its segmenter), dotted paths are imported."""
        return [import_reward(name) for name in self.reward_names]


@dataclass
class SFTScriptArguments(CoordinatesArguments, SegR1DataArguments):
    """SFT data: an FCoT-schema set, or reasoning traces synthesised from segmentation masks."""

    sft_data: str | None = field(
        default=None,
        metadata={
            "help": "FCoT-schema SFT data (parquet/JSON/JSONL file or folder; fields problem, "
            "image, thinking, solution, optional system). When null, traces are synthesised "
            "from the masks of `datasets` (box + interior/exterior points)."
        },
    )
    sft_image_root: str | None = field(
        default=None,
        metadata={"help": "Folder that relative image paths of sft_data JSON records refer to."},
    )
    frame_size: int | None = field(
        default=None,
        metadata={
            "help": "Resize SFT images to this square frame before the policy sees them. "
            "Synthesised traces are written in this frame (required for them). null feeds "
            "FCoT images as stored, like the official SFT."
        },
    )
    trace_fg_points: int = field(
        default=2,
        metadata={"help": "Foreground points per synthesised trace (deepest inside the object)."},
    )
    trace_bg_points: int = field(
        default=1,
        metadata={
            "help": "Background points per synthesised trace (inside the box, off the object)."
        },
    )
    trace_stage: str = field(
        default="rl",
        metadata={
            "help": "The GRPO stage synthesised traces prepare for (seg_r1.tasks): 'rl' or 'sod' "
            "(the RL prompt; think + box + points + labels) or 'prerl' (the pre-RL prompt; "
            "points and labels only)."
        },
    )
    trace_grid: int = field(
        default=0,
        metadata={
            "help": "Snap the synthesised boxes to multiples of this many frame pixels and the "
            "points to the centres of its cells (0: exact): answers that say roughly where the "
            "object is, not exactly (the learning demo's SFT, so that RL learns the rest)."
        },
    )
    trace_jitter: int = field(
        default=0,
        metadata={
            "help": "Move each synthesised box side by a random whole number of frame pixels "
            "in [-N, N], drawn anew each time a row is read, after trace_grid (0: off): SFT "
            "then learns a spread of boxes around the object, for RL to sharpen."
        },
    )
    trace_from: str = field(
        default="own",
        metadata={
            "help": "Mask a synthesised trace is written from: 'own' (the row's), or 'next' "
            "(the next row's: a control that teaches the grammar but not where)."
        },
    )
    trace_box_margin: int = field(
        default=0,
        metadata={
            "help": "Move each synthesised box side outwards by N frame pixels, after "
            "trace_grid (0: off): SFT teaches a loose box around the object, RL to tighten; "
            "N < 0 moves the sides inwards: a box on the object's core, RL to widen."
        },
    )
    trace_box_swap: float = field(
        default=0.0,
        metadata={
            "help": "Share of reads whose boxes come from the next row's mask (drawn anew "
            "each time a row is read; points, labels and think text stay the row's own; "
            "0: off): SFT then teaches roughly where and a box distribution in which the "
            "image's own box has weight 1 - share, for RL to find and sharpen."
        },
    )

    def __post_init__(self) -> None:
        CoordinatesArguments.__post_init__(self)
        if self.sft_data is None:
            SegR1DataArguments.__post_init__(self)
            _check_frame(self.frame_size, allow_none=False)
        else:
            _check_frame(self.frame_size, allow_none=True)
            if isinstance(self.datasets, str):
                self.datasets = [self.datasets]
        if not 0.0 <= self.trace_box_swap <= 1.0:
            raise ValueError(f"trace_box_swap must lie in [0, 1], got {self.trace_box_swap}")
        if min(self.trace_grid, self.trace_jitter) < 0:
            raise ValueError(
                "trace_grid and trace_jitter must be >= 0 (0: off), got "
                f"{self.trace_grid} and {self.trace_jitter}"
            )
        if self.trace_stage not in STAGES:
            raise ValueError(f"trace_stage must be one of {STAGES}, got {self.trace_stage!r}")
        if self.trace_fg_points < 1 or self.trace_bg_points < 0:
            raise ValueError(
                "trace_fg_points must be >= 1 and trace_bg_points >= 0, got "
                f"{self.trace_fg_points} and {self.trace_bg_points}"
            )


@dataclass
class SegR1ModelConfig(trl.ModelConfig):
    """TRL's ``ModelConfig`` plus the policy processor's pixel bounds (any family of
    :mod:`seg_r1.families`)."""

    min_pixels: int | None = field(
        default=None,
        metadata={
            "help": "Processor lower pixel bound (Qwen2.5-VL: 4*28*28 = 3136; Qwen3-VL: "
            "65536); null keeps the checkpoint's preprocessor config."
        },
    )
    max_pixels: int | None = field(
        default=None,
        metadata={
            "help": "Processor upper pixel bound (released Qwen2.5-VL: 16384*28*28 = 12845056, "
            "so a 768 frame is seen as 756x756); null keeps the checkpoint's."
        },
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("min_pixels", "max_pixels"):
            value = getattr(self, name)
            if value is not None and value < 28 * 28:
                raise ValueError(f"{name} must be >= 784 (one 28x28 visual token), got {value}")
        if (
            self.min_pixels is not None
            and self.max_pixels is not None
            and self.min_pixels > self.max_pixels
        ):
            raise ValueError(
                f"min_pixels ({self.min_pixels}) must not exceed max_pixels ({self.max_pixels})"
            )


#: ``share_prompt_prefix`` of both trainers' configs (declared once).
SHARE_PROMPT_PREFIX_HELP = (
    "Run the prompt tokens that rows of a batch share once (seg_r1.prefix_sharing): GRPO scores "
    "each distinct prompt (image + text) once and only the completions on top of its KV cache; "
    "SFT runs the system prompt and question header all rows start with once. The same "
    "log-probs and gradients, a fraction of the compute (CPU quickstart: GRPO loss 8x, SFT step "
    "~1.5x faster). Qwen2.5-VL, one process, no gradient checkpointing; otherwise TRL's path is "
    "used (logged once)."
)


@dataclass
class SegR1SFTConfig(trl.SFTConfig):
    """TRL's ``SFTConfig`` plus shared-prompt scoring."""

    share_prompt_prefix: bool = field(default=False, metadata={"help": SHARE_PROMPT_PREFIX_HELP})


@dataclass
class SegR1GRPOConfig(trl.GRPOConfig):
    """TRL's ``GRPOConfig`` plus Seg-R1's sample visualisations and shared-prompt scoring.

    Recipes set every option whose TRL default changed since the paper explicitly (SPEC §5):
    ``beta``, ``loss_type``, ``scale_rewards``, ``temperature``, ``num_generations``,
    ``learning_rate``/``lr_scheduler_type``, ``max_completion_length``, batch sizes, ``bf16``,
    ``gradient_checkpointing``, ``save_steps``.
    """

    visualization_steps: int = field(
        default=0,
        metadata={
            "help": "Every N optimizer steps, save a PNG of one group (image, ground truth, "
            "each completion's mask with its boxes and points) to "
            "<output_dir>/visualizations/; 0 = never."
        },
    )

    share_prompt_prefix: bool = field(default=False, metadata={"help": SHARE_PROMPT_PREFIX_HELP})

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.visualization_steps < 0:
            raise ValueError(
                f"visualization_steps must be >= 0 (0 = off), got {self.visualization_steps}"
            )
