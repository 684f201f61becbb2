"""Segmenter backends side by side: ``sam2`` (Meta's code), ``sam2_hf`` (the same weights through
transformers' Sam2Model) and ``sam3`` (SAM3's tracker through transformers), on CPU.

    # full size (SAM2.1-L random weights, converted for sam2_hf; SAM3 tracker default config)
    .venv/bin/python benchmarks/bench_segmenters.py --images 3 \\
        --out runs/bench_segmenters/cpu_full.json
    # seconds: the tiny test models (what tests/test_bench_segmenters.py runs)
    .venv/bin/python benchmarks/bench_segmenters.py --tiny --out runs/bench_segmenters/tiny.json

Builds (or reuses) the random-weight checkpoints under ``--checkpoints``: ``sam2/`` (Meta's
format, :func:`seg_r1.full_size.build_sam2_preset` of ``--sam2-preset``), ``sam2_hf/`` (that
checkpoint converted by :func:`seg_r1.segmenters.convert.convert_sam2`: the SAME weights) and
``sam3/`` (``Sam3TrackerConfig()`` with random weights); ``--tiny`` uses the tiny models of
:mod:`seg_r1.tiny` instead. Then each backend runs in its own subprocess (so its peak RSS is its
own) on ``--images`` synthetic ``--frame`` x ``--frame`` scenes:

* encoder: seconds of ``set_image`` per image, median over the images (after one untimed
  warm-up image);
* decoder: seconds of ``predict_batch([one prompt set])``, median over ``--prompt-sets``
  prompt sets per image (box + a foreground and a background point, as the RL answers);
* peak RSS of the worker process (``VmHWM``, see :func:`peak_rss_bytes`), import seconds of the backend module (Meta's
  ``sam2`` package itself loads inside ``load_seconds``), load seconds, parameters.

Each figure is also given as a ratio to ``sam2`` measured in the same run, and the masks of
``sam2_hf`` are compared with ``sam2``'s (pixels differing, IoU: the processors resize images
differently, see tests/test_segmenter_hf.py). ``--out FILE`` writes the JSON report.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BACKENDS = ("sam2", "sam2_hf", "sam3")


def ensure_checkpoints(args: argparse.Namespace) -> dict[str, str]:
    """Build the missing checkpoints of the benchmark; their paths (``segmenter kwargs``).
    The builders (torch, sam2, transformers: ~10 s of imports) load only when needed."""
    from seg_r1.full_size import get_sam2_preset

    root = Path(args.checkpoints)
    if args.tiny:
        config, checkpoint = root / "sam2" / "sam2_tiny.yaml", root / "sam2" / "sam2_tiny.pt"
    else:
        preset = get_sam2_preset(args.sam2_preset)
        config, checkpoint = root / "sam2" / preset.config, root / "sam2" / preset.checkpoint
    start = time.perf_counter()
    folders = [root / "sam2_hf" / "config.json", root / "sam3" / "config.json"]
    if not checkpoint.is_file() or not all(f.is_file() for f in folders):
        from seg_r1.full_size import build_sam2_preset
        from seg_r1.segmenters.convert import convert_sam2
        from seg_r1.segmenters.hf import write_hf_checkpoint
        from seg_r1.tiny import TinySpec, build_sam2, build_sam2_hf, build_sam3

        if not checkpoint.is_file():
            if args.tiny:
                build_sam2(root / "sam2", TinySpec(), args.seed)
            else:
                build_sam2_preset(root / "sam2", args.sam2_preset, seed=args.seed)
        if not folders[0].is_file():
            if args.tiny:
                build_sam2_hf(root / "sam2_hf", TinySpec(), args.seed, (config, checkpoint))
            else:
                convert_sam2(config, checkpoint, root / "sam2_hf")
        if not folders[1].is_file():
            if args.tiny:
                build_sam3(root / "sam3", TinySpec(), args.seed)
            else:
                import torch

                torch.manual_seed(args.seed)
                write_hf_checkpoint(root / "sam3", "sam3", {"model_type": "sam3_tracker"})
    return {
        "sam2_config": str(config),
        "sam2_checkpoint": str(checkpoint),
        "sam2_hf": str(root / "sam2_hf"),
        "sam3": str(root / "sam3"),
        "build_seconds": round(time.perf_counter() - start, 1),
    }


def scene(size: int, seed: int) -> Any:
    """A textured ellipse on a differently textured background, ``uint8 (size, size, 3)``."""
    import numpy as np

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size] / size
    cx, cy, r = rng.uniform(0.35, 0.65), rng.uniform(0.35, 0.65), rng.uniform(0.15, 0.3)
    inside = (xx - cx) ** 2 + (yy - cy) ** 2 <= r**2
    noise = rng.integers(0, 60, (size, size, 3))
    bg = np.stack([np.sin(xx * 40) * 40 + 90, np.cos(yy * 30) * 40 + 80, xx * 0 + 60], axis=-1)
    fg = np.stack([xx * 0 + 190, np.sin((xx + yy) * 60) * 30 + 140, xx * 0 + 40], axis=-1)
    return (np.where(inside[..., None], fg, bg) + noise).clip(0, 255).astype(np.uint8)


def prompt_sets(size: int, n: int, seed: int) -> list[Any]:
    """``n`` prompt sets: a random box with a foreground point inside and a background point."""
    import numpy as np

    from seg_r1.segmenters import PromptSet

    rng = np.random.default_rng(seed)
    sets = []
    for _ in range(n):
        x1, y1 = rng.uniform(0.05, 0.45, 2) * size
        x2, y2 = x1 + rng.uniform(0.2, 0.5) * size, y1 + rng.uniform(0.2, 0.5) * size
        inside = [(x1 + x2) / 2, (y1 + y2) / 2]
        outside = [x1 + 0.05 * (x2 - x1), y1 + 0.05 * (y2 - y1)]
        sets.append(PromptSet.make([x1, y1, x2, y2], [inside, outside], [1, 0]))
    return sets


def run_backend(args: argparse.Namespace, paths: dict[str, str]) -> dict[str, Any]:
    """One backend in this process: load, warm up, time the encoder and the decoder."""
    import numpy as np

    from seg_r1.segmenters import build_segmenter

    name = args.backend
    start = time.perf_counter()
    if name == "sam2":
        import seg_r1.segmenters.sam2  # noqa: F401  (imports apart from the load time)

        kwargs = {"config": paths["sam2_config"], "checkpoint": paths["sam2_checkpoint"]}
    else:
        import seg_r1.segmenters.hf  # noqa: F401

        kwargs = {"path": paths[name]}
    imports = time.perf_counter() - start
    start = time.perf_counter()
    segmenter = build_segmenter(name, cache=False, device="cpu", dtype="float32", **kwargs)
    load = time.perf_counter() - start
    size = args.frame
    segmenter.set_image(scene(size, seed=1000))  # warm-up (not timed)
    segmenter.predict_batch(prompt_sets(size, 1, seed=1000))
    encoder, decoder, masks = [], [], []
    for index in range(args.images):
        image = scene(size, seed=index)
        start = time.perf_counter()
        segmenter.set_image(image)
        encoder.append(time.perf_counter() - start)
        for prompt in prompt_sets(size, args.prompt_sets, seed=index):
            start = time.perf_counter()
            (mask,) = segmenter.predict_batch([prompt])
            decoder.append(time.perf_counter() - start)
            masks.append(mask)
    np.save(args.masks, np.stack(masks))
    model = segmenter.model
    return {
        "import_seconds": round(imports, 2),
        "load_seconds": round(load, 2),
        "parameters": sum(p.numel() for p in model.parameters()),
        "encoder_seconds_per_image": round(statistics.median(encoder), 4),
        "encoder_seconds_all": [round(s, 4) for s in encoder],
        "decoder_seconds_per_prompt_set": round(statistics.median(decoder), 5),
        "decoder_calls": segmenter.stats.decoder_calls,
        "peak_rss_gib": round(peak_rss_bytes() / 2**30, 3),
    }


def peak_rss_bytes() -> int:
    """This process's peak resident set size. Linux: ``VmHWM`` of ``/proc/self/status``, the
    high-water mark of THIS address space -- ``ru_maxrss`` is kept across fork + exec, so a
    worker started after the parent built the checkpoints would report the parent's peak.
    Elsewhere ``ru_maxrss`` (kilobytes on Linux, bytes on macOS)."""
    status = Path("/proc/self/status")
    if status.is_file():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def compare_masks(reference: str, other: str) -> dict[str, float]:
    """Pixels differing (fraction, worst prompt set and overall) and IoU between two backends."""
    import numpy as np

    a, b = np.load(reference), np.load(other)
    differing = (a != b).reshape(len(a), -1).mean(axis=1)
    union = (a | b).reshape(len(a), -1).sum(axis=1)
    ious = np.where(union > 0, (a & b).reshape(len(a), -1).sum(axis=1) / np.maximum(union, 1), 1)
    return {
        "identical_masks": int((differing == 0).sum()),
        "masks": len(a),
        "differing_pixels_mean": round(float(differing.mean()), 6),
        "differing_pixels_max": round(float(differing.max()), 6),
        "iou_min": round(float(ious.min()), 6),
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tiny", action="store_true", help="the tiny test models (seconds)")
    parser.add_argument("--sam2-preset", default="hiera_l", help="SAM2 preset (seg_r1.full_size)")
    parser.add_argument(
        "--checkpoints", default=None, help="default: runs/tiny (--tiny), runs/bench_segmenters"
    )
    parser.add_argument("--backends", nargs="+", default=list(BACKENDS), choices=BACKENDS)
    parser.add_argument("--images", type=int, default=3, help="timed images (median)")
    parser.add_argument("--prompt-sets", type=int, default=4, help="decoded per image (median)")
    parser.add_argument("--frame", type=int, default=None, help="image side; 768 (256 --tiny)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random weights")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--out", default=None, help="JSON report")
    parser.add_argument("--backend", choices=BACKENDS, help=argparse.SUPPRESS)
    parser.add_argument("--paths", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    parser.add_argument("--masks", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.checkpoints = args.checkpoints or ("runs/tiny" if args.tiny else "runs/bench_segmenters")
    args.frame = args.frame or (256 if args.tiny else 768)  # 768: SPEC's training frame
    return args


def _worker(args: argparse.Namespace) -> None:
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from seg_r1.logs import setup_logging

    setup_logging(hide_hf_progress=True)
    result = run_backend(args, json.loads(args.paths))
    result["threads"] = torch.get_num_threads()
    Path(args.result).write_text(json.dumps(result, indent=2))


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    if args.backend:
        _worker(args)
        return {}
    from seg_r1.logs import setup_logging

    setup_logging(hide_hf_progress=True)
    given = list(argv if argv is not None else sys.argv[1:])
    paths = ensure_checkpoints(args)
    report: dict[str, Any] = {
        "command": " ".join([Path(sys.argv[0]).name, *given]),
        "tiny": args.tiny,
        "sam2_preset": None if args.tiny else args.sam2_preset,
        "frame": args.frame,
        "images": args.images,
        "prompt_sets_per_image": args.prompt_sets,
        "checkpoints": paths,
    }
    with tempfile.TemporaryDirectory() as tmp:
        for backend in args.backends:
            result_path, masks_path = Path(tmp) / f"{backend}.json", Path(tmp) / f"{backend}.npy"
            command = [sys.executable, __file__, *given, "--backend", backend]
            command += ["--paths", json.dumps(paths), "--result", str(result_path)]
            command += ["--masks", str(masks_path)]
            start = time.perf_counter()
            proc = subprocess.run(command, env={**os.environ, "PYTHONUNBUFFERED": "1"})
            wall = time.perf_counter() - start
            if proc.returncode != 0:
                report[backend] = {"error": f"exit {proc.returncode}"}
                continue
            report[backend] = {
                **json.loads(result_path.read_text()),
                "wall_seconds": round(wall, 1),
            }
        base = report.get("sam2", {})
        for backend in args.backends:
            result = report[backend]
            if backend == "sam2" or "error" in result or "error" in base or not base:
                continue
            result["vs_sam2"] = {
                key: round(result[key] / base[key], 3)
                for key in (
                    "encoder_seconds_per_image",
                    "decoder_seconds_per_prompt_set",
                    "peak_rss_gib",
                )  # fmt: skip
            }
        if "sam2" in args.backends and "sam2_hf" in args.backends:
            if "error" not in report["sam2"] and "error" not in report["sam2_hf"]:
                report["sam2_hf"]["masks_vs_sam2"] = compare_masks(
                    str(Path(tmp) / "sam2.npy"), str(Path(tmp) / "sam2_hf.npy")
                )
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))
    print(f"\n{'backend':<9} {'encoder s/image':>16} {'decoder s/set':>14} {'peak RSS GiB':>13}")
    for backend in args.backends:
        result = report[backend]
        if "error" in result:
            print(f"{backend:<9} {result['error']}")
            continue
        cells = [
            _cell(result, key)
            for key in (
                "encoder_seconds_per_image",
                "decoder_seconds_per_prompt_set",
                "peak_rss_gib",
            )  # fmt: skip
        ]
        print(f"{backend:<9} {cells[0]:>16} {cells[1]:>14} {cells[2]:>13}")
    return report


def _cell(result: dict[str, Any], key: str) -> str:
    """``value`` or ``value (ratio to sam2)``."""
    ratio = result.get("vs_sam2", {})
    return f"{result[key]:g}" + (f" ({ratio[key]:.2f}x)" if key in ratio else "")


if __name__ == "__main__":
    main()
