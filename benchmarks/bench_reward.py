"""Reward-path cost: our encode-once segmentation reward vs the official-style path.

    .venv/bin/python benchmarks/bench_reward.py --groups 4 8 --repeats 1

For a GRPO group of G completions of ONE 1024x1024 image, times

* ``ours``: :func:`seg_r1.rewards.get_reward_funcs` with a SAM2 segmenter built once per
  process (not timed, like a trainer): the frame image is encoded once per group, all
  completions' prompt sets are decoded against the cached embedding, the masks are shared by
  the reward functions;
* ``official``: what the official code does (SPEC §3) -- build SAM2 on every reward call,
  then for EVERY completion ``set_image`` (a full encoder pass) and decode its boxes.

Both use the same SAM2 architecture (packaged ``sam2.1_hiera_t.yaml``, random weights -- the
cost does not depend on the weights), the same device (CPU by default), the same frame
(768, the training frame) and the same answers, and both compute IoU + S-measure. Each path
runs in its own subprocess so its peak RSS (``ru_maxrss``) is its own; ``tracemalloc`` adds
the peak of Python-side allocations (NumPy included, torch tensors not). Printed: seconds
per group (median over repeats), the part spent in the image encoder, the time ratio
official/ours (with and without the official per-call model build), encoder passes per group
and peak memory. The ratio approaches G when the encoder dominates; the decoder work (one
pass per box, the same in both paths) keeps it below G. On a shared CPU, load from other
processes can slow one subprocess more than the other, so a third ratio recomputes both
paths with one common per-pass encoder time (their pooled mean).
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
import tracemalloc

import numpy as np


def _scene(size: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A bright textured disk on a dark textured background, and its mask."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    mask = (xx - size * 0.45) ** 2 + (yy - size * 0.55) ** 2 <= (size * 0.2) ** 2
    image = rng.integers(0, 90, (size, size, 3), dtype=np.uint8)
    image[mask] = rng.integers(140, 255, (int(mask.sum()), 3), dtype=np.uint8)
    return image, mask


def _completions(group: int, frame: int, seed: int = 0) -> list[str]:
    """G answers with 1-2 boxes and 1-3 points each, in the frame."""
    from seg_r1.answer import format_answer

    rng = np.random.default_rng(seed)
    out = []
    for _ in range(group):
        boxes = []
        for _ in range(int(rng.integers(1, 3))):
            x1, y1 = rng.integers(0, frame // 2, 2)
            w, h = rng.integers(frame // 8, frame // 2, 2)
            boxes.append([int(x1), int(y1), int(x1 + w), int(y1 + h)])
        points = [
            [int(v) for v in rng.integers(0, frame, 2)] for _ in range(int(rng.integers(1, 4)))
        ]
        labels = [int(v) for v in rng.integers(0, 2, len(points))]
        out.append(format_answer(boxes, points, labels, think="the object"))
    return out


def _time_encoder(predictor, seconds: list[float]) -> None:
    """Wrap ``predictor.set_image`` so that each encoder pass adds its duration to ``seconds``."""
    import torch

    real = predictor.set_image
    sync = torch.cuda.synchronize if torch.cuda.is_available() else lambda: None

    def timed(image):
        sync()  # CUDA kernels run asynchronously: time the pass, not its launch
        start = time.perf_counter()
        real(image)
        sync()
        seconds.append(time.perf_counter() - start)

    predictor.set_image = timed


def _ours(args: argparse.Namespace, image: np.ndarray, gt: np.ndarray, group: int) -> dict:
    import torch

    from seg_r1.rewards import get_reward_funcs
    from seg_r1.segmenters.sam2 import SAM2Segmenter

    torch.manual_seed(0)  # random weights: the same in both paths, so the rewards must agree
    segmenter = SAM2Segmenter(config=args.config, checkpoint=None, device=args.device)
    funcs = get_reward_funcs(["format", "segmentation"], segmenter=segmenter, frame_size=args.frame)
    encoder_seconds: list[float] = []
    _time_encoder(segmenter.predictor, encoder_seconds)
    times, encodes, enc_times, rewards = [], [], [], None
    for repeat in range(args.repeats + 1):  # run 0 (one completion) warms up, not timed
        n = group if repeat else 1
        completions = _completions(n, args.frame, seed=repeat)
        # G distinct copies of the image, like a dataset decoding each repeated row anew.
        kwargs = {"image": [image.copy() for _ in range(n)], "mask": [gt] * n}
        segmenter.stats.reset()
        encoder_seconds.clear()
        start = time.perf_counter()
        rewards = [f(completions, **kwargs) for f in funcs]
        elapsed = time.perf_counter() - start
        if repeat:
            times.append(elapsed)
            encodes.append(segmenter.stats.encoder_calls)
            enc_times.append(sum(encoder_seconds))
    return {
        "seconds": times,
        "build_seconds": [0.0] * len(times),
        "encoder_seconds": enc_times,
        "encodes": encodes,
        "rewards": rewards,
    }


def _official(args: argparse.Namespace, image: np.ndarray, gt: np.ndarray, group: int) -> dict:
    import torch

    from seg_r1.answer import parse_answer
    from seg_r1.frame import resize_mask, resize_to_frame
    from seg_r1.rewards import format_reward, segmentation_score
    from seg_r1.segmenters.sam2 import build_image_predictor, build_sam2_model

    times, builds, encodes, enc_times, rewards = [], [], [], [], None
    encoder_seconds: list[float] = []
    for repeat in range(args.repeats + 1):  # run 0 (one completion) warms up, not timed
        completions = _completions(group if repeat else 1, args.frame, seed=repeat)
        start = time.perf_counter()
        torch.manual_seed(0)  # the same random weights as the other path
        model = build_sam2_model(args.config, checkpoint=None, device=args.device)
        predictor = build_image_predictor(model)
        encoder_seconds.clear()
        _time_encoder(predictor, encoder_seconds)
        built = time.perf_counter()
        frame_gt = resize_mask(gt, args.frame)
        seg_rewards, n_encodes = [], 0
        for text in completions:
            frame_image = resize_to_frame(image.copy(), args.frame)
            answer = parse_answer(text, args.frame)
            predictor.set_image(frame_image)  # one encoder pass per completion
            n_encodes += 1
            pred = np.zeros(frame_gt.shape, dtype=bool)
            for box in answer.boxes:
                x, y = answer.points[:, 0], answer.points[:, 1]
                inside = (x >= box[0]) & (x <= box[2]) & (y >= box[1]) & (y <= box[3])
                masks, _, _ = predictor.predict(
                    point_coords=answer.points[inside] if inside.any() else None,
                    point_labels=answer.labels[inside] if inside.any() else None,
                    box=box,
                    multimask_output=False,
                )
                pred |= masks[0].astype(bool)
            seg_rewards.append(segmentation_score(pred, frame_gt)[0] if answer.ok else 0.0)
        rewards = [format_reward(completions, frame_size=args.frame), seg_rewards]
        elapsed = time.perf_counter() - start
        if repeat:
            times.append(elapsed)
            builds.append(built - start)
            encodes.append(n_encodes)
            enc_times.append(sum(encoder_seconds))
    return {
        "seconds": times,
        "build_seconds": builds,
        "encoder_seconds": enc_times,
        "encodes": encodes,
        "rewards": rewards,
    }


def _worker(args: argparse.Namespace) -> None:
    import torch

    torch.set_num_threads(args.threads)
    image, gt = _scene(args.image_size)
    tracemalloc.start()
    run = _ours if args.worker == "ours" else _official
    with torch.inference_mode():
        result = run(args, image, gt, args.group)
    _, peak = tracemalloc.get_traced_memory()
    result["tracemalloc_peak_mb"] = peak / 2**20
    result["max_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    print(json.dumps(result))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--groups", type=int, nargs="+", default=[4, 8], help="completions per group (G)"
    )
    parser.add_argument("--repeats", type=int, default=1, help="timed repeats (after one warm-up)")
    parser.add_argument(
        "--config", default="sam2.1_hiera_t.yaml", help="SAM2 config (random weights)"
    )
    parser.add_argument("--image-size", type=int, default=1024, help="side of the square image")
    parser.add_argument("--frame", type=int, default=768, help="reward frame (SPEC: 768)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--out", default=None, help="also write the figures as JSON here")
    parser.add_argument("--worker", choices=["ours", "official"], help=argparse.SUPPRESS)
    parser.add_argument("--group", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        _worker(args)
        return

    print(
        f"SAM2 {args.config} (random weights), {args.image_size}^2 image, frame {args.frame}, "
        f"{args.device}, {args.threads} threads, {args.repeats} timed repeat(s) after 1 warm-up"
    )
    header = (
        f"{'G':>3} {'path':>9} {'s/group':>8} {'build s':>8} {'enc s':>7} {'enc/grp':>8} "
        f"{'s/pass':>7} {'rss MB':>8} {'py MB':>7}"
    )
    print(header)
    report = {"config": args.config, "device": args.device, "frame": args.frame, "groups": []}
    for group in args.groups:
        results = {}
        for path in ("ours", "official"):
            cmd = [sys.executable, __file__, "--worker", path, "--group", str(group)]
            for flag in ("repeats", "config", "image_size", "frame", "device", "threads"):
                cmd += [f"--{flag.replace('_', '-')}", str(getattr(args, flag))]
            proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if proc.returncode != 0:
                sys.exit(f"{path} worker failed:\n{proc.stderr}")
            results[path] = json.loads(proc.stdout.strip().splitlines()[-1])
            r = results[path]
            print(
                f"{group:>3} {path:>9} {statistics.median(r['seconds']):>8.2f} "
                f"{statistics.median(r['build_seconds']):>8.2f} "
                f"{statistics.median(r['encoder_seconds']):>7.2f} {r['encodes'][0]:>8d} "
                f"{statistics.median(r['encoder_seconds']) / r['encodes'][0]:>7.2f} "
                f"{r['max_rss_mb']:>8.0f} {r['tracemalloc_peak_mb']:>7.1f}"
            )
        ours = statistics.median(results["ours"]["seconds"])
        official = statistics.median(results["official"]["seconds"])
        no_build = official - statistics.median(results["official"]["build_seconds"])
        same = np.allclose(results["ours"]["rewards"], results["official"]["rewards"], atol=1e-6)
        # Other processes on a shared CPU can slow one subprocess and not the other; with one
        # common per-pass encoder time the ratio depends only on the work each path does.
        enc = {p: statistics.median(r["encoder_seconds"]) for p, r in results.items()}
        per_pass = (enc["ours"] + enc["official"]) / (1 + group)
        ours_rest = ours - enc["ours"]
        official_rest = no_build - enc["official"]
        normalised = (group * per_pass + official_rest) / (per_pass + ours_rest)
        print(
            f"    G={group}: official/ours = {official / ours:.2f}x "
            f"({no_build / ours:.2f}x without the official per-call SAM2 build; "
            f"{normalised:.2f}x with a common {per_pass:.2f} s per encoder pass); "
            f"identical rewards: {same}"
        )
        report["groups"].append(
            {
                "G": group,
                "ours_seconds": ours,
                "official_seconds": official,
                "official_build_seconds": statistics.median(results["official"]["build_seconds"]),
                "ratio": official / ours,
                "ratio_without_build": no_build / ours,
                "ratio_common_encoder": normalised,
                "encoder_seconds_per_pass": per_pass,
                "encodes": {p: r["encodes"][0] for p, r in results.items()},
                "max_rss_mb": {p: r["max_rss_mb"] for p, r in results.items()},
                "identical_rewards": bool(same),
            }
        )
        if args.out:  # rewritten after each group: an interrupted run keeps what it measured
            with open(args.out, "w") as handle:
                json.dump(report, handle, indent=2)


if __name__ == "__main__":
    main()
