"""The task table: one frozen spec per task or training stage, and the only place that says
what differs between them.

==============  =======  ======  =====  =========  =====  ===================================
task            system   user    mode   frame      query  default rewards (training stages)
==============  =======  ======  =====  =========  =====  ===================================
``prerl``       --       prerl   points 768        no     prerl_format, prerl_segmentation
``rl``          rl       fg      full   768        no     format, segmentation
``sod``         rl       fg      full   768        no     format, segmentation
``foreground``  eval     fg      full   768        no     (evaluation, COD/SOD; budget 1024)
``referring``   eval     ref     full   1024       yes    (evaluation and demo; budget 512)
``reasoning``   eval     reason  full   1024       yes    (evaluation and demo; budget 512)
==============  =======  ======  =====  =========  =====  ===================================

Facts from SPEC §2 and §5: the frames (768 training and COD/SOD, 1024 referring/reasoning and
the demo), the prompts (the texts live in :mod:`seg_r1.prompts`, which reads ``system`` and
``user`` here), the points-only grammar of pre-RL, the official evaluation scripts'
generation budgets. Referring / reasoning rows of a training set get their own task's prompt
(``grpo_refcoco.yaml``); foreground rows get the stage's.

To add a task: add a :class:`TaskSpec` to :data:`TASKS` (and its prompt texts to
:mod:`seg_r1.prompts`); every list, default and check of the package reads it from here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

#: The GRPO training stages of SPEC §5 (the rest are evaluation / demo tasks).
STAGES: tuple[str, ...] = ("prerl", "rl", "sod")


@dataclass(frozen=True)
class TaskSpec:
    """What one task (or training stage) needs.

    Attributes:
        name: the task's name (``--task``, ``stage:`` of a recipe).
        system: which system prompt (``"rl"``, ``"eval"``) or ``None`` (pre-RL has none).
        user: which user text: ``"foreground"``, ``"prerl"``, ``"referring"``, ``"reasoning"``.
        answer_mode: the answer grammar (:func:`seg_r1.answer.parse_answer`): ``"full"``
            (boxes + points + labels) or ``"points"`` (pre-RL).
        frame_size: the square frame of SPEC §2, in pixels.
        needs_query: the prompt embeds a text query (referring expression, reasoning sentence).
        eval_max_new_tokens: the official evaluation script's generation budget (``None``
            for training stages).
        rewards: the stage's reward functions (registry names of :mod:`seg_r1.rewards`, weight
            1 each); empty for evaluation tasks.
        label: a one-line description (the demo's task menu).
    """

    name: str
    system: Literal["rl", "eval"] | None
    user: Literal["foreground", "prerl", "referring", "reasoning"]
    answer_mode: Literal["full", "points"]
    frame_size: int
    needs_query: bool = False
    eval_max_new_tokens: int | None = None
    rewards: tuple[str, ...] = ()
    label: str = ""

    @property
    def is_stage(self) -> bool:
        """A GRPO training stage (SPEC §5)."""
        return self.name in STAGES


#: SPEC §2: 768 for training and COD/SOD evaluation, 1024 for referring/reasoning and the demo.
TRAIN_FRAME = 768
QUERY_FRAME = 1024

TASKS: dict[str, TaskSpec] = {
    spec.name: spec
    for spec in (
        TaskSpec(
            "prerl", None, "prerl", "points", TRAIN_FRAME,
            rewards=("prerl_format", "prerl_segmentation"),
            label="Pre-RL: points and labels only",
        ),
        TaskSpec(
            "rl", "rl", "foreground", "full", TRAIN_FRAME,
            rewards=("format", "segmentation"),
            label="RL: camouflaged objects (GRPO)",
        ),
        TaskSpec(
            "sod", "rl", "foreground", "full", TRAIN_FRAME,
            rewards=("format", "segmentation"),
            label="SOD: salient objects (GRPO)",
        ),
        TaskSpec(
            "foreground", "eval", "foreground", "full", TRAIN_FRAME,
            eval_max_new_tokens=1024,
            label="Foreground: the salient or camouflaged object",
        ),
        TaskSpec(
            "referring", "eval", "referring", "full", QUERY_FRAME, needs_query=True,
            eval_max_new_tokens=512,
            label="Referring: the object an expression names",
        ),
        TaskSpec(
            "reasoning", "eval", "reasoning", "full", QUERY_FRAME, needs_query=True,
            eval_max_new_tokens=512,
            label="Reasoning: the object a question or sentence points to",
        ),
    )
}  # fmt: skip

#: Evaluation tasks (the three ``eval/*.py`` scripts), also the demo's task menu.
EVAL_TASKS: tuple[str, ...] = ("foreground", "referring", "reasoning")


def get_task(name: str) -> TaskSpec:
    """The spec of ``name``; ``ValueError`` naming the known tasks otherwise."""
    try:
        return TASKS[name]
    except KeyError:
        raise ValueError(f"unknown task {name!r}; expected one of {', '.join(TASKS)}") from None
