"""Full-size smoke benchmark: one GRPO step of the real recipe and a few evaluated images at the
released architectures (random weights: same memory and time as the real ones).

    # CPU (2 cores, 24 GiB): 3B + LoRA, 16-token completions, 1 prompt x 4 generations
    .venv/bin/python benchmarks/bench_full_size.py --preset qwen2.5-vl-3b --lora \\
        --max-completion-length 16 --out runs/bench_full_size/cpu_3b_lora.json
    # GPU (benchmarks/gpu_check.sh): 3B full fine-tuning as the recipe says, 7B with LoRA
    python benchmarks/bench_full_size.py --preset qwen2.5-vl-3b --device cuda --out DIR/3b.json
    python benchmarks/bench_full_size.py --preset qwen2.5-vl-7b --lora --device cuda --out DIR/7b.json

Builds (or reuses) the random-weight checkpoints under ``--checkpoints`` (``python -m seg_r1.tiny
--preset P --sam2-preset hiera_l``), writes synthetic 768x768 scenes, then runs, each part in
its own subprocess so that its peak memory is its own:

* ``sam2``: SAM2.1-L (or ``--sam2-preset``) encoder seconds per image and decoder seconds per
  prompt set (one box + two points) on the training frame. Measured apart because a random
  policy never writes a parseable answer, so the GRPO step below never reaches SAM2; the
  report adds the cost of a real step's reward path (``prompts`` encoder passes + ``G``
  decodes) to the measured step as ``step_seconds_with_reward_path``.
* ``train``: one GRPO step of ``--recipe`` (default ``configs/grpo_cod.yaml``) with its settings
  except: ``max_steps 1``, ``--max-completion-length``, ``--prompts`` x ``num_generations`` per
  device, ``attn_implementation sdpa`` (no flash-attn), LoRA keys of ``configs/grpo_cod_lora.yaml``
  with ``--lora``, and ``use_cpu`` on CPU. Time split: generation (``generate``), policy forward
  passes (TRL's per-token log-probs: old / reference / loss), backward, the step.
* ``eval``: ``--eval-images`` scenes through :class:`seg_r1.inference.SegR1Pipeline`
  (foreground task, greedy, ``--eval-max-new-tokens``), batched and one at a time.

Memory: peak RSS of each part's process (``ru_maxrss``); on CUDA also
``torch.cuda.max_memory_allocated``. ``--out FILE`` writes the JSON report, rewritten after
every part (a long run that is interrupted keeps what it measured).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


class Timers:
    """Accumulated wall seconds of patched methods (``name -> seconds``, ``name_calls``)."""

    def __init__(self, device: str) -> None:
        self.seconds: dict[str, float] = {}
        self.calls: dict[str, int] = {}
        self.cuda = device.startswith("cuda")

    def _sync(self) -> None:
        if self.cuda:
            import torch

            torch.cuda.synchronize()

    def wrap(self, owner: Any, method: str, name: str) -> None:
        original = getattr(owner, method)
        timers = self

        def timed(*args: Any, **kwargs: Any) -> Any:
            timers._sync()
            start = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                timers._sync()
                timers.seconds[name] = timers.seconds.get(name, 0.0) + time.perf_counter() - start
                timers.calls[name] = timers.calls.get(name, 0) + 1

        setattr(owner, method, timed)

    def report(self) -> dict[str, Any]:
        return {
            **{f"{k}_seconds": round(v, 3) for k, v in self.seconds.items()},
            **{f"{k}_calls": v for k, v in self.calls.items()},
        }


def peak_memory(device: str) -> dict[str, float]:
    out = {"peak_rss_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)}
    if device.startswith("cuda"):
        import torch

        out["cuda_max_allocated_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
        out["cuda_max_reserved_gib"] = round(torch.cuda.max_memory_reserved() / 2**30, 2)
    return out


def ensure_checkpoints(args: argparse.Namespace) -> dict[str, str]:
    """Build the random-weight checkpoints when missing; their paths. ``tiny`` (either
    preset) is the test-size model of ``python -m seg_r1.tiny`` (for trying the benchmark)."""
    from seg_r1.full_size import get_sam2_preset

    root = Path(args.checkpoints)
    if args.sam2_preset == "tiny":
        sam2_config, sam2_checkpoint = "sam2_tiny.yaml", "sam2_tiny.pt"
    else:
        preset = get_sam2_preset(args.sam2_preset)
        sam2_config, sam2_checkpoint = preset.config, preset.checkpoint
    paths = {
        "policy": str(root / "policy"),
        "sam2_config": str(root / "sam2" / sam2_config),
        "sam2_checkpoint": str(root / "sam2" / sam2_checkpoint),
    }
    missing = (
        not (Path(paths["policy"]) / "config.json").is_file()
        or not Path(paths["sam2_checkpoint"]).is_file()
    )
    if missing:
        command = [sys.executable, "-m", "seg_r1.tiny", "--out", str(root)]
        if args.preset == "tiny" and args.sam2_preset != "tiny":
            subprocess.run(command, check=True)  # the tiny policy (and tiny SAM2, unused)
        command += ["--preset", args.preset, "--sam2-preset", args.sam2_preset]
        start = time.perf_counter()
        subprocess.run(command, check=True)
        paths["build_seconds"] = round(time.perf_counter() - start, 1)
    return paths


def write_scenes(root: Path, n: int, size: int) -> None:
    from seg_r1.data.synthetic_trees import write_foreground_dataset

    if not (root / "Train" / "Image").is_dir():
        write_foreground_dataset(root, n, seed=0, size=size, split="train")


# ------------------------------------------------------------------------------ parts


def part_sam2(args: argparse.Namespace, paths: dict[str, str]) -> dict[str, Any]:
    import numpy as np

    from seg_r1.data.io import image_array
    from seg_r1.frame import resize_to_frame
    from seg_r1.segmenters import PromptSet, build_segmenter

    start = time.perf_counter()
    segmenter = build_segmenter(
        "sam2",
        config=paths["sam2_config"],
        checkpoint=paths["sam2_checkpoint"],
        device=args.device,
        dtype="float32",
    )
    load = time.perf_counter() - start
    images = sorted((Path(args.scenes) / "Train" / "Image").iterdir())[: args.sam2_images + 1]
    frames = [resize_to_frame(image_array(path), args.frame) for path in images]
    f = args.frame
    prompt = PromptSet.make(
        [0.3 * f, 0.3 * f, 0.7 * f, 0.7 * f], [[0.5 * f, 0.5 * f], [0.1 * f, 0.1 * f]], [1, 0]
    )
    timers = Timers(args.device)
    segmenter.set_image(frames[0])  # warm-up (not timed)
    segmenter.predict_batch([prompt])
    timers.wrap(segmenter, "_encode", "sam2_encoder")
    timers.wrap(segmenter, "_decode", "sam2_decoder")
    for frame in frames[1:]:
        segmenter.set_image(frame)
        for _ in range(args.num_generations):
            masks = segmenter.predict_batch([prompt])
            assert masks[0].shape == frame.shape[:2] and masks[0].dtype == np.bool_
    report = timers.report()
    return {
        "load_seconds": round(load, 2),
        "images": len(frames) - 1,
        "encoder_seconds_per_image": round(
            timers.seconds["sam2_encoder"] / timers.calls["sam2_encoder"], 3
        ),
        "decoder_seconds_per_prompt_set": round(
            timers.seconds["sam2_decoder"] / timers.calls["sam2_decoder"], 4
        ),
        **report,
        **peak_memory(args.device),
    }


def grpo_argv(args: argparse.Namespace, paths: dict[str, str], out: str) -> list[str]:
    import yaml

    argv = ["--config", args.recipe, "--model_name_or_path", paths["policy"]]
    argv += ["--data_root", args.scenes, "--datasets", "synthetic:train"]
    argv += ["--sam2_config", paths["sam2_config"], "--sam2_checkpoint", paths["sam2_checkpoint"]]
    argv += [
        "--output_dir",
        out,
        "--max_steps",
        "1",
        "--save_strategy",
        "no",
        "--report_to",
        "none",
    ]
    argv += ["--logging_steps", "1", "--max_completion_length", str(args.max_completion_length)]
    argv += ["--num_generations", str(args.num_generations)]
    argv += ["--per_device_train_batch_size", str(args.prompts * args.num_generations)]
    argv += ["--gradient_accumulation_steps", "1", "--attn_implementation", "sdpa"]
    argv += ["--visualization_steps", "0", "--dataloader_num_workers", "0"]
    if args.lora:
        lora = yaml.safe_load((ROOT / "configs" / "grpo_cod_lora.yaml").read_text())
        argv += ["--use_peft", "true"]
        for key in ("lora_r", "lora_alpha", "lora_dropout"):
            argv += [f"--{key}", str(lora[key])]
        argv += ["--lora_target_modules", *lora["lora_target_modules"]]
    if not args.device.startswith("cuda"):
        argv += ["--use_cpu", "true"]
    if args.gradient_checkpointing is not None:
        argv += ["--gradient_checkpointing", str(args.gradient_checkpointing).lower()]
    return argv + args.grpo_args


def part_train(args: argparse.Namespace, paths: dict[str, str]) -> dict[str, Any]:
    from accelerate import Accelerator
    from transformers import Qwen2_5_VLForConditionalGeneration

    from seg_r1 import grpo
    from seg_r1.trainer import SegR1GRPOTrainer

    timers = Timers(args.device)
    timers.wrap(Qwen2_5_VLForConditionalGeneration, "generate", "generation")
    timers.wrap(SegR1GRPOTrainer, "_get_per_token_logps_and_entropies", "policy_forward")
    timers.wrap(Accelerator, "backward", "policy_backward")
    with tempfile.TemporaryDirectory() as out:
        argv = grpo_argv(args, paths, out)
        start = time.perf_counter()
        trainer = grpo.main(*grpo.parse_args(argv))
        total = time.perf_counter() - start
    step = next(entry for entry in trainer.state.log_history if "step_time" in entry)
    model = trainer.accelerator.unwrap_model(trainer.model)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {
        "argv": argv,
        "step_seconds": round(step["step_time"], 2),
        "run_seconds_incl_load": round(total, 1),
        **timers.report(),
        "trainable_parameters": trainable,
        "completion_tokens_mean": step.get("completions/mean_length"),
        "segmenter_seconds_logged": step.get("segmenter/seconds"),
        "loss": step.get("loss"),
        **peak_memory(args.device),
    }


def part_eval(args: argparse.Namespace, paths: dict[str, str]) -> dict[str, Any]:
    from transformers import Qwen2_5_VLForConditionalGeneration

    from seg_r1.data.io import image_array
    from seg_r1.inference import PipelineConfig, build_pipeline

    config = PipelineConfig(
        model_path=paths["policy"],
        segmenter="sam2",
        sam2_config=paths["sam2_config"],
        sam2_checkpoint=paths["sam2_checkpoint"],
        device=args.device,
        dtype="bfloat16",
        attn_implementation="sdpa",
        max_new_tokens=args.eval_max_new_tokens,
        batch_size=args.eval_images,
    )
    start = time.perf_counter()
    pipe = build_pipeline(config, task="foreground")
    load = time.perf_counter() - start
    timers = Timers(args.device)
    timers.wrap(Qwen2_5_VLForConditionalGeneration, "generate", "generation")
    images = sorted((Path(args.scenes) / "Train" / "Image").iterdir())[: args.eval_images]
    arrays = [image_array(path) for path in images]
    pipe.predict(arrays[:1])  # warm-up
    timers.seconds.clear()
    timers.calls.clear()
    out: dict[str, Any] = {"load_seconds": round(load, 1), "images": len(arrays)}
    for mode, batch in (("batched", len(arrays)), ("one_at_a_time", 1)):
        before = dict(timers.seconds)
        start = time.perf_counter()
        for i in range(0, len(arrays), batch):
            pipe.predict(arrays[i : i + batch])
        seconds = time.perf_counter() - start
        generation = timers.seconds.get("generation", 0.0) - before.get("generation", 0.0)
        out[mode] = {
            "batch_size": batch,
            "seconds": round(seconds, 2),
            "images_per_second": round(len(arrays) / seconds, 4),
            "generation_seconds": round(generation, 2),
        }
    out["batched_speedup"] = round(out["one_at_a_time"]["seconds"] / out["batched"]["seconds"], 2)
    return {**out, **peak_memory(args.device)}


PARTS = {"sam2": part_sam2, "train": part_train, "eval": part_eval}


# ------------------------------------------------------------------------------ driver


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--preset", default="qwen2.5-vl-3b", help="policy preset (seg_r1.full_size)"
    )
    parser.add_argument("--sam2-preset", default="hiera_l", help="SAM2 preset")
    parser.add_argument("--checkpoints", default=None, help="default: runs/full/<preset>")
    parser.add_argument("--scenes", default="runs/full/scenes768", help="synthetic scenes root")
    parser.add_argument("--frame", type=int, default=768, help="training frame (SPEC: 768)")
    parser.add_argument("--recipe", default="configs/grpo_cod.yaml")
    parser.add_argument("--lora", action="store_true", help="LoRA keys of grpo_cod_lora.yaml")
    parser.add_argument("--max-completion-length", type=int, default=16)
    parser.add_argument("--num-generations", type=int, default=4)
    parser.add_argument("--prompts", type=int, default=1, help="prompts per device per step")
    parser.add_argument(
        "--gradient-checkpointing",
        type=lambda v: v.lower() in ("1", "true", "yes"),
        default=None,
        help="default: the recipe's",
    )
    parser.add_argument("--sam2-images", type=int, default=2)
    parser.add_argument("--eval-images", type=int, default=2)
    parser.add_argument("--eval-max-new-tokens", type=int, default=16)
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--parts", nargs="+", default=list(PARTS), choices=list(PARTS))
    parser.add_argument("--out", default=None, help="JSON report (rewritten after each part)")
    parser.add_argument("--part", choices=list(PARTS), help=argparse.SUPPRESS)
    parser.add_argument("--paths", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args, rest = parser.parse_known_args(argv)
    args.grpo_args = rest  # anything else goes to seg_r1.grpo (e.g. --beta 0)
    args.checkpoints = args.checkpoints or f"runs/full/{args.preset}"
    return args


def _worker(args: argparse.Namespace) -> None:
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    from seg_r1.logs import setup_logging

    setup_logging()
    result = PARTS[args.part](args, json.loads(args.paths))
    Path(args.result).write_text(json.dumps(result, indent=2))


def _write(report: dict[str, Any], out: str | None) -> None:
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(json.dumps(report, indent=2))


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    if args.part:
        _worker(args)
        return {}
    import torch

    given = list(argv if argv is not None else sys.argv[1:])  # forwarded to each part
    paths = ensure_checkpoints(args)
    write_scenes(Path(args.scenes), max(4, args.eval_images, args.sam2_images + 1), args.frame)
    report: dict[str, Any] = {
        "preset": args.preset,
        "sam2_preset": args.sam2_preset,
        "device": args.device,
        "gpu": torch.cuda.get_device_name() if args.device.startswith("cuda") else None,
        "cpu_threads": args.threads or torch.get_num_threads(),
        "lora": args.lora,
        "recipe": args.recipe,
        "frame": args.frame,
        "max_completion_length": args.max_completion_length,
        "prompts_x_generations": [args.prompts, args.num_generations],
        "command": " ".join([Path(sys.argv[0]).name, *given]),
        "checkpoints": paths,
    }
    for part in args.parts:
        with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as handle:
            result_path = handle.name
        command = [sys.executable, __file__, *given, "--part", part]
        command += ["--paths", json.dumps(paths), "--result", result_path]
        start = time.perf_counter()
        proc = subprocess.run(command, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        wall = time.perf_counter() - start
        if proc.returncode != 0:
            report[part] = {"error": f"exit {proc.returncode}", "wall_seconds": round(wall, 1)}
        else:
            report[part] = {
                **json.loads(Path(result_path).read_text()),
                "wall_seconds": round(wall, 1),
            }
        with contextlib.suppress(FileNotFoundError):
            os.unlink(result_path)
        if part == "train" and "sam2" in report and "step_seconds" in report[part]:
            sam2 = report["sam2"]
            reward_path = args.prompts * sam2.get("encoder_seconds_per_image", 0.0) + (
                args.prompts
                * args.num_generations
                * sam2.get("decoder_seconds_per_prompt_set", 0.0)
            )
            report[part]["reward_path_seconds_estimate"] = round(reward_path, 2)
            report[part]["step_seconds_with_reward_path"] = round(
                report[part]["step_seconds"] + reward_path, 2
            )
        _write(report, args.out)
        print(json.dumps({part: report[part]}, indent=2), flush=True)
    return report


if __name__ == "__main__":
    main()
