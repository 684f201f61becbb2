"""SFT smoke training on the tiny policy: traces synthesised from masks, and FCoT-schema data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def synthetic_root(tmp_path_factory):
    from seg_r1.data.synthetic_trees import write_foreground_dataset

    root = tmp_path_factory.mktemp("synthetic")
    write_foreground_dataset(root, 8, seed=0, size=112, split="train")
    return root


def _sft(tiny, out, *extra):
    from seg_r1 import sft

    argv = [
        "--config", str(ROOT / "configs" / "tiny" / "sft.yaml"),
        "--model_name_or_path", str(tiny.policy),
        "--output_dir", str(out),
        "--max_steps", "2",
        "--save_strategy", "no",
        "--warmup_steps", "0",
        "--logging_steps", "1",
        "--learning_rate", "1e-2",  # every weight visibly moves in 2 steps
        "--per_device_train_batch_size", "4",
        *extra,
    ]  # fmt: skip
    return sft.main(*sft.parse_args(argv))


def test_sft_on_synthesised_traces_moves_every_parameter(tiny_ckpts, synthetic_root, tmp_path):
    from transformers import AutoModelForImageTextToText

    initial = AutoModelForImageTextToText.from_pretrained(tiny_ckpts.policy).state_dict()
    trainer = _sft(tiny_ckpts, tmp_path / "out", "--data_root", str(synthetic_root))

    model = trainer.accelerator.unwrap_model(trainer.model)
    unchanged = [
        n
        for n, p in model.named_parameters()
        if p.requires_grad and torch.equal(p.detach(), initial[n])
    ]
    assert unchanged == []
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    assert losses and all(np.isfinite(losses))
    assert (tmp_path / "out" / "model.safetensors").is_file()
    assert (tmp_path / "out" / "processor_config.json").is_file()


def test_sft_on_fcot_schema_data(tiny_ckpts, synthetic_root, tmp_path):
    from seg_r1.data import load_mask
    from seg_r1.data.foreground import load_foreground_dataset
    from seg_r1.prompts import USER_PROMPT_FOREGROUND
    from seg_r1.training_data import synthesize_trace

    source = load_foreground_dataset("synthetic", root=synthetic_root, split="train")
    records = []
    for i in range(4):
        trace = synthesize_trace(load_mask(source[i]))
        records.append(
            {
                "problem": USER_PROMPT_FOREGROUND,
                "image": source[i]["image"]["path"]
                if isinstance(source[i]["image"], dict)
                else str(sorted((synthetic_root / "Train" / "Image").iterdir())[i]),
                "thinking": f"<think> {trace.think} </think>",
                "solution": trace.answer.split("</think> ", 1)[1],
            }
        )
    (tmp_path / "fcot.jsonl").write_text("\n".join(json.dumps(r) for r in records))
    trainer = _sft(
        tiny_ckpts, tmp_path / "out", "--sft_data", str(tmp_path / "fcot.jsonl"), "--max_steps", "1"
    )
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    assert trainer.state.global_step == 1 and all(np.isfinite(losses))
