"""Resuming GRPO from a checkpoint continues exactly like the uninterrupted run."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
#: Logged values compared step by step after the resume point.
COMPARED = (
    "loss",
    "grad_norm",
    "reward",
    "rewards/length_reward/mean",
    "rewards/format/mean",
    "completions/mean_length",
    "kl",
    "entropy",
)


def length_reward(completions, **kwargs):
    """A reward with variance for a random policy (the Seg-R1 rewards are all 0 for it)."""
    return [len(c[0]["content"]) / 100.0 for c in completions]


@pytest.fixture(scope="module")
def synthetic_root(tmp_path_factory):
    from seg_r1.data.synthetic_trees import write_foreground_dataset

    root = tmp_path_factory.mktemp("synthetic")
    write_foreground_dataset(root, 16, seed=0, size=112, split="train")
    return root


def _grpo(tiny, data, out, *extra):
    from seg_r1 import grpo

    argv = [
        "--config", str(ROOT / "configs" / "tiny" / "grpo.yaml"),
        "--model_name_or_path", str(tiny.policy),
        "--data_root", str(data),
        "--output_dir", str(out),
        "--max_steps", "4",
        "--save_strategy", "steps",
        "--save_steps", "2",
        "--learning_rate", "1e-3",
        "--max_completion_length", "24",
        "--reward_funcs", "format", "segmentation", "test_train_resume.length_reward",
        *extra,
    ]  # fmt: skip
    return grpo.main(*grpo.parse_args(argv))


def test_resume_gives_the_uninterrupted_run(tiny_ckpts, synthetic_root, tmp_path):
    full = _grpo(tiny_ckpts, synthetic_root, tmp_path / "full")
    # What a run killed after step 2 leaves behind: its step-2 checkpoint only.
    shutil.copytree(tmp_path / "full" / "checkpoint-2", tmp_path / "resumed" / "checkpoint-2")
    resumed = _grpo(
        tiny_ckpts, synthetic_root, tmp_path / "resumed", "--resume_from_checkpoint", "latest"
    )

    def by_step(trainer):
        return {e["step"]: e for e in trainer.state.log_history if "reward" in e}

    after_full, after_resumed = by_step(full), by_step(resumed)
    assert sorted(after_resumed) == [1, 2, 3, 4]  # steps 1-2 come from the checkpoint's state
    for step in (3, 4):
        for key in COMPARED:
            assert after_resumed[step][key] == pytest.approx(
                after_full[step][key], rel=1e-5, abs=1e-7
            ), (
                step,
                key,
            )
    full_params = dict(full.accelerator.unwrap_model(full.model).named_parameters())
    for name, param in resumed.accelerator.unwrap_model(resumed.model).named_parameters():
        torch.testing.assert_close(param, full_params[name], rtol=1e-5, atol=1e-7, msg=name)


def test_fresh_run_refuses_a_folder_with_checkpoints(tiny_ckpts, synthetic_root, tmp_path):
    from seg_r1.launch import LaunchError

    (tmp_path / "out" / "checkpoint-2").mkdir(parents=True)
    with pytest.raises(LaunchError, match="RESUME=1"):
        _grpo(tiny_ckpts, synthetic_root, tmp_path / "out")
