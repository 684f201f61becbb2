"""Every prompt text of Seg-R1, verbatim, and the chat builders.

Released Seg-R1 checkpoints were trained on these exact strings (SPEC §2), so they are
interface facts: change them only behind an explicit option. Typos and spacing of the
originals are kept on purpose (e.g. no space before "Where" in :data:`SYSTEM_PROMPT_RL`, "should
enclosed").

Tasks (``task`` argument of :func:`build_chat`; which prompt each uses is in
:mod:`seg_r1.tasks`):

* ``"rl"`` / ``"sod"`` -- GRPO training on foreground data (system + user).
* ``"prerl"`` -- the points-only pre-RL stage (no system message).
* ``"foreground"`` -- COD/SOD evaluation (eval system prompt + the RL user text).
* ``"referring"`` -- RefCOCO/+/g: ``Identify and segment <expression>``.
* ``"reasoning"`` -- ReasonSeg: ``<sentence> Identify and segment it.`` or
  ``Identify and segment <class name>.``
"""

from __future__ import annotations

from typing import Any

from seg_r1.frame import check_coordinates
from seg_r1.tasks import get_task

_FORMAT_INTRO = (
    "A conversation between User and Assistant. The user asks a question, and the Assistant "
    "solves it. The assistant first thinks about the reasoning process in the mind and then "
    "provides the user with the answer. The reasoning process should enclosed within "
    "<think> </think> tags, and the bounding box, points and points labels should be enclosed "
    "within <bbox></bbox>, <points></points>, and <labels></labels>, respectively. i.e., "
)
_MODERATE = (
    " Only generate a moderate number of points, enough to clearly outline the object "
    "without overloading the system."
)

#: System prompt of the RL and SOD GRPO stages.
SYSTEM_PROMPT_RL = (
    _FORMAT_INTRO + "<think> reasoning process here </think> <bbox>[x1,y1,x2,y2]</bbox>, "
    "<points>[[x1,y1],[x2,y2],...]</points>, <labels>[1,0,...]</labels>"
    "Where 1 indicates a foreground (object) point, and 0 indicates a background point." + _MODERATE
)

#: System prompt of every evaluation (COD/SOD, referring, reasoning) and of the demo: the RL
#: prompt without its last sentence and with the points example ``[[x3,y3],[x4,y4],...]``.
SYSTEM_PROMPT_EVAL = (
    _FORMAT_INTRO + "<think> reasoning process here </think> <bbox>[x1,y1,x2,y2]</bbox>, "
    "<points>[[x3,y3],[x4,y4],...]</points>, <labels>[1,0,...]</labels>"
    "Where 1 indicates a foreground (object) point, and 0 indicates a background point."
)

#: Default system prompt of SFT (FCoT) rows that carry no ``system`` field: the official
#: ``sft.py`` default, the RL prompt's format description WITHOUT its "Where 1 indicates..."
#: and "Only generate..." sentences.
SYSTEM_PROMPT_SFT = (
    _FORMAT_INTRO + "<think> reasoning process here </think> <bbox>[x1,y1,x2,y2]</bbox>, "
    "<points>[[x1,y1],[x2,y2],...]</points>, <labels>[1,0,...]</labels>"
)

#: User text of the RL/SOD stages and of COD/SOD evaluation.
USER_PROMPT_FOREGROUND = (
    "\nIdentify and segment all the primary objects in the image.\n\n"
    "Output the result using the exact format:\n"
    "<think> reasoning process here </think> <bbox>[x1,y1,x2,y2]</bbox>, "
    "<points>[[x3,y3],[x4,y4],...]</points>, <labels>[1,0,...]</labels>\n"
)

#: User text of the pre-RL stage (points only, no system message).
USER_PROMPT_PRERL = (
    "\nYou are given an image. Your task is to generate a sparse set of point prompts to help "
    "segment the most salient object in the image.\n\n"
    "The points should be informative: include both foreground points (on the object) and "
    "background points (off the object) to help define the object boundary.\n\n"
    "Only generate a moderate number of points, enough to clearly outline the object without "
    "overloading the system.\n\n"
    "Output the result using the exact format:\n"
    "<points>[[x1,y1],[x2,y2],...]</points> <labels>[1,0,...]</labels>\n"
    "Where 1 indicates a foreground (object) point, and 0 indicates a background point.\n\n"
)


