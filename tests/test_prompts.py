"""Prompt texts are interface facts (SPEC §2): pinned verbatim, plus the chat structures.

The expected strings below are copied literally from SPEC.md §2 (``\\n`` there are newlines
of the original Python strings), NOT derived from :mod:`seg_r1.prompts`.
"""

from __future__ import annotations

import pytest

from seg_r1 import prompts

# SPEC §2, "RL and SOD training", System (no space before "Where": a concatenation).
RL_SYSTEM = (
    "A conversation between User and Assistant. The user asks a question, and the Assistant "
    "solves it. The assistant first thinks about the reasoning process in the mind and then "
    "provides the user with the answer. The reasoning process should enclosed within <think> "
    "</think> tags, and the bounding box, points and points labels should be enclosed within "
    "<bbox></bbox>, <points></points>, and <labels></labels>, respectively. i.e., <think> "
    "reasoning process here </think> <bbox>[x1,y1,x2,y2]</bbox>, "
    "<points>[[x1,y1],[x2,y2],...]</points>, <labels>[1,0,...]</labels>Where 1 indicates a "
    "foreground (object) point, and 0 indicates a background point. Only generate a moderate "
    "number of points, enough to clearly outline the object without overloading the system."
)
# SPEC §2, "RL and SOD training", User text.
FOREGROUND_USER = (
    "\nIdentify and segment all the primary objects in the image.\n\nOutput the result using "
    "the exact format:\n<think> reasoning process here </think> <bbox>[x1,y1,x2,y2]</bbox>, "
    "<points>[[x3,y3],[x4,y4],...]</points>, <labels>[1,0,...]</labels>\n"
)
# SPEC §2, "Pre-RL".
PRERL_USER = (
    "\nYou are given an image. Your task is to generate a sparse set of point prompts to help "
    "segment the most salient object in the image.\n\nThe points should be informative: "
    "include both foreground points (on the object) and background points (off the object) to "
    "help define the object boundary.\n\nOnly generate a moderate number of points, enough to "
    "clearly outline the object without overloading the system.\n\nOutput the result using "
    "the exact format:\n<points>[[x1,y1],[x2,y2],...]</points> <labels>[1,0,...]</labels>\n"
    "Where 1 indicates a foreground (object) point, and 0 indicates a background point.\n\n"
)
# SPEC §2, "Evaluation": the RL system prompt without its last sentence, points example
# [[x3,y3],[x4,y4],...].
EVAL_SYSTEM = (
    "A conversation between User and Assistant. The user asks a question, and the Assistant "
    "solves it. The assistant first thinks about the reasoning process in the mind and then "
    "provides the user with the answer. The reasoning process should enclosed within <think> "
    "</think> tags, and the bounding box, points and points labels should be enclosed within "
    "<bbox></bbox>, <points></points>, and <labels></labels>, respectively. i.e., <think> "
    "reasoning process here </think> <bbox>[x1,y1,x2,y2]</bbox>, "
    "<points>[[x3,y3],[x4,y4],...]</points>, <labels>[1,0,...]</labels>Where 1 indicates a "
    "foreground (object) point, and 0 indicates a background point."
)


def _texts(message: dict) -> list[str]:
    return [p["text"] for p in message["content"] if p["type"] == "text"]


def test_constants_are_verbatim():
    assert prompts.SYSTEM_PROMPT_RL == RL_SYSTEM
    assert prompts.SYSTEM_PROMPT_EVAL == EVAL_SYSTEM
    assert prompts.USER_PROMPT_FOREGROUND == FOREGROUND_USER
    assert prompts.USER_PROMPT_PRERL == PRERL_USER
    assert "</labels>Where" in RL_SYSTEM  # the original's missing space is kept


