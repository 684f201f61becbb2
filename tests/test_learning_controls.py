"""The learning controls (seg_r1.learning_controls) on a two-step quickstart run: each control
starts from the run's SFT policy, trains the run's GRPO step count, the SFT one at the GRPO
stage's learning rate, the GRPO one on masks shifted by one image; the scores are the run's
held-out scoring, the results resume, and bad runs are refused with their path."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from safetensors.torch import load_file

from seg_r1 import learning, learning_controls, quickstart
from seg_r1.data.synthetic_trees import write_foreground_dataset

SFT_ARGS = "--per_device_train_batch_size 2 --logging_steps 1"
GRPO_ARGS = "--max_completion_length 8 --num_generations 2 --per_device_train_batch_size 4"


@pytest.fixture(scope="module")
def run(tiny_ckpts, tmp_path_factory):
    """A finished two-step quickstart run folder: data, sft/, grpo/, summary.json."""
    root = tmp_path_factory.mktemp("controls_run")
    data = root / "data"
    write_foreground_dataset(data, 6, 0, quickstart.FRAME_SIZE, "train", camouflage_ratio=0.0)
    write_foreground_dataset(data, 3, 0, quickstart.FRAME_SIZE, "test", camouflage_ratio=0.0)
    quickstart.run_stage("sft", tiny_ckpts.policy, data, root / "sft", 2, 0, extra=SFT_ARGS.split())
    quickstart.run_stage("grpo", root / "sft", data, root / "grpo", 2, 0, extra=GRPO_ARGS.split())
    summary = {"seed": 0, "steps": 2, "sft_from": None, "sft_args": SFT_ARGS,
               "grpo_args": GRPO_ARGS, "iou_sft": 0.25, "iou_grpo": 0.5,
               "iou_shuffled": 0.125}  # fmt: skip
    (root / "summary.json").write_text(json.dumps(summary))
    return root


def _weights(folder):
    return load_file(folder / "model.safetensors")


def _mask(path):
    return np.asarray(Image.open(path).convert("L"))


def _changed(a, b):
    return any(not np.array_equal(a[k].numpy(), b[k].numpy()) for k in a)


def test_controls_train_from_the_run_and_score_on_its_held_out_scenes(run, monkeypatch):
    stages, scores = [], []

    def spy_stage(stage, policy, data, out, steps, seed, extra=()):
        stages.append((stage, policy, data, out, steps, seed, list(extra)))
        return quickstart.run_stage(stage, policy, data, out, steps, seed, extra=extra)

    def spy_score(*args):
        scores.append((args, learning.score_checkpoint(*args)))
        return scores[-1][1]

    monkeypatch.setattr(learning_controls, "run_stage", spy_stage)
    monkeypatch.setattr(learning_controls, "score_checkpoint", spy_score)
    monkeypatch.setattr(learning_controls, "MAX_NEW_TOKENS", 8)  # a random policy: no answer
    table = learning_controls.main([str(run), "--out", str(run / "table.md")])
    controls = json.loads((run / "controls.json").read_text())
    assert sorted(controls) == ["sft_control", "shifted_masks"]

    # each control: from the run's SFT policy, the GRPO stage's 2 steps, the run's seed; the SFT
    # one with the run's SFT arguments then GRPO_OVERRIDES' learning rate, constant; the GRPO
    # one with the run's GRPO arguments on the shifted copy of the training split
    grpo_rate = quickstart.GRPO_OVERRIDES[quickstart.GRPO_OVERRIDES.index("--learning_rate") + 1]
    sft_extra = [*SFT_ARGS.split(), "--learning_rate", f"{float(grpo_rate):g}", "--lr_scheduler_type",
                 "constant", "--warmup_steps", "0"]  # fmt: skip
    assert stages == [
        ("sft", run / "sft", run / "data", run / "sft_control", 2, 0, sft_extra),
        ("grpo", run / "sft", run / "data_shifted_masks", run / "grpo_shifted_masks", 2, 0,
         GRPO_ARGS.split()),
    ]  # fmt: skip
    state = json.loads((run / "sft_control" / "trainer_state.json").read_text())
    rates = [e["learning_rate"] for e in state["log_history"] if "learning_rate" in e]
    assert state["global_step"] == 2 and rates
    assert all(r == pytest.approx(float(grpo_rate)) for r in rates)
    assert _changed(_weights(run / "sft"), _weights(run / "sft_control"))
    state = json.loads((run / "grpo_shifted_masks" / "trainer_state.json").read_text())
    assert state["global_step"] == 2

    # scored on the run's held-out scenes as the chain scores its policies
    fixed = (quickstart.FRAME_SIZE, quickstart.CLASSICAL_ITERATIONS, 16, 8, quickstart.OWN_ANSWERS)
    assert [args for args, _ in scores] == [
        (run / folder, run / "data", *fixed) for folder in learning_controls.CONTROLS.values()
    ]
    for name, (_, scored) in zip(learning_controls.CONTROLS, scores):
        assert controls[name]["iou"] == round(scored["iou"], 4)
        assert controls[name]["iou_shuffled"] == round(scored["iou_shuffled"], 4)
        assert scored["n"] == 3

    # shifted masks: image i of the copy has image i+1's mask (the last one the first's)
    images = sorted((run / "data" / "Train" / "Image").glob("*.jpg"))
    original = [_mask(run / "data" / "Train" / "GT_Object" / f"{p.stem}.png") for p in images]
    shifted_tree = run / "data_shifted_masks"
    for i, image in enumerate(images):
        assert (shifted_tree / "Train" / "Image" / image.name).read_bytes() == image.read_bytes()
        mask = _mask(shifted_tree / "Train" / "GT_Object" / f"{image.stem}.png")
        assert np.array_equal(mask, original[(i + 1) % len(images)])
    assert any(not np.array_equal(original[i], original[(i + 1) % 6]) for i in range(6))

    # the table: GRPO's margins over SFT and each control, from the figures above
    row = table.splitlines()[2].split(" | ")
    a, b = controls["sft_control"]["iou"], controls["shifted_masks"]["iou"]
    assert row[0] == f"| {run}" and row[2:6] == ["0.250", "0.500", "0.125", f"{a:.3f}"]
    assert row[6] == f"{b:.3f}" and row[7:9] == ["+0.250", f"{0.5 - a:+.3f}"]
    assert row[9].startswith(f"{0.5 - b:+.3f}")
    assert (run / "table.md").read_text() == table

    # a second call keeps what is done (no retraining)
    stages.clear()
    assert learning_controls.main([str(run), "--only", "sft_control"]) == table
    assert stages == []


def test_bad_runs_are_refused_with_their_path(run, tmp_path):
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "summary.json")):
        learning_controls.run_control(tmp_path, "sft_control")
    (tmp_path / "summary.json").write_text(json.dumps({"grpo_args": "--data_root elsewhere"}))
    with pytest.raises(ValueError, match="--data_root"):
        learning_controls.run_control(tmp_path, "shifted_masks")
    with pytest.raises(ValueError, match="unknown control"):
        learning_controls.run_control(run, "nothing")
    with pytest.raises(FileNotFoundError, match="not a finished training stage"):
        learning_controls.logged_learning_rate(tmp_path)

    data = tmp_path / "data"
    write_foreground_dataset(data, 2, 0, 64, "train", camouflage_ratio=0.0)
    missing = next((data / "Train" / "GT_Object").glob("*.png"))
    missing.unlink()
    with pytest.raises(FileNotFoundError, match=missing.name):
        learning_controls.write_shifted_masks(data, tmp_path / "shifted")


def test_controls_table_shows_what_is_missing():
    summary = {"seed": 3, "iou_sft": 0.4, "iou_grpo": 0.65}
    table = learning_controls.controls_table([("r", summary, {"sft_control": {"iou": 0.6}})])
    assert (
        table.splitlines()[2] == "| r | 3 | 0.400 | 0.650 | - | 0.600 | - | +0.250 | +0.050 | - |"
    )


def test_sampled_measure_of_every_policy_resumes_and_is_tabled(run, monkeypatch):
    """``--samples K``: the run's SFT, GRPO and control policies each scored once with K
    sampled answers a scene and the run's seed (figures from a spy, distinct per policy); kept
    in controls.json across calls, redone when K changes; the second table's margins are
    GRPO's sampled IoU minus each other policy's."""
    calls = []
    figures = {"sft": 0.31, "grpo": 0.58, "sft_control": 0.47, "grpo_shifted_masks": 0.44}

    def spy_score(policy, data, *args):
        calls.append((policy, data, *args))
        value = figures[policy.name]
        return {
            "iou": value + 0.2,
            "iou_sampled": value,
            "iou_best_of_samples": value + 0.3,
            "iou_sampled_shuffled": value - 0.2,
        }

    monkeypatch.setattr(learning_controls, "score_checkpoint", spy_score)
    learning_controls.run_controls(run)  # the controls exist (from the test above, or now)
    table = learning_controls.main([str(run), "--samples", "3"])
    fixed = (quickstart.FRAME_SIZE, quickstart.CLASSICAL_ITERATIONS, 16,
             quickstart.MAX_NEW_TOKENS, quickstart.OWN_ANSWERS, 3, 0)  # fmt: skip
    folders = ["sft", "grpo", "sft_control", "grpo_shifted_masks"]
    assert calls == [(run / folder, run / "data", *fixed) for folder in folders]
    sampled = json.loads((run / "controls.json").read_text())["sampled"]
    assert sampled["samples"] == 3 and sampled["shifted_masks"] == {
        "iou": 0.64, "iou_sampled": 0.44, "iou_best_of_samples": 0.74,
        "iou_sampled_shuffled": 0.24}  # fmt: skip

    greedy, second = table.split("3 sampled answers a scene (temperature 1):")
    assert greedy.splitlines()[0].startswith("| run | seed | iou_sft | iou_grpo | iou_grpo_shuf")
    head, _, row = second.strip().splitlines()
    assert head.startswith("| run | seed | iou_sampled_sft | iou_sampled_grpo | iou_sampled_grpo_")
    assert row == (f"| {run} | 0 | 0.310 | 0.580 | 0.380 | 0.470 | 0.440 | +0.270 | +0.110 "
                   "| +0.140 |")  # fmt: skip

    calls.clear()
    assert learning_controls.main([str(run), "--samples", "3"]) == table and calls == []
    learning_controls.main([str(run), "--samples", "2"])
    assert len(calls) == 4
    # figures stored before the shuffled measure existed are scored again
    stored = json.loads((run / "controls.json").read_text())
    del stored["sampled"]["grpo"]["iou_sampled_shuffled"]
    (run / "controls.json").write_text(json.dumps(stored))
    learning_controls.main([str(run), "--samples", "2"])
    assert len(calls) == 8


def test_learning_seeds_script_runs_the_controls_when_asked(tmp_path):
    """scripts/learning_seeds.sh with a stand-in Python that logs its arguments: a seed whose
    summary.json exists is kept, the others run; CONTROLS=1 adds the controls of every seed."""
    import os
    import subprocess
    from pathlib import Path

    fake = tmp_path / "python"
    fake.write_text('#!/bin/sh\necho "$@" >> "$CALLS"\n')
    fake.chmod(0o755)
    out = tmp_path / "seeds"
    (out / "seed0").mkdir(parents=True)
    (out / "seed0" / "summary.json").write_text("{}")
    script = Path(__file__).resolve().parents[1] / "scripts" / "learning_seeds.sh"
    for controls in ("0", "1"):
        calls = tmp_path / f"calls{controls}"
        env = {**os.environ, "PY": str(fake), "CALLS": str(calls), "OUT_DIR": str(out),
               "SEEDS": "0 1", "CONTROLS": controls}  # fmt: skip
        subprocess.run(["bash", str(script), "--grpo-steps", "3"], env=env, check=True)
        expected = [
            f"-m seg_r1.quickstart --out {out}/seed1 --seed 1 --grpo-steps 3",
            f"-m seg_r1.learning {out}/seed0/summary.json {out}/seed1/summary.json "
            f"--out {out}/seeds.md",
        ]
        if controls == "1":
            expected.append(
                f"-m seg_r1.learning_controls {out}/seed0 {out}/seed1 --out {out}/controls.md"
            )
        assert calls.read_text().splitlines() == expected
