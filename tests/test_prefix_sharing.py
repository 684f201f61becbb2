"""Shared-prompt scoring (seg_r1.prefix_sharing) gives TRL's log-probs, entropies and gradients.

The oracle is TRL's own computation: the policy with TRL's fused log-prob head, called on the
full rows (``fused_lm_head=True`` with the completion tokens as labels), exactly as
``GRPOTrainer._get_per_token_logps_and_entropies`` calls it.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from seg_r1.prefix_sharing import distinct_prompts, prefix_sharing_unsupported

G = 3  # completions per prompt


@pytest.fixture(scope="module")
def policy(tiny_ckpts):
    from transformers import AutoModelForImageTextToText, AutoProcessor
    from trl.trainer.utils import add_fused_lm_head

    processor = AutoProcessor.from_pretrained(tiny_ckpts.policy, padding_side="left")
    model = AutoModelForImageTextToText.from_pretrained(tiny_ckpts.policy)
    add_fused_lm_head(model, temperature=0.7, outputs=("log_probs", "entropy"))
    model.train()
    return model, processor


def group_batch(processor, prompts, images, completions):
    """TRL's batch layout: prompt i (left-padded) with image i, repeated G times, then the
    completions (right-padded); pixel rows per row."""
    from seg_r1.prompts import build_chat

    texts = [
        processor.apply_chat_template(
            build_chat(task, query=query), tokenize=False, add_generation_prompt=True
        )
        for task, query in prompts
    ]
    enc = processor(text=texts, images=images, return_tensors="pt", padding=True)
    rep = torch.arange(len(texts)).repeat_interleave(G)
    ids = [processor.tokenizer(c)["input_ids"] for c in completions]
    width = max(map(len, ids))
    comp = torch.full((len(ids), width), processor.tokenizer.pad_token_id)
    cmask = torch.zeros((len(ids), width), dtype=torch.long)
    for i, row in enumerate(ids):
        comp[i, : len(row)] = torch.tensor(row)
        cmask[i, : len(row)] = 1
    per_image = int(enc["image_grid_thw"][0].prod())
    pixel_rows = torch.cat([torch.arange(r * per_image, (r + 1) * per_image) for r in rep.tolist()])
    return {
        "input_ids": torch.cat([enc["input_ids"][rep], comp], 1),
        "attention_mask": torch.cat([enc["attention_mask"][rep], cmask], 1),
        "logits_to_keep": width,
        "pixel_values": enc["pixel_values"][pixel_rows],
        "image_grid_thw": enc["image_grid_thw"][rep],
        "mm_token_type_ids": torch.cat([enc["mm_token_type_ids"][rep], torch.zeros_like(comp)], 1),
        "completion_mask": cmask,
    }


def trl_logps(model, batch):
    keep = batch["logits_to_keep"]
    labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
    labels[:, :-keep] = -100
    out = model(
        input_ids=batch["input_ids"],
        attention_mask=batch["attention_mask"],
        pixel_values=batch["pixel_values"],
        image_grid_thw=batch["image_grid_thw"],
        mm_token_type_ids=batch["mm_token_type_ids"],
        labels=labels,
        fused_lm_head=True,
    )
    return out.log_probs[:, -keep:], out.entropy[:, -keep:]


def shared_logps(model, batch):
    from seg_r1.prefix_sharing import shared_prefix_logps

    return shared_prefix_logps(
        model,
        model,
        batch["input_ids"],
        batch["attention_mask"],
        batch["logits_to_keep"],
        batch["pixel_values"],
        batch["image_grid_thw"],
        batch["mm_token_type_ids"],
    )


def scored(model, fn, batch):
    """Log-probs, entropies and the gradient of a GRPO-like loss over the completion tokens."""
    model.zero_grad()
    logps, entropy = fn(model, batch)
    mask = batch["completion_mask"]
    weights = torch.linspace(-1, 1, mask.size(0))[:, None]  # advantages of both signs
    ((logps * weights * mask).sum() / mask.sum()).backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    return logps.detach(), entropy.detach(), grads


def batch_of(processor):
    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 255, (112, 112, 3), dtype=np.uint8)) for _ in "ab"]
    # Two prompts of different lengths (the referring query makes one longer: left padding)
    # and completions of different lengths (right padding), as a GRPO batch has them.
    prompts = [("rl", ""), ("referring", "the small red circle on the left of the picture")]
    completions = [
        "<think> a disk </think> <bbox>[1,2,30,40]</bbox>, <points>[[5,6]]</points>, "
        "<labels>[1]</labels>"[: 20 + 9 * i]
        for i in range(2 * G)
    ]
    return group_batch(processor, prompts, images, completions)


def test_shared_prefix_matches_trl_scoring(policy):
    model, processor = policy
    batch = batch_of(processor)
    mask = batch["completion_mask"].bool()
    want_logps, want_entropy, want_grads = scored(model, trl_logps, batch)
    got_logps, got_entropy, got_grads = scored(model, shared_logps, batch)
    assert got_logps.shape == want_logps.shape
    torch.testing.assert_close(got_logps[mask], want_logps[mask], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(got_entropy[mask], want_entropy[mask], atol=1e-5, rtol=1e-5)
    assert set(got_grads) == set(want_grads)
    assert any(name.startswith("model.visual") for name in got_grads)  # through the cache
    for name, grad in want_grads.items():
        torch.testing.assert_close(got_grads[name], grad, atol=1e-6, rtol=1e-4, msg=name)


def test_the_trainer_routes_through_the_shared_path(policy, monkeypatch):
    """SegR1GRPOTrainer._get_per_token_logps_and_entropies with share_prompt_prefix: the
    shared path is taken (and equals TRL's); unsupported inputs fall back to TRL, logged."""
    from types import SimpleNamespace

    import seg_r1.trainer as trainer_module
    from seg_r1.trainer import SegR1GRPOTrainer

    model, processor = policy
    batch = batch_of(processor)
    calls = []
    real = trainer_module.shared_prefix_logps
    monkeypatch.setattr(
        trainer_module,
        "shared_prefix_logps",
        lambda *a, **k: calls.append(1) or real(*a, **k),
    )
    fake = SegR1GRPOTrainer.__new__(SegR1GRPOTrainer)  # only what the method reads
    fake.args = SimpleNamespace(share_prompt_prefix=True, gradient_checkpointing=False)
    fake.accelerator = SimpleNamespace(unwrap_model=lambda m: m, num_processes=1)
    fake._prefix_sharing_refused = set()
    inputs = {k: batch[k] for k in ("pixel_values", "image_grid_thw", "mm_token_type_ids")}
    with torch.no_grad():
        logps, entropy, aux = SegR1GRPOTrainer._get_per_token_logps_and_entropies(
            fake,
            model,
            batch["input_ids"],
            batch["attention_mask"],
            batch["logits_to_keep"],
            compute_entropy=True,
            num_images=[1] * batch["input_ids"].size(0),
            **inputs,
        )
        want, want_entropy = trl_logps(model, batch)
    mask = batch["completion_mask"].bool()
    assert calls == [1] and aux is None
    torch.testing.assert_close(logps[mask], want[mask], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(entropy[mask], want_entropy[mask], atol=1e-5, rtol=1e-5)
    fake.accelerator.num_processes = 2
    called = {}
    monkeypatch.setattr(
        trainer_module.GRPOTrainer,
        "_get_per_token_logps_and_entropies",
        lambda self, *a, **k: called.setdefault("trl", True) and ("trl", None, None),
    )
    out = fake._get_per_token_logps_and_entropies(
        model, batch["input_ids"], batch["attention_mask"], batch["logits_to_keep"], **inputs
    )
    assert out[0] == "trl" and calls == [1]
    assert fake._prefix_sharing_refused == {"2 training processes (supported: one)"}


def test_distinct_prompts_compare_ids_padding_and_pixels():
    ids = torch.tensor([[5, 6, 7, 1], [5, 6, 7, 2], [5, 6, 7, 3], [0, 6, 7, 1]])
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 1, 1], [1, 1, 1, 1], [0, 1, 1, 1]])
    grid = torch.tensor([[1, 2, 2]] * 4)
    pixels = torch.zeros(16, 3)
    pixels[8:12] = 1.0  # row 2: same text, another image
    first, inverse = distinct_prompts(ids, mask, 3, pixels, grid)
    assert first == [0, 2, 3] and inverse == [0, 0, 1, 2]