@pytest.mark.parametrize(
    ("task", "system", "user"),
    [
        ("rl", RL_SYSTEM, FOREGROUND_USER),
        ("sod", RL_SYSTEM, FOREGROUND_USER),
        ("foreground", EVAL_SYSTEM, FOREGROUND_USER),
    ],
)
def test_foreground_chats(task, system, user):
    chat = prompts.build_chat(task, image="IMG")
    assert [m["role"] for m in chat] == ["system", "user"]
    assert chat[0]["content"] == [{"type": "text", "text": system}]
    assert chat[1]["content"] == [{"type": "image", "image": "IMG"}, {"type": "text", "text": user}]


def test_prerl_chat_has_no_system_message():
    chat = prompts.build_chat("prerl", image="IMG")
    assert chat == [
        {
            "role": "user",
            "content": [{"type": "image", "image": "IMG"}, {"type": "text", "text": PRERL_USER}],
        }
    ]
    assert prompts.system_prompt("prerl") is None


def test_image_placeholder_without_image():
    chat = prompts.build_chat("rl")
    assert chat[1]["content"][0] == {"type": "image"}


def test_referring_chat():
    chat = prompts.build_chat("referring", image="IMG", query="the man on the left")
    assert chat[0]["content"][0]["text"] == EVAL_SYSTEM
    assert _texts(chat[1]) == ["Identify and segment the man on the left"]
    assert chat[1]["content"][0] == {"type": "image", "image": "IMG"}


@pytest.mark.parametrize(
    ("query", "query_type", "expected"),
    [
        (
            "What can be used to cut paper?",
            "sentence",
            "What can be used to cut paper? Identify and segment it.",
        ),
        ("Scissors", "class", "Identify and segment scissors."),
        ("Traffic Light", "", "Identify and segment traffic light."),
    ],
)
def test_reasoning_user_texts(query, query_type, expected):
    chat = prompts.build_chat("reasoning", image="IMG", query=query, query_type=query_type)
    assert chat[0]["content"][0]["text"] == EVAL_SYSTEM
    assert _texts(chat[1]) == [expected]


def test_sft_chat_with_system():
    example = {
        "system": "SYS",
        "problem": "Segment the cat.",
        "thinking": "<think> a cat </think>",
        "solution": "<bbox>[1,2,3,4]</bbox>",
    }
    chat = prompts.build_sft_chat(example, image="IMG")
    assert chat == [
        {"role": "system", "content": [{"type": "text", "text": "SYS"}]},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Segment the cat."},
                {"type": "image", "image": "IMG"},
            ],
        },
        {
            "role": "assistant",
            "content": [{"type": "text", "text": "<think> a cat </think> <bbox>[1,2,3,4]</bbox>"}],
        },
    ]


# The official sft.py's default system prompt for FCoT rows without a ``system`` field (read
# from the public Seg-R1 repository, seg-r1/src/open_r1/sft.py, convert_example): the RL
# prompt's format description without its last two sentences.
SFT_DEFAULT_SYSTEM = RL_SYSTEM.split("Where 1 indicates")[0]


@pytest.mark.parametrize("row", [{"system": ""}, {}])
def test_sft_chat_without_system_gets_the_official_default(row):
    example = {"problem": "P", "thinking": "T", "solution": "S", **row}
    chat = prompts.build_sft_chat(example)
    assert [m["role"] for m in chat] == ["system", "user", "assistant"]
    assert chat[0]["content"] == [{"type": "text", "text": SFT_DEFAULT_SYSTEM}]
    assert SFT_DEFAULT_SYSTEM.endswith("<labels>[1,0,...]</labels>")
    assert chat[1]["content"] == [{"type": "text", "text": "P"}, {"type": "image"}]
    assert chat[2]["content"] == [{"type": "text", "text": "T S"}]


@pytest.mark.parametrize("task", ["referring", "reasoning"])
def test_query_tasks_need_a_query(task):
    with pytest.raises(ValueError, match="non-empty query"):
        prompts.build_chat(task)


def test_unknown_task():
    with pytest.raises(ValueError, match="unknown task 'cod'"):
        prompts.build_chat("cod")
