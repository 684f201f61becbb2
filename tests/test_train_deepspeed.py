"""DeepSpeed ZeRO-2 and ZeRO-3 actually run: two CPU processes (DeepSpeed's CPU accelerator
falls back to gloo) train the tiny GRPO recipe through ``scripts/run_grpo.sh`` exactly as a user
launches it, with the repository's own accelerate configs and nothing overridden but the sizes:

    ACCELERATE_CONFIG=configs/accelerate/zero3.yaml NUM_PROCESSES=2 \\
        RECIPE=configs/tiny/grpo.yaml bash scripts/run_grpo.sh --max_steps 2

Checked: the launcher returns 0 (a recipe with ``bf16: false`` is not refused by a config that
hard-codes bf16, and no rank aborts at exit after the run has saved), every trainable parameter
changed, the reward components are logged, the checkpoint saved under ZeRO-3 loads back with
``from_pretrained`` as a normal checkpoint, and ``RESUME=1`` continues from the DeepSpeed
checkpoint. Slow (~2.5 min per stage): run by ``.ci/run``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow


def _launch(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    full_env = {
        **os.environ,
        "PY": sys.executable,
        # the test's varying reward (tests/test_train_grpo.py) is importable in each rank
        "PYTHONPATH": os.pathsep.join(
            filter(None, [str(ROOT / "tests"), os.environ.get("PYTHONPATH")])
        ),
        **env,
    }
    return subprocess.run(
        ["bash", str(ROOT / "scripts" / "run_grpo.sh"), *args],
        env=full_env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.fixture(scope="module")
def synthetic_root(tmp_path_factory):
    from seg_r1.data.synthetic_trees import write_foreground_dataset

    root = tmp_path_factory.mktemp("synthetic")
    write_foreground_dataset(root, 8, seed=0, size=112, split="train")
    return root


def _weights(path: Path) -> dict[str, torch.Tensor]:
    from transformers import AutoModelForImageTextToText

    model = AutoModelForImageTextToText.from_pretrained(path, dtype=torch.float32)
    return {name: p.detach().clone() for name, p in model.named_parameters()}


@pytest.mark.parametrize("stage", ["zero2", "zero3"])
def test_deepspeed_trains_saves_loads_and_resumes(tiny_ckpts, synthetic_root, tmp_path, stage):
    out = tmp_path / "out"
    env = {
        "ACCELERATE_CONFIG": f"configs/accelerate/{stage}.yaml",
        "NUM_PROCESSES": "2",
        "RECIPE": "configs/tiny/grpo.yaml",
        "MODEL_PATH": str(tiny_ckpts.policy),
        "DATA_ROOT": str(synthetic_root),
        "OUTPUT_DIR": str(out),
    }
    common = (
        "--reward_funcs",
        "format",
        "segmentation",
        "test_train_grpo.length_reward",
        "--max_completion_length",
        "24",
        "--per_device_train_batch_size",
        "4",
        "--logging_steps",
        "1",
    )
    first = _launch(env, *common, "--max_steps", "2", "--save_steps", "1")
    log = first.stdout + first.stderr
    # rc 0: no DeepSpeed/TrainingArguments bf16 mismatch, no rank aborting at exit
    assert first.returncode == 0, log[-4000:]
    assert "terminate called" not in log
    assert f"accelerate (configs/accelerate/{stage}.yaml)" in log
    assert "process 0 of 2" in log and "process 1 of 2" in log

    state = json.loads((out / "trainer_state.json").read_text())
    assert state["global_step"] == 2
    steps = [entry for entry in state["log_history"] if "reward" in entry]
    assert len(steps) == 2
    for name in (
        "rewards/format/mean",
        "rewards/segmentation/mean",
        "rewards/length_reward/mean",
        "segmenter/encoder_calls",
    ):
        assert name in steps[0], name
    assert all(entry["reward_std"] > 0 for entry in steps)  # a learning signal in each step
    assert (out / "checkpoint-2").is_dir()

    # The saved policy is a normal checkpoint (ZeRO-3 gathers the shards on save) in which
    # every parameter moved away from the initial weights.
    initial = _weights(tiny_ckpts.policy)
    trained = _weights(out)
    assert trained.keys() == initial.keys()
    unchanged = [name for name, value in trained.items() if torch.equal(value, initial[name])]
    assert unchanged == []

    # RESUME=1 continues from the DeepSpeed checkpoint to step 3.
    resumed = _launch({**env, "RESUME": "1"}, *common, "--max_steps", "3", "--save_strategy", "no")
    log = resumed.stdout + resumed.stderr
    assert resumed.returncode == 0, log[-4000:]
    assert "terminate called" not in log
    state = json.loads((out / "trainer_state.json").read_text())
    assert state["global_step"] == 3
    # steps 1-2 come from checkpoint-2's state, only step 3 was trained again
    assert [entry["step"] for entry in state["log_history"] if "reward" in entry] == [1, 2, 3]
    assert log.count("'reward': ") == 1


_PENDING_WORK_AT_EXIT = """
import sys, torch, torch.distributed as dist
from seg_r1.launch import finish_distributed
dist.init_process_group("gloo")
for _ in range(50):  # asynchronous collectives still queued when the script ends
    dist.all_reduce(torch.ones(1_000_000), async_op=True)
if sys.argv[1] == "finish":
    finish_distributed()
"""


def test_finished_ranks_exit_cleanly_with_gloo_work_in_flight(tmp_path):
    """The exit abort behind "terminate called without an active exception" (exit -6), made
    reproducible: a gloo rank that exits with collectives in flight aborts in most runs (6 of
    8 measured without :func:`finish_distributed`); with it, each of three runs exits 0."""
    script = tmp_path / "pending.py"
    script.write_text(_PENDING_WORK_AT_EXIT)
    launch = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
    ]
    for _ in range(3):
        result = subprocess.run(
            [*launch, str(script), "finish"], capture_output=True, text=True, timeout=120
        )
        assert result.returncode == 0, result.stderr[-2000:]
        assert "terminate called" not in result.stdout + result.stderr
