"""The quickstart chain learns (slow, ~9 min on 2 cores).

Runs the quickstart recipe as it ships (:mod:`seg_r1.quickstart`: M-RoPE theta 4, 224 images,
single salient objects, SFT 500 steps, GRPO 200 steps at beta 0). Asserts that SFT teaches the
answer grammar, that GRPO raises the reward, and that the GRPO policy's held-out IoU beats the
SFT policy and the best constant *box* answer fitted on the training split.

It does NOT assert that the policy reads the image: measured (docs/learning_demo.md), the same
policy scores as well when it is shown another image (``iou_shuffled``), and its best own
answer given to every image scores as well as it does (``iou_best_own_answer``): its gain over
the box-only constant is a better answer shape (box + points), not localisation. Issue 9 stays
open on that.

    .venv/bin/python -m pytest -m slow tests/test_learning_demo.py
"""

from __future__ import annotations

import json

import pytest

SUMMARY_KEYS = {
    "iou_constant",
    "iou_sft",
    "iou_grpo",
    "iou_shuffled",
    "iou_best_own_answer",
    "reward_first",
    "reward_last",
    "steps",
    "seconds",
}


@pytest.mark.slow
def test_quickstart_learns_and_beats_the_constant_box(tmp_path):
    from seg_r1 import quickstart

    summary = quickstart.main(["--out", str(tmp_path)])
    assert SUMMARY_KEYS <= set(summary)
    assert json.loads((tmp_path / "summary.json").read_text()) == summary
    assert summary["steps"] == 200
    assert summary["format_ok_sft"] >= 0.75  # SFT on synthesised traces teaches the grammar
    assert summary["format_ok_grpo"] >= 0.9
    assert summary["reward_last"] > summary["reward_first"] + 0.05  # GRPO raises the reward
    assert summary["iou_grpo"] > summary["iou_constant"]
    assert summary["iou_grpo"] > summary["iou_sft"]
    assert (tmp_path / "curves.png").is_file()
    assert (tmp_path / "grpo" / "visualizations").is_dir()
