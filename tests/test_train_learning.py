"""The quickstart chain learns: SFT teaches the answer format, GRPO raises the reward (slow).

This is the learning test of the training stage (tiny models on CPU, ~3 minutes). It does NOT
assert that the tiny policy localises objects: SPEC §9 measured that it does not, and the
quickstart reports the honest constant-box baseline next to it.
"""

from __future__ import annotations

import json

import pytest

SUMMARY_KEYS = {
    "iou_constant",
    "iou_sft",
    "iou_grpo",
    "reward_first",
    "reward_last",
    "steps",
    "seconds",
}


@pytest.mark.slow
def test_quickstart_learns_the_format_and_raises_the_reward(tmp_path):
    from seg_r1 import quickstart

    summary = quickstart.main(
        ["--out", str(tmp_path), "--n-train", "128", "--n-test", "16", "--sft-steps", "120",
         "--grpo-steps", "100"]
    )  # fmt: skip
    assert SUMMARY_KEYS <= set(summary)
    assert json.loads((tmp_path / "summary.json").read_text()) == summary
    assert summary["steps"] == 100
    assert summary["format_ok_sft"] >= 0.75  # SFT on synthesised traces teaches the grammar
    assert summary["reward_last"] > summary["reward_first"] + 0.05  # GRPO raises the reward
    assert 0.0 <= summary["iou_constant"] <= 1.0 and 0.0 <= summary["iou_grpo"] <= 1.0
    assert (tmp_path / "grpo" / "visualizations").is_dir()