def test_unsupported_cases_say_why():
    qwen = type("M", (), {"config": type("C", (), {"model_type": "qwen2_5_vl"})()})()
    ok = {
        "processes": 1,
        "gradient_checkpointing": False,
        "batch_size": None,
        "rows": 4,
        "pixel_values": 1,
        "image_grid_thw": 1,
        "mm_token_type_ids": 1,
    }
    assert prefix_sharing_unsupported(qwen, **ok) is None
    other = type("M", (), {"config": type("C", (), {"model_type": "qwen3_vl"})()})()
    assert "qwen3_vl" in prefix_sharing_unsupported(other, **ok)
    assert "processes" in prefix_sharing_unsupported(qwen, **{**ok, "processes": 2})
    assert "checkpointing" in prefix_sharing_unsupported(
        qwen, **{**ok, "gradient_checkpointing": True}
    )
    assert "chunked" in prefix_sharing_unsupported(qwen, **{**ok, "batch_size": 2})
    assert "without images" in prefix_sharing_unsupported(qwen, **{**ok, "pixel_values": None})
    assert "other" in prefix_sharing_unsupported(qwen, **ok, other_inputs=[torch.zeros(1)])


def test_sft_loss_and_gradients_are_trls(tiny_ckpts, tmp_path):
    """SegR1SFTTrainer with share_prompt_prefix on a real collated batch (synthesised traces,
    the RL prompt): the shared path is taken and its loss, gradients and token metrics equal
    TRL's own compute_loss on the same batch."""
    from pathlib import Path

    import seg_r1.trainer as trainer_module
    from seg_r1 import sft
    from seg_r1.data.synthetic_trees import write_foreground_dataset

    root = Path(__file__).resolve().parents[1]
    data = tmp_path / "data"
    write_foreground_dataset(data, 6, seed=0, size=112, split="train")
    argv = [
        "--config", str(root / "configs" / "tiny" / "sft.yaml"),
        "--model_name_or_path", str(tiny_ckpts.policy),
        "--data_root", str(data),
        "--output_dir", str(tmp_path / "out"),
        "--max_steps", "1",
        "--save_strategy", "no",
        "--per_device_train_batch_size", "3",
    ]  # fmt: skip
    trainer = sft.main(*sft.parse_args(argv))
    assert trainer.args.share_prompt_prefix
    batch = trainer._prepare_inputs(next(iter(trainer.get_train_dataloader())))
    model = trainer.model
    model.train()
    calls = []
    real = trainer_module.common_prefix_forward
    trainer_module.common_prefix_forward = lambda *a, **k: calls.append(1) or real(*a, **k)
    try:
        results = {}
        for share in (False, True):
            trainer.args.share_prompt_prefix = share
            trainer._metrics["train"].clear()
            model.zero_grad()
            loss = trainer.compute_loss(model, dict(batch))
            loss.backward()
            grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
            metrics = {k: v[-1] for k, v in trainer._metrics["train"].items() if k != "num_tokens"}
            results[share] = (loss.detach(), grads, metrics)
    finally:
        trainer_module.common_prefix_forward = real
    assert calls == [1]
    (want_loss, want_grads, want_metrics), (loss, grads, metrics) = results[False], results[True]
    torch.testing.assert_close(loss, want_loss, atol=1e-5, rtol=1e-5)
    assert set(grads) == set(want_grads)
    for name, grad in want_grads.items():
        torch.testing.assert_close(grads[name], grad, atol=1e-6, rtol=1e-4, msg=name)
    assert metrics.keys() == want_metrics.keys()
    for key, value in want_metrics.items():
        assert metrics[key] == pytest.approx(value, abs=1e-5), key
