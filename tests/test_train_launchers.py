"""Launchers: clear errors for missing inputs, and tiny CPU runs through ``accelerate launch``
(two processes over gloo for GRPO; each stage's launcher in the slow set)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run(
    script: str, env: dict[str, str], *args: str, timeout: int = 300
) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "PY": sys.executable, **env}
    return subprocess.run(
        ["bash", str(ROOT / "scripts" / script), *args],
        env=full_env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(scope="module")
def synthetic_root(tmp_path_factory):
    from seg_r1.data.synthetic_trees import write_foreground_dataset

    root = tmp_path_factory.mktemp("synthetic")
    write_foreground_dataset(root, 8, seed=0, size=112, split="train")
    return root


def test_missing_policy_says_how_to_get_it(tmp_path):
    result = run("run_grpo.sh", {"MODEL_PATH": str(tmp_path / "no-policy")})
    assert result.returncode == 1
    assert "policy checkpoint" in result.stderr and "python -m seg_r1.tiny" in result.stderr
    assert "Qwen/Qwen2.5-VL-3B-Instruct" in result.stderr


def test_missing_sam2_checkpoint_points_to_third_party_readme(tiny_ckpts, tmp_path):
    env = {"MODEL_PATH": str(tiny_ckpts.policy), "SAM2_CHECKPOINT": str(tmp_path / "sam2.pt")}
    for script in ("run_prerl.sh", "run_grpo.sh", "run_grpo_sod.sh"):
        result = run(script, env)
        assert result.returncode == 1, script
        assert "third_party/README.md" in result.stderr and "sam2.pt" in result.stderr


def test_missing_data_and_sft_data(tiny_ckpts, tmp_path):
    env = {
        "MODEL_PATH": str(tiny_ckpts.policy),
        "SAM2_CHECKPOINT": str(tiny_ckpts.sam2_checkpoint),
        "DATA_ROOT": str(tmp_path / "no-data"),
    }
    result = run("run_grpo.sh", env)
    assert result.returncode == 1 and "datasets/README.md" in result.stderr
    result = run(
        "sft.sh", {"MODEL_PATH": str(tiny_ckpts.policy), "SFT_DATA": str(tmp_path / "FCoT")}
    )
    assert result.returncode == 1 and "geshang/FCoT" in result.stderr


def test_grpo_two_processes_over_gloo(tiny_ckpts, synthetic_root, tmp_path):
    """RECIPE=configs/tiny/grpo.yaml NUM_PROCESSES=2 bash scripts/run_grpo.sh (CPU, gloo)."""
    env = {
        "RECIPE": "configs/tiny/grpo.yaml",
        "MODEL_PATH": str(tiny_ckpts.policy),
        "DATA_ROOT": str(synthetic_root),
        "OUTPUT_DIR": str(tmp_path / "out"),
        "NUM_PROCESSES": "2",
    }
    args = ("--max_steps", "2", "--save_strategy", "no", "--per_device_train_batch_size", "4")
    result = run("run_grpo.sh", env, *args)
    assert result.returncode == 0, result.stdout[-3000:]
    state = json.loads((tmp_path / "out" / "trainer_state.json").read_text())
    assert state["global_step"] == 2
    assert "process 0 of 2" in result.stdout and "process 1 of 2" in result.stdout
    assert (tmp_path / "out" / "model.safetensors").is_file()
    assert "rewards/segmentation/mean" in state["log_history"][0]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("script", "recipe"),
    [
        ("sft.sh", "configs/tiny/sft.yaml"),
        ("run_prerl.sh", "configs/tiny/prerl.yaml"),
        ("run_grpo_sod.sh", "configs/tiny/grpo_sod.yaml"),
    ],
)
def test_each_launcher_runs_a_tiny_recipe_and_resumes(
    tiny_ckpts, synthetic_root, tmp_path, script, recipe
):
    env = {
        "RECIPE": recipe,
        "MODEL_PATH": str(tiny_ckpts.policy),
        "SAM2_CHECKPOINT": str(tiny_ckpts.sam2_checkpoint),
        "SAM2_CONFIG": str(tiny_ckpts.sam2_config),
        "DATA_ROOT": str(synthetic_root),
        "OUTPUT_DIR": str(tmp_path / "out"),
    }
    args = (
        "--max_steps",
        "2",
        "--save_strategy",
        "steps",
        "--save_steps",
        "1",
        "--logging_steps",
        "1",
    )
    first = run(script, env, *args)
    assert first.returncode == 0, first.stdout[-3000:]
    again = run(script, env, *args)  # checkpoints exist: refuse without RESUME
    assert again.returncode != 0 and "RESUME=1" in again.stdout
    resumed = run(script, {**env, "RESUME": "1"}, "--max_steps", "3", "--save_strategy", "no")
    assert resumed.returncode == 0, resumed.stdout[-3000:]
    state = json.loads((tmp_path / "out" / "trainer_state.json").read_text())
    assert state["global_step"] == 3
