"""Throughput of the shared inference pipeline: batched generation vs one image at a time.

Launch (from the repository root; builds the tiny checkpoints into runs/tiny if needed)::

    python benchmarks/bench_eval.py --n 32 --batch_size 8 --max_new_tokens 64 --num_threads 1

Both modes run in the same process on the same synthetic images (``--size`` px, resized to the
``--frame_size`` frame) through :class:`seg_r1.inference.SegR1Pipeline`, alternating, best of
``--repeats``; the report gives images/s of each mode, their ratio, whether the answers are
identical (they must be: greedy decoding with left padding), and the peak memory of each mode
(process RSS sampled every 5 ms, minus the RSS before the mode; on CUDA also
``torch.cuda.max_memory_allocated``). With the tiny random policy the answers are not in the
grammar, so no mask is decoded: the figures measure generation + parsing (generation is what
batching speeds up; the segmenter's cost is the same in both modes). Pass ``--model_path`` /
``--segmenter sam2 --sam2_config ... --sam2_checkpoint ...`` / ``--device cuda`` to measure
real checkpoints. ``--out FILE`` writes the report as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import threading
import time
from pathlib import Path

import numpy as np
import torch


class PeakRSS:
    """Samples this process's resident set size in a thread; ``peak`` in bytes."""

    def __init__(self, interval: float = 0.005) -> None:
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def rss() -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.rss())
            time.sleep(self.interval)

    def __enter__(self) -> PeakRSS:
        self.peak = self.rss()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.rss())


def run_mode(pipe, images: list[np.ndarray], batch_size: int, device: torch.device) -> dict:
    """Predict every image in chunks of ``batch_size``; time, answers and peak memory."""
    pipe.batch_size = batch_size
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    before = PeakRSS.rss()
    completions: list[str] = []
    with PeakRSS() as meter:
        start = time.perf_counter()
        for i in range(0, len(images), batch_size):
            completions += [p.completion for p in pipe.predict(images[i : i + batch_size])]
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        seconds = time.perf_counter() - start
    out = {
        "seconds": seconds,
        "images_per_s": len(images) / seconds,
        "peak_rss_mib": meter.peak / 2**20,
        "peak_rss_increase_mib": (meter.peak - before) / 2**20,
        "completions": completions,
    }
    if device.type == "cuda":
        out["cuda_max_allocated_mib"] = torch.cuda.max_memory_allocated(device) / 2**20
    return out


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model_path", default=None, help="default: tiny policy in --tiny_dir")
    parser.add_argument("--tiny_dir", default="runs/tiny", help="where tiny checkpoints live")
    parser.add_argument("--n", type=int, default=32, help="images")
    parser.add_argument("--size", type=int, default=256, help="synthetic image side")
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--frame_size", type=int, default=768)
    parser.add_argument("--max_new_tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3, help="best of N per mode")
    parser.add_argument("--segmenter", default="classical", choices=["classical", "sam2"])
    parser.add_argument("--sam2_config", default=None)
    parser.add_argument("--sam2_checkpoint", default=None)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--num_threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--out", default=None, help="write the report here (JSON)")
    args = parser.parse_args(argv)

    from transformers.utils import logging as hf_logging

    from seg_r1.data.synthetic import synthetic_scenes
    from seg_r1.inference import PipelineConfig, build_pipeline
    from seg_r1.policy import resolve_device
    from seg_r1.tiny import build_tiny_checkpoints

    hf_logging.disable_progress_bar()
    if args.num_threads:
        torch.set_num_threads(args.num_threads)
    tiny = build_tiny_checkpoints(args.tiny_dir) if args.model_path is None else None
    model_path = args.model_path or str(tiny.policy)
    sam2_config = args.sam2_config or (str(tiny.sam2_config) if tiny else None)
    sam2_checkpoint = args.sam2_checkpoint or (str(tiny.sam2_checkpoint) if tiny else None)
    device = resolve_device(args.device)
    config = PipelineConfig(
        model_path=model_path,
        frame_size=args.frame_size,
        segmenter=args.segmenter,
        device=str(device),
        max_new_tokens=args.max_new_tokens,
        **({"sam2_config": sam2_config} if sam2_config else {}),
        **({"sam2_checkpoint": sam2_checkpoint} if sam2_checkpoint else {}),
    )
    pipe = build_pipeline(config, task="foreground")
    scenes = synthetic_scenes(args.n, 0, args.size, "foreground", "test")
    images = [scene.image for scene in scenes]
    pipe.batch_size = args.batch_size
    pipe.predict(images[: args.batch_size])  # warm-up (allocations, lazy init)

    best: dict[str, dict] = {}
    for _ in range(args.repeats):
        for name, batch in (("sequential", 1), ("batched", args.batch_size)):
            result = run_mode(pipe, images, batch, device)
            if name not in best or result["seconds"] < best[name]["seconds"]:
                best[name] = result
    identical = best["sequential"]["completions"] == best["batched"]["completions"]
    report = {
        "device": str(device),
        "cpu": platform.processor() or platform.machine(),
        "torch_threads": torch.get_num_threads(),
        "model_path": model_path,
        "segmenter": args.segmenter,
        "n_images": args.n,
        "image_size": args.size,
        "frame_size": args.frame_size,
        "batch_size": args.batch_size,
        "max_new_tokens": args.max_new_tokens,
        "repeats": args.repeats,
        "identical_answers": identical,
        "speedup": best["batched"]["images_per_s"] / best["sequential"]["images_per_s"],
    }
    for name, result in best.items():
        result.pop("completions")
        report[name] = {k: round(v, 3) for k, v in result.items()}
    print(json.dumps(report, indent=2))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    if not identical:
        raise SystemExit("batched and sequential answers differ: left padding is broken")
    return report


if __name__ == "__main__":
    main()
