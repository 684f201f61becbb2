"""GRPO smoke training on tiny models: every trainable parameter moves, reward components and
mask-prompt statistics are logged, the batch is segmented once, both segmenter backends, LoRA."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "configs" / "tiny"
#: What TRL logs for the rewards and what SegR1GRPOTrainer adds.
LOGGED = (
    "rewards/format/mean",
    "rewards/segmentation/mean",
    "rewards/length_reward/mean",
    "format/failure_rate",
    "segmentation/parse_failure_rate",
    "mask_prompts/boxes_per_answer",
    "mask_prompts/points_per_answer",
    "mask_prompts/parse_failure_rate",
    "mask_prompts/mask_area",
    "segmenter/seconds",
    "segmenter/encoder_calls",
    "kl",
)


def length_reward(completions, **kwargs):
    """Varies with whatever a random policy writes, so every group has a learning signal (the
    Seg-R1 rewards are all 0 for a policy that never writes a parseable answer)."""
    return [len(c[0]["content"]) / 100.0 for c in completions]


@pytest.fixture(scope="module")
def synthetic_root(tmp_path_factory):
    from seg_r1.data.synthetic_trees import write_foreground_dataset, write_referring_dataset

    root = tmp_path_factory.mktemp("synthetic")
    write_foreground_dataset(root, 16, seed=0, size=112, split="train")
    write_referring_dataset(root, 8, seed=0, size=112, dataset="refcoco", split="train")
    return root


def grpo_argv(tiny, data, out, recipe="grpo.yaml", *extra):
    return [
        "--config", str(TINY / recipe),
        "--model_name_or_path", str(tiny.policy),
        "--sam2_config", str(tiny.sam2_config),
        "--sam2_checkpoint", str(tiny.sam2_checkpoint),
        "--data_root", str(data),
        "--output_dir", str(out),
        "--max_steps", "2",
        "--save_strategy", "no",
        "--learning_rate", "1e-3",  # large enough that every weight visibly moves in 2 steps
        "--max_completion_length", "32",
        *extra,
    ]  # fmt: skip


def _initial_state(path):
    from transformers import AutoModelForImageTextToText

    return {
        k: v.clone()
        for k, v in AutoModelForImageTextToText.from_pretrained(path).state_dict().items()
    }


def _unchanged(trainer, initial):
    model = trainer.accelerator.unwrap_model(trainer.model)
    return [
        name
        for name, param in model.named_parameters()
        if param.requires_grad and torch.equal(param.detach().cpu(), initial[name])
    ]


@pytest.mark.parametrize(
    ("recipe", "segmenter", "rewards"),
    [
        ("grpo.yaml", "classical", ["format", "segmentation"]),
        ("prerl.yaml", "sam2", ["prerl_format", "prerl_segmentation"]),
        ("grpo_refcoco.yaml", "classical", ["format", "segmentation"]),
    ],
    ids=["rl-classical", "prerl-sam2", "refcoco-classical"],
)
def test_grpo_smoke_train(tiny_ckpts, synthetic_root, tmp_path, recipe, segmenter, rewards):
    from seg_r1 import grpo

    argv = grpo_argv(
        tiny_ckpts,
        synthetic_root,
        tmp_path / "out",
        recipe,
        "--segmenter",
        segmenter,
        "--reward_funcs",
        *rewards,
        "test_train_grpo.length_reward",
    )
    trainer = grpo.main(*grpo.parse_args(argv))

    assert trainer.state.global_step == 2
    assert _unchanged(trainer, _initial_state(tiny_ckpts.policy)) == []
    logs = [entry for entry in trainer.state.log_history if "reward" in entry]
    assert len(logs) == 2
    logged = set(logs[0])
    expected = [
        name.replace("format", rewards[0]).replace("segmentation", rewards[1]) for name in LOGGED
    ]
    assert [name for name in expected if name not in logged] == []
    assert all(np.isfinite(entry["loss"]) for entry in logs)
    assert trainer.segmenter.name == segmenter
    # saved for the next stage: weights + processor
    assert (tmp_path / "out" / "model.safetensors").is_file()
    assert (tmp_path / "out" / "processor_config.json").is_file()
    # ... and the frame its answers' coordinates refer to (read by eval and the demo)
    facts = json.loads((tmp_path / "out" / "seg_r1.json").read_text())
    assert facts["frame_size"] == 112 and facts["stage"] == {"prerl.yaml": "prerl"}.get(
        recipe, "rl"
    )
    assert facts["answer_mode"] == ("points" if recipe == "prerl.yaml" else "full")
    assert facts["segmenter"] == segmenter  # the reward's segmenter (the demo serves it alike)
    assert facts.get("classical_iterations") == (3 if segmenter == "classical" else None)


def _trainer(tiny, data, out, segmenter_name, **config):
    from transformers import AutoProcessor

    from seg_r1.configs import SegR1DataArguments, SegR1GRPOConfig
    from seg_r1.segmenters import build_segmenter
    from seg_r1.trainer import SegR1GRPOTrainer
    from seg_r1.training_data import grpo_dataset, load_segmentation_data

    peft_config = config.pop("peft_config", None)
    source = load_segmentation_data(
        SegR1DataArguments(datasets=["synthetic:train"], data_root=str(data))
    )
    if segmenter_name == "sam2":
        segmenter = build_segmenter(
            "sam2", cache=False, config=str(tiny.sam2_config), checkpoint=str(tiny.sam2_checkpoint)
        )
    else:
        segmenter = build_segmenter("classical", cache=False)
    args = SegR1GRPOConfig(
        output_dir=str(out),
        use_cpu=True,
        bf16=False,
        gradient_checkpointing=False,
        per_device_train_batch_size=4,
        num_generations=4,
        max_completion_length=16,
        max_steps=2,
        report_to="none",
        save_strategy="no",
        logging_steps=1,
        **config,
    )
    processor = AutoProcessor.from_pretrained(tiny.policy, padding_side="left")
    return SegR1GRPOTrainer(
        model=str(tiny.policy),
        reward_funcs=["format", "segmentation", length_reward],
        args=args,
        train_dataset=grpo_dataset(source, "rl", 112),
        processing_class=processor,
        segmenter=segmenter,
        frame_size=112,
        peft_config=peft_config,
    ), source


@pytest.mark.parametrize("segmenter_name", ["classical", "sam2"])
def test_batch_is_segmented_once_and_shared(tiny_ckpts, synthetic_root, tmp_path, segmenter_name):
    """The override of _calculate_rewards: one encoder pass per distinct image, the rewards
    read the shared masks (cache hit), statistics and a visualisation are logged."""
    from seg_r1.data import load_mask
    from seg_r1.training_data import synthesize_trace

    trainer, source = _trainer(
        tiny_ckpts, synthetic_root, tmp_path, segmenter_name, visualization_steps=1
    )
    rows = [trainer.train_dataset[i] for i in (0, 0, 1, 1)]  # 2 images x 2 completions
    good = [synthesize_trace(load_mask(source[i]), 1, 1).answer for i in (0, 1)]
    texts = [good[0], "no answer at all", good[1], good[1]]
    completions = [[{"role": "assistant", "content": t}] for t in texts]
    computer = trainer.mask_computer
    before = trainer.segmenter.stats.encoder_calls

    rewards = trainer._calculate_rewards(rows, [r["prompt"] for r in rows], completions, [[0]] * 4)

    assert trainer.segmenter.stats.encoder_calls - before == 2  # once per distinct image
    assert computer.hits >= 1  # the segmentation reward found the trainer's masks
    assert rewards.shape == (4, 3)
    assert rewards[:, 0].tolist() == [1.0, 0.0, 1.0, 1.0]  # format
    assert rewards[1, 1] == 0.0 and rewards[2, 1] == rewards[3, 1]  # unusable -> 0; same answer
    if segmenter_name == "classical":  # GrabCut seeded by the true box finds the object
        assert rewards[0, 1] > 0.6 and rewards[2, 1] > 0.6
    pending = trainer._pending_metrics
    assert pending["mask_prompts/parse_failure_rate"] == [0.25]
    assert pending["mask_prompts/boxes_per_answer"] == [0.75]
    assert pending["segmenter/encoder_calls"] == [2]
    # The visualisation is a callback: it draws the batch the trainer left, at the step's end.
    from seg_r1.callbacks import SampleVisualizer

    (visualizer,) = [
        c for c in trainer.callback_handler.callbacks if isinstance(c, SampleVisualizer)
    ]
    assert trainer.rollouts.latest is not None and trainer.rollouts.latest.batch.usable == [
        True, False, True, True,
    ]  # fmt: skip
    visualizer.on_step_end(trainer.args, trainer.state, trainer.control)
    assert (tmp_path / "visualizations" / "step_000000.png").is_file()


def test_lora_trains_only_the_adapter(tiny_ckpts, synthetic_root, tmp_path):
    from peft import LoraConfig

    peft_config = LoraConfig(
        r=4,
        lora_alpha=8,
        lora_dropout=0.0,
        task_type="CAUSAL_LM",
        target_modules=r".*language_model.*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)",
    )
    trainer, _ = _trainer(
        tiny_ckpts,
        synthetic_root,
        tmp_path,
        "classical",
        learning_rate=1e-2,
        beta=0.04,
        peft_config=peft_config,
    )
    model = trainer.model
    trainable = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    frozen = {n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad}
    assert trainable and all("lora_" in n for n in trainable)
    assert not any("visual" in n for n in trainable)  # the regex leaves the vision tower alone
    trainer.train()
    params = dict(model.named_parameters())
    assert [n for n, p in trainable.items() if torch.equal(params[n].detach(), p)] == []
    assert [n for n, p in frozen.items() if not torch.equal(params[n].detach(), p)] == []
    assert any("kl" in entry for entry in trainer.state.log_history)  # reference = adapter off


FAMILIES = ("qwen2.5-vl", "qwen3-vl", "qwen3.5")
SEGMENTERS = ("classical", "sam2", "sam2_hf", "sam3")


@pytest.mark.parametrize("segmenter", SEGMENTERS)
@pytest.mark.parametrize("family", FAMILIES)
def test_grpo_every_policy_family_and_segmenter(
    tiny_ckpts, synthetic_root, tmp_path, family, segmenter
):
    """The tiny GRPO recipe for every policy family x segmenter backend: every trainable
    parameter moves, the reward components are logged, the run records the family's coordinate
    convention, and the trainer's shared mask computer reads an answer in that convention (a
    trace of the image's own mask, written as the family writes it) into the object's mask."""
    from seg_r1 import grpo
    from seg_r1.data import load_mask
    from seg_r1.families import FAMILIES as REGISTRY
    from seg_r1.metrics import mask_iou
    from seg_r1.training_data import synthesize_trace

    policy = tiny_ckpts.policy_of(family)
    extra = ["--model_name_or_path", str(policy), "--segmenter", segmenter]
    if segmenter in ("sam2_hf", "sam3"):
        extra += ["--segmenter_path", str(getattr(tiny_ckpts, segmenter))]
    argv = grpo_argv(tiny_ckpts, synthetic_root, tmp_path / "out", "grpo.yaml", *extra)
    argv += ["--reward_funcs", "format", "segmentation", "test_train_grpo.length_reward"]
    trainer = grpo.main(*grpo.parse_args(argv))

    assert trainer.state.global_step == 2
    assert _unchanged(trainer, _initial_state(policy)) == []
    logs = [entry for entry in trainer.state.log_history if "reward" in entry]
    assert len(logs) == 2 and all(np.isfinite(entry["loss"]) for entry in logs)
    assert [name for name in LOGGED if name not in logs[0]] == []
    assert trainer.segmenter.name == segmenter
    coordinates = REGISTRY[family].coordinates
    facts = json.loads((tmp_path / "out" / "seg_r1.json").read_text())
    assert facts["coordinates"] == coordinates == trainer.coordinates

    row = trainer.train_dataset[0]
    source_mask = load_mask(_source_row(synthetic_root))
    trace = synthesize_trace(source_mask, 1, 1)
    text = trace.answer_in(112, coordinates)
    assert (text == trace.answer) == (coordinates == "frame")
    batch = trainer.mask_computer(
        [[{"role": "assistant", "content": text}]], [row["image"]], "full"
    )
    assert batch.usable == [True] and batch.answers[0].format_ok
    np.testing.assert_allclose(batch.answers[0].boxes, trace.boxes, atol=0.06)
    if segmenter == "classical":  # the only backend with trained (not random) behaviour
        assert mask_iou(batch.masks[0], source_mask) > 0.6


def _source_row(root):
    from seg_r1.configs import SegR1DataArguments
    from seg_r1.training_data import load_segmentation_data

    return load_segmentation_data(
        SegR1DataArguments(datasets=["synthetic:train"], data_root=str(root))
    )[0]
