"""The learning-proof bars and the seeds table (seg_r1.learning), on hand-written summaries."""

from __future__ import annotations

import json

import pytest

from seg_r1.learning import LEARNING_BARS, learning_bars, main, seeds_table


def summary(seed=0, sft=0.30, grpo=0.62, known=0.45, shuffled=0.20, seconds=880.0):
    return {
        "seed": seed,
        "iou_sft": sft,
        "iou_grpo": grpo,
        "iou_constant_known": known,
        "iou_shuffled": shuffled,
        "seconds": seconds,
        "sft_steps_per_second": 1.25,
        "grpo_steps_per_second": None,
    }


def test_bars_are_the_issues_differences():
    assert set(LEARNING_BARS) == {"grpo_gain", "above_known_constant", "shuffled_drop"}
    bars = learning_bars(summary())
    # 0.62 - 0.30 = 0.32 >= 0.15; 0.62 - 0.45 = 0.17 >= 0.10; 0.62 - 0.20 = 0.42 >= 0.30
    assert bars["grpo_gain"] == {"value": 0.32, "bar": 0.15, "ok": True}
    assert bars["above_known_constant"] == {"value": 0.17, "bar": 0.10, "ok": True}
    assert bars["shuffled_drop"] == {"value": 0.42, "bar": 0.30, "ok": True}
    assert bars["seconds"] == {"value": 880.0, "bar": 900.0, "ok": True}


@pytest.mark.parametrize(
    "change, missed",
    [
        ({"sft": 0.50}, "grpo_gain"),  # 0.62 - 0.50 = 0.12 < 0.15
        ({"known": 0.55}, "above_known_constant"),  # 0.07 < 0.10
        ({"shuffled": 0.35}, "shuffled_drop"),  # 0.27 < 0.30
        ({"seconds": 901.0}, "seconds"),
    ],
)
def test_each_bar_can_be_missed_alone(change, missed):
    bars = learning_bars(summary(**change))
    assert [name for name, bar in bars.items() if not bar["ok"]] == [missed]


def test_seeds_table_one_row_per_summary(tmp_path, capsys):
    paths = []
    for seed, sft in ((0, 0.30), (1, 0.50)):
        path = tmp_path / f"seed{seed}.json"
        path.write_text(json.dumps(summary(seed=seed, sft=sft)))
        paths.append(str(path))
    table = main([*paths, "--out", str(tmp_path / "seeds.md")])
    assert (tmp_path / "seeds.md").read_text() == table == capsys.readouterr().out
    lines = table.strip().splitlines()
    assert len(lines) == 2 + 2
    row0 = [c.strip() for c in lines[2].strip("|").split("|")]
    row1 = [c.strip() for c in lines[3].strip("|").split("|")]
    assert row0[:6] == ["0", "0.300", "0.620", "0.450", "0.200", "+0.320 (>= 0.15, ok)"]
    assert row1[5] == "+0.120 (>= 0.15, MISSED)"
    assert row0[-3:] == ["880 (<= 900, ok)", "1.25", "-"]
    assert table == seeds_table([summary(0, 0.30), summary(1, 0.50)])
