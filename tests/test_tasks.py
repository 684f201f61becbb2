"""The task table (:mod:`seg_r1.tasks`): SPEC §2 / §5 facts, and every consumer reads it."""

from __future__ import annotations

import pytest

from seg_r1 import prompts, rewards
from seg_r1.tasks import EVAL_TASKS, STAGES, TASKS, get_task


def test_spec_facts():
    # SPEC §2: frames 768 (training, COD/SOD) and 1024 (referring, reasoning, demo).
    assert {t: s.frame_size for t, s in TASKS.items()} == {
        "prerl": 768, "rl": 768, "sod": 768, "foreground": 768, "referring": 1024, "reasoning": 1024,
    }  # fmt: skip
    # Pre-RL answers points only and has no system message; the rest is the full grammar.
    assert [t for t, s in TASKS.items() if s.answer_mode == "points"] == ["prerl"]
    assert get_task("prerl").system is None
    assert {t for t, s in TASKS.items() if s.needs_query} == {"referring", "reasoning"}
    # The official evaluation scripts' generation budgets.
    assert {t: get_task(t).eval_max_new_tokens for t in EVAL_TASKS} == {
        "foreground": 1024, "referring": 512, "reasoning": 512,
    }  # fmt: skip
    assert STAGES == ("prerl", "rl", "sod") and all(get_task(s).is_stage for s in STAGES)
    with pytest.raises(ValueError, match="unknown task 'cod'"):
        get_task("cod")


def test_stage_rewards_exist_and_agree_with_the_stage_grammar():
    """Each stage's default rewards are registry rewards whose answer mode is the stage's."""
    for stage in STAGES:
        spec = get_task(stage)
        assert spec.rewards
        for name in spec.rewards:
            assert name in rewards.REWARD_FUNCS
            if name in rewards.MASK_REWARDS or name.endswith("format"):
                mode = "points" if name.startswith("prerl") else "full"
                assert mode == spec.answer_mode, (stage, name)


def test_prompts_follow_the_table():
    assert prompts.system_prompt("rl") == prompts.SYSTEM_PROMPT_RL
    assert prompts.system_prompt("sod") == prompts.SYSTEM_PROMPT_RL
    assert prompts.system_prompt("prerl") is None
    for task in EVAL_TASKS:
        assert prompts.system_prompt(task) == prompts.SYSTEM_PROMPT_EVAL
    assert prompts.user_text("prerl") == prompts.USER_PROMPT_PRERL
    assert prompts.user_text("foreground") == prompts.USER_PROMPT_FOREGROUND