#: Appended to the user text when the policy answers in ``relative_1000`` coordinates (Qwen3-VL /
#: Qwen3.5, :mod:`seg_r1.families`): the paper's prompts say nothing about the coordinate frame
#: because Qwen2.5-VL grounds in pixels; a relative-coordinate policy is told its convention.
#: The ``frame`` convention (the paper's) keeps every text above verbatim.
RELATIVE_1000_NOTE = (
    "\nWrite every coordinate relative to the image: x and y from 0 (left, top) to 1000 "
    "(right, bottom)."
)


def coordinates_note(coordinates: str) -> str:
    """What the user text adds for an answer's coordinate convention (``""`` for ``frame``)."""
    return RELATIVE_1000_NOTE if check_coordinates(coordinates) == "relative_1000" else ""


def referring_user_prompt(expression: str) -> str:
    """User text for a referring expression: ``Identify and segment <expression>``."""
    return f"Identify and segment {expression}"


def reasoning_user_prompt(query: str, is_sentence: bool) -> str:
    """User text for ReasonSeg: sentences keep their text, short queries are lower-cased."""
    if is_sentence:
        return f"{query} Identify and segment it."
    return f"Identify and segment {query.lower()}."


#: The system prompts by the name a :class:`seg_r1.tasks.TaskSpec` gives (``system``).
SYSTEM_PROMPTS: dict[str, str] = {"rl": SYSTEM_PROMPT_RL, "eval": SYSTEM_PROMPT_EVAL}


def system_prompt(task: str) -> str | None:
    """The system message of ``task`` (``None`` for pre-RL, which has none)."""
    spec = get_task(task)
    return None if spec.system is None else SYSTEM_PROMPTS[spec.system]


def user_text(task: str, query: str = "", query_type: str = "", coordinates: str = "frame") -> str:
    """The user text of ``task``; ``query``/``query_type`` are used by referring/reasoning.

    ``query_type`` for reasoning: ``"sentence"`` or anything else (a short class-name query).
    ``coordinates``: the answer's convention; ``"relative_1000"`` appends
    :data:`RELATIVE_1000_NOTE`, ``"frame"`` (default) leaves the paper's text verbatim.
    """
    return _task_text(task, query, query_type) + coordinates_note(coordinates)


def _task_text(task: str, query: str, query_type: str) -> str:
    spec = get_task(task)
    if spec.user == "prerl":
        return USER_PROMPT_PRERL
    if spec.user == "foreground":
        return USER_PROMPT_FOREGROUND
    if not query:
        raise ValueError(f"task {task!r} needs a non-empty query")
    if spec.user == "referring":
        return referring_user_prompt(query)
    return reasoning_user_prompt(query, is_sentence=query_type == "sentence")


def build_chat(
    task: str,
    image: Any = None,
    query: str = "",
    query_type: str = "",
    coordinates: str = "frame",
) -> list[dict[str, Any]]:
    """Build the conversation (system + user with one image) for one example.

    ``coordinates`` is the answer's convention (:func:`user_text`).

    The user turn is ``[image, text]`` in that order (as in training). ``image`` is whatever
    the processor accepts (PIL image, path); ``None`` leaves an image placeholder
    ``{"type": "image"}`` for pipelines that pass images separately (e.g. TRL).
    """
    image_part: dict[str, Any] = {"type": "image"}
    if image is not None:
        image_part["image"] = image
    messages: list[dict[str, Any]] = []
    system = system_prompt(task)
    if system is not None:
        messages.append({"role": "system", "content": [{"type": "text", "text": system}]})
    messages.append(
        {
            "role": "user",
            "content": [
                image_part,
                {"type": "text", "text": user_text(task, query, query_type, coordinates)},
            ],
        }
    )
    return messages


def build_sft_chat(
    example: dict[str, Any], image: Any = None, coordinates: str = "frame"
) -> list[dict[str, Any]]:
    """SFT (FCoT) conversation: system = the row's ``system`` field, or
    :data:`SYSTEM_PROMPT_SFT` when it is absent or empty (the official ``sft.py``'s default);
    user = [text ``problem`` (+ the ``coordinates`` note), image]; assistant = ``thinking`` +
    " " + ``solution`` (as given: the caller writes it in the convention)."""
    image_part: dict[str, Any] = {"type": "image"}
    if image is not None:
        image_part["image"] = image
    system = example.get("system") or SYSTEM_PROMPT_SFT
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": [{"type": "text", "text": system}]}
    ]
    messages.append(
        {
            "role": "user",
            "content": [
                {"type": "text", "text": example["problem"] + coordinates_note(coordinates)},
                image_part,
            ],
        }
    )
    messages.append(
        {
            "role": "assistant",
            "content": [{"type": "text", "text": f"{example['thinking']} {example['solution']}"}],
        }
    )
    return messages
