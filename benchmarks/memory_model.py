"""What fits where: peak GPU memory per device of a GRPO run, by model, fine-tuning mode and
DeepSpeed stage, computed from per-parameter and per-token costs (an ESTIMATE, not a
measurement), and the smallest common setup that holds it.

    # 1. measure the per-token activation cost (CPU, random 3B weights, ~3 min)
    .venv/bin/python benchmarks/memory_model.py --measure --preset qwen2.5-vl-3b
    # 2. the table (seconds; uses the measured costs written by step 1 when present)
    .venv/bin/python benchmarks/memory_model.py

Per-parameter costs (bytes), exact for the dtypes the recipes use (``dtype: bfloat16``):

* weights 2 (bf16); reference model for the KL (``beta 0.04``) 2 more in full fine-tuning (a
  copy), 0 with LoRA (the adapter switched off);
* DeepSpeed keeps fp32 master weights and Adam's two moments: 12 per *trainable* parameter,
  plus bf16 gradients 2. ZeRO-2 shards gradients and optimizer states over N GPUs, ZeRO-3 the
  weights (and the reference model) too, but TRL gathers the full policy for generation
  (``ds3_gather_for_generation``), so a ZeRO-3 rank peaks at the full bf16 weights plus its
  shards; offload moves master weights and moments to CPU memory.
* LoRA (``configs/grpo_cod_lora.yaml``: r 64 on the language model's q/k/v/o/gate/up/down):
  adapters in fp32, 16 bytes per adapter parameter (weight, gradient, two moments).

Per-token costs (``--measure``): peak memory of one forward + backward of the language model
with gradient checkpointing at two sequence lengths; the slope is the activation cost per token
(the CPU's ``ru_maxrss``; GPU kernels differ a little: an estimate). Per device and step the
recipes hold 4 completions (1 prompt x 4 generations) of ``prompt + completion`` tokens: a 768²
image is 729 merged tokens, the text ~260, completions up to 400 -> ~1,390 tokens each. The
completion logits are added in fp32 (vocabulary x 4 bytes per completion token, twice for the
log-softmax), and SAM2.1-L (0.9 GB of fp32 weights + its 1024² encoder activations,
``SAM2_GIB``) on each rank.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

GIB = 2**30
#: Setups people ask for: (GPUs, GiB per GPU).
SETUPS = ((1, 24), (1, 40), (1, 80), (4, 40), (8, 24), (8, 40), (4, 80), (8, 80))
#: SAM2.1-L on each rank: 0.9 GB of fp32 weights + ~1.5 GB of 1024² encoder activations (estimate).
SAM2_GIB = 2.4
#: Framework overhead per rank (CUDA context, allocator fragmentation): an assumption.
OVERHEAD_GIB = 3.0
COSTS_FILE = Path("runs/memory_model/costs.json")


def lora_parameters(text: dict, r: int = 64) -> int:
    """Adapter parameters of r-rank LoRA on q/k/v/o/gate/up/down of every language layer."""
    h, inter = text["hidden_size"], text["intermediate_size"]
    kv = text["num_key_value_heads"] * (h // text["num_attention_heads"])
    per_layer = (h + h) + (h + kv) * 2 + (h + h) + (h + inter) * 2 + (inter + h)
    return r * per_layer * text["num_hidden_layers"]


def estimate(
    params: int,
    trainable: int,
    lora: bool,
    stage: str,
    n: int,
    tokens: int,
    completion_tokens: int,
    vocab: int,
    act_per_token: float,
) -> float:
    """Peak bytes per GPU (see the module doc for each term)."""
    weights = 2 * params
    ref = 0 if lora else 2 * params
    optimizer = (16 if lora else 12) * trainable  # LoRA: fp32 weight + grad + 2 moments
    grads = 0 if lora else 2 * trainable
    if stage == "zero2":
        model = weights + ref + (grads + optimizer) / n
    elif stage == "zero3":
        model = weights + (ref + grads + optimizer) / n  # full weights gathered for generation
    elif stage == "zero3_offload":
        model = weights + (ref + grads) / n
    else:
        raise ValueError(stage)
    activations = tokens * act_per_token
    logits = 2 * completion_tokens * vocab * 4
    return model + activations + logits + (SAM2_GIB + OVERHEAD_GIB) * GIB


def _measure_worker(preset: str, length: int) -> dict:
    import torch
    from transformers import AutoModelForImageTextToText

    torch.set_num_threads(2)
    path = Path(f"runs/full/{preset}/policy")  # python -m seg_r1.tiny --preset P --out runs/full/P
    model = AutoModelForImageTextToText.from_pretrained(path, dtype=torch.bfloat16)
    model.gradient_checkpointing_enable()
    model.config.use_cache = False
    model.train()
    for p in model.parameters():  # activations only: no weight gradients kept
        p.requires_grad_(False)
    model.get_input_embeddings().weight.requires_grad_(True)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    ids = torch.randint(0, 600, (1, length))
    start = time.perf_counter()
    out = model(input_ids=ids, logits_to_keep=1)
    out.logits.float().sum().backward()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {
        "length": length,
        "rss_before": before,
        "rss_peak": peak,
        "seconds": time.perf_counter() - start,
    }


def measure(preset: str, lengths: tuple[int, int]) -> dict:
    rows = []
    for length in lengths:
        cmd = [sys.executable, __file__, "--worker", preset, "--length", str(length)]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
        rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    growth = [(r["rss_peak"] - r["rss_before"]) for r in rows]
    slope = (growth[1] - growth[0]) / (lengths[1] - lengths[0])
    return {"preset": preset, "runs": rows, "activation_bytes_per_token": slope}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--measure", action="store_true", help="measure the per-token cost")
    parser.add_argument("--preset", default="qwen2.5-vl-3b")
    parser.add_argument("--lengths", type=int, nargs=2, default=[512, 2048])
    parser.add_argument("--tokens", type=int, default=4 * 1390, help="tokens per GPU per step")
    parser.add_argument("--completion-tokens", type=int, default=4 * 400)
    parser.add_argument("--act-bytes-per-token", type=float, default=None, help="override")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--length", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(_measure_worker(args.worker, args.length)))
        return
    if args.measure:
        result = measure(args.preset, tuple(args.lengths))
        COSTS_FILE.parent.mkdir(parents=True, exist_ok=True)
        costs = json.loads(COSTS_FILE.read_text()) if COSTS_FILE.is_file() else {}
        costs[args.preset] = result
        COSTS_FILE.write_text(json.dumps(costs, indent=2))
        print(json.dumps(result, indent=2))
        return

    from seg_r1.full_size import POLICY_PRESETS, count_parameters, meta_policy

    costs = json.loads(COSTS_FILE.read_text()) if COSTS_FILE.is_file() else {}
    header = "| model | mode | stage | peak GiB / GPU on 8 GPUs (estimate) | smallest setup |"
    lines = [header, "| --- | --- | --- | --- | --- |"]
    for name, preset in POLICY_PRESETS.items():
        model, _ = meta_policy(preset)
        params = count_parameters(model)
        measured = costs.get(name, costs.get("qwen2.5-vl-3b", {})).get("activation_bytes_per_token")
        act = args.act_bytes_per_token or measured
        if act is None:
            sys.exit("no per-token cost: run with --measure first (or pass --act-bytes-per-token)")
        if name not in costs and measured is not None:  # scale the 3B's by width x depth
            ref = POLICY_PRESETS["qwen2.5-vl-3b"].text
            act *= (preset.text["hidden_size"] * preset.text["num_hidden_layers"]) / (
                ref["hidden_size"] * ref["num_hidden_layers"]
            )
        for lora in (False, True):
            trainable = lora_parameters(preset.text) if lora else params
            for stage in ("zero2", "zero3", "zero3_offload"):
                fits = []
                for gpus, gib in SETUPS:
                    peak = estimate(
                        params, trainable, lora, stage, gpus, args.tokens,
                        args.completion_tokens, preset.text["vocab_size"], act,
                    )  # fmt: skip
                    if peak / GIB <= 0.9 * gib:
                        fits.append(f"{gpus}x{gib} GB")
                at8 = estimate(
                    params, trainable, lora, stage, 8, args.tokens,
                    args.completion_tokens, preset.text["vocab_size"], act,
                ) / GIB  # fmt: skip
                mode = f"LoRA ({trainable / 1e6:.0f}M)" if lora else "full"
                first = fits[0] if fits else "none listed"
                lines.append(f"| {name} | {mode} | {stage} | {at8:.1f} | {first} |")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
